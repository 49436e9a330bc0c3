//! GGUF files: a validated header, candle's [`Content`] built from it, all
//! tensors as [`QTensor`]s with progress, and a progress-reporting reader
//! for candle's quantized models, which read their tensors themselves.

mod header;
mod reader;

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::Device;
use candle_core::quantized::gguf_file::Content;
use candle_core::quantized::{QStorage, QTensor};
use rayon::prelude::*;
use tektra_progress::{FileProgress, SharedReporter, Stage, Tracker};
use tokio_util::sync::CancellationToken;

/// candle's types that the header is expressed in, re-exported for callers.
pub use candle_core::quantized::GgmlDType;
pub use candle_core::quantized::gguf_file::Value;
pub use header::{DEFAULT_ALIGNMENT, GgufHeader, GgufTensorInfo, MAX_DEPTH, MAX_DIMS, MAX_VALUES};
pub use reader::{GgufReader, ReadCancelled};

use crate::error::{Error, HeaderError, Result};
use crate::mmap::MappedFile;
use crate::progress::{self, settle};
use crate::report::{LoadReport, ModelFormat, peak_rss};

/// A mapped GGUF file with its validated header.
#[derive(Debug)]
pub struct GgufFile {
    map: MappedFile,
    header: GgufHeader,
}

/// A GGUF model loaded whole: candle's view of its header and every tensor.
#[derive(Debug)]
pub struct GgufWeights {
    /// Metadata and tensor infos, as candle's quantized models take them.
    pub content: Content,
    /// Every tensor by name.
    pub tensors: HashMap<String, QTensor>,
}

impl GgufFile {
    /// Maps the file and validates its header; no tensor is read.
    ///
    /// # Errors
    /// [`Error::Open`], or [`Error::Header`] naming the file and tensor.
    pub fn open(path: &Path) -> Result<Self> {
        let map = MappedFile::open(path)?;
        let header = GgufHeader::parse(map.bytes()).map_err(|e| Error::header(path, e))?;
        map.release(0..usize::try_from(header.data_start).unwrap_or(usize::MAX));
        Ok(GgufFile { map, header })
    }

    /// The file's path.
    #[must_use]
    pub fn path(&self) -> &Path {
        self.map.path()
    }

    /// The validated header.
    #[must_use]
    pub fn header(&self) -> &GgufHeader {
        &self.header
    }

    /// candle's view of the header, for `ModelWeights::from_gguf`.
    #[must_use]
    pub fn content(&self) -> Content {
        self.header.to_content()
    }

    /// Bytes of all tensors.
    #[must_use]
    pub fn tensor_bytes(&self) -> u64 {
        self.header.tensors.iter().map(|t| t.len).sum()
    }

    /// A reader for candle's quantized models
    /// (`quantized_llama::ModelWeights::from_gguf(content, &mut reader, device)`
    /// and the like) that reports each tensor they read to `progress` and
    /// stops when `cancel` fires. Call [`GgufReader::finish`] once the model
    /// is built.
    ///
    /// # Errors
    /// [`Error::Open`] when the file cannot be opened again for reading.
    pub fn reader(&self, progress: FileProgress, cancel: CancellationToken) -> Result<GgufReader> {
        GgufReader::new(self, progress, cancel)
    }

    /// A tensor's bytes as the file holds them (for loaders that repack
    /// weights themselves), without copying.
    ///
    /// # Errors
    /// [`Error::Header`] when the tensor lies outside the mapped file (the
    /// header check makes that impossible unless the file shrank).
    pub fn tensor_data(&self, info: &GgufTensorInfo) -> Result<&[u8]> {
        let start = usize::try_from(info.file_offset).unwrap_or(usize::MAX);
        let end = start.saturating_add(usize::try_from(info.len).unwrap_or(usize::MAX));
        self.map.bytes().get(start..end).ok_or_else(|| {
            Error::header(
                self.path(),
                HeaderError::OutOfRange {
                    tensor: info.name.clone(),
                    begin: info.file_offset,
                    end: info.file_offset.saturating_add(info.len),
                    limit: self.map.bytes().len() as u64,
                },
            )
        })
    }

    /// Drops a tensor's mapped pages from this process's resident set once
    /// its bytes have been copied elsewhere (they stay in the page cache).
    pub fn release_tensor(&self, info: &GgufTensorInfo) {
        let start = usize::try_from(info.file_offset).unwrap_or(usize::MAX);
        let end = start.saturating_add(usize::try_from(info.len).unwrap_or(usize::MAX));
        self.map.release(start..end);
    }

    /// The tensor named `name`, if the file has it.
    #[must_use]
    pub fn tensor(&self, name: &str) -> Option<&GgufTensorInfo> {
        self.header.tensors.iter().find(|t| t.name == name)
    }

    /// Reads every tensor onto `device`, in parallel, counting each on
    /// `progress`.
    ///
    /// # Errors
    /// [`Error::Cancelled`], or [`Error::Candle`] naming the tensor candle
    /// refused (a shape its quantized type cannot have, device memory).
    pub fn load_tensors(
        &self,
        device: &Device,
        progress: &FileProgress,
        cancel: &CancellationToken,
    ) -> Result<HashMap<String, QTensor>> {
        self.header
            .tensors
            .par_iter()
            .map(|info| {
                if cancel.is_cancelled() {
                    return Err(Error::Cancelled);
                }
                let tensor = self.read_tensor(info, device)?;
                progress.advance_tensor(info.len);
                Ok((info.name.clone(), tensor))
            })
            .collect()
    }

    fn read_tensor(&self, info: &GgufTensorInfo, device: &Device) -> Result<QTensor> {
        let start = usize::try_from(info.file_offset).unwrap_or(usize::MAX);
        let end = start.saturating_add(usize::try_from(info.len).unwrap_or(usize::MAX));
        let Some(bytes) = self.map.bytes().get(start..end) else {
            return Err(Error::header(
                self.path(),
                HeaderError::OutOfRange {
                    tensor: info.name.clone(),
                    begin: info.file_offset,
                    end: info.file_offset.saturating_add(info.len),
                    limit: self.map.bytes().len() as u64,
                },
            ));
        };
        // candle reinterprets the bytes as blocks and insists on their
        // alignment (at most 4 bytes for every GGML block type). A file
        // whose offsets ignore `general.alignment` is copied to an aligned
        // buffer instead of reaching that assertion.
        let aligned;
        let bytes = if (bytes.as_ptr() as usize).is_multiple_of(8) {
            bytes
        } else {
            let mut words = vec![0u64; bytes.len().div_ceil(8)];
            let dst: &mut [u8] = bytemuck::cast_slice_mut(&mut words);
            dst[..bytes.len()].copy_from_slice(bytes);
            aligned = words;
            &bytemuck::cast_slice::<u64, u8>(&aligned)[..bytes.len()]
        };
        let candle_err = |source| Error::Candle {
            source: Box::new(source),
            path: self.path().to_owned(),
            tensor: info.name.clone(),
        };
        let storage =
            QStorage::from_data(Cow::Borrowed(bytes), device, info.dtype).map_err(candle_err)?;
        let tensor = QTensor::new(storage, info.shape.as_slice()).map_err(candle_err)?;
        self.map.release(start..end);
        Ok(tensor)
    }
}

/// Loads every tensor of a GGUF file onto `device` as [`QTensor`]s, with
/// progress (stage `loading`, one file: bytes and tensors) and
/// cancellation. Blocking; run it under `spawn_blocking` from async code.
///
/// # Errors
/// Any [`Error`]; the header errors name the file and tensor.
pub fn load_gguf(
    path: &Path,
    device: &Device,
    reporter: SharedReporter,
    cancel: &CancellationToken,
) -> Result<(GgufWeights, LoadReport)> {
    let started = Instant::now();
    let tracker = Tracker::new(Stage::Loading, reporter);
    tracker.begin_stage(Stage::Loading, None);
    let files: Vec<(PathBuf, FileProgress)> =
        vec![(path.to_owned(), progress::queue(&tracker, path))];
    let file = &files[0].1;
    let result = GgufFile::open(path).and_then(|gguf| {
        progress::start(file, gguf.tensor_bytes(), gguf.header.tensors.len());
        let tensors = gguf.load_tensors(device, file, cancel)?;
        Ok((gguf, tensors))
    });
    let (gguf, tensors) = match result {
        Ok(done) => done,
        Err(err) => {
            settle(&files, &err);
            return Err(err);
        }
    };
    file.finish();
    tracker.end_stage(None);
    let report = LoadReport {
        format: ModelFormat::Gguf,
        files: 1,
        tensors: tensors.len(),
        bytes: gguf.tensor_bytes(),
        elapsed: started.elapsed(),
        peak_rss: peak_rss(),
    };
    let weights = GgufWeights {
        content: gguf.header.into_content(),
        tensors,
    };
    Ok((weights, report))
}
