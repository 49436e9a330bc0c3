//! The hook a pull-through mirror plugs into ([`Upstream`]): before a
//! repo is read from the store the upstream may bring it up to date (or
//! refuse the client), and a file the store lists but the disk lacks is
//! streamed from the upstream while it arrives. The server itself knows
//! nothing of where the bytes come from; `tektra-mirror` does.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Response, StatusCode, header};
use bytes::Bytes;
use futures::{Stream, StreamExt};

use crate::AppState;
use crate::body::parse_range;
use crate::faults::bump;
use crate::routes::{set, status};
use crate::store::{FileEntry, Kind};

/// A boxed future, as the trait's methods return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;
/// A file's bytes from the offset asked for, in order. An error ends the
/// client's body early: the client sees a cut transfer, never wrong bytes
/// passed off as whole.
pub type ByteStream = Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send>>;

/// A repo at a revision, as a client asked for it.
#[derive(Debug, Clone, Copy)]
pub struct Asked<'a> {
    /// Model, dataset or space.
    pub kind: Kind,
    /// `org/name`.
    pub id: &'a str,
    /// A branch, tag or commit hash.
    pub revision: &'a str,
    /// The client's bearer token, if it sent one.
    pub token: Option<&'a str>,
    /// Whether the store can answer for this revision already.
    pub known: bool,
}

/// What the upstream says a revision is, merged into the store: the ref,
/// and the commit's files when the store may not have them all.
#[derive(Debug, Clone)]
pub struct Listing {
    /// The revision asked for.
    pub revision: String,
    /// The commit it names now.
    pub commit: String,
    /// Every file of the commit; `disk` is where its blob will be.
    pub files: Option<BTreeMap<String, FileEntry>>,
    /// `Some`: the repo is private and the upstream accepted this client
    /// token for it (the store then serves it to that token too); `None`:
    /// every client may read it.
    pub token: Option<String>,
}

/// An answer for the client instead of the store's: the upstream refused
/// (401, 404) or cannot be reached and the store does not hold it.
#[derive(Debug, Clone)]
pub struct Refusal {
    /// HTTP status.
    pub status: u16,
    /// `X-Error-Code` (`RepoNotFound`, `RevisionNotFound`, ...).
    pub code: Option<&'static str>,
    /// A message for the client (never a token or credential).
    pub message: String,
}

impl Refusal {
    pub(crate) fn response(&self) -> Response<Body> {
        status(
            StatusCode::from_u16(self.status).unwrap_or(StatusCode::BAD_GATEWAY),
            self.code,
            &self.message,
        )
    }
}

/// Where a server finds what it does not hold (a pull-through mirror).
pub trait Upstream: Send + Sync + std::fmt::Debug + 'static {
    /// Called before every read of `asked` from the store: `Ok(None)`
    /// leaves the store as it is, `Ok(Some)` merges a listing in first,
    /// `Err` answers the client instead. Called on every request, so the
    /// common case (fresh, public) must not wait on the network.
    fn refresh<'a>(&'a self, asked: Asked<'a>) -> BoxFuture<'a, Result<Option<Listing>, Refusal>>;

    /// The bytes of `entry`, whose blob is not on disk, from `from` on.
    /// A client that goes away drops the stream; a fetch other clients
    /// share must go on without it.
    fn fetch<'a>(
        &'a self,
        entry: &'a FileEntry,
        from: u64,
    ) -> BoxFuture<'a, Result<ByteStream, Refusal>>;
}

/// Asks the upstream (when there is one) about `asked` and merges what it
/// says into the store. `Err` is the client's answer.
#[allow(clippy::result_large_err)]
pub(crate) async fn refresh(
    state: &AppState,
    kind: Kind,
    id: &str,
    revision: &str,
    headers: &HeaderMap,
) -> Result<(), Response<Body>> {
    let Some(upstream) = &state.upstream else {
        return Ok(());
    };
    let known = state
        .store()
        .repos
        .get(&(kind, id.to_string()))
        .is_some_and(|r| r.commit_of(revision).is_some());
    let asked = Asked {
        kind,
        id,
        revision,
        token: crate::routes::bearer(headers),
        known,
    };
    match upstream.refresh(asked).await {
        Ok(None) => Ok(()),
        Ok(Some(listing)) => {
            let mut store = state
                .store
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let repo = store.repos.entry((kind, id.to_string())).or_default();
            let files = repo.commits.entry(listing.commit.clone()).or_default();
            for (path, entry) in listing.files.into_iter().flatten() {
                files.entry(path).or_insert(entry);
            }
            repo.refs.insert(listing.revision, listing.commit);
            match listing.token {
                Some(token) if !repo.tokens.contains(&token) => repo.tokens.push(token),
                Some(_) => {}
                None => repo.tokens.clear(),
            }
            Ok(())
        }
        Err(refusal) => Err(refusal.response()),
    }
}

/// Whether `entry` must come from the upstream: there is one and the
/// blob is not on disk.
pub(crate) fn is_missing(state: &AppState, entry: &FileEntry) -> bool {
    state.upstream.is_some() && !entry.disk.is_file()
}

/// The answer for `entry`'s content from the upstream: 200 or 206 with
/// the full length announced, the body passed on as it arrives.
pub(crate) async fn content(
    state: &Arc<AppState>,
    entry: &FileEntry,
    request_headers: &HeaderMap,
    head: bool,
    mut extra: HeaderMap,
    pace: Vec<Arc<tektra_rate::RateLimiter>>,
) -> Response<Body> {
    let Some(upstream) = &state.upstream else {
        return status(StatusCode::NOT_FOUND, None, "No such object");
    };
    let size = entry.size;
    let span = match parse_range(request_headers, size) {
        Ok(Some(r)) => r,
        Ok(None) => 0..size,
        Err(()) => {
            let mut response = Response::new(Body::empty());
            *response.status_mut() = StatusCode::RANGE_NOT_SATISFIABLE;
            set(
                response.headers_mut(),
                "content-range",
                &format!("bytes */{size}"),
            );
            return response;
        }
    };
    let partial = span != (0..size);
    extra.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    let body = if head || span.is_empty() {
        Body::empty()
    } else {
        let source = match upstream.fetch(entry, span.start).await {
            Ok(source) => source,
            Err(refusal) => return refusal.response(),
        };
        bump(&state.faults.stats.content_answers, 1);
        let stats = state.faults.clone();
        let want = span.end - span.start;
        // At most the span, paced like any other answer, counted as sent.
        let paced = source
            .scan(want, |left, chunk| {
                let out = match chunk {
                    Ok(mut bytes) if *left > 0 => {
                        let keep = usize::try_from(*left).unwrap_or(usize::MAX);
                        bytes.truncate(keep);
                        *left -= bytes.len() as u64;
                        Some(Ok(bytes))
                    }
                    Ok(_) => None,
                    Err(e) => Some(Err(e)),
                };
                futures::future::ready(out)
            })
            .then(move |chunk| {
                let (pace, stats) = (pace.clone(), stats.clone());
                async move {
                    if let Ok(bytes) = &chunk {
                        for limit in &pace {
                            limit.take(bytes.len() as u64).await;
                        }
                        bump(&stats.stats.content_bytes, bytes.len() as u64);
                    }
                    chunk
                }
            });
        Body::from_stream(paced)
    };
    let mut response = Response::new(body);
    response.headers_mut().extend(extra);
    set(
        response.headers_mut(),
        "content-length",
        &(span.end - span.start).to_string(),
    );
    if partial {
        *response.status_mut() = StatusCode::PARTIAL_CONTENT;
        set(
            response.headers_mut(),
            "content-range",
            &format!("bytes {}-{}/{size}", span.start, span.end - 1),
        );
    }
    response
}
