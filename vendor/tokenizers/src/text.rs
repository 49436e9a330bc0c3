//! [`TextTokenizer`]: a `tokenizers::Tokenizer` with what an inference engine
//! needs next to it (special tokens, stop tokens, chat template).

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use candle_core::quantized::gguf_file;

use crate::error::{Error, Result};
use crate::stream::StreamDecoder;
use crate::template::{ChatTemplate, Message};

/// One special token: its id and its text.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SpecialToken {
    /// Token id.
    pub id: u32,
    /// Token text, e.g. `<|im_start|>`.
    pub content: String,
}

/// The special tokens of a vocabulary and how encoding uses them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SpecialTokens {
    /// Beginning of sequence.
    pub bos: Option<SpecialToken>,
    /// End of sequence.
    pub eos: Option<SpecialToken>,
    /// Padding.
    pub pad: Option<SpecialToken>,
    /// Unknown.
    pub unk: Option<SpecialToken>,
    /// Whether `encode(.., add_special_tokens = true)` puts BOS first.
    pub add_bos: bool,
    /// Whether `encode(.., add_special_tokens = true)` puts EOS last.
    pub add_eos: bool,
    /// Tokens that end generation: EOS, end-of-turn and the like.
    pub stop_ids: BTreeSet<u32>,
}

impl SpecialTokens {
    /// Whether generation should stop at `id`.
    #[must_use]
    pub fn is_stop(&self, id: u32) -> bool {
        self.stop_ids.contains(&id)
    }
}

/// A loaded tokenizer: the `tokenizers` tokenizer, its special tokens and,
/// when the model has one, its chat template.
///
/// Cheap to clone: the tokenizer is shared.
#[derive(Debug, Clone)]
pub struct TextTokenizer {
    tokenizer: Arc<tokenizers::Tokenizer>,
    specials: SpecialTokens,
    chat_template: Option<ChatTemplate>,
}

impl TextTokenizer {
    /// Wraps parts that were loaded elsewhere.
    #[must_use]
    pub fn new(
        tokenizer: tokenizers::Tokenizer,
        specials: SpecialTokens,
        chat_template: Option<ChatTemplate>,
    ) -> Self {
        Self {
            tokenizer: Arc::new(tokenizer),
            specials,
            chat_template,
        }
    }

    /// Loads a tokenizer.json alone (no special-token names, no template):
    /// see [`TextTokenizer::from_dir`] for a model folder.
    ///
    /// # Errors
    /// When the file cannot be read or is not a tokenizer.json.
    pub fn from_file(tokenizer_json: impl AsRef<Path>) -> Result<Self> {
        crate::load::from_files(tokenizer_json.as_ref(), None)
    }

    /// Loads tokenizer.json with its tokenizer_config.json (special tokens,
    /// `add_bos_token`, chat template).
    ///
    /// # Errors
    /// When a file cannot be read or has a shape we cannot use.
    pub fn from_files(
        tokenizer_json: impl AsRef<Path>,
        tokenizer_config: impl AsRef<Path>,
    ) -> Result<Self> {
        crate::load::from_files(tokenizer_json.as_ref(), Some(tokenizer_config.as_ref()))
    }

    /// Loads a model folder: tokenizer.json, and when present
    /// tokenizer_config.json, chat_template.jinja and generation_config.json
    /// (whose `eos_token_id` adds stop tokens).
    ///
    /// # Errors
    /// When tokenizer.json is missing or a present file is unusable.
    pub fn from_dir(dir: impl AsRef<Path>) -> Result<Self> {
        crate::load::from_dir(dir.as_ref())
    }

    /// Builds the tokenizer from GGUF metadata (`tokenizer.ggml.*`,
    /// `tokenizer.chat_template`).
    ///
    /// # Errors
    /// When the metadata is missing, mistyped or inconsistent; see [`Error`].
    pub fn from_gguf(content: &gguf_file::Content) -> Result<Self> {
        let built = crate::gguf::build(&content.metadata)?;
        let chat_template =
            ChatTemplate::from_gguf_metadata(&content.metadata, None, &built.specials)?;
        Ok(Self::new(built.tokenizer, built.specials, chat_template))
    }

    /// Reads a GGUF file's metadata (not its tensors) and builds the tokenizer.
    ///
    /// # Errors
    /// When the file cannot be read or its metadata is unusable.
    pub fn from_gguf_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        // The weight loader's parser: every length checked against the
        // file, value counts capped, alignment and types validated.
        let gguf = tektra_candle::gguf::GgufFile::open(path).map_err(|e| match e {
            tektra_candle::Error::Open { path, source } => Error::Io { path, source },
            other => Error::GgufHeader {
                path: path.to_owned(),
                reason: chain(&other),
            },
        })?;
        let content = gguf.content();
        Self::from_gguf(&content)
    }

    /// The underlying `tokenizers` tokenizer.
    #[must_use]
    pub fn tokenizer(&self) -> &tokenizers::Tokenizer {
        &self.tokenizer
    }

    /// A shared handle to the underlying tokenizer.
    #[must_use]
    pub fn shared(&self) -> Arc<tokenizers::Tokenizer> {
        Arc::clone(&self.tokenizer)
    }

    /// Special tokens and stop tokens.
    #[must_use]
    pub fn specials(&self) -> &SpecialTokens {
        &self.specials
    }

    /// The chat template, if the model has one.
    #[must_use]
    pub fn chat_template(&self) -> Option<&ChatTemplate> {
        self.chat_template.as_ref()
    }

    /// Replaces the chat template (e.g. one the user supplied).
    pub fn set_chat_template(&mut self, template: Option<ChatTemplate>) {
        self.chat_template = template;
    }

    /// Number of tokens, added tokens included.
    #[must_use]
    pub fn vocab_size(&self) -> usize {
        self.tokenizer.get_vocab_size(true)
    }

    /// Token ids for `text`. Special tokens written in the text (such as
    /// `<|im_start|>`) always become their ids; `add_special_tokens` adds BOS/EOS
    /// as the model asks ([`SpecialTokens::add_bos`]). A rendered chat template
    /// usually carries its own BOS: encode it with `add_special_tokens = false`.
    ///
    /// # Errors
    /// When `tokenizers` fails to encode.
    pub fn encode(&self, text: &str, add_special_tokens: bool) -> Result<Vec<u32>> {
        self.tokenizer
            .encode(text, add_special_tokens)
            .map(|encoding| encoding.get_ids().to_vec())
            .map_err(|source| Error::Tokenize {
                operation: "encode text",
                source,
            })
    }

    /// Text for `ids`; unknown ids are an error rather than silently dropped.
    ///
    /// # Errors
    /// [`Error::UnknownTokenId`] for an id outside the vocabulary.
    pub fn decode(&self, ids: &[u32], skip_special_tokens: bool) -> Result<String> {
        crate::stream::check_ids(&self.tokenizer, ids)?;
        self.tokenizer
            .decode(ids, skip_special_tokens)
            .map_err(|source| Error::Tokenize {
                operation: "decode tokens",
                source,
            })
    }

    /// A streaming decoder for generated tokens.
    #[must_use]
    pub fn stream_decoder(&self, skip_special_tokens: bool) -> StreamDecoder {
        StreamDecoder::new(self.shared(), skip_special_tokens)
    }

    /// Whether generation should stop at `id`.
    #[must_use]
    pub fn is_stop(&self, id: u32) -> bool {
        self.specials.is_stop(id)
    }

    /// Renders `messages` with the model's chat template.
    ///
    /// # Errors
    /// [`Error::NoChatTemplate`] when there is none; template errors otherwise.
    pub fn apply_chat_template(
        &self,
        messages: &[Message],
        add_generation_prompt: bool,
    ) -> Result<String> {
        self.chat_template
            .as_ref()
            .ok_or(Error::NoChatTemplate { name: None })?
            .render(messages, add_generation_prompt)
    }
}

/// An error and its causes on one line.
fn chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}
