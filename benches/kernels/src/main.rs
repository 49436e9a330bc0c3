//! Kernel benchmark (release build), same run, same data:
//!
//! - the machine's read bandwidth, measured here: a sum over a buffer the
//!   size of SmolLM2's weights (96 MB, what generation streams per token)
//!   and over 1 GiB, with 1 and 2 threads;
//! - matrix-vector products of SmolLM2's shapes (K x N: 576x576, 576x960,
//!   1536x576, 576x3072, 576x49152) for Q4_1, Q5_0, Q8_0, Q4_K and Q6_K,
//!   as GB/s of weights read, ours (2 threads, every ISA path this CPU
//!   has) against candle 0.10.2's `QMatMul` on the same quantized tensor;
//! - matrix-matrix products of a 136-token batch, as GMAC/s.
//!
//! Each product includes quantizing the activations, as both libraries do
//! per call. Times are the median of repeated runs after a warm-up.
// A benchmark reports on the terminal and stops at the first failure.
#![allow(clippy::print_stdout, clippy::print_stderr, clippy::panic)]

use std::hint::black_box;

use anyhow::Result;
use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{Device, Module, Tensor};
use tektra_bench_support::{read_bandwidth, time};
use tektra_kernels::ops::{self, MatJob};
use tektra_kernels::{Isa, PackedMatrix, Pool, QuantActs, SharedBuf, WeightType};

const THREADS: usize = 2;
const SHAPES: [(usize, usize); 5] = [
    (576, 576),
    (576, 960),
    (1536, 576),
    (576, 3072),
    (576, 49152),
];
const BATCH: usize = 136;

fn candle_type(w: WeightType) -> GgmlDType {
    match w {
        WeightType::Q4_1 => GgmlDType::Q4_1,
        WeightType::Q5_0 => GgmlDType::Q5_0,
        WeightType::Q8_0 => GgmlDType::Q8_0,
        WeightType::Q4_K => GgmlDType::Q4K,
        _ => GgmlDType::Q6K,
    }
}

/// Every (type, K, N) measured: SmolLM2's shapes in the types its files
/// use, K-quants only where K is a multiple of their 256-column blocks.
fn cases() -> impl Iterator<Item = (WeightType, usize, usize)> {
    [
        WeightType::Q4_1,
        WeightType::Q5_0,
        WeightType::Q8_0,
        WeightType::Q4_K,
        WeightType::Q6_K,
    ]
    .into_iter()
    .flat_map(|w| SHAPES.into_iter().map(move |(k, n)| (w, k, n)))
    .filter(|(w, k, _)| w.block_len() != 256 || k % 256 == 0)
}

struct Case {
    ours: PackedMatrix,
    theirs: QMatMul,
    bytes: usize,
}

fn case(w: WeightType, k: usize, n: usize) -> Result<Case> {
    let values: Vec<f32> = (0..k * n)
        .map(|i| {
            ((i as u64).wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40) as f32 / (1u64 << 24) as f32
                - 0.5
        })
        .collect();
    let t = Tensor::from_vec(values, (n, k), &Device::Cpu)?;
    let q = QTensor::quantize(&t, candle_type(w))?;
    let raw = q.data()?;
    let ours = PackedMatrix::pack(w, n, k, &raw)?;
    let bytes = raw.len();
    Ok(Case {
        ours,
        theirs: QMatMul::from_qtensor(q)?,
        bytes,
    })
}

/// Seconds of one product over `tokens` tokens on our kernels.
fn ours(pool: &Pool, isa: Isa, c: &Case, tokens: usize, reps: usize, inner: usize) -> f64 {
    let (k, n) = (c.ours.cols(), c.ours.rows());
    let x = SharedBuf::<f32>::new(tokens * k);
    let out = SharedBuf::<f32>::new(tokens * n);
    let acts = QuantActs::new(k, tokens);
    {
        // Activations: a fixed pattern.
        let mut x = x;
        for (i, v) in x.get_mut().iter_mut().enumerate() {
            *v = ((i * 7919) % 1000) as f32 / 500.0 - 1.0;
        }
        time(reps, inner, || {
            pool.run(|team| {
                ops::quantize(team, isa, &x, k, tokens, &acts);
                let job = MatJob {
                    w: &c.ours,
                    out: &out,
                    ld: n,
                    offset: 0,
                    accumulate: false,
                    bias: None,
                };
                ops::matmul(team, isa, &[job], &acts, &x, tokens);
            })
            .unwrap_or_else(|e| panic!("{e}"));
        })
    }
}

fn theirs(c: &Case, tokens: usize, reps: usize, inner: usize) -> Result<f64> {
    let k = c.ours.cols();
    let x = Tensor::from_vec(
        (0..tokens * k)
            .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
            .collect::<Vec<_>>(),
        (tokens, k),
        &Device::Cpu,
    )?;
    Ok(time(reps, inner, || {
        black_box(c.theirs.forward(&x).unwrap_or_else(|e| panic!("{e}")));
    }))
}

fn main() -> Result<()> {
    println!(
        "candle 0.10.2 as its users build it (x86-64 baseline: its quantized kernels pick SIMD at compile time; ours at run time); candle threads: {} (RAYON_NUM_THREADS)",
        std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "default".into())
    );
    let bw96 = read_bandwidth(96 << 20, THREADS);
    let bw96_1 = read_bandwidth(96 << 20, 1);
    let bw1g = read_bandwidth(1 << 30, THREADS);
    let bw1g_1 = read_bandwidth(1 << 30, 1);
    println!(
        "read bandwidth: 96 MB {bw96_1:.1} GB/s (1 thread) {bw96:.1} GB/s (2 threads); 1 GiB {bw1g_1:.1} / {bw1g:.1} GB/s"
    );
    let pool = Pool::new(THREADS)?;
    let isas: Vec<Isa> = Isa::ALL.into_iter().filter(|i| i.supported()).collect();
    for isa in Isa::ALL.into_iter().filter(|i| !i.supported()) {
        println!("NOT RUN: the {isa} path (this CPU lacks it)");
    }
    println!(
        "\nmatrix-vector, GB/s of weights (share of the 96 MB 2-thread bandwidth), candle QMatMul, ratio"
    );
    for (w, k, n) in cases() {
        let c = case(w, k, n)?;
        let inner = (200_000_000 / c.bytes.max(1)).clamp(1, 2000);
        let t_theirs = theirs(&c, 1, 7, inner)?;
        let gb = |t: f64| c.bytes as f64 / t / 1e9;
        let mut line = format!("{w:5} {k:5}x{n:<6} candle {:7.2} GB/s", gb(t_theirs));
        for &isa in &isas {
            let t = ours(&pool, isa, &c, 1, 7, inner);
            line += &format!(
                " | {isa:6} {:7.2} GB/s ({:4.0}%) x{:5.2}",
                gb(t),
                100.0 * gb(t) / bw96,
                t_theirs / t
            );
        }
        println!("{line}");
    }
    println!("\nmatrix-matrix, {BATCH} tokens, GMAC/s, candle QMatMul, ratio");
    for (w, k, n) in cases() {
        let c = case(w, k, n)?;
        let macs = (k * n * BATCH) as f64;
        let inner = (2e9 / macs).clamp(1.0, 200.0) as usize;
        let t_theirs = theirs(&c, BATCH, 3, inner)?;
        let mut line = format!(
            "{w:5} {k:5}x{n:<6} candle {:7.1} GMAC/s",
            macs / t_theirs / 1e9
        );
        for &isa in &isas {
            let t = ours(&pool, isa, &c, BATCH, 3, inner);
            line += &format!(
                " | {isa:6} {:7.1} GMAC/s x{:5.2}",
                macs / t / 1e9,
                t_theirs / t
            );
        }
        println!("{line}");
    }
    Ok(())
}
