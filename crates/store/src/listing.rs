//! Refs and commit listings in the store, beside the blobs: what a mirror
//! learnt from its upstream, for other mirrors and `download --source`.

use hf_hub::cache::{decode_tree, encode_tree};
use hf_hub::ids::{RepoRef, Revision, is_commit_hash};
use hf_hub::resolve::TreeFile;
use object_store::{ObjectStoreExt, PutPayload};

use crate::{BlobStore, StoreError};

/// A commit's files as the store holds them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredListing {
    /// The commit hash.
    pub commit: String,
    /// Every file of the commit.
    pub files: Vec<TreeFile>,
}

impl BlobStore {
    /// The listing `revision` of `repo` names, if the store has one. A
    /// branch is read through its ref; a commit hash directly.
    pub async fn listing(
        &self,
        repo: &RepoRef,
        revision: &Revision,
    ) -> Result<Option<StoredListing>, StoreError> {
        let folder = repo.folder_name();
        let commit = if revision.is_commit() {
            revision.as_str().to_string()
        } else {
            let key = self.key(&[&folder, "refs", revision.as_str()]);
            let Some(bytes) = self.read_small(&key).await? else {
                return Ok(None);
            };
            let commit = String::from_utf8_lossy(&bytes).trim().to_string();
            if !is_commit_hash(&commit) {
                return Err(self.corrupt(&key, "not a commit hash"));
            }
            commit
        };
        let key = self.key(&[&folder, "trees", &format!("{commit}.json")]);
        let Some(bytes) = self.read_small(&key).await? else {
            return Ok(None);
        };
        let files = decode_tree(&bytes, &format!("store {}", self.shown))
            .ok_or_else(|| self.corrupt(&key, "not a file listing"))?;
        Ok(Some(StoredListing { commit, files }))
    }

    /// Stores `listing` and points `revision` at it (the listing first, so
    /// a reader never finds a ref without its files).
    pub async fn put_listing(
        &self,
        repo: &RepoRef,
        revision: &Revision,
        listing: &StoredListing,
    ) -> Result<(), StoreError> {
        let folder = repo.folder_name();
        let key = self.key(&[&folder, "trees", &format!("{}.json", listing.commit)]);
        let body = PutPayload::from(encode_tree(&listing.files));
        self.objects
            .put(&key, body)
            .await
            .map_err(|e| self.object_error("writing", &key, e))?;
        if !revision.is_commit() {
            let key = self.key(&[&folder, "refs", revision.as_str()]);
            self.objects
                .put(&key, PutPayload::from(listing.commit.clone().into_bytes()))
                .await
                .map_err(|e| self.object_error("writing", &key, e))?;
        }
        Ok(())
    }

    /// A small object's bytes (refs, listings), or `None` when absent.
    /// Capped: a listing is never near this size, a hostile object may be.
    async fn read_small(
        &self,
        key: &object_store::path::Path,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        const CAP: u64 = 64 << 20;
        let got = match self.objects.get(key).await {
            Ok(got) => got,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(self.object_error("reading", key, e)),
        };
        if got.meta.size > CAP {
            return Err(self.corrupt(
                key,
                &format!("{} bytes, more than a listing can be", got.meta.size),
            ));
        }
        let bytes = got
            .bytes()
            .await
            .map_err(|e| self.object_error("reading", key, e))?;
        Ok(Some(bytes.to_vec()))
    }

    pub(crate) fn corrupt(&self, key: &object_store::path::Path, reason: &str) -> StoreError {
        StoreError::Corrupt {
            store: self.shown.clone(),
            key: key.to_string(),
            reason: reason.to_string(),
        }
    }
}
