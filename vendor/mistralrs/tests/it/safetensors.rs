//! The llama safetensors path, on SmolLM2 itself: the test GGUF's weights
//! dequantized and written back as a Hugging Face llama checkpoint (bf16,
//! two shards and an index, config.json, tokenizer.json), so the model is
//! real and its answers can be checked.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use candle_core::quantized::gguf_file;
use candle_core::{DType, Device, Tensor};
use tektra_inference::{Engine, Error, ModelRef, Prompt, Sampling};
use tokio_util::sync::CancellationToken;

use crate::common::*;

const LAST_LAYER: &str = "model.layers.29.";

/// GGUF names to Hugging Face llama names (`blk.N.` becomes
/// `model.layers.N.`).
fn hf_name(gguf: &str) -> String {
    let fixed = match gguf {
        "token_embd.weight" => return "model.embed_tokens.weight".into(),
        "output_norm.weight" => return "model.norm.weight".into(),
        "output.weight" => return "lm_head.weight".into(),
        _ => gguf,
    };
    let rest = fixed.strip_prefix("blk.").expect("a block tensor");
    let (layer, what) = rest.split_once('.').unwrap();
    let part = match what {
        "attn_norm.weight" => "input_layernorm.weight",
        "attn_q.weight" => "self_attn.q_proj.weight",
        "attn_k.weight" => "self_attn.k_proj.weight",
        "attn_v.weight" => "self_attn.v_proj.weight",
        "attn_output.weight" => "self_attn.o_proj.weight",
        "ffn_norm.weight" => "post_attention_layernorm.weight",
        "ffn_gate.weight" => "mlp.gate_proj.weight",
        "ffn_up.weight" => "mlp.up_proj.weight",
        "ffn_down.weight" => "mlp.down_proj.weight",
        other => panic!("unexpected tensor {other}"),
    };
    format!("model.layers.{layer}.{part}")
}

/// llama.cpp's converter interleaves the rotary halves of q and k rows per
/// head; Hugging Face checkpoints keep them apart. Undo it.
fn unpermute(w: &Tensor, heads: usize) -> Tensor {
    let (out, inp) = w.dims2().unwrap();
    w.reshape((heads, out / heads / 2, 2, inp))
        .unwrap()
        .transpose(1, 2)
        .unwrap()
        .reshape((out, inp))
        .unwrap()
}

fn meta_u64(content: &gguf_file::Content, key: &str) -> u64 {
    content.metadata[key].to_u64().unwrap()
}

fn meta_f32(content: &gguf_file::Content, key: &str) -> f32 {
    content.metadata[key].to_f32().unwrap()
}

/// Writes the checkpoint once per test process.
fn checkpoint() -> &'static Path {
    static DIR: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    &DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let model = dir.path().join("smollm2-llama");
        std::fs::create_dir(&model).unwrap();
        write_checkpoint(&model, None);
        (dir, model)
    })
    .1
}

/// Writes SmolLM2 as a llama checkpoint into `dir`, leaving out `skip`.
fn write_checkpoint(dir: &Path, skip: Option<&str>) {
    let gguf_path = tektra_testdata::smollm2_gguf();
    let mut file = std::fs::File::open(&gguf_path).unwrap();
    let content = gguf_file::Content::read(&mut file).unwrap();
    let heads = meta_u64(&content, "llama.attention.head_count") as usize;
    let kv_heads = meta_u64(&content, "llama.attention.head_count_kv") as usize;
    let (mut main, mut last) = (HashMap::new(), HashMap::new());
    for name in content.tensor_infos.keys() {
        let hf = hf_name(name);
        if Some(hf.as_str()) == skip {
            continue;
        }
        let mut w = content
            .tensor(&mut file, name, &Device::Cpu)
            .unwrap()
            .dequantize(&Device::Cpu)
            .unwrap();
        if name.ends_with("attn_q.weight") {
            w = unpermute(&w, heads);
        } else if name.ends_with("attn_k.weight") {
            w = unpermute(&w, kv_heads);
        }
        let w = w.to_dtype(DType::BF16).unwrap();
        if hf.starts_with(LAST_LAYER) {
            last.insert(hf, w);
        } else {
            main.insert(hf, w);
        }
    }
    let shards = [
        ("model-00001-of-00002.safetensors", &main),
        ("model-00002-of-00002.safetensors", &last),
    ];
    let mut weight_map = serde_json::Map::new();
    for (shard, tensors) in shards {
        candle_core::safetensors::save(tensors, dir.join(shard)).unwrap();
        for name in tensors.keys() {
            weight_map.insert(name.clone(), shard.into());
        }
    }
    let index = serde_json::json!({ "metadata": {}, "weight_map": weight_map });
    std::fs::write(dir.join("model.safetensors.index.json"), index.to_string()).unwrap();
    let config = serde_json::json!({
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": meta_u64(&content, "llama.embedding_length"),
        "intermediate_size": meta_u64(&content, "llama.feed_forward_length"),
        "num_hidden_layers": meta_u64(&content, "llama.block_count"),
        "num_attention_heads": heads,
        "num_key_value_heads": kv_heads,
        "rms_norm_eps": meta_f32(&content, "llama.attention.layer_norm_rms_epsilon"),
        "rope_theta": meta_f32(&content, "llama.rope.freq_base"),
        "max_position_embeddings": meta_u64(&content, "llama.context_length"),
        "vocab_size": 49152,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "tie_word_embeddings": !content.tensor_infos.contains_key("output.weight"),
        "torch_dtype": "bfloat16",
    });
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    let tokenizer = tektra_tokenizers::TextTokenizer::from_gguf(&content).unwrap();
    tokenizer
        .tokenizer()
        .save(dir.join("tokenizer.json"), false)
        .unwrap();
    let tokenizer_config = serde_json::json!({
        "bos_token": "<|im_start|>",
        "eos_token": "<|im_end|>",
    });
    std::fs::write(
        dir.join("tokenizer_config.json"),
        tokenizer_config.to_string(),
    )
    .unwrap();
}

async fn load(dir: &Path, cancel: &CancellationToken) -> Result<Engine, Error> {
    Engine::load(
        &ModelRef::Dir(dir.to_path_buf()),
        &offline_options(),
        tektra_progress::silent(),
        cancel,
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn llama_safetensors_answers_like_the_gguf_it_came_from() {
    let cancel = CancellationToken::new();
    let mut engine = load(checkpoint(), &cancel).await.unwrap();
    assert_eq!(engine.info().architecture, "llama");
    let mut text = String::new();
    engine
        .generate(
            &Prompt::Text("The capital of France is".into()),
            &Sampling::greedy(4),
            &mut |p| text.push_str(p),
            &cancel,
        )
        .unwrap();
    assert!(text.starts_with(" Paris"), "{text:?}");
    // Same weights (bf16 here, Q4_1 with 8-bit activations there): the
    // paragraph's perplexity agrees closely.
    let ours = engine.perplexity(PARAGRAPH, &cancel).unwrap();
    let gguf = smollm().await.perplexity(PARAGRAPH, &cancel).unwrap();
    eprintln!("perplexity: safetensors {ours:.3}, gguf {gguf:.3}");
    assert!((ours - gguf).abs() / gguf < 0.03, "{ours} vs {gguf}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_llama_tensor_is_an_error_naming_it_not_a_panic() {
    let whole = checkpoint();
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(whole).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        if name != "model-00002-of-00002.safetensors" && name != "model.safetensors.index.json" {
            std::os::unix::fs::symlink(entry.path(), dir.path().join(&name)).unwrap();
        }
    }
    // The last layer's shard and the index, both without one tensor: the
    // files are consistent, only the model build can find the gap.
    let missing = "model.layers.29.mlp.up_proj.weight";
    let mut index: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(whole.join("model.safetensors.index.json")).unwrap(),
    )
    .unwrap();
    index["weight_map"]
        .as_object_mut()
        .unwrap()
        .remove(missing)
        .unwrap();
    std::fs::write(
        dir.path().join("model.safetensors.index.json"),
        index.to_string(),
    )
    .unwrap();
    let mut last = candle_core::safetensors::load(
        whole.join("model-00002-of-00002.safetensors"),
        &Device::Cpu,
    )
    .unwrap();
    last.remove(missing).unwrap();
    candle_core::safetensors::save(&last, dir.path().join("model-00002-of-00002.safetensors"))
        .unwrap();
    let err = load(dir.path(), &CancellationToken::new())
        .await
        .expect_err("a model without a tensor must not load");
    assert!(err.to_string().contains(missing), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cancelled_llama_load_returns_cancelled_not_a_panic() {
    let cancel = CancellationToken::new();
    let stopper = cancel.clone();
    let reporter: tektra_progress::SharedReporter =
        std::sync::Arc::new(move |e: &tektra_progress::Event| {
            if e.stage == tektra_progress::Stage::Loading && e.tensors_done.unwrap_or(0) >= 20 {
                stopper.cancel();
            }
        });
    let err = Engine::load(
        &ModelRef::Dir(checkpoint().to_path_buf()),
        &offline_options(),
        reporter,
        &cancel,
    )
    .await
    .expect_err("a cancelled load must not succeed");
    assert!(err.is_cancelled(), "{err}");
}
