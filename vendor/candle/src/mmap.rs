//! The crate's only `unsafe`: mapping weight files read-only, dropping
//! mapped pages behind the reader, and asking for huge pages on output
//! buffers.
//!
//! Why map at all: tensors are converted straight from the page cache into
//! their final buffer, with no intermediate copy. Why drop pages behind the
//! cursor: pages of a mapping that were touched count in the process's
//! resident set; without releasing them a 2 GB model would cost 2 GB of RSS
//! on top of its tensors. Releasing a page of a read-only file mapping only
//! unmaps it from this process; it stays in the page cache and is faulted
//! back in (with the same bytes) if read again.
#![allow(unsafe_code)]

use std::fs::File;
use std::ops::Range;
use std::path::{Path, PathBuf};

use memmap2::{Mmap, MmapOptions, UncheckedAdvice};

use crate::error::{Error, Result};

/// A read-only mapping of a whole file.
pub(crate) struct MappedFile {
    path: PathBuf,
    /// `None` for an empty file, which cannot be mapped.
    map: Option<Mmap>,
}

impl std::fmt::Debug for MappedFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MappedFile")
            .field("path", &self.path)
            .field("len", &self.bytes().len())
            .finish()
    }
}

impl MappedFile {
    /// Maps `path` read-only.
    pub(crate) fn open(path: &Path) -> Result<Self> {
        let open_err = |source| Error::Open {
            path: path.to_owned(),
            source,
        };
        let file = File::open(path).map_err(open_err)?;
        let len = file.metadata().map_err(open_err)?.len();
        let map = if len == 0 {
            None
        } else {
            // SAFETY: the mapping is read-only and private, so this process
            // never writes through it. What memmap2 cannot rule out is
            // another process changing or truncating the file while it is
            // mapped: the bytes could change under a reader, and reading a
            // page past a truncated end raises SIGBUS. Weight files are
            // written once (the download cache commits them by rename and
            // never rewrites a blob), which is the same contract every
            // mapping loader (candle, llama.cpp) relies on. Headers are
            // validated against the length seen here before any tensor
            // byte is read.
            let map = unsafe { MmapOptions::new().map(&file) }.map_err(open_err)?;
            Some(map)
        };
        Ok(MappedFile {
            path: path.to_owned(),
            map,
        })
    }

    /// The path this mapping was opened from.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// All bytes of the file.
    pub(crate) fn bytes(&self) -> &[u8] {
        self.map.as_deref().unwrap_or(&[])
    }

    /// Tells the kernel this process is done with the pages wholly inside
    /// `range`, so they leave its resident set (not the page cache).
    /// Advisory: failures are ignored, the only cost is memory.
    pub(crate) fn release(&self, range: Range<usize>) {
        let Some(map) = &self.map else { return };
        let page = page_size();
        let start = range.start.div_ceil(page).saturating_mul(page);
        let end = (range.end.min(map.len()) / page) * page;
        if end <= start {
            return;
        }
        // SAFETY: MADV_DONTNEED is "unchecked" in memmap2 because on a
        // writable private or anonymous mapping it discards contents. This
        // mapping is read-only and file-backed: a later access faults the
        // same bytes back in from the file, so slices borrowed from it stay
        // valid and unchanged. The range lies inside the mapping.
        let _ =
            unsafe { map.unchecked_advise_range(UncheckedAdvice::DontNeed, start, end - start) };
    }
}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions; it only reads a system value.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(size)
        .ok()
        .filter(|&s| s > 0)
        .unwrap_or(4096)
}

/// Asks for transparent huge pages on a freshly allocated (not yet written)
/// output buffer. Filling a multi-gigabyte tensor through 4 KiB page faults
/// costs more than converting it; with 2 MiB pages there are 512 times
/// fewer faults. Advisory: when the kernel says no, nothing changes.
pub(crate) fn advise_huge_pages<T>(buf: &mut [T]) {
    #[cfg(target_os = "linux")]
    {
        const HUGE: usize = 2 << 20;
        let start = buf.as_mut_ptr() as usize;
        let end = start.saturating_add(std::mem::size_of_val(buf));
        let aligned_start = start.div_ceil(HUGE).saturating_mul(HUGE);
        let aligned_end = (end / HUGE) * HUGE;
        if aligned_end <= aligned_start {
            return;
        }
        // SAFETY: MADV_HUGEPAGE changes how the kernel backs the pages, never
        // their contents. The range is rounded inwards, so it lies within
        // `buf`, which this call borrows exclusively.
        let _ = unsafe {
            libc::madvise(
                aligned_start as *mut libc::c_void,
                aligned_end - aligned_start,
                libc::MADV_HUGEPAGE,
            )
        };
    }
    #[cfg(not(target_os = "linux"))]
    let _ = buf;
}
