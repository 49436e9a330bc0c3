//! The upstream API, used the way mistral.rs 0.8.1 uses it.

use std::sync::{Arc, Mutex};

use hf_hub::api::sync::{Api, ApiBuilder, ApiError, ApiRepo};
use hf_hub::{Cache, Repo, RepoType};

use crate::common::*;

fn assert_send_sync<T: Send + Sync>() {}

static CACHE: Mutex<Option<Cache>> = Mutex::new(None);

fn sync_api(fx: &Fixture, token: Option<String>) -> Api {
    ApiBuilder::from_cache(Cache::new(fx.cache_root()))
        .with_endpoint(fx.server.url())
        .with_token(token)
        .with_progress(false)
        .with_retries(2)
        .with_user_agent("app", "test")
        .build()
        .unwrap()
}

// mistral.rs calls the blocking API from inside its tokio runtime.
#[tokio::test(flavor = "multi_thread")]
async fn sync_api_inside_a_runtime_like_mistralrs() {
    assert_send_sync::<Cache>();
    assert_send_sync::<Api>();
    let fx = Fixture::new().await;
    *CACHE.lock().unwrap() = Some(Cache::new(fx.cache_root()));
    let api = sync_api(&fx, None);
    let repo: ApiRepo = api.repo(Repo::with_revision(
        "org/small".into(),
        RepoType::Model,
        "main".into(),
    ));
    let path = repo.get("config.json").unwrap();
    assert_eq!(
        std::fs::read(&path).unwrap(),
        fx.source("org/small", "config.json")
    );
    let info = repo.info().unwrap();
    assert_eq!(info.siblings.len(), 3);
    assert_eq!(
        repo.url("config.json"),
        format!("{}/org/small/resolve/main/config.json", fx.server.url())
    );
    // The cache sees what the API downloaded.
    let cache = CACHE.lock().unwrap().clone().unwrap();
    assert_eq!(
        cache.model("org/small".into()).get("config.json"),
        Some(path)
    );
    assert_eq!(
        cache
            .repo(Repo::model("org/small".into()))
            .get("../config.json"),
        None
    );

    // mistral.rs tells 401/403/404 apart by `status code NNN` in the message.
    let err = repo.get("nope.bin").unwrap_err();
    assert!(err.to_string().contains("status code 404"), "{err}");
    let err = api
        .model("org/private".into())
        .get("config.json")
        .unwrap_err();
    assert!(err.to_string().contains("status code 401"), "{err}");
    let with_token = sync_api(&fx, Some(TOKEN.into()));
    assert!(
        with_token
            .model("org/private".into())
            .get("config.json")
            .is_ok()
    );

    // and matches TooManyRetries to look inside.
    fx.server.faults().set(tektra_hub_server::FaultPlan {
        fail_status: Some((503, tektra_hub_server::ALWAYS, None)),
        ..Default::default()
    });
    let err = api
        .model("org/big".into())
        .download("model.bin")
        .unwrap_err();
    let ApiError::TooManyRetries(inner) = &err else {
        panic!("{err:?}")
    };
    assert!(inner.to_string().contains("status code 503"), "{inner}");
}

#[test]
fn sync_api_progress_gets_init_updates_and_finish() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let fx = rt.block_on(Fixture::new());
    struct Counting(Arc<Mutex<(usize, usize, u32)>>);
    impl hf_hub::api::Progress for Counting {
        fn init(&mut self, size: usize, _: &str) {
            self.0.lock().unwrap().0 = size;
        }
        fn update(&mut self, n: usize) {
            self.0.lock().unwrap().1 += n;
        }
        fn finish(&mut self) {
            self.0.lock().unwrap().2 += 1;
        }
    }
    let seen = Arc::new(Mutex::new((0, 0, 0)));
    let api = sync_api(&fx, None);
    api.model("org/big".into())
        .download_with_progress("model.bin", Counting(seen.clone()))
        .unwrap();
    assert_eq!(*seen.lock().unwrap(), (BIG, BIG, 1));
    // The raw ureq request upstream exposes still works.
    let response = api.model("org/small".into()).info_request().call().unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn tokio_api_downloads_and_lists() {
    let fx = Fixture::new().await;
    let api = hf_hub::api::tokio::ApiBuilder::from_cache(Cache::new(fx.cache_root()))
        .with_endpoint(fx.server.url())
        .with_progress(false)
        .high()
        .build()
        .unwrap();
    let repo = api.model("org/big".into());
    let path = repo.download("model.bin").await.unwrap();
    assert!(std::fs::read(path).unwrap() == fx.source("org/big", "model.bin"));
    assert_eq!(repo.info().await.unwrap().siblings.len(), 2);
    let raw = repo.info_request().send().await.unwrap();
    assert!(raw.status().is_success());
}

// The remaining entry points mistral.rs 0.8.1 calls: the builders from the
// environment and from defaults, `with_cache_dir`, and the cache's paths.
#[tokio::test(flavor = "multi_thread")]
async fn builders_and_cache_paths_mistralrs_calls() {
    let fx = Fixture::new().await;
    let api = ApiBuilder::new()
        .with_cache_dir(fx.cache_root())
        .with_endpoint(fx.server.url())
        .with_progress(false)
        .build()
        .unwrap();
    assert!(api.model("org/small".into()).get("config.json").is_ok());
    assert!(ApiBuilder::from_env().build().is_ok());
    let from_env = Cache::from_env();
    assert!(from_env.path().ends_with("hub") || std::env::var_os("HF_HUB_CACHE").is_some());
    let cache = Cache::new(fx.cache_root().join("hub"));
    assert_eq!(cache.token_path(), fx.cache_root().join("token"));
    std::fs::write(fx.cache_root().join("token"), "hf_from_file\n").unwrap();
    assert_eq!(cache.token().as_deref(), Some("hf_from_file"));
    let repo = cache.repo(Repo::with_revision(
        "org/small".into(),
        RepoType::Model,
        "v1".into(),
    ));
    repo.create_ref("0123456789abcdef0123456789abcdef01234567")
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(fx.cache_root().join("hub/models--org--small/refs/v1")).unwrap(),
        "0123456789abcdef0123456789abcdef01234567"
    );
    assert_eq!(Repo::model("a/b".into()).folder_name(), "models--a--b");
    assert_eq!(
        Repo::with_revision("a/b".into(), RepoType::Dataset, "refs/pr/1".into()).api_url(),
        "datasets/a/b/revision/refs%2Fpr%2F1"
    );
}

// How an app sees the downloads mistral.rs starts on its own: the ambient
// reporter gets our events for every compat download, sync or async, and
// stops getting them once removed.
#[tokio::test(flavor = "multi_thread")]
async fn ambient_reporter_sees_compat_downloads() {
    use hf_hub::progress::{Stage, State};
    let fx = Fixture::new().await;
    let (reporter, events) = recorder();
    hf_hub::api::set_ambient_reporter(Some(reporter));
    let api = sync_api(&fx, None);
    api.model("org/big".into()).get("model.bin").unwrap();
    let tokio_api = hf_hub::api::tokio::ApiBuilder::from_cache(Cache::new(fx.cache_root()))
        .with_endpoint(fx.server.url())
        .with_progress(false)
        .build()
        .unwrap();
    tokio_api
        .model("org/small".into())
        .get("config.json")
        .await
        .unwrap();
    hf_hub::api::set_ambient_reporter(None);
    api.model("org/small".into())
        .get("weights.safetensors")
        .unwrap();
    let seen = events.lock().unwrap().clone();
    let done = |file: &str| {
        seen.iter().any(|e| {
            e.stage == Stage::Downloading
                && e.state == State::Done
                && e.file.as_deref() == Some(file)
        })
    };
    assert!(done("model.bin"), "{seen:?}");
    assert!(done("config.json"), "{seen:?}");
    assert!(
        !seen
            .iter()
            .any(|e| e.file.as_deref() == Some("weights.safetensors"))
    );
    let big = seen
        .iter()
        .filter(|e| e.file.as_deref() == Some("model.bin"))
        .map(|e| e.bytes_done)
        .max();
    assert_eq!(big, Some(BIG as u64));
}
