//! The OpenAI-compatible endpoints against the real test model, fetched by
//! the daemon from a local Hub on first use.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]

mod common;

use std::time::{Duration, Instant};

use common::{Fixture, SseReader, model};
use serde_json::{Value, json};

/// The streamed answer's text, and its chunks (the `[DONE]` checked).
async fn streamed(fx: &Fixture, path: &str, body: Value) -> (String, Vec<Value>) {
    let res = fx
        .client
        .post(fx.url(path))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let events = SseReader::new(res).all().await;
    let (last, chunks) = events.split_last().expect("events");
    assert_eq!(last.data, "[DONE]", "the stream ends with [DONE]");
    let chunks: Vec<Value> = chunks
        .iter()
        .map(|e| serde_json::from_str(&e.data).unwrap())
        .collect();
    let text = chunks
        .iter()
        .filter_map(|c| {
            let choice = c["choices"].get(0)?;
            choice["delta"]["content"]
                .as_str()
                .or(choice["text"].as_str())
                .map(str::to_string)
        })
        .collect();
    (text, chunks)
}

#[tokio::test(flavor = "multi_thread")]
async fn chat_and_completions_stream_and_not_on_a_model_loaded_on_first_use() {
    let fx = Fixture::new().await;
    assert_eq!(fx.get("/health").await.0, 200);
    let ask = json!({"model": model(), "messages": [{"role": "user", "content": "What is the capital of France?"}],
                     "temperature": 0, "max_tokens": 12});
    let (status, whole) = fx.post("/v1/chat/completions", ask.clone()).await;
    assert_eq!(status, 200, "{whole}");
    assert_eq!(whole["object"], "chat.completion");
    assert_eq!(whole["model"], model());
    let answer = whole["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(!answer.is_empty());
    assert_eq!(whole["choices"][0]["message"]["role"], "assistant");
    let usage = &whole["usage"];
    assert!(usage["prompt_tokens"].as_u64().unwrap() > 5);
    assert_eq!(
        usage["total_tokens"].as_u64().unwrap(),
        usage["prompt_tokens"].as_u64().unwrap() + usage["completion_tokens"].as_u64().unwrap()
    );
    // The load was a job, and the model is listed as loaded.
    let (_, jobs) = fx.get("/v1/jobs").await;
    let load = &jobs["data"][0];
    assert_eq!(
        (load["kind"].as_str(), load["state"].as_str()),
        (Some("load"), Some("done"))
    );
    let (_, models) = fx.get("/v1/models").await;
    let listed = models["data"].as_array().unwrap();
    let entry = listed.iter().find(|m| m["id"] == model()).expect("listed");
    assert_eq!(entry["loaded"], true);
    assert_eq!(entry["object"], "model");

    // Streamed, the same greedy answer arrives in pieces.
    let mut stream = ask.clone();
    stream["stream"] = json!(true);
    stream["stream_options"] = json!({"include_usage": true});
    let (text, chunks) = streamed(&fx, "/v1/chat/completions", stream).await;
    assert_eq!(text, answer);
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    assert!(
        chunks
            .iter()
            .all(|c| c["object"] == "chat.completion.chunk")
    );
    let finish: Vec<&Value> = chunks
        .iter()
        .filter(|c| !c["choices"][0]["finish_reason"].is_null())
        .collect();
    assert_eq!(finish.len(), 1, "one chunk carries finish_reason");
    let usage_chunk = chunks.last().unwrap();
    assert_eq!(usage_chunk["choices"], json!([]));
    assert_eq!(usage_chunk["usage"], whole["usage"]);

    // Completions: text in, text out, streamed equal to whole.
    let prompt = json!({"model": model(), "prompt": "The capital of France is", "temperature": 0, "max_tokens": 6});
    let (status, whole) = fx.post("/v1/completions", prompt.clone()).await;
    assert_eq!(status, 200, "{whole}");
    assert_eq!(whole["object"], "text_completion");
    assert_eq!(whole["choices"][0]["finish_reason"], "length");
    assert_eq!(whole["usage"]["completion_tokens"], 6);
    let mut stream = prompt;
    stream["stream"] = json!(true);
    let (text, chunks) = streamed(&fx, "/v1/completions", stream).await;
    assert_eq!(text, whole["choices"][0]["text"].as_str().unwrap());
    assert!(text.contains("Paris"), "{text}");
    assert!(
        chunks.iter().all(|c| c.get("usage").is_none()),
        "no usage unless asked"
    );
    assert!(fx.metric("tektra_generated_tokens_total").await >= 36.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_requests_get_openai_shaped_errors_naming_the_field() {
    let fx = Fixture::with(false, |c| c.max_body = 4096).await;
    let check = |status: u16, body: &Value, want_status: u16, want: &str| {
        assert_eq!(status, want_status, "{body}");
        let e = &body["error"];
        assert!(e["message"].as_str().unwrap().contains(want), "{body}");
        assert!(e["type"].is_string(), "{body}");
    };
    let (s, b) = fx
        .post(
            "/v1/chat/completions",
            json!({"model": model(), "messages": [], "max_tokens": "ten"}),
        )
        .await;
    check(s, &b, 400, "max_tokens");
    assert_eq!(b["error"]["param"], "max_tokens");
    let (s, b) = fx
        .post("/v1/chat/completions", json!({"model": model()}))
        .await;
    check(s, &b, 400, "messages");
    let (s, b) = fx
        .post("/v1/completions", json!({"model": model(), "prompt": 5}))
        .await;
    check(s, &b, 400, "prompt");
    for bad in ["/etc/passwd", "../x", "org/../x:f.gguf", "org/m:../../f"] {
        let (s, b) = fx
            .post("/v1/completions", json!({"model": bad, "prompt": "x"}))
            .await;
        check(s, &b, 400, "model");
    }
    let (s, b) = fx
        .post(
            "/v1/completions",
            json!({"model": "org/none:x.gguf", "prompt": "x"}),
        )
        .await;
    check(s, &b, 404, "org/none");
    assert_eq!(b["error"]["code"], "model_not_found");
    let (s, b) = fx
        .post(
            "/v1/completions",
            json!({"model": model(), "prompt": "x", "max_tokens": 100_000}),
        )
        .await;
    check(s, &b, 400, "context");
    assert_eq!(b["error"]["code"], "context_length_exceeded");
    let (s, b) = fx
        .post(
            "/v1/completions",
            json!({"model": model(), "prompt": "x", "presence_penalty": 1.0}),
        )
        .await;
    check(s, &b, 400, "presence_penalty");
    let (s, b) = fx
        .post(
            "/v1/completions",
            json!({"model": model(), "prompt": "x".repeat(5000)}),
        )
        .await;
    check(s, &b, 413, "");
    let res = fx
        .client
        .post(fx.url("/v1/completions"))
        .body("not json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let (s, b) = fx.get("/v1/nothing").await;
    check(s, &b, 404, "no such endpoint");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_queue_answers_429_and_a_client_that_leaves_stops_its_generation() {
    let fx = Fixture::with(false, |c| c.queue = 1).await;
    let long = json!({"model": model(), "prompt": "Once upon a time", "max_tokens": 1900,
                      "temperature": 0, "stream": true});
    let res = fx
        .client
        .post(fx.url("/v1/completions"))
        .json(&long)
        .send()
        .await
        .unwrap();
    let mut running = SseReader::new(res);
    running.next().await.expect("a first chunk");
    // One running, one waiting in the queue of one: the third is refused.
    let waiting = {
        let client = fx.client.clone();
        let url = fx.url("/v1/completions");
        tokio::spawn(async move {
            let short =
                json!({"model": model(), "prompt": "Hello", "max_tokens": 4, "temperature": 0});
            let started = Instant::now();
            let res = client.post(url).json(&short).send().await.unwrap();
            (res.status().as_u16(), started.elapsed())
        })
    };
    common::wait_for(Duration::from_secs(10), || async {
        fx.metric("tektra_queue_length").await >= 2.0
    })
    .await;
    let res = fx
        .client
        .post(fx.url("/v1/completions"))
        .json(&json!({"model": model(), "prompt": "x", "max_tokens": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 429);
    assert_eq!(res.headers()["retry-after"], "1");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "queue_full");
    // The long stream's client leaves: its generation stops at the next
    // token, and the waiting request runs.
    drop(running);
    let (status, waited) = waiting.await.unwrap();
    assert_eq!(status, 200);
    common::wait_for(Duration::from_secs(10), || async {
        fx.metric("tektra_generations_cancelled_total").await >= 1.0
    })
    .await;
    let generated = fx.metric("tektra_generated_tokens_total").await;
    println!("the queued request waited {waited:?}; tokens generated in all: {generated}");
    assert!(
        generated < 1900.0,
        "the abandoned generation ran on: {generated} tokens"
    );
    assert_eq!(fx.metric("tektra_requests_rejected_total").await, 1.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn thirty_two_concurrent_streams_all_finish_unmixed() {
    let fx = Fixture::new().await;
    let prompts = [
        "The capital of France is",
        "Water boils at",
        "One, two, three,",
        "The sky is",
    ];
    // Each prompt's greedy answer, one request at a time.
    let mut expected = Vec::new();
    for p in prompts {
        let (s, b) = fx
            .post(
                "/v1/completions",
                json!({"model": model(), "prompt": p, "max_tokens": 16, "temperature": 0}),
            )
            .await;
        assert_eq!(s, 200, "{b}");
        expected.push(b["choices"][0]["text"].as_str().unwrap().to_string());
    }
    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..32 {
        let (client, url) = (fx.client.clone(), fx.url("/v1/completions"));
        let body = json!({"model": model(), "prompt": prompts[i % 4], "max_tokens": 16,
                          "temperature": 0, "stream": true});
        tasks.push(tokio::spawn(async move {
            let t = Instant::now();
            let res = client.post(url).json(&body).send().await.unwrap();
            assert_eq!(res.status(), 200);
            let mut sse = SseReader::new(res);
            let mut first = None;
            let mut text = String::new();
            let mut done = false;
            while let Some(e) = sse.next().await {
                if e.data == "[DONE]" {
                    done = true;
                    break;
                }
                let c: Value = serde_json::from_str(&e.data).unwrap();
                if let Some(t2) = c["choices"][0]["text"].as_str().filter(|s| !s.is_empty()) {
                    first.get_or_insert(t.elapsed());
                    text.push_str(t2);
                }
            }
            (i, text, done, first.unwrap_or_default(), t.elapsed())
        }));
    }
    let mut latencies = Vec::new();
    let mut firsts = Vec::new();
    for t in tasks {
        let (i, text, done, first, total) = t.await.unwrap();
        assert!(done, "stream {i} ended without [DONE]");
        assert_eq!(
            text,
            expected[i % 4],
            "stream {i} got another stream's text"
        );
        latencies.push(total);
        firsts.push(first);
    }
    let wall = started.elapsed();
    latencies.sort();
    firsts.sort();
    println!(
        "32 streams x 16 tokens in {wall:.2?}: {:.1} tokens/s in all; latency median {:?}, max {:?}; first token median {:?}, max {:?}",
        512.0 / wall.as_secs_f64(),
        latencies[16],
        latencies[31],
        firsts[16],
        firsts[31]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_models_unload_and_the_least_recently_used_goes_when_memory_is_short() {
    // A budget of one byte: every load unloads all the others.
    let fx = Fixture::with(true, |c| {
        c.memory_budget = Some(1);
        c.idle_timeout = Some(Duration::from_millis(1500));
    })
    .await;
    let second = format!("org/second:{}", common::FILE);
    let ask = |m: &str| json!({"model": m, "prompt": "Hi", "max_tokens": 2});
    assert_eq!(fx.post("/v1/completions", ask(&model())).await.0, 200);
    assert_eq!(fx.post("/v1/completions", ask(&second)).await.0, 200);
    let loaded = |v: &Value, id: &str| {
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["id"] == id)
            .map(|m| m["loaded"] == true)
    };
    let (_, models) = fx.get("/v1/models").await;
    assert_eq!(loaded(&models, &model()), Some(false), "{models}");
    assert_eq!(loaded(&models, &second), Some(true), "{models}");
    // Unused, the second goes after the idle timeout.
    common::wait_for(Duration::from_secs(10), || async {
        fx.metric("tektra_models_loaded").await == 0.0
    })
    .await;
    // And comes back on the next request.
    assert_eq!(fx.post("/v1/completions", ask(&second)).await.0, 200);
    assert_eq!(fx.metric("tektra_models_loaded").await, 1.0);
}
