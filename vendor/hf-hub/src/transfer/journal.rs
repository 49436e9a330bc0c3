//! The resume journal (`<blob>.incomplete.parts`): one `start end` line per
//! written range. With syncing on, a line is appended only after the bytes
//! it names were synced, so after a power cut the journal never vouches for
//! bytes the disk lost. Syncing runs on its own thread, batched, so the
//! writer never waits for the disk.

use std::fs::File;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::time::{Duration, Instant};

use crate::cache::write_ranges_line;
use crate::error::HubError;

/// At most one sync per this long: each sync flushes what every connection
/// wrote since the last one, and lines wait at most this plus the sync.
const SYNC_GAP: Duration = Duration::from_millis(100);

/// Starts the journal thread. `data` is a handle to the partial file (to
/// sync it), `journal` the open journal. Send written ranges to the
/// returned sender; drop it to end the thread, which then reports any
/// error.
pub(crate) fn start(
    data: File,
    journal: File,
    (data_path, journal_path): (PathBuf, PathBuf),
    sync: bool,
) -> (
    Sender<Range<u64>>,
    tokio::task::JoinHandle<Result<(), HubError>>,
) {
    let (tx, rx) = channel();
    let task = tokio::task::spawn_blocking(move || {
        run(&data, journal, &rx, sync).map_err(|(op, e)| match op {
            Step::Sync => HubError::io("syncing", &data_path, e),
            Step::Journal => HubError::io("journaling", &journal_path, e),
        })
    });
    (tx, task)
}

enum Step {
    Sync,
    Journal,
}

fn run(
    data: &File,
    mut journal: File,
    rx: &Receiver<Range<u64>>,
    sync: bool,
) -> Result<(), (Step, std::io::Error)> {
    let mut last_sync: Option<Instant> = None;
    while let Ok(first) = rx.recv() {
        let mut lines = vec![first];
        if sync {
            // Gather what arrives until one gap after the last sync.
            if let Some(until) = last_sync.map(|t| t + SYNC_GAP) {
                while let Some(left) = until.checked_duration_since(Instant::now()) {
                    match rx.recv_timeout(left) {
                        Ok(range) => lines.push(range),
                        Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
                    }
                }
            }
        }
        lines.extend(rx.try_iter());
        if sync {
            // Every line here names bytes written before it was sent, so
            // before this call: after it, they are on disk.
            data.sync_data().map_err(|e| (Step::Sync, e))?;
            last_sync = Some(Instant::now());
        }
        for range in lines {
            write_ranges_line(&mut journal, range.start, range.end)
                .map_err(|e| (Step::Journal, e))?;
        }
    }
    Ok(())
}
