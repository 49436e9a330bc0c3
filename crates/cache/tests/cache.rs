//! The library on caches built on disk the way the Hub clients lay them
//! out: listing, damage reported, verification, removal and pruning.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};
use tektra_cache::{CacheError, Problem, PruneLimits, Target, Verdict};

const C1: &str = "1111111111111111111111111111111111111111";
const C2: &str = "2222222222222222222222222222222222222222";

/// Writes a blob named by its sha256 and links `names` to it in `commit`.
fn put(root: &Path, repo: &str, commit: &str, name: &str, data: &[u8]) -> PathBuf {
    let dir = root.join(format!("models--{}", repo.replace('/', "--")));
    let etag = hex::encode(Sha256::digest(data));
    let blob = dir.join("blobs").join(&etag);
    std::fs::create_dir_all(blob.parent().unwrap()).unwrap();
    std::fs::write(&blob, data).unwrap();
    let link = dir.join("snapshots").join(commit).join(name);
    std::fs::create_dir_all(link.parent().unwrap()).unwrap();
    let depth = name.matches('/').count();
    let target = format!("{}../../blobs/{etag}", "../".repeat(depth));
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(target, &link).unwrap();
    blob
}

fn set_ref(root: &Path, repo: &str, name: &str, commit: &str) {
    let p = root
        .join(format!("models--{}", repo.replace('/', "--")))
        .join("refs")
        .join(name);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, commit).unwrap();
}

/// org/a: two revisions sharing one blob (main -> C2, C1 detached);
/// org/b: one revision.
fn sample() -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    put(r, "org/a", C1, "config.json", b"{\"v\":1}");
    put(r, "org/a", C1, "weights.bin", &[1u8; 4000]);
    put(r, "org/a", C2, "config.json", b"{\"v\":2}");
    put(r, "org/a", C2, "weights.bin", &[1u8; 4000]);
    set_ref(r, "org/a", "main", C2);
    put(r, "org/b", C1, "sub/model.gguf", &[2u8; 10_000]);
    set_ref(r, "org/b", "main", C1);
    root
}

/// Every path under `root` with its kind, size and link target: what a
/// dry run must leave as it was.
fn tree(root: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let v = if m.is_symlink() {
                format!("link {}", std::fs::read_link(&p).unwrap().display())
            } else if m.is_dir() {
                stack.push(p.clone());
                "dir".into()
            } else {
                format!("file {}", m.len())
            };
            out.insert(p, v);
        }
    }
    out
}

#[test]
fn a_scan_counts_unique_blobs_and_refs_per_revision() {
    let root = sample();
    let scan = tektra_cache::scan(root.path()).unwrap();
    assert!(scan.problems.is_empty(), "{:?}", scan.problems);
    let a = scan.repo(tektra_cache::RepoKind::Model, "org/a").unwrap();
    assert_eq!(a.cache_id(), "model/org/a");
    assert_eq!((a.files, a.size), (3, 7 + 7 + 4000));
    assert_eq!(a.revisions.len(), 2);
    assert_eq!(a.revisions[1].refs, ["main"]);
    assert!(a.revisions[0].refs.is_empty());
    let b = scan.repo(tektra_cache::RepoKind::Model, "org/b").unwrap();
    assert_eq!(b.revisions[0].files[0].name, "sub/model.gguf");
    assert_eq!(scan.size, 7 + 7 + 4000 + 10_000);
}

#[test]
fn damage_is_reported_and_the_rest_still_lists() {
    let root = sample();
    let r = root.path();
    let a = r.join("models--org--a");
    std::os::unix::fs::symlink(
        "../../blobs/gone",
        a.join("snapshots").join(C2).join("lost.bin"),
    )
    .unwrap();
    std::fs::write(a.join("snapshots").join("stray.txt"), b"x").unwrap();
    std::fs::write(a.join("refs").join("half"), b"22222").unwrap();
    set_ref(r, "org/a", "v9", "9999999999999999999999999999999999999999");
    std::fs::create_dir_all(r.join("models--org--nosnap")).unwrap();
    std::fs::write(r.join("junk"), b"?").unwrap();
    let scan = tektra_cache::scan(r).unwrap();
    let kinds: Vec<&str> = scan
        .problems
        .iter()
        .map(|p| match p {
            Problem::NotARepo { .. } => "not_a_repo",
            Problem::NoSnapshots { .. } => "no_snapshots",
            Problem::StrayFile { .. } => "stray",
            Problem::BrokenLink { .. } => "broken",
            Problem::BadRef { .. } => "bad_ref",
            Problem::MissingRevision { .. } => "missing_revision",
        })
        .collect();
    for k in [
        "not_a_repo",
        "no_snapshots",
        "stray",
        "broken",
        "bad_ref",
        "missing_revision",
    ] {
        assert!(kinds.contains(&k), "{k} not reported: {:?}", scan.problems);
    }
    // The repo itself still lists, and can be removed.
    assert_eq!(
        scan.repo(tektra_cache::RepoKind::Model, "org/a")
            .unwrap()
            .size,
        4014
    );
    let plan = tektra_cache::plan_remove(&scan, &["org/a".parse().unwrap()]).unwrap();
    tektra_cache::execute(r, &plan).unwrap();
    assert!(!a.exists());
}

#[test]
fn verify_finds_a_flipped_byte_and_fix_removes_the_blob_and_its_links() {
    let root = sample();
    let r = root.path();
    let blob = put(r, "org/b", C1, "other.bin", &[9u8; 3000]);
    let mut bytes = std::fs::read(&blob).unwrap();
    bytes[1234] ^= 0x20;
    std::fs::write(&blob, bytes).unwrap();
    let scan = tektra_cache::scan(r).unwrap();
    let cancel = tokio_util::sync::CancellationToken::new();
    let report =
        tektra_cache::verify(&scan, &[], 2, false, tektra_progress::silent(), &cancel).unwrap();
    assert_eq!(report.blobs.len(), 5);
    let bad: Vec<_> = report.bad().collect();
    assert_eq!(bad.len(), 1);
    assert_eq!(bad[0].blob, blob);
    assert!(
        matches!(&bad[0].verdict, Verdict::Mismatch { algorithm, .. } if algorithm == "sha256")
    );
    // Only org/a: clean.
    let only_a = tektra_cache::verify(
        &scan,
        &["org/a".parse().unwrap()],
        1,
        false,
        tektra_progress::silent(),
        &cancel,
    )
    .unwrap();
    assert_eq!((only_a.blobs.len(), only_a.bad().count()), (3, 0));
    let fixed = tektra_cache::verify(
        &scan,
        &["org/b@main".parse().unwrap()],
        2,
        true,
        tektra_progress::silent(),
        &cancel,
    )
    .unwrap();
    assert!(fixed.bad().all(|b| b.removed));
    assert!(!blob.exists());
    assert!(
        std::fs::symlink_metadata(
            r.join("models--org--b/snapshots")
                .join(C1)
                .join("other.bin")
        )
        .is_err()
    );
    let after = tektra_cache::scan(r).unwrap();
    assert!(after.problems.is_empty(), "{:?}", after.problems);
}

#[test]
fn removing_a_revision_keeps_shared_blobs_and_unknown_names_remove_nothing() {
    let root = sample();
    let r = root.path();
    let before = tree(r);
    let scan = tektra_cache::scan(r).unwrap();
    for bad in ["org/none", "org/a@v7", "org/a@1111"] {
        let err = tektra_cache::plan_remove(&scan, &[bad.parse().unwrap()]).unwrap_err();
        assert!(
            matches!(
                err,
                CacheError::UnknownRepo(_) | CacheError::UnknownRevision { .. }
            ),
            "{bad}: {err}"
        );
    }
    assert!("../etc".parse::<Target>().is_err());
    assert!("org/a@".parse::<Target>().is_err());
    // The detached revision: its own config blob goes, the shared weights stay.
    let plan = tektra_cache::plan_remove(&scan, &[format!("org/a@{}", &C1[..8]).parse().unwrap()])
        .unwrap();
    assert_eq!(plan.revisions.len(), 1);
    assert_eq!(plan.blobs.len(), 1);
    assert_eq!(plan.freed, 7);
    assert_eq!(tree(r), before, "planning changes nothing");
    tektra_cache::execute(r, &plan).unwrap();
    let scan = tektra_cache::scan(r).unwrap();
    let a = scan.repo(tektra_cache::RepoKind::Model, "org/a").unwrap();
    assert_eq!((a.revisions.len(), a.size), (1, 4007));
    assert!(scan.problems.is_empty());
    // The last revision: the whole repo folder.
    let plan = tektra_cache::plan_remove(&scan, &["model/org/a@main".parse().unwrap()]).unwrap();
    assert_eq!(plan.repos.len(), 1);
    tektra_cache::execute(r, &plan).unwrap();
    assert!(!r.join("models--org--a").exists());
}

#[test]
fn a_blob_another_process_holds_is_not_removed() {
    let root = sample();
    let r = root.path();
    let scan = tektra_cache::scan(r).unwrap();
    let b = scan.repo(tektra_cache::RepoKind::Model, "org/b").unwrap();
    let blob = &b.revisions[0].files[0].blob;
    let lock = r.join(".locks/models--org--b").join(format!(
        "{}.lock",
        blob.file_name().unwrap().to_string_lossy()
    ));
    std::fs::create_dir_all(lock.parent().unwrap()).unwrap();
    // A lock held through another open file description, as another
    // process's flock would be.
    let held = std::fs::File::create(&lock).unwrap();
    held.lock().unwrap();
    let before = tree(r);
    let plan = tektra_cache::plan_remove(&scan, &["org/b".parse().unwrap()]).unwrap();
    let err = tektra_cache::execute(r, &plan).unwrap_err();
    assert!(matches!(err, CacheError::Locked(_)), "{err}");
    assert_eq!(tree(r), before, "nothing removed");
    // Pruning leaves a repo being downloaded into alone.
    let plan = tektra_cache::plan_prune(
        &scan,
        &PruneLimits {
            max_size: Some(0),
            ..PruneLimits::default()
        },
        &[],
        None,
        SystemTime::now(),
    )
    .unwrap();
    assert!(
        plan.revisions.iter().all(|rev| rev.repo != "model/org/b"),
        "{plan:?}"
    );
    drop(held);
    tektra_cache::execute(
        r,
        &tektra_cache::plan_remove(&scan, &["org/b".parse().unwrap()]).unwrap(),
    )
    .unwrap();
}

#[test]
fn prune_takes_leftovers_then_the_least_recently_used_until_the_limit_holds() {
    let root = sample();
    let r = root.path();
    put(r, "org/c", C1, "m.gguf", &[3u8; 20_000]);
    set_ref(r, "org/c", "main", C1);
    // org/c used just now, org/b a while ago (our marks).
    hf_hub::cache::mark_used(&r.join("models--org--c/snapshots").join(C1));
    // A stale partial file, a fresh one, an orphaned blob.
    let blobs = r.join("models--org--b/blobs");
    let stale = blobs.join("aaaa.incomplete");
    std::fs::write(&stale, [0u8; 100]).unwrap();
    let old = SystemTime::now() - Duration::from_secs(3 * 86_400);
    std::fs::File::options()
        .write(true)
        .open(&stale)
        .unwrap()
        .set_modified(old)
        .unwrap();
    std::fs::write(blobs.join("bbbb.incomplete"), [0u8; 50]).unwrap();
    std::fs::write(blobs.join("orphan"), [0u8; 30]).unwrap();
    let scan = tektra_cache::scan(r).unwrap();
    // No limits: the detached revision, the orphan, the stale partial file.
    let plan =
        tektra_cache::plan_prune(&scan, &PruneLimits::default(), &[], None, SystemTime::now())
            .unwrap();
    assert_eq!(plan.revisions.len(), 1);
    assert_eq!(plan.revisions[0].commit, C1);
    assert_eq!(plan.incomplete.len(), 1);
    assert_eq!(plan.freed, 7 + 30 + 100);
    // A cap of 25 kB: org/a and org/b go (least recently used), org/c stays.
    let limits = PruneLimits {
        max_size: Some(25_000),
        ..PruneLimits::default()
    };
    let plan = tektra_cache::plan_prune(&scan, &limits, &[], None, SystemTime::now()).unwrap();
    let repos: Vec<&str> = plan.revisions.iter().map(|r| r.repo.as_str()).collect();
    assert!(!repos.contains(&"model/org/c"), "{repos:?}");
    assert!(
        repos.contains(&"model/org/a") && repos.contains(&"model/org/b"),
        "{repos:?}"
    );
    // Unused for longer than no time at all: every revision.
    std::thread::sleep(Duration::from_millis(1100));
    let limits = PruneLimits {
        older_than: Some(Duration::ZERO),
        ..PruneLimits::default()
    };
    let plan = tektra_cache::plan_prune(&scan, &limits, &[], None, SystemTime::now()).unwrap();
    assert_eq!(plan.revisions.len(), 4, "{plan:?}");
    // In use: kept whatever the limit.
    let keep = vec![r.join("models--org--b/snapshots").join(C1)];
    let plan = tektra_cache::plan_prune(
        &scan,
        &PruneLimits {
            max_size: Some(0),
            ..PruneLimits::default()
        },
        &keep,
        None,
        SystemTime::now(),
    )
    .unwrap();
    assert!(plan.revisions.iter().all(|rev| rev.repo != "model/org/b"));
    tektra_cache::execute(r, &plan).unwrap();
    let after = tektra_cache::scan(r).unwrap();
    assert!(after.problems.is_empty(), "{:?}", after.problems);
    assert_eq!(after.repos.len(), 1);
    assert!(
        blobs.join("bbbb.incomplete").exists(),
        "a fresh partial file stays"
    );
}
