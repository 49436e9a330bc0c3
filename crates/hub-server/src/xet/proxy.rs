//! The CAS as clients see it: a proxy on loopback in front of the
//! simulation server that counts requests, body bytes and the credentials
//! they carry (a Hub token must never arrive here), and applies the CAS
//! faults of the plan (a delay before each answer).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderName, Response, StatusCode, header};
use futures::StreamExt;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::AppState;
use crate::faults::bump;
use crate::routes::{bearer, status};

/// Serves the proxy on `listener` until `stop` fires.
pub(crate) fn serve(listener: TcpListener, state: Arc<AppState>, stop: CancellationToken) {
    let app = axum::Router::new().fallback(forward).with_state(state);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await;
    });
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
    // The Host header stays: the simulation server builds the URLs of the
    // data it hands out from it, so they point back through this proxy.
    let body = reqwest::Body::wrap_stream(request.into_body().into_data_stream());
    let answer = match cas
        .http
        .request(method, &url)
        .headers(headers)
        .body(body)
        .send()
        .await
    {
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
