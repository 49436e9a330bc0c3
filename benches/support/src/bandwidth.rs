//! The machine's read bandwidth, measured the same way by every benchmark
//! that compares against it.

use std::hint::black_box;
use std::time::Instant;

/// Median of `v` (NaN when empty).
#[must_use]
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Seconds per call of `f`: the median of `reps` timed batches of `inner`
/// calls, after one untimed call.
pub fn time(reps: usize, inner: usize, mut f: impl FnMut()) -> f64 {
    f();
    let samples = (0..reps)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..inner {
                f();
            }
            t.elapsed().as_secs_f64() / inner.max(1) as f64
        })
        .collect();
    median(samples)
}

/// GB/s of summing `bytes` of memory split across `threads` threads
/// (median of five passes): what a matrix-vector product that streams as
/// many bytes of weights could read at best.
#[must_use]
pub fn read_bandwidth(bytes: usize, threads: usize) -> f64 {
    let words = bytes / 8;
    let data: Vec<u64> = (0..words as u64)
        .map(|i| i.wrapping_mul(0x9E37_79B9))
        .collect();
    let chunk = words.div_ceil(threads.max(1));
    let secs = time(5, 1, || {
        std::thread::scope(|s| {
            for part in data.chunks(chunk) {
                s.spawn(move || black_box(sum(part)));
            }
        });
    });
    bytes as f64 / secs / 1e9
}

/// Wrapping sum of `part` with the widest loads the CPU has, so the figure
/// is the memory's limit, not the loop's.
#[allow(unsafe_code)]
fn sum(part: &[u64]) -> u64 {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU has AVX-512F (checked just above).
        return unsafe { sum_avx512(part) };
    } else if std::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2 (checked just above).
        return unsafe { sum_avx2(part) };
    }
    sum_plain(part)
}

/// Eight independent lanes of sums, which the compiler vectorises to the
/// width its target features allow.
#[inline(always)]
fn sum_plain(part: &[u64]) -> u64 {
    let mut acc = [0u64; 32];
    let mut chunks = part.chunks_exact(32);
    for c in &mut chunks {
        for k in 0..32 {
            acc[k] = acc[k].wrapping_add(c[k]);
        }
    }
    let tail: u64 = chunks.remainder().iter().fold(0, |a, b| a.wrapping_add(*b));
    acc.iter().fold(tail, |a, b| a.wrapping_add(*b))
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(unsafe_code)]
unsafe fn sum_avx512(part: &[u64]) -> u64 {
    sum_plain(part)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[allow(unsafe_code)]
unsafe fn sum_avx2(part: &[u64]) -> u64 {
    sum_plain(part)
}
