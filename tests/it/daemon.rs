//! `tektra daemon` as a user starts it: the binary, its flags, its output.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{Running, stderr};

fn curl(args: &[&str]) -> String {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "60"])
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "curl {args:?}: {}", stderr(&out));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn the_daemon_serves_a_model_given_at_start_and_stops_on_request() {
    let home = tempfile::tempdir().unwrap();
    let model = tektra_testdata::smollm2_gguf();
    let mut daemon = Running::spawn(
        Command::new(env!("CARGO_BIN_EXE_tektra"))
            .args([
                "daemon",
                "--addr",
                "127.0.0.1:0",
                "--threads",
                "1",
                "--model",
            ])
            .arg(&model)
            .env("HF_HOME", home.path())
            .env("HF_HUB_OFFLINE", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null()),
    );
    // The first line of stdout is the URL (port 0 asked for any).
    let mut line = String::new();
    BufReader::new(daemon.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line.trim().to_string();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let start = Instant::now();
    while curl(&[
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        &format!("{url}/health"),
    ]) != "200"
    {
        assert!(start.elapsed() < Duration::from_secs(60), "never healthy");
        std::thread::sleep(Duration::from_millis(50));
    }
    let body = format!(
        r#"{{"model":"{}","prompt":"The capital of France is","max_tokens":4,"temperature":0}}"#,
        model.display()
    );
    let answer = curl(&["-d", &body, &format!("{url}/v1/completions")]);
    let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
    assert!(
        answer["choices"][0]["text"]
            .as_str()
            .unwrap()
            .contains("Paris"),
        "{answer}"
    );
    // A local path other than the ones given is refused.
    let other = curl(&[
        "-d",
        r#"{"model":"/etc/hostname","prompt":"x"}"#,
        &format!("{url}/v1/completions"),
    ]);
    assert!(other.contains("invalid_request_error"), "{other}");
    let page = curl(&[&format!("{url}/")]);
    assert!(page.contains("<title>Tektra daemon</title>"));
    // SIGINT: it stops cleanly.
    #[allow(unsafe_code)]
    // SAFETY: kill(2) on our own child's pid.
    unsafe {
        libc::kill(i32::try_from(daemon.id()).unwrap(), libc::SIGINT);
    }
    let status = daemon.into_inner().wait().unwrap();
    assert!(status.success(), "{status}");
}

#[test]
fn an_address_other_machines_reach_needs_an_api_key() {
    // Refused before binding: nothing listens off loopback.
    let out = Command::new(env!("CARGO_BIN_EXE_tektra"))
        .args(["daemon", "--addr", "0.0.0.0:0"])
        .env_remove("TEKTRA_API_KEY")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("--api-key"), "{}", stderr(&out));
}
