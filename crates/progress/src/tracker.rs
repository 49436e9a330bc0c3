//! Turns "n more bytes" calls from many workers into a rate-limited stream of
//! [`Event`]s with per-file and aggregate rates and ETAs.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::{Aggregate, Event, SharedReporter, Stage, State};

/// How long a rate looks back.
const RATE_WINDOW: Duration = Duration::from_secs(3);
/// Minimum span of samples before a rate is trusted.
const RATE_MIN_SPAN: Duration = Duration::from_millis(150);
/// Default gap between two progress events of one file.
pub const DEFAULT_INTERVAL: Duration = Duration::from_millis(100);

/// A moving window of (time, monotonic bytes moved) samples.
#[derive(Debug, Default)]
struct RateWindow {
    samples: VecDeque<(Instant, u64)>,
}

impl RateWindow {
    fn sample(&mut self, now: Instant, moved: u64) {
        if let Some(&(last, _)) = self.samples.back()
            && now.duration_since(last) < Duration::from_millis(20)
        {
            return;
        }
        self.samples.push_back((now, moved));
        while let Some(&(first, _)) = self.samples.front() {
            if now.duration_since(first) > RATE_WINDOW && self.samples.len() > 2 {
                self.samples.pop_front();
            } else {
                break;
            }
        }
    }

    fn rate(&self) -> f64 {
        match (self.samples.front(), self.samples.back()) {
            (Some(&(t0, b0)), Some(&(t1, b1))) if t1.duration_since(t0) >= RATE_MIN_SPAN => {
                #[allow(clippy::cast_precision_loss)]
                let bytes = b1.saturating_sub(b0) as f64;
                bytes / t1.duration_since(t0).as_secs_f64()
            }
            _ => 0.0,
        }
    }
}

#[derive(Debug)]
struct FileEntry {
    name: String,
    state: State,
    done: u64,
    total: Option<u64>,
    written: Option<u64>,
    tensors_done: Option<u64>,
    tensors_total: Option<u64>,
    moved: u64,
    window: RateWindow,
    last_emit: Option<Instant>,
}

#[derive(Debug)]
struct Shared {
    stage: Stage,
    files: Vec<FileEntry>,
    moved: u64,
    window: RateWindow,
}

struct Inner {
    reporter: SharedReporter,
    interval: Duration,
    start: Instant,
    shared: Mutex<Shared>,
}

/// The progress of one operation (a download, a load): hands out
/// [`FileProgress`] handles and emits [`Event`]s to the caller's reporter.
///
/// Cheap to clone; clones share state. Byte updates are rate-limited to one
/// event per file per interval; state changes are always reported.
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use tektra_progress::{Event, Stage, State, Tracker};
/// let seen = Arc::new(Mutex::new(Vec::new()));
/// let sink = seen.clone();
/// let tracker = Tracker::new(Stage::Downloading, Arc::new(move |e: &Event| sink.lock().unwrap().push(e.clone())));
/// let file = tracker.file("model.gguf", Some(10));
/// file.set_state(State::Downloading);
/// file.advance(10);
/// file.finish();
/// let seen = seen.lock().unwrap();
/// assert_eq!(seen.last().unwrap().state, State::Done);
/// assert_eq!(seen.last().unwrap().aggregate.bytes_done, 10);
/// ```
#[derive(Clone)]
pub struct Tracker {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Tracker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tracker")
            .field("interval", &self.inner.interval)
            .finish_non_exhaustive()
    }
}

impl Tracker {
    /// A tracker for an operation of the given stage.
    #[must_use]
    pub fn new(stage: Stage, reporter: SharedReporter) -> Self {
        Self::with_interval(stage, reporter, DEFAULT_INTERVAL)
    }

    /// Like [`Tracker::new`] with a chosen gap between byte updates.
    #[must_use]
    pub fn with_interval(stage: Stage, reporter: SharedReporter, interval: Duration) -> Self {
        Tracker {
            inner: Arc::new(Inner {
                reporter,
                interval,
                start: Instant::now(),
                shared: Mutex::new(Shared {
                    stage,
                    files: Vec::new(),
                    moved: 0,
                    window: RateWindow::default(),
                }),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Shared> {
        // A reporter that panicked must not take progress down with it.
        self.inner
            .shared
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Registers a file and reports it as queued.
    #[must_use]
    pub fn file(&self, name: impl Into<String>, total: Option<u64>) -> FileProgress {
        let mut shared = self.lock();
        let id = shared.files.len();
        shared.files.push(FileEntry {
            name: name.into(),
            state: State::Queued,
            done: 0,
            total,
            written: None,
            tensors_done: None,
            tensors_total: None,
            moved: 0,
            window: RateWindow::default(),
            last_emit: None,
        });
        self.emit(&mut shared, Some(id), None);
        FileProgress {
            tracker: self.clone(),
            id,
        }
    }

    /// Switches the stage later events carry (a download that moves on to
    /// loading, say) and reports the new stage as started.
    pub fn begin_stage(&self, stage: Stage, message: Option<String>) {
        let mut shared = self.lock();
        shared.stage = stage;
        self.emit_stage(&mut shared, State::Started, message);
    }

    /// Reports the current stage as a whole finished.
    pub fn end_stage(&self, message: Option<String>) {
        let mut shared = self.lock();
        self.emit_stage(&mut shared, State::Done, message);
    }

    /// Totals over every file so far.
    #[must_use]
    pub fn aggregate(&self) -> Aggregate {
        let mut shared = self.lock();
        self.aggregate_of(&mut shared, Instant::now())
    }

    fn aggregate_of(&self, shared: &mut Shared, now: Instant) -> Aggregate {
        let moved = shared.moved;
        shared.window.sample(now, moved);
        let rate = shared.window.rate();
        let files_done = shared
            .files
            .iter()
            .filter(|f| f.state.is_terminal())
            .count() as u64;
        let bytes_done = shared.files.iter().map(|f| f.done).sum::<u64>();
        let bytes_total = shared
            .files
            .iter()
            .try_fold(0u64, |acc, f| f.total.map(|t| acc.saturating_add(t)));
        Aggregate {
            files_done,
            files_total: shared.files.len() as u64,
            bytes_done,
            bytes_total,
            rate,
            eta_secs: eta(bytes_done, bytes_total, rate),
            elapsed_ms: u64::try_from(now.duration_since(self.inner.start).as_millis())
                .unwrap_or(u64::MAX),
        }
    }

    fn emit_stage(&self, shared: &mut Shared, state: State, message: Option<String>) {
        let aggregate = self.aggregate_of(shared, Instant::now());
        let event = Event {
            message,
            aggregate,
            ..Event::new(shared.stage, state)
        };
        self.inner.reporter.report(&event);
    }

    fn emit(&self, shared: &mut Shared, id: Option<usize>, message: Option<String>) {
        let now = Instant::now();
        let aggregate = self.aggregate_of(shared, now);
        let stage = shared.stage;
        let Some(file) = id.and_then(|id| shared.files.get_mut(id)) else {
            return;
        };
        file.window.sample(now, file.moved);
        file.last_emit = Some(now);
        let rate = if file.state.is_terminal() {
            0.0
        } else {
            file.window.rate()
        };
        let event = Event {
            stage,
            file: Some(file.name.clone()),
            state: file.state,
            bytes_done: file.done,
            bytes_total: file.total,
            bytes_written: file.written,
            tensors_done: file.tensors_done,
            tensors_total: file.tensors_total,
            rate,
            eta_secs: if file.state.is_terminal() {
                None
            } else {
                eta(file.done, file.total, rate)
            },
            message,
            aggregate,
        };
        self.inner.reporter.report(&event);
    }
}

fn eta(done: u64, total: Option<u64>, rate: f64) -> Option<f64> {
    let total = total?;
    if rate <= 0.0 {
        return None;
    }
    #[allow(clippy::cast_precision_loss)]
    let left = total.saturating_sub(done) as f64;
    Some(left / rate)
}

/// One file's progress inside a [`Tracker`]. Cheap to clone; clones update
/// the same file. Calls after a terminal state are ignored, so "done after
/// failed" cannot be reported.
#[derive(Clone, Debug)]
pub struct FileProgress {
    tracker: Tracker,
    id: usize,
}

impl FileProgress {
    fn update(&self, force: bool, message: Option<String>, f: impl FnOnce(&mut FileEntry)) {
        let mut shared = self.tracker.lock();
        let Some(file) = shared.files.get_mut(self.id) else {
            return;
        };
        if file.state.is_terminal() {
            return;
        }
        f(file);
        let due = force
            || file.state.is_terminal()
            || file
                .last_emit
                .is_none_or(|t| t.elapsed() >= self.tracker.inner.interval);
        if due {
            self.tracker.emit(&mut shared, Some(self.id), message);
        }
    }

    /// Moves to a new state (reported at once).
    pub fn set_state(&self, state: State) {
        self.update(true, None, |f| f.state = state);
    }

    /// Sets the file's size once it is known.
    pub fn set_total(&self, total: u64) {
        self.update(false, None, |f| f.total = Some(total));
    }

    /// Sets how many bytes are already there without counting them as moved
    /// now (a resumed partial file, or a restart from zero after a retry).
    pub fn set_done(&self, bytes: u64) {
        self.update(false, None, |f| f.done = bytes);
    }

    /// Adds bytes moved by this run.
    pub fn advance(&self, bytes: u64) {
        let mut shared = self.tracker.lock();
        shared.moved = shared.moved.saturating_add(bytes);
        drop(shared);
        self.update(false, None, |f| {
            f.done = f.done.saturating_add(bytes);
            f.moved = f.moved.saturating_add(bytes);
        });
    }

    /// Sets the bytes written to disk when a transport counts them apart.
    pub fn set_written(&self, bytes: u64) {
        self.update(false, None, |f| f.written = Some(bytes));
    }

    /// Sets the number of tensors in the file.
    pub fn set_tensors_total(&self, tensors: u64) {
        self.update(false, None, |f| {
            f.tensors_total = Some(tensors);
            f.tensors_done.get_or_insert(0);
        });
    }

    /// Counts one more tensor of `bytes` bytes as read.
    pub fn advance_tensor(&self, bytes: u64) {
        let mut shared = self.tracker.lock();
        shared.moved = shared.moved.saturating_add(bytes);
        drop(shared);
        self.update(false, None, |f| {
            f.done = f.done.saturating_add(bytes);
            f.moved = f.moved.saturating_add(bytes);
            f.tensors_done = Some(f.tensors_done.unwrap_or(0) + 1);
        });
    }

    /// Reports a note about this file (a retry, a fallback) in its current state.
    pub fn note(&self, message: impl Into<String>) {
        self.update(true, Some(message.into()), |_| {});
    }

    /// Marks the file finished by this run.
    pub fn finish(&self) {
        self.update(true, None, |f| {
            f.state = State::Done;
            if let Some(total) = f.total {
                f.done = total;
            }
        });
    }

    /// Marks the file as already present: nothing had to be done.
    pub fn cached(&self) {
        self.update(true, None, |f| {
            f.state = State::Cached;
            if let Some(total) = f.total {
                f.done = total;
            }
        });
    }

    /// Marks the file failed, with the reason.
    pub fn fail(&self, message: impl Into<String>) {
        self.update(true, Some(message.into()), |f| f.state = State::Failed);
    }

    /// Marks the file cancelled.
    pub fn cancel(&self) {
        self.update(true, None, |f| f.state = State::Cancelled);
    }

    /// The file's current state.
    #[must_use]
    pub fn state(&self) -> State {
        self.tracker
            .lock()
            .files
            .get(self.id)
            .map_or(State::Failed, |f| f.state)
    }
}
