//! Download benchmark (release build): a 1 GiB file from `tektra serve` on
//! loopback, fetched by `tektra download`, by `tektra download` with
//! syncing off (`TEKTRA_HUB_FSYNC=0`, to show what durability costs), by
//! `tektra.download` from Python (the bindings, release build), by
//! upstream hf-hub 0.4.3's tokio API with `high()`, and by Python's
//! huggingface_hub, in the same run, once with every connection capped at
//! 50 MB/s and once uncapped. Each client is its own process; the kernel's
//! accounting gives its CPU time and peak RSS.
//!
//! Run with `scripts/bench download` (which builds the three clients).
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use tektra_bench_support::history::{self, Metric};
use tektra_bench_support::{Cost, Served, data_dir, fill_random, run};

const SIZE: u64 = 1 << 30;
const CAP: u64 = 50_000_000;
const REPO: &str = "bench/big";
const FILE: &str = "model.bin";
/// `tektra download` without syncing: the price of durability is the
/// difference to the `tektra` row.
const NO_FSYNC: &str = "tektra, no fsync";
/// `tektra.download` from Python (bindings/python, a release build that
/// `scripts/bench download` installs into the test venv).
const PYTHON_BINDING: &str = "tektra (Python)";

struct Paths {
    tektra: PathBuf,
    upstream: PathBuf,
    python: PathBuf,
    data: PathBuf,
}

fn paths() -> Result<Paths, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let dir = exe.parent().ok_or("no exe dir")?.to_path_buf();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let data = data_dir();
    // The upstream client is a project of its own: its binary is beside
    // ours when CARGO_TARGET_DIR is set (CI), else under its own target/.
    let upstream = [
        dir.join("upstream-hf-hub-bench"),
        root.join("benches/upstream-hf-hub/target/release/upstream-hf-hub-bench"),
    ]
    .into_iter()
    .find(|p| p.is_file())
    .unwrap_or_else(|| root.join("benches/upstream-hf-hub/target/release/upstream-hf-hub-bench"));
    Ok(Paths {
        tektra: dir.join("tektra"),
        upstream,
        python: data.join("venv/bin/python"),
        data: data.join("bench/download"),
    })
}

/// The 1 GiB file: pseudo-random so nothing compresses, made once.
fn ensure_file(repos: &Path) -> Result<(), String> {
    let path = repos.join(REPO).join(FILE);
    if std::fs::metadata(&path).is_ok_and(|m| m.len() == SIZE) {
        return Ok(());
    }
    std::fs::create_dir_all(path.parent().ok_or("no parent")?).map_err(|e| e.to_string())?;
    let mut out = std::io::BufWriter::new(std::fs::File::create(&path).map_err(|e| e.to_string())?);
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    let mut block = vec![0u8; 1 << 20];
    for _ in 0..SIZE >> 20 {
        fill_random(&mut x, &mut block);
        out.write_all(&block).map_err(|e| e.to_string())?;
    }
    out.flush().map_err(|e| e.to_string())
}

/// Sets the server's per-connection cap through its control endpoint.
fn set_cap(server: &Served, cap: Option<u64>) -> Result<(), String> {
    let body = match cap {
        Some(c) => format!("{{\"rate_limit\": {c}}}"),
        None => "{}".to_string(),
    };
    server.control("POST", "/_tektra/faults", &body).map(drop)
}

fn client(p: &Paths, which: &str, endpoint: &str, cache: &Path) -> Command {
    let mut cmd = match which {
        "tektra" | NO_FSYNC => {
            let mut c = Command::new(&p.tektra);
            c.args(["download", REPO, FILE, "--quiet", "--cache-dir"])
                .arg(cache);
            // Synced (the default) unless this row measures without it.
            c.env(
                "TEKTRA_HUB_FSYNC",
                if which == NO_FSYNC { "0" } else { "1" },
            );
            c
        }
        PYTHON_BINDING => {
            let mut c = Command::new(&p.python);
            c.arg("-c").arg(format!(
                "import tektra\nprint(tektra.download('{REPO}', files=['{FILE}'], cache_dir={cache:?}))"
            ));
            c.env("TEKTRA_HUB_FSYNC", "1");
            c
        }
        "hf-hub 0.4.3" => {
            let mut c = Command::new(&p.upstream);
            c.arg(endpoint).arg(cache).arg(REPO).arg(FILE);
            c
        }
        _ => {
            let mut c = Command::new(&p.python);
            c.arg("-c").arg(format!(
                "from huggingface_hub import hf_hub_download\nprint(hf_hub_download('{REPO}', '{FILE}', cache_dir={cache:?}))"
            ));
            c
        }
    };
    cmd.env("HF_ENDPOINT", endpoint)
        .env("HF_HUB_DISABLE_XET", "1")
        .env("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        .env("HF_HUB_DISABLE_TELEMETRY", "1")
        .env_remove("HF_TOKEN");
    cmd
}

fn main() {
    if let Err(e) = bench() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn bench() -> Result<(), String> {
    let p = paths()?;
    for (what, path) in [
        ("tektra", &p.tektra),
        ("upstream client", &p.upstream),
        ("venv python", &p.python),
    ] {
        if !path.is_file() {
            return Err(format!(
                "{what} missing at {}: run scripts/bench download",
                path.display()
            ));
        }
    }
    let repos = p.data.join("repos");
    ensure_file(&repos)?;
    let server = Served::start(&p.tektra, &[], &repos)?;
    run_all(&p, &server)
}

fn run_all(p: &Paths, server: &Served) -> Result<(), String> {
    let tools = [
        "tektra",
        NO_FSYNC,
        PYTHON_BINDING,
        "hf-hub 0.4.3",
        "huggingface_hub",
    ];
    let mut results: Vec<(&str, &str, Cost)> = Vec::new();
    for (mode, cap) in [
        ("capped 50 MB/s per connection", Some(CAP)),
        ("uncapped", None),
    ] {
        set_cap(server, cap)?;
        for tool in tools {
            let cache = p.data.join("cache");
            let _ = std::fs::remove_dir_all(&cache);
            let (cost, stdout) = run(&mut client(p, tool, &server.endpoint, &cache))?;
            let file = PathBuf::from(stdout.trim());
            let size = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
            if size != SIZE {
                return Err(format!("{tool} left {size} bytes at {}", file.display()));
            }
            eprintln!("{mode:32} {tool:17} {:6.2} s", cost.secs);
            results.push((mode, tool, cost));
        }
    }
    let _ = std::fs::remove_dir_all(p.data.join("cache"));
    report(&results);
    Ok(())
}

#[allow(clippy::cast_precision_loss)]
fn report(results: &[(&str, &str, Cost)]) {
    println!("\n1 GiB from tektra serve on loopback, each client in its own process");
    println!(
        "{:32} {:17} {:>8} {:>10} {:>8} {:>9} {:>12}",
        "mode", "client", "secs", "MB/s", "CPU s", "peak RSS", "tektra is"
    );
    for (mode, tool, cost) in results {
        let ours = results
            .iter()
            .find(|(m, t, _)| m == mode && *t == "tektra")
            .map_or(cost.secs, |(_, _, c)| c.secs);
        println!(
            "{mode:32} {tool:17} {:8.2} {:10.0} {:8.2} {:7.1}MB {:>11.2}x",
            cost.secs,
            SIZE as f64 / cost.secs / 1e6,
            cost.cpu_secs,
            cost.peak_rss_mb,
            cost.secs / ours
        );
    }
    let get = |mode: &str, tool: &str| {
        results
            .iter()
            .find(|(m, t, _)| m.starts_with(mode) && *t == tool)
            .map(|(_, _, c)| *c)
    };
    if let (Some(ours), Some(up), Some(py), Some(fast)) = (
        get("capped", "tektra"),
        get("capped", "hf-hub 0.4.3"),
        get("capped", "huggingface_hub"),
        get("uncapped", "tektra"),
    ) {
        let verdict = |ok: bool| if ok { "PASS" } else { "MISS" };
        let vs_up = up.secs / ours.secs;
        let vs_py = py.secs / ours.secs;
        let rate = SIZE as f64 / fast.secs / 1e9;
        let rss = results
            .iter()
            .filter(|(_, t, _)| *t == "tektra")
            .map(|(_, _, c)| c.peak_rss_mb)
            .fold(0.0, f64::max);
        println!("\ntargets");
        println!(
            "  capped: >= 1.5x upstream hf-hub      {vs_up:6.2}x  {}",
            verdict(vs_up >= 1.5)
        );
        println!(
            "  capped: >= 3x huggingface_hub        {vs_py:6.2}x  {}",
            verdict(vs_py >= 3.0)
        );
        println!(
            "  uncapped: >= 1 GB/s, verified        {rate:6.2} GB/s  {}",
            verdict(rate >= 1.0)
        );
        println!(
            "  peak RSS < 40 MB                     {rss:6.1} MB  {}",
            verdict(rss < 40.0)
        );
        let mut metrics = vec![
            Metric::ratio("capped_vs_hf_hub", vs_up),
            Metric::ratio("capped_vs_huggingface_hub", vs_py),
            Metric::value("uncapped_rate", rate, "GB/s"),
            Metric::value("peak_rss", rss, "MB"),
        ];
        if let (Some(binding), Some(binding_fast)) = (
            get("capped", PYTHON_BINDING),
            get("uncapped", PYTHON_BINDING),
        ) {
            let vs_cli = ours.secs / binding.secs;
            let vs_cli_fast = fast.secs / binding_fast.secs;
            let vs_hf = py.secs / binding.secs;
            println!(
                "  Python binding, capped: >= 0.95x the CLI  {vs_cli:6.2}x  {} (uncapped {vs_cli_fast:.2}x)",
                verdict(vs_cli >= 0.95)
            );
            println!(
                "  Python binding, capped: >= 5x huggingface_hub  {vs_hf:6.2}x  {}",
                verdict(vs_hf >= 5.0)
            );
            metrics.push(Metric::ratio("python_binding_vs_cli", vs_cli));
            metrics.push(Metric::ratio("python_binding_vs_huggingface_hub", vs_hf));
        }
        for line in history::record("download", metrics) {
            println!("{line}");
        }
    }
    for mode in ["capped", "uncapped"] {
        if let (Some(synced), Some(unsynced)) = (get(mode, "tektra"), get(mode, NO_FSYNC)) {
            println!(
                "  {mode}: syncing costs {:+.2} s ({:+.0}%)",
                synced.secs - unsynced.secs,
                (synced.secs / unsynced.secs - 1.0) * 100.0
            );
        }
    }
}
