//! `tektra` for Python: verified, resumable downloads with progress and
//! cancel, the cache listing, and generation, over the Rust crates. The
//! GIL is released while Rust works; Ctrl-C (KeyboardInterrupt) and a
//! [`Cancel`] token from another thread both stop a download, which then
//! resumes where it stopped.
//!
//! ```python
//! import tektra
//! path = tektra.download("org/name", files=["model.gguf"], progress=lambda e: print(e["state"]))
//! for piece in tektra.Engine("org/name:model.gguf").generate("Hello", stream=True):
//!     print(piece, end="")
//! ```

mod errors;
mod generate;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hf_hub::filter::Filter;
use hf_hub::ids::{RepoPath, RepoRef, Revision};
use hf_hub::{Hub, HubError, HubOptions};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use tektra_progress::{Event, Reporter};
use tokio_util::sync::CancellationToken;

use errors::hub_error;

/// A token that stops the work it is handed to, from any thread.
#[pyclass(module = "tektra")]
#[derive(Clone, Default)]
pub struct Cancel {
    token: CancellationToken,
}

#[pymethods]
impl Cancel {
    #[new]
    fn new() -> Self {
        Cancel::default()
    }

    /// Stops the work (it ends with `tektra.CancelledError`).
    fn cancel(&self) {
        self.token.cancel();
    }

    /// Whether `cancel()` was called.
    #[getter]
    fn cancelled(&self) -> bool {
        self.token.is_cancelled()
    }
}

/// One shared runtime for every call.
pub(crate) fn runtime() -> PyResult<&'static tokio::runtime::Runtime> {
    static RT: std::sync::OnceLock<Result<tokio::runtime::Runtime, String>> =
        std::sync::OnceLock::new();
    RT.get_or_init(|| {
        hf_hub::install_tls_provider();
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())
    })
    .as_ref()
    .map_err(|e| errors::TektraError::new_err(format!("cannot start the async runtime: {e}")))
}

/// Runs `work` on the runtime with the GIL released, checking for Ctrl-C
/// every 50 ms: a KeyboardInterrupt cancels the work, waits for it to stop
/// cleanly, and is raised.
pub(crate) fn run_interruptible<T: Send + 'static>(
    py: Python<'_>,
    cancel: &CancellationToken,
    work: impl std::future::Future<Output = T> + Send + 'static,
) -> PyResult<T> {
    let rt = runtime()?;
    let handle = rt.spawn(work);
    let mut interrupted = None;
    let mut handle = Some(handle);
    loop {
        let h = handle
            .take()
            .ok_or_else(|| errors::TektraError::new_err("lost the task"))?;
        let (done, back) = py.detach(|| {
            rt.block_on(async move {
                let mut h = h;
                tokio::select! {
                    r = &mut h => (Some(r), None),
                    () = tokio::time::sleep(Duration::from_millis(50)) => (None, Some(h)),
                }
            })
        });
        if let Some(result) = done {
            if let Some(e) = interrupted {
                return Err(e);
            }
            return result
                .map_err(|e| errors::TektraError::new_err(format!("the task failed: {e}")));
        }
        handle = back;
        if interrupted.is_none()
            && let Err(e) = py.check_signals()
        {
            cancel.cancel();
            interrupted = Some(e);
        }
    }
}

/// Sends each event, as a dict, to a Python callable (with the GIL taken
/// for the call). Errors the callable raises are printed, not propagated:
/// a progress display must not break a download.
struct PyReporter(Py<PyAny>);

impl Reporter for PyReporter {
    fn report(&self, event: &Event) {
        let Ok(json) = serde_json::to_string(event) else {
            return;
        };
        Python::attach(|py| {
            let result = py
                .import("json")
                .and_then(|m| m.call_method1("loads", (json,)))
                .and_then(|dict| self.0.call1(py, (dict,)));
            if let Err(e) = result {
                e.print(py);
            }
        });
    }
}

fn options(
    cache_dir: Option<PathBuf>,
    endpoint: Option<String>,
    token: Option<String>,
) -> HubOptions {
    let mut o = HubOptions::from_env();
    if let Some(d) = cache_dir {
        o.cache_dir = d;
    }
    if let Some(e) = endpoint {
        o.endpoint = e;
    }
    if token.is_some() {
        o.token = token;
    }
    o
}

/// Downloads files of a Hub repo into the cache (verified, resumable) and
/// returns the path: the file when `files` names one, else the snapshot
/// folder. `progress(event: dict)` receives the same events as
/// `tektra download --json` prints.
#[pyfunction]
#[pyo3(signature = (repo, files=None, revision=None, include=None, exclude=None, progress=None, cancel=None, cache_dir=None, endpoint=None, token=None, repo_type="model"))]
#[allow(clippy::too_many_arguments)]
fn download(
    py: Python<'_>,
    repo: &str,
    files: Option<Vec<String>>,
    revision: Option<String>,
    include: Option<Vec<String>>,
    exclude: Option<Vec<String>>,
    progress: Option<Py<PyAny>>,
    cancel: Option<PyRef<'_, Cancel>>,
    cache_dir: Option<PathBuf>,
    endpoint: Option<String>,
    token: Option<String>,
    repo_type: &str,
) -> PyResult<String> {
    let kind = match repo_type {
        "model" => hf_hub::RepoType::Model,
        "dataset" => hf_hub::RepoType::Dataset,
        "space" => hf_hub::RepoType::Space,
        other => {
            return Err(errors::BadInputError::new_err(format!(
                "repo_type is model, dataset or space, not {other:?}"
            )));
        }
    };
    let repo = RepoRef::new(kind, repo).map_err(hub_error)?;
    let revision = Revision::new(revision.as_deref().unwrap_or("main")).map_err(hub_error)?;
    let hub = Hub::new(options(cache_dir, endpoint, token)).map_err(hub_error)?;
    let reporter: tektra_progress::SharedReporter = match progress {
        Some(f) => Arc::new(PyReporter(f)),
        None => tektra_progress::silent(),
    };
    let cancel = cancel.map_or_else(CancellationToken::new, |c| c.token.clone());
    let paths = files
        .unwrap_or_default()
        .iter()
        .map(|f| RepoPath::new(f))
        .collect::<Result<Vec<_>, _>>()
        .map_err(hub_error)?;
    let filter = Filter::new(&include.unwrap_or_default(), &exclude.unwrap_or_default())
        .map_err(hub_error)?;
    let token = cancel.clone();
    let result = run_interruptible(py, &cancel, async move {
        if paths.is_empty() {
            let s = hub
                .snapshot(&repo, &revision, &filter, reporter, &token)
                .await?;
            return Ok::<_, HubError>(s.dir);
        }
        let s = hub
            .download_files(&repo, &revision, &paths, reporter, &token)
            .await?;
        Ok(match s.files.as_slice() {
            [one] => one.path.clone(),
            _ => s.dir,
        })
    })?;
    result.map(|p| p.display().to_string()).map_err(hub_error)
}

/// The repos of the cache, as `tektra cache ls --json` lists them: a list
/// of dicts (id, repo_id, repo_type, size, files, last_accessed,
/// last_modified, refs, revisions).
#[pyfunction]
#[pyo3(signature = (cache_dir=None))]
fn cache_ls(py: Python<'_>, cache_dir: Option<PathBuf>) -> PyResult<Vec<Py<PyDict>>> {
    let root = cache_dir.unwrap_or_else(|| HubOptions::from_env().cache_dir);
    let scan = py
        .detach(|| tektra_cache::scan(&root))
        .map_err(errors::cache_error)?;
    let secs = |t: std::time::SystemTime| {
        t.duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    };
    scan.repos
        .iter()
        .map(|r| {
            let d = PyDict::new(py);
            d.set_item("id", r.cache_id())?;
            d.set_item("repo_id", &r.id)?;
            d.set_item("repo_type", r.kind.name())?;
            d.set_item("size", r.size)?;
            d.set_item("files", r.files)?;
            d.set_item("last_accessed", secs(r.accessed))?;
            d.set_item("last_modified", secs(r.modified))?;
            d.set_item("refs", r.refs())?;
            let revs: Vec<String> = r.revisions.iter().map(|v| v.commit.clone()).collect();
            d.set_item("revisions", revs)?;
            d.set_item("path", r.dir.display().to_string())?;
            Ok(d.unbind())
        })
        .collect()
}

#[pymodule]
fn tektra(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(download, m)?)?;
    m.add_function(wrap_pyfunction!(cache_ls, m)?)?;
    m.add_class::<Cancel>()?;
    m.add_class::<generate::Engine>()?;
    m.add_class::<generate::Stream>()?;
    errors::register(m)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
