//! Transfer: the bytes of one file into its `.incomplete` partial, over
//! several ranged connections for a large file, resumed from what an
//! earlier run left, hashed as they land.

mod fetch;
mod journal;
mod sink;

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use reqwest::Url;
use tektra_progress::{FileProgress, State};
use tokio_util::sync::CancellationToken;

use crate::client::Hub;
use crate::error::HubError;
use crate::ranges::{RangeSet, split};
use crate::verify::Expected;
use fetch::{FetchError, fetch_range};

/// One file's transfer: where from, how big, what it must hash to, where to.
#[derive(Debug, Clone)]
pub(crate) struct Job {
    pub(crate) url: Url,
    pub(crate) size: u64,
    pub(crate) expected: Expected,
    pub(crate) incomplete: PathBuf,
    pub(crate) parts: PathBuf,
    pub(crate) repo: String,
    pub(crate) revision: String,
    pub(crate) path: String,
    /// Where the in-order prefix is published, for a reader that streams
    /// the file while it arrives.
    pub(crate) frontier: Option<crate::Frontier>,
}

impl Job {
    /// Removes the partial file and its journal (best effort: a leftover is
    /// overwritten or verified by the next attempt anyway).
    pub(crate) fn discard(&self) {
        let _ = std::fs::remove_file(&self.incomplete);
        let _ = std::fs::remove_file(&self.parts);
    }
}

/// What a finished transfer did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TransferStats {
    /// Bytes received over the network by this run.
    pub fetched: u64,
    /// Bytes already present from an earlier run.
    pub resumed: u64,
    /// Connections used at most.
    pub connections: usize,
    /// Requests tried again after a transient failure (a timeout, a cut
    /// body, a 5xx or 429), over all connections.
    pub retries: u32,
    /// Times the file started over on one connection because the server
    /// answered a ranged request with the whole file.
    pub restarts: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Parallel,
    Single,
}

/// Runs `job` until the partial file holds every byte and they hash right.
/// A server that ignores Range makes it start over on one connection.
pub(crate) async fn run(
    hub: &Hub,
    job: &Job,
    progress: &FileProgress,
    cancel: &CancellationToken,
) -> Result<TransferStats, HubError> {
    let opts = hub.options();
    let mut mode = if job.size >= opts.parallel_threshold && opts.connections_per_file > 1 {
        Mode::Parallel
    } else {
        Mode::Single
    };
    let mut restart = false;
    let mut restarts = 0;
    loop {
        match attempt(hub, job, progress, cancel, mode, restart).await {
            Err(Outcome::RangeIgnored) if mode == Mode::Parallel || !restart => {
                tracing::info!(file = %job.path, "server ignores Range: restarting on one connection");
                progress
                    .note("the server ignores byte ranges: restarting the file on one connection");
                mode = Mode::Single;
                restart = true;
                restarts += 1;
            }
            Err(Outcome::RangeIgnored) => {
                return Err(HubError::Protocol {
                    url: crate::client::display_url(&job.url),
                    reason: "answered 200 to a ranged request twice".into(),
                });
            }
            Err(Outcome::Failed(e)) => return Err(e),
            Ok(stats) => return Ok(TransferStats { restarts, ..stats }),
        }
    }
}

enum Outcome {
    RangeIgnored,
    Failed(HubError),
}

impl From<HubError> for Outcome {
    fn from(e: HubError) -> Self {
        Outcome::Failed(e)
    }
}

async fn attempt(
    hub: &Hub,
    job: &Job,
    progress: &FileProgress,
    cancel: &CancellationToken,
    mode: Mode,
    restart: bool,
) -> Result<TransferStats, Outcome> {
    let (file, journal, done) = open_partial(job, restart)?;
    let missing = done.missing(job.size);
    let needed: u64 = missing.iter().map(|r| r.end - r.start).sum();
    check_space(&job.incomplete, needed)?;
    progress.set_total(job.size);
    progress.set_done(done.covered());
    progress.set_state(State::Downloading);

    let opts = hub.options();
    // Pieces small enough to spread over every connection, never larger
    // than chunk_size.
    let per_conn = job.size.div_ceil(opts.connections_per_file as u64 * 2);
    // (max then min, not clamp: a chunk_size below 1 MiB wins.)
    let chunk_len = per_conn.max(1 << 20).min(opts.chunk_size);
    let work: Vec<Range<u64>> = match mode {
        Mode::Single => missing,
        Mode::Parallel => missing
            .into_iter()
            .flat_map(|r| split(r, chunk_len))
            .collect(),
    };
    let connections = match mode {
        Mode::Single => 1,
        Mode::Parallel => opts.connections_per_file.min(work.len()).max(1),
    };
    // Journal often enough that a killed run loses about one chunk in all,
    // spread over its connections.
    let journal_step = (chunk_len / connections as u64).clamp(256 << 10, 2 << 20);
    let stop = cancel.child_token();
    let (tx, sink) = sink::start(
        (file, journal),
        job,
        &done,
        progress.clone(),
        (opts.fsync, journal_step),
        stop.clone(),
    )?;
    let queue = Arc::new(Mutex::new(VecDeque::from(work)));
    let budget = sink::budget();
    let retries = Arc::new(AtomicU32::new(0));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..connections {
        let (hub, job, queue, tx, stop, budget, retries) = (
            hub.clone(),
            job.clone(),
            queue.clone(),
            tx.clone(),
            stop.clone(),
            budget.clone(),
            retries.clone(),
        );
        let whole_ok = mode == Mode::Single;
        workers.spawn(async move {
            loop {
                let next = queue.lock().ok().and_then(|mut q| q.pop_front());
                let Some(range) = next else { return Ok(()) };
                fetch_range(&hub, &job, range, whole_ok, (&tx, &budget, &retries), &stop).await?;
            }
        });
    }
    drop(tx);
    let mut failure: Option<FetchError> = None;
    while let Some(joined) = workers.join_next().await {
        let result = joined.unwrap_or_else(|e| {
            Err(FetchError::Hub(HubError::io(
                "running a download connection",
                PathBuf::new(),
                std::io::Error::other(e.to_string()),
            )))
        });
        if let Err(e) = result {
            stop.cancel();
            // The first real failure wins over the cancellations it caused.
            let replace = match (&failure, &e) {
                (None, _) => true,
                (
                    Some(FetchError::Hub(HubError::Cancelled)),
                    FetchError::Hub(HubError::Cancelled),
                ) => false,
                (Some(FetchError::Hub(HubError::Cancelled)), _) => true,
                _ => false,
            };
            if replace {
                failure = Some(e);
            }
        }
    }
    if failure.is_none() {
        progress.set_state(State::Verifying);
    }
    let finished = sink.finish().await;
    if cancel.is_cancelled() {
        return Err(HubError::Cancelled.into());
    }
    let (written, hashed, digest) = match (finished, failure) {
        // The writer reports disk errors even when the network side stopped
        // first; a hasher stopped by a failed connection is not one.
        (Err(e), _) if !matches!(e, HubError::Cancelled) => return Err(e.into()),
        (_, Some(FetchError::RangeIgnored)) => return Err(Outcome::RangeIgnored),
        (_, Some(FetchError::Hub(e))) | (Err(e), None) => return Err(e.into()),
        (Ok(done), None) => done,
    };
    verify(job, hashed, &digest)?;
    Ok(TransferStats {
        fetched: written.bytes,
        resumed: done.covered(),
        connections,
        retries: retries.load(Ordering::Relaxed),
        restarts: 0,
    })
}

/// Checks size and hash against what the Hub announced; a mismatch
/// discards the partial file so the retry starts clean. Shared by every
/// transport.
pub(crate) fn verify(job: &Job, hashed: u64, digest: &str) -> Result<(), HubError> {
    let complete = hashed == job.size;
    let matches = match &job.expected {
        Expected::SizeOnly => complete,
        expected => complete && digest == expected.hex(),
    };
    if matches {
        return Ok(());
    }
    job.discard();
    if !complete {
        return Err(HubError::Protocol {
            url: crate::client::display_url(&job.url),
            reason: format!("only {hashed} of {} bytes arrived", job.size),
        });
    }
    Err(HubError::HashMismatch {
        file: job.path.clone(),
        algorithm: job.expected.algorithm(),
        expected: job.expected.hex(),
        actual: digest.to_string(),
    })
}

/// Opens (or creates) the partial file and its range journal, and works out
/// which bytes are already there. Without a journal, a partial file is
/// taken as a prefix (what older huggingface_hub versions leave); the hash
/// check catches a wrong guess. A file whose etag is not a hash has no such
/// check, so its partial bytes are never trusted: it starts over.
fn open_partial(job: &Job, restart: bool) -> Result<(File, File, RangeSet), HubError> {
    let restart = restart || job.expected == Expected::SizeOnly;
    if let Some(parent) = job.incomplete.parent() {
        std::fs::create_dir_all(parent).map_err(|e| HubError::io("creating", parent, e))?;
    }
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&job.incomplete)
        .map_err(|e| HubError::io("opening", &job.incomplete, e))?;
    let io = |e| HubError::io("preparing", &job.incomplete, e);
    if restart {
        file.set_len(0).map_err(io)?;
        let _ = std::fs::remove_file(&job.parts);
    }
    let len = file.metadata().map_err(io)?.len();
    if len > job.size {
        file.set_len(job.size).map_err(io)?;
    }
    let mut done = match std::fs::read_to_string(&job.parts) {
        Ok(text) => RangeSet::from_journal(&text, job.size),
        Err(_) => {
            let mut set = RangeSet::default();
            set.insert(0..len.min(job.size));
            set
        }
    };
    // A journal line can only describe bytes the file really has.
    let len = len.min(job.size);
    let mut clipped = RangeSet::default();
    for r in done.ranges() {
        if r.start < len {
            clipped.insert(r.start..r.end.min(len));
        }
    }
    done = clipped;
    let mut journal = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&job.parts)
        .map_err(|e| HubError::io("opening", &job.parts, e))?;
    // What we trust becomes the whole journal: lines it no longer trusts
    // (past the file's end) must not come back when the file grows again,
    // and with nothing trusted it starts empty.
    let journaling = |e| HubError::io("journaling", &job.parts, e);
    journal.set_len(0).map_err(journaling)?;
    for r in done.ranges() {
        crate::cache::write_ranges_line(&mut journal, r.start, r.end).map_err(journaling)?;
    }
    Ok((file, journal, done))
}

/// Fails early when the disk cannot hold what is left to download.
fn check_space(path: &Path, needed: u64) -> Result<(), HubError> {
    let Some(dir) = path.parent() else {
        return Ok(());
    };
    match available_space(dir) {
        Some(available) if available < needed => Err(HubError::DiskFull {
            path: dir.to_path_buf(),
            needed,
            available,
        }),
        _ => Ok(()),
    }
}

/// Bytes an unprivileged process may still write on `dir`'s file system.
#[cfg(unix)]
#[allow(unsafe_code)]
pub fn available_space(dir: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mut stat = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c_path` is a valid NUL-terminated string and `stat` points to
    // writable memory of the right type; statvfs initialises it on success.
    let rc = unsafe { libc::statvfs(c_path.as_ptr(), stat.as_mut_ptr()) };
    if rc != 0 {
        return None;
    }
    // SAFETY: rc == 0, so statvfs filled the struct.
    let stat = unsafe { stat.assume_init() };
    #[allow(clippy::useless_conversion)]
    Some(u64::from(stat.f_bavail).saturating_mul(u64::from(stat.f_frsize)))
}

/// Unknown off Unix.
#[cfg(not(unix))]
pub fn available_space(_dir: &Path) -> Option<u64> {
    None
}
