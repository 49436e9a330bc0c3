//! Upstream hf-hub 0.4.3's `api` module: the same `Progress` trait, repo
//! info types and the `sync` and `tokio` APIs, running on our engine.

use std::sync::{Arc, RwLock};

use indicatif::{ProgressBar, ProgressStyle};
use serde::Deserialize;
use tektra_progress::{Event, SharedReporter, State};

mod settings;

/// The asynchronous API.
#[cfg(feature = "tokio")]
pub mod tokio;

/// The blocking API.
#[cfg(feature = "ureq")]
pub mod sync;

/// Per-download progress callbacks (upstream's trait).
pub trait Progress {
    /// Called once before the bytes: the file's size and name.
    fn init(&mut self, size: usize, filename: &str);
    /// Called as `size` more bytes have arrived.
    fn update(&mut self, size: usize);
    /// Called at the end.
    fn finish(&mut self);
}

impl Progress for () {
    fn init(&mut self, _size: usize, _filename: &str) {}
    fn update(&mut self, _size: usize) {}
    fn finish(&mut self) {}
}

impl Progress for ProgressBar {
    fn init(&mut self, size: usize, filename: &str) {
        self.set_length(size as u64);
        if let Ok(style) = ProgressStyle::with_template(
            "{msg:30} [{elapsed_precise}] [{wide_bar}] {bytes}/{total_bytes} {bytes_per_sec} ({eta})",
        ) {
            self.set_style(style);
        }
        // Keep the end of long names: it is the part that differs.
        let name: String = {
            let chars: Vec<char> = filename.chars().collect();
            if chars.len() > 30 {
                format!("..{}", chars[chars.len() - 28..].iter().collect::<String>())
            } else {
                filename.to_string()
            }
        };
        self.set_message(name);
    }

    fn update(&mut self, size: usize) {
        self.inc(size as u64);
    }

    fn finish(&mut self) {
        ProgressBar::finish(self);
    }
}

/// A file of a repo, as listed by the Hub.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Siblings {
    /// Path inside the repo.
    pub rfilename: String,
}

/// A repo as described by the Hub.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct RepoInfo {
    /// Its files.
    pub siblings: Vec<Siblings>,
    /// The commit.
    pub sha: String,
}

static AMBIENT: RwLock<Option<SharedReporter>> = RwLock::new(None);

/// Sets a reporter that every download through the upstream-compatible APIs
/// (`api::sync`, `api::tokio`) also reports to. This is how an application
/// sees the downloads a dependency (mistral.rs) starts on its own.
/// `None` removes it.
pub fn set_ambient_reporter(reporter: Option<SharedReporter>) {
    if let Ok(mut slot) = AMBIENT.write() {
        *slot = reporter;
    }
}

fn ambient_reporter() -> Option<SharedReporter> {
    AMBIENT.read().ok().and_then(|slot| slot.clone())
}

/// The reporter for one compat download: the ambient one (if set) plus `extra`.
pub(crate) fn reporter_with(extra: Option<SharedReporter>) -> SharedReporter {
    match (ambient_reporter(), extra) {
        (Some(a), Some(b)) => Arc::new(tektra_progress::Fanout(vec![a, b])),
        (Some(a), None) => a,
        (None, Some(b)) => b,
        (None, None) => tektra_progress::silent(),
    }
}

/// One call to make on an upstream `Progress`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Call {
    Init(usize),
    Update(usize),
    Finish,
}

/// Turns engine events into upstream `Progress` calls: `init` once the
/// size is known, `update` with byte deltas, `finish` once. Shared by the
/// blocking and the async API, which only differ in how they make the call.
#[derive(Debug, Default)]
pub(crate) struct ProgressCalls {
    started: bool,
    finished: bool,
    seen: u64,
}

impl ProgressCalls {
    pub(crate) fn on_event(&mut self, event: &Event) -> Vec<Call> {
        let mut calls = Vec::new();
        if event.file.is_none() || self.finished {
            return calls;
        }
        if !self.started
            && let Some(total) = event.bytes_total
        {
            calls.push(Call::Init(usize::try_from(total).unwrap_or(usize::MAX)));
            self.started = true;
        }
        if self.started && event.bytes_done > self.seen {
            let delta = event.bytes_done - self.seen;
            calls.push(Call::Update(usize::try_from(delta).unwrap_or(usize::MAX)));
            self.seen = event.bytes_done;
        }
        if matches!(event.state, State::Done | State::Cached) {
            calls.push(Call::Finish);
            self.finished = true;
        }
        calls
    }
}

/// The runtime the blocking API runs the engine on: its own threads, so a
/// caller inside another tokio runtime never nests one.
#[cfg(feature = "ureq")]
pub(crate) fn background_runtime() -> Result<&'static ::tokio::runtime::Runtime, std::io::Error> {
    static RUNTIME: BackgroundRuntime = std::sync::OnceLock::new();
    runtime_in(&RUNTIME)
}

#[cfg(feature = "ureq")]
type BackgroundRuntime = std::sync::OnceLock<Result<::tokio::runtime::Runtime, String>>;

/// The runtime in `cell`, built on first use inside `get_or_init`: two
/// first callers never both build one, so none is dropped, which panics
/// when the caller is inside async code (as mistral.rs is). A failure to
/// build it is kept and returned to every caller.
#[cfg(feature = "ureq")]
fn runtime_in(
    cell: &'static BackgroundRuntime,
) -> Result<&'static ::tokio::runtime::Runtime, std::io::Error> {
    cell.get_or_init(|| {
        ::tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("hf-hub")
            .enable_all()
            .build()
            .map_err(|e| e.to_string())
    })
    .as_ref()
    .map_err(|e| std::io::Error::other(format!("cannot start the hf-hub runtime: {e}")))
}

#[cfg(all(test, feature = "ureq"))]
mod tests {
    use super::*;

    #[test]
    fn two_first_callers_inside_async_code_share_one_runtime() {
        // Each round is a fresh cell and two threads that ask for it at the
        // same moment from inside a runtime, as mistral.rs does. A runtime
        // built and dropped by the loser would panic there.
        for _ in 0..8 {
            let cell: &'static BackgroundRuntime = Box::leak(Box::new(std::sync::OnceLock::new()));
            let barrier = Arc::new(std::sync::Barrier::new(2));
            let callers: Vec<_> = (0..2)
                .map(|_| {
                    let barrier = barrier.clone();
                    std::thread::spawn(move || {
                        let outer = ::tokio::runtime::Builder::new_current_thread()
                            .build()
                            .unwrap();
                        outer.block_on(async {
                            barrier.wait();
                            let rt = runtime_in(cell).unwrap();
                            std::ptr::from_ref(rt) as usize
                        })
                    })
                })
                .collect();
            let got: Vec<usize> = callers
                .into_iter()
                .map(|c| c.join().expect("a first caller panicked"))
                .collect();
            assert_eq!(got[0], got[1]);
        }
    }
}
