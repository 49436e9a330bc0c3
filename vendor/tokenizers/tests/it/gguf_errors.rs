//! Untrusted GGUF metadata: every problem is a typed error naming the key.

use std::collections::HashMap;
use std::io::Write;

use candle_core::quantized::gguf_file::Value;
use tektra_tokenizers::{ChatTemplate, Error, TextTokenizer};

use crate::{content, strings};

/// A tiny valid byte-level vocabulary: `a`, `b`, `ab`, and `<eos>`.
fn valid() -> HashMap<String, Value> {
    HashMap::from([
        (
            "tokenizer.ggml.model".to_owned(),
            Value::String("gpt2".into()),
        ),
        (
            "tokenizer.ggml.pre".to_owned(),
            Value::String("smollm".into()),
        ),
        (
            "tokenizer.ggml.tokens".to_owned(),
            strings(&["a", "b", "ab", "<eos>"]),
        ),
        (
            "tokenizer.ggml.token_type".to_owned(),
            Value::Array(vec![
                Value::I32(1),
                Value::I32(1),
                Value::I32(1),
                Value::I32(3),
            ]),
        ),
        ("tokenizer.ggml.merges".to_owned(), strings(&["a b"])),
        ("tokenizer.ggml.eos_token_id".to_owned(), Value::U32(3)),
    ])
}

fn build_with(change: impl FnOnce(&mut HashMap<String, Value>)) -> Result<TextTokenizer, Error> {
    let mut metadata = valid();
    change(&mut metadata);
    TextTokenizer::from_gguf(&content(metadata))
}

#[test]
fn the_valid_baseline_builds_and_tokenizes() {
    let tok = build_with(|_| {}).unwrap();
    assert_eq!(tok.encode("abab<eos>", false).unwrap(), vec![2, 2, 3]);
    assert_eq!(tok.specials().eos.as_ref().map(|e| e.id), Some(3));
}

#[test]
fn missing_keys_are_named() {
    for key in [
        "tokenizer.ggml.model",
        "tokenizer.ggml.tokens",
        "tokenizer.ggml.merges",
    ] {
        let err = build_with(|m| {
            m.remove(key);
        })
        .unwrap_err();
        assert!(
            matches!(&err, Error::MissingKey { key: k } if k == key),
            "{key}: {err}"
        );
        assert!(err.to_string().contains(key));
    }
}

#[test]
fn wrong_types_are_named_with_the_element() {
    let err = build_with(|m| {
        m.insert("tokenizer.ggml.tokens".into(), Value::String("abc".into()));
    })
    .unwrap_err();
    assert!(
        matches!(&err, Error::WrongType { key, .. } if key == "tokenizer.ggml.tokens"),
        "{err}"
    );

    let err = build_with(|m| {
        m.insert(
            "tokenizer.ggml.tokens".into(),
            Value::Array(vec![Value::String("a".into()), Value::U8(7)]),
        );
    })
    .unwrap_err();
    assert!(
        matches!(&err, Error::WrongType { key, .. } if key == "tokenizer.ggml.tokens[1]"),
        "{err}"
    );
    assert!(err.to_string().contains("U8 7"), "{err}");

    let err = build_with(|m| {
        m.insert(
            "tokenizer.ggml.eos_token_id".into(),
            Value::String("3".into()),
        );
    })
    .unwrap_err();
    assert!(
        matches!(&err, Error::WrongType { key, .. } if key.ends_with("eos_token_id")),
        "{err}"
    );

    let err = build_with(|m| {
        m.insert("tokenizer.ggml.add_bos_token".into(), Value::F32(1.0));
    })
    .unwrap_err();
    assert!(
        matches!(&err, Error::WrongType { key, .. } if key.ends_with("add_bos_token")),
        "{err}"
    );
}

#[test]
fn token_ids_out_of_range_are_rejected() {
    let err = build_with(|m| {
        m.insert("tokenizer.ggml.bos_token_id".into(), Value::U64(1 << 40));
    })
    .unwrap_err();
    assert!(
        matches!(&err, Error::TokenIdOutOfRange { key, id, vocab_size: 4 } if key.ends_with("bos_token_id") && *id == 1 << 40),
        "{err}"
    );
    // llama.cpp writes -1 for "no such token": that is not an error.
    let tok = build_with(|m| {
        m.insert("tokenizer.ggml.padding_token_id".into(), Value::I32(-1));
    })
    .unwrap();
    assert_eq!(tok.specials().pad, None);
}

#[test]
fn mismatched_array_lengths_are_rejected() {
    let err = build_with(|m| {
        m.insert(
            "tokenizer.ggml.token_type".into(),
            Value::Array(vec![Value::I32(1)]),
        );
    })
    .unwrap_err();
    assert!(
        matches!(&err, Error::LengthMismatch { key, expected: 4, found: 1 } if key == "tokenizer.ggml.token_type"),
        "{err}"
    );
}

#[test]
fn bad_merges_are_reported_by_position() {
    let err = build_with(|m| {
        m.insert("tokenizer.ggml.merges".into(), strings(&["a b", "a zz"]));
    })
    .unwrap_err();
    assert!(
        matches!(&err, Error::MergeUnknownToken { index: 1, token, .. } if token == "zz"),
        "{err}"
    );

    // Both sides known, but the joined token is not in the vocabulary.
    let err = build_with(|m| {
        m.insert("tokenizer.ggml.merges".into(), strings(&["b a"]));
    })
    .unwrap_err();
    assert!(
        matches!(&err, Error::MergeUnknownToken { index: 0, token, .. } if token == "ba"),
        "{err}"
    );

    for bad in ["ab", "a  b", " a", "a b c"] {
        let err = build_with(|m| {
            m.insert("tokenizer.ggml.merges".into(), strings(&[bad]));
        })
        .unwrap_err();
        assert!(
            matches!(&err, Error::MalformedMerge { index: 0, .. }),
            "{bad:?}: {err}"
        );
    }
}

#[test]
fn unsupported_model_and_pre_tokenizer_are_named() {
    let err = build_with(|m| {
        m.insert("tokenizer.ggml.model".into(), Value::String("rwkv".into()));
    })
    .unwrap_err();
    assert!(
        matches!(&err, Error::UnsupportedModel { model } if model == "rwkv"),
        "{err}"
    );

    let err = build_with(|m| {
        m.insert("tokenizer.ggml.pre".into(), Value::String("klingon".into()));
    })
    .unwrap_err();
    assert!(
        matches!(&err, Error::UnsupportedPreTokenizer { name } if name == "klingon"),
        "{err}"
    );
}

#[test]
fn empty_vocabulary_and_missing_bos_are_rejected() {
    let err = build_with(|m| {
        m.insert("tokenizer.ggml.tokens".into(), Value::Array(Vec::new()));
    })
    .unwrap_err();
    assert!(matches!(err, Error::EmptyVocabulary), "{err}");

    // add_bos_token without a BOS id cannot be honoured.
    let err = build_with(|m| {
        m.insert("tokenizer.ggml.add_bos_token".into(), Value::Bool(true));
    })
    .unwrap_err();
    assert!(
        matches!(&err, Error::MissingKey { key } if key.ends_with("bos_token_id")),
        "{err}"
    );
}

#[test]
fn chat_template_of_the_wrong_type_or_syntax_is_rejected() {
    let err = build_with(|m| {
        m.insert("tokenizer.chat_template".into(), Value::U32(5));
    })
    .unwrap_err();
    assert!(
        matches!(&err, Error::WrongType { key, .. } if key == "tokenizer.chat_template"),
        "{err}"
    );

    let err = build_with(|m| {
        m.insert(
            "tokenizer.chat_template".into(),
            Value::String("{% for m in messages %}".into()),
        );
    })
    .unwrap_err();
    assert!(matches!(err, Error::TemplateSyntax { .. }), "{err}");

    let err = ChatTemplate::from_gguf(&content(valid())).unwrap_err();
    assert!(matches!(err, Error::NoChatTemplate { name: None }), "{err}");
}

#[test]
fn unreadable_gguf_files_are_errors_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.gguf");
    assert!(matches!(
        TextTokenizer::from_gguf_file(&missing),
        Err(Error::Io { .. })
    ));

    let garbage = dir.path().join("garbage.gguf");
    std::fs::File::create(&garbage)
        .unwrap()
        .write_all(b"not a gguf file at all, just text")
        .unwrap();
    let err = TextTokenizer::from_gguf_file(&garbage).unwrap_err();
    assert!(
        matches!(&err, Error::GgufHeader { path, .. } if *path == garbage),
        "{err}"
    );

    // A real header cut short in the middle of the metadata.
    let mut head = vec![0u8; 4096];
    std::io::Read::read_exact(
        &mut std::fs::File::open(tektra_testdata::smollm2_gguf()).unwrap(),
        &mut head,
    )
    .unwrap();
    let truncated = dir.path().join("truncated.gguf");
    std::fs::write(&truncated, &head).unwrap();
    let err = TextTokenizer::from_gguf_file(&truncated).unwrap_err();
    assert!(matches!(err, Error::GgufHeader { .. }), "{err}");
}

/// GGUF v3 header bytes: magic, version, tensor count, metadata count.
fn header(tensors: u64, kvs: u64) -> Vec<u8> {
    let mut bytes = b"GGUF".to_vec();
    bytes.extend(3u32.to_le_bytes());
    bytes.extend(tensors.to_le_bytes());
    bytes.extend(kvs.to_le_bytes());
    bytes
}

fn key(bytes: &mut Vec<u8>, name: &str, value_type: u32) {
    bytes.extend((name.len() as u64).to_le_bytes());
    bytes.extend(name.as_bytes());
    bytes.extend(value_type.to_le_bytes());
}

fn load_bytes(bytes: &[u8]) -> Result<TextTokenizer, Error> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hostile.gguf");
    std::fs::write(&path, bytes).unwrap();
    TextTokenizer::from_gguf_file(&path)
}

/// Lengths that candle's reader would allocate blindly (or divide by),
/// and types it does not know, are refused before it runs.
#[test]
fn hostile_gguf_headers_are_refused_before_parsing() {
    let mut huge_string = header(0, 1);
    key(&mut huge_string, "general.name", 8);
    huge_string.extend((1u64 << 60).to_le_bytes());

    let mut huge_array = header(0, 1);
    key(&mut huge_array, "tokenizer.ggml.tokens", 9);
    huge_array.extend(0u32.to_le_bytes()); // of u8
    huge_array.extend((1u64 << 60).to_le_bytes());

    let mut deep = header(0, 1);
    key(&mut deep, "general.deep", 9);
    for _ in 0..10_000 {
        deep.extend(9u32.to_le_bytes());
        deep.extend(1u64.to_le_bytes());
    }

    let mut zero_alignment = header(0, 1);
    key(&mut zero_alignment, "general.alignment", 4);
    zero_alignment.extend(0u32.to_le_bytes());

    let mut many_dims = header(1, 0);
    many_dims.extend(1u64.to_le_bytes());
    many_dims.push(b't');
    many_dims.extend(1000u32.to_le_bytes());

    let mut huge_counts = header(u64::MAX, u64::MAX);
    huge_counts.extend([0u8; 16]);

    // A signed alignment of 0 (GGUF type 5, i32).
    let mut signed_zero_alignment = header(0, 1);
    key(&mut signed_zero_alignment, "general.alignment", 5);
    signed_zero_alignment.extend(0i32.to_le_bytes());

    // More values than any vocabulary, each present in the file: candle
    // would keep 32 bytes of memory for every one-byte value.
    let mut many_values = header(0, 1);
    key(&mut many_values, "tokenizer.ggml.token_type", 9);
    many_values.extend(0u32.to_le_bytes()); // of u8
    let n = (1u64 << 24) + 1;
    many_values.extend(n.to_le_bytes());
    many_values.resize(many_values.len() + n as usize, 1);

    // Well-formed lengths but an unknown tensor type.
    let mut bad_dtype = header(1, 0);
    bad_dtype.extend(1u64.to_le_bytes());
    bad_dtype.push(b't');
    bad_dtype.extend(1u32.to_le_bytes());
    bad_dtype.extend(4u64.to_le_bytes());
    bad_dtype.extend(999u32.to_le_bytes());
    bad_dtype.extend(0u64.to_le_bytes());

    for (name, bytes) in [
        ("huge string", huge_string),
        ("huge array", huge_array),
        ("deep arrays", deep),
        ("zero alignment", zero_alignment),
        ("many dimensions", many_dims),
        ("huge counts", huge_counts),
        ("signed zero alignment", signed_zero_alignment),
        ("too many values", many_values),
        ("unknown tensor type", bad_dtype),
    ] {
        let err = load_bytes(&bytes).unwrap_err();
        assert!(matches!(err, Error::GgufHeader { .. }), "{name}: {err}");
        println!("{name}: {err}");
    }
}
