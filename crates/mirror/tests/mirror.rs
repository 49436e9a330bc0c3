//! The mirror between a real upstream Hub server and real clients (the
//! engine), all on loopback: each byte crosses the upstream link once,
//! every client gets the right bytes, private repos stay private, a bad
//! upstream file never reaches a client whole, and an unreachable
//! upstream leaves what the mirror holds.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hf_hub::{Hub, HubError, HubOptions};
use tektra_hub_server::{ALWAYS, FaultPlan, Kind, RateLimits, Server, Store};
use tektra_mirror::{Mirror, MirrorOptions};

mod common;
use common::{bytes, put, snapshot};

const TOKEN: &str = "hf_mirror_test_token";
const BIG: usize = 48 << 20;

struct Setup {
    repos: tempfile::TempDir,
    upstream: Server,
    mirror_dir: tempfile::TempDir,
    mirror: Arc<Mirror>,
    server: Server,
}

impl Setup {
    /// An upstream serving `org/model` (a config, a 48 MiB file) and
    /// `org/private` (token only), at most `rate` bytes/s in total; a
    /// mirror of it with an empty cache.
    async fn new(rate: Option<u64>, ttl: Duration) -> Setup {
        let repos = tempfile::tempdir().unwrap();
        put(repos.path(), "org/model/config.json", br#"{"a": 1}"#);
        put(repos.path(), "org/model/weights.bin", &bytes(BIG, 1));
        put(
            repos.path(),
            "org/private/model.safetensors",
            &bytes(12 << 20, 2),
        );
        let mut store = Store::open(repos.path()).unwrap();
        store.set_tokens(Kind::Model, "org/private", vec![TOKEN.into()]);
        let upstream = Server::builder(store)
            .max_rate(RateLimits {
                total: rate,
                per_client: None,
            })
            .start()
            .await
            .unwrap();
        let mirror_dir = tempfile::tempdir().unwrap();
        let mut options = MirrorOptions::new(&upstream.url(), mirror_dir.path().join("hub"));
        options.ttl = ttl;
        options.engine.retry.max_attempts = 2;
        options.engine.connect_timeout = Duration::from_secs(1);
        let mirror = Arc::new(Mirror::new(options).unwrap());
        let server = Server::builder(Store::default())
            .upstream(mirror.clone())
            .start()
            .await
            .unwrap();
        Setup {
            repos,
            upstream,
            mirror_dir,
            mirror,
            server,
        }
    }

    fn source(&self, rel: &str) -> Vec<u8> {
        std::fs::read(self.repos.path().join(rel)).unwrap()
    }

    /// A client of the mirror with a cache of its own.
    fn client(&self, dir: &Path, token: Option<&str>) -> Hub {
        let mut options = HubOptions {
            endpoint: self.server.url(),
            cache_dir: dir.to_path_buf(),
            token: token.map(str::to_string),
            ..HubOptions::default()
        };
        options.retry.max_attempts = 2;
        options.retry.base_delay = Duration::from_millis(50);
        options.read_timeout = Duration::from_secs(20);
        Hub::new(options).unwrap()
    }

    /// Blobs in the mirror's cache (complete ones, not partial files).
    fn mirror_blobs(&self) -> Vec<String> {
        let mut names = Vec::new();
        let hub = std::fs::read_dir(self.mirror_dir.path().join("hub"));
        for repo in hub.into_iter().flatten() {
            let blobs = repo.unwrap().path().join("blobs");
            for blob in std::fs::read_dir(blobs).into_iter().flatten() {
                let name = blob.unwrap().file_name().to_string_lossy().into_owned();
                if !name.contains('.') {
                    names.push(name);
                }
            }
        }
        names
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn four_clients_through_a_cold_mirror_take_each_byte_once() {
    // 96 MiB/s: the 48 MiB file takes half a second upstream, so the
    // clients overlap with the transfer and with each other.
    let s = Setup::new(Some(96 << 20), Duration::from_secs(60)).await;
    let homes: Vec<tempfile::TempDir> = (0..4).map(|_| tempfile::tempdir().unwrap()).collect();
    let started = Instant::now();
    let runs: Vec<_> = homes
        .iter()
        .map(|home| {
            let hub = s.client(home.path(), None);
            tokio::spawn(async move { snapshot(&hub, "org/model").await })
        })
        .collect();
    let mut snapshots = Vec::new();
    for run in runs {
        snapshots.push(run.await.unwrap().unwrap());
    }
    let took = started.elapsed();
    let weights = s.source("org/model/weights.bin");
    for snap in &snapshots {
        assert!(std::fs::read(snap.dir.join("weights.bin")).unwrap() == weights);
        assert_eq!(
            std::fs::read(snap.dir.join("config.json")).unwrap(),
            s.source("org/model/config.json")
        );
    }
    let sent = s.upstream.stats().content_bytes;
    let files = (weights.len() + s.source("org/model/config.json").len()) as u64;
    let stats = s.mirror.stats();
    #[allow(clippy::cast_precision_loss)]
    let rate = (4 * files) as f64 / took.as_secs_f64() / f64::from(1 << 20);
    println!(
        "4 clients x {files} bytes through a cold mirror in {took:.2?} ({rate:.0} MiB/s to clients); \
         upstream sent {sent} bytes; mirror: {stats:?}"
    );
    assert_eq!(sent, files, "the upstream sent some bytes more than once");
    assert_eq!(stats.transfers, 2);
    assert_eq!(stats.failed, 0);

    // Warm: a fifth client costs the upstream nothing but a listing.
    let home = tempfile::tempdir().unwrap();
    let snap = snapshot(&s.client(home.path(), None), "org/model")
        .await
        .unwrap();
    assert!(std::fs::read(snap.dir.join("weights.bin")).unwrap() == weights);
    assert_eq!(s.upstream.stats().content_bytes, files);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_client_that_goes_away_does_not_stop_the_transfer_others_wait_on() {
    let s = Setup::new(Some(32 << 20), Duration::from_secs(60)).await;
    let http = reqwest::Client::new();
    let url = format!("{}/org/model/resolve/main/weights.bin", s.server.url());
    let mut response = http.get(&url).send().await.unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    let mut got = 0usize;
    while got < (1 << 20) {
        got += response.chunk().await.unwrap().unwrap().len();
    }
    drop(response);
    let home = tempfile::tempdir().unwrap();
    let snap = snapshot(&s.client(home.path(), None), "org/model")
        .await
        .unwrap();
    assert!(
        std::fs::read(snap.dir.join("weights.bin")).unwrap() == s.source("org/model/weights.bin")
    );
    let stats = s.mirror.stats();
    println!("first client left after {got} bytes; mirror: {stats:?}");
    assert_eq!(stats.transfers, 2, "the transfer started over");
    assert_eq!(
        s.upstream.stats().content_bytes,
        (BIG + s.source("org/model/config.json").len()) as u64
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn private_repos_go_only_to_tokens_the_upstream_accepts() {
    let s = Setup::new(None, Duration::from_secs(60)).await;
    let anonymous = tempfile::tempdir().unwrap();
    let err = snapshot(&s.client(anonymous.path(), None), "org/private")
        .await
        .unwrap_err();
    assert!(matches!(err, HubError::RepoNotFound { .. }), "{err}");
    let wrong = tempfile::tempdir().unwrap();
    let err = snapshot(&s.client(wrong.path(), Some("hf_wrong")), "org/private")
        .await
        .unwrap_err();
    assert!(matches!(err, HubError::RepoNotFound { .. }), "{err}");
    let right = tempfile::tempdir().unwrap();
    let snap = snapshot(&s.client(right.path(), Some(TOKEN)), "org/private")
        .await
        .unwrap();
    assert!(
        std::fs::read(snap.dir.join("model.safetensors")).unwrap()
            == s.source("org/private/model.safetensors")
    );
    // Now cached in the mirror, and still not for everyone.
    for token in [None, Some("hf_wrong")] {
        let home = tempfile::tempdir().unwrap();
        let err = snapshot(&s.client(home.path(), token), "org/private")
            .await
            .unwrap_err();
        assert!(matches!(err, HubError::RepoNotFound { .. }), "{err}");
    }
    let listing = reqwest::get(format!("{}/api/models", s.server.url()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!listing.contains("org/private"), "{listing}");
    // Remembered across a restart: the private list lives beside the cache.
    let text = std::fs::read_to_string(s.mirror_dir.path().join("hub.mirror-private")).unwrap();
    assert_eq!(text, "models/org/private\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_corrupted_upstream_file_never_reaches_a_client_whole_nor_the_cache() {
    let s = Setup::new(None, Duration::from_secs(60)).await;
    s.upstream.faults().set(FaultPlan {
        flip_byte_at: Some((5 << 20, ALWAYS)),
        ..FaultPlan::default()
    });
    let home = tempfile::tempdir().unwrap();
    let err = snapshot(&s.client(home.path(), None), "org/model")
        .await
        .unwrap_err();
    println!("client error: {err}; mirror: {:?}", s.mirror.stats());
    assert!(s.mirror.stats().failed >= 1);
    let weights = s.source("org/model/weights.bin");
    let etag = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(&weights))
    };
    assert!(!s.mirror_blobs().contains(&etag), "a wrong blob was kept");
    // The upstream mends: the next client gets the file.
    s.upstream.faults().set(FaultPlan::default());
    let home = tempfile::tempdir().unwrap();
    let snap = snapshot(&s.client(home.path(), None), "org/model")
        .await
        .unwrap();
    assert!(std::fs::read(snap.dir.join("weights.bin")).unwrap() == weights);
    assert!(s.mirror_blobs().contains(&etag));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hostile_listing_is_refused_and_nothing_is_written() {
    let s = Setup::new(None, Duration::from_secs(60)).await;
    s.upstream.faults().set(FaultPlan {
        hostile_listing_path: Some("../../escape.bin".into()),
        ..FaultPlan::default()
    });
    let response = reqwest::get(format!(
        "{}/org/model/resolve/main/config.json",
        s.server.url()
    ))
    .await
    .unwrap();
    assert_eq!(response.status().as_u16(), 502);
    let body = response.text().await.unwrap();
    assert!(body.contains("refused"), "{body}");
    assert!(!s.mirror_dir.path().join("escape.bin").exists());
    assert!(s.mirror_blobs().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unreachable_upstream_leaves_what_the_mirror_holds() {
    // TTL zero: every request asks the upstream first.
    let s = Setup::new(None, Duration::ZERO).await;
    let home = tempfile::tempdir().unwrap();
    snapshot(&s.client(home.path(), None), "org/model")
        .await
        .unwrap();
    let private = tempfile::tempdir().unwrap();
    snapshot(&s.client(private.path(), Some(TOKEN)), "org/private")
        .await
        .unwrap();
    // Stops listening and closes its idle connections.
    s.upstream.shutdown();
    let started = Instant::now();
    let home = tempfile::tempdir().unwrap();
    let snap = snapshot(&s.client(home.path(), None), "org/model")
        .await
        .unwrap();
    let took = started.elapsed();
    assert!(std::fs::read(snap.dir.join("weights.bin")).unwrap() == bytes(BIG, 1));
    // The token the upstream accepted still reads the private repo; no
    // token does not.
    let home = tempfile::tempdir().unwrap();
    snapshot(&s.client(home.path(), Some(TOKEN)), "org/private")
        .await
        .unwrap();
    let home = tempfile::tempdir().unwrap();
    let err = snapshot(&s.client(home.path(), None), "org/private")
        .await
        .unwrap_err();
    assert!(matches!(err, HubError::RepoNotFound { .. }), "{err}");
    // What it never held: a clear error.
    let response = reqwest::get(format!("{}/api/models/org/other", s.server.url()))
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 504);
    let stats = s.mirror.stats();
    println!("served from the mirror with the upstream gone in {took:.2?}; {stats:?}");
    assert!(stats.served_offline >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_upstream_lying_about_a_size_gets_no_file_through() {
    let s = Setup::new(None, Duration::from_secs(60)).await;
    // Resolve announces a size the listing and the bytes do not have.
    s.upstream.faults().set(FaultPlan {
        announced_size: Some(1234),
        ..FaultPlan::default()
    });
    let home = tempfile::tempdir().unwrap();
    let err = snapshot(&s.client(home.path(), None), "org/model")
        .await
        .unwrap_err();
    println!("client error: {err}; mirror: {:?}", s.mirror.stats());
    assert!(s.mirror.stats().failed >= 1);
    let blobs = s.mirror_blobs();
    assert!(
        blobs.iter().all(|b| b.len() != 64),
        "an LFS blob was kept: {blobs:?}"
    );
}
