//! Jobs and their event streams, removing models, health, and who may call.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]

mod common;

use std::time::{Duration, Instant};

use common::{FILE, Fixture, REPO, SseReader, model};
use serde_json::{Value, json};
use tektra_hub_server::FaultPlan;
use tektra_progress::{Event, State};

fn size() -> u64 {
    std::fs::metadata(tektra_testdata::smollm2_gguf())
        .unwrap()
        .len()
}

async fn pull(fx: &Fixture, m: &str) -> Value {
    let (status, job) = fx
        .post("/v1/jobs", json!({"kind": "pull", "model": m}))
        .await;
    assert_eq!(status, 202, "{job}");
    job
}

async fn events(fx: &Fixture, id: &str, last: Option<usize>) -> Vec<(usize, Event)> {
    let mut req = fx.client.get(fx.url(&format!("/v1/jobs/{id}/events")));
    if let Some(n) = last {
        req = req.header("Last-Event-ID", n.to_string());
    }
    let mut sse = SseReader::new(req.send().await.unwrap());
    let mut out = Vec::new();
    while let Some(e) = sse.next().await {
        // Exactly the progress event type: it parses back into it.
        let event: Event = serde_json::from_str(&e.data).unwrap();
        out.push((e.id.unwrap().parse().unwrap(), event));
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pull_streams_its_progress_events_and_resumes_from_last_event_id() {
    let fx = Fixture::new().await;
    let job = pull(&fx, &model()).await;
    let id = job["id"].as_str().unwrap();
    assert_eq!(job["kind"], "pull");
    let all = events(&fx, id, None).await;
    let ids: Vec<usize> = all.iter().map(|(n, _)| *n).collect();
    assert_eq!(ids, (1..=all.len()).collect::<Vec<_>>(), "ids count from 1");
    let (_, last) = all.last().unwrap();
    assert_eq!(
        (last.file.as_deref(), last.state),
        (None, State::Done),
        "{last:?}"
    );
    let file_done = all
        .iter()
        .find(|(_, e)| e.file.as_deref() == Some(FILE) && e.state == State::Done)
        .expect("the file's done event");
    assert_eq!(file_done.1.bytes_done, size());
    assert_eq!(file_done.1.bytes_total, Some(size()));
    // From an id on: the same events after it.
    let rest = events(&fx, id, Some(3)).await;
    assert_eq!(rest.first().unwrap().0, 4);
    assert_eq!(rest.len(), all.len() - 3);
    assert_eq!(rest.last().unwrap().1, *last);
    let view = fx.wait_job(id, Duration::from_secs(5)).await;
    assert_eq!(
        (view["state"].as_str(), view["bytes_done"].as_u64()),
        (Some("done"), Some(size()))
    );
    assert!(view["path"].as_str().unwrap().ends_with(FILE));
    assert_eq!(
        fx.metric("tektra_download_bytes_total").await,
        size() as f64
    );
    assert_eq!(fx.metric("tektra_cache_misses_total").await, 1.0);
    // Pulled again: found in the cache.
    let again = pull(&fx, &model()).await;
    let again = events(&fx, again["id"].as_str().unwrap(), None).await;
    assert!(
        again
            .iter()
            .any(|(_, e)| e.file.as_deref() == Some(FILE) && e.state == State::Cached)
    );
    assert_eq!(fx.metric("tektra_cache_hits_total").await, 1.0);
    assert_eq!(
        fx.metric("tektra_download_bytes_total").await,
        size() as f64
    );
    // With filters, a pull takes what they pick.
    let (status, job) = fx
        .post(
            "/v1/jobs",
            json!({"kind": "pull", "model": REPO, "include": ["*.gguf"]}),
        )
        .await;
    assert_eq!(status, 202, "{job}");
    let done = fx
        .wait_job(job["id"].as_str().unwrap(), Duration::from_secs(30))
        .await;
    assert_eq!(done["state"], "done", "{done}");
    let (status, body) = fx
        .post(
            "/v1/jobs",
            json!({"kind": "pull", "model": model(), "include": ["*.json"]}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = fx
        .post("/v1/jobs", json!({"kind": "fetch", "model": REPO}))
        .await;
    assert_eq!(
        (status, body["error"]["param"].as_str()),
        (400, Some("kind"))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cancelled_pull_stops_within_a_second_keeps_its_bytes_and_resumes() {
    let fx = Fixture::new().await;
    fx.hub.faults().set(FaultPlan {
        rate_limit: Some(8 << 20),
        ..FaultPlan::default()
    });
    let job = pull(&fx, &model()).await;
    let id = job["id"].as_str().unwrap().to_string();
    // A second pull of the same model joins the first.
    let joined = pull(&fx, &model()).await;
    assert_eq!(joined["id"], job["id"]);
    let res = fx
        .client
        .get(fx.url(&format!("/v1/jobs/{id}/events")))
        .send()
        .await
        .unwrap();
    let mut stream = SseReader::new(res);
    let mut seen = 0;
    while seen < 4 << 20 {
        let e = stream.next().await.expect("events until cancelled");
        let event: Event = serde_json::from_str(&e.data).unwrap();
        seen = seen.max(event.bytes_done);
    }
    let asked = Instant::now();
    let (status, view) = fx.post(&format!("/v1/jobs/{id}/cancel"), json!({})).await;
    let took = asked.elapsed();
    assert_eq!(status, 200);
    assert_eq!(view["state"], "cancelled", "{view}");
    println!("cancel answered after {took:?}, {seen} bytes in");
    assert!(took < Duration::from_secs(1), "cancel took {took:?}");
    // The open stream ends with the job's cancelled event.
    let rest = stream.all().await;
    let last: Event = serde_json::from_str(&rest.last().unwrap().data).unwrap();
    assert_eq!((last.file, last.state), (None, State::Cancelled));
    let partial = view["bytes_done"].as_u64().unwrap();
    assert!(partial > 0 && partial < size(), "{view}");
    // Pulled again without the cap, it resumes: the Hub sends the rest only.
    fx.hub.faults().set(FaultPlan::default());
    let before = fx.hub.stats().content_bytes;
    let again = pull(&fx, &model()).await;
    assert_ne!(again["id"], job["id"]);
    let done = fx
        .wait_job(again["id"].as_str().unwrap(), Duration::from_secs(60))
        .await;
    assert_eq!(done["state"], "done", "{done}");
    let sent = fx.hub.stats().content_bytes - before;
    println!("resumed: {sent} of {} bytes sent again", size());
    assert!(
        sent <= size() - partial + (1 << 20),
        "sent {sent} after {partial} were kept"
    );
    let got = std::fs::read(done["path"].as_str().unwrap()).unwrap();
    assert_eq!(got, std::fs::read(tektra_testdata::smollm2_gguf()).unwrap());
}

#[tokio::test(flavor = "multi_thread")]
async fn removing_a_model_is_refused_while_it_is_downloading_or_loaded() {
    let fx = Fixture::new().await;
    fx.hub.faults().set(FaultPlan {
        rate_limit: Some(4 << 20),
        ..FaultPlan::default()
    });
    let job = pull(&fx, &model()).await;
    let id = job["id"].as_str().unwrap();
    let path = format!("/v1/models/{}", model());
    let res = fx.client.delete(fx.url(&path)).send().await.unwrap();
    assert_eq!(res.status(), 409);
    fx.post(&format!("/v1/jobs/{id}/cancel"), json!({})).await;
    fx.hub.faults().set(FaultPlan::default());
    let job = pull(&fx, &model()).await;
    fx.wait_job(job["id"].as_str().unwrap(), Duration::from_secs(60))
        .await;
    let res = fx.client.delete(fx.url(&path)).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        (body["deleted"].as_bool(), body["freed_bytes"].as_u64()),
        (Some(true), Some(size()))
    );
    let (_, models) = fx.get("/v1/models").await;
    assert!(models["data"].as_array().unwrap().is_empty(), "{models}");
    let res = fx.client.delete(fx.url(&path)).send().await.unwrap();
    assert_eq!(res.status(), 404);
    // Loaded (which downloads it again): refused.
    let (s, _) = fx
        .post(
            "/v1/completions",
            json!({"model": model(), "prompt": "Hi", "max_tokens": 1}),
        )
        .await;
    assert_eq!(s, 200);
    let res = fx.client.delete(fx.url(&path)).send().await.unwrap();
    assert_eq!(res.status(), 409);
    // And `tektra cache rm` (any process) is refused too: the daemon holds
    // shared locks on the loaded model's blobs.
    let cache = fx.home.path().join("hub");
    let scan = tektra_cache::scan(&cache).unwrap();
    let plan = tektra_cache::plan_remove(&scan, &[REPO.parse().unwrap()]).unwrap();
    let err = tektra_cache::execute(&cache, &plan).unwrap_err();
    assert!(matches!(err, tektra_cache::CacheError::Locked(_)), "{err}");
    assert!(
        cache
            .join("models--QuantFactory--SmolLM2-135M-Instruct-GGUF")
            .exists()
    );
    let res = fx
        .client
        .delete(fx.url("/v1/models/../../etc"))
        .send()
        .await
        .unwrap();
    assert!(res.status().is_client_error());
}

#[tokio::test(flavor = "multi_thread")]
async fn health_is_503_until_the_models_given_at_start_are_loaded() {
    let (repos, hub) = common::hub(false).await;
    hub.faults().set(FaultPlan {
        rate_limit: Some(32 << 20),
        ..FaultPlan::default()
    });
    let home = tempfile::tempdir().unwrap();
    let mut config = tektra_daemon::Config {
        addr: "127.0.0.1:0".parse().unwrap(),
        models: vec![model()],
        ..tektra_daemon::Config::default()
    };
    config.engine.hub.endpoint = hub.url();
    config.engine.hub.cache_dir = home.path().join("hub");
    config.engine.hub.connections_per_file = 1;
    let daemon = tektra_daemon::Daemon::start(config).await.unwrap();
    let client = reqwest::Client::new();
    let health = format!("{}/health", daemon.url());
    let first = client.get(&health).send().await.unwrap();
    assert_eq!(first.status(), 503);
    let start = Instant::now();
    loop {
        if client.get(&health).send().await.unwrap().status() == 200 {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "never healthy");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!("healthy after {:?}", start.elapsed());
    drop(repos);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_api_key_and_the_allowed_origins_guard_every_route() {
    let fx = Fixture::with(false, |c| {
        c.api_key = Some("s3cret".into());
        c.allow_origins = vec!["http://app.example".into()];
    })
    .await;
    let models = fx.url("/v1/models");
    assert_eq!(fx.client.get(&models).send().await.unwrap().status(), 401);
    let wrong = fx
        .client
        .get(&models)
        .bearer_auth("s3creT")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let ok = fx
        .client
        .get(&models)
        .bearer_auth("s3cret")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(
        fx.client
            .get(fx.url("/metrics"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(
        fx.client
            .get(fx.url("/health"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        fx.client.get(fx.url("/")).send().await.unwrap().status(),
        200
    );
    for (origin, allowed) in [
        ("tauri://localhost", true),
        ("http://app.example", true),
        ("http://evil.example", false),
    ] {
        let res = fx
            .client
            .get(&models)
            .bearer_auth("s3cret")
            .header("Origin", origin)
            .send()
            .await
            .unwrap();
        assert_eq!(
            res.status().as_u16(),
            if allowed { 200 } else { 403 },
            "{origin}"
        );
        if allowed {
            assert_eq!(res.headers()["access-control-allow-origin"], origin);
        }
        let preflight = fx
            .client
            .request(reqwest::Method::OPTIONS, fx.url("/v1/chat/completions"))
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "POST")
            .send()
            .await
            .unwrap();
        assert_eq!(
            preflight.status().as_u16(),
            if allowed { 204 } else { 403 },
            "{origin}"
        );
    }
    // Off loopback, no key: refused at start, saying why.
    let open = tektra_daemon::Config {
        addr: "0.0.0.0:0".parse().unwrap(),
        ..tektra_daemon::Config::default()
    };
    let err = tektra_daemon::Daemon::start(open)
        .await
        .err()
        .expect("refused");
    assert!(err.to_string().contains("--api-key"), "{err}");
    let _ = REPO;
}
