//! A real S3 server for tests: `s3s-fs`, installed by `scripts/setup`
//! under the data folder, started on loopback over a folder the test owns.
#![allow(clippy::expect_used)]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The access key tests sign with.
pub const ACCESS_KEY: &str = "tektra-test-access";
/// The secret tests sign with (tests check it never shows in output).
pub const SECRET_KEY: &str = "tektra-test-secret-key-never-shown";

/// The `s3s-fs` binary.
///
/// # Panics
/// When it is missing: run `scripts/setup`.
#[must_use]
pub fn s3_server_binary() -> PathBuf {
    let path = std::env::var_os("TEKTRA_S3_SERVER").map_or_else(
        || super::data_dir().join("tools").join("bin").join("s3s-fs"),
        PathBuf::from,
    );
    assert!(
        path.is_file(),
        "s3s-fs missing at {}: run scripts/setup",
        path.display()
    );
    path
}

/// A running `s3s-fs`; stopped when dropped.
#[derive(Debug)]
pub struct S3Server {
    child: Child,
    addr: SocketAddr,
    root: PathBuf,
}

impl S3Server {
    /// Starts a server on `host` (a loopback address) storing under
    /// `root`, with `bucket` made, and waits until it answers.
    ///
    /// # Panics
    /// When the server does not start within 20 s.
    #[must_use]
    pub fn start(host: &str, root: &Path, bucket: &str) -> S3Server {
        std::fs::create_dir_all(root.join(bucket)).expect("making the bucket folder");
        let port = TcpListener::bind((host, 0))
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new(s3_server_binary())
            .args(["--host", host, "--port", &port.to_string()])
            .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
            .arg(root)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting s3s-fs");
        let addr: SocketAddr = format!("{host}:{port}").parse().expect("an address");
        let server = S3Server {
            child,
            addr,
            root: root.to_path_buf(),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            assert!(Instant::now() < deadline, "s3s-fs did not start on {addr}");
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    /// `http://host:port`, for `AWS_ENDPOINT_URL`.
    #[must_use]
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Where the objects of `bucket` are files (for tests that damage one).
    #[must_use]
    pub fn object_path(&self, bucket: &str, key: &str) -> PathBuf {
        self.root.join(bucket).join(key)
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
