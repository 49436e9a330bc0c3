//! `trees/<commit>.json`: a commit's file listing, in huggingface_hub's
//! format (`format_version` 1), so either tool knows offline which files a
//! snapshot should hold.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{RepoCache, write_atomic};
use crate::error::HubError;
use crate::ids::RepoPath;
use crate::resolve::TreeFile;

#[derive(Serialize, Deserialize)]
struct TreeCache {
    format_version: u32,
    files: BTreeMap<String, Entry>,
}

#[derive(Serialize, Deserialize)]
struct Entry {
    size: u64,
    blob_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    lfs_sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    lfs_size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    xet_hash: Option<String>,
}

/// A listing in the tree cache's format, as bytes: what
/// [`RepoCache::write_tree`] stores, and what an object store shared by
/// mirrors holds beside its blobs.
pub fn encode_tree(files: &[TreeFile]) -> Vec<u8> {
    let cache = TreeCache {
        format_version: 1,
        files: files
            .iter()
            .map(|f| {
                let entry = Entry {
                    size: f.size,
                    blob_id: f.blob_id.clone(),
                    lfs_sha256: f.lfs.then(|| f.etag.clone()),
                    lfs_size: f.lfs.then_some(f.size),
                    xet_hash: f.xet_hash.clone(),
                };
                (f.path.as_str().to_string(), entry)
            })
            .collect(),
    };
    let mut out = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b" ");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, formatter);
    // Strings, integers and maps with string keys always encode.
    let _ = cache.serialize(&mut ser);
    out
}

/// A listing read back from [`encode_tree`]'s bytes; `None` when they are
/// not one. Paths are checked like a server's (`origin` names the source
/// in messages): a tampered listing cannot point outside a snapshot.
#[must_use]
pub fn decode_tree(bytes: &[u8], origin: &str) -> Option<Vec<TreeFile>> {
    let cache: TreeCache = serde_json::from_slice(bytes).ok()?;
    if cache.format_version != 1 {
        return None;
    }
    cache
        .files
        .into_iter()
        .map(|(path, e)| {
            let path = RepoPath::from_server(&path, origin).ok()?;
            let lfs = e.lfs_sha256.is_some();
            Some(TreeFile {
                path,
                size: e.lfs_size.unwrap_or(e.size),
                etag: e.lfs_sha256.unwrap_or_else(|| e.blob_id.clone()),
                blob_id: e.blob_id,
                lfs,
                xet_hash: e.xet_hash,
            })
        })
        .collect()
}

impl RepoCache {
    /// Stores the listing of `commit`.
    pub fn write_tree(&self, commit: &str, files: &[TreeFile]) -> Result<(), HubError> {
        write_atomic(&self.tree_path(commit), &encode_tree(files))
    }

    /// The stored listing of `commit`, if there is a readable one. Paths are
    /// checked like a server's: a tampered file cannot point outside.
    #[must_use]
    pub fn read_tree(&self, commit: &str) -> Option<Vec<TreeFile>> {
        let text = std::fs::read(self.tree_path(commit)).ok()?;
        decode_tree(&text, "the tree cache")
    }
}
