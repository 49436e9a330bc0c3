//! `tektra-bench-record BENCH NAME=VALUE:UNIT[:ratio|:cost]...`: appends a
//! record to `benches/history/BENCH.jsonl` for measurements made outside
//! Rust (the release build's time, by `scripts/bench build`), redraws its
//! charts and prints any flag.
// A command-line program reports on the terminal.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::process::ExitCode;

use tektra_bench_support::history::{self, Metric};

fn parse(arg: &str) -> Option<Metric> {
    let (name, rest) = arg.split_once('=')?;
    let mut parts = rest.split(':');
    let value: f64 = parts.next()?.parse().ok()?;
    let unit = parts.next().unwrap_or("");
    Some(match parts.next() {
        Some("ratio") => Metric::ratio(name, value),
        Some("cost") => Metric::cost(name, value, unit),
        None => Metric::value(name, value, unit),
        Some(_) => return None,
    })
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(bench) = args.next() else {
        eprintln!("usage: tektra-bench-record BENCH NAME=VALUE:UNIT[:ratio|:cost]...");
        return ExitCode::from(2);
    };
    let mut metrics = Vec::new();
    for a in args {
        let Some(m) = parse(&a) else {
            eprintln!("tektra-bench-record: cannot read {a:?} (NAME=VALUE:UNIT[:ratio|:cost])");
            return ExitCode::from(2);
        };
        metrics.push(m);
    }
    for line in history::record(&bench, metrics) {
        println!("{line}");
    }
    ExitCode::SUCCESS
}
