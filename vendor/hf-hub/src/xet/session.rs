//! The one Xet session of an engine: hf-xet's runtime context, HTTP
//! settings and chunk cache, created on first use and shared by every file
//! (and every clone of the [`Hub`]). Each file gets its own download group
//! from it, because a group carries one CAS endpoint and token and reports
//! progress for what it holds: one group per file gives per-file progress
//! and lets one file fail or be cancelled without touching the others.

use std::path::PathBuf;
use std::sync::Mutex;

use xet::xet_session::{XetConfig, XetSession, XetSessionBuilder};

use super::token::TokenCache;
use crate::client::{Hub, HubOptions};

/// The Xet side of an engine: its session and read tokens.
#[derive(Default)]
pub(crate) struct XetState {
    session: Mutex<Option<XetSession>>,
    pub(crate) tokens: TokenCache,
}

impl XetState {
    /// The shared session, created on first use.
    pub(crate) fn session(&self, hub: &Hub) -> Result<XetSession, String> {
        let mut slot = self
            .session
            .lock()
            .map_err(|_| "the Xet session lock is poisoned".to_string())?;
        if let Some(session) = slot.as_ref() {
            return Ok(session.clone());
        }
        let options = hub.options();
        let session = XetSessionBuilder::new_with_config(config(options))
            .with_cache_dir(cache_dir(options))
            .build()
            .map_err(|e| format!("cannot start a Xet session: {e}"))?;
        *slot = Some(session.clone());
        Ok(session)
    }
}

/// hf-xet's defaults (not its environment: the library reads none), with
/// our timeouts, a short retry budget (a failing CAS should hand over to
/// HTTP in seconds, not minutes) and no telemetry.
fn config(options: &HubOptions) -> XetConfig {
    let mut config = XetConfig::default();
    config.client.connect_timeout = options.connect_timeout;
    config.client.read_timeout = options.read_timeout;
    config.client.retry_max_attempts = 3;
    config.client.retry_base_delay = std::time::Duration::from_millis(300);
    config.client.retry_max_duration = options.read_timeout.max(std::time::Duration::from_secs(5));
    config.telemetry.enabled = false;
    // hf-xet sizes its download buffers from the machine's memory (1.5 GB
    // on a 24 GiB machine), which made a 1 GiB download peak near 0.8 GB
    // resident. These bounds keep it in the low hundreds of MB.
    for (path, value) in [
        ("reconstruction.download_buffer_size", "128mb"),
        ("reconstruction.download_buffer_perfile_size", "64mb"),
        ("reconstruction.download_buffer_limit", "256mb"),
    ] {
        if let Ok(bounded) = config.clone().with_config(path, value) {
            config = bounded;
        }
    }
    config
}

/// Where hf-xet keeps its chunk cache (`HubOptions::xet_cache_dir`, else
/// `<cache_dir>/.xet`).
fn cache_dir(options: &HubOptions) -> PathBuf {
    options
        .xet_cache_dir
        .clone()
        .unwrap_or_else(|| options.cache_dir.join(".xet"))
}
