//! `tektra download` against a server with a Xet CAS: `--use-xet`,
//! `--no-xet`, HF_HUB_DISABLE_XET, the fallback and its one warning line.

use tektra_hub_server::{FaultPlan, Kind, Server};

use crate::common::*;

const SIZE: usize = 16 << 20;

/// `org/xet` (a 16 MiB file in Xet, a small config) and `org/private`
/// (readable with [`TOKEN`]), served with a CAS.
async fn xet_fixture() -> Fixture {
    let repos = tempfile::tempdir().unwrap();
    put(repos.path(), "org/xet/weights.bin", &bytes(SIZE, 21));
    put(repos.path(), "org/xet/config.json", b"{}");
    put(
        repos.path(),
        "org/private/model.safetensors",
        &bytes(1 << 20, 22),
    );
    Fixture::serve(repos, |mut store| {
        store.set_tokens(Kind::Model, "org/private", vec![TOKEN.into()]);
        Server::builder(store).xet(None)
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn use_xet_downloads_through_the_cas_with_progress() {
    let fx = xet_fixture().await;
    let out = fx
        .tektra(&["download", "org/xet", "weights.bin", "--use-xet", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(std::fs::read(stdout(&out)).unwrap() == fx.source("org/xet/weights.bin"));
    let stats = fx.server.stats();
    assert!(stats.xet_cas_requests > 0);
    assert_eq!(stats.content_bytes, 0, "nothing over HTTP");
    let events = json_lines(&out);
    let done = events
        .iter()
        .rev()
        .find(|e| e["file"] == "weights.bin")
        .unwrap();
    assert_eq!(done["state"], "done");
    assert_eq!(done["bytes_done"], SIZE as u64);
    assert!(events.iter().any(|e| e["bytes_written"].is_u64()));
    // hf-xet's chunk cache lives beside the hub cache, as huggingface_hub's does.
    assert!(fx.home.path().join("xet").is_dir());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_broken_cas_falls_back_with_one_warning_line() {
    let fx = xet_fixture().await;
    fx.server.faults().set(FaultPlan {
        xet_cas_down: true,
        ..FaultPlan::default()
    });
    let out = fx
        .tektra(&["download", "org/xet", "weights.bin", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(std::fs::read(stdout(&out)).unwrap() == fx.source("org/xet/weights.bin"));
    assert_eq!(fx.server.stats().content_bytes, SIZE as u64);
    let warnings: Vec<String> = json_lines(&out)
        .iter()
        .filter_map(|e| e["message"].as_str().map(str::to_string))
        .filter(|m| m.contains("over HTTP instead"))
        .collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].starts_with("xet transfer of weights.bin failed"),
        "{}",
        warnings[0]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn use_xet_with_a_broken_cas_fails_clearly() {
    let fx = xet_fixture().await;
    fx.server.faults().set(FaultPlan {
        xet_cas_down: true,
        ..FaultPlan::default()
    });
    let out = fx
        .tektra(&["download", "org/xet", "weights.bin", "--use-xet", "-q"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.starts_with("error: xet transfer of weights.bin failed:"),
        "{err}"
    );
    assert!(err.lines().count() == 1, "one line: {err}");
    assert_eq!(fx.server.stats().content_bytes, 0, "no silent fallback");
}

#[tokio::test(flavor = "multi_thread")]
async fn no_xet_and_hf_hub_disable_xet_stay_on_http() {
    let fx = xet_fixture().await;
    let out = fx
        .tektra(&["download", "org/xet", "weights.bin", "--no-xet", "-q"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let mut env = fx.tektra(&["download", "org/xet", "weights.bin", "-q"]);
    std::fs::remove_dir_all(fx.home.path().join("hub")).unwrap();
    let out = env.env("HF_HUB_DISABLE_XET", "1").output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(std::fs::read(stdout(&out)).unwrap() == fx.source("org/xet/weights.bin"));
    let stats = fx.server.stats();
    assert_eq!(stats.xet_token_requests, 0);
    assert_eq!(stats.xet_cas_requests, 0);
    assert_eq!(stats.content_bytes, 2 * SIZE as u64);
    // The two flags together make no sense.
    let out = fx
        .tektra(&["download", "org/xet", "--no-xet", "--use-xet"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_private_repos_token_goes_to_the_token_endpoint_only() {
    let fx = xet_fixture().await;
    let out = fx
        .tektra(&[
            "download",
            "org/private",
            "model.safetensors",
            "--use-xet",
            "--token",
            TOKEN,
            "-q",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(std::fs::read(stdout(&out)).unwrap() == fx.source("org/private/model.safetensors"));
    let stats = fx.server.stats();
    assert_eq!(stats.xet_token_auth_seen, 1);
    assert!(stats.xet_cas_requests > 0);
    assert_eq!(
        stats.xet_cas_hub_token_seen, 0,
        "the CAS never saw the Hub token"
    );
    assert_eq!(stats.cdn_auth_seen, 0);
    assert!(!stderr(&out).contains(TOKEN));
}
