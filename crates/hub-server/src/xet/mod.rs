//! The Xet side of the protocol: `X-Xet-Hash` and the `xet-auth` link in
//! resolve answers, and the read-token endpoint. With the `xet` feature and
//! [`ServerBuilder::xet`](crate::ServerBuilder::xet), a CAS runs behind
//! them (see `cas`); without, files have no Xet hash and the token
//! endpoint answers 404, as for a repo the Hub keeps in plain LFS.

#[cfg(feature = "xet")]
mod cas;
#[cfg(feature = "xet")]
mod proxy;

#[cfg(feature = "xet")]
pub(crate) use cas::{XetCas, sync};
#[cfg(feature = "xet")]
pub(crate) use proxy::router as proxy_router;

/// Without the `xet` feature there is never a CAS.
#[cfg(not(feature = "xet"))]
pub(crate) enum XetCas {}

use axum::body::Body;
use axum::http::{HeaderMap, Response, StatusCode, header};

use crate::AppState;
use crate::faults::bump;
use crate::origin::Bases;
use crate::routes::status;
use crate::store::{FileEntry, Kind, Store};

/// Adds the Xet headers to a resolve answer when the file is in Xet.
#[allow(clippy::too_many_arguments)]
pub(crate) fn resolve_headers(
    state: &AppState,
    bases: &Bases,
    store: &Store,
    kind: Kind,
    id: &str,
    commit: &str,
    entry: &FileEntry,
    headers: &mut HeaderMap,
) {
    let (Some(_), Some(hash)) = (&state.xet, &entry.xet_hash) else {
        return;
    };
    let wrong = state
        .faults
        .plan()
        .xet_wrong_hash
        .then(|| other_hash(store, entry.size, hash))
        .flatten();
    crate::routes::set(headers, "x-xet-hash", wrong.as_deref().unwrap_or(hash));
    let link = format!(
        "<{}/api/{}/{id}/xet-read-token/{commit}>; rel=\"xet-auth\"",
        bases.hub,
        kind.plural()
    );
    crate::routes::set(headers, "link", &link);
}

/// The Xet hash of other content of the same size (the wrong-hash fault).
/// Same size, since hf-xet checks sizes itself: only then do the wrong bytes
/// reach the client's content-hash check, which is what the fault tests.
fn other_hash(store: &Store, size: u64, hash: &str) -> Option<String> {
    store
        .repos
        .values()
        .flat_map(|r| r.commits.values())
        .flat_map(|files| files.values())
        .filter(|e| e.size == size)
        .filter_map(|e| e.xet_hash.clone())
        .find(|h| h != hash)
}

/// `GET /api/{kind}/{id}/xet-read-token/{rev}`: a CAS read token for a repo
/// the caller may read, as JSON and in `X-Xet-*` headers.
pub(crate) async fn token(
    state: &AppState,
    bases: &Bases,
    kind: Kind,
    id: &str,
    revision: &str,
    headers: &HeaderMap,
) -> Response<Body> {
    let stats = &state.faults.stats;
    bump(&stats.xet_token_requests, 1);
    if headers.contains_key(header::AUTHORIZATION) {
        bump(&stats.xet_token_auth_seen, 1);
    }
    {
        let store = state.store();
        if let Err(response) = crate::routes::repo_at(&store, kind, id, revision, headers) {
            return response;
        }
    }
    if let Some(code) = state.faults.plan().xet_token_status {
        let code = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return status(code, None, "Xet token endpoint failing (injected fault)");
    }
    #[cfg(feature = "xet")]
    if let Some(cas) = &state.xet {
        return cas.token_response(state, id, bases);
    }
    #[cfg(not(feature = "xet"))]
    let _ = bases;
    status(StatusCode::NOT_FOUND, None, "no Xet store")
}
