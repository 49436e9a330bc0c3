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
