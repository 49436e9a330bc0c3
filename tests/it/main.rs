//! End-to-end tests of the `tektra` binary against the Hub server on loopback.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    missing_docs,
    unreachable_pub
)]

mod cache;
mod common;
mod daemon;
mod download;
mod engine;
mod interop;
mod mirror;
mod one_version;
mod python;
mod rate;
mod serve;
mod store;
#[cfg(feature = "xet")]
mod xet;
