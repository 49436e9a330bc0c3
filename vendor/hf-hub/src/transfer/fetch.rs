//! One byte range over HTTP: ranged GET, answer checks, body streamed to
//! the writer, retries that continue where the last attempt stopped.

use std::ops::Range;

use reqwest::header::{CONTENT_LENGTH, CONTENT_RANGE, RANGE};
use reqwest::{Method, StatusCode, Url};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use super::Job;
use super::sink::{Chunk, reserve};
use crate::client::{Hub, display_url};
use crate::error::HubError;
use crate::http::{Subject, error_from_response, is_transient_status, wait_before_retry};
use crate::retry::retry_after;

/// Why a range could not be fetched.
#[derive(Debug)]
pub(crate) enum FetchError {
    /// The server answered 200 to a ranged request: it ignores Range.
    RangeIgnored,
    /// Anything else.
    Hub(HubError),
}

impl From<HubError> for FetchError {
    fn from(e: HubError) -> Self {
        FetchError::Hub(e)
    }
}

/// Fetches `range` of the job's file into `tx`.
/// `whole_ok`: a 200 with the whole file is acceptable (one-stream mode,
/// range starting at 0).
pub(crate) async fn fetch_range(
    hub: &Hub,
    job: &Job,
    range: Range<u64>,
    whole_ok: bool,
    (tx, budget, retries): (&mpsc::Sender<Chunk>, &Arc<Semaphore>, &AtomicU32),
    cancel: &CancellationToken,
) -> Result<(), FetchError> {
    let (url, size) = (&job.url, job.size);
    let subject = Subject {
        repo: &job.repo,
        revision: &job.revision,
        path: Some(&job.path),
    };
    let mut pos = range.start;
    let mut attempt = 0u32;
    while pos < range.end {
        attempt += 1;
        let before = pos;
        let outcome = fetch_once(
            hub,
            url,
            (range.start, pos..range.end),
            size,
            whole_ok,
            (tx, budget),
            cancel,
            subject,
            &mut pos,
        )
        .await;
        let (error, wait) = match outcome {
            Ok(()) => continue,
            Err(Attempt::Fatal(e)) => return Err(e),
            Err(Attempt::Retry(e, wait)) => (e, wait.map(|w| *w)),
        };
        if pos > before {
            // Bytes moved: the connection works, only this attempt broke.
            attempt = 1;
        }
        wait_before_retry(hub, url, attempt, error, wait, cancel).await?;
        retries.fetch_add(1, Ordering::Relaxed);
    }
    Ok(())
}

enum Attempt {
    Fatal(FetchError),
    Retry(HubError, Option<Box<crate::retry::RetryAfter>>),
}

impl From<HubError> for Attempt {
    fn from(e: HubError) -> Self {
        if e.is_transient() {
            Attempt::Retry(e, None)
        } else {
            Attempt::Fatal(FetchError::Hub(e))
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn fetch_once(
    hub: &Hub,
    url: &Url,
    (range_start, want): (u64, Range<u64>),
    size: u64,
    whole_ok: bool,
    (tx, budget): (&mpsc::Sender<Chunk>, &Arc<Semaphore>),
    cancel: &CancellationToken,
    subject: Subject<'_>,
    pos: &mut u64,
) -> Result<(), Attempt> {
    let shown = || display_url(url);
    let request = hub
        .request(Method::GET, url)
        .header(RANGE, format!("bytes={}-{}", want.start, want.end - 1))
        .header(reqwest::header::ACCEPT_ENCODING, "identity")
        .send();
    let response = tokio::select! {
        () = cancel.cancelled() => return Err(Attempt::Fatal(HubError::Cancelled.into())),
        r = request => r.map_err(|source| HubError::Transport { url: shown(), source })?,
    };
    let status = response.status();
    if is_transient_status(status) {
        let wait = retry_after(response.headers()).map(Box::new);
        let error = HubError::Http {
            url: shown(),
            status: status.as_u16(),
            message: None,
        };
        return Err(Attempt::Retry(error, wait));
    }
    let end = match status {
        StatusCode::PARTIAL_CONTENT => check_content_range(&response, &want, size, url)?,
        StatusCode::OK if whole_ok && want.start == 0 => {
            check_length(&response, size, url)?;
            size
        }
        StatusCode::OK => return Err(Attempt::Fatal(FetchError::RangeIgnored)),
        _ if status.is_success() => {
            return Err(HubError::Protocol {
                url: shown(),
                reason: format!("unexpected status {status} for a byte range"),
            }
            .into());
        }
        _ => {
            let error = error_from_response(hub, response, subject).await;
            return Err(Attempt::Fatal(error.into()));
        }
    };
    let mut response = response;
    loop {
        let next = tokio::select! {
            () = cancel.cancelled() => return Err(Attempt::Fatal(HubError::Cancelled.into())),
            c = response.chunk() => c,
        };
        match next {
            Ok(Some(mut bytes)) => {
                let left = end - *pos;
                if bytes.len() as u64 > left {
                    // Never write past what was asked: the rest is not ours.
                    bytes.truncate(usize::try_from(left).unwrap_or(usize::MAX));
                }
                let len = bytes.len() as u64;
                if let Some(limit) = &hub.inner.rate {
                    tokio::select! {
                        () = cancel.cancelled() => return Err(Attempt::Fatal(HubError::Cancelled.into())),
                        () = limit.take(len) => {}
                    }
                }
                let permit = tokio::select! {
                    () = cancel.cancelled() => return Err(Attempt::Fatal(HubError::Cancelled.into())),
                    p = reserve(budget, bytes.len()) => p,
                };
                let Some(permit) = permit else {
                    return Err(Attempt::Fatal(HubError::Cancelled.into()));
                };
                let chunk = Chunk::Data {
                    range_start,
                    offset: *pos,
                    bytes,
                    permit,
                };
                tokio::select! {
                    () = cancel.cancelled() => return Err(Attempt::Fatal(HubError::Cancelled.into())),
                    sent = tx.send(chunk) => if sent.is_err() {
                        // The writer stopped (a disk error); it reports why.
                        return Err(Attempt::Fatal(HubError::Cancelled.into()));
                    },
                }
                *pos += len;
                if *pos >= end {
                    return Ok(());
                }
            }
            Ok(None) => {
                return Err(HubError::Protocol {
                    url: shown(),
                    reason: format!("body ended at byte {} of {}", *pos, end),
                }
                .into());
            }
            Err(source) => {
                let error = if source.is_timeout() {
                    HubError::Stalled {
                        url: shown(),
                        secs: hub.options().read_timeout.as_secs(),
                    }
                } else {
                    HubError::Transport {
                        url: shown(),
                        source,
                    }
                };
                return Err(error.into());
            }
        }
    }
}

fn check_content_range(
    response: &reqwest::Response,
    want: &Range<u64>,
    size: u64,
    url: &Url,
) -> Result<u64, Attempt> {
    let text = response
        .headers()
        .get(CONTENT_RANGE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let bad = |reason: String| -> Attempt {
        HubError::Protocol {
            url: display_url(url),
            reason,
        }
        .into()
    };
    let parsed = text
        .strip_prefix("bytes ")
        .and_then(|rest| rest.split_once('/'))
        .and_then(|(span, total)| {
            let (a, b) = span.split_once('-')?;
            Some((
                a.trim().parse::<u64>().ok()?,
                b.trim().parse::<u64>().ok()?,
                total.trim(),
            ))
        });
    let Some((first, last, total)) = parsed else {
        return Err(bad(format!("206 with Content-Range {text:?}")));
    };
    if total != "*" && total.parse::<u64>().ok() != Some(size) {
        return Err(Attempt::Fatal(FetchError::Hub(HubError::WrongSize {
            url: display_url(url),
            expected: size,
            announced: total.parse().unwrap_or(0),
        })));
    }
    if first != want.start || last < first || last >= want.end {
        return Err(bad(format!(
            "asked for bytes {}-{}, got Content-Range {text:?}",
            want.start,
            want.end - 1
        )));
    }
    Ok(last + 1)
}

fn check_length(response: &reqwest::Response, size: u64, url: &Url) -> Result<(), Attempt> {
    let announced = response
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    match announced {
        Some(n) if n != size => Err(Attempt::Fatal(FetchError::Hub(HubError::WrongSize {
            url: display_url(url),
            expected: size,
            announced: n,
        }))),
        _ => Ok(()),
    }
}
