//! The cache layout shared with Python's huggingface_hub:
//!
//! ```text
//! $HF_HUB_CACHE/
//!   CACHEDIR.TAG
//!   .locks/models--org--name/<etag>.lock
//!   models--org--name/
//!     blobs/<etag>                      file contents, named by etag
//!     blobs/<etag>.incomplete           a download in progress (ours, resumable)
//!     blobs/<etag>.incomplete.parts     which byte ranges of it are written (and synced)
//!     snapshots/<commit>/<path>         relative symlink to ../../blobs/<etag>
//!     refs/<revision>                   commit hash of a branch or tag
//!     .no_exist/<commit>/<path>         known-missing files
//!     trees/<commit>.json               the file listing of a commit
//! ```
//!
//! Everything that lands under `blobs/`, `snapshots/` or `refs/` arrives by
//! rename, so a reader sees the right bytes or nothing; what is renamed is
//! synced first and its folder after, so a power cut does not change that.
//! A blob whose etag is not a content hash (a foreign mirror) is named
//! `<etag>-<16 hex digits>` instead (see [`RepoCache::blob_name`]).

mod lock;
mod mark;
mod tree;
mod write;

use std::path::{Path, PathBuf};

pub use crate::transfer::available_space;
pub use lock::BlobLock;
pub use mark::{last_used, mark_used};
pub use tree::{decode_tree, encode_tree};
pub(crate) use write::{sync_dir, write_atomic, write_ranges_line};

use crate::error::HubError;
use crate::ids::{RepoPath, RepoRef, Revision, is_commit_hash};
use crate::verify::Expected;

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

/// What the cache holds under a blob's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobState {
    /// Nothing, or a file of the wrong size.
    Missing,
    /// The right size, checked against its name and on disk (marked when
    /// it was committed or checked).
    Verified,
    /// The right size, but nothing says its bytes were checked and made
    /// durable: written by another tool, by an older version, or left by a
    /// power cut. Its hash must be checked before it is linked.
    Unverified,
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

    /// The name of a file's blob under `blobs/`: its etag when the etag is
    /// a content hash (sha256 or git sha1), as huggingface_hub names it.
    /// Any other etag (a foreign mirror's, made of a size or a date) may be
    /// shared by two different files, so the name adds 16 hex digits of the
    /// sha256 of commit and path: two files never share such a blob.
    ///
    /// ```
    /// use hf_hub::cache::RepoCache;
    /// use hf_hub::ids::RepoPath;
    /// let c = "0123456789012345678901234567890123456789";
    /// let sha = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53";
    /// assert_eq!(RepoCache::blob_name(sha, c, &RepoPath::new("a.bin").unwrap()), sha);
    /// let a = RepoCache::blob_name("5f3a-1000", c, &RepoPath::new("a.bin").unwrap());
    /// let b = RepoCache::blob_name("5f3a-1000", c, &RepoPath::new("b.bin").unwrap());
    /// assert!(a.starts_with("5f3a-1000-") && a != b);
    /// ```
    #[must_use]
    pub fn blob_name(etag: &str, commit: &str, path: &RepoPath) -> String {
        use sha2::{Digest, Sha256};
        if Expected::from_etag(etag) != Expected::SizeOnly {
            return etag.to_string();
        }
        let mut h = Sha256::default();
        h.update(commit.as_bytes());
        h.update([0]);
        h.update(path.as_str().as_bytes());
        let digest = hex::encode(h.finalize());
        format!("{etag}-{}", &digest[..16])
    }

    /// `blobs/<name>`. The name comes from [`RepoCache::blob_name`] of a
    /// checked etag (see `ids::check_etag`).
    #[must_use]
    pub fn blob_path(&self, name: &str) -> PathBuf {
        self.dir.join("blobs").join(name)
    }

    /// What is under `blobs/<name>`, for a file of `size` bytes.
    #[must_use]
    pub fn blob_state(&self, name: &str, size: u64) -> BlobState {
        let path = self.blob_path(name);
        match std::fs::metadata(&path) {
            Ok(m) if m.is_file() && m.len() == size => {
                if mark::is_set(&path, name) {
                    BlobState::Verified
                } else {
                    BlobState::Unverified
                }
            }
            _ => BlobState::Missing,
        }
    }

    /// Records that `blobs/<name>` was checked against its name: syncs it,
    /// then marks it, so the mark never outlives its bytes. Best effort:
    /// a blob we may not sync or mark (another user's, a read-only cache, a
    /// file system without extended attributes) stays unmarked and is
    /// checked again next time; its bytes were right, so it is used.
    pub(crate) fn mark_verified(&self, name: &str) {
        let path = self.blob_path(name);
        if sync_file(&path).is_ok() && mark::set(&path, name).is_ok() {
            let _ = sync_file(&path);
        }
    }

    /// `blobs/<name>.incomplete`: where a download writes before the rename.
    #[must_use]
    pub fn incomplete_path(&self, name: &str) -> PathBuf {
        self.dir.join("blobs").join(format!("{name}.incomplete"))
    }

    /// `blobs/<name>.incomplete.parts`: the written (and synced) ranges of
    /// the partial file.
    #[must_use]
    pub fn parts_path(&self, name: &str) -> PathBuf {
        self.dir
            .join("blobs")
            .join(format!("{name}.incomplete.parts"))
    }

    /// `.locks/models--org--name/<name>.lock`, the lock huggingface_hub
    /// takes too (for a hash etag, the name is the etag).
    #[must_use]
    pub fn lock_path(&self, name: &str) -> PathBuf {
        self.locks.join(format!("{name}.lock"))
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

    /// Points `snapshots/<commit>/<path>` at `blobs/<name>` with a relative
    /// symlink, replacing any previous link in one rename.
    pub fn link_snapshot(
        &self,
        commit: &str,
        path: &RepoPath,
        name: &str,
    ) -> Result<PathBuf, HubError> {
        let link = self.snapshot_path(commit, path);
        // From snapshots/<commit>/<a>/<b>/file: one `..` per component of the
        // path, plus two for `<commit>` and `snapshots`.
        let mut target = PathBuf::new();
        for _ in 0..path.depth() + 1 {
            target.push("..");
        }
        target.push("blobs");
        target.push(name);
        write::symlink_atomic(&target, &link, &self.blob_path(name))?;
        Ok(link)
    }

    /// Moves a verified `.incomplete` file to `blobs/<name>` and drops its
    /// range journal. `durable`: the file is marked verified and synced
    /// (data, size and mark) before the rename and `blobs/` after it, so
    /// the name never stands for bytes a power cut lost; without it, the
    /// blob is left unmarked and is checked again before its next use.
    pub fn commit_blob(&self, name: &str, durable: bool) -> Result<PathBuf, HubError> {
        let from = self.incomplete_path(name);
        let to = self.blob_path(name);
        if durable {
            // No mark where the file system cannot hold one: still synced.
            let _ = mark::set(&from, name);
            sync_file(&from).map_err(|e| HubError::io("syncing", &from, e))?;
        }
        std::fs::rename(&from, &to).map_err(|e| HubError::io("moving into the cache", &from, e))?;
        if durable && let Some(blobs) = to.parent() {
            sync_dir(blobs).map_err(|e| HubError::io("syncing", blobs, e))?;
        }
        let parts = self.parts_path(name);
        match std::fs::remove_file(&parts) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(HubError::io("removing", parts, e)),
        }
        Ok(to)
    }
}

/// Syncs a file's data and metadata (extended attributes included). Opened
/// for writing, which some systems need to flush a file, else for reading
/// (enough on Unix, for a file we may read but not write).
fn sync_file(path: &Path) -> std::io::Result<()> {
    let file = match std::fs::OpenOptions::new().write(true).open(path) {
        Ok(file) => file,
        Err(_) => std::fs::File::open(path)?,
    };
    file.sync_all()
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
