//! [`StreamDecoder`]: text out as generated tokens come in.
//!
//! Decoding token by token is wrong in two ways: a byte-level or byte-fallback
//! token may carry only part of a UTF-8 character (an emoji is often three or
//! four tokens), and decoders such as SentencePiece's drop the leading space
//! of the first token of whatever they decode. So each step decodes a short
//! window, the last emitted tokens plus the new ones, and emits only what the
//! new ones add, and only once the text no longer ends in a partial
//! character (U+FFFD from the lossy byte decoding).

use std::sync::Arc;

use tokenizers::Tokenizer;

use crate::error::{Error, Result};

/// A partial character needs at most three more bytes; past this many
/// withheld tokens the bytes are simply invalid and are emitted as U+FFFD,
/// as a full decode would show them.
const MAX_WITHHELD: usize = 8;

/// Incremental detokenizer: push generated ids, get text pieces whose
/// concatenation equals decoding all ids at once.
#[derive(Debug, Clone)]
pub struct StreamDecoder {
    tokenizer: Arc<Tokenizer>,
    skip_special_tokens: bool,
    /// The window: already-emitted context tokens, then withheld ones.
    ids: Vec<u32>,
    /// `ids[..read]` has been emitted.
    read: usize,
}

impl StreamDecoder {
    /// A decoder over `tokenizer`; `skip_special_tokens` drops special tokens
    /// from the text as `Tokenizer::decode` does.
    #[must_use]
    pub fn new(tokenizer: Arc<Tokenizer>, skip_special_tokens: bool) -> Self {
        Self {
            tokenizer,
            skip_special_tokens,
            ids: Vec::new(),
            read: 0,
        }
    }

    /// Adds one token; returns the text it completes, if any.
    ///
    /// # Errors
    /// [`Error::UnknownTokenId`] for an id outside the vocabulary (the
    /// decoder is unchanged then); decoding errors from `tokenizers`.
    pub fn push(&mut self, id: u32) -> Result<Option<String>> {
        check_ids(&self.tokenizer, &[id])?;
        self.ids.push(id);
        self.emit(false)
    }

    /// Emits whatever is still withheld (at the end of generation), even an
    /// incomplete character, as U+FFFD.
    ///
    /// # Errors
    /// Decoding errors from `tokenizers`.
    pub fn flush(&mut self) -> Result<Option<String>> {
        let piece = self.emit(true)?;
        self.ids.clear();
        self.read = 0;
        Ok(piece)
    }

    /// Forgets everything, for a new generation.
    pub fn reset(&mut self) {
        self.ids.clear();
        self.read = 0;
    }

    fn decode(&self, ids: &[u32]) -> Result<String> {
        self.tokenizer
            .decode(ids, self.skip_special_tokens)
            .map_err(|source| Error::Tokenize {
                operation: "decode tokens",
                source,
            })
    }

    fn emit(&mut self, finish: bool) -> Result<Option<String>> {
        if self.read == self.ids.len() {
            return Ok(None);
        }
        let before = self.decode(&self.ids[..self.read])?;
        let now = self.decode(&self.ids)?;
        let withheld = self.ids.len() - self.read;
        if !finish && now.ends_with('\u{FFFD}') && withheld < MAX_WITHHELD {
            return Ok(None);
        }
        let piece = match now.strip_prefix(before.as_str()) {
            Some(new) => new.to_owned(),
            // Our decoders never rewrite earlier text; should one, emit from
            // the first difference rather than fail mid-generation.
            None => now[common_prefix_len(&before, &now)..].to_owned(),
        };
        // Keep only the newly emitted tokens as context for the next step.
        self.ids.drain(..self.read);
        self.read = self.ids.len();
        Ok((!piece.is_empty()).then_some(piece))
    }
}

/// Length in bytes of the longest common prefix, on a character boundary.
fn common_prefix_len(a: &str, b: &str) -> usize {
    a.char_indices()
        .zip(b.chars())
        .find(|((_, x), y)| x != y)
        .map_or_else(|| a.len().min(b.len()), |((i, _), _)| i)
}

/// Rejects ids the tokenizer cannot decode (it would drop them silently).
pub(crate) fn check_ids(tokenizer: &Tokenizer, ids: &[u32]) -> Result<()> {
    match ids.iter().find(|&&id| tokenizer.id_to_token(id).is_none()) {
        Some(&id) => Err(Error::UnknownTokenId {
            id,
            vocab_size: tokenizer.get_vocab_size(true),
        }),
        None => Ok(()),
    }
}
