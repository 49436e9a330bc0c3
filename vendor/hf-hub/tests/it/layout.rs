use crate::common::*;

#[tokio::test]
async fn the_cache_is_laid_out_like_huggingface_hub() {
    let fx = Fixture::new().await;
    let hub = fx.hub();
    let a = hub
        .file(&model("org/small"), &main(), &path("nested/dir/notes.txt"))
        .await
        .unwrap();
    let b = hub
        .file(&model("org/small"), &main(), &path("weights.safetensors"))
        .await
        .unwrap();
    let commit = a.commit.clone();
    assert_eq!(b.commit, commit);
    // git blob sha1 of "hello\n", and the sha256 of the LFS file.
    let notes = "ce013625030ba8dba906f756967f9e9ca394464a";
    let weights = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(
        fx.source("org/small", "weights.safetensors"),
    ));
    let mut expected = vec![
        ".locks/".to_string(),
        ".locks/models--org--small/".to_string(),
        format!(".locks/models--org--small/{notes}.lock"),
        format!(".locks/models--org--small/{weights}.lock"),
        "CACHEDIR.TAG".to_string(),
        "models--org--small/".to_string(),
        "models--org--small/blobs/".to_string(),
        format!("models--org--small/blobs/{notes}"),
        format!("models--org--small/blobs/{weights}"),
        "models--org--small/refs/".to_string(),
        "models--org--small/refs/main".to_string(),
        "models--org--small/snapshots/".to_string(),
        format!("models--org--small/snapshots/{commit}/"),
        format!("models--org--small/snapshots/{commit}/nested/"),
        format!("models--org--small/snapshots/{commit}/nested/dir/"),
        format!(
            "models--org--small/snapshots/{commit}/nested/dir/notes.txt -> ../../../../blobs/{notes}"
        ),
        format!(
            "models--org--small/snapshots/{commit}/weights.safetensors -> ../../blobs/{weights}"
        ),
    ];
    expected.sort();
    assert_eq!(tree(fx.cache.path()), expected);
    assert_eq!(
        std::fs::read_to_string(fx.cache_root().join("models--org--small/refs/main")).unwrap(),
        commit
    );
    let tag = std::fs::read_to_string(fx.cache_root().join("CACHEDIR.TAG")).unwrap();
    assert!(tag.starts_with("Signature: 8a477f597d28d172789f06886806bc55\n"));
}
