//! Hyperparameters of a GGUF model, read from its metadata and checked
//! before anything is built from them: every count non-zero and bounded,
//! head counts that divide, tensor shapes that match. Both backends run
//! this check, so a hostile file gets an error naming the key instead of a
//! panic or an abort deep inside a model.

use std::collections::HashMap;
use std::path::Path;

use tektra_candle::gguf::{GgufHeader, GgufTensorInfo, Value};

use crate::error::{Error, Result};

/// The architectures with their own forward pass here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Arch {
    /// llama-architecture files: SmolLM2, Llama, and Mistral 7B-style
    /// models, which llama.cpp's converter writes as `llama`.
    Llama,
    /// Qwen2 / Qwen2.5: biases on Q, K and V.
    Qwen2,
    /// Gemma 3: scaled embeddings, Q/K norms, post-norms, GELU, sliding windows.
    Gemma3,
}

impl Arch {
    pub(crate) fn from_name(name: &str) -> Option<Arch> {
        Some(match name {
            "llama" => Arch::Llama,
            "qwen2" => Arch::Qwen2,
            "gemma3" => Arch::Gemma3,
            _ => return None,
        })
    }
}

/// Limits no real model comes near; beyond them a file is refused rather
/// than trusted to size allocations.
const MAX_LAYERS: u64 = 512;
const MAX_WIDTH: u64 = 1 << 17;
const MAX_HEADS: u64 = 1024;
const MAX_HEAD_DIM: u64 = 512;
const MAX_VOCAB: u64 = 1 << 22;

/// What the forward pass needs to know.
#[derive(Debug, Clone)]
pub(crate) struct Hparams {
    pub(crate) arch: Arch,
    pub(crate) layers: usize,
    pub(crate) embd: usize,
    pub(crate) ff: usize,
    pub(crate) heads: usize,
    pub(crate) kv_heads: usize,
    pub(crate) head_dim: usize,
    pub(crate) vocab: usize,
    pub(crate) context: usize,
    pub(crate) eps: f32,
    pub(crate) rope_base: f32,
    pub(crate) rope_dims: usize,
    /// Linear RoPE scaling factor (positions divided by it), 1 when none.
    pub(crate) rope_scale: f32,
    pub(crate) sliding_window: Option<usize>,
}

fn value_u64(v: &Value) -> Option<u64> {
    match v {
        Value::U8(x) => Some(u64::from(*x)),
        Value::U16(x) => Some(u64::from(*x)),
        Value::U32(x) => Some(u64::from(*x)),
        Value::U64(x) => Some(*x),
        Value::I8(x) => u64::try_from(*x).ok(),
        Value::I16(x) => u64::try_from(*x).ok(),
        Value::I32(x) => u64::try_from(*x).ok(),
        Value::I64(x) => u64::try_from(*x).ok(),
        _ => None,
    }
}

fn value_f32(v: &Value) -> Option<f32> {
    match v {
        Value::F32(x) => Some(*x),
        Value::F64(x) => Some(*x as f32),
        other => value_u64(other).map(|x| x as f32),
    }
}

struct Meta<'a> {
    md: &'a HashMap<String, Value>,
    arch: &'a str,
    path: &'a Path,
}

impl Meta<'_> {
    fn bad(&self, key: &str, reason: impl Into<String>) -> Error {
        Error::BadHyperparameter {
            path: self.path.to_path_buf(),
            key: key.to_string(),
            reason: reason.into(),
        }
    }

    fn key(&self, name: &str) -> String {
        format!("{}.{name}", self.arch)
    }

    /// An integer setting in `1..=max`; `None` when absent.
    fn count_opt(&self, name: &str, max: u64) -> Result<Option<usize>> {
        let key = self.key(name);
        let Some(v) = self.md.get(&key) else {
            return Ok(None);
        };
        let n = match v {
            // Some writers store one value per layer; they must agree here.
            Value::Array(items) => {
                let vals: Vec<Option<u64>> = items.iter().map(value_u64).collect();
                match vals.first() {
                    Some(Some(first)) if vals.iter().all(|x| *x == Some(*first)) => *first,
                    _ => return Err(self.bad(&key, "per-layer values that differ (not supported)")),
                }
            }
            other => {
                value_u64(other).ok_or_else(|| self.bad(&key, "not a non-negative integer"))?
            }
        };
        if n == 0 || n > max {
            return Err(self.bad(&key, format!("{n} is outside 1..={max}")));
        }
        usize::try_from(n)
            .map(Some)
            .map_err(|_| self.bad(&key, "too large"))
    }

    fn count(&self, name: &str, max: u64) -> Result<usize> {
        self.count_opt(name, max)?
            .ok_or_else(|| self.bad(&self.key(name), "missing"))
    }

    fn float_opt(&self, name: &str, lo: f32, hi: f32) -> Result<Option<f32>> {
        let key = self.key(name);
        match self.md.get(&key) {
            None => Ok(None),
            Some(v) => {
                let x = value_f32(v).ok_or_else(|| self.bad(&key, "not a number"))?;
                if !(x.is_finite() && x >= lo && x <= hi) {
                    return Err(self.bad(&key, format!("{x} is outside {lo}..={hi}")));
                }
                Ok(Some(x))
            }
        }
    }
}

impl Hparams {
    /// Reads and checks the hyperparameters of a file whose architecture
    /// is `arch_name` (one [`Arch::from_name`] knows).
    pub(crate) fn from_header(
        header: &GgufHeader,
        arch_name: &str,
        path: &Path,
    ) -> Result<Hparams> {
        let arch = Arch::from_name(arch_name).ok_or_else(|| Error::Unsupported {
            found: arch_name.to_string(),
            backend: "native",
            supported: crate::native::SUPPORTED,
        })?;
        let m = Meta {
            md: &header.metadata,
            arch: arch_name,
            path,
        };
        let layers = m.count("block_count", MAX_LAYERS)?;
        let embd = m.count("embedding_length", MAX_WIDTH)?;
        let ff = m.count("feed_forward_length", MAX_WIDTH * 4)?;
        let heads = m.count("attention.head_count", MAX_HEADS)?;
        let kv_heads = m
            .count_opt("attention.head_count_kv", MAX_HEADS)?
            .unwrap_or(heads);
        if !heads.is_multiple_of(kv_heads) {
            return Err(m.bad(
                &m.key("attention.head_count_kv"),
                format!("{kv_heads} does not divide the head count {heads}"),
            ));
        }
        let head_dim = match m.count_opt("attention.key_length", MAX_HEAD_DIM)? {
            Some(d) => d,
            None => {
                if !embd.is_multiple_of(heads) {
                    return Err(m.bad(
                        &m.key("attention.head_count"),
                        format!("{heads} heads do not divide the embedding length {embd}"),
                    ));
                }
                embd / heads
            }
        };
        if head_dim as u64 > MAX_HEAD_DIM || !head_dim.is_multiple_of(2) {
            return Err(m.bad(
                &m.key("attention.key_length"),
                format!("head size {head_dim} is not an even number up to {MAX_HEAD_DIM}"),
            ));
        }
        if let Some(v) = m.count_opt("attention.value_length", MAX_HEAD_DIM)?
            && v != head_dim
        {
            return Err(m.bad(
                &m.key("attention.value_length"),
                format!("{v} differs from the key length {head_dim} (not supported)"),
            ));
        }
        let context = m.count_opt("context_length", 1 << 24)?.unwrap_or(4096);
        let eps = m
            .float_opt("attention.layer_norm_rms_epsilon", 0.0, 1.0)?
            .unwrap_or(1e-5);
        let rope_base = m
            .float_opt("rope.freq_base", 1.0, 1e12)?
            .unwrap_or(10_000.0);
        let rope_dims = m
            .count_opt("rope.dimension_count", MAX_HEAD_DIM)?
            .unwrap_or(head_dim);
        if rope_dims > head_dim || !rope_dims.is_multiple_of(2) {
            return Err(m.bad(
                &m.key("rope.dimension_count"),
                format!("{rope_dims} is odd or exceeds the head size {head_dim}"),
            ));
        }
        let rope_scale = match m.md.get(&m.key("rope.scaling.type")) {
            None => 1.0,
            Some(Value::String(s)) if s == "none" => 1.0,
            Some(Value::String(s)) if s == "linear" => m
                .float_opt("rope.scaling.factor", 1e-3, 1e3)?
                .unwrap_or(1.0),
            Some(other) => {
                return Err(m.bad(
                    &m.key("rope.scaling.type"),
                    format!("{other:?} scaling is not supported"),
                ));
            }
        };
        let sliding_window = m.count_opt("attention.sliding_window", 1 << 24)?;
        let embd_info = header
            .tensors
            .iter()
            .find(|t| t.name == "token_embd.weight")
            .ok_or_else(|| m.bad("token_embd.weight", "the tensor is missing"))?;
        let vocab = match embd_info.shape.as_slice() {
            [v, e] if *e == embd && *v as u64 <= MAX_VOCAB && *v > 0 => *v,
            other => {
                return Err(m.bad(
                    "token_embd.weight",
                    format!("shape {other:?} is not [vocab <= {MAX_VOCAB}, {embd}]"),
                ));
            }
        };
        let hp = Hparams {
            arch,
            layers,
            embd,
            ff,
            heads,
            kv_heads,
            head_dim,
            vocab,
            context,
            eps,
            rope_base,
            rope_dims,
            rope_scale,
            sliding_window,
        };
        hp.check_tensors(header, path)?;
        Ok(hp)
    }

    /// Every tensor the architecture reads has the shape these settings
    /// imply (a file whose shapes disagree would index out of bounds).
    fn check_tensors(&self, header: &GgufHeader, path: &Path) -> Result<()> {
        let by_name: HashMap<&str, &GgufTensorInfo> = header
            .tensors
            .iter()
            .map(|t| (t.name.as_str(), t))
            .collect();
        let bad = |name: &str, reason: String| Error::BadHyperparameter {
            path: path.to_path_buf(),
            key: name.to_string(),
            reason,
        };
        let want = |name: &str, shape: &[usize], required: bool| -> Result<()> {
            match by_name.get(name) {
                Some(t) if t.shape == shape => Ok(()),
                Some(t) => Err(bad(
                    name,
                    format!(
                        "shape {:?}, expected {:?} from the metadata",
                        t.shape, shape
                    ),
                )),
                None if required => Err(bad(name, "the tensor is missing".into())),
                None => Ok(()),
            }
        };
        let (e, hd) = (self.embd, self.head_dim);
        let (q, kv) = (self.heads * hd, self.kv_heads * hd);
        want("output_norm.weight", &[e], true)?;
        want("output.weight", &[self.vocab, e], false)?;
        for i in 0..self.layers {
            let n = |s: &str| format!("blk.{i}.{s}");
            want(&n("attn_norm.weight"), &[e], true)?;
            want(&n("attn_q.weight"), &[q, e], true)?;
            want(&n("attn_k.weight"), &[kv, e], true)?;
            want(&n("attn_v.weight"), &[kv, e], true)?;
            want(&n("ffn_gate.weight"), &[self.ff, e], true)?;
            want(&n("ffn_up.weight"), &[self.ff, e], true)?;
            want(&n("attn_output.weight"), &[e, q], true)?;
            want(&n("ffn_down.weight"), &[e, self.ff], true)?;
            want(&n("ffn_norm.weight"), &[e], true)?;
            if self.arch == Arch::Qwen2 {
                want(&n("attn_q.bias"), &[q], true)?;
                want(&n("attn_k.bias"), &[kv], true)?;
                want(&n("attn_v.bias"), &[kv], true)?;
            }
            if self.arch == Arch::Gemma3 {
                want(&n("attn_q_norm.weight"), &[hd], true)?;
                want(&n("attn_k_norm.weight"), &[hd], true)?;
            }
            if self.arch == Arch::Gemma3 {
                want(&n("post_attention_norm.weight"), &[e], true)?;
                want(&n("post_ffw_norm.weight"), &[e], true)?;
            }
        }
        Ok(())
    }
}
