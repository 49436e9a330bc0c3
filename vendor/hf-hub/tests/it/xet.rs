//! Xet downloads against the server's CAS (xet-client's simulation server
//! on loopback; files uploaded with hf-xet), and the fallback to HTTP.

use std::future::Future;
use std::path::Path;
use std::time::{Duration, Instant};

use hf_hub::progress::Event;
use hf_hub::{HubError, HubOptions, XetMode};
use tektra_hub_server::{FaultPlan, Kind, Server, Store};
use tokio_util::sync::CancellationToken;

use crate::common::*;

const SIZE: usize = 12 << 20;

struct XetFixture {
    repos: tempfile::TempDir,
    home: tempfile::TempDir,
    server: Server,
}

impl XetFixture {
    async fn new() -> XetFixture {
        let repos = tempfile::tempdir().unwrap();
        let put = |rel: &str, data: &[u8]| {
            let p = repos.path().join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, data).unwrap();
        };
        put("org/xet/model.safetensors", &bytes(SIZE, 11));
        put("org/xet/config.json", br#"{"model_type": "llama"}"#);
        put("org/xet/extra.safetensors", &bytes(2 << 20, 13));
        put("org/secret/model.safetensors", &bytes(1 << 20, 12));
        // Other content of the same size: the wrong-hash fault answers with
        // its Xet hash, so hf-xet's own size check passes and only our
        // sha256 check can catch it.
        put("org/twin/model.safetensors", &bytes(SIZE, 14));
        let mut store = Store::open(repos.path()).unwrap();
        store.set_tokens(Kind::Model, "org/secret", vec![TOKEN.to_string()]);
        let server = Server::builder(store).xet(None).start().await.unwrap();
        XetFixture {
            repos,
            home: tempfile::tempdir().unwrap(),
            server,
        }
    }

    fn options(&self, mode: XetMode) -> HubOptions {
        let mut options = HubOptions {
            endpoint: self.server.url(),
            cache_dir: self.home.path().join(format!("hub-{mode:?}")),
            xet_cache_dir: Some(self.home.path().join(format!("xet-{mode:?}"))),
            xet: mode,
            // Also the Xet stall detector's limit: short enough that the
            // stalled-CAS test falls back quickly, long enough that a busy
            // machine's slow start is not taken for a stall.
            read_timeout: Duration::from_secs(4),
            ..HubOptions::default()
        };
        options.retry.base_delay = Duration::from_millis(10);
        options.retry.max_delay = Duration::from_millis(100);
        options
    }

    fn source(&self, rel: &str) -> Vec<u8> {
        std::fs::read(self.repos.path().join(rel)).unwrap()
    }

    async fn download(
        &self,
        options: HubOptions,
    ) -> (Result<hf_hub::CachedFile, HubError>, Vec<Event>) {
        let (reporter, events) = recorder();
        let result = hf_hub::Hub::new(options)
            .unwrap()
            .download_file(
                &model("org/xet"),
                &main(),
                &path("model.safetensors"),
                reporter,
                &CancellationToken::new(),
            )
            .await;
        let events = events.lock().unwrap().clone();
        (result, events)
    }
}

/// Every test is bounded: a hang is a failure, not a stuck suite.
async fn bounded<T>(f: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(90), f)
        .await
        .expect("test took longer than 90 s")
}

/// Notes about files (stage events carry their own messages).
fn notes(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e.file.is_some())
        .filter_map(|e| e.message.clone())
        .collect()
}

/// Every file and link of a cache (hf-xet's own folder is elsewhere).
fn layout(cache: &Path) -> Vec<String> {
    tree(cache)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_xet_file_arrives_with_the_right_bytes_and_the_http_layout() {
    bounded(async {
        let fx = XetFixture::new().await;
        let before = fx.server.stats();
        let (file, events) = fx.download(fx.options(XetMode::Require)).await;
        let file = file.unwrap();
        assert!(std::fs::read(&file.path).unwrap() == fx.source("org/xet/model.safetensors"));
        let after = fx.server.stats();
        assert!(
            after.xet_cas_requests > before.xet_cas_requests,
            "the CAS served it"
        );
        assert!(after.xet_cas_bytes > 0);
        assert_eq!(
            after.content_bytes, before.content_bytes,
            "no byte came over HTTP"
        );
        assert_eq!(after.xet_token_requests, 1);
        // Progress went through the same events, with the written bytes.
        let last = events
            .iter()
            .rev()
            .find(|e| e.file.as_deref() == Some("model.safetensors"))
            .unwrap();
        assert_eq!(last.state, hf_hub::progress::State::Done);
        assert_eq!(last.bytes_done, SIZE as u64);
        assert!(events.iter().any(|e| e.bytes_written == Some(SIZE as u64)));
        assert!(notes(&events).is_empty(), "{:?}", notes(&events));

        // The same file over HTTP gives the same cache, byte for byte.
        let (http, _) = fx.download(fx.options(XetMode::Disabled)).await;
        let http = http.unwrap();
        assert_eq!(
            fx.server.stats().content_bytes - after.content_bytes,
            SIZE as u64
        );
        let xet_cache = fx.home.path().join("hub-Require");
        let http_cache = fx.home.path().join("hub-Disabled");
        assert_eq!(layout(&xet_cache), layout(&http_cache));
        assert!(std::fs::read(&http.path).unwrap() == std::fs::read(&file.path).unwrap());
    })
    .await;
}

async fn falls_back(plan: FaultPlan, why: &str) {
    let fx = XetFixture::new().await;
    fx.server.faults().set(plan);
    let started = Instant::now();
    let (file, events) = fx.download(fx.options(XetMode::Auto)).await;
    let file = file.unwrap_or_else(|e| panic!("{why}: {e}"));
    assert!(
        std::fs::read(&file.path).unwrap() == fx.source("org/xet/model.safetensors"),
        "{why}: wrong bytes"
    );
    assert_eq!(
        fx.server.stats().content_bytes,
        SIZE as u64,
        "{why}: the file came over HTTP"
    );
    let notes = notes(&events);
    let fallbacks: Vec<&String> = notes
        .iter()
        .filter(|n| n.contains("downloading over HTTP instead"))
        .collect();
    assert_eq!(fallbacks.len(), 1, "{why}: one warning line, got {notes:?}");
    assert!(fallbacks[0].contains("xet"), "{why}: {}", fallbacks[0]);
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{why}: fallback took {:?}",
        started.elapsed()
    );
    // Nothing of the failed attempt is left behind.
    let blobs = fx.home.path().join("hub-Auto/models--org--xet/blobs");
    let leftovers: Vec<String> = std::fs::read_dir(blobs)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".incomplete"))
        .collect();
    assert!(leftovers.is_empty(), "{why}: {leftovers:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_token_endpoint_falls_back_to_http() {
    bounded(falls_back(
        FaultPlan {
            xet_token_status: Some(404),
            ..FaultPlan::default()
        },
        "token endpoint 404",
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_cas_falls_back_to_http() {
    bounded(falls_back(
        FaultPlan {
            xet_cas_down: true,
            ..FaultPlan::default()
        },
        "CAS down",
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_cas_falls_back_to_http() {
    bounded(falls_back(
        FaultPlan {
            xet_cas_delay_ms: Some(20_000),
            ..FaultPlan::default()
        },
        "CAS stalled",
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_bytes_from_xet_never_reach_the_cache_and_http_fetches_the_file() {
    bounded(falls_back(
        FaultPlan {
            xet_wrong_hash: true,
            ..FaultPlan::default()
        },
        "Xet hash of another file",
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requiring_xet_with_wrong_bytes_fails_on_the_hash_and_leaves_nothing() {
    bounded(async {
        let fx = XetFixture::new().await;
        fx.server.faults().set(FaultPlan {
            xet_wrong_hash: true,
            ..FaultPlan::default()
        });
        let (result, _) = fx.download(fx.options(XetMode::Require)).await;
        let text = result.unwrap_err().to_string();
        assert!(text.contains("sha256 mismatch"), "{text}");
        assert!(fx.server.stats().xet_cas_bytes > 0, "the wrong bytes came");
        let hub = fx.home.path().join("hub-Require/models--org--xet");
        assert!(!hub.join("snapshots").exists(), "nothing reached the cache");
        let leftovers: Vec<String> = std::fs::read_dir(hub.join("blobs"))
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requiring_xet_with_a_broken_cas_is_an_error() {
    bounded(async {
        let fx = XetFixture::new().await;
        fx.server.faults().set(FaultPlan {
            xet_cas_down: true,
            ..FaultPlan::default()
        });
        let (result, _) = fx.download(fx.options(XetMode::Require)).await;
        let error = result.unwrap_err();
        assert!(
            matches!(error, HubError::Backend { backend: "xet", .. }),
            "{error:?}"
        );
        let text = error.to_string();
        assert!(
            text.starts_with("xet transfer of model.safetensors failed"),
            "{text}"
        );
        assert_eq!(fx.server.stats().content_bytes, 0, "no silent fallback");
        let blob = fx
            .home
            .path()
            .join("hub-Require/models--org--xet/snapshots");
        assert!(!blob.exists(), "nothing reached the cache");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_repos_token_reaches_the_token_endpoint_and_never_the_cas() {
    bounded(async {
        let fx = XetFixture::new().await;
        let mut options = fx.options(XetMode::Require);
        options.token = Some(TOKEN.to_string());
        let file = hf_hub::Hub::new(options)
            .unwrap()
            .file(&model("org/secret"), &main(), &path("model.safetensors"))
            .await
            .unwrap();
        assert!(std::fs::read(&file.path).unwrap() == fx.source("org/secret/model.safetensors"));
        let stats = fx.server.stats();
        assert_eq!(stats.xet_token_requests, 1);
        assert_eq!(
            stats.xet_token_auth_seen, 1,
            "the Hub token went to the token endpoint"
        );
        assert!(stats.xet_cas_auth_seen > 0, "the CAS got the Xet token");
        assert_eq!(
            stats.xet_cas_hub_token_seen, 0,
            "the CAS never saw the Hub token"
        );
        assert_eq!(stats.cdn_auth_seen, 0);
        assert_eq!(stats.content_bytes, 0);

        // Without the token the repo stays closed, Xet or not.
        let error = hf_hub::Hub::new(fx.options(XetMode::Auto))
            .unwrap()
            .file(&model("org/secret"), &main(), &path("model.safetensors"))
            .await
            .unwrap_err();
        assert_eq!(error.status(), Some(401), "{error}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_stops_the_xet_transfer_within_a_second() {
    bounded(async {
        let fx = XetFixture::new().await;
        // Slow enough that the transfer is still running when we cancel.
        fx.server.faults().set(FaultPlan {
            xet_cas_delay_ms: Some(1500),
            ..FaultPlan::default()
        });
        let mut options = fx.options(XetMode::Require);
        options.read_timeout = Duration::from_secs(30);
        let hub = hf_hub::Hub::new(options).unwrap();
        let cancel = CancellationToken::new();
        let stop = cancel.clone();
        let canceller = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(700)).await;
            let at = Instant::now();
            stop.cancel();
            at
        });
        let result = hub
            .download_file(
                &model("org/xet"),
                &main(),
                &path("model.safetensors"),
                hf_hub::progress::silent(),
                &cancel,
            )
            .await;
        let returned = Instant::now();
        let cancelled_at = canceller.await.unwrap();
        assert!(matches!(result, Err(HubError::Cancelled)), "{result:?}");
        // The figure is the claim ("within a second"); the bound only
        // catches a cancel that is not heard, whatever the machine's load.
        let took = returned.saturating_duration_since(cancelled_at);
        eprintln!("cancel landed {took:?} after it was made");
        assert!(took < Duration::from_secs(5), "took {took:?} to stop");
        let snapshots = fx
            .home
            .path()
            .join("hub-Require/models--org--xet/snapshots");
        assert!(!snapshots.exists(), "nothing reached the cache");

        // The same download afterwards completes.
        fx.server.faults().set(FaultPlan::default());
        let file = hub
            .file(&model("org/xet"), &main(), &path("model.safetensors"))
            .await
            .unwrap();
        assert!(std::fs::read(&file.path).unwrap() == fx.source("org/xet/model.safetensors"));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_files_without_a_xet_hash_still_come_over_http() {
    bounded(async {
        let fx = XetFixture::new().await;
        let file = hf_hub::Hub::new(fx.options(XetMode::Require))
            .unwrap()
            .file(&model("org/xet"), &main(), &path("config.json"))
            .await
            .unwrap();
        assert_eq!(
            std::fs::read(&file.path).unwrap(),
            fx.source("org/xet/config.json")
        );
        assert_eq!(fx.server.stats().xet_token_requests, 0);
    })
    .await;
}

/// Fetches both LFS files of `org/xet` with one engine and checks them.
async fn fetch_both(fx: &XetFixture, options: HubOptions) {
    let hub = hf_hub::Hub::new(options).unwrap();
    for file in ["model.safetensors", "extra.safetensors"] {
        let got = hub
            .file(&model("org/xet"), &main(), &path(file))
            .await
            .unwrap();
        assert!(std::fs::read(&got.path).unwrap() == fx.source(&format!("org/xet/{file}")));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_tokens_are_reused_then_fetched_again_near_expiry() {
    bounded(async {
        let fx = XetFixture::new().await;
        // An hour-long token serves both files of the repo.
        fetch_both(&fx, fx.options(XetMode::Require)).await;
        assert_eq!(fx.server.stats().xet_token_requests, 1);
        // A token with less than a minute left is not used for the next file.
        fx.server.faults().set(FaultPlan {
            xet_token_ttl_secs: Some(30),
            ..FaultPlan::default()
        });
        let mut options = fx.options(XetMode::Require);
        options.cache_dir = fx.home.path().join("hub-short-tokens");
        fetch_both(&fx, options).await;
        assert!(
            fx.server.stats().xet_token_requests >= 3,
            "{} token requests",
            fx.server.stats().xet_token_requests
        );
        assert_eq!(fx.server.stats().content_bytes, 0, "all over Xet");
    })
    .await;
}
