//! Loading tokenizer.json folders: the SmolLM2 tokenizer saved as
//! tokenizer.json must behave exactly like the GGUF-built one.

use serde_json::json;
use tektra_tokenizers::{Error, Message, TextTokenizer};

use crate::{fixture, smollm};

/// A model folder holding the GGUF-built tokenizer as tokenizer.json.
fn folder(
    config: Option<serde_json::Value>,
    generation: Option<serde_json::Value>,
) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    smollm()
        .tokenizer()
        .save(dir.path().join("tokenizer.json"), false)
        .unwrap();
    if let Some(config) = config {
        std::fs::write(dir.path().join("tokenizer_config.json"), config.to_string()).unwrap();
    }
    if let Some(generation) = generation {
        std::fs::write(
            dir.path().join("generation_config.json"),
            generation.to_string(),
        )
        .unwrap();
    }
    dir
}

#[test]
fn saved_tokenizer_json_reloads_with_identical_ids() {
    let dir = folder(None, None);
    let loaded = TextTokenizer::from_file(dir.path().join("tokenizer.json")).unwrap();
    for case in &fixture().cases {
        assert_eq!(
            loaded.encode(&case.text, false).unwrap(),
            case.ids,
            "{:?}",
            case.text
        );
    }
    // No config: no names for the special tokens, no template.
    assert_eq!(loaded.specials().bos, None);
    assert!(loaded.chat_template().is_none());
    assert!(matches!(
        loaded.apply_chat_template(&[Message::user("x")], true),
        Err(Error::NoChatTemplate { name: None })
    ));
}

#[test]
fn model_folder_with_config_and_generation_config() {
    let template = smollm().chat_template().unwrap().source().to_owned();
    let dir = folder(
        Some(json!({
            "chat_template": template,
            "bos_token": "<|im_start|>",
            "eos_token": {"content": "<|im_end|>", "special": true},
            "pad_token": "<|im_end|>",
            "unk_token": "<|endoftext|>",
        })),
        Some(json!({"eos_token_id": [2, 4]})),
    );
    let loaded = TextTokenizer::from_dir(dir.path()).unwrap();
    let s = loaded.specials();
    assert_eq!(s.bos.as_ref().map(|t| t.id), Some(1));
    assert_eq!(
        s.eos.as_ref().map(|t| (t.id, t.content.as_str())),
        Some((2, "<|im_end|>"))
    );
    assert!(!s.add_bos, "this tokenizer.json adds no BOS");
    // EOS, generation_config's extra id, and <|endoftext|> as end-of-turn marker.
    assert_eq!(
        s.stop_ids.iter().copied().collect::<Vec<_>>(),
        vec![0, 2, 4]
    );
    let messages = [Message::user("Hi there!")];
    assert_eq!(
        loaded.apply_chat_template(&messages, true).unwrap(),
        smollm().apply_chat_template(&messages, true).unwrap()
    );
}

#[test]
fn chat_template_jinja_file_is_used_when_the_config_has_none() {
    let dir = folder(Some(json!({"eos_token": "<|im_end|>"})), None);
    std::fs::write(
        dir.path().join("chat_template.jinja"),
        "{{ messages[0].content }}{{ eos_token }}",
    )
    .unwrap();
    let loaded = TextTokenizer::from_dir(dir.path()).unwrap();
    assert_eq!(
        loaded
            .apply_chat_template(&[Message::user("hey")], false)
            .unwrap(),
        "hey<|im_end|>"
    );
}

#[test]
fn broken_files_are_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(
        TextTokenizer::from_dir(dir.path()),
        Err(Error::Io { .. })
    ));

    std::fs::write(
        dir.path().join("tokenizer.json"),
        "{\"not\": \"a tokenizer\"}",
    )
    .unwrap();
    let err = TextTokenizer::from_dir(dir.path()).unwrap_err();
    assert!(matches!(err, Error::TokenizerJson { .. }), "{err}");

    let dir = folder(Some(json!({"chat_template": ["no", "names"]})), None);
    let err = TextTokenizer::from_dir(dir.path()).unwrap_err();
    assert!(
        matches!(
            err,
            Error::ConfigField {
                field: "chat_template",
                ..
            }
        ),
        "{err}"
    );

    let dir = folder(None, Some(json!({"eos_token_id": "two"})));
    let err = TextTokenizer::from_dir(dir.path()).unwrap_err();
    assert!(
        matches!(
            err,
            Error::ConfigField {
                field: "eos_token_id",
                ..
            }
        ),
        "{err}"
    );

    let dir = folder(None, None);
    std::fs::write(dir.path().join("tokenizer_config.json"), "[1,").unwrap();
    let err = TextTokenizer::from_dir(dir.path()).unwrap_err();
    assert!(matches!(err, Error::Json { .. }), "{err}");
}
