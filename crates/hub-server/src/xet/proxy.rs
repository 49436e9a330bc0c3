//! The CAS as clients see it: a proxy in front of the simulation server
//! (which itself stays on loopback) that lets through only what a download
//! needs, counts requests, body bytes and the credentials they carry (a Hub
//! token must never arrive here), and applies the CAS faults of the plan (a
//! delay before each answer).
//!
//! Let through: reconstruction queries and file HEADs with a read token
//! this server issued and that has not expired, and the term fetches the
//! reconstructions point to (the Hub's CAS hands those out as presigned
//! URLs; here the xorb hash in them, which only a reconstruction tells, plays
//! the signature). Everything else (uploads, shards, the simulation's
//! `set_config` and other `/simulation/` routes) is refused, and no request
//! body is accepted.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderName, Method, Response, StatusCode, header};
use futures::StreamExt;

use crate::AppState;
use crate::faults::bump;
use crate::routes::{bearer, now_secs, status};

/// The proxy's routes.
pub(crate) fn router(state: Arc<AppState>) -> axum::Router {
    axum::Router::new().fallback(forward).with_state(state)
}

/// What a request may do at the CAS.
#[derive(Debug, PartialEq, Eq)]
enum Access {
    /// A read that needs a read token.
    Token,
    /// A term fetch (a presigned URL on the Hub's CAS).
    Open,
    /// Anything else.
    Refused,
}

/// The read routes of the CAS protocol, by method and path.
fn access(method: &Method, path: &str) -> Access {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (method.as_str(), segments.as_slice()) {
        ("GET", ["v1", "reconstructions"] | ["v1" | "v2", "reconstructions", _]) => Access::Token,
        ("HEAD", ["v1", "files", _]) => Access::Token,
        ("GET" | "HEAD", ["v1", "fetch_term"]) => Access::Open,
        ("GET" | "HEAD", ["v1", "get_xorb", _, _, ""]) => Access::Open,
        _ => Access::Refused,
    }
}

/// Headers that belong to one hop and are not passed on.
const HOP_BY_HOP: &[HeaderName] = &[
    header::CONNECTION,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::TE,
    header::TRAILER,
];

async fn forward(State(state): State<Arc<AppState>>, request: Request) -> Response<Body> {
    let Some(cas) = &state.xet else {
        return status(StatusCode::NOT_FOUND, None, "no Xet store");
    };
    let stats = &state.faults.stats;
    bump(&stats.xet_cas_requests, 1);
    if request.headers().contains_key(header::AUTHORIZATION) {
        bump(&stats.xet_cas_auth_seen, 1);
    }
    if let Some(token) = bearer(request.headers())
        && is_hub_token(&state, token)
    {
        bump(&stats.xet_cas_hub_token_seen, 1);
    }
    // The simulation server builds the URLs it hands out from Host.
    if crate::origin::request_host(request.headers()).is_err() {
        return status(StatusCode::BAD_REQUEST, None, "malformed Host header");
    }
    match access(request.method(), request.uri().path()) {
        Access::Refused => {
            return status(StatusCode::FORBIDDEN, None, "not a read route of this CAS");
        }
        Access::Token => {
            let valid = bearer(request.headers())
                .is_some_and(|t| super::cas::token_is_valid(&state.secret, t, now_secs()));
            if !valid {
                return status(
                    StatusCode::UNAUTHORIZED,
                    None,
                    "missing, invalid or expired Xet read token",
                );
            }
        }
        Access::Open => {}
    }
    let has_body = request.headers().contains_key(header::TRANSFER_ENCODING)
        || request
            .headers()
            .get(header::CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() != b"0");
    if has_body {
        return status(StatusCode::PAYLOAD_TOO_LARGE, None, "reads carry no body");
    }
    if let Some(ms) = state.faults.plan().xet_cas_delay_ms {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    let path = request
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    let url = format!("{}{path}", cas.upstream_url());
    let method = request.method().clone();
    let mut headers = request.headers().clone();
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
    // The Host header stays (checked above): the simulation server builds
    // the URLs of the data it hands out from it, so they point back through
    // this proxy under the name the client used.
    let answer = match cas.http.request(method, &url).headers(headers).send().await {
        Ok(answer) => answer,
        Err(e) => return status(StatusCode::BAD_GATEWAY, None, &format!("CAS: {e}")),
    };
    let mut response = Response::builder().status(answer.status());
    for (name, value) in answer.headers() {
        if !HOP_BY_HOP.contains(name) {
            response = response.header(name, value);
        }
    }
    let counter = state.clone();
    let stream = answer.bytes_stream().map(move |chunk| {
        if let Ok(bytes) = &chunk {
            bump(&counter.faults.stats.xet_cas_bytes, bytes.len() as u64);
        }
        chunk
    });
    response
        .body(Body::from_stream(stream))
        .unwrap_or_else(|e| status(StatusCode::BAD_GATEWAY, None, &e.to_string()))
}

/// Whether `token` is the Hub token of any repo the server knows.
fn is_hub_token(state: &AppState, token: &str) -> bool {
    state
        .store()
        .repos
        .values()
        .any(|r| r.tokens.iter().any(|t| t == token))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_read_routes_pass() {
        let get = Method::GET;
        assert_eq!(access(&get, "/v1/reconstructions/abc"), Access::Token);
        assert_eq!(access(&get, "/v2/reconstructions/abc"), Access::Token);
        assert_eq!(access(&get, "/v1/reconstructions"), Access::Token);
        assert_eq!(access(&Method::HEAD, "/v1/files/abc"), Access::Token);
        assert_eq!(access(&get, "/v1/fetch_term"), Access::Open);
        for (method, path) in [
            (Method::POST, "/simulation/set_config"),
            (Method::POST, "/v1/xorbs/default/abc"),
            (Method::POST, "/v1/shards"),
            (Method::POST, "/v2/shards"),
            (Method::PUT, "/simulation/xorb-uploads/1"),
            (Method::GET, "/simulation/xorbs"),
            (Method::DELETE, "/simulation/xorbs/abc"),
            (Method::POST, "/v1/reconstructions/abc"),
            (Method::GET, "/v1/reconstructions/a/b"),
            (Method::GET, "/health"),
        ] {
            assert_eq!(access(&method, path), Access::Refused, "{method} {path}");
        }
    }
}
