//! The SmolLM2 GGUF against the Python reference ids of the fixture.

use candle_core::quantized::gguf_file::Value;
use tektra_tokenizers::{Message, SpecialToken, TextTokenizer};

use crate::{fixture, smollm, smollm_content};

#[test]
fn fixture_is_for_the_test_model() {
    assert_eq!(fixture().gguf_sha256, tektra_testdata::SMOLLM2_SHA256);
    assert!(fixture().cases.len() >= 40, "a few dozen strings");
}

/// The fixture script ran the strings through llama.cpp's own tokenizer too
/// (llama-cpp-python): the digit-fixed Python ids are also llama.cpp's.
#[test]
fn fixture_ids_agree_with_llama_cpp() {
    let check = fixture()
        .llama_cpp_cross_check
        .as_ref()
        .expect("cross-check recorded");
    assert_eq!(check["strings"], fixture().cases.len());
    assert_eq!(check["differences"], serde_json::json!([]));
}

#[test]
fn gguf_tokenizer_matches_python_reference_ids_exactly() {
    let tok = smollm();
    let mut mismatches = Vec::new();
    for case in &fixture().cases {
        let ids = tok.encode(&case.text, false).unwrap();
        if ids != case.ids {
            mismatches.push(format!("{:?}: got {ids:?}, want {:?}", case.text, case.ids));
        }
        // The GGUF says add_bos_token = false: special tokens add nothing.
        assert_eq!(
            tok.encode(&case.text, true).unwrap(),
            ids,
            "{:?}",
            case.text
        );
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

#[test]
fn decode_matches_python_reference() {
    let tok = smollm();
    for case in &fixture().cases {
        assert_eq!(
            tok.decode(&case.ids, false).unwrap(),
            case.decoded,
            "{:?}",
            case.text
        );
        assert_eq!(case.decoded, case.text, "byte-level BPE round-trips");
    }
}

/// With `tokenizer.ggml.pre` changed to plain GPT-2 (what candle-core 0.10.2
/// falls back to for `smollm`), our builder reproduces transformers' unfixed
/// ids: so the fixture really tells the digit split apart, on six strings.
#[test]
fn digit_split_is_what_separates_smollm_from_plain_gpt2() {
    let mut metadata = smollm_content().metadata.clone();
    metadata.insert("tokenizer.ggml.pre".into(), Value::String("gpt-2".into()));
    let plain = TextTokenizer::from_gguf(&crate::content(metadata)).unwrap();
    let mut differing = 0;
    for case in &fixture().cases {
        assert_eq!(
            plain.encode(&case.text, false).unwrap(),
            case.ids_without_digit_split,
            "{:?}",
            case.text
        );
        if case.ids != case.ids_without_digit_split {
            differing += 1;
            assert_ne!(
                smollm().encode(&case.text, false).unwrap(),
                case.ids_without_digit_split
            );
        }
    }
    assert_eq!(differing, 6);
}

#[test]
fn special_tokens_come_from_gguf_metadata() {
    let tok = smollm();
    let s = tok.specials();
    let token = |id, content: &str| {
        Some(SpecialToken {
            id,
            content: content.into(),
        })
    };
    assert_eq!(s.bos, token(1, "<|im_start|>"));
    assert_eq!(s.eos, token(2, "<|im_end|>"));
    assert_eq!(s.pad, token(2, "<|im_end|>"));
    assert_eq!(s.unk, token(0, "<|endoftext|>"));
    assert!(!s.add_bos && !s.add_eos);
    // EOS, and <|endoftext|> as an end-of-turn control token.
    assert_eq!(s.stop_ids.iter().copied().collect::<Vec<_>>(), vec![0, 2]);
    assert!(tok.is_stop(2) && !tok.is_stop(1));
    assert_eq!(tok.vocab_size(), 49_152);
    // Control tokens are special: skipped on request, matched whole in text.
    assert_eq!(
        tok.decode(&[1, 105, 2], true).unwrap(),
        tok.decode(&[105], false).unwrap()
    );
    assert_eq!(tok.encode("<|im_start|>", false).unwrap(), vec![1]);
}

#[test]
fn chat_template_renders_like_transformers() {
    let tok = smollm();
    let expected = "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n\
                    <|im_start|>user\nHi there!<|im_end|>\n\
                    <|im_start|>assistant\nHello! How can I help you today?<|im_end|>\n\
                    <|im_start|>user\nWhat is 2+2?<|im_end|>\n\
                    <|im_start|>assistant\n";
    let messages = [
        Message::user("Hi there!"),
        Message::assistant("Hello! How can I help you today?"),
        Message::user("What is 2+2?"),
    ];
    assert_eq!(tok.apply_chat_template(&messages, true).unwrap(), expected);
    for chat in &fixture().chats {
        let rendered = tok
            .apply_chat_template(&chat.messages, chat.add_generation_prompt)
            .unwrap();
        assert_eq!(rendered, chat.rendered);
    }
    // The rendered prompt tokenizes with its markers as single tokens.
    let ids = tok.encode(expected, false).unwrap();
    assert_eq!(ids.first(), Some(&1));
    assert_eq!(ids.iter().filter(|&&id| id == 2).count(), 4);
}

#[test]
fn gguf_file_path_loads_the_same_tokenizer() {
    let from_path = TextTokenizer::from_gguf_file(tektra_testdata::smollm2_gguf()).unwrap();
    let case = &fixture().cases[0];
    assert_eq!(from_path.encode(&case.text, false).unwrap(), case.ids);
    assert_eq!(from_path.specials(), smollm().specials());
}
