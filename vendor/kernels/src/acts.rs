//! Activations quantized for the integer kernels: per token, blocks of 32
//! int8 values with an f32 scale (`x ~ d * q`, `|q| <= 127`, rounded to
//! nearest, ties to even), and the integer sum of every 16 values (the
//! kernels' offset terms). Every ISA path rounds identically, so the same
//! floats give the same bytes whichever path quantized them.

use crate::{AlignedBuf, Isa};

/// Quantized activations for up to `capacity` tokens of `cols` values.
#[derive(Debug)]
pub struct QuantActs {
    cols: usize,
    capacity: usize,
    stride: usize,
    q: AlignedBuf,
    d: AlignedBuf,
    sums: AlignedBuf,
}

impl QuantActs {
    /// Room for `capacity` tokens of `cols` values (`cols` a multiple of
    /// 32; other widths only feed float matrices, which read `x`).
    #[must_use]
    pub fn new(cols: usize, capacity: usize) -> Self {
        let stride = cols.div_ceil(64) * 64;
        QuantActs {
            cols,
            capacity,
            stride,
            q: AlignedBuf::zeroed(stride * capacity),
            d: AlignedBuf::zeroed(4 * capacity * cols.div_ceil(32)),
            sums: AlignedBuf::zeroed(4 * capacity * cols.div_ceil(16)),
        }
    }

    /// Values per token.
    #[must_use]
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Tokens it has room for.
    #[must_use]
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Token `t`'s int8 values.
    #[must_use]
    pub fn quants(&self, t: usize) -> &[i8] {
        let bytes = &self.q.as_slice()[t * self.stride..t * self.stride + self.cols];
        // SAFETY: i8 and u8 have the same layout.
        unsafe { std::slice::from_raw_parts(bytes.as_ptr().cast::<i8>(), bytes.len()) }
    }

    /// Token `t`'s scale of block `b`.
    #[must_use]
    pub fn scale(&self, t: usize, b: usize) -> f32 {
        assert!(t < self.capacity && b < self.cols / 32);
        // SAFETY: in range, checked above; f32 slots of the aligned buffer.
        unsafe { *self.d_ptr(t).add(b) }
    }

    /// Token `t`'s integer sum of values `16 h .. 16 h + 16`.
    #[must_use]
    pub fn sum16(&self, t: usize, h: usize) -> i32 {
        assert!(t < self.capacity && h < self.cols / 16);
        // SAFETY: in range, checked above; i32 slots of the aligned buffer.
        unsafe { *self.sums_ptr(t).add(h) }
    }

    pub(crate) fn q_ptr(&self, t: usize) -> *const i8 {
        // SAFETY (of callers' reads): t < capacity keeps it inside q.
        self.q.as_ptr().wrapping_add(t * self.stride).cast()
    }

    pub(crate) fn d_ptr(&self, t: usize) -> *const f32 {
        self.d
            .as_ptr()
            .cast::<f32>()
            .wrapping_add(t * (self.cols / 32))
    }

    pub(crate) fn sums_ptr(&self, t: usize) -> *const i32 {
        self.sums
            .as_ptr()
            .cast::<i32>()
            .wrapping_add(t * (self.cols / 16))
    }

    /// Quantizes `x` (tokens one after another, `cols` each) into tokens
    /// `0..x.len() / cols`.
    ///
    /// # Panics
    /// When `x` holds more tokens than the capacity.
    pub fn quantize_all(&mut self, x: &[f32], isa: Isa) {
        for (t, row) in x.chunks_exact(self.cols).enumerate() {
            self.quantize_token(t, row, isa);
        }
    }

    /// Quantizes one token's `cols` values into slot `t`.
    ///
    /// # Panics
    /// When `t` is beyond the capacity or `x` is shorter than `cols`.
    pub fn quantize_token(&mut self, t: usize, x: &[f32], isa: Isa) {
        assert!(t < self.capacity && x.len() >= self.cols);
        // SAFETY: &mut self: no other access; t and x checked.
        unsafe { self.quantize_shared(t, x, isa) }
    }

    /// As [`QuantActs::quantize_token`] through `&self`, for team ops
    /// where threads quantize different tokens.
    ///
    /// # Safety
    /// `t < capacity`, `x.len() >= cols`, and no other thread reads or
    /// writes token `t` until the next barrier.
    pub(crate) unsafe fn quantize_shared(&self, t: usize, x: &[f32], isa: Isa) {
        let nb = self.cols / 32;
        // SAFETY: token t's slots, which the caller owns for this op.
        let (q, d, sums) = unsafe {
            (
                std::slice::from_raw_parts_mut(self.q_ptr(t).cast::<u8>().cast_mut(), self.cols),
                std::slice::from_raw_parts_mut(self.d_ptr(t).cast_mut(), nb),
                std::slice::from_raw_parts_mut(self.sums_ptr(t).cast_mut(), 2 * nb),
            )
        };
        for b in 0..nb {
            let (scale, s0, s1) =
                quantize_block(&x[32 * b..32 * b + 32], &mut q[32 * b..32 * b + 32], isa);
            d[b] = scale;
            sums[2 * b] = s0;
            sums[2 * b + 1] = s1;
        }
    }

    /// Quantizes blocks `blocks` (of 32 values) of token `t` from `x`,
    /// which holds exactly those blocks' values.
    ///
    /// # Safety
    /// As [`QuantActs::quantize_shared`], for those blocks of token `t`.
    pub(crate) unsafe fn quantize_blocks_shared(
        &self,
        t: usize,
        blocks: std::ops::Range<usize>,
        x: &[f32],
        isa: Isa,
    ) {
        for (i, b) in blocks.enumerate() {
            // SAFETY: block b of token t, owned by the caller for this op.
            unsafe {
                let q = std::slice::from_raw_parts_mut(
                    self.q_ptr(t).cast::<u8>().cast_mut().add(32 * b),
                    32,
                );
                let (scale, s0, s1) = quantize_block(&x[32 * i..32 * i + 32], q, isa);
                *self.d_ptr(t).cast_mut().add(b) = scale;
                *self.sums_ptr(t).cast_mut().add(2 * b) = s0;
                *self.sums_ptr(t).cast_mut().add(2 * b + 1) = s1;
            }
        }
    }
}

/// One block of 32: writes the int8 values, returns the scale and the two
/// 16-value sums.
fn quantize_block(x: &[f32], q: &mut [u8], isa: Isa) -> (f32, i32, i32) {
    #[cfg(target_arch = "x86_64")]
    if isa == Isa::Avx512 {
        // SAFETY: Isa::Avx512 is only constructed when the CPU has it.
        return unsafe { x86::quantize_block_avx512(x, q) };
    }
    #[cfg(target_arch = "x86_64")]
    if isa == Isa::Avx2 {
        // SAFETY: Isa::Avx2 is only constructed when the CPU has it.
        return unsafe { x86::quantize_block_avx2(x, q) };
    }
    let _ = isa;
    let amax = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let (d, id) = scales(amax);
    let mut s = [0i32; 2];
    for (l, (o, &v)) in q.iter_mut().zip(x).enumerate() {
        let r = (v * id).round_ties_even().clamp(-127.0, 127.0) as i32;
        *o = r as i8 as u8;
        s[l / 16] += r;
    }
    (d, s[0], s[1])
}

/// The block scale and its inverse for a maximum magnitude.
#[inline(always)]
fn scales(amax: f32) -> (f32, f32) {
    if amax > 0.0 {
        (amax / 127.0, 127.0 / amax)
    } else {
        (0.0, 0.0)
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// # Safety
    /// The CPU has AVX-512 F/BW/VL; `x` and `q` hold 32 values.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    pub(super) unsafe fn quantize_block_avx512(x: &[f32], q: &mut [u8]) -> (f32, i32, i32) {
        // SAFETY: 32 floats and 32 bytes, checked by the caller's slicing.
        unsafe {
            let a = _mm512_loadu_ps(x.as_ptr());
            let b = _mm512_loadu_ps(x.as_ptr().add(16));
            let amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(a), _mm512_abs_ps(b)));
            let (d, id) = super::scales(amax);
            let idv = _mm512_set1_ps(id);
            let lim = _mm512_set1_ps(127.0);
            let nlim = _mm512_set1_ps(-127.0);
            let qa = _mm512_cvtps_epi32(_mm512_max_ps(
                nlim,
                _mm512_min_ps(lim, _mm512_mul_ps(a, idv)),
            ));
            let qb = _mm512_cvtps_epi32(_mm512_max_ps(
                nlim,
                _mm512_min_ps(lim, _mm512_mul_ps(b, idv)),
            ));
            _mm_storeu_si128(q.as_mut_ptr().cast(), _mm512_cvtepi32_epi8(qa));
            _mm_storeu_si128(q.as_mut_ptr().add(16).cast(), _mm512_cvtepi32_epi8(qb));
            (d, _mm512_reduce_add_epi32(qa), _mm512_reduce_add_epi32(qb))
        }
    }

    #[target_feature(enable = "avx2,fma")]
    unsafe fn hmax8(v: __m256) -> f32 {
        let m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let m = _mm_max_ps(m, _mm_movehl_ps(m, m));
        let m = _mm_max_ss(m, _mm_movehdup_ps(m));
        _mm_cvtss_f32(m)
    }

    #[target_feature(enable = "avx2,fma")]
    unsafe fn hsum8i(v: __m256i) -> i32 {
        let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
        let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b01_00_11_10));
        let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b10_11_00_01));
        _mm_cvtsi128_si32(s)
    }

    /// # Safety
    /// The CPU has AVX2 and FMA; `x` and `q` hold 32 values.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn quantize_block_avx2(x: &[f32], q: &mut [u8]) -> (f32, i32, i32) {
        // SAFETY: 32 floats and 32 bytes, checked by the caller's slicing.
        unsafe {
            let sign = _mm256_set1_ps(-0.0);
            let v: [__m256; 4] = std::array::from_fn(|i| _mm256_loadu_ps(x.as_ptr().add(8 * i)));
            let m01 = _mm256_max_ps(_mm256_andnot_ps(sign, v[0]), _mm256_andnot_ps(sign, v[1]));
            let m23 = _mm256_max_ps(_mm256_andnot_ps(sign, v[2]), _mm256_andnot_ps(sign, v[3]));
            let amax = hmax8(_mm256_max_ps(m01, m23));
            let (d, id) = super::scales(amax);
            let idv = _mm256_set1_ps(id);
            let lim = _mm256_set1_ps(127.0);
            let nlim = _mm256_set1_ps(-127.0);
            let r: [__m256i; 4] = std::array::from_fn(|i| {
                _mm256_cvtps_epi32(_mm256_max_ps(
                    nlim,
                    _mm256_min_ps(lim, _mm256_mul_ps(v[i], idv)),
                ))
            });
            // Pack 32 x i32 -> 32 x i8 in order: packs interleave 128-bit
            // lanes, the final permute puts them back.
            let p01 = _mm256_packs_epi32(r[0], r[1]);
            let p23 = _mm256_packs_epi32(r[2], r[3]);
            let p = _mm256_packs_epi16(p01, p23);
            let p = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
            _mm256_storeu_si256(q.as_mut_ptr().cast(), p);
            let s0 = hsum8i(_mm256_add_epi32(r[0], r[1]));
            let s1 = hsum8i(_mm256_add_epi32(r[2], r[3]));
            (d, s0, s1)
        }
    }
}
