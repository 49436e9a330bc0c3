//! What the server serves: repos, their revisions, and each commit's files
//! with sizes and hashes. Built from a folder of repos or from an existing
//! hub cache.
//!
//! A cache is always read confined: a snapshot entry is served only when
//! its symlink leads into the repo's `blobs/`, refs must hold the commit
//! hash of a snapshot that is there (their text is never echoed), and
//! snapshot folders must be named by commit hashes. A folder of repos is
//! read confined by [`Store::open_confined`] (what `tektra serve` does
//! unless told to follow links): a symlink is followed only to a file inside
//! the folder and symlinked folders are not entered. [`Store::open`]
//! follows a folder's symlinks wherever they lead (tests and mirrors
//! assembled from links to files elsewhere). What is skipped is logged as
//! a warning.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};

use sha1::Sha1;
use sha2::{Digest, Sha256};

/// Files at least this large are served as LFS files (302 to the CDN).
pub const LFS_THRESHOLD: u64 = 10 << 20;
/// Extensions the Hub's default `.gitattributes` puts in LFS.
const LFS_EXTENSIONS: &[&str] = &[
    "gguf",
    "safetensors",
    "bin",
    "pt",
    "pth",
    "onnx",
    "msgpack",
    "h5",
    "npz",
    "npy",
    "model",
    "zip",
    "parquet",
    "tar",
    "gz",
    "ot",
    "ckpt",
    "pkl",
];

/// Kind of repo, as in URLs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `/org/name`, `/api/models/...`.
    Model,
    /// `/datasets/org/name`.
    Dataset,
    /// `/spaces/org/name`.
    Space,
}

impl Kind {
    /// `models`, `datasets`, `spaces`.
    #[must_use]
    pub fn plural(self) -> &'static str {
        match self {
            Kind::Model => "models",
            Kind::Dataset => "datasets",
            Kind::Space => "spaces",
        }
    }

    /// From `models`, `datasets`, `spaces`.
    #[must_use]
    pub fn from_plural(s: &str) -> Option<Kind> {
        match s {
            "models" => Some(Kind::Model),
            "datasets" => Some(Kind::Dataset),
            "spaces" => Some(Kind::Space),
            _ => None,
        }
    }
}

/// One file of a commit.
#[derive(Debug, Clone)]
pub struct FileEntry {
    /// Where its bytes are on disk.
    pub disk: PathBuf,
    /// Size in bytes.
    pub size: u64,
    /// Git blob sha1, hex (the `oid`).
    pub oid: String,
    /// sha256 hex, for LFS files.
    pub lfs_sha256: Option<String>,
    /// Xet hash, when the file is also in the Xet store.
    pub xet_hash: Option<String>,
}

impl FileEntry {
    /// The etag the Hub gives: sha256 for LFS, the blob sha1 otherwise.
    #[must_use]
    pub fn etag(&self) -> &str {
        self.lfs_sha256.as_deref().unwrap_or(&self.oid)
    }
}

/// A repo: branches/tags to commits, and each commit's files.
#[derive(Debug, Clone, Default)]
pub struct Repo {
    /// Needs one of these tokens (none: public).
    pub tokens: Vec<String>,
    /// Revision name -> commit hash.
    pub refs: HashMap<String, String>,
    /// Commit hash -> path -> file.
    pub commits: HashMap<String, BTreeMap<String, FileEntry>>,
}

impl Repo {
    /// The commit a revision names: a ref, or a commit hash itself.
    #[must_use]
    pub fn commit_of(&self, revision: &str) -> Option<&str> {
        if let Some(commit) = self.refs.get(revision) {
            return Some(commit.as_str());
        }
        self.commits
            .get_key_value(revision)
            .map(|(k, _)| k.as_str())
    }
}

/// Every repo the server knows, by (kind, id).
#[derive(Debug, Clone, Default)]
pub struct Store {
    /// The repos.
    pub repos: HashMap<(Kind, String), Repo>,
}

/// Why a folder could not be served.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Reading the folder failed.
    #[error("reading {}: {source}", path.display())]
    Io {
        /// Path concerned.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Nothing servable was found.
    #[error("no repos found under {}", .0.display())]
    Empty(PathBuf),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl Store {
    /// Serves `root`: a hub cache (folders named `models--org--name`) or a
    /// folder of repos (`org/name/...`, `datasets/org/name/...`). A folder
    /// repo has one commit, on `main`, derived from its files' hashes.
    pub fn open(root: &Path) -> Result<Store, StoreError> {
        Store::open_with(root, true)
    }

    /// [`Store::open`], but a folder of repos is read confined too: its
    /// symlinks are followed only to files inside `root`.
    pub fn open_confined(root: &Path) -> Result<Store, StoreError> {
        Store::open_with(root, false)
    }

    fn open_with(root: &Path, follow: bool) -> Result<Store, StoreError> {
        let mut store = Store::default();
        // Confinement checks compare canonical paths.
        let root = &std::fs::canonicalize(root).map_err(io(root))?;
        let entries = std::fs::read_dir(root).map_err(io(root))?;
        let mut names: Vec<String> = entries
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        if names.iter().any(|n| n.contains("--")) {
            for name in names {
                if let Some((kind, id)) = parse_cache_folder(&name) {
                    let Some(dir) = confined(root, &root.join(&name), Want::Dir) else {
                        continue;
                    };
                    let repo = read_cache_repo(&dir)?;
                    if !repo.commits.is_empty() {
                        store.repos.insert((kind, id), repo);
                    }
                }
            }
        } else {
            for name in names.iter().filter(|n| !n.starts_with('.')) {
                match Kind::from_plural(name) {
                    Some(kind @ (Kind::Dataset | Kind::Space)) => {
                        let Some(base) = pick(root, &root.join(name), Want::Dir, follow) else {
                            continue;
                        };
                        for org in read_names(&base)? {
                            if let Some(dir) = pick(root, &base.join(&org), Want::Dir, follow) {
                                store.add_org(root, kind, &org, &dir, follow)?;
                            }
                        }
                    }
                    _ => {
                        if let Some(dir) = pick(root, &root.join(name), Want::Dir, follow) {
                            store.add_org(root, Kind::Model, name, &dir, follow)?;
                        }
                    }
                }
            }
        }
        if store.repos.is_empty() {
            return Err(StoreError::Empty(root.to_path_buf()));
        }
        Ok(store)
    }

    fn add_org(
        &mut self,
        root: &Path,
        kind: Kind,
        org: &str,
        dir: &Path,
        follow: bool,
    ) -> Result<(), StoreError> {
        for name in read_names(dir)? {
            if let Some(repo_dir) = pick(root, &dir.join(&name), Want::Dir, follow) {
                self.add_repo(
                    root,
                    kind,
                    &format!("{org}/{name}"),
                    &repo_dir,
                    "main",
                    follow,
                )?;
            }
        }
        Ok(())
    }

    /// Adds (or adds a revision to) a repo whose files are the folder `dir`.
    /// Returns the commit hash.
    /// Its symlinks are followed wherever they lead, as by [`Store::open`].
    pub fn add_folder(
        &mut self,
        kind: Kind,
        id: &str,
        dir: &Path,
        revision: &str,
    ) -> Result<String, StoreError> {
        self.add_repo(dir, kind, id, dir, revision, true)
    }

    /// Adds the folder `dir` (inside `root`, the confinement boundary) as
    /// `id` at `revision`.
    fn add_repo(
        &mut self,
        root: &Path,
        kind: Kind,
        id: &str,
        dir: &Path,
        revision: &str,
        follow: bool,
    ) -> Result<String, StoreError> {
        let mut files = BTreeMap::new();
        collect_files(root, dir, dir, follow, &mut files)?;
        let commit = commit_hash(&files);
        let repo = self.repos.entry((kind, id.to_string())).or_default();
        repo.refs.insert(revision.to_string(), commit.clone());
        repo.commits.insert(commit.clone(), files);
        Ok(commit)
    }

    /// Makes a repo private: it answers 401 without one of `tokens`.
    /// Returns false (and changes nothing) when there is no such repo.
    pub fn set_tokens(&mut self, kind: Kind, id: &str, tokens: Vec<String>) -> bool {
        match self.repos.get_mut(&(kind, id.to_string())) {
            Some(repo) => {
                repo.tokens = tokens;
                true
            }
            None => false,
        }
    }

    /// Looks a file up by its etag in any repo (what the CDN serves).
    #[must_use]
    pub fn by_etag(&self, etag: &str) -> Option<&FileEntry> {
        self.repos
            .values()
            .flat_map(|r| r.commits.values())
            .flat_map(|files| files.values())
            .find(|f| f.etag() == etag)
    }
}

fn read_names(dir: &Path) -> Result<Vec<String>, StoreError> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map_err(io(dir))?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    names.sort();
    Ok(names)
}

/// What a directory entry must be to be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    Dir,
    File,
}

/// `path` (an entry inside `within`, itself canonical) as a canonical path,
/// when it is a real folder (`Want::Dir`: symlinked folders are not
/// entered) or a file or a symlink to a file inside `within`
/// (`Want::File`). Anything else is skipped, with a warning for what
/// leaves `within`.
fn confined(within: &Path, path: &Path, want: Want) -> Option<PathBuf> {
    let meta = std::fs::symlink_metadata(path).ok()?;
    if !meta.file_type().is_symlink() {
        let is = match want {
            Want::Dir => meta.is_dir(),
            Want::File => meta.is_file(),
        };
        return is.then(|| path.to_path_buf());
    }
    // Each case warns once, whichever pass (folder or file) meets it.
    let target = std::fs::canonicalize(path).ok()?;
    match want {
        Want::Dir if target.is_dir() => {
            tracing::warn!(
                "not serving {}: symlinked folders are not followed",
                path.display()
            );
            None
        }
        Want::File if !target.is_dir() && !target.starts_with(within) => {
            tracing::warn!(
                "not serving {}: its symlink leads outside {}",
                path.display(),
                within.display()
            );
            None
        }
        Want::File => target.is_file().then_some(target),
        Want::Dir => None,
    }
}

/// [`confined`], or with `follow` any folder or file the path leads to.
fn pick(within: &Path, path: &Path, want: Want, follow: bool) -> Option<PathBuf> {
    if !follow {
        return confined(within, path, want);
    }
    let is = match want {
        Want::Dir => path.is_dir(),
        Want::File => path.is_file(),
    };
    is.then(|| path.to_path_buf())
}

/// The files under `dir`, named relative to `repo`; `root` is the
/// confinement boundary.
fn collect_files(
    root: &Path,
    repo: &Path,
    dir: &Path,
    follow: bool,
    out: &mut BTreeMap<String, FileEntry>,
) -> Result<(), StoreError> {
    for name in read_names(dir)? {
        let path = dir.join(&name);
        if let Some(sub) = pick(root, &path, Want::Dir, follow) {
            collect_files(root, repo, &sub, follow, out)?;
        } else if let Some(file) = pick(root, &path, Want::File, follow) {
            let rel = path
                .strip_prefix(repo)
                .unwrap_or(&path)
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("/");
            let lfs = is_lfs(&rel, std::fs::metadata(&file).map_err(io(&file))?.len());
            out.insert(rel, hash_entry(&file, lfs)?);
        }
    }
    Ok(())
}

fn is_lfs(path: &str, size: u64) -> bool {
    size >= LFS_THRESHOLD
        || path
            .rsplit_once('.')
            .is_some_and(|(_, ext)| LFS_EXTENSIONS.contains(&ext.to_ascii_lowercase().as_str()))
}

/// Hashes a file once: git blob sha1 always, sha256 for LFS files.
fn hash_entry(path: &Path, lfs: bool) -> Result<FileEntry, StoreError> {
    let mut file = std::fs::File::open(path).map_err(io(path))?;
    let size = file.metadata().map_err(io(path))?.len();
    let mut sha1 = Sha1::default();
    sha1.update(format!("blob {size}\0").as_bytes());
    let mut sha256 = lfs.then(Sha256::default);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(io(path))?;
        if n == 0 {
            break;
        }
        sha1.update(&buf[..n]);
        if let Some(h) = sha256.as_mut() {
            h.update(&buf[..n]);
        }
    }
    Ok(FileEntry {
        disk: path.to_path_buf(),
        size,
        oid: hex::encode(sha1.finalize()),
        lfs_sha256: sha256.map(|h| hex::encode(h.finalize())),
        xet_hash: None,
    })
}

/// A deterministic commit hash for a set of files.
fn commit_hash(files: &BTreeMap<String, FileEntry>) -> String {
    let mut h = Sha1::default();
    for (path, entry) in files {
        h.update(path.as_bytes());
        h.update([0]);
        h.update(entry.oid.as_bytes());
        h.update([b'\n']);
    }
    hex::encode(h.finalize())
}

/// Whether `text` is a full commit hash: 40 lowercase hex digits.
#[must_use]
pub fn is_commit_hash(text: &str) -> bool {
    text.len() == 40 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A repo id as the Hub spells it in URLs and on the command line:
/// `org/name` or `name` for a model, `datasets/org/name`,
/// `spaces/org/name` (`models/` is accepted too). `None` when it is not
/// one (empty segments, more than two after the kind).
#[must_use]
pub fn parse_repo_id(text: &str) -> Option<(Kind, String)> {
    let (kind, id) = match text.split_once('/') {
        Some((first, rest)) => match Kind::from_plural(first) {
            Some(kind) => (kind, rest),
            None => (Kind::Model, text),
        },
        None => (Kind::Model, text),
    };
    let segments: Vec<&str> = id.split('/').collect();
    let ok = (1..=2).contains(&segments.len())
        && segments
            .iter()
            .all(|s| !s.is_empty() && *s != "." && *s != "..");
    ok.then(|| (kind, id.to_string()))
}

/// A ref file's text, read only if it is small (a ref is 40 bytes).
fn read_small(path: &Path) -> Option<String> {
    let file = std::fs::File::open(path).ok()?;
    let mut text = String::new();
    file.take(256).read_to_string(&mut text).ok()?;
    Some(text)
}

fn parse_cache_folder(name: &str) -> Option<(Kind, String)> {
    let (plural, rest) = name.split_once("--")?;
    let kind = Kind::from_plural(plural)?;
    Some((kind, rest.replace("--", "/")))
}

/// Reads one repo folder of a hub cache: refs, snapshots, blobs. The etag
/// is the blob's name, so nothing is hashed.
fn read_cache_repo(dir: &Path) -> Result<Repo, StoreError> {
    let mut repo = Repo::default();
    // Snapshot entries must be blobs of this repo.
    let blobs = std::fs::canonicalize(dir.join("blobs")).ok();
    let snapshots = dir.join("snapshots");
    if let (Some(blobs), Some(snapshots)) = (&blobs, confined(dir, &snapshots, Want::Dir)) {
        for commit in read_names(&snapshots)? {
            if !is_commit_hash(&commit) {
                tracing::warn!(
                    "not serving {}: a snapshot folder is named by a commit hash",
                    snapshots.join(&commit).display()
                );
                continue;
            }
            let Some(folder) = confined(dir, &snapshots.join(&commit), Want::Dir) else {
                continue;
            };
            let mut files = BTreeMap::new();
            collect_cache_files(blobs, &folder, &folder, &mut files)?;
            repo.commits.insert(commit, files);
        }
    }
    let refs = dir.join("refs");
    let mut stack: Vec<(PathBuf, String)> = confined(dir, &refs, Want::Dir)
        .map(|refs| (refs, String::new()))
        .into_iter()
        .collect();
    while let Some((folder, prefix)) = stack.pop() {
        let Ok(names) = read_names(&folder) else {
            continue;
        };
        for name in names {
            let path = folder.join(&name);
            let rel = if prefix.is_empty() {
                name
            } else {
                format!("{prefix}/{name}")
            };
            if let Some(sub) = confined(dir, &path, Want::Dir) {
                stack.push((sub, rel));
            } else if confined(&refs, &path, Want::File).is_some() {
                // A ref names a commit we hold; its text is never echoed.
                let commit = read_small(&path).unwrap_or_default();
                let commit = commit.trim();
                if is_commit_hash(commit) && repo.commits.contains_key(commit) {
                    repo.refs.insert(rel, commit.to_string());
                } else {
                    tracing::warn!(
                        "not serving ref {}: it does not hold the hash of a snapshot here",
                        path.display()
                    );
                }
            }
        }
    }
    Ok(repo)
}

fn collect_cache_files(
    blobs: &Path,
    root: &Path,
    dir: &Path,
    out: &mut BTreeMap<String, FileEntry>,
) -> Result<(), StoreError> {
    for name in read_names(dir)? {
        let path = dir.join(&name);
        if let Some(sub) = confined(root, &path, Want::Dir) {
            collect_cache_files(blobs, root, &sub, out)?;
            continue;
        }
        let Some(blob) = confined(blobs, &path, Want::File) else {
            continue;
        };
        let Some(etag) = blob.file_name().map(|n| n.to_string_lossy().into_owned()) else {
            continue;
        };
        let size = std::fs::metadata(&blob).map_err(io(&blob))?.len();
        let rel = path
            .strip_prefix(root)
            .unwrap_or(&path)
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join("/");
        let entry = if etag.len() == 64 {
            // An LFS blob: its git oid is not in the cache; derive a stable one.
            let oid = hex::encode(Sha1::digest(format!("lfs {etag}").as_bytes()));
            FileEntry {
                disk: blob,
                size,
                oid,
                lfs_sha256: Some(etag),
                xet_hash: None,
            }
        } else {
            FileEntry {
                disk: blob,
                size,
                oid: etag,
                lfs_sha256: None,
                xet_hash: None,
            }
        };
        out.insert(rel, entry);
    }
    Ok(())
}
