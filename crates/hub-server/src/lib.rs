//! A Hub server speaking the Hugging Face protocol, over a folder of repos
//! or an existing hub cache:
//!
//! - `HEAD/GET /{repo}/resolve/{rev}/{path}`: small files answered directly
//!   (with Range), LFS files with a 302 to a CDN on a second origin, signed
//!   links; `X-Repo-Commit`, `ETag`, `X-Linked-Etag`, `X-Linked-Size`;
//!   error codes `RepoNotFound` (401), `RevisionNotFound`, `EntryNotFound`.
//! - `GET /api/{models,datasets,spaces}/{repo}/revision/{rev}` and
//!   `.../tree/{rev}[/{path}]?recursive=true` (paged with `Link: rel="next"`).
//! - private repos that need a token; renamed repos (relative redirects).
//! - faults on request (see [`FaultPlan`]) and counters ([`Stats`]).
//!
//! It serves `tektra serve` (a mirror others reach with `HF_ENDPOINT`) and
//! the tests. It listens where it is told; tests use 127.0.0.1 only.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use tektra_hub_server::{Server, Store};
//! let store = Store::open(std::path::Path::new("/srv/models")).expect("repos");
//! let server = Server::builder(store).start().await?;
//! println!("HF_ENDPOINT={}", server.url());
//! # Ok(()) }
//! ```

mod body;
mod faults;
mod routes;
mod store;
mod xet;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock, RwLockReadGuard};

use sha2::{Digest, Sha256};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use body::parse_range;
pub use faults::{ALWAYS, FaultPlan, Faults, Stats};
pub use store::{FileEntry, Kind, LFS_THRESHOLD, Repo, Store, StoreError};

pub(crate) struct AppState {
    store: RwLock<Store>,
    aliases: HashMap<(Kind, String), String>,
    faults: Arc<Faults>,
    hub_base: String,
    cdn_base: String,
    secret: [u8; 32],
    page_size: usize,
    /// The Xet CAS, when the server was built with one.
    xet: Option<xet::XetCas>,
}

impl AppState {
    fn store(&self) -> RwLockReadGuard<'_, Store> {
        self.store
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Configures a [`Server`].
#[derive(Debug)]
pub struct ServerBuilder {
    store: Store,
    aliases: HashMap<(Kind, String), String>,
    hub_addr: SocketAddr,
    cdn_addr: SocketAddr,
    page_size: usize,
    faults: FaultPlan,
    /// `Some(dir)`: run a Xet CAS (on disk under `dir`, or in memory).
    #[cfg(feature = "xet")]
    xet: Option<Option<std::path::PathBuf>>,
}

impl ServerBuilder {
    /// Runs a Xet CAS behind the server: every LFS file is uploaded to it
    /// with hf-xet (once per content) at start, resolve answers carry
    /// `X-Xet-Hash` and the `xet-auth` link, and the token endpoint hands
    /// out read tokens. The CAS keeps its data under `dir`, or in memory.
    #[cfg(feature = "xet")]
    #[must_use]
    pub fn xet(mut self, dir: Option<std::path::PathBuf>) -> Self {
        self.xet = Some(dir);
        self
    }

    /// Where the Hub origin listens (default `127.0.0.1:0`, any free port).
    #[must_use]
    pub fn hub_addr(mut self, addr: SocketAddr) -> Self {
        self.hub_addr = addr;
        self
    }

    /// Where the CDN origin listens (default `127.0.0.1:0`).
    #[must_use]
    pub fn cdn_addr(mut self, addr: SocketAddr) -> Self {
        self.cdn_addr = addr;
        self
    }

    /// Listing page size (default 1000).
    #[must_use]
    pub fn page_size(mut self, size: usize) -> Self {
        self.page_size = size.max(1);
        self
    }

    /// `old` answers with a relative redirect to `new` (a renamed repo).
    #[must_use]
    pub fn alias(mut self, kind: Kind, old: &str, new: &str) -> Self {
        self.aliases
            .insert((kind, old.to_string()), new.to_string());
        self
    }

    /// Faults in force from the start (e.g. a rate cap for a benchmark).
    #[must_use]
    pub fn faults(mut self, plan: FaultPlan) -> Self {
        self.faults = plan;
        self
    }

    /// Binds both origins and starts serving in the current tokio runtime.
    pub async fn start(self) -> std::io::Result<Server> {
        let hub = TcpListener::bind(self.hub_addr).await?;
        let cdn = TcpListener::bind(self.cdn_addr).await?;
        let hub_addr = hub.local_addr()?;
        let cdn_addr = cdn.local_addr()?;
        let faults = Arc::new(Faults::default());
        faults.set(self.faults);
        #[cfg(feature = "xet")]
        let (xet, proxy) = match &self.xet {
            Some(dir) => {
                let proxy = TcpListener::bind(SocketAddr::new(hub_addr.ip(), 0)).await?;
                let cas = xet::XetCas::start(dir.as_deref(), proxy.local_addr()?).await?;
                (Some(cas), Some(proxy))
            }
            None => (None, None),
        };
        #[cfg(not(feature = "xet"))]
        let xet = None;
        let mut seed = Sha256::default();
        seed.update(format!(
            "{:?}{:?}{}",
            std::time::SystemTime::now(),
            hub_addr,
            std::process::id()
        ));
        let state = Arc::new(AppState {
            store: RwLock::new(self.store),
            aliases: self.aliases,
            faults: faults.clone(),
            hub_base: format!("http://{hub_addr}"),
            cdn_base: format!("http://{cdn_addr}"),
            secret: seed.finalize().into(),
            page_size: self.page_size,
            xet,
        });
        let shutdown = CancellationToken::new();
        #[cfg(feature = "xet")]
        if let Some(proxy) = proxy {
            xet::serve_proxy(proxy, state.clone(), shutdown.clone());
            xet::sync(&state).await.map_err(std::io::Error::other)?;
        }
        let hub_app = axum::Router::new()
            .fallback(routes::hub)
            .with_state(state.clone());
        let cdn_app = axum::Router::new()
            .fallback(routes::cdn)
            .with_state(state.clone());
        for (listener, app) in [(hub, hub_app), (cdn, cdn_app)] {
            let stop = shutdown.clone();
            tokio::spawn(async move {
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(async move { stop.cancelled().await })
                    .await;
            });
        }
        Ok(Server {
            hub_addr,
            cdn_addr,
            state,
            faults,
            shutdown,
        })
    }
}

/// A running server. Stops when dropped.
pub struct Server {
    hub_addr: SocketAddr,
    cdn_addr: SocketAddr,
    state: Arc<AppState>,
    faults: Arc<Faults>,
    shutdown: CancellationToken,
}

impl Server {
    /// A builder serving `store` on two loopback ports.
    #[must_use]
    pub fn builder(store: Store) -> ServerBuilder {
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        ServerBuilder {
            store,
            aliases: HashMap::new(),
            hub_addr: any,
            cdn_addr: any,
            page_size: 1000,
            faults: FaultPlan::default(),
            #[cfg(feature = "xet")]
            xet: None,
        }
    }

    /// The Hub origin, e.g. `http://127.0.0.1:40123` (use as `HF_ENDPOINT`).
    #[must_use]
    pub fn url(&self) -> String {
        format!("http://{}", self.hub_addr)
    }

    /// The CDN origin.
    #[must_use]
    pub fn cdn_url(&self) -> String {
        format!("http://{}", self.cdn_addr)
    }

    /// The fault plan and counters.
    #[must_use]
    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// A copy of the counters.
    #[must_use]
    pub fn stats(&self) -> Stats {
        self.faults.stats.snapshot()
    }

    /// Changes what is served while running (add a revision, make a repo private).
    pub fn edit_store(&self, f: impl FnOnce(&mut Store)) {
        let mut store = self
            .state
            .store
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut store);
    }

    /// Uploads to the Xet CAS every LFS file that is not there yet (after
    /// [`Server::edit_store`] added some); returns how many were uploaded.
    /// Does nothing on a server without a CAS.
    #[cfg(feature = "xet")]
    pub async fn sync_xet(&self) -> Result<usize, String> {
        xet::sync(&self.state).await
    }

    /// The URL clients are given for the Xet CAS, if there is one.
    #[cfg(feature = "xet")]
    #[must_use]
    pub fn xet_cas_url(&self) -> Option<String> {
        self.state.xet.as_ref().map(|c| c.proxy_url.clone())
    }

    /// Stops accepting connections.
    pub fn shutdown(&self) {
        self.shutdown.cancel();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}
