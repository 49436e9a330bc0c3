//! Line charts of a benchmark's history as plain SVG: one per metric,
//! records evenly spaced left to right, a point per record with its date,
//! commit and value on hover. Hand-written SVG rather than a plotting
//! crate: a few lines of text, no fonts or native libraries to build.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::Path;

use crate::history::Record;

const W: f64 = 640.0;
const H: f64 = 300.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 36.0;
const BOTTOM: f64 = 40.0;

/// Draws `dir/charts/<bench>-<metric>.svg` for every metric in `records`
/// and rewrites the index `dir/README.md` over every chart there.
///
/// # Errors
/// When a file cannot be written.
pub(crate) fn draw_all(dir: &Path, bench: &str, records: &[Record]) -> Result<(), String> {
    let charts = dir.join("charts");
    std::fs::create_dir_all(&charts).map_err(|e| format!("{}: {e}", charts.display()))?;
    let names: BTreeSet<&str> = records
        .iter()
        .flat_map(|r| r.metrics.iter().map(|m| m.name.as_str()))
        .collect();
    for name in names {
        let path = charts.join(format!("{bench}-{name}.svg"));
        std::fs::write(&path, svg(bench, name, records))
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    write_index(dir)
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// One metric's chart.
fn svg(bench: &str, name: &str, records: &[Record]) -> String {
    // (record index, date, commit, value, unit) of the records holding it.
    let points: Vec<(usize, &str, &str, f64, &str)> = records
        .iter()
        .enumerate()
        .filter_map(|(i, r)| {
            r.metrics.iter().find(|m| m.name == name).map(|m| {
                (
                    i,
                    r.date.as_str(),
                    r.commit.as_str(),
                    m.value,
                    m.unit.as_str(),
                )
            })
        })
        .collect();
    let unit = points.last().map_or("", |p| p.4);
    let ratio = records
        .iter()
        .flat_map(|r| &r.metrics)
        .any(|m| m.name == name && m.ratio);
    let mut lo = points.iter().map(|p| p.3).fold(f64::INFINITY, f64::min);
    let mut hi = points.iter().map(|p| p.3).fold(f64::NEG_INFINITY, f64::max);
    if ratio {
        // Parity with upstream is the line that matters for a ratio.
        lo = lo.min(1.0);
        hi = hi.max(1.0);
    }
    if !lo.is_finite() || !hi.is_finite() {
        (lo, hi) = (0.0, 1.0);
    }
    let pad = ((hi - lo) * 0.1).max(hi.abs() * 0.02).max(1e-9);
    let (lo, hi) = (
        (lo - pad).max(if lo >= 0.0 { 0.0 } else { f64::MIN }),
        hi + pad,
    );
    let n = records.len().max(2) - 1;
    let x = |i: usize| LEFT + (W - LEFT - RIGHT) * i as f64 / n as f64;
    let y = |v: f64| TOP + (H - TOP - BOTTOM) * (1.0 - (v - lo) / (hi - lo));
    let mut s = String::new();
    let _ = write!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"{W}\" height=\"{H}\" fill=\"white\"/>\n\
         <text x=\"{LEFT}\" y=\"20\" font-size=\"14\">{} {} ({})</text>\n",
        escape(bench),
        escape(name),
        escape(unit)
    );
    for k in 0..=4 {
        let v = lo + (hi - lo) * f64::from(k) / 4.0;
        let _ = writeln!(
            s,
            "<line x1=\"{LEFT}\" x2=\"{:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"#ddd\"/><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{v:.3}</text>",
            W - RIGHT,
            y(v),
            y(v),
            LEFT - 6.0,
            y(v) + 4.0
        );
    }
    if ratio {
        let _ = writeln!(
            s,
            "<line x1=\"{LEFT}\" x2=\"{:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"#c33\" stroke-dasharray=\"4 3\"/>",
            W - RIGHT,
            y(1.0),
            y(1.0)
        );
    }
    let line: Vec<String> = points
        .iter()
        .map(|p| format!("{:.1},{:.1}", x(p.0), y(p.3)))
        .collect();
    let _ = writeln!(
        s,
        "<polyline fill=\"none\" stroke=\"#2563eb\" stroke-width=\"2\" points=\"{}\"/>",
        line.join(" ")
    );
    for p in &points {
        let _ = writeln!(
            s,
            "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3.5\" fill=\"#2563eb\"><title>{} {} {:.3} {}</title></circle>",
            x(p.0),
            y(p.3),
            escape(p.1),
            escape(p.2),
            p.3,
            escape(p.4)
        );
    }
    if let (Some(first), Some(last)) = (records.first(), records.last()) {
        let _ = writeln!(
            s,
            "<text x=\"{LEFT}\" y=\"{:.1}\">{}</text><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            H - 12.0,
            escape(first.date.get(..10).unwrap_or(&first.date)),
            W - RIGHT,
            H - 12.0,
            escape(last.date.get(..10).unwrap_or(&last.date))
        );
    }
    s.push_str("</svg>\n");
    s
}

/// `dir/README.md`: every chart under `dir/charts`, grouped by bench.
fn write_index(dir: &Path) -> Result<(), String> {
    let charts = dir.join("charts");
    let mut names: Vec<String> = std::fs::read_dir(&charts)
        .map_err(|e| format!("{}: {e}", charts.display()))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".svg"))
        .collect();
    names.sort();
    let mut s = String::from(
        "# Benchmark history\n\n\
         Written by the benchmarks (`scripts/bench ...`): one record per run in\n\
         `<bench>.jsonl`, one chart per metric below. Ratios are against the\n\
         upstream tool in the same run (dashed line: parity); a ratio more than\n\
         10% below the previous record is flagged in the run's output.\n",
    );
    let mut current = "";
    for name in &names {
        let bench = name.split_once('-').map_or(name.as_str(), |(b, _)| b);
        if bench != current {
            let _ = write!(s, "\n## {bench}\n\n");
            current = bench;
        }
        let _ = writeln!(s, "![{name}](charts/{name})");
    }
    let path = dir.join("README.md");
    std::fs::write(&path, s).map_err(|e| format!("{}: {e}", path.display()))
}
