//! The one place the environment is read. Library code below this takes
//! explicit values; binaries and the upstream-compatible `from_env()`
//! constructors come through here.
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `HF_HOME` | root of Hugging Face data | `~/.cache/huggingface` |
//! | `HF_HUB_CACHE` | the hub cache | `$HF_HOME/hub` |
//! | `HF_ENDPOINT` | the Hub's base URL | `https://huggingface.co` |
//! | `HF_TOKEN` | access token | contents of the token file |
//! | `HF_TOKEN_PATH` | the token file | `$HF_HOME/token` |
//! | `HF_HUB_OFFLINE` | `1`/`true`/`yes`/`on`: never touch the network | off |
//! | `HF_HUB_DISABLE_XET` | same values: never use Xet | off |
//! | `TEKTRA_HUB_FSYNC` | `0`/`false`/`no`/`off`: do not sync downloads to disk | on |

use std::path::PathBuf;

/// The Hub's public endpoint.
pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

/// Settings taken from the environment.
#[derive(Clone, PartialEq, Eq)]
pub struct EnvConfig {
    /// `HF_HOME`.
    pub home: PathBuf,
    /// `HF_HUB_CACHE`.
    pub cache_dir: PathBuf,
    /// `HF_ENDPOINT`, without a trailing slash.
    pub endpoint: String,
    /// `HF_TOKEN`, else the token file.
    pub token: Option<String>,
    /// Where the token file is (`HF_TOKEN_PATH`).
    pub token_path: PathBuf,
    /// `HF_HUB_OFFLINE`.
    pub offline: bool,
    /// `HF_HUB_DISABLE_XET`.
    pub disable_xet: bool,
    /// Not `TEKTRA_HUB_FSYNC=0`: downloads are synced to disk before they
    /// are trusted (see [`crate::HubOptions::fsync`]).
    pub fsync: bool,
}

impl std::fmt::Debug for EnvConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnvConfig")
            .field("home", &self.home)
            .field("cache_dir", &self.cache_dir)
            .field("endpoint", &self.endpoint)
            .field("token", &crate::options::redacted(self.token.as_ref()))
            .field("token_path", &self.token_path)
            .field("offline", &self.offline)
            .field("disable_xet", &self.disable_xet)
            .field("fsync", &self.fsync)
            .finish()
    }
}

impl EnvConfig {
    /// Reads the process environment.
    #[must_use]
    pub fn from_env() -> Self {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// Builds the configuration from any variable lookup (tests use a map).
    ///
    /// ```
    /// use hf_hub::env::EnvConfig;
    /// let cfg = EnvConfig::from_vars(|k| match k {
    ///     "HF_HOME" => Some("/data/hf".into()),
    ///     "HF_HUB_OFFLINE" => Some("1".into()),
    ///     _ => None,
    /// });
    /// assert_eq!(cfg.cache_dir, std::path::PathBuf::from("/data/hf/hub"));
    /// assert!(cfg.offline);
    /// ```
    pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> Self {
        let non_empty = |name: &str| get(name).filter(|v| !v.trim().is_empty());
        let home = non_empty("HF_HOME").map_or_else(default_home, PathBuf::from);
        let cache_dir = non_empty("HF_HUB_CACHE").map_or_else(|| home.join("hub"), PathBuf::from);
        let endpoint = non_empty("HF_ENDPOINT").map_or_else(
            || DEFAULT_ENDPOINT.to_string(),
            |e| e.trim().trim_end_matches('/').to_string(),
        );
        let token_path =
            non_empty("HF_TOKEN_PATH").map_or_else(|| home.join("token"), PathBuf::from);
        let token = non_empty("HF_TOKEN")
            .map(|t| t.trim().to_string())
            .or_else(|| read_token_file(&token_path));
        EnvConfig {
            home,
            cache_dir,
            endpoint,
            token,
            token_path,
            offline: non_empty("HF_HUB_OFFLINE").is_some_and(|v| is_true(&v)),
            disable_xet: non_empty("HF_HUB_DISABLE_XET").is_some_and(|v| is_true(&v)),
            fsync: !non_empty("TEKTRA_HUB_FSYNC").is_some_and(|v| is_false(&v)),
        }
    }
}

/// Reads a token file: its trimmed contents, `None` when missing or empty.
#[must_use]
pub fn read_token_file(path: &std::path::Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let token = text.trim();
    (!token.is_empty()).then(|| token.to_string())
}

fn is_true(value: &str) -> bool {
    matches!(
        value.trim().to_ascii_lowercase().as_str(),
        "1" | "true" | "yes" | "on"
    )
}

fn is_false(value: &str) -> bool {
    matches!(
        value.trim().to_ascii_lowercase().as_str(),
        "0" | "false" | "no" | "off"
    )
}

/// `~/.cache/huggingface`, or `./.cache/huggingface` when there is no home.
#[must_use]
pub fn default_home() -> PathBuf {
    std::env::var_os("HOME")
        .or_else(|| std::env::var_os("USERPROFILE"))
        .map_or_else(|| PathBuf::from("."), PathBuf::from)
        .join(".cache")
        .join("huggingface")
}
