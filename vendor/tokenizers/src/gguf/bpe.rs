//! `tokenizer.ggml.model = gpt2`: byte-level BPE.

use tokenizers::Tokenizer;
use tokenizers::decoders::byte_level::ByteLevel;
use tokenizers::models::bpe::BPE;

use super::meta::Meta;
use super::pretok::pre_tokenizer_spec;
use super::{Vocab, keys};
use crate::error::{Error, Result};

/// Returns the tokenizer and llama.cpp's default for adding BOS with this pre-tokenizer.
pub(super) fn build(
    meta: &Meta<'_>,
    vocab: &Vocab<'_>,
    unk: Option<u32>,
) -> Result<(Tokenizer, bool)> {
    let spec = pre_tokenizer_spec(meta.string(keys::PRE)?)?;
    let raw_merges = meta
        .string_array(keys::MERGES)?
        .ok_or_else(|| Error::MissingKey {
            key: keys::MERGES.to_owned(),
        })?;
    let map = vocab.map();
    let merges = checked_merges(&raw_merges, &map)?;

    let mut builder = BPE::builder()
        .vocab_and_merges(map, merges)
        .ignore_merges(spec.ignore_merges);
    if let Some(unk) = unk.and_then(|id| vocab.content(id)) {
        builder = builder.unk_token(unk.to_owned());
    }
    let model = builder.build().map_err(|source| Error::Build {
        part: "BPE model",
        source,
    })?;

    let mut tokenizer = Tokenizer::new(model);
    tokenizer.with_normalizer(spec.normalizer());
    tokenizer.with_pre_tokenizer(Some(spec.pre_tokenizer()?));
    tokenizer.with_decoder(Some(ByteLevel::default()));
    Ok((tokenizer, spec.default_add_bos))
}

/// Splits `left right` merges and checks that both sides and their
/// concatenation are tokens, so a bad merge is reported by position instead
/// of as a bare `tokenizers` error.
fn checked_merges(
    raw: &[&str],
    map: &tokenizers::models::bpe::Vocab,
) -> Result<Vec<(String, String)>> {
    raw.iter()
        .enumerate()
        .map(|(index, merge)| {
            let (left, right) = merge
                .split_once(' ')
                .filter(|(l, r)| !l.is_empty() && !r.is_empty() && !r.contains(' '))
                .ok_or_else(|| Error::MalformedMerge {
                    index,
                    merge: (*merge).to_owned(),
                })?;
            let joined = format!("{left}{right}");
            for token in [left, right, joined.as_str()] {
                if !map.contains_key(token) {
                    return Err(Error::MergeUnknownToken {
                        index,
                        merge: (*merge).to_owned(),
                        token: token.to_owned(),
                    });
                }
            }
            Ok((left.to_owned(), right.to_owned()))
        })
        .collect()
}
