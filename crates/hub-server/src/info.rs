//! The Hub's metadata routes that clients call besides downloads: repo
//! info (`/api/{models,datasets,spaces}/{id}[/revision/{rev}]`, with file
//! sizes and LFS details under `?blobs=true`), the repo listing with
//! `search`, `author` and `limit`, and `paths-info`.

use axum::body::Body;
use axum::http::{HeaderMap, Response, StatusCode};
use serde_json::{Value, json};

use crate::AppState;
use crate::routes::{bearer, json_response, repo_at, status};
use crate::store::{FileEntry, Kind, Repo};

/// What every answer of these routes says of when things changed: the
/// store has no history.
const LAST_MODIFIED: &str = "2026-01-01T00:00:00.000Z";

/// `key=value` pairs of a query string or a form body, percent-decoded
/// (`+` as a space, as forms encode it).
pub(crate) fn params(text: &str) -> Vec<(String, String)> {
    text.split('&')
        .filter_map(|kv| kv.split_once('=').or(Some((kv, ""))))
        .filter(|(k, _)| !k.is_empty())
        .map(|(k, v)| {
            (
                crate::routes::percent_decode(&k.replace('+', " ")),
                crate::routes::percent_decode(&v.replace('+', " ")),
            )
        })
        .collect()
}

fn first<'a>(params: &'a [(String, String)], key: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

fn truthy(v: Option<&str>) -> bool {
    matches!(v, Some("true" | "1" | "True"))
}

/// One sibling: its name, and with `blobs`, its size, blob id and LFS data.
fn sibling(path: &str, entry: &FileEntry, blobs: bool) -> Value {
    let mut v = json!({ "rfilename": path });
    if blobs {
        v["size"] = json!(entry.size);
        v["blobId"] = json!(entry.oid);
        if let Some(sha) = &entry.lfs_sha256 {
            v["lfs"] = json!({ "sha256": sha, "size": entry.size, "pointerSize": 134 });
        }
    }
    v
}

/// The info object of `repo` at `commit`.
fn info(kind: Kind, id: &str, repo: &Repo, commit: &str, siblings: Option<bool>) -> Value {
    let author = id.split_once('/').map_or("", |(a, _)| a);
    let mut v = json!({
        "_id": commit,
        "id": id,
        "author": author,
        "sha": commit,
        "private": !repo.tokens.is_empty(),
        "disabled": false,
        "gated": false,
        "lastModified": LAST_MODIFIED,
        "createdAt": LAST_MODIFIED,
        "tags": [],
        "downloads": 0,
        "likes": 0,
    });
    if kind == Kind::Model {
        v["modelId"] = json!(id);
    }
    if let Some(blobs) = siblings {
        let files = repo.commits.get(commit);
        let list: Vec<Value> = files
            .iter()
            .flat_map(|f| f.iter())
            .map(|(p, e)| sibling(p, e, blobs))
            .collect();
        v["siblings"] = json!(list);
        if blobs {
            let used: u64 = files.iter().flat_map(|f| f.values()).map(|e| e.size).sum();
            v["usedStorage"] = json!(used);
        }
    }
    v
}

/// `GET /api/{kind}/{id}[/revision/{rev}]`.
pub(crate) fn repo_info(
    state: &AppState,
    kind: Kind,
    id: &str,
    revision: &str,
    query: &str,
    headers: &HeaderMap,
    extra_siblings: &[Value],
) -> Response<Body> {
    let store = state.store();
    let (repo, commit) = match repo_at(&store, kind, id, revision, headers) {
        Ok(found) => found,
        Err(response) => return response,
    };
    let blobs = truthy(first(&params(query), "blobs"));
    let mut body = info(kind, id, repo, commit, Some(blobs));
    if let Some(list) = body["siblings"].as_array_mut() {
        list.extend(extra_siblings.iter().cloned());
    }
    json_response(&body, HeaderMap::new())
}

/// `GET /api/{kind}?search=&author=&limit=&full=`: the repos the caller
/// may see, by id.
pub(crate) fn list(
    state: &AppState,
    kind: Kind,
    query: &str,
    headers: &HeaderMap,
) -> Response<Body> {
    let params = params(query);
    let search = first(&params, "search").map(str::to_ascii_lowercase);
    let author = first(&params, "author");
    let full = truthy(first(&params, "full"));
    let limit = match first(&params, "limit").map(str::parse::<usize>) {
        None => usize::MAX,
        Some(Ok(n)) => n,
        Some(Err(_)) => return status(StatusCode::BAD_REQUEST, None, "limit must be a number"),
    };
    let store = state.store();
    let mut repos: Vec<(&String, &Repo)> = store
        .repos
        .iter()
        .filter(|((k, _), _)| *k == kind)
        .filter(|(_, r)| {
            r.tokens.is_empty() || bearer(headers).is_some_and(|t| r.tokens.iter().any(|k| k == t))
        })
        .map(|((_, id), r)| (id, r))
        .filter(|(id, _)| {
            search
                .as_ref()
                .is_none_or(|s| id.to_ascii_lowercase().contains(s.as_str()))
        })
        .filter(|(id, _)| author.is_none_or(|a| id.split_once('/').is_some_and(|(o, _)| o == a)))
        .collect();
    repos.sort_by(|a, b| a.0.cmp(b.0));
    let list: Vec<Value> = repos
        .into_iter()
        .take(limit)
        .filter_map(|(id, r)| {
            let commit = r.commit_of("main")?;
            Some(info(kind, id, r, commit, full.then_some(false)))
        })
        .collect();
    json_response(&Value::Array(list), HeaderMap::new())
}

/// `POST /api/{kind}/{id}/paths-info/{rev}` with a form (or JSON) body of
/// `paths` (repeated) and `expand`: the entries that exist, files as the
/// tree lists them, folders as directories.
pub(crate) fn paths_info(
    state: &AppState,
    kind: Kind,
    id: &str,
    revision: &str,
    body: &[u8],
    headers: &HeaderMap,
) -> Response<Body> {
    let store = state.store();
    let (repo, commit) = match repo_at(&store, kind, id, revision, headers) {
        Ok(found) => found,
        Err(response) => return response,
    };
    let text = String::from_utf8_lossy(body);
    let paths: Vec<String> = match serde_json::from_str::<Value>(&text) {
        Ok(v) => match &v["paths"] {
            Value::Array(a) => a
                .iter()
                .filter_map(|p| p.as_str().map(str::to_string))
                .collect(),
            Value::String(s) => vec![s.clone()],
            _ => Vec::new(),
        },
        Err(_) => params(&text)
            .into_iter()
            .filter(|(k, _)| k == "paths")
            .map(|(_, v)| v)
            .collect(),
    };
    let files = repo.commits.get(commit).cloned().unwrap_or_default();
    let mut out = Vec::new();
    for p in paths {
        let p = p.trim_matches('/').to_string();
        if let Some(entry) = files.get(&p) {
            out.push(crate::routes::tree_entry(&p, entry));
        } else if files.keys().any(|f| f.starts_with(&format!("{p}/"))) {
            out.push(json!({ "type": "directory", "oid": "0000000000000000000000000000000000000000", "size": 0, "path": p }));
        }
    }
    json_response(&Value::Array(out), HeaderMap::new())
}
