//! Pruning: revisions nothing points to, orphaned blobs and stale partial
//! files always; then, least recently used first, revisions until the
//! limits hold. Never a revision in use (loaded, or in a repo another
//! process is downloading into).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::CacheError;
use crate::remove::{Planner, RemovalPlan, lock_of, try_lock};
use crate::scan::CacheScan;

/// Partial files younger than this may belong to a download that will
/// resume; older ones that no process holds go.
pub const STALE_INCOMPLETE: Duration = Duration::from_secs(86_400);

/// What must hold after a prune.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PruneLimits {
    /// The cache's blobs take at most this many bytes.
    pub max_size: Option<u64>,
    /// At least this many bytes free on the cache's file system.
    pub keep_free: Option<u64>,
    /// Revisions unused for longer than this go.
    pub older_than: Option<Duration>,
}

/// Whether another process holds a lock under the repo's `.locks` folder
/// (a download in progress).
fn busy(root: &Path, repo_dir: &Path) -> bool {
    let Some(name) = repo_dir.file_name() else {
        return false;
    };
    let Ok(entries) = std::fs::read_dir(root.join(".locks").join(name)) else {
        return false;
    };
    entries
        .flatten()
        .any(|e| matches!(try_lock(&e.path()), Err(CacheError::Locked(_))))
}

/// Every file in a repo's `blobs/` that no snapshot links to.
fn orphans(scan: &CacheScan) -> Vec<(PathBuf, u64)> {
    let used: BTreeSet<&Path> = scan
        .repos
        .iter()
        .flat_map(|r| &r.revisions)
        .flat_map(|r| &r.files)
        .map(|f| f.blob.as_path())
        .collect();
    let mut out = Vec::new();
    for repo in &scan.repos {
        let Ok(entries) = std::fs::read_dir(repo.dir.join("blobs")) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.ends_with(".incomplete") || name.ends_with(".parts") {
                continue;
            }
            let path = e.path();
            if !used.contains(path.as_path())
                && let Ok(meta) = e.metadata()
                && meta.is_file()
            {
                out.push((path, meta.len()));
            }
        }
    }
    out
}

/// The plan a prune carries out. `in_use` are snapshot folders that must
/// stay (what a daemon has loaded); `free` is the file system's free bytes
/// now (for `keep_free`).
pub fn plan_prune(
    scan: &CacheScan,
    limits: &PruneLimits,
    in_use: &[PathBuf],
    free: Option<u64>,
    now: SystemTime,
) -> Result<RemovalPlan, CacheError> {
    let mut planner = Planner::new(scan);
    // (last use, repo index, commit) of every revision that may go.
    let mut candidates = Vec::new();
    for (i, repo) in scan.repos.iter().enumerate() {
        if busy(&scan.root, &repo.dir) {
            continue;
        }
        for rev in &repo.revisions {
            if in_use.iter().any(|d| d == &rev.dir) {
                continue;
            }
            let used = rev.last_used.unwrap_or(repo.accessed).max(rev.modified);
            let stale = limits
                .older_than
                .is_some_and(|d| now.duration_since(used).unwrap_or_default() > d);
            // Nothing points to it, or unused for too long: it goes.
            if rev.refs.is_empty() || stale {
                planner.choose(i, &rev.commit);
            } else {
                candidates.push((used, i, rev.commit.clone()));
            }
        }
    }
    for (path, size) in orphans(scan) {
        let locked = lock_of(&scan.root, &path)
            .is_some_and(|l| matches!(try_lock(&l), Err(CacheError::Locked(_))));
        if !locked {
            planner.add_blob(path, size);
        }
    }
    for inc in &scan.incomplete {
        let old = now.duration_since(inc.modified).unwrap_or_default() > STALE_INCOMPLETE;
        let locked = lock_of(&scan.root, &inc.path)
            .is_some_and(|l| matches!(try_lock(&l), Err(CacheError::Locked(_))));
        if old && !locked {
            planner.add_incomplete(inc.path.clone(), inc.size);
        }
    }
    candidates.sort();
    let over = |plan: &RemovalPlan| {
        let size = scan.size.saturating_sub(plan.freed);
        limits.max_size.is_some_and(|m| size > m)
            || limits
                .keep_free
                .is_some_and(|k| free.unwrap_or(u64::MAX).saturating_add(plan.freed) < k)
    };
    let mut plan = planner.plan();
    for (_, i, commit) in candidates {
        if !over(&plan) {
            break;
        }
        if !planner.is_chosen(i, &commit) {
            planner.choose(i, &commit);
            plan = planner.plan();
        }
    }
    Ok(plan)
}
