//! Requests with retries, and Hub error answers turned into typed errors.

use std::future::Future;

use reqwest::{Response, StatusCode, Url};
use tokio_util::sync::CancellationToken;

use crate::client::{Hub, display_url};
use crate::error::HubError;
use crate::ids::printable;
use crate::retry::{RetryAfter, retry_after};

/// What a request was about, to name the right thing in a 404.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Subject<'a> {
    pub(crate) repo: &'a str,
    pub(crate) revision: &'a str,
    pub(crate) path: Option<&'a str>,
}

/// Turns a non-success answer into the error it stands for. Reads at most
/// a few kilobytes of the body for the server's message.
pub(crate) async fn error_from_response(
    hub: &Hub,
    response: Response,
    subject: Subject<'_>,
) -> HubError {
    let status = response.status().as_u16();
    let url = display_url(response.url());
    let code = header_str(&response, "x-error-code").map(str::to_string);
    let mut message = header_str(&response, "x-error-message")
        .map(printable)
        .filter(|m| !m.is_empty());
    if message.is_none() {
        message = read_error_body(response).await;
    }
    let repo = subject.repo.to_string();
    match code.as_deref() {
        Some("RepoNotFound") => HubError::RepoNotFound {
            repo,
            status,
            authenticated: hub.has_token(),
        },
        Some("GatedRepo") => HubError::GatedRepo { repo, status },
        Some("RevisionNotFound") => HubError::RevisionNotFound {
            repo,
            revision: subject.revision.to_string(),
        },
        Some("EntryNotFound") => HubError::EntryNotFound {
            repo,
            revision: subject.revision.to_string(),
            path: subject.path.unwrap_or("").to_string(),
        },
        _ if status == 401 => HubError::RepoNotFound {
            repo,
            status,
            authenticated: hub.has_token(),
        },
        _ => HubError::Http {
            url,
            status,
            message,
        },
    }
}

fn header_str<'r>(response: &'r Response, name: &str) -> Option<&'r str> {
    response.headers().get(name)?.to_str().ok()
}

async fn read_error_body(mut response: Response) -> Option<String> {
    let mut body = Vec::new();
    while body.len() < 4096 {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            _ => break,
        }
    }
    let text = String::from_utf8_lossy(&body);
    // The Hub answers `{"error": "..."}`; anything else is shown trimmed.
    // Either way it is the server's text bound for a terminal: no control
    // characters.
    let message = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(printable))
        .unwrap_or_else(|| printable(&text));
    (!message.is_empty()).then_some(message)
}

/// Sends a request built by `make`, retrying transient failures with
/// backoff (honouring `Retry-After`). Returns the first answer that is not
/// a transient failure; error statuses are left to the caller.
pub(crate) async fn send_with_retry<F, Fut>(
    hub: &Hub,
    url: &Url,
    cancel: &CancellationToken,
    mut make: F,
) -> Result<Response, HubError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Response, reqwest::Error>>,
{
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        let outcome = tokio::select! {
            () = cancel.cancelled() => return Err(HubError::Cancelled),
            r = make() => r,
        };
        let (error, wait) = match outcome {
            Ok(response) if is_transient_status(response.status()) => {
                let wait = retry_after(response.headers());
                let error = HubError::Http {
                    url: display_url(url),
                    status: response.status().as_u16(),
                    message: None,
                };
                (error, wait)
            }
            Ok(response) => return Ok(response),
            Err(source) => (
                HubError::Transport {
                    url: display_url(url),
                    source,
                },
                None,
            ),
        };
        wait_before_retry(hub, url, attempt, error, wait, cancel).await?;
    }
}

/// Sleeps before retry number `attempt`, or returns the error when the
/// budget is spent or the server asks for too long a pause.
pub(crate) async fn wait_before_retry(
    hub: &Hub,
    url: &Url,
    attempt: u32,
    error: HubError,
    retry_after: Option<RetryAfter>,
    cancel: &CancellationToken,
) -> Result<(), HubError> {
    let policy = &hub.options().retry;
    if let Some(asked) = &retry_after
        && asked.wait > policy.max_retry_after
    {
        // Named as the server put it: a pause that long is not a retry.
        return Err(HubError::RetryAfterTooLong {
            url: display_url(url),
            asked: asked.asked.clone(),
            max_secs: policy.max_retry_after.as_secs(),
            last: Box::new(error),
        });
    }
    if attempt >= policy.max_attempts {
        return Err(HubError::TooManyRetries {
            url: display_url(url),
            attempts: attempt,
            last: Box::new(error),
        });
    }
    let delay = match retry_after {
        Some(asked) => asked.wait,
        None => policy.backoff(attempt),
    };
    tracing::debug!(url = %display_url(url), attempt, ?delay, %error, "retrying");
    tokio::select! {
        () = cancel.cancelled() => Err(HubError::Cancelled),
        () = tokio::time::sleep(delay) => Ok(()),
    }
}

pub(crate) fn is_transient_status(status: StatusCode) -> bool {
    matches!(status.as_u16(), 408 | 429 | 500..=599)
}

/// GETs a JSON document from the Hub (with retries) and parses it.
pub(crate) async fn get_json<T: serde::de::DeserializeOwned>(
    hub: &Hub,
    url: &Url,
    subject: Subject<'_>,
    cancel: &CancellationToken,
) -> Result<(T, reqwest::header::HeaderMap), HubError> {
    let response = send_with_retry(hub, url, cancel, || {
        hub.request(reqwest::Method::GET, url).send()
    })
    .await?;
    if !response.status().is_success() {
        return Err(error_from_response(hub, response, subject).await);
    }
    let headers = response.headers().clone();
    let cap = hub.options().limits.json_bytes;
    let bytes = read_capped(response, cap, url, cancel).await?;
    let value = serde_json::from_slice(&bytes).map_err(|source| HubError::Json {
        url: display_url(url),
        source,
    })?;
    Ok((value, headers))
}

/// Reads a JSON answer's body, refusing one larger than `cap` bytes before
/// it is held in memory (by its Content-Length, or as it streams in).
pub(crate) async fn read_capped(
    mut response: Response,
    cap: u64,
    url: &Url,
    cancel: &CancellationToken,
) -> Result<Vec<u8>, HubError> {
    let too_large = || HubError::OverLimit {
        what: "the JSON answer",
        url: display_url(url),
        limit: format!("{cap} bytes"),
    };
    if response.content_length().is_some_and(|n| n > cap) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    loop {
        let chunk = tokio::select! {
            () = cancel.cancelled() => return Err(HubError::Cancelled),
            c = response.chunk() => c.map_err(|source| HubError::Transport { url: display_url(url), source })?,
        };
        let Some(chunk) = chunk else {
            return Ok(body);
        };
        if (body.len() + chunk.len()) as u64 > cap {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
}

/// Makes ring the process's TLS provider unless one is set already.
///
/// The workspace builds reqwest without a provider of its own (aws-lc-rs,
/// its default, was the longest C build of a release build), and such a
/// reqwest panics when a client is built before a provider is installed.
/// [`Hub`](crate::Hub) and the compat API call this before they build
/// theirs; an application that builds reqwest clients of its own before
/// touching the Hub calls it first (or enables reqwest's `rustls` feature,
/// which brings aws-lc-rs back as the fallback).
pub fn install_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
