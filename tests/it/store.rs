//! The three-command team setup with a shared object store, as a user
//! runs it: an S3 server (s3s-fs), `tektra serve --upstream --store
//! s3://...` with credentials in the AWS variables, huggingface_hub with
//! HF_ENDPOINT at the mirror; then `tektra download --source` straight
//! from the bucket on another machine, and from a `file://` store.

use std::io::Read;
use std::path::Path;
use std::process::Command;

use tektra_testdata::{ACCESS_KEY, S3Server, SECRET_KEY};

use crate::common::*;

fn aws_env(s3: &S3Server) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ACCESS_KEY_ID", ACCESS_KEY.to_string()),
        ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.to_string()),
        ("AWS_ENDPOINT_URL", s3.endpoint()),
        ("AWS_REGION", "us-east-1".to_string()),
    ]
}

/// `tektra download org/model --source URL` into a new HF_HOME.
fn download_from(
    source: &str,
    home: &Path,
    env: &[(&'static str, String)],
) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tektra"));
    for var in HUB_ENV {
        cmd.env_remove(var);
    }
    cmd.args(["download", "org/model", "--source", source, "--json"])
        .env("HF_HOME", home)
        // Nothing listens here: the Hub is never asked.
        .env("HF_ENDPOINT", "http://127.0.0.1:9")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())));
    cmd.output().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_team_mirror_fills_a_bucket_that_download_reads_straight() {
    let fx = Fixture::new().await;
    let s3_root = tempfile::tempdir().unwrap();
    let s3 = S3Server::start("127.0.0.1", s3_root.path(), "models");
    let env = aws_env(&s3);
    let env_refs: Vec<(&str, &str)> = env
        .iter()
        .map(|(k, v)| (*k, v.as_str()))
        .chain([("RUST_LOG", "debug")])
        .collect();
    let mirror_home = tempfile::tempdir().unwrap();
    let (mut mirror, endpoint) = crate::serve::serve_with_env(
        &mirror_home.path().join("hub"),
        &[
            "--addr",
            "127.0.0.1:0",
            "--upstream",
            &fx.server.url(),
            "--store",
            "s3://models/team",
        ],
        &env_refs,
    );
    let home = tempfile::tempdir().unwrap();
    let py = crate::mirror::python(
        home.path(),
        &endpoint,
        None,
        "from huggingface_hub import snapshot_download\nprint(snapshot_download('org/model'))",
    );
    assert!(py.status.success(), "{}", stderr(&py));
    let weights = fx.source("org/model/weights.bin");
    let snapshot = std::path::PathBuf::from(stdout(&py));
    assert!(std::fs::read(snapshot.join("weights.bin")).unwrap() == weights);

    // The mirror writes to the bucket in the background: wait for the blob.
    let blob = s3.object_path("models", &format!("team/blobs/{}", sha256_hex(&weights)));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::fs::metadata(&blob).map(|m| m.len()).ok() != Some(weights.len() as u64) {
        assert!(
            std::time::Instant::now() < deadline,
            "the mirror did not fill the bucket"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }

    // Another machine reads the model straight from the bucket.
    let home2 = tempfile::tempdir().unwrap();
    let out = download_from("s3://models/team", home2.path(), &env);
    assert!(out.status.success(), "{}", stderr(&out));
    let dir = std::path::PathBuf::from(stdout(&out));
    assert!(std::fs::read(dir.join("weights.bin")).unwrap() == weights);
    assert_eq!(
        std::fs::read(dir.join("config.json")).unwrap(),
        fx.source("org/model/config.json")
    );
    let events = json_lines(&out);
    assert!(
        events.iter().any(|e| e.to_string().contains("weights.bin")),
        "no progress event named the file"
    );

    // Without credentials: a clear error, no panic.
    let home3 = tempfile::tempdir().unwrap();
    let no_keys: Vec<_> = env
        .iter()
        .filter(|(k, _)| !k.contains("KEY"))
        .cloned()
        .collect();
    let out = download_from("s3://models/team", home3.path(), &no_keys);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("store"), "{}", stderr(&out));

    // The secret never reached the mirror's log, even at debug level.
    mirror.kill().unwrap();
    let mut log = String::new();
    mirror
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    assert!(
        log.contains("sharing blobs through s3://models/team"),
        "{log}"
    );
    assert!(
        !log.contains(SECRET_KEY),
        "the secret is in the mirror's log"
    );
}

#[test]
fn download_reads_a_folder_store_and_refuses_a_damaged_blob() {
    // A folder store laid out by a mirror: filled here through the library.
    let store_dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}", store_dir.path().display());
    let data = bytes(3 << 20, 11);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let store = tektra_store::BlobStore::open(&tektra_store::StoreOptions::new(&url)).unwrap();
        let work = tempfile::tempdir().unwrap();
        let path = work.path().join("w");
        std::fs::write(&path, &data).unwrap();
        let etag = sha256_hex(&data);
        store.put_blob(&etag, &path).await.unwrap();
        let file = hf_hub::resolve::TreeFile {
            path: hf_hub::ids::RepoPath::new("weights.bin").unwrap(),
            size: data.len() as u64,
            etag,
            blob_id: "2222222222222222222222222222222222222222".into(),
            lfs: true,
            xet_hash: None,
        };
        let listing = tektra_store::StoredListing {
            commit: "89abcdef0123456789abcdef0123456789abcdef".into(),
            files: vec![file],
        };
        let repo = hf_hub::ids::RepoRef::model("org/model").unwrap();
        store
            .put_listing(&repo, &hf_hub::ids::Revision::main(), &listing)
            .await
            .unwrap();
    });
    let home = tempfile::tempdir().unwrap();
    let out = download_from(&url, home.path(), &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let dir = std::path::PathBuf::from(stdout(&out));
    assert!(std::fs::read(dir.join("weights.bin")).unwrap() == data);

    // One byte flipped in the store: an error naming the blob, nothing cached.
    let blob = store_dir.path().join("blobs").join(sha256_hex(&data));
    let mut held = std::fs::read(&blob).unwrap();
    held[100] ^= 1;
    std::fs::write(&blob, held).unwrap();
    let home2 = tempfile::tempdir().unwrap();
    let out = download_from(&url, home2.path(), &[]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("corrupt"), "{}", stderr(&out));
    let cached = home2
        .path()
        .join("hub/models--org--model/blobs")
        .join(sha256_hex(&data));
    assert!(!cached.exists(), "a damaged blob reached the cache");
}
