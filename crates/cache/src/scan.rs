//! Reading the cache: what `scan_cache_dir` of huggingface_hub computes
//! (sizes of unique blobs, last access and modification from the blobs'
//! times, refs per revision), plus our last-use marks and the partial
//! downloads. A malformed entry is reported and skipped, never fatal: the
//! rest of the cache stays usable (huggingface_hub drops the whole repo).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};
use std::time::SystemTime;

use serde::Serialize;

use crate::CacheError;

/// The kind of repo a cache folder holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RepoKind {
    /// `models--org--name`.
    Model,
    /// `datasets--org--name`.
    Dataset,
    /// `spaces--org--name`.
    Space,
}

impl RepoKind {
    /// `model`, `dataset` or `space`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            RepoKind::Model => "model",
            RepoKind::Dataset => "dataset",
            RepoKind::Space => "space",
        }
    }

    fn from_prefix(prefix: &str) -> Option<RepoKind> {
        match prefix {
            "models" => Some(RepoKind::Model),
            "datasets" => Some(RepoKind::Dataset),
            "spaces" => Some(RepoKind::Space),
            _ => None,
        }
    }
}

/// One file of a revision.
#[derive(Debug, Clone, Serialize)]
pub struct CachedFile {
    /// Its path in the repo (`/`-separated).
    pub name: String,
    /// The link (or file) under `snapshots/<commit>/`.
    pub path: PathBuf,
    /// The blob the link points to (the first hop).
    pub blob: PathBuf,
    /// The blob's size.
    pub size: u64,
}

/// One revision (a folder under `snapshots/`).
#[derive(Debug, Clone, Serialize)]
pub struct Revision {
    /// The commit hash (the folder's name).
    pub commit: String,
    /// Branches and tags pointing at it (`main`, `refs/pr/1`).
    pub refs: Vec<String>,
    /// Its files.
    pub files: Vec<CachedFile>,
    /// Bytes of its unique blobs.
    pub size: u64,
    /// Newest blob modification (the folder's own when empty).
    pub modified: SystemTime,
    /// When our loads or downloads last used it, if recorded.
    pub last_used: Option<SystemTime>,
    /// `snapshots/<commit>`.
    pub dir: PathBuf,
}

/// One repo of the cache.
#[derive(Debug, Clone, Serialize)]
pub struct Repo {
    /// Model, dataset or space.
    pub kind: RepoKind,
    /// `org/name`.
    pub id: String,
    /// `models--org--name`.
    pub dir: PathBuf,
    /// Its revisions, by commit.
    pub revisions: Vec<Revision>,
    /// Bytes of the unique blobs its revisions use.
    pub size: u64,
    /// Unique blobs its revisions use.
    pub files: usize,
    /// Newest blob access time (the folder's when it has none).
    pub accessed: SystemTime,
    /// Newest blob modification time (the folder's when it has none).
    pub modified: SystemTime,
}

impl Repo {
    /// `model/org/name`, as `hf cache ls` names repos.
    #[must_use]
    pub fn cache_id(&self) -> String {
        format!("{}/{}", self.kind.name(), self.id)
    }

    /// Every ref of every revision.
    #[must_use]
    pub fn refs(&self) -> Vec<String> {
        let set: BTreeSet<&String> = self.revisions.iter().flat_map(|r| &r.refs).collect();
        set.into_iter().cloned().collect()
    }

    /// The last use we know of: our mark, else the newest access time.
    #[must_use]
    pub fn last_used(&self) -> SystemTime {
        self.revisions
            .iter()
            .filter_map(|r| r.last_used)
            .max()
            .map_or(self.accessed, |t| t.max(self.accessed))
    }
}

/// A partial download (`blobs/*.incomplete`).
#[derive(Debug, Clone, Serialize)]
pub struct Incomplete {
    /// The repo folder's `org/name`.
    pub repo: String,
    /// The file.
    pub path: PathBuf,
    /// Bytes on disk (apparent size).
    pub size: u64,
    /// Last written.
    pub modified: SystemTime,
}

/// Something in the cache that is not as it should be.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Problem {
    /// A file or folder at the top that is not a repo folder.
    #[error("{}: not a repo folder", .path.display())]
    NotARepo {
        /// Where.
        path: PathBuf,
    },
    /// A repo without `snapshots/`.
    #[error("{}: no snapshots folder", .path.display())]
    NoSnapshots {
        /// Where.
        path: PathBuf,
    },
    /// A file where a revision folder belongs.
    #[error("{}: a file in snapshots/", .path.display())]
    StrayFile {
        /// Where.
        path: PathBuf,
    },
    /// A link whose blob is gone.
    #[error("{}: broken link (blob missing)", .path.display())]
    BrokenLink {
        /// The link.
        path: PathBuf,
    },
    /// A ref that is empty, unreadable or not a commit hash.
    #[error("{}: unreadable or half-written ref", .path.display())]
    BadRef {
        /// The ref file.
        path: PathBuf,
    },
    /// A ref to a commit with no snapshot.
    #[error("{}: points to {commit}, which has no snapshot", .path.display())]
    MissingRevision {
        /// The ref file.
        path: PathBuf,
        /// The commit it names.
        commit: String,
    },
}

/// The whole cache.
#[derive(Debug, Clone, Serialize)]
pub struct CacheScan {
    /// The cache folder.
    pub root: PathBuf,
    /// Its repos, by kind then id.
    pub repos: Vec<Repo>,
    /// Partial downloads.
    pub incomplete: Vec<Incomplete>,
    /// What is wrong, if anything.
    pub problems: Vec<Problem>,
    /// Bytes of all unique blobs (a blob two repos share counted once).
    pub size: u64,
}

impl CacheScan {
    /// The repo `id` (`org/name`) of `kind`.
    #[must_use]
    pub fn repo(&self, kind: RepoKind, id: &str) -> Option<&Repo> {
        self.repos.iter().find(|r| r.kind == kind && r.id == id)
    }
}

/// `path` with `.` and `..` resolved without touching the disk (a link's
/// first hop, not where further links lead).
pub(crate) fn lexical(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// Reads the cache at `root`.
pub fn scan(root: &Path) -> Result<CacheScan, CacheError> {
    let meta = std::fs::metadata(root).map_err(|_| CacheError::NotFound(root.to_path_buf()))?;
    if !meta.is_dir() {
        return Err(CacheError::NotADirectory(root.to_path_buf()));
    }
    let entries = std::fs::read_dir(root).map_err(|e| CacheError::io(root, e))?;
    let mut scan = CacheScan {
        root: root.to_path_buf(),
        repos: Vec::new(),
        incomplete: Vec::new(),
        problems: Vec::new(),
        size: 0,
    };
    let mut all_blobs = BTreeMap::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || name == "CACHEDIR.TAG" {
            continue;
        }
        let path = entry.path();
        let parsed = name.split_once("--").and_then(|(prefix, rest)| {
            Some((RepoKind::from_prefix(prefix)?, rest.replace("--", "/")))
        });
        let (Some((kind, id)), true) = (parsed, path.is_dir()) else {
            scan.problems.push(Problem::NotARepo { path });
            continue;
        };
        scan.incomplete.extend(incomplete(&path, &id));
        if let Some(repo) = read_repo(kind, id, path, &mut scan.problems, &mut all_blobs) {
            scan.repos.push(repo);
        }
    }
    scan.repos
        .sort_by(|a, b| (a.kind, &a.id).cmp(&(b.kind, &b.id)));
    scan.size = all_blobs.values().sum();
    Ok(scan)
}

fn incomplete(repo_dir: &Path, id: &str) -> Vec<Incomplete> {
    let Ok(blobs) = std::fs::read_dir(repo_dir.join("blobs")) else {
        return Vec::new();
    };
    blobs
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".incomplete"))
        .filter_map(|e| {
            let meta = e.metadata().ok()?;
            Some(Incomplete {
                repo: id.to_string(),
                path: e.path(),
                size: meta.len(),
                modified: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
            })
        })
        .collect()
}

/// Refs by commit: `refs/main` -> `main`, `refs/refs/pr/1` -> `refs/pr/1`.
fn read_refs(dir: &Path, out: &mut Vec<(String, String, PathBuf)>, problems: &mut Vec<Problem>) {
    let mut files = Vec::new();
    walk(dir, "", &mut files);
    for (name, path) in files {
        match std::fs::read_to_string(&path) {
            Ok(commit) if is_commit(commit.trim()) => {
                out.push((name, commit.trim().to_string(), path));
            }
            _ => problems.push(Problem::BadRef { path }),
        }
    }
}

fn is_commit(s: &str) -> bool {
    s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn times(meta: &std::fs::Metadata) -> (SystemTime, SystemTime) {
    (
        meta.accessed().unwrap_or(SystemTime::UNIX_EPOCH),
        meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
    )
}

/// Every file under `dir` (a snapshot or the refs folder), with its
/// `/`-separated name below it.
fn walk(dir: &Path, prefix: &str, out: &mut Vec<(String, PathBuf)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let rel = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        let path = e.path();
        let is_dir = e.file_type().is_ok_and(|t| t.is_dir());
        if is_dir {
            walk(&path, &rel, out);
        } else {
            out.push((rel, path));
        }
    }
}

fn read_repo(
    kind: RepoKind,
    id: String,
    dir: PathBuf,
    problems: &mut Vec<Problem>,
    all_blobs: &mut BTreeMap<PathBuf, u64>,
) -> Option<Repo> {
    let snapshots = dir.join("snapshots");
    let Ok(revision_dirs) = std::fs::read_dir(&snapshots) else {
        problems.push(Problem::NoSnapshots { path: dir });
        return None;
    };
    let mut refs = Vec::new();
    read_refs(&dir.join("refs"), &mut refs, problems);
    // Blob -> (size, accessed, modified), once per blob.
    let mut blobs: BTreeMap<PathBuf, (u64, SystemTime, SystemTime)> = BTreeMap::new();
    let mut revisions = Vec::new();
    for rev in revision_dirs.flatten() {
        let rev_dir = rev.path();
        if !rev_dir.is_dir() {
            problems.push(Problem::StrayFile { path: rev_dir });
            continue;
        }
        let commit = rev.file_name().to_string_lossy().into_owned();
        let mut paths = Vec::new();
        walk(&rev_dir, "", &mut paths);
        let mut files = Vec::new();
        let mut own = BTreeSet::new();
        for (name, path) in paths {
            let blob = match std::fs::read_link(&path) {
                Ok(target) => lexical(&path.parent().unwrap_or(rev_dir.as_path()).join(target)),
                Err(_) => path.clone(),
            };
            let info = match blobs.get(&blob) {
                Some(info) => *info,
                None => {
                    let Ok(meta) = std::fs::metadata(&blob) else {
                        problems.push(Problem::BrokenLink { path });
                        continue;
                    };
                    let (a, m) = times(&meta);
                    let info = (meta.len(), a, m);
                    blobs.insert(blob.clone(), info);
                    info
                }
            };
            own.insert(blob.clone());
            files.push(CachedFile {
                name,
                path,
                blob,
                size: info.0,
            });
        }
        files.sort_by(|a, b| a.name.cmp(&b.name));
        let modified = own
            .iter()
            .filter_map(|b| blobs.get(b).map(|i| i.2))
            .max()
            .unwrap_or_else(|| {
                std::fs::metadata(&rev_dir).map_or(SystemTime::UNIX_EPOCH, |m| times(&m).1)
            });
        let mut rev_refs: Vec<String> = refs
            .iter()
            .filter(|(_, c, _)| *c == commit)
            .map(|(r, _, _)| r.clone())
            .collect();
        rev_refs.sort();
        revisions.push(Revision {
            last_used: hf_hub::cache::last_used(&rev_dir),
            size: own.iter().filter_map(|b| blobs.get(b).map(|i| i.0)).sum(),
            commit,
            refs: rev_refs,
            files,
            modified,
            dir: rev_dir,
        });
    }
    for (_, commit, path) in &refs {
        if !revisions.iter().any(|r| r.commit == *commit) {
            problems.push(Problem::MissingRevision {
                path: path.clone(),
                commit: commit.clone(),
            });
        }
    }
    revisions.sort_by(|a, b| a.commit.cmp(&b.commit));
    let (accessed, modified) = if blobs.is_empty() {
        std::fs::metadata(&dir).map_or((SystemTime::UNIX_EPOCH, SystemTime::UNIX_EPOCH), |m| {
            times(&m)
        })
    } else {
        (
            blobs
                .values()
                .map(|i| i.1)
                .max()
                .unwrap_or(SystemTime::UNIX_EPOCH),
            blobs
                .values()
                .map(|i| i.2)
                .max()
                .unwrap_or(SystemTime::UNIX_EPOCH),
        )
    };
    for (blob, info) in &blobs {
        all_blobs.insert(blob.clone(), info.0);
    }
    Some(Repo {
        kind,
        id,
        size: blobs.values().map(|i| i.0).sum(),
        files: blobs.len(),
        accessed,
        modified,
        revisions,
        dir,
    })
}
