//! How the engine runs: [`HubOptions`], checked once where they enter
//! ([`crate::Hub::new`]), so a value that would misbehave later (zero
//! connections, a chunk size below the smallest piece) is a clear error
//! up front.

use std::path::PathBuf;
use std::time::Duration;

use crate::env::{DEFAULT_ENDPOINT, EnvConfig};
use crate::error::HubError;
use crate::retry::RetryPolicy;

/// Most connections per file, and most files at once. Beyond this a
/// download gains nothing and runs into file-descriptor limits.
pub const MAX_CONNECTIONS: usize = 64;
/// Smallest ranged request (`chunk_size`).
pub const MIN_CHUNK: u64 = 64 << 10;
/// Largest ranged request (`chunk_size`).
pub const MAX_CHUNK: u64 = 1 << 30;

/// How downloads run. The defaults suit a desktop on a home connection and
/// saturate a fast link; every field can be changed.
#[derive(Clone)]
pub struct HubOptions {
    /// Base URL of the Hub (no trailing slash).
    pub endpoint: String,
    /// Access token; sent to the endpoint's origin only. Never shown by
    /// `Debug`.
    pub token: Option<String>,
    /// The hub cache (`$HF_HUB_CACHE`).
    pub cache_dir: PathBuf,
    /// Never touch the network; answer from the cache or fail naming what is missing.
    pub offline: bool,
    /// Files downloaded at the same time (1 to [`MAX_CONNECTIONS`]).
    pub max_files: usize,
    /// Connections (ranged requests in flight) per large file (1 to
    /// [`MAX_CONNECTIONS`]).
    pub connections_per_file: usize,
    /// Largest ranged request ([`MIN_CHUNK`] to [`MAX_CHUNK`]). Also bounds
    /// what a killed download loses.
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
    /// Make every byte durable before it is trusted: a blob's data is
    /// synced before its rename into `blobs/` (both transports) and the
    /// folder after it; a range goes into the resume journal only once its
    /// bytes are synced. On by default; off (`TEKTRA_HUB_FSYNC=0`) trades a
    /// power cut's safety for speed (see the README for the cost).
    pub fsync: bool,
    /// Bounds on what a server's answers may cost.
    pub limits: Limits,
    /// Extra `key/value` parts of the User-Agent.
    pub user_agent: Vec<(String, String)>,
    /// Use Xet storage for files that have it (when built with `xet`).
    pub xet: XetMode,
    /// Where hf-xet keeps its chunk cache and session files. `None` means
    /// `<cache_dir>/.xet`; [`HubOptions::from_env`] uses `$HF_HOME/xet`,
    /// where huggingface_hub keeps them too.
    pub xet_cache_dir: Option<PathBuf>,
    /// Bytes per second every download of this engine shares at most
    /// (all files, all connections). Xet transfers cannot be paced, so a
    /// rate turns Xet off (and is refused with [`XetMode::Require`]).
    pub max_rate: Option<u64>,
}

/// Bounds on what a server's answers may cost, so a hostile or broken
/// server cannot make a listing read without end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest JSON answer read (revision info, a listing page, a Xet token
    /// answer, which is held to at most 1 MiB), in bytes.
    pub json_bytes: u64,
    /// Most pages one tree listing may span.
    pub listing_pages: usize,
    /// Most entries (files and folders) one tree listing may hold.
    pub listing_entries: usize,
    /// Longest one whole tree listing may take, every page included.
    pub listing_time: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            // A revision answer for a repo of a million files is about 60 MB.
            json_bytes: 64 << 20,
            listing_pages: 10_000,
            listing_entries: 1_000_000,
            listing_time: Duration::from_secs(10 * 60),
        }
    }
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
            fsync: true,
            limits: Limits::default(),
            user_agent: Vec::new(),
            xet: XetMode::Auto,
            xet_cache_dir: None,
            max_rate: None,
        }
    }
}

impl std::fmt::Debug for HubOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Every field but the token, which shows only whether it is set.
        f.debug_struct("HubOptions")
            .field("endpoint", &self.endpoint)
            .field("token", &redacted(self.token.as_ref()))
            .field("cache_dir", &self.cache_dir)
            .field("offline", &self.offline)
            .field("max_files", &self.max_files)
            .field("connections_per_file", &self.connections_per_file)
            .field("chunk_size", &self.chunk_size)
            .field("parallel_threshold", &self.parallel_threshold)
            .field("retry", &self.retry)
            .field("connect_timeout", &self.connect_timeout)
            .field("read_timeout", &self.read_timeout)
            .field("lock_timeout", &self.lock_timeout)
            .field("fsync", &self.fsync)
            .field("limits", &self.limits)
            .field("user_agent", &self.user_agent)
            .field("xet", &self.xet)
            .field("xet_cache_dir", &self.xet_cache_dir)
            .field("max_rate", &self.max_rate)
            .finish()
    }
}

/// What `Debug` shows for a secret: whether there is one, never its value.
pub(crate) fn redacted<T>(secret: Option<&T>) -> Option<&'static str> {
    secret.map(|_| "<redacted>")
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
            fsync: cfg.fsync,
            xet: if cfg.disable_xet {
                XetMode::Disabled
            } else {
                XetMode::Auto
            },
            xet_cache_dir: Some(cfg.home.join("xet")),
            ..HubOptions::default()
        }
    }

    /// Checks every value that later code relies on being in range.
    pub(crate) fn check(&self) -> Result<(), HubError> {
        let bad = |name: &'static str, value: String, reason: String| {
            Err(HubError::InvalidOption {
                name,
                value,
                reason,
            })
        };
        let connections = format!("must be 1 to {MAX_CONNECTIONS}");
        if !(1..=MAX_CONNECTIONS).contains(&self.max_files) {
            return bad("max_files", self.max_files.to_string(), connections);
        }
        if !(1..=MAX_CONNECTIONS).contains(&self.connections_per_file) {
            return bad(
                "connections_per_file",
                self.connections_per_file.to_string(),
                connections,
            );
        }
        if !(MIN_CHUNK..=MAX_CHUNK).contains(&self.chunk_size) {
            return bad(
                "chunk_size",
                self.chunk_size.to_string(),
                format!("must be {MIN_CHUNK} to {MAX_CHUNK} bytes"),
            );
        }
        if self.retry.max_attempts == 0 {
            return bad(
                "retry.max_attempts",
                "0".into(),
                "must be at least 1 (the first try)".into(),
            );
        }
        for (name, value) in [
            ("connect_timeout", self.connect_timeout),
            ("read_timeout", self.read_timeout),
        ] {
            if value.is_zero() {
                return bad(name, "0 s".into(), "must be longer than zero".into());
            }
        }
        if self.limits.listing_pages == 0 || self.limits.json_bytes == 0 {
            return bad(
                "limits",
                format!("{:?}", self.limits),
                "a listing needs at least one page of at least one byte".into(),
            );
        }
        Ok(())
    }
}
