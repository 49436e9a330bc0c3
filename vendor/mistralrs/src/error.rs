//! The engine's errors: one enum; the stage that failed keeps its own typed
//! error as the source.

use std::path::PathBuf;

/// Everything loading or running a model can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The model reference does not parse or names nothing usable.
    #[error("model reference {reference:?}: {reason}")]
    BadReference {
        /// The reference as given.
        reference: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Fetching from the Hub failed.
    #[error("fetching the model: {0}")]
    Hub(Box<hf_hub::HubError>),
    /// Reading the weights failed.
    #[error("loading the weights: {0}")]
    Load(Box<tektra_candle::Error>),
    /// Building the tokenizer or chat template failed.
    #[error("tokenizer: {0}")]
    Tokenizer(#[from] tektra_tokenizers::Error),
    /// The architecture is not one this backend runs.
    #[error(
        "architecture {found:?} is not supported by the {backend} backend (supported: {supported})"
    )]
    Unsupported {
        /// What the model says it is.
        found: String,
        /// Which backend refused.
        backend: &'static str,
        /// What it runs.
        supported: &'static str,
    },
    /// A model file lacks a setting the architecture needs.
    #[error("{} is missing {what}", path.display())]
    MissingConfig {
        /// The file read.
        path: PathBuf,
        /// The setting.
        what: String,
    },
    /// A model file's hyperparameter or tensor shape is absent, out of
    /// range or inconsistent with the others.
    #[error("{}: {key}: {reason}", path.display())]
    BadHyperparameter {
        /// The file read.
        path: PathBuf,
        /// The metadata key or tensor name.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A tensor's type is one the native path has no kernel for.
    #[error("{}: tensor {tensor} has type {dtype}, which the native path does not run", path.display())]
    UnsupportedTensor {
        /// The file read.
        path: PathBuf,
        /// The tensor.
        tensor: String,
        /// Its GGML type.
        dtype: String,
    },
    /// The kernels refused a tensor (wrong byte count, a shape that is not
    /// whole blocks) or a run failed.
    #[error("kernels{}: {source}", if tensor.is_empty() { String::new() } else { format!(" (tensor {tensor})") })]
    Kernel {
        /// The tensor, when one is at fault.
        tensor: String,
        /// What the kernels said.
        #[source]
        source: tektra_kernels::KernelError,
    },
    /// The machine does not have the memory the model needs.
    #[error(
        "not enough memory for {model}: about {needed_mb} MB needed ({detail}), {available_mb} MB available"
    )]
    NotEnoughMemory {
        /// The model.
        model: String,
        /// Estimated need.
        needed_mb: u64,
        /// What the estimate is made of.
        detail: String,
        /// Available memory.
        available_mb: u64,
    },
    /// The prompt does not fit the model's context.
    #[error(
        "the prompt has {tokens} tokens; with max_tokens {max_tokens} that exceeds the context of {context}"
    )]
    ContextOverflow {
        /// Prompt tokens.
        tokens: usize,
        /// Requested new tokens.
        max_tokens: usize,
        /// The context length.
        context: usize,
    },
    /// The model's computation failed.
    #[error("running the model: {0}")]
    Candle(#[from] candle_core::Error),
    /// A sampling setting is out of range.
    #[error("invalid sampling setting: {0}")]
    Sampling(String),
    /// A file could not be read.
    #[error("reading {}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Stopped by the caller's cancellation token.
    #[error("cancelled")]
    Cancelled,
    /// The mistral.rs backend failed.
    #[error("mistral.rs: {0}")]
    Mistralrs(String),
    /// A background task failed.
    #[error("internal task failed: {0}")]
    Task(String),
}

impl Error {
    /// Whether this is the caller's cancellation.
    #[must_use]
    pub fn is_cancelled(&self) -> bool {
        match self {
            Error::Cancelled => true,
            Error::Hub(e) => matches!(**e, hf_hub::HubError::Cancelled),
            Error::Load(e) => e.is_cancelled(),
            _ => false,
        }
    }
}

/// Short for `Result<T, Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

// The two big causes are boxed, so that every `Result` of the engine stays
// small to move around.
impl From<hf_hub::HubError> for Error {
    fn from(e: hf_hub::HubError) -> Self {
        Error::Hub(Box::new(e))
    }
}

impl From<tektra_candle::Error> for Error {
    fn from(e: tektra_candle::Error) -> Self {
        Error::Load(Box::new(e))
    }
}
