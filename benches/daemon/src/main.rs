//! `scripts/bench daemon`: what the daemon adds over the engine it wraps.
//! Same model (SmolLM2 Q4_1), prompt and greedy settings; the engine
//! called directly in this process, then the release `tektra daemon` as a
//! child, one after the other so they never share the cores.
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    clippy::unwrap_used,
    clippy::expect_used
)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tektra_bench_support::history::{self, Metric};
use tektra_bench_support::median;
use tektra_inference::{Engine, EngineOptions, ModelRef, Prompt, Sampling};
use tokio_util::sync::CancellationToken;

const PROMPT: &str = "Once upon a time, in a small village by the sea, there lived";
const TOKENS: usize = 128;
const REPS: usize = 9;

/// A `tektra daemon` child, killed when dropped.
struct Daemon {
    child: Child,
    url: String,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Daemon {
    async fn start(tektra: &Path, model: Option<&Path>) -> Daemon {
        let mut cmd = Command::new(tektra);
        cmd.args(["daemon", "--addr", "127.0.0.1:0"]);
        if let Some(m) = model {
            cmd.arg("--model").arg(m);
        }
        let mut child = cmd
            .env("HF_HUB_OFFLINE", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("tektra daemon");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let d = Daemon {
            child,
            url: line.trim().to_string(),
        };
        let client = reqwest::Client::new();
        let start = Instant::now();
        loop {
            if let Ok(r) = client.get(format!("{}/health", d.url)).send().await
                && r.status() == 200
            {
                return d;
            }
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "daemon never healthy"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn rss_mb(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let kb: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        kb / 1024.0
    }
}

/// One streamed completion: (client-side first token, decode tokens/s
/// seen by the client, the server's own first-token time, tokens).
async fn stream(client: &reqwest::Client, url: &str, model: &str) -> (f64, f64, f64, usize) {
    let body = json!({"model": model, "prompt": PROMPT, "max_tokens": TOKENS, "temperature": 0,
                      "stream": true, "stream_options": {"include_usage": true}});
    let sent = Instant::now();
    let mut res = client
        .post(format!("{url}/v1/completions"))
        .json(&body)
        .send()
        .await
        .unwrap();
    let (mut first, mut last) = (None, sent);
    let (mut server_ttft, mut tokens) = (0.0, 0);
    let mut buffer = String::new();
    while let Some(bytes) = res.chunk().await.unwrap() {
        buffer.push_str(std::str::from_utf8(&bytes).unwrap());
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let Some(data) = block.trim().strip_prefix("data: ") else {
                continue;
            };
            if data == "[DONE]" {
                continue;
            }
            let chunk: Value = serde_json::from_str(data).unwrap();
            if chunk["choices"][0]["text"]
                .as_str()
                .is_some_and(|t| !t.is_empty())
            {
                let now = Instant::now();
                first.get_or_insert(now);
                last = now;
            }
            if let Some(ms) = chunk["timings"]["first_token_ms"].as_f64() {
                server_ttft = ms / 1000.0;
                if std::env::var_os("BENCH_DEBUG").is_some() {
                    eprintln!(
                        "server-side {} tok/s",
                        chunk["timings"]["predicted_per_second"]
                    );
                }
            }
            if let Some(n) = chunk["usage"]["completion_tokens"].as_u64() {
                tokens = usize::try_from(n).unwrap();
            }
        }
    }
    let first = first.expect("tokens");
    let decode = last.duration_since(first).as_secs_f64();
    #[allow(clippy::cast_precision_loss)]
    let rate = (tokens.saturating_sub(1)) as f64 / decode;
    (
        first.duration_since(sent).as_secs_f64(),
        rate,
        server_ttft,
        tokens,
    )
}

/// `n` streams at once: (tokens in all, seconds of wall time).
async fn concurrent(url: &str, model: &str, n: usize) -> (usize, f64) {
    let start = Instant::now();
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let (url, model) = (url.to_string(), model.to_string());
            tokio::spawn(async move { stream(&reqwest::Client::new(), &url, &model).await.3 })
        })
        .collect();
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    (total, start.elapsed().as_secs_f64())
}

fn tektra_bin() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"),
        PathBuf::from,
    );
    target.join("release").join("tektra")
}

#[tokio::main]
async fn main() {
    hf_hub::install_tls_provider();
    let model = tektra_testdata::smollm2_gguf();
    let name = model.display().to_string();
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    println!(
        "daemon: SmolLM2-135M Q4_1, \"{PROMPT}\" + {TOKENS} greedy tokens, {REPS} runs each, {cpus} threads, median"
    );

    // Idle, with no model.
    let tektra = tektra_bin();
    let idle = Daemon::start(&tektra, None).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle_rss = idle.rss_mb();
    drop(idle);

    // The engine called directly and the daemon's streamed API, taking
    // turns (this machine's speed drifts between minutes): never at once.
    let cancel = CancellationToken::new();
    let reference: ModelRef = name.parse().unwrap();
    let mut engine = Engine::load(
        &reference,
        &EngineOptions::default(),
        tektra_progress::silent(),
        &cancel,
    )
    .await
    .unwrap();
    let sampling = Sampling::greedy(TOKENS);
    let prompt = Prompt::Text(PROMPT.into());
    let daemon = Daemon::start(&tektra, Some(&model)).await;
    let client = reqwest::Client::new();
    stream(&client, &daemon.url, &name).await; // the HTTP connection, warm
    let (mut direct_tps, mut direct_ttft) = (Vec::new(), Vec::new());
    let (mut api_tps, mut api_ttft, mut added) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..REPS {
        let stats = engine
            .generate(&prompt, &sampling, &mut |_| {}, &cancel)
            .unwrap();
        direct_tps.push(stats.tokens_per_sec);
        direct_ttft.push(stats.time_to_first_token.as_secs_f64());
        let (ttft, tps, server_ttft, _) = stream(&client, &daemon.url, &name).await;
        api_tps.push(tps);
        api_ttft.push(ttft);
        added.push(ttft - server_ttft);
    }
    drop(engine);
    let (direct_tps, direct_ttft) = (median(direct_tps), median(direct_ttft));
    let (api_tps, api_ttft, added) = (median(api_tps), median(api_ttft), median(added));
    let loaded_rss = daemon.rss_mb();
    let (one_tokens, one_secs) = concurrent(&daemon.url, &name, 1).await;
    let (eight_tokens, eight_secs) = concurrent(&daemon.url, &name, 8).await;
    #[allow(clippy::cast_precision_loss)]
    let (one_rate, eight_rate) = (
        one_tokens as f64 / one_secs,
        eight_tokens as f64 / eight_secs,
    );

    let verdict = |ok: bool| if ok { "PASS" } else { "MISS" };
    let tps_ratio = api_tps / direct_tps;
    println!(
        "  Engine::generate direct   {direct_tps:7.1} tok/s  first token {:6.1} ms",
        direct_ttft * 1e3
    );
    println!(
        "  streamed API (client)     {api_tps:7.1} tok/s  first token {:6.1} ms",
        api_ttft * 1e3
    );
    println!(
        "  tokens/s ratio            {tps_ratio:7.3}x  (target >= 0.97x) {}",
        verdict(tps_ratio >= 0.97)
    );
    println!(
        "  first-token latency added {:7.1} ms  (client's first token minus the engine's own; target < 20 ms) {}",
        added * 1e3,
        verdict(added < 0.020)
    );
    println!(
        "  8 concurrent streams      {eight_rate:7.1} tok/s in all vs {one_rate:.1} for one: {:.2}x (requests queue per model; no batching)",
        eight_rate / one_rate
    );
    println!(
        "  idle daemon, no model     {idle_rss:7.1} MB RSS (target < 30 MB) {}",
        verdict(idle_rss < 30.0)
    );
    println!("  with SmolLM2 loaded       {loaded_rss:7.1} MB RSS");
    for line in history::record(
        "daemon",
        vec![
            Metric::ratio("api_vs_direct_tokens_per_sec", tps_ratio),
            Metric::cost("added_first_token_ms", added * 1e3, "ms"),
            Metric::value("eight_streams_vs_one", eight_rate / one_rate, "x"),
            Metric::cost("idle_rss_mb", idle_rss, "MB"),
        ],
    ) {
        println!("{line}");
    }
}
