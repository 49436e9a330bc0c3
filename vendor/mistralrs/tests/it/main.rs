//! The engine on the real test model (SmolLM2-135M-Instruct Q4_1).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    clippy::type_complexity,
    missing_docs,
    unreachable_pub
)]

mod common;
mod correctness;
mod hostile;
mod kl;
mod loading;
#[cfg(feature = "mistralrs")]
mod mistralrs;
mod native;
mod safetensors;
