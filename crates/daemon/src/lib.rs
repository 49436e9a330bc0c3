//! `tektra-daemon`: the stack as a local service. An OpenAI-compatible API
//! (`/v1/chat/completions`, `/v1/completions`, `/v1/models`), model jobs
//! (pull, load) with their progress as server-sent events and a cancel,
//! `/health`, Prometheus `/metrics`, and a web page at `/`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), tektra_daemon::DaemonError> {
//! let daemon = tektra_daemon::Daemon::start(tektra_daemon::Config::default()).await?;
//! println!("listening on {}", daemon.url());
//! daemon.wait().await;
//! # Ok(()) }
//! ```

mod api;
mod cache;
mod error;
mod guard;
mod jobs;
mod metrics;
mod openai;
mod pool;
mod pull;
mod sse;
mod web;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get, post};
use axum::serve::ListenerExt;
use hf_hub::HubOptions;
use tektra_inference::{EngineOptions, ModelRef};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use error::DaemonError;
pub use jobs::{JobKind, JobState, JobView};

use error::ApiError;
use guard::Access;
use jobs::Jobs;
use metrics::Metrics;
use pool::{Pool, PoolConfig};

/// How the daemon runs.
#[derive(Clone)]
pub struct Config {
    /// Where it listens (loopback by default).
    pub addr: SocketAddr,
    /// Models loaded at start (`/health` says 503 until they are), kept
    /// loaded however idle. Local paths are allowed here, and only here.
    pub models: Vec<String>,
    /// Bearer key for `/v1/*` and `/metrics`; required off loopback.
    pub api_key: Option<String>,
    /// Browser origins allowed besides the page itself and `tauri://localhost`.
    pub allow_origins: Vec<String>,
    /// How models are fetched and loaded (Hub, cache, backend, threads).
    pub engine: EngineOptions,
    /// Requests waiting or running per model before a 429.
    pub queue: usize,
    /// Models loaded by a request are unloaded after this long unused
    /// (`None`: never).
    pub idle_timeout: Option<Duration>,
    /// Memory the loaded models may take together; the least recently
    /// used are unloaded past it (`None`: only the engine's own check).
    pub memory_budget: Option<u64>,
    /// Largest request body.
    pub max_body: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            models: Vec::new(),
            api_key: None,
            allow_origins: Vec::new(),
            engine: EngineOptions::default(),
            queue: 64,
            idle_timeout: Some(Duration::from_secs(300)),
            memory_budget: None,
            max_body: 1 << 20,
        }
    }
}

/// By hand: the API key must never reach a log.
impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("addr", &self.addr)
            .field("models", &self.models)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("allow_origins", &self.allow_origins)
            .field("queue", &self.queue)
            .field("idle_timeout", &self.idle_timeout)
            .field("memory_budget", &self.memory_budget)
            .field("max_body", &self.max_body)
            .finish_non_exhaustive()
    }
}

/// What every handler shares.
pub(crate) struct AppState {
    pool: Arc<Pool>,
    jobs: Jobs,
    metrics: Arc<Metrics>,
    hub: HubOptions,
    access: Access,
    /// The `--model`s as given.
    pinned: Vec<String>,
    ready: AtomicBool,
}

impl AppState {
    fn ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    /// The pool key and reference of the model a request names: one of the
    /// `--model`s as given, else a Hub reference (never a local path).
    fn resolve_model(&self, name: Option<&str>) -> Result<(String, ModelRef), ApiError> {
        let name = match name.map(str::trim).filter(|n| !n.is_empty()) {
            Some(n) => n,
            None => self
                .pinned
                .first()
                .ok_or_else(|| ApiError::field("model", "model: missing field"))?,
        };
        if self.pinned.iter().any(|p| p == name) {
            let model = name
                .parse()
                .map_err(|e: tektra_inference::Error| ApiError::field("model", e.to_string()))?;
            return Ok((name.to_string(), model));
        }
        let model = ModelRef::parse_hub(name).map_err(|e| {
            ApiError::field("model", format!("model: {e}")).with_code("model_not_found")
        })?;
        Ok((model.to_string(), model))
    }
}

/// A running daemon.
pub struct Daemon {
    addr: SocketAddr,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl Daemon {
    /// Binds, starts loading the `--model`s, and serves.
    pub async fn start(config: Config) -> Result<Daemon, DaemonError> {
        if !config.addr.ip().is_loopback() && config.api_key.is_none() {
            return Err(DaemonError::NeedsApiKey { addr: config.addr });
        }
        let mut pinned = Vec::new();
        for m in &config.models {
            let model: ModelRef =
                m.parse()
                    .map_err(|e: tektra_inference::Error| DaemonError::BadModel {
                        reference: m.clone(),
                        reason: e.to_string(),
                    })?;
            pinned.push((m.clone(), model));
        }
        let listener = tokio::net::TcpListener::bind(config.addr)
            .await
            .map_err(|source| DaemonError::Bind {
                addr: config.addr,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| DaemonError::Bind {
            addr: config.addr,
            source,
        })?;
        let metrics = Arc::new(Metrics::default());
        let state = Arc::new(AppState {
            pool: Arc::new(Pool::new(
                PoolConfig {
                    engine: config.engine.clone(),
                    queue: config.queue,
                    idle_timeout: config.idle_timeout,
                    memory_budget: config.memory_budget,
                },
                metrics.clone(),
            )),
            jobs: Jobs::new(metrics.clone()),
            metrics,
            hub: config.engine.hub.clone(),
            access: Access {
                api_key: config.api_key.clone(),
                origins: config.allow_origins.clone(),
            },
            pinned: pinned.iter().map(|(k, _)| k.clone()).collect(),
            ready: AtomicBool::new(pinned.is_empty()),
        });
        let stop = CancellationToken::new();
        preload(&state, pinned);
        spawn_idle_sweeper(&state, config.idle_timeout, stop.clone());
        let app = router(state, config.max_body);
        let shutdown = stop.clone();
        let task = tokio::spawn(async move {
            // Tokens are small writes: without NODELAY each waits for the
            // client's delayed ACK (40 ms on Linux) behind the previous one.
            let listener = listener.tap_io(|tcp| {
                let _ = tcp.set_nodelay(true);
            });
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async move { shutdown.cancelled().await })
                .await;
            if let Err(e) = served {
                tracing::error!("the daemon stopped: {e}");
            }
        });
        Ok(Daemon { addr, stop, task })
    }

    /// The address it listens on.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR`.
    #[must_use]
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting; open answers finish.
    pub fn shutdown(&self) {
        self.stop.cancel();
    }

    /// Waits until the server stops.
    pub async fn wait(mut self) {
        let task = std::mem::replace(&mut self.task, tokio::spawn(async {}));
        let _ = task.await;
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Loads the `--model`s one after the other; `/health` turns 200 when all
/// are in (or have failed: their jobs say why, and requests retry them).
fn preload(state: &Arc<AppState>, pinned: Vec<(String, ModelRef)>) {
    if pinned.is_empty() {
        return;
    }
    let state = state.clone();
    tokio::spawn(async move {
        for (key, model) in pinned {
            let (_job, mut done) = state.pool.load(&state.jobs, &key, &model, true);
            let outcome = done.wait_for(Option::is_some).await.map(|r| r.clone());
            if let Ok(Some(Err(e))) = outcome {
                tracing::error!(model = %key, "loading a --model failed: {}", e.body());
            }
        }
        state.ready.store(true, Ordering::SeqCst);
    });
}

fn spawn_idle_sweeper(state: &Arc<AppState>, idle: Option<Duration>, stop: CancellationToken) {
    let Some(idle) = idle else {
        return;
    };
    let state = state.clone();
    let every = (idle / 4).clamp(Duration::from_millis(100), Duration::from_secs(10));
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = tokio::time::sleep(every) => {}
                () = stop.cancelled() => return,
            }
            state.pool.unload_idle();
        }
    });
}

fn router(state: Arc<AppState>, max_body: usize) -> Router {
    Router::new()
        .route("/", get(web::page))
        .route("/health", get(api::health))
        .route("/metrics", get(api::metrics))
        .route("/v1/models", get(openai::models))
        .route("/v1/models/{*reference}", delete(api::delete_model))
        .route("/v1/chat/completions", post(openai::chat))
        .route("/v1/completions", post(openai::text))
        .route("/v1/jobs", post(api::create_job).get(api::list_jobs))
        .route("/v1/jobs/{id}", get(api::get_job))
        .route("/v1/jobs/{id}/events", get(api::job_events))
        .route("/v1/jobs/{id}/cancel", post(api::cancel_job))
        .fallback(|| async { ApiError::not_found("no such endpoint") })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            guard::check,
        ))
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(state)
}
