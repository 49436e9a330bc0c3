//! The test server answers S3: a signed write reads back, an unsigned
//! read is refused.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use object_store::aws::AmazonS3Builder;
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutPayload};

struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn a_signed_write_reads_back_and_an_unsigned_read_is_refused() {
    // reqwest's TLS has no provider of its own in this workspace.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir(root.path().join("bucket")).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let _server = Killed(
        Command::new(env!("CARGO_BIN_EXE_tektra-s3-test-server"))
            .args([
                "--port",
                &port.to_string(),
                "--access-key",
                "k",
                "--secret-key",
                "s",
            ])
            .arg(root.path())
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let addr = format!("127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(&addr).is_err() {
        assert!(Instant::now() < deadline, "the server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let store = AmazonS3Builder::new()
        .with_endpoint(format!("http://{addr}"))
        .with_allow_http(true)
        .with_bucket_name("bucket")
        .with_region("us-east-1")
        .with_access_key_id("k")
        .with_secret_access_key("s")
        .build()
        .unwrap();
    let key = Path::from("a/b.bin");
    store
        .put(&key, PutPayload::from(vec![7u8; 1000]))
        .await
        .unwrap();
    let back = store.get(&key).await.unwrap().bytes().await.unwrap();
    assert_eq!(back.as_ref(), &[7u8; 1000][..]);
    let unsigned = AmazonS3Builder::new()
        .with_endpoint(format!("http://{addr}"))
        .with_allow_http(true)
        .with_bucket_name("bucket")
        .with_region("us-east-1")
        .with_skip_signature(true)
        .build()
        .unwrap();
    assert!(unsigned.get(&key).await.is_err());
}
