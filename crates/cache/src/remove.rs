//! Removing revisions as one plan: their snapshot folders, the refs that
//! point to them, the blobs no remaining revision uses (the whole repo
//! folder when no revision remains), partial downloads and orphaned blobs
//! when asked. A plan is data: `--dry-run` prints it; executing it first
//! takes the per-blob locks huggingface_hub and our downloads take, and
//! removes nothing if another process holds one.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{File, TryLockError};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::CacheError;
use crate::scan::{CacheScan, Repo};
use crate::target::Target;

/// One revision a plan removes.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedRevision {
    /// The repo's cache id.
    pub repo: String,
    /// The commit.
    pub commit: String,
    /// Refs that pointed to it.
    pub refs: Vec<String>,
    /// Bytes of its blobs.
    pub size: u64,
}

/// What a removal deletes.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RemovalPlan {
    /// Revisions removed.
    pub revisions: Vec<PlannedRevision>,
    /// Repo folders removed whole (no revision left).
    pub repos: Vec<PathBuf>,
    /// Snapshot folders removed (of repos that keep others).
    pub snapshots: Vec<PathBuf>,
    /// Ref files removed.
    pub refs: Vec<PathBuf>,
    /// Single files' links removed (their revisions stay).
    pub links: Vec<PathBuf>,
    /// Blobs removed (no remaining revision uses them), with sizes.
    pub blobs: Vec<(PathBuf, u64)>,
    /// Partial downloads removed, with sizes.
    pub incomplete: Vec<(PathBuf, u64)>,
    /// Bytes freed.
    pub freed: u64,
}

impl RemovalPlan {
    /// Whether it removes nothing.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.revisions.is_empty()
            && self.repos.is_empty()
            && self.links.is_empty()
            && self.blobs.is_empty()
            && self.incomplete.is_empty()
    }
}

/// Builds a plan: revisions chosen one by one, blobs and partial files added.
pub(crate) struct Planner<'a> {
    scan: &'a CacheScan,
    /// Repo index -> commits chosen.
    chosen: BTreeMap<usize, BTreeSet<String>>,
    extra_blobs: BTreeMap<PathBuf, u64>,
    incomplete: BTreeMap<PathBuf, u64>,
}

impl<'a> Planner<'a> {
    pub(crate) fn new(scan: &'a CacheScan) -> Self {
        Planner {
            scan,
            chosen: BTreeMap::new(),
            extra_blobs: BTreeMap::new(),
            incomplete: BTreeMap::new(),
        }
    }

    pub(crate) fn choose(&mut self, repo: usize, commit: &str) {
        self.chosen
            .entry(repo)
            .or_default()
            .insert(commit.to_string());
    }

    pub(crate) fn is_chosen(&self, repo: usize, commit: &str) -> bool {
        self.chosen.get(&repo).is_some_and(|c| c.contains(commit))
    }

    pub(crate) fn add_blob(&mut self, path: PathBuf, size: u64) {
        self.extra_blobs.insert(path, size);
    }

    pub(crate) fn add_incomplete(&mut self, path: PathBuf, size: u64) {
        self.incomplete.insert(path, size);
    }

    /// The plan as chosen so far.
    pub(crate) fn plan(&self) -> RemovalPlan {
        let mut plan = RemovalPlan::default();
        let mut blobs: BTreeMap<PathBuf, u64> = self.extra_blobs.clone();
        for (&i, commits) in &self.chosen {
            let repo: &Repo = &self.scan.repos[i];
            let whole = repo.revisions.iter().all(|r| commits.contains(&r.commit));
            let mut kept = BTreeSet::new();
            let mut gone = BTreeMap::new();
            for rev in &repo.revisions {
                if commits.contains(&rev.commit) {
                    plan.revisions.push(PlannedRevision {
                        repo: repo.cache_id(),
                        commit: rev.commit.clone(),
                        refs: rev.refs.clone(),
                        size: rev.size,
                    });
                    for f in &rev.files {
                        gone.insert(f.blob.clone(), f.size);
                    }
                    if !whole {
                        plan.snapshots.push(rev.dir.clone());
                        for r in &rev.refs {
                            plan.refs.push(repo.dir.join("refs").join(r));
                        }
                    }
                } else {
                    kept.extend(rev.files.iter().map(|f| f.blob.clone()));
                }
            }
            if whole {
                plan.repos.push(repo.dir.clone());
                // Everything under it goes: its partial files too.
                for inc in self
                    .scan
                    .incomplete
                    .iter()
                    .filter(|f| f.path.starts_with(&repo.dir))
                {
                    plan.incomplete.push((inc.path.clone(), inc.size));
                }
            }
            for (blob, size) in gone {
                if !kept.contains(&blob) {
                    blobs.insert(blob, size);
                }
            }
        }
        for (path, size) in &self.incomplete {
            if !plan.incomplete.iter().any(|(p, _)| p == path) {
                plan.incomplete.push((path.clone(), *size));
            }
        }
        plan.blobs = blobs.into_iter().collect();
        plan.freed = plan.blobs.iter().map(|(_, s)| s).sum::<u64>()
            + plan.incomplete.iter().map(|(_, s)| s).sum::<u64>();
        plan
    }
}

/// The plan that removes what `targets` name (an unknown repo or revision
/// is an error naming it, and nothing is planned).
pub fn plan_remove(scan: &CacheScan, targets: &[Target]) -> Result<RemovalPlan, CacheError> {
    let mut planner = Planner::new(scan);
    for t in targets {
        let (repo, revisions) = t.resolve(scan)?;
        let i = scan
            .repos
            .iter()
            .position(|r| std::ptr::eq(r, repo))
            .ok_or_else(|| CacheError::UnknownRepo(t.to_string()))?;
        for rev in revisions {
            planner.choose(i, &rev.commit);
        }
    }
    Ok(planner.plan())
}

/// The plan that removes the file `name` from every revision of `target`
/// that has it (its links, and its blobs when no other link uses them),
/// leaving the revisions otherwise as they are.
pub fn plan_remove_file(
    scan: &CacheScan,
    target: &Target,
    name: &str,
) -> Result<RemovalPlan, CacheError> {
    let (repo, revisions) = target.resolve(scan)?;
    let mut plan = RemovalPlan::default();
    let mut gone = BTreeMap::new();
    for rev in &revisions {
        for f in rev.files.iter().filter(|f| f.name == name) {
            plan.links.push(f.path.clone());
            gone.insert(f.blob.clone(), f.size);
        }
    }
    if plan.links.is_empty() {
        return Err(CacheError::UnknownRepo(format!("{target}:{name}")));
    }
    let still: BTreeSet<&PathBuf> = repo
        .revisions
        .iter()
        .flat_map(|r| &r.files)
        .filter(|f| !plan.links.contains(&f.path))
        .map(|f| &f.blob)
        .collect();
    plan.blobs = gone
        .into_iter()
        .filter(|(b, _)| !still.contains(b))
        .collect();
    plan.freed = plan.blobs.iter().map(|(_, s)| s).sum();
    Ok(plan)
}

/// `.locks/<repo folder>/<blob name>.lock`, the lock of a blob (or of the
/// partial file that becomes it).
pub(crate) fn lock_of(root: &Path, blob: &Path) -> Option<PathBuf> {
    let repo_dir = blob.parent()?.parent()?;
    let name = blob.file_name()?.to_string_lossy();
    let name = name.strip_suffix(".incomplete").unwrap_or(&name);
    Some(
        root.join(".locks")
            .join(repo_dir.file_name()?)
            .join(format!("{name}.lock")),
    )
}

/// Takes the lock at `path` if it exists; `Err` with the path when another
/// process holds it.
pub(crate) fn try_lock(path: &Path) -> Result<Option<File>, CacheError> {
    let file = match File::options().write(true).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(CacheError::io(path, e)),
    };
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(TryLockError::WouldBlock) => Err(CacheError::Locked(path.to_path_buf())),
        Err(TryLockError::Error(e)) => Err(CacheError::io(path, e)),
    }
}

/// Takes shared locks on the blobs behind `path` (a file of a snapshot, or
/// a snapshot folder) and holds them while the returned files live: `rm`
/// and `prune`, in any process, then leave those blobs alone. What a
/// process that has a model loaded holds. Paths outside a Hub cache pin
/// nothing.
#[must_use]
pub fn pin(path: &Path) -> Vec<File> {
    let files: Vec<PathBuf> = if path.is_dir() {
        std::fs::read_dir(path)
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default()
    } else {
        vec![path.to_path_buf()]
    };
    let mut held = Vec::new();
    for file in files {
        let Ok(blob) = std::fs::canonicalize(&file) else {
            continue;
        };
        let in_blobs = blob
            .parent()
            .and_then(Path::file_name)
            .is_some_and(|n| n == "blobs");
        let root = blob.parent().and_then(Path::parent).and_then(Path::parent);
        let (true, Some(root)) = (in_blobs, root) else {
            continue;
        };
        let Some(lock) = lock_of(root, &blob) else {
            continue;
        };
        if let Some(dir) = lock.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let Ok(f) = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock)
        else {
            continue;
        };
        if f.lock_shared().is_ok() {
            held.push(f);
        }
    }
    held
}

/// What [`execute`] removed.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Removed {
    /// Revisions removed.
    pub revisions: usize,
    /// Files removed (blobs and partial files).
    pub files: usize,
    /// Bytes freed.
    pub freed: u64,
}

/// Carries out `plan` on the cache at `root`. Every lock of what it
/// removes is taken first and held throughout; if another process holds
/// one, nothing is removed and the error names it.
pub fn execute(root: &Path, plan: &RemovalPlan) -> Result<Removed, CacheError> {
    // Each lock once: a second descriptor of our own would conflict with
    // the first.
    let mut locks = BTreeSet::new();
    for (path, _) in plan.blobs.iter().chain(&plan.incomplete) {
        locks.extend(lock_of(root, path));
    }
    for repo in &plan.repos {
        // A whole repo: every lock under its folder of `.locks`.
        if let Some(name) = repo.file_name()
            && let Ok(entries) = std::fs::read_dir(root.join(".locks").join(name))
        {
            locks.extend(entries.flatten().map(|e| e.path()));
        }
    }
    let mut held = Vec::new();
    for lock in &locks {
        held.extend(try_lock(lock)?);
    }
    let gone = |path: &Path, r: std::io::Result<()>| match r {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(CacheError::io(path, e)),
    };
    for r in &plan.refs {
        gone(r, std::fs::remove_file(r))?;
    }
    for l in &plan.links {
        gone(l, std::fs::remove_file(l))?;
    }
    for s in &plan.snapshots {
        gone(s, std::fs::remove_dir_all(s))?;
    }
    let mut files = 0;
    for (b, _) in &plan.blobs {
        gone(b, std::fs::remove_file(b))?;
        files += 1;
    }
    for (p, _) in &plan.incomplete {
        gone(p, std::fs::remove_file(p))?;
        let mut parts = p.clone().into_os_string();
        parts.push(".parts");
        let _ = std::fs::remove_file(PathBuf::from(parts));
        files += 1;
    }
    for repo in &plan.repos {
        gone(repo, std::fs::remove_dir_all(repo))?;
    }
    drop(held);
    Ok(Removed {
        revisions: plan.revisions.len(),
        files,
        freed: plan.freed,
    })
}
