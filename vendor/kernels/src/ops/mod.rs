//! The ops a forward step is made of, each run by every thread of a
//! [`Team`] at once: work is claimed in chunks, results land in
//! [`SharedBuf`]s at disjoint places, and each op ends at the team's
//! barrier so the next op reads complete results.
//!
//! Shapes are the model's to get right (it checks them once at load); a
//! wrong one is a bug, caught by an assertion, which the pool turns into
//! an error rather than undefined behaviour.

mod attend;
mod rope;

pub use attend::{Attn, AttnBuffers, attention};
pub use rope::{Rope, RopeStyle};

use crate::math::{self, Gate};
use crate::matmul::{self, Out};
use crate::{Isa, PackedMatrix, QuantActs, SharedBuf, Team};

/// One matrix of a (possibly fused) product: `out[t * ld + offset + r]`.
#[derive(Clone, Copy)]
pub struct MatJob<'a> {
    /// The weights.
    pub w: &'a PackedMatrix,
    /// Where rows land.
    pub out: &'a SharedBuf<f32>,
    /// Output values per token.
    pub ld: usize,
    /// First output row of this matrix.
    pub offset: usize,
    /// Add to what `out` holds (a residual) instead of overwriting.
    pub accumulate: bool,
    /// Per-row bias, `w.rows()` values.
    pub bias: Option<&'a [f32]>,
}

/// `out = W x` for every job, over `tokens` tokens of `acts` (quantized
/// weights) or `x` (float weights, `tokens x cols`), as one op.
pub fn matmul(
    team: &Team,
    isa: Isa,
    jobs: &[MatJob<'_>],
    acts: &QuantActs,
    x: &SharedBuf<f32>,
    tokens: usize,
) {
    for j in jobs {
        let need = if tokens == 0 {
            0
        } else {
            (tokens - 1) * j.ld + j.offset + j.w.rows()
        };
        assert!(
            j.out.len() >= need && j.offset + j.w.rows() <= j.ld,
            "matmul output too small"
        );
        assert!(
            j.bias.is_none_or(|b| b.len() >= j.w.rows()),
            "bias too short"
        );
        if j.w.wtype().is_quantized() {
            assert!(
                acts.cols() == j.w.cols() && acts.capacity() >= tokens,
                "activations do not fit"
            );
        } else {
            assert!(x.len() >= tokens * j.w.cols(), "float input too small");
        }
    }
    let total: usize = jobs.iter().map(|j| j.w.panels()).sum();
    // Enough chunks to balance a noisy machine, few enough to keep each
    // chunk's weights streaming.
    let per = (total / (team.threads() * 8)).max(1);
    let chunks = total.div_ceil(per);
    // SAFETY: read-only during this op (inputs are not outputs of it).
    let xf = unsafe { x.read() };
    team.for_each(chunks, |c| {
        let (mut lo, hi) = (c * per, ((c + 1) * per).min(total));
        let mut first = 0;
        for j in jobs {
            let p = j.w.panels();
            if lo < first + p && lo < hi {
                let end = hi.min(first + p);
                let out = Out {
                    ptr: j.out.ptr().wrapping_add(j.offset),
                    ld: j.ld,
                    accumulate: j.accumulate,
                    bias: j.bias.map_or(std::ptr::null(), <[f32]>::as_ptr),
                };
                // SAFETY: panels lo..end of this job are this chunk's alone;
                // the output holds every written slot (asserted above).
                unsafe { matmul::run(isa, j.w, acts, xf, lo - first..end - first, 0..tokens, out) };
                lo = end;
            }
            first += p;
        }
    });
}

/// For tokens `first..first + tokens` of `x`: `normed = rms_norm(x) * w`,
/// written (and quantized into `acts`) as tokens `0..tokens`.
#[allow(clippy::too_many_arguments)]
pub fn rms_norm_quant(
    team: &Team,
    isa: Isa,
    x: &SharedBuf<f32>,
    cols: usize,
    first: usize,
    tokens: usize,
    w: &[f32],
    eps: f32,
    normed: &SharedBuf<f32>,
    acts: &QuantActs,
) {
    assert!(x.len() >= (first + tokens) * cols && normed.len() >= tokens * cols && w.len() >= cols);
    // SAFETY: x is not written during this op.
    let xs = unsafe { x.read() };
    let np = normed.ptr();
    let quantize = acts.cols() == cols;
    team.for_each(tokens, |t| {
        // SAFETY: token t's slots of `normed` and `acts` are this chunk's.
        unsafe {
            let out = std::slice::from_raw_parts_mut(np.add(t * cols), cols);
            math::rms_norm(
                isa,
                &xs[(first + t) * cols..(first + t + 1) * cols],
                w,
                eps,
                out,
            );
            if quantize {
                acts.quantize_shared(t, out, isa);
            }
        }
    });
}

/// Per token: `x += rms_norm(y) * w` (a post-norm before the residual).
#[allow(clippy::too_many_arguments)]
pub fn add_normed(
    team: &Team,
    isa: Isa,
    x: &SharedBuf<f32>,
    y: &SharedBuf<f32>,
    cols: usize,
    tokens: usize,
    w: &[f32],
    eps: f32,
) {
    assert!(x.len() >= tokens * cols && y.len() >= tokens * cols && w.len() >= cols);
    // SAFETY: y is not written during this op.
    let ys = unsafe { y.read() };
    let xp = x.ptr();
    team.for_each(tokens, |t| {
        // SAFETY: token t's slots of x are this chunk's.
        let xt = unsafe { std::slice::from_raw_parts_mut(xp.add(t * cols), cols) };
        math::add_rms_norm(isa, &ys[t * cols..(t + 1) * cols], w, eps, xt);
    });
}

/// Per token: quantize `x` (already final) into `acts`.
pub fn quantize(
    team: &Team,
    isa: Isa,
    x: &SharedBuf<f32>,
    cols: usize,
    tokens: usize,
    acts: &QuantActs,
) {
    assert!(x.len() >= tokens * cols && acts.cols() == cols && acts.capacity() >= tokens);
    // SAFETY: x is not written during this op.
    let xs = unsafe { x.read() };
    team.for_each(tokens, |t| {
        // SAFETY: token t of acts is this chunk's.
        unsafe { acts.quantize_shared(t, &xs[t * cols..(t + 1) * cols], isa) };
    });
}

/// Gated feed-forward middle: `h = gate(gu[.., 0..ff]) * gu[.., ff..2ff]`
/// per token, written to `h` and quantized into `acts` (whose columns are
/// `ff`), in slabs of 256 columns.
#[allow(clippy::too_many_arguments)]
pub fn gated(
    team: &Team,
    isa: Isa,
    gate: Gate,
    gu: &SharedBuf<f32>,
    ff: usize,
    tokens: usize,
    h: &SharedBuf<f32>,
    acts: &QuantActs,
) {
    assert!(gu.len() >= tokens * 2 * ff && h.len() >= tokens * ff);
    let quantize = acts.cols() == ff && ff.is_multiple_of(32);
    const SLAB: usize = 256;
    let slabs = ff.div_ceil(SLAB);
    // SAFETY: gu is not written during this op.
    let g = unsafe { gu.read() };
    let hp = h.ptr();
    team.for_each(tokens * slabs, |c| {
        let (t, s) = (c / slabs, c % slabs);
        let (lo, hi) = (s * SLAB, ((s + 1) * SLAB).min(ff));
        let row = &g[t * 2 * ff..(t + 1) * 2 * ff];
        // SAFETY: columns lo..hi of token t are this chunk's.
        unsafe {
            let out = std::slice::from_raw_parts_mut(hp.add(t * ff + lo), hi - lo);
            math::gated(isa, gate, &row[lo..hi], &row[ff + lo..ff + hi], out);
            if quantize {
                acts.quantize_blocks_shared(t, lo / 32..hi / 32, out, isa);
            }
        }
    });
}

/// Looks up token embeddings: `x[t] = table[ids[t]] * scale`.
pub fn embed(team: &Team, table: &PackedMatrix, ids: &[u32], x: &SharedBuf<f32>, scale: f32) {
    let cols = table.cols();
    assert!(x.len() >= ids.len() * cols);
    let xp = x.ptr();
    team.for_each(ids.len(), |t| {
        // SAFETY: token t's slots are this chunk's.
        let out = unsafe { std::slice::from_raw_parts_mut(xp.add(t * cols), cols) };
        let id = (ids[t] as usize).min(table.rows() - 1);
        table.dequantize_row(id, out);
        if scale != 1.0 {
            out.iter_mut().for_each(|v| *v *= scale);
        }
    });
}
