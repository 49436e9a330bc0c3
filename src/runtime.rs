//! `Runtime`: the stages wired together for an application: pull (resolve,
//! download, verify) -> load -> warm-up -> generate, all reporting to one
//! progress stream, with generation running off the async threads and its
//! text arriving as a stream.

use std::sync::{Arc, Mutex};

use tektra_inference::{
    Engine, EngineOptions, GenerationStats, ModelInfo, ModelRef, Prompt, Sampling,
};
use tektra_progress::SharedReporter;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use tektra_inference::Error;

/// A loaded model behind an async API. Cheap to clone; one generation runs
/// at a time (the next waits for the previous).
#[derive(Clone)]
pub struct Runtime {
    engine: Arc<Mutex<Engine>>,
    info: ModelInfo,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

/// A generation in progress: its text as it comes, then its stats.
#[derive(Debug)]
pub struct Generation {
    /// Pieces of text, in order; the channel closes when generation ends.
    pub text: mpsc::UnboundedReceiver<String>,
    /// The stats, once the last piece is sent.
    pub done: JoinHandle<Result<GenerationStats, Error>>,
}

impl Runtime {
    /// Fetches, checks, loads and warms up `model`, every stage reported to
    /// `reporter`.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), tektra::runtime::Error> {
    /// use tektra::runtime::Runtime;
    /// use tektra_inference::{EngineOptions, Prompt, Sampling};
    /// use tokio_util::sync::CancellationToken;
    /// let cancel = CancellationToken::new();
    /// let (reporter, _events) = tektra_progress::channel();
    /// let model = tektra_inference::DEFAULT_MODEL.parse()?;
    /// let rt = Runtime::load(&model, &EngineOptions::default(), std::sync::Arc::new(reporter), &cancel).await?;
    /// let mut generation = rt.generate(Prompt::Text("Hello".into()), Sampling::default(), cancel);
    /// while let Some(piece) = generation.text.recv().await {
    ///     print!("{piece}");
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn load(
        model: &ModelRef,
        options: &EngineOptions,
        reporter: SharedReporter,
        cancel: &CancellationToken,
    ) -> Result<Runtime, Error> {
        let engine = Engine::load(model, options, reporter, cancel).await?;
        let info = engine.info().clone();
        Ok(Runtime {
            engine: Arc::new(Mutex::new(engine)),
            info,
        })
    }

    /// What was loaded.
    #[must_use]
    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    /// Starts a generation on a blocking thread. Cancel `cancel` to stop it;
    /// the stats then say `cancelled` and the runtime takes the next request.
    #[must_use]
    pub fn generate(
        &self,
        prompt: Prompt,
        sampling: Sampling,
        cancel: CancellationToken,
    ) -> Generation {
        let (tx, rx) = mpsc::unbounded_channel();
        let engine = self.engine.clone();
        let done = tokio::task::spawn_blocking(move || {
            let mut engine = engine
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            engine.generate(
                &prompt,
                &sampling,
                &mut |piece| {
                    let _ = tx.send(piece.to_string());
                },
                &cancel,
            )
        });
        Generation { text: rx, done }
    }

    /// Perplexity of `text` (see [`Engine::perplexity`]), on a blocking thread.
    pub async fn perplexity(&self, text: String, cancel: CancellationToken) -> Result<f64, Error> {
        let engine = self.engine.clone();
        tokio::task::spawn_blocking(move || {
            engine
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .perplexity(&text, &cancel)
        })
        .await
        .map_err(|e| Error::Task(e.to_string()))?
    }
}
