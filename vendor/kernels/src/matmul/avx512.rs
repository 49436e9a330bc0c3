//! AVX-512 VNNI kernels: a panel's 16 rows are the 16 i32 lanes of one
//! register, `vpdpbusd` multiplies 4 unsigned weight bytes of each row with
//! 4 broadcast int8 activations and adds, so a block's sum per row needs
//! no horizontal reduction. Tokens are taken in tiles of up to 8 so the
//! decoded weights of a group serve all of them.
//!
//! Q8_0's signed weights are made unsigned by flipping the top bit (adding
//! 128); the `128 * sum(x)` this adds is taken off with the activations'
//! sums, as are the offsets of Q4_0 (8), Q5_0 (16) and Q6_K (32).

use std::arch::x86_64::*;
use std::ops::Range;

use super::Out;
use crate::pack::PANEL;
use crate::{PackedMatrix, QuantActs, WeightType};

/// Per-format pieces of the kernel.
trait Fmt {
    /// Epilogues per block of 32: 2 when each 16 columns has its own scale.
    const SPLIT: usize = 1;
    /// Blocks of 32 per scale record.
    const SUPER: usize = 1;
    /// Scale vectors of a block.
    type B: Copy;
    /// # Safety
    /// `scales` is the panel's scale stream; `b` a block of it.
    unsafe fn block(scales: *const u8, b: usize) -> Self::B;
    /// Weight bytes for columns `8g..8g+4` and `8g+4..8g+8` of block `b`.
    /// # Safety
    /// Pointers are the panel's streams; `b` is a block of it.
    unsafe fn pair(vals: *const u8, high: *const u8, b: usize, g: usize) -> (__m512i, __m512i);
    /// `acc` plus half `h` of a block: `isum` the int8 dot products,
    /// `dx` the activations' scale, `sums` their two 16-value sums.
    /// # Safety
    /// `sums` points at two i32.
    unsafe fn finish(
        acc: __m512,
        isum: __m512i,
        s: Self::B,
        h: usize,
        dx: f32,
        sums: *const i32,
    ) -> __m512;
}

#[inline(always)]
unsafe fn f16x16(p: *const u8) -> __m512 {
    // SAFETY: caller gives 32 readable bytes.
    unsafe { _mm512_cvtph_ps(_mm256_loadu_si256(p.cast())) }
}

#[inline(always)]
unsafe fn u8x16(p: *const u8) -> __m512 {
    // SAFETY: caller gives 16 readable bytes.
    unsafe { _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128(p.cast()))) }
}

#[inline(always)]
unsafe fn i8x16(p: *const u8) -> __m512 {
    // SAFETY: caller gives 16 readable bytes.
    unsafe { _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(p.cast()))) }
}

#[inline(always)]
unsafe fn nibbles(vals: *const u8, b: usize, g: usize) -> (__m512i, __m512i) {
    // SAFETY: the group lies inside the values stream.
    unsafe {
        let v = _mm512_load_si512(vals.add((b * 4 + g) * 64).cast());
        let m = _mm512_set1_epi8(15);
        (
            _mm512_and_si512(v, m),
            _mm512_and_si512(_mm512_srli_epi16(v, 4), m),
        )
    }
}

#[inline(always)]
unsafe fn fifth_bits(vals: *const u8, high: *const u8, b: usize, g: usize) -> (__m512i, __m512i) {
    // SAFETY: block b's masks lie inside the high stream.
    unsafe {
        let (lo, hi) = nibbles(vals, b, g);
        let k0 = high.add(b * 64 + g * 16).cast::<u64>().read_unaligned();
        let k1 = high.add(b * 64 + g * 16 + 8).cast::<u64>().read_unaligned();
        let sixteen = _mm512_set1_epi8(16);
        (
            _mm512_mask_add_epi8(lo, k0, lo, sixteen),
            _mm512_mask_add_epi8(hi, k1, hi, sixteen),
        )
    }
}

/// `acc + s * dx * (isum - k * sum32)`: the offset formats.
#[inline(always)]
unsafe fn offset_finish(
    acc: __m512,
    isum: __m512i,
    d: __m512,
    k: i32,
    dx: f32,
    sums: *const i32,
) -> __m512 {
    // SAFETY: sums points at two i32.
    unsafe {
        let xs = *sums + *sums.add(1);
        let v = _mm512_cvtepi32_ps(_mm512_sub_epi32(isum, _mm512_set1_epi32(k * xs)));
        _mm512_fmadd_ps(v, _mm512_mul_ps(d, _mm512_set1_ps(dx)), acc)
    }
}

/// `acc + s * dx * isum + m * dx * sum32`: the formats with a min.
#[inline(always)]
unsafe fn min_finish(
    acc: __m512,
    isum: __m512i,
    d: __m512,
    m: __m512,
    dx: f32,
    sums: *const i32,
) -> __m512 {
    // SAFETY: sums points at two i32.
    unsafe {
        let xs = (*sums + *sums.add(1)) as f32;
        let v = _mm512_cvtepi32_ps(isum);
        let acc = _mm512_fmadd_ps(v, _mm512_mul_ps(d, _mm512_set1_ps(dx)), acc);
        _mm512_fmadd_ps(m, _mm512_set1_ps(dx * xs), acc)
    }
}

struct Q40;
impl Fmt for Q40 {
    type B = __m512;
    #[inline(always)]
    unsafe fn block(scales: *const u8, b: usize) -> __m512 {
        unsafe { f16x16(scales.add(b * 32)) }
    }
    #[inline(always)]
    unsafe fn pair(vals: *const u8, _: *const u8, b: usize, g: usize) -> (__m512i, __m512i) {
        unsafe { nibbles(vals, b, g) }
    }
    #[inline(always)]
    unsafe fn finish(
        acc: __m512,
        isum: __m512i,
        d: __m512,
        _: usize,
        dx: f32,
        sums: *const i32,
    ) -> __m512 {
        unsafe { offset_finish(acc, isum, d, 8, dx, sums) }
    }
}

struct Q50;
impl Fmt for Q50 {
    type B = __m512;
    #[inline(always)]
    unsafe fn block(scales: *const u8, b: usize) -> __m512 {
        unsafe { f16x16(scales.add(b * 32)) }
    }
    #[inline(always)]
    unsafe fn pair(vals: *const u8, high: *const u8, b: usize, g: usize) -> (__m512i, __m512i) {
        unsafe { fifth_bits(vals, high, b, g) }
    }
    #[inline(always)]
    unsafe fn finish(
        acc: __m512,
        isum: __m512i,
        d: __m512,
        _: usize,
        dx: f32,
        sums: *const i32,
    ) -> __m512 {
        unsafe { offset_finish(acc, isum, d, 16, dx, sums) }
    }
}

struct Q80;
impl Fmt for Q80 {
    type B = __m512;
    #[inline(always)]
    unsafe fn block(scales: *const u8, b: usize) -> __m512 {
        unsafe { f16x16(scales.add(b * 32)) }
    }
    #[inline(always)]
    unsafe fn pair(vals: *const u8, _: *const u8, b: usize, g: usize) -> (__m512i, __m512i) {
        unsafe {
            let flip = _mm512_set1_epi8(-128);
            let lo = _mm512_load_si512(vals.add((b * 8 + 2 * g) * 64).cast());
            let hi = _mm512_load_si512(vals.add((b * 8 + 2 * g + 1) * 64).cast());
            (_mm512_xor_si512(lo, flip), _mm512_xor_si512(hi, flip))
        }
    }
    #[inline(always)]
    unsafe fn finish(
        acc: __m512,
        isum: __m512i,
        d: __m512,
        _: usize,
        dx: f32,
        sums: *const i32,
    ) -> __m512 {
        unsafe { offset_finish(acc, isum, d, 128, dx, sums) }
    }
}

struct Q41;
impl Fmt for Q41 {
    type B = (__m512, __m512);
    #[inline(always)]
    unsafe fn block(scales: *const u8, b: usize) -> (__m512, __m512) {
        unsafe { (f16x16(scales.add(b * 64)), f16x16(scales.add(b * 64 + 32))) }
    }
    #[inline(always)]
    unsafe fn pair(vals: *const u8, _: *const u8, b: usize, g: usize) -> (__m512i, __m512i) {
        unsafe { nibbles(vals, b, g) }
    }
    #[inline(always)]
    unsafe fn finish(
        acc: __m512,
        isum: __m512i,
        s: (__m512, __m512),
        _: usize,
        dx: f32,
        sums: *const i32,
    ) -> __m512 {
        unsafe { min_finish(acc, isum, s.0, s.1, dx, sums) }
    }
}

struct Q51;
impl Fmt for Q51 {
    type B = (__m512, __m512);
    #[inline(always)]
    unsafe fn block(scales: *const u8, b: usize) -> (__m512, __m512) {
        unsafe { (f16x16(scales.add(b * 64)), f16x16(scales.add(b * 64 + 32))) }
    }
    #[inline(always)]
    unsafe fn pair(vals: *const u8, high: *const u8, b: usize, g: usize) -> (__m512i, __m512i) {
        unsafe { fifth_bits(vals, high, b, g) }
    }
    #[inline(always)]
    unsafe fn finish(
        acc: __m512,
        isum: __m512i,
        s: (__m512, __m512),
        _: usize,
        dx: f32,
        sums: *const i32,
    ) -> __m512 {
        unsafe { min_finish(acc, isum, s.0, s.1, dx, sums) }
    }
}

/// Q4_K and Q5_K scales of block `b`: `d * sc_j` and `-dmin * m_j`.
#[inline(always)]
unsafe fn k_scales(scales: *const u8, b: usize) -> (__m512, __m512) {
    // SAFETY: the record of b's super-block lies inside the scale stream.
    unsafe {
        let (s, j) = (b / 8, b % 8);
        let rec = scales.add(s * 320);
        let d = _mm512_mul_ps(f16x16(rec), u8x16(rec.add(64 + j * 16)));
        let m = _mm512_mul_ps(f16x16(rec.add(32)), u8x16(rec.add(192 + j * 16)));
        (d, _mm512_sub_ps(_mm512_setzero_ps(), m))
    }
}

struct Q4K;
impl Fmt for Q4K {
    const SUPER: usize = 8;
    type B = (__m512, __m512);
    #[inline(always)]
    unsafe fn block(scales: *const u8, b: usize) -> (__m512, __m512) {
        unsafe { k_scales(scales, b) }
    }
    #[inline(always)]
    unsafe fn pair(vals: *const u8, _: *const u8, b: usize, g: usize) -> (__m512i, __m512i) {
        unsafe { nibbles(vals, b, g) }
    }
    #[inline(always)]
    unsafe fn finish(
        acc: __m512,
        isum: __m512i,
        s: (__m512, __m512),
        _: usize,
        dx: f32,
        sums: *const i32,
    ) -> __m512 {
        unsafe { min_finish(acc, isum, s.0, s.1, dx, sums) }
    }
}

struct Q5K;
impl Fmt for Q5K {
    const SUPER: usize = 8;
    type B = (__m512, __m512);
    #[inline(always)]
    unsafe fn block(scales: *const u8, b: usize) -> (__m512, __m512) {
        unsafe { k_scales(scales, b) }
    }
    #[inline(always)]
    unsafe fn pair(vals: *const u8, high: *const u8, b: usize, g: usize) -> (__m512i, __m512i) {
        unsafe { fifth_bits(vals, high, b, g) }
    }
    #[inline(always)]
    unsafe fn finish(
        acc: __m512,
        isum: __m512i,
        s: (__m512, __m512),
        _: usize,
        dx: f32,
        sums: *const i32,
    ) -> __m512 {
        unsafe { min_finish(acc, isum, s.0, s.1, dx, sums) }
    }
}

struct Q6K;
impl Fmt for Q6K {
    const SPLIT: usize = 2;
    const SUPER: usize = 8;
    type B = (__m512, __m512);
    #[inline(always)]
    unsafe fn block(scales: *const u8, b: usize) -> (__m512, __m512) {
        unsafe {
            let (s, j) = (b / 8, b % 8);
            let rec = scales.add(s * 288);
            let d = f16x16(rec);
            (
                _mm512_mul_ps(d, i8x16(rec.add(32 + 2 * j * 16))),
                _mm512_mul_ps(d, i8x16(rec.add(32 + (2 * j + 1) * 16))),
            )
        }
    }
    #[inline(always)]
    unsafe fn pair(vals: *const u8, high: *const u8, b: usize, g: usize) -> (__m512i, __m512i) {
        unsafe {
            let (lo, hi) = nibbles(vals, b, g);
            let h = _mm512_load_si512(high.add(b * 128 + (g / 2) * 64).cast());
            let bits = |m: i8| _mm512_and_si512(h, _mm512_set1_epi8(m));
            let (top_lo, top_hi) = if g.is_multiple_of(2) {
                (
                    _mm512_slli_epi16(bits(0x03), 4),
                    _mm512_slli_epi16(bits(0x0C), 2),
                )
            } else {
                (bits(0x30), _mm512_srli_epi16(bits(0xC0u8 as i8), 2))
            };
            (_mm512_or_si512(lo, top_lo), _mm512_or_si512(hi, top_hi))
        }
    }
    #[inline(always)]
    unsafe fn finish(
        acc: __m512,
        isum: __m512i,
        s: (__m512, __m512),
        h: usize,
        dx: f32,
        sums: *const i32,
    ) -> __m512 {
        unsafe {
            let xs = *sums.add(h);
            let v = _mm512_cvtepi32_ps(_mm512_sub_epi32(isum, _mm512_set1_epi32(32 * xs)));
            let d = if h == 0 { s.0 } else { s.1 };
            _mm512_fmadd_ps(v, _mm512_mul_ps(d, _mm512_set1_ps(dx)), acc)
        }
    }
}

/// One panel times `T` tokens starting at `t0`.
#[inline(always)]
unsafe fn tile<F: Fmt, const T: usize>(
    w: &PackedMatrix,
    p: usize,
    acts: &QuantActs,
    t0: usize,
) -> [__m512; T] {
    // SAFETY: p is a panel of w and t0 + T tokens are quantized in acts.
    unsafe {
        let (high_at, scales_at) = w.streams();
        let vals = w.panel(p).as_ptr();
        let high = vals.add(high_at);
        let scales = vals.add(scales_at);
        let nb = w.cols() / 32;
        let q: [*const i8; T] = std::array::from_fn(|i| acts.q_ptr(t0 + i));
        let d: [*const f32; T] = std::array::from_fn(|i| acts.d_ptr(t0 + i));
        let sums: [*const i32; T] = std::array::from_fn(|i| acts.sums_ptr(t0 + i));
        let mut acc = [_mm512_setzero_ps(); T];
        let groups = 4 / F::SPLIT;
        for b in 0..nb {
            let s = F::block(scales, b);
            for h in 0..F::SPLIT {
                let mut isum = [_mm512_setzero_si512(); T];
                for g in h * groups..(h + 1) * groups {
                    let (lo, hi) = F::pair(vals, high, b, g);
                    for t in 0..T {
                        let x = q[t].add(32 * b + 8 * g).cast::<i32>();
                        let xl = _mm512_set1_epi32(x.read_unaligned());
                        let xh = _mm512_set1_epi32(x.add(1).read_unaligned());
                        isum[t] = _mm512_dpbusd_epi32(isum[t], lo, xl);
                        isum[t] = _mm512_dpbusd_epi32(isum[t], hi, xh);
                    }
                }
                for t in 0..T {
                    acc[t] = F::finish(acc[t], isum[t], s, h, *d[t].add(b), sums[t].add(2 * b));
                }
            }
        }
        let _ = F::SUPER;
        acc
    }
}

#[inline(always)]
unsafe fn store<const T: usize>(acc: [__m512; T], out: &Out, p: usize, t0: usize, n: usize) {
    for (t, a) in acc.iter().enumerate() {
        let mut vals = [0.0f32; PANEL];
        // SAFETY: vals holds 16 floats; out's contract is the caller's.
        unsafe {
            _mm512_storeu_ps(vals.as_mut_ptr(), *a);
            out.store(t0 + t, p, &vals, n);
        }
    }
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
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
            while t + 8 <= tokens.end {
                store(tile::<F, 8>(w, p, acts, t), &out, p, t, n);
                t += 8;
            }
            if t + 4 <= tokens.end {
                store(tile::<F, 4>(w, p, acts, t), &out, p, t, n);
                t += 4;
            }
            if t + 2 <= tokens.end {
                store(tile::<F, 2>(w, p, acts, t), &out, p, t, n);
                t += 2;
            }
            if t < tokens.end {
                store(tile::<F, 1>(w, p, acts, t), &out, p, t, n);
            }
        }
    }
}

/// Float weights: one row at a time against each token, 16 columns a step.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
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
                    let mut acc = _mm512_setzero_ps();
                    let mut k = 0;
                    while k + 16 <= cols {
                        let wv = match wt {
                            WeightType::F32 => _mm512_loadu_ps(base.add((r * cols + k) * 4).cast()),
                            WeightType::F16 => f16x16(base.add((r * cols + k) * 2)),
                            _ => {
                                let raw = _mm256_loadu_si256(base.add((r * cols + k) * 2).cast());
                                _mm512_castsi512_ps(_mm512_slli_epi32(
                                    _mm512_cvtepu16_epi32(raw),
                                    16,
                                ))
                            }
                        };
                        acc = _mm512_fmadd_ps(wv, _mm512_loadu_ps(xt.add(k)), acc);
                        k += 16;
                    }
                    let mut s = _mm512_reduce_add_ps(acc);
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
/// The CPU has AVX-512 F/BW/VL/VNNI; the rest as [`super::run`].
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
