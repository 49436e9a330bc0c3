//! `tektra-cache`: the Hub cache as data, shared with Python's
//! huggingface_hub. [`scan`] reads it as `scan_cache_dir` does (sizes of
//! unique blobs, access and modification times from the blobs, refs per
//! revision) and reports what is malformed instead of failing;
//! [`verify`] re-hashes blobs against their names; [`plan_remove`] and
//! [`plan_prune`] say what a removal deletes, [`execute`] does it under
//! the blobs' locks.
//!
//! ```no_run
//! # fn demo() -> Result<(), tektra_cache::CacheError> {
//! let scan = tektra_cache::scan(std::path::Path::new("/home/me/.cache/huggingface/hub"))?;
//! for repo in &scan.repos {
//!     println!("{} {}", repo.cache_id(), tektra_cache::format_size(repo.size));
//! }
//! let target: tektra_cache::Target = "org/name@main".parse()?;
//! let plan = tektra_cache::plan_remove(&scan, &[target])?;
//! println!("would free {} bytes", plan.freed);
//! # Ok(()) }
//! ```

mod listing;
mod prune;
mod remove;
mod scan;
mod target;
mod units;
mod verify;

use std::path::{Path, PathBuf};

pub use listing::{Entry, Filter, Sort, entries};
pub use prune::{PruneLimits, STALE_INCOMPLETE, plan_prune};
pub use remove::{
    PlannedRevision, RemovalPlan, Removed, execute, pin, plan_remove, plan_remove_file,
};
pub use scan::{CacheScan, CachedFile, Incomplete, Problem, Repo, RepoKind, Revision, scan};
pub use target::Target;
pub use units::{format_age, format_size, parse_duration, parse_size};
pub use verify::{BlobCheck, Verdict, VerifyReport, verify};

/// Why a cache operation failed.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// No cache at this path.
    #[error("no cache at {}", .0.display())]
    NotFound(PathBuf),
    /// The path is a file.
    #[error("{} is not a folder", .0.display())]
    NotADirectory(PathBuf),
    /// A repo the cache does not hold.
    #[error("{0} is not in the cache")]
    UnknownRepo(String),
    /// A revision the repo does not hold.
    #[error("{repo} has no revision {revision} in the cache")]
    UnknownRevision {
        /// The repo's cache id.
        repo: String,
        /// As given.
        revision: String,
    },
    /// A commit prefix that matches several revisions.
    #[error("{repo}: {revision} matches several revisions; give more of the commit")]
    AmbiguousRevision {
        /// The repo's cache id.
        repo: String,
        /// As given.
        revision: String,
    },
    /// Not `org/name[@rev]`.
    #[error("{0:?} is not a repo (`org/name`, `model/org/name`, with an optional `@revision`)")]
    BadTarget(String),
    /// Not a filter expression.
    #[error("{0:?} is not a filter (size>1GB, accessed>30d, modified<1w, refs=main, type=model)")]
    BadFilter(String),
    /// Not a sort order.
    #[error("{0:?} is not a sort order (size, accessed, modified or name, with :asc or :desc)")]
    BadSort(String),
    /// Not a size.
    #[error("{0:?} is not a size (e.g. 20G, 500MB, 1GiB)")]
    BadSize(String),
    /// Not a duration.
    #[error("{0:?} is not a duration (e.g. 30d, 12h, 2w, 6mo)")]
    BadDuration(String),
    /// Another process holds the lock of something to remove.
    #[error("{} is held by another process (a download in progress?); nothing was removed", .0.display())]
    Locked(PathBuf),
    /// The caller cancelled.
    #[error("cancelled")]
    Cancelled,
    /// A file system error.
    #[error("{}: {source}", path.display())]
    Io {
        /// Where.
        path: PathBuf,
        /// What.
        source: std::io::Error,
    },
}

impl CacheError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> CacheError {
        CacheError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}
