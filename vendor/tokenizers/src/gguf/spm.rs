//! `tokenizer.ggml.model = llama`: a SentencePiece vocabulary, rebuilt as BPE.
//!
//! SentencePiece BPE merges the adjacent pair whose joined text is the
//! highest-scoring token, and falls back to `<0xNN>` byte tokens for text
//! no token covers. A `tokenizers` BPE model does the same when its merges
//! are every split `left + right` of each token, ranked by the joined
//! token's score, with byte fallback on: the usual conversion of these
//! vocabularies. Spaces become `▁` and a `▁` goes in front of the text
//! (`add_space_prefix`, on unless the GGUF says otherwise), undone on decode.

use std::collections::HashMap;

use tokenizers::decoders::byte_fallback::ByteFallback;
use tokenizers::decoders::fuse::Fuse;
use tokenizers::decoders::sequence::Sequence as DecoderSequence;
use tokenizers::decoders::strip::Strip;
use tokenizers::models::bpe::BPE;
use tokenizers::normalizers::{Prepend, Replace, Sequence as NormalizerSequence};
use tokenizers::{DecoderWrapper, NormalizerWrapper, Tokenizer};

use super::meta::Meta;
use super::{TokenType, Vocab, keys};
use crate::error::{Error, Result};

/// SentencePiece's stand-in for a space.
const SPACE: &str = "\u{2581}";

/// Returns the tokenizer and the default for adding BOS (on for SentencePiece, as in llama.cpp).
pub(super) fn build(
    meta: &Meta<'_>,
    vocab: &Vocab<'_>,
    unk: Option<u32>,
) -> Result<(Tokenizer, bool)> {
    let n = vocab.tokens.len();
    // llama.cpp treats missing scores as all zero; merges then rank by id.
    let scores = meta
        .f32_array(keys::SCORES, n)?
        .unwrap_or_else(|| vec![0.0; n]);
    let add_space_prefix = meta.bool(keys::ADD_SPACE_PREFIX)?.unwrap_or(true);

    let merges = merges_from_scores(vocab, &scores);
    let unk_token = unk
        .or_else(|| {
            (0u32..)
                .zip(&vocab.types)
                .find_map(|(id, kind)| (*kind == TokenType::Unknown).then_some(id))
        })
        .and_then(|id| vocab.content(id));
    let mut builder = BPE::builder()
        .vocab_and_merges(vocab.map(), merges)
        .byte_fallback(true)
        .fuse_unk(true);
    if let Some(unk) = unk_token {
        builder = builder.unk_token(unk.to_owned());
    }
    let model = builder.build().map_err(|source| Error::Build {
        part: "SentencePiece model",
        source,
    })?;

    let mut tokenizer = Tokenizer::new(model);
    tokenizer.with_normalizer(Some(normalizer(add_space_prefix)?));
    tokenizer.with_decoder(Some(decoder(add_space_prefix)?));
    Ok((tokenizer, true))
}

/// Every `(left, right)` split of every normal token where both halves are
/// normal tokens, best joined score first; ties go to the lower ids so the
/// order does not depend on hashing.
fn merges_from_scores(vocab: &Vocab<'_>, scores: &[f32]) -> Vec<(String, String)> {
    let mut normal: HashMap<&str, u32> = HashMap::new();
    for (id, (token, kind)) in (0u32..).zip(vocab.tokens.iter().zip(&vocab.types)) {
        if *kind == TokenType::Normal {
            normal.entry(*token).or_insert(id);
        }
    }
    let mut ranked: Vec<(f32, u32, u32, &str, &str)> = Vec::new();
    for (token, &id) in &normal {
        let score = scores.get(id as usize).copied().unwrap_or(0.0);
        for (split, _) in token.char_indices().skip(1) {
            let (left, right) = token.split_at(split);
            if let (Some(&l), Some(&r)) = (normal.get(left), normal.get(right)) {
                ranked.push((score, l, r, left, right));
            }
        }
    }
    ranked.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    ranked
        .into_iter()
        .map(|(_, _, _, l, r)| (l.to_owned(), r.to_owned()))
        .collect()
}

fn normalizer(add_space_prefix: bool) -> Result<NormalizerWrapper> {
    let replace = Replace::new(" ", SPACE).map_err(|source| Error::Build {
        part: "SentencePiece normalizer",
        source,
    })?;
    let mut steps: Vec<NormalizerWrapper> = Vec::new();
    if add_space_prefix {
        steps.push(Prepend::new(SPACE.to_owned()).into());
    }
    steps.push(replace.into());
    Ok(NormalizerSequence::new(steps).into())
}

fn decoder(add_space_prefix: bool) -> Result<DecoderWrapper> {
    let replace =
        tokenizers::normalizers::Replace::new(SPACE, " ").map_err(|source| Error::Build {
            part: "SentencePiece decoder",
            source,
        })?;
    let mut steps: Vec<DecoderWrapper> = vec![
        DecoderWrapper::Replace(replace),
        ByteFallback::new().into(),
        Fuse::new().into(),
    ];
    if add_space_prefix {
        // The space the prefix added is not part of the text.
        steps.push(Strip::new(' ', 1, 0).into());
    }
    Ok(DecoderSequence::new(steps).into())
}
