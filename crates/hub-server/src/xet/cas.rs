//! A Xet CAS for the server: xet-client's simulation server on loopback
//! (in memory, or on disk when a folder is given), with every LFS file
//! uploaded once through hf-xet's own upload API so its Xet hash is real.
//! Clients reach it through a small proxy (see `proxy`) that counts what
//! it sees and can slow it down; the upstream address is never handed out.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use axum::body::Body;
use axum::http::{HeaderMap, Response};
use serde_json::json;
use sha2::{Digest, Sha256};
use xet::xet_session::{Sha256Policy, XetSession, XetSessionBuilder};
use xet_client::cas_client::{LocalTestServer, LocalTestServerBuilder};

use crate::AppState;
use crate::routes::{json_response, now_secs, set};

/// How long a read token is valid.
const TOKEN_SECS: u64 = 3600;

/// The CAS and what the server knows about it.
pub(crate) struct XetCas {
    upstream: LocalTestServer,
    session: XetSession,
    /// Where clients are sent: the proxy in front of the CAS (its port, under
    /// the host the client reached the Hub by).
    pub(crate) proxy_addr: SocketAddr,
    /// A port beside the proxy that nobody listens on (the "CAS down" fault).
    closed_port: u16,
    /// Holds that port bound without listening, so connections are refused
    /// and no other process can take it while the server runs.
    _closed: tokio::net::TcpSocket,
    /// sha256 of a file -> its Xet hash, so each content is uploaded once.
    hashes: Mutex<HashMap<String, String>>,
    pub(crate) http: reqwest::Client,
    /// The uploading session's own shard cache. hf-xet's default one is
    /// shared by every process of the user, and an upload skips content it
    /// finds there, which a fresh CAS does not have (downloads then get 404).
    _client_cache: tempfile::TempDir,
}

impl XetCas {
    /// Starts the CAS (on disk under `dir`, else in memory) for a proxy that
    /// will listen at `proxy_addr`.
    pub(crate) async fn start(
        dir: Option<&Path>,
        proxy_addr: SocketAddr,
    ) -> std::io::Result<XetCas> {
        // The simulation server and the session build reqwest clients.
        crate::install_tls_provider();
        let builder = match dir {
            Some(dir) => {
                std::fs::create_dir_all(dir)?;
                LocalTestServerBuilder::new().with_disk_location(dir)
            }
            None => LocalTestServerBuilder::new(),
        };
        let upstream = builder.start().await;
        let client_cache = tempfile::tempdir()?;
        let session = XetSessionBuilder::new()
            .with_cache_dir(client_cache.path())
            .build()
            .map_err(|e| std::io::Error::other(format!("starting a Xet session: {e}")))?;
        let (closed, closed_port) = closed_port(proxy_addr)?;
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| std::io::Error::other(format!("proxy client: {e}")))?;
        Ok(XetCas {
            upstream,
            session,
            proxy_addr,
            closed_port,
            _closed: closed,
            hashes: Mutex::new(HashMap::new()),
            http,
            _client_cache: client_cache,
        })
    }

    /// The CAS itself (behind the proxy).
    pub(crate) fn upstream_url(&self) -> &str {
        self.upstream.http_endpoint()
    }

    /// Uploads files (path on disk, sha256) not uploaded yet; returns
    /// sha256 -> Xet hash for all of them.
    async fn upload(&self, files: &[(PathBuf, String)]) -> Result<HashMap<String, String>, String> {
        let mut known = self.hashes.lock().map(|h| h.clone()).unwrap_or_default();
        let todo: Vec<&(PathBuf, String)> = files
            .iter()
            .filter(|(_, sha)| !known.contains_key(sha))
            .collect();
        if !todo.is_empty() {
            let commit = self
                .session
                .new_upload_commit()
                .map_err(|e| e.to_string())?
                .with_endpoint(self.upstream_url())
                .build()
                .await
                .map_err(|e| format!("starting an upload: {e}"))?;
            let mut handles = Vec::new();
            for (path, sha) in todo {
                let handle = commit
                    .upload_from_path(path.clone(), Sha256Policy::Skip)
                    .await
                    .map_err(|e| format!("uploading {}: {e}", path.display()))?;
                handles.push((sha.clone(), handle));
            }
            for (sha, handle) in handles {
                let meta = handle
                    .finalize_ingestion()
                    .await
                    .map_err(|e| format!("uploading {sha}: {e}"))?;
                known.insert(sha, meta.xet_info.hash);
            }
            commit
                .commit()
                .await
                .map_err(|e| format!("committing the upload: {e}"))?;
            if let Ok(mut hashes) = self.hashes.lock() {
                hashes.clone_from(&known);
            }
        }
        Ok(known)
    }

    /// The token endpoint's answer for repo `id`, the CAS named under the
    /// host of `bases`.
    pub(crate) fn token_response(
        &self,
        state: &AppState,
        id: &str,
        bases: &crate::origin::Bases,
    ) -> Response<Body> {
        let ttl = state.faults.plan().xet_token_ttl_secs.unwrap_or(TOKEN_SECS);
        let exp = now_secs().saturating_add(ttl);
        let token = access_token(&state.secret, id, exp);
        let cas_url = if state.faults.plan().xet_cas_down {
            bases.other(self.closed_port)
        } else {
            bases.other(self.proxy_addr.port())
        };
        let mut headers = HeaderMap::new();
        set(&mut headers, "x-xet-access-token", &token);
        set(&mut headers, "x-xet-token-expiration", &exp.to_string());
        set(&mut headers, "x-xet-cas-url", &cas_url);
        json_response(
            &json!({ "accessToken": token, "exp": exp, "casUrl": cas_url }),
            headers,
        )
    }
}

/// A read token only this server could have issued, for repo `id` until
/// `exp`: `xet_<exp>_<hex id>_<mac>`. It carries what the proxy needs to
/// check it without keeping state, and never equals a Hub token.
fn access_token(secret: &[u8; 32], id: &str, exp: u64) -> String {
    format!(
        "xet_{exp}_{}_{}",
        hex::encode(id.as_bytes()),
        token_mac(secret, id, exp)
    )
}

fn token_mac(secret: &[u8; 32], id: &str, exp: u64) -> String {
    let mut h = Sha256::default();
    h.update(b"xet-read");
    h.update(secret);
    h.update(id.as_bytes());
    h.update(exp.to_le_bytes());
    hex::encode(h.finalize())
}

/// Whether `token` is a read token this server issued that has not
/// expired at `now`.
pub(crate) fn token_is_valid(secret: &[u8; 32], token: &str, now: u64) -> bool {
    let Some(rest) = token.strip_prefix("xet_") else {
        return false;
    };
    let mut parts = rest.splitn(3, '_');
    let (Some(exp), Some(id), Some(mac)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    let (Ok(exp), Ok(id)) = (exp.parse::<u64>(), hex::decode(id)) else {
        return false;
    };
    let Ok(id) = String::from_utf8(id) else {
        return false;
    };
    let want = token_mac(secret, &id, exp);
    // Compared whole, byte by byte without an early exit.
    let same = want.len() == mac.len()
        && want
            .bytes()
            .zip(mac.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    same && exp >= now
}

/// A socket bound to a port on the proxy's host that never listens, and
/// its port: connections to it are refused for as long as the socket lives.
fn closed_port(near: SocketAddr) -> std::io::Result<(tokio::net::TcpSocket, u16)> {
    let socket = if near.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.bind(SocketAddr::new(near.ip(), 0))?;
    let addr = socket.local_addr()?;
    Ok((socket, addr.port()))
}

/// Uploads every LFS file of the store that has no Xet hash yet and records
/// the hashes. Called at start and after the store was edited.
pub(crate) async fn sync(state: &AppState) -> Result<usize, String> {
    let Some(cas) = &state.xet else {
        return Ok(0);
    };
    let mut wanted: Vec<(PathBuf, String)> = Vec::new();
    {
        let store = state.store();
        for entry in store
            .repos
            .values()
            .flat_map(|r| r.commits.values())
            .flat_map(|files| files.values())
        {
            if let (Some(sha), None) = (&entry.lfs_sha256, &entry.xet_hash)
                && !wanted.iter().any(|(_, s)| s == sha)
            {
                wanted.push((entry.disk.clone(), sha.clone()));
            }
        }
    }
    if wanted.is_empty() {
        return Ok(0);
    }
    let hashes = cas.upload(&wanted).await?;
    let mut store = state
        .store
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    for entry in store
        .repos
        .values_mut()
        .flat_map(|r| r.commits.values_mut())
        .flat_map(|files| files.values_mut())
    {
        if let Some(sha) = &entry.lfs_sha256
            && let Some(hash) = hashes.get(sha)
        {
            entry.xet_hash = Some(hash.clone());
        }
    }
    Ok(wanted.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_tokens_check_their_mac_and_expiry() {
        let secret = [7u8; 32];
        let token = access_token(&secret, "org/model", 1000);
        assert!(token_is_valid(&secret, &token, 999));
        assert!(token_is_valid(&secret, &token, 1000));
        assert!(!token_is_valid(&secret, &token, 1001), "expired");
        assert!(!token_is_valid(&[8u8; 32], &token, 999), "another server's");
        let later = token.replacen("xet_1000_", "xet_9000_", 1);
        assert!(!token_is_valid(&secret, &later, 999), "expiry changed");
        for junk in ["", "xet_", "xet_1_2", "Bearer x", "xet_1_zz_00", "hf_token"] {
            assert!(!token_is_valid(&secret, junk, 0), "{junk}");
        }
    }
}
