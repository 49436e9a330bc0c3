//! The mistral.rs backend (feature `mistralrs`).
//!
//! mistral.rs runs the model; everything around it stays ours, so both
//! backends behave the same: prompts are tokenized by tektra-tokenizers
//! and sent as token ids, and every next token is chosen by our sampler
//! inside a mistral.rs logits processor, which forces that token. So
//! sampling, stop strings and streamed text are identical across backends,
//! and scoring a text (perplexity) is the same processor forcing the text's
//! own tokens while it records their log-probabilities.
//!
//! Files are fetched by our hf-hub before mistral.rs starts (mistral.rs's own
//! Hub calls go through the same fork and find them cached; any it makes
//! report to the ambient reporter) and prefetched into the page cache with
//! tektra-candle before mistral.rs maps them, so loading shows file-level
//! progress.

use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use candle_core::{DType, Tensor};
use mistralrs::{
    Constraint, CustomLogitsProcessor, GgufModelBuilder, Model, NormalRequest, Request,
    RequestMessage, Response, SamplingParams,
};
use tektra_progress::SharedReporter;
use tektra_tokenizers::TextTokenizer;
use tokio_util::sync::CancellationToken;

use crate::engine::{Backend, EngineOptions, GenerationStats, Loaded, Sink, StopReason};
use crate::error::{Error, Result};
use crate::fetch::ModelFiles;
use crate::model_ref::ModelRef;
use crate::sampling::{Sampler, Sampling};
use crate::stop::StopMatcher;

/// A model running in mistral.rs.
pub(crate) struct MistralrsBackend {
    model: Arc<Model>,
    /// Always `Some` until drop; taken there to shut it down without blocking.
    runtime: Option<tokio::runtime::Runtime>,
    tokenizer: TextTokenizer,
    eos: u32,
}

impl Drop for MistralrsBackend {
    fn drop(&mut self) {
        // Callers drop engines from async code; a plain drop of a runtime
        // there panics, so let its workers wind down on their own.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl MistralrsBackend {
    fn runtime(&self) -> Result<&tokio::runtime::Runtime> {
        self.runtime
            .as_ref()
            .ok_or_else(|| mrs("the engine is shutting down"))
    }
}

fn mrs(e: impl std::fmt::Display) -> Error {
    Error::Mistralrs(e.to_string())
}

/// Loads `files` into mistral.rs. Blocking.
pub(crate) fn load(
    model_ref: &ModelRef,
    files: &ModelFiles,
    options: &EngineOptions,
    reporter: SharedReporter,
    cancel: &CancellationToken,
) -> Result<Loaded> {
    let ModelFiles::Gguf(path) = files else {
        return Err(Error::Unsupported {
            found: "safetensors".into(),
            backend: "mistralrs",
            supported: "GGUF files",
        });
    };
    let gguf = tektra_candle::gguf::GgufFile::open(path)?;
    let content = gguf.content();
    let tokenizer = TextTokenizer::from_gguf(&content)?;
    let architecture = crate::candle::gguf_architecture(&content.metadata);
    let (memory, context) = crate::candle::gguf_memory(&gguf, options)?;
    let tensors = gguf.header().tensors.len();
    drop(gguf);
    // Into the page cache first, with progress: mistral.rs maps the file and
    // would otherwise fault it in silently.
    tektra_candle::prefetch(std::slice::from_ref(path), reporter.clone(), cancel)?;
    let (model_id, file) = match model_ref {
        ModelRef::Hub {
            repo,
            file: Some(f),
            ..
        } => (repo.clone(), f.clone()),
        _ => {
            let dir = path
                .parent()
                .map(|d| d.display().to_string())
                .unwrap_or_else(|| ".".into());
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            (dir, name)
        }
    };
    let mut builder = GgufModelBuilder::new(model_id, vec![file]);
    if let ModelRef::Hub {
        revision: Some(rev),
        ..
    } = model_ref
    {
        builder = builder.with_hf_revision(rev);
    }
    if matches!(
        tektra_candle::DeviceChoice::device(options.device)?,
        candle_core::Device::Cpu
    ) {
        builder = builder.with_force_cpu();
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(mrs)?;
    // Anything mistral.rs fetches itself through our hf-hub fork reports too.
    hf_hub::api::set_ambient_reporter(Some(reporter));
    let built = std::thread::scope(|s| s.spawn(|| runtime.block_on(builder.build())).join());
    hf_hub::api::set_ambient_reporter(None);
    let model = match built {
        Ok(Ok(model)) => model,
        failed => {
            runtime.shutdown_background();
            return Err(match failed {
                Ok(Err(e)) => mrs(e),
                _ => mrs("the loader thread panicked"),
            });
        }
    };
    let eos = tokenizer
        .specials()
        .eos
        .as_ref()
        .map(|t| t.id)
        .ok_or_else(|| Error::Mistralrs("the model has no end-of-sequence token".into()))?;
    Ok(Loaded {
        backend: Box::new(MistralrsBackend {
            model: Arc::new(model),
            runtime: Some(runtime),
            tokenizer: tokenizer.clone(),
            eos,
        }),
        tokenizer,
        architecture,
        context,
        memory,
        tensors,
    })
}

/// What the logits processor does at each step.
enum Mode {
    /// Pick with our sampler; send each pick to the caller.
    Generate {
        sampler: Box<Sampler>,
        picks: std_mpsc::Sender<u32>,
    },
    /// Force `targets` one by one, adding up their log-probabilities.
    Score {
        targets: Vec<u32>,
        next: usize,
        sum: f64,
    },
}

struct Steering {
    mode: Mode,
    /// Set by the caller: force end-of-sequence at the next step.
    stop: bool,
    eos: u32,
}

/// Logits that make `token` the only possible choice.
fn forced(logits: &Tensor, token: u32) -> candle_core::Result<Tensor> {
    let n = logits.elem_count();
    let mut v = vec![f32::NEG_INFINITY; n];
    if let Some(x) = v.get_mut(token as usize) {
        *x = 0.0;
    }
    Tensor::from_vec(v, logits.shape(), logits.device())?.to_dtype(logits.dtype())
}

struct Processor(Arc<Mutex<Steering>>);

impl CustomLogitsProcessor for Processor {
    fn apply(&self, logits: &Tensor, context: &[u32]) -> candle_core::Result<Tensor> {
        let mut s = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let eos = s.eos;
        if s.stop {
            return forced(logits, eos);
        }
        let mut values = logits
            .to_dtype(DType::F32)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        let token = match &mut s.mode {
            Mode::Generate { sampler, picks } => {
                let t = sampler.sample(&mut values, context);
                let _ = picks.send(t);
                t
            }
            Mode::Score { targets, next, sum } => match targets.get(*next) {
                Some(&t) => {
                    *sum += crate::candle::log_prob(&values, t);
                    *next += 1;
                    t
                }
                None => eos,
            },
        };
        forced(logits, token)
    }
}

impl MistralrsBackend {
    /// Sends token ids with our processor; returns once mistral.rs is done.
    fn run(&self, tokens: Vec<u32>, max_len: usize, steering: Arc<Mutex<Steering>>) -> Result<()> {
        let model = self.model.clone();
        let runtime = self.runtime()?;
        let request_done = runtime.spawn(async move {
            let (tx, mut rx) = tokio::sync::mpsc::channel(16);
            let sender = model.inner().get_sender(None).map_err(mrs)?;
            let params = SamplingParams {
                max_len: Some(max_len),
                ..SamplingParams::neutral()
            };
            let mut request = NormalRequest::new_simple(
                RequestMessage::CompletionTokens(tokens),
                params,
                tx,
                model.inner().next_request_id(),
                None,
                None,
            );
            request.constraint = Constraint::None;
            request.logits_processors = Some(vec![Arc::new(Processor(steering))]);
            sender
                .send(Request::Normal(Box::new(request)))
                .await
                .map_err(mrs)?;
            while let Some(response) = rx.recv().await {
                match response {
                    Response::CompletionDone(_) | Response::Done(_) => return Ok(()),
                    Response::InternalError(e) | Response::ValidationError(e) => {
                        return Err(mrs(e));
                    }
                    Response::CompletionModelError(e, _) | Response::ModelError(e, _) => {
                        return Err(mrs(e));
                    }
                    _ => {}
                }
            }
            Err(mrs("mistral.rs closed the response channel"))
        });
        let (tx, rx) = std_mpsc::channel();
        runtime.spawn(async move {
            let _ = tx.send(request_done.await);
        });
        rx.recv().map_err(mrs)?.map_err(mrs)?
    }
}

impl Backend for MistralrsBackend {
    fn name(&self) -> &'static str {
        "mistralrs"
    }

    fn generate(
        &mut self,
        prompt: &[u32],
        sampling: &Sampling,
        sink: &mut dyn Sink,
        cancel: &CancellationToken,
    ) -> Result<GenerationStats> {
        let start = Instant::now();
        let tokens = prompt.to_vec();
        let prompt_tokens = tokens.len();
        let (picks_tx, picks) = std_mpsc::channel();
        let steering = Arc::new(Mutex::new(Steering {
            mode: Mode::Generate {
                sampler: Box::new(Sampler::new(sampling)),
                picks: picks_tx,
            },
            stop: false,
            eos: self.eos,
        }));
        let stop_now = {
            let s = steering.clone();
            move || {
                s.lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .stop = true
            }
        };
        let max_len = sampling.max_tokens + 1;
        let mut decoder = self.tokenizer.stream_decoder(true);
        let mut stops = StopMatcher::new(sampling.stop.clone());
        let mut reason = StopReason::MaxTokens;
        let mut first = None;
        let mut prompt_done = None;
        let mut generated = 0;
        let result = std::thread::scope(|scope| {
            let worker = scope.spawn(|| self.run(tokens, max_len, steering.clone()));
            loop {
                let pick = match picks.recv_timeout(std::time::Duration::from_millis(20)) {
                    Ok(p) => p,
                    Err(std_mpsc::RecvTimeoutError::Timeout) => {
                        if cancel.is_cancelled() && reason != StopReason::Cancelled {
                            reason = StopReason::Cancelled;
                            stop_now();
                        }
                        if worker.is_finished() {
                            break;
                        }
                        continue;
                    }
                    Err(std_mpsc::RecvTimeoutError::Disconnected) => break,
                };
                let now = Instant::now();
                prompt_done.get_or_insert(now);
                first.get_or_insert(now);
                if reason == StopReason::Cancelled || reason == StopReason::StopString {
                    continue;
                }
                if cancel.is_cancelled() {
                    reason = StopReason::Cancelled;
                    stop_now();
                    continue;
                }
                if self.tokenizer.is_stop(pick) {
                    reason = StopReason::Eos;
                    continue;
                }
                generated += 1;
                if let Ok(Some(piece)) = decoder.push(pick) {
                    let (out, hit) = stops.push(&piece);
                    if !out.is_empty() {
                        sink.text(&out);
                    }
                    if hit {
                        reason = StopReason::StopString;
                        stop_now();
                    }
                }
                if generated >= sampling.max_tokens {
                    stop_now();
                }
            }
            worker
                .join()
                .map_err(|_| mrs("the request thread panicked"))?
        });
        result?;
        if reason != StopReason::StopString {
            let tail = decoder.flush()?.unwrap_or_default();
            let (mut out, hit) = stops.push(&tail);
            if !hit {
                out.push_str(&stops.flush());
            }
            if !out.is_empty() {
                sink.text(&out);
            }
        }
        let end = Instant::now();
        Ok(GenerationStats::from_timings(
            prompt_tokens,
            generated,
            (start, prompt_done.unwrap_or(end), first, end),
            reason,
        ))
    }

    fn log_likelihood(&mut self, text: &str, cancel: &CancellationToken) -> Result<(f64, usize)> {
        let tokens = self.tokenizer.encode(text, true)?;
        if tokens.len() < 2 {
            return Ok((0.0, 0));
        }
        if cancel.is_cancelled() {
            return Err(Error::Cancelled);
        }
        let targets = tokens[1..].to_vec();
        let n = targets.len();
        let steering = Arc::new(Mutex::new(Steering {
            mode: Mode::Score {
                targets,
                next: 0,
                sum: 0.0,
            },
            stop: false,
            eos: self.eos,
        }));
        self.run(tokens[..1].to_vec(), n + 1, steering.clone())?;
        let s = steering
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match s.mode {
            Mode::Score { next, sum, .. } if next == n => Ok((sum, n)),
            Mode::Score { next, .. } => Err(mrs(format!(
                "mistral.rs stopped after {next} of {n} tokens"
            ))),
            Mode::Generate { .. } => Err(mrs("scoring state lost")),
        }
    }

    fn warm_up(&mut self) -> Result<()> {
        let token = self.tokenizer.specials().bos.as_ref().map_or(0, |b| b.id);
        let (tx, _rx) = std_mpsc::channel();
        let steering = Arc::new(Mutex::new(Steering {
            mode: Mode::Generate {
                sampler: Box::new(Sampler::new(&Sampling::greedy(1))),
                picks: tx,
            },
            stop: false,
            eos: self.eos,
        }));
        self.run(vec![token, token], 1, steering)
    }
}
