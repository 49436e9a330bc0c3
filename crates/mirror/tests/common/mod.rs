//! What the mirror's test files share: deterministic bytes, repo files on
//! disk, a whole-repo download.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::Path;

use hf_hub::filter::Filter;
use hf_hub::ids::{RepoRef, Revision};
use hf_hub::{Hub, HubError};
use tokio_util::sync::CancellationToken;

pub(crate) fn bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_le_bytes()[0]
        })
        .collect()
}

pub(crate) fn put(dir: &Path, rel: &str, data: &[u8]) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, data).unwrap();
}

pub(crate) async fn snapshot(hub: &Hub, repo: &str) -> Result<hf_hub::Snapshot, HubError> {
    hub.snapshot(
        &RepoRef::model(repo).unwrap(),
        &Revision::main(),
        &Filter::all(),
        tektra_progress::silent(),
        &CancellationToken::new(),
    )
    .await
}

pub(crate) fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}
