//! What a power cut, another tool or a foreign mirror can leave in the
//! cache is checked before it is trusted.

use std::path::PathBuf;
use std::sync::Arc;

use hf_hub::cache::RepoCache;
use hf_hub::progress::{Event, State};
use hf_hub::{Hub, HubError};
use sha2::{Digest, Sha256};
use tektra_hub_server::{FaultPlan, Server, Store};
use tokio_util::sync::CancellationToken;

use crate::common::*;

fn file_states(events: &[Event]) -> Vec<State> {
    events
        .iter()
        .filter(|e| e.file.is_some())
        .map(|e| e.state)
        .collect()
}

fn blobs(fx: &Fixture, repo: &str) -> PathBuf {
    let dir = fx
        .cache_root()
        .join(format!("models--{}/blobs", repo.replace('/', "--")));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Fetches `org/small`'s `weights.safetensors`: (file, its states, bytes served).
async fn weights(fx: &Fixture, hub: &Hub) -> (hf_hub::CachedFile, Vec<State>, u64) {
    let before = fx.server.stats().content_bytes;
    let (reporter, events) = recorder();
    let file = hub
        .download_file(
            &model("org/small"),
            &main(),
            &path("weights.safetensors"),
            reporter,
            &CancellationToken::new(),
        )
        .await
        .unwrap();
    let states = file_states(&events.lock().unwrap());
    (file, states, fx.server.stats().content_bytes - before)
}

#[tokio::test]
async fn a_full_size_blob_we_did_not_commit_is_hashed_before_it_is_linked() {
    let fx = Fixture::new().await;
    let source = fx.source("org/small", "weights.safetensors");
    let sha = hex::encode(Sha256::digest(&source));
    // What a power cut can leave when a rename reached the disk before the
    // data did: the right name, the right size, zeros inside.
    std::fs::write(blobs(&fx, "org/small").join(&sha), vec![0u8; source.len()]).unwrap();
    let (file, states, served) = weights(&fx, &fx.hub()).await;
    assert!(
        std::fs::read(&file.path).unwrap() == source,
        "the zeros were linked"
    );
    assert!(!file.was_cached);
    assert!(states.contains(&State::Verifying), "{states:?}");
    assert_eq!(served, source.len() as u64);

    // What huggingface_hub leaves: the right bytes, not marked by us. They
    // are hashed once, not fetched, and trusted from then on.
    let fx = Fixture::new().await;
    std::fs::write(blobs(&fx, "org/small").join(&sha), &source).unwrap();
    let hub = fx.hub();
    let (file, states, served) = weights(&fx, &hub).await;
    assert!(file.was_cached && served == 0, "{states:?} {served}");
    assert!(
        states.contains(&State::Verifying),
        "not checked: {states:?}"
    );
    let (_, states, served) = weights(&fx, &hub).await;
    assert!(
        !states.contains(&State::Verifying) && served == 0,
        "{states:?}"
    );
}

#[tokio::test]
async fn a_right_blob_we_may_not_mark_is_still_used() {
    // Another user's blob in a shared cache: readable, not writable. Its
    // bytes are right, so it is linked; it just cannot carry the mark.
    let fx = Fixture::new().await;
    let source = fx.source("org/small", "weights.safetensors");
    let sha = hex::encode(Sha256::digest(&source));
    let blob = blobs(&fx, "org/small").join(&sha);
    std::fs::write(&blob, &source).unwrap();
    let mut perms = std::fs::metadata(&blob).unwrap().permissions();
    perms.set_readonly(true);
    std::fs::set_permissions(&blob, perms).unwrap();
    let (file, states, served) = weights(&fx, &fx.hub()).await;
    assert!(file.was_cached && served == 0, "{states:?} {served}");
    assert!(std::fs::read(&file.path).unwrap() == source);
}

#[tokio::test]
async fn without_fsync_a_blob_is_not_marked_and_its_next_use_checks_it() {
    let fx = Fixture::new().await;
    let synced = fx.hub();
    let (_, _, served) = weights(&fx, &synced).await;
    assert!(served > 0);
    let (_, states, _) = weights(&fx, &synced).await;
    assert!(!states.contains(&State::Verifying), "{states:?}");

    let fx = Fixture::new().await;
    let unsynced = Hub::new(hf_hub::HubOptions {
        fsync: false,
        ..fx.options()
    })
    .unwrap();
    weights(&fx, &unsynced).await;
    // Not durable, so not trusted by its size: checked once, then marked.
    let (file, states, served) = weights(&fx, &unsynced).await;
    assert!(file.was_cached && served == 0);
    assert!(states.contains(&State::Verifying), "{states:?}");
    let (_, states, _) = weights(&fx, &unsynced).await;
    assert!(!states.contains(&State::Verifying), "{states:?}");
}

#[tokio::test]
async fn a_stale_journal_is_emptied_when_it_vouches_for_nothing() {
    let fx = Fixture::new().await;
    fx.server.faults().set(FaultPlan {
        rate_limit: Some(1 << 20),
        ..FaultPlan::default()
    });
    let source = fx.source("org/big", "model.bin");
    let sha = hex::encode(Sha256::digest(&source));
    let blobs = blobs(&fx, "org/big");
    // A journal that claims the whole file for a partial file with nothing
    // in it (its data was lost, the journal line was not).
    let stale = format!("0 {BIG}");
    std::fs::write(blobs.join(format!("{sha}.incomplete")), b"").unwrap();
    let parts = blobs.join(format!("{sha}.incomplete.parts"));
    std::fs::write(&parts, format!("{stale}\n")).unwrap();
    // Stop as soon as the transfer starts: the journal then is what the
    // next run would trust.
    let cancel = CancellationToken::new();
    let stopper = cancel.clone();
    let reporter = Arc::new(move |e: &Event| {
        if e.file.is_some() && e.state == State::Downloading {
            stopper.cancel();
        }
    });
    let err = fx
        .hub()
        .download_file(
            &model("org/big"),
            &main(),
            &path("model.bin"),
            reporter,
            &cancel,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, HubError::Cancelled), "{err}");
    let journal = std::fs::read_to_string(&parts).unwrap();
    assert!(!journal.lines().any(|l| l == stale), "{journal:?}");

    fx.server.faults().set(FaultPlan::default());
    let file = fx
        .hub()
        .file(&model("org/big"), &main(), &path("model.bin"))
        .await
        .unwrap();
    assert!(std::fs::read(&file.path).unwrap() == source);
}

const MIRROR_SIZE: usize = 9 << 20;
const MIRROR_COMMIT: &str = "1234567890abcdef1234567890abcdef12345678";
/// Not a content hash: what a plain web server's etag looks like.
const WEAK_ETAG: &str = "5f3a1c2b-900000";

/// A mirror served from a hub cache whose two files have one etag (the
/// server names each by its blob's file name), the same size and
/// different bytes.
async fn mirror() -> (tempfile::TempDir, Server) {
    let root = tempfile::tempdir().unwrap();
    let repo = root.path().join("models--org--mirror");
    let snapshot = repo.join("snapshots").join(MIRROR_COMMIT);
    std::fs::create_dir_all(&snapshot).unwrap();
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs/main"), MIRROR_COMMIT).unwrap();
    for (name, seed) in [("a.bin", 21), ("b.bin", 22)] {
        let blob = repo.join("blobs").join(name).join(WEAK_ETAG);
        std::fs::create_dir_all(blob.parent().unwrap()).unwrap();
        std::fs::write(&blob, bytes(MIRROR_SIZE, seed)).unwrap();
        std::os::unix::fs::symlink(&blob, snapshot.join(name)).unwrap();
    }
    let server = Server::builder(Store::open(root.path()).unwrap())
        .start()
        .await
        .unwrap();
    (root, server)
}

fn mirror_hub(server: &Server, cache: &std::path::Path) -> Hub {
    Hub::new(hf_hub::HubOptions {
        endpoint: server.url(),
        cache_dir: cache.to_path_buf(),
        ..hf_hub::HubOptions::default()
    })
    .unwrap()
}

#[tokio::test]
async fn files_a_mirror_gives_one_weak_etag_do_not_share_a_blob() {
    let (_root, server) = mirror().await;
    let cache = tempfile::tempdir().unwrap();
    let hub = mirror_hub(&server, cache.path());
    let repo = model("org/mirror");
    for (name, seed) in [("a.bin", 21), ("b.bin", 22)] {
        let file = hub.file(&repo, &main(), &path(name)).await.unwrap();
        assert!(
            std::fs::read(&file.path).unwrap() == bytes(MIRROR_SIZE, seed),
            "{name} holds another file's bytes"
        );
    }
}

#[tokio::test]
async fn a_partial_file_with_a_weak_etag_is_never_resumed() {
    let (_root, server) = mirror().await;
    let cache = tempfile::tempdir().unwrap();
    let hub = mirror_hub(&server, cache.path());
    let repo = model("org/mirror");
    let repo_cache = hub.cache().repo(&repo);
    let name = RepoCache::blob_name(WEAK_ETAG, MIRROR_COMMIT, &path("a.bin"));
    // Wrong bytes of the right size, and a journal that vouches for them:
    // without a hash nothing could tell.
    let partial = repo_cache.incomplete_path(&name);
    std::fs::create_dir_all(partial.parent().unwrap()).unwrap();
    std::fs::write(&partial, bytes(MIRROR_SIZE, 99)).unwrap();
    std::fs::write(repo_cache.parts_path(&name), format!("0 {MIRROR_SIZE}\n")).unwrap();
    let file = hub.file(&repo, &main(), &path("a.bin")).await.unwrap();
    assert!(std::fs::read(&file.path).unwrap() == bytes(MIRROR_SIZE, 21));
    assert_eq!(file.stats.resumed, 0);
    assert_eq!(server.stats().content_bytes, MIRROR_SIZE as u64);
}
