//! Writes the benchmark's sharded bf16 model: llama-shaped (32 layers,
//! hidden 1792, 291 tensors, about 2.1 GB) in four shards with a
//! `model.safetensors.index.json`, under `$TEKTRA_DATA/bench/`.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

const HIDDEN: usize = 1792;
const INTERMEDIATE: usize = 4096;
const LAYERS: usize = 32;
const HEADS: usize = 14;
const KV_HEADS: usize = 2;
const VOCAB: usize = 32000;
const SHARDS: usize = 4;

pub(crate) fn model_dir() -> PathBuf {
    tektra_bench_support::data_dir()
        .join("bench")
        .join("llama-bf16-2g")
}

/// Tensor names and shapes, in the order transformers writes them.
fn tensors() -> Vec<(String, Vec<usize>)> {
    let kv = HIDDEN / HEADS * KV_HEADS;
    let mut out = vec![("model.embed_tokens.weight".to_owned(), vec![VOCAB, HIDDEN])];
    for l in 0..LAYERS {
        for (name, shape) in [
            ("input_layernorm.weight", vec![HIDDEN]),
            ("self_attn.q_proj.weight", vec![HIDDEN, HIDDEN]),
            ("self_attn.k_proj.weight", vec![kv, HIDDEN]),
            ("self_attn.v_proj.weight", vec![kv, HIDDEN]),
            ("self_attn.o_proj.weight", vec![HIDDEN, HIDDEN]),
            ("post_attention_layernorm.weight", vec![HIDDEN]),
            ("mlp.gate_proj.weight", vec![INTERMEDIATE, HIDDEN]),
            ("mlp.up_proj.weight", vec![INTERMEDIATE, HIDDEN]),
            ("mlp.down_proj.weight", vec![HIDDEN, INTERMEDIATE]),
        ] {
            out.push((format!("model.layers.{l}.{name}"), shape));
        }
    }
    out.push(("model.norm.weight".into(), vec![HIDDEN]));
    out.push(("lm_head.weight".into(), vec![VOCAB, HIDDEN]));
    out
}

/// Small, finite, varied bf16 weights from a xorshift generator.
struct Weights(u64);

impl Weights {
    fn fill(&mut self, out: &mut Vec<u8>, elements: usize) {
        out.clear();
        out.reserve(elements * 2);
        for _ in 0..elements {
            let mut x = self.0;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.0 = x;
            #[allow(clippy::cast_precision_loss)]
            let v = ((x >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.08;
            out.extend_from_slice(&half::bf16::from_f32(v).to_le_bytes());
        }
    }
}

/// The model's shards, generating them first when they are missing.
pub(crate) fn ensure_model() -> Result<Vec<PathBuf>> {
    let dir = model_dir();
    let marker = dir.join(".complete");
    if !marker.is_file() {
        eprintln!(
            "generating the bf16 benchmark model in {} ...",
            dir.display()
        );
        generate(&dir)?;
        std::fs::write(&marker, b"")?;
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
        .collect();
    files.sort();
    Ok(files)
}

fn generate(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let all = tensors();
    let total: usize = all
        .iter()
        .map(|(_, s)| s.iter().product::<usize>() * 2)
        .sum();
    // Split in order into shards of about equal size.
    let mut shards: Vec<Vec<(String, Vec<usize>)>> = vec![Vec::new()];
    let mut size = 0;
    for (name, shape) in all {
        let bytes = shape.iter().product::<usize>() * 2;
        if size >= total / SHARDS * shards.len() && shards.len() < SHARDS {
            shards.push(Vec::new());
        }
        size += bytes;
        shards.last_mut().context("no shard")?.push((name, shape));
    }
    let count = shards.len();
    let mut weight_map = BTreeMap::new();
    let mut rng = Weights(0x9e37_79b9_7f4a_7c15);
    let mut buf = Vec::new();
    for (i, shard) in shards.iter().enumerate() {
        let file_name = format!("model-{:05}-of-{count:05}.safetensors", i + 1);
        let mut header = serde_json::Map::new();
        header.insert("__metadata__".into(), serde_json::json!({"format": "pt"}));
        let mut offset = 0usize;
        for (name, shape) in shard {
            let bytes = shape.iter().product::<usize>() * 2;
            header.insert(
                name.clone(),
                serde_json::json!({"dtype": "BF16", "shape": shape, "data_offsets": [offset, offset + bytes]}),
            );
            offset += bytes;
            weight_map.insert(name.clone(), file_name.clone());
        }
        let mut json = serde_json::to_string(&header)?;
        while json.len() % 8 != 0 {
            json.push(' ');
        }
        let tmp = dir.join(format!("{file_name}.tmp"));
        let mut out = BufWriter::with_capacity(8 << 20, File::create(&tmp)?);
        out.write_all(&(json.len() as u64).to_le_bytes())?;
        out.write_all(json.as_bytes())?;
        for (_, shape) in shard {
            rng.fill(&mut buf, shape.iter().product());
            out.write_all(&buf)?;
        }
        out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        std::fs::rename(&tmp, dir.join(&file_name))?;
    }
    let index = serde_json::json!({"metadata": {"total_size": total}, "weight_map": weight_map});
    std::fs::write(dir.join("model.safetensors.index.json"), index.to_string())?;
    let config = serde_json::json!({
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "hidden_size": HIDDEN, "intermediate_size": INTERMEDIATE, "num_hidden_layers": LAYERS,
        "num_attention_heads": HEADS, "num_key_value_heads": KV_HEADS, "vocab_size": VOCAB,
        "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "max_position_embeddings": 4096,
        "tie_word_embeddings": false, "torch_dtype": "bfloat16"
    });
    std::fs::write(dir.join("config.json"), config.to_string())?;
    Ok(())
}
