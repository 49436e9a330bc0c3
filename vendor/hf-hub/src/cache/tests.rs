use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::*;
use crate::RepoType;

fn repo_cache(dir: &Path) -> RepoCache {
    CacheDir::new(dir).repo(&RepoRef::new(RepoType::Dataset, "org/data").unwrap())
}

#[test]
fn refs_are_written_for_branches_only_and_nest() {
    let dir = tempfile::tempdir().unwrap();
    let rc = repo_cache(dir.path());
    let commit = "0123456789abcdef0123456789abcdef01234567";
    rc.write_ref(&Revision::new("refs/pr/1").unwrap(), commit)
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(dir.path().join("datasets--org--data/refs/refs/pr/1")).unwrap(),
        commit
    );
    rc.write_ref(&Revision::new(commit).unwrap(), commit)
        .unwrap();
    assert!(
        !dir.path()
            .join("datasets--org--data/refs")
            .join(commit)
            .exists()
    );
    assert_eq!(
        rc.commit_of(&Revision::new("refs/pr/1").unwrap())
            .as_deref(),
        Some(commit)
    );
}

#[test]
fn snapshot_links_are_relative_and_replace_atomically() {
    let dir = tempfile::tempdir().unwrap();
    let rc = repo_cache(dir.path());
    let commit = "0123456789abcdef0123456789abcdef01234567";
    let blob = rc.blob_path("abc");
    std::fs::create_dir_all(blob.parent().unwrap()).unwrap();
    std::fs::write(&blob, b"x").unwrap();
    let path = RepoPath::new("a/b/c.txt").unwrap();
    let link = rc.link_snapshot(commit, &path, "abc").unwrap();
    assert_eq!(
        std::fs::read_link(&link).unwrap(),
        Path::new("../../../../blobs/abc")
    );
    assert_eq!(std::fs::read(&link).unwrap(), b"x");
    // Again: replaced in place, no temporary left behind.
    rc.link_snapshot(commit, &path, "abc").unwrap();
    let names: Vec<_> = std::fs::read_dir(link.parent().unwrap())
        .unwrap()
        .flatten()
        .collect();
    assert_eq!(names.len(), 1);
}

#[tokio::test]
async fn the_blob_lock_excludes_a_second_holder_until_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let rc = repo_cache(dir.path());
    let path = rc.lock_path("abc");
    let cancel = CancellationToken::new();
    let first = BlobLock::acquire(&path, Duration::from_secs(5), &cancel, || {})
        .await
        .unwrap();
    let mut waited = false;
    let err = BlobLock::acquire(&path, Duration::from_millis(300), &cancel, || waited = true)
        .await
        .unwrap_err();
    assert!(waited);
    assert!(matches!(err, HubError::LockTimeout { .. }), "{err}");
    drop(first);
    BlobLock::acquire(&path, Duration::from_secs(1), &cancel, || {})
        .await
        .unwrap();
}
