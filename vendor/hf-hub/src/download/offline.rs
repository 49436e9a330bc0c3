//! Offline answers: what the cache holds, found without a request.

use super::{CachedFile, Snapshot, cached};
use crate::cache::RepoCache;
use crate::client::Hub;
use crate::error::HubError;
use crate::filter::Filter;
use crate::ids::{RepoPath, RepoRef, Revision};

pub(super) fn offline_file(
    hub: &Hub,
    repo_cache: &RepoCache,
    repo: &RepoRef,
    revision: &Revision,
    path: &RepoPath,
) -> Result<CachedFile, HubError> {
    let not_cached = |what: String| HubError::NotCached {
        what,
        cache: hub.cache().root().to_path_buf(),
    };
    let Some(commit) = repo_cache.commit_of(revision) else {
        return Err(not_cached(format!(
            "{repo}@{revision} (no ref for this revision)"
        )));
    };
    if let Some(link) = repo_cache.cached_file(revision, path) {
        let size = std::fs::metadata(&link).ok().map(|m| m.len());
        return Ok(cached(path, link, &commit, size));
    }
    if repo_cache.is_known_missing(&commit, path) {
        return Err(HubError::EntryNotFound {
            repo: repo.id().to_string(),
            revision: revision.as_str().to_string(),
            path: path.as_str().to_string(),
        });
    }
    Err(not_cached(format!("{repo}@{revision}: {path}")))
}

pub(super) fn offline_snapshot(
    hub: &Hub,
    repo_cache: &RepoCache,
    repo: &RepoRef,
    revision: &Revision,
    filter: &Filter,
) -> Result<Snapshot, HubError> {
    let not_cached = |what: String| HubError::NotCached {
        what,
        cache: hub.cache().root().to_path_buf(),
    };
    let Some(commit) = repo_cache.commit_of(revision) else {
        return Err(not_cached(format!(
            "{repo}@{revision} (no ref for this revision)"
        )));
    };
    let dir = repo_cache.snapshot_dir(&commit);
    let listed: Vec<(RepoPath, Option<u64>)> = match repo_cache.read_tree(&commit) {
        Some(tree) => tree.into_iter().map(|f| (f.path, Some(f.size))).collect(),
        // Without a listing, the snapshot folder is all we know.
        None => list_snapshot(&dir)?
            .into_iter()
            .map(|p| (p, None))
            .collect(),
    };
    let mut files = Vec::new();
    let mut missing = Vec::new();
    for (path, size) in listed
        .into_iter()
        .filter(|(p, _)| filter.matches(p.as_str()))
    {
        let link = repo_cache.snapshot_path(&commit, &path);
        if link.is_file() {
            files.push(cached(&path, link, &commit, size));
        } else {
            missing.push(path.as_str().to_string());
        }
    }
    if !missing.is_empty() {
        let shown = missing
            .iter()
            .take(10)
            .cloned()
            .collect::<Vec<_>>()
            .join(", ");
        let more = missing.len().saturating_sub(10);
        let tail = if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        };
        return Err(not_cached(format!("{repo}@{revision}: {shown}{tail}")));
    }
    if files.is_empty() && !dir.is_dir() {
        return Err(not_cached(format!(
            "{repo}@{revision} (no snapshot {commit})"
        )));
    }
    Ok(Snapshot { commit, dir, files })
}

/// Every file under a snapshot folder, as repo paths.
pub(super) fn list_snapshot(dir: &std::path::Path) -> Result<Vec<RepoPath>, HubError> {
    let mut out = Vec::new();
    let mut stack = vec![(dir.to_path_buf(), String::new())];
    while let Some((folder, prefix)) = stack.pop() {
        let entries = match std::fs::read_dir(&folder) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(HubError::io("listing", &folder, e)),
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') && name.ends_with(".tmp") {
                continue;
            }
            let rel = if prefix.is_empty() {
                name
            } else {
                format!("{prefix}/{name}")
            };
            let path = entry.path();
            if path.is_dir() {
                stack.push((path, rel));
            } else if let Ok(p) = RepoPath::new(&rel) {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}
