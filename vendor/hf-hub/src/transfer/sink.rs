//! The disk side of a transfer: a writer thread that puts bytes at their
//! offsets and hands written ranges to the journal thread (which syncs
//! before it records them), and a hasher thread that follows the write
//! frontier. Network tasks never touch the file system.

use std::collections::HashMap;
use std::fs::File;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, Sender, SyncSender, sync_channel};

use bytes::Bytes;
use std::sync::Arc;
use tektra_progress::FileProgress;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use super::{Job, journal};
use crate::error::HubError;
use crate::ranges::RangeSet;
use crate::verify::OrderedHasher;

/// Bytes in flight between the network and the hasher, at most. Bounds
/// memory whatever size the HTTP layer hands its chunks in.
pub(crate) const IN_FLIGHT: usize = 4 << 20;
/// One permit of the in-flight budget stands for this many bytes.
const PERMIT: usize = 16 << 10;

/// Takes the budget for `len` bytes, waiting while too much is in flight.
pub(crate) async fn reserve(budget: &Arc<Semaphore>, len: usize) -> Option<OwnedSemaphorePermit> {
    let permits = u32::try_from(len.div_ceil(PERMIT).clamp(1, IN_FLIGHT / PERMIT)).unwrap_or(1);
    budget.clone().acquire_many_owned(permits).await.ok()
}

/// A fresh in-flight budget for one transfer.
pub(crate) fn budget() -> Arc<Semaphore> {
    Arc::new(Semaphore::new(IN_FLIGHT / PERMIT))
}

/// A message from a network task to the writer.
#[derive(Debug)]
pub(crate) enum Chunk {
    /// Bytes of the range that starts at `range_start`, at `offset`, with
    /// their share of the in-flight budget (released once hashed).
    Data {
        range_start: u64,
        offset: u64,
        bytes: Bytes,
        permit: OwnedSemaphorePermit,
    },
}

/// What the writer did.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Written {
    pub(crate) bytes: u64,
}

enum HashMsg {
    Data(u64, Bytes, OwnedSemaphorePermit),
}

/// Starts the writer, journal and hasher for `file`. Returns the sender the
/// network tasks use and a handle that yields the outcome once every sender
/// is gone. `stop` ends the hasher's read-back of resumed bytes early (the
/// outcome is then [`HubError::Cancelled`]).
pub(crate) fn start(
    (file, journal): (File, File),
    job: &Job,
    already: &RangeSet,
    progress: FileProgress,
    (fsync, journal_step): (bool, u64),
    stop: CancellationToken,
) -> Result<(mpsc::Sender<Chunk>, SinkHandle), HubError> {
    let path = job.incomplete.clone();
    let opened = |e| HubError::io("opening", &path, e);
    let reader = File::open(&path).map_err(opened)?;
    let syncer = file.try_clone().map_err(opened)?;
    let (ranges, journal_task) =
        journal::start(syncer, journal, (path.clone(), job.parts.clone()), fsync);
    let mut hasher = OrderedHasher::new(
        &job.expected,
        job.size,
        (reader, path.clone()),
        already,
        stop,
    );
    let (hash_tx, hash_rx) = sync_channel::<HashMsg>(1024);
    let hash_path = path.clone();
    let frontier = job.frontier.clone().map(|f| {
        let attempt = f.start_attempt();
        (f, attempt)
    });
    let hasher_task = tokio::task::spawn_blocking(move || {
        hash_loop(&mut hasher, &hash_rx, &hash_path, frontier.as_ref()).map(|()| hasher.finish())
    });
    let (tx, rx) = mpsc::channel::<Chunk>(1024);
    let writer_task = tokio::task::spawn_blocking(move || {
        write_loop(
            &file,
            &path,
            (rx, &ranges),
            &hash_tx,
            &progress,
            journal_step,
        )
    });
    Ok((
        tx,
        SinkHandle {
            writer: writer_task,
            hasher: hasher_task,
            journal: journal_task,
        },
    ))
}

/// Waits for the writer, hasher and journal of a transfer.
pub(crate) struct SinkHandle {
    writer: tokio::task::JoinHandle<Result<Written, HubError>>,
    hasher: tokio::task::JoinHandle<Result<(u64, String), HubError>>,
    journal: tokio::task::JoinHandle<Result<(), HubError>>,
}

impl SinkHandle {
    /// The writer's result, then the journal's, then the hasher's
    /// (frontier, digest). Call after dropping every sender. Every task is
    /// waited for, whatever fails first.
    pub(crate) async fn finish(self) -> Result<(Written, u64, String), HubError> {
        let written = join(self.writer).await;
        let journal = join(self.journal).await;
        let hashed = join(self.hasher).await;
        let written = written?;
        journal?;
        let (hashed, digest) = hashed?;
        Ok((written, hashed, digest))
    }
}

async fn join<T>(handle: tokio::task::JoinHandle<Result<T, HubError>>) -> Result<T, HubError> {
    match handle.await {
        Ok(result) => result,
        Err(e) => Err(HubError::io(
            "running the download's disk worker",
            PathBuf::new(),
            std::io::Error::other(e.to_string()),
        )),
    }
}

fn write_loop(
    file: &File,
    path: &PathBuf,
    (mut rx, journal): (mpsc::Receiver<Chunk>, &Sender<Range<u64>>),
    hash_tx: &SyncSender<HashMsg>,
    progress: &FileProgress,
    journal_step: u64,
) -> Result<Written, HubError> {
    // range start -> (written end, journaled end)
    let mut ranges: HashMap<u64, (u64, u64)> = HashMap::new();
    let mut written = Written::default();
    // A closed journal means its thread failed; finish() reports why.
    let record = |range: Range<u64>| {
        let _ = journal.send(range);
    };
    let result = (|| {
        while let Some(Chunk::Data {
            range_start,
            offset,
            bytes,
            permit,
        }) = rx.blocking_recv()
        {
            write_all_at(file, &bytes, offset).map_err(|e| HubError::io("writing", path, e))?;
            let len = bytes.len() as u64;
            written.bytes += len;
            progress.advance(len);
            let entry = ranges
                .entry(range_start)
                .or_insert((range_start, range_start));
            entry.0 = offset + len;
            if entry.0 - entry.1 >= journal_step {
                record(range_start..entry.0);
                entry.1 = entry.0;
            }
            // A closed hasher means it failed; its error is reported by finish().
            let _ = hash_tx.send(HashMsg::Data(offset, bytes, permit));
        }
        Ok(())
    })();
    // Whatever happened, record every range's progress: that is what a
    // resumed download starts from.
    rx.close();
    for (start, (end, journaled)) in &ranges {
        if end > journaled {
            record(*start..*end);
        }
    }
    result?;
    Ok(written)
}

fn hash_loop(
    hasher: &mut OrderedHasher,
    rx: &Receiver<HashMsg>,
    path: &PathBuf,
    frontier: Option<&(crate::Frontier, u64)>,
) -> Result<(), HubError> {
    let publish = |hasher: &OrderedHasher| {
        if let Some((frontier, attempt)) = frontier {
            frontier.advance(*attempt, hasher.hashed());
        }
    };
    let err = |e: std::io::Error| {
        if e.kind() == std::io::ErrorKind::Interrupted {
            HubError::Cancelled
        } else {
            HubError::io("hashing", path, e)
        }
    };
    // Resumed ranges that start at 0 are hashed before new bytes arrive.
    hasher.written_range(0..0).map_err(err)?;
    publish(hasher);
    while let Ok(HashMsg::Data(offset, bytes, permit)) = rx.recv() {
        hasher.written(offset, &bytes).map_err(err)?;
        drop(permit);
        publish(hasher);
    }
    Ok(())
}

#[cfg(unix)]
fn write_all_at(file: &File, buf: &[u8], offset: u64) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    file.write_all_at(buf, offset)
}

#[cfg(windows)]
fn write_all_at(file: &File, mut buf: &[u8], mut offset: u64) -> std::io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !buf.is_empty() {
        let n = file.seek_write(buf, offset)?;
        buf = &buf[n..];
        offset += n as u64;
    }
    Ok(())
}
