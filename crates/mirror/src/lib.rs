//! A pull-through mirror for a team: a [`tektra_hub_server::Server`]
//! whose store is a hub cache that fills itself from an upstream Hub.
//!
//! - A revision the mirror has not seen (or saw longer ago than the TTL;
//!   a commit hash never expires) is asked of the upstream: its commit and
//!   file listing go into the store, so model info, trees and paths-info
//!   answer at once.
//! - A file the store lists but the cache lacks is downloaded once through
//!   the verifying engine (hf-hub's [`Hub`]) into the mirror's cache, and
//!   every client asking for it meanwhile is streamed the same transfer's
//!   bytes as they are written and hashed in order. The last byte of a
//!   file is held back until the whole file hashed right: a failed
//!   verification cuts every client's body short, so no client ever gets
//!   the whole of a wrong file, and nothing wrong stays in the cache.
//! - With the upstream unreachable, the mirror serves what it holds.
//! - Private repos: a client's token is checked with the upstream once per
//!   TTL; the repo is then served to that token only. Configured with a
//!   token of its own, the mirror serves the repos it is told to allow to
//!   every client.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use tektra_hub_server::{Server, Store};
//! use tektra_mirror::{Mirror, MirrorOptions};
//! let options = MirrorOptions::new("https://huggingface.co", "/srv/mirror/hub".into());
//! let mirror = Mirror::new(options)?;
//! let server = Server::builder(Store::default()).upstream(Arc::new(mirror)).start().await?;
//! println!("HF_ENDPOINT={}", server.url());
//! # Ok(()) }
//! ```

mod access;
mod follow;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use hf_hub::ids::{RepoRef, Revision};
use hf_hub::resolve::TreeFile;
use hf_hub::{Hub, HubError, HubOptions, RepoType};
use tektra_hub_server::{
    Asked, BoxFuture, ByteStream, FileEntry, Kind, Listing, Refusal, Upstream,
};
use tokio_util::sync::CancellationToken;

pub use access::Identity;

/// How a mirror reaches its upstream.
#[derive(Clone)]
pub struct MirrorOptions {
    /// The upstream Hub's URL.
    pub upstream: String,
    /// The mirror's own token, used for the repos in `allow` only.
    pub token: Option<String>,
    /// Repos (`org/name`, `datasets/org/name`) the mirror reads with its
    /// own token and serves to every client.
    pub allow: Vec<String>,
    /// The mirror's hub cache (what its store serves).
    pub cache_dir: PathBuf,
    /// How long a branch's commit and a client token's acceptance are
    /// trusted before the upstream is asked again.
    pub ttl: Duration,
    /// Engine settings for the upstream transfers (connections, chunk
    /// size, retries); endpoint, token and cache are set from the above.
    pub engine: HubOptions,
    /// A blob tier shared with other mirrors: a file the cache lacks is
    /// read from it (hashed) before the upstream is asked, what the
    /// upstream sends is written to it, and so are listings.
    pub store: Option<tektra_store::BlobStore>,
}

impl std::fmt::Debug for MirrorOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MirrorOptions")
            .field("upstream", &self.upstream)
            .field("token", &self.token.as_ref().map(|_| "<hidden>"))
            .field("allow", &self.allow)
            .field("cache_dir", &self.cache_dir)
            .field("ttl", &self.ttl)
            .field(
                "store",
                &self.store.as_ref().map(tektra_store::BlobStore::url),
            )
            .finish_non_exhaustive()
    }
}

impl MirrorOptions {
    /// Defaults: no token, a 60 s TTL, the engine's defaults with fewer
    /// retries (an unreachable upstream is noticed within seconds, and the
    /// mirror then serves what it holds).
    #[must_use]
    pub fn new(upstream: &str, cache_dir: PathBuf) -> Self {
        let mut engine = HubOptions::default();
        engine.retry.max_attempts = 3;
        engine.connect_timeout = Duration::from_secs(3);
        MirrorOptions {
            upstream: upstream.trim_end_matches('/').to_string(),
            token: None,
            allow: Vec::new(),
            cache_dir,
            ttl: Duration::from_secs(60),
            engine,
            store: None,
        }
    }
}

/// Why a mirror could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MirrorError {
    /// An `allow` entry is not a repo id.
    #[error("--allow-repo {0:?} is not a repo id (org/name or datasets/org/name)")]
    BadRepo(String),
    /// The engine refused its options.
    #[error(transparent)]
    Engine(#[from] HubError),
}

/// What the mirror did, for `/metrics`-style reports and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MirrorStats {
    /// Revisions asked of the upstream.
    pub listings: u64,
    /// Files fetched from the upstream.
    pub transfers: u64,
    /// Client requests that joined a transfer already running.
    pub joined: u64,
    /// Transfers that failed (verification or upstream errors).
    pub failed: u64,
    /// Requests answered from the cache while the upstream was unreachable.
    pub served_offline: u64,
    /// Files read from the shared store instead of the upstream.
    pub from_store: u64,
    /// Files written to the shared store.
    pub stored: u64,
    /// Blobs in the store whose bytes did not match their name (deleted,
    /// then fetched from the upstream).
    pub store_corrupt: u64,
}

#[derive(Default)]
struct Counters {
    listings: AtomicU64,
    transfers: AtomicU64,
    joined: AtomicU64,
    failed: AtomicU64,
    served_offline: AtomicU64,
    from_store: AtomicU64,
    stored: AtomicU64,
    store_corrupt: AtomicU64,
}

/// Where a listed file comes from upstream.
#[derive(Clone)]
struct Origin {
    repo: RepoRef,
    /// The revision the listing was asked under (the cache's ref name).
    revision: Revision,
    commit: String,
    file: TreeFile,
    who: Identity,
}

/// The pull-through mirror; hand it to [`tektra_hub_server::ServerBuilder::upstream`].
pub struct Mirror {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Mirror {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mirror")
            .field("upstream", &self.inner.options.upstream)
            .finish_non_exhaustive()
    }
}

struct Inner {
    options: MirrorOptions,
    allow: HashSet<(Kind, String)>,
    /// One engine per identity the upstream is asked as.
    engines: Mutex<HashMap<Identity, Hub>>,
    /// (kind, id, revision, identity) -> when the upstream last confirmed it.
    fresh: Mutex<HashMap<(Kind, String, String, Identity), Instant>>,
    /// Commits whose listing is in the store.
    listed: Mutex<HashSet<(Kind, String, String)>>,
    gate: access::Gate,
    /// Blob etag -> where it comes from.
    origins: Mutex<HashMap<String, Origin>>,
    /// Blob etag -> the transfer running for it.
    transfers: Mutex<HashMap<String, Arc<follow::Shared>>>,
    /// When the upstream last failed to answer: for a while after, what
    /// the store holds is served without asking again.
    down_at: Mutex<Option<Instant>>,
    counters: Counters,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Engines kept at most; past it, the client-token ones are dropped.
const MAX_ENGINES: usize = 64;

/// How long an unreachable upstream is not asked again about what the
/// store can answer.
const DOWN_BACKOFF: Duration = Duration::from_secs(10);

impl Mirror {
    /// A mirror of `options.upstream` filling `options.cache_dir`.
    pub fn new(options: MirrorOptions) -> Result<Self, MirrorError> {
        let mut allow = HashSet::new();
        for text in &options.allow {
            let (kind, id) = tektra_hub_server::parse_repo_id(text)
                .ok_or_else(|| MirrorError::BadRepo(text.clone()))?;
            allow.insert((kind, id));
        }
        let gate = access::Gate::load(&options.cache_dir);
        let inner = Inner {
            allow,
            engines: Mutex::new(HashMap::new()),
            fresh: Mutex::new(HashMap::new()),
            listed: Mutex::new(HashSet::new()),
            gate,
            origins: Mutex::new(HashMap::new()),
            transfers: Mutex::new(HashMap::new()),
            down_at: Mutex::new(None),
            counters: Counters::default(),
            options,
        };
        // Fails early on bad engine options.
        inner.engine(&Identity::Anonymous)?;
        Ok(Mirror {
            inner: Arc::new(inner),
        })
    }

    /// A copy of the counters.
    #[must_use]
    pub fn stats(&self) -> MirrorStats {
        let c = &self.inner.counters;
        MirrorStats {
            listings: c.listings.load(Ordering::Relaxed),
            transfers: c.transfers.load(Ordering::Relaxed),
            joined: c.joined.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
            served_offline: c.served_offline.load(Ordering::Relaxed),
            from_store: c.from_store.load(Ordering::Relaxed),
            stored: c.stored.load(Ordering::Relaxed),
            store_corrupt: c.store_corrupt.load(Ordering::Relaxed),
        }
    }
}

fn repo_ref(kind: Kind, id: &str) -> Option<RepoRef> {
    let kind = match kind {
        Kind::Model => RepoType::Model,
        Kind::Dataset => RepoType::Dataset,
        Kind::Space => RepoType::Space,
    };
    RepoRef::new(kind, id).ok()
}

/// The answer for a repo the upstream does not show this client.
fn not_found() -> Refusal {
    Refusal {
        status: 401,
        code: Some("RepoNotFound"),
        message: "Repository not found".into(),
    }
}

/// What an upstream error means for the client: `None` when the upstream
/// could not be reached (the store may still answer).
fn refusal_for(error: &HubError) -> Option<Refusal> {
    match error {
        HubError::RepoNotFound { .. } | HubError::GatedRepo { .. } => Some(not_found()),
        HubError::RevisionNotFound { .. } => Some(Refusal {
            status: 404,
            code: Some("RevisionNotFound"),
            message: "Revision not found".into(),
        }),
        HubError::EntryNotFound { .. } => Some(Refusal {
            status: 404,
            code: Some("EntryNotFound"),
            message: "Entry not found".into(),
        }),
        HubError::Transport { .. }
        | HubError::Stalled { .. }
        | HubError::TooManyRetries { .. }
        | HubError::RetryAfterTooLong { .. } => None,
        HubError::Http { status, .. } if *status >= 500 || *status == 429 => None,
        other => Some(Refusal {
            status: 502,
            code: None,
            message: format!("the upstream's answer was refused: {other}"),
        }),
    }
}

fn unreachable_refusal() -> Refusal {
    Refusal {
        status: 504,
        code: None,
        message: "the upstream Hub cannot be reached and the mirror does not hold this".into(),
    }
}

impl Inner {
    fn engine(&self, who: &Identity) -> Result<Hub, HubError> {
        let mut engines = lock(&self.engines);
        if let Some(hub) = engines.get(who) {
            return Ok(hub.clone());
        }
        let mut options = self.options.engine.clone();
        options.endpoint.clone_from(&self.options.upstream);
        options.cache_dir.clone_from(&self.options.cache_dir);
        options.offline = false;
        options.token = match who {
            Identity::Anonymous => None,
            Identity::Mirror => self.options.token.clone(),
            Identity::Client(token) => Some(token.to_string()),
        };
        let hub = Hub::new(options)?;
        // One engine per client token keeps connections apart, but a client
        // sending many tokens must not grow the map without end.
        if engines.len() >= MAX_ENGINES {
            engines.retain(|who, _| !matches!(who, Identity::Client(_)));
        }
        engines.insert(who.clone(), hub.clone());
        Ok(hub)
    }

    fn is_fresh(&self, key: &(Kind, String, String, Identity)) -> bool {
        let ttl = self.options.ttl;
        let commit = tektra_hub_server::is_commit_hash(&key.2);
        lock(&self.fresh)
            .get(key)
            .is_some_and(|at| commit || at.elapsed() < ttl)
    }

    fn upstream_down(&self) -> bool {
        lock(&self.down_at).is_some_and(|at| at.elapsed() < DOWN_BACKOFF)
    }

    async fn refresh(&self, asked: Asked<'_>) -> Result<Option<Listing>, Refusal> {
        let Some(repo) = repo_ref(asked.kind, asked.id) else {
            return Err(not_found());
        };
        let repo_key = (asked.kind, asked.id.to_string());
        let who = if self.allow.contains(&repo_key) && self.options.token.is_some() {
            Identity::Mirror
        } else if self.gate.is_private(&repo_key) {
            match asked.token {
                Some(token) => Identity::client(token),
                None => return Err(not_found()),
            }
        } else {
            Identity::Anonymous
        };
        let key = (
            asked.kind,
            asked.id.to_string(),
            asked.revision.to_string(),
            who.clone(),
        );
        if asked.known && self.is_fresh(&key) {
            return Ok(None);
        }
        if asked.known && self.upstream_down() {
            return self.offline(&repo_key, &who);
        }
        let Ok(revision) = Revision::new(asked.revision) else {
            return Err(Refusal {
                status: 404,
                code: Some("RevisionNotFound"),
                message: "Revision not found".into(),
            });
        };
        match self.ask(&repo, &revision, &who, asked.kind).await {
            Ok(listing) => {
                lock(&self.fresh).insert(key, Instant::now());
                Ok(Some(listing))
            }
            // Not visible anonymously: perhaps private, and the client has a token.
            Err(e)
                if who == Identity::Anonymous
                    && matches!(
                        e,
                        HubError::RepoNotFound { .. } | HubError::GatedRepo { .. }
                    )
                    && asked.token.is_some() =>
            {
                let client = Identity::client(asked.token.unwrap_or_default());
                match self.ask(&repo, &revision, &client, asked.kind).await {
                    Ok(listing) => {
                        self.gate.mark_private(&repo_key);
                        let key = (key.0, key.1, key.2, client);
                        lock(&self.fresh).insert(key, Instant::now());
                        Ok(Some(listing))
                    }
                    Err(e) => self.failed(&e, &asked, &repo, &who).await,
                }
            }
            Err(e) => self.failed(&e, &asked, &repo, &who).await,
        }
    }

    async fn failed(
        &self,
        error: &HubError,
        asked: &Asked<'_>,
        repo: &RepoRef,
        who: &Identity,
    ) -> Result<Option<Listing>, Refusal> {
        match refusal_for(error) {
            Some(refusal) => Err(refusal),
            None => {
                tracing::warn!(error = %error, "the upstream cannot be reached: serving what the mirror holds");
                *lock(&self.down_at) = Some(Instant::now());
                if asked.known {
                    self.offline(&(asked.kind, asked.id.to_string()), who)
                } else if *who == Identity::Anonymous
                    && let Some(listing) = self
                        .listing_from_store(repo, asked.revision, asked.kind)
                        .await
                {
                    Ok(Some(listing))
                } else {
                    Err(unreachable_refusal())
                }
            }
        }
    }

    /// With the upstream down: a public repo is served as held; a private
    /// one only to a token the upstream accepted during this run.
    fn offline(
        &self,
        repo_key: &(Kind, String),
        who: &Identity,
    ) -> Result<Option<Listing>, Refusal> {
        if let Identity::Client(_) = who {
            let accepted = lock(&self.fresh)
                .keys()
                .any(|(k, id, _, w)| (*k, id) == (repo_key.0, &repo_key.1) && w == who);
            if !accepted {
                return Err(not_found());
            }
        }
        self.counters.served_offline.fetch_add(1, Ordering::Relaxed);
        Ok(None)
    }

    /// The upstream's commit for `revision`, and the commit's files when
    /// the store does not have them yet.
    async fn ask(
        &self,
        repo: &RepoRef,
        revision: &Revision,
        who: &Identity,
        kind: Kind,
    ) -> Result<Listing, HubError> {
        let hub = self.engine(who)?;
        let cancel = CancellationToken::new();
        self.counters.listings.fetch_add(1, Ordering::Relaxed);
        let info = hub.repo_info(repo, revision, &cancel).await?;
        let commit = info.commit;
        // Kept for offline use and for huggingface_hub reading the cache.
        let repo_cache = hub.cache().repo(repo);
        let _ = repo_cache.write_ref(revision, &commit);
        let listed_key = (kind, repo.id().to_string(), commit.clone());
        let mut files = None;
        if !lock(&self.listed).contains(&listed_key) {
            let tree = hub.tree(repo, &Revision::new(&commit)?, &cancel).await?;
            // Only what the upstream shows anyone: the store has no notion
            // of who may read a private repo.
            if let Some(store) = &self.options.store
                && *who == Identity::Anonymous
            {
                share_listing(store, repo, revision, &commit, &tree);
            }
            files = Some(self.entries(repo, revision, &commit, tree, who));
            lock(&self.listed).insert(listed_key);
        }
        Ok(Listing {
            revision: revision.as_str().to_string(),
            commit,
            files,
            token: match who {
                Identity::Client(token) => Some(token.to_string()),
                _ => None,
            },
        })
    }
}

impl Inner {
    /// The store's entries for `tree`, remembering where each blob comes from.
    fn entries(
        &self,
        repo: &RepoRef,
        revision: &Revision,
        commit: &str,
        tree: Vec<TreeFile>,
        who: &Identity,
    ) -> BTreeMap<String, FileEntry> {
        let repo_cache = hf_hub::cache::CacheDir::new(&self.options.cache_dir).repo(repo);
        let mut map = BTreeMap::new();
        let mut origins = lock(&self.origins);
        for file in tree {
            let name = hf_hub::cache::RepoCache::blob_name(&file.etag, commit, &file.path);
            map.insert(
                file.path.as_str().to_string(),
                FileEntry {
                    disk: repo_cache.blob_path(&name),
                    size: file.size,
                    oid: file.blob_id.clone(),
                    lfs_sha256: file.lfs.then(|| file.etag.clone()),
                    xet_hash: None,
                },
            );
            origins.insert(
                file.etag.clone(),
                Origin {
                    repo: repo.clone(),
                    revision: revision.clone(),
                    commit: commit.to_string(),
                    file,
                    who: who.clone(),
                },
            );
        }
        map
    }

    /// With the upstream unreachable and the cache not knowing `repo`: a
    /// listing another mirror left in the shared store.
    async fn listing_from_store(
        &self,
        repo: &RepoRef,
        revision: &str,
        kind: Kind,
    ) -> Option<Listing> {
        let store = self.options.store.as_ref()?;
        let revision = Revision::new(revision).ok()?;
        let stored = match store.listing(repo, &revision).await {
            Ok(stored) => stored?,
            Err(e) => {
                tracing::warn!(error = %e, "the shared store cannot be read");
                return None;
            }
        };
        let files = self.entries(
            repo,
            &revision,
            &stored.commit,
            stored.files,
            &Identity::Anonymous,
        );
        lock(&self.listed).insert((kind, repo.id().to_string(), stored.commit.clone()));
        self.counters.served_offline.fetch_add(1, Ordering::Relaxed);
        Some(Listing {
            revision: revision.as_str().to_string(),
            commit: stored.commit,
            files: Some(files),
            token: None,
        })
    }
}

/// Writes a listing the upstream gave to the shared store, in the
/// background: a slow store does not hold up the client.
fn share_listing(
    store: &tektra_store::BlobStore,
    repo: &RepoRef,
    revision: &Revision,
    commit: &str,
    tree: &[TreeFile],
) {
    let (store, repo, revision) = (store.clone(), repo.clone(), revision.clone());
    let listing = tektra_store::StoredListing {
        commit: commit.to_string(),
        files: tree.to_vec(),
    };
    tokio::spawn(async move {
        if let Err(e) = store.put_listing(&repo, &revision, &listing).await {
            tracing::warn!(error = %e, "could not write a listing to the shared store");
        }
    });
}

impl Upstream for Mirror {
    fn refresh<'a>(&'a self, asked: Asked<'a>) -> BoxFuture<'a, Result<Option<Listing>, Refusal>> {
        Box::pin(self.inner.refresh(asked))
    }

    fn fetch<'a>(
        &'a self,
        entry: &'a FileEntry,
        from: u64,
    ) -> BoxFuture<'a, Result<ByteStream, Refusal>> {
        Box::pin(async move {
            let etag = entry.etag().to_string();
            let origin = lock(&self.inner.origins).get(&etag).cloned();
            let Some(origin) = origin else {
                return Err(Refusal {
                    status: 404,
                    code: Some("EntryNotFound"),
                    message: "the mirror lost track of this file's origin: ask for its repo again"
                        .into(),
                });
            };
            let shared =
                follow::join_or_start(&self.inner, &etag, origin, (entry.size, entry.disk.clone()))
                    .map_err(|e| refusal_for(&e).unwrap_or_else(unreachable_refusal))?;
            Ok(follow::stream(shared, from))
        })
    }
}
