//! The team mirror as a user sets it up: `tektra serve DIR --upstream URL`,
//! then huggingface_hub and `tektra download` with HF_ENDPOINT at it.

use std::path::Path;
use std::process::Command;

use crate::common::*;

/// Python's huggingface_hub with `home` as HF_HOME and `endpoint` as the Hub.
pub(crate) fn python(
    home: &Path,
    endpoint: &str,
    token: Option<&str>,
    script: &str,
) -> std::process::Output {
    let mut cmd = Command::new(tektra_testdata::python());
    cmd.arg("-c").arg(script);
    for var in HUB_ENV {
        cmd.env_remove(var);
    }
    cmd.env("HF_HOME", home)
        .env("HF_ENDPOINT", endpoint)
        .env("HF_HUB_DISABLE_TELEMETRY", "1")
        .env("HF_HUB_DISABLE_PROGRESS_BARS", "1");
    if let Some(token) = token {
        cmd.env("HF_TOKEN", token);
    }
    cmd.output().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn huggingface_hub_and_tektra_download_go_through_a_mirror() {
    let fx = Fixture::new().await;
    let mirror_home = tempfile::tempdir().unwrap();
    let (_mirror, endpoint) = crate::serve::serve(
        &mirror_home.path().join("hub"),
        &["--addr", "127.0.0.1:0", "--upstream", &fx.server.url()],
    );
    let home = tempfile::tempdir().unwrap();
    let py = python(
        home.path(),
        &endpoint,
        None,
        "from huggingface_hub import HfApi, snapshot_download\n\
         api = HfApi()\n\
         info = api.model_info('org/model', files_metadata=True)\n\
         print(sorted((s.rfilename, s.size) for s in info.siblings))\n\
         print(api.file_exists('org/model', 'weights.bin'), api.file_exists('org/model', 'nope.bin'))\n\
         print(snapshot_download('org/model'))",
    );
    assert!(py.status.success(), "{}", stderr(&py));
    let out = stdout(&py);
    let lines: Vec<&str> = out.lines().collect();
    let config = fx.source("org/model/config.json").len();
    assert_eq!(
        lines[0],
        format!("[('config.json', {config}), ('extra/notes.md', 6), ('weights.bin', {BIG})]")
    );
    assert_eq!(lines[1], "True False");
    let snapshot = Path::new(lines[2]);
    assert!(
        std::fs::read(snapshot.join("weights.bin")).unwrap() == fx.source("org/model/weights.bin")
    );

    // A second machine, our own client: the mirror's cache answers.
    let before = fx.server.stats().content_bytes;
    let home2 = tempfile::tempdir().unwrap();
    let out = tektra_at(&["download", "org/model", "-q"], home2.path(), &endpoint)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let ours = std::path::PathBuf::from(stdout(&out));
    assert!(std::fs::read(ours.join("weights.bin")).unwrap() == fx.source("org/model/weights.bin"));
    assert_eq!(
        fx.server.stats().content_bytes,
        before,
        "the upstream sent bytes again"
    );
    assert_eq!(before, (BIG + config + 6) as u64);

    // A private repo: only with the token the upstream accepts.
    let home3 = tempfile::tempdir().unwrap();
    let script = "from huggingface_hub import hf_hub_download\n\
                  print(hf_hub_download('org/private', 'model.safetensors'))";
    let py = python(home3.path(), &endpoint, None, script);
    assert!(!py.status.success());
    assert!(
        stderr(&py).contains("RepositoryNotFoundError"),
        "{}",
        stderr(&py)
    );
    let py = python(home3.path(), &endpoint, Some(TOKEN), script);
    assert!(py.status.success(), "{}", stderr(&py));
    let path = stdout(&py);
    assert!(std::fs::read(path.trim()).unwrap() == fx.source("org/private/model.safetensors"));
}
