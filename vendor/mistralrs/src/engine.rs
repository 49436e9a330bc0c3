//! The Engine: load a model from a reference, then generate from prompts.
//! Backends implement [`Backend`]; the engine owns what is common: fetching,
//! the memory check, the chat template, warm-up and progress.

use std::time::{Duration, Instant};

use hf_hub::HubOptions;
use serde::Serialize;
use tektra_candle::DeviceChoice;
use tektra_progress::{SharedReporter, Stage, Tracker};
use tektra_tokenizers::{Message, TextTokenizer};
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};
use crate::fetch::{ModelFiles, fetch};
use crate::memory::MemoryEstimate;
use crate::model_ref::ModelRef;
use crate::sampling::Sampling;

/// Which backend runs the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// The native path when it covers the file (a GGUF of an architecture
    /// it runs, every tensor type it has kernels for), else candle.
    #[default]
    Auto,
    /// Our own forward pass on `tektra-kernels` (GGUF only).
    Native,
    /// candle-transformers, in process: the reference path, kept for
    /// safetensors, for what the native path does not cover and for
    /// comparison.
    Candle,
    /// mistral.rs (feature `mistralrs`).
    Mistralrs,
}

impl std::str::FromStr for BackendKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "auto" => Ok(BackendKind::Auto),
            "native" => Ok(BackendKind::Native),
            "candle" => Ok(BackendKind::Candle),
            "mistralrs" | "mistral.rs" => Ok(BackendKind::Mistralrs),
            other => Err(Error::BadReference {
                reference: other.to_string(),
                reason: "the engine is auto, native, candle or mistralrs".into(),
            }),
        }
    }
}

/// How to load a model.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// The backend.
    pub backend: BackendKind,
    /// Where the model runs.
    pub device: DeviceChoice,
    /// The Hub: endpoint, token, cache, offline.
    pub hub: HubOptions,
    /// Refuse to load when the machine lacks the memory (on by default).
    pub check_memory: bool,
    /// Memory the model may use at most, below what the OS has available.
    pub memory_limit: Option<u64>,
    /// Longest context to plan for (prompt + generated); the model's own
    /// limit when smaller.
    pub max_context: usize,
    /// Run the model once after loading so the first request is not slow.
    pub warm_up: bool,
    /// Kernel threads of the native path (default: every CPU this process
    /// may use).
    pub threads: Option<usize>,
    /// The native path's instruction set (default: `TEKTRA_ISA`, else the
    /// best this CPU has).
    pub isa: Option<tektra_kernels::Isa>,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            backend: BackendKind::Auto,
            device: DeviceChoice::Auto,
            hub: HubOptions::from_env(),
            check_memory: true,
            memory_limit: None,
            max_context: 4096,
            warm_up: true,
            threads: None,
            isa: None,
        }
    }
}

/// What to generate from.
#[derive(Debug, Clone)]
pub enum Prompt {
    /// Text as is (no chat template).
    Text(String),
    /// A conversation, rendered with the model's chat template.
    Chat(Vec<Message>),
}

/// Why a generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// The model produced an end-of-sequence token.
    Eos,
    /// A stop string appeared.
    StopString,
    /// `max_tokens` were generated.
    MaxTokens,
    /// The caller cancelled.
    Cancelled,
}

/// Figures of one generation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct GenerationStats {
    /// Tokens in the prompt.
    pub prompt_tokens: usize,
    /// Tokens generated (the EOS token not counted).
    pub generated_tokens: usize,
    /// From the call to the first generated token.
    pub time_to_first_token: Duration,
    /// Prompt tokens per second while reading the prompt.
    pub prompt_tokens_per_sec: f64,
    /// Generated tokens per second after the first.
    pub tokens_per_sec: f64,
    /// Why it ended.
    pub stop_reason: StopReason,
}

impl GenerationStats {
    /// Stats from timings: `first` is when the first token came out, `end`
    /// when the last did.
    #[must_use]
    pub fn from_timings(
        prompt_tokens: usize,
        generated_tokens: usize,
        (start, prompt_done, first, end): (Instant, Instant, Option<Instant>, Instant),
        stop_reason: StopReason,
    ) -> Self {
        let prompt_secs = prompt_done.duration_since(start).as_secs_f64();
        let ttft = first.map_or(end.duration_since(start), |f| f.duration_since(start));
        let decode_secs = first.map_or(0.0, |f| end.duration_since(f).as_secs_f64());
        #[allow(clippy::cast_precision_loss)]
        let per_sec = |n: usize, secs: f64| if secs > 0.0 { n as f64 / secs } else { 0.0 };
        GenerationStats {
            prompt_tokens,
            generated_tokens,
            time_to_first_token: ttft,
            prompt_tokens_per_sec: per_sec(prompt_tokens, prompt_secs),
            tokens_per_sec: per_sec(generated_tokens.saturating_sub(1), decode_secs),
            stop_reason,
        }
    }
}

/// Where a generation's output goes: text as it is decoded, and (from the
/// backends that know them) each generated token id. Any `FnMut(&str)` is
/// a sink that takes the text only.
pub trait Sink {
    /// A piece of text (never half a character, never part of a stop string).
    fn text(&mut self, piece: &str);
    /// A generated token id, in order (the native and candle backends).
    fn token(&mut self, id: u32) {
        let _ = id;
    }
}

impl<F: FnMut(&str) + ?Sized> Sink for F {
    fn text(&mut self, piece: &str) {
        self(piece);
    }
}

/// What a backend does; the engine does the rest.
pub trait Backend: Send {
    /// "candle" or "mistralrs".
    fn name(&self) -> &'static str;
    /// Generates after `prompt` (token ids, not empty, leaving room for
    /// `max_tokens` in the context), sending each piece of text to `out`
    /// as it is decoded (never half a character, never part of a stop
    /// string) and, where the backend knows them, each token id.
    /// Returns when done, on a stop, or promptly after `cancel` fires (with
    /// [`StopReason::Cancelled`]).
    fn generate(
        &mut self,
        prompt: &[u32],
        sampling: &Sampling,
        out: &mut dyn Sink,
        cancel: &CancellationToken,
    ) -> Result<GenerationStats>;
    /// The sum of `ln p(token | previous tokens)` over the tokens of `text`
    /// after the first, and how many tokens that is.
    fn log_likelihood(&mut self, text: &str, cancel: &CancellationToken) -> Result<(f64, usize)>;
    /// One short forward pass so caches and kernels are ready.
    fn warm_up(&mut self) -> Result<()>;
    /// Runs `tokens` as a fresh sequence and passes the logits after each
    /// position to `f(position, logits)` (for evaluations such as the
    /// KL divergence against a reference).
    fn each_position_logits(
        &mut self,
        tokens: &[u32],
        f: &mut dyn FnMut(usize, &[f32]),
        cancel: &CancellationToken,
    ) -> Result<()> {
        let _ = (tokens, f, cancel);
        Err(Error::Sampling(format!(
            "the {} backend does not give per-position logits",
            self.name()
        )))
    }
}

/// What was loaded, and how it went.
#[derive(Debug, Clone, Serialize)]
pub struct ModelInfo {
    /// The reference as given.
    pub reference: String,
    /// The file or folder loaded.
    pub path: std::path::PathBuf,
    /// The architecture the model declares.
    pub architecture: String,
    /// Whether the model has a chat template (then prompts are chats).
    pub has_chat_template: bool,
    /// The backend.
    pub backend: &'static str,
    /// Context length planned for.
    pub context: usize,
    /// The memory estimate made before loading.
    pub memory: MemoryEstimate,
    /// Tensors loaded.
    pub tensors: usize,
    /// Time from the start of `load` to ready (warm-up included).
    pub load_time: Duration,
    /// Warm-up time.
    pub warm_up_time: Duration,
}

/// A loaded model, ready to generate.
pub struct Engine {
    backend: Box<dyn Backend>,
    tokenizer: TextTokenizer,
    info: ModelInfo,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

/// What a backend's loader hands back.
pub(crate) struct Loaded {
    pub(crate) backend: Box<dyn Backend>,
    pub(crate) tokenizer: TextTokenizer,
    pub(crate) architecture: String,
    pub(crate) context: usize,
    pub(crate) memory: MemoryEstimate,
    pub(crate) tensors: usize,
}

impl Engine {
    /// Fetches (through the Hub cache), checks memory, loads and warms up a
    /// model, reporting every stage to `reporter`.
    pub async fn load(
        model: &ModelRef,
        options: &EngineOptions,
        reporter: SharedReporter,
        cancel: &CancellationToken,
    ) -> Result<Engine> {
        let started = Instant::now();
        let files = fetch(model, &options.hub, reporter.clone(), cancel).await?;
        let (opts, rep, stop, files2, model2) = (
            options.clone(),
            reporter.clone(),
            cancel.clone(),
            files.clone(),
            model.clone(),
        );
        let loaded =
            tokio::task::spawn_blocking(move || load_backend(&model2, &files2, &opts, rep, &stop))
                .await
                .map_err(|e| Error::Task(e.to_string()))??;
        let Loaded {
            mut backend,
            tokenizer,
            architecture,
            context,
            memory,
            tensors,
        } = loaded;
        let mut warm_up_time = Duration::ZERO;
        if options.warm_up {
            let tracker = Tracker::new(Stage::WarmingUp, reporter);
            tracker.begin_stage(Stage::WarmingUp, Some(backend.name().to_string()));
            let t = Instant::now();
            let (warmed, back) = tokio::task::spawn_blocking(move || {
                let r = backend.warm_up();
                (r, backend)
            })
            .await
            .map_err(|e| Error::Task(e.to_string()))?;
            backend = back;
            warmed?;
            warm_up_time = t.elapsed();
            tracker.end_stage(Some(format!("{} ms", warm_up_time.as_millis())));
        }
        Ok(Engine {
            info: ModelInfo {
                reference: model.to_string(),
                path: files.path().to_path_buf(),
                architecture,
                has_chat_template: tokenizer.chat_template().is_some(),
                backend: backend.name(),
                context,
                memory,
                tensors,
                load_time: started.elapsed(),
                warm_up_time,
            },
            backend,
            tokenizer,
        })
    }

    /// What was loaded.
    #[must_use]
    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    /// The model's tokenizer and chat template.
    #[must_use]
    pub fn tokenizer(&self) -> &TextTokenizer {
        &self.tokenizer
    }

    /// The prompt text for `prompt`: as is, or the chat rendered with the
    /// model's template and a generation prompt.
    pub fn render(&self, prompt: &Prompt) -> Result<String> {
        match prompt {
            Prompt::Text(t) => Ok(t.clone()),
            Prompt::Chat(messages) => Ok(self.tokenizer.apply_chat_template(messages, true)?),
        }
    }

    /// Generates, streaming text to `on_text`. Blocking (CPU-bound): from
    /// async code run it under `spawn_blocking`. A cancelled generation
    /// returns its stats with [`StopReason::Cancelled`]; the engine is ready
    /// for the next request.
    pub fn generate(
        &mut self,
        prompt: &Prompt,
        sampling: &Sampling,
        on_text: &mut dyn FnMut(&str),
        cancel: &CancellationToken,
    ) -> Result<GenerationStats> {
        let mut text = on_text;
        self.generate_to(prompt, sampling, &mut text, cancel)
    }

    /// As [`Engine::generate`], with a [`Sink`] that also receives token ids.
    pub fn generate_to(
        &mut self,
        prompt: &Prompt,
        sampling: &Sampling,
        out: &mut dyn Sink,
        cancel: &CancellationToken,
    ) -> Result<GenerationStats> {
        sampling.validate()?;
        let text = self.render(prompt)?;
        // A rendered chat template carries its own BOS; plain text gets the
        // special tokens the model asks for.
        let tokens = self
            .tokenizer
            .encode(&text, matches!(prompt, Prompt::Text(_)))?;
        if tokens.is_empty() {
            return Err(Error::Sampling("the prompt encodes to no tokens".into()));
        }
        if tokens.len() + sampling.max_tokens > self.info.context {
            return Err(Error::ContextOverflow {
                tokens: tokens.len(),
                max_tokens: sampling.max_tokens,
                context: self.info.context,
            });
        }
        self.backend.generate(&tokens, sampling, out, cancel)
    }

    /// Runs `tokens` as a fresh sequence and passes the logits after each
    /// position to `f(position, logits)`.
    pub fn each_position_logits(
        &mut self,
        tokens: &[u32],
        f: &mut dyn FnMut(usize, &[f32]),
        cancel: &CancellationToken,
    ) -> Result<()> {
        if tokens.len() > self.info.context {
            return Err(Error::ContextOverflow {
                tokens: tokens.len(),
                max_tokens: 0,
                context: self.info.context,
            });
        }
        self.backend.each_position_logits(tokens, f, cancel)
    }

    /// Perplexity of `text` under the model: `exp(-mean ln p(token))` over
    /// every token after the first.
    pub fn perplexity(&mut self, text: &str, cancel: &CancellationToken) -> Result<f64> {
        let (sum, n) = self.backend.log_likelihood(text, cancel)?;
        if n == 0 {
            return Err(Error::Sampling(
                "perplexity needs at least two tokens".into(),
            ));
        }
        #[allow(clippy::cast_precision_loss)]
        Ok((-sum / n as f64).exp())
    }
}

#[cfg_attr(not(feature = "mistralrs"), allow(unused_variables))]
fn load_backend(
    model: &ModelRef,
    files: &ModelFiles,
    options: &EngineOptions,
    reporter: SharedReporter,
    cancel: &CancellationToken,
) -> Result<Loaded> {
    match options.backend {
        BackendKind::Auto | BackendKind::Native | BackendKind::Candle => {
            crate::candle::load(files, options, reporter, cancel)
        }
        #[cfg(feature = "mistralrs")]
        BackendKind::Mistralrs => crate::mistralrs::load(model, files, options, reporter, cancel),
        #[cfg(not(feature = "mistralrs"))]
        BackendKind::Mistralrs => Err(Error::Mistralrs(
            "this build has no mistral.rs backend: build with the `mistralrs` feature (see patches/README.md)".into(),
        )),
    }
}
