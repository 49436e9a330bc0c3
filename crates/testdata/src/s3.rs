//! A real S3 server for tests: `tektra-s3-test-server` (s3s-fs's file
//! system behind s3s), built with the workspace, started on loopback over a
//! folder the test owns.
#![allow(clippy::expect_used)]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The access key tests sign with.
pub const ACCESS_KEY: &str = "tektra-test-access";
/// The secret tests sign with (tests check it never shows in output).
pub const SECRET_KEY: &str = "tektra-test-secret-key-never-shown";

/// The `tektra-s3-test-server` binary: `TEKTRA_S3_SERVER`, else beside
/// the running test or benchmark (`target/<profile>/`).
///
/// # Panics
/// When it is missing: `cargo build -p tektra-s3-test-server` (the
/// workspace's test build makes it).
#[must_use]
pub fn s3_server_binary() -> PathBuf {
    const NAME: &str = "tektra-s3-test-server";
    if let Some(path) = std::env::var_os("TEKTRA_S3_SERVER") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().unwrap_or_default();
    // Tests run from target/<profile>/deps, benchmarks from target/<profile>.
    let found = exe
        .ancestors()
        .skip(1)
        .take(2)
        .map(|dir| dir.join(NAME))
        .find(|p| p.is_file());
    found.unwrap_or_else(|| {
        panic!(
            "{NAME} is not built beside {}: run cargo build -p {NAME} (with --release for benchmarks)",
            exe.display()
        )
    })
}

/// A running S3 server; stopped when dropped.
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
            .expect("starting the S3 test server");
        let addr: SocketAddr = format!("{host}:{port}").parse().expect("an address");
        let server = S3Server {
            child,
            addr,
            root: root.to_path_buf(),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            assert!(
                Instant::now() < deadline,
                "the S3 test server did not start on {addr}"
            );
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
