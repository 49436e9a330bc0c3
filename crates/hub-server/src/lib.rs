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
//! - faults (see [`FaultPlan`]) and counters ([`Stats`]) through the Rust
//!   API; over HTTP (`/_tektra/faults`, `/_tektra/stats`) only when
//!   [`ServerBuilder::test_controls`] opens them.
//!
//! It serves `tektra serve` (a mirror others reach with `HF_ENDPOINT`) and
//! the tests. It listens where it is told; tests use loopback only. Links
//! name the host the client used (see `origin`), every connection has a
//! header deadline and an idle timeout, and their number is capped
//! ([`Limits`]).
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
mod info;
mod listen;
mod origin;
mod pace;
mod routes;
mod store;
mod upstream;
mod xet;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock, RwLockReadGuard};

use sha2::{Digest, Sha256};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use body::parse_range;

/// Makes ring the process's TLS provider unless one is set already. The
/// workspace builds reqwest without a provider of its own (aws-lc-rs, its
/// default, was the longest C build of a release build), and such a
/// reqwest panics when a client is built before a provider is installed:
/// call this first (the Xet CAS does; so does the hf-hub fork's client).
pub fn install_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
pub use faults::{ALWAYS, FaultPlan, Faults, Stats};
pub use listen::Limits;
pub use origin::{PublicUrl, PublicUrlError};
pub use pace::RateLimits;
pub use store::{
    FileEntry, Kind, LFS_THRESHOLD, Repo, Store, StoreError, is_commit_hash, parse_repo_id,
};
pub use upstream::{Asked, BoxFuture, ByteStream, Listing, Refusal, Upstream};

pub(crate) struct AppState {
    store: RwLock<Store>,
    aliases: HashMap<(Kind, String), String>,
    faults: Arc<Faults>,
    origins: origin::Origins,
    /// Whether `/_tektra/faults` and `/_tektra/stats` answer over HTTP.
    controls: bool,
    secret: [u8; 32],
    page_size: usize,
    /// The Xet CAS, when the server was built with one.
    xet: Option<xet::XetCas>,
    /// Bandwidth limits (`--max-rate`).
    pacer: pace::Pacer,
    /// Where what the store lacks comes from (a pull-through mirror).
    upstream: Option<Arc<dyn Upstream>>,
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
    /// `None`: beside the Hub origin (same address, any port).
    cdn_addr: Option<SocketAddr>,
    page_size: usize,
    faults: FaultPlan,
    public_url: Option<PublicUrl>,
    limits: Limits,
    rates: RateLimits,
    controls: bool,
    upstream: Option<Arc<dyn Upstream>>,
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

    /// Makes the server a pull-through mirror: `upstream` is asked about
    /// every repo before the store answers, and streams the files the
    /// store lists but does not hold.
    #[must_use]
    pub fn upstream(mut self, upstream: Arc<dyn Upstream>) -> Self {
        self.upstream = Some(upstream);
        self
    }

    /// Caps what the server sends: in total, and to each client address.
    #[must_use]
    pub fn max_rate(mut self, limits: RateLimits) -> Self {
        self.rates = limits;
        self
    }

    /// Where the Hub origin listens (default `127.0.0.1:0`, any free port).
    #[must_use]
    pub fn hub_addr(mut self, addr: SocketAddr) -> Self {
        self.hub_addr = addr;
        self
    }

    /// Where the CDN origin listens (default: the Hub origin's address,
    /// any free port).
    #[must_use]
    pub fn cdn_addr(mut self, addr: SocketAddr) -> Self {
        self.cdn_addr = Some(addr);
        self
    }

    /// The URL clients reach the Hub origin by (`http://host[:port]`): links
    /// name it (and its host, with their own ports, for the CDN and CAS)
    /// whatever `Host` a request carries. Without it, links follow each
    /// request's `Host`.
    #[must_use]
    pub fn public_url(mut self, url: PublicUrl) -> Self {
        self.public_url = Some(url);
        self
    }

    /// Connection limits (header deadline, idle timeout, connection cap).
    #[must_use]
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Opens the HTTP control routes: `POST /_tektra/faults` (any client
    /// can then make every answer lie) and `GET /_tektra/stats`. Off by
    /// default; the Rust API ([`Server::faults`], [`Server::stats`]) works
    /// either way.
    #[must_use]
    pub fn test_controls(mut self, open: bool) -> Self {
        self.controls = open;
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
        let hub_addr = hub.local_addr()?;
        let cdn_addr = self
            .cdn_addr
            .unwrap_or_else(|| SocketAddr::new(hub_addr.ip(), 0));
        let cdn = TcpListener::bind(cdn_addr).await?;
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
            origins: origin::Origins {
                public: self.public_url.clone(),
                hub: hub_addr,
                cdn_port: cdn_addr.port(),
            },
            controls: self.controls,
            secret: seed.finalize().into(),
            page_size: self.page_size,
            xet,
            pacer: pace::Pacer::new(self.rates),
            upstream: self.upstream,
        });
        let shutdown = CancellationToken::new();
        let slots = Arc::new(tokio::sync::Semaphore::new(
            self.limits.max_connections.max(1),
        ));
        #[cfg(feature = "xet")]
        if let Some(proxy) = proxy {
            let app = xet::proxy_router(state.clone());
            listen::spawn(proxy, app, self.limits, slots.clone(), shutdown.clone());
            xet::sync(&state).await.map_err(std::io::Error::other)?;
        }
        let hub_app = axum::Router::new()
            .fallback(routes::hub)
            .with_state(state.clone());
        let cdn_app = axum::Router::new()
            .fallback(routes::cdn)
            .with_state(state.clone());
        for (listener, app) in [(hub, hub_app), (cdn, cdn_app)] {
            listen::spawn(listener, app, self.limits, slots.clone(), shutdown.clone());
        }
        Ok(Server {
            hub_addr,
            cdn_addr,
            public_url: self.public_url,
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
    public_url: Option<PublicUrl>,
    state: Arc<AppState>,
    faults: Arc<Faults>,
    shutdown: CancellationToken,
}

impl Server {
    /// A builder serving `store` on two loopback ports.
    #[must_use]
    pub fn builder(store: Store) -> ServerBuilder {
        ServerBuilder {
            store,
            aliases: HashMap::new(),
            hub_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            cdn_addr: None,
            page_size: 1000,
            faults: FaultPlan::default(),
            rates: RateLimits::default(),
            public_url: None,
            limits: Limits::default(),
            controls: false,
            upstream: None,
            #[cfg(feature = "xet")]
            xet: None,
        }
    }

    /// The Hub origin, e.g. `http://127.0.0.1:40123` (use as `HF_ENDPOINT`):
    /// the public URL when one was given; for a server bound to every
    /// address (`0.0.0.0`), its loopback address.
    #[must_use]
    pub fn url(&self) -> String {
        match &self.public_url {
            Some(url) => url.to_string(),
            None => format!("http://{}", reachable(self.hub_addr)),
        }
    }

    /// The address the Hub origin is bound to.
    #[must_use]
    pub fn hub_addr(&self) -> SocketAddr {
        self.hub_addr
    }

    /// The CDN origin (at its bound address).
    #[must_use]
    pub fn cdn_url(&self) -> String {
        format!("http://{}", reachable(self.cdn_addr))
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

    /// The Xet CAS at its bound address, if there is one (clients are
    /// given it under the host they reached the Hub by).
    #[cfg(feature = "xet")]
    #[must_use]
    pub fn xet_cas_url(&self) -> Option<String> {
        self.state
            .xet
            .as_ref()
            .map(|c| format!("http://{}", reachable(c.proxy_addr)))
    }

    /// Stops accepting connections.
    pub fn shutdown(&self) {
        self.shutdown.cancel();
    }
}

/// `addr`, with an unspecified IP (bound to every address) replaced by
/// loopback: somewhere this machine can connect to.
fn reachable(addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() {
        let ip: std::net::IpAddr = if addr.is_ipv4() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        };
        SocketAddr::new(ip, addr.port())
    } else {
        addr
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}
