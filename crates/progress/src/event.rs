//! The event type itself: plain data, serde-serializable, one line of NDJSON each.

use serde::{Deserialize, Serialize};

/// Which step of a model's path an event belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Asking the Hub which commit, files, sizes and hashes a request means.
    Resolving,
    /// Moving bytes from the Hub into the cache, verification included.
    Downloading,
    /// Reading weights from disk into tensors.
    Loading,
    /// Pulling files into the page cache for an engine that maps them itself.
    Prefetching,
    /// Running the model once so the first real token comes quickly.
    WarmingUp,
    /// Re-hashing files already in the cache (`tektra cache verify`).
    Verifying,
}

/// Where one file (or, for file-less events, the stage) stands.
///
/// For a given file the states arrive in this order: `Queued`, then any of
/// `Downloading`/`Verifying`/`Loading` (a retry may go back from `Verifying` to
/// `Downloading`), then exactly one terminal state: `Done`, `Cached`, `Failed`
/// or `Cancelled`. Nothing is reported for a file after its terminal state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Known and planned, not started.
    Queued,
    /// A stage without a file has begun (file-less events only).
    Started,
    /// Bytes are arriving.
    Downloading,
    /// All bytes are there; the content hash is being checked.
    Verifying,
    /// Tensors are being read from the file.
    Loading,
    /// Finished by this run.
    Done,
    /// Already present and verified before this run: no work was needed.
    Cached,
    /// Gave up; `message` says why.
    Failed,
    /// Stopped by the caller's cancellation token; the work can resume.
    Cancelled,
}

impl State {
    /// True for the states after which a file reports nothing more.
    #[must_use]
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            State::Done | State::Cached | State::Failed | State::Cancelled
        )
    }
}

/// Totals over every file of the operation the event belongs to.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Aggregate {
    /// Files in a terminal state.
    pub files_done: u64,
    /// Files the operation knows about.
    pub files_total: u64,
    /// Bytes done over all files (for loading: bytes of tensors read).
    pub bytes_done: u64,
    /// Sum of all file sizes, when every size is known.
    pub bytes_total: Option<u64>,
    /// Smoothed bytes per second over the last few seconds.
    pub rate: f64,
    /// Seconds left at the current rate, when it can be estimated.
    pub eta_secs: Option<f64>,
    /// Milliseconds since the operation started.
    pub elapsed_ms: u64,
}

/// One progress report. Serialises to a flat JSON object:
///
/// ```
/// use tektra_progress::{Aggregate, Event, Stage, State};
/// let event = Event {
///     stage: Stage::Downloading,
///     file: Some("model.gguf".into()),
///     state: State::Downloading,
///     bytes_done: 512,
///     bytes_total: Some(1024),
///     ..Event::new(Stage::Downloading, State::Queued)
/// };
/// let line = serde_json::to_string(&event).unwrap();
/// assert!(line.contains(r#""state":"downloading""#));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// The step this event belongs to.
    pub stage: Stage,
    /// The file concerned (a path inside the repo, or on disk); `None` for
    /// events about the stage as a whole.
    pub file: Option<String>,
    /// Where the file, or the stage, stands.
    pub state: State,
    /// Bytes done for this file.
    pub bytes_done: u64,
    /// Size of this file, when known.
    pub bytes_total: Option<u64>,
    /// Bytes written to disk, when a transport reports it apart from bytes
    /// received (Xet decompresses, so writes can trail the network).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_written: Option<u64>,
    /// Tensors read so far (loading only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tensors_done: Option<u64>,
    /// Tensors in the file (loading only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tensors_total: Option<u64>,
    /// Smoothed bytes per second for this file.
    pub rate: f64,
    /// Seconds left for this file at its current rate.
    pub eta_secs: Option<f64>,
    /// A human-readable note: the reason of a failure, a fallback, a warning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Totals over the whole operation.
    pub aggregate: Aggregate,
}

impl Event {
    /// An event with every counter at zero; handy as a base for `..`.
    #[must_use]
    pub fn new(stage: Stage, state: State) -> Self {
        Event {
            stage,
            file: None,
            state,
            bytes_done: 0,
            bytes_total: None,
            bytes_written: None,
            tensors_done: None,
            tensors_total: None,
            rate: 0.0,
            eta_secs: None,
            message: None,
            aggregate: Aggregate::default(),
        }
    }

    /// Fraction done in `[0, 1]` for this file, when its size is known.
    #[must_use]
    pub fn fraction(&self) -> Option<f64> {
        match self.bytes_total {
            Some(0) => Some(1.0),
            #[allow(clippy::cast_precision_loss)]
            Some(total) => Some((self.bytes_done as f64 / total as f64).min(1.0)),
            None => None,
        }
    }
}
