//! Whether a blob already in the cache can be linked as it is. A blob this
//! engine committed carries a mark (see `cache::mark`); one that does not
//! (written by huggingface_hub, by an older version, or a full-size file of
//! zeros a power cut left behind a renamed name) is hashed first, under the
//! blob's lock. Right: it is synced and marked, and the next run trusts it
//! without hashing. Wrong: it is removed and downloaded again.

use tektra_progress::{FileProgress, State};
use tokio_util::sync::CancellationToken;

use crate::cache::{BlobState, RepoCache};
use crate::error::HubError;
use crate::verify::{Expected, hash_file_until};

/// Checks the unmarked blob `name` against `etag`. `Ok(true)`: it is right,
/// now marked; `Ok(false)`: it was wrong (or cannot be checked: its etag is
/// not a hash) and is gone. Call with the blob's lock held.
pub(super) async fn recheck(
    repo_cache: &RepoCache,
    (name, etag, size): (&str, &str, u64),
    progress: &FileProgress,
    cancel: &CancellationToken,
) -> Result<bool, HubError> {
    let path = repo_cache.blob_path(name);
    let expected = Expected::from_etag(etag);
    if expected == Expected::SizeOnly {
        // Nothing to check it against: its size alone vouches for nothing.
        remove(&path)?;
        return Ok(false);
    }
    progress.set_total(size);
    progress.set_done(0);
    progress.set_state(State::Verifying);
    let (job_path, job_expected, stop, meter) = (
        path.clone(),
        expected.clone(),
        cancel.clone(),
        progress.clone(),
    );
    let hashed = tokio::task::spawn_blocking(move || {
        hash_file_until(&job_path, &job_expected, &stop, |n| meter.advance(n))
    })
    .await
    .map_err(|e| HubError::io("hashing", &path, std::io::Error::other(e.to_string())))?;
    let (len, digest) = match hashed {
        Ok(done) => done,
        Err(_) if cancel.is_cancelled() => return Err(HubError::Cancelled),
        Err(e) => return Err(HubError::io("hashing", &path, e)),
    };
    if len == size && digest == expected.hex() {
        repo_cache.mark_verified(name);
        return Ok(true);
    }
    progress.note(format!(
        "the cached blob does not match its {} ({digest}): downloading it again",
        expected.algorithm()
    ));
    progress.set_done(0);
    remove(&path)?;
    Ok(false)
}

/// Whether `name` can be linked without the lock: verified already.
pub(super) fn is_verified(repo_cache: &RepoCache, name: &str, size: u64) -> bool {
    repo_cache.blob_state(name, size) == BlobState::Verified
}

fn remove(path: &std::path::Path) -> Result<(), HubError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(HubError::io("removing", path, e)),
    }
}
