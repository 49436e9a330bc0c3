//! Weight loading for candle 0.10.2 with progress, cancellation and
//! validated headers.
//!
//! - [`load`] takes a model path (a `.gguf` or `.safetensors` file, a shard
//!   index, or a directory) and returns every tensor plus a [`LoadReport`].
//! - [`load_safetensors`] / [`gguf::load_gguf`] do the same for a known
//!   format; [`SafetensorsBackend`] builds candle-transformers models
//!   through `VarBuilder`; [`gguf::GgufFile::reader`] feeds candle's
//!   quantized models with per-tensor progress.
//! - [`prefetch`] warms the page cache for engines that map files
//!   themselves.
//!
//! Every header is untrusted: [`safetensors::SafetensorsHeader::parse`] and
//! [`gguf::GgufHeader::parse`] check every length, offset, dtype and shape
//! against the file before a tensor byte is read, and fail with a
//! [`HeaderError`] that [`Error::Header`] pairs with the file's path.
//!
//! Progress uses the workspace's one event type (`tektra_progress`), stage
//! `loading` (or `prefetching`), one file entry per weight file with bytes
//! and tensors done and total.

mod backend;
mod convert;
mod device;
mod error;
pub mod gguf;
mod index;
mod load;
mod mmap;
mod prefetch;
mod progress;
mod report;
pub mod safetensors;
mod shard;

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use tektra_progress::SharedReporter;
use tokio_util::sync::CancellationToken;

pub use backend::SafetensorsBackend;
pub use convert::bf16_to_f32;
pub use device::DeviceChoice;
pub use error::{Error, HeaderError, Result};
pub use gguf::{GgufWeights, load_gguf};
pub use index::{INDEX_FILE, ModelFiles};
pub use load::load_safetensors;
pub use prefetch::{PrefetchReport, prefetch};
pub use report::{LoadReport, ModelFormat, current_rss, peak_rss};

/// How [`load`] places and converts tensors.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Where tensors go.
    pub device: Device,
    /// For safetensors: the float dtype to convert floating-point tensors
    /// to while reading (`None`: as stored). GGUF tensors stay quantized.
    pub dtype: Option<DType>,
    /// Ask Linux for transparent huge pages on safetensors float outputs
    /// (default on). Filling gigabytes through 2 MiB pages takes a few
    /// times less kernel time than through 4 KiB pages where free memory is
    /// backed (bare metal). In a VM whose hypervisor takes freed memory back
    /// (virtio-balloon free page reporting, as on our test machines),
    /// first-touching such memory in 2 MiB pages measured about 3x slower
    /// than in 4 KiB pages: turn this off there. No effect elsewhere.
    pub huge_pages: bool,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            device: Device::Cpu,
            dtype: None,
            huge_pages: true,
        }
    }
}

/// The tensors of a loaded model.
#[derive(Debug)]
#[non_exhaustive]
pub enum Weights {
    /// From safetensors: plain tensors by name.
    Tensors(HashMap<String, Tensor>),
    /// From GGUF: quantized tensors and the header candle's models need.
    Quantized(GgufWeights),
}

impl Weights {
    /// Number of tensors.
    #[must_use]
    pub fn len(&self) -> usize {
        match self {
            Weights::Tensors(t) => t.len(),
            Weights::Quantized(q) => q.tensors.len(),
        }
    }

    /// True when there are no tensors.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A `VarBuilder` over plain tensors (converting to `dtype` on `get`
    /// where they differ); `None` for GGUF weights, whose models take the
    /// [`GgufWeights::content`] and a reader instead.
    #[must_use]
    pub fn var_builder(&self, dtype: DType, device: &Device) -> Option<VarBuilder<'static>> {
        match self {
            Weights::Tensors(t) => Some(VarBuilder::from_tensors(t.clone(), dtype, device)),
            Weights::Quantized(_) => None,
        }
    }
}

/// A loaded model and how loading went.
#[derive(Debug)]
pub struct LoadedModel {
    /// The weight files.
    pub files: ModelFiles,
    /// The tensors.
    pub weights: Weights,
    /// Counts, bytes, time and peak memory.
    pub report: LoadReport,
}

/// Loads a model from a path: a `.gguf` file, a `.safetensors` file, a
/// `*.safetensors.index.json`, or a directory holding one of these (see
/// [`ModelFiles::resolve`]).
///
/// Reports stage `loading` events to `reporter`, one file entry per
/// weight file, ending in `done` for each (or `failed` / `cancelled`).
/// Blocking; from async code run it under `spawn_blocking`.
///
/// ```no_run
/// # fn main() -> Result<(), tektra_candle::Error> {
/// let cancel = tokio_util::sync::CancellationToken::new();
/// let model = tektra_candle::load(
///     "SmolLM2-135M-Instruct.Q4_1.gguf".as_ref(),
///     &tektra_candle::LoadOptions::default(),
///     tektra_progress::silent(),
///     &cancel,
/// )?;
/// println!("{} tensors in {:?}", model.report.tensors, model.report.elapsed);
/// # Ok(()) }
/// ```
///
/// # Errors
/// Any [`Error`]; cancellation gives [`Error::Cancelled`] after every
/// partial tensor is freed.
pub fn load(
    path: &Path,
    options: &LoadOptions,
    reporter: SharedReporter,
    cancel: &CancellationToken,
) -> Result<LoadedModel> {
    let files = ModelFiles::resolve(path)?;
    let (weights, report) = match files.format {
        ModelFormat::Safetensors => {
            let (tensors, report) = load_safetensors(&files.files, options, reporter, cancel)?;
            (Weights::Tensors(tensors), report)
        }
        ModelFormat::Gguf => {
            let Some(file) = files.files.first() else {
                return Err(Error::NoWeights {
                    path: path.to_owned(),
                    reason: "no .gguf file".into(),
                });
            };
            let (weights, report) = load_gguf(file, &options.device, reporter, cancel)?;
            (Weights::Quantized(weights), report)
        }
    };
    Ok(LoadedModel {
        files,
        weights,
        report,
    })
}
