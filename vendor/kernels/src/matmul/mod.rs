//! `out[t][r] = sum_k W[r][k] * x[t][k]`: one entry point for every weight
//! type and instruction set. A call covers a range of panels (16 rows each)
//! and a range of tokens; the team splits panels between threads. With one
//! token it is the matrix-vector product of generation, with many the
//! matrix-matrix product of a prompt, where each panel is decoded once per
//! tile of tokens instead of once per token.
//!
//! Quantized weights multiply the int8 activations of [`QuantActs`]; F32,
//! F16 and BF16 weights multiply the float activations `x` directly.

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
mod scalar;

use std::ops::Range;

use crate::pack::PANEL;
use crate::{Isa, PackedMatrix, QuantActs};

/// Where results go: `out[t * ld + row]`, optionally added to what is
/// there (a residual) and to a per-row bias.
#[derive(Clone, Copy)]
pub(crate) struct Out {
    pub(crate) ptr: *mut f32,
    pub(crate) ld: usize,
    pub(crate) accumulate: bool,
    pub(crate) bias: *const f32,
}

impl Out {
    /// Writes the `n` results of lanes `0..n` of panel `p` for token `t`.
    ///
    /// # Safety
    /// `ptr` is valid for row `p * 16 + n - 1` of token `t`; `bias`, when not
    /// null, for `p * 16 + n` values; no other thread writes those slots.
    #[inline(always)]
    pub(crate) unsafe fn store(&self, t: usize, p: usize, vals: &[f32; PANEL], n: usize) {
        for (l, &v) in vals.iter().enumerate().take(n) {
            let row = p * PANEL + l;
            // SAFETY: per the contract above.
            unsafe {
                let slot = self.ptr.add(t * self.ld + row);
                let mut v = v;
                if !self.bias.is_null() {
                    v += *self.bias.add(row);
                }
                if self.accumulate {
                    v += *slot;
                }
                *slot = v;
            }
        }
    }
}

/// Runs the kernel of `isa` on panels `panels` and tokens `tokens`.
///
/// # Safety
/// `out` is valid for every written slot and no other thread writes them;
/// `acts` holds the tokens quantized (quantized weights) or `x` holds
/// `tokens.end * w.cols()` floats (float weights).
pub(crate) unsafe fn run(
    isa: Isa,
    w: &PackedMatrix,
    acts: &QuantActs,
    x: &[f32],
    panels: Range<usize>,
    tokens: Range<usize>,
    out: Out,
) {
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the Isa value exists only when the CPU has the features.
        Isa::Avx512 => unsafe { avx512::run(w, acts, x, panels, tokens, out) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        Isa::Avx2 => unsafe { avx2::run(w, acts, x, panels, tokens, out) },
        // SAFETY: forwarded contract.
        _ => unsafe { scalar::run(w, acts, x, panels, tokens, out) },
    }
}

/// The whole product on the calling thread: `out` gets `tokens x rows`
/// results for the `x.len() / cols` tokens of `x` (already quantized into
/// `acts` when `w` is quantized). For tests, benchmarks and small jobs.
///
/// # Panics
/// When `out` or `acts` is too small for the tokens of `x`.
pub fn matmul_serial(isa: Isa, w: &PackedMatrix, acts: &QuantActs, x: &[f32], out: &mut [f32]) {
    let tokens = x.len() / w.cols();
    assert!(out.len() >= tokens * w.rows());
    if w.wtype().is_quantized() {
        assert!(acts.capacity() >= tokens && acts.cols() == w.cols());
    }
    let o = Out {
        ptr: out.as_mut_ptr(),
        ld: w.rows(),
        accumulate: false,
        bias: std::ptr::null(),
    };
    // SAFETY: out holds tokens * rows slots, checked above; one thread.
    unsafe { run(isa, w, acts, x, 0..w.panels(), 0..tokens, o) }
}
