//! Well-formed GGUF files with absurd hyperparameters are refused with an
//! error naming the key, by every backend, before any model is built (they
//! used to reach candle-transformers and panic or abort there).

use std::path::Path;

use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use tektra_inference::{BackendKind, Engine, Error, ModelRef};
use tokio_util::sync::CancellationToken;

use crate::common::offline_options;

/// A small llama-architecture GGUF (embedding 64, 4 heads of 16, 2 KV
/// heads, 2 layers, vocabulary 256), F32 weights, with `change` applied to
/// its metadata. It has no tokenizer: a valid one fails there, after the
/// hyperparameter check.
fn tiny(
    dir: &Path,
    name: &str,
    change: impl FnOnce(&mut Vec<(String, Value)>),
) -> std::path::PathBuf {
    let (e, ff, vocab, layers) = (64usize, 128usize, 256usize, 2usize);
    let mut md: Vec<(String, Value)> = vec![
        ("general.architecture".into(), Value::String("llama".into())),
        ("llama.block_count".into(), Value::U32(layers as u32)),
        ("llama.embedding_length".into(), Value::U32(e as u32)),
        ("llama.feed_forward_length".into(), Value::U32(ff as u32)),
        ("llama.attention.head_count".into(), Value::U32(4)),
        ("llama.attention.head_count_kv".into(), Value::U32(2)),
        ("llama.context_length".into(), Value::U32(512)),
        (
            "llama.attention.layer_norm_rms_epsilon".into(),
            Value::F32(1e-5),
        ),
    ];
    change(&mut md);
    let t = |shape: &[usize]| {
        let n: usize = shape.iter().product();
        let v: Vec<f32> = (0..n).map(|i| ((i % 17) as f32 - 8.0) * 0.01).collect();
        QTensor::quantize(
            &Tensor::from_vec(v, shape, &Device::Cpu).unwrap(),
            GgmlDType::F32,
        )
        .unwrap()
    };
    let mut tensors = vec![
        ("token_embd.weight".to_string(), t(&[vocab, e])),
        ("output_norm.weight".to_string(), t(&[e])),
    ];
    for i in 0..layers {
        for (n, shape) in [
            ("attn_norm.weight", vec![e]),
            ("attn_q.weight", vec![e, e]),
            ("attn_k.weight", vec![32, e]),
            ("attn_v.weight", vec![32, e]),
            ("attn_output.weight", vec![e, e]),
            ("ffn_norm.weight", vec![e]),
            ("ffn_gate.weight", vec![ff, e]),
            ("ffn_up.weight", vec![ff, e]),
            ("ffn_down.weight", vec![e, ff]),
        ] {
            tensors.push((format!("blk.{i}.{n}"), t(&shape)));
        }
    }
    let path = dir.join(name);
    let mut f = std::fs::File::create(&path).unwrap();
    let md_refs: Vec<(&str, &Value)> = md.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let t_refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
    gguf_file::write(&mut f, &md_refs, &t_refs).unwrap();
    path
}

fn set(md: &mut [(String, Value)], key: &str, v: Value) {
    md.iter_mut().find(|(k, _)| k == key).unwrap().1 = v;
}

async fn load(path: &Path, backend: BackendKind) -> Error {
    let mut options = offline_options();
    options.backend = backend;
    Engine::load(
        &ModelRef::File(path.to_path_buf()),
        &options,
        tektra_progress::silent(),
        &CancellationToken::new(),
    )
    .await
    .unwrap_err()
}

#[tokio::test]
async fn absurd_hyperparameters_are_errors_naming_the_key_on_every_backend() {
    let dir = tempfile::tempdir().unwrap();
    let valid = tiny(dir.path(), "valid.gguf", |_| {});
    for backend in [BackendKind::Auto, BackendKind::Native, BackendKind::Candle] {
        let err = load(&valid, backend).await;
        assert!(
            !matches!(err, Error::BadHyperparameter { .. }),
            "the valid file: {err}"
        );
    }
    let cases: Vec<(&str, &str, Box<dyn FnOnce(&mut Vec<(String, Value)>)>)> = vec![
        (
            "zero heads",
            "llama.attention.head_count",
            Box::new(|m| set(m, "llama.attention.head_count", Value::U32(0))),
        ),
        (
            "zero KV heads",
            "llama.attention.head_count_kv",
            Box::new(|m| set(m, "llama.attention.head_count_kv", Value::U32(0))),
        ),
        (
            "huge block count",
            "llama.block_count",
            Box::new(|m| set(m, "llama.block_count", Value::U32(1_000_000_000))),
        ),
        (
            "zero embedding",
            "llama.embedding_length",
            Box::new(|m| set(m, "llama.embedding_length", Value::U32(0))),
        ),
        (
            "heads not dividing the embedding",
            "llama.attention.head_count",
            Box::new(|m| {
                set(m, "llama.attention.head_count", Value::U32(5));
                set(m, "llama.attention.head_count_kv", Value::U32(5));
            }),
        ),
        (
            "KV heads not dividing heads",
            "llama.attention.head_count_kv",
            Box::new(|m| set(m, "llama.attention.head_count_kv", Value::U32(3))),
        ),
        (
            "a negative count",
            "llama.feed_forward_length",
            Box::new(|m| set(m, "llama.feed_forward_length", Value::I32(-4))),
        ),
        (
            "a string for a count",
            "llama.block_count",
            Box::new(|m| set(m, "llama.block_count", Value::String("2".into()))),
        ),
        (
            "NaN epsilon",
            "llama.attention.layer_norm_rms_epsilon",
            Box::new(|m| {
                set(
                    m,
                    "llama.attention.layer_norm_rms_epsilon",
                    Value::F32(f32::NAN),
                )
            }),
        ),
        (
            "more layers than tensors",
            "blk.2.attn_norm.weight",
            Box::new(|m| set(m, "llama.block_count", Value::U32(3))),
        ),
        (
            "a width the tensors do not have",
            "blk.0.ffn_gate.weight",
            Box::new(|m| set(m, "llama.feed_forward_length", Value::U32(96))),
        ),
        (
            "an embedding the table does not have",
            "token_embd.weight",
            Box::new(|m| set(m, "llama.embedding_length", Value::U32(32))),
        ),
    ];
    for (i, (what, key, change)) in cases.into_iter().enumerate() {
        let path = tiny(dir.path(), &format!("case{i}.gguf"), change);
        for backend in [BackendKind::Auto, BackendKind::Native, BackendKind::Candle] {
            let err = load(&path, backend).await;
            match &err {
                Error::BadHyperparameter { key: k, .. } if k == key => {}
                other => {
                    panic!("{what} on {backend:?}: expected an error naming {key}, got {other}")
                }
            }
            if backend == BackendKind::Auto {
                println!("{what}: {err}");
            }
        }
    }
}

#[tokio::test]
async fn a_tensor_type_the_native_path_lacks_is_named() {
    let dir = tempfile::tempdir().unwrap();
    // Q2_K needs 256-wide rows: a file whose FFN weights are Q2_K.
    let path = dir.path().join("q2k.gguf");
    let src = tiny(dir.path(), "base.gguf", |m| {
        set(m, "llama.embedding_length", Value::U32(64));
    });
    let mut f = std::fs::File::open(&src).unwrap();
    let content = gguf_file::Content::read(&mut f).unwrap();
    let mut tensors = Vec::new();
    for name in content.tensor_infos.keys() {
        let t = content.tensor(&mut f, name, &Device::Cpu).unwrap();
        let t = if name == "blk.0.ffn_down.weight" {
            // 64 x 128 is not whole 256-blocks: use a type of 32-blocks the
            // native path lacks instead.
            QTensor::quantize(&t.dequantize(&Device::Cpu).unwrap(), GgmlDType::Q8_1).unwrap()
        } else {
            t
        };
        tensors.push((name.clone(), t));
    }
    let md: Vec<(&str, &Value)> = content
        .metadata
        .iter()
        .map(|(k, v)| (k.as_str(), v))
        .collect();
    let t_refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
    gguf_file::write(&mut std::fs::File::create(&path).unwrap(), &md, &t_refs).unwrap();
    let err = load(&path, BackendKind::Native).await;
    match &err {
        Error::UnsupportedTensor { tensor, dtype, .. } => {
            assert_eq!(tensor, "blk.0.ffn_down.weight");
            assert!(dtype.contains("Q8_1"), "{dtype}");
        }
        other => panic!("expected UnsupportedTensor, got {other}"),
    }
    println!("{err}");
}
