//! Loading progress over the shared event type: one [`FileProgress`] per
//! weight file, bytes and tensors counted as they are read, and every file
//! ending in exactly one terminal state whatever happens.

use std::error::Error as StdError;
use std::path::{Path, PathBuf};

use tektra_progress::{FileProgress, State, Tracker};

use crate::error::Error;

/// How a file is named in events: its file name, which is what a bar has
/// room for (shards of one model differ only there).
pub(crate) fn display_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// Registers a file as queued, before its header is read.
pub(crate) fn queue(tracker: &Tracker, path: &Path) -> FileProgress {
    tracker.file(display_name(path), None)
}

/// Moves a queued file to loading once its header gave the totals.
pub(crate) fn start(file: &FileProgress, bytes: u64, tensors: usize) {
    file.set_total(bytes);
    file.set_tensors_total(tensors as u64);
    file.set_state(State::Loading);
}

/// An error with its causes, for an event's `message`.
pub(crate) fn chain(err: &dyn StdError) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}

/// Puts every file that has not ended yet into its terminal state after
/// `err`: cancelled on cancellation; failed with the reason for the file
/// the error names; failed with a pointer to it for the others, which were
/// stopped half way.
pub(crate) fn settle(files: &[(PathBuf, FileProgress)], err: &Error) {
    let culprit = err.path();
    for (path, file) in files {
        if file.state().is_terminal() {
            continue;
        }
        if err.is_cancelled() {
            file.cancel();
        } else if culprit == Some(path.as_path()) || culprit.is_none() {
            file.fail(chain(err));
        } else {
            let other = culprit.map(display_name).unwrap_or_default();
            file.fail(format!("stopped because {other} failed"));
        }
    }
}
