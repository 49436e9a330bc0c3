//! AVX2 kernels on the same panels: a register holds 8 i32 lanes, so a
//! panel is done as two halves of 8 rows (bytes 0..32 and 32..64 of each
//! 64-byte group). Without VNNI, 4-byte dot products are `vpmaddubsw`
//! (pairs to i16) then `vpmaddwd` with ones (to i32). Its i16 step
//! saturates for two products above 16383 each, which unsigned weights of
//! at most 6 bits times int8 never reach; Q8_0 keeps its signed weights
//! and moves their sign onto the activations (`|w| * sign(x, w)`, at most
//! 128 * 127 twice).

use std::arch::x86_64::*;
use std::ops::Range;

use super::Out;
use crate::pack::PANEL;
use crate::{PackedMatrix, QuantActs, WeightType};

trait Fmt {
    const SPLIT: usize = 1;
    type B: Copy;
    /// # Safety
    /// `scales` is the panel's scale stream, `b` one of its blocks, `hf` 0 or 1.
    unsafe fn block(scales: *const u8, b: usize, hf: usize) -> Self::B;
    /// # Safety
    /// Pointers are the panel's streams.
    unsafe fn pair(
        vals: *const u8,
        high: *const u8,
        b: usize,
        g: usize,
        hf: usize,
    ) -> (__m256i, __m256i);
    /// # Safety
    /// `sums` points at two i32.
    unsafe fn finish(
        acc: __m256,
        isum: __m256i,
        s: Self::B,
        h: usize,
        dx: f32,
        sums: *const i32,
    ) -> __m256;
    /// `acc + sum of 4-byte products` of weights `w` and broadcast `x`.
    #[inline(always)]
    unsafe fn dot(acc: __m256i, w: __m256i, x: __m256i) -> __m256i {
        // SAFETY: register-only intrinsics of AVX2.
        unsafe {
            let p = _mm256_maddubs_epi16(w, x);
            _mm256_add_epi32(acc, _mm256_madd_epi16(p, _mm256_set1_epi16(1)))
        }
    }
}

#[inline(always)]
unsafe fn f16x8(p: *const u8) -> __m256 {
    // SAFETY: caller gives 16 readable bytes.
    unsafe { _mm256_cvtph_ps(_mm_loadu_si128(p.cast())) }
}

#[inline(always)]
unsafe fn u8x8(p: *const u8) -> __m256 {
    // SAFETY: caller gives 8 readable bytes.
    unsafe { _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64(p.cast()))) }
}

#[inline(always)]
unsafe fn i8x8(p: *const u8) -> __m256 {
    // SAFETY: caller gives 8 readable bytes.
    unsafe { _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(p.cast()))) }
}

#[inline(always)]
unsafe fn nibbles(vals: *const u8, b: usize, g: usize, hf: usize) -> (__m256i, __m256i) {
    // SAFETY: the group lies inside the values stream.
    unsafe {
        let v = _mm256_load_si256(vals.add((b * 4 + g) * 64 + 32 * hf).cast());
        let m = _mm256_set1_epi8(15);
        (
            _mm256_and_si256(v, m),
            _mm256_and_si256(_mm256_srli_epi16(v, 4), m),
        )
    }
}

/// 16 where bit `i` of `mask` is set, for each byte `i` of 32.
#[inline(always)]
unsafe fn bits_to_16(mask: u32) -> __m256i {
    // SAFETY: register-only intrinsics of AVX2.
    unsafe {
        let v = _mm256_set1_epi32(mask as i32);
        let spread = _mm256_setr_epi8(
            0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3,
            3, 3, 3,
        );
        let bit = _mm256_set1_epi64x(0x8040_2010_0804_0201u64 as i64);
        let v = _mm256_and_si256(_mm256_shuffle_epi8(v, spread), bit);
        _mm256_and_si256(_mm256_cmpeq_epi8(v, bit), _mm256_set1_epi8(16))
    }
}

#[inline(always)]
unsafe fn fifth_bits(
    vals: *const u8,
    high: *const u8,
    b: usize,
    g: usize,
    hf: usize,
) -> (__m256i, __m256i) {
    // SAFETY: block b's masks lie inside the high stream.
    unsafe {
        let (lo, hi) = nibbles(vals, b, g, hf);
        let k0 = high
            .add(b * 64 + g * 16 + 4 * hf)
            .cast::<u32>()
            .read_unaligned();
        let k1 = high
            .add(b * 64 + g * 16 + 8 + 4 * hf)
            .cast::<u32>()
            .read_unaligned();
        (
            _mm256_or_si256(lo, bits_to_16(k0)),
            _mm256_or_si256(hi, bits_to_16(k1)),
        )
    }
}

#[inline(always)]
unsafe fn offset_finish(
    acc: __m256,
    isum: __m256i,
    d: __m256,
    k: i32,
    dx: f32,
    sums: *const i32,
) -> __m256 {
    // SAFETY: sums points at two i32.
    unsafe {
        let xs = *sums + *sums.add(1);
        let v = _mm256_cvtepi32_ps(_mm256_sub_epi32(isum, _mm256_set1_epi32(k * xs)));
        _mm256_fmadd_ps(v, _mm256_mul_ps(d, _mm256_set1_ps(dx)), acc)
    }
}

#[inline(always)]
unsafe fn min_finish(
    acc: __m256,
    isum: __m256i,
    d: __m256,
    m: __m256,
    dx: f32,
    sums: *const i32,
) -> __m256 {
    // SAFETY: sums points at two i32.
    unsafe {
        let xs = (*sums + *sums.add(1)) as f32;
        let acc = _mm256_fmadd_ps(
            _mm256_cvtepi32_ps(isum),
            _mm256_mul_ps(d, _mm256_set1_ps(dx)),
            acc,
        );
        _mm256_fmadd_ps(m, _mm256_set1_ps(dx * xs), acc)
    }
}

macro_rules! offset_format {
    ($name:ident, $k:expr, $pair:ident) => {
        struct $name;
        impl Fmt for $name {
            type B = __m256;
            #[inline(always)]
            unsafe fn block(scales: *const u8, b: usize, hf: usize) -> __m256 {
                unsafe { f16x8(scales.add(b * 32 + 16 * hf)) }
            }
            #[inline(always)]
            unsafe fn pair(
                vals: *const u8,
                high: *const u8,
                b: usize,
                g: usize,
                hf: usize,
            ) -> (__m256i, __m256i) {
                unsafe { $pair(vals, high, b, g, hf) }
            }
            #[inline(always)]
            unsafe fn finish(
                acc: __m256,
                isum: __m256i,
                d: __m256,
                _: usize,
                dx: f32,
                sums: *const i32,
            ) -> __m256 {
                unsafe { offset_finish(acc, isum, d, $k, dx, sums) }
            }
        }
    };
}

macro_rules! min_format {
    ($name:ident, $pair:ident) => {
        struct $name;
        impl Fmt for $name {
            type B = (__m256, __m256);
            #[inline(always)]
            unsafe fn block(scales: *const u8, b: usize, hf: usize) -> (__m256, __m256) {
                unsafe {
                    (
                        f16x8(scales.add(b * 64 + 16 * hf)),
                        f16x8(scales.add(b * 64 + 32 + 16 * hf)),
                    )
                }
            }
            #[inline(always)]
            unsafe fn pair(
                vals: *const u8,
                high: *const u8,
                b: usize,
                g: usize,
                hf: usize,
            ) -> (__m256i, __m256i) {
                unsafe { $pair(vals, high, b, g, hf) }
            }
            #[inline(always)]
            unsafe fn finish(
                acc: __m256,
                isum: __m256i,
                s: (__m256, __m256),
                _: usize,
                dx: f32,
                sums: *const i32,
            ) -> __m256 {
                unsafe { min_finish(acc, isum, s.0, s.1, dx, sums) }
            }
        }
    };
}

macro_rules! k_format {
    ($name:ident, $pair:ident) => {
        struct $name;
        impl Fmt for $name {
            type B = (__m256, __m256);
            #[inline(always)]
            unsafe fn block(scales: *const u8, b: usize, hf: usize) -> (__m256, __m256) {
                unsafe {
                    let (s, j) = (b / 8, b % 8);
                    let rec = scales.add(s * 320);
                    let d =
                        _mm256_mul_ps(f16x8(rec.add(16 * hf)), u8x8(rec.add(64 + j * 16 + 8 * hf)));
                    let m = _mm256_mul_ps(
                        f16x8(rec.add(32 + 16 * hf)),
                        u8x8(rec.add(192 + j * 16 + 8 * hf)),
                    );
                    (d, _mm256_sub_ps(_mm256_setzero_ps(), m))
                }
            }
            #[inline(always)]
            unsafe fn pair(
                vals: *const u8,
                high: *const u8,
                b: usize,
                g: usize,
                hf: usize,
            ) -> (__m256i, __m256i) {
                unsafe { $pair(vals, high, b, g, hf) }
            }
            #[inline(always)]
            unsafe fn finish(
                acc: __m256,
                isum: __m256i,
                s: (__m256, __m256),
                _: usize,
                dx: f32,
                sums: *const i32,
            ) -> __m256 {
                unsafe { min_finish(acc, isum, s.0, s.1, dx, sums) }
            }
        }
    };
}

#[inline(always)]
unsafe fn plain(
    vals: *const u8,
    _: *const u8,
    b: usize,
    g: usize,
    hf: usize,
) -> (__m256i, __m256i) {
    // SAFETY: forwarded.
    unsafe { nibbles(vals, b, g, hf) }
}

offset_format!(Q40, 8, plain);
offset_format!(Q50, 16, fifth_bits);
min_format!(Q41, plain);
min_format!(Q51, fifth_bits);
k_format!(Q4K, plain);
k_format!(Q5K, fifth_bits);

struct Q80;
impl Fmt for Q80 {
    type B = __m256;
    #[inline(always)]
    unsafe fn block(scales: *const u8, b: usize, hf: usize) -> __m256 {
        unsafe { f16x8(scales.add(b * 32 + 16 * hf)) }
    }
    #[inline(always)]
    unsafe fn pair(
        vals: *const u8,
        _: *const u8,
        b: usize,
        g: usize,
        hf: usize,
    ) -> (__m256i, __m256i) {
        unsafe {
            (
                _mm256_load_si256(vals.add((b * 8 + 2 * g) * 64 + 32 * hf).cast()),
                _mm256_load_si256(vals.add((b * 8 + 2 * g + 1) * 64 + 32 * hf).cast()),
            )
        }
    }
    #[inline(always)]
    unsafe fn finish(
        acc: __m256,
        isum: __m256i,
        d: __m256,
        _: usize,
        dx: f32,
        sums: *const i32,
    ) -> __m256 {
        unsafe { offset_finish(acc, isum, d, 0, dx, sums) }
    }
    #[inline(always)]
    unsafe fn dot(acc: __m256i, w: __m256i, x: __m256i) -> __m256i {
        unsafe {
            let p = _mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(x, w));
            _mm256_add_epi32(acc, _mm256_madd_epi16(p, _mm256_set1_epi16(1)))
        }
    }
}

struct Q6K;
impl Fmt for Q6K {
    const SPLIT: usize = 2;
    type B = (__m256, __m256);
    #[inline(always)]
    unsafe fn block(scales: *const u8, b: usize, hf: usize) -> (__m256, __m256) {
        unsafe {
            let (s, j) = (b / 8, b % 8);
            let rec = scales.add(s * 288);
            let d = f16x8(rec.add(16 * hf));
            (
                _mm256_mul_ps(d, i8x8(rec.add(32 + 2 * j * 16 + 8 * hf))),
                _mm256_mul_ps(d, i8x8(rec.add(32 + (2 * j + 1) * 16 + 8 * hf))),
            )
        }
    }
    #[inline(always)]
    unsafe fn pair(
        vals: *const u8,
        high: *const u8,
        b: usize,
        g: usize,
        hf: usize,
    ) -> (__m256i, __m256i) {
        unsafe {
            let (lo, hi) = nibbles(vals, b, g, hf);
            let h = _mm256_load_si256(high.add(b * 128 + (g / 2) * 64 + 32 * hf).cast());
            let bits = |m: i8| _mm256_and_si256(h, _mm256_set1_epi8(m));
            let (top_lo, top_hi) = if g.is_multiple_of(2) {
                (
                    _mm256_slli_epi16(bits(0x03), 4),
                    _mm256_slli_epi16(bits(0x0C), 2),
                )
            } else {
                (bits(0x30), _mm256_srli_epi16(bits(0xC0u8 as i8), 2))
            };
            (_mm256_or_si256(lo, top_lo), _mm256_or_si256(hi, top_hi))
        }
    }
    #[inline(always)]
    unsafe fn finish(
        acc: __m256,
        isum: __m256i,
        s: (__m256, __m256),
        h: usize,
        dx: f32,
        sums: *const i32,
    ) -> __m256 {
        unsafe {
            let xs = *sums.add(h);
            let v = _mm256_cvtepi32_ps(_mm256_sub_epi32(isum, _mm256_set1_epi32(32 * xs)));
            let d = if h == 0 { s.0 } else { s.1 };
            _mm256_fmadd_ps(v, _mm256_mul_ps(d, _mm256_set1_ps(dx)), acc)
        }
    }
}

/// Half `hf` of a panel (8 rows) times `T` tokens from `t0`.
#[inline(always)]
unsafe fn tile<F: Fmt, const T: usize>(
    w: &PackedMatrix,
    p: usize,
    hf: usize,
    acts: &QuantActs,
    t0: usize,
) -> [__m256; T] {
    // SAFETY: p is a panel of w and t0 + T tokens are quantized in acts.
    unsafe {
        let (high_at, scales_at) = w.streams();
        let vals = w.panel(p).as_ptr();
        let high = vals.add(high_at);
        let scales = vals.add(scales_at);
        let q: [*const i8; T] = std::array::from_fn(|i| acts.q_ptr(t0 + i));
        let d: [*const f32; T] = std::array::from_fn(|i| acts.d_ptr(t0 + i));
        let sums: [*const i32; T] = std::array::from_fn(|i| acts.sums_ptr(t0 + i));
        let mut acc = [_mm256_setzero_ps(); T];
        let groups = 4 / F::SPLIT;
        for b in 0..w.cols() / 32 {
            let s = F::block(scales, b, hf);
            for h in 0..F::SPLIT {
                let mut isum = [_mm256_setzero_si256(); T];
                for g in h * groups..(h + 1) * groups {
                    let (lo, hi) = F::pair(vals, high, b, g, hf);
                    for t in 0..T {
                        let x = q[t].add(32 * b + 8 * g).cast::<i32>();
                        let xl = _mm256_set1_epi32(x.read_unaligned());
                        let xh = _mm256_set1_epi32(x.add(1).read_unaligned());
                        isum[t] = F::dot(isum[t], lo, xl);
                        isum[t] = F::dot(isum[t], hi, xh);
                    }
                }
                for t in 0..T {
                    acc[t] = F::finish(acc[t], isum[t], s, h, *d[t].add(b), sums[t].add(2 * b));
                }
            }
        }
        acc
    }
}

#[inline(always)]
unsafe fn store<const T: usize>(
    lo: [__m256; T],
    hi: [__m256; T],
    out: &Out,
    p: usize,
    t0: usize,
    n: usize,
) {
    for t in 0..T {
        let mut vals = [0.0f32; PANEL];
        // SAFETY: vals holds 16 floats; out's contract is the caller's.
        unsafe {
            _mm256_storeu_ps(vals.as_mut_ptr(), lo[t]);
            _mm256_storeu_ps(vals.as_mut_ptr().add(8), hi[t]);
            out.store(t0 + t, p, &vals, n);
        }
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn quantized<F: Fmt>(
    w: &PackedMatrix,
    acts: &QuantActs,
    panels: Range<usize>,
    tokens: Range<usize>,
    out: Out,
) {
    for p in panels {
        let n = (w.rows() - p * PANEL).min(PANEL);
        let mut t = tokens.start;
        // SAFETY (all tiles): p < panels, tokens quantized, out per contract.
        unsafe {
            while t + 4 <= tokens.end {
                let lo = tile::<F, 4>(w, p, 0, acts, t);
                let hi = tile::<F, 4>(w, p, 1, acts, t);
                store(lo, hi, &out, p, t, n);
                t += 4;
            }
            if t + 2 <= tokens.end {
                let lo = tile::<F, 2>(w, p, 0, acts, t);
                let hi = tile::<F, 2>(w, p, 1, acts, t);
                store(lo, hi, &out, p, t, n);
                t += 2;
            }
            if t < tokens.end {
                let lo = tile::<F, 1>(w, p, 0, acts, t);
                let hi = tile::<F, 1>(w, p, 1, acts, t);
                store(lo, hi, &out, p, t, n);
            }
        }
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn hsum(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_movehdup_ps(s));
    _mm_cvtss_f32(s)
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn float(w: &PackedMatrix, x: &[f32], panels: Range<usize>, tokens: Range<usize>, out: Out) {
    let cols = w.cols();
    let wt = w.wtype();
    for p in panels {
        let n = (w.rows() - p * PANEL).min(PANEL);
        let base = w.panel(p).as_ptr();
        for t in tokens.clone() {
            let mut vals = [0.0f32; PANEL];
            let xt = x[t * cols..(t + 1) * cols].as_ptr();
            for (r, v) in vals.iter_mut().enumerate().take(n) {
                // SAFETY: row r of the panel holds cols values of wt.
                unsafe {
                    let mut acc = _mm256_setzero_ps();
                    let mut k = 0;
                    while k + 8 <= cols {
                        let wv = match wt {
                            WeightType::F32 => _mm256_loadu_ps(base.add((r * cols + k) * 4).cast()),
                            WeightType::F16 => f16x8(base.add((r * cols + k) * 2)),
                            _ => {
                                let raw = _mm_loadu_si128(base.add((r * cols + k) * 2).cast());
                                _mm256_castsi256_ps(_mm256_slli_epi32(
                                    _mm256_cvtepu16_epi32(raw),
                                    16,
                                ))
                            }
                        };
                        acc = _mm256_fmadd_ps(wv, _mm256_loadu_ps(xt.add(k)), acc);
                        k += 8;
                    }
                    let mut s = hsum(acc);
                    if k < cols {
                        let mut row = vec![0.0f32; cols];
                        w.dequantize_row(p * PANEL + r, &mut row);
                        s += (k..cols).map(|c| row[c] * *xt.add(c)).sum::<f32>();
                    }
                    *v = s;
                }
            }
            // SAFETY: out's contract is the caller's.
            unsafe { out.store(t, p, &vals, n) };
        }
    }
}

/// # Safety
/// The CPU has AVX2, FMA and F16C; the rest as [`super::run`].
pub(super) unsafe fn run(
    w: &PackedMatrix,
    acts: &QuantActs,
    x: &[f32],
    panels: Range<usize>,
    tokens: Range<usize>,
    out: Out,
) {
    // SAFETY: forwarded.
    unsafe {
        match w.wtype() {
            WeightType::Q4_0 => quantized::<Q40>(w, acts, panels, tokens, out),
            WeightType::Q4_1 => quantized::<Q41>(w, acts, panels, tokens, out),
            WeightType::Q5_0 => quantized::<Q50>(w, acts, panels, tokens, out),
            WeightType::Q5_1 => quantized::<Q51>(w, acts, panels, tokens, out),
            WeightType::Q8_0 => quantized::<Q80>(w, acts, panels, tokens, out),
            WeightType::Q4_K => quantized::<Q4K>(w, acts, panels, tokens, out),
            WeightType::Q5_K => quantized::<Q5K>(w, acts, panels, tokens, out),
            WeightType::Q6_K => quantized::<Q6K>(w, acts, panels, tokens, out),
            WeightType::F32 | WeightType::F16 | WeightType::BF16 => {
                float(w, x, panels, tokens, out)
            }
        }
    }
}
