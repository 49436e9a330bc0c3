//! What the server serves: repos, their revisions, and each commit's files
//! with sizes and hashes. Built from a folder of repos or from an existing
//! hub cache.

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
        let mut store = Store::default();
        let entries = std::fs::read_dir(root).map_err(io(root))?;
        let mut names: Vec<String> = entries
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        if names.iter().any(|n| n.contains("--")) {
            for name in names {
                if let Some((kind, id)) = parse_cache_folder(&name) {
                    let repo = read_cache_repo(&root.join(&name))?;
                    if !repo.commits.is_empty() {
                        store.repos.insert((kind, id), repo);
                    }
                }
            }
        } else {
            for name in names.iter().filter(|n| !n.starts_with('.')) {
                match Kind::from_plural(name) {
                    Some(kind @ (Kind::Dataset | Kind::Space)) => {
                        let base = root.join(name);
                        for org in read_names(&base)? {
                            store.add_org(kind, &org, &base.join(&org))?;
                        }
                    }
                    _ => store.add_org(Kind::Model, name, &root.join(name))?,
                }
            }
        }
        if store.repos.is_empty() {
            return Err(StoreError::Empty(root.to_path_buf()));
        }
        Ok(store)
    }

    fn add_org(&mut self, kind: Kind, org: &str, dir: &Path) -> Result<(), StoreError> {
        if !dir.is_dir() {
            return Ok(());
        }
        for name in read_names(dir)? {
            let repo_dir = dir.join(&name);
            if repo_dir.is_dir() {
                self.add_folder(kind, &format!("{org}/{name}"), &repo_dir, "main")?;
            }
        }
        Ok(())
    }

    /// Adds (or adds a revision to) a repo whose files are the folder `dir`.
    /// Returns the commit hash.
    pub fn add_folder(
        &mut self,
        kind: Kind,
        id: &str,
        dir: &Path,
        revision: &str,
    ) -> Result<String, StoreError> {
        let mut files = BTreeMap::new();
        collect_files(dir, dir, &mut files)?;
        let commit = commit_hash(&files);
        let repo = self.repos.entry((kind, id.to_string())).or_default();
        repo.refs.insert(revision.to_string(), commit.clone());
        repo.commits.insert(commit.clone(), files);
        Ok(commit)
    }

    /// Makes a repo private: it answers 401 without one of `tokens`.
    pub fn set_tokens(&mut self, kind: Kind, id: &str, tokens: Vec<String>) {
        if let Some(repo) = self.repos.get_mut(&(kind, id.to_string())) {
            repo.tokens = tokens;
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

fn collect_files(
    root: &Path,
    dir: &Path,
    out: &mut BTreeMap<String, FileEntry>,
) -> Result<(), StoreError> {
    for name in read_names(dir)? {
        let path = dir.join(&name);
        if path.is_dir() {
            collect_files(root, &path, out)?;
        } else if path.is_file() {
            let rel = path
                .strip_prefix(root)
                .unwrap_or(&path)
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("/");
            let lfs = is_lfs(&rel, std::fs::metadata(&path).map_err(io(&path))?.len());
            out.insert(rel, hash_entry(&path, lfs)?);
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

fn parse_cache_folder(name: &str) -> Option<(Kind, String)> {
    let (plural, rest) = name.split_once("--")?;
    let kind = Kind::from_plural(plural)?;
    Some((kind, rest.replace("--", "/")))
}

/// Reads one repo folder of a hub cache: refs, snapshots, blobs. The etag
/// is the blob's name, so nothing is hashed.
fn read_cache_repo(dir: &Path) -> Result<Repo, StoreError> {
    let mut repo = Repo::default();
    let snapshots = dir.join("snapshots");
    if snapshots.is_dir() {
        for commit in read_names(&snapshots)? {
            let mut files = BTreeMap::new();
            collect_cache_files(
                &snapshots.join(&commit),
                &snapshots.join(&commit),
                &mut files,
            )?;
            repo.commits.insert(commit, files);
        }
    }
    let refs = dir.join("refs");
    let mut stack = vec![(refs.clone(), String::new())];
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
            if path.is_dir() {
                stack.push((path, rel));
            } else if let Ok(commit) = std::fs::read_to_string(&path) {
                repo.refs.insert(rel, commit.trim().to_string());
            }
        }
    }
    Ok(repo)
}

fn collect_cache_files(
    root: &Path,
    dir: &Path,
    out: &mut BTreeMap<String, FileEntry>,
) -> Result<(), StoreError> {
    for name in read_names(dir)? {
        let path = dir.join(&name);
        if path.is_dir() {
            collect_cache_files(root, &path, out)?;
            continue;
        }
        let Ok(blob) = std::fs::canonicalize(&path) else {
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
