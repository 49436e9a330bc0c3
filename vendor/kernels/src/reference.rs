//! The GGUF block formats, decoded plainly: the reference every kernel and
//! the repacking are tested against. Slow on purpose; nothing here is on a
//! hot path except [`dequantize_row`] for embedding lookups of rows that
//! were not repacked.
//!
//! Format facts (GGML's block layouts, little-endian):
//! - Q4_0 (18 B): f16 d, 16 B nibbles; weight l is `qs[l] & 15` (l < 16)
//!   or `qs[l-16] >> 4`, value `d * (q - 8)`.
//! - Q4_1 (20 B): f16 d, f16 m, nibbles as Q4_0; value `d * q + m`.
//! - Q5_0 (22 B): f16 d, u32 high bits, nibbles; `q |= bit l << 4`, value `d * (q - 16)`.
//! - Q5_1 (24 B): f16 d, f16 m, u32 high bits, nibbles; value `d * q + m`.
//! - Q8_0 (34 B): f16 d, 32 int8; value `d * q`.
//! - Q4_K (144 B, 256 weights): f16 d, f16 dmin, 12 B of eight 6-bit
//!   scales and mins, 128 B nibbles (64-weight chunks: low nibbles are the
//!   chunk's first 32 weights, high nibbles the next 32); sub-block j of 32
//!   has value `d * sc_j * q - dmin * m_j`.
//! - Q5_K (176 B): as Q4_K with 32 B of high bits after the scales (bit j
//!   of byte l is the fifth bit of weight l of sub-block j).
//! - Q6_K (210 B): 128 B low nibbles, 64 B 2-bit highs, 16 int8 scales, f16
//!   d; weight e has scale index e / 16 and value `d * sc * (q - 32)`.

use half::f16;

use crate::{QuantActs, WeightType};

fn f16_at(b: &[u8], at: usize) -> f32 {
    f16::from_le_bytes([b[at], b[at + 1]]).to_f32()
}

/// The unsigned quantized values (signed for Q8_0, as two's complement
/// bytes) of the 32 weights of block `b` (in units of 32 weights) of a
/// GGUF row. Panics if `row` is too short: callers checked the size.
#[must_use]
pub fn block_quants(wtype: WeightType, row: &[u8], b: usize) -> [u8; 32] {
    let mut q = [0u8; 32];
    let blk = wtype.block_bytes();
    match wtype {
        WeightType::Q4_0 | WeightType::Q4_1 | WeightType::Q5_0 | WeightType::Q5_1 => {
            let base = b * blk;
            let (qs, qh) = match wtype {
                WeightType::Q4_0 => (base + 2, None),
                WeightType::Q4_1 => (base + 4, None),
                WeightType::Q5_0 => (base + 6, Some(base + 2)),
                _ => (base + 8, Some(base + 4)),
            };
            let high = qh.map_or(0, |at| {
                u32::from_le_bytes([row[at], row[at + 1], row[at + 2], row[at + 3]])
            });
            for (l, v) in q.iter_mut().enumerate() {
                let nib = if l < 16 {
                    row[qs + l] & 15
                } else {
                    row[qs + l - 16] >> 4
                };
                *v = nib | ((((high >> l) & 1) as u8) << 4);
            }
        }
        WeightType::Q8_0 => q.copy_from_slice(&row[b * blk + 2..b * blk + 34]),
        WeightType::Q4_K | WeightType::Q5_K => {
            let (s, j) = (b / 8, b % 8);
            let base = s * blk;
            let qs = base + if wtype == WeightType::Q4_K { 16 } else { 48 } + 32 * (j / 2);
            for (l, v) in q.iter_mut().enumerate() {
                let nib = (row[qs + l] >> (4 * (j % 2))) & 15;
                let hi = if wtype == WeightType::Q5_K {
                    (row[base + 16 + l] >> j) & 1
                } else {
                    0
                };
                *v = nib | (hi << 4);
            }
        }
        WeightType::Q6_K => {
            let (s, j) = (b / 8, b % 8);
            let base = s * blk;
            for (l, v) in q.iter_mut().enumerate() {
                let e = 32 * j + l;
                let (n, quarter, lq) = (e / 128, (e % 128) / 32, e % 32);
                let ql = row[base + 64 * n + lq + if quarter % 2 == 1 { 32 } else { 0 }];
                let low = if quarter >= 2 { ql >> 4 } else { ql & 15 };
                let qh = row[base + 128 + 32 * n + lq];
                *v = low | (((qh >> (2 * quarter)) & 3) << 4);
            }
        }
        WeightType::F32 | WeightType::F16 | WeightType::BF16 => {}
    }
    q
}

/// The 6-bit scale and min of sub-block `j` (0..8) of a Q4_K/Q5_K block
/// whose 12 scale bytes are `s`.
#[must_use]
pub fn k_scale_min(s: &[u8], j: usize) -> (u8, u8) {
    if j < 4 {
        (s[j] & 63, s[j + 4] & 63)
    } else {
        (
            (s[j + 4] & 15) | ((s[j - 4] >> 6) << 4),
            (s[j + 4] >> 4) | ((s[j] >> 6) << 4),
        )
    }
}

/// How block `b` (of 32) of a row turns quantized values into weights:
/// weight = `scale[h] * q + offset[h]` for the half `h` (0 for weights
/// 0..16, 1 for 16..32; the two differ only for Q6_K). Q8_0's `q` is signed.
#[must_use]
pub fn block_affine(wtype: WeightType, row: &[u8], b: usize) -> ([f32; 2], [f32; 2]) {
    let blk = wtype.block_bytes();
    let both = |s: f32, o: f32| ([s, s], [o, o]);
    match wtype {
        WeightType::Q4_0 => {
            let d = f16_at(row, b * blk);
            both(d, -8.0 * d)
        }
        WeightType::Q5_0 => {
            let d = f16_at(row, b * blk);
            both(d, -16.0 * d)
        }
        WeightType::Q4_1 | WeightType::Q5_1 => both(f16_at(row, b * blk), f16_at(row, b * blk + 2)),
        WeightType::Q8_0 => both(f16_at(row, b * blk), 0.0),
        WeightType::Q4_K | WeightType::Q5_K => {
            let (s, j) = (b / 8, b % 8);
            let base = s * blk;
            let (sc, m) = k_scale_min(&row[base + 4..base + 16], j);
            let d = f16_at(row, base) * f32::from(sc);
            let min = f16_at(row, base + 2) * f32::from(m);
            both(d, -min)
        }
        WeightType::Q6_K => {
            let (s, j) = (b / 8, b % 8);
            let base = s * blk;
            let d = f16_at(row, base + 208);
            let sc = |h: usize| f32::from(row[base + 192 + 2 * j + h] as i8) * d;
            ([sc(0), sc(1)], [-32.0 * sc(0), -32.0 * sc(1)])
        }
        WeightType::F32 | WeightType::F16 | WeightType::BF16 => both(0.0, 0.0),
    }
}

/// Dequantizes one GGUF row of `out.len()` weights.
///
/// # Panics
/// When `row` is shorter than the row's bytes (callers check sizes).
pub fn dequantize_row(wtype: WeightType, row: &[u8], out: &mut [f32]) {
    match wtype {
        WeightType::F32 => {
            for (o, c) in out.iter_mut().zip(row.chunks_exact(4)) {
                *o = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            }
        }
        WeightType::F16 => {
            for (o, c) in out.iter_mut().zip(row.chunks_exact(2)) {
                *o = f16::from_le_bytes([c[0], c[1]]).to_f32();
            }
        }
        WeightType::BF16 => {
            for (o, c) in out.iter_mut().zip(row.chunks_exact(2)) {
                *o = f32::from_bits(u32::from(u16::from_le_bytes([c[0], c[1]])) << 16);
            }
        }
        _ => {
            for (b, chunk) in out.chunks_exact_mut(32).enumerate() {
                let q = block_quants(wtype, row, b);
                let (scale, offset) = block_affine(wtype, row, b);
                for (l, o) in chunk.iter_mut().enumerate() {
                    let v = if wtype == WeightType::Q8_0 {
                        f32::from(q[l] as i8)
                    } else {
                        f32::from(q[l])
                    };
                    *o = scale[l / 16] * v + offset[l / 16];
                }
            }
        }
    }
}

/// The integer reference of one output: the dot product of a GGUF row with
/// token `t` of quantized activations, summing the int8 products of each
/// half-block exactly in integers, then scaling in f64. Kernels must equal
/// it up to float summation order. Float weight types use the activations'
/// float copy `x` instead.
#[must_use]
pub fn dot(wtype: WeightType, row: &[u8], acts: &QuantActs, t: usize, x: &[f32]) -> f32 {
    let cols = acts.cols();
    if !wtype.is_quantized() {
        let mut w = vec![0.0f32; cols];
        dequantize_row(wtype, row, &mut w);
        return w
            .iter()
            .zip(x)
            .map(|(&a, &b)| f64::from(a) * f64::from(b))
            .sum::<f64>() as f32;
    }
    let xq = acts.quants(t);
    let mut sum = 0.0f64;
    for b in 0..cols / 32 {
        let q = block_quants(wtype, row, b);
        let (scale, offset) = block_affine(wtype, row, b);
        let dx = f64::from(acts.scale(t, b));
        for h in 0..2 {
            let (mut dot, mut xsum) = (0i64, 0i64);
            for l in 16 * h..16 * h + 16 {
                let w = if wtype == WeightType::Q8_0 {
                    i64::from(q[l] as i8)
                } else {
                    i64::from(q[l])
                };
                dot += w * i64::from(xq[32 * b + l]);
                xsum += i64::from(xq[32 * b + l]);
            }
            sum += dx * (f64::from(scale[h]) * dot as f64 + f64::from(offset[h]) * xsum as f64);
        }
    }
    sum as f32
}
