//! A GGUF file's tensors in the kernels' layout: each linear layer
//! repacked into panels (Q/K/V and gate/up fused into one matrix when
//! their types agree, else kept as parts of one product), norms as f32,
//! and the rotary tables each layer uses.

use rayon::prelude::*;
use tektra_candle::gguf::{GgmlDType, GgufFile, GgufTensorInfo};
use tektra_kernels::math::Gate;
use tektra_kernels::ops::{Rope, RopeStyle};
use tektra_kernels::{PackedMatrix, WeightType, reference};
use tektra_progress::FileProgress;
use tokio_util::sync::CancellationToken;

use super::hparams::{Arch, Hparams};
use crate::error::{Error, Result};

/// One product of the forward pass: matrices whose outputs sit side by
/// side (`[q | k | v]`), with an optional bias over all of them.
pub(crate) struct Linear {
    pub(crate) parts: Vec<PackedMatrix>,
    pub(crate) bias: Option<Vec<f32>>,
    pub(crate) rows: usize,
}

pub(crate) struct Layer {
    pub(crate) attn_norm: Vec<f32>,
    pub(crate) qkv: Linear,
    pub(crate) qk_norm: Option<(Vec<f32>, Vec<f32>)>,
    pub(crate) wo: Linear,
    pub(crate) post_attn_norm: Option<Vec<f32>>,
    pub(crate) ffn_norm: Vec<f32>,
    pub(crate) gate_up: Linear,
    pub(crate) down: Linear,
    pub(crate) post_ffw_norm: Option<Vec<f32>>,
    /// Index into [`Weights::ropes`].
    pub(crate) rope: usize,
    pub(crate) window: Option<usize>,
}

pub(crate) struct Weights {
    pub(crate) hp: Hparams,
    pub(crate) layers: Vec<Layer>,
    pub(crate) output_norm: Vec<f32>,
    pub(crate) lm_head: PackedMatrix,
    /// The embedding table when it is not the output matrix.
    pub(crate) embed: Option<PackedMatrix>,
    pub(crate) embed_scale: f32,
    pub(crate) gate: Gate,
    pub(crate) ropes: Vec<Rope>,
}

/// Maps a GGUF type to a kernel type, or says the native path lacks it.
pub(crate) fn weight_type(t: GgmlDType) -> Option<WeightType> {
    Some(match t {
        GgmlDType::F32 => WeightType::F32,
        GgmlDType::F16 => WeightType::F16,
        GgmlDType::BF16 => WeightType::BF16,
        GgmlDType::Q4_0 => WeightType::Q4_0,
        GgmlDType::Q4_1 => WeightType::Q4_1,
        GgmlDType::Q5_0 => WeightType::Q5_0,
        GgmlDType::Q5_1 => WeightType::Q5_1,
        GgmlDType::Q8_0 => WeightType::Q8_0,
        GgmlDType::Q4K => WeightType::Q4_K,
        GgmlDType::Q5K => WeightType::Q5_K,
        GgmlDType::Q6K => WeightType::Q6_K,
        _ => return None,
    })
}

struct Loader<'a> {
    gguf: &'a GgufFile,
    progress: &'a FileProgress,
    cancel: &'a CancellationToken,
    /// Tensors read so far, so the ones the architecture does not use can
    /// be counted as done at the end (progress reaches the file's total).
    used: std::sync::Mutex<std::collections::HashSet<String>>,
}

impl Loader<'_> {
    fn info(&self, name: &str) -> Result<&GgufTensorInfo> {
        self.gguf
            .tensor(name)
            .ok_or_else(|| Error::BadHyperparameter {
                path: self.gguf.path().to_path_buf(),
                key: name.to_string(),
                reason: "the tensor is missing".into(),
            })
    }

    fn wtype(&self, info: &GgufTensorInfo) -> Result<WeightType> {
        weight_type(info.dtype).ok_or_else(|| Error::UnsupportedTensor {
            path: self.gguf.path().to_path_buf(),
            tensor: info.name.clone(),
            dtype: format!("{:?}", info.dtype),
        })
    }

    fn done(&self, info: &GgufTensorInfo) -> Result<()> {
        self.gguf.release_tensor(info);
        self.progress.advance_tensor(info.len);
        self.used
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(info.name.clone());
        if self.cancel.is_cancelled() {
            return Err(Error::Cancelled);
        }
        Ok(())
    }

    /// A vector (norm weight, bias) as f32.
    fn vector(&self, name: &str) -> Result<Vec<f32>> {
        let info = self.info(name)?;
        let wt = self.wtype(info)?;
        let n: usize = info.shape.iter().product();
        if wt.is_quantized() {
            return Err(Error::UnsupportedTensor {
                path: self.gguf.path().to_path_buf(),
                tensor: name.to_string(),
                dtype: format!("{:?} (a quantized vector)", info.dtype),
            });
        }
        let mut out = vec![0.0; n];
        reference::dequantize_row(wt, self.gguf.tensor_data(info)?, &mut out);
        self.done(info)?;
        Ok(out)
    }

    fn opt_vector(&self, name: &str) -> Result<Option<Vec<f32>>> {
        if self.gguf.tensor(name).is_some() {
            self.vector(name).map(Some)
        } else {
            Ok(None)
        }
    }

    /// Matrices whose rows are stacked into one product; fused into one
    /// packed matrix when their types agree.
    fn linear(&self, names: &[&str], biases: Option<&[&str]>) -> Result<Linear> {
        let infos: Vec<&GgufTensorInfo> =
            names.iter().map(|n| self.info(n)).collect::<Result<_>>()?;
        let types: Vec<WeightType> = infos.iter().map(|i| self.wtype(i)).collect::<Result<_>>()?;
        let cols = infos[0].shape.get(1).copied().unwrap_or(0);
        let pack = |wt: WeightType, rows: usize, bytes: &[u8], name: &str| {
            PackedMatrix::pack(wt, rows, cols, bytes).map_err(|source| Error::Kernel {
                tensor: name.to_string(),
                source,
            })
        };
        let rows_of = |i: &GgufTensorInfo| i.shape.first().copied().unwrap_or(0);
        let total: usize = infos.iter().map(|i| rows_of(i)).sum();
        let parts = if types.iter().all(|t| *t == types[0]) && infos.len() > 1 {
            let mut joined = Vec::with_capacity(infos.iter().map(|i| i.len as usize).sum());
            for i in &infos {
                joined.extend_from_slice(self.gguf.tensor_data(i)?);
            }
            vec![pack(types[0], total, &joined, names[0])?]
        } else {
            infos
                .iter()
                .zip(&types)
                .map(|(i, t)| pack(*t, rows_of(i), self.gguf.tensor_data(i)?, &i.name))
                .collect::<Result<_>>()?
        };
        for i in &infos {
            self.done(i)?;
        }
        let bias = match biases {
            None => None,
            Some(bs) => {
                let mut all = Vec::with_capacity(total);
                for b in bs {
                    all.extend(self.vector(b)?);
                }
                Some(all)
            }
        };
        Ok(Linear {
            parts,
            bias,
            rows: total,
        })
    }

    fn layer(&self, hp: &Hparams, i: usize) -> Result<Layer> {
        let n = |s: &str| format!("blk.{i}.{s}");
        let (q, k, v) = (n("attn_q.weight"), n("attn_k.weight"), n("attn_v.weight"));
        let biases = [n("attn_q.bias"), n("attn_k.bias"), n("attn_v.bias")];
        let b: Vec<&str> = biases.iter().map(String::as_str).collect();
        let qkv = self.linear(&[&q, &k, &v], (hp.arch == Arch::Qwen2).then_some(&b[..]))?;
        let gate_up = self.linear(&[&n("ffn_gate.weight"), &n("ffn_up.weight")], None)?;
        let qk_norm = match (
            self.opt_vector(&n("attn_q_norm.weight"))?,
            self.opt_vector(&n("attn_k_norm.weight"))?,
        ) {
            (Some(a), Some(b)) => Some((a, b)),
            _ => None,
        };
        let global = hp.arch != Arch::Gemma3 || i % 6 == 5;
        Ok(Layer {
            attn_norm: self.vector(&n("attn_norm.weight"))?,
            qkv,
            qk_norm,
            wo: self.linear(&[&n("attn_output.weight")], None)?,
            post_attn_norm: self.opt_vector(&n("post_attention_norm.weight"))?,
            ffn_norm: self.vector(&n("ffn_norm.weight"))?,
            gate_up,
            down: self.linear(&[&n("ffn_down.weight")], None)?,
            post_ffw_norm: self.opt_vector(&n("post_ffw_norm.weight"))?,
            rope: usize::from(!global),
            window: if global { None } else { hp.sliding_window },
        })
    }
}

impl Weights {
    /// Reads and repacks every tensor the architecture uses, layers in
    /// parallel, counting each tensor on `progress`.
    pub(crate) fn load(
        gguf: &GgufFile,
        hp: Hparams,
        positions: usize,
        progress: &FileProgress,
        cancel: &CancellationToken,
    ) -> Result<Weights> {
        let l = Loader {
            gguf,
            progress,
            cancel,
            used: std::sync::Mutex::default(),
        };
        let layers: Vec<Layer> = (0..hp.layers)
            .into_par_iter()
            .map(|i| l.layer(&hp, i))
            .collect::<Result<_>>()?;
        let lm_name = if gguf.tensor("output.weight").is_some() {
            "output.weight"
        } else {
            "token_embd.weight"
        };
        let lm_head = l.linear(&[lm_name], None)?.parts.remove(0);
        let embed = if lm_name == "output.weight" {
            Some(l.linear(&["token_embd.weight"], None)?.parts.remove(0))
        } else {
            None
        };
        let output_norm = l.vector("output_norm.weight")?;
        let factors = l.opt_vector("rope_freqs.weight")?;
        let used = l
            .used
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for t in &gguf.header().tensors {
            if !used.contains(&t.name) {
                progress.advance_tensor(t.len);
            }
        }
        drop(used);
        let style = if hp.arch == Arch::Llama {
            RopeStyle::Interleaved
        } else {
            RopeStyle::Neox
        };
        let scale = hp.rope_scale;
        let factors: Option<Vec<f32>> = match factors {
            Some(f) => Some(f.iter().map(|v| v * scale).collect()),
            None if scale != 1.0 => Some(vec![scale; hp.rope_dims / 2]),
            None => None,
        };
        let mut ropes = vec![Rope::new(
            hp.rope_dims,
            style,
            hp.rope_base,
            positions,
            factors.as_deref(),
        )];
        if hp.arch == Arch::Gemma3 {
            // Gemma 3's local layers turn with a base of 10,000 (not in the file).
            ropes.push(Rope::new(hp.rope_dims, style, 10_000.0, positions, None));
        }
        Ok(Weights {
            embed_scale: if hp.arch == Arch::Gemma3 {
                (hp.embd as f32).sqrt()
            } else {
                1.0
            },
            gate: if hp.arch == Arch::Gemma3 {
                Gate::GeluTanh
            } else {
                Gate::Silu
            },
            hp,
            layers,
            output_norm,
            lm_head,
            embed,
            ropes,
        })
    }

    /// Bytes of the repacked weights.
    pub(crate) fn bytes(&self) -> usize {
        let lin = |l: &Linear| l.parts.iter().map(PackedMatrix::bytes).sum::<usize>();
        self.layers
            .iter()
            .map(|l| lin(&l.qkv) + lin(&l.wo) + lin(&l.gate_up) + lin(&l.down))
            .sum::<usize>()
            + self.lm_head.bytes()
            + self.embed.as_ref().map_or(0, PackedMatrix::bytes)
    }
}
