//! The mistral.rs child of the generation benchmark: the same child as
//! `tektra-bench-generate child ...`, in a binary built with the
//! `mistralrs` feature (scripts/bench builds it through
//! `scripts/apply-patches`, see patches/README.md).
#![allow(clippy::print_stderr)]

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Err(e) = tektra_bench_generate::child_main(&args) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
