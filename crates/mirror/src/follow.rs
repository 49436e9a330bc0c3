//! One upstream transfer per blob, shared by every client that asks for
//! it while it runs, and each client's stream following its frontier.

use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use hf_hub::ids::Revision;
use hf_hub::{CachedFile, Frontier, Hub, HubError, Prefix};
use tektra_hub_server::ByteStream;
use tektra_progress::{Stage, Tracker};
use tektra_store::StoreError;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::{Inner, Origin, lock};

/// How a transfer ended: the cached file, or why not.
type Outcome = Option<Result<PathBuf, String>>;

/// A transfer clients can follow.
pub(crate) struct Shared {
    frontier: watch::Receiver<Prefix>,
    done: watch::Receiver<Outcome>,
    /// The partial file the engine writes.
    incomplete: PathBuf,
    size: u64,
}

/// The running transfer of `etag`, or a new one. Runs on its own task:
/// clients that go away do not stop it.
pub(crate) fn join_or_start(
    inner: &Arc<Inner>,
    etag: &str,
    origin: Origin,
    (size, disk): (u64, PathBuf),
) -> Result<Arc<Shared>, HubError> {
    let mut transfers = lock(&inner.transfers);
    if let Some(shared) = transfers.get(etag) {
        inner.counters.joined.fetch_add(1, Ordering::Relaxed);
        return Ok(shared.clone());
    }
    let hub = inner.engine(&origin.who)?;
    let name = hf_hub::cache::RepoCache::blob_name(etag, &origin.commit, &origin.file.path);
    let incomplete = hub.cache().repo(&origin.repo).incomplete_path(&name);
    let frontier = Frontier::new();
    let (done_tx, done) = watch::channel(None);
    let shared = Arc::new(Shared {
        frontier: frontier.subscribe(),
        done,
        incomplete,
        size,
    });
    transfers.insert(etag.to_string(), shared.clone());
    drop(transfers);
    let (inner, etag) = (inner.clone(), etag.to_string());
    tokio::spawn(async move {
        let result = transfer(&inner, &hub, &origin, &frontier).await;
        // The engine checked the file against what resolve said; the store
        // told clients what the listing said. They must agree.
        let result = result.and_then(|file| {
            let on_disk = std::fs::metadata(&file.path).map(|m| m.len()).ok();
            if on_disk == Some(size) && disk.is_file() {
                Ok(file)
            } else {
                Err(HubError::Protocol {
                    url: origin.file.path.to_string(),
                    reason: format!(
                        "the upstream's file is not the one its listing gave ({size} bytes, blob {})",
                        disk.display()
                    ),
                })
            }
        });
        let outcome = match result {
            Ok(file) => Ok(file.path),
            Err(e) => {
                inner.counters.failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(file = %origin.file.path, error = %e, "mirror transfer failed");
                Err(e.to_string())
            }
        };
        // Out of the map first: a client arriving after this starts afresh
        // (or finds the blob on disk).
        lock(&inner.transfers).remove(&etag);
        let _ = done_tx.send(Some(outcome));
    });
    Ok(shared)
}

/// The file from the shared store when it holds it whole and right, else
/// from the upstream (and then into the store, in the background). A blob
/// in the store that does not match its name is deleted on the way.
async fn transfer(
    inner: &Arc<Inner>,
    hub: &Hub,
    origin: &Origin,
    frontier: &Frontier,
) -> Result<CachedFile, HubError> {
    let etag = &origin.file.etag;
    let cancel = CancellationToken::new();
    if let Some(store) = &inner.options.store {
        let corrupt = match store.blob_size(etag).await {
            Ok(Some(size)) if size == origin.file.size => {
                let quiet = Tracker::new(Stage::Downloading, tektra_progress::silent());
                let progress = quiet.file(origin.file.path.as_str(), Some(size));
                let at = (&origin.repo, &origin.revision, origin.commit.as_str());
                match store
                    .fetch_blob(hub, at, &origin.file, &progress, &cancel, Some(frontier))
                    .await
                {
                    Ok(file) => {
                        inner.counters.from_store.fetch_add(1, Ordering::Relaxed);
                        return Ok(file);
                    }
                    Err(e @ StoreError::Corrupt { .. }) => Some(e.to_string()),
                    Err(e) => {
                        tracing::warn!(error = %e, "the shared store cannot be read: asking the upstream");
                        None
                    }
                }
            }
            Ok(Some(size)) => Some(format!(
                "{size} bytes where {} were expected",
                origin.file.size
            )),
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(error = %e, "the shared store cannot be read: asking the upstream");
                None
            }
        };
        if let Some(why) = corrupt {
            inner.counters.store_corrupt.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(blob = %etag, %why, "a blob in the shared store is corrupt: deleting it and asking the upstream");
            let _ = store.delete_blob(etag).await;
        }
    }
    inner.counters.transfers.fetch_add(1, Ordering::Relaxed);
    let at = Revision::new(&origin.commit)?;
    let file = hub
        .download_file_following(
            &origin.repo,
            &at,
            &origin.file.path,
            tektra_progress::silent(),
            &cancel,
            Some(frontier),
        )
        .await?;
    // Only what the upstream shows anyone goes into the store, which has
    // no notion of who may read a private repo.
    if let Some(store) = &inner.options.store
        && origin.who == crate::Identity::Anonymous
    {
        let (store, inner, etag) = (store.clone(), inner.clone(), etag.clone());
        let blob = std::fs::canonicalize(&file.path).unwrap_or_else(|_| file.path.clone());
        tokio::spawn(async move {
            match store.put_blob(&etag, &blob).await {
                Ok(_) => {
                    inner.counters.stored.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => tracing::warn!(error = %e, "could not write a blob to the shared store"),
            }
        });
    }
    Ok(file)
}

/// Largest read passed on at once.
const BLOCK: u64 = 256 << 10;

struct Reader {
    shared: Arc<Shared>,
    frontier: watch::Receiver<Prefix>,
    done: watch::Receiver<Outcome>,
    pos: u64,
    /// The attempt whose bytes were passed on, and its partial file.
    following: Option<(u64, Arc<File>)>,
    /// The finished file.
    finished: Option<Arc<File>>,
}

fn fail(message: String) -> std::io::Error {
    std::io::Error::other(message)
}

/// The bytes of `shared`'s file from `from` on: what is written and hashed
/// in order as it arrives, the last byte only once the file verified.
pub(crate) fn stream(shared: Arc<Shared>, from: u64) -> ByteStream {
    let reader = Reader {
        frontier: shared.frontier.clone(),
        done: shared.done.clone(),
        shared,
        pos: from,
        following: None,
        finished: None,
    };
    Box::pin(futures::stream::unfold(Some(reader), |state| async move {
        let mut r = state?;
        match r.next().await {
            Ok(Some(bytes)) => Some((Ok(bytes), Some(r))),
            Ok(None) => None,
            Err(e) => Some((Err(e), None)),
        }
    }))
}

impl Reader {
    async fn next(&mut self) -> std::io::Result<Option<Bytes>> {
        let size = self.shared.size;
        loop {
            if self.pos >= size {
                return Ok(None);
            }
            if let Some(file) = &self.finished {
                return read_at(file.clone(), self.pos, BLOCK.min(size - self.pos))
                    .await
                    .map(|b| self.advance(b));
            }
            let outcome = self.done.borrow_and_update().clone();
            match outcome {
                Some(Ok(path)) => {
                    let file = File::open(&path).map_err(|e| {
                        fail(format!("opening the mirrored file {}: {e}", path.display()))
                    })?;
                    self.finished = Some(Arc::new(file));
                    continue;
                }
                Some(Err(why)) => return Err(fail(format!("the upstream transfer failed: {why}"))),
                None => {}
            }
            let prefix = *self.frontier.borrow_and_update();
            if let Some((attempt, _)) = &self.following
                && prefix.attempt != *attempt
            {
                // Bytes already passed on belonged to a discarded attempt.
                return Err(fail("the upstream transfer started over".into()));
            }
            // The last byte waits for the verdict on the whole file.
            let ready = prefix.len.min(size - 1);
            if prefix.attempt != 0 && ready > self.pos {
                let file = match &self.following {
                    Some((_, file)) => file.clone(),
                    None => match File::open(&self.shared.incomplete) {
                        Ok(file) => {
                            let file = Arc::new(file);
                            self.following = Some((prefix.attempt, file.clone()));
                            file
                        }
                        // Committed (renamed) in between: the outcome follows.
                        Err(_) => {
                            self.wait().await?;
                            continue;
                        }
                    },
                };
                return read_at(file, self.pos, BLOCK.min(ready - self.pos))
                    .await
                    .map(|b| self.advance(b));
            }
            self.wait().await?;
        }
    }

    fn advance(&mut self, bytes: Bytes) -> Option<Bytes> {
        self.pos += bytes.len() as u64;
        Some(bytes)
    }

    /// Until the frontier moves or the transfer ends.
    async fn wait(&mut self) -> std::io::Result<()> {
        tokio::select! {
            changed = self.frontier.changed() => {
                if changed.is_err() {
                    // The engine is done with it; the outcome is coming.
                    self.done.changed().await.map_err(|_| fail("the upstream transfer vanished".into()))?;
                }
            }
            changed = self.done.changed() => {
                changed.map_err(|_| fail("the upstream transfer vanished".into()))?;
            }
        }
        Ok(())
    }
}

async fn read_at(file: Arc<File>, pos: u64, len: u64) -> std::io::Result<Bytes> {
    let len = usize::try_from(len).unwrap_or(usize::MAX);
    tokio::task::spawn_blocking(move || {
        let mut buf = vec![0u8; len];
        read_exact_at(&file, &mut buf, pos).map(|()| Bytes::from(buf))
    })
    .await
    .map_err(|e| fail(e.to_string()))?
}

#[cfg(unix)]
fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    file.read_exact_at(buf, offset)
}

#[cfg(windows)]
fn read_exact_at(file: &File, mut buf: &mut [u8], mut offset: u64) -> std::io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !buf.is_empty() {
        let n = file.seek_read(buf, offset)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf = &mut buf[n..];
        offset += n as u64;
    }
    Ok(())
}
