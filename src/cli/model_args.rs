//! Flags shared by the commands that load a model: which model, where it
//! runs, how it is fetched, how progress is shown; and sampling flags.

use std::path::PathBuf;

use hf_hub::HubOptions;
use tektra_inference::{BackendKind, DeviceChoice, EngineOptions, Sampling};

use super::report::OutputArgs;

/// Which model and how to get it.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct ModelArgs {
    /// A Hub repo with an optional revision and file (`org/name[@rev][:file.gguf]`),
    /// a local .gguf/.safetensors file, or a local model folder.
    #[arg(long, short, default_value = tektra_inference::DEFAULT_MODEL)]
    pub(crate) model: String,
    /// Backend: auto (native for the GGUF files it covers, else candle),
    /// native, candle (the reference path), or mistralrs (a build with the
    /// `mistralrs` feature).
    #[arg(long, default_value = "auto")]
    pub(crate) engine: String,
    /// Kernel threads of the native backend [default: every CPU this process may use].
    #[arg(long)]
    pub(crate) threads: Option<usize>,
    /// auto, cpu, metal, cuda (or metal:N, cuda:N).
    #[arg(long, default_value = "auto")]
    pub(crate) device: String,
    /// Longest context (prompt + answer) to plan memory for.
    #[arg(long, default_value_t = 4096)]
    pub(crate) max_context: usize,
    /// Load even when the memory check says the machine is short.
    #[arg(long)]
    pub(crate) no_memory_check: bool,
    #[command(flatten)]
    pub(crate) hub: HubArgs,
    #[command(flatten)]
    pub(crate) output: OutputArgs,
}

/// How the Hub is reached.
#[derive(Clone, clap::Args)]
pub(crate) struct HubArgs {
    /// The hub cache folder [default: $HF_HUB_CACHE, $HF_HOME/hub, ~/.cache/huggingface/hub].
    #[arg(long)]
    pub(crate) cache_dir: Option<PathBuf>,
    /// Access token [default: $HF_TOKEN or the token file].
    #[arg(long)]
    pub(crate) token: Option<String>,
    /// Use only the cache; fail naming what is missing.
    #[arg(long)]
    pub(crate) offline: bool,
}

/// By hand: the token must never reach a log or a panic message.
impl std::fmt::Debug for HubArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubArgs")
            .field("cache_dir", &self.cache_dir)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("offline", &self.offline)
            .finish()
    }
}

impl HubArgs {
    /// The environment's settings with these flags applied.
    pub(crate) fn options(&self) -> HubOptions {
        let mut options = HubOptions::from_env();
        if let Some(dir) = &self.cache_dir {
            options.cache_dir.clone_from(dir);
        }
        if let Some(token) = &self.token {
            options.token = Some(token.clone());
        }
        options.offline |= self.offline;
        options
    }
}

impl ModelArgs {
    pub(crate) fn engine_options(&self) -> Result<EngineOptions, String> {
        let backend: BackendKind = self
            .engine
            .parse()
            .map_err(|e: tektra_inference::Error| e.to_string())?;
        let device: DeviceChoice = self.device.parse().map_err(|e| format!("--device: {e}"))?;
        Ok(EngineOptions {
            backend,
            device,
            hub: self.hub.options(),
            check_memory: !self.no_memory_check,
            memory_limit: None,
            max_context: self.max_context,
            warm_up: true,
            threads: match self.threads {
                Some(0) => return Err("--threads must be at least 1".into()),
                Some(n) if n > 1024 => return Err(format!("--threads {n} is more than 1024")),
                other => other,
            },
            isa: None,
        })
    }
}

/// Sampling flags.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct SamplingArgs {
    /// 0 for greedy decoding.
    #[arg(long, default_value_t = Sampling::default().temperature)]
    temperature: f32,
    /// Keep the k most likely tokens (0: off).
    #[arg(long, default_value_t = Sampling::default().top_k)]
    top_k: usize,
    /// Nucleus sampling threshold (1: off).
    #[arg(long, default_value_t = Sampling::default().top_p)]
    top_p: f32,
    /// Drop tokens below this fraction of the best one (0: off).
    #[arg(long, default_value_t = Sampling::default().min_p)]
    min_p: f32,
    /// Penalty on recently used tokens (1: off).
    #[arg(long, default_value_t = Sampling::default().repeat_penalty)]
    repeat_penalty: f32,
    /// Random seed.
    #[arg(long, default_value_t = Sampling::default().seed)]
    seed: u64,
    /// Most tokens to generate.
    #[arg(long, default_value_t = Sampling::default().max_tokens)]
    max_tokens: usize,
    /// Stop at this text (repeatable).
    #[arg(long)]
    stop: Vec<String>,
    /// Most tokens to draft by prompt lookup per step (0: off; native backend).
    #[arg(long, default_value_t = Sampling::default().prompt_lookup)]
    prompt_lookup: usize,
}

impl SamplingArgs {
    pub(crate) fn sampling(&self) -> Sampling {
        Sampling {
            temperature: self.temperature,
            top_k: self.top_k,
            top_p: self.top_p,
            min_p: self.min_p,
            repeat_penalty: self.repeat_penalty,
            seed: self.seed,
            max_tokens: self.max_tokens,
            stop: self.stop.clone(),
            prompt_lookup: self.prompt_lookup,
            ..Sampling::default()
        }
    }
}
