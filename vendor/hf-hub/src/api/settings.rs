//! What both compat builders collect, and how it becomes an engine.

use std::path::PathBuf;

use crate::client::{Hub, HubOptions};
use crate::compat::Cache;
use crate::env::EnvConfig;
use crate::error::HubError;
use crate::options::redacted;

/// The builder state shared by `api::sync::ApiBuilder` and `api::tokio::ApiBuilder`.
#[derive(Clone)]
pub(crate) struct Settings {
    pub(crate) endpoint: String,
    pub(crate) cache: Cache,
    pub(crate) token: Option<String>,
    pub(crate) progress: bool,
    pub(crate) retries: Option<usize>,
    pub(crate) max_files: Option<usize>,
    pub(crate) chunk_size: Option<usize>,
    pub(crate) offline: bool,
    pub(crate) disable_xet: bool,
    pub(crate) user_agent: Vec<(String, String)>,
    /// The environment as read once at build time; the fields above are
    /// what the builder may override.
    env: EnvConfig,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The token shows only whether it is set (EnvConfig does the same).
        f.debug_struct("Settings")
            .field("endpoint", &self.endpoint)
            .field("cache", &self.cache)
            .field("token", &redacted(self.token.as_ref()))
            .field("progress", &self.progress)
            .field("retries", &self.retries)
            .field("max_files", &self.max_files)
            .field("chunk_size", &self.chunk_size)
            .field("offline", &self.offline)
            .field("disable_xet", &self.disable_xet)
            .field("user_agent", &self.user_agent)
            .field("env", &self.env)
            .finish()
    }
}

impl Settings {
    /// Upstream's defaults for a given cache, with the Hub's location and
    /// mode taken from the environment (`HF_ENDPOINT`, `HF_HUB_OFFLINE`,
    /// `HF_HUB_DISABLE_XET`) as huggingface_hub does everywhere; upstream
    /// read `HF_ENDPOINT` in `from_env` only, which left dependents that
    /// build from a cache (mistral.rs) unable to use a mirror.
    pub(crate) fn from_cache(cache: Cache) -> Self {
        Settings::with_env(EnvConfig::from_env(), cache)
    }

    pub(crate) fn from_env() -> Self {
        let env = EnvConfig::from_env();
        let cache = Cache::new(env.cache_dir.clone());
        let mut settings = Settings::with_env(env, cache);
        settings.token = settings.env.token.clone().or(settings.token);
        settings
    }

    fn with_env(env: EnvConfig, cache: Cache) -> Self {
        let token = cache.token();
        Settings {
            endpoint: env.endpoint.clone(),
            cache,
            token,
            progress: true,
            retries: None,
            max_files: None,
            chunk_size: None,
            offline: env.offline,
            disable_xet: env.disable_xet,
            user_agent: Vec::new(),
            env,
        }
    }

    pub(crate) fn cache_dir(&mut self, dir: PathBuf) {
        self.cache = Cache::new(dir);
    }

    pub(crate) fn hub(&self) -> Result<Hub, HubError> {
        // From the environment (Xet cache under HF_HOME as for every other
        // caller), then what the builder set.
        let mut options = HubOptions {
            endpoint: self.endpoint.clone(),
            token: self.token.clone(),
            cache_dir: self.cache.path().clone(),
            offline: self.offline,
            user_agent: self.user_agent.clone(),
            ..HubOptions::from_config(&self.env)
        };
        options.xet = if self.disable_xet {
            crate::client::XetMode::Disabled
        } else {
            crate::client::XetMode::Auto
        };
        if let Some(retries) = self.retries {
            options.retry.max_attempts =
                u32::try_from(retries).unwrap_or(u32::MAX).saturating_add(1);
        }
        if let Some(files) = self.max_files {
            // Checked by Hub::new: 0 is an error, not silently one.
            options.connections_per_file = files;
        }
        if let Some(chunk) = self.chunk_size {
            options.chunk_size = chunk as u64;
        }
        Hub::new(options)
    }

    /// Default headers for the raw clients upstream exposes (`client()`,
    /// `info_request()`): user agent and, for the Hub, the token.
    pub(crate) fn headers(&self) -> Vec<(String, String)> {
        let mut ua = format!("hf-hub/{}; tektra; rust", env!("CARGO_PKG_VERSION"));
        for (k, v) in &self.user_agent {
            ua.push_str(&format!("; {k}/{v}"));
        }
        let mut headers = vec![("user-agent".to_string(), ua)];
        if let Some(token) = &self.token {
            headers.push(("authorization".to_string(), format!("Bearer {token}")));
        }
        headers
    }
}
