//! Portable kernels: the plain reading of the panel layout. On x86-64 they
//! are the reference the SIMD paths are tested against; elsewhere they run.

use std::ops::Range;

use super::Out;
use crate::pack::PANEL;
use crate::pack::quant::{lane_affine, lane_quants};
use crate::{PackedMatrix, QuantActs, WeightType};

/// # Safety
/// As [`super::run`].
pub(super) unsafe fn run(
    w: &PackedMatrix,
    acts: &QuantActs,
    x: &[f32],
    panels: Range<usize>,
    tokens: Range<usize>,
    out: Out,
) {
    let signed = w.wtype() == WeightType::Q8_0;
    let cols = w.cols();
    let mut row = vec![0.0f32; cols];
    let mut acc = vec![[0.0f32; PANEL]; tokens.len()];
    for p in panels {
        let n = (w.rows() - p * PANEL).min(PANEL);
        let panel = w.panel(p);
        acc.iter_mut().for_each(|a| *a = [0.0; PANEL]);
        if w.wtype().is_quantized() {
            for b in 0..cols / 32 {
                for r in 0..n {
                    let q = lane_quants(w, panel, b, r);
                    let (scale, offset) = lane_affine(w, panel, b, r);
                    for (a, t) in acc.iter_mut().zip(tokens.clone()) {
                        let xq = &acts.quants(t)[32 * b..32 * b + 32];
                        let dx = acts.scale(t, b);
                        for h in 0..2 {
                            let mut dot = 0i32;
                            for l in 16 * h..16 * h + 16 {
                                let v = if signed {
                                    i32::from(q[l] as i8)
                                } else {
                                    i32::from(q[l])
                                };
                                dot += v * i32::from(xq[l]);
                            }
                            let xs = acts.sum16(t, 2 * b + h) as f32;
                            a[r] += dx * (scale[h] * dot as f32 + offset[h] * xs);
                        }
                    }
                }
            }
        } else {
            for r in 0..n {
                w.dequantize_row(p * PANEL + r, &mut row);
                for (a, t) in acc.iter_mut().zip(tokens.clone()) {
                    let xt = &x[t * cols..(t + 1) * cols];
                    a[r] = row.iter().zip(xt).map(|(w, x)| w * x).sum();
                }
            }
        }
        for (a, t) in acc.iter().zip(tokens.clone()) {
            // SAFETY: forwarded from the caller.
            unsafe { out.store(t, p, a, n) };
        }
    }
}
