//! A byte buffer aligned to 64 bytes (one cache line, one AVX-512
//! register), so panel streams start on a line and loads never split one.

use std::alloc::{Layout, alloc_zeroed, dealloc};
use std::ptr::NonNull;

/// Zero-initialised, 64-byte aligned, fixed-size bytes. Large buffers are
/// zero pages from the OS until written, so an unused KV cache costs no RSS.
///
/// Why not `alloc_zeroed` with a 64-byte layout: the standard allocator
/// serves an alignment above 16 with an aligned malloc and a memset, which
/// touches every page (a 4,096-token KV cache became 94 MB of RSS before
/// its first token). An alignment of 16 goes to `calloc`, which maps fresh
/// zero pages for large sizes; 64 spare bytes let the start be aligned.
pub struct AlignedBuf {
    /// Start of the allocation.
    base: NonNull<u8>,
    /// Bytes from `base` to the first 64-byte boundary.
    offset: usize,
    len: usize,
}

// SAFETY: AlignedBuf owns its allocation like a Box<[u8]>.
unsafe impl Send for AlignedBuf {}
// SAFETY: shared access is read-only through &self.
unsafe impl Sync for AlignedBuf {}

const ALIGN: usize = 64;
/// The alignment the allocation is made with (see [`AlignedBuf`]).
const ALLOC_ALIGN: usize = 16;

impl AlignedBuf {
    /// `len` zero bytes. Aborts like `Vec` when the allocator fails.
    #[must_use]
    pub fn zeroed(len: usize) -> Self {
        if len == 0 {
            return AlignedBuf {
                base: NonNull::<[u8; ALIGN]>::dangling().cast(),
                offset: 0,
                len: 0,
            };
        }
        let layout = Self::layout(len);
        // SAFETY: layout has a non-zero size.
        let raw = unsafe { alloc_zeroed(layout) };
        let Some(base) = NonNull::new(raw) else {
            std::alloc::handle_alloc_error(layout)
        };
        let offset = raw.align_offset(ALIGN);
        AlignedBuf { base, offset, len }
    }

    fn layout(len: usize) -> Layout {
        match Layout::from_size_align(len.saturating_add(ALIGN), ALLOC_ALIGN) {
            Ok(l) => l,
            // Only for len near isize::MAX, which no allocation reaches.
            Err(_) => std::alloc::handle_alloc_error(Layout::new::<[u8; ALIGN]>()),
        }
    }

    /// Length in bytes.
    #[must_use]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it holds no bytes.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The bytes.
    #[must_use]
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: offset + len lies within the allocation (len + 64 bytes,
        // offset < 64), zeroed at birth.
        unsafe { std::slice::from_raw_parts(self.as_ptr(), self.len) }
    }

    /// The bytes, writable.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as above, and &mut self is unique.
        unsafe { std::slice::from_raw_parts_mut(self.base.as_ptr().add(self.offset), self.len) }
    }

    /// Start pointer (for kernels that read with SIMD loads).
    #[must_use]
    pub fn as_ptr(&self) -> *const u8 {
        // SAFETY: offset < 64 lies within the allocation (or is 0 for the
        // empty buffer's dangling pointer).
        unsafe { self.base.as_ptr().add(self.offset) }
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        if self.len != 0 {
            // SAFETY: allocated in `zeroed` with this layout.
            unsafe { dealloc(self.base.as_ptr(), Self::layout(self.len)) }
        }
    }
}

impl std::fmt::Debug for AlignedBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AlignedBuf({} bytes)", self.len)
    }
}
