//! The mistral.rs backend against the candle one, on the same file.

use tektra_inference::{BackendKind, Engine, Message, ModelRef, Prompt, Sampling};
use tokio_util::sync::CancellationToken;

use crate::common::*;

async fn mistralrs_engine() -> Engine {
    let mut options = offline_options();
    options.backend = BackendKind::Mistralrs;
    Engine::load(
        &ModelRef::File(tektra_testdata::smollm2_gguf()),
        &options,
        tektra_progress::silent(),
        &CancellationToken::new(),
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn mistralrs_greedy_capital_of_france_is_paris() {
    let mut engine = mistralrs_engine().await;
    assert_eq!(engine.info().backend, "mistralrs");
    let mut text = String::new();
    engine
        .generate(
            &Prompt::Text("The capital of France is".into()),
            &Sampling::greedy(4),
            &mut |p| text.push_str(p),
            &CancellationToken::new(),
        )
        .unwrap();
    assert!(text.starts_with(" Paris"), "{text:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn mistralrs_perplexity_agrees_with_candle_within_2_percent() {
    let cancel = CancellationToken::new();
    let ours = smollm().await.perplexity(PARAGRAPH, &cancel).unwrap();
    let mut engine = mistralrs_engine().await;
    let theirs = engine.perplexity(PARAGRAPH, &cancel).unwrap();
    let shuffled_ppl = engine.perplexity(&shuffled(PARAGRAPH), &cancel).unwrap();
    eprintln!(
        "perplexity: candle {ours:.3}, mistral.rs {theirs:.3}, mistral.rs shuffled {shuffled_ppl:.1}"
    );
    assert!((ours - theirs).abs() / ours < 0.02, "{ours} vs {theirs}");
    assert!(shuffled_ppl > 5.0 * theirs);
}

#[tokio::test(flavor = "multi_thread")]
async fn mistralrs_cancelled_generation_returns_and_the_next_runs() {
    let mut engine = mistralrs_engine().await;
    let cancel = CancellationToken::new();
    let stopper = cancel.clone();
    let mut pieces = 0;
    let stats = engine
        .generate(
            &Prompt::Text("Once upon a time".into()),
            &Sampling {
                max_tokens: 400,
                ..Sampling::default()
            },
            &mut |_| {
                pieces += 1;
                if pieces == 3 {
                    stopper.cancel();
                }
            },
            &cancel,
        )
        .unwrap();
    assert_eq!(stats.stop_reason, tektra_inference::StopReason::Cancelled);
    assert!(stats.generated_tokens < 30, "{stats:?}");
    let mut text = String::new();
    engine
        .generate(
            &Prompt::Text("The capital of France is".into()),
            &Sampling::greedy(3),
            &mut |p| text.push_str(p),
            &CancellationToken::new(),
        )
        .unwrap();
    assert!(text.starts_with(" Paris"), "{text:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn mistralrs_chat_through_the_template_answers() {
    let mut engine = mistralrs_engine().await;
    let mut answer = String::new();
    let stats = engine
        .generate(
            &Prompt::Chat(vec![
                Message::system("You are a helpful assistant. Answer briefly."),
                Message::user("What is the capital of France?"),
            ]),
            &Sampling::greedy(40),
            &mut |p| answer.push_str(p),
            &CancellationToken::new(),
        )
        .unwrap();
    assert!(answer.contains("Paris"), "{answer:?}");
    assert!(!answer.contains("<|im_end|>"));
    assert_eq!(
        stats.stop_reason,
        tektra_inference::StopReason::Eos,
        "{answer:?}"
    );
}
