//! The generation benchmark's children: each contender loads a GGUF file,
//! warms up, reads a prompt (from a file, so every contender reads the same
//! text) and generates up to N tokens greedily, in its own process, and
//! prints one JSON [`Report`] line.
//!
//! - `native`: `tektra_inference::Engine` on our own forward pass
//!   (tektra-kernels), as `tektra run` uses it by default: memory check,
//!   warm-up, sampler, streaming detokenizer; prompt lookup as asked.
//! - `candle`: the same Engine on the candle-transformers backend.
//! - `bare`: candle-transformers' quantized llama called directly: load,
//!   `forward`, argmax, nothing else (our tokenizer, so the inputs match).
//! - `mistralrs`: the Engine with the mistral.rs backend (only in the
//!   `tektra-bench-generate-mistralrs` binary, built with that feature).
//!
//! The llama.cpp child is `llama_cpp_child.py` beside this crate.
// A benchmark reports on the terminal.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::fs::File;
use std::io::BufReader;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use candle_core::quantized::gguf_file;
use candle_core::{D, Device, Tensor};
use candle_transformers::models::quantized_llama::ModelWeights;
use serde::{Deserialize, Serialize};
use tektra_inference::{
    BackendKind, Engine, EngineOptions, ModelRef, Prompt, Sampling, StopReason,
};
use tektra_tokenizers::TextTokenizer;
use tokio_util::sync::CancellationToken;

/// Tokens in the standard prompt, with our tokenizer.
pub const PROMPT_TOKENS: usize = 136;

/// The standard prompt: `fixtures/prompt.txt` without trailing whitespace.
#[must_use]
pub fn prompt() -> &'static str {
    include_str!("../fixtures/prompt.txt").trim_end()
}

/// What one child is asked to do (its command line after `child`).
#[derive(Debug, Clone)]
pub struct Job {
    /// `native`, `candle`, `bare` or `mistralrs`.
    pub contender: String,
    /// The GGUF file.
    pub model: std::path::PathBuf,
    /// The prompt, read from a file.
    pub prompt: String,
    /// Tokens to generate at most.
    pub generate: usize,
    /// Prompt-lookup draft length (0: off).
    pub lookup: usize,
    /// The parent's [`monotonic_ns`] just before it started this process.
    pub spawned_ns: u64,
}

/// Nanoseconds on `CLOCK_MONOTONIC`, which is the same clock in every
/// process of the machine, so a child can measure from its parent's spawn.
#[must_use]
#[allow(unsafe_code)]
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid pointer to a local timespec; CLOCK_MONOTONIC always exists on Linux.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &raw mut ts) };
    if rc != 0 {
        return 0;
    }
    u64::try_from(ts.tv_sec).unwrap_or(0) * 1_000_000_000 + u64::try_from(ts.tv_nsec).unwrap_or(0)
}

/// What one child measured, printed as one JSON line.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// Loading the model, warm-up included.
    pub load_secs: f64,
    /// From the start of the generation (tokenizing included) to the first
    /// generated token: reading the prompt.
    pub ttft_secs: f64,
    /// Generated tokens per second after the first.
    pub gen_tokens_per_sec: f64,
    /// Prompt tokens the contender read.
    pub prompt_tokens: usize,
    /// Tokens it generated.
    pub generated: usize,
    /// Why it stopped (`max_tokens` unless it stopped early).
    pub stop: String,
    /// From the parent's spawn of this process to the first generated
    /// token: start-up, load, warm-up, prompt.
    pub first_token_since_spawn_secs: f64,
    /// The generated text, to check the contenders agree.
    pub text: String,
    /// Anything else worth printing.
    #[serde(default)]
    pub note: String,
}

/// Runs one child job.
pub fn run_child(job: &Job) -> Result<Report> {
    match job.contender.as_str() {
        "native" => engine(BackendKind::Native, job),
        "candle" => engine(BackendKind::Candle, job),
        "mistralrs" => engine(BackendKind::Mistralrs, job),
        "bare" => bare(job),
        other => bail!("unknown contender {other}: native, candle, bare or mistralrs"),
    }
}

/// The child entry point: `child CONTENDER GGUF PROMPT_FILE N_GEN LOOKUP SPAWNED_NS`.
pub fn child_main(args: &[String]) -> Result<()> {
    let [_, contender, model, prompt_file, generate, lookup, spawned] = args else {
        bail!("usage: child native|candle|bare|mistralrs GGUF PROMPT_FILE N_GEN LOOKUP SPAWNED_NS");
    };
    let job = Job {
        contender: contender.clone(),
        model: model.into(),
        prompt: std::fs::read_to_string(prompt_file)
            .with_context(|| format!("reading {prompt_file}"))?
            .trim_end()
            .to_owned(),
        generate: generate.parse().context("N_GEN")?,
        lookup: lookup.parse().context("LOOKUP")?,
        spawned_ns: spawned.parse().context("SPAWNED_NS")?,
    };
    let report = run_child(&job)?;
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

#[allow(clippy::cast_precision_loss)]
fn secs_between(from_ns: u64, to_ns: u64) -> f64 {
    to_ns.saturating_sub(from_ns) as f64 / 1e9
}

/// Our Engine, loaded and run as the app does, greedy.
fn engine(backend: BackendKind, job: &Job) -> Result<Report> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut options = EngineOptions {
        backend,
        ..EngineOptions::default()
    };
    options.hub.offline = true;
    let cancel = CancellationToken::new();
    let started = Instant::now();
    let mut engine = runtime.block_on(Engine::load(
        &ModelRef::File(job.model.clone()),
        &options,
        tektra_progress::silent(),
        &cancel,
    ))?;
    let load_secs = started.elapsed().as_secs_f64();
    let mut text = String::new();
    let gen_start_ns = monotonic_ns();
    let mut sampling = Sampling::greedy(job.generate);
    sampling.prompt_lookup = job.lookup;
    let stats = engine.generate(
        &Prompt::Text(job.prompt.clone()),
        &sampling,
        &mut |piece| text.push_str(piece),
        &cancel,
    )?;
    let ttft = stats.time_to_first_token.as_secs_f64();
    let stop = match stats.stop_reason {
        StopReason::MaxTokens => "max_tokens",
        StopReason::Eos => "eos",
        StopReason::StopString => "stop_string",
        StopReason::Cancelled => "cancelled",
    };
    Ok(Report {
        load_secs,
        ttft_secs: ttft,
        gen_tokens_per_sec: stats.tokens_per_sec,
        prompt_tokens: stats.prompt_tokens,
        generated: stats.generated_tokens,
        stop: stop.to_owned(),
        first_token_since_spawn_secs: secs_between(job.spawned_ns, gen_start_ns) + ttft,
        text,
        note: format!(
            "warm-up {:.0} ms",
            engine.info().warm_up_time.as_secs_f64() * 1e3
        ),
    })
}

/// The next token: argmax of the last position's logits.
fn argmax(logits: &Tensor) -> Result<u32> {
    Ok(logits.squeeze(0)?.argmax(D::Minus1)?.to_scalar::<u32>()?)
}

/// candle-transformers' quantized llama with nothing around it.
fn bare(job: &Job) -> Result<Report> {
    let path = job.model.as_path();
    let started = Instant::now();
    let device = Device::Cpu;
    let mut reader =
        BufReader::new(File::open(path).with_context(|| format!("opening {}", path.display()))?);
    let content = gguf_file::Content::read(&mut reader)?;
    let tokenizer = TextTokenizer::from_gguf(&content)?;
    let mut model = ModelWeights::from_gguf(content, &mut reader, &device)?;
    // The same warm-up the Engine does: two tokens at position 0.
    let bos = tokenizer.specials().bos.as_ref().map_or(0, |b| b.id);
    model.forward(&Tensor::new(&[bos, bos], &device)?.unsqueeze(0)?, 0)?;
    let load_secs = started.elapsed().as_secs_f64();

    let gen_start_ns = monotonic_ns();
    let start = Instant::now();
    let tokens = tokenizer.encode(&job.prompt, true)?;
    let input = Tensor::new(tokens.as_slice(), &device)?.unsqueeze(0)?;
    let mut out = vec![argmax(&model.forward(&input, 0)?)?];
    let first = Instant::now();
    while out.len() < job.generate {
        let last = out[out.len() - 1];
        let pos = tokens.len() + out.len() - 1;
        let input = Tensor::new(&[last], &device)?.unsqueeze(0)?;
        out.push(argmax(&model.forward(&input, pos)?)?);
    }
    let end = Instant::now();
    let ttft = first.duration_since(start).as_secs_f64();
    #[allow(clippy::cast_precision_loss)]
    let gen_tokens_per_sec = (out.len() - 1) as f64 / end.duration_since(first).as_secs_f64();
    Ok(Report {
        load_secs,
        ttft_secs: ttft,
        gen_tokens_per_sec,
        prompt_tokens: tokens.len(),
        generated: out.len(),
        stop: "max_tokens".to_owned(),
        first_token_since_spawn_secs: secs_between(job.spawned_ns, gen_start_ns) + ttft,
        text: tokenizer.decode(&out, true)?,
        note: String::new(),
    })
}
