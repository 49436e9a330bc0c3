//! Xet read tokens: `GET {token_url}` on the Hub with the user's Hub token
//! answers `{accessToken, exp, casUrl}` (and the same in `X-Xet-*`
//! headers). Tokens are cached per token URL and fetched again shortly
//! before they expire; hf-xet refreshes them itself during a long transfer.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::{Method, Url};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use crate::client::{Hub, display_url};
use crate::error::HubError;
use crate::http::{Subject, error_from_response, read_capped, send_with_retry};
use crate::ids::truncate;

/// The largest Xet token answer read.
const MAX_TOKEN_ANSWER: u64 = 1 << 20;

/// A token this close to its expiry is fetched again before use.
const REFRESH_MARGIN: Duration = Duration::from_secs(60);

/// A CAS access token and where to use it.
#[derive(Clone)]
pub(crate) struct XetToken {
    /// Sent to the CAS only (never the Hub token).
    pub(crate) access_token: String,
    /// Expiry, Unix seconds.
    pub(crate) exp: u64,
    /// The CAS endpoint.
    pub(crate) cas_url: Url,
}

impl std::fmt::Debug for XetToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the token itself.
        f.debug_struct("XetToken")
            .field("exp", &self.exp)
            .field("cas_url", &display_url(&self.cas_url))
            .finish_non_exhaustive()
    }
}

impl XetToken {
    fn fresh(&self) -> bool {
        let now = now_secs();
        self.exp > now.saturating_add(REFRESH_MARGIN.as_secs())
    }
}

/// Read tokens by token URL.
#[derive(Default)]
pub(crate) struct TokenCache {
    tokens: Mutex<HashMap<String, XetToken>>,
}

impl TokenCache {
    /// A token for `token_url`: the cached one while it has more than a
    /// minute left, else a new one from the Hub.
    pub(crate) async fn get(
        &self,
        hub: &Hub,
        token_url: &Url,
        subject: Subject<'_>,
        cancel: &CancellationToken,
    ) -> Result<XetToken, HubError> {
        let key = token_url.as_str().to_string();
        if let Some(token) = self.lookup(&key)
            && token.fresh()
        {
            return Ok(token);
        }
        let token = fetch(hub, token_url, subject, cancel).await?;
        if let Ok(mut tokens) = self.tokens.lock() {
            tokens.insert(key, token.clone());
        }
        Ok(token)
    }

    fn lookup(&self, key: &str) -> Option<XetToken> {
        self.tokens.lock().ok()?.get(key).cloned()
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TokenAnswer {
    access_token: Option<String>,
    exp: Option<u64>,
    cas_url: Option<String>,
}

/// Asks the Hub for a read token. The Hub token goes along only when
/// `token_url` is on the Hub's origin (see [`Hub::request`]).
async fn fetch(
    hub: &Hub,
    token_url: &Url,
    subject: Subject<'_>,
    cancel: &CancellationToken,
) -> Result<XetToken, HubError> {
    let response = send_with_retry(hub, token_url, cancel, || {
        hub.request(Method::GET, token_url).send()
    })
    .await?;
    if !response.status().is_success() {
        return Err(error_from_response(hub, response, subject).await);
    }
    let shown = display_url(token_url);
    let headers = response.headers().clone();
    // A token answer is a few hundred bytes; a larger one is not a token.
    let cap = hub.options().limits.json_bytes.min(MAX_TOKEN_ANSWER);
    let body = read_capped(response, cap, token_url, cancel).await?;
    // The JSON body is what huggingface_hub reads; the headers say the same
    // and stand in when the body lacks a field.
    let answer: TokenAnswer = if body.is_empty() {
        TokenAnswer {
            access_token: None,
            exp: None,
            cas_url: None,
        }
    } else {
        serde_json::from_slice(&body).map_err(|source| HubError::Json {
            url: shown.clone(),
            source,
        })?
    };
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let missing = |what: &str| HubError::Protocol {
        url: shown.clone(),
        reason: format!("the Xet token answer has no {what}"),
    };
    let access_token = answer
        .access_token
        .or_else(|| header("x-xet-access-token"))
        .filter(|t| !t.is_empty())
        .ok_or_else(|| missing("access token"))?;
    let exp = match answer.exp {
        Some(exp) => exp,
        None => {
            let text = header("x-xet-token-expiration").ok_or_else(|| missing("expiry"))?;
            text.trim()
                .parse::<u64>()
                .map_err(|_| HubError::HostileAnswer {
                    what: "Xet token expiry",
                    value: truncate(&text),
                    url: shown.clone(),
                    reason: "not a Unix time",
                })?
        }
    };
    let cas_text = answer
        .cas_url
        .or_else(|| header("x-xet-cas-url"))
        .ok_or_else(|| missing("CAS URL"))?;
    let cas_url = Url::parse(cas_text.trim()).map_err(|_| HubError::HostileAnswer {
        what: "Xet CAS URL",
        value: truncate(&cas_text),
        url: shown.clone(),
        reason: "not a URL",
    })?;
    if !matches!(cas_url.scheme(), "http" | "https") {
        return Err(HubError::HostileAnswer {
            what: "Xet CAS URL",
            value: truncate(cas_url.scheme()),
            url: shown,
            reason: "the CAS must be reached over http or https",
        });
    }
    Ok(XetToken {
        access_token,
        exp,
        cas_url,
    })
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
