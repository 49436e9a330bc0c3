//! The attention op of a layer: prepare (norm, rotate, scale, store into
//! the cache), attend (per KV head, tile of query rows and key segment)
//! and merge (segments into rows), run by the whole team.

use crate::attention::{self, KEY_BLOCK, KvCache, Partial, ROWS, Scratch, Visible};
use crate::math;
use crate::{Isa, SharedBuf, Team};

use super::Rope;

/// One layer's attention settings.
pub struct Attn<'a> {
    /// Layer index (into the cache).
    pub layer: usize,
    /// Query heads.
    pub heads: usize,
    /// Key/value heads.
    pub kv_heads: usize,
    /// Values per head.
    pub head_dim: usize,
    /// Rotary tables for this layer.
    pub rope: &'a Rope,
    /// Per-head RMS norm of queries and keys before rotation (qwen3, gemma3).
    pub qk_norm: Option<(&'a [f32], &'a [f32])>,
    /// Epsilon of those norms.
    pub eps: f32,
    /// Multiplier of the scores (usually `1 / sqrt(head_dim)`).
    pub scale: f32,
    /// Keys a query sees at most (sliding window), else the whole past.
    pub window: Option<usize>,
    /// Position of the first token of the step.
    pub pos0: usize,
    /// Tokens in the step.
    pub tokens: usize,
}

/// Scratch an attention op needs, sized for a model's largest step, so a
/// step allocates nothing.
pub struct AttnBuffers {
    q: SharedBuf<f32>,
    parts: SharedBuf<f32>,
    head_dim: usize,
    /// One per thread of the team, taken by index (the lock is never
    /// contended; it keeps the sharing safe).
    per_thread: Vec<std::sync::Mutex<ThreadScratch>>,
}

/// What one thread of an attention op works in.
struct ThreadScratch {
    rows: Vec<(usize, usize)>,
    q: Vec<f32>,
    vis: Vec<Visible>,
    part: Partial,
    scratch: Scratch,
}

/// Keys per segment of a split attention (flash-decoding): long contexts
/// are split so both threads work on one token's attention.
const SEGMENT: usize = 512;
/// Keys per segment at least when segments are made to balance threads.
const MIN_SEGMENT: usize = 64;

impl AttnBuffers {
    /// Room for steps of up to `tokens` tokens over `context` positions.
    #[must_use]
    pub fn new(
        heads: usize,
        kv_heads: usize,
        head_dim: usize,
        tokens: usize,
        context: usize,
        threads: usize,
    ) -> Self {
        let group = heads / kv_heads.max(1);
        let blocks = (tokens * group).div_ceil(ROWS);
        let segs = context.div_ceil(SEGMENT).max(1);
        AttnBuffers {
            q: SharedBuf::new(tokens * heads * head_dim),
            parts: SharedBuf::new(kv_heads * blocks * segs * ROWS * (head_dim + 2)),
            head_dim,
            per_thread: (0..threads.max(1))
                .map(|_| {
                    std::sync::Mutex::new(ThreadScratch {
                        rows: Vec::with_capacity(ROWS),
                        q: vec![0.0; ROWS * head_dim],
                        vis: Vec::with_capacity(ROWS),
                        part: Partial::new(head_dim),
                        scratch: Scratch::new(head_dim),
                    })
                })
                .collect(),
        }
    }
}

/// Attention for one layer: queries and new keys/values from `qkv` (per
/// token `[q heads | k heads | v heads]`), keys and values appended to the
/// cache, output per token `[heads x head_dim]` into `out`. Three ops:
/// prepare (norm, rotate, scale, store), attend (per KV head, tile of query
/// rows and key segment), merge (segments into rows).
#[allow(clippy::too_many_lines)]
pub fn attention(
    team: &Team,
    isa: Isa,
    a: &Attn<'_>,
    qkv: &SharedBuf<f32>,
    cache: &KvCache,
    buf: &AttnBuffers,
    out: &SharedBuf<f32>,
) {
    let (hd, nh, nkv) = (a.head_dim, a.heads, a.kv_heads);
    let width = (nh + 2 * nkv) * hd;
    assert!(nkv > 0 && nh % nkv == 0 && hd == buf.head_dim);
    assert!(qkv.len() >= a.tokens * width && out.len() >= a.tokens * nh * hd);
    assert!(buf.q.len() >= a.tokens * nh * hd && a.pos0 + a.tokens <= cache.capacity());
    assert!(a.pos0 + a.tokens <= a.rope.positions());
    let group = nh / nkv;
    // 1. prepare
    // SAFETY: qkv is not written during these ops.
    let src = unsafe { qkv.read() };
    let qp = buf.q.ptr();
    assert!(hd <= 512, "head size above 512");
    team.for_each(a.tokens * (nh + nkv), |c| {
        let (t, h) = (c / (nh + nkv), c % (nh + nkv));
        let row = &src[t * width..(t + 1) * width];
        let pos = a.pos0 + t;
        let mut v = [0.0f32; 512];
        let v = &mut v[..hd];
        if h < nh {
            v.copy_from_slice(&row[h * hd..(h + 1) * hd]);
            if let Some((qn, _)) = a.qk_norm {
                math::rms_norm_inplace(isa, v, qn, a.eps);
            }
            a.rope.apply(v, pos);
            v.iter_mut().for_each(|x| *x *= a.scale);
            // SAFETY: query (t, h) is this chunk's.
            unsafe { std::ptr::copy_nonoverlapping(v.as_ptr(), qp.add((t * nh + h) * hd), hd) };
        } else {
            let g = h - nh;
            v.copy_from_slice(&row[(nh + g) * hd..(nh + g + 1) * hd]);
            if let Some((_, kn)) = a.qk_norm {
                math::rms_norm_inplace(isa, v, kn, a.eps);
            }
            a.rope.apply(v, pos);
            let val = &row[(nh + nkv + g) * hd..(nh + nkv + g + 1) * hd];
            // SAFETY: (layer, head g, pos) is this chunk's.
            unsafe { cache.put(a.layer, g, pos, v, val) };
        }
    });
    // 2. attend: rows of a KV head are (token, query head in group), token-major.
    let rows_total = a.tokens * group;
    let blocks = rows_total.div_ceil(ROWS);
    let last = a.pos0 + a.tokens - 1;
    let first_key = |row_pos: usize| a.window.map_or(0, |w| (row_pos + 1).saturating_sub(w));
    let lo_all = first_key(a.pos0);
    let stride = ROWS * (hd + 2);
    // Key segments: at most SEGMENT keys each, and, when there are
    // fewer (KV head, row block) pairs than threads can share evenly (one
    // token over 3 KV heads on 2 threads is a 2:1 split), more segments of
    // at least MIN_SEGMENT keys, as many as the partials buffer holds.
    let span = last + 1 - lo_all;
    let pairs = nkv * blocks;
    let wanted = (4 * team.threads())
        .div_ceil(pairs)
        .min(span.div_ceil(MIN_SEGMENT));
    let room = buf.parts.len() / stride / pairs;
    let segs = span.div_ceil(SEGMENT).max(wanted.min(room)).max(1);
    let seg_len = span.div_ceil(segs).next_multiple_of(KEY_BLOCK);
    let segs = span.div_ceil(seg_len).max(1);
    // SAFETY: buf.q is not written during this op.
    let q = unsafe { buf.q.read() };
    let pp = buf.parts.ptr();
    let op = out.ptr();
    assert!(buf.parts.len() >= nkv * blocks * segs * stride || segs == 1);
    assert!(
        buf.per_thread.len() >= team.threads(),
        "attention scratch for fewer threads"
    );
    let mut mine = buf.per_thread[team.id()]
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let ThreadScratch {
        rows,
        q: qb,
        vis,
        part,
        scratch,
    } = &mut *mine;
    team.for_each(nkv * blocks * segs, |c| {
        let (g, rest) = (c / (blocks * segs), c % (blocks * segs));
        let (b, s) = (rest / segs, rest % segs);
        rows.clear();
        rows.extend(
            (b * ROWS..((b + 1) * ROWS).min(rows_total))
                .map(|r| (r / group, g * group + r % group)),
        );
        vis.clear();
        for (i, &(t, h)) in rows.iter().enumerate() {
            qb[i * hd..(i + 1) * hd].copy_from_slice(&q[(t * nh + h) * hd..(t * nh + h + 1) * hd]);
            let p = a.pos0 + t;
            vis.push(Visible {
                lo: first_key(p),
                hi: p,
            });
        }
        let k0 = lo_all + s * seg_len;
        let k1 = (k0 + seg_len).min(last + 1);
        part.reset();
        attention::attend(
            isa,
            cache,
            a.layer,
            g,
            &qb[..rows.len() * hd],
            vis,
            (k0, k1),
            part,
            scratch,
        );
        if segs == 1 {
            for (i, &(t, h)) in rows.iter().enumerate() {
                let inv = if part.l[i] > 0.0 {
                    1.0 / part.l[i]
                } else {
                    0.0
                };
                // SAFETY: output (t, h) is this chunk's.
                let o = unsafe { std::slice::from_raw_parts_mut(op.add((t * nh + h) * hd), hd) };
                o.iter_mut()
                    .zip(&part.o[i * hd..(i + 1) * hd])
                    .for_each(|(d, s)| *d = s * inv);
            }
        } else {
            // SAFETY: this chunk's slot of the partials.
            let slot = unsafe { std::slice::from_raw_parts_mut(pp.add(c * stride), stride) };
            for i in 0..rows.len() {
                slot[i * (hd + 2)] = part.m[i];
                slot[i * (hd + 2) + 1] = part.l[i];
                slot[i * (hd + 2) + 2..(i + 1) * (hd + 2)]
                    .copy_from_slice(&part.o[i * hd..(i + 1) * hd]);
            }
        }
    });
    if segs == 1 {
        return;
    }
    // 3. merge segments: per (KV head, row block).
    // SAFETY: parts is not written during this op.
    let parts = unsafe { buf.parts.read() };
    team.for_each(nkv * blocks, |c| {
        let (g, b) = (c / blocks, c % blocks);
        for r in b * ROWS..((b + 1) * ROWS).min(rows_total) {
            let i = r - b * ROWS;
            let (t, h) = (r / group, g * group + r % group);
            let rec = |s: usize| &parts[(c * segs + s) * stride + i * (hd + 2)..][..hd + 2];
            let m = (0..segs)
                .map(|s| rec(s)[0])
                .fold(f32::NEG_INFINITY, f32::max);
            // SAFETY: output (t, h) is this chunk's.
            let o = unsafe { std::slice::from_raw_parts_mut(op.add((t * nh + h) * hd), hd) };
            o.iter_mut().for_each(|v| *v = 0.0);
            let mut l = 0.0f32;
            for s in 0..segs {
                let rs = rec(s);
                if rs[0] == f32::NEG_INFINITY {
                    continue;
                }
                let w = (rs[0] - m).exp();
                l += rs[1] * w;
                o.iter_mut().zip(&rs[2..]).for_each(|(d, v)| *d += v * w);
            }
            let inv = if l > 0.0 { 1.0 / l } else { 0.0 };
            o.iter_mut().for_each(|v| *v *= inv);
        }
    });
}
