//! The architectures the candle backend runs, behind one `forward`.

use std::collections::HashMap;
use std::path::Path;

use candle_core::quantized::gguf_file::{Content, Value};
use candle_core::{DType, Device, Tensor};
use candle_transformers::models::{llama, quantized_llama, quantized_qwen2};

use crate::error::{Error, Result};

/// What the candle backend runs, for error messages.
pub const SUPPORTED: &str =
    "GGUF: llama (SmolLM2 and other llama-architecture files), qwen2; safetensors: llama";

/// A loaded model.
pub(crate) enum Model {
    Llama(quantized_llama::ModelWeights),
    Qwen2(quantized_qwen2::ModelWeights),
    /// Unquantized llama from safetensors; its KV cache lives beside it.
    LlamaF(Box<llama::Llama>, llama::Cache, LlamaParts),
}

/// What it takes to make a fresh KV cache for the safetensors llama.
pub(crate) struct LlamaParts {
    pub(crate) config: llama::Config,
    pub(crate) dtype: DType,
    pub(crate) device: Device,
}

impl Model {
    /// Logits for the token after `tokens`, which continue the sequence at
    /// `pos` (0 starts a new sequence and drops the KV cache).
    pub(crate) fn forward(&mut self, tokens: &Tensor, pos: usize) -> Result<Tensor> {
        let logits = match self {
            Model::Llama(m) => m.forward(tokens, pos)?,
            Model::Qwen2(m) => m.forward(tokens, pos)?,
            Model::LlamaF(m, cache, parts) => {
                if pos == 0 {
                    *cache = llama::Cache::new(true, parts.dtype, &parts.config, &parts.device)?;
                }
                m.forward(tokens, pos, cache)?
            }
        };
        Ok(logits)
    }
}

/// Whether [`load_gguf`] runs this GGUF architecture.
pub(crate) fn gguf_supported(arch: &str) -> bool {
    // qwen3, phi3 and files declaring `mistral` are left out: no real file
    // of them can be fetched here to check against llama.cpp. gemma3 too:
    // candle-transformers 0.10.2's quantized Gemma 3 gates its MLP with
    // SiLU instead of tanh-GELU and computes another model (README).
    matches!(arch, "llama" | "qwen2")
}

/// The architecture a GGUF file declares (`general.architecture`).
pub(crate) fn gguf_architecture(metadata: &HashMap<String, Value>) -> String {
    match metadata.get("general.architecture") {
        Some(Value::String(s)) => s.clone(),
        _ => String::from("(none)"),
    }
}

/// Shape facts for the memory estimate and the context limit.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Dims {
    pub(crate) layers: u64,
    pub(crate) kv_heads: u64,
    pub(crate) head_dim: u64,
    pub(crate) context: u64,
}

/// Reads layer count, KV heads, head size and context from GGUF metadata.
pub(crate) fn gguf_dims(metadata: &HashMap<String, Value>, path: &Path) -> Result<Dims> {
    let arch = gguf_architecture(metadata);
    let get = |key: &str| -> Result<u64> {
        let full = format!("{arch}.{key}");
        match metadata.get(&full) {
            Some(v) => number(v).ok_or_else(|| missing(path, &full)),
            None => Err(missing(path, &full)),
        }
    };
    let heads = get("attention.head_count")?;
    let kv_heads = get("attention.head_count_kv").unwrap_or(heads);
    let embedding = get("embedding_length")?;
    let head_dim = get("attention.key_length").unwrap_or(embedding / heads.max(1));
    Ok(Dims {
        layers: get("block_count")?,
        kv_heads,
        head_dim,
        context: get("context_length").unwrap_or(4096),
    })
}

fn missing(path: &Path, what: &str) -> Error {
    Error::MissingConfig {
        path: path.to_path_buf(),
        what: what.to_string(),
    }
}

fn number(v: &Value) -> Option<u64> {
    match v {
        Value::U8(x) => Some(u64::from(*x)),
        Value::U16(x) => Some(u64::from(*x)),
        Value::U32(x) => Some(u64::from(*x)),
        Value::U64(x) => Some(*x),
        Value::I8(x) => u64::try_from(*x).ok(),
        Value::I16(x) => u64::try_from(*x).ok(),
        Value::I32(x) => u64::try_from(*x).ok(),
        Value::I64(x) => u64::try_from(*x).ok(),
        // Some writers store one value per layer; the maximum bounds memory.
        Value::Array(a) => a.iter().filter_map(number).max(),
        _ => None,
    }
}

/// Builds the quantized model for `arch` from a GGUF reader.
pub(crate) fn load_gguf<R: std::io::Read + std::io::Seek>(
    arch: &str,
    content: Content,
    reader: &mut R,
    device: &Device,
) -> Result<Model> {
    Ok(match arch {
        "llama" => Model::Llama(quantized_llama::ModelWeights::from_gguf(
            content, reader, device,
        )?),
        "qwen2" => Model::Qwen2(quantized_qwen2::ModelWeights::from_gguf(
            content, reader, device,
        )?),
        other => {
            return Err(Error::Unsupported {
                found: other.to_string(),
                backend: "candle",
                supported: SUPPORTED,
            });
        }
    })
}

/// `config.json` facts the safetensors path needs.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct HfConfig {
    #[serde(default)]
    pub(crate) model_type: Option<String>,
    #[serde(default)]
    pub(crate) architectures: Vec<String>,
    pub(crate) num_hidden_layers: Option<u64>,
    pub(crate) num_attention_heads: Option<u64>,
    pub(crate) num_key_value_heads: Option<u64>,
    pub(crate) hidden_size: Option<u64>,
    pub(crate) max_position_embeddings: Option<u64>,
    /// The stored dtype; newer transformers write `dtype`, older
    /// `torch_dtype` (some configs carry both).
    #[serde(default)]
    torch_dtype: Option<String>,
    #[serde(default)]
    dtype: Option<String>,
}

impl HfConfig {
    /// Whether the weights are stored as f32 (else 16-bit is assumed).
    pub(crate) fn stored_f32(&self) -> bool {
        self.dtype
            .as_ref()
            .or(self.torch_dtype.as_ref())
            .is_some_and(|d| d == "float32")
    }

    /// `model_type`, else the first `architectures` entry.
    pub(crate) fn architecture(&self) -> String {
        self.model_type
            .clone()
            .or_else(|| self.architectures.first().cloned())
            .unwrap_or_else(|| "(none)".into())
    }

    pub(crate) fn dims(&self, path: &Path) -> Result<Dims> {
        let need = |v: Option<u64>, what: &str| v.ok_or_else(|| missing(path, what));
        let heads = need(self.num_attention_heads, "num_attention_heads")?;
        Ok(Dims {
            layers: need(self.num_hidden_layers, "num_hidden_layers")?,
            kv_heads: self.num_key_value_heads.unwrap_or(heads),
            head_dim: need(self.hidden_size, "hidden_size")? / heads.max(1),
            context: self.max_position_embeddings.unwrap_or(4096),
        })
    }
}
