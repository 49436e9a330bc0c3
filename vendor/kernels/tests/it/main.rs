//! Kernel tests: packing against the plain decoders and candle's, every
//! kernel on every instruction set this CPU has against the integer
//! reference and against dequantized f32 products.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    clippy::print_stderr,
    missing_docs,
    unreachable_pub
)]

mod attention;
mod common;
mod math;
mod matmul;
mod pack;
mod pool;
