use hf_hub::filter::Filter;
use hf_hub::{Hub, HubError};
use tokio_util::sync::CancellationToken;

use crate::common::*;

#[tokio::test]
async fn offline_answers_from_the_cache_without_any_request() {
    let fx = Fixture::new().await;
    let online = fx.hub();
    let filter = Filter::new(&["*.json", "*.txt"], &[] as &[&str]).unwrap();
    let snap = online
        .snapshot(
            &model("org/small"),
            &main(),
            &filter,
            hf_hub::progress::silent(),
            &CancellationToken::new(),
        )
        .await
        .unwrap();
    let _ = online
        .file(&model("org/small"), &main(), &path("missing.txt"))
        .await
        .unwrap_err();
    let before = fx.server.stats();

    let offline = Hub::new(hf_hub::HubOptions {
        offline: true,
        ..fx.options()
    })
    .unwrap();
    let file = offline
        .file(&model("org/small"), &main(), &path("config.json"))
        .await
        .unwrap();
    assert!(file.was_cached);
    assert_eq!(file.path, snap.dir.join("config.json"));
    let again = offline
        .snapshot(
            &model("org/small"),
            &main(),
            &filter,
            hf_hub::progress::silent(),
            &CancellationToken::new(),
        )
        .await
        .unwrap();
    assert_eq!(again.files.len(), 2);

    // What is not there is named, and the known-missing file is known.
    let err = offline
        .file(&model("org/small"), &main(), &path("weights.safetensors"))
        .await
        .unwrap_err();
    assert!(matches!(err, HubError::NotCached { .. }), "{err}");
    assert!(err.to_string().contains("weights.safetensors"), "{err}");
    let err = offline
        .snapshot(
            &model("org/small"),
            &main(),
            &Filter::all(),
            hf_hub::progress::silent(),
            &CancellationToken::new(),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("weights.safetensors"), "{err}");
    let err = offline
        .file(&model("org/small"), &main(), &path("missing.txt"))
        .await
        .unwrap_err();
    assert!(matches!(err, HubError::EntryNotFound { .. }), "{err}");
    let err = offline
        .file(&model("org/big"), &main(), &path("model.bin"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("org/big@main"), "{err}");

    let after = fx.server.stats();
    assert_eq!(
        after.hub_requests, before.hub_requests,
        "offline mode made a request"
    );
    assert_eq!(after.cdn_requests, before.cdn_requests);
}
