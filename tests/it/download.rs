use std::time::{Duration, Instant};

use tektra_hub_server::FaultPlan;

use crate::common::*;

fn rate_limited(fx: &Fixture, bytes_per_sec: u64) {
    fx.server.faults().set(FaultPlan {
        rate_limit: Some(bytes_per_sec),
        ..FaultPlan::default()
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn whole_repo_with_json_events_and_the_snapshot_path() {
    let fx = Fixture::new().await;
    let out = fx
        .tektra(&["download", "org/model", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let dir = std::path::PathBuf::from(stdout(&out));
    assert!(dir.starts_with(fx.cache().join("models--org--model/snapshots")));
    assert!(std::fs::read(dir.join("weights.bin")).unwrap() == fx.source("org/model/weights.bin"));
    assert_eq!(
        std::fs::read(dir.join("extra/notes.md")).unwrap(),
        b"notes\n"
    );
    let events: Vec<serde_json::Value> = json_lines(&out);
    let last_file_states: Vec<&str> = ["config.json", "weights.bin", "extra/notes.md"]
        .iter()
        .map(|f| {
            events
                .iter()
                .rev()
                .find(|e| e["file"] == *f)
                .and_then(|e| e["state"].as_str())
                .unwrap()
        })
        .collect();
    assert_eq!(last_file_states, ["done", "done", "done"]);
    let last = events.last().unwrap();
    assert_eq!(last["aggregate"]["files_done"], 3);
    assert_eq!(
        last["aggregate"]["bytes_done"],
        last["aggregate"]["bytes_total"]
    );
    assert!(events.iter().any(|e| e["state"] == "verifying"));
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_half_way_resumes_and_fetches_about_one_chunk_again() {
    let fx = Fixture::new().await;
    rate_limited(&fx, 2 << 20);
    let mut child = Running::spawn(&mut fx.tektra(&[
        "download",
        "org/model",
        "weights.bin",
        "--connections",
        "4",
        "--quiet",
    ]));
    let blobs = fx.cache().join("models--org--model/blobs");
    wait_until(Duration::from_secs(60), || {
        journal_covered(&blobs) >= BIG as u64 / 2
    })
    .await;
    child.kill().unwrap(); // SIGKILL: no chance to clean up
    let _ = child.wait();
    let first = fx.server.stats().content_bytes;
    assert!(first < BIG as u64, "the first run finished before the kill");

    fx.server.faults().set(FaultPlan::default());
    let out = fx
        .tektra(&["download", "org/model", "weights.bin", "--quiet"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let path = stdout(&out);
    assert!(std::fs::read(&path).unwrap() == fx.source("org/model/weights.bin"));
    let second = fx.server.stats().content_bytes - first;
    let refetched = (first + second).saturating_sub(BIG as u64);
    // Pieces are 6 MiB here (48 MiB over 4 connections x 2); what the kill
    // cost is at most about one piece plus the blocks in flight.
    let chunk = (BIG as u64).div_ceil(8);
    eprintln!(
        "first run {first} B, second {second} B, fetched again {refetched} B (chunk {chunk} B)"
    );
    assert!(
        second < BIG as u64 / 2 + chunk,
        "the second run did not resume"
    );
    assert!(
        refetched <= chunk + 4 * (256 << 10),
        "fetched again {refetched} B"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_stops_the_download_and_the_rerun_resumes() {
    let fx = Fixture::new().await;
    rate_limited(&fx, 1 << 20);
    let mut child = Running::spawn(&mut fx.tektra(&["download", "org/model", "weights.bin"]));
    wait_until(Duration::from_secs(30), || {
        fx.server.stats().content_bytes > 4 << 20
    })
    .await;
    let pid = i32::try_from(child.id()).unwrap();
    let sent = Instant::now();
    assert_eq!(unsafe_kill(pid, libc::SIGINT), 0);
    // It must stop by itself (exit 130, "cancelled"); how long that takes
    // is printed, not asserted: on a loaded 2-core machine scheduling alone
    // can add seconds. The 30 s limit only catches a hang.
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            sent.elapsed() < Duration::from_secs(30),
            "still running 30 s after Ctrl-C"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let took = sent.elapsed();
    eprintln!("exited {took:?} after SIGINT");
    let out = child.into_inner().wait_with_output().unwrap();
    assert_eq!(status.code(), Some(130), "{}", stderr(&out));
    assert!(stderr(&out).contains("cancelled"), "{}", stderr(&out));
    let first = fx.server.stats().content_bytes;

    fx.server.faults().set(FaultPlan::default());
    let out = fx
        .tektra(&["download", "org/model", "weights.bin", "-q"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(std::fs::read(stdout(&out)).unwrap() == fx.source("org/model/weights.bin"));
    assert!(
        fx.server.stats().content_bytes - first < BIG as u64,
        "the rerun started over"
    );
}

#[allow(unsafe_code)]
fn unsafe_kill(pid: i32, signal: i32) -> i32 {
    // SAFETY: sends a signal to our own child process; no memory is involved.
    unsafe { libc::kill(pid, signal) }
}

/// The second process starts while the first holds the file's lock (its
/// bytes are moving), waits, and then finds the blob: it says it waited,
/// and the server sent the file's bytes once.
#[tokio::test(flavor = "multi_thread")]
async fn two_processes_fetching_one_file_share_the_work() {
    let fx = Fixture::new().await;
    // 48 MiB at 2 MiB/s on each of 8 connections: about 3 s of transfer.
    rate_limited(&fx, 2 << 20);
    let args = ["download", "org/model", "weights.bin", "--json"];
    let a = Running::spawn(&mut fx.tektra(&args));
    wait_until(Duration::from_secs(60), || {
        fx.server.stats().content_bytes > 0
    })
    .await;
    let b = Running::spawn(&mut fx.tektra(&args));
    let (a, b) = (
        a.into_inner().wait_with_output().unwrap(),
        b.into_inner().wait_with_output().unwrap(),
    );
    assert!(
        a.status.success() && b.status.success(),
        "{} / {}",
        stderr(&a),
        stderr(&b)
    );
    assert_eq!(stdout(&a), stdout(&b));
    assert!(std::fs::read(stdout(&a)).unwrap() == fx.source("org/model/weights.bin"));
    let waited = |out: &std::process::Output| {
        json_lines(out).iter().any(|e| {
            e["file"] == "weights.bin"
                && e["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("waiting for another process"))
        })
    };
    assert!(!waited(&a), "the first one had nobody to wait for");
    assert!(waited(&b), "the second one did not wait: {}", stderr(&b));
    let served = fx.server.stats().content_bytes;
    assert_eq!(
        served, BIG as u64,
        "the file's bytes were sent more than once"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn private_repo_with_and_without_token() {
    let fx = Fixture::new().await;
    let out = fx
        .tektra(&["download", "org/private", "-q"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("error: repository org/private") && err.contains("status code 401"),
        "{err}"
    );
    let out = fx
        .tektra(&["download", "org/private", "-q", "--token", TOKEN])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(fx.server.stats().cdn_auth_seen, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn offline_names_what_is_missing_then_works_from_the_cache() {
    let fx = Fixture::new().await;
    let out = fx
        .tektra(&["download", "org/model", "config.json", "--offline"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("offline") && stderr(&out).contains("org/model"),
        "{}",
        stderr(&out)
    );
    assert!(
        fx.tektra(&["download", "org/model", "config.json", "-q"])
            .output()
            .unwrap()
            .status
            .success()
    );
    let before = fx.server.stats().hub_requests;
    let out = fx
        .tektra(&["download", "org/model", "config.json", "--offline"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(fx.server.stats().hub_requests, before);
}

/// Under `--json` the failure is a JSON line too, so a UI reading stderr as
/// NDJSON never meets a line it cannot parse.
#[tokio::test(flavor = "multi_thread")]
async fn under_json_the_failure_reason_is_a_json_line() {
    let fx = Fixture::new().await;
    let out = fx
        .tektra(&["download", "org/model", "no/such/file.bin", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let lines: Vec<serde_json::Value> = json_lines(&out);
    let reason = lines.last().unwrap()["error"].as_str().unwrap().to_string();
    assert!(reason.contains("no/such/file.bin"), "{reason}");
}

/// A write that fails half way (here the file-size limit, as a full disk
/// would) ends in a clear error, nothing in the snapshot, and a partial
/// file the next run resumes.
#[tokio::test(flavor = "multi_thread")]
async fn a_failing_disk_is_a_clear_error_and_the_rerun_resumes() {
    let fx = Fixture::new().await;
    let tektra = env!("CARGO_BIN_EXE_tektra");
    // A full disk: files may not grow past 16 MiB (bash's `ulimit -f` counts
    // KiB), and SIGXFSZ is ignored so the write fails with EFBIG instead of
    // killing the process.
    let mut bash = std::process::Command::new("bash");
    // The same environment `fx.tektra` gives: its settings and removals.
    for (key, value) in fx.tektra(&[]).get_envs() {
        match value {
            Some(value) => bash.env(key, value),
            None => bash.env_remove(key),
        };
    }
    let out = bash
        .env("TEKTRA", tektra)
        .arg("-c")
        .arg("trap '' XFSZ; ulimit -f 16384; exec \"$TEKTRA\" download org/model weights.bin -q --connections 1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.starts_with("error: writing ") && err.contains(".incomplete"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    let snapshots = fx.cache().join("models--org--model/snapshots");
    assert!(
        !snapshots.exists() || tree_is_empty(&snapshots),
        "something reached the snapshot"
    );
    // One connection writes in order, so the disk fills at 16 MiB and what
    // was written before is journaled and kept.
    let kept = journal_covered(&fx.cache().join("models--org--model/blobs"));
    assert!(kept >= 15 << 20, "only {kept} B kept");
    let before = settled_content_bytes(&fx).await;
    let out = fx
        .tektra(&["download", "org/model", "weights.bin", "-q"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(std::fs::read(stdout(&out)).unwrap() == fx.source("org/model/weights.bin"));
    let second = settled_content_bytes(&fx).await - before;
    assert!(
        second <= BIG as u64 - kept + (1 << 20),
        "the rerun fetched {second} B with {kept} B kept: it did not resume"
    );
}

/// The server's count of body bytes sent, once it stops moving (a killed or
/// failed client's connections drain for a moment after it exits).
async fn settled_content_bytes(fx: &Fixture) -> u64 {
    let mut last = fx.server.stats().content_bytes;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = fx.server.stats().content_bytes;
        if now == last {
            return now;
        }
        last = now;
    }
    panic!("the server kept sending for 5 s after the client stopped");
}

fn tree_is_empty(dir: &std::path::Path) -> bool {
    std::fs::read_dir(dir).map_or(true, |d| {
        d.flatten()
            .all(|e| e.path().is_dir() && tree_is_empty(&e.path()))
    })
}
