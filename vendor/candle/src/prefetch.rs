//! Page-cache prefetch for engines that map weight files themselves
//! (mistral.rs): reading the files once up front turns the engine's page
//! faults during loading into memory copies, and lets us show progress for
//! the part of loading that is disk-bound.

use std::fs::File;
use std::io::Read;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use tektra_progress::{SharedReporter, Stage, State, Tracker};
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};
use crate::progress::{self, settle};

/// Bytes read per call: large enough for full-speed sequential reads,
/// small enough to notice cancellation within milliseconds.
const BUF_BYTES: usize = 8 << 20;

/// What a prefetch did.
#[derive(Debug, Clone, PartialEq)]
pub struct PrefetchReport {
    /// Files read.
    pub files: usize,
    /// Bytes read.
    pub bytes: u64,
    /// Wall time.
    pub elapsed: Duration,
}

/// Reads every file once so its pages are in the page cache, reporting
/// stage `prefetching` per file (bytes done and total, rate, ETA).
///
/// The bytes go through one reused buffer and are dropped: this process's
/// memory does not grow with the files. Blocking; run it under
/// `spawn_blocking` from async code.
///
/// # Errors
/// [`Error::Open`], [`Error::Read`], or [`Error::Cancelled`].
pub fn prefetch(
    files: &[PathBuf],
    reporter: SharedReporter,
    cancel: &CancellationToken,
) -> Result<PrefetchReport> {
    let started = Instant::now();
    let tracker = Tracker::new(Stage::Prefetching, reporter);
    tracker.begin_stage(Stage::Prefetching, None);
    let progress: Vec<_> = files
        .iter()
        .map(|p| (p.clone(), progress::queue(&tracker, p)))
        .collect();
    let mut buf = vec![0u8; BUF_BYTES];
    let mut total = 0u64;
    for (path, file_progress) in &progress {
        let result = (|| {
            let open_err = |source| Error::Open {
                path: path.clone(),
                source,
            };
            let mut file = File::open(path).map_err(open_err)?;
            let len = file.metadata().map_err(open_err)?.len();
            file_progress.set_total(len);
            file_progress.set_state(State::Loading);
            loop {
                if cancel.is_cancelled() {
                    return Err(Error::Cancelled);
                }
                let n = match file.read(&mut buf) {
                    Ok(0) => return Ok(()),
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(source) => {
                        return Err(Error::Read {
                            path: path.clone(),
                            tensor: None,
                            source,
                        });
                    }
                };
                total += n as u64;
                file_progress.advance(n as u64);
            }
        })();
        match result {
            Ok(()) => file_progress.finish(),
            Err(err) => {
                settle(&progress, &err);
                return Err(err);
            }
        }
    }
    tracker.end_stage(None);
    Ok(PrefetchReport {
        files: files.len(),
        bytes: total,
        elapsed: started.elapsed(),
    })
}
