//! A blob tier in an object store that mirrors on several machines share,
//! and that `tektra download --source` reads a model from.
//!
//! Layout under the store's prefix:
//!
//! ```text
//! blobs/<etag>                          a file's bytes; the etag is its sha256
//!                                       (LFS) or git blob sha1, so the name
//!                                       says what the bytes must hash to
//! models--org--name/refs/<revision>     the commit a branch or tag named
//! models--org--name/trees/<commit>.json the commit's files, in the tree
//!                                       cache's format (hf_hub::cache)
//! ```
//!
//! Blobs are named by their content, so two mirrors writing the same one
//! at once write the same bytes, and a blob is never trusted: every read
//! hashes it, and one that does not match its name is reported as
//! [`StoreError::Corrupt`] so the caller deletes it and fetches again.
//!
//! ```no_run
//! # async fn demo() -> Result<(), tektra_store::StoreError> {
//! use tektra_store::{BlobStore, StoreOptions};
//! use hf_hub::ids::{RepoRef, Revision};
//! let store = BlobStore::open(&StoreOptions::new("s3://models/hub").endpoint("http://127.0.0.1:9000"))?;
//! let repo = RepoRef::model("HuggingFaceTB/SmolLM2-135M").map_err(tektra_store::StoreError::Hub)?;
//! if let Some(listing) = store.listing(&repo, &Revision::main()).await? {
//!     println!("{} files at {}", listing.files.len(), listing.commit);
//! }
//! # Ok(()) }
//! ```

mod blobs;
mod listing;
mod options;
mod pull;

use std::path::PathBuf;
use std::sync::Arc;

use object_store::ObjectStore;
use object_store::aws::AmazonS3;
use object_store::path::Path;

pub use blobs::Put;
pub use listing::StoredListing;
pub use options::StoreOptions;
pub use pull::{PullOptions, pull};

/// What went wrong with a store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The store URL cannot be used.
    #[error("store {url:?}: {reason}")]
    BadUrl {
        /// As given.
        url: String,
        /// Why not.
        reason: String,
    },
    /// The object store client refused its settings.
    #[error("store {url:?}: {reason}")]
    Config {
        /// As given.
        url: String,
        /// The client's reason (never a credential).
        reason: String,
    },
    /// A request to the store failed.
    #[error("store {store}: {action} {key}: {source}")]
    Object {
        /// The store, without credentials.
        store: String,
        /// What was being done.
        action: &'static str,
        /// The object's key.
        key: String,
        /// The client's error (boxed: it is large, and errors travel far).
        #[source]
        source: Box<object_store::Error>,
    },
    /// A local file could not be read or written.
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// Which file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The store holds something that is not what its name says: a blob
    /// whose bytes hash otherwise, a listing that does not parse.
    #[error("store {store}: {key} is corrupt: {reason}")]
    Corrupt {
        /// The store, without credentials.
        store: String,
        /// The object's key.
        key: String,
        /// How it differs.
        reason: String,
    },
    /// The store does not hold what was asked for.
    #[error("store {store} does not hold {what}")]
    Missing {
        /// The store, without credentials.
        store: String,
        /// What was asked for.
        what: String,
    },
    /// The download engine failed (transport, verification, cache).
    #[error(transparent)]
    Hub(#[from] hf_hub::HubError),
}

/// A store opened for reading and writing.
#[derive(Clone)]
pub struct BlobStore {
    objects: Arc<dyn ObjectStore>,
    s3: Option<Arc<AmazonS3>>,
    root: Option<PathBuf>,
    prefix: Path,
    /// The URL as given: it never holds credentials (those come from the
    /// environment or [`StoreOptions::credentials`]).
    shown: String,
}

impl std::fmt::Debug for BlobStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobStore")
            .field("url", &self.shown)
            .finish_non_exhaustive()
    }
}

impl BlobStore {
    /// Opens the store `options` names. Nothing is asked of it yet.
    pub fn open(options: &StoreOptions) -> Result<Self, StoreError> {
        let opened = options::open(options)?;
        Ok(BlobStore {
            objects: opened.objects,
            s3: opened.s3,
            root: opened.root,
            prefix: opened.prefix,
            shown: options.url.clone(),
        })
    }

    /// The store's URL, for messages.
    #[must_use]
    pub fn url(&self) -> &str {
        &self.shown
    }

    fn key(&self, parts: &[&str]) -> Path {
        parts
            .iter()
            .fold(self.prefix.clone(), |path, part| path.join(*part))
    }

    fn object_error(
        &self,
        action: &'static str,
        key: &Path,
        source: object_store::Error,
    ) -> StoreError {
        StoreError::Object {
            store: self.shown.clone(),
            action,
            key: key.to_string(),
            source: Box::new(source),
        }
    }
}

/// Whether `etag` can name a blob: a sha256 or a git sha1, in lowercase
/// hex. Anything else (a server's quoted or weak etag) is not a content
/// address and is not stored.
#[must_use]
pub fn is_content_address(etag: &str) -> bool {
    matches!(etag.len(), 40 | 64)
        && etag
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}
