//! What a power cut or another tool can leave in the cache is checked
//! before it is trusted.

use std::path::PathBuf;
use std::sync::Arc;

use hf_hub::progress::{Event, State};
use hf_hub::{Hub, HubError};
use sha2::{Digest, Sha256};
use tektra_hub_server::FaultPlan;
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
