//! Options are checked where they enter, and secrets never show in `Debug`.

use std::time::Duration;

use hf_hub::{Hub, HubError, HubOptions};

use crate::common::*;

#[test]
fn out_of_range_options_are_refused_where_they_enter() {
    let cases: Vec<(&str, HubOptions)> = vec![
        (
            "connections_per_file",
            HubOptions {
                connections_per_file: 0,
                ..HubOptions::default()
            },
        ),
        (
            "connections_per_file",
            HubOptions {
                connections_per_file: 100_000,
                ..HubOptions::default()
            },
        ),
        (
            "max_files",
            HubOptions {
                max_files: 0,
                ..HubOptions::default()
            },
        ),
        (
            "chunk_size",
            HubOptions {
                chunk_size: 1000,
                ..HubOptions::default()
            },
        ),
        (
            "chunk_size",
            HubOptions {
                chunk_size: u64::MAX,
                ..HubOptions::default()
            },
        ),
        (
            "read_timeout",
            HubOptions {
                read_timeout: Duration::ZERO,
                ..HubOptions::default()
            },
        ),
    ];
    for (name, options) in cases {
        let err = Hub::new(options).unwrap_err();
        assert!(
            matches!(&err, HubError::InvalidOption { name: n, .. } if *n == name),
            "{name}: {err}"
        );
        assert!(err.to_string().contains(name), "{err}");
    }
    let mut options = HubOptions::default();
    options.retry.max_attempts = 0;
    assert!(matches!(
        Hub::new(options),
        Err(HubError::InvalidOption {
            name: "retry.max_attempts",
            ..
        })
    ));
    // Through upstream's builders too: zero connections is an error, not one.
    let err = hf_hub::api::tokio::ApiBuilder::new()
        .with_max_files(0)
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("connections_per_file"), "{err}");
    let err = hf_hub::api::sync::ApiBuilder::new()
        .with_retries(0)
        .with_cache_dir(std::env::temp_dir())
        .build()
        .map(|_| ())
        .err();
    assert!(err.is_none(), "zero retries is one attempt: {err:?}");
}

#[tokio::test]
async fn a_chunk_size_below_one_mebibyte_still_downloads() {
    // The piece length was clamped between 1 MiB and chunk_size, which
    // panics when chunk_size is the smaller.
    let fx = Fixture::new().await;
    let mut options = fx.options();
    options.chunk_size = 512 << 10;
    let file = Hub::new(options)
        .unwrap()
        .file(&model("org/big"), &main(), &path("model.bin"))
        .await
        .unwrap();
    assert!(std::fs::read(&file.path).unwrap() == fx.source("org/big", "model.bin"));
    // 40 MiB in pieces of at most 512 KiB.
    assert!(fx.server.stats().cdn_requests >= 80);
}

#[test]
fn tokens_never_show_in_debug_output() {
    const SECRET: &str = "hf_do_not_print_me_0123456789";
    let home = tempfile::tempdir().unwrap();
    let shown = |what: &str, text: String| {
        assert!(!text.contains(SECRET), "{what} shows the token: {text}");
        assert!(
            text.contains("redacted"),
            "{what} hides that it has a token: {text}"
        );
    };
    let env = hf_hub::env::EnvConfig::from_vars(|k| match k {
        "HF_TOKEN" => Some(SECRET.into()),
        "HF_HOME" => Some(home.path().display().to_string()),
        _ => None,
    });
    shown("EnvConfig", format!("{env:?}"));
    let options = HubOptions {
        token: Some(SECRET.into()),
        ..HubOptions::default()
    };
    shown("HubOptions", format!("{options:?}"));
    let hub = Hub::new(options).unwrap();
    assert!(!format!("{hub:?}").contains(SECRET));

    let cache = hf_hub::Cache::new(home.path().join("hub"));
    let builder =
        hf_hub::api::sync::ApiBuilder::from_cache(cache.clone()).with_token(Some(SECRET.into()));
    shown("sync ApiBuilder (and its Settings)", format!("{builder:?}"));
    let api = builder.build().unwrap();
    shown("sync Api", format!("{api:?}"));
    shown(
        "sync ApiRepo",
        format!("{:?}", api.model("org/small".into())),
    );
    let builder = hf_hub::api::tokio::ApiBuilder::from_cache(cache).with_token(Some(SECRET.into()));
    shown("tokio ApiBuilder", format!("{builder:?}"));
    let api = builder.build().unwrap();
    shown("tokio Api", format!("{api:?}"));
    shown(
        "tokio ApiRepo",
        format!("{:?}", api.model("org/small".into())),
    );
}
