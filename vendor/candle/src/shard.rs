//! One mapped safetensors file and the reading of its tensors, shared by
//! the eager loader and the `VarBuilder` backend.

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use tektra_progress::FileProgress;
use tokio_util::sync::CancellationToken;

use crate::convert::{Float, Out};
use crate::error::{Error, HeaderError, Result};
use crate::mmap::MappedFile;
use crate::safetensors::{SafetensorsHeader, TensorEntry};

/// Source bytes converted between two cancellation checks, progress
/// updates and page releases: a few milliseconds of work.
const CHUNK_BYTES: usize = 4 << 20;

/// Where and how a tensor is read to.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReadTo<'a> {
    /// Target dtype; `None`: as stored.
    pub(crate) dtype: Option<DType>,
    pub(crate) device: &'a Device,
    /// Ask for transparent huge pages on float outputs.
    pub(crate) huge_pages: bool,
}

/// A mapped safetensors file with its validated header.
#[derive(Debug)]
pub(crate) struct Shard {
    pub(crate) map: MappedFile,
    pub(crate) header: SafetensorsHeader,
}

impl Shard {
    pub(crate) fn open(path: &Path) -> Result<Self> {
        let map = MappedFile::open(path)?;
        let header = SafetensorsHeader::parse(map.bytes()).map_err(|e| Error::header(path, e))?;
        // The header's pages are done with.
        map.release(0..usize::try_from(header.data_start).unwrap_or(usize::MAX));
        Ok(Shard { map, header })
    }

    pub(crate) fn path(&self) -> &Path {
        self.map.path()
    }

    /// Bytes of all tensors.
    pub(crate) fn tensor_bytes(&self) -> u64 {
        self.header.tensors.iter().map(|t| t.len).sum()
    }

    /// Reads one tensor as `to` says (dtype `None`: the file's). Float to float conversions among f32, f16 and bf16
    /// go straight into the final buffer; other conversions go through
    /// candle. Progress advances by source bytes as they are read.
    pub(crate) fn read(
        &self,
        entry: &TensorEntry,
        to: ReadTo<'_>,
        progress: &FileProgress,
        cancel: &CancellationToken,
    ) -> Result<Tensor> {
        if cancel.is_cancelled() {
            return Err(Error::Cancelled);
        }
        let Some(source) = entry.dtype.candle() else {
            return Err(Error::UnsupportedDtype {
                path: self.path().to_owned(),
                tensor: entry.name.clone(),
                dtype: entry.dtype.name().into(),
            });
        };
        let target = to.dtype.unwrap_or(source);
        let device = to.device;
        let start = usize::try_from(entry.offset).unwrap_or(usize::MAX);
        let len = usize::try_from(entry.len).unwrap_or(usize::MAX);
        let end = start.saturating_add(len);
        let Some(bytes) = self.map.bytes().get(start..end) else {
            // The header was validated against this mapping; kept as an
            // error rather than a panic all the same.
            return Err(Error::header(
                self.path(),
                HeaderError::OutOfRange {
                    tensor: entry.name.clone(),
                    begin: entry.offset,
                    end: entry.offset.saturating_add(entry.len),
                    limit: self.map.bytes().len() as u64,
                },
            ));
        };
        let candle_err = |source| Error::Candle {
            source: Box::new(source),
            path: self.path().to_owned(),
            tensor: entry.name.clone(),
        };
        let tensor = if let (Some(from), Some(out_kind)) = (Float::of(source), Float::of(target)) {
            let mut out = Out::zeroed(out_kind, len / from.size(), to.huge_pages);
            for (i, chunk) in bytes.chunks(CHUNK_BYTES).enumerate() {
                if cancel.is_cancelled() {
                    return Err(Error::Cancelled);
                }
                out.fill(i * (CHUNK_BYTES / from.size()), chunk, from);
                let at = start + i * CHUNK_BYTES;
                self.map.release(at..at + chunk.len());
                progress.advance(chunk.len() as u64);
            }
            out.into_tensor(entry.shape.clone().into(), device)
                .map_err(candle_err)?
        } else {
            let raw =
                Tensor::from_raw_buffer(bytes, source, &entry.shape, device).map_err(candle_err)?;
            self.map.release(start..end);
            progress.advance(entry.len);
            if target == source {
                raw
            } else {
                raw.to_dtype(target).map_err(candle_err)?
            }
        };
        progress.advance_tensor(0);
        Ok(tensor)
    }
}
