//! Upstream's blocking API, same names and signatures. The work runs on a
//! background runtime of the engine; the calling thread only waits, so it
//! may itself be inside a tokio runtime without nesting one.

use std::num::ParseIntError;
use std::path::PathBuf;
use std::sync::mpsc;

use indicatif::ProgressBar;
use reqwest::header::HeaderName;
use tektra_progress::Event;
use tokio_util::sync::CancellationToken;

use super::settings::Settings;
use super::{Call, Progress, ProgressCalls, RepoInfo, background_runtime, reporter_with};
use crate::ids::RepoPath;
use crate::{Cache, Hub, HubError, Repo, RepoType};

/// Everything the blocking API can fail with (upstream's variants, plus
/// `Hub` for the engine's typed errors).
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A required header is missing.
    #[error("Header {0} is missing")]
    MissingHeader(HeaderName),
    /// A header has an unusable value.
    #[error("Header {0} is invalid")]
    InvalidHeader(HeaderName),
    /// The raw ureq request (from `info_request`) failed.
    #[error("request error: {0}")]
    RequestError(#[from] Box<ureq::Error>),
    /// A number did not parse.
    #[error("Cannot parse int")]
    ParseIntError(#[from] ParseIntError),
    /// File-system error.
    #[error("I/O error {0}")]
    IoError(#[from] std::io::Error),
    /// Transient failures until the retry budget ran out.
    #[error("Too many retries: {0}")]
    TooManyRetries(Box<ApiError>),
    /// A partial file could not be resumed.
    #[error("Invalid part file - corrupted file")]
    InvalidResume,
    /// Another process held the blob's lock too long.
    #[error("Lock acquisition failed: {0}")]
    LockAcquisition(PathBuf),
    /// The engine's error (HTTP statuses show as `status code NNN`).
    #[error(transparent)]
    Hub(HubError),
}

impl From<HubError> for ApiError {
    fn from(e: HubError) -> Self {
        match e {
            HubError::TooManyRetries { last, .. } => {
                ApiError::TooManyRetries(Box::new(ApiError::from(*last)))
            }
            HubError::LockTimeout { path, .. } => ApiError::LockAcquisition(path),
            other => ApiError::Hub(other),
        }
    }
}

/// A ureq agent with the API's headers, for `info_request`.
#[derive(Clone)]
pub struct HeaderAgent {
    agent: ureq::Agent,
    headers: Vec<(String, String)>,
}

impl std::fmt::Debug for HeaderAgent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Header names only: the values hold the token.
        let names: Vec<&str> = self.headers.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("HeaderAgent")
            .field("headers", &names)
            .finish_non_exhaustive()
    }
}

impl HeaderAgent {
    fn get(&self, url: &str) -> ureq::Request {
        let mut request = self.agent.get(url);
        for (name, value) in &self.headers {
            request = request.set(name, value);
        }
        request
    }
}

/// Builds an [`Api`]. `Debug` never shows the token.
pub struct ApiBuilder {
    settings: Settings,
}

impl std::fmt::Debug for ApiBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Settings' own Debug redacts the token.
        f.debug_struct("ApiBuilder")
            .field("settings", &self.settings)
            .finish()
    }
}

impl Default for ApiBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl ApiBuilder {
    /// Defaults: the public Hub, `~/.cache/huggingface/hub`, the token file.
    #[must_use]
    pub fn new() -> Self {
        Self::from_cache(Cache::default())
    }

    /// From the environment (`HF_HOME`, `HF_HUB_CACHE`, `HF_ENDPOINT`,
    /// `HF_TOKEN`, `HF_HUB_OFFLINE`, ...).
    #[must_use]
    pub fn from_env() -> Self {
        ApiBuilder {
            settings: Settings::from_env(),
        }
    }

    /// From a given cache.
    #[must_use]
    pub fn from_cache(cache: Cache) -> Self {
        ApiBuilder {
            settings: Settings::from_cache(cache),
        }
    }

    /// Whether to show a progress bar.
    #[must_use]
    pub fn with_progress(mut self, progress: bool) -> Self {
        self.settings.progress = progress;
        self
    }

    /// The Hub's URL.
    #[must_use]
    pub fn with_endpoint(mut self, endpoint: String) -> Self {
        self.settings.endpoint = endpoint;
        self
    }

    /// The cache folder.
    #[must_use]
    pub fn with_cache_dir(mut self, cache_dir: PathBuf) -> Self {
        self.settings.cache_dir(cache_dir);
        self
    }

    /// The token.
    #[must_use]
    pub fn with_token(mut self, token: Option<String>) -> Self {
        self.settings.token = token;
        self
    }

    /// Retries of transient failures.
    #[must_use]
    pub fn with_retries(mut self, max_retries: usize) -> Self {
        self.settings.retries = Some(max_retries);
        self
    }

    /// Adds a `key/value` part to the User-Agent.
    #[must_use]
    pub fn with_user_agent(mut self, key: &str, value: &str) -> Self {
        self.settings
            .user_agent
            .push((key.to_string(), value.to_string()));
        self
    }

    /// Builds the [`Api`].
    pub fn build(self) -> Result<Api, ApiError> {
        let hub = self.settings.hub()?;
        let client = HeaderAgent {
            agent: ureq::AgentBuilder::new().build(),
            headers: self.settings.headers(),
        };
        Ok(Api {
            hub,
            client,
            settings: self.settings,
        })
    }
}

/// The blocking API. Cheap to clone; `Send + Sync`. `Debug` never shows
/// the token.
#[derive(Clone)]
pub struct Api {
    hub: Hub,
    client: HeaderAgent,
    settings: Settings,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Each part redacts its own secrets.
        f.debug_struct("Api")
            .field("hub", &self.hub)
            .field("client", &self.client)
            .field("settings", &self.settings)
            .finish()
    }
}

impl Api {
    /// An API with default settings.
    pub fn new() -> Result<Self, ApiError> {
        ApiBuilder::new().build()
    }

    /// The raw HTTP agent (token and user agent set).
    #[must_use]
    pub fn client(&self) -> &HeaderAgent {
        &self.client
    }

    /// The engine underneath, for what the upstream API cannot express.
    #[must_use]
    pub fn hub(&self) -> &Hub {
        &self.hub
    }

    /// A repo.
    #[must_use]
    pub fn repo(&self, repo: Repo) -> ApiRepo {
        ApiRepo {
            api: self.clone(),
            repo,
        }
    }

    /// A model repo at `main`.
    #[must_use]
    pub fn model(&self, model_id: String) -> ApiRepo {
        self.repo(Repo::new(model_id, RepoType::Model))
    }

    /// A dataset repo at `main`.
    #[must_use]
    pub fn dataset(&self, model_id: String) -> ApiRepo {
        self.repo(Repo::new(model_id, RepoType::Dataset))
    }

    /// A space repo at `main`.
    #[must_use]
    pub fn space(&self, model_id: String) -> ApiRepo {
        self.repo(Repo::new(model_id, RepoType::Space))
    }
}

/// One repo of an [`Api`].
#[derive(Debug)]
pub struct ApiRepo {
    api: Api,
    repo: Repo,
}

enum Msg<T> {
    Event(Event),
    Done(Result<T, HubError>),
}

impl ApiRepo {
    /// The resolve URL of `filename`.
    #[must_use]
    pub fn url(&self, filename: &str) -> String {
        format!(
            "{}/{}/resolve/{}/{}",
            self.api.settings.endpoint.trim_end_matches('/'),
            self.repo.url(),
            self.repo.url_revision(),
            filename
        )
    }

    /// The cached file, or a download.
    pub fn get(&self, filename: &str) -> Result<PathBuf, ApiError> {
        if let Some(path) = self
            .api
            .settings
            .cache
            .repo(self.repo.clone())
            .get(filename)
        {
            return Ok(path);
        }
        self.download(filename)
    }

    /// Downloads `filename`, calling `progress` as bytes arrive.
    pub fn download_with_progress<P: Progress>(
        &self,
        filename: &str,
        mut progress: P,
    ) -> Result<PathBuf, ApiError> {
        let (repo, revision) = self.repo.engine()?;
        let path = RepoPath::new(filename)?;
        let hub = self.api.hub.clone();
        let mut calls = ProgressCalls::default();
        let file = run_blocking(
            move |reporter| async move {
                hub.download_file(&repo, &revision, &path, reporter, &CancellationToken::new())
                    .await
            },
            |event| {
                for call in calls.on_event(event) {
                    match call {
                        Call::Init(size) => progress.init(size, filename),
                        Call::Update(size) => progress.update(size),
                        Call::Finish => progress.finish(),
                    }
                }
            },
        )?;
        Ok(file.path)
    }

    /// Downloads `filename` (verified; resumes a partial one).
    pub fn download(&self, filename: &str) -> Result<PathBuf, ApiError> {
        if self.api.settings.progress {
            self.download_with_progress(filename, ProgressBar::new(0))
        } else {
            self.download_with_progress(filename, ())
        }
    }

    /// The repo's info (commit and files).
    pub fn info(&self) -> Result<RepoInfo, ApiError> {
        let (repo, revision) = self.repo.engine()?;
        let hub = self.api.hub.clone();
        let listing = run_blocking(
            move |_| async move {
                hub.repo_info(&repo, &revision, &CancellationToken::new())
                    .await
            },
            |_| {},
        )?;
        Ok(listing.into())
    }

    /// The raw ureq request for the repo's info.
    pub fn info_request(&self) -> ureq::Request {
        let url = format!(
            "{}/api/{}",
            self.api.settings.endpoint.trim_end_matches('/'),
            self.repo.api_url()
        );
        self.api.client.get(&url)
    }
}

/// Runs an engine future on the background runtime and waits on this
/// thread, handing each progress event to `on_event` here (so callbacks
/// need not be `Send`).
fn run_blocking<T, F, Fut>(make: F, mut on_event: impl FnMut(&Event)) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(tektra_progress::SharedReporter) -> Fut,
    Fut: Future<Output = Result<T, HubError>> + Send + 'static,
{
    let runtime = background_runtime()?;
    let (tx, rx) = mpsc::channel::<Msg<T>>();
    let events = tx.clone();
    let reporter = reporter_with(Some(std::sync::Arc::new(move |event: &Event| {
        let _ = events.send(Msg::Event(event.clone()));
    })));
    let future = make(reporter);
    runtime.spawn(async move {
        let result = future.await;
        let _ = tx.send(Msg::Done(result));
    });
    // One queue for events and the result, so every event is seen before it.
    loop {
        match rx.recv() {
            Ok(Msg::Event(event)) => on_event(&event),
            Ok(Msg::Done(result)) => return result.map_err(ApiError::from),
            Err(_) => {
                return Err(ApiError::IoError(std::io::Error::other(
                    "the download task stopped without a result",
                )));
            }
        }
    }
}
