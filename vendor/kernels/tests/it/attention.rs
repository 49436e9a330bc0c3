//! Attention on every instruction set against a plain f64 softmax over the
//! same f16-rounded keys and values: a prompt in one step, single tokens
//! after it, grouped-query heads, a sliding window, and a context longer
//! than one key segment (so the split-and-merge path runs too). Head sizes
//! that are and are not multiples of the SIMD widths.

use half::f16;
use tektra_kernels::attention::KvCache;
use tektra_kernels::ops::{self, Attn, AttnBuffers, Rope, RopeStyle};
use tektra_kernels::{Pool, SharedBuf};

use crate::common::{Rng, isas};

struct Shape {
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
    /// Tokens per step: the first is the prompt.
    steps: Vec<usize>,
    window: Option<usize>,
}

fn round16(v: f32) -> f64 {
    f64::from(f16::from_f32(v).to_f32())
}

/// Reference output of token `t` (absolute position) for every head.
fn reference(s: &Shape, rope: &Rope, qkv: &[Vec<f32>], t: usize) -> Vec<f64> {
    let (hd, nh, nkv) = (s.head_dim, s.heads, s.kv_heads);
    let roped = |tok: usize, head: usize| {
        let mut v = qkv[tok][head * hd..(head + 1) * hd].to_vec();
        rope.apply(&mut v, tok);
        v
    };
    let lo = s.window.map_or(0, |w| (t + 1).saturating_sub(w));
    let mut out = vec![0.0; nh * hd];
    for h in 0..nh {
        let kv = h / (nh / nkv);
        let q = roped(t, h);
        let scores: Vec<f64> = (lo..=t)
            .map(|p| {
                let k = roped(p, nh + kv);
                q.iter()
                    .zip(&k)
                    .map(|(a, b)| f64::from(*a) * round16(*b))
                    .sum::<f64>()
                    / (hd as f64).sqrt()
            })
            .collect();
        let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let e: Vec<f64> = scores.iter().map(|x| (x - max).exp()).collect();
        let sum: f64 = e.iter().sum();
        for (i, p) in (lo..=t).enumerate() {
            let v = &qkv[p][(nh + nkv + kv) * hd..(nh + nkv + kv + 1) * hd];
            for d in 0..hd {
                out[h * hd + d] += e[i] / sum * round16(v[d]);
            }
        }
    }
    out
}

fn check(s: &Shape) {
    let (hd, nh, nkv) = (s.head_dim, s.heads, s.kv_heads);
    let width = (nh + 2 * nkv) * hd;
    let total: usize = s.steps.iter().sum();
    let max_step = *s.steps.iter().max().unwrap();
    let mut rng = Rng(0x5eed ^ (hd as u64) << 8 ^ total as u64);
    let qkv: Vec<Vec<f32>> = (0..total)
        .map(|_| (0..width).map(|_| rng.normal() * 1.5).collect())
        .collect();
    let rope = Rope::new(hd, RopeStyle::Neox, 10_000.0, total, None);
    for isa in isas() {
        let pool = Pool::new(2).unwrap();
        let cache = KvCache::new(1, nkv, hd, total);
        let bufs = AttnBuffers::new(nh, nkv, hd, max_step, total, 2);
        let mut worst = 0.0f64;
        let mut pos0 = 0;
        for &t in &s.steps {
            let mut input = SharedBuf::<f32>::new(max_step * width);
            for (i, row) in qkv[pos0..pos0 + t].iter().enumerate() {
                input.get_mut()[i * width..(i + 1) * width].copy_from_slice(row);
            }
            let mut out = SharedBuf::<f32>::new(max_step * nh * hd);
            let a = Attn {
                layer: 0,
                heads: nh,
                kv_heads: nkv,
                head_dim: hd,
                rope: &rope,
                qk_norm: None,
                eps: 1e-6,
                scale: 1.0 / (hd as f32).sqrt(),
                window: s.window,
                pos0,
                tokens: t,
            };
            pool.run(|team| ops::attention(team, isa, &a, &input, &cache, &bufs, &out))
                .unwrap();
            let got = out.get_mut();
            for i in 0..t {
                let want = reference(s, &rope, &qkv, pos0 + i);
                for (g, w) in got[i * nh * hd..(i + 1) * nh * hd].iter().zip(&want) {
                    worst = worst.max((f64::from(*g) - w).abs());
                }
            }
            pos0 += t;
        }
        println!(
            "{isa}: heads {nh}/{nkv} x {hd}, steps {:?}, window {:?}: worst |error| {worst:.2e}",
            s.steps, s.window
        );
        // Values are ~1.5 in size; the kernel's exp and f32 sums differ
        // from f64 by far less than this.
        assert!(worst < 1e-4, "{isa}: worst error {worst}");
    }
}

#[test]
fn prompt_then_tokens_with_grouped_heads() {
    check(&Shape {
        heads: 6,
        kv_heads: 2,
        head_dim: 64,
        steps: vec![37, 1, 1, 5],
        window: None,
    });
}

#[test]
fn a_head_size_off_the_simd_widths() {
    check(&Shape {
        heads: 4,
        kv_heads: 4,
        head_dim: 40,
        steps: vec![19, 1, 2],
        window: None,
    });
}

#[test]
fn a_sliding_window() {
    check(&Shape {
        heads: 4,
        kv_heads: 1,
        head_dim: 32,
        steps: vec![50, 1, 1],
        window: Some(20),
    });
}

#[test]
fn a_context_longer_than_one_key_segment() {
    check(&Shape {
        heads: 2,
        kv_heads: 1,
        head_dim: 64,
        steps: vec![600, 1, 1],
        window: None,
    });
}
