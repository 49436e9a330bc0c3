//! `tektra serve` as a mirror on a network: test controls closed unless
//! asked for, links by the name clients use, `--private` that cannot miss,
//! and (under `--json`) a panic that still ends in a JSON line.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::*;

/// `tektra serve DIR ARGS...` and the endpoint from its first stdout line.
pub(crate) fn serve(dir: &Path, args: &[&str]) -> (Running, String) {
    serve_with_env(dir, args, &[])
}

/// [`serve`] with `env` added to the server's environment.
pub(crate) fn serve_with_env(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> (Running, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tektra"));
    cmd.envs(env.iter().copied());
    cmd.arg("serve")
        .arg(dir)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = Running::spawn(&mut cmd);
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let endpoint = line
        .trim()
        .strip_prefix("HF_ENDPOINT=")
        .unwrap_or_else(|| panic!("tektra serve said {line:?}"))
        .to_string();
    (child, endpoint)
}

/// One HTTP/1.1 request; the status code and the whole answer.
fn request(endpoint: &str, method: &str, path: &str, extra: &str, body: &str) -> (u16, String) {
    let addr = endpoint.trim_start_matches("http://");
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    let code = answer
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, answer)
}

fn repos() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    put(dir.path(), "org/model/config.json", b"{}\n");
    put(dir.path(), "org/model/weights.bin", &bytes(1 << 20, 3));
    put(dir.path(), "datasets/org/data/train.csv", b"a,b\n1,2\n");
    dir
}

#[test]
fn test_controls_are_closed_unless_asked_for_with_a_warning() {
    let dir = repos();
    let plan = r#"{"announced_size": 1}"#;
    let (_server, endpoint) = serve(dir.path(), &["--addr", "127.0.0.1:0"]);
    assert_eq!(
        request(&endpoint, "POST", "/_tektra/faults", "", plan).0,
        404
    );
    assert_eq!(request(&endpoint, "GET", "/_tektra/stats", "", "").0, 404);

    let (mut server, endpoint) = serve(dir.path(), &["--addr", "127.0.0.1:0", "--test-controls"]);
    assert_eq!(
        request(&endpoint, "POST", "/_tektra/faults", "", plan).0,
        200
    );
    assert_eq!(request(&endpoint, "GET", "/_tektra/stats", "", "").0, 200);
    server.kill().unwrap();
    let mut err = String::new();
    server
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(err.contains("WARNING: --test-controls"), "{err}");
}

/// The server bound to 127.0.0.2 (a second host on loopback): the endpoint
/// it prints, its CDN and its links all use that name, and a download
/// through it works end to end.
#[test]
fn a_server_on_another_host_is_reached_by_its_name() {
    let dir = repos();
    let (_server, endpoint) = serve(dir.path(), &["--addr", "127.0.0.2:0"]);
    assert!(endpoint.starts_with("http://127.0.0.2:"), "{endpoint}");
    let (code, answer) = request(
        &endpoint,
        "GET",
        "/org/model/resolve/main/weights.bin",
        "",
        "",
    );
    assert_eq!(code, 302, "{answer}");
    assert!(answer.contains("location: http://127.0.0.2:"), "{answer}");
    let home = tempfile::tempdir().unwrap();
    let out = tektra_at(&["download", "org/model", "-q"], home.path(), &endpoint)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let snapshot = std::path::PathBuf::from(stdout(&out));
    assert!(std::fs::read(snapshot.join("weights.bin")).unwrap() == bytes(1 << 20, 3));
}

#[test]
fn private_takes_the_kind_from_the_id_and_refuses_unknown_repos() {
    let dir = repos();
    let (_server, endpoint) = serve(
        dir.path(),
        &[
            "--addr",
            "127.0.0.1:0",
            "--private",
            "datasets/org/data=sesame",
        ],
    );
    let path = "/api/datasets/org/data/revision/main";
    assert_eq!(request(&endpoint, "GET", path, "", "").0, 401);
    let auth = "Authorization: Bearer sesame\r\n";
    assert_eq!(request(&endpoint, "GET", path, auth, "").0, 200);
    assert_eq!(
        request(
            &endpoint,
            "GET",
            "/api/models/org/model/revision/main",
            "",
            ""
        )
        .0,
        200,
        "only the dataset is private"
    );

    for typo in [
        "org/modle=t",
        "datasets/org/model=t",
        "org/a/b/c=t",
        "org/model",
    ] {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tektra"));
        cmd.arg("serve")
            .arg(dir.path())
            .args(["--addr", "127.0.0.1:0", "--private", typo])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = Running::spawn(&mut cmd);
        // It must refuse at once; one still running after 30 s is serving.
        let start = std::time::Instant::now();
        while child.try_wait().unwrap().is_none() {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "--private {typo}: it started serving"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let out = child.into_inner().wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{typo}: {}", stderr(&out));
        assert!(stdout(&out).is_empty(), "{typo}: it started serving");
        assert!(
            stderr(&out).starts_with("error: --private"),
            "{}",
            stderr(&out)
        );
    }
}

/// A real panic: stdout on a full device makes `println!` panic after the
/// download (the path cannot be printed). Under `--json` the hook turns it
/// into one JSON line, so every stderr line still parses.
#[tokio::test(flavor = "multi_thread")]
async fn under_json_a_panic_is_one_json_line() {
    let fx = Fixture::new().await;
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let out = fx
        .tektra(&["download", "org/model", "config.json", "--json"])
        .stdout(full)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let lines = json_lines(&out);
    let errors: Vec<&str> = lines.iter().filter_map(|l| l["error"].as_str()).collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with("internal error") && errors[0].contains("stdout"),
        "{}",
        errors[0]
    );
}
