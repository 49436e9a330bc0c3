//! Tokenizers for the Tektra inference stack, on `tokenizers` 0.22.
//!
//! - [`TextTokenizer`]: a `tokenizers::Tokenizer` loaded from tokenizer.json
//!   ([`TextTokenizer::from_dir`]) or built from GGUF metadata
//!   ([`TextTokenizer::from_gguf`]: byte-level BPE with the pre-tokenizer
//!   `tokenizer.ggml.pre` names, see [`gguf::pretok`], or SentencePiece),
//!   with its special tokens, stop tokens and chat template.
//! - [`ChatTemplate`]: HF chat templates rendered with minijinja.
//! - [`StreamDecoder`]: text out as tokens arrive, never half a character.
//!
//! ```no_run
//! use tektra_tokenizers::{Message, TextTokenizer};
//!
//! # fn main() -> Result<(), tektra_tokenizers::Error> {
//! let tok = TextTokenizer::from_gguf_file("model.gguf")?;
//! let prompt = tok.apply_chat_template(&[Message::user("Hi!")], true)?;
//! let ids = tok.encode(&prompt, false)?;
//! let mut stream = tok.stream_decoder(true);
//! for id in ids {
//!     if let Some(text) = stream.push(id)? {
//!         print!("{text}");
//!     }
//! }
//! if let Some(text) = stream.flush()? {
//!     print!("{text}");
//! }
//! # Ok(())
//! # }
//! ```

mod error;
pub mod gguf;
mod load;
mod stream;
mod template;
mod text;

pub use error::{Error, Result};
pub use stream::StreamDecoder;
pub use template::{ChatTemplate, Message, TEMPLATE_FUEL};
pub use text::{SpecialToken, SpecialTokens, TextTokenizer};
/// The `tokenizers` crate this one builds on, for callers that need its API.
pub use tokenizers;
