//! Loaded models. Each runs on its own thread, which owns the engine and
//! takes generation requests from a bounded queue in order; a model named
//! for the first time is loaded by a load job that every request for it
//! waits on. Idle models are unloaded after a timeout, and the least
//! recently used go first when memory is short.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tektra_inference::{
    Engine, EngineOptions, Error as EngineError, GenerationStats, ModelInfo, ModelRef, Prompt,
    Sampling, Sink,
};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::error::ApiError;
use crate::jobs::{Job, JobKey, JobKind, JobState, Jobs};
use crate::metrics::Metrics;
use crate::openai::FILL_CONTEXT;

/// One generation asked of a model's thread.
pub(crate) struct GenRequest {
    pub(crate) prompt: Prompt,
    pub(crate) sampling: Sampling,
    /// Where text goes; closed by the receiver when the client is gone.
    pub(crate) out: mpsc::UnboundedSender<Piece>,
    pub(crate) cancel: CancellationToken,
    pub(crate) arrived: Instant,
}

/// What a model's thread sends back for a request.
pub(crate) enum Piece {
    Text(String),
    Done(Result<GenerationStats, EngineError>),
}

/// A loaded model and its queue.
pub(crate) struct Worker {
    pub(crate) info: ModelInfo,
    tx: mpsc::Sender<GenRequest>,
    /// Requests queued or running.
    pending: Arc<AtomicUsize>,
    last_used: Mutex<Instant>,
    /// Loaded by `--model` at start: never unloaded for idleness.
    pinned: bool,
    /// Shared locks on the model's blobs while it is loaded, so that
    /// `tektra cache rm`/`prune` in any process leave them alone.
    _blobs: Vec<std::fs::File>,
}

/// The queue is full: try again later.
pub(crate) struct QueueFull;

impl Worker {
    /// Queues `request`, or refuses at once when the queue is full.
    pub(crate) fn submit(&self, request: GenRequest) -> Result<(), QueueFull> {
        self.touch();
        self.pending.fetch_add(1, Ordering::SeqCst);
        if self.tx.try_send(request).is_err() {
            self.pending.fetch_sub(1, Ordering::SeqCst);
            return Err(QueueFull);
        }
        Ok(())
    }

    pub(crate) fn pending(&self) -> usize {
        self.pending.load(Ordering::SeqCst)
    }

    fn touch(&self) {
        *self
            .last_used
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Instant::now();
    }

    fn idle_for(&self) -> Duration {
        self.last_used
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .elapsed()
    }
}

/// Sends each piece of text to the request's channel; a closed channel (the
/// client went away) cancels the generation at its next token.
struct ChannelSink<'a> {
    request: &'a GenRequest,
    metrics: &'a Metrics,
    first: bool,
}

impl Sink for ChannelSink<'_> {
    fn text(&mut self, piece: &str) {
        if self.first {
            self.first = false;
            self.metrics.first_token(self.request.arrived.elapsed());
        }
        if self
            .request
            .out
            .send(Piece::Text(piece.to_string()))
            .is_err()
        {
            self.request.cancel.cancel();
        }
    }
}

/// The model's thread: requests in order until every sender is gone.
fn serve(
    mut engine: Engine,
    mut rx: mpsc::Receiver<GenRequest>,
    pending: Arc<AtomicUsize>,
    metrics: Arc<Metrics>,
) {
    while let Some(request) = rx.blocking_recv() {
        let result = if request.cancel.is_cancelled() || request.out.is_closed() {
            Err(EngineError::Cancelled)
        } else {
            let mut sink = ChannelSink {
                request: &request,
                metrics: &metrics,
                first: true,
            };
            let mut sampling = request.sampling.clone();
            if sampling.max_tokens == FILL_CONTEXT {
                sampling.max_tokens = room_after(&engine, &request.prompt);
            }
            engine.generate_to(&request.prompt, &sampling, &mut sink, &request.cancel)
        };
        if let Ok(stats) = &result {
            metrics.generation(stats);
        }
        let _ = request.out.send(Piece::Done(result));
        pending.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Tokens left in the context after `prompt` (at least 1: a prompt that
/// fills the context then fails with the engine's own error).
fn room_after(engine: &Engine, prompt: &Prompt) -> usize {
    let count = engine.render(prompt).ok().and_then(|text| {
        engine
            .tokenizer()
            .encode(&text, matches!(prompt, Prompt::Text(_)))
            .ok()
            .map(|t| t.len())
    });
    count.map_or(1, |n| engine.info().context.saturating_sub(n).max(1))
}

type LoadResult = Option<Result<Arc<Worker>, ApiError>>;

enum Slot {
    Loading(watch::Receiver<LoadResult>),
    Ready(Arc<Worker>),
}

/// Settings of the pool.
#[derive(Debug, Clone)]
pub(crate) struct PoolConfig {
    pub(crate) engine: EngineOptions,
    pub(crate) queue: usize,
    pub(crate) idle_timeout: Option<Duration>,
    pub(crate) memory_budget: Option<u64>,
}

/// Every model loaded or loading, by reference.
pub(crate) struct Pool {
    slots: Mutex<HashMap<String, Slot>>,
    config: PoolConfig,
    metrics: Arc<Metrics>,
}

impl Pool {
    pub(crate) fn new(config: PoolConfig, metrics: Arc<Metrics>) -> Pool {
        Pool {
            slots: Mutex::new(HashMap::new()),
            config,
            metrics,
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Slot>> {
        self.slots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The loaded models.
    pub(crate) fn loaded(&self) -> Vec<Arc<Worker>> {
        self.lock()
            .values()
            .filter_map(|s| match s {
                Slot::Ready(w) => Some(w.clone()),
                Slot::Loading(_) => None,
            })
            .collect()
    }

    /// Whether a model of `repo` is loaded or loading.
    pub(crate) fn holds_repo(&self, repo: &str) -> bool {
        self.lock()
            .keys()
            .any(|k| crate::cache::names_repo(k, repo))
    }

    /// Requests queued or running over every model.
    pub(crate) fn pending(&self) -> usize {
        self.loaded().iter().map(|w| w.pending()).sum()
    }

    /// The loaded model `key`, loading it first (as a load job) if needed.
    pub(crate) async fn get(
        self: &Arc<Self>,
        jobs: &Jobs,
        key: &str,
        model: &ModelRef,
    ) -> Result<Arc<Worker>, ApiError> {
        let ready = match self.lock().get(key) {
            Some(Slot::Ready(worker)) => Ok(worker.clone()),
            Some(Slot::Loading(rx)) => Err(Some(rx.clone())),
            None => Err(None),
        };
        let mut done = match ready {
            Ok(worker) => {
                worker.touch();
                return Ok(worker);
            }
            Err(Some(rx)) => rx,
            Err(None) => self.load(jobs, key, model, false).1,
        };
        let result = done
            .wait_for(Option::is_some)
            .await
            .map_err(|_| ApiError::server("the load ended without an answer"))?;
        result
            .clone()
            .unwrap_or_else(|| Err(ApiError::server("the load ended without an answer")))
    }

    /// Starts loading `key` (or joins the load under way): the job, and a
    /// receiver that gets the outcome.
    pub(crate) fn load(
        self: &Arc<Self>,
        jobs: &Jobs,
        key: &str,
        model: &ModelRef,
        pinned: bool,
    ) -> (Arc<Job>, watch::Receiver<LoadResult>) {
        let mut slots = self.lock();
        let (job, new) = jobs.get_or_create(JobKey {
            kind: JobKind::Load,
            model: key.to_string(),
            include: Vec::new(),
            exclude: Vec::new(),
        });
        match slots.get(key) {
            Some(Slot::Loading(rx)) => return (job, rx.clone()),
            Some(Slot::Ready(worker)) => {
                let (_tx, rx) = watch::channel(Some(Ok(worker.clone())));
                if new {
                    job.finish(Ok(worker.info.path.display().to_string()));
                }
                return (job, rx);
            }
            None => {}
        }
        let (tx, rx) = watch::channel(None);
        slots.insert(key.to_string(), Slot::Loading(rx.clone()));
        drop(slots);
        let (pool, job2, key, model) = (self.clone(), job.clone(), key.to_string(), model.clone());
        tokio::spawn(async move {
            let outcome = pool.run_load(&job2, &key, &model, pinned).await;
            let mut slots = pool.lock();
            match &outcome {
                Ok(worker) => {
                    slots.insert(key.clone(), Slot::Ready(worker.clone()));
                    drop(slots);
                    job2.finish(Ok(worker.info.path.display().to_string()));
                    pool.keep_within_budget(&key);
                }
                Err(e) => {
                    slots.remove(&key);
                    drop(slots);
                    let state = if e.is_cancelled() {
                        JobState::Cancelled
                    } else {
                        JobState::Failed
                    };
                    job2.finish(Err((state, e.to_string())));
                }
            }
            let _ = tx.send(Some(outcome.map_err(|e| {
                ApiError::from_engine(&e).context(&format!("loading {key}"))
            })));
        });
        (job, rx)
    }

    async fn run_load(
        &self,
        job: &Arc<Job>,
        key: &str,
        model: &ModelRef,
        pinned: bool,
    ) -> Result<Arc<Worker>, EngineError> {
        job.set_running();
        let engine = loop {
            let reporter: tektra_progress::SharedReporter = job.clone();
            match Engine::load(model, &self.config.engine, reporter, &job.cancel).await {
                Ok(engine) => break engine,
                Err(EngineError::NotEnoughMemory { .. }) if self.evict_one(key) => {}
                Err(e) => return Err(e),
            }
        };
        let (tx, rx) = mpsc::channel(self.config.queue.max(1));
        let pending = Arc::new(AtomicUsize::new(0));
        let worker = Arc::new(Worker {
            _blobs: tektra_cache::pin(&engine.info().path),
            info: engine.info().clone(),
            tx,
            pending: pending.clone(),
            last_used: Mutex::new(Instant::now()),
            pinned,
        });
        let metrics = self.metrics.clone();
        std::thread::Builder::new()
            .name(format!("model {key}"))
            .spawn(move || serve(engine, rx, pending, metrics))
            .map_err(|e| EngineError::Task(format!("cannot start the model's thread: {e}")))?;
        Ok(worker)
    }

    /// Unloads the least recently used idle model other than `keep`; false
    /// when there is none.
    fn evict_one(&self, keep: &str) -> bool {
        let mut slots = self.lock();
        let victim = slots
            .iter()
            .filter_map(|(k, s)| match s {
                Slot::Ready(w) if k != keep && w.pending() == 0 => Some((k.clone(), w.idle_for())),
                _ => None,
            })
            .max_by_key(|(_, idle)| *idle)
            .map(|(k, _)| k);
        match victim {
            Some(k) => {
                tracing::info!(model = %k, "unloading the least recently used model: memory is short");
                slots.remove(&k);
                true
            }
            None => false,
        }
    }

    /// With a memory budget, unloads least recently used models until the
    /// loaded ones fit (never `keep`, the one just loaded).
    fn keep_within_budget(&self, keep: &str) {
        let Some(budget) = self.config.memory_budget else {
            return;
        };
        loop {
            let used: u64 = self.loaded().iter().map(|w| w.info.memory.total()).sum();
            if used <= budget || !self.evict_one(keep) {
                return;
            }
        }
    }

    /// Unloads models idle for longer than the idle timeout (not those
    /// loaded at start); returns what it unloaded.
    pub(crate) fn unload_idle(&self) -> Vec<String> {
        let Some(limit) = self.config.idle_timeout else {
            return Vec::new();
        };
        let mut slots = self.lock();
        let idle: Vec<String> = slots
            .iter()
            .filter_map(|(k, s)| match s {
                Slot::Ready(w) if !w.pinned && w.pending() == 0 && w.idle_for() >= limit => {
                    Some(k.clone())
                }
                _ => None,
            })
            .collect();
        for k in &idle {
            tracing::info!(model = %k, "unloading an idle model");
            slots.remove(k);
        }
        idle
    }
}
