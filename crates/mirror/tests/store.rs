//! Mirrors sharing one object store (a real S3 server, s3s-fs on
//! loopback): what one mirror fetched, another reads from the store and
//! the upstream sends nothing again; a damaged blob in the store is
//! found, deleted and fetched again; with the upstream gone, a mirror
//! that never saw a repo serves it from the store.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use hf_hub::{Hub, HubOptions};
use tektra_hub_server::{Server, Store};
use tektra_mirror::{Mirror, MirrorOptions, MirrorStats};
use tektra_store::{BlobStore, StoreOptions};
use tektra_testdata::{ACCESS_KEY, S3Server, SECRET_KEY};

mod common;
use common::{bytes, put, snapshot};

const BIG: usize = 24 << 20;

struct Team {
    repos: tempfile::TempDir,
    upstream: Server,
    _s3_root: tempfile::TempDir,
    s3: S3Server,
    homes: Vec<tempfile::TempDir>,
}

/// One mirror of the team: its server and counters.
struct Site {
    mirror: Arc<Mirror>,
    server: Server,
}

impl Team {
    async fn new() -> Team {
        let repos = tempfile::tempdir().unwrap();
        put(repos.path(), "org/model/config.json", br#"{"a": 1}"#);
        put(repos.path(), "org/model/weights.bin", &bytes(BIG, 1));
        let upstream = Server::builder(Store::open(repos.path()).unwrap())
            .start()
            .await
            .unwrap();
        let s3_root = tempfile::tempdir().unwrap();
        let s3 = S3Server::start("127.0.0.1", s3_root.path(), "models");
        Team {
            repos,
            upstream,
            _s3_root: s3_root,
            s3,
            homes: Vec::new(),
        }
    }

    fn store(&self) -> BlobStore {
        let mut options = StoreOptions::new("s3://models/team").endpoint(&self.s3.endpoint());
        options.credentials = Some((ACCESS_KEY.into(), SECRET_KEY.into()));
        BlobStore::open(&options).unwrap()
    }

    /// A mirror on its own loopback address with an empty cache.
    async fn site(&mut self, host: &str) -> Site {
        let home = tempfile::tempdir().unwrap();
        let mut options = MirrorOptions::new(&self.upstream.url(), home.path().join("hub"));
        options.engine.retry.max_attempts = 2;
        options.engine.connect_timeout = Duration::from_secs(1);
        options.store = Some(self.store());
        let mirror = Arc::new(Mirror::new(options).unwrap());
        let server = Server::builder(Store::default())
            .hub_addr(format!("{host}:0").parse().unwrap())
            .upstream(mirror.clone())
            .start()
            .await
            .unwrap();
        self.homes.push(home);
        Site { mirror, server }
    }

    fn client(&mut self, site: &Site) -> Hub {
        let home = tempfile::tempdir().unwrap();
        let mut options = HubOptions {
            endpoint: site.server.url(),
            cache_dir: home.path().to_path_buf(),
            ..HubOptions::default()
        };
        // A body cut because the transfer it followed started over (a
        // damaged store blob: the engine's second try, then the upstream)
        // is retried, as any client of a mirror does.
        options.retry.max_attempts = 5;
        options.retry.base_delay = Duration::from_millis(50);
        options.read_timeout = Duration::from_secs(20);
        self.homes.push(home);
        Hub::new(options).unwrap()
    }

    fn weights(&self) -> Vec<u8> {
        std::fs::read(self.repos.path().join("org/model/weights.bin")).unwrap()
    }

    fn files_size(&self) -> u64 {
        (BIG + br#"{"a": 1}"#.len()) as u64
    }
}

/// Until the mirror's background writes to the store are done.
async fn stored(site: &Site, n: u64) -> MirrorStats {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let stats = site.mirror.stats();
        if stats.stored >= n || Instant::now() > deadline {
            return stats;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_second_mirror_reads_what_the_first_fetched_from_the_store() {
    let mut team = Team::new().await;
    let first = team.site("127.0.0.2").await;
    let snap = snapshot(&team.client(&first), "org/model").await.unwrap();
    assert!(std::fs::read(snap.dir.join("weights.bin")).unwrap() == team.weights());
    let stats = stored(&first, 2).await;
    assert_eq!((stats.transfers, stats.stored), (2, 2), "{stats:?}");
    let sent = team.upstream.stats().content_bytes;
    assert_eq!(sent, team.files_size());

    let second = team.site("127.0.0.3").await;
    let started = Instant::now();
    let snap = snapshot(&team.client(&second), "org/model").await.unwrap();
    let took = started.elapsed();
    assert!(std::fs::read(snap.dir.join("weights.bin")).unwrap() == team.weights());
    let stats = second.mirror.stats();
    println!("second mirror, cold, through the store: {took:.2?}; {stats:?}");
    assert_eq!((stats.transfers, stats.from_store), (0, 2), "{stats:?}");
    assert_eq!(
        team.upstream.stats().content_bytes,
        sent,
        "the upstream sent a file twice"
    );

    // The upstream gone: a third mirror that never saw the repo serves it
    // from the store's listing and blobs.
    team.upstream.shutdown();
    let third = team.site("127.0.0.4").await;
    let snap = snapshot(&team.client(&third), "org/model").await.unwrap();
    assert!(std::fs::read(snap.dir.join("weights.bin")).unwrap() == team.weights());
    let stats = third.mirror.stats();
    println!("third mirror, upstream down: {stats:?}");
    assert_eq!(stats.from_store, 2, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_damaged_blob_in_the_store_is_replaced_from_the_upstream() {
    let mut team = Team::new().await;
    let first = team.site("127.0.0.2").await;
    snapshot(&team.client(&first), "org/model").await.unwrap();
    stored(&first, 2).await;
    // Somebody's bad disk or bad writer: one byte of the big blob flipped.
    let etag = common::sha256_hex(&team.weights());
    let object = team.s3.object_path("models", &format!("team/blobs/{etag}"));
    let mut held = std::fs::read(&object).unwrap();
    held[BIG / 2] ^= 1;
    std::fs::write(&object, held).unwrap();

    let second = team.site("127.0.0.3").await;
    let snap = snapshot(&team.client(&second), "org/model").await.unwrap();
    assert!(std::fs::read(snap.dir.join("weights.bin")).unwrap() == team.weights());
    let stats = stored(&second, 1).await;
    println!("second mirror over a damaged store: {stats:?}");
    assert_eq!(stats.store_corrupt, 1, "{stats:?}");
    assert_eq!(stats.transfers, 1, "{stats:?}");
    // The store holds the right bytes again.
    assert_eq!(common::sha256_hex(&std::fs::read(&object).unwrap()), etag);
}
