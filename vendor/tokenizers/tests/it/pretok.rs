//! The pre-tokenizer table: every name builds, and the families split text
//! the way their tokenizer.json / llama.cpp do.

use std::collections::HashMap;

use candle_core::quantized::gguf_file::Value;
use tektra_tokenizers::gguf::pretok::{
    KNOWN_PRE_TOKENIZERS, PreTokenizerFamily, pre_tokenizer_spec,
};
use tektra_tokenizers::tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tektra_tokenizers::tokenizers::{
    OffsetReferential, OffsetType, PreTokenizedString, PreTokenizer,
};
use tektra_tokenizers::{Error, TextTokenizer};

use crate::content;

/// A byte-level vocabulary of the 256 byte symbols and no merges, with `pre`.
fn byte_vocab_tokenizer(pre: Option<&str>) -> TextTokenizer {
    byte_vocab_tokenizer_with(pre, |_| {})
}

fn byte_vocab_tokenizer_with(
    pre: Option<&str>,
    change: impl FnOnce(&mut HashMap<String, Value>),
) -> TextTokenizer {
    let mut alphabet: Vec<char> = ByteLevel::alphabet().into_iter().collect();
    alphabet.sort_unstable();
    let tokens = alphabet
        .iter()
        .map(|c| Value::String(c.to_string()))
        .collect();
    let mut metadata = HashMap::from([
        (
            "tokenizer.ggml.model".to_owned(),
            Value::String("gpt2".into()),
        ),
        ("tokenizer.ggml.tokens".to_owned(), Value::Array(tokens)),
        ("tokenizer.ggml.merges".to_owned(), Value::Array(Vec::new())),
    ]);
    if let Some(pre) = pre {
        metadata.insert("tokenizer.ggml.pre".into(), Value::String(pre.into()));
    }
    change(&mut metadata);
    TextTokenizer::from_gguf(&content(metadata)).unwrap()
}

/// The pieces (in byte-level symbols) the pre-tokenizer cuts `text` into.
fn pieces(pre: Option<&str>, text: &str) -> Vec<String> {
    let tok = byte_vocab_tokenizer(pre);
    let mut pretokenized = PreTokenizedString::from(text);
    tok.tokenizer()
        .get_pre_tokenizer()
        .unwrap()
        .pre_tokenize(&mut pretokenized)
        .unwrap();
    pretokenized
        .get_splits(OffsetReferential::Original, OffsetType::Byte)
        .into_iter()
        .map(|(piece, _, _)| piece.to_owned())
        .collect()
}

#[test]
fn every_known_name_builds_and_round_trips_mixed_text() {
    let text = "Hello 12345 world! DON'T stop\n\n  x = [1, 2]; // 日本語 😀 café <sentinel:3>";
    for name in KNOWN_PRE_TOKENIZERS {
        let tok = byte_vocab_tokenizer(Some(name));
        let ids = tok.encode(text, false).unwrap();
        assert_eq!(tok.decode(&ids, false).unwrap(), text, "{name}");
    }
}

#[test]
fn families_split_digits_as_their_models_do() {
    let text = "Hello 12345 world";
    let digits = ["Hello", "Ġ", "1", "2", "3", "4", "5", "Ġworld"];
    let triples = ["Hello", "Ġ", "123", "45", "Ġworld"];
    let cases: [(Option<&str>, &[&str]); 11] = [
        (Some("smollm"), &digits),
        (Some("starcoder"), &digits),
        (Some("qwen2"), &digits),
        (Some("deepseek-coder"), &digits),
        (Some("gpt-2"), &["Hello", "Ġ12345", "Ġworld"]),
        (Some("llama-bpe"), &triples),
        (Some("gpt-4o"), &triples),
        (Some("falcon"), &triples),
        (Some("default"), &triples),
        (None, &triples),
        (Some("deepseek-llm"), &["Hello", "Ġ", "12345", "Ġworld"]),
    ];
    for (name, want) in cases {
        assert_eq!(pieces(name, text), want, "{name:?}");
    }
}

#[test]
fn contractions_and_case_follow_each_regex() {
    // GPT-2 knows lowercase contractions only; Llama 3 matches them in any case.
    assert_eq!(pieces(Some("gpt-2"), "DON'T"), ["DON", "'", "T"]);
    assert_eq!(pieces(Some("llama-bpe"), "DON'T"), ["DON", "'T"]);
    // Tekken and GPT-4o split a camel-case word at its capitals.
    assert_eq!(pieces(Some("tekken"), "camelCase"), ["camel", "Case"]);
    assert_eq!(
        pieces(Some("gpt-4o"), "camelCase won't"),
        ["camel", "Case", "Ġwon't"]
    );
    // Llama 3 keeps a newline run with the punctuation before it.
    assert_eq!(pieces(Some("llama3"), "a.\n\nb"), ["a", ".ĊĊ", "b"]);
    // Poro splits only at whitespace and punctuation.
    assert_eq!(
        pieces(Some("poro-chat"), "one two,three"),
        ["one", "Ġtwo", ",", "three"]
    );
}

#[test]
fn spec_flags_follow_llama_cpp() {
    let llama3 = pre_tokenizer_spec(Some("llama-bpe")).unwrap();
    assert_eq!(llama3.family, PreTokenizerFamily::Llama3);
    assert!(llama3.ignore_merges && llama3.default_add_bos);
    let smaug = pre_tokenizer_spec(Some("smaug-bpe")).unwrap();
    assert_eq!(smaug.regexes, llama3.regexes);
    assert!(!smaug.ignore_merges);
    assert!(pre_tokenizer_spec(Some("qwen2")).unwrap().nfc);
    assert_eq!(
        pre_tokenizer_spec(None).unwrap().family,
        PreTokenizerFamily::Default
    );
    assert_eq!(
        pre_tokenizer_spec(Some("smollm")).unwrap().family,
        PreTokenizerFamily::DigitsThenGpt2
    );
    assert!(matches!(
        pre_tokenizer_spec(Some("nonesuch")),
        Err(Error::UnsupportedPreTokenizer { name }) if name == "nonesuch"
    ));
    // A Llama-3-style GGUF adds BOS unless it says otherwise, when it has one.
    assert!(!byte_vocab_tokenizer(Some("llama-bpe")).specials().add_bos);
    assert!(!byte_vocab_tokenizer(Some("gpt-2")).specials().add_bos);
}

#[test]
fn qwen2_normalizes_to_nfc() {
    let tok = byte_vocab_tokenizer(Some("qwen2"));
    let decomposed = "e\u{301}";
    let ids = tok.encode(decomposed, false).unwrap();
    assert_eq!(tok.decode(&ids, false).unwrap(), "\u{e9}");
    let plain = byte_vocab_tokenizer(Some("gpt-2"));
    let ids = plain.encode(decomposed, false).unwrap();
    assert_eq!(plain.decode(&ids, false).unwrap(), decomposed);
}

#[test]
fn llama3_names_add_bos_by_default_when_there_is_one() {
    let with_bos = |m: &mut HashMap<String, Value>| {
        m.insert("tokenizer.ggml.bos_token_id".into(), Value::U32(0));
    };
    let tok = byte_vocab_tokenizer_with(Some("llama-bpe"), with_bos);
    assert!(tok.specials().add_bos);
    assert_eq!(tok.encode("hi", true).unwrap()[0], 0);
    assert_eq!(tok.encode("hi", false).unwrap().len(), 2);
    // Plain GPT-2 names do not, and the GGUF's own flag wins over the default.
    assert!(
        !byte_vocab_tokenizer_with(Some("gpt-2"), with_bos)
            .specials()
            .add_bos
    );
    let off = byte_vocab_tokenizer_with(Some("llama-bpe"), |m| {
        with_bos(m);
        m.insert("tokenizer.ggml.add_bos_token".into(), Value::Bool(false));
    });
    assert!(!off.specials().add_bos);
}
