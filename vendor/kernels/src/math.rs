//! Element-wise math of the forward pass: exp (for softmax and the gated
//! activations), RMS norm, SiLU and tanh-GELU gates, dot products of f32
//! vectors. SIMD where a prompt makes it hot; the scalar versions are
//! plain `f32` code and the reference for the tests.

use crate::Isa;

/// `out[i] = exp(x[i])` in place.
pub fn exp_inplace(isa: Isa, x: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    match isa {
        // SAFETY: the Isa value exists only when the CPU has the features.
        Isa::Avx512 => return unsafe { x86::exp_avx512(x) },
        // SAFETY: as above.
        Isa::Avx2 => return unsafe { x86::exp_avx2(x) },
        Isa::Scalar => {}
    }
    let _ = isa;
    x.iter_mut().for_each(|v| *v = v.exp());
}

/// Sum of `x[i] * y[i]`.
#[must_use]
pub fn dot(isa: Isa, x: &[f32], y: &[f32]) -> f32 {
    let n = x.len().min(y.len());
    #[cfg(target_arch = "x86_64")]
    match isa {
        // SAFETY: as above; both slices hold n values.
        Isa::Avx512 => return unsafe { x86::dot_avx512(&x[..n], &y[..n]) },
        // SAFETY: as above.
        Isa::Avx2 => return unsafe { x86::dot_avx2(&x[..n], &y[..n]) },
        Isa::Scalar => {}
    }
    let _ = isa;
    x[..n].iter().zip(&y[..n]).map(|(a, b)| a * b).sum()
}

/// `out = x / rms(x) * w` with `rms = sqrt(mean(x^2) + eps)`.
pub fn rms_norm(isa: Isa, x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
    let ss = dot(isa, x, x);
    let scale = 1.0 / (ss / x.len() as f32 + eps).sqrt();
    for ((o, &v), &g) in out.iter_mut().zip(x).zip(w) {
        *o = v * scale * g;
    }
}

/// `x = x / rms(x) * w` in place.
pub fn rms_norm_inplace(isa: Isa, x: &mut [f32], w: &[f32], eps: f32) {
    let ss = dot(isa, x, x);
    let scale = 1.0 / (ss / x.len() as f32 + eps).sqrt();
    for (v, &g) in x.iter_mut().zip(w) {
        *v *= scale * g;
    }
}

/// `y += x / rms(x) * w` (a normalised branch added to a residual).
pub fn add_rms_norm(isa: Isa, x: &[f32], w: &[f32], eps: f32, y: &mut [f32]) {
    let ss = dot(isa, x, x);
    let scale = 1.0 / (ss / x.len() as f32 + eps).sqrt();
    for ((o, &v), &g) in y.iter_mut().zip(x).zip(w) {
        *o += v * scale * g;
    }
}

/// The gate of a gated feed-forward layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// `silu(g) * u`, `silu(g) = g / (1 + exp(-g))` (llama, qwen, phi3).
    Silu,
    /// `gelu_tanh(g) * u` (gemma).
    GeluTanh,
}

/// `out[i] = gate(g[i]) * u[i]`, using `out` as scratch.
pub fn gated(isa: Isa, gate: Gate, g: &[f32], u: &[f32], out: &mut [f32]) {
    let n = out.len().min(g.len()).min(u.len());
    let out = &mut out[..n];
    // exp(-g) for SiLU; exp(2 y) for tanh(y) = 1 - 2 / (exp(2 y) + 1).
    const SQRT_2_OVER_PI: f32 = 0.797_884_6;
    for (o, &v) in out.iter_mut().zip(g) {
        *o = match gate {
            Gate::Silu => -v,
            Gate::GeluTanh => (2.0 * SQRT_2_OVER_PI * (v + 0.044_715 * v * v * v)).min(80.0),
        };
    }
    exp_inplace(isa, out);
    for ((o, &v), &up) in out.iter_mut().zip(g).zip(u) {
        *o = match gate {
            Gate::Silu => v / (1.0 + *o) * up,
            Gate::GeluTanh => 0.5 * v * (2.0 - 2.0 / (*o + 1.0)) * up,
        };
    }
}

#[cfg(target_arch = "x86_64")]
pub(crate) mod x86 {
    use std::arch::x86_64::*;

    // exp(x) = 2^n * e^f with n = round(x / ln 2), f = x - n ln 2 (ln 2 split
    // in a high and a low part for accuracy), e^f by a degree-6 polynomial
    // (Taylor coefficients; |f| <= ln 2 / 2 keeps the error near 1 ulp).
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const C: [f32; 6] = [1.0 / 720.0, 1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0];

    /// e^x for 16 lanes (AVX-512); inputs below -87 give 0, above 88 give +inf.
    #[inline(always)]
    pub(crate) unsafe fn exp16(x: __m512) -> __m512 {
        // SAFETY: register-only AVX-512F intrinsics.
        unsafe {
            let x = _mm512_max_ps(
                _mm512_min_ps(x, _mm512_set1_ps(88.7)),
                _mm512_set1_ps(-103.0),
            );
            let n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(LOG2E)), 0x08);
            let f = _mm512_fnmadd_ps(n, _mm512_set1_ps(LN2_HI), x);
            let f = _mm512_fnmadd_ps(n, _mm512_set1_ps(LN2_LO), f);
            let mut p = _mm512_set1_ps(C[0]);
            for c in &C[1..] {
                p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(*c));
            }
            p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0));
            _mm512_scalef_ps(p, n)
        }
    }

    /// e^x for 8 lanes (AVX2).
    #[inline(always)]
    pub(crate) unsafe fn exp8(x: __m256) -> __m256 {
        // SAFETY: register-only AVX2/FMA intrinsics.
        unsafe {
            let x = _mm256_max_ps(
                _mm256_min_ps(x, _mm256_set1_ps(88.7)),
                _mm256_set1_ps(-87.3),
            );
            let n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(LOG2E)), 0x08);
            let f = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_HI), x);
            let f = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_LO), f);
            let mut p = _mm256_set1_ps(C[0]);
            for c in &C[1..] {
                p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(*c));
            }
            p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.0));
            // 2^n through the exponent bits; n in [-126, 128].
            let e = _mm256_slli_epi32(
                _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)),
                23,
            );
            _mm256_mul_ps(p, _mm256_castsi256_ps(e))
        }
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
    pub(super) unsafe fn exp_avx512(x: &mut [f32]) {
        let mut chunks = x.chunks_exact_mut(16);
        for c in &mut chunks {
            // SAFETY: c holds 16 floats.
            unsafe { _mm512_storeu_ps(c.as_mut_ptr(), exp16(_mm512_loadu_ps(c.as_ptr()))) };
        }
        let rest = chunks.into_remainder();
        let mut buf = [0.0f32; 16];
        buf[..rest.len()].copy_from_slice(rest);
        // SAFETY: buf holds 16 floats.
        unsafe { _mm512_storeu_ps(buf.as_mut_ptr(), exp16(_mm512_loadu_ps(buf.as_ptr()))) };
        let n = rest.len();
        rest.copy_from_slice(&buf[..n]);
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn exp_avx2(x: &mut [f32]) {
        let mut chunks = x.chunks_exact_mut(8);
        for c in &mut chunks {
            // SAFETY: c holds 8 floats.
            unsafe { _mm256_storeu_ps(c.as_mut_ptr(), exp8(_mm256_loadu_ps(c.as_ptr()))) };
        }
        let rest = chunks.into_remainder();
        let mut buf = [0.0f32; 8];
        buf[..rest.len()].copy_from_slice(rest);
        // SAFETY: buf holds 8 floats.
        unsafe { _mm256_storeu_ps(buf.as_mut_ptr(), exp8(_mm256_loadu_ps(buf.as_ptr()))) };
        let n = rest.len();
        rest.copy_from_slice(&buf[..n]);
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
    pub(super) unsafe fn dot_avx512(x: &[f32], y: &[f32]) -> f32 {
        let n = x.len();
        let (mut a, mut b) = (_mm512_setzero_ps(), _mm512_setzero_ps());
        let mut i = 0;
        // SAFETY: indices stay below n, the length of both slices.
        unsafe {
            while i + 32 <= n {
                a = _mm512_fmadd_ps(
                    _mm512_loadu_ps(x.as_ptr().add(i)),
                    _mm512_loadu_ps(y.as_ptr().add(i)),
                    a,
                );
                b = _mm512_fmadd_ps(
                    _mm512_loadu_ps(x.as_ptr().add(i + 16)),
                    _mm512_loadu_ps(y.as_ptr().add(i + 16)),
                    b,
                );
                i += 32;
            }
            while i + 16 <= n {
                a = _mm512_fmadd_ps(
                    _mm512_loadu_ps(x.as_ptr().add(i)),
                    _mm512_loadu_ps(y.as_ptr().add(i)),
                    a,
                );
                i += 16;
            }
        }
        let mut s = _mm512_reduce_add_ps(_mm512_add_ps(a, b));
        while i < n {
            s += x[i] * y[i];
            i += 1;
        }
        s
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn dot_avx2(x: &[f32], y: &[f32]) -> f32 {
        let n = x.len();
        let (mut a, mut b) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        let mut i = 0;
        // SAFETY: indices stay below n, the length of both slices.
        unsafe {
            while i + 16 <= n {
                a = _mm256_fmadd_ps(
                    _mm256_loadu_ps(x.as_ptr().add(i)),
                    _mm256_loadu_ps(y.as_ptr().add(i)),
                    a,
                );
                b = _mm256_fmadd_ps(
                    _mm256_loadu_ps(x.as_ptr().add(i + 8)),
                    _mm256_loadu_ps(y.as_ptr().add(i + 8)),
                    b,
                );
                i += 16;
            }
            while i + 8 <= n {
                a = _mm256_fmadd_ps(
                    _mm256_loadu_ps(x.as_ptr().add(i)),
                    _mm256_loadu_ps(y.as_ptr().add(i)),
                    a,
                );
                i += 8;
            }
        }
        let v = _mm256_add_ps(a, b);
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let mut s = _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
        while i < n {
            s += x[i] * y[i];
            i += 1;
        }
        s
    }
}
