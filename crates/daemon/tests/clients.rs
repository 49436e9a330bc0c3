//! Clients nobody here wrote: OpenAI's Python package, curl, and a real
//! headless Chromium driven through ChromeDriver (WebDriver over HTTP).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]

mod common;

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::{FILE, Fixture, model};
use serde_json::{Value, json};
use tektra_hub_server::FaultPlan;

const KEY: &str = "sk-tektra-test";

#[tokio::test(flavor = "multi_thread")]
async fn the_openai_python_client_lists_chats_streams_and_completes() {
    let fx = Fixture::with(false, |c| c.api_key = Some(KEY.into())).await;
    let script = r#"
import json, sys, openai
client = openai.OpenAI(base_url=sys.argv[1] + "/v1", api_key=sys.argv[2], max_retries=0)
model = sys.argv[3]
ask = [{"role": "user", "content": "What is the capital of France?"}]
whole = client.chat.completions.create(model=model, messages=ask, temperature=0, max_tokens=12)
parts, usage = [], None
for chunk in client.chat.completions.create(model=model, messages=ask, temperature=0, max_tokens=12,
                                            stream=True, stream_options={"include_usage": True}):
    if chunk.choices and chunk.choices[0].delta.content:
        parts.append(chunk.choices[0].delta.content)
    if chunk.usage:
        usage = chunk.usage.completion_tokens
text = client.completions.create(model=model, prompt="The capital of France is", max_tokens=5, temperature=0)
ids = [m.id for m in client.models.list()]
try:
    client.chat.completions.create(model="org/none:x.gguf", messages=ask)
    missing = "no error"
except openai.NotFoundError as e:
    missing = e.body["message"] if isinstance(e.body, dict) else str(e)
try:
    openai.OpenAI(base_url=sys.argv[1] + "/v1", api_key="wrong", max_retries=0).models.list()
    denied = False
except openai.AuthenticationError:
    denied = True
print(json.dumps({"whole": whole.choices[0].message.content, "finish": whole.choices[0].finish_reason,
                  "whole_tokens": whole.usage.completion_tokens, "parts": parts, "usage": usage,
                  "text": text.choices[0].text, "ids": ids, "missing": missing, "denied": denied}))
"#;
    let url = fx.daemon.url();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(tektra_testdata::python())
            .args(["-c", script, &url, KEY, &model()])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: Value = serde_json::from_slice(&out.stdout).unwrap();
    println!("{got}");
    let parts: Vec<&str> = got["parts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    assert!(parts.len() > 1, "streamed in pieces: {got}");
    assert_eq!(parts.concat(), got["whole"].as_str().unwrap());
    assert_eq!(got["usage"], got["whole_tokens"]);
    assert!(got["text"].as_str().unwrap().contains("Paris"), "{got}");
    assert!(
        got["ids"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| *i == json!(model()))
    );
    assert!(
        got["missing"].as_str().unwrap().contains("org/none"),
        "{got}"
    );
    assert_eq!(got["denied"], true);
}

#[tokio::test(flavor = "multi_thread")]
async fn curl_follows_a_job_event_stream_to_its_end() {
    let fx = Fixture::new().await;
    let (_, job) = fx
        .post("/v1/jobs", json!({"kind": "pull", "model": model()}))
        .await;
    let url = fx.url(&format!("/v1/jobs/{}/events", job["id"].as_str().unwrap()));
    let out = tokio::task::spawn_blocking(move || {
        Command::new("curl")
            .args(["-sSN", "--max-time", "60", &url])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let data: Vec<Value> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let ids = text.lines().filter(|l| l.starts_with("id: ")).count();
    assert_eq!(ids, data.len());
    assert!(
        data.iter()
            .any(|e| e["file"] == FILE && e["state"] == "downloading")
    );
    let last = data.last().unwrap();
    assert_eq!(
        (last["file"].is_null(), last["state"].as_str()),
        (true, Some("done"))
    );
}

/// ChromeDriver on a free loopback port, killed when dropped.
struct Driver {
    child: std::process::Child,
    url: String,
    session: String,
    client: reqwest::Client,
    shots: PathBuf,
    _profile: tempfile::TempDir,
}

impl Drop for Driver {
    /// The whole process group: ChromeDriver and the browser it started,
    /// which outlives a killed ChromeDriver otherwise.
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            #[allow(unsafe_code)]
            // SAFETY: kill(2) on the group our own child leads.
            unsafe {
                libc::kill(-pid, libc::SIGKILL);
            }
        }
        let _ = self.child.wait();
    }
}

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

impl Driver {
    async fn start() -> Driver {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver (Debian's chromium-driver, installed by scripts/setup)");
        let url = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        let start = Instant::now();
        while client.get(format!("{url}/status")).send().await.is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "chromedriver did not start"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let profile = tempfile::tempdir().unwrap();
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--window-size=1280,900",
            &format!("--user-data-dir={}", profile.path().display()),
        ];
        let caps = json!({"capabilities": {"alwaysMatch": {"browserName": "chrome",
            "goog:chromeOptions": {"binary": "/usr/bin/chromium", "args": args}}}});
        let res: Value = client
            .post(format!("{url}/session"))
            .json(&caps)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let session = res["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {res}"))
            .to_string();
        let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("daemon-page");
        std::fs::create_dir_all(&shots).unwrap();
        Driver {
            child,
            url: format!("{url}/session/{session}"),
            session,
            client,
            shots,
            _profile: profile,
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self.client.request(method, format!("{}{path}", self.url));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res: Value = req.send().await.unwrap().json().await.unwrap();
        res["value"].clone()
    }

    async fn go(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({"url": url})))
            .await;
    }

    async fn find(&self, css: &str) -> String {
        let v = self
            .call(
                reqwest::Method::POST,
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        v[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no element {css}: {v}"))
            .to_string()
    }

    async fn click(&self, css: &str) {
        let id = self.find(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{id}/click"),
            Some(json!({})),
        )
        .await;
    }

    async fn type_in(&self, css: &str, text: &str) {
        let id = self.find(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{id}/value"),
            Some(json!({"text": text})),
        )
        .await;
    }

    async fn js(&self, script: &str) -> Value {
        self.call(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
        .await
    }

    /// Saves a screenshot; returns its path.
    async fn shot(&self, name: &str) -> PathBuf {
        let png = self.call(reqwest::Method::GET, "/screenshot", None).await;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().unwrap_or_default())
            .unwrap_or_default();
        let path = self.shots.join(format!("{name}.png"));
        std::fs::write(&path, bytes).unwrap();
        path
    }

    /// Polls `script` until `done(value)`; on time out, a screenshot and a
    /// panic naming it.
    async fn until(
        &self,
        what: &str,
        limit: Duration,
        script: &str,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let start = Instant::now();
        loop {
            let v = self.js(script).await;
            if done(&v) {
                return v;
            }
            if start.elapsed() > limit {
                let shot = self
                    .shot(&format!("failed-{}", what.replace(' ', "-")))
                    .await;
                panic!(
                    "{what}: not reached in {limit:?} (last {v}); screenshot {}",
                    shot.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(40)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_page_pulls_with_moving_bars_cancels_and_chats_in_chromium() {
    let fx = Fixture::with(true, |c| c.idle_timeout = None).await;
    // Slow enough for the bars to be seen moving (about 6 s for the model).
    fx.hub.faults().set(FaultPlan {
        rate_limit: Some(16 << 20),
        ..FaultPlan::default()
    });
    let driver = Driver::start().await;
    println!(
        "chromium session {}; screenshots in {}",
        driver.session,
        driver.shots.display()
    );
    driver.go(&fx.daemon.url()).await;
    driver
        .until(
            "page ready",
            Duration::from_secs(10),
            "return document.getElementById('health').textContent",
            |v| v == "ready",
        )
        .await;

    // Pull: the total bar moves through several values, then finishes.
    driver.type_in("#pull-model", &model()).await;
    driver.click("#pull-button").await;
    let bar = "const j = document.querySelector('.job'); if (!j) return null; \
               const f = j.querySelector('.file .bar'); \
               return {state: j.className, total: parseFloat(j.querySelector('.total').dataset.percent || '0'), \
                       file: f ? parseFloat(f.dataset.percent || '0') : null, figures: j.querySelector('.figures').textContent}";
    let mut seen = std::collections::BTreeSet::new();
    let start = Instant::now();
    let mut mid_shot = false;
    loop {
        let v = driver.js(bar).await;
        if let Some(total) = v["total"].as_f64() {
            seen.insert((total * 10.0) as i64);
            if !mid_shot && total > 30.0 && total < 90.0 {
                driver.shot("pulling").await;
                mid_shot = true;
            }
        }
        if v["state"].as_str().is_some_and(|s| s.contains("done")) {
            assert_eq!(v["total"].as_f64(), Some(100.0), "{v}");
            assert_eq!(v["file"].as_f64(), Some(100.0), "{v}");
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the pull did not finish: {v}"
        );
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    let moving: Vec<_> = seen.iter().filter(|p| **p > 0 && **p < 1000).collect();
    println!("total bar values seen (per mille): {seen:?}");
    assert!(moving.len() >= 3, "the bar did not move: {seen:?}");

    // The model is listed; a second pull is cancelled from its card.
    driver
        .until("model listed", Duration::from_secs(10),
            &format!("return [...document.querySelectorAll('#models tbody tr')].map(r => r.dataset.id).includes('{}')", model()),
            |v| v == true)
        .await;
    driver
        .js("document.getElementById('pull-model').value = ''; return 0")
        .await;
    driver
        .type_in("#pull-model", &format!("org/second:{FILE}"))
        .await;
    driver.click("#pull-button").await;
    driver
        .until("second pull moving", Duration::from_secs(20),
            "const j = document.querySelectorAll('.job')[0]; return j && j.querySelector('.name').textContent.includes('org/second') ? parseFloat(j.querySelector('.total').dataset.percent || '0') : 0",
            |v| v.as_f64().unwrap_or(0.0) > 1.0)
        .await;
    driver.click(".job .cancel").await;
    driver
        .until(
            "second pull cancelled",
            Duration::from_secs(10),
            "return document.querySelectorAll('.job')[0].className",
            |v| v.as_str().is_some_and(|s| s.contains("cancelled")),
        )
        .await;

    // Chat: the answer streams in, and the speed is shown.
    fx.hub.faults().set(FaultPlan::default());
    driver
        .js(&format!(
            "const s = document.getElementById('chat-model'); s.value = '{}'; return s.value",
            model()
        ))
        .await;
    driver
        .type_in("#chat-input", "What is the capital of France?")
        .await;
    driver.click("#chat-send").await;
    let mut lengths = std::collections::BTreeSet::new();
    let start = Instant::now();
    let stats = loop {
        let v = driver
            .js("return {text: document.getElementById('chat-output').textContent, stats: document.getElementById('chat-stats').textContent, done: document.getElementById('chat-stats').dataset.done || ''}")
            .await;
        lengths.insert(v["text"].as_str().unwrap_or_default().len());
        if v["done"] == "1" {
            break v;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "no answer: {v}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let shot = driver.shot("chatted").await;
    println!(
        "chat: {stats}; text lengths seen {lengths:?}; screenshot {}",
        shot.display()
    );
    assert!(stats["text"].as_str().unwrap().len() > 5, "{stats}");
    assert!(
        stats["stats"].as_str().unwrap().contains("tokens/s"),
        "{stats}"
    );
    assert!(
        lengths.iter().filter(|l| **l > 0).count() >= 2,
        "the text did not stream: {lengths:?}"
    );
    driver.call(reqwest::Method::DELETE, "", None).await;
}
