//! Integration tests of tektra-tokenizers (one binary, modules by topic).

// clippy.toml allows these inside #[test] functions; the shared helpers
// (fixtures, temp folders) fail the same loud way.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod gguf_errors;
mod load;
mod patch;
mod pretok;
mod smollm;
mod spm;
mod stream;
mod template;

use std::collections::HashMap;
use std::sync::OnceLock;

use candle_core::quantized::gguf_file::{Content, Value, VersionedMagic};
use serde::Deserialize;
use tektra_tokenizers::TextTokenizer;

/// One reference string of the committed fixture.
#[derive(Debug, Deserialize)]
struct Case {
    text: String,
    ids: Vec<u32>,
    ids_without_digit_split: Vec<u32>,
    decoded: String,
}

#[derive(Debug, Deserialize)]
struct Chat {
    messages: Vec<tektra_tokenizers::Message>,
    add_generation_prompt: bool,
    rendered: String,
}

#[derive(Debug, Deserialize)]
struct Fixture {
    gguf_sha256: String,
    llama_cpp_cross_check: Option<serde_json::Value>,
    cases: Vec<Case>,
    chats: Vec<Chat>,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let text = include_str!("../../fixtures/smollm2_reference.json");
        serde_json::from_str(text).expect("fixture parses")
    })
}

/// The SmolLM2 GGUF's metadata (read once per test process).
fn smollm_content() -> &'static Content {
    static CONTENT: OnceLock<Content> = OnceLock::new();
    CONTENT.get_or_init(|| {
        let path = tektra_testdata::smollm2_gguf();
        let mut file = std::io::BufReader::new(std::fs::File::open(path).expect("open test model"));
        Content::read(&mut file).expect("read GGUF metadata")
    })
}

fn smollm() -> &'static TextTokenizer {
    static TOKENIZER: OnceLock<TextTokenizer> = OnceLock::new();
    TOKENIZER.get_or_init(|| {
        TextTokenizer::from_gguf(smollm_content()).expect("build SmolLM2 tokenizer")
    })
}

/// In-memory GGUF content with only metadata.
fn content(metadata: HashMap<String, Value>) -> Content {
    Content {
        magic: VersionedMagic::GgufV3,
        metadata,
        tensor_infos: HashMap::new(),
        tensor_data_offset: 0,
    }
}

fn strings(items: &[&str]) -> Value {
    Value::Array(
        items
            .iter()
            .map(|s| Value::String((*s).to_owned()))
            .collect(),
    )
}
