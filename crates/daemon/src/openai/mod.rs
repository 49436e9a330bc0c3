//! The OpenAI-compatible endpoints: chat and text completions, streamed
//! and not, and the model list.

mod request;

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tektra_inference::{GenerationStats, Prompt, StopReason};
use tokio::sync::mpsc;
use tokio_util::sync::{CancellationToken, DropGuard};

pub(crate) use request::FILL_CONTEXT;
use request::{CompletionRequest, parse};

use crate::AppState;
use crate::error::ApiError;
use crate::pool::{GenRequest, Piece};
use crate::sse;

/// Which endpoint: they differ in the shapes of their answers.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    Chat,
    Text,
}

/// The body as bytes, or the extractor's refusal (e.g. too large) as an
/// OpenAI-shaped error.
pub(crate) fn body(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|e| ApiError::invalid(e.body_text()).with_status(e.status()))
}

/// `POST /v1/chat/completions`.
pub(crate) async fn chat(
    State(state): State<Arc<AppState>>,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let req = parse(&body(bytes)?)?;
    let prompt = req.chat()?;
    complete(state, req, prompt, Endpoint::Chat).await
}

/// `POST /v1/completions`.
pub(crate) async fn text(
    State(state): State<Arc<AppState>>,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let req = parse(&body(bytes)?)?;
    let prompt = req.text()?;
    complete(state, req, prompt, Endpoint::Text).await
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn new_id(endpoint: Endpoint) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let prefix = match endpoint {
        Endpoint::Chat => "chatcmpl",
        Endpoint::Text => "cmpl",
    };
    format!("{prefix}-{:x}{n:04x}", now_secs())
}

fn finish_reason(stats: &GenerationStats) -> &'static str {
    match stats.stop_reason {
        StopReason::MaxTokens => "length",
        StopReason::Eos | StopReason::StopString | StopReason::Cancelled => "stop",
    }
}

fn usage(stats: &GenerationStats) -> Value {
    json!({
        "prompt_tokens": stats.prompt_tokens,
        "completion_tokens": stats.generated_tokens,
        "total_tokens": stats.prompt_tokens + stats.generated_tokens,
    })
}

/// Speeds, as llama-server adds them: what the page shows.
fn timings(stats: &GenerationStats) -> Value {
    json!({
        "prompt_per_second": stats.prompt_tokens_per_sec,
        "predicted_per_second": stats.tokens_per_sec,
        "first_token_ms": stats.time_to_first_token.as_secs_f64() * 1000.0,
    })
}

/// What every answer of one request shares.
struct Answer {
    endpoint: Endpoint,
    id: String,
    created: u64,
    model: String,
}

impl Answer {
    /// One streamed chunk carrying `text` (or, with `role`, the opening one).
    fn chunk(&self, text: &str, finish: Option<&str>, extra: Option<(&str, Value)>) -> Value {
        let mut choice = match self.endpoint {
            Endpoint::Chat => {
                let delta = if finish.is_some() {
                    json!({})
                } else {
                    json!({"content": text})
                };
                json!({"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish})
            }
            Endpoint::Text => {
                json!({"index": 0, "text": text, "logprobs": null, "finish_reason": finish})
            }
        };
        if let Some(role) = extra.as_ref().filter(|(k, _)| *k == "role") {
            choice["delta"] = json!({"role": role.1, "content": ""});
        }
        let mut chunk = json!({
            "id": self.id,
            "object": match self.endpoint {
                Endpoint::Chat => "chat.completion.chunk",
                Endpoint::Text => "text_completion",
            },
            "created": self.created,
            "model": self.model,
            "system_fingerprint": null,
            "choices": [choice],
        });
        if let Some((key, value)) = extra.filter(|(k, _)| *k != "role") {
            chunk[key] = value;
        }
        chunk
    }

    /// A text chunk's JSON up to its text, which follows as a JSON string
    /// (field order as [`Answer::chunk`] writes it, keys sorted).
    fn text_head(&self) -> String {
        let kind = match self.endpoint {
            Endpoint::Chat => "chat.completion.chunk",
            Endpoint::Text => "text_completion",
        };
        let start = format!(
            "{{\"choices\":[{{\"index\":0,{}",
            match self.endpoint {
                Endpoint::Chat => "\"delta\":{\"content\":",
                Endpoint::Text => "\"text\":",
            }
        );
        // The fields after `choices`, moved before it: JSON objects are
        // unordered, and this keeps the text last.
        let rest = json!({"id": self.id, "object": kind, "created": self.created,
                          "model": self.model, "system_fingerprint": null});
        let rest = rest.to_string();
        format!("{{{},{}", &rest[1..rest.len() - 1], &start[1..])
    }

    /// The whole answer of a request that did not stream.
    fn whole(&self, text: String, stats: &GenerationStats) -> Value {
        let choice = match self.endpoint {
            Endpoint::Chat => json!({
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "logprobs": null,
                "finish_reason": finish_reason(stats),
            }),
            Endpoint::Text => json!({
                "index": 0,
                "text": text,
                "logprobs": null,
                "finish_reason": finish_reason(stats),
            }),
        };
        json!({
            "id": self.id,
            "object": match self.endpoint {
                Endpoint::Chat => "chat.completion",
                Endpoint::Text => "text_completion",
            },
            "created": self.created,
            "model": self.model,
            "system_fingerprint": null,
            "choices": [choice],
            "usage": usage(stats),
            "timings": timings(stats),
        })
    }
}

async fn complete(
    state: Arc<AppState>,
    req: CompletionRequest,
    prompt: Prompt,
    endpoint: Endpoint,
) -> Result<Response, ApiError> {
    let arrived = Instant::now();
    state.metrics.request();
    let sampling = req.sampling()?;
    let (key, model) = state.resolve_model(req.model.as_deref())?;
    let worker = state.pool.get(&state.jobs, &key, &model).await?;
    let (out, mut pieces) = mpsc::unbounded_channel();
    let cancel = CancellationToken::new();
    // The client going away drops this handler (or the stream's task),
    // and with it the guard: the generation stops at its next token.
    let guard = cancel.clone().drop_guard();
    worker
        .submit(GenRequest {
            prompt,
            sampling,
            out,
            cancel,
            arrived,
        })
        .map_err(|_| {
            state.metrics.rejected();
            ApiError::busy(
                format!(
                    "{key} has a full queue ({} requests): try again shortly",
                    worker.pending()
                ),
                1,
            )
        })?;
    let answer = Answer {
        endpoint,
        id: new_id(endpoint),
        created: now_secs(),
        model: key,
    };
    if !req.stream.unwrap_or(false) {
        let mut text = String::new();
        let stats = loop {
            match pieces.recv().await {
                Some(Piece::Text(t)) => text.push_str(&t),
                Some(Piece::Done(result)) => break result,
                None => return Err(ApiError::server("the model's thread stopped")),
            }
        }
        .map_err(|e| ApiError::from_engine(&e))?;
        drop(guard);
        return Ok(Json(answer.whole(text, &stats)).into_response());
    }
    // Wait for the first piece, so that a request the engine refuses (a
    // prompt longer than the context) is an error status, not a stream.
    let first = pieces.recv().await;
    if let Some(Piece::Done(Err(e))) = &first {
        return Err(ApiError::from_engine(e));
    }
    let mut stream = Streamed {
        frames: VecDeque::new(),
        ended: false,
        include_usage: req.include_usage(),
        head: answer.text_head(),
        answer,
        pieces,
        _guard: guard,
    };
    if stream.answer.endpoint == Endpoint::Chat {
        let role = stream
            .answer
            .chunk("", None, Some(("role", json!("assistant"))));
        stream.frames.push_back(sse::frame(None, &role.to_string()));
    }
    stream.take(first);
    // The body is this stream, polled by the connection itself: no task or
    // channel between the model's thread and the socket. A client that
    // goes away drops it, and with it the receiver and the cancel guard.
    let body = futures::stream::unfold(stream, |mut s| async move {
        loop {
            if let Some(frame) = s.frames.pop_front() {
                return Some((Ok::<_, Infallible>(frame), s));
            }
            if s.ended {
                return None;
            }
            let piece = s.pieces.recv().await;
            s.take(piece);
        }
    });
    Ok(sse::response(body))
}

/// A streamed answer: the pieces still to come and the frames made of those
/// that came.
struct Streamed {
    answer: Answer,
    /// The start of a text chunk, up to the text itself.
    head: String,
    pieces: mpsc::UnboundedReceiver<Piece>,
    frames: VecDeque<Bytes>,
    ended: bool,
    include_usage: bool,
    _guard: DropGuard,
}

impl Streamed {
    /// Turns one piece (or the end of the channel) into frames.
    fn take(&mut self, piece: Option<Piece>) {
        let mut push = |v: &Value| self.frames.push_back(sse::frame(None, &v.to_string()));
        match piece {
            Some(Piece::Text(t)) => {
                // Built from the precomputed head: a JSON value per token
                // would be most of the daemon's work per token.
                let text = serde_json::to_string(&t).unwrap_or_default();
                let tail = match self.answer.endpoint {
                    Endpoint::Chat => "},\"logprobs\":null,\"finish_reason\":null}]}",
                    Endpoint::Text => ",\"logprobs\":null,\"finish_reason\":null}]}",
                };
                self.frames
                    .push_back(Bytes::from(format!("data: {}{text}{tail}\n\n", self.head)));
                return;
            }
            Some(Piece::Done(Ok(stats))) => {
                push(&self.answer.chunk(
                    "",
                    Some(finish_reason(&stats)),
                    Some(("timings", timings(&stats))),
                ));
                if self.include_usage {
                    let mut u = self.answer.chunk("", None, Some(("usage", usage(&stats))));
                    u["choices"] = json!([]);
                    push(&u);
                }
            }
            Some(Piece::Done(Err(e))) => push(&ApiError::from_engine(&e).body()),
            None => push(&ApiError::server("the model's thread stopped").body()),
        }
        self.frames
            .push_back(Bytes::from_static(b"data: [DONE]\n\n"));
        self.ended = true;
    }
}

/// `GET /v1/models`: the cache's models, and which are loaded.
pub(crate) async fn models(State(state): State<Arc<AppState>>) -> Response {
    let loaded = state.pool.loaded();
    let cached = crate::cache::models(&state.hub.cache_dir);
    let mut data: Vec<Value> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for m in &cached {
        let worker = loaded.iter().find(|w| w.info.reference == m.id);
        seen.insert(m.id.clone());
        data.push(json!({
            "id": m.id,
            "object": "model",
            "created": m.modified,
            "owned_by": m.id.split('/').next().unwrap_or_default(),
            "size": m.size,
            "loaded": worker.is_some(),
        }));
    }
    for w in &loaded {
        if seen.insert(w.info.reference.clone()) {
            data.push(json!({
                "id": w.info.reference,
                "object": "model",
                "created": 0,
                "owned_by": "local",
                "size": std::fs::metadata(&w.info.path).map(|m| m.len()).ok(),
                "loaded": true,
            }));
        }
    }
    for entry in &mut data {
        if let Some(w) = loaded
            .iter()
            .find(|w| Some(w.info.reference.as_str()) == entry["id"].as_str())
        {
            entry["backend"] = json!(w.info.backend);
            entry["architecture"] = json!(w.info.architecture);
            entry["context"] = json!(w.info.context);
        }
    }
    Json(json!({"object": "list", "data": data})).into_response()
}
