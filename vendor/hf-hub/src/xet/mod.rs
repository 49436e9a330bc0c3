//! Xet storage: a file whose resolve answer carries `X-Xet-Hash` is fetched
//! by its Xet hash through hf-xet, into the same `blobs/<etag>.incomplete`
//! an HTTP transfer uses, and checked against the LFS etag (size and
//! sha256) before the caller renames it into the cache.
//!
//! Every failure here (token endpoint, CAS, a stall, a wrong hash) comes
//! back as [`HubError::Backend`] with `backend: "xet"`, so the caller can
//! fall back to HTTP; cancellation comes back as [`HubError::Cancelled`].
//!
//! Who sees which secret: the Hub token goes to the token endpoint only
//! (and only when it is on the Hub's origin); the CAS gets the Xet access
//! token; the CDN sees neither (it is not involved).

mod follow;
mod progress;
mod session;
mod token;

use std::time::Duration;

use reqwest::header::{AUTHORIZATION, HeaderMap};
use tektra_progress::{FileProgress, State};
use tokio_util::sync::CancellationToken;
use xet::xet_session::{XetFileDownloadGroup, XetFileInfo};

use crate::client::{Hub, display_url};
use crate::error::HubError;
use crate::http::Subject;
use crate::resolve::XetFile;
use crate::transfer::{Job, TransferStats};
use follow::Follower;
use progress::ProgressMap;
pub(crate) use session::XetState;

/// How often hf-xet's counters are read.
const POLL: Duration = Duration::from_millis(100);

/// Whether an HTTP download of this file was interrupted earlier and left a
/// range journal: HTTP can resume it, Xet would start over.
pub(crate) fn has_http_partial(job: &Job) -> bool {
    std::fs::metadata(&job.parts).is_ok_and(|m| m.len() > 0)
}

/// Fetches `job`'s file through Xet into its `.incomplete` path and checks
/// it. On any failure the partial file is removed, so an HTTP fallback
/// starts clean (hf-xet's partial output is not resumable by us).
pub(crate) async fn transfer(
    hub: &Hub,
    xet: &XetFile,
    job: &Job,
    progress: &FileProgress,
    cancel: &CancellationToken,
) -> Result<TransferStats, HubError> {
    let result = run(hub, xet, job, progress, cancel).await;
    if result.is_err() {
        job.discard();
    }
    result
}

async fn run(
    hub: &Hub,
    xet: &XetFile,
    job: &Job,
    progress: &FileProgress,
    cancel: &CancellationToken,
) -> Result<TransferStats, HubError> {
    let fail = |reason: String| HubError::Backend {
        backend: "xet",
        file: job.path.clone(),
        reason,
    };
    let subject = Subject {
        repo: &job.repo,
        revision: &job.revision,
        path: Some(&job.path),
    };
    let state = &hub.inner.xet;
    let token = match state.tokens.get(hub, &xet.token_url, subject, cancel).await {
        Ok(token) => token,
        Err(HubError::Cancelled) => return Err(HubError::Cancelled),
        Err(e) => return Err(fail(format!("no read token from the Hub: {e}"))),
    };
    let cas = display_url(&token.cas_url);
    let session = state.session(hub).map_err(fail)?;
    let builder = session
        .new_file_download_group()
        .map_err(|e| fail(format!("cannot start a download: {e}")))?
        .with_endpoint(token.cas_url.as_str().trim_end_matches('/'))
        .with_token_info(token.access_token.clone(), token.exp);
    // hf-xet asks the token endpoint again when the token nears expiry
    // during a long transfer.
    let builder = builder.with_token_refresh_url(xet.token_url.as_str(), refresh_headers(hub, xet));
    let group = tokio::select! {
        () = cancel.cancelled() => return Err(HubError::Cancelled),
        g = builder.build() => g.map_err(|e| fail(format!("cannot reach the CAS at {cas}: {e}")))?,
    };
    job.discard();
    progress.set_total(job.size);
    progress.set_done(0);
    progress.set_state(State::Downloading);
    let follower = Follower::start(job.incomplete.clone(), &job.expected, job.size);
    let info = XetFileInfo::new(xet.hash.clone(), job.size);
    let mut map = ProgressMap::new(job.size);
    let outcome = download(hub, &group, info, job, progress, &mut map, cancel).await;
    if let Err(e) = outcome {
        let _ = group.abort();
        follower.abandon();
        return Err(match e {
            Stop::Cancelled => HubError::Cancelled,
            Stop::Failed(reason) => fail(format!("{reason} (CAS {cas})")),
        });
    }
    map.update(&group.progress(), progress);
    progress.set_state(State::Verifying);
    let (hashed, digest) = follower
        .finish()
        .await
        .map_err(|e| fail(format!("reading back {}: {e}", job.incomplete.display())))?;
    crate::transfer::verify(job, hashed, &digest).map_err(|e| fail(e.to_string()))?;
    map.complete(progress);
    Ok(TransferStats {
        fetched: map.network_bytes(),
        resumed: 0,
        // hf-xet manages its own connections and retries; not counted here.
        connections: 0,
        retries: 0,
        restarts: 0,
    })
}

enum Stop {
    Cancelled,
    Failed(String),
}

/// Runs one file through `group`, reporting progress, until it is written,
/// fails, stalls for longer than the read timeout, or is cancelled.
async fn download(
    hub: &Hub,
    group: &XetFileDownloadGroup,
    info: XetFileInfo,
    job: &Job,
    progress: &FileProgress,
    map: &mut ProgressMap,
    cancel: &CancellationToken,
) -> Result<(), Stop> {
    let handle = tokio::select! {
        () = cancel.cancelled() => return Err(Stop::Cancelled),
        h = group.download_file_to_path(info, job.incomplete.clone()) => {
            h.map_err(|e| Stop::Failed(format!("cannot start the download: {e}")))?
        }
    };
    let stall = hub.options().read_timeout;
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let finish = handle.finish();
    tokio::pin!(finish);
    loop {
        tokio::select! {
            () = cancel.cancelled() => {
                handle.cancel();
                return Err(Stop::Cancelled);
            }
            done = &mut finish => {
                return done.map(|_| ()).map_err(|e| Stop::Failed(e.to_string()));
            }
            _ = tick.tick() => {
                if map.update(&group.progress(), progress) >= stall {
                    handle.cancel();
                    return Err(Stop::Failed(format!(
                        "no progress for {} s",
                        stall.as_secs_f32()
                    )));
                }
            }
        }
    }
}

/// The Hub token for hf-xet's token refresh, only when the token endpoint
/// is on the Hub's origin (the token never leaves it).
fn refresh_headers(hub: &Hub, xet: &XetFile) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if let Some(auth) = &hub.inner.auth
        && hub.is_hub_origin(&xet.token_url)
    {
        headers.insert(AUTHORIZATION, auth.clone());
    }
    headers
}
