//! Four clients through a pull-through mirror against one client alone.
//!
//! An upstream Hub (a `tektra-hub-server` on loopback, uncapped) serves a
//! 512 MiB file. Measured, each with `tektra download` processes (release
//! build, syncing off: the page cache, not the disk, is what is compared):
//!
//! - one client alone from the upstream: the link's speed S;
//! - four clients at once through a cold mirror: the bytes the upstream
//!   sent (target: each byte once) and each client's speed;
//! - four clients at once through the warm mirror: each client's speed
//!   against S / 4 (target >= 0.9x: the mirror adds no bottleneck).
//!
//! Prints the ratios and appends them to the benchmark history.

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    clippy::cast_precision_loss
)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tektra_bench_support::history::{self, Metric};
use tektra_bench_support::{fill_random, median};
use tektra_hub_server::{Server, Store};
use tektra_mirror::{Mirror, MirrorOptions};

const SIZE: usize = 512 << 20;

fn tektra() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    exe.with_file_name("tektra")
}

/// `tektra download org/model` from `endpoint` into a new HF_HOME under
/// `scratch`: how long it took.
fn download(endpoint: &str, scratch: &Path) -> Result<Duration, String> {
    let home = tempdir_in(scratch)?;
    let started = Instant::now();
    let out = Command::new(tektra())
        .args(["download", "org/model", "-q"])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HF_HOME", &home)
        .env("HF_ENDPOINT", endpoint)
        .env("TEKTRA_HUB_FSYNC", "0")
        .output()
        .map_err(|e| format!("running {}: {e}", tektra().display()))?;
    let took = started.elapsed();
    if !out.status.success() {
        return Err(format!(
            "tektra download failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let _ = std::fs::remove_dir_all(&home);
    Ok(took)
}

fn tempdir_in(dir: &Path) -> Result<PathBuf, String> {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = dir.join(format!("client-{n}"));
    std::fs::create_dir_all(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(path)
}

/// Four downloads at once from `endpoint`: each one's time.
fn four(endpoint: &str, scratch: &Path) -> Result<Vec<Duration>, String> {
    std::thread::scope(|s| {
        let runs: Vec<_> = (0..4)
            .map(|_| s.spawn(|| download(endpoint, scratch)))
            .collect();
        runs.into_iter()
            .map(|r| {
                r.join()
                    .map_err(|_| "a client thread panicked".to_string())?
            })
            .collect()
    })
}

fn mib_s(secs: f64) -> f64 {
    SIZE as f64 / secs / f64::from(1 << 20)
}

async fn run() -> Result<(), String> {
    let scratch_root = tektra_bench_support::data_dir().join("bench-mirror");
    let _ = std::fs::remove_dir_all(&scratch_root);
    let repos = scratch_root.join("repos");
    let weights = repos.join("org/model/weights.bin");
    std::fs::create_dir_all(weights.parent().unwrap_or(&repos)).map_err(|e| e.to_string())?;
    let mut data = vec![0u8; SIZE];
    let mut seed = 0x5eed_u64;
    fill_random(&mut seed, &mut data);
    std::fs::write(&weights, &data).map_err(|e| e.to_string())?;
    drop(data);
    let clients = scratch_root.join("clients");
    std::fs::create_dir_all(&clients).map_err(|e| e.to_string())?;

    let store = Store::open(&repos).map_err(|e| e.to_string())?;
    let upstream = Server::builder(store)
        .start()
        .await
        .map_err(|e| e.to_string())?;
    let up = upstream.url();
    let options = MirrorOptions::new(&up, scratch_root.join("mirror/hub"));
    let mirror = Mirror::new(options).map_err(|e| e.to_string())?;
    let mirror_server = Server::builder(Store::default())
        .upstream(Arc::new(mirror))
        .start()
        .await
        .map_err(|e| e.to_string())?;
    let via = mirror_server.url();

    let (up2, clients2) = (up.clone(), clients.clone());
    let alone = tokio::task::spawn_blocking(move || {
        (0..3)
            .map(|_| download(&up2, &clients2).map(|d| d.as_secs_f64()))
            .collect::<Result<Vec<f64>, String>>()
    })
    .await
    .map_err(|e| e.to_string())??;
    let alone = median(alone);
    let link = mib_s(alone);

    let before = upstream.stats().content_bytes;
    let (via2, clients2) = (via.clone(), clients.clone());
    let cold = tokio::task::spawn_blocking(move || four(&via2, &clients2))
        .await
        .map_err(|e| e.to_string())??;
    let sent = upstream.stats().content_bytes - before;
    let (via2, clients2) = (via.clone(), clients.clone());
    let warm = tokio::task::spawn_blocking(move || four(&via2, &clients2))
        .await
        .map_err(|e| e.to_string())??;
    let speeds =
        |runs: &[Duration]| -> Vec<f64> { runs.iter().map(|d| mib_s(d.as_secs_f64())).collect() };
    let (cold_speeds, warm_speeds) = (speeds(&cold), speeds(&warm));
    let share = link / 4.0;
    let worst_warm = warm_speeds.iter().copied().fold(f64::INFINITY, f64::min);
    let ratio = worst_warm / share;
    let once = sent as f64 / SIZE as f64;
    let show = |v: &[f64]| {
        v.iter()
            .map(|s| format!("{s:.0}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!(
        "mirror benchmark: 512 MiB, `tektra download` clients, syncing off, {} cores",
        std::thread::available_parallelism().map_or(0, usize::from)
    );
    println!(
        "  one client alone from the upstream: {alone:.2} s, {link:.0} MiB/s (its share of four: {share:.0} MiB/s)"
    );
    println!(
        "  four clients through a cold mirror: {} MiB/s each; the upstream sent {once:.2}x the file (target 1.00x) {}",
        show(&cold_speeds),
        if (once - 1.0).abs() < 1e-9 {
            "PASS"
        } else {
            "MISS"
        }
    );
    println!(
        "  four clients through the warm mirror: {} MiB/s each; slowest / (alone / 4) = {ratio:.2}x (target >= 0.90x) {}",
        show(&warm_speeds),
        if ratio >= 0.9 { "PASS" } else { "MISS" }
    );
    for line in history::record(
        "mirror",
        vec![
            Metric::ratio("warm_four_vs_alone_share", ratio),
            Metric::value("cold_upstream_bytes_per_file_byte", once, "x"),
            Metric::value("alone_mib_s", link, "MiB/s"),
        ],
    ) {
        println!("{line}");
    }
    let _ = std::fs::remove_dir_all(&scratch_root);
    Ok(())
}

#[tokio::main]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("mirror benchmark: {e}");
        std::process::exit(1);
    }
}
