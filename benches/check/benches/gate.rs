//! The regression gate's workloads, run once each under callgrind by
//! gungraun (`scripts/bench check`): instruction counts, not seconds, so
//! two runs on one tree agree whatever else the machine does.
//!
//! Everything runs on one thread (a kernel pool of one, no rayon): worker
//! threads that spin or steal would make the count depend on timing.
//! Setup (files, packing, model loading) is not counted; only the body of
//! each benchmark function is.
//!
//! Valgrind does not execute AVX-512, so the kernels' AVX-512 path is not
//! in this list; `tektra-bench-check` says so in its output. A path the CPU
//! lacks under valgrind runs nothing, and the checker reports it NOT RUN.
// A benchmark stops at the first failure, loudly.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    missing_docs,
    unreachable_pub
)]

use std::hint::black_box;
use std::path::PathBuf;

use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use gungraun::{
    Callgrind, LibraryBenchmarkConfig, library_benchmark, library_benchmark_group, main,
};
use hf_hub::ranges::{RangeSet, split};
use hf_hub::verify::{Expected, hash_file};
use tektra_candle::gguf::GgufHeader;
use tektra_candle::safetensors::SafetensorsHeader;
use tektra_inference::{Engine, EngineOptions, ModelRef, Sampler, Sampling};
use tektra_kernels::ops::{self, MatJob};
use tektra_kernels::{Isa, PackedMatrix, Pool, QuantActs, SharedBuf, WeightType};
use tektra_tokenizers::TextTokenizer;
use tokio_util::sync::CancellationToken;

fn model_path() -> PathBuf {
    tektra_testdata::smollm2_gguf()
}

// --- download path: verification, range planning, resume journal ---

const HASHED: usize = 64 << 20;

fn hash_setup() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("blob");
    let bytes: Vec<u8> = (0..HASHED).map(|i| (i * 31 + i / 4096) as u8).collect();
    std::fs::write(&path, bytes).unwrap();
    (dir, path)
}

#[library_benchmark]
#[bench::mib64(setup = hash_setup)]
fn sha256_verify(file: (tempfile::TempDir, PathBuf)) -> String {
    let expected = Expected::from_etag(&"0".repeat(64));
    black_box(hash_file(&file.1, &expected).unwrap().1)
}

/// A journal as a 2 GiB file's interrupted download leaves it: 20,000
/// written ranges of 64 KiB in a scattered order, some repeated.
fn journal_setup() -> String {
    let mut text = String::new();
    for i in 0..20_000u64 {
        let slot = (i.wrapping_mul(7919) % 30_000) * 65_536;
        text.push_str(&format!("{} {}\n", slot, slot + 65_536));
    }
    text
}

#[library_benchmark]
#[bench::ranges20k(setup = journal_setup)]
fn resume_plan(journal: String) -> usize {
    let size = 2u64 << 30;
    let done = RangeSet::from_journal(&journal, size);
    let chunks: usize = done
        .missing(size)
        .into_iter()
        .map(|r| split(r, 8 << 20).len())
        .sum();
    black_box(chunks)
}

// --- loading: headers and float conversion ---

#[allow(unsafe_code)]
fn gguf_setup() -> memmap2::Mmap {
    let file = std::fs::File::open(model_path()).unwrap();
    // SAFETY: the test model is read only and nobody writes it while the
    // benchmark runs.
    unsafe { memmap2::Mmap::map(&file).unwrap() }
}

#[library_benchmark]
#[bench::smollm2(setup = gguf_setup)]
fn gguf_header(file: memmap2::Mmap) -> usize {
    black_box(GgufHeader::parse(&file).unwrap().tensors.len())
}

/// A safetensors file shaped like a 24-layer model's (291 bf16 tensors).
fn safetensors_setup() -> Vec<u8> {
    let mut header = serde_json::Map::new();
    let mut offset = 0usize;
    let mut names = vec!["model.embed_tokens.weight".to_string()];
    for layer in 0..24 {
        for part in [
            "input_layernorm",
            "self_attn.q_proj",
            "self_attn.k_proj",
            "self_attn.v_proj",
            "self_attn.o_proj",
            "post_attention_layernorm",
            "mlp.gate_proj",
            "mlp.up_proj",
            "mlp.down_proj",
            "self_attn.q_norm",
            "self_attn.k_norm",
            "mlp.bias",
        ] {
            names.push(format!("model.layers.{layer}.{part}.weight"));
        }
    }
    names.push("model.norm.weight".into());
    names.push("lm_head.weight".into());
    for name in names {
        let len = 64 * 64 * 2;
        header.insert(
            name,
            serde_json::json!({"dtype": "BF16", "shape": [64, 64], "data_offsets": [offset, offset + len]}),
        );
        offset += len;
    }
    let json = serde_json::to_vec(&header).unwrap();
    let mut file = (json.len() as u64).to_le_bytes().to_vec();
    file.extend_from_slice(&json);
    file.resize(file.len() + offset, 0);
    file
}

#[library_benchmark]
#[bench::layers24(setup = safetensors_setup)]
fn safetensors_header(file: Vec<u8>) -> usize {
    black_box(SafetensorsHeader::parse(&file).unwrap().tensors.len())
}

fn bf16_setup() -> (Vec<u8>, Vec<f32>) {
    let n = 4 << 20;
    let src = (0..n * 2).map(|i| (i * 13 % 251) as u8).collect();
    (src, vec![0.0; n])
}

#[library_benchmark]
#[bench::m4(setup = bf16_setup)]
fn bf16_to_f32(mut bufs: (Vec<u8>, Vec<f32>)) -> f32 {
    tektra_candle::bf16_to_f32(&bufs.0, &mut bufs.1);
    black_box(bufs.1[12345])
}

// --- kernels: each type, matrix-vector and matrix-matrix, each path ---

struct KernelCase {
    pool: Pool,
    isa: Isa,
    w: PackedMatrix,
    x: SharedBuf<f32>,
    out: SharedBuf<f32>,
    acts: QuantActs,
    tokens: usize,
}

fn kernel_setup(w: WeightType, isa: Isa, tokens: usize) -> Option<KernelCase> {
    if !isa.supported() {
        return None;
    }
    let (k, n) = (768, 512);
    let values: Vec<f32> = (0..k * n)
        .map(|i| ((i as u64).wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40) as f32 / 16_777_216.0 - 0.5)
        .collect();
    let t = Tensor::from_vec(values, (n, k), &Device::Cpu).unwrap();
    let dtype = match w {
        WeightType::Q4_1 => GgmlDType::Q4_1,
        WeightType::Q5_0 => GgmlDType::Q5_0,
        WeightType::Q8_0 => GgmlDType::Q8_0,
        WeightType::Q4_K => GgmlDType::Q4K,
        _ => GgmlDType::Q6K,
    };
    let raw = QTensor::quantize(&t, dtype)
        .unwrap()
        .data()
        .unwrap()
        .to_vec();
    let mut x = SharedBuf::<f32>::new(tokens * k);
    for (i, v) in x.get_mut().iter_mut().enumerate() {
        *v = ((i * 7919) % 1000) as f32 / 500.0 - 1.0;
    }
    Some(KernelCase {
        pool: Pool::new(1).unwrap(),
        isa,
        w: PackedMatrix::pack(w, n, k, &raw).unwrap(),
        x,
        out: SharedBuf::new(tokens * n),
        acts: QuantActs::new(k, tokens),
        tokens,
    })
}

fn kernel_run(case: Option<KernelCase>) -> usize {
    let Some(c) = case else { return 0 };
    let (k, n) = (c.w.cols(), c.w.rows());
    c.pool
        .run(|team| {
            ops::quantize(team, c.isa, &c.x, k, c.tokens, &c.acts);
            let job = MatJob {
                w: &c.w,
                out: &c.out,
                ld: n,
                offset: 0,
                accumulate: false,
                bias: None,
            };
            ops::matmul(team, c.isa, &[job], &c.acts, &c.x, c.tokens);
        })
        .unwrap();
    black_box(c.out.len())
}

fn matvec_setup(w: WeightType, isa: Isa) -> Option<KernelCase> {
    kernel_setup(w, isa, 1)
}

fn matmat_setup(w: WeightType, isa: Isa) -> Option<KernelCase> {
    kernel_setup(w, isa, 16)
}

#[library_benchmark(setup = matvec_setup)]
#[bench::q4_1_scalar(WeightType::Q4_1, Isa::Scalar)]
#[bench::q4_1_avx2(WeightType::Q4_1, Isa::Avx2)]
#[bench::q5_0_scalar(WeightType::Q5_0, Isa::Scalar)]
#[bench::q5_0_avx2(WeightType::Q5_0, Isa::Avx2)]
#[bench::q8_0_scalar(WeightType::Q8_0, Isa::Scalar)]
#[bench::q8_0_avx2(WeightType::Q8_0, Isa::Avx2)]
#[bench::q4_k_scalar(WeightType::Q4_K, Isa::Scalar)]
#[bench::q4_k_avx2(WeightType::Q4_K, Isa::Avx2)]
#[bench::q6_k_scalar(WeightType::Q6_K, Isa::Scalar)]
#[bench::q6_k_avx2(WeightType::Q6_K, Isa::Avx2)]
fn matvec(case: Option<KernelCase>) -> usize {
    kernel_run(case)
}

#[library_benchmark(setup = matmat_setup)]
#[bench::q4_1_scalar(WeightType::Q4_1, Isa::Scalar)]
#[bench::q4_1_avx2(WeightType::Q4_1, Isa::Avx2)]
#[bench::q5_0_scalar(WeightType::Q5_0, Isa::Scalar)]
#[bench::q5_0_avx2(WeightType::Q5_0, Isa::Avx2)]
#[bench::q8_0_scalar(WeightType::Q8_0, Isa::Scalar)]
#[bench::q8_0_avx2(WeightType::Q8_0, Isa::Avx2)]
#[bench::q4_k_scalar(WeightType::Q4_K, Isa::Scalar)]
#[bench::q4_k_avx2(WeightType::Q4_K, Isa::Avx2)]
#[bench::q6_k_scalar(WeightType::Q6_K, Isa::Scalar)]
#[bench::q6_k_avx2(WeightType::Q6_K, Isa::Avx2)]
fn matmat16(case: Option<KernelCase>) -> usize {
    kernel_run(case)
}

// --- tokens: tokenizer, one forward step, the sampler ---

fn tokenizer_setup() -> (TextTokenizer, Vec<String>, Vec<Vec<u32>>) {
    let fixture: serde_json::Value = serde_json::from_str(include_str!(
        "../../../vendor/tokenizers/fixtures/smollm2_reference.json"
    ))
    .unwrap();
    let cases = fixture["cases"].as_array().unwrap();
    let texts = cases
        .iter()
        .map(|c| c["text"].as_str().unwrap().to_string())
        .collect();
    let ids = cases
        .iter()
        .map(|c| serde_json::from_value(c["ids"].clone()).unwrap())
        .collect();
    (
        TextTokenizer::from_gguf_file(model_path()).unwrap(),
        texts,
        ids,
    )
}

#[library_benchmark]
#[bench::smollm2_fixtures(setup = tokenizer_setup)]
fn tokenize(t: (TextTokenizer, Vec<String>, Vec<Vec<u32>>)) -> usize {
    let (tok, texts, ids) = t;
    let encoded: usize = texts
        .iter()
        .map(|s| tok.encode(s, false).unwrap().len())
        .sum();
    let decoded: usize = ids
        .iter()
        .map(|i| tok.decode(i, false).unwrap().len())
        .sum();
    black_box(encoded + decoded)
}

fn engine_setup(isa: Isa) -> Option<Engine> {
    if !isa.supported() {
        return None;
    }
    let mut options = EngineOptions::default();
    options.hub.offline = true;
    options.threads = Some(1);
    options.isa = Some(isa);
    options.check_memory = false;
    options.max_context = 64;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let model = ModelRef::File(model_path());
    let engine = rt.block_on(Engine::load(
        &model,
        &options,
        tektra_progress::silent(),
        &CancellationToken::new(),
    ));
    Some(engine.unwrap())
}

#[library_benchmark(setup = engine_setup)]
#[bench::smollm2_avx2(Isa::Avx2)]
fn forward_step(engine: Option<Engine>) -> f32 {
    let Some(mut engine) = engine else { return 0.0 };
    let mut top = 0.0f32;
    engine
        .each_position_logits(&[1], &mut |_, l| top = l[0], &CancellationToken::new())
        .unwrap();
    black_box(top)
}

fn sampler_setup() -> (Vec<f32>, Vec<u32>) {
    let logits = (0..49_152u32)
        .map(|i| ((i * 2654435761) >> 20) as f32 / 512.0 - 4.0)
        .collect();
    let history = (0..64u32).map(|i| i * 97 % 49_152).collect();
    (logits, history)
}

#[library_benchmark]
#[bench::default_settings(setup = sampler_setup)]
fn sample(mut s: (Vec<f32>, Vec<u32>)) -> u32 {
    let mut sampler = Sampler::new(&Sampling::default());
    black_box(sampler.sample(&mut s.0, &s.1))
}

library_benchmark_group!(
    name = download;
    benchmarks = sha256_verify, resume_plan
);
library_benchmark_group!(
    name = load;
    benchmarks = gguf_header, safetensors_header, bf16_to_f32
);
library_benchmark_group!(
    name = kernels;
    benchmarks = matvec, matmat16
);
library_benchmark_group!(
    name = tokens;
    benchmarks = tokenize, forward_step, sample
);

main!(
    config = LibraryBenchmarkConfig::default()
        // Instruction counts are the gate; the cache simulation only adds time.
        .tool(Callgrind::with_args(["--cache-sim=no"]))
        .pass_through_envs(["TEKTRA_TEST_MODEL", "TEKTRA_DATA", "HOME"]);
    library_benchmark_groups = download, load, kernels, tokens
);
