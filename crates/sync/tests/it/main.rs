//! The real tool on a scratch git repository made from a copy of this
//! workspace: a pin moved back and synced forward, a patch that no longer
//! applies, a bump that brings a second tokenizers. Build, test and bench
//! are skipped (`--skip`): they are the workspace's own suite, and would
//! make each test take most of an hour. api-drift is skipped too (two
//! rustdoc builds per crate); its logic has unit tests.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr,
    missing_docs,
    unreachable_pub
)]

mod common;
mod sync;
