//! The one error type of this crate.

use std::path::PathBuf;

/// Everything that can go wrong while loading a tokenizer, rendering a chat
/// template or decoding a stream.
///
/// Input (files, GGUF metadata, templates, token ids) is untrusted: every
/// problem with it ends up here, naming the file, key or token involved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file could not be read.
    #[error("cannot read {}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A JSON file (tokenizer_config.json, generation_config.json) is not valid JSON.
    #[error("{file} is not valid JSON")]
    Json {
        /// The file (or a description of in-memory text).
        file: String,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// A field of a JSON config file has a shape we cannot use.
    #[error("`{field}` in {file} {reason}")]
    ConfigField {
        /// The file (or a description of in-memory text).
        file: String,
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// `tokenizers` refused a tokenizer.json.
    #[error("cannot load the tokenizer from {}", path.display())]
    TokenizerJson {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: tokenizers::Error,
    },
    /// The GGUF header or metadata could not be read.
    #[error("cannot read the GGUF metadata of {}", path.display())]
    GgufRead {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: candle_core::Error,
    },
    /// The GGUF header is malformed (lengths beyond the file, bad magic, ...).
    #[error("the GGUF header of {} is malformed: {reason}", path.display())]
    GgufHeader {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A required GGUF metadata key is absent.
    #[error("GGUF metadata key `{key}` is missing")]
    MissingKey {
        /// The key.
        key: String,
    },
    /// A GGUF metadata value has the wrong type.
    #[error("GGUF metadata key `{key}` should be {expected}, found {found}")]
    WrongType {
        /// The key (with `[index]` for an array element).
        key: String,
        /// What was expected.
        expected: &'static str,
        /// What was found.
        found: String,
    },
    /// A per-token GGUF array does not have one entry per token.
    #[error(
        "GGUF metadata key `{key}` has {found} entries but the vocabulary has {expected} tokens"
    )]
    LengthMismatch {
        /// The key.
        key: String,
        /// Number of tokens.
        expected: usize,
        /// Number of entries found.
        found: usize,
    },
    /// A token id in GGUF metadata does not name a token of the vocabulary.
    #[error(
        "GGUF metadata key `{key}` names token {id}, but the vocabulary has {vocab_size} tokens"
    )]
    TokenIdOutOfRange {
        /// The key.
        key: String,
        /// The id found.
        id: i128,
        /// Number of tokens.
        vocab_size: usize,
    },
    /// The vocabulary has no tokens.
    #[error("GGUF metadata key `tokenizer.ggml.tokens` is empty")]
    EmptyVocabulary,
    /// A merge is not two tokens separated by one space.
    #[error("merge #{index} `{merge}` in `tokenizer.ggml.merges` is not `left right`")]
    MalformedMerge {
        /// Position in the merges array.
        index: usize,
        /// The merge text.
        merge: String,
    },
    /// A merge names a token (or a merged result) that is not in the vocabulary.
    #[error(
        "merge #{index} `{merge}` in `tokenizer.ggml.merges` needs token `{token}`, which is not in the vocabulary"
    )]
    MergeUnknownToken {
        /// Position in the merges array.
        index: usize,
        /// The merge text.
        merge: String,
        /// The missing token.
        token: String,
    },
    /// `tokenizer.ggml.model` names a tokenizer kind we do not build.
    #[error(
        "tokenizer model `{model}` (tokenizer.ggml.model) is not supported; supported: gpt2, llama"
    )]
    UnsupportedModel {
        /// The value found.
        model: String,
    },
    /// `tokenizer.ggml.pre` names a pre-tokenizer we do not know.
    #[error("pre-tokenizer `{name}` (tokenizer.ggml.pre) is not supported")]
    UnsupportedPreTokenizer {
        /// The value found.
        name: String,
    },
    /// `tokenizers` refused a component we assembled from GGUF metadata.
    #[error("cannot build the tokenizer's {part} from GGUF metadata")]
    Build {
        /// Which component.
        part: &'static str,
        /// Why.
        #[source]
        source: tokenizers::Error,
    },
    /// Encoding or decoding failed inside `tokenizers`.
    #[error("cannot {operation}")]
    Tokenize {
        /// `encode text` or `decode tokens`.
        operation: &'static str,
        /// Why.
        #[source]
        source: tokenizers::Error,
    },
    /// A token id given for decoding is not in the vocabulary.
    #[error("token id {id} is not in the vocabulary of {vocab_size} tokens")]
    UnknownTokenId {
        /// The id.
        id: u32,
        /// Vocabulary size, added tokens included.
        vocab_size: usize,
    },
    /// There is no chat template (none in the config, the GGUF, or under that name).
    #[error("no chat template{}", name.as_deref().map(|n| format!(" named `{n}`")).unwrap_or_default())]
    NoChatTemplate {
        /// The name asked for, if any.
        name: Option<String>,
    },
    /// The chat template does not compile.
    #[error("chat template `{name}` does not compile")]
    TemplateSyntax {
        /// Template name.
        name: String,
        /// Why.
        #[source]
        source: minijinja::Error,
    },
    /// The template called `raise_exception(...)`: it refuses this conversation
    /// (for example roles that do not alternate).
    #[error("chat template `{name}` refused the conversation: {message}")]
    TemplateRaised {
        /// Template name.
        name: String,
        /// The template's own message.
        message: String,
    },
    /// Rendering failed for another reason.
    #[error("chat template `{name}` failed to render")]
    TemplateRender {
        /// Template name.
        name: String,
        /// Why.
        #[source]
        source: minijinja::Error,
    },
    /// The extra context given to a template is not a map of names to values.
    #[error("extra chat-template context must serialize to a map, found {found}")]
    TemplateContext {
        /// The kind of value found.
        found: String,
    },
}

/// This crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
