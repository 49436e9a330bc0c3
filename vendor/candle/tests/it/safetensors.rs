//! Sharded safetensors: every dtype conversion bit-exact against candle's
//! direct read, progress per file, the VarBuilder backend building a real
//! candle-transformers model, and prefetch.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::llama;
use tektra_candle::{LoadOptions, SafetensorsBackend, Weights, load, prefetch};
use tektra_progress::{Stage, State};
use tokio_util::sync::CancellationToken;

use crate::common::{
    St, assert_done, assert_terminal_last, collector, last_per_file, noise, safetensors_bytes,
    shared_memory, write,
};

/// Every 16-bit pattern once, as little-endian bytes.
fn all_16_bit_patterns() -> Vec<u8> {
    (0..=u16::MAX).flat_map(u16::to_le_bytes).collect()
}

/// f32 values: random bit patterns (NaNs and subnormals among them) plus
/// the cases rounding gets wrong most easily.
fn f32_specials(count: usize) -> Vec<u8> {
    let specials: [u32; 12] = [
        0,
        0x8000_0000,
        0x7f80_0000,
        0xff80_0000,
        0x7fc0_0001,
        0xffbf_ffff,
        0x0000_0001,
        0x3f80_8000,
        0x3f81_8000,
        0x477f_f000,
        0x3380_0001,
        0x7f7f_ffff,
    ];
    let mut out: Vec<u8> = specials.iter().flat_map(|x| x.to_le_bytes()).collect();
    out.extend(noise(count * 4 - out.len(), 7));
    out
}

/// Three shards and an index: one with an odd header length (unaligned
/// data), one written by the reference `safetensors` crate, tensors large
/// enough to span several read chunks, empty and integer tensors.
fn write_sharded_model(dir: &Path) -> Vec<PathBuf> {
    let one = dir.join("model-00001-of-00003.safetensors");
    let big_bf16: Vec<u8> = all_16_bit_patterns().repeat(46); // 3,014,656 elements
    write(
        &one,
        &safetensors_bytes(
            &[
                St {
                    name: "a.f32",
                    dtype: "F32",
                    shape: vec![64, 33],
                    data: f32_specials(64 * 33),
                },
                St {
                    name: "b.bf16",
                    dtype: "BF16",
                    shape: vec![46, 65536],
                    data: big_bf16,
                },
                St {
                    name: "c.i64",
                    dtype: "I64",
                    shape: vec![5],
                    data: noise(40, 3),
                },
            ],
            3,
        ),
    );
    let two = dir.join("model-00002-of-00003.safetensors");
    write(
        &two,
        &safetensors_bytes(
            &[
                St {
                    name: "d.f16",
                    dtype: "F16",
                    shape: vec![256, 256],
                    data: all_16_bit_patterns(),
                },
                St {
                    name: "e.bf16",
                    dtype: "BF16",
                    shape: vec![0, 4],
                    data: vec![],
                },
                St {
                    name: "f.u8",
                    dtype: "U8",
                    shape: vec![10],
                    data: noise(10, 4),
                },
                St {
                    name: "g.bf16",
                    dtype: "BF16",
                    shape: vec![65536],
                    data: all_16_bit_patterns(),
                },
            ],
            0,
        ),
    );
    let three = dir.join("model-00003-of-00003.safetensors");
    let h = f32_specials(1000);
    let i = noise((4096 * 3 + 5) * 2, 9);
    let views = [
        (
            "h.f32",
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![1000], &h).unwrap(),
        ),
        (
            "i.f16",
            safetensors::tensor::TensorView::new(safetensors::Dtype::F16, vec![4096 * 3 + 5], &i)
                .unwrap(),
        ),
    ];
    safetensors::serialize_to_file(views, None, &three).unwrap();
    let map: HashMap<&str, &str> = [
        ("a.f32", 1),
        ("b.bf16", 1),
        ("c.i64", 1),
        ("d.f16", 2),
        ("e.bf16", 2),
        ("f.u8", 2),
        ("g.bf16", 2),
        ("h.f32", 3),
        ("i.f16", 3),
    ]
    .into_iter()
    .map(|(t, s)| {
        (
            t,
            [
                "",
                "model-00001-of-00003.safetensors",
                "model-00002-of-00003.safetensors",
                "model-00003-of-00003.safetensors",
            ][s],
        )
    })
    .collect();
    let index = serde_json::json!({"metadata": {}, "weight_map": map});
    write(
        &dir.join("model.safetensors.index.json"),
        index.to_string().as_bytes(),
    );
    vec![one, two, three]
}

/// The tensor's elements as bit patterns, whatever its dtype.
fn bits(t: &Tensor) -> Vec<u64> {
    let flat = t.flatten_all().unwrap();
    match t.dtype() {
        DType::F32 => flat
            .to_vec1::<f32>()
            .unwrap()
            .iter()
            .map(|x| u64::from(x.to_bits()))
            .collect(),
        DType::F16 => flat
            .to_vec1::<half::f16>()
            .unwrap()
            .iter()
            .map(|x| u64::from(x.to_bits()))
            .collect(),
        DType::BF16 => flat
            .to_vec1::<half::bf16>()
            .unwrap()
            .iter()
            .map(|x| u64::from(x.to_bits()))
            .collect(),
        DType::I64 => flat
            .to_vec1::<i64>()
            .unwrap()
            .iter()
            .map(|&x| x as u64)
            .collect(),
        DType::U8 => flat
            .to_vec1::<u8>()
            .unwrap()
            .iter()
            .map(|&x| u64::from(x))
            .collect(),
        other => panic!("no bits for {other:?}"),
    }
}

#[test]
fn sharded_round_trip_every_conversion_bit_exact() {
    let _guard = shared_memory();
    let dir = tempfile::tempdir().unwrap();
    let shards = write_sharded_model(dir.path());
    // candle's direct read of each shard is the reference.
    let mut direct = HashMap::new();
    for shard in &shards {
        direct.extend(candle_core::safetensors::load(shard, &Device::Cpu).unwrap());
    }
    assert_eq!(direct.len(), 9);
    let targets = [None, Some(DType::F32), Some(DType::F16), Some(DType::BF16)];
    for (target, huge_pages) in targets.into_iter().flat_map(|t| [(t, true), (t, false)]) {
        let options = LoadOptions {
            device: Device::Cpu,
            dtype: target,
            huge_pages,
        };
        let (reporter, events) = collector();
        let model = load(dir.path(), &options, reporter, &CancellationToken::new()).unwrap();
        assert_eq!(model.files.files, shards);
        let Weights::Tensors(ours) = &model.weights else {
            panic!("safetensors gives tensors")
        };
        assert_eq!(ours.len(), direct.len());
        for (name, reference) in &direct {
            let expected = match target {
                Some(dtype) if reference.dtype().is_float() => reference.to_dtype(dtype).unwrap(),
                _ => reference.clone(),
            };
            let got = &ours[name];
            assert_eq!(got.dtype(), expected.dtype(), "{name} -> {target:?}");
            assert_eq!(got.dims(), expected.dims(), "{name} -> {target:?}");
            assert!(
                bits(got) == bits(&expected),
                "{name} -> {target:?}: bits differ"
            );
        }
        // Progress: each shard ends done at its own tensor count.
        let events = events.lock().unwrap();
        assert_terminal_last(&events);
        let last = last_per_file(&events);
        assert_eq!(last.len(), 3);
        for (shard, count) in shards.iter().zip([3, 4, 2]) {
            let name = shard.file_name().unwrap().to_str().unwrap();
            assert_done(&last[name], count);
        }
        let bytes: u64 = last.values().map(|e| e.bytes_done).sum();
        assert_eq!(bytes, model.report.bytes);
        assert_eq!(model.report.tensors, 9);
    }
}

fn tiny_llama_config() -> llama::Config {
    llama::Config {
        hidden_size: 64,
        intermediate_size: 96,
        vocab_size: 128,
        num_hidden_layers: 2,
        num_attention_heads: 4,
        num_key_value_heads: 2,
        use_flash_attn: false,
        rms_norm_eps: 1e-5,
        rope_theta: 10_000.0,
        bos_token_id: None,
        eos_token_id: None,
        rope_scaling: None,
        max_position_embeddings: 32,
        tie_word_embeddings: false,
    }
}

/// A llama's tensors as bf16 in two shards, named as transformers names them.
fn write_tiny_llama(dir: &Path, cfg: &llama::Config) -> Vec<PathBuf> {
    let (h, i, v) = (cfg.hidden_size, cfg.intermediate_size, cfg.vocab_size);
    let kv = h / cfg.num_attention_heads * cfg.num_key_value_heads;
    let mut specs: Vec<(String, Vec<usize>)> = vec![
        ("model.embed_tokens.weight".into(), vec![v, h]),
        ("model.norm.weight".into(), vec![h]),
        ("lm_head.weight".into(), vec![v, h]),
    ];
    for l in 0..cfg.num_hidden_layers {
        let p = format!("model.layers.{l}");
        for (n, shape) in [
            ("self_attn.q_proj.weight", vec![h, h]),
            ("self_attn.k_proj.weight", vec![kv, h]),
            ("self_attn.v_proj.weight", vec![kv, h]),
            ("self_attn.o_proj.weight", vec![h, h]),
            ("mlp.gate_proj.weight", vec![i, h]),
            ("mlp.up_proj.weight", vec![i, h]),
            ("mlp.down_proj.weight", vec![h, i]),
            ("input_layernorm.weight", vec![h]),
            ("post_attention_layernorm.weight", vec![h]),
        ] {
            specs.push((format!("{p}.{n}"), shape));
        }
    }
    // Small finite weights: bf16 of values in [-0.125, 0.125).
    let tensor = |shape: &[usize], seed: u64| -> Vec<u8> {
        let n: usize = shape.iter().product();
        noise(n, seed)
            .iter()
            .flat_map(|&b| half::bf16::from_f32((f32::from(b) - 128.0) / 1024.0).to_le_bytes())
            .collect()
    };
    let half_way = specs.len() / 2;
    let mut files = Vec::new();
    for (k, part) in [&specs[..half_way], &specs[half_way..]]
        .into_iter()
        .enumerate()
    {
        let data: Vec<Vec<u8>> = part
            .iter()
            .enumerate()
            .map(|(j, (_, s))| tensor(s, (k * 100 + j) as u64))
            .collect();
        let tensors: Vec<St<'_>> = part
            .iter()
            .zip(data)
            .map(|((name, shape), data)| St {
                name,
                dtype: "BF16",
                shape: shape.clone(),
                data,
            })
            .collect();
        let path = dir.join(format!("model-{k}.safetensors"));
        write(&path, &safetensors_bytes(&tensors, k));
        files.push(path);
    }
    files
}

fn run_llama(vb: VarBuilder<'_>, cfg: &llama::Config) -> Vec<f32> {
    let model = llama::Llama::load(vb, cfg).unwrap();
    let mut cache = llama::Cache::new(true, DType::F32, cfg, &Device::Cpu).unwrap();
    let input = Tensor::new(&[[1u32, 7, 42, 99]], &Device::Cpu).unwrap();
    model
        .forward(&input, 0, &mut cache)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

#[test]
fn var_builder_backend_builds_a_candle_llama() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = tiny_llama_config();
    let files = write_tiny_llama(dir.path(), &cfg);
    let (reporter, events) = collector();
    let backend = SafetensorsBackend::open(&files, reporter, CancellationToken::new()).unwrap();
    let ours = run_llama(backend.var_builder(DType::F32, Device::Cpu), &cfg);

    // Every tensor was read once: both files are complete before finish().
    {
        let events = events.lock().unwrap();
        let last = last_per_file(&events);
        assert_eq!(last.len(), 2);
        for event in last.values() {
            assert_done(event, event.tensors_total.unwrap());
        }
        assert_terminal_last(&events);
    }
    backend.finish();
    assert_eq!(events.lock().unwrap().last().unwrap().state, State::Done);

    // The same model from candle's own loading gives the same logits.
    let mut tensors = HashMap::new();
    for f in &files {
        tensors.extend(candle_core::safetensors::load(f, &Device::Cpu).unwrap());
    }
    let theirs = run_llama(
        VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu),
        &cfg,
    );
    assert_eq!(ours.len(), cfg.vocab_size);
    assert_eq!(ours, theirs);
}

#[test]
fn var_builder_backend_reports_missing_and_misshapen_tensors() {
    let dir = tempfile::tempdir().unwrap();
    let files = write_tiny_llama(dir.path(), &tiny_llama_config());
    let backend =
        SafetensorsBackend::open(&files, tektra_progress::silent(), CancellationToken::new())
            .unwrap();
    let vb = backend.var_builder(DType::F16, Device::Cpu);
    assert!(vb.contains_tensor("model.norm.weight"));
    assert!(!vb.contains_tensor("model.nope"));
    let err = vb.get(64, "model.nope").unwrap_err();
    assert!(err.to_string().contains("model.nope"), "{err}");
    let err = vb.get((3, 3), "model.norm.weight").unwrap_err().to_string();
    assert!(
        err.contains("model.norm.weight") && err.contains("[64]") && err.contains("[3, 3]"),
        "{err}"
    );
    let t = vb.get(64, "model.norm.weight").unwrap();
    assert_eq!(t.dtype(), DType::F16);
    assert!(backend.names().any(|n| n == "lm_head.weight"));
}

#[test]
fn prefetch_reads_every_byte_with_progress() {
    let dir = tempfile::tempdir().unwrap();
    let files = write_tiny_llama(dir.path(), &tiny_llama_config());
    let (reporter, events) = collector();
    let report = prefetch(&files, reporter, &CancellationToken::new()).unwrap();
    let total: u64 = files
        .iter()
        .map(|f| std::fs::metadata(f).unwrap().len())
        .sum();
    assert_eq!((report.files, report.bytes), (2, total));
    let events = events.lock().unwrap();
    assert!(events.iter().all(|e| e.stage == Stage::Prefetching));
    for event in last_per_file(&events).values() {
        assert_eq!(event.state, State::Done);
        assert_eq!(Some(event.bytes_done), event.bytes_total);
    }

    let cancel = CancellationToken::new();
    cancel.cancel();
    let (reporter, events) = collector();
    let err = prefetch(&files, reporter, &cancel).unwrap_err();
    assert!(err.is_cancelled());
    let events = events.lock().unwrap();
    assert!(
        last_per_file(&events)
            .values()
            .all(|e| e.state == State::Cancelled)
    );
}
