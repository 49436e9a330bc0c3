//! The wall-clock benchmarks' history: each run appends one dated record
//! to `benches/history/<bench>.jsonl` and redraws that bench's charts, one
//! SVG per metric over time (`benches/history/charts/`, indexed in
//! `benches/history/README.md`). A ratio against upstream that falls more
//! than [`FALL_FLAG`] below the previous record's is flagged in the output.
//!
//! Seconds on a shared 2-core machine move by 10% between runs, so the
//! history is for seeing trends and catching large falls; the instruction
//! count gate (`benches/check`) is what fails a commit.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::chart;

/// A ratio more than this far (as a fraction) below the previous record's
/// is flagged.
pub const FALL_FLAG: f64 = 0.10;

/// One figure of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metric {
    /// Stable name, e.g. `gen_q4_1_vs_llama_cpp`.
    pub name: String,
    /// The value.
    pub value: f64,
    /// Its unit, e.g. `x`, `tok/s`, `s`, `MB`.
    pub unit: String,
    /// A ratio to an upstream tool (higher is better): watched for falls.
    pub ratio: bool,
    /// A cost watched for rises (lower is better), such as build time.
    #[serde(default)]
    pub cost: bool,
}

impl Metric {
    /// A ratio to upstream (higher is better).
    #[must_use]
    pub fn ratio(name: &str, value: f64) -> Self {
        Metric {
            name: name.into(),
            value,
            unit: "x".into(),
            ratio: true,
            cost: false,
        }
    }

    /// Any other figure.
    #[must_use]
    pub fn value(name: &str, value: f64, unit: &str) -> Self {
        Metric {
            name: name.into(),
            value,
            unit: unit.into(),
            ratio: false,
            cost: false,
        }
    }

    /// A cost (lower is better), flagged when it rises more than
    /// [`FALL_FLAG`] above the previous record's.
    #[must_use]
    pub fn cost(name: &str, value: f64, unit: &str) -> Self {
        Metric {
            cost: true,
            ..Metric::value(name, value, unit)
        }
    }
}

/// One run of one benchmark.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// UTC date and time, `YYYY-MM-DDTHH:MM:SSZ`.
    pub date: String,
    /// The commit measured (`git describe --always --dirty`), or "unknown".
    pub commit: String,
    /// The CPU it ran on.
    pub cpu: String,
    /// The figures.
    pub metrics: Vec<Metric>,
}

/// `benches/history` in this checkout.
#[must_use]
pub fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../history")
}

/// Appends a record of `metrics` for `bench` to `dir/<bench>.jsonl`,
/// redraws the charts, and returns the flags raised (ratios fallen more
/// than [`FALL_FLAG`] below the previous record).
///
/// # Errors
/// When the history cannot be read or written.
pub fn append(dir: &Path, bench: &str, metrics: Vec<Metric>) -> Result<Vec<String>, String> {
    let record = Record {
        date: utc_now(),
        commit: commit(),
        cpu: cpu_model(),
        metrics,
    };
    append_record(dir, bench, &record)
}

/// [`append`] to this checkout's history ([`dir`]), as lines for the
/// benchmark to print: where the record went, then any flags.
#[must_use]
pub fn record(bench: &str, metrics: Vec<Metric>) -> Vec<String> {
    let dir = dir();
    match append(&dir, bench, metrics) {
        Ok(flags) => {
            let mut lines = vec![format!(
                "history: appended to {}/{bench}.jsonl, charts in {}/charts",
                dir.display(),
                dir.display()
            )];
            lines.extend(flags);
            lines
        }
        Err(e) => vec![format!("history: not recorded: {e}")],
    }
}

/// As [`append`], with the record given (tests).
///
/// # Errors
/// When the history cannot be read or written.
pub fn append_record(dir: &Path, bench: &str, record: &Record) -> Result<Vec<String>, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let path = dir.join(format!("{bench}.jsonl"));
    let records = read(&path)?;
    let flags = records
        .last()
        .map_or_else(Vec::new, |prev| falls(prev, record));
    let line = serde_json::to_string(record).map_err(|e| e.to_string())?;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    writeln!(file, "{line}").map_err(|e| format!("{}: {e}", path.display()))?;
    let mut all = records;
    all.push(record.clone());
    chart::draw_all(dir, bench, &all)?;
    Ok(flags)
}

/// The records of a history file (none when it does not exist yet). A
/// line that does not parse is skipped: a hand edit must not stop a run.
///
/// # Errors
/// When the file exists but cannot be read.
pub fn read(path: &Path) -> Result<Vec<Record>, String> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(text
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

/// Ratios of `now` more than [`FALL_FLAG`] below the same ratio in `prev`,
/// and costs as far above.
#[must_use]
pub fn falls(prev: &Record, now: &Record) -> Vec<String> {
    let mut flags = Vec::new();
    for m in now.metrics.iter().filter(|m| m.ratio || m.cost) {
        let Some(p) = prev.metrics.iter().find(|p| p.name == m.name) else {
            continue;
        };
        if m.cost && p.value > 0.0 && m.value > p.value * (1.0 + FALL_FLAG) {
            flags.push(format!(
                "FLAG: {} rose to {:.1} {} from {:.1} ({:+.0}%) since {} ({})",
                m.name,
                m.value,
                m.unit,
                p.value,
                (m.value / p.value - 1.0) * 100.0,
                prev.date,
                prev.commit
            ));
        }
        if m.ratio && p.value > 0.0 && m.value < p.value * (1.0 - FALL_FLAG) {
            let mut s = String::new();
            let _ = write!(
                s,
                "FLAG: {} fell to {:.2}x from {:.2}x ({:+.0}%) since {} ({})",
                m.name,
                m.value,
                p.value,
                (m.value / p.value - 1.0) * 100.0,
                prev.date,
                prev.commit
            );
            flags.push(s);
        }
    }
    flags
}

fn commit() -> String {
    std::process::Command::new("git")
        .args(["describe", "--always", "--dirty"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.into())
}

/// Now as `YYYY-MM-DDTHH:MM:SSZ`.
fn utc_now() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(date: &str, ratio: f64) -> Record {
        Record {
            date: date.into(),
            commit: "abc".into(),
            cpu: "cpu".into(),
            metrics: vec![
                Metric::ratio("gen_vs_cpp", ratio),
                Metric::value("gen_tps", 100.0, "tok/s"),
                Metric::cost("build", 300.0 / ratio, "s"),
            ],
        }
    }

    #[test]
    fn a_fall_beyond_ten_percent_is_flagged_and_charts_are_drawn() {
        let dir = tempfile::tempdir().unwrap();
        assert!(
            append_record(dir.path(), "generate", &record("2026-01-01T00:00:00Z", 2.0))
                .unwrap()
                .is_empty()
        );
        let flags = append_record(
            dir.path(),
            "generate",
            &record("2026-01-02T00:00:00Z", 1.85),
        )
        .unwrap();
        assert!(flags.is_empty(), "7.5% is within the band: {flags:?}");
        let flags =
            append_record(dir.path(), "generate", &record("2026-01-03T00:00:00Z", 1.6)).unwrap();
        assert_eq!(flags.len(), 2, "{flags:?}");
        assert!(
            flags[0].contains("gen_vs_cpp fell to 1.60x from 1.85x"),
            "{flags:?}"
        );
        assert!(
            flags[1].contains("build rose to 187.5 s from 162.2"),
            "{flags:?}"
        );
        assert_eq!(read(&dir.path().join("generate.jsonl")).unwrap().len(), 3);
        let svg =
            std::fs::read_to_string(dir.path().join("charts/generate-gen_vs_cpp.svg")).unwrap();
        assert!(
            svg.starts_with("<svg") && svg.contains("<polyline"),
            "{svg}"
        );
        let index = std::fs::read_to_string(dir.path().join("README.md")).unwrap();
        assert!(index.contains("charts/generate-gen_tps.svg"), "{index}");
    }

    #[test]
    fn dates_are_utc_iso() {
        let d = utc_now();
        assert_eq!(d.len(), 20, "{d}");
        assert!(d.starts_with("20") && d.ends_with('Z'), "{d}");
    }
}
