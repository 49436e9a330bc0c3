//! The engine handle: configuration plus one HTTP client, cheap to clone.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use reqwest::{Method, Url};

use crate::cache::CacheDir;
use crate::env::{DEFAULT_ENDPOINT, EnvConfig};
use crate::error::HubError;
use crate::retry::RetryPolicy;

/// How downloads run. The defaults suit a desktop on a home connection and
/// saturate a fast link; every field can be changed.
#[derive(Debug, Clone)]
pub struct HubOptions {
    /// Base URL of the Hub (no trailing slash).
    pub endpoint: String,
    /// Access token; sent to the endpoint's origin only.
    pub token: Option<String>,
    /// The hub cache (`$HF_HUB_CACHE`).
    pub cache_dir: PathBuf,
    /// Never touch the network; answer from the cache or fail naming what is missing.
    pub offline: bool,
    /// Files downloaded at the same time.
    pub max_files: usize,
    /// Connections (ranged requests in flight) per large file.
    pub connections_per_file: usize,
    /// Largest ranged request. Also bounds what a killed download loses.
    pub chunk_size: u64,
    /// Files smaller than this use one connection.
    pub parallel_threshold: u64,
    /// Retries of transient failures.
    pub retry: RetryPolicy,
    /// TCP (and TLS) connect timeout.
    pub connect_timeout: Duration,
    /// Longest silence while reading a body before the request is retried.
    pub read_timeout: Duration,
    /// Longest wait for another process's lock on the same blob.
    pub lock_timeout: Duration,
    /// `fsync` each blob before it is renamed into the cache, so a power
    /// cut cannot leave a blob with unwritten pages behind a valid name.
    pub fsync: bool,
    /// Extra `key/value` parts of the User-Agent.
    pub user_agent: Vec<(String, String)>,
    /// Use Xet storage for files that have it (when built with `xet`).
    pub xet: XetMode,
    /// Where hf-xet keeps its chunk cache and session files. `None` means
    /// `<cache_dir>/.xet`; [`HubOptions::from_env`] uses `$HF_HOME/xet`,
    /// where huggingface_hub keeps them too.
    pub xet_cache_dir: Option<PathBuf>,
}

/// Whether Xet-backed files go through Xet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum XetMode {
    /// Xet when the file has it, plain HTTP when Xet fails.
    #[default]
    Auto,
    /// Xet only: a Xet failure is an error.
    Require,
    /// Plain HTTP only (`HF_HUB_DISABLE_XET`).
    Disabled,
}

impl Default for HubOptions {
    fn default() -> Self {
        HubOptions {
            endpoint: DEFAULT_ENDPOINT.to_string(),
            token: None,
            cache_dir: crate::env::default_home().join("hub"),
            offline: false,
            max_files: 4,
            connections_per_file: 8,
            chunk_size: 16 << 20,
            parallel_threshold: 8 << 20,
            retry: RetryPolicy::default(),
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(30),
            lock_timeout: Duration::from_secs(30 * 60),
            fsync: false,
            user_agent: Vec::new(),
            xet: XetMode::Auto,
            xet_cache_dir: None,
        }
    }
}

impl HubOptions {
    /// Defaults overridden by the environment (see [`crate::env`]).
    #[must_use]
    pub fn from_env() -> Self {
        Self::from_config(&EnvConfig::from_env())
    }

    /// Defaults overridden by an [`EnvConfig`].
    #[must_use]
    pub fn from_config(cfg: &EnvConfig) -> Self {
        HubOptions {
            endpoint: cfg.endpoint.clone(),
            token: cfg.token.clone(),
            cache_dir: cfg.cache_dir.clone(),
            offline: cfg.offline,
            xet: if cfg.disable_xet {
                XetMode::Disabled
            } else {
                XetMode::Auto
            },
            xet_cache_dir: Some(cfg.home.join("xet")),
            ..HubOptions::default()
        }
    }
}

pub(crate) struct Inner {
    pub(crate) options: HubOptions,
    pub(crate) endpoint: Url,
    pub(crate) http: reqwest::Client,
    pub(crate) auth: Option<HeaderValue>,
    pub(crate) cache: CacheDir,
    /// The Xet session and read tokens, shared by every download of this
    /// engine and its clones.
    #[cfg(feature = "xet")]
    pub(crate) xet: crate::xet::XetState,
}

/// The download engine. Clones share the HTTP connection pool.
///
/// ```no_run
/// # async fn demo() -> Result<(), hf_hub::HubError> {
/// use hf_hub::{Hub, HubOptions, ids::{RepoRef, Revision, RepoPath}};
/// let hub = Hub::new(HubOptions::from_env())?;
/// let repo = RepoRef::model("HuggingFaceTB/SmolLM2-135M-Instruct")?;
/// let file = hub
///     .file(&repo, &Revision::main(), &RepoPath::new("config.json")?)
///     .await?;
/// println!("{}", file.path.display());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Hub {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the token.
        f.debug_struct("Hub")
            .field("endpoint", &self.inner.options.endpoint)
            .field("cache", &self.inner.cache.root())
            .field("offline", &self.inner.options.offline)
            .finish_non_exhaustive()
    }
}

impl Hub {
    /// Builds the engine. Fails only on an unusable endpoint or token.
    pub fn new(mut options: HubOptions) -> Result<Self, HubError> {
        options.endpoint = options.endpoint.trim_end_matches('/').to_string();
        options.max_files = options.max_files.max(1);
        options.connections_per_file = options.connections_per_file.max(1);
        options.chunk_size = options.chunk_size.max(64 << 10);
        let endpoint = Url::parse(&options.endpoint)
            .map_err(|e| HubError::Config(format!("endpoint {:?}: {e}", options.endpoint)))?;
        if !matches!(endpoint.scheme(), "http" | "https") {
            return Err(HubError::Config(format!(
                "endpoint {:?} must be http or https",
                options.endpoint
            )));
        }
        let auth = match &options.token {
            Some(token) => {
                let mut value =
                    HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
                        HubError::Config("the token is not a valid header value".into())
                    })?;
                value.set_sensitive(true);
                Some(value)
            }
            None => None,
        };
        let mut ua = format!("hf-hub/{}; tektra; rust", env!("CARGO_PKG_VERSION"));
        for (k, v) in &options.user_agent {
            ua.push_str(&format!("; {k}/{v}"));
        }
        let mut headers = HeaderMap::new();
        headers.insert(
            reqwest::header::USER_AGENT,
            HeaderValue::from_str(&ua)
                .map_err(|_| HubError::Config("invalid user agent".into()))?,
        );
        let http = reqwest::Client::builder()
            .default_headers(headers)
            // Redirects are followed by hand: relative ones for metadata, and
            // the token must not follow a redirect to another origin.
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(options.connect_timeout)
            .read_timeout(options.read_timeout)
            .tcp_nodelay(true)
            // Several TCP connections, not one multiplexed HTTP/2 stream:
            // per-connection limits are what parallel chunks get around.
            .http1_only()
            .pool_max_idle_per_host(64)
            .build()
            .map_err(|e| HubError::Config(format!("HTTP client: {e}")))?;
        let cache = CacheDir::new(options.cache_dir.clone());
        Ok(Hub {
            inner: Arc::new(Inner {
                options,
                endpoint,
                http,
                auth,
                cache,
                #[cfg(feature = "xet")]
                xet: crate::xet::XetState::default(),
            }),
        })
    }

    /// The options in use.
    #[must_use]
    pub fn options(&self) -> &HubOptions {
        &self.inner.options
    }

    /// The cache this engine writes to.
    #[must_use]
    pub fn cache(&self) -> &CacheDir {
        &self.inner.cache
    }

    /// The endpoint URL.
    #[must_use]
    pub fn endpoint(&self) -> &Url {
        &self.inner.endpoint
    }

    /// Whether `url` is on the Hub's origin (scheme, host and port), the only
    /// place the token may go.
    #[must_use]
    pub fn is_hub_origin(&self, url: &Url) -> bool {
        let e = &self.inner.endpoint;
        url.scheme() == e.scheme()
            && url.host_str() == e.host_str()
            && url.port_or_known_default() == e.port_or_known_default()
    }

    /// A request to `url`, with the token only if `url` is on the Hub's origin.
    pub(crate) fn request(&self, method: Method, url: &Url) -> reqwest::RequestBuilder {
        let mut req = self.inner.http.request(method, url.clone());
        if let Some(auth) = &self.inner.auth
            && self.is_hub_origin(url)
        {
            req = req.header(AUTHORIZATION, auth.clone());
        }
        req
    }

    /// Whether a token is configured.
    #[must_use]
    pub fn has_token(&self) -> bool {
        self.inner.auth.is_some()
    }

    /// `{endpoint}/{path}` where `path` is already URL-encoded.
    pub(crate) fn url(&self, path: &str) -> Result<Url, HubError> {
        let base = self.inner.options.endpoint.as_str();
        Url::parse(&format!("{base}/{path}"))
            .map_err(|e| HubError::Config(format!("cannot build a URL from {base}/{path}: {e}")))
    }
}

/// A URL as shown in messages: no query string (CDN signatures live there)
/// and no credentials.
#[must_use]
pub fn display_url(url: &Url) -> String {
    let mut shown = url.clone();
    shown.set_query(None);
    shown.set_fragment(None);
    let _ = shown.set_password(None);
    let _ = shown.set_username("");
    shown.to_string()
}
