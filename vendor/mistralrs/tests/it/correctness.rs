use std::time::{Duration, Instant};

use tektra_inference::{Message, Prompt, Sampling, StopReason};
use tokio_util::sync::CancellationToken;

use crate::common::*;

#[tokio::test]
async fn greedy_capital_of_france_is_paris() {
    let mut engine = smollm().await;
    let mut text = String::new();
    let stats = engine
        .generate(
            &Prompt::Text("The capital of France is".into()),
            &Sampling::greedy(4),
            &mut |p| text.push_str(p),
            &CancellationToken::new(),
        )
        .unwrap();
    assert!(text.starts_with(" Paris"), "{text:?}");
    assert_eq!(stats.prompt_tokens, 5);
    assert!(stats.generated_tokens >= 1 && stats.generated_tokens <= 4);
}

#[tokio::test]
async fn perplexity_of_english_is_far_below_shuffled_words() {
    let mut engine = smollm().await;
    let cancel = CancellationToken::new();
    let ppl = engine.perplexity(PARAGRAPH, &cancel).unwrap();
    let scrambled = engine.perplexity(&shuffled(PARAGRAPH), &cancel).unwrap();
    eprintln!("perplexity: paragraph {ppl:.2}, shuffled {scrambled:.2}");
    assert!(ppl > 1.0 && ppl < 40.0, "{ppl}");
    assert!(scrambled > 5.0 * ppl, "{ppl} vs {scrambled}");
}

#[tokio::test]
async fn chat_through_the_template_answers() {
    let mut engine = smollm().await;
    let rendered = engine
        .render(&Prompt::Chat(vec![Message::user(
            "What is the capital of France?",
        )]))
        .unwrap();
    assert!(
        rendered.contains("<|im_start|>user\nWhat is the capital of France?<|im_end|>"),
        "{rendered}"
    );
    assert!(rendered.ends_with("<|im_start|>assistant\n"), "{rendered}");
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
    assert_eq!(stats.stop_reason, StopReason::Eos, "{answer:?}");
}

#[tokio::test]
async fn stop_strings_end_the_text_before_them() {
    let mut engine = smollm().await;
    let mut text = String::new();
    let stats = engine
        .generate(
            &Prompt::Text("1, 2, 3, 4, 5,".into()),
            &Sampling {
                stop: vec![" 8".into()],
                ..Sampling::greedy(30)
            },
            &mut |p| text.push_str(p),
            &CancellationToken::new(),
        )
        .unwrap();
    assert_eq!(stats.stop_reason, StopReason::StopString, "{text:?}");
    assert_eq!(text, " 6, 7,");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cancelled_generation_returns_promptly_and_the_next_one_runs() {
    let mut engine = smollm().await;
    let cancel = CancellationToken::new();
    let stopper = cancel.clone();
    let mut pieces = 0;
    let mut cancelled_at = None;
    let stats = engine
        .generate(
            &Prompt::Text("Once upon a time".into()),
            &Sampling {
                max_tokens: 500,
                ..Sampling::default()
            },
            &mut |_| {
                pieces += 1;
                if pieces == 5 {
                    stopper.cancel();
                    cancelled_at = Some(Instant::now());
                }
            },
            &cancel,
        )
        .unwrap();
    assert_eq!(stats.stop_reason, StopReason::Cancelled);
    assert!(cancelled_at.unwrap().elapsed() < Duration::from_millis(500));
    assert!(stats.generated_tokens < 20, "{stats:?}");
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

#[tokio::test]
async fn bad_sampling_and_overlong_prompts_are_errors() {
    let mut engine = smollm().await;
    let cancel = CancellationToken::new();
    let err = engine
        .generate(
            &Prompt::Text("x".into()),
            &Sampling {
                top_p: 2.0,
                ..Sampling::default()
            },
            &mut |_| {},
            &cancel,
        )
        .unwrap_err();
    assert!(err.to_string().contains("top_p"), "{err}");
    let long = "word ".repeat(5000);
    let err = engine
        .generate(
            &Prompt::Text(long),
            &Sampling::greedy(10),
            &mut |_| {},
            &cancel,
        )
        .unwrap_err();
    assert!(err.to_string().contains("exceeds the context"), "{err}");
}
