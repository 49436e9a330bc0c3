//! Validated identifiers: repo ids, revisions, paths inside a repo, etags
//! and commit hashes. Each of them ends up in a file-system path or a URL,
//! so each is checked once, where it enters, whether it comes from the
//! caller or from the server.

use std::fmt;

use crate::RepoType;
use crate::error::HubError;

fn invalid(kind: &'static str, value: &str, reason: &'static str) -> HubError {
    HubError::InvalidArgument {
        kind,
        value: truncate(value),
        reason,
    }
}

pub(crate) fn truncate(value: &str) -> String {
    const MAX: usize = 120;
    if value.len() <= MAX {
        return value.to_string();
    }
    let mut end = MAX;
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &value[..end])
}

/// Server text as it may be shown on a terminal: control characters
/// (escape sequences, bells, carriage returns) and the invisible marks that
/// reorder or hide text (bidirectional overrides, zero-width characters)
/// are dropped, then the rest is cut to a printable length.
///
/// ```
/// # use hf_hub::ids::printable;
/// assert_eq!(printable("\u{1b}]0;owned\u{7}\u{1b}[2Jbad\u{202e}gate\r\n"), "]0;owned[2Jbadgate");
/// ```
#[must_use]
pub fn printable(text: &str) -> String {
    let kept: String = text
        .chars()
        .filter(|c| {
            !c.is_control()
                && !matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}')
        })
        .collect();
    truncate(kept.trim())
}

/// A repository on the Hub: its kind and its id (`name` or `org/name`).
///
/// ```
/// use hf_hub::{ids::RepoRef, RepoType};
/// let repo = RepoRef::new(RepoType::Model, "HuggingFaceTB/SmolLM2-135M").unwrap();
/// assert_eq!(repo.folder_name(), "models--HuggingFaceTB--SmolLM2-135M");
/// assert!(RepoRef::new(RepoType::Model, "../etc").is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RepoRef {
    kind: RepoType,
    id: String,
}

impl RepoRef {
    /// Checks `id` the way the Hub does: one or two parts of ASCII letters,
    /// digits, `-`, `_` and `.`, no `--` or `..`, at most 96 characters each.
    pub fn new(kind: RepoType, id: &str) -> Result<Self, HubError> {
        let kind_name = "repo id";
        if id.is_empty() {
            return Err(invalid(kind_name, id, "empty"));
        }
        let parts: Vec<&str> = id.split('/').collect();
        if parts.len() > 2 {
            return Err(invalid(kind_name, id, "more than one '/'"));
        }
        for part in &parts {
            if part.is_empty() || part.len() > 96 {
                return Err(invalid(
                    kind_name,
                    id,
                    "each part must have 1 to 96 characters",
                ));
            }
            if !part
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            {
                return Err(invalid(
                    kind_name,
                    id,
                    "only ASCII letters, digits, '-', '_' and '.' are allowed",
                ));
            }
            if part.starts_with(['-', '.']) || part.ends_with(['-', '.']) {
                return Err(invalid(
                    kind_name,
                    id,
                    "a part starts or ends with '-' or '.'",
                ));
            }
        }
        if id.contains("--") || id.contains("..") {
            return Err(invalid(kind_name, id, "'--' and '..' are not allowed"));
        }
        Ok(RepoRef {
            kind,
            id: id.to_string(),
        })
    }

    /// A model repository.
    pub fn model(id: &str) -> Result<Self, HubError> {
        Self::new(RepoType::Model, id)
    }

    /// The repository kind.
    #[must_use]
    pub fn kind(&self) -> RepoType {
        self.kind
    }

    /// The id, `org/name` or `name`.
    #[must_use]
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The cache folder name, e.g. `models--org--name`.
    #[must_use]
    pub fn folder_name(&self) -> String {
        format!("{}--{}", self.kind.plural(), self.id.replace('/', "--"))
    }

    /// The URL prefix of resolve URLs: `org/name`, `datasets/org/name`, ...
    #[must_use]
    pub fn url_prefix(&self) -> String {
        match self.kind {
            RepoType::Model => self.id.clone(),
            RepoType::Dataset | RepoType::Space => format!("{}/{}", self.kind.plural(), self.id),
        }
    }

    /// The API path prefix: `models/org/name`, `datasets/org/name`, ...
    #[must_use]
    pub fn api_prefix(&self) -> String {
        format!("{}/{}", self.kind.plural(), self.id)
    }
}

impl fmt::Display for RepoRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            RepoType::Model => f.write_str(&self.id),
            _ => write!(f, "{}/{}", self.kind.plural(), self.id),
        }
    }
}

/// A branch, tag or commit. It becomes a path under `refs/`, so it follows
/// git's ref-name rules plus: no `.` or `..` component.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Revision(String);

impl Revision {
    /// Checks a revision name.
    ///
    /// ```
    /// use hf_hub::ids::Revision;
    /// assert!(Revision::new("refs/pr/1").is_ok());
    /// assert!(Revision::new("../../x").is_err());
    /// ```
    pub fn new(rev: &str) -> Result<Self, HubError> {
        let kind = "revision";
        if rev.is_empty() || rev.len() > 255 {
            return Err(invalid(kind, rev, "must have 1 to 255 characters"));
        }
        if rev.bytes().any(|b| {
            b.is_ascii_control()
                || matches!(b, b' ' | b'~' | b'^' | b':' | b'?' | b'*' | b'[' | b'\\')
        }) {
            return Err(invalid(
                kind,
                rev,
                "contains a character git does not allow",
            ));
        }
        if rev.contains("@{") || rev.ends_with(".lock") {
            return Err(invalid(kind, rev, "not a valid git ref name"));
        }
        if rev
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == ".." || c.starts_with('.'))
        {
            return Err(invalid(
                kind,
                rev,
                "empty, '.' or '..' component, or a component starting with '.'",
            ));
        }
        Ok(Revision(rev.to_string()))
    }

    /// The default branch.
    #[must_use]
    pub fn main() -> Self {
        Revision("main".to_string())
    }

    /// The revision as text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this is a full commit hash (then no ref is stored for it).
    #[must_use]
    pub fn is_commit(&self) -> bool {
        is_commit_hash(&self.0)
    }

    /// URL form: `/` escaped as `%2F`, as the Hub expects.
    #[must_use]
    pub fn url_form(&self) -> String {
        self.0.replace('/', "%2F")
    }
}

impl fmt::Display for Revision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whether `s` is a full commit hash (40 lowercase hex characters).
#[must_use]
pub fn is_commit_hash(s: &str) -> bool {
    s.len() == 40 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A file path inside a repo: relative, `/`-separated, no empty, `.` or
/// `..` components, no backslash, no control characters. Joined under a
/// snapshot folder it can never leave it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RepoPath(String);

impl RepoPath {
    /// Checks a path given by the caller.
    ///
    /// ```
    /// use hf_hub::ids::RepoPath;
    /// assert!(RepoPath::new("onnx/model.onnx").is_ok());
    /// for bad in ["../x", "/etc/passwd", "a\\b", "a//b", "a/./b", ""] {
    ///     assert!(RepoPath::new(bad).is_err(), "{bad}");
    /// }
    /// ```
    pub fn new(path: &str) -> Result<Self, HubError> {
        check_path(path).map_err(|reason| invalid("path", path, reason))?;
        Ok(RepoPath(path.to_string()))
    }

    /// Checks a path that came from a server answer.
    pub(crate) fn from_server(path: &str, url: &str) -> Result<Self, HubError> {
        check_path(path).map_err(|reason| HubError::HostileAnswer {
            what: "path",
            value: truncate(path),
            url: url.to_string(),
            reason,
        })?;
        Ok(RepoPath(path.to_string()))
    }

    /// The path as text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Number of `/`-separated components.
    #[must_use]
    pub fn depth(&self) -> usize {
        self.0.split('/').count()
    }

    /// URL form: each component percent-encoded.
    #[must_use]
    pub fn url_form(&self) -> String {
        self.0
            .split('/')
            .map(percent_encode_component)
            .collect::<Vec<_>>()
            .join("/")
    }
}

impl fmt::Display for RepoPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn check_path(path: &str) -> Result<(), &'static str> {
    if path.is_empty() || path.len() > 4096 {
        return Err("must have 1 to 4096 bytes");
    }
    if path.starts_with('/') {
        return Err("absolute paths are not allowed");
    }
    if path.contains('\\') {
        return Err("backslashes are not allowed");
    }
    if path.chars().any(char::is_control) {
        return Err("control characters are not allowed");
    }
    for (i, component) in path.split('/').enumerate() {
        if component.is_empty() || component == "." || component == ".." {
            return Err("empty, '.' or '..' components are not allowed");
        }
        // `C:` would be a drive on Windows.
        if i == 0 && component.len() >= 2 && component.as_bytes()[1] == b':' {
            return Err("a drive prefix is not allowed");
        }
        if component.len() > 255 {
            return Err("a component is longer than 255 bytes");
        }
    }
    Ok(())
}

fn percent_encode_component(component: &str) -> String {
    let mut out = String::with_capacity(component.len());
    for b in component.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Checks an etag before it becomes a blob file name: letters, digits, `-`
/// and `_` only (the Hub's are hex), 1 to 128 characters.
pub(crate) fn check_etag(etag: &str, url: &str) -> Result<(), HubError> {
    let ok = !etag.is_empty()
        && etag.len() <= 128
        && etag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'));
    if ok {
        Ok(())
    } else {
        Err(HubError::HostileAnswer {
            what: "etag",
            value: truncate(etag),
            url: url.to_string(),
            reason: "an etag must be 1 to 128 letters, digits, '-' or '_'",
        })
    }
}

/// Checks a commit hash from the server before it becomes a folder name.
pub(crate) fn check_commit(commit: &str, url: &str) -> Result<(), HubError> {
    if is_commit_hash(commit) {
        Ok(())
    } else {
        Err(HubError::HostileAnswer {
            what: "commit hash",
            value: truncate(commit),
            url: url.to_string(),
            reason: "a commit hash must be 40 lowercase hex characters",
        })
    }
}
