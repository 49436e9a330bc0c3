//! Nothing outside the served folder is served: symlinks that leave it (or,
//! in a cache, leave the repo's blobs/) are skipped, refs must name a
//! snapshot by its hash, and a ref's text is never echoed.

use std::os::unix::fs::symlink;

use tektra_hub_server::{Kind, Server, Store};

use crate::common::put;

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

async fn status_of(server: &Server, path: &str) -> (u16, String, String) {
    tektra_hub_server::install_tls_provider();
    let answer = reqwest::get(format!("{}{path}", server.url()))
        .await
        .unwrap();
    let status = answer.status().as_u16();
    let headers = format!("{:?}", answer.headers());
    (status, headers, answer.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_confined_folder_serves_no_symlink_that_leaves_it() {
    let outside = tempfile::tempdir().unwrap();
    put(outside.path(), "secret.txt", b"outside secret\n");
    put(outside.path(), "dir/also.txt", b"outside too\n");
    let root = tempfile::tempdir().unwrap();
    put(root.path(), "org/model/config.json", b"{}\n");
    let repo = root.path().join("org/model");
    symlink(outside.path().join("secret.txt"), repo.join("leak.txt")).unwrap();
    symlink(outside.path().join("dir"), repo.join("leakdir")).unwrap();
    symlink(repo.join("config.json"), repo.join("alias.json")).unwrap();
    // A whole org that is a symlink to elsewhere.
    put(outside.path(), "elsewhere/model/x.txt", b"x");
    symlink(outside.path().join("elsewhere"), root.path().join("org2")).unwrap();

    // Store::open follows the folder's links wherever they lead (tests and
    // mirrors built from links); `tektra serve` reads it confined.
    let trusting = Store::open(root.path()).unwrap();
    let files = &trusting.repos[&(Kind::Model, "org/model".to_string())].commits;
    let names: Vec<&String> = files.values().flat_map(|f| f.keys()).collect();
    assert!(names.contains(&&"leak.txt".to_string()), "{names:?}");

    let store = Store::open_confined(root.path()).unwrap();
    let files = &store.repos[&(Kind::Model, "org/model".to_string())].commits;
    let names: Vec<&String> = files.values().flat_map(|f| f.keys()).collect();
    assert_eq!(names, ["alias.json", "config.json"], "what is served");
    assert!(
        !store
            .repos
            .contains_key(&(Kind::Model, "org2/model".to_string()))
    );

    let server = Server::builder(store).start().await.unwrap();
    for leak in ["leak.txt", "leakdir/also.txt"] {
        let (status, _, body) =
            status_of(&server, &format!("/org/model/resolve/main/{leak}")).await;
        assert_eq!(status, 404, "{leak}: {body}");
    }
    let (status, _, body) = status_of(&server, "/org/model/resolve/main/alias.json").await;
    assert_eq!(
        (status, body.as_str()),
        (200, "{}\n"),
        "a link inside the folder"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cache_serves_only_its_blobs_and_refs_that_name_a_snapshot() {
    let outside = tempfile::tempdir().unwrap();
    put(outside.path(), "secret.txt", b"outside secret\n");
    put(outside.path(), "ref.txt", COMMIT.as_bytes());
    let cache = tempfile::tempdir().unwrap();
    let repo = cache.path().join("models--org--model");
    let blob = "a".repeat(40);
    put(&repo, &format!("blobs/{blob}"), b"inside\n");
    let snap = repo.join("snapshots").join(COMMIT);
    std::fs::create_dir_all(&snap).unwrap();
    symlink(format!("../../blobs/{blob}"), snap.join("ok.txt")).unwrap();
    symlink(outside.path().join("secret.txt"), snap.join("leak.txt")).unwrap();
    // A snapshot folder not named by a commit hash.
    std::fs::create_dir_all(repo.join("snapshots/not-a-commit")).unwrap();
    symlink(
        format!("../../blobs/{blob}"),
        repo.join("snapshots/not-a-commit/x.txt"),
    )
    .unwrap();
    put(&repo, "refs/main", COMMIT.as_bytes());
    put(&repo, "refs/evil", b"/etc/passwd <script>");
    put(&repo, "refs/gone", "f".repeat(40).as_bytes());
    symlink(outside.path().join("ref.txt"), repo.join("refs/linked")).unwrap();

    let store = Store::open(cache.path()).unwrap();
    let served = &store.repos[&(Kind::Model, "org/model".to_string())];
    assert_eq!(served.commits.len(), 1, "only the hash-named snapshot");
    let mut refs: Vec<&String> = served.refs.keys().collect();
    refs.sort();
    assert_eq!(
        refs,
        ["main"],
        "refs that name a snapshot here, read inside refs/"
    );

    let server = Server::builder(store).start().await.unwrap();
    let (status, _, body) = status_of(&server, "/org/model/resolve/main/ok.txt").await;
    assert_eq!((status, body.as_str()), (200, "inside\n"));
    let (status, _, body) = status_of(&server, "/org/model/resolve/main/leak.txt").await;
    assert_eq!(status, 404, "{body}");
    for rev in ["evil", "gone", "linked"] {
        let (status, headers, body) =
            status_of(&server, &format!("/org/model/resolve/{rev}/ok.txt")).await;
        assert_eq!(status, 404, "{rev}");
        let all = format!("{headers}{body}");
        assert!(
            !all.contains("passwd") && !all.contains(&"f".repeat(40)),
            "{all}"
        );
    }
}
