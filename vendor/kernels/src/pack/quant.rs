//! Repacking quantized GGUF rows into a panel, and reading one row back.

use half::f16;

use super::PackedMatrix;
use crate::WeightType;
use crate::reference::{block_quants, k_scale_min};

/// Writes the up to 16 GGUF rows in `src` into `panel`.
pub(super) fn pack_panel(
    wtype: WeightType,
    cols: usize,
    src: &[u8],
    row_bytes: usize,
    panel: &mut [u8],
    high_at: usize,
    scales_at: usize,
) {
    let nb = cols / 32;
    for (r, row) in src.chunks_exact(row_bytes).enumerate() {
        for b in 0..nb {
            let q = block_quants(wtype, row, b);
            put_values(wtype, panel, b, r, &q);
            put_high(wtype, &mut panel[high_at..], b, r, &q);
        }
        put_scales(wtype, row, nb, &mut panel[scales_at..], r);
    }
}

fn put_values(wtype: WeightType, panel: &mut [u8], b: usize, r: usize, q: &[u8; 32]) {
    if wtype == WeightType::Q8_0 {
        for g in 0..8 {
            for i in 0..4 {
                panel[(b * 8 + g) * 64 + 4 * r + i] = q[4 * g + i];
            }
        }
    } else {
        for g in 0..4 {
            for i in 0..4 {
                panel[(b * 4 + g) * 64 + 4 * r + i] =
                    (q[8 * g + i] & 15) | ((q[8 * g + 4 + i] & 15) << 4);
            }
        }
    }
}

fn put_high(wtype: WeightType, high: &mut [u8], b: usize, r: usize, q: &[u8; 32]) {
    match wtype {
        WeightType::Q5_0 | WeightType::Q5_1 | WeightType::Q5_K => {
            for m in 0..8 {
                let at = b * 64 + m * 8;
                let mut mask = u64::from_le_bytes(high[at..at + 8].try_into().unwrap_or([0; 8]));
                for i in 0..4 {
                    if q[4 * m + i] & 16 != 0 {
                        mask |= 1 << (4 * r + i);
                    }
                }
                high[at..at + 8].copy_from_slice(&mask.to_le_bytes());
            }
        }
        WeightType::Q6_K => {
            for p in 0..2 {
                for i in 0..4 {
                    let top = |c: usize| q[16 * p + c + i] >> 4;
                    high[b * 128 + p * 64 + 4 * r + i] =
                        top(0) | (top(4) << 2) | (top(8) << 4) | (top(12) << 6);
                }
            }
        }
        _ => {}
    }
}

fn put_scales(wtype: WeightType, row: &[u8], nb: usize, scales: &mut [u8], r: usize) {
    let blk = wtype.block_bytes();
    let put16 = |scales: &mut [u8], at: usize, from: usize| {
        scales[at + 2 * r] = row[from];
        scales[at + 2 * r + 1] = row[from + 1];
    };
    match wtype {
        WeightType::Q4_0 | WeightType::Q5_0 | WeightType::Q8_0 => {
            for b in 0..nb {
                put16(scales, b * 32, b * blk);
            }
        }
        WeightType::Q4_1 | WeightType::Q5_1 => {
            for b in 0..nb {
                put16(scales, b * 64, b * blk);
                put16(scales, b * 64 + 32, b * blk + 2);
            }
        }
        WeightType::Q4_K | WeightType::Q5_K => {
            for s in 0..nb / 8 {
                put16(scales, s * 320, s * blk);
                put16(scales, s * 320 + 32, s * blk + 2);
                for j in 0..8 {
                    let (sc, m) = k_scale_min(&row[s * blk + 4..s * blk + 16], j);
                    scales[s * 320 + 64 + j * 16 + r] = sc;
                    scales[s * 320 + 192 + j * 16 + r] = m;
                }
            }
        }
        WeightType::Q6_K => {
            for s in 0..nb / 8 {
                put16(scales, s * 288, s * blk + 208);
                for k in 0..16 {
                    scales[s * 288 + 32 + k * 16 + r] = row[s * blk + 192 + k];
                }
            }
        }
        WeightType::F32 | WeightType::F16 | WeightType::BF16 => {}
    }
}

fn f16_at(b: &[u8], at: usize) -> f32 {
    f16::from_le_bytes([b[at], b[at + 1]]).to_f32()
}

/// The 32 values of block `b` of lane `r`, read back from the panel.
pub(crate) fn lane_quants(m: &PackedMatrix, panel: &[u8], b: usize, r: usize) -> [u8; 32] {
    let (high_at, _) = m.streams();
    let mut q = [0u8; 32];
    if m.wtype() == WeightType::Q8_0 {
        for g in 0..8 {
            for i in 0..4 {
                q[4 * g + i] = panel[(b * 8 + g) * 64 + 4 * r + i];
            }
        }
        return q;
    }
    for g in 0..4 {
        for i in 0..4 {
            let v = panel[(b * 4 + g) * 64 + 4 * r + i];
            q[8 * g + i] = v & 15;
            q[8 * g + 4 + i] = v >> 4;
        }
    }
    let high = &panel[high_at..];
    match m.wtype() {
        WeightType::Q5_0 | WeightType::Q5_1 | WeightType::Q5_K => {
            for k in 0..8 {
                let at = b * 64 + k * 8;
                let mask = u64::from_le_bytes(high[at..at + 8].try_into().unwrap_or([0; 8]));
                for i in 0..4 {
                    q[4 * k + i] |= (((mask >> (4 * r + i)) & 1) as u8) << 4;
                }
            }
        }
        WeightType::Q6_K => {
            for p in 0..2 {
                for i in 0..4 {
                    let v = high[b * 128 + p * 64 + 4 * r + i];
                    for (k, c) in [0, 4, 8, 12].into_iter().enumerate() {
                        q[16 * p + c + i] |= ((v >> (2 * k)) & 3) << 4;
                    }
                }
            }
        }
        _ => {}
    }
    q
}

/// `(scale, offset)` per half of block `b` of lane `r`, as in
/// [`crate::reference::block_affine`].
pub(crate) fn lane_affine(
    m: &PackedMatrix,
    panel: &[u8],
    b: usize,
    r: usize,
) -> ([f32; 2], [f32; 2]) {
    let sc = &panel[m.streams().1..];
    let both = |s: f32, o: f32| ([s, s], [o, o]);
    match m.wtype() {
        WeightType::Q4_0 => {
            let d = f16_at(sc, b * 32 + 2 * r);
            both(d, -8.0 * d)
        }
        WeightType::Q5_0 => {
            let d = f16_at(sc, b * 32 + 2 * r);
            both(d, -16.0 * d)
        }
        WeightType::Q8_0 => both(f16_at(sc, b * 32 + 2 * r), 0.0),
        WeightType::Q4_1 | WeightType::Q5_1 => {
            both(f16_at(sc, b * 64 + 2 * r), f16_at(sc, b * 64 + 32 + 2 * r))
        }
        WeightType::Q4_K | WeightType::Q5_K => {
            let (s, j) = (b / 8, b % 8);
            let d = f16_at(sc, s * 320 + 2 * r) * f32::from(sc[s * 320 + 64 + j * 16 + r]);
            let min = f16_at(sc, s * 320 + 32 + 2 * r) * f32::from(sc[s * 320 + 192 + j * 16 + r]);
            both(d, -min)
        }
        WeightType::Q6_K => {
            let (s, j) = (b / 8, b % 8);
            let d = f16_at(sc, s * 288 + 2 * r);
            let k = |h: usize| f32::from(sc[s * 288 + 32 + (2 * j + h) * 16 + r] as i8) * d;
            ([k(0), k(1)], [-32.0 * k(0), -32.0 * k(1)])
        }
        WeightType::F32 | WeightType::F16 | WeightType::BF16 => both(0.0, 0.0),
    }
}

/// Row `r` of the panel, dequantized.
pub(super) fn dequantize_lane(m: &PackedMatrix, panel: &[u8], r: usize, out: &mut [f32]) {
    for (b, chunk) in out.chunks_exact_mut(32).enumerate() {
        let q = lane_quants(m, panel, b, r);
        let (scale, offset) = lane_affine(m, panel, b, r);
        for (l, o) in chunk.iter_mut().enumerate() {
            let v = if m.wtype() == WeightType::Q8_0 {
                f32::from(q[l] as i8)
            } else {
                f32::from(q[l])
            };
            *o = scale[l / 16] * v + offset[l / 16];
        }
    }
}
