//! Every architecture we claim, on a real file, against llama.cpp: the
//! next-token distribution at every position of a fixed English text,
//! from both our paths, compared with llama.cpp's (recorded by
//! `scripts/make-kl-fixtures`): mean KL divergence below 0.01 and top-1
//! agreement at least 97%, where a position at which llama.cpp's own top
//! two are within 0.5 nats (a near tie, which int8 arithmetic of either
//! side can flip) is not held against us. Raw agreement is printed too:
//! even the exact f32 model agrees with llama.cpp on only 96.9% of the
//! qwen2 positions, all its misses at such ties, so a raw 97% would test
//! llama.cpp's rounding, not the model.

use std::path::PathBuf;

use serde::Deserialize;
use tektra_inference::{BackendKind, Engine, ModelRef};
use tokio_util::sync::CancellationToken;

use crate::common::offline_options;

#[derive(Deserialize)]
struct Fixture {
    llama_cpp_python: String,
    model_sha256: String,
    tokens: Vec<u32>,
    positions: Vec<Position>,
}

#[derive(Deserialize)]
struct Position {
    ids: Vec<u32>,
    logp: Vec<f64>,
    log_rest: Option<f64>,
}

fn fixture(name: &str) -> Fixture {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/kl/{name}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// A top-2 margin of llama.cpp's below this (in nats) is a near tie.
const NEAR_TIE: f64 = 0.5;

/// Natural-log softmax of `logits` at `ids`, and the log of the rest.
fn our_logp(logits: &[f32], ids: &[u32]) -> (Vec<f64>, f64) {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let z: f64 = logits.iter().map(|&l| f64::from(l - max).exp()).sum();
    let lz = z.ln() + f64::from(max);
    let lp: Vec<f64> = ids
        .iter()
        .map(|&i| f64::from(logits[i as usize]) - lz)
        .collect();
    let rest = 1.0 - lp.iter().map(|l| l.exp()).sum::<f64>();
    (lp, rest.max(1e-30).ln())
}

/// Mean KL(llama.cpp || ours) over the positions, and top-1 agreement.
async fn compare(name: &str, model: PathBuf, backend: BackendKind) -> (f64, f64) {
    let fx = fixture(name);
    let got = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(
        std::fs::read(&model).unwrap(),
    ));
    assert_eq!(
        got, fx.model_sha256,
        "the fixture was made from another file"
    );
    let mut options = offline_options();
    options.backend = backend;
    options.warm_up = false;
    let mut engine = Engine::load(
        &ModelRef::File(model),
        &options,
        tektra_progress::silent(),
        &CancellationToken::new(),
    )
    .await
    .unwrap();
    let (mut kl_sum, mut agree, mut worst) = (0.0f64, 0usize, (0.0f64, 0usize));
    let (mut ties, mut widest) = (0usize, 0.0f64);
    let n = fx.positions.len();
    engine
        .each_position_logits(
            &fx.tokens,
            &mut |pos, logits| {
                let p = &fx.positions[pos];
                let (q, q_rest) = our_logp(logits, &p.ids);
                let mut kl: f64 = p
                    .logp
                    .iter()
                    .zip(&q)
                    .map(|(lp, lq)| lp.exp() * (lp - lq))
                    .sum();
                if let Some(lr) = p.log_rest {
                    kl += lr.exp() * (lr - q_rest);
                }
                kl_sum += kl;
                if kl > worst.0 {
                    worst = (kl, pos);
                }
                if tektra_inference::argmax(logits) == p.ids[0] {
                    agree += 1;
                } else {
                    let margin = p.logp[0] - p.logp[1];
                    widest = widest.max(margin);
                    if margin < NEAR_TIE {
                        ties += 1;
                    }
                }
            },
            &CancellationToken::new(),
        )
        .unwrap();
    let (mean, raw, top1) = (
        kl_sum / n as f64,
        agree as f64 / n as f64,
        (agree + ties) as f64 / n as f64,
    );
    println!(
        "{name} on {backend:?} vs llama.cpp (llama-cpp-python {}): {n} positions, mean KL {mean:.5}, top-1 {:.1}% ({:.1}% raw; {} misses, {ties} at near ties, widest llama.cpp margin at a miss {widest:.3} nats), worst KL {:.4} at {}",
        fx.llama_cpp_python,
        top1 * 100.0,
        raw * 100.0,
        n - agree,
        worst.0,
        worst.1
    );
    (mean, top1)
}

async fn check(name: &str, model: PathBuf, backend: BackendKind) {
    let (kl, top1) = compare(name, model, backend).await;
    assert!(kl < 0.01, "{name} on {backend:?}: mean KL {kl:.5} >= 0.01");
    assert!(
        top1 >= 0.97,
        "{name} on {backend:?}: top-1 agreement {:.1}% < 97%",
        top1 * 100.0
    );
}

#[tokio::test]
async fn smollm2_native_matches_llama_cpp() {
    check(
        "smollm2-q4_1",
        tektra_testdata::smollm2_gguf(),
        BackendKind::Native,
    )
    .await;
}

#[tokio::test]
async fn smollm2_candle_matches_llama_cpp() {
    check(
        "smollm2-q4_1",
        tektra_testdata::smollm2_gguf(),
        BackendKind::Candle,
    )
    .await;
}

#[tokio::test]
async fn gemma3_native_matches_llama_cpp() {
    check(
        "gemma3-270m-q4_k_m",
        tektra_testdata::gemma3_gguf(),
        BackendKind::Native,
    )
    .await;
}

/// candle-transformers 0.10.2's quantized Gemma 3 uses SiLU where Gemma
/// uses tanh-GELU, and computes another model (mean KL 0.71, top-1 55%
/// against llama.cpp on this file): the candle path refuses gemma3.
#[tokio::test]
async fn gemma3_is_refused_by_the_candle_path() {
    let mut options = offline_options();
    options.backend = BackendKind::Candle;
    let err = Engine::load(
        &ModelRef::File(tektra_testdata::gemma3_gguf()),
        &options,
        tektra_progress::silent(),
        &CancellationToken::new(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, tektra_inference::Error::Unsupported { .. }),
        "{err}"
    );
    println!("{err}");
}

#[tokio::test]
async fn qwen2_native_matches_llama_cpp() {
    check(
        "qwen2.5-coder-0.5b-q4_k_m",
        tektra_testdata::qwen2_gguf(),
        BackendKind::Native,
    )
    .await;
}

#[tokio::test]
async fn qwen2_candle_matches_llama_cpp() {
    check(
        "qwen2.5-coder-0.5b-q4_k_m",
        tektra_testdata::qwen2_gguf(),
        BackendKind::Candle,
    )
    .await;
}
