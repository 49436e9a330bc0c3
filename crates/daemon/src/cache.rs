//! What the Hub cache holds, as models a client can name, and removing one.
//! Reads only under the cache folder; a malformed entry is skipped, never
//! a failure of the whole listing.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use tektra_inference::ModelRef;

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

/// `models--org--name` -> `org/name`.
fn repo_of(folder: &str) -> Option<String> {
    let rest = folder.strip_prefix("models--")?;
    let (org, name) = rest.split_once("--")?;
    Some(format!("{org}/{name}"))
}

/// The cache folder of `repo` (validated as a repo id first).
fn folder_of(cache: &Path, repo: &str) -> Option<PathBuf> {
    hf_hub::ids::RepoRef::model(repo).ok()?;
    Some(cache.join(format!("models--{}", repo.replace('/', "--"))))
}

/// Every file under `dir` (following links to blobs), relative names.
fn files(dir: &Path, prefix: &str, out: &mut BTreeMap<String, (u64, u64)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let rel = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        let Ok(meta) = std::fs::metadata(entry.path()) else {
            continue; // a broken link: not a usable file
        };
        if meta.is_dir() {
            files(&entry.path(), &rel, out);
        } else {
            let modified = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_secs());
            out.insert(rel, (meta.len(), modified));
        }
    }
}

/// The models in `cache`: each GGUF file, and each repo with safetensors
/// weights, over every snapshot (a file in several snapshots once).
pub(crate) fn models(cache: &Path) -> Vec<CachedModel> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(cache) else {
        return out;
    };
    let mut repos: Vec<(String, PathBuf)> = entries
        .flatten()
        .filter_map(|e| Some((repo_of(&e.file_name().to_string_lossy())?, e.path())))
        .collect();
    repos.sort();
    for (repo, dir) in repos {
        let mut all = BTreeMap::new();
        if let Ok(snapshots) = std::fs::read_dir(dir.join("snapshots")) {
            for snap in snapshots.flatten() {
                files(&snap.path(), "", &mut all);
            }
        }
        let mut weights = (0u64, 0u64, false);
        for (name, (size, modified)) in &all {
            let lower = name.to_ascii_lowercase();
            if lower.ends_with(".gguf") {
                out.push(CachedModel {
                    id: format!("{repo}:{name}"),
                    size: *size,
                    modified: *modified,
                });
            } else if lower.ends_with(".safetensors") {
                weights = (weights.0 + size, weights.1.max(*modified), true);
            }
        }
        if weights.2 {
            out.push(CachedModel {
                id: repo,
                size: weights.0,
                modified: weights.1,
            });
        }
    }
    out
}

/// Why a removal did not happen.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RemoveError {
    #[error("{0} is not in the cache")]
    NotCached(String),
    #[error("{0}: only Hub references name cached models")]
    NotHub(String),
    #[error("removing {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> RemoveError + '_ {
    move |source| RemoveError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Removes `model` from the cache: a whole repo (`org/name`), or one file
/// (`org/name:file`) from every snapshot, with its blob when no other link
/// uses it. Returns the bytes freed.
pub(crate) fn remove(cache: &Path, model: &ModelRef) -> Result<u64, RemoveError> {
    let ModelRef::Hub { repo, file, .. } = model else {
        return Err(RemoveError::NotHub(model.to_string()));
    };
    let dir = folder_of(cache, repo).ok_or_else(|| RemoveError::NotHub(model.to_string()))?;
    if !dir.is_dir() {
        return Err(RemoveError::NotCached(model.to_string()));
    }
    let Some(file) = file else {
        let mut sizes = BTreeMap::new();
        files(&dir.join("blobs"), "", &mut sizes);
        std::fs::remove_dir_all(&dir).map_err(io(&dir))?;
        return Ok(sizes.values().map(|(s, _)| s).sum());
    };
    let mut removed_blobs = HashSet::new();
    let mut found = false;
    let snapshots = std::fs::read_dir(dir.join("snapshots")).map_err(io(&dir))?;
    for snap in snapshots.flatten() {
        let link = snap.path().join(file);
        if link.symlink_metadata().is_err() {
            continue;
        }
        found = true;
        if let Ok(target) = std::fs::canonicalize(&link) {
            removed_blobs.insert(target);
        }
        std::fs::remove_file(&link).map_err(io(&link))?;
    }
    if !found {
        return Err(RemoveError::NotCached(model.to_string()));
    }
    // Blobs another file (of any snapshot) still links to stay.
    let mut still_used = HashSet::new();
    if let Ok(snapshots) = std::fs::read_dir(dir.join("snapshots")) {
        for snap in snapshots.flatten() {
            let mut rest = BTreeMap::new();
            files(&snap.path(), "", &mut rest);
            for name in rest.keys() {
                if let Ok(t) = std::fs::canonicalize(snap.path().join(name)) {
                    still_used.insert(t);
                }
            }
        }
    }
    let blobs = std::fs::canonicalize(dir.join("blobs")).map_err(io(&dir))?;
    let mut freed = 0;
    for blob in removed_blobs {
        if blob.starts_with(&blobs) && !still_used.contains(&blob) {
            freed += std::fs::metadata(&blob).map_or(0, |m| m.len());
            std::fs::remove_file(&blob).map_err(io(&blob))?;
        }
    }
    Ok(freed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_ggufs_and_safetensors_repos_and_removes_a_file_with_its_blob() {
        let cache = tempfile::tempdir().unwrap();
        let repo = cache.path().join("models--org--m");
        let snap = repo.join("snapshots").join("abc");
        std::fs::create_dir_all(&snap).unwrap();
        std::fs::create_dir_all(repo.join("blobs")).unwrap();
        for (name, blob, len) in [("a.Q4_0.gguf", "b1", 10), ("b.Q8_0.gguf", "b2", 20)] {
            std::fs::write(repo.join("blobs").join(blob), vec![0u8; len]).unwrap();
            std::os::unix::fs::symlink(format!("../../blobs/{blob}"), snap.join(name)).unwrap();
        }
        // A broken link and a stray folder are skipped.
        std::os::unix::fs::symlink("../../blobs/missing", snap.join("gone.gguf")).unwrap();
        std::fs::create_dir_all(cache.path().join("not-a-repo")).unwrap();
        let ids: Vec<(String, u64)> = models(cache.path())
            .into_iter()
            .map(|m| (m.id, m.size))
            .collect();
        assert_eq!(
            ids,
            [
                ("org/m:a.Q4_0.gguf".into(), 10),
                ("org/m:b.Q8_0.gguf".into(), 20)
            ]
        );
        let r = ModelRef::parse_hub("org/m:a.Q4_0.gguf").unwrap();
        assert_eq!(remove(cache.path(), &r).unwrap(), 10);
        assert!(!repo.join("blobs/b1").exists());
        assert!(repo.join("blobs/b2").exists());
        assert!(matches!(
            remove(cache.path(), &r),
            Err(RemoveError::NotCached(_))
        ));
        let whole = ModelRef::parse_hub("org/m").unwrap();
        assert_eq!(remove(cache.path(), &whole).unwrap(), 20);
        assert!(!repo.exists());
    }
}
