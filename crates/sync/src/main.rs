//! `tektra-sync`: the upstream sync (see `scripts/sync-upstream`).
// A command-line program: printing is its job.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use tektra_sync::{Options, report::Status, workspace::parse_version};

/// Which pinned upstream crates are behind, and whether moving them passes.
#[derive(Parser, Debug)]
#[command(name = "tektra-sync")]
struct Args {
    /// CRATE or CRATE@VERSION (an exact version, older ones too); none:
    /// every upstream the workspace pins, to its newest release.
    crates: Vec<String>,
    /// When every step passed, leave the bump as a commit on a new branch
    /// `sync/<date>`.
    #[arg(long)]
    commit: bool,
    /// Steps to skip, comma-separated (behind, worktree, bump, patches,
    /// one-version, build, test, bench, api-drift).
    #[arg(long, value_delimiter = ',')]
    skip: Vec<String>,
    /// Keep the scratch worktree (target/sync/worktree) afterwards.
    #[arg(long)]
    keep: bool,
    /// Move only to the newest semver-compatible releases.
    #[arg(long)]
    compatible: bool,
    /// The repository to sync (default: the current directory).
    #[arg(long, default_value = ".")]
    repo: PathBuf,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let mut crates = Vec::new();
    for c in &args.crates {
        let (name, version) = match c.split_once('@') {
            Some((n, v)) => match parse_version(v) {
                Ok(v) => (n.to_owned(), Some(v)),
                Err(e) => {
                    eprintln!("error: {c}: {e}");
                    return ExitCode::from(2);
                }
            },
            None => (c.clone(), None),
        };
        crates.push((name, version));
    }
    let opts = Options {
        repo: args.repo,
        crates,
        skip: args.skip,
        commit: args.commit,
        keep: args.keep,
        compatible_only: args.compatible,
    };
    let report = match tektra_sync::run(opts) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    for c in &report.crates {
        if c.newest.as_deref().is_some_and(|n| n != c.current) || c.target.is_some() {
            println!(
                "{:<24} {:>10} -> compatible {:<10} newest {:<10} {} ({}){}",
                c.name,
                c.current,
                c.newest_compatible.as_deref().unwrap_or("?"),
                c.newest.as_deref().unwrap_or("?"),
                c.newest_kind,
                c.behind,
                c.target
                    .as_ref()
                    .map(|t| format!(", target {t}"))
                    .unwrap_or_default()
            );
        }
    }
    for s in &report.steps {
        println!(
            "{:<12} {:<8} {:>7.1}s  {}",
            s.name,
            s.status.as_str(),
            s.seconds,
            s.summary
        );
    }
    if let Some(b) = &report.branch {
        println!("committed on branch {b}");
    }
    println!(
        "report: {}",
        report.repo.join("target/sync/report.md").display()
    );
    if report.ok && !report.steps.iter().any(|s| s.status == Status::Failed) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
