//! Blobs in the store: written from a verified cache file, read into a hub
//! cache through a check of their content hash.

use std::io::Read;
use std::path::Path as FsPath;
use std::time::Duration;

use hf_hub::cache::{BlobLock, RepoCache};
use hf_hub::ids::{RepoRef, Revision};
use hf_hub::resolve::{FileMeta, TreeFile};
use hf_hub::verify::{Expected, Hasher};
use hf_hub::{CachedFile, Frontier, Hub, HubError, TransferStats};
use object_store::signer::Signer;
use object_store::{ObjectStoreExt, PutPayload, WriteMultipart};
use tektra_progress::FileProgress;
use tokio_util::sync::CancellationToken;

use crate::{BlobStore, StoreError, is_content_address};

/// Files up to this size go up in one request; larger ones in parts.
const PART: usize = 16 << 20;
/// Parts in flight at once.
const PARTS_IN_FLIGHT: usize = 4;
/// How long a signed read URL is good for: a blob's transfer (with its
/// retries) is expected to finish well within it.
const SIGNED_FOR: Duration = Duration::from_secs(6 * 3600);

/// What [`BlobStore::put_blob`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Put {
    /// The blob was uploaded.
    Stored,
    /// The store already held a blob of that name and size.
    AlreadyHeld,
}

impl BlobStore {
    fn blob_key(&self, etag: &str) -> Result<object_store::path::Path, StoreError> {
        if !is_content_address(etag) {
            return Err(StoreError::BadUrl {
                url: self.shown.clone(),
                reason: format!("{etag:?} is not a content hash, so it cannot name a blob"),
            });
        }
        Ok(self.key(&["blobs", etag]))
    }

    /// The size of the blob `etag`, if the store holds it.
    pub async fn blob_size(&self, etag: &str) -> Result<Option<u64>, StoreError> {
        let key = self.blob_key(etag)?;
        match self.objects.head(&key).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.object_error("looking up", &key, e)),
        }
    }

    /// Removes the blob `etag` (one found corrupt). Absent is fine.
    pub async fn delete_blob(&self, etag: &str) -> Result<(), StoreError> {
        let key = self.blob_key(etag)?;
        match self.objects.delete(&key).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.object_error("deleting", &key, e)),
        }
    }

    /// Uploads `file` (already verified against `etag`) as the blob
    /// `etag`, unless the store holds one of that size. Large files go up
    /// in parts and appear only when whole; a writer racing another writes
    /// the same bytes, so the last one to finish changes nothing.
    pub async fn put_blob(&self, etag: &str, file: &FsPath) -> Result<Put, StoreError> {
        let key = self.blob_key(etag)?;
        let io = |action, source| StoreError::Io {
            action,
            path: file.to_path_buf(),
            source,
        };
        let size = std::fs::metadata(file).map_err(|e| io("reading", e))?.len();
        if self.blob_size(etag).await? == Some(size) {
            return Ok(Put::AlreadyHeld);
        }
        let mut reader = std::fs::File::open(file).map_err(|e| io("opening", e))?;
        if size <= PART as u64 {
            let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
            reader
                .read_to_end(&mut bytes)
                .map_err(|e| io("reading", e))?;
            self.objects
                .put(&key, PutPayload::from(bytes))
                .await
                .map_err(|e| self.object_error("uploading", &key, e))?;
        } else {
            let upload = self
                .objects
                .put_multipart(&key)
                .await
                .map_err(|e| self.object_error("starting the upload of", &key, e))?;
            let mut writer = WriteMultipart::new_with_chunk_size(upload, PART);
            let sent = async {
                loop {
                    writer
                        .wait_for_capacity(PARTS_IN_FLIGHT)
                        .await
                        .map_err(|e| self.object_error("uploading", &key, e))?;
                    let (chunk, r) = read_chunk(reader).await.map_err(|e| io("reading", e))?;
                    reader = r;
                    if chunk.is_empty() {
                        return Ok::<(), StoreError>(());
                    }
                    writer.put(chunk.into());
                }
            }
            .await;
            match sent {
                Ok(()) => {
                    writer
                        .finish()
                        .await
                        .map_err(|e| self.object_error("finishing the upload of", &key, e))?;
                }
                Err(e) => {
                    let _ = writer.abort().await;
                    return Err(e);
                }
            }
        }
        // Write, then check: a store that kept less than was sent is not
        // left holding a short blob under a content name.
        match self.blob_size(etag).await? {
            Some(held) if held == size => Ok(Put::Stored),
            held => {
                let _ = self.delete_blob(etag).await;
                Err(self.corrupt(
                    &key,
                    &format!("holds {held:?} bytes after an upload of {size}"),
                ))
            }
        }
    }

    /// Brings `file` of `repo` at `commit` from the store into `hub`'s
    /// cache, hashing it on the way: S3 blobs through the engine by a
    /// signed URL (parallel ranges, resume, the in-order prefix published
    /// on `frontier`), `file://` blobs by a local copy. A blob whose bytes
    /// do not match its name is [`StoreError::Corrupt`]; nothing of it
    /// stays in the cache.
    #[allow(clippy::too_many_arguments)]
    pub async fn fetch_blob(
        &self,
        hub: &Hub,
        (repo, revision, commit): (&RepoRef, &Revision, &str),
        file: &TreeFile,
        progress: &FileProgress,
        cancel: &CancellationToken,
        frontier: Option<&Frontier>,
    ) -> Result<CachedFile, StoreError> {
        let key = self.blob_key(&file.etag)?;
        let result = if let Some(s3) = &self.s3 {
            let url = s3
                .signed_url(object_store::signer::Method::GET, &key, SIGNED_FOR)
                .await
                .map_err(|e| self.object_error("signing a read of", &key, e))?;
            let meta = FileMeta {
                path: file.path.clone(),
                commit: commit.to_string(),
                etag: file.etag.clone(),
                size: file.size,
                url,
                xet: None,
            };
            hub.download_located(repo, revision, &meta, progress, cancel, frontier)
                .await
        } else {
            let root = self.root.clone().unwrap_or_default();
            let from = root.join(key.as_ref());
            copy_in(hub, (repo, revision, commit), file, &from, progress, cancel).await
        };
        result.map_err(|e| match e {
            HubError::HashMismatch {
                expected, actual, ..
            } => self.corrupt(&key, &format!("its bytes hash to {actual}, not {expected}")),
            HubError::WrongSize {
                expected,
                announced,
                ..
            } => self.corrupt(
                &key,
                &format!("{announced} bytes where {expected} were expected"),
            ),
            HubError::Http { status: 404, .. } => StoreError::Missing {
                store: self.shown.clone(),
                what: key.to_string(),
            },
            other => StoreError::Hub(other),
        })
    }
}

async fn read_chunk(mut reader: std::fs::File) -> std::io::Result<(Vec<u8>, std::fs::File)> {
    tokio::task::spawn_blocking(move || {
        let mut chunk = Vec::with_capacity(PART);
        (&mut reader).take(PART as u64).read_to_end(&mut chunk)?;
        Ok((chunk, reader))
    })
    .await
    .map_err(std::io::Error::other)?
}

/// A `file://` store's blob into the cache: copied while hashed, under the
/// cache's blob lock, committed only when the hash is right.
async fn copy_in(
    hub: &Hub,
    (repo, revision, commit): (&RepoRef, &Revision, &str),
    file: &TreeFile,
    from: &FsPath,
    progress: &FileProgress,
    cancel: &CancellationToken,
) -> Result<CachedFile, HubError> {
    let repo_cache = hub.cache().repo(repo);
    hub.cache().ensure_tag();
    repo_cache.write_ref(revision, commit)?;
    let name = RepoCache::blob_name(&file.etag, commit, &file.path);
    let link = |was_cached: bool, stats: TransferStats| -> Result<CachedFile, HubError> {
        let path = repo_cache.link_snapshot(commit, &file.path, &name)?;
        Ok(CachedFile {
            repo_path: file.path.clone(),
            path,
            commit: commit.to_string(),
            size: Some(file.size),
            was_cached,
            stats,
        })
    };
    if matches!(
        repo_cache.blob_state(&name, file.size),
        hf_hub::cache::BlobState::Verified
    ) {
        return link(true, TransferStats::default());
    }
    let _lock = BlobLock::acquire(
        &repo_cache.lock_path(&name),
        hub.options().lock_timeout,
        cancel,
        || {
            progress.note("waiting for another process that is writing this file");
        },
    )
    .await?;
    let to = repo_cache.incomplete_path(&name);
    let (from, to_copy, file_c, progress_c, cancel_c) = (
        from.to_path_buf(),
        to.clone(),
        file.clone(),
        progress.clone(),
        cancel.clone(),
    );
    tokio::task::spawn_blocking(move || {
        copy_hashed(&from, &to_copy, &file_c, &progress_c, &cancel_c)
    })
    .await
    .map_err(|e| HubError::io("copying", &to, std::io::Error::other(e)))??;
    repo_cache.commit_blob(&name, hub.options().fsync)?;
    link(
        false,
        TransferStats {
            fetched: file.size,
            connections: 1,
            ..TransferStats::default()
        },
    )
}

fn copy_hashed(
    from: &FsPath,
    to: &FsPath,
    file: &TreeFile,
    progress: &FileProgress,
    cancel: &CancellationToken,
) -> Result<(), HubError> {
    use std::io::Write;
    let missing = |e: std::io::Error| {
        if e.kind() == std::io::ErrorKind::NotFound {
            HubError::Http {
                status: 404,
                url: from.display().to_string(),
                message: None,
            }
        } else {
            HubError::io("reading", from, e)
        }
    };
    let mut input = std::fs::File::open(from).map_err(missing)?;
    if let Some(dir) = to.parent() {
        std::fs::create_dir_all(dir).map_err(|e| HubError::io("creating", dir, e))?;
    }
    let mut output = std::fs::File::create(to).map_err(|e| HubError::io("creating", to, e))?;
    let expected = Expected::from_etag(&file.etag);
    let mut hasher = Hasher::new(&expected, file.size);
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    let result = loop {
        if cancel.is_cancelled() {
            break Err(HubError::Cancelled);
        }
        let n = match input.read(&mut buf) {
            Ok(0) => break Ok(()),
            Ok(n) => n,
            Err(e) => break Err(HubError::io("reading", from, e)),
        };
        total += n as u64;
        if total > file.size {
            break Ok(());
        }
        hasher.update(&buf[..n]);
        if let Err(e) = output.write_all(&buf[..n]) {
            break Err(HubError::io("writing", to, e));
        }
        progress.advance(n as u64);
    };
    let checked = result.and_then(|()| {
        let actual = hasher.finish_hex();
        if total != file.size {
            Err(HubError::WrongSize {
                url: from.display().to_string(),
                expected: file.size,
                announced: total,
            })
        } else if actual != expected.hex() {
            Err(HubError::HashMismatch {
                file: file.path.as_str().to_string(),
                algorithm: expected.algorithm(),
                expected: expected.hex(),
                actual,
            })
        } else {
            Ok(())
        }
    });
    if checked.is_err() {
        let _ = std::fs::remove_file(to);
    }
    checked
}
