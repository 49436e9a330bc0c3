//! `scripts/bench cache`: `tektra cache ls` on a cache of 10,000 files
//! (100 repos x 100 files) against huggingface_hub's `hf cache ls` on the
//! same cache, and `tektra cache verify` of 1 GiB of page-cached blobs
//! against sha256 on one core (this process, same run) times the threads
//! verify used. Release build; every tool in its own process.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use sha2::{Digest, Sha256};
use tektra_bench_support::history::{self, Metric};
use tektra_bench_support::{data_dir, fill_random, median, run};

const REPOS: usize = 100;
const FILES: usize = 100;
const VERIFY_FILES: u64 = 8;
const VERIFY_SIZE: u64 = 128 << 20;
const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

fn link(repo_dir: &Path, name: &str, data: &[u8]) -> Result<(), String> {
    let etag = hex::encode(Sha256::digest(data));
    let blobs = repo_dir.join("blobs");
    let snap = repo_dir.join("snapshots").join(COMMIT);
    std::fs::create_dir_all(&blobs).map_err(|e| e.to_string())?;
    std::fs::create_dir_all(&snap).map_err(|e| e.to_string())?;
    std::fs::write(blobs.join(&etag), data).map_err(|e| e.to_string())?;
    std::os::unix::fs::symlink(format!("../../blobs/{etag}"), snap.join(name))
        .map_err(|e| e.to_string())?;
    let refs = repo_dir.join("refs");
    std::fs::create_dir_all(&refs).map_err(|e| e.to_string())?;
    std::fs::write(refs.join("main"), COMMIT).map_err(|e| e.to_string())
}

/// 100 repos of 100 small files each, made once.
fn ensure_small(root: &Path) -> Result<(), String> {
    let done = root.join(".complete");
    if done.is_file() {
        return Ok(());
    }
    let _ = std::fs::remove_dir_all(root);
    for r in 0..REPOS {
        let dir = root.join(format!("models--bench--repo{r:03}"));
        for f in 0..FILES {
            link(
                &dir,
                &format!("file{f:03}.json"),
                format!("{{\"repo\":{r},\"file\":{f}}}").as_bytes(),
            )?;
        }
    }
    std::fs::write(done, b"").map_err(|e| e.to_string())
}

/// 8 blobs of 128 MiB (pseudo-random), made once.
fn ensure_big(root: &Path) -> Result<(), String> {
    let done = root.join(".complete");
    if done.is_file() {
        return Ok(());
    }
    let _ = std::fs::remove_dir_all(root);
    let dir = root.join("models--bench--big");
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut data = vec![0u8; usize::try_from(VERIFY_SIZE).map_err(|e| e.to_string())?];
    for f in 0..VERIFY_FILES {
        fill_random(&mut x, &mut data);
        link(&dir, &format!("shard{f}.safetensors"), &data)?;
    }
    std::fs::write(done, b"").map_err(|e| e.to_string())
}

fn tektra() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    exe.with_file_name("tektra")
}

fn time_runs(mut cmd: impl FnMut() -> Command, runs: usize) -> Result<f64, String> {
    let mut secs = Vec::new();
    for _ in 0..runs {
        let (cost, _) = run(&mut cmd())?;
        secs.push(cost.secs);
    }
    Ok(median(secs))
}

fn bench() -> Result<(), String> {
    let data = data_dir().join("bench/cache");
    let small = data.join("small");
    let big = data.join("big");
    ensure_small(&small)?;
    ensure_big(&big)?;
    let hf = data_dir().join("venv/bin/hf");
    let ours = time_runs(
        || {
            let mut c = Command::new(tektra());
            c.args(["cache", "ls", "--cache-dir"]).arg(&small);
            c
        },
        5,
    )?;
    let theirs = time_runs(
        || {
            let mut c = Command::new(&hf);
            c.args(["cache", "ls", "--cache-dir"]).arg(&small);
            c.env("HF_HUB_DISABLE_TELEMETRY", "1");
            c
        },
        3,
    )?;
    // sha256 on one core: 256 MiB through one hasher from a 1 MiB buffer
    // that stays in cache, the way verify feeds it (1 MiB reads).
    let mut x = 7u64;
    let mut buf = vec![0u8; 1 << 20];
    fill_random(&mut x, &mut buf);
    let mut rates = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let mut h = Sha256::new();
        for _ in 0..256 {
            h.update(&buf);
        }
        std::hint::black_box(h.finalize());
        #[allow(clippy::cast_precision_loss)]
        rates.push((256 * buf.len()) as f64 / t.elapsed().as_secs_f64());
    }
    let one_core = median(rates);
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    // Page-cached: read once before timing.
    let _ = Command::new("cat")
        .args(
            std::fs::read_dir(big.join("models--bench--big/blobs"))
                .map_err(|e| e.to_string())?
                .flatten()
                .map(|e| e.path()),
        )
        .stdout(std::process::Stdio::null())
        .status();
    let verify = time_runs(
        || {
            let mut c = Command::new(tektra());
            c.args([
                "cache",
                "verify",
                "--quiet",
                "--threads",
                &threads.to_string(),
                "--cache-dir",
            ])
            .arg(&big);
            c
        },
        3,
    )?;
    #[allow(clippy::cast_precision_loss)]
    let verify_rate = (VERIFY_FILES * VERIFY_SIZE) as f64 / verify;
    #[allow(clippy::cast_precision_loss)]
    let ceiling = one_core * threads as f64;
    let verdict = |ok: bool| if ok { "PASS" } else { "MISS" };
    println!(
        "cache: {} files in {REPOS} repos; verify {VERIFY_FILES} x {} MiB page-cached blobs",
        REPOS * FILES,
        VERIFY_SIZE >> 20
    );
    println!(
        "  tektra cache ls           {:7.3} s  (target < 0.5 s) {}",
        ours,
        verdict(ours < 0.5)
    );
    println!(
        "  hf cache ls               {:7.3} s  tektra is {:.1}x faster",
        theirs,
        theirs / ours
    );
    println!(
        "  tektra cache verify       {:7.0} MB/s on {threads} thread(s); sha256 on one core {:.0} MB/s x {threads} = {:.0}: {:.2}x (target >= 0.9x) {}",
        verify_rate / 1e6,
        one_core / 1e6,
        ceiling / 1e6,
        verify_rate / ceiling,
        verdict(verify_rate / ceiling >= 0.9)
    );
    for line in history::record(
        "cache",
        vec![
            Metric::cost("ls_10k_secs", ours, "s"),
            Metric::ratio("ls_vs_hf_cache_ls", theirs / ours),
            Metric::ratio("verify_vs_sha256_ceiling", verify_rate / ceiling),
        ],
    ) {
        println!("{line}");
    }
    let _ = std::io::stdout().flush();
    Ok(())
}

fn main() {
    if let Err(e) = bench() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
