//! The native path against the candle-transformers reference path on the
//! SmolLM2 files, on every instruction-set path this CPU has.

use std::path::{Path, PathBuf};

use tektra_inference::{BackendKind, Engine, Error, Isa, ModelRef, Prompt, Sampling, Sink};
use tokio_util::sync::CancellationToken;

use crate::common::*;

async fn engine(model: &Path, backend: BackendKind, isa: Option<Isa>) -> Engine {
    let mut options = offline_options();
    options.backend = backend;
    options.isa = isa;
    options.warm_up = false;
    Engine::load(
        &ModelRef::File(model.to_path_buf()),
        &options,
        tektra_progress::silent(),
        &CancellationToken::new(),
    )
    .await
    .unwrap()
}

fn logits_at_every_position(engine: &mut Engine, tokens: &[u32]) -> Vec<Vec<f32>> {
    let mut rows = Vec::new();
    engine
        .each_position_logits(
            tokens,
            &mut |_, l| rows.push(l.to_vec()),
            &CancellationToken::new(),
        )
        .unwrap();
    rows
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum();
    let na: f64 = a.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb)
}

fn files() -> Vec<(&'static str, PathBuf)> {
    vec![
        ("Q4_1", tektra_testdata::smollm2_gguf()),
        ("Q4_K_M", smollm2_q4_k_m()),
    ]
}

/// candle-transformers computing the same model exactly: every weight
/// dequantized to f32 and multiplied with f32 activations (candle's own
/// `CANDLE_DEQUANTIZE_ALL` switch). candle reads it into a thread-local
/// when a matrix is built, so the model is built on threads born while it
/// is set: a runtime of its own on a new thread.
#[allow(unsafe_code)]
fn with_exact_model<T: Send + 'static>(
    model: &Path,
    f: impl FnOnce(&mut Engine) -> T + Send + 'static,
) -> T {
    // SAFETY: nextest runs each test in its own process and nothing else
    // runs in this one while the variable is set.
    unsafe { std::env::set_var("CANDLE_DEQUANTIZE_ALL", "1") };
    let model = model.to_path_buf();
    let out = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut e = engine(&model, BackendKind::Candle, None).await;
            f(&mut e)
        })
    })
    .join()
    .unwrap();
    // SAFETY: as above.
    unsafe { std::env::remove_var("CANDLE_DEQUANTIZE_ALL") };
    out
}

fn exact_logits(model: &Path, tokens: &[u32]) -> Vec<Vec<f32>> {
    let tokens = tokens.to_vec();
    with_exact_model(model, move |e| logits_at_every_position(e, &tokens))
}

fn mean_cosine(a: &[Vec<f32>], b: &[Vec<f32>]) -> f64 {
    a.iter().zip(b).map(|(x, y)| cosine(x, y)).sum::<f64>() / a.len() as f64
}

/// The logits after a prompt equal candle's (cosine > 0.9999), and over
/// every position of it ours are at least as close to the exact f32
/// computation as candle's own int8 path is (position by position, two
/// int8-activation paths differ by their noise, so equality there would
/// measure candle's noise as much as ours).
#[tokio::test]
async fn prompt_logits_match_candle_on_every_isa() {
    for (label, file) in files() {
        let mut reference = engine(&file, BackendKind::Candle, None).await;
        let tokens = reference.tokenizer().encode(PARAGRAPH, true).unwrap();
        let want = logits_at_every_position(&mut reference, &tokens);
        let gold = exact_logits(&file, &tokens);
        let candle_to_exact = mean_cosine(&want, &gold);
        for isa in isas() {
            let mut ours = engine(&file, BackendKind::Native, Some(isa)).await;
            let got = logits_at_every_position(&mut ours, &tokens);
            let last = cosine(&want[want.len() - 1], &got[got.len() - 1]);
            let ours_to_exact = mean_cosine(&got, &gold);
            println!(
                "{label} {isa}: cosine to candle after the {}-token prompt {last:.6}; mean cosine to the exact f32 model: ours {ours_to_exact:.6}, candle's {candle_to_exact:.6}",
                tokens.len()
            );
            assert!(
                last > 0.9999,
                "{label} {isa}: cosine after the prompt {last}"
            );
            assert!(
                ours_to_exact >= candle_to_exact - 2e-4,
                "{label} {isa}: further from the exact model ({ours_to_exact}) than candle ({candle_to_exact})"
            );
        }
    }
}

/// How close to a tie a step was where candle's logits `c` prefer another
/// token to `ours`: candle's margin between the two, the RMS difference
/// between candle's int8 logits and the exact f32 model's `g` there (the
/// noise of an int8 path), and whether the exact model prefers ours or has
/// the two within three times that noise.
fn near_tie(c: &[f32], g: &[f32], ours: u32) -> (f32, f32, bool) {
    let theirs = tektra_inference::argmax(c) as usize;
    let rms = (c.iter().zip(g).map(|(a, b)| (a - b).powi(2)).sum::<f32>() / c.len() as f32).sqrt();
    let ours = ours as usize;
    (
        c[theirs] - c[ours],
        rms,
        g[ours] >= g[theirs] || g[theirs] - g[ours] < 3.0 * rms,
    )
}

/// Generated token ids and text.
#[derive(Default)]
struct Collect {
    ids: Vec<u32>,
    text: String,
}

impl Sink for Collect {
    fn text(&mut self, piece: &str) {
        self.text.push_str(piece);
    }
    fn token(&mut self, id: u32) {
        self.ids.push(id);
    }
}

/// One test per ISA path, so each stays well inside the suite's per-test
/// limit on a slow machine and nextest runs them side by side.
#[tokio::test]
async fn greedy_128_tokens_equal_candle_on_scalar() {
    greedy_128_tokens_equal_candle(Isa::Scalar).await;
}

#[tokio::test]
async fn greedy_128_tokens_equal_candle_on_avx2() {
    greedy_128_tokens_equal_candle(Isa::Avx2).await;
}

#[tokio::test]
async fn greedy_128_tokens_equal_candle_on_avx512() {
    greedy_128_tokens_equal_candle(Isa::Avx512).await;
}

async fn greedy_128_tokens_equal_candle(isa: Isa) {
    if !isa.supported() {
        println!("NOT RUN: the {isa} path (this CPU lacks it)");
        return;
    }
    let prompt = Prompt::Text("The history of the printing press begins".into());
    for (label, file) in files() {
        let mut reference = engine(&file, BackendKind::Candle, None).await;
        let prompt_ids = reference
            .tokenizer()
            .encode("The history of the printing press begins", true)
            .unwrap();
        let mut want = Collect::default();
        reference
            .generate_to(
                &prompt,
                &Sampling::greedy(128),
                &mut want,
                &CancellationToken::new(),
            )
            .unwrap();
        let mut seen: Option<(Vec<u32>, Vec<Vec<f32>>, Vec<Vec<f32>>)> = None;
        for lookup in [0, 8] {
            let mut ours = engine(&file, BackendKind::Native, Some(isa)).await;
            let mut got = Collect::default();
            let sampling = Sampling {
                prompt_lookup: lookup,
                ..Sampling::greedy(128)
            };
            ours.generate_to(&prompt, &sampling, &mut got, &CancellationToken::new())
                .unwrap();
            let same = got
                .ids
                .iter()
                .zip(&want.ids)
                .take_while(|(a, b)| a == b)
                .count();
            // Every one of our 128 choices, not only up to the first
            // divergence: candle's logits on our own sequence, and the
            // exact model's where candle would have chosen otherwise.
            let mut seq = prompt_ids.clone();
            seq.extend_from_slice(&got.ids[..got.ids.len() - 1]);
            // With and without lookup the sequence is usually the same:
            // the logits of the last one checked are reused then.
            if seen.as_ref().is_none_or(|(s, _, _)| *s != seq) {
                let cand = logits_at_every_position(&mut reference, &seq);
                seen = Some((seq.clone(), cand, Vec::new()));
            }
            let Some((_, cand, exact)) = seen.as_mut() else {
                unreachable!()
            };
            let differ: Vec<usize> = (0..got.ids.len())
                .filter(|&k| {
                    tektra_inference::argmax(&cand[prompt_ids.len() - 1 + k]) != got.ids[k]
                })
                .collect();
            if !differ.is_empty() && exact.is_empty() {
                *exact = exact_logits(&file, &seq);
            }
            let mut widest = 0.0f32;
            for &k in &differ {
                let p = prompt_ids.len() - 1 + k;
                let (m, noise, near) = near_tie(&cand[p], &exact[p], got.ids[k]);
                widest = widest.max(m);
                assert!(
                    near,
                    "{label} {isa} lookup {lookup}: token {k} is candle's choice by {m:.3} logits, beyond a near tie (int8 noise there {noise:.3})"
                );
            }
            println!(
                "{label} {isa} lookup {lookup}: equal to candle's free run for {same} of {} tokens; on our own sequence candle would choose otherwise at {} of {} steps, each a near tie (widest candle margin {widest:.3} logits)",
                want.ids.len(),
                differ.len(),
                got.ids.len()
            );
        }
    }
}

/// Perplexity on the 300-token English text of the KL fixtures, against
/// the model the file defines (every weight dequantized, f32 arithmetic):
/// ours within 0.5% of it beyond what candle's quantized path is off by.
/// Both int8 paths sit above the exact figure (on Q4_K_M by about 1.1%,
/// the price of 8-bit activations), and candle's moves with how it is
/// compiled (at the x86-64 baseline its Q4_1 is 0.8% off, ours 0.05%), so
/// the exact model is the fixed point. (The 100-token paragraph is too
/// short a sample: correct paths differ there by up to 2%.)
#[tokio::test]
async fn perplexity_is_within_half_a_percent_of_the_exact_model() {
    let text = include_str!("../fixtures/kl_text.txt");
    for (label, file) in files() {
        let cancel = CancellationToken::new();
        let candle = engine(&file, BackendKind::Candle, None)
            .await
            .perplexity(text, &cancel)
            .unwrap();
        let ours = engine(&file, BackendKind::Native, None)
            .await
            .perplexity(text, &cancel)
            .unwrap();
        let exact = with_exact_model(&file, move |e| {
            e.perplexity(text, &CancellationToken::new()).unwrap()
        });
        let off = |x: f64| (x - exact).abs() / exact;
        println!(
            "{label}: perplexity exact {exact:.4}, native {ours:.4} ({:.3}% off), candle {candle:.4} ({:.3}% off)",
            off(ours) * 100.0,
            off(candle) * 100.0
        );
        assert!(
            off(ours) < off(candle) + 0.005,
            "{label}: ours {ours}, candle {candle}, exact {exact}"
        );
    }
}

#[tokio::test]
async fn auto_picks_the_native_path_for_gguf() {
    let e = engine(&tektra_testdata::smollm2_gguf(), BackendKind::Auto, None).await;
    assert_eq!(e.info().backend, "native");
    let e = engine(&tektra_testdata::smollm2_gguf(), BackendKind::Candle, None).await;
    assert_eq!(e.info().backend, "candle");
}

#[tokio::test]
async fn prompt_lookup_drafts_on_repeating_text_and_changes_nothing_greedy() {
    let mut ours = engine(&tektra_testdata::smollm2_gguf(), BackendKind::Native, None).await;
    let code = "fn total(items: &[u32]) -> u32 {\n    let mut sum = 0;\n    for item in items {\n        sum += item;\n    }\n    sum\n}\n";
    let prompt = Prompt::Text(format!(
        "Here is a function:\n{code}\nThe same function, copied exactly:\n"
    ));
    let mut plain = String::new();
    let base = ours
        .generate(
            &prompt,
            &Sampling {
                prompt_lookup: 0,
                ..Sampling::greedy(60)
            },
            &mut |p| plain.push_str(p),
            &CancellationToken::new(),
        )
        .unwrap();
    let mut drafted = String::new();
    let fast = ours
        .generate(
            &prompt,
            &Sampling::greedy(60),
            &mut |p| drafted.push_str(p),
            &CancellationToken::new(),
        )
        .unwrap();
    println!(
        "plain {:.1} tok/s, prompt lookup {:.1} tok/s",
        base.tokens_per_sec, fast.tokens_per_sec
    );
    assert_eq!(plain, drafted);
    assert_eq!(base.generated_tokens, fast.generated_tokens);
}

#[tokio::test]
async fn an_isa_the_cpu_lacks_is_a_clear_error() {
    match "avx512".parse::<Isa>() {
        Ok(_) => {
            println!("this CPU runs every path; the refusal is checked by parsing a made-up name")
        }
        Err(e) => assert!(e.to_string().contains("cannot run"), "{e}"),
    }
    let err = "sse9".parse::<Isa>().unwrap_err();
    assert!(err.to_string().contains("scalar, avx2 or avx512"), "{err}");
    let _ = Error::Cancelled;
}
