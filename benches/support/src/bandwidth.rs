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
                s.spawn(move || {
                    // Four independent sums so the loop is bound by loads.
                    let mut acc = [0u64; 4];
                    for c in part.chunks_exact(4) {
                        for k in 0..4 {
                            acc[k] = acc[k].wrapping_add(c[k]);
                        }
                    }
                    black_box(acc);
                });
            }
        });
    });
    bytes as f64 / secs / 1e9
}
