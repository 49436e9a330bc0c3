//! What stands before every route: the API key and the browser origins
//! allowed (CORS), with preflights answered here.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::AppState;
use crate::error::ApiError;

/// Who may call.
#[derive(Clone, Default)]
pub(crate) struct Access {
    /// Bearer key every `/v1` and `/metrics` request must carry.
    pub(crate) api_key: Option<String>,
    /// Browser origins allowed besides the daemon's own page.
    pub(crate) origins: Vec<String>,
}

/// The Tauri app's origin, allowed by default (as Ollama does).
pub(crate) const TAURI_ORIGIN: &str = "tauri://localhost";

/// Compares in time that depends only on the lengths, not on where the
/// first difference is.
fn same(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Access {
    fn key_ok(&self, headers: &HeaderMap) -> bool {
        let Some(key) = &self.api_key else {
            return true;
        };
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        same(given.trim().as_bytes(), key.as_bytes())
    }

    /// Whether a browser at `origin` may call; the page the daemon serves
    /// itself is same-origin (its origin names the Host it asked).
    fn origin_ok(&self, origin: &str, headers: &HeaderMap) -> bool {
        if origin == TAURI_ORIGIN || self.origins.iter().any(|o| o == origin) {
            return true;
        }
        let host = headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        !host.is_empty() && origin == format!("http://{host}")
    }
}

/// Checks the origin and the key; answers CORS preflights.
pub(crate) async fn check(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    let access = &state.access;
    let origin = request
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    if let Some(origin) = &origin
        && !access.origin_ok(origin, request.headers())
    {
        // A page elsewhere must not drive the daemon (or read its answers).
        return ApiError::forbidden_origin(origin).into_response();
    }
    if request.method() == Method::OPTIONS && origin.is_some() {
        let mut response = StatusCode::NO_CONTENT.into_response();
        let h = response.headers_mut();
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, POST, DELETE, OPTIONS"),
        );
        h.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("authorization, content-type, last-event-id"),
        );
        h.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("600"),
        );
        allow(h, origin.as_deref());
        return response;
    }
    let path = request.uri().path();
    let guarded = path.starts_with("/v1/") || path == "/metrics";
    if guarded && !access.key_ok(request.headers()) {
        let mut response = ApiError::unauthorized().into_response();
        allow(response.headers_mut(), origin.as_deref());
        return response;
    }
    let mut response = next.run(request).await;
    allow(response.headers_mut(), origin.as_deref());
    response
}

fn allow(headers: &mut HeaderMap, origin: Option<&str>) {
    if let Some(v) = origin.and_then(|o| HeaderValue::from_str(o).ok()) {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
        headers.insert(header::VARY, HeaderValue::from_static("Origin"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_compare_whole_and_origins_need_a_listing() {
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abc", b"abd"));
        assert!(!same(b"abc", b"abcd"));
        let access = Access {
            api_key: Some("k".into()),
            origins: vec!["http://app.local".into()],
        };
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8080"));
        assert!(access.origin_ok("http://127.0.0.1:8080", &h));
        assert!(access.origin_ok(TAURI_ORIGIN, &h));
        assert!(access.origin_ok("http://app.local", &h));
        assert!(!access.origin_ok("http://evil.example", &h));
        assert!(!access.key_ok(&h));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer k"));
        assert!(access.key_ok(&h));
    }
}
