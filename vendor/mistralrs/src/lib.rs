//! `tektra-inference`: the Engine. One call takes a model reference (a Hub
//! repo with an optional file, a local file or a folder) and gives streamed
//! text, with every stage before the first token (resolve, download,
//! verify, load, warm-up) reported as `tektra_progress` events.
//!
//! GGUF files of the architectures the native path runs (llama/SmolLM2,
//! qwen2, gemma3) go to our own forward pass on `tektra-kernels`; anything
//! else (safetensors, other types) to candle-transformers on the pinned
//! candle; mistral.rs runs behind the `mistralrs` feature.
//!
//! ```no_run
//! # async fn demo() -> Result<(), tektra_inference::Error> {
//! use tektra_inference::{Engine, EngineOptions, ModelRef, Prompt, Sampling};
//! use tokio_util::sync::CancellationToken;
//! let model: ModelRef = tektra_inference::DEFAULT_MODEL.parse()?;
//! let cancel = CancellationToken::new();
//! let mut engine = Engine::load(&model, &EngineOptions::default(), tektra_progress::silent(), &cancel).await?;
//! let stats = engine.generate(
//!     &Prompt::Text("The capital of France is".into()),
//!     &Sampling::greedy(8),
//!     &mut |piece| print!("{piece}"),
//!     &cancel,
//! )?;
//! println!("\n{:.1} tokens/s", stats.tokens_per_sec);
//! # Ok(()) }
//! ```

mod candle;
mod emit;
mod engine;
mod error;
mod fetch;
mod memory;
#[cfg(feature = "mistralrs")]
mod mistralrs;
mod model_ref;
mod native;
mod sampling;
mod stop;

pub use candle::{CandleBackend, SUPPORTED as CANDLE_SUPPORTED};
pub use engine::{
    Backend, BackendKind, Engine, EngineOptions, GenerationStats, ModelInfo, Prompt, Sink,
    StopReason,
};
pub use error::{Error, Result};
pub use fetch::{ModelFiles, fetch, pick_gguf};
pub use memory::{MemoryEstimate, available_memory, available_within};
pub use model_ref::{DEFAULT_MODEL, ModelRef};
pub use native::{NativeBackend, SUPPORTED as NATIVE_SUPPORTED};
pub use sampling::{Sampler, Sampling, Verdict, argmax};
pub use stop::StopMatcher;
pub use tektra_candle::DeviceChoice;
pub use tektra_kernels::Isa;
pub use tektra_tokenizers::Message;
