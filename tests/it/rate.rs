//! Bandwidth limits: `tektra download --max-rate`, and a server's total
//! and per-client caps, with clients on different loopback addresses.

use std::process::Command;
use std::time::{Duration, Instant};

use tektra_hub_server::{RateLimits, Server};

use crate::common::*;

#[tokio::test(flavor = "multi_thread")]
async fn a_download_keeps_to_its_max_rate() {
    let fx = Fixture::new().await;
    let started = Instant::now();
    let out = fx
        .tektra(&[
            "download",
            "org/model",
            "weights.bin",
            "-q",
            "--max-rate",
            "32MiB/s",
        ])
        .output()
        .unwrap();
    let took = started.elapsed();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(std::fs::read(stdout(&out)).unwrap() == fx.source("org/model/weights.bin"));
    #[allow(clippy::cast_precision_loss)]
    let rate = BIG as f64 / took.as_secs_f64() / (1 << 20) as f64;
    println!("48 MiB at --max-rate 32MiB/s: {took:.2?}, {rate:.1} MiB/s");
    // 1.5 s at the rate, less the burst allowance.
    assert!(
        took >= Duration::from_millis(1300),
        "the cap did not hold: {took:?}"
    );
    let out = fx
        .tektra(&["download", "org/model", "--max-rate", "fast"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("not a rate"), "{}", stderr(&out));
}

/// curl from `source` (a loopback address) for `url`, following the CDN
/// redirect: the bytes and how long it took.
fn fetch(source: &str, url: &str) -> (Vec<u8>, Duration) {
    let started = Instant::now();
    let out = Command::new("curl")
        .args(["-sSfL", "--max-time", "60", "--interface", source, url])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (out.stdout, started.elapsed())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_keeps_to_its_total_and_per_client_rates() {
    let repos = tempfile::tempdir().unwrap();
    let data = bytes(16 << 20, 21);
    put(repos.path(), "org/big/data.bin", &data);
    let fx = Fixture::serve(repos, |store| {
        Server::builder(store).max_rate(RateLimits {
            total: Some(12 << 20),
            per_client: Some(8 << 20),
        })
    })
    .await;
    let url = format!("{}/org/big/resolve/main/data.bin", fx.server.url());
    // One client alone: its own cap (8 MiB/s), under the total.
    let u = url.clone();
    let (got, alone) = tokio::task::spawn_blocking(move || fetch("127.0.0.2", &u))
        .await
        .unwrap();
    assert!(got == data);
    // Two clients at once: together the total (12 MiB/s).
    let (u2, u3) = (url.clone(), url.clone());
    let started = Instant::now();
    let a = tokio::task::spawn_blocking(move || fetch("127.0.0.2", &u2));
    let b = tokio::task::spawn_blocking(move || fetch("127.0.0.3", &u3));
    let ((got_a, _), (got_b, _)) = (a.await.unwrap(), b.await.unwrap());
    let together = started.elapsed();
    assert!(got_a == data && got_b == data);
    #[allow(clippy::cast_precision_loss)]
    let mib = |bytes: usize, d: Duration| bytes as f64 / d.as_secs_f64() / (1 << 20) as f64;
    println!(
        "one client: {alone:.2?} ({:.1} MiB/s, cap 8); two at once: {together:.2?} ({:.1} MiB/s in all, cap 12)",
        mib(data.len(), alone),
        mib(2 * data.len(), together)
    );
    // 2 s and 2.67 s at the caps, less the burst allowances.
    assert!(
        alone >= Duration::from_millis(1700),
        "per-client cap: {alone:?}"
    );
    assert!(
        together >= Duration::from_millis(2300),
        "total cap: {together:?}"
    );
}
