//! What the Hub cache holds, as models a client can name (read through
//! `tektra-cache`), and removing one under the cache's locks.

use std::path::Path;
use std::time::UNIX_EPOCH;

use tektra_cache::{CacheError, RepoKind, Target};
use tektra_inference::ModelRef;

/// Whether the pool or job key `key` names a model of `repo`
/// (`org/name`, `org/name:file`, `org/name@rev...`).
pub(crate) fn names_repo(key: &str, repo: &str) -> bool {
    key.strip_prefix(repo)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with([':', '@']))
}

/// A model in the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CachedModel {
    /// `org/name:file.gguf` for a GGUF, `org/name` for a safetensors model.
    pub(crate) id: String,
    /// Bytes of its files.
    pub(crate) size: u64,
    /// Seconds since the epoch of its newest file.
    pub(crate) modified: u64,
}

/// The models in `cache`: each GGUF file, and each model repo with
/// safetensors weights, over every revision (a file in several once).
pub(crate) fn models(cache: &Path) -> Vec<CachedModel> {
    let Ok(scan) = tektra_cache::scan(cache) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for repo in scan.repos.iter().filter(|r| r.kind == RepoKind::Model) {
        let modified = repo
            .modified
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut ggufs = std::collections::BTreeMap::new();
        let mut weights = None::<u64>;
        for f in repo.revisions.iter().flat_map(|r| &r.files) {
            let lower = f.name.to_ascii_lowercase();
            if lower.ends_with(".gguf") {
                ggufs.insert(f.name.clone(), f.size);
            } else if lower.ends_with(".safetensors") {
                *weights.get_or_insert(0) += f.size;
            }
        }
        for (name, size) in ggufs {
            out.push(CachedModel {
                id: format!("{}:{name}", repo.id),
                size,
                modified,
            });
        }
        if let Some(size) = weights {
            out.push(CachedModel {
                id: repo.id.clone(),
                size,
                modified,
            });
        }
    }
    out
}

/// Removes `model` from the cache: a whole repo (`org/name`), or one file
/// (`org/name:file`) with its blob when no other link uses it. Returns the
/// bytes freed.
pub(crate) fn remove(cache: &Path, model: &ModelRef) -> Result<u64, CacheError> {
    let ModelRef::Hub {
        repo,
        file,
        revision,
    } = model
    else {
        return Err(CacheError::BadTarget(model.to_string()));
    };
    let target = Target {
        kind: RepoKind::Model,
        repo: repo.clone(),
        revision: revision.clone(),
    };
    let scan = tektra_cache::scan(cache)?;
    let plan = match file {
        Some(name) => tektra_cache::plan_remove_file(&scan, &target, name)?,
        None => tektra_cache::plan_remove(&scan, &[target])?,
    };
    Ok(tektra_cache::execute(cache, &plan)?.freed)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_key_names_its_repo_and_no_other() {
        for key in ["org/m", "org/m:f.gguf", "org/m@main:f.gguf"] {
            assert!(super::names_repo(key, "org/m"), "{key}");
        }
        for key in ["org/mm", "org/m2:f.gguf", "org/x"] {
            assert!(!super::names_repo(key, "org/m"), "{key}");
        }
    }
}
