//! A synthetic SentencePiece (`llama`) vocabulary, written as a real GGUF file.

use std::collections::HashMap;

use candle_core::quantized::gguf_file::{self, Value};
use tektra_tokenizers::{Error, TextTokenizer};

/// Normal pieces, best score first. Every character of every piece is a
/// piece itself, as in real SentencePiece vocabularies.
const PIECES: &[&str] = &[
    "▁hello", "▁world", "llo", "▁wor", "hell", "▁he", "ld", "▁w", "he", "ll", "or", "▁h", "lo",
    "wo", "▁a", "ab", "▁ab", "abc", "é", "▁", "h", "e", "l", "o", "w", "r", "d", "a", "b", "c",
    "x",
];

/// Ids: 0 <unk>, 1 <s>, 2 </s>, 3..=258 <0x00>..<0xFF>, then PIECES, then <tool>.
fn vocabulary() -> (Vec<String>, Vec<i32>, Vec<f32>) {
    let mut tokens = vec!["<unk>".to_owned(), "<s>".to_owned(), "</s>".to_owned()];
    let mut types = vec![2, 3, 3];
    for b in 0..=255u8 {
        tokens.push(format!("<0x{b:02X}>"));
        types.push(6);
    }
    for piece in PIECES {
        tokens.push((*piece).to_owned());
        types.push(1);
    }
    tokens.push("<tool>".to_owned());
    types.push(4);
    #[allow(clippy::cast_precision_loss)]
    let scores = (0..tokens.len())
        .map(|i| {
            if (259..259 + PIECES.len()).contains(&i) {
                -((i - 259) as f32)
            } else {
                0.0
            }
        })
        .collect();
    (tokens, types, scores)
}

fn metadata() -> Vec<(String, Value)> {
    let (tokens, types, scores) = vocabulary();
    vec![
        ("tokenizer.ggml.model".into(), Value::String("llama".into())),
        (
            "tokenizer.ggml.tokens".into(),
            Value::Array(tokens.into_iter().map(Value::String).collect()),
        ),
        (
            "tokenizer.ggml.token_type".into(),
            Value::Array(types.into_iter().map(Value::I32).collect()),
        ),
        (
            "tokenizer.ggml.scores".into(),
            Value::Array(scores.into_iter().map(Value::F32).collect()),
        ),
        ("tokenizer.ggml.bos_token_id".into(), Value::U32(1)),
        ("tokenizer.ggml.eos_token_id".into(), Value::U32(2)),
        ("tokenizer.ggml.unknown_token_id".into(), Value::U32(0)),
    ]
}

/// Writes the vocabulary as a GGUF file and loads it through the file path.
fn spm_tokenizer() -> TextTokenizer {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spm.gguf");
    let metadata = metadata();
    let refs: Vec<(&str, &Value)> = metadata.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let mut file = std::fs::File::create(&path).unwrap();
    gguf_file::write(&mut file, &refs, &[]).unwrap();
    drop(file);
    TextTokenizer::from_gguf_file(&path).unwrap()
}

fn id(token: &str) -> u32 {
    let (tokens, _, _) = vocabulary();
    u32::try_from(tokens.iter().position(|t| t == token).unwrap()).unwrap()
}

/// SentencePiece as llama.cpp runs it, written plainly: start from
/// characters, repeatedly join the adjacent pair whose joined text is the
/// best-scoring piece (leftmost on ties), then spell leftovers as bytes.
fn reference_encode(text: &str) -> Vec<u32> {
    let (tokens, types, scores) = vocabulary();
    let normal: HashMap<&str, usize> = tokens
        .iter()
        .enumerate()
        .filter(|(i, _)| types[*i] == 1)
        .map(|(i, t)| (t.as_str(), i))
        .collect();
    let text = format!("▁{}", text.replace(' ', "▁"));
    let mut symbols: Vec<String> = text.chars().map(String::from).collect();
    loop {
        let mut best: Option<(f32, usize)> = None;
        for i in 0..symbols.len().saturating_sub(1) {
            let joined = format!("{}{}", symbols[i], symbols[i + 1]);
            if let Some(&token) = normal.get(joined.as_str())
                && best.is_none_or(|(score, _)| scores[token] > score)
            {
                best = Some((scores[token], i));
            }
        }
        let Some((_, i)) = best else { break };
        let right = symbols.remove(i + 1);
        symbols[i].push_str(&right);
    }
    symbols
        .iter()
        .flat_map(|s| match normal.get(s.as_str()) {
            Some(&token) => vec![u32::try_from(token).unwrap()],
            None => s.bytes().map(|b| id(&format!("<0x{b:02X}>"))).collect(),
        })
        .collect()
}

#[test]
fn known_strings_tokenize_as_sentencepiece_does() {
    let tok = spm_tokenizer();
    assert_eq!(
        tok.encode("hello world", false).unwrap(),
        vec![id("▁hello"), id("▁world")]
    );
    // 😀 is not a piece: its four UTF-8 bytes become byte tokens.
    let emoji = ["<0xF0>", "<0x9F>", "<0x98>", "<0x80>"].map(id);
    let mut expected = vec![id("▁hello"), id("▁")];
    expected.extend(emoji);
    assert_eq!(tok.encode("hello 😀", false).unwrap(), expected);
    // add_bos defaults to true for SentencePiece.
    assert!(tok.specials().add_bos);
    assert_eq!(tok.encode("hello", true).unwrap(), vec![1, id("▁hello")]);
    // Control and user-defined tokens match whole.
    assert_eq!(
        tok.encode("hello</s><tool>", false).unwrap(),
        vec![id("▁hello"), 2, id("<tool>")]
    );
}

#[test]
fn matches_a_plain_sentencepiece_reference_on_many_strings() {
    let tok = spm_tokenizer();
    let alphabet: Vec<char> = "helowrdabcé x😀".chars().collect();
    // A fixed linear congruential sequence: varied strings, same every run.
    let mut state: u64 = 0x2545_F491_4F6C_DD1D;
    let mut next = move || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        usize::try_from(state >> 33).unwrap()
    };
    let mut texts: Vec<String> = vec![
        "hello".into(),
        "hellohello world".into(),
        "abc ab a".into(),
        "xyz".into(),
    ];
    for _ in 0..300 {
        let len = 1 + next() % 14;
        texts.push(
            (0..len)
                .map(|_| alphabet[next() % alphabet.len()])
                .collect(),
        );
    }
    for text in &texts {
        assert_eq!(
            tok.encode(text, false).unwrap(),
            reference_encode(text),
            "{text:?}"
        );
        // Decoding gives the text back (the prefix space is stripped again).
        let ids = tok.encode(text, false).unwrap();
        assert_eq!(tok.decode(&ids, false).unwrap(), *text, "{text:?}");
    }
}

#[test]
fn byte_fallback_tokens_stream_without_splitting_characters() {
    let tok = spm_tokenizer();
    let text = "hello 😀 world é😀";
    let ids = tok.encode(text, true).unwrap();
    let mut decoder = tok.stream_decoder(true);
    let mut pieces: Vec<String> = ids
        .iter()
        .filter_map(|&id| decoder.push(id).unwrap())
        .collect();
    pieces.extend(decoder.flush().unwrap());
    assert_eq!(pieces.concat(), text);
    assert!(pieces.iter().all(|p| !p.contains('\u{FFFD}')), "{pieces:?}");
    assert!(
        pieces.contains(&"😀".to_owned()),
        "the emoji arrives whole: {pieces:?}"
    );
    // The first word has no leading space; later words keep theirs.
    assert_eq!(pieces[0], "hello");
    assert!(pieces.contains(&" world".to_owned()), "{pieces:?}");
}

#[test]
fn add_space_prefix_false_keeps_text_as_is() {
    let mut metadata: HashMap<String, Value> = metadata().into_iter().collect();
    metadata.insert("tokenizer.ggml.add_space_prefix".into(), Value::Bool(false));
    metadata.insert("tokenizer.ggml.add_bos_token".into(), Value::Bool(false));
    let tok = TextTokenizer::from_gguf(&crate::content(metadata)).unwrap();
    assert_eq!(
        tok.encode("hello", true).unwrap(),
        vec![id("he"), id("llo")]
    );
    assert_eq!(tok.decode(&[id("▁world")], false).unwrap(), " world");
}

#[test]
fn scores_of_the_wrong_length_are_rejected() {
    let mut metadata: HashMap<String, Value> = metadata().into_iter().collect();
    metadata.insert(
        "tokenizer.ggml.scores".into(),
        Value::Array(vec![Value::F32(0.0); 3]),
    );
    let err = TextTokenizer::from_gguf(&crate::content(metadata)).unwrap_err();
    assert!(
        matches!(&err, Error::LengthMismatch { key, expected: 291, found: 3 } if key == "tokenizer.ggml.scores"),
        "{err}"
    );
}
