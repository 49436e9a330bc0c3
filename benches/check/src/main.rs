//! `tektra-bench-check RUN.json [--baseline FILE] [--tolerance PCT] [--update] [--about TEXT]`:
//! judges a gungraun run (its `--output-format=json` lines) against the
//! committed baseline; see the library's docs. Exit 1 when the gate fails.
// A command-line program reports on the terminal.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::path::PathBuf;
use std::process::ExitCode;

use tektra_bench_check::{Baseline, compare, failed, render};

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("tektra-bench-check: {e}");
            ExitCode::from(2)
        }
    }
}

fn run() -> Result<ExitCode, Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mut run_file = None;
    let mut baseline = PathBuf::from("benches/check/baseline.json");
    let mut tolerance = 3.0;
    let mut update = false;
    let mut about = String::new();
    while let Some(a) = args.next() {
        match a.as_str() {
            "--baseline" => baseline = args.next().ok_or("--baseline needs a file")?.into(),
            "--tolerance" => {
                tolerance = args.next().ok_or("--tolerance needs a number")?.parse()?
            }
            "--update" => update = true,
            "--about" => about = args.next().ok_or("--about needs a text")?,
            _ if run_file.is_none() && !a.starts_with('-') => run_file = Some(PathBuf::from(a)),
            _ => return Err(format!("unexpected argument {a}").into()),
        }
    }
    let run_file = run_file.ok_or(
        "usage: tektra-bench-check RUN.json [--baseline FILE] [--tolerance PCT] [--update]",
    )?;
    let text =
        std::fs::read_to_string(&run_file).map_err(|e| format!("{}: {e}", run_file.display()))?;
    let mut current = Baseline::from_gungraun(&run_file, &text)?;
    current.about = about;
    println!(
        "NOT RUN: the kernels' avx512 path (valgrind executes no AVX-512 instruction; the native benches cover it)"
    );
    if update {
        let old = Baseline::read(&baseline).unwrap_or_default();
        print!("{}", render(&compare(&old, &current, tolerance), tolerance));
        current.write(&baseline)?;
        println!(
            "baseline written: {} ({} counts)",
            baseline.display(),
            current.counts.len()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let before = Baseline::read(&baseline)?;
    let rows = compare(&before, &current, tolerance);
    print!("{}", render(&rows, tolerance));
    if failed(&rows) {
        println!(
            "gate FAILED: a count rose by more than {tolerance}% or a benchmark is missing; if that is deliberate, run scripts/bench check --update and commit the baseline"
        );
        return Ok(ExitCode::FAILURE);
    }
    println!(
        "gate passed: {} benchmarks within {tolerance}% of {}",
        rows.len(),
        baseline.display()
    );
    Ok(ExitCode::SUCCESS)
}
