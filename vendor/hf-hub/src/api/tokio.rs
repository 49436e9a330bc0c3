//! Upstream's asynchronous API, same names and signatures, on our engine.

use std::num::ParseIntError;
use std::path::PathBuf;

use indicatif::ProgressBar;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, InvalidHeaderValue, ToStrError};
use reqwest::{Client, Error as ReqwestError, RequestBuilder};
use tokio::sync::{AcquireError, TryAcquireError};
use tokio::task::JoinError;
use tokio_util::sync::CancellationToken;

use super::settings::Settings;
use super::{Call, Progress as SyncProgress, ProgressCalls, RepoInfo, reporter_with};
use crate::ids::RepoPath;
use crate::{Cache, Hub, HubError, Repo, RepoType};

/// Async progress callbacks (upstream's trait).
pub trait Progress {
    /// Called once before the bytes.
    fn init(&mut self, size: usize, filename: &str) -> impl Future<Output = ()> + Send;
    /// Called as `size` more bytes arrive.
    fn update(&mut self, size: usize) -> impl Future<Output = ()> + Send;
    /// Called at the end.
    fn finish(&mut self) -> impl Future<Output = ()> + Send;
}

impl Progress for ProgressBar {
    async fn init(&mut self, size: usize, filename: &str) {
        <ProgressBar as SyncProgress>::init(self, size, filename);
    }
    async fn update(&mut self, size: usize) {
        <ProgressBar as SyncProgress>::update(self, size);
    }
    async fn finish(&mut self) {
        <ProgressBar as SyncProgress>::finish(self);
    }
}

impl Progress for () {
    async fn init(&mut self, _size: usize, _filename: &str) {}
    async fn update(&mut self, _size: usize) {}
    async fn finish(&mut self) {}
}

/// Everything the async API can fail with (upstream's variants, plus
/// `Hub` for the engine's typed errors).
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A required header is missing.
    #[error("Header {0} is missing")]
    MissingHeader(HeaderName),
    /// A header has an unusable value.
    #[error("Header {0} is invalid")]
    InvalidHeader(HeaderName),
    /// A header value could not be built.
    #[error("Invalid header value {0}")]
    InvalidHeaderValue(#[from] InvalidHeaderValue),
    /// A header value is not text.
    #[error("header value is not a string")]
    ToStr(#[from] ToStrError),
    /// The HTTP client failed.
    #[error("request error: {0}")]
    RequestError(#[from] ReqwestError),
    /// A number did not parse.
    #[error("Cannot parse int")]
    ParseIntError(#[from] ParseIntError),
    /// File-system error.
    #[error("I/O error {0}")]
    IoError(#[from] std::io::Error),
    /// Transient failures until the retry budget ran out.
    #[error("Too many retries: {0}")]
    TooManyRetries(Box<ApiError>),
    /// Semaphore error.
    #[error("Try acquire: {0}")]
    TryAcquireError(#[from] TryAcquireError),
    /// Semaphore error.
    #[error("Acquire: {0}")]
    AcquireError(#[from] AcquireError),
    /// A task failed.
    #[error("Join: {0}")]
    Join(#[from] JoinError),
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

    /// More parallel connections per file.
    #[must_use]
    pub fn high(self) -> Self {
        let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        self.with_max_files(cpus.max(8))
            .with_chunk_size(Some(10_000_000))
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

    /// Parallel ranged requests per file.
    #[must_use]
    pub fn with_max_files(mut self, max_files: usize) -> Self {
        self.settings.max_files = Some(max_files);
        self
    }

    /// Size of each ranged request.
    #[must_use]
    pub fn with_chunk_size(mut self, chunk_size: Option<usize>) -> Self {
        self.settings.chunk_size = chunk_size;
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
        let mut headers = HeaderMap::new();
        for (name, value) in self.settings.headers() {
            let name = HeaderName::try_from(name)
                .map_err(|_| ApiError::InvalidHeader(HeaderName::from_static("user-agent")))?;
            let mut value = HeaderValue::from_str(&value)?;
            value.set_sensitive(name == reqwest::header::AUTHORIZATION);
            headers.insert(name, value);
        }
        crate::http::install_tls_provider();
        let client = Client::builder().default_headers(headers).build()?;
        Ok(Api {
            hub,
            client,
            settings: self.settings,
        })
    }
}

/// The async API. Cheap to clone. `Debug` never shows the token.
#[derive(Clone)]
pub struct Api {
    hub: Hub,
    client: Client,
    settings: Settings,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not the HTTP client: its default headers carry the token (marked
        // sensitive, but nothing here relies on that).
        f.debug_struct("Api")
            .field("hub", &self.hub)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Api {
    /// An API with default settings.
    pub fn new() -> Result<Self, ApiError> {
        ApiBuilder::new().build()
    }

    /// The raw HTTP client (token and user agent set).
    #[must_use]
    pub fn client(&self) -> &Client {
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
    pub async fn get(&self, filename: &str) -> Result<PathBuf, ApiError> {
        if let Some(path) = self
            .api
            .settings
            .cache
            .repo(self.repo.clone())
            .get(filename)
        {
            return Ok(path);
        }
        self.download(filename).await
    }

    /// Downloads `filename` (verified; resumes a partial one).
    pub async fn download(&self, filename: &str) -> Result<PathBuf, ApiError> {
        if self.api.settings.progress {
            self.download_with_progress(filename, ProgressBar::new(0))
                .await
        } else {
            self.download_with_progress(filename, ()).await
        }
    }

    /// Downloads `filename`, calling `progress` as bytes arrive.
    pub async fn download_with_progress<P: Progress + Clone + Send + Sync + 'static>(
        &self,
        filename: &str,
        progress: P,
    ) -> Result<PathBuf, ApiError> {
        let (repo, revision) = self.repo.engine()?;
        let path = RepoPath::new(filename)?;
        let (channel, mut rx) = tektra_progress::channel();
        let reporter = reporter_with(Some(std::sync::Arc::new(channel)));
        let hub = self.api.hub.clone();
        let task = async move {
            hub.download_file(&repo, &revision, &path, reporter, &CancellationToken::new())
                .await
        };
        let mut progress = progress;
        let mut calls = ProgressCalls::default();
        let mut task = std::pin::pin!(task);
        let result = loop {
            tokio::select! {
                result = &mut task => break result,
                Some(event) = rx.recv() => apply(&mut progress, filename, calls.on_event(&event)).await,
            }
        };
        while let Ok(event) = rx.try_recv() {
            apply(&mut progress, filename, calls.on_event(&event)).await;
        }
        Ok(result?.path)
    }

    /// The repo's info (commit and files).
    pub async fn info(&self) -> Result<RepoInfo, ApiError> {
        let (repo, revision) = self.repo.engine()?;
        let listing = self
            .api
            .hub
            .repo_info(&repo, &revision, &CancellationToken::new())
            .await?;
        Ok(listing.into())
    }

    /// The raw request for the repo's info.
    pub fn info_request(&self) -> RequestBuilder {
        let url = format!(
            "{}/api/{}",
            self.api.settings.endpoint.trim_end_matches('/'),
            self.repo.api_url()
        );
        self.api.client.get(url)
    }
}

impl From<crate::resolve::RepoListing> for RepoInfo {
    fn from(listing: crate::resolve::RepoListing) -> Self {
        RepoInfo {
            sha: listing.commit,
            siblings: listing
                .files
                .into_iter()
                .map(|p| super::Siblings {
                    rfilename: p.as_str().to_string(),
                })
                .collect(),
        }
    }
}

async fn apply<P: Progress>(progress: &mut P, filename: &str, calls: Vec<Call>) {
    for call in calls {
        match call {
            Call::Init(size) => progress.init(size, filename).await,
            Call::Update(size) => progress.update(size).await,
            Call::Finish => progress.finish().await,
        }
    }
}
