//! A download from the shared object store against a download from
//! `tektra serve` on the same machine.
//!
//! One 512 MiB file, held three ways: in a folder `tektra serve` (the hub
//! server, on loopback) serves; in an S3 bucket (s3s-fs on loopback, laid
//! out as a mirror leaves it); in a `file://` store. Each is downloaded by
//! `tektra download` processes (release build, syncing off: the page
//! cache, not the disk, is compared), median of three, into a new HF_HOME
//! each time. Prints the speed ratios against `tektra serve` (target
//! >= 0.8x) and appends them to the benchmark history.

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    clippy::cast_precision_loss
)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use hf_hub::ids::{RepoPath, RepoRef, Revision};
use hf_hub::resolve::TreeFile;
use sha2::Digest;
use tektra_bench_support::history::{self, Metric};
use tektra_bench_support::{fill_random, median};
use tektra_hub_server::{Server, Store};
use tektra_store::{BlobStore, StoreOptions, StoredListing};
use tektra_testdata::{ACCESS_KEY, S3Server, SECRET_KEY};

const SIZE: usize = 512 << 20;
const COMMIT: &str = "5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed";

fn tektra() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    exe.with_file_name("tektra")
}

/// Seconds for `tektra download org/model ARGS` into a new HF_HOME.
fn download(extra: &[&str], env: &[(&str, String)], scratch: &Path) -> Result<f64, String> {
    let home = scratch.join("client");
    let _ = std::fs::remove_dir_all(&home);
    std::fs::create_dir_all(&home).map_err(|e| e.to_string())?;
    let started = Instant::now();
    let out = Command::new(tektra())
        .args(["download", "org/model", "-q"])
        .args(extra)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HF_HOME", &home)
        .env("TEKTRA_HUB_FSYNC", "0")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .map_err(|e| format!("running {}: {e}", tektra().display()))?;
    let took = started.elapsed().as_secs_f64();
    if !out.status.success() {
        return Err(format!(
            "tektra download {extra:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(took)
}

fn three(extra: &[&str], env: &[(&str, String)], scratch: &Path) -> Result<f64, String> {
    let runs = (0..3)
        .map(|_| download(extra, env, scratch))
        .collect::<Result<Vec<f64>, String>>()?;
    Ok(median(runs))
}

/// Puts the file and a listing of it into `store`, as a mirror would.
async fn fill(store: &BlobStore, weights: &Path, etag: &str) -> Result<(), String> {
    store
        .put_blob(etag, weights)
        .await
        .map_err(|e| e.to_string())?;
    let file = TreeFile {
        path: RepoPath::new("weights.bin").map_err(|e| e.to_string())?,
        size: SIZE as u64,
        etag: etag.to_string(),
        blob_id: "0".repeat(40),
        lfs: true,
        xet_hash: None,
    };
    let listing = StoredListing {
        commit: COMMIT.into(),
        files: vec![file],
    };
    let repo = RepoRef::model("org/model").map_err(|e| e.to_string())?;
    store
        .put_listing(&repo, &Revision::main(), &listing)
        .await
        .map_err(|e| e.to_string())
}

fn mib_s(secs: f64) -> f64 {
    SIZE as f64 / secs / f64::from(1 << 20)
}

async fn run() -> Result<(), String> {
    let scratch = tektra_bench_support::data_dir().join("bench-store");
    let _ = std::fs::remove_dir_all(&scratch);
    let repos = scratch.join("repos");
    let weights = repos.join("org/model/weights.bin");
    std::fs::create_dir_all(weights.parent().unwrap_or(&repos)).map_err(|e| e.to_string())?;
    let mut data = vec![0u8; SIZE];
    let mut seed = 0x5707e_u64;
    fill_random(&mut seed, &mut data);
    let etag = hex::encode(sha2::Sha256::digest(&data));
    std::fs::write(&weights, &data).map_err(|e| e.to_string())?;
    drop(data);

    let server = Server::builder(Store::open(&repos).map_err(|e| e.to_string())?)
        .start()
        .await
        .map_err(|e| e.to_string())?;
    // Another S3 server (scripts/garage-cluster runs this against Garage):
    // its endpoint and bucket, keys in the AWS variables.
    let external = std::env::var("TEKTRA_BENCH_S3_ENDPOINT").ok();
    let (s3, endpoint, bucket_name, keys, server_name) = match &external {
        Some(endpoint) => (
            None,
            endpoint.clone(),
            std::env::var("TEKTRA_BENCH_S3_BUCKET").unwrap_or_else(|_| "models".into()),
            (
                std::env::var("AWS_ACCESS_KEY_ID").map_err(|_| "AWS_ACCESS_KEY_ID unset")?,
                std::env::var("AWS_SECRET_ACCESS_KEY")
                    .map_err(|_| "AWS_SECRET_ACCESS_KEY unset")?,
            ),
            std::env::var("TEKTRA_BENCH_S3_NAME").unwrap_or_else(|_| "external".into()),
        ),
        None => {
            let s3 = S3Server::start("127.0.0.1", &scratch.join("s3"), "bench");
            let endpoint = s3.endpoint();
            let keys = (ACCESS_KEY.to_string(), SECRET_KEY.to_string());
            (
                Some(s3),
                endpoint,
                "bench".to_string(),
                keys,
                "s3s-fs".to_string(),
            )
        }
    };
    let s3_url = format!("s3://{bucket_name}/hub");
    let mut options = StoreOptions::new(&s3_url).endpoint(&endpoint);
    options.credentials = Some(keys.clone());
    let bucket = BlobStore::open(&options).map_err(|e| e.to_string())?;
    fill(&bucket, &weights, &etag).await?;
    let folder_url = format!("file://{}", scratch.join("folder").display());
    let folder = BlobStore::open(&StoreOptions::new(&folder_url)).map_err(|e| e.to_string())?;
    fill(&folder, &weights, &etag).await?;

    let aws = vec![
        ("AWS_ACCESS_KEY_ID", keys.0),
        ("AWS_SECRET_ACCESS_KEY", keys.1),
        ("AWS_ENDPOINT_URL", endpoint),
        (
            "AWS_REGION",
            std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".into()),
        ),
    ];
    let hub = vec![("HF_ENDPOINT", server.url())];
    let clients = scratch.join("clients");
    let (served, from_s3, from_folder) = tokio::task::spawn_blocking(move || {
        // Alternated, so drift in the machine's speed falls on all three.
        let mut t = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..3 {
            t.0.push(three(&[], &hub, &clients)?);
            t.1.push(three(&["--source", &s3_url], &aws, &clients)?);
            t.2.push(three(&["--source", &folder_url], &[], &clients)?);
        }
        Ok::<_, String>((median(t.0), median(t.1), median(t.2)))
    })
    .await
    .map_err(|e| e.to_string())??;
    let s3_ratio = served / from_s3;
    let folder_ratio = served / from_folder;
    let verdict = |r: f64| if r >= 0.8 { "PASS" } else { "MISS" };
    println!(
        "store benchmark: 512 MiB, `tektra download` processes, syncing off, {} cores",
        std::thread::available_parallelism().map_or(0, usize::from)
    );
    println!(
        "  from tektra serve:              {served:.2} s, {:.0} MiB/s",
        mib_s(served)
    );
    println!(
        "  --source s3:// ({server_name}): {from_s3:.2} s, {:.0} MiB/s = {s3_ratio:.2}x of serve (target >= 0.80x) {}",
        mib_s(from_s3),
        verdict(s3_ratio)
    );
    println!(
        "  --source file:// (folder store): {from_folder:.2} s, {:.0} MiB/s = {folder_ratio:.2}x of serve (target >= 0.80x) {}",
        mib_s(from_folder),
        verdict(folder_ratio)
    );
    for line in history::record(
        if external.is_some() {
            "store-external"
        } else {
            "store"
        },
        vec![
            Metric::ratio("s3_vs_serve", s3_ratio),
            Metric::ratio("folder_vs_serve", folder_ratio),
            Metric::value("serve_mib_s", mib_s(served), "MiB/s"),
        ],
    ) {
        println!("{line}");
    }
    drop(s3);
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(())
}

#[tokio::main]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("store benchmark: {e}");
        std::process::exit(1);
    }
}
