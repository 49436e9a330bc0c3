//! The engine handle: configuration plus one HTTP client, cheap to clone.

use std::sync::Arc;

use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use reqwest::{Method, Url};

use crate::cache::CacheDir;
use crate::error::HubError;
pub(crate) use crate::options::{HubOptions, XetMode};

pub(crate) struct Inner {
    pub(crate) options: HubOptions,
    pub(crate) endpoint: Url,
    pub(crate) http: reqwest::Client,
    pub(crate) auth: Option<HeaderValue>,
    pub(crate) cache: CacheDir,
    /// `max_rate`, shared by every transfer of this engine and its clones.
    pub(crate) rate: Option<Arc<tektra_rate::RateLimiter>>,
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
    /// Builds the engine. Fails on an unusable endpoint or token, and on an
    /// option out of its range ([`HubError::InvalidOption`]).
    pub fn new(mut options: HubOptions) -> Result<Self, HubError> {
        options.endpoint = options.endpoint.trim_end_matches('/').to_string();
        options.check()?;
        if let Some(rate) = options.max_rate {
            if rate == 0 || options.xet == XetMode::Require {
                return Err(HubError::InvalidOption {
                    name: "max_rate",
                    value: rate.to_string(),
                    reason: "must be above 0, and Xet transfers cannot be paced (use HTTP)".into(),
                });
            }
            options.xet = XetMode::Disabled;
        }
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
        crate::http::install_tls_provider();
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
        let rate = options
            .max_rate
            .map(|r| Arc::new(tektra_rate::RateLimiter::new(r)));
        Ok(Hub {
            inner: Arc::new(Inner {
                rate,
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
