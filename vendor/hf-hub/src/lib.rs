//! Tektra's fork of `hf-hub`: upstream 0.4.3's public API (`Repo`,
//! `RepoType`, `Cache`, `CacheRepo`, `api::sync`, `api::tokio`) over an
//! engine of our own that verifies every byte, resumes across restarts,
//! downloads large files over several connections, can be cancelled, works
//! offline, and reports progress as structured events.
//!
//! The engine is [`Hub`]; its stages are modules you can use alone:
//! [`resolve`] -> `plan` (in [`download`]) -> `transfer` -> [`verify`] ->
//! [`cache`].

mod client;
mod compat;
mod download;
mod frontier;
mod http;
mod options;
mod transfer;
#[cfg(feature = "xet")]
mod xet;

pub mod api;
pub mod cache;
pub mod env;
pub mod error;
pub mod filter;
pub mod ids;
pub mod ranges;
pub mod resolve;
pub mod retry;
pub mod verify;

pub use client::{Hub, display_url};
pub use compat::{Cache, CacheRepo, Repo, RepoType};
pub use download::{CachedFile, Snapshot};
pub use error::HubError;
pub use frontier::{Frontier, Prefix};
pub use http::install_tls_provider;
pub use options::{HubOptions, Limits, MAX_CHUNK, MAX_CONNECTIONS, MIN_CHUNK, XetMode};
pub use tektra_progress as progress;
pub use transfer::TransferStats;
