//! The cache layout shared with Python's huggingface_hub:
//!
//! ```text
//! $HF_HUB_CACHE/
//!   CACHEDIR.TAG
//!   .locks/models--org--name/<etag>.lock
//!   models--org--name/
//!     blobs/<etag>                      file contents, named by etag
//!     blobs/<etag>.incomplete           a download in progress (ours, resumable)
//!     blobs/<etag>.incomplete.parts     which byte ranges of it are written
//!     snapshots/<commit>/<path>         relative symlink to ../../blobs/<etag>
//!     refs/<revision>                   commit hash of a branch or tag
//!     .no_exist/<commit>/<path>         known-missing files
//!     trees/<commit>.json               the file listing of a commit
//! ```
//!
//! Everything that lands under `blobs/`, `snapshots/` or `refs/` arrives by
//! rename, so a reader sees the right bytes or nothing.

mod lock;
mod tree;
mod write;

use std::path::{Path, PathBuf};

pub use lock::BlobLock;
pub(crate) use write::{write_atomic, write_ranges_line};

use crate::error::HubError;
use crate::ids::{RepoPath, RepoRef, Revision, is_commit_hash};

/// Content of `CACHEDIR.TAG`, identical to what huggingface_hub writes so
/// that whichever tool comes first, the file is the same.
const CACHEDIR_TAG: &str = "Signature: 8a477f597d28d172789f06886806bc55\n\
# This file is a cache directory tag created by huggingface_hub.\n\
# For information about cache directory tags, see:\n\
#\thttps://bford.info/cachedir/\n";

/// The root of a hub cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheDir {
    root: PathBuf,
}

impl CacheDir {
    /// A cache rooted at `root` (`$HF_HUB_CACHE`). Nothing is created yet.
    #[must_use]
    pub fn new(root: impl Into<PathBuf>) -> Self {
        CacheDir { root: root.into() }
    }

    /// The cache root.
    #[must_use]
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The part of the cache that belongs to one repository.
    #[must_use]
    pub fn repo(&self, repo: &RepoRef) -> RepoCache {
        let folder = repo.folder_name();
        RepoCache {
            dir: self.root.join(&folder),
            locks: self.root.join(".locks").join(&folder),
            root: self.root.clone(),
        }
    }

    /// Writes `CACHEDIR.TAG` if it is missing (backup tools skip tagged dirs).
    pub fn ensure_tag(&self) {
        let tag = self.root.join("CACHEDIR.TAG");
        if !tag.exists() {
            // Best effort, as in huggingface_hub: a read-only cache is still usable.
            let _ = write_atomic(&tag, CACHEDIR_TAG.as_bytes());
        }
    }
}

/// One repository's folder in the cache.
#[derive(Debug, Clone)]
pub struct RepoCache {
    root: PathBuf,
    dir: PathBuf,
    locks: PathBuf,
}

impl RepoCache {
    /// `models--org--name/`.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The cache root this repo folder lives in.
    #[must_use]
    pub fn cache_root(&self) -> &Path {
        &self.root
    }

    /// `blobs/<etag>`. The etag must have been checked (see `ids::check_etag`).
    #[must_use]
    pub fn blob_path(&self, etag: &str) -> PathBuf {
        self.dir.join("blobs").join(etag)
    }

    /// `blobs/<etag>.incomplete`: where a download writes before the rename.
    #[must_use]
    pub fn incomplete_path(&self, etag: &str) -> PathBuf {
        self.dir.join("blobs").join(format!("{etag}.incomplete"))
    }

    /// `blobs/<etag>.incomplete.parts`: the written ranges of the partial file.
    #[must_use]
    pub fn parts_path(&self, etag: &str) -> PathBuf {
        self.dir
            .join("blobs")
            .join(format!("{etag}.incomplete.parts"))
    }

    /// `.locks/models--org--name/<etag>.lock`, the lock huggingface_hub takes too.
    #[must_use]
    pub fn lock_path(&self, etag: &str) -> PathBuf {
        self.locks.join(format!("{etag}.lock"))
    }

    /// `snapshots/<commit>/`.
    #[must_use]
    pub fn snapshot_dir(&self, commit: &str) -> PathBuf {
        self.dir.join("snapshots").join(commit)
    }

    /// `snapshots/<commit>/<path>`.
    #[must_use]
    pub fn snapshot_path(&self, commit: &str, path: &RepoPath) -> PathBuf {
        join_repo_path(&self.snapshot_dir(commit), path)
    }

    /// `refs/<revision>`.
    #[must_use]
    pub fn ref_path(&self, revision: &Revision) -> PathBuf {
        let mut path = self.dir.join("refs");
        for part in revision.as_str().split('/') {
            path.push(part);
        }
        path
    }

    /// `.no_exist/<commit>/<path>`.
    #[must_use]
    pub fn no_exist_path(&self, commit: &str, path: &RepoPath) -> PathBuf {
        join_repo_path(&self.dir.join(".no_exist").join(commit), path)
    }

    /// `trees/<commit>.json`.
    #[must_use]
    pub fn tree_path(&self, commit: &str) -> PathBuf {
        self.dir.join("trees").join(format!("{commit}.json"))
    }

    /// The commit a revision points to in the cache: the revision itself
    /// when it is a commit hash, else the content of `refs/<revision>`.
    #[must_use]
    pub fn commit_of(&self, revision: &Revision) -> Option<String> {
        if revision.is_commit() {
            return Some(revision.as_str().to_string());
        }
        let text = std::fs::read_to_string(self.ref_path(revision)).ok()?;
        let commit = text.trim();
        is_commit_hash(commit).then(|| commit.to_string())
    }

    /// The cached file for `path` at `revision`, if the snapshot link exists
    /// and its blob is there.
    #[must_use]
    pub fn cached_file(&self, revision: &Revision, path: &RepoPath) -> Option<PathBuf> {
        let commit = self.commit_of(revision)?;
        let link = self.snapshot_path(&commit, path);
        // `is_file` follows the link: a dangling link is not a cached file.
        link.is_file().then_some(link)
    }

    /// Whether the Hub said `path` does not exist at `commit`.
    #[must_use]
    pub fn is_known_missing(&self, commit: &str, path: &RepoPath) -> bool {
        self.no_exist_path(commit, path).is_file()
    }

    /// Records `refs/<revision>` = `commit`, atomically, unless the revision
    /// is the commit itself or the ref already says so.
    pub fn write_ref(&self, revision: &Revision, commit: &str) -> Result<(), HubError> {
        if revision.as_str() == commit || self.commit_of(revision).as_deref() == Some(commit) {
            return Ok(());
        }
        write_atomic(&self.ref_path(revision), commit.as_bytes())
    }

    /// Records that `path` does not exist at `commit` (an empty marker file).
    pub fn mark_missing(&self, commit: &str, path: &RepoPath) -> Result<(), HubError> {
        let marker = self.no_exist_path(commit, path);
        if marker.is_file() {
            return Ok(());
        }
        write_atomic(&marker, b"")
    }

    /// Points `snapshots/<commit>/<path>` at `blobs/<etag>` with a relative
    /// symlink, replacing any previous link in one rename.
    pub fn link_snapshot(
        &self,
        commit: &str,
        path: &RepoPath,
        etag: &str,
    ) -> Result<PathBuf, HubError> {
        let link = self.snapshot_path(commit, path);
        // From snapshots/<commit>/<a>/<b>/file: one `..` per component of the
        // path, plus two for `<commit>` and `snapshots`.
        let mut target = PathBuf::new();
        for _ in 0..path.depth() + 1 {
            target.push("..");
        }
        target.push("blobs");
        target.push(etag);
        write::symlink_atomic(&target, &link, &self.blob_path(etag))?;
        Ok(link)
    }

    /// Moves a verified `.incomplete` file to `blobs/<etag>` and drops its
    /// range journal.
    pub fn commit_blob(&self, etag: &str) -> Result<PathBuf, HubError> {
        let from = self.incomplete_path(etag);
        let to = self.blob_path(etag);
        std::fs::rename(&from, &to).map_err(|e| HubError::io("moving into the cache", &from, e))?;
        let parts = self.parts_path(etag);
        match std::fs::remove_file(&parts) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(HubError::io("removing", parts, e)),
        }
        Ok(to)
    }
}

/// Joins a validated repo path under `base`, one component at a time.
fn join_repo_path(base: &Path, path: &RepoPath) -> PathBuf {
    let mut out = base.to_path_buf();
    for part in path.as_str().split('/') {
        out.push(part);
    }
    out
}

#[cfg(test)]
mod tests;
