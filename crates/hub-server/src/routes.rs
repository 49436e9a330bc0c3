//! The Hub's URL space, parsed by hand (repo ids have one or two segments
//! and revisions arrive `%2F`-escaped), and the answers.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, Response, StatusCode, header};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::AppState;
use crate::body::content_response;
use crate::faults::{FaultPlan, bump};
use crate::listen::{LocalAddr, PeerAddr};
use crate::origin::Bases;
use crate::store::{FileEntry, Kind, Repo};

/// How long CDN links stay valid.
const CDN_LINK_SECS: u64 = 3600;

pub(crate) fn percent_decode(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let hex = |b: u8| {
        char::from(b)
            .to_digit(16)
            .and_then(|d| u8::try_from(d).ok())
    };
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let (Some(&h), Some(&l)) = (bytes.get(i + 1), bytes.get(i + 2))
            && let (Some(h), Some(l)) = (hex(h), hex(l))
        {
            out.push(h * 16 + l);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub(crate) fn status(code: StatusCode, error_code: Option<&str>, message: &str) -> Response<Body> {
    let mut response = Response::new(Body::from(json!({ "error": message }).to_string()));
    *response.status_mut() = code;
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Some(code) = error_code {
        set(h, "x-error-code", code);
    }
    set(h, "x-error-message", message);
    response
}

pub(crate) fn set(headers: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        headers.insert(name, v);
    }
}

pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
}

/// Splits `[datasets|spaces/]id(1-2 segments)/<keyword>/rest...` at the
/// first keyword, returning (kind, id, rest after the keyword).
fn split_repo<'a>(
    segments: &'a [String],
    keyword: &str,
    kind_given: Option<Kind>,
) -> Option<(Kind, String, &'a [String])> {
    let (kind, start) = match kind_given {
        Some(kind) => (kind, 0),
        None => match segments.first().and_then(|s| Kind::from_plural(s)) {
            Some(kind @ (Kind::Dataset | Kind::Space)) => (kind, 1),
            _ => (Kind::Model, 0),
        },
    };
    for len in [2usize, 1] {
        if segments.get(start + len).map(String::as_str) == Some(keyword) {
            let id = segments[start..start + len].join("/");
            return Some((kind, id, &segments[start + len + 1..]));
        }
    }
    None
}

/// The repo `id` at `revision`, if the caller may read it: the repo and the
/// commit, or the Hub's answer (401 `RepoNotFound` for a missing repo and
/// for a private one without its token, 404 `RevisionNotFound`).
// The error is the HTTP answer itself, handed straight back to axum.
#[allow(clippy::result_large_err)]
pub(crate) fn repo_at<'a>(
    store: &'a crate::store::Store,
    kind: Kind,
    id: &str,
    revision: &str,
    headers: &HeaderMap,
) -> Result<(&'a Repo, &'a str), Response<Body>> {
    let repo = store
        .repos
        .get(&(kind, id.to_string()))
        .filter(|repo| {
            repo.tokens.is_empty()
                || bearer(headers).is_some_and(|t| repo.tokens.iter().any(|k| k == t))
        })
        .ok_or_else(|| {
            status(
                StatusCode::UNAUTHORIZED,
                Some("RepoNotFound"),
                "Repository not found",
            )
        })?;
    let commit = repo.commit_of(revision).ok_or_else(|| {
        status(
            StatusCode::NOT_FOUND,
            Some("RevisionNotFound"),
            "Revision not found",
        )
    })?;
    Ok((repo, commit))
}

/// Everything on the Hub origin.
pub(crate) async fn hub(State(state): State<Arc<AppState>>, request: Request) -> Response<Body> {
    bump(&state.faults.stats.hub_requests, 1);
    if request.headers().contains_key(header::AUTHORIZATION) {
        bump(&state.faults.stats.hub_auth_seen, 1);
    }
    let method = request.method().clone();
    let raw_path = request.uri().path().to_string();
    let query = request.uri().query().unwrap_or("").to_string();
    let segments: Vec<String> = raw_path
        .trim_start_matches('/')
        .split('/')
        .map(percent_decode)
        .collect();
    let headers = request.headers().clone();
    let local = request.extensions().get::<LocalAddr>().map(|l| l.0);
    let peer = request.extensions().get::<PeerAddr>().map(|p| p.0.ip());
    let Ok(bases) = state.origins.bases(&headers, local) else {
        return status(StatusCode::BAD_REQUEST, None, "malformed Host header");
    };
    if segments.first().map(String::as_str) == Some("_tektra") {
        if !state.controls {
            return status(StatusCode::NOT_FOUND, None, "Not found");
        }
        return control(&state, &method, &segments, request).await;
    }
    if segments.first().map(String::as_str) == Some("api") {
        let Some(kind) = segments.get(1).and_then(|s| Kind::from_plural(s)) else {
            return status(StatusCode::NOT_FOUND, None, "Not found");
        };
        let rest = &segments[2..];
        // A hostile server's extra listing entry (fault injection).
        let hostile: Vec<serde_json::Value> = state
            .faults
            .plan()
            .hostile_listing_path
            .map(|bad| json!({ "rfilename": bad }))
            .into_iter()
            .collect();
        if rest.iter().all(String::is_empty) {
            return crate::info::list(&state, kind, &query, &headers);
        }
        if let Some((kind, id, tail)) = split_repo(rest, "revision", Some(kind)) {
            let rev = tail.join("/");
            if let Err(answer) = crate::upstream::refresh(&state, kind, &id, &rev, &headers).await {
                return answer;
            }
            return crate::info::repo_info(&state, kind, &id, &rev, &query, &headers, &hostile);
        }
        if let Some((kind, id, tail)) = split_repo(rest, "paths-info", Some(kind)) {
            if method != Method::POST {
                return status(StatusCode::METHOD_NOT_ALLOWED, None, "Method not allowed");
            }
            let Ok(body) = axum::body::to_bytes(request.into_body(), 1 << 20).await else {
                return status(StatusCode::PAYLOAD_TOO_LARGE, None, "body too large");
            };
            let rev = tail.join("/");
            if let Err(answer) = crate::upstream::refresh(&state, kind, &id, &rev, &headers).await {
                return answer;
            }
            return crate::info::paths_info(&state, kind, &id, &rev, &body, &headers);
        }
        if let Some((kind, id, tail)) = split_repo(rest, "tree", Some(kind)) {
            if let Some(rev) = tail.first()
                && let Err(answer) =
                    crate::upstream::refresh(&state, kind, &id, rev, &headers).await
            {
                return answer;
            }
            return tree(&state, &bases, kind, &id, tail, &query, &headers, &raw_path);
        }
        if let Some((kind, id, tail)) = split_repo(rest, "xet-read-token", Some(kind)) {
            return crate::xet::token(&state, &bases, kind, &id, &tail.join("/"), &headers).await;
        }
        if (1..=2).contains(&rest.len()) && method == Method::GET {
            let id = rest.join("/");
            if let Err(answer) = crate::upstream::refresh(&state, kind, &id, "main", &headers).await
            {
                return answer;
            }
            return crate::info::repo_info(&state, kind, &id, "main", &query, &headers, &hostile);
        }
        return status(StatusCode::NOT_FOUND, None, "Not found");
    }
    if let Some((kind, id, tail)) = split_repo(&segments, "resolve", None) {
        if method != Method::GET && method != Method::HEAD {
            return status(StatusCode::METHOD_NOT_ALLOWED, None, "Method not allowed");
        }
        let Some((revision, path)) = tail.split_first() else {
            return status(
                StatusCode::NOT_FOUND,
                Some("EntryNotFound"),
                "Entry not found",
            );
        };
        if !state.aliases.contains_key(&(kind, id.clone()))
            && let Err(answer) =
                crate::upstream::refresh(&state, kind, &id, revision, &headers).await
        {
            return answer;
        }
        let head = method == Method::HEAD;
        // The store's lock is held only by the synchronous part.
        let found = resolve(
            &state,
            &bases,
            kind,
            &id,
            revision,
            &path.join("/"),
            &headers,
            head,
            &raw_path,
            peer,
        );
        return match found {
            Resolved::Now(response) => response,
            Resolved::Upstream(entry, extra, pace) => {
                crate::upstream::content(&state, &entry, &headers, head, extra, pace).await
            }
        };
    }
    status(StatusCode::NOT_FOUND, None, "Not found")
}

/// A resolve answer: ready, or the content of a file the upstream has.
enum Resolved {
    Now(Response<Body>),
    Upstream(FileEntry, HeaderMap, Vec<Arc<tektra_rate::RateLimiter>>),
}

impl From<Response<Body>> for Resolved {
    fn from(response: Response<Body>) -> Self {
        Resolved::Now(response)
    }
}

#[allow(clippy::too_many_arguments)]
fn resolve(
    state: &AppState,
    bases: &Bases,
    kind: Kind,
    id: &str,
    revision: &str,
    path: &str,
    headers: &HeaderMap,
    head: bool,
    raw_path: &str,
    peer: Option<std::net::IpAddr>,
) -> Resolved {
    if let Some(target) = state.aliases.get(&(kind, id.to_string())) {
        // A renamed repo: a relative redirect, as the Hub gives.
        let location = raw_path.replacen(id, target, 1);
        let mut response = status(StatusCode::TEMPORARY_REDIRECT, None, "Moved");
        set(response.headers_mut(), "location", &location);
        return response.into();
    }
    let store = state.store();
    let (repo, commit) = match repo_at(&store, kind, id, revision, headers) {
        Ok(found) => found,
        Err(response) => return response.into(),
    };
    let Some(entry) = repo.commits.get(commit).and_then(|files| files.get(path)) else {
        let mut response = status(
            StatusCode::NOT_FOUND,
            Some("EntryNotFound"),
            "Entry not found",
        );
        set(response.headers_mut(), "x-repo-commit", commit);
        return response.into();
    };
    let plan = state.faults.plan();
    let size = plan.announced_size.unwrap_or(entry.size);
    let mut extra = HeaderMap::new();
    set(&mut extra, "x-repo-commit", commit);
    set(&mut extra, "etag", &format!("\"{}\"", entry.oid));
    if let Some(sha) = &entry.lfs_sha256 {
        set(&mut extra, "x-linked-etag", &format!("\"{sha}\""));
        set(&mut extra, "x-linked-size", &size.to_string());
        crate::xet::resolve_headers(state, bases, &store, kind, id, commit, entry, &mut extra);
        let location = state.cdn_link(bases, sha);
        let mut response = Response::new(Body::empty());
        *response.status_mut() = StatusCode::FOUND;
        set(&mut extra, "location", &location);
        response.headers_mut().extend(extra);
        return response.into();
    }
    if plan.announced_size.is_some() {
        set(&mut extra, "x-linked-size", &size.to_string());
    }
    let pace = state.pacer.for_client(peer);
    if crate::upstream::is_missing(state, entry) {
        return Resolved::Upstream(entry.clone(), extra, pace);
    }
    content_response(entry, headers, head, &state.faults, extra, pace).into()
}

pub(crate) fn json_response(body: &serde_json::Value, mut headers: HeaderMap) -> Response<Body> {
    let mut response = Response::new(Body::from(body.to_string()));
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response.headers_mut().extend(headers);
    response
}

pub(crate) fn tree_entry(path: &str, entry: &FileEntry) -> serde_json::Value {
    let mut value = json!({ "type": "file", "oid": entry.oid, "size": entry.size, "path": path });
    if let Some(sha) = &entry.lfs_sha256 {
        value["lfs"] = json!({ "oid": sha, "size": entry.size, "pointerSize": 134 });
    }
    if let Some(xet) = &entry.xet_hash {
        value["xetHash"] = json!(xet);
    }
    value
}

#[allow(clippy::too_many_arguments)]
fn tree(
    state: &AppState,
    bases: &Bases,
    kind: Kind,
    id: &str,
    tail: &[String],
    query: &str,
    headers: &HeaderMap,
    raw_path: &str,
) -> Response<Body> {
    let store = state.store();
    let Some((revision, prefix)) = tail.split_first() else {
        return status(StatusCode::NOT_FOUND, None, "Not found");
    };
    let (repo, commit) = match repo_at(&store, kind, id, revision, headers) {
        Ok(found) => found,
        Err(response) => return response,
    };
    let prefix = prefix.join("/");
    let params: Vec<(String, String)> = query
        .split('&')
        .filter_map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_string(), percent_decode(v)))
        })
        .collect();
    let param = |k: &str| {
        params
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    };
    let recursive = param("recursive").is_some_and(|v| v == "true" || v == "1");
    let cursor: usize = param("cursor").and_then(|c| c.parse().ok()).unwrap_or(0);
    let files = repo.commits.get(commit).cloned().unwrap_or_default();
    let mut entries = Vec::new();
    let mut dirs = std::collections::BTreeSet::new();
    for (path, entry) in &files {
        let rel = if prefix.is_empty() {
            path.as_str()
        } else if let Some(rel) = path.strip_prefix(&format!("{prefix}/")) {
            rel
        } else {
            continue;
        };
        let parts: Vec<&str> = rel.split('/').collect();
        for depth in 1..parts.len() {
            if recursive || depth == 1 {
                let dir = parts[..depth].join("/");
                let full = if prefix.is_empty() {
                    dir
                } else {
                    format!("{prefix}/{dir}")
                };
                dirs.insert(full);
            }
        }
        if recursive || parts.len() == 1 {
            entries.push(tree_entry(path, entry));
        }
    }
    for dir in dirs {
        entries.push(json!({ "type": "directory", "oid": "0000000000000000000000000000000000000000", "size": 0, "path": dir }));
    }
    if let Some(bad) = state.faults.plan().hostile_listing_path {
        entries.push(json!({ "type": "file", "oid": "1111111111111111111111111111111111111111", "size": 1, "path": bad }));
    }
    let page: Vec<serde_json::Value> = entries
        .iter()
        .skip(cursor)
        .take(state.page_size)
        .cloned()
        .collect();
    let mut extra = HeaderMap::new();
    let back = state.faults.plan().listing_cursor_back;
    if cursor + page.len() < entries.len() || back.is_some() {
        let back = back.unwrap_or(0);
        let next = format!(
            "<{}{}?recursive={recursive}&cursor={}>; rel=\"next\"",
            bases.hub,
            raw_path,
            (cursor + page.len()).saturating_sub(back)
        );
        set(&mut extra, "link", &next);
    }
    json_response(&serde_json::Value::Array(page), extra)
}

/// Everything on the CDN origin: `/cdn/<sha256>?exp=..&sig=..`.
pub(crate) async fn cdn(State(state): State<Arc<AppState>>, request: Request) -> Response<Body> {
    bump(&state.faults.stats.cdn_requests, 1);
    if request.headers().contains_key(header::AUTHORIZATION) {
        bump(&state.faults.stats.cdn_auth_seen, 1);
    }
    let head = request.method() == Method::HEAD;
    let path = request.uri().path().to_string();
    let query = request.uri().query().unwrap_or("").to_string();
    let Some(etag) = path.strip_prefix("/cdn/") else {
        return status(StatusCode::NOT_FOUND, None, "Not found");
    };
    let params: Vec<(&str, &str)> = query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .collect();
    let param = |k: &str| params.iter().find(|(key, _)| *key == k).map(|(_, v)| *v);
    let (Some(exp), Some(sig)) = (
        param("exp").and_then(|e| e.parse::<u64>().ok()),
        param("sig"),
    ) else {
        return status(StatusCode::FORBIDDEN, None, "Missing signature");
    };
    if sig != state.sign(etag, exp) || exp < now_secs() {
        return status(StatusCode::FORBIDDEN, None, "Bad or expired signature");
    }
    let entry = state.store().by_etag(etag).cloned();
    let Some(entry) = entry else {
        return status(StatusCode::NOT_FOUND, None, "No such object");
    };
    let mut extra = HeaderMap::new();
    set(&mut extra, "etag", &format!("\"{etag}\""));
    let peer = request.extensions().get::<PeerAddr>().map(|p| p.0.ip());
    let pace = state.pacer.for_client(peer);
    if crate::upstream::is_missing(&state, &entry) {
        return crate::upstream::content(&state, &entry, request.headers(), head, extra, pace)
            .await;
    }
    content_response(&entry, request.headers(), head, &state.faults, extra, pace)
}

pub(crate) fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl AppState {
    pub(crate) fn sign(&self, etag: &str, exp: u64) -> String {
        let mut h = Sha256::default();
        h.update(self.secret);
        h.update(etag.as_bytes());
        h.update(exp.to_le_bytes());
        hex::encode(h.finalize())
    }

    pub(crate) fn cdn_link(&self, bases: &Bases, etag: &str) -> String {
        let exp = now_secs() + CDN_LINK_SECS;
        format!(
            "{}/cdn/{etag}?exp={exp}&sig={}",
            bases.cdn,
            self.sign(etag, exp)
        )
    }
}

/// `POST /_tektra/faults` (JSON `FaultPlan`), `GET /_tektra/stats`: only
/// on a server started with its test controls open.
async fn control(
    state: &AppState,
    method: &Method,
    segments: &[String],
    request: Request,
) -> Response<Body> {
    match (method.as_str(), segments.get(1).map(String::as_str)) {
        ("POST", Some("faults")) => {
            let Ok(bytes) = axum::body::to_bytes(request.into_body(), 1 << 20).await else {
                return status(StatusCode::BAD_REQUEST, None, "unreadable body");
            };
            match serde_json::from_slice::<FaultPlan>(&bytes) {
                Ok(plan) => {
                    state.faults.set(plan);
                    json_response(&json!({ "ok": true }), HeaderMap::new())
                }
                Err(e) => status(StatusCode::BAD_REQUEST, None, &e.to_string()),
            }
        }
        ("GET", Some("faults")) => json_response(&json!(state.faults.plan()), HeaderMap::new()),
        ("GET", Some("stats")) => {
            json_response(&json!(state.faults.stats.snapshot()), HeaderMap::new())
        }
        _ => status(StatusCode::NOT_FOUND, None, "Not found"),
    }
}
