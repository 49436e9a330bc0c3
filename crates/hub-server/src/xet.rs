//! The Xet side of the protocol: `X-Xet-Hash` and the `xet-auth` link in
//! resolve answers, and the read-token endpoint.

use axum::body::Body;
use axum::http::{HeaderMap, Response, StatusCode};

use crate::AppState;
use crate::store::{FileEntry, Kind};

/// Adds the Xet headers to a resolve answer when the file is in Xet.
pub(crate) fn resolve_headers(
    _state: &AppState,
    _kind: Kind,
    _id: &str,
    _revision: &str,
    _entry: &FileEntry,
    _headers: &mut HeaderMap,
) {
}

/// `GET /api/{kind}/{id}/xet-read-token/{rev}`.
pub(crate) async fn token(
    _state: &AppState,
    _kind: Kind,
    _id: &str,
    _revision: &str,
    _headers: &HeaderMap,
) -> Response<Body> {
    let mut response = Response::new(Body::from("{\"error\":\"no Xet store\"}"));
    *response.status_mut() = StatusCode::NOT_FOUND;
    response
}
