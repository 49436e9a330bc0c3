use std::time::{Duration, Instant};

use hf_hub::HubError;
use hf_hub::filter::Filter;
use hf_hub::progress::{Stage, State};
use tektra_hub_server::FaultPlan;
use tokio_util::sync::CancellationToken;

use crate::common::*;

#[tokio::test]
async fn small_file_arrives_verified_with_ordered_events() {
    let fx = Fixture::new().await;
    let (reporter, events) = recorder();
    let file = fx
        .hub()
        .download_file(
            &model("org/small"),
            &main(),
            &path("config.json"),
            reporter,
            &CancellationToken::new(),
        )
        .await
        .unwrap();
    assert_eq!(
        std::fs::read(&file.path).unwrap(),
        fx.source("org/small", "config.json")
    );
    assert!(!file.was_cached);
    let events = events.lock().unwrap();
    let states: Vec<State> = events
        .iter()
        .filter(|e| e.file.is_some())
        .map(|e| e.state)
        .collect();
    assert_eq!(states.first(), Some(&State::Queued));
    assert_eq!(states.last(), Some(&State::Done));
    assert!(states.contains(&State::Downloading) && states.contains(&State::Verifying));
    let last = events.iter().rev().find(|e| e.file.is_some()).unwrap();
    assert_eq!(last.bytes_done, last.bytes_total.unwrap());
    assert_eq!(last.aggregate.files_done, 1);
    assert_eq!(last.stage, Stage::Downloading);
}

#[tokio::test]
async fn large_file_goes_through_the_cdn_in_parallel_ranges() {
    let fx = Fixture::new().await;
    let file = fx
        .hub()
        .file(&model("org/big"), &main(), &path("model.bin"))
        .await
        .unwrap();
    assert!(std::fs::read(&file.path).unwrap() == fx.source("org/big", "model.bin"));
    assert_eq!(file.stats.fetched, BIG as u64);
    assert!(file.stats.connections > 1, "{:?}", file.stats);
    let stats = fx.server.stats();
    // 40 MiB in pieces of at most 4 MiB: at least 10 ranged answers.
    assert!(stats.cdn_requests >= 10, "{stats:?}");
    assert_eq!(stats.content_bytes, BIG as u64);
    let blobs = file.path.parent().unwrap().join("../../blobs");
    let leftovers: Vec<_> = std::fs::read_dir(blobs)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains("incomplete"))
        .collect();
    assert!(leftovers.is_empty());
}

#[tokio::test]
async fn a_cached_file_is_not_fetched_again() {
    let fx = Fixture::new().await;
    let hub = fx.hub();
    hub.file(&model("org/small"), &main(), &path("weights.safetensors"))
        .await
        .unwrap();
    let served = fx.server.stats().content_bytes;
    let (reporter, events) = recorder();
    let again = hub
        .download_file(
            &model("org/small"),
            &main(),
            &path("weights.safetensors"),
            reporter,
            &CancellationToken::new(),
        )
        .await
        .unwrap();
    assert!(again.was_cached);
    assert_eq!(fx.server.stats().content_bytes, served);
    let events = events.lock().unwrap();
    assert_eq!(
        events
            .iter()
            .rev()
            .find(|e| e.file.is_some())
            .unwrap()
            .state,
        State::Cached
    );
}

#[tokio::test]
async fn snapshot_with_globs_over_paged_listing() {
    let fx = Fixture::new().await;
    let filter = Filter::new(&["*.json", "nested/"], &["*.safetensors"]).unwrap();
    let (reporter, events) = recorder();
    let snap = fx
        .hub()
        .snapshot(
            &model("org/small"),
            &main(),
            &filter,
            reporter,
            &CancellationToken::new(),
        )
        .await
        .unwrap();
    let mut names: Vec<String> = snap.files.iter().map(|f| f.repo_path.to_string()).collect();
    names.sort();
    assert_eq!(names, ["config.json", "nested/dir/notes.txt"]);
    assert_eq!(
        std::fs::read(snap.dir.join("nested/dir/notes.txt")).unwrap(),
        b"hello\n"
    );
    assert!(!snap.dir.join("weights.safetensors").exists());
    // The listing (3 files, page size 2) is kept for offline use.
    let tree = std::fs::read_to_string(
        fx.cache_root()
            .join(format!("models--org--small/trees/{}.json", snap.commit)),
    )
    .unwrap();
    assert!(tree.contains("\"format_version\": 1") && tree.contains("weights.safetensors"));
    let events = events.lock().unwrap();
    let last = events.last().unwrap();
    assert_eq!(
        (last.aggregate.files_done, last.aggregate.files_total),
        (2, 2)
    );
}

#[tokio::test]
async fn private_repo_needs_the_token_and_the_token_stays_on_the_hub() {
    let fx = Fixture::new().await;
    let err = fx
        .hub()
        .file(&model("org/private"), &main(), &path("model.gguf"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            HubError::RepoNotFound {
                status: 401,
                authenticated: false,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("status code 401"));
    let mut options = fx.options();
    options.token = Some(TOKEN.to_string());
    let hub = hf_hub::Hub::new(options).unwrap();
    let file = hub
        .file(&model("org/private"), &main(), &path("model.gguf"))
        .await
        .unwrap();
    assert_eq!(
        std::fs::read(&file.path).unwrap(),
        fx.source("org/private", "model.gguf")
    );
    let stats = fx.server.stats();
    assert!(
        stats.hub_auth_seen > 0 && stats.cdn_requests > 0,
        "{stats:?}"
    );
    assert_eq!(
        stats.cdn_auth_seen, 0,
        "the token crossed to the CDN origin"
    );
    let wrong = hf_hub::Hub::new(hf_hub::HubOptions {
        token: Some("nope".into()),
        ..fx.options()
    })
    .unwrap();
    let err = wrong
        .file(&model("org/private"), &main(), &path("config.json"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            HubError::RepoNotFound {
                authenticated: true,
                ..
            }
        ),
        "{err}"
    );
    assert!(
        !format!("{err} {err:?}").contains("nope"),
        "the token leaked into an error"
    );
}

#[tokio::test]
async fn relative_redirect_of_a_renamed_repo_is_followed() {
    let fx = Fixture::new().await;
    let file = fx
        .hub()
        .file(&model("org/old-name"), &main(), &path("config.json"))
        .await
        .unwrap();
    assert_eq!(
        std::fs::read(&file.path).unwrap(),
        fx.source("org/small", "config.json")
    );
}

#[tokio::test]
async fn cancel_stops_within_a_second_and_the_next_run_resumes() {
    let fx = Fixture::new().await;
    fx.server.faults().set(FaultPlan {
        rate_limit: Some(2 << 20),
        ..FaultPlan::default()
    });
    let hub = fx.hub();
    let cancel = CancellationToken::new();
    let stopper = cancel.clone();
    // The clock starts when the cancel is made, not when it was planned: a
    // late timer on a busy machine must not count against the transfer.
    let asked = std::sync::Arc::new(std::sync::Mutex::new(None));
    let asked_at = asked.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(800)).await;
        *asked_at.lock().unwrap() = Some(Instant::now());
        stopper.cancel();
    });
    let (reporter, events) = recorder();
    let err = hub
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
    let asked = asked.lock().unwrap().expect("cancelled by the timer");
    let took = Instant::now().saturating_duration_since(asked);
    // The figure is the claim ("within a second"); the bound only catches a
    // cancel that is not heard at all, whatever the machine's load.
    eprintln!("cancel landed {took:?} after it was made");
    assert!(
        took < Duration::from_secs(5),
        "stopped {took:?} after cancel"
    );
    let last_state = events
        .lock()
        .unwrap()
        .iter()
        .rev()
        .find(|e| e.file.is_some())
        .unwrap()
        .state;
    assert_eq!(last_state, State::Cancelled);
    let blobs = fx.cache_root().join("models--org--big/blobs");
    let names: Vec<String> = std::fs::read_dir(&blobs)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.iter().any(|n| n.ends_with(".incomplete")),
        "{names:?}"
    );
    assert!(
        names.iter().any(|n| n.ends_with(".incomplete.parts")),
        "{names:?}"
    );
    let first_run = fx.server.stats().content_bytes;
    assert!(first_run > 0 && first_run < BIG as u64);

    fx.server.faults().set(FaultPlan::default());
    let file = hub
        .file(&model("org/big"), &main(), &path("model.bin"))
        .await
        .unwrap();
    assert!(std::fs::read(&file.path).unwrap() == fx.source("org/big", "model.bin"));
    assert!(file.stats.resumed > 0, "{:?}", file.stats);
    assert_eq!(file.stats.resumed + file.stats.fetched, BIG as u64);
}

/// The frontier a mirror follows: it only grows within an attempt, every
/// prefix it vouches for is on disk as the source has it, and a transfer
/// that starts over after a hash mismatch is a new attempt.
#[tokio::test(flavor = "multi_thread")]
async fn the_frontier_vouches_only_for_bytes_on_disk_in_order() {
    let fx = Fixture::new().await;
    // A byte flipped on the first answer only: attempt one fails its hash.
    fx.server.faults().set(FaultPlan {
        flip_byte_at: Some((1 << 20, 1)),
        ..FaultPlan::default()
    });
    let source = fx.source("org/big", "model.bin");
    let frontier = hf_hub::Frontier::new();
    let mut seen = frontier.subscribe();
    let hub = fx.hub();
    let cache = hub.cache().clone();
    let expected = source.clone();
    let watcher = tokio::spawn(async move {
        let source = expected;
        let mut attempts = Vec::new();
        let mut checked = 0usize;
        let mut last = hf_hub::Prefix::default();
        while seen.changed().await.is_ok() {
            let now = *seen.borrow_and_update();
            if now.attempt != last.attempt {
                attempts.push(now.attempt);
            } else {
                assert!(
                    now.len >= last.len,
                    "the frontier went back: {last:?} -> {now:?}"
                );
            }
            last = now;
            // The partial file holds what the frontier vouches for.
            let repo = cache.repo(&model("org/big"));
            let sha = {
                use sha2::Digest;
                hex::encode(sha2::Sha256::digest(&source))
            };
            if let Ok(bytes) = std::fs::read(repo.incomplete_path(&sha)) {
                let n = usize::try_from(now.len).unwrap().min(bytes.len());
                // The first attempt's file carries the flipped byte and is
                // discarded under a reader's feet: only the second is checked.
                if attempts.len() < 2 {
                    continue;
                }
                assert!(bytes[..n] == source[..n], "a vouched-for byte differs");
                checked += 1;
            }
        }
        (attempts, checked, last)
    });
    let file = hub
        .download_file_following(
            &model("org/big"),
            &main(),
            &path("model.bin"),
            hf_hub::progress::silent(),
            &CancellationToken::new(),
            Some(&frontier),
        )
        .await
        .unwrap();
    assert!(std::fs::read(&file.path).unwrap() == source);
    drop(frontier);
    let (attempts, checked, last) = watcher.await.unwrap();
    println!("attempts {attempts:?}, prefixes checked against the source: {checked}");
    assert_eq!(
        attempts.len(),
        2,
        "a hash mismatch must start a new attempt"
    );
    assert!(attempts[1] > attempts[0]);
    assert_eq!(last.len, source.len() as u64);
}
