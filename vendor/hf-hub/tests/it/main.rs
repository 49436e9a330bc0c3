//! Integration tests of the engine and the compat API against the Hub
//! server on loopback.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    missing_docs,
    unreachable_pub
)]

mod common;
mod compat;
#[cfg(unix)]
mod durability;
mod faults;
mod hostile;
mod layout;
mod offline;
mod options;
#[cfg(target_os = "linux")]
mod resume;
mod transfer;
#[cfg(feature = "xet")]
mod xet;
