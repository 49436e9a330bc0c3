//! Integration tests of tektra-candle: real files written to temporary
//! directories, the real SmolLM2 GGUF, real candle models.
// Helpers outside `#[test]` functions fail loudly too, like the tests.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod cancel;
mod common;
mod gguf;
mod malformed_gguf;
mod malformed_safetensors;
mod resolve;
mod safetensors;

/// Counts live heap bytes, so the cancellation test can see that partial
/// tensors are freed (RSS alone lags behind the allocator).
#[global_allocator]
static ALLOC: common::Counting = common::Counting;
