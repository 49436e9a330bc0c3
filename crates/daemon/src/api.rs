//! The daemon's own endpoints: jobs and their event streams, removing a
//! model, health and metrics.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use crate::AppState;
use crate::error::ApiError;
use crate::jobs::{JobKey, JobKind};
use crate::sse;

#[derive(Debug, Deserialize)]
struct JobRequest {
    kind: JobKind,
    model: String,
    #[serde(default)]
    include: Vec<String>,
    #[serde(default)]
    exclude: Vec<String>,
}

/// `POST /v1/jobs`: starts a pull or a load (or joins the same one under
/// way) and answers its id.
pub(crate) async fn create_job(
    State(state): State<Arc<AppState>>,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let bytes = crate::openai::body(bytes)?;
    let mut de = serde_json::Deserializer::from_slice(&bytes);
    let req: JobRequest = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        ApiError::field(&path, format!("{path}: {}", e.into_inner()))
    })?;
    let (key, model) = state.resolve_model(Some(&req.model))?;
    let filtered = !req.include.is_empty() || !req.exclude.is_empty();
    if filtered {
        if req.kind == JobKind::Load {
            return Err(ApiError::field(
                "include",
                "include/exclude: a load takes the files it needs",
            ));
        }
        if matches!(
            &model,
            tektra_inference::ModelRef::Hub { file: Some(_), .. }
        ) {
            return Err(ApiError::field(
                "include",
                "include/exclude: the model names one file already",
            ));
        }
        hf_hub::filter::Filter::new(&req.include, &req.exclude)
            .map_err(|e| ApiError::field("include", e.to_string()))?;
    }
    let job = match req.kind {
        JobKind::Load => state.pool.load(&state.jobs, &key, &model, false).0,
        JobKind::Pull => {
            if !matches!(model, tektra_inference::ModelRef::Hub { .. }) {
                return Err(ApiError::field(
                    "model",
                    "model: only Hub models are pulled",
                ));
            }
            let (job, new) = state.jobs.get_or_create(JobKey {
                kind: JobKind::Pull,
                model: key,
                include: req.include,
                exclude: req.exclude,
            });
            if new {
                tokio::spawn(crate::pull::run(job.clone(), model, state.hub.clone()));
            }
            job
        }
    };
    Ok((StatusCode::ACCEPTED, Json(job.view())).into_response())
}

/// `GET /v1/jobs`.
pub(crate) async fn list_jobs(State(state): State<Arc<AppState>>) -> Response {
    let jobs: Vec<_> = state.jobs.all().iter().map(|j| j.view()).collect();
    Json(json!({"object": "list", "data": jobs})).into_response()
}

fn job(state: &AppState, id: &str) -> Result<Arc<crate::jobs::Job>, ApiError> {
    state
        .jobs
        .get(id)
        .ok_or_else(|| ApiError::not_found(format!("no job {id}")))
}

/// `GET /v1/jobs/{id}`.
pub(crate) async fn get_job(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    Ok(Json(job(&state, &id)?.view()).into_response())
}

/// `POST /v1/jobs/{id}/cancel`.
pub(crate) async fn cancel_job(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let job = job(&state, &id)?;
    job.cancel.cancel();
    // Answer once it has stopped (a pull notices within a moment), so the
    // caller's next pull resumes instead of joining this one.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let (_, _, mut changed) = job.events_after(usize::MAX);
    while !job.state().is_terminal() && tokio::time::Instant::now() < deadline {
        let _ = tokio::time::timeout_at(deadline, changed.changed()).await;
    }
    Ok(Json(job.view()).into_response())
}

/// `GET /v1/jobs/{id}/events`: every event of the job as SSE (`id:` is the
/// event's number from 1), from after `Last-Event-ID` when given, then live
/// until the job ends.
pub(crate) async fn job_events(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let job = job(&state, &id)?;
    let mut next = match headers.get("last-event-id") {
        None => 0,
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse::<usize>().ok())
            .ok_or_else(|| ApiError::invalid("Last-Event-ID: a number"))?,
    };
    let (frames, response) = sse::channel();
    tokio::spawn(async move {
        loop {
            let (events, ended, mut changed) = job.events_after(next);
            for (id, event) in events {
                next = id;
                let Ok(line) = serde_json::to_string(&event) else {
                    continue;
                };
                if frames.send(sse::frame(Some(id), &line)).await.is_err() {
                    return; // the client left
                }
            }
            if ended {
                return;
            }
            tokio::select! {
                _ = changed.changed() => {}
                () = frames.closed() => return,
            }
        }
    });
    Ok(response)
}

/// `DELETE /v1/models/{ref}`: removes a model from the cache, unless it is
/// loaded or a job works on it.
pub(crate) async fn delete_model(
    State(state): State<Arc<AppState>>,
    Path(reference): Path<String>,
) -> Result<Response, ApiError> {
    let model = tektra_inference::ModelRef::parse_hub(&reference)
        .map_err(|e| ApiError::invalid(e.to_string()))?;
    let tektra_inference::ModelRef::Hub { repo, .. } = &model else {
        return Err(ApiError::invalid("a Hub model"));
    };
    if state.pool.holds_repo(repo) {
        return Err(ApiError::conflict(format!(
            "{reference} is loaded: it is removed once unloaded"
        )));
    }
    if state.jobs.busy_with(repo) {
        return Err(ApiError::conflict(format!(
            "a job is downloading or loading {repo}: cancel it first"
        )));
    }
    let cache = state.hub.cache_dir.clone();
    let m = model.clone();
    let freed = tokio::task::spawn_blocking(move || crate::cache::remove(&cache, &m))
        .await
        .map_err(|e| ApiError::server(e.to_string()))?
        .map_err(|e| match e {
            tektra_cache::CacheError::UnknownRepo(_)
            | tektra_cache::CacheError::UnknownRevision { .. }
            | tektra_cache::CacheError::NotFound(_) => ApiError::not_found(e.to_string()),
            tektra_cache::CacheError::Locked(_) => ApiError::conflict(e.to_string()),
            tektra_cache::CacheError::BadTarget(_) => ApiError::invalid(e.to_string()),
            _ => ApiError::server(e.to_string()),
        })?;
    Ok(
        Json(json!({"id": reference, "object": "model", "deleted": true, "freed_bytes": freed}))
            .into_response(),
    )
}

/// `GET /health`: 503 until the `--model`s are loaded, then 200.
pub(crate) async fn health(State(state): State<Arc<AppState>>) -> Response {
    if state.ready() {
        (StatusCode::OK, Json(json!({"status": "ok"}))).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "loading", "error": {"message": "loading the models given at start", "type": "unavailable_error", "code": 503}})),
        )
            .into_response()
    }
}

/// `GET /metrics`: Prometheus text.
pub(crate) async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let text = state.metrics.render(
        state.jobs.rate(),
        state.pool.pending(),
        state.pool.loaded().len(),
    );
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}
