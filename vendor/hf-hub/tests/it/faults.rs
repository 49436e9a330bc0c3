use std::time::{Duration, Instant};

use hf_hub::HubError;
use tektra_hub_server::{ALWAYS, FaultPlan};
use tokio_util::sync::CancellationToken;

use crate::common::*;

async fn big_file_under(fx: &Fixture, plan: FaultPlan) -> Result<hf_hub::CachedFile, HubError> {
    fx.server.faults().set(plan);
    let mut options = fx.options();
    options.read_timeout = Duration::from_secs(1);
    hf_hub::Hub::new(options)
        .unwrap()
        .file(&model("org/big"), &main(), &path("model.bin"))
        .await
}

fn assert_right_bytes(fx: &Fixture, file: &hf_hub::CachedFile) {
    assert!(
        std::fs::read(&file.path).unwrap() == fx.source("org/big", "model.bin"),
        "wrong bytes in the cache"
    );
}

#[tokio::test]
async fn connections_cut_mid_body_are_resumed_in_place() {
    let fx = Fixture::new().await;
    let file = big_file_under(
        &fx,
        FaultPlan {
            cut_after: Some((1 << 20, 6)),
            ..FaultPlan::default()
        },
    )
    .await
    .unwrap();
    assert_right_bytes(&fx, &file);
    // Cut answers resume where they stopped: little is sent twice.
    assert!(fx.server.stats().content_bytes < BIG as u64 + (2 << 20));
}

#[tokio::test]
async fn server_errors_and_429_with_retry_after_are_retried() {
    let fx = Fixture::new().await;
    let file = big_file_under(
        &fx,
        FaultPlan {
            fail_status: Some((503, 3, None)),
            ..FaultPlan::default()
        },
    )
    .await
    .unwrap();
    assert_right_bytes(&fx, &file);

    let fx = Fixture::new().await;
    let started = Instant::now();
    let file = big_file_under(
        &fx,
        FaultPlan {
            fail_status: Some((429, 1, Some(1))),
            ..FaultPlan::default()
        },
    )
    .await
    .unwrap();
    assert_right_bytes(&fx, &file);
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "Retry-After: 1 was not honoured"
    );
}

#[tokio::test]
async fn a_flipped_byte_is_caught_discarded_and_fetched_again() {
    let fx = Fixture::new().await;
    let (reporter, events) = recorder();
    fx.server.faults().set(FaultPlan {
        flip_byte_at: Some((12_345_678, 1)),
        ..FaultPlan::default()
    });
    let file = fx
        .hub()
        .download_file(
            &model("org/big"),
            &main(),
            &path("model.bin"),
            reporter,
            &CancellationToken::new(),
        )
        .await
        .unwrap();
    assert_right_bytes(&fx, &file);
    let events = events.lock().unwrap();
    assert!(events.iter().any(|e| {
        e.message
            .as_deref()
            .is_some_and(|m| m.contains("hash mismatch"))
    }));
}

#[tokio::test]
async fn bytes_that_never_hash_right_fail_clearly_and_leave_nothing() {
    let fx = Fixture::new().await;
    let err = big_file_under(
        &fx,
        FaultPlan {
            flip_byte_at: Some((7, ALWAYS)),
            ..FaultPlan::default()
        },
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            err,
            HubError::HashMismatch {
                algorithm: "sha256",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("model.bin"));
    let blobs = fx.cache_root().join("models--org--big/blobs");
    let left: Vec<_> = std::fs::read_dir(blobs)
        .map(|d| d.flatten().collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
    assert!(!fx.cache_root().join("models--org--big/snapshots").exists());
}

#[tokio::test]
async fn a_server_ignoring_range_gets_one_clean_stream() {
    let fx = Fixture::new().await;
    let file = big_file_under(
        &fx,
        FaultPlan {
            ignore_range: true,
            ..FaultPlan::default()
        },
    )
    .await
    .unwrap();
    assert_right_bytes(&fx, &file);
    let served = fx.server.stats();
    assert!(
        served.ranges_ignored >= 1,
        "the fault was not met: {served:?}"
    );
    // Every parallel piece got the whole file, yet the file started over
    // once, on one connection.
    assert_eq!(file.stats.restarts, 1, "{:?}", file.stats);
    assert_eq!(file.stats.connections, 1, "{:?}", file.stats);
}

#[tokio::test]
async fn a_stalled_body_times_out_and_is_retried() {
    let fx = Fixture::new().await;
    // The stall (3 s) outlasts the read timeout (1 s): the body must be
    // given up on and asked for again, not waited out.
    let file = big_file_under(
        &fx,
        FaultPlan {
            stall: Some((1 << 20, 3000, 1)),
            ..FaultPlan::default()
        },
    )
    .await
    .unwrap();
    assert_right_bytes(&fx, &file);
    assert_eq!(fx.server.stats().stalls, 1, "the stall was not met");
    assert!(
        file.stats.retries >= 1,
        "the stalled body was waited out, not retried: {:?}",
        file.stats
    );
}

#[tokio::test]
async fn rate_capped_connections_still_deliver() {
    let fx = Fixture::new().await;
    let file = big_file_under(
        &fx,
        FaultPlan {
            rate_limit: Some(20 << 20),
            ..FaultPlan::default()
        },
    )
    .await
    .unwrap();
    assert_right_bytes(&fx, &file);
    let served = fx.server.stats();
    assert!(
        served.rate_capped > 1 && served.rate_capped == served.content_answers,
        "not every answer was capped: {served:?}"
    );
    // Capped, not broken: several connections, no restart, nothing sent twice.
    assert!(file.stats.connections > 1, "{:?}", file.stats);
    assert_eq!(file.stats.restarts, 0, "{:?}", file.stats);
    assert_eq!(served.content_bytes, BIG as u64, "{served:?}");
}

#[tokio::test]
async fn persistent_errors_end_in_too_many_retries_with_the_status() {
    let fx = Fixture::new().await;
    let err = big_file_under(
        &fx,
        FaultPlan {
            fail_status: Some((500, ALWAYS, None)),
            ..FaultPlan::default()
        },
    )
    .await
    .unwrap_err();
    assert!(matches!(err, HubError::TooManyRetries { .. }), "{err}");
    assert!(err.to_string().contains("status code 500"), "{err}");
}
