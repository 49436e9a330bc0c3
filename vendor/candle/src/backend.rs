//! A `VarBuilder` backend over mapped safetensors shards, so
//! candle-transformers models build straight from our loader: each tensor
//! is read, validated and converted when the model asks for it, with
//! progress and cancellation.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::Init;
use candle_nn::var_builder::{SimpleBackend, VarBuilder};
use tektra_progress::{FileProgress, SharedReporter, Stage, Tracker};
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};
use crate::load::open_shards;
use crate::progress;
use crate::shard::{ReadTo, Shard};

struct Inner {
    shards: Vec<Shard>,
    files: Vec<(PathBuf, FileProgress)>,
    /// Tensor name to (shard, entry).
    index: HashMap<String, (usize, usize)>,
    /// Per shard, then per entry: read at least once (progress counts a
    /// tensor once however often a model asks for it).
    seen: Vec<Vec<AtomicBool>>,
    remaining: Vec<AtomicUsize>,
    huge_pages: AtomicBool,
    tracker: Tracker,
    cancel: CancellationToken,
}

/// Lazily loads tensors from safetensors shards for candle's `VarBuilder`.
///
/// Cheap to clone; clones share the mappings and the progress.
///
/// ```no_run
/// # use tektra_candle::SafetensorsBackend;
/// # use candle_core::{DType, Device};
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let cancel = tokio_util::sync::CancellationToken::new();
/// let files = tektra_candle::ModelFiles::resolve("model-dir".as_ref())?.files;
/// let backend = SafetensorsBackend::open(&files, tektra_progress::silent(), cancel)?;
/// let vb = backend.var_builder(DType::BF16, Device::Cpu);
/// // let model = candle_transformers::models::llama::Llama::load(vb, &config)?;
/// backend.finish(); // the files are done even if the model skipped a tensor
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct SafetensorsBackend {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for SafetensorsBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SafetensorsBackend")
            .field("files", &self.inner.files.len())
            .field("tensors", &self.inner.index.len())
            .finish_non_exhaustive()
    }
}

impl SafetensorsBackend {
    /// Maps and validates every file (stage `loading`, each file queued
    /// then loading); no tensor data is read yet.
    ///
    /// # Errors
    /// Unreadable files, invalid headers, a tensor in two shards.
    pub fn open(
        files: &[PathBuf],
        reporter: SharedReporter,
        cancel: CancellationToken,
    ) -> Result<Self> {
        let tracker = Tracker::new(Stage::Loading, reporter);
        tracker.begin_stage(Stage::Loading, None);
        let progress: Vec<(PathBuf, FileProgress)> = files
            .iter()
            .map(|p| (p.clone(), progress::queue(&tracker, p)))
            .collect();
        let shards = open_shards(files, &progress)?;
        let mut index = HashMap::new();
        for (s, shard) in shards.iter().enumerate() {
            progress::start(
                &progress[s].1,
                shard.tensor_bytes(),
                shard.header.tensors.len(),
            );
            for (t, entry) in shard.header.tensors.iter().enumerate() {
                index.insert(entry.name.clone(), (s, t));
            }
        }
        let seen = shards
            .iter()
            .map(|s| {
                s.header
                    .tensors
                    .iter()
                    .map(|_| AtomicBool::new(false))
                    .collect()
            })
            .collect();
        let remaining = shards
            .iter()
            .map(|s| AtomicUsize::new(s.header.tensors.len()))
            .collect();
        Ok(SafetensorsBackend {
            inner: Arc::new(Inner {
                shards,
                files: progress,
                index,
                seen,
                remaining,
                huge_pages: AtomicBool::new(true),
                tracker,
                cancel,
            }),
        })
    }

    /// A `VarBuilder` reading from this backend.
    #[must_use]
    pub fn var_builder(&self, dtype: DType, device: Device) -> VarBuilder<'static> {
        VarBuilder::from_backend(Box::new(self.clone()), dtype, device)
    }

    /// Names of all tensors.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.inner.index.keys().map(String::as_str)
    }

    /// Reads one tensor, converted to `dtype` (`None`: as stored).
    ///
    /// # Errors
    /// [`Error::TensorNotFound`], [`Error::Cancelled`], or a read error.
    pub fn tensor(&self, name: &str, dtype: Option<DType>, device: &Device) -> Result<Tensor> {
        let inner = &self.inner;
        let Some(&(s, t)) = inner.index.get(name) else {
            return Err(Error::TensorNotFound {
                tensor: name.to_owned(),
            });
        };
        let (shard, entry) = (&inner.shards[s], &inner.shards[s].header.tensors[t]);
        let file = &inner.files[s].1;
        let first = !inner.seen[s][t].swap(true, Ordering::AcqRel);
        // Re-reads are not progress: report them to a detached tracker.
        let silent;
        let report_to = if first {
            file
        } else {
            silent = Tracker::new(Stage::Loading, tektra_progress::silent()).file("", None);
            &silent
        };
        let to = ReadTo {
            dtype,
            device,
            huge_pages: inner.huge_pages.load(Ordering::Relaxed),
        };
        let tensor = shard
            .read(entry, to, report_to, &inner.cancel)
            .inspect_err(|e| {
                inner.seen[s][t].store(false, Ordering::Release);
                progress::settle(&inner.files, e);
            })?;
        if first && inner.remaining[s].fetch_sub(1, Ordering::AcqRel) == 1 {
            file.finish();
        }
        Ok(tensor)
    }

    /// Whether float outputs ask for transparent huge pages (default on;
    /// see [`LoadOptions::huge_pages`](crate::LoadOptions::huge_pages)).
    pub fn set_huge_pages(&self, on: bool) {
        self.inner.huge_pages.store(on, Ordering::Relaxed);
    }

    /// Marks every file done: call once the model is built, since models
    /// may leave tensors unread (tied embeddings, unused heads).
    pub fn finish(&self) {
        for (_, file) in &self.inner.files {
            file.finish();
        }
        self.inner.tracker.end_stage(None);
    }

    /// True once the cancellation token has fired; a model build that
    /// failed with a wrapped "cancelled" error can be told apart this way.
    #[must_use]
    pub fn is_cancelled(&self) -> bool {
        self.inner.cancel.is_cancelled()
    }
}

impl SimpleBackend for SafetensorsBackend {
    fn get(
        &self,
        shape: Shape,
        name: &str,
        _init: Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        let tensor = self.tensor(name, Some(dtype), dev).map_err(to_candle)?;
        if tensor.shape() != &shape {
            let (s, _) = self.inner.index.get(name).copied().unwrap_or_default();
            let path = self
                .inner
                .files
                .get(s)
                .map(|f| f.0.clone())
                .unwrap_or_default();
            return Err(to_candle(Error::UnexpectedShape {
                path,
                tensor: name.to_owned(),
                expected: shape.dims().to_vec(),
                actual: tensor.dims().to_vec(),
            }));
        }
        Ok(tensor)
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        self.tensor(name, Some(dtype), dev).map_err(to_candle)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.inner.index.contains_key(name)
    }
}

/// candle keeps only a message; give it the whole chain of causes.
fn to_candle(err: Error) -> candle_core::Error {
    candle_core::Error::msg(progress::chain(&err))
}
