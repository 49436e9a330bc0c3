use std::time::Duration;

use hf_hub::HubError;
use hf_hub::filter::Filter;
use hf_hub::ids::{RepoPath, RepoRef, Revision};
use tektra_hub_server::FaultPlan;
use tokio_util::sync::CancellationToken;

use crate::common::*;

#[tokio::test]
async fn listings_with_escaping_paths_are_refused() {
    for bad in ["../evil", "/etc/evil", "a\\..\\evil", "ok/../../evil"] {
        let fx = Fixture::new().await;
        fx.server.faults().set(FaultPlan {
            hostile_listing_path: Some(bad.into()),
            ..FaultPlan::default()
        });
        let err = fx
            .hub()
            .snapshot(
                &model("org/small"),
                &main(),
                &Filter::all(),
                hf_hub::progress::silent(),
                &CancellationToken::new(),
            )
            .await
            .unwrap_err();
        assert!(
            matches!(err, HubError::HostileAnswer { what: "path", .. }),
            "{bad}: {err}"
        );
        // The revision listing refuses it first in a snapshot; the tree
        // listing must refuse it on its own too.
        let err = fx
            .hub()
            .tree(&model("org/small"), &main(), &CancellationToken::new())
            .await
            .unwrap_err();
        match &err {
            HubError::HostileAnswer {
                what: "path", url, ..
            } => assert!(url.contains("/tree/"), "{bad}: {err}"),
            other => panic!("{bad}: {other}"),
        }
        // Nothing was written next to or above the cache.
        let parent = fx.cache.path().parent().unwrap();
        assert!(!parent.join("evil").exists() && !fx.cache.path().join("evil").exists());
        assert!(
            !fx.cache_root()
                .join("models--org--small/snapshots")
                .exists(),
            "{bad}"
        );
    }
}

#[tokio::test]
async fn a_lying_size_fails_without_touching_the_cache() {
    let fx = Fixture::new().await;
    fx.server.faults().set(FaultPlan {
        announced_size: Some(1000),
        ..FaultPlan::default()
    });
    let err = fx
        .hub()
        .file(&model("org/small"), &main(), &path("weights.safetensors"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            HubError::WrongSize { .. } | HubError::HashMismatch { .. }
        ),
        "{err}"
    );
    assert!(
        !fx.cache_root()
            .join("models--org--small/snapshots")
            .exists()
    );
}

#[test]
fn caller_arguments_are_checked() {
    for bad in ["../x", "/abs", "a/../b", "a\\b", "", "a//b", "C:/x", "x\0y"] {
        assert!(
            matches!(RepoPath::new(bad), Err(HubError::InvalidArgument { .. })),
            "{bad:?}"
        );
    }
    for bad in ["..", "a/b/c", "-a/b", "a--b/c", "a/b.", ""] {
        assert!(RepoRef::model(bad).is_err(), "{bad:?}");
    }
    for bad in ["../main", "a/./b", "main.lock", "a b", "a..b/../c"] {
        assert!(Revision::new(bad).is_err(), "{bad:?}");
    }
}

#[tokio::test]
async fn missing_things_have_their_own_errors_and_are_remembered() {
    let fx = Fixture::new().await;
    let hub = fx.hub();
    let err = hub
        .file(&model("org/nothing"), &main(), &path("x"))
        .await
        .unwrap_err();
    assert!(matches!(err, HubError::RepoNotFound { .. }), "{err}");
    let err = hub
        .file(
            &model("org/small"),
            &Revision::new("v9").unwrap(),
            &path("x"),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, HubError::RevisionNotFound { .. }), "{err}");
    let err = hub
        .file(&model("org/small"), &main(), &path("missing.txt"))
        .await
        .unwrap_err();
    assert!(matches!(err, HubError::EntryNotFound { .. }), "{err}");
    assert!(err.to_string().contains("status code 404"));
    let repo = fx.cache_root().join("models--org--small");
    let commit = std::fs::read_to_string(repo.join("refs/main")).unwrap();
    assert!(
        repo.join(".no_exist")
            .join(commit)
            .join("missing.txt")
            .is_file()
    );
}

#[tokio::test]
async fn an_absurd_retry_after_is_an_error_naming_the_wait() {
    for (secs, shown) in [(u64::MAX, "18446744073709551615 s"), (400, "400 s")] {
        let fx = Fixture::new().await;
        fx.server.faults().set(FaultPlan {
            fail_status: Some((429, tektra_hub_server::ALWAYS, Some(secs))),
            ..FaultPlan::default()
        });
        let err = fx
            .hub()
            .file(&model("org/small"), &main(), &path("config.json"))
            .await
            .unwrap_err();
        assert!(
            matches!(err, HubError::RetryAfterTooLong { max_secs: 300, .. }),
            "{err}"
        );
        let text = err.to_string();
        assert!(
            text.contains(shown) && text.contains("status code 429"),
            "{text}"
        );
    }
}

#[tokio::test]
async fn error_bodies_lose_control_characters() {
    let fx = Fixture::new().await;
    fx.server.faults().set(FaultPlan {
        fail_status: Some((403, 1, None)),
        fail_body: Some("\u{1b}]0;owned\u{7}\u{1b}[2Jaccess \u{202e}denied\r\n\0".into()),
        ..FaultPlan::default()
    });
    let err = fx
        .hub()
        .file(&model("org/small"), &main(), &path("config.json"))
        .await
        .unwrap_err();
    assert!(matches!(err, HubError::Http { status: 403, .. }), "{err}");
    let text = err.to_string();
    assert!(text.contains("access denied"), "{text}");
    assert!(
        !text.chars().any(|c| c.is_control() || c == '\u{202e}'),
        "{text:?}"
    );
}

fn tree_of_small(
    fx: &Fixture,
    edit: impl FnOnce(&mut hf_hub::HubOptions),
) -> impl std::future::Future<Output = Result<Vec<hf_hub::resolve::TreeFile>, HubError>> {
    let mut options = fx.options();
    edit(&mut options);
    let hub = hf_hub::Hub::new(options).unwrap();
    async move {
        hub.tree(&model("org/small"), &main(), &CancellationToken::new())
            .await
    }
}

#[tokio::test]
async fn json_answers_and_listings_past_their_limits_are_refused() {
    let fx = Fixture::new().await;
    // The fixture pages its listing by two entries: five entries, three pages.
    assert_eq!(tree_of_small(&fx, |_| {}).await.unwrap().len(), 3);
    let mut options = fx.options();
    options.limits.json_bytes = 64;
    let err = hf_hub::Hub::new(options)
        .unwrap()
        .repo_info(&model("org/small"), &main(), &CancellationToken::new())
        .await
        .unwrap_err();
    assert!(matches!(err, HubError::OverLimit { .. }), "{err}");
    assert!(err.to_string().contains("64 bytes"), "{err}");
    for (edit, limit) in [
        (
            (|o: &mut hf_hub::HubOptions| o.limits.json_bytes = 100) as fn(&mut _),
            "100 bytes",
        ),
        (|o| o.limits.listing_pages = 2, "2 pages"),
        (|o| o.limits.listing_entries = 3, "3 entries"),
        (|o| o.limits.listing_time = Duration::ZERO, "0 s"),
    ] {
        let err = tree_of_small(&fx, edit).await.unwrap_err();
        assert!(matches!(err, HubError::OverLimit { .. }), "{limit}: {err}");
        assert!(err.to_string().contains(limit), "{limit}: {err}");
    }
}

#[tokio::test]
async fn a_listing_that_loops_or_lists_a_path_twice_is_refused() {
    let fx = Fixture::new().await;
    // A listing that never ends: past its last entry, an empty page whose
    // next link is itself (no path repeats, so only the link shows it).
    fx.server.faults().set(FaultPlan {
        listing_cursor_back: Some(0),
        ..FaultPlan::default()
    });
    let err = tree_of_small(&fx, |_| {}).await.unwrap_err();
    assert!(
        matches!(
            err,
            HubError::HostileAnswer {
                what: "next-page link",
                ..
            }
        ),
        "{err}"
    );
    // Back by one: every page repeats the last entry of the one before.
    fx.server.faults().set(FaultPlan {
        listing_cursor_back: Some(1),
        ..FaultPlan::default()
    });
    let err = tree_of_small(&fx, |_| {}).await.unwrap_err();
    assert!(
        matches!(err, HubError::HostileAnswer { what: "path", reason, .. } if reason.contains("twice")),
        "{err}"
    );
}
