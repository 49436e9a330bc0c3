//! Loading benchmark: tektra-candle against upstream candle 0.10.2, in the
//! same run, each load in its own child process so peak RSS is per load.
//!
//! `cargo run --release -p tektra-bench-load [-- --runs N]`
//!
//! Scenarios: SmolLM2's GGUF (all tensors as `QTensor`s), and a generated
//! ~2.1 GB sharded bf16 llama converted to f32, to f16 and kept as bf16.
//! Before each scenario the files are read once, so both sides run with a
//! warm page cache, and 7 GiB of memory is touched and freed before every
//! run (see `child::prefault`; `TEKTRA_BENCH_COLD_MEMORY=1` skips it); runs
//! alternate which side goes first. Prints the median
//! time and peak RSS of each side, their ratios, and each target with
//! PASS or MISS.
// A benchmark reports on the terminal.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod child;
mod generate;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::child::Measure;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("child") {
        let [_, which, scenario, path] = args.as_slice() else {
            bail!("usage: child ours|upstream SCENARIO PATH");
        };
        let measure = child::run(which, scenario, Path::new(path))?;
        println!("{}", serde_json::to_string(&measure)?);
        return Ok(());
    }
    let runs = match args.iter().position(|a| a == "--runs") {
        Some(i) => args.get(i + 1).context("--runs N")?.parse()?,
        None => 3,
    };
    let gguf = tektra_testdata::smollm2_gguf();
    let shards = generate::ensure_model()?;
    let model_dir = generate::model_dir();
    println!(
        "machine: {} cores; {} runs per side, median shown",
        std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
        runs
    );
    let scenarios: [(&str, &str, PathBuf, Vec<PathBuf>); 4] = [
        ("gguf", "SmolLM2 Q4_1 GGUF, 98 MB", gguf.clone(), vec![gguf]),
        (
            "st-f32",
            "2.1 GB bf16 shards -> f32",
            model_dir.clone(),
            shards.clone(),
        ),
        (
            "st-f16",
            "2.1 GB bf16 shards -> f16",
            model_dir.clone(),
            shards.clone(),
        ),
        (
            "st-bf16",
            "2.1 GB bf16 shards, no conversion",
            model_dir,
            shards,
        ),
    ];
    let mut rows = Vec::new();
    for (scenario, label, path, files) in &scenarios {
        warm(files)?;
        let mut ours = Vec::new();
        let mut upstream = Vec::new();
        for run in 0..runs {
            let order: [&str; 2] = if run % 2 == 0 {
                ["ours", "upstream"]
            } else {
                ["upstream", "ours"]
            };
            for which in order {
                let m = spawn(which, scenario, path)?;
                eprintln!(
                    "  {scenario:8} {which:8} {:7.3} s {:6.0} MiB",
                    m.secs,
                    mib(m.peak_rss)
                );
                if which == "ours" {
                    ours.push(m)
                } else {
                    upstream.push(m)
                }
            }
        }
        let (o, u) = (median(&ours), median(&upstream));
        if ours[0].tensors != upstream[0].tensors {
            bail!(
                "{scenario}: ours loaded {} tensors, upstream {}",
                ours[0].tensors,
                upstream[0].tensors
            );
        }
        rows.push(Row {
            scenario,
            label,
            ours: o,
            upstream: u,
            tensors: ours[0].tensors,
        });
    }
    print_table(&rows);
    Ok(())
}

/// Reads every file once so both sides start from a warm page cache.
fn warm(files: &[PathBuf]) -> Result<()> {
    tektra_candle::prefetch(
        files,
        tektra_progress::silent(),
        &tokio_util::sync::CancellationToken::new(),
    )?;
    Ok(())
}

fn spawn(which: &str, scenario: &str, path: &Path) -> Result<Measure> {
    let out = Command::new(std::env::current_exe()?)
        .args(["child", which, scenario])
        .arg(path)
        .output()?;
    if !out.status.success() {
        bail!(
            "{which} {scenario} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// (seconds, peak RSS) medians.
fn median(ms: &[Measure]) -> (f64, u64) {
    let mut secs: Vec<f64> = ms.iter().map(|m| m.secs).collect();
    let mut rss: Vec<u64> = ms.iter().map(|m| m.peak_rss).collect();
    secs.sort_by(f64::total_cmp);
    rss.sort_unstable();
    (secs[secs.len() / 2], rss[rss.len() / 2])
}

#[allow(clippy::cast_precision_loss)]
fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

struct Row<'a> {
    scenario: &'a str,
    label: &'a str,
    ours: (f64, u64),
    upstream: (f64, u64),
    tensors: usize,
}

/// The targets of the issue, per scenario: (text, met?).
#[allow(clippy::cast_precision_loss)]
fn target(row: &Row<'_>) -> (&'static str, bool) {
    let speedup = row.upstream.0 / row.ours.0;
    let rss_ratio = row.ours.1 as f64 / row.upstream.1 as f64;
    match row.scenario {
        "gguf" => (
            "time <= 1.05x upstream",
            row.ours.0 <= 1.05 * row.upstream.0,
        ),
        "st-f32" => (
            "speedup >= 3x and RSS <= 0.75x",
            speedup >= 3.0 && rss_ratio <= 0.75,
        ),
        "st-f16" => ("speedup >= 1.2x", speedup >= 1.2),
        _ => ("time <= 1.0x upstream", row.ours.0 <= row.upstream.0),
    }
}

#[allow(clippy::cast_precision_loss)]
fn print_table(rows: &[Row<'_>]) {
    println!();
    println!(
        "| scenario | tensors | ours time | upstream time | speedup | ours peak RSS | upstream peak RSS | RSS ratio | target | result |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for row in rows {
        let (text, met) = target(row);
        println!(
            "| {} | {} | {:.3} s | {:.3} s | {:.2}x | {:.0} MiB | {:.0} MiB | {:.2} | {} | {} |",
            row.label,
            row.tensors,
            row.ours.0,
            row.upstream.0,
            row.upstream.0 / row.ours.0,
            mib(row.ours.1),
            mib(row.upstream.1),
            row.ours.1 as f64 / row.upstream.1 as f64,
            text,
            if met { "PASS" } else { "MISS" }
        );
    }
}
