//! Jobs: pulls and loads that outlive the request that started them. Each
//! keeps every progress event it produced, so a client that connects late
//! (or reconnects with `Last-Event-ID`) sees the whole story, then the rest
//! live.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tektra_progress::{Aggregate, Event, Reporter, Stage, State};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;

/// What a job does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobKind {
    /// Download a model's files into the cache.
    Pull,
    /// Download if needed, then load the model for generation.
    Load,
}

/// Where a job stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// Created, not started.
    Queued,
    /// Working.
    Running,
    /// Finished.
    Done,
    /// Gave up; `error` says why.
    Failed,
    /// Stopped by a cancel; a pull resumes where it stopped when asked again.
    Cancelled,
}

impl JobState {
    /// Every state, for the metrics.
    pub const ALL: [JobState; 5] = [
        JobState::Queued,
        JobState::Running,
        JobState::Done,
        JobState::Failed,
        JobState::Cancelled,
    ];

    /// True once the job does nothing more.
    #[must_use]
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobState::Done | JobState::Failed | JobState::Cancelled
        )
    }

    /// The lowercase name used in JSON and metrics labels.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Done => "done",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }
}

/// The identity of a job's work: two pulls with the same key share one job.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct JobKey {
    pub(crate) kind: JobKind,
    pub(crate) model: String,
    pub(crate) include: Vec<String>,
    pub(crate) exclude: Vec<String>,
}

/// One job.
pub(crate) struct Job {
    pub(crate) id: String,
    pub(crate) key: JobKey,
    created: SystemTime,
    started: Instant,
    pub(crate) cancel: CancellationToken,
    inner: Mutex<Inner>,
    /// Bumped on every new event; subscribers wait on it.
    changed: watch::Sender<usize>,
    metrics: Arc<Metrics>,
}

#[derive(Default)]
struct Inner {
    state: Option<JobState>,
    /// Events by id (from 1); old byte updates thinned, see [`compact`].
    events: Vec<(usize, Event)>,
    /// The id the next event gets.
    next_id: usize,
    aggregate: Aggregate,
    stage: Option<Stage>,
    error: Option<String>,
    path: Option<String>,
    /// Bytes already counted in the metrics, per file being downloaded.
    counted: HashMap<String, u64>,
}

/// A job as `GET /v1/jobs/{id}` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct JobView {
    /// `job-N`.
    pub id: String,
    /// pull or load.
    pub kind: JobKind,
    /// The model reference.
    pub model: String,
    /// Where it stands.
    pub state: JobState,
    /// The stage of the last event (resolving, downloading, loading, ...).
    pub stage: Option<Stage>,
    /// Bytes done over every file.
    pub bytes_done: u64,
    /// Bytes in all, when known.
    pub bytes_total: Option<u64>,
    /// Files finished, and known.
    pub files_done: u64,
    /// Files known.
    pub files_total: u64,
    /// Bytes per second over the last seconds.
    pub rate: f64,
    /// Seconds left at that rate.
    pub eta_secs: Option<f64>,
    /// Why it failed.
    pub error: Option<String>,
    /// The file or folder it produced.
    pub path: Option<String>,
    /// Events so far (the last `id` of the event stream).
    pub events: usize,
    /// Seconds since the Unix epoch when it was created.
    pub created: u64,
    /// Milliseconds since it was created.
    pub elapsed_ms: u64,
}

impl Job {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Current state.
    pub(crate) fn state(&self) -> JobState {
        self.lock().state.unwrap_or(JobState::Queued)
    }

    pub(crate) fn set_running(&self) {
        self.set_state(JobState::Running);
    }

    fn set_state(&self, state: JobState) {
        let mut inner = self.lock();
        let old = inner.state.unwrap_or(JobState::Queued);
        inner.state = Some(state);
        drop(inner);
        self.metrics.job_moved(old, state);
    }

    /// Ends the job with the outcome of its work, and a last file-less
    /// event that says so (what an event stream ends with).
    pub(crate) fn finish(&self, outcome: Result<String, (JobState, String)>) {
        if self.state().is_terminal() {
            return;
        }
        let (state, event_state, message) = match &outcome {
            Ok(path) => (JobState::Done, State::Done, Some(path.clone())),
            Err((JobState::Cancelled, _)) => (JobState::Cancelled, State::Cancelled, None),
            Err((state, message)) => (*state, State::Failed, Some(message.clone())),
        };
        let stage = {
            let mut inner = self.lock();
            match outcome {
                Ok(path) => inner.path = Some(path),
                Err((_, message)) => inner.error = Some(message),
            }
            inner.stage.unwrap_or(match self.key.kind {
                JobKind::Pull => Stage::Downloading,
                JobKind::Load => Stage::Loading,
            })
        };
        let mut last = Event::new(stage, event_state);
        last.message = message;
        self.push(&last);
        self.set_state(state);
        // Wake subscribers that saw the last event before the state moved.
        self.changed.send_modify(|_| {});
    }

    fn push(&self, event: &Event) {
        let mut inner = self.lock();
        let mut event = event.clone();
        if event.file.is_some() {
            inner.aggregate = event.aggregate.clone();
        } else if event.aggregate == Aggregate::default() {
            // The job's own last event carries the totals it reached.
            event.aggregate = inner.aggregate.clone();
        }
        inner.stage = Some(event.stage);
        if event.stage == Stage::Downloading
            && let Some(file) = &event.file
        {
            match event.state {
                State::Cached => self.metrics.cache_hit(),
                State::Downloading | State::Verifying | State::Done => {
                    let seen = inner.counted.entry(file.clone()).or_insert(0);
                    if event.bytes_done > *seen {
                        self.metrics.downloaded(event.bytes_done - *seen);
                        *seen = event.bytes_done;
                    }
                    if event.state == State::Done {
                        self.metrics.cache_miss();
                    }
                }
                _ => {}
            }
        }
        inner.next_id = inner.next_id.max(1);
        let id = inner.next_id;
        inner.next_id += 1;
        inner.events.push((id, event));
        if inner.events.len() > MAX_EVENTS {
            compact(&mut inner.events);
        }
        drop(inner);
        self.changed.send_replace(id);
    }

    /// Events with ids above `after`, whether the job has ended, and a
    /// receiver that changes when more arrive.
    pub(crate) fn events_after(
        &self,
        after: usize,
    ) -> (Vec<(usize, Event)>, bool, watch::Receiver<usize>) {
        let rx = self.changed.subscribe();
        let inner = self.lock();
        let start = inner.events.partition_point(|(id, _)| *id <= after);
        let events = inner.events[start..].to_vec();
        let ended = inner.state.is_some_and(JobState::is_terminal);
        (events, ended, rx)
    }

    /// The download rate now, for the metrics (0 once it ended).
    pub(crate) fn rate(&self) -> f64 {
        let inner = self.lock();
        if inner.state == Some(JobState::Running) && inner.stage == Some(Stage::Downloading) {
            inner.aggregate.rate
        } else {
            0.0
        }
    }

    /// What `GET /v1/jobs/{id}` shows.
    pub(crate) fn view(&self) -> JobView {
        let inner = self.lock();
        let a = &inner.aggregate;
        JobView {
            id: self.id.clone(),
            kind: self.key.kind,
            model: self.key.model.clone(),
            state: inner.state.unwrap_or(JobState::Queued),
            stage: inner.stage,
            bytes_done: a.bytes_done,
            bytes_total: a.bytes_total,
            files_done: a.files_done,
            files_total: a.files_total,
            rate: if inner.state == Some(JobState::Running) {
                a.rate
            } else {
                0.0
            },
            eta_secs: if inner.state == Some(JobState::Running) {
                a.eta_secs
            } else {
                None
            },
            error: inner.error.clone(),
            path: inner.path.clone(),
            events: inner.next_id.saturating_sub(1),
            created: self
                .created
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            elapsed_ms: u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX),
        }
    }
}

/// Progress of the job's work lands in the job.
impl Reporter for Job {
    fn report(&self, event: &Event) {
        self.push(event);
    }
}

/// Events a job keeps; past it the older half loses its repeated byte
/// updates (a long download makes ten a second per file).
const MAX_EVENTS: usize = 10_000;

/// Thins the older half of `events`: keeps every event without a file,
/// every first event of a file in a state and every terminal one; drops
/// the byte updates in between (the later ones carry the totals).
fn compact(events: &mut Vec<(usize, Event)>) {
    let half = events.len() / 2;
    let mut seen = std::collections::HashSet::new();
    let mut i = 0;
    events.retain(|(_, e)| {
        i += 1;
        if i > half {
            return true;
        }
        match &e.file {
            None => true,
            Some(file) => e.state.is_terminal() || seen.insert((file.clone(), e.state)),
        }
    });
}

/// Every job of the daemon, newest last.
pub(crate) struct Jobs {
    jobs: Mutex<Vec<Arc<Job>>>,
    next: AtomicU64,
    metrics: Arc<Metrics>,
}

/// Jobs kept after they end, newest first; older ended ones are forgotten.
const KEEP_ENDED: usize = 256;

impl Jobs {
    pub(crate) fn new(metrics: Arc<Metrics>) -> Jobs {
        Jobs {
            jobs: Mutex::new(Vec::new()),
            next: AtomicU64::new(1),
            metrics,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Arc<Job>>> {
        self.jobs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The running job with this key, or a new one (`true` when new: the
    /// caller starts its work).
    pub(crate) fn get_or_create(&self, key: JobKey) -> (Arc<Job>, bool) {
        let mut jobs = self.lock();
        if let Some(job) = jobs
            .iter()
            .find(|j| j.key == key && !j.state().is_terminal())
        {
            return (job.clone(), false);
        }
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let (changed, _) = watch::channel(0);
        let job = Arc::new(Job {
            id: format!("job-{n}"),
            key,
            created: SystemTime::now(),
            started: Instant::now(),
            cancel: CancellationToken::new(),
            inner: Mutex::new(Inner::default()),
            changed,
            metrics: self.metrics.clone(),
        });
        self.metrics.job_created();
        jobs.push(job.clone());
        let ended = jobs.iter().filter(|j| j.state().is_terminal()).count();
        if ended > KEEP_ENDED {
            let mut drop_n = ended - KEEP_ENDED;
            jobs.retain(|j| {
                if drop_n > 0 && j.state().is_terminal() {
                    drop_n -= 1;
                    false
                } else {
                    true
                }
            });
        }
        (job, true)
    }

    pub(crate) fn get(&self, id: &str) -> Option<Arc<Job>> {
        self.lock().iter().find(|j| j.id == id).cloned()
    }

    pub(crate) fn all(&self) -> Vec<Arc<Job>> {
        self.lock().clone()
    }

    /// Whether a job that is not over works on `model`'s repo.
    pub(crate) fn busy_with(&self, repo: &str) -> bool {
        self.lock()
            .iter()
            .any(|j| !j.state().is_terminal() && crate::cache::names_repo(&j.key.model, repo))
    }

    /// Download rate over every running job.
    pub(crate) fn rate(&self) -> f64 {
        self.lock().iter().map(|j| j.rate()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_job_keeps_its_ids_and_thins_old_byte_updates() {
        let jobs = Jobs::new(Arc::new(Metrics::default()));
        let (job, _) = jobs.get_or_create(JobKey {
            kind: JobKind::Pull,
            model: "org/m".into(),
            include: Vec::new(),
            exclude: Vec::new(),
        });
        for i in 0..25_000u64 {
            let mut e = Event::new(Stage::Downloading, State::Downloading);
            e.file = Some("f".into());
            e.bytes_done = i;
            job.report(&e);
        }
        job.finish(Ok("path".into()));
        let (all, ended, _) = job.events_after(0);
        assert!(ended);
        assert!(all.len() <= MAX_EVENTS, "{}", all.len());
        assert!(all.windows(2).all(|w| w[0].0 < w[1].0), "ids increase");
        assert_eq!(all.last().map(|(id, _)| *id), Some(25_001));
        assert_eq!(job.view().events, 25_001);
        // Resuming after any id, kept or dropped, gives what follows it.
        let (rest, _, _) = job.events_after(24_990);
        assert_eq!(rest.first().map(|(id, _)| *id), Some(24_991));
        let (rest, _, _) = job.events_after(3);
        assert!(rest.first().is_some_and(|(id, _)| *id > 3));
    }
}
