//! Turning generated token ids into text for the caller: incremental
//! detokenization (never half a character) and stop strings (never part
//! of one), shared by every backend's generation loop.

use tektra_tokenizers::{StreamDecoder, TextTokenizer};

use crate::engine::{Sink, StopReason};
use crate::error::Result;
use crate::stop::StopMatcher;

/// Text out of tokens, as the caller sees it.
pub(crate) struct Emitter<'a> {
    decoder: StreamDecoder,
    stops: StopMatcher,
    out: &'a mut dyn Sink,
}

impl<'a> Emitter<'a> {
    pub(crate) fn new(tokenizer: &TextTokenizer, stop: Vec<String>, out: &'a mut dyn Sink) -> Self {
        Emitter {
            decoder: tokenizer.stream_decoder(true),
            stops: StopMatcher::new(stop),
            out,
        }
    }

    /// Adds a generated token; true when a stop string has appeared.
    pub(crate) fn push(&mut self, id: u32) -> Result<bool> {
        self.out.token(id);
        if let Some(piece) = self.decoder.push(id)? {
            let (out, hit) = self.stops.push(&piece);
            if !out.is_empty() {
                self.out.text(&out);
            }
            return Ok(hit);
        }
        Ok(false)
    }

    /// Sends what is held back (unless a stop string ended the text).
    pub(crate) fn finish(mut self, reason: StopReason) -> Result<()> {
        if reason != StopReason::StopString {
            let tail = self.decoder.flush()?.unwrap_or_default();
            let (mut out, hit) = self.stops.push(&tail);
            if !hit {
                out.push_str(&self.stops.flush());
            }
            if !out.is_empty() {
                self.out.text(&out);
            }
        }
        Ok(())
    }
}
