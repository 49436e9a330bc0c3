//! The forward pass: one [`Pool::run`] per step of up to `max_batch`
//! tokens, every op of every layer inside it, buffers allocated once.

use tektra_kernels::attention::KvCache;
use tektra_kernels::ops::{self, Attn, AttnBuffers, MatJob};
use tektra_kernels::{Isa, Pool, QuantActs, SharedBuf};

use super::weights::{Linear, Weights};
use crate::error::{Error, Result};

/// Logit rows a step can produce at most (all positions of a verification
/// or an evaluation step; one for plain generation).
pub(crate) const LOGIT_ROWS: usize = 16;

struct Buffers {
    x: SharedBuf<f32>,
    xn: SharedBuf<f32>,
    qkv: SharedBuf<f32>,
    attn: SharedBuf<f32>,
    tmp: SharedBuf<f32>,
    gu: SharedBuf<f32>,
    h: SharedBuf<f32>,
    logits: SharedBuf<f32>,
    acts_e: QuantActs,
    acts_a: QuantActs,
    acts_f: QuantActs,
    attn_bufs: AttnBuffers,
}

/// A loaded model with its KV cache, ready to run steps.
pub(crate) struct Model {
    pub(crate) w: Weights,
    pub(crate) isa: Isa,
    pool: Pool,
    cache: KvCache,
    bufs: Buffers,
    max_batch: usize,
    /// Positions filled in the cache.
    pub(crate) len: usize,
}

/// Which positions of a step need logits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Logits {
    /// Only the last token's.
    Last,
    /// Every token's (at most [`LOGIT_ROWS`] per step).
    All,
}

impl Model {
    pub(crate) fn new(
        w: Weights,
        isa: Isa,
        threads: usize,
        context: usize,
        max_batch: usize,
    ) -> Result<Model> {
        let hp = &w.hp;
        let (e, hd) = (hp.embd, hp.head_dim);
        let qd = hp.heads * hd;
        let b = max_batch.max(LOGIT_ROWS);
        let bufs = Buffers {
            x: SharedBuf::new(b * e),
            xn: SharedBuf::new(b * e),
            qkv: SharedBuf::new(b * (hp.heads + 2 * hp.kv_heads) * hd),
            attn: SharedBuf::new(b * qd),
            tmp: SharedBuf::new(b * e),
            gu: SharedBuf::new(b * 2 * hp.ff),
            h: SharedBuf::new(b * hp.ff),
            logits: SharedBuf::new(LOGIT_ROWS * hp.vocab),
            acts_e: QuantActs::new(e, b),
            acts_a: QuantActs::new(qd, b),
            acts_f: QuantActs::new(hp.ff, b),
            attn_bufs: AttnBuffers::new(hp.heads, hp.kv_heads, hd, b, context, threads),
        };
        let context = context.min(w.ropes.iter().map(|r| r.positions()).min().unwrap_or(0));
        let cache = KvCache::new(hp.layers, hp.kv_heads, hd, context);
        let pool = Pool::new(threads).map_err(|source| Error::Kernel {
            tensor: String::new(),
            source,
        })?;
        Ok(Model {
            w,
            isa,
            pool,
            cache,
            bufs,
            max_batch: b,
            len: 0,
        })
    }

    /// Positions the cache holds at most.
    pub(crate) fn context(&self) -> usize {
        self.cache.capacity().min(
            self.w
                .ropes
                .iter()
                .map(|r| r.positions())
                .min()
                .unwrap_or(0),
        )
    }

    /// Bytes of the KV cache (reserved; pages are touched as it fills).
    pub(crate) fn cache_bytes(&self) -> usize {
        self.cache.bytes()
    }

    /// Vocabulary size (logits per row).
    pub(crate) fn vocab(&self) -> usize {
        self.w.hp.vocab
    }

    /// Drops cached positions from `len` on (a new prompt, or draft tokens
    /// that were not accepted).
    pub(crate) fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    /// Runs `tokens` from position `self.len`, appending to the cache.
    /// Returns the logits of the last token (`Logits::Last`) or of every
    /// token (`Logits::All`, row after row) of the final step.
    pub(crate) fn forward(&mut self, tokens: &[u32], want: Logits) -> Result<&[f32]> {
        if tokens.is_empty() {
            return Err(Error::Sampling("no tokens to run".into()));
        }
        if self.len + tokens.len() > self.context() {
            return Err(Error::ContextOverflow {
                tokens: self.len + tokens.len(),
                max_tokens: 0,
                context: self.context(),
            });
        }
        let step = match want {
            Logits::Last => self.max_batch,
            Logits::All => LOGIT_ROWS,
        };
        let mut rows = 0;
        for chunk in tokens.chunks(step) {
            rows = self.step(chunk, want)?;
        }
        let vocab = self.vocab();
        Ok(&self.bufs.logits.get_mut()[..rows * vocab])
    }

    /// One step; returns how many logit rows it wrote.
    fn step(&mut self, ids: &[u32], want: Logits) -> Result<usize> {
        let Model {
            w,
            isa,
            pool,
            cache,
            bufs,
            len,
            ..
        } = self;
        let (isa, pos0, t) = (*isa, *len, ids.len());
        let hp = &w.hp;
        let (e, hd, ff) = (hp.embd, hp.head_dim, hp.ff);
        let (first, rows) = match want {
            Logits::Last => (t - 1, 1),
            Logits::All => (0, t),
        };
        let b = &*bufs;
        let scale = 1.0 / (hd as f32).sqrt();
        pool.run(|team| {
            // One product over a layer's parts (at most three: Q, K and V of
            // different types), listed in a fixed array so a step
            // allocates nothing.
            let run = |lin: &Linear,
                       out: &SharedBuf<f32>,
                       ld: usize,
                       acc: bool,
                       acts: &QuantActs,
                       x: &SharedBuf<f32>| {
                let n = lin.parts.len().clamp(1, 3);
                let list: [MatJob<'_>; 3] = std::array::from_fn(|i| {
                    let i = i.min(n - 1);
                    let m = &lin.parts[i];
                    let offset: usize = lin.parts[..i].iter().map(|p| p.rows()).sum();
                    MatJob {
                        w: m,
                        out,
                        ld,
                        offset,
                        accumulate: acc,
                        bias: lin.bias.as_deref().map(|b| &b[offset..offset + m.rows()]),
                    }
                });
                ops::matmul(team, isa, &list[..n], acts, x, t);
            };
            let embed = w.embed.as_ref().unwrap_or(&w.lm_head);
            ops::embed(team, embed, ids, &b.x, w.embed_scale);
            for (li, layer) in w.layers.iter().enumerate() {
                ops::rms_norm_quant(
                    team,
                    isa,
                    &b.x,
                    e,
                    0,
                    t,
                    &layer.attn_norm,
                    hp.eps,
                    &b.xn,
                    &b.acts_e,
                );
                run(&layer.qkv, &b.qkv, layer.qkv.rows, false, &b.acts_e, &b.xn);
                let attn = Attn {
                    layer: li,
                    heads: hp.heads,
                    kv_heads: hp.kv_heads,
                    head_dim: hd,
                    rope: &w.ropes[layer.rope],
                    qk_norm: layer
                        .qk_norm
                        .as_ref()
                        .map(|(q, k)| (q.as_slice(), k.as_slice())),
                    eps: hp.eps,
                    scale,
                    window: layer.window,
                    pos0,
                    tokens: t,
                };
                ops::attention(team, isa, &attn, &b.qkv, cache, &b.attn_bufs, &b.attn);
                ops::quantize(team, isa, &b.attn, hp.heads * hd, t, &b.acts_a);
                match &layer.post_attn_norm {
                    Some(norm) => {
                        run(&layer.wo, &b.tmp, e, false, &b.acts_a, &b.attn);
                        ops::add_normed(team, isa, &b.x, &b.tmp, e, t, norm, hp.eps);
                    }
                    None => run(&layer.wo, &b.x, e, true, &b.acts_a, &b.attn),
                }
                ops::rms_norm_quant(
                    team,
                    isa,
                    &b.x,
                    e,
                    0,
                    t,
                    &layer.ffn_norm,
                    hp.eps,
                    &b.xn,
                    &b.acts_e,
                );
                run(&layer.gate_up, &b.gu, 2 * ff, false, &b.acts_e, &b.xn);
                ops::gated(team, isa, w.gate, &b.gu, ff, t, &b.h, &b.acts_f);
                match &layer.post_ffw_norm {
                    Some(norm) => {
                        run(&layer.down, &b.tmp, e, false, &b.acts_f, &b.h);
                        ops::add_normed(team, isa, &b.x, &b.tmp, e, t, norm, hp.eps);
                    }
                    None => run(&layer.down, &b.x, e, true, &b.acts_f, &b.h),
                }
            }
            ops::rms_norm_quant(
                team,
                isa,
                &b.x,
                e,
                first,
                rows,
                &w.output_norm,
                hp.eps,
                &b.xn,
                &b.acts_e,
            );
            let head = MatJob {
                w: &w.lm_head,
                out: &b.logits,
                ld: hp.vocab,
                offset: 0,
                accumulate: false,
                bias: None,
            };
            ops::matmul(team, isa, &[head], &b.acts_e, &b.xn, rows);
        })
        .map_err(|source| Error::Kernel {
            tensor: String::new(),
            source,
        })?;
        *len += t;
        Ok(rows)
    }
}
