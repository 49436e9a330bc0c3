//! `tektra cache ls|verify|rm|prune`: the cache as `tektra-cache` reads it.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use tektra_cache::{
    CacheError, CacheScan, Filter, PruneLimits, RemovalPlan, Sort, Target, format_age, format_size,
};

use super::report::{Display, OutputArgs, print_error};
use super::signal::cancel_on_ctrl_c;

/// Inspect, check and clean the Hub cache (shared with huggingface_hub).
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(subcommand)]
    command: Command,
    /// The hub cache folder [default: $HF_HUB_CACHE, $HF_HOME/hub, ~/.cache/huggingface/hub].
    #[arg(long, global = true)]
    cache_dir: Option<PathBuf>,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// List repos (or revisions) with sizes, last access and modification, refs.
    Ls(LsArgs),
    /// Re-hash blobs against their names (offline) and report mismatches.
    Verify(VerifyArgs),
    /// Remove repos or revisions and the blobs nothing else uses.
    Rm(RmArgs),
    /// Remove least recently used revisions until limits hold, and leftovers.
    Prune(PruneArgs),
}

#[derive(Debug, clap::Args)]
struct LsArgs {
    /// One row per revision instead of per repo.
    #[arg(long)]
    revisions: bool,
    /// size, accessed, modified or name (with :asc or :desc).
    #[arg(long)]
    sort: Option<String>,
    /// Keep rows matching EXPR (repeatable): size>1GB, accessed>30d,
    /// modified<1w, refs=main, type=model.
    #[arg(long, value_name = "EXPR")]
    filter: Vec<String>,
    /// Print JSON on stdout.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
struct VerifyArgs {
    /// Repos (`org/name`, `dataset/org/name`) with an optional `@revision`;
    /// every repo when none.
    targets: Vec<String>,
    /// Remove bad blobs and the links to them (the next download fetches
    /// them again).
    #[arg(long)]
    fix: bool,
    /// Files hashed at once [default: every CPU].
    #[arg(long)]
    threads: Option<usize>,
    #[command(flatten)]
    output: OutputArgs,
}

#[derive(Debug, clap::Args)]
struct RmArgs {
    /// Repos with an optional `@revision` (a ref or a commit).
    #[arg(required = true)]
    targets: Vec<String>,
    /// Say what would go, remove nothing.
    #[arg(long)]
    dry_run: bool,
    /// Do not ask.
    #[arg(long, short)]
    yes: bool,
}

#[derive(Debug, clap::Args)]
struct PruneArgs {
    /// Remove least recently used revisions until the cache takes at most this (e.g. 20G).
    #[arg(long, value_name = "SIZE")]
    max_size: Option<String>,
    /// ... and until the disk has at least this free (e.g. 50G).
    #[arg(long, value_name = "SIZE", env = "TEKTRA_KEEP_FREE")]
    keep_free: Option<String>,
    /// Remove revisions unused for longer than this (e.g. 30d).
    #[arg(long, value_name = "DURATION")]
    older_than: Option<String>,
    /// Say what would go, remove nothing.
    #[arg(long)]
    dry_run: bool,
    /// Do not ask.
    #[arg(long, short)]
    yes: bool,
}

impl Args {
    /// Whether stderr carries NDJSON progress (`verify --json`).
    pub(crate) fn json_output(&self) -> bool {
        matches!(&self.command, Command::Verify(v) if v.output.json)
    }
}

fn cache_dir(args: &Args) -> PathBuf {
    args.cache_dir
        .clone()
        .unwrap_or_else(|| hf_hub::HubOptions::from_env().cache_dir)
}

pub(crate) async fn run(args: Args) -> i32 {
    let root = cache_dir(&args);
    let json = args.json_output();
    let result = match args.command {
        Command::Ls(ls) => list(&root, &ls),
        Command::Verify(v) => verify(&root, v).await,
        Command::Rm(rm) => remove(&root, &rm),
        Command::Prune(p) => prune(&root, &p),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            print_error(json, &e);
            1
        }
    }
}

fn warn_problems(scan: &CacheScan) {
    for p in &scan.problems {
        eprintln!("warning: {p}");
    }
}

fn ago(t: SystemTime) -> String {
    format_age(
        SystemTime::now()
            .duration_since(t)
            .map_or(0, |d| d.as_secs()),
    )
}

fn list(root: &std::path::Path, args: &LsArgs) -> Result<i32, CacheError> {
    let scan = tektra_cache::scan(root)?;
    let filters = args
        .filter
        .iter()
        .map(|f| f.parse::<Filter>())
        .collect::<Result<Vec<_>, _>>()?;
    let sort = args.sort.as_deref().map(str::parse::<Sort>).transpose()?;
    let rows = tektra_cache::entries(&scan, args.revisions, &filters, sort, SystemTime::now());
    if args.json {
        let value = serde_json::json!({
            "root": scan.root,
            "size": scan.size,
            "rows": rows.iter().map(|e| serde_json::json!({
                "id": e.repo.cache_id(),
                "repo_id": e.repo.id,
                "repo_type": e.repo.kind,
                "revision": e.revision.map(|r| &r.commit),
                "size": e.size(),
                "files": e.revision.map_or(e.repo.files, |r| r.files.len()),
                "last_accessed": secs(e.repo.accessed),
                "last_modified": secs(e.modified()),
                "last_used": secs(e.repo.last_used()),
                "refs": e.refs(),
            })).collect::<Vec<_>>(),
            "incomplete": scan.incomplete,
            "problems": scan.problems,
        });
        println!("{value}");
        return Ok(0);
    }
    let mut table: Vec<Vec<String>> = Vec::new();
    if args.revisions {
        table.push(
            ["ID", "REVISION", "SIZE", "LAST_MODIFIED", "REFS"]
                .map(String::from)
                .to_vec(),
        );
        for e in &rows {
            let r = e.revision.map_or("", |r| r.commit.as_str());
            table.push(vec![
                e.repo.cache_id(),
                r.to_string(),
                format_size(e.size()),
                ago(e.modified()),
                e.refs().join(" "),
            ]);
        }
    } else {
        table.push(
            ["ID", "SIZE", "LAST_ACCESSED", "LAST_MODIFIED", "REFS"]
                .map(String::from)
                .to_vec(),
        );
        for e in &rows {
            table.push(vec![
                e.repo.cache_id(),
                format_size(e.size()),
                ago(e.repo.accessed),
                ago(e.modified()),
                e.refs().join(" "),
            ]);
        }
    }
    print_table(&table, 1 + usize::from(args.revisions));
    let total = if filters.is_empty() {
        scan.size
    } else {
        rows.iter().map(tektra_cache::Entry::size).sum()
    };
    let repos = rows
        .iter()
        .map(|e| e.repo.cache_id())
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    println!("\nFound {repos} repo(s), {} on disk.", format_size(total));
    if !scan.incomplete.is_empty() {
        println!("\n{} incomplete download(s):", scan.incomplete.len());
        for inc in &scan.incomplete {
            println!(
                "  {}  {}  last written {}",
                inc.path.display(),
                format_size(inc.size),
                ago(inc.modified)
            );
        }
    }
    warn_problems(&scan);
    Ok(0)
}

fn secs(t: SystemTime) -> u64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Left-aligned columns, except `right` (sizes), two spaces apart.
fn print_table(rows: &[Vec<String>], right: usize) {
    let cols = rows.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..cols)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = std::io::stdout().lock();
    for row in rows {
        let line: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(c, cell)| {
                if c == right {
                    format!("{cell:>w$}", w = widths[c])
                } else {
                    format!("{cell:<w$}", w = widths[c])
                }
            })
            .collect();
        let _ = writeln!(out, "{}", line.join("  ").trim_end());
    }
}

fn targets(list: &[String]) -> Result<Vec<Target>, CacheError> {
    list.iter().map(|t| t.parse()).collect()
}

async fn verify(root: &std::path::Path, args: VerifyArgs) -> Result<i32, CacheError> {
    let scan = tektra_cache::scan(root)?;
    let targets = targets(&args.targets)?;
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from));
    let display = Display::start(args.output.mode());
    let cancel = cancel_on_ctrl_c();
    let reporter = display.reporter();
    let fix = args.fix;
    let report = tokio::task::spawn_blocking(move || {
        tektra_cache::verify(&scan, &targets, threads, fix, reporter, &cancel)
    })
    .await
    .map_err(|e| CacheError::Io {
        path: root.to_path_buf(),
        source: std::io::Error::other(e.to_string()),
    })?;
    display.finish().await;
    let report = report?;
    if args.output.json {
        println!("{}", serde_json::to_string(&report).unwrap_or_default());
    } else {
        #[allow(clippy::cast_precision_loss)]
        let rate = report.bytes as f64 / report.secs.max(1e-9) / 1e6;
        println!(
            "Checked {} file(s), {} in {:.2} s ({rate:.0} MB/s, {} thread(s)).",
            report.blobs.len(),
            format_size(report.bytes),
            report.secs,
            report.threads
        );
        for b in report.bad() {
            let what = match &b.verdict {
                tektra_cache::Verdict::Mismatch {
                    algorithm, actual, ..
                } => {
                    format!("{algorithm} is {actual}")
                }
                tektra_cache::Verdict::Unreadable { reason } => reason.clone(),
                _ => String::new(),
            };
            let links: Vec<String> = b.links.iter().map(|l| l.display().to_string()).collect();
            println!(
                "MISMATCH {}: {} ({what}){}\n  {}",
                b.repo,
                b.blob.display(),
                if b.removed { ", removed" } else { "" },
                links.join("\n  ")
            );
        }
        let unverifiable = report
            .blobs
            .iter()
            .filter(|b| b.verdict == tektra_cache::Verdict::Unverifiable)
            .count();
        if unverifiable > 0 {
            println!("{unverifiable} file(s) have names that are not content hashes: size only.");
        }
    }
    Ok(i32::from(report.bad().next().is_some()))
}

fn show_plan(plan: &RemovalPlan) {
    for r in &plan.revisions {
        let refs = if r.refs.is_empty() {
            "(detached)".to_string()
        } else {
            r.refs.join(" ")
        };
        println!("  {} {} {refs} {}", r.repo, r.commit, format_size(r.size));
    }
    if !plan.incomplete.is_empty() {
        println!("  {} incomplete download(s)", plan.incomplete.len());
    }
    let orphans = plan.blobs.len();
    println!(
        "{} revision(s), {orphans} blob(s) and {} partial file(s): {} freed",
        plan.revisions.len(),
        plan.incomplete.len(),
        format_size(plan.freed)
    );
}

/// Carries out `plan` unless dry, after asking when not `yes`.
fn carry_out(
    root: &std::path::Path,
    plan: &RemovalPlan,
    dry: bool,
    yes: bool,
) -> Result<i32, CacheError> {
    show_plan(plan);
    if dry || plan.is_empty() {
        if dry {
            println!("Dry run: nothing removed.");
        }
        return Ok(0);
    }
    if !yes {
        if !std::io::stdin().is_terminal() {
            eprintln!("error: not removing without --yes (stdin is not a terminal to ask on)");
            return Ok(2);
        }
        eprint!("Remove? [y/N] ");
        let mut answer = String::new();
        let _ = std::io::stdin().read_line(&mut answer);
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            println!("Nothing removed.");
            return Ok(0);
        }
    }
    let removed = tektra_cache::execute(root, plan)?;
    println!(
        "Removed {} revision(s) and {} file(s), {} freed.",
        removed.revisions,
        removed.files,
        format_size(removed.freed)
    );
    Ok(0)
}

fn remove(root: &std::path::Path, args: &RmArgs) -> Result<i32, CacheError> {
    let scan = tektra_cache::scan(root)?;
    warn_problems(&scan);
    let plan = tektra_cache::plan_remove(&scan, &targets(&args.targets)?)?;
    carry_out(root, &plan, args.dry_run, args.yes)
}

fn prune(root: &std::path::Path, args: &PruneArgs) -> Result<i32, CacheError> {
    let limits = PruneLimits {
        max_size: args
            .max_size
            .as_deref()
            .map(tektra_cache::parse_size)
            .transpose()?,
        keep_free: args
            .keep_free
            .as_deref()
            .map(tektra_cache::parse_size)
            .transpose()?,
        older_than: args
            .older_than
            .as_deref()
            .map(tektra_cache::parse_duration)
            .transpose()?
            .map(Duration::from_secs),
    };
    let scan = tektra_cache::scan(root)?;
    warn_problems(&scan);
    let free = hf_hub::cache::available_space(root);
    let plan = tektra_cache::plan_prune(&scan, &limits, &[], free, SystemTime::now())?;
    carry_out(root, &plan, args.dry_run, args.yes)
}
