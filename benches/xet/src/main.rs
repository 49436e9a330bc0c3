//! Xet benchmark (release build): `tektra serve --xet` serves a repo whose
//! `main` holds a 1 GiB file and whose `v2` holds the same file with 5% of
//! its bytes changed (52 scattered 1 MiB regions, as when some tensors of a
//! checkpoint are retrained). `tektra download` fetches `main`, then `v2`
//! into the same cache, once over HTTP (`--no-xet`) and once over Xet
//! (`--use-xet`, with a fresh Xet chunk cache). Each download is its own
//! process: the kernel's accounting gives its CPU time and peak RSS, the
//! server's counters the bytes that crossed the loopback.
//!
//! Run with `scripts/bench xet` (which builds tektra first).
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};
use tektra_bench_support::history::{self, Metric};
use tektra_bench_support::{Cost, Served, data_dir, fill_random, run};

const SIZE: u64 = 1 << 30;
const MIB: u64 = 1 << 20;
/// 5% of 1 GiB in 1 MiB regions.
const CHANGED_REGIONS: u64 = 52;
const REPO: &str = "bench/xet";
const FILE: &str = "model.bin";
const COMMIT_V1: &str = "1111111111111111111111111111111111111111";
const COMMIT_V2: &str = "2222222222222222222222222222222222222222";

struct Paths {
    tektra: PathBuf,
    data: PathBuf,
}

fn paths() -> Result<Paths, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let dir = exe.parent().ok_or("no exe dir")?.to_path_buf();
    let data = data_dir();
    Ok(Paths {
        tektra: dir.join("tektra"),
        data: data.join("bench/xet"),
    })
}

/// Writes one revision into `blobs/` under its sha256 and returns that name.
/// `changed`: one MiB in every 19 (`SIZE / MIB / CHANGED_REGIONS`) is
/// re-randomised, 52 regions, about 5%.
fn write_blob(blobs: &Path, changed: bool) -> Result<String, String> {
    let tmp = blobs.join(if changed { "v2.tmp" } else { "v1.tmp" });
    let mut out = std::io::BufWriter::new(std::fs::File::create(&tmp).map_err(|e| e.to_string())?);
    let mut hash = Sha256::default();
    let mut base: u64 = 0x2545_F491_4F6C_DD1D;
    let mut other: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut block = vec![0u8; MIB as usize];
    let mut spare = vec![0u8; MIB as usize];
    let step = (SIZE / MIB) / CHANGED_REGIONS;
    for i in 0..SIZE / MIB {
        fill_random(&mut base, &mut block);
        let data = if changed && i % step == step / 2 && i / step < CHANGED_REGIONS {
            fill_random(&mut other, &mut spare);
            &spare
        } else {
            &block
        };
        hash.update(data);
        out.write_all(data).map_err(|e| e.to_string())?;
    }
    out.flush().map_err(|e| e.to_string())?;
    let sha = hex::encode(hash.finalize());
    std::fs::rename(&tmp, blobs.join(&sha)).map_err(|e| e.to_string())?;
    Ok(sha)
}

/// A hub cache with the repo at two commits (`main`, `v2`), made once.
fn ensure_repo(root: &Path) -> Result<(), String> {
    let repo = root.join("models--bench--xet");
    let done = repo.join("refs/v2");
    if done.is_file() {
        return Ok(());
    }
    let _ = std::fs::remove_dir_all(&repo);
    let blobs = repo.join("blobs");
    std::fs::create_dir_all(&blobs).map_err(|e| e.to_string())?;
    for (commit, changed, name) in [(COMMIT_V1, false, "main"), (COMMIT_V2, true, "v2")] {
        let sha = write_blob(&blobs, changed)?;
        let snap = repo.join("snapshots").join(commit);
        std::fs::create_dir_all(&snap).map_err(|e| e.to_string())?;
        std::os::unix::fs::symlink(format!("../../blobs/{sha}"), snap.join(FILE))
            .map_err(|e| e.to_string())?;
        std::fs::create_dir_all(repo.join("refs")).map_err(|e| e.to_string())?;
        std::fs::write(repo.join("refs").join(name), commit).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Bytes that crossed the loopback for file content: HTTP bodies plus
/// what the CAS sent (the server's `GET /_tektra/stats` counters).
fn moved(server: &Served) -> Result<u64, String> {
    let body = server.control("GET", "/_tektra/stats", "")?;
    let s: serde_json::Value = serde_json::from_str(&body).map_err(|e| format!("stats: {e}"))?;
    let get = |k: &str| s[k].as_u64().unwrap_or(0);
    Ok(get("content_bytes") + get("xet_cas_bytes"))
}

struct Row {
    transport: &'static str,
    revision: &'static str,
    cost: Cost,
    bytes: u64,
}

fn main() {
    if let Err(e) = bench() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn bench() -> Result<(), String> {
    let p = paths()?;
    if !p.tektra.is_file() {
        return Err(format!(
            "tektra missing at {}: run scripts/bench xet",
            p.tektra.display()
        ));
    }
    let repos = p.data.join("repos");
    eprintln!("making the two revisions (once)...");
    ensure_repo(&repos)?;
    eprintln!("starting tektra serve --xet (uploads both revisions to its CAS)...");
    let server = Served::start(&p.tektra, &["--xet"], &repos)?;
    let result = run_all(&p, &server);
    drop(server);
    let rows = result?;
    report(&rows);
    Ok(())
}

fn run_all(p: &Paths, server: &Served) -> Result<Vec<Row>, String> {
    let mut rows = Vec::new();
    for (transport, flag) in [("HTTP", "--no-xet"), ("Xet", "--use-xet")] {
        // A fresh HF_HOME: no hub cache, no Xet chunk cache.
        let home = p.data.join("home");
        let _ = std::fs::remove_dir_all(&home);
        for revision in ["main", "v2"] {
            let before = moved(server)?;
            let mut cmd = Command::new(&p.tektra);
            cmd.args([
                "download",
                REPO,
                FILE,
                "--quiet",
                flag,
                "--revision",
                revision,
            ])
            .env("HF_HOME", &home)
            .env("HF_ENDPOINT", &server.endpoint)
            .env_remove("HF_HUB_CACHE")
            .env_remove("HF_HUB_DISABLE_XET")
            .env_remove("HF_TOKEN");
            let (cost, stdout) = run(&mut cmd)?;
            let bytes = moved(server)? - before;
            let file = PathBuf::from(stdout.trim());
            let size = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
            if size != SIZE {
                return Err(format!(
                    "{transport} {revision}: {size} bytes at {}",
                    file.display()
                ));
            }
            eprintln!("{transport:5} {revision:5} {:6.2} s", cost.secs);
            rows.push(Row {
                transport,
                revision,
                cost,
                bytes,
            });
        }
        let _ = std::fs::remove_dir_all(&home);
    }
    Ok(rows)
}

#[allow(clippy::cast_precision_loss)]
fn report(rows: &[Row]) {
    println!("\n1 GiB from tektra serve --xet on loopback, then a revision with 5% changed");
    println!(
        "{:6} {:9} {:>8} {:>8} {:>14} {:>8} {:>9}",
        "via", "revision", "secs", "MB/s", "bytes moved", "CPU s", "peak RSS"
    );
    for r in rows {
        println!(
            "{:6} {:9} {:8.2} {:8.0} {:>14} {:8.2} {:7.1}MB",
            r.transport,
            if r.revision == "main" {
                "main"
            } else {
                "v2 (5%)"
            },
            r.cost.secs,
            SIZE as f64 / r.cost.secs / 1e6,
            r.bytes,
            r.cost.cpu_secs,
            r.cost.peak_rss_mb
        );
    }
    // Xet against HTTP from the same server: time and bytes moved, per revision.
    let find = |t: &str, rev: &str| rows.iter().find(|r| r.transport == t && r.revision == rev);
    let mut metrics = Vec::new();
    for rev in ["main", "v2"] {
        if let (Some(x), Some(h)) = (find("Xet", rev), find("HTTP", rev)) {
            metrics.push(Metric::ratio(
                &format!("{rev}_time_vs_http"),
                h.cost.secs / x.cost.secs,
            ));
            metrics.push(Metric::ratio(
                &format!("{rev}_bytes_vs_http"),
                h.bytes as f64 / x.bytes.max(1) as f64,
            ));
            metrics.push(Metric::value(&format!("{rev}_xet_secs"), x.cost.secs, "s"));
        }
    }
    for line in history::record("xet", metrics) {
        println!("{line}");
    }
}
