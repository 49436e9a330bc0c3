//! Building a tokenizer from GGUF metadata (`tokenizer.ggml.*`).
//!
//! Two vocabulary kinds are supported: `gpt2` (byte-level BPE with merges,
//! split by the pre-tokenizer `tokenizer.ggml.pre` names, see [`pretok`]) and
//! `llama` (SentencePiece with scores, rebuilt as BPE with byte fallback, see
//! `spm`). Special tokens come from the token types and the `*_token_id` keys.

mod bpe;
mod meta;
pub mod pretok;
mod spm;

use std::collections::{BTreeSet, HashMap};

use candle_core::quantized::gguf_file::Value;
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{AddedToken, Tokenizer};

use crate::error::{Error, Result};
use crate::text::{SpecialToken, SpecialTokens};
use meta::Meta;
pub(crate) use meta::describe;

/// GGUF metadata keys, as llama.cpp writes them.
pub mod keys {
    /// Vocabulary kind: `gpt2` or `llama` here.
    pub const MODEL: &str = "tokenizer.ggml.model";
    /// Pre-tokenizer name (byte-level BPE only).
    pub const PRE: &str = "tokenizer.ggml.pre";
    /// Token texts, indexed by id.
    pub const TOKENS: &str = "tokenizer.ggml.tokens";
    /// Token types (1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte).
    pub const TOKEN_TYPE: &str = "tokenizer.ggml.token_type";
    /// SentencePiece scores, one per token.
    pub const SCORES: &str = "tokenizer.ggml.scores";
    /// BPE merges, `left right`, highest priority first.
    pub const MERGES: &str = "tokenizer.ggml.merges";
    /// Beginning-of-sequence token id.
    pub const BOS_ID: &str = "tokenizer.ggml.bos_token_id";
    /// End-of-sequence token id.
    pub const EOS_ID: &str = "tokenizer.ggml.eos_token_id";
    /// End-of-turn token id.
    pub const EOT_ID: &str = "tokenizer.ggml.eot_token_id";
    /// End-of-message token id.
    pub const EOM_ID: &str = "tokenizer.ggml.eom_token_id";
    /// Unknown token id.
    pub const UNK_ID: &str = "tokenizer.ggml.unknown_token_id";
    /// Padding token id.
    pub const PAD_ID: &str = "tokenizer.ggml.padding_token_id";
    /// Whether encoding adds BOS.
    pub const ADD_BOS: &str = "tokenizer.ggml.add_bos_token";
    /// Whether encoding adds EOS.
    pub const ADD_EOS: &str = "tokenizer.ggml.add_eos_token";
    /// SentencePiece: whether a `▁` is put before the text.
    pub const ADD_SPACE_PREFIX: &str = "tokenizer.ggml.add_space_prefix";
    /// The default chat template; named ones are `tokenizer.chat_template.NAME`.
    pub const CHAT_TEMPLATE: &str = "tokenizer.chat_template";
}

/// Control tokens that end a turn in common chat formats; llama.cpp also stops on these.
pub(crate) const END_OF_TURN_MARKERS: &[&str] = &[
    "<|eot_id|>",
    "<|eom_id|>",
    "<|im_end|>",
    "<|end|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "<|end_of_text|>",
    "<EOT>",
    "<|return|>",
    "<|call|>",
];

/// The type of one vocabulary entry (`tokenizer.ggml.token_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenType {
    Normal,
    Unknown,
    Control,
    UserDefined,
    Unused,
    Byte,
}

impl TokenType {
    fn from_code(code: i128) -> Self {
        match code {
            2 => Self::Unknown,
            3 => Self::Control,
            4 => Self::UserDefined,
            5 => Self::Unused,
            6 => Self::Byte,
            // 1, and 0 ("undefined") that some converters write.
            _ => Self::Normal,
        }
    }
}

/// The vocabulary as the GGUF lists it.
pub(crate) struct Vocab<'a> {
    pub(crate) tokens: Vec<&'a str>,
    pub(crate) types: Vec<TokenType>,
}

impl Vocab<'_> {
    /// Text -> id. A text listed twice keeps its first id (llama.cpp keeps one too).
    pub(crate) fn map(&self) -> tokenizers::models::bpe::Vocab {
        let mut map = tokenizers::models::bpe::Vocab::default();
        for (id, token) in (0u32..).zip(&self.tokens) {
            map.entry((*token).to_owned()).or_insert(id);
        }
        map
    }

    fn content(&self, id: u32) -> Option<&str> {
        self.tokens.get(id as usize).copied()
    }
}

/// What a GGUF gives: the tokenizer and its special tokens.
pub(crate) struct FromGguf {
    pub(crate) tokenizer: Tokenizer,
    pub(crate) specials: SpecialTokens,
}

/// Builds the tokenizer described by GGUF metadata.
pub(crate) fn build(metadata: &HashMap<String, Value>) -> Result<FromGguf> {
    let meta = Meta::new(metadata);
    let model = meta.require_string(keys::MODEL)?;
    let tokens = meta
        .string_array(keys::TOKENS)?
        .ok_or_else(|| Error::MissingKey {
            key: keys::TOKENS.to_owned(),
        })?;
    if tokens.is_empty() {
        return Err(Error::EmptyVocabulary);
    }
    let n = tokens.len();
    let types = match meta.int_array(keys::TOKEN_TYPE, n)? {
        Some(codes) => codes.into_iter().map(TokenType::from_code).collect(),
        None => vec![TokenType::Normal; n],
    };
    let vocab = Vocab { tokens, types };

    let bos = meta.token_id(keys::BOS_ID, n)?;
    let eos = meta.token_id(keys::EOS_ID, n)?;
    let unk = meta.token_id(keys::UNK_ID, n)?;
    let pad = meta.token_id(keys::PAD_ID, n)?;
    let eot = meta.token_id(keys::EOT_ID, n)?;
    let eom = meta.token_id(keys::EOM_ID, n)?;

    let (mut tokenizer, default_add_bos) = match model {
        "gpt2" => bpe::build(&meta, &vocab, unk)?,
        "llama" => spm::build(&meta, &vocab, unk)?,
        other => {
            return Err(Error::UnsupportedModel {
                model: other.to_owned(),
            });
        }
    };
    add_added_tokens(&mut tokenizer, &vocab);

    // The per-name default applies only when there is a BOS to add; an
    // explicit `add_bos_token = true` without one is an error below.
    let add_bos = meta
        .bool(keys::ADD_BOS)?
        .unwrap_or(default_add_bos && bos.is_some());
    let add_eos = meta.bool(keys::ADD_EOS)?.unwrap_or(false);
    let special = |id: Option<u32>| {
        id.and_then(|id| {
            vocab.content(id).map(|content| SpecialToken {
                id,
                content: content.to_owned(),
            })
        })
    };
    let specials = SpecialTokens {
        bos: special(bos),
        eos: special(eos),
        pad: special(pad),
        unk: special(unk),
        add_bos,
        add_eos,
        stop_ids: stop_ids(&vocab, [eos, eot, eom]),
    };
    if let Some(processor) = bos_eos_processor(&specials)? {
        tokenizer.with_post_processor(Some(processor));
    }
    Ok(FromGguf {
        tokenizer,
        specials,
    })
}

/// Control and unknown tokens become special added tokens, so they match as a
/// whole in text and `skip_special_tokens` drops them; user-defined tokens
/// match as a whole too but are ordinary text.
fn add_added_tokens(tokenizer: &mut Tokenizer, vocab: &Vocab<'_>) {
    let mut special = Vec::new();
    let mut user = Vec::new();
    for (token, kind) in vocab.tokens.iter().zip(&vocab.types) {
        match kind {
            TokenType::Control | TokenType::Unknown => {
                special.push(AddedToken::from((*token).to_owned(), true));
            }
            TokenType::UserDefined => {
                user.push(AddedToken::from((*token).to_owned(), false).normalized(false));
            }
            _ => {}
        }
    }
    tokenizer.add_special_tokens(&special);
    tokenizer.add_tokens(&user);
}

fn stop_ids<const N: usize>(vocab: &Vocab<'_>, explicit: [Option<u32>; N]) -> BTreeSet<u32> {
    let mut ids: BTreeSet<u32> = explicit.into_iter().flatten().collect();
    for (id, (token, kind)) in (0u32..).zip(vocab.tokens.iter().zip(&vocab.types)) {
        if *kind == TokenType::Control && END_OF_TURN_MARKERS.contains(token) {
            ids.insert(id);
        }
    }
    ids
}

/// A post-processor adding BOS/EOS around encoded text when the GGUF asks for it.
fn bos_eos_processor(specials: &SpecialTokens) -> Result<Option<TemplateProcessing>> {
    if !specials.add_bos && !specials.add_eos {
        return Ok(None);
    }
    let required = |token: &Option<SpecialToken>, key: &str| {
        token.clone().ok_or_else(|| Error::MissingKey {
            key: key.to_owned(),
        })
    };
    let mut before = Vec::new();
    let mut after = Vec::new();
    let mut registered = Vec::new();
    if specials.add_bos {
        let bos = required(&specials.bos, keys::BOS_ID)?;
        before.push(bos.content.clone());
        registered.push((bos.content, bos.id));
    }
    if specials.add_eos {
        let eos = required(&specials.eos, keys::EOS_ID)?;
        after.push(eos.content.clone());
        registered.push((eos.content, eos.id));
    }
    let sequence = |seq: &str, type_id: u32| -> Vec<String> {
        let tag = |t: &String| format!("{t}:{type_id}");
        before
            .iter()
            .map(tag)
            .chain(std::iter::once(format!("{seq}:{type_id}")))
            .chain(after.iter().map(tag))
            .collect()
    };
    let mut pair = sequence("$A", 0);
    pair.extend(sequence("$B", 1));
    let build_error = |reason: String| Error::Build {
        part: "BOS/EOS post-processor",
        source: reason.into(),
    };
    TemplateProcessing::builder()
        .try_single(sequence("$A", 0))
        .map_err(build_error)?
        .try_pair(pair)
        .map_err(build_error)?
        .special_tokens(registered)
        .build()
        .map(Some)
        .map_err(|e| build_error(e.to_string()))
}
