//! A `Read + Seek` over a GGUF file that turns candle's reads into
//! per-tensor progress and stops on cancellation.
//!
//! candle's quantized models (`quantized_llama`, `quantized_qwen2`,
//! `quantized_phi3`, `quantized_gemma3`, ...) seek to each tensor and read
//! it whole. This reader maps every read back to the tensors whose bytes it
//! covers, and counts a tensor when all its bytes have been read once.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};

use tektra_progress::FileProgress;
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};
use crate::gguf::GgufFile;

/// The error inside the `io::Error` a [`GgufReader`] returns once
/// cancelled.
///
/// Its kind is `Other`, not `Interrupted`: `read_exact`, which candle uses,
/// retries reads that fail with `Interrupted`, so that kind would turn a
/// cancellation into an endless loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("loading was cancelled")]
pub struct ReadCancelled;

/// Reads a GGUF file for candle, reporting tensors read to a
/// [`FileProgress`]. See [`GgufFile::reader`].
///
/// ```no_run
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use tektra_progress::{Stage, Tracker};
/// let gguf = tektra_candle::gguf::GgufFile::open("model.gguf".as_ref())?;
/// let tracker = Tracker::new(Stage::Loading, tektra_progress::silent());
/// let file = tracker.file("model.gguf", Some(gguf.tensor_bytes()));
/// let mut reader = gguf.reader(file, tokio_util::sync::CancellationToken::new())?;
/// // let model = quantized_llama::ModelWeights::from_gguf(gguf.content(), &mut reader, &device)?;
/// reader.finish();
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct GgufReader {
    file: File,
    len: u64,
    pos: u64,
    /// (absolute start, length) of every tensor with bytes, by start.
    spans: Vec<(u64, u64)>,
    /// Bytes of each span read so far (counted once).
    read: Vec<u64>,
    progress: FileProgress,
    cancel: CancellationToken,
    cancelled: bool,
}

impl GgufReader {
    pub(crate) fn new(
        gguf: &GgufFile,
        progress: FileProgress,
        cancel: CancellationToken,
    ) -> Result<Self> {
        let open_err = |source| Error::Open {
            path: gguf.path().to_owned(),
            source,
        };
        let file = File::open(gguf.path()).map_err(open_err)?;
        let len = file.metadata().map_err(open_err)?.len();
        let tensors = &gguf.header().tensors;
        // The header lists tensors by offset already; empty ones have no
        // bytes to wait for and count as read at once.
        let spans: Vec<(u64, u64)> = tensors
            .iter()
            .filter(|t| t.len > 0)
            .map(|t| (t.file_offset, t.len))
            .collect();
        crate::progress::start(&progress, gguf.tensor_bytes(), tensors.len());
        for _ in 0..tensors.len() - spans.len() {
            progress.advance_tensor(0);
        }
        Ok(GgufReader {
            file,
            len,
            pos: 0,
            read: vec![0; spans.len()],
            spans,
            progress,
            cancel,
            cancelled: false,
        })
    }

    /// True once a read was refused because of cancellation.
    #[must_use]
    pub fn was_cancelled(&self) -> bool {
        self.cancelled
    }

    /// The file's progress handle.
    #[must_use]
    pub fn progress(&self) -> &FileProgress {
        &self.progress
    }

    /// Marks the file done (bytes at their total): call when the model is
    /// built, as models may leave tensors unread.
    pub fn finish(&self) {
        self.progress.finish();
    }

    /// Credits the bytes `[from, from + n)` to the tensors they cover.
    fn account(&mut self, from: u64, n: u64) {
        let to = from.saturating_add(n);
        let first = self
            .spans
            .partition_point(|&(start, len)| start + len <= from);
        for (i, &(start, len)) in self.spans.iter().enumerate().skip(first) {
            if start >= to {
                break;
            }
            let overlap = to.min(start + len) - from.max(start);
            let before = self.read[i];
            let after = before.saturating_add(overlap).min(len);
            if after > before {
                self.read[i] = after;
                self.progress.advance(after - before);
                if after == len {
                    self.progress.advance_tensor(0);
                }
            }
        }
    }
}

impl Read for GgufReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.cancel.is_cancelled() {
            if !self.cancelled {
                self.cancelled = true;
                self.progress.cancel();
            }
            return Err(io::Error::other(ReadCancelled));
        }
        let n = read_at(&self.file, buf, self.pos)?;
        self.account(self.pos, n as u64);
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for GgufReader {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        let Some(target) = target else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "seek before the start of the file",
            ));
        };
        self.pos = target;
        Ok(target)
    }
}

#[cfg(unix)]
fn read_at(file: &File, buf: &mut [u8], pos: u64) -> io::Result<usize> {
    std::os::unix::fs::FileExt::read_at(file, buf, pos)
}

#[cfg(windows)]
fn read_at(file: &File, buf: &mut [u8], pos: u64) -> io::Result<usize> {
    std::os::windows::fs::FileExt::seek_read(file, buf, pos)
}
