//! The engine's error type: one enum, each variant names the operation and
//! what it acted on, causes kept as `#[source]`.

use std::path::PathBuf;

/// Everything the engine can fail with.
///
/// HTTP failures carry the text `status code NNN` in their message, which
/// dependents of upstream hf-hub (mistral.rs) look for to tell 401, 403 and
/// 404 apart. Tokens never appear in messages; URLs are shown without their
/// query string (CDN URLs carry signatures there).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HubError {
    /// A repo id, revision or path given by the caller is not acceptable.
    #[error("invalid {kind} {value:?}: {reason}")]
    InvalidArgument {
        /// "repo id", "revision", "path", "etag", ...
        kind: &'static str,
        /// The value as given.
        value: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// The server sent a value that would be unsafe or impossible to use
    /// (a listing path with `..`, an etag with a slash, a malformed header).
    #[error("refusing {what} {value:?} from {url}: {reason}")]
    HostileAnswer {
        /// What the value was.
        what: &'static str,
        /// The value, truncated.
        value: String,
        /// The URL that answered (no query).
        url: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// The repository does not exist, or is private and the request carried
    /// no (or a wrong) token; the Hub does not say which.
    #[error("repository {repo} not found, or private and needs a token{} (status code {status})", if *authenticated { " the given token cannot read" } else { "" })]
    RepoNotFound {
        /// Repo id.
        repo: String,
        /// HTTP status (401 or 404).
        status: u16,
        /// Whether a token was sent.
        authenticated: bool,
    },
    /// The repository is gated: access must be requested on the Hub.
    #[error(
        "repository {repo} is gated: request access on the Hub, then use a token that has it (status code {status})"
    )]
    GatedRepo {
        /// Repo id.
        repo: String,
        /// HTTP status.
        status: u16,
    },
    /// The revision (branch, tag or commit) does not exist.
    #[error("revision {revision} not found in {repo} (status code 404)")]
    RevisionNotFound {
        /// Repo id.
        repo: String,
        /// The revision asked for.
        revision: String,
    },
    /// The file does not exist at that revision.
    #[error("{path} not found in {repo} at {revision} (status code 404)")]
    EntryNotFound {
        /// Repo id.
        repo: String,
        /// The revision asked for.
        revision: String,
        /// Path inside the repo.
        path: String,
    },
    /// Any other HTTP error status.
    #[error("{url} answered status code {status}{}", message.as_deref().map(|m| format!(": {m}")).unwrap_or_default())]
    Http {
        /// URL without its query.
        url: String,
        /// HTTP status.
        status: u16,
        /// The server's error message, when it gave one.
        message: Option<String>,
    },
    /// The request could not be sent or its answer not read (connection
    /// refused, reset, timed out).
    #[error("request to {url} failed: {}", transport_reason(source))]
    Transport {
        /// URL without its query.
        url: String,
        /// The HTTP client's error.
        #[source]
        source: reqwest::Error,
    },
    /// The body stopped arriving for longer than the read timeout.
    #[error("no data from {url} for {secs} s")]
    Stalled {
        /// URL without its query.
        url: String,
        /// The read-idle timeout in seconds.
        secs: u64,
    },
    /// The answer broke the protocol (wrong Content-Range, body longer or
    /// shorter than announced, missing header).
    #[error("invalid answer from {url}: {reason}")]
    Protocol {
        /// URL without its query.
        url: String,
        /// What was wrong.
        reason: String,
    },
    /// The server announced a size other than the one resolved (a lying or
    /// broken server or proxy); retrying would not help.
    #[error("{url} announced {announced} bytes where {expected} were expected")]
    WrongSize {
        /// URL without its query.
        url: String,
        /// Bytes expected.
        expected: u64,
        /// Bytes announced.
        announced: u64,
    },
    /// A transient failure repeated until the retry budget ran out.
    #[error("gave up on {url} after {attempts} attempts: {last}")]
    TooManyRetries {
        /// URL without its query.
        url: String,
        /// Attempts made.
        attempts: u32,
        /// The last failure.
        #[source]
        last: Box<HubError>,
    },
    /// The server asked (with `Retry-After`) for a longer pause than the
    /// retry policy allows (`RetryPolicy::max_retry_after`).
    #[error(
        "{url} asked to wait {asked} before trying again, more than the {max_secs} s allowed: {last}"
    )]
    RetryAfterTooLong {
        /// URL without its query.
        url: String,
        /// The wait asked for, as the server put it.
        asked: String,
        /// The longest wait allowed, in seconds.
        max_secs: u64,
        /// The answer that came with it (its status).
        #[source]
        last: Box<HubError>,
    },
    /// An answer went past one of the engine's limits (`HubOptions::limits`):
    /// a JSON body too large, a listing too long or too slow.
    #[error("{what} from {url} goes past the limit of {limit}")]
    OverLimit {
        /// What went past it, e.g. "the JSON answer", "the tree listing".
        what: &'static str,
        /// URL without its query.
        url: String,
        /// The limit, with its unit.
        limit: String,
    },
    /// The downloaded bytes do not hash to what the Hub announced.
    #[error(
        "{file}: {algorithm} mismatch after download (expected {expected}, got {actual}); the bytes were discarded"
    )]
    HashMismatch {
        /// Path inside the repo.
        file: String,
        /// "sha256" or "git sha1".
        algorithm: &'static str,
        /// Expected digest, hex.
        expected: String,
        /// Digest of what arrived, hex.
        actual: String,
    },
    /// Offline mode (or `--offline`) and the cache lacks what was asked.
    #[error("offline: {what} is not in the cache at {}", cache.display())]
    NotCached {
        /// What is missing, e.g. "org/name@main: model.gguf".
        what: String,
        /// The cache directory that was searched.
        cache: PathBuf,
    },
    /// Stopped by the caller's cancellation token. Partial files are kept
    /// and the next run resumes them.
    #[error("cancelled")]
    Cancelled,
    /// A file-system operation failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What was being done, e.g. "writing".
        op: &'static str,
        /// The path concerned.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Not enough free space for the download.
    #[error("not enough disk space in {}: {needed} bytes needed, {available} available", path.display())]
    DiskFull {
        /// Directory checked.
        path: PathBuf,
        /// Bytes still to write.
        needed: u64,
        /// Bytes free.
        available: u64,
    },
    /// Another process held the cache lock for too long.
    #[error("timed out after {secs} s waiting for {} (another process is downloading this file)", path.display())]
    LockTimeout {
        /// The lock file.
        path: PathBuf,
        /// Seconds waited.
        secs: u64,
    },
    /// A JSON answer could not be parsed.
    #[error("unreadable JSON from {url}: {source}")]
    Json {
        /// URL without its query.
        url: String,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// An option is out of its range (zero connections, a chunk size the
    /// transfer cannot split by).
    #[error("invalid option {name} = {value}: {reason}")]
    InvalidOption {
        /// The option's name in [`crate::HubOptions`].
        name: &'static str,
        /// The value given.
        value: String,
        /// The range it must be in.
        reason: String,
    },
    /// The client configuration is unusable (a bad endpoint URL, a token
    /// that is not a valid header value).
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A transfer backend (Xet) failed; the caller may fall back to HTTP.
    #[error("{backend} transfer of {file} failed: {reason}")]
    Backend {
        /// Which backend.
        backend: &'static str,
        /// Path inside the repo.
        file: String,
        /// What went wrong.
        reason: String,
    },
}

fn transport_reason(error: &reqwest::Error) -> String {
    // reqwest's own Display repeats the URL; give the innermost cause instead.
    let mut cause: &dyn std::error::Error = error;
    while let Some(next) = cause.source() {
        cause = next;
    }
    if error.is_timeout() {
        format!("timed out ({cause})")
    } else if error.is_connect() {
        format!("could not connect ({cause})")
    } else {
        cause.to_string()
    }
}

impl HubError {
    /// Wraps an I/O error with what was being done and to which path.
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        HubError::Io {
            op,
            path: path.into(),
            source,
        }
    }

    /// The HTTP status behind this error, if there is one.
    #[must_use]
    pub fn status(&self) -> Option<u16> {
        match self {
            HubError::RepoNotFound { status, .. }
            | HubError::GatedRepo { status, .. }
            | HubError::Http { status, .. } => Some(*status),
            HubError::RevisionNotFound { .. } | HubError::EntryNotFound { .. } => Some(404),
            HubError::TooManyRetries { last, .. } | HubError::RetryAfterTooLong { last, .. } => {
                last.status()
            }
            _ => None,
        }
    }

    /// Whether trying again later could succeed: connection problems,
    /// timeouts, 408, 429 and 5xx answers, a body cut short.
    #[must_use]
    pub fn is_transient(&self) -> bool {
        match self {
            HubError::Transport { .. } | HubError::Stalled { .. } => true,
            HubError::Http { status, .. } => matches!(status, 408 | 429 | 500..=599),
            HubError::Protocol { .. } => true,
            _ => false,
        }
    }
}

/// Short for `Result<T, HubError>`.
pub type Result<T, E = HubError> = std::result::Result<T, E>;
