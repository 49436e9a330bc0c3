//! The native backend: our own forward pass over `tektra-kernels` for the
//! GGUF architectures below. Weights are repacked at load, every step runs
//! in one parallel region of a persistent thread team, and generation can
//! draft tokens by prompt lookup and verify them in one batched step.

mod hparams;
mod lookup;
mod model;
mod weights;

use std::path::Path;
use std::time::Instant;

use tektra_candle::gguf::GgufFile;
use tektra_kernels::Isa;
use tektra_progress::{SharedReporter, Stage, Tracker};
use tektra_tokenizers::TextTokenizer;
use tokio_util::sync::CancellationToken;

pub(crate) use hparams::{Arch, Hparams};
use model::{Logits, Model};

use crate::emit::Emitter;
use crate::engine::{Backend, EngineOptions, GenerationStats, Loaded, Sink, StopReason};
use crate::error::{Error, Result};
use crate::sampling::{Sampler, Sampling, Verdict};

/// What the native backend runs, for error messages.
pub const SUPPORTED: &str =
    "GGUF: llama (SmolLM2 and other llama-architecture files), qwen2, gemma3";

/// Tokens per step of a prompt: large enough that weights are decoded once
/// for many tokens, small enough to keep activations in the cache.
const PROMPT_BATCH: usize = 128;

/// A model on the native path.
pub struct NativeBackend {
    model: Model,
    tokenizer: TextTokenizer,
    /// Tokens whose keys and values the cache holds, in order.
    cached: Vec<u32>,
}

/// Whether the native path runs this GGUF: a known architecture and a
/// kernel for every tensor type; the error says which is missing.
pub(crate) fn check(gguf: &GgufFile, arch: &str) -> Result<()> {
    if Arch::from_name(arch).is_none() {
        return Err(Error::Unsupported {
            found: arch.to_string(),
            backend: "native",
            supported: SUPPORTED,
        });
    }
    match gguf
        .header()
        .tensors
        .iter()
        .find(|t| weights::weight_type(t.dtype).is_none())
    {
        Some(t) => Err(Error::UnsupportedTensor {
            path: gguf.path().to_path_buf(),
            tensor: t.name.clone(),
            dtype: format!("{:?}", t.dtype),
        }),
        None => Ok(()),
    }
}

/// Threads for the kernels: the CPUs this process may use.
fn threads(options: &EngineOptions) -> usize {
    options
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, std::num::NonZero::get))
        .max(1)
}

/// Loads a GGUF file onto the native path. Blocking.
pub(crate) fn load(
    gguf: GgufFile,
    architecture: String,
    hp: Hparams,
    tokenizer: TextTokenizer,
    options: &EngineOptions,
    reporter: SharedReporter,
    cancel: &CancellationToken,
) -> Result<Loaded> {
    let isa = match options.isa {
        Some(isa) => isa,
        None => Isa::from_env().map_err(|source| Error::Kernel {
            tensor: String::new(),
            source,
        })?,
    };
    let (memory, context) = crate::candle::gguf_memory(&gguf, options)?;
    let context = context.min(hp.context);
    let tensors = gguf.header().tensors.len();
    let name = crate::candle::file_name(gguf.path());
    let tracker = Tracker::new(Stage::Loading, reporter);
    tracker.begin_stage(Stage::Loading, Some(name.clone()));
    let file = tracker.file(name, None);
    file.set_total(gguf.tensor_bytes());
    file.set_tensors_total(tensors as u64);
    file.set_state(tektra_progress::State::Loading);
    let w = match weights::Weights::load(&gguf, hp, context, &file, cancel) {
        Ok(w) => w,
        Err(Error::Cancelled) => {
            file.cancel();
            return Err(Error::Cancelled);
        }
        Err(e) => {
            file.fail(e.to_string());
            return Err(e);
        }
    };
    file.finish();
    tracker.end_stage(None);
    let model = Model::new(w, isa, threads(options), context, PROMPT_BATCH)?;
    tracing::debug!(isa = %isa, cache_mb = model.cache_bytes() >> 20, weights_mb = model.w.bytes() >> 20, "native model ready");
    Ok(Loaded {
        backend: Box::new(NativeBackend {
            model,
            tokenizer: tokenizer.clone(),
            cached: Vec::new(),
        }),
        tokenizer,
        architecture,
        context,
        memory,
        tensors,
    })
}

impl NativeBackend {
    /// The instruction set the kernels use.
    #[must_use]
    pub fn isa(&self) -> Isa {
        self.model.isa
    }

    /// Runs `tokens` after what the cache holds and returns the last
    /// token's logits. A prompt that starts with the cached tokens reuses
    /// them (a chat's earlier turns are not read again).
    fn prefill(&mut self, tokens: &[u32]) -> Result<Vec<f32>> {
        let common = self
            .cached
            .iter()
            .zip(tokens)
            .take_while(|(a, b)| a == b)
            .count()
            .min(tokens.len() - 1);
        self.model.truncate(common);
        self.cached.truncate(common);
        let logits = self
            .model
            .forward(&tokens[common..], Logits::Last)?
            .to_vec();
        self.cached.extend_from_slice(&tokens[common..]);
        Ok(logits)
    }

    /// Logits after every token of `tokens` (a fresh sequence), passed to
    /// `f(position, logits)` one position at a time.
    pub(crate) fn each_logits(
        &mut self,
        tokens: &[u32],
        f: &mut dyn FnMut(usize, &[f32]),
        cancel: &CancellationToken,
    ) -> Result<()> {
        self.model.truncate(0);
        self.cached.clear();
        let vocab = self.model.vocab();
        for (c, chunk) in tokens.chunks(model::LOGIT_ROWS).enumerate() {
            if cancel.is_cancelled() {
                return Err(Error::Cancelled);
            }
            let rows = self.model.forward(chunk, Logits::All)?;
            for (i, row) in rows.chunks_exact(vocab).enumerate() {
                f(c * model::LOGIT_ROWS + i, row);
            }
            self.cached.extend_from_slice(chunk);
        }
        Ok(())
    }
}

impl Backend for NativeBackend {
    fn name(&self) -> &'static str {
        "native"
    }

    fn generate(
        &mut self,
        prompt: &[u32],
        sampling: &Sampling,
        out: &mut dyn Sink,
        cancel: &CancellationToken,
    ) -> Result<GenerationStats> {
        let start = Instant::now();
        let mut history = prompt.to_vec();
        let mut logits = self.prefill(prompt)?;
        let prompt_done = Instant::now();
        let mut sampler = Sampler::new(sampling);
        let mut emit = Emitter::new(&self.tokenizer, sampling.stop.clone(), out);
        let mut first = None;
        let mut generated = 0;
        let mut reason = StopReason::MaxTokens;
        let context = self.model.context();
        let mut pending = sampler.sample(&mut logits, &history);
        'generation: loop {
            first.get_or_insert_with(Instant::now);
            if cancel.is_cancelled() {
                reason = StopReason::Cancelled;
                break;
            }
            if self.tokenizer.is_stop(pending) {
                reason = StopReason::Eos;
                break;
            }
            generated += 1;
            history.push(pending);
            if emit.push(pending)? {
                reason = StopReason::StopString;
                break;
            }
            if generated >= sampling.max_tokens {
                break;
            }
            // Draft what might follow by prompt lookup, then run the
            // pending token and the draft in one step.
            let room = context
                .saturating_sub(self.model.len + 1)
                .min(model::LOGIT_ROWS - 1);
            let left = sampling.max_tokens - generated;
            let draft = lookup::draft(&history, sampling.prompt_lookup.min(room).min(left));
            let mut step = Vec::with_capacity(draft.len() + 1);
            step.push(pending);
            step.extend_from_slice(&draft);
            let want = if draft.is_empty() {
                Logits::Last
            } else {
                Logits::All
            };
            let rows = self.model.forward(&step, want)?.to_vec();
            self.cached.extend_from_slice(&step);
            let vocab = self.model.vocab();
            let mut rows = rows.chunks_exact(vocab).map(<[f32]>::to_vec);
            for (i, &d) in draft.iter().enumerate() {
                let Some(mut l) = rows.next() else { break };
                match sampler.verify(&mut l, &history, d) {
                    Verdict::Accept => {
                        if self.tokenizer.is_stop(d) {
                            // Keep the cache consistent with what was emitted.
                            self.drop_tail(draft.len() - i);
                            reason = StopReason::Eos;
                            break 'generation;
                        }
                        generated += 1;
                        history.push(d);
                        if emit.push(d)? {
                            self.drop_tail(draft.len() - i - 1);
                            reason = StopReason::StopString;
                            break 'generation;
                        }
                        if generated >= sampling.max_tokens || cancel.is_cancelled() {
                            self.drop_tail(draft.len() - i - 1);
                            if cancel.is_cancelled() {
                                reason = StopReason::Cancelled;
                            }
                            break 'generation;
                        }
                    }
                    Verdict::Replace(t) => {
                        self.drop_tail(draft.len() - i);
                        pending = t;
                        continue 'generation;
                    }
                }
            }
            // Every draft token stood: the last row gives the next one.
            let mut l = match rows.next() {
                Some(l) => l,
                None => break,
            };
            pending = sampler.sample(&mut l, &history);
        }
        emit.finish(reason)?;
        Ok(GenerationStats::from_timings(
            history.len() - generated,
            generated,
            (start, prompt_done, first, Instant::now()),
            reason,
        ))
    }

    fn log_likelihood(&mut self, text: &str, cancel: &CancellationToken) -> Result<(f64, usize)> {
        let tokens = self.tokenizer.encode(text, true)?;
        if tokens.len() < 2 {
            return Err(Error::Sampling(
                "the text encodes to fewer than two tokens".into(),
            ));
        }
        if tokens.len() > self.model.context() {
            return Err(Error::ContextOverflow {
                tokens: tokens.len(),
                max_tokens: 0,
                context: self.model.context(),
            });
        }
        let mut sum = 0.0f64;
        let next = tokens[1..].to_vec();
        self.each_logits(
            &tokens[..tokens.len() - 1],
            &mut |pos, logits| sum += crate::candle::log_prob(logits, next[pos]),
            cancel,
        )?;
        Ok((sum, tokens.len() - 1))
    }

    fn warm_up(&mut self) -> Result<()> {
        let token = self.tokenizer.specials().bos.as_ref().map_or(0, |b| b.id);
        self.prefill(&[token, token])?;
        self.model.truncate(0);
        self.cached.clear();
        Ok(())
    }

    fn each_position_logits(
        &mut self,
        tokens: &[u32],
        f: &mut dyn FnMut(usize, &[f32]),
        cancel: &CancellationToken,
    ) -> Result<()> {
        self.each_logits(tokens, f, cancel)
    }
}

impl NativeBackend {
    /// Forgets the last `n` cached positions (rejected or unused drafts).
    fn drop_tail(&mut self, n: usize) {
        let keep = self.cached.len().saturating_sub(n);
        self.cached.truncate(keep);
        self.model.truncate(keep);
    }
}

/// The native path's view of a file, for the engine's choice of backend.
pub(crate) fn hparams(gguf: &GgufFile, arch: &str, path: &Path) -> Result<Hparams> {
    Hparams::from_header(gguf.header(), arch, path)
}
