//! The default backend: candle-transformers models on the pinned candle,
//! weights read through tektra-candle so loading reports progress.

mod arch;
mod guarded;

use std::path::Path;
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use candle_transformers::models::llama;
use tektra_candle::gguf::GgufFile;
use tektra_candle::{DeviceChoice, SafetensorsBackend};
use tektra_progress::{SharedReporter, Stage, Tracker};
use tektra_tokenizers::TextTokenizer;
use tokio_util::sync::CancellationToken;

pub use arch::SUPPORTED;
#[cfg(feature = "mistralrs")]
pub(crate) use arch::gguf_architecture;
use arch::{Dims, HfConfig, LlamaParts, Model};

use crate::emit::Emitter;
use crate::engine::{
    Backend, BackendKind, EngineOptions, GenerationStats, Loaded, Sink, StopReason,
};
use crate::error::{Error, Result};
use crate::fetch::ModelFiles;
use crate::memory::{MemoryEstimate, available_within};
use crate::sampling::{Sampler, Sampling};

/// A model running on candle.
pub struct CandleBackend {
    model: Model,
    tokenizer: TextTokenizer,
    device: Device,
    context: usize,
}

pub(crate) fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

fn check_memory(
    options: &EngineOptions,
    model: &Path,
    weights: u64,
    dims: Dims,
) -> Result<(MemoryEstimate, usize)> {
    let context = dims.context.min(options.max_context as u64);
    let estimate = MemoryEstimate::new(weights, dims.layers, dims.kv_heads, dims.head_dim, context);
    if options.check_memory {
        estimate.check(&file_name(model), available_within(options.memory_limit))?;
    }
    Ok((estimate, usize::try_from(context).unwrap_or(usize::MAX)))
}

/// The memory check for a GGUF model; returns the estimate and the context.
pub(crate) fn gguf_memory(
    gguf: &GgufFile,
    options: &EngineOptions,
) -> Result<(MemoryEstimate, usize)> {
    let dims = arch::gguf_dims(&gguf.header().metadata, gguf.path())?;
    check_memory(options, gguf.path(), gguf.tensor_bytes(), dims)
}

/// Loads `files` on the device `options` chose. Blocking.
pub(crate) fn load(
    files: &ModelFiles,
    options: &EngineOptions,
    reporter: SharedReporter,
    cancel: &CancellationToken,
) -> Result<Loaded> {
    match files {
        ModelFiles::Gguf(path) => load_gguf(path, options, reporter, cancel),
        ModelFiles::Safetensors(dir) => {
            if options.backend == BackendKind::Native {
                return Err(Error::Unsupported {
                    found: "safetensors".into(),
                    backend: "native",
                    supported: crate::native::SUPPORTED,
                });
            }
            let device = DeviceChoice::device(options.device)?;
            load_llama_safetensors(dir, &device, options, reporter, cancel)
        }
    }
}

/// A GGUF file: hyperparameters checked for every backend, then the
/// native path when asked for or (by default) when it covers the file.
fn load_gguf(
    path: &Path,
    options: &EngineOptions,
    reporter: SharedReporter,
    cancel: &CancellationToken,
) -> Result<Loaded> {
    let gguf = GgufFile::open(path)?;
    let architecture = arch::gguf_architecture(&gguf.header().metadata);
    // Auto takes the native path when it covers the file (on x86-64; on
    // other CPUs only its scalar kernels exist, candle's NEON ones are faster).
    let native = crate::native::check(&gguf, &architecture);
    let use_native = match options.backend {
        BackendKind::Native => {
            native?;
            true
        }
        BackendKind::Auto => native.is_ok() && cfg!(target_arch = "x86_64"),
        _ => false,
    };
    if !use_native && !arch::gguf_supported(&architecture) {
        return Err(Error::Unsupported {
            found: architecture,
            backend: "candle",
            supported: SUPPORTED,
        });
    }
    // Every setting the model reads, checked before any model is built.
    let hp = crate::native::hparams(&gguf, &architecture, path)?;
    let tokenizer = TextTokenizer::from_gguf(&gguf.content())?;
    if use_native {
        return crate::native::load(gguf, architecture, hp, tokenizer, options, reporter, cancel);
    }
    let device = DeviceChoice::device(options.device)?;
    let device = &device;
    let content = gguf.content();
    let (memory, context) = gguf_memory(&gguf, options)?;
    let tensors = gguf.header().tensors.len();
    let tracker = Tracker::new(Stage::Loading, reporter);
    tracker.begin_stage(Stage::Loading, Some(file_name(path)));
    let file = tracker.file(file_name(path), None);
    let mut reader = gguf.reader(file.clone(), cancel.clone())?;
    let model = match arch::load_gguf(&architecture, content, &mut reader, device) {
        Ok(model) => model,
        Err(_) if reader.was_cancelled() => return Err(Error::Cancelled),
        Err(e) => {
            file.fail(e.to_string());
            return Err(e);
        }
    };
    reader.finish();
    tracker.end_stage(None);
    Ok(Loaded {
        backend: Box::new(CandleBackend {
            model,
            tokenizer: tokenizer.clone(),
            device: device.clone(),
            context,
        }),
        tokenizer,
        architecture,
        context,
        memory,
        tensors,
    })
}

fn load_llama_safetensors(
    dir: &Path,
    device: &Device,
    options: &EngineOptions,
    reporter: SharedReporter,
    cancel: &CancellationToken,
) -> Result<Loaded> {
    let config_path = dir.join("config.json");
    let text = std::fs::read_to_string(&config_path).map_err(|source| Error::Io {
        path: config_path.clone(),
        source,
    })?;
    let hf: HfConfig = serde_json::from_str(&text).map_err(|e| Error::MissingConfig {
        path: config_path.clone(),
        what: format!("a readable config ({e})"),
    })?;
    let architecture = hf.architecture();
    if !matches!(architecture.as_str(), "llama" | "LlamaForCausalLM") {
        return Err(Error::Unsupported {
            found: architecture,
            backend: "candle",
            supported: SUPPORTED,
        });
    }
    let llama_config: llama::LlamaConfig =
        serde_json::from_str(&text).map_err(|e| Error::MissingConfig {
            path: config_path.clone(),
            what: format!("llama settings ({e})"),
        })?;
    let config = llama_config.into_config(false);
    let files = tektra_candle::ModelFiles::resolve(dir)?;
    let stored: u64 = files
        .files
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum();
    // Weights are kept in f32 on the CPU: 16-bit files double in memory.
    let weights = if hf.stored_f32() {
        stored
    } else {
        stored.saturating_mul(2)
    };
    let (memory, context) = check_memory(options, dir, weights, hf.dims(&config_path)?)?;
    let tokenizer = TextTokenizer::from_dir(dir)?;
    let dtype = DType::F32;
    let backend = SafetensorsBackend::open(&files.files, reporter, cancel.clone())?;
    let tensors = backend.names().count();
    let guarded = guarded::Guarded::new(backend.clone());
    let built = llama::Llama::load(guarded.var_builder(dtype, device.clone()), &config);
    if backend.is_cancelled() {
        return Err(Error::Cancelled);
    }
    if let Some(err) = guarded.take_error() {
        return Err(err.into());
    }
    let model = built?;
    backend.finish();
    let cache = llama::Cache::new(true, dtype, &config, device)?;
    let parts = LlamaParts {
        config,
        dtype,
        device: device.clone(),
    };
    Ok(Loaded {
        backend: Box::new(CandleBackend {
            model: Model::LlamaF(Box::new(model), cache, parts),
            tokenizer: tokenizer.clone(),
            device: device.clone(),
            context,
        }),
        tokenizer,
        architecture,
        context,
        memory,
        tensors,
    })
}

impl CandleBackend {
    fn logits(&mut self, tokens: &[u32], pos: usize) -> Result<Vec<f32>> {
        let input = Tensor::new(tokens, &self.device)?.unsqueeze(0)?;
        let logits = self.model.forward(&input, pos)?;
        Ok(logits
            .flatten_all()?
            .to_dtype(DType::F32)?
            .to_vec1::<f32>()?)
    }

    fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let tokens = self.tokenizer.encode(text, true)?;
        if tokens.is_empty() {
            return Err(Error::Sampling("the prompt encodes to no tokens".into()));
        }
        Ok(tokens)
    }
}

impl Backend for CandleBackend {
    fn name(&self) -> &'static str {
        "candle"
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
        let prompt_tokens = history.len();
        let mut logits = self.logits(&history, 0)?;
        let prompt_done = Instant::now();
        let mut sampler = Sampler::new(sampling);
        let mut emit = Emitter::new(&self.tokenizer, sampling.stop.clone(), out);
        let mut first = None;
        let mut generated = 0;
        let mut reason = StopReason::MaxTokens;
        loop {
            if cancel.is_cancelled() {
                reason = StopReason::Cancelled;
                break;
            }
            let next = sampler.sample(&mut logits, &history);
            first.get_or_insert_with(Instant::now);
            if self.tokenizer.is_stop(next) {
                reason = StopReason::Eos;
                break;
            }
            generated += 1;
            history.push(next);
            if emit.push(next)? {
                reason = StopReason::StopString;
                break;
            }
            if generated >= sampling.max_tokens {
                break;
            }
            logits = self.logits(&[next], history.len() - 1)?;
        }
        emit.finish(reason)?;
        Ok(GenerationStats::from_timings(
            prompt_tokens,
            generated,
            (start, prompt_done, first, Instant::now()),
            reason,
        ))
    }

    fn log_likelihood(&mut self, text: &str, cancel: &CancellationToken) -> Result<(f64, usize)> {
        let tokens = self.encode(text)?;
        if tokens.len() > self.context {
            return Err(Error::ContextOverflow {
                tokens: tokens.len(),
                max_tokens: 0,
                context: self.context,
            });
        }
        let mut sum = 0.0f64;
        let mut logits = self.logits(&tokens[..1], 0)?;
        for (i, &token) in tokens.iter().enumerate().skip(1) {
            if cancel.is_cancelled() {
                return Err(Error::Cancelled);
            }
            sum += log_prob(&logits, token);
            if i + 1 < tokens.len() {
                logits = self.logits(&[token], i)?;
            }
        }
        Ok((sum, tokens.len() - 1))
    }

    fn warm_up(&mut self) -> Result<()> {
        let token = self.tokenizer.specials().bos.as_ref().map_or(0, |b| b.id);
        self.logits(&[token, token], 0)?;
        Ok(())
    }

    fn each_position_logits(
        &mut self,
        tokens: &[u32],
        f: &mut dyn FnMut(usize, &[f32]),
        cancel: &CancellationToken,
    ) -> Result<()> {
        // candle's quantized models return the last position's logits, so
        // the sequence runs one token at a time over the KV cache.
        for (i, &t) in tokens.iter().enumerate() {
            if cancel.is_cancelled() {
                return Err(Error::Cancelled);
            }
            let logits = self.logits(&[t], i)?;
            f(i, &logits);
        }
        Ok(())
    }
}

/// `ln softmax(logits)[token]`, computed stably in f64.
pub(crate) fn log_prob(logits: &[f32], token: u32) -> f64 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f64 = logits.iter().map(|&l| f64::from(l - max).exp()).sum();
    let l = logits
        .get(token as usize)
        .copied()
        .unwrap_or(f32::NEG_INFINITY);
    f64::from(l - max) - sum.ln()
}
