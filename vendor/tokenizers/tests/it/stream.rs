//! StreamDecoder on the SmolLM2 byte-level vocabulary.

use tektra_tokenizers::{Error, StreamDecoder};

use crate::{fixture, smollm};

/// Streams `ids`, returning every piece (flush included).
fn stream(decoder: &mut StreamDecoder, ids: &[u32]) -> Vec<String> {
    let mut pieces: Vec<String> = ids
        .iter()
        .filter_map(|&id| decoder.push(id).unwrap())
        .collect();
    pieces.extend(decoder.flush().unwrap());
    pieces
}

#[test]
fn streamed_pieces_concatenate_to_the_full_decode_for_every_fixture_string() {
    let tok = smollm();
    for skip_special in [false, true] {
        let mut decoder = tok.stream_decoder(skip_special);
        for case in &fixture().cases {
            let pieces = stream(&mut decoder, &case.ids);
            assert_eq!(
                pieces.concat(),
                tok.decode(&case.ids, skip_special).unwrap(),
                "{:?}",
                case.text
            );
            // No piece is a partial character shown as U+FFFD, and none is empty.
            for piece in &pieces {
                assert!(
                    !piece.contains('\u{FFFD}') && !piece.is_empty(),
                    "{:?}: {pieces:?}",
                    case.text
                );
            }
        }
    }
}

#[test]
fn multi_token_characters_are_withheld_until_complete() {
    let tok = smollm();
    for text in ["😀", "👍🏽", "日本語", "🇫🇷"] {
        let ids = tok.encode(text, false).unwrap();
        assert!(
            ids.len() > 1,
            "{text} should need several byte-level tokens: {ids:?}"
        );
        let mut decoder = tok.stream_decoder(false);
        let mut out = String::new();
        for (i, &id) in ids.iter().enumerate() {
            if let Some(piece) = decoder.push(id).unwrap() {
                assert!(
                    text.starts_with(&(out.clone() + &piece)),
                    "{piece:?} after {i} tokens of {text}"
                );
                out.push_str(&piece);
            }
        }
        assert_eq!(
            decoder.flush().unwrap(),
            None,
            "{text}: everything was emitted"
        );
        assert_eq!(out, text);
    }
    // The first byte token of 😀 alone gives nothing until the rest arrives.
    let ids = tok.encode("😀", false).unwrap();
    let mut decoder = tok.stream_decoder(false);
    assert_eq!(decoder.push(ids[0]).unwrap(), None);
}

#[test]
fn flush_emits_an_incomplete_character_like_decode_does() {
    let tok = smollm();
    let ids = tok.encode("ok😀", false).unwrap();
    let truncated = &ids[..ids.len() - 1];
    let mut decoder = tok.stream_decoder(false);
    let pieces = stream(&mut decoder, truncated);
    assert_eq!(pieces.concat(), tok.decode(truncated, false).unwrap());
    assert!(pieces.concat().ends_with('\u{FFFD}'));
}

#[test]
fn unknown_token_id_is_an_error_and_leaves_the_stream_usable() {
    let tok = smollm();
    let mut decoder = tok.stream_decoder(false);
    let hello = tok.encode("Hello", false).unwrap();
    assert_eq!(decoder.push(hello[0]).unwrap().as_deref(), Some("Hello"));
    let err = decoder.push(1_000_000).unwrap_err();
    assert!(
        matches!(
            err,
            Error::UnknownTokenId {
                id: 1_000_000,
                vocab_size: 49_152
            }
        ),
        "{err}"
    );
    let world = tok.encode(" world", false).unwrap();
    assert_eq!(decoder.push(world[0]).unwrap().as_deref(), Some(" world"));
    assert!(matches!(
        tok.decode(&[5, u32::MAX], false),
        Err(Error::UnknownTokenId { .. })
    ));
}

#[test]
fn skipped_special_tokens_emit_nothing() {
    let tok = smollm();
    let ids = tok
        .encode("<|im_start|>assistant\nHi<|im_end|>", false)
        .unwrap();
    let mut decoder = tok.stream_decoder(true);
    assert_eq!(decoder.push(ids[0]).unwrap(), None);
    let pieces = stream(&mut decoder, &ids[1..]);
    assert_eq!(pieces.concat(), "assistant\nHi");
}

#[test]
fn invalid_byte_runs_do_not_stall_the_stream() {
    let tok = smollm();
    // A continuation byte of 😀 on its own, many times: never valid UTF-8.
    let tail = *tok.encode("😀", false).unwrap().last().unwrap();
    let ids: Vec<u32> = std::iter::once(tok.encode("a", false).unwrap()[0])
        .chain(std::iter::repeat_n(tail, 30))
        .collect();
    let mut decoder = tok.stream_decoder(false);
    let emitted_before_flush = ids
        .iter()
        .filter_map(|&id| decoder.push(id).unwrap())
        .count();
    // Garbage is released in bounded chunks instead of withheld forever.
    assert!(emitted_before_flush >= 3, "{emitted_before_flush}");
    let mut decoder = tok.stream_decoder(false);
    assert_eq!(
        stream(&mut decoder, &ids).concat(),
        tok.decode(&ids, false).unwrap()
    );
}
