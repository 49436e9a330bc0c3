//! The upstream sync behind `scripts/sync-upstream`: which pinned upstream
//! crates are behind the registry, and whether moving to their newest
//! releases keeps the workspace's rules (design.md).
//!
//! The steps, in order, each timed and logged under `target/sync/logs/`:
//! `behind` (ask the registry through cargo), `worktree` (a scratch git
//! worktree of HEAD; the user's tree is never written), `bump` (move the
//! pins there), `patches` (re-apply patches/ to the registry source now
//! pinned), `one-version` (no second candle, tokenizers, safetensors or
//! hf-hub in the default and `mistralrs` graphs), `build`, `test`, `bench`
//! (`scripts/bench check`), `api-drift` (public APIs from rustdoc JSON).
//! The report goes to `target/sync/report.md` and `report.json`.

pub mod api;
pub mod error;
mod exec;
pub mod graph;
pub mod patches;
pub mod registry;
pub mod report;
pub mod sync;
pub mod version;
pub mod workspace;

pub use error::{Result, SyncError};
pub use report::Report;
pub use sync::{Options, STEPS, run};
