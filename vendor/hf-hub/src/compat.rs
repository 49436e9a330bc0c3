//! Upstream hf-hub 0.4.3's root types, same names and signatures: `Repo`,
//! `RepoType`, `Cache`, `CacheRepo`. They hold plain strings as upstream's
//! do; the engine validates them when they are used.

use std::path::PathBuf;

use crate::env::EnvConfig;
use crate::ids::{RepoPath, RepoRef, Revision};

/// The type of repo to interact with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RepoType {
    /// A model: weights and configuration.
    Model,
    /// A dataset.
    Dataset,
    /// A space (an app).
    Space,
}

impl RepoType {
    /// `models`, `datasets` or `spaces`, as in cache folder names and API paths.
    #[must_use]
    pub fn plural(self) -> &'static str {
        match self {
            RepoType::Model => "models",
            RepoType::Dataset => "datasets",
            RepoType::Space => "spaces",
        }
    }
}

/// A hub cache folder. `Send + Sync`: dependents keep one in a static.
#[derive(Clone, Debug)]
pub struct Cache {
    path: PathBuf,
}

impl Cache {
    /// A cache at `path` (the `hub` folder).
    #[must_use]
    pub fn new(path: PathBuf) -> Self {
        Self { path }
    }

    /// The cache named by `HF_HUB_CACHE`, else `HF_HOME/hub`, else
    /// `~/.cache/huggingface/hub`.
    #[must_use]
    pub fn from_env() -> Self {
        Self::new(EnvConfig::from_env().cache_dir)
    }

    /// The cache folder.
    #[must_use]
    pub fn path(&self) -> &PathBuf {
        &self.path
    }

    /// Where the token file is: `token` next to the `hub` folder.
    #[must_use]
    pub fn token_path(&self) -> PathBuf {
        let mut path = self.path.clone();
        path.pop();
        path.push("token");
        path
    }

    /// The token in the token file, if any.
    #[must_use]
    pub fn token(&self) -> Option<String> {
        crate::env::read_token_file(&self.token_path())
    }

    /// Operations on one repo of this cache.
    #[must_use]
    pub fn repo(&self, repo: Repo) -> CacheRepo {
        CacheRepo::new(self.clone(), repo)
    }

    /// Shorthand for a model repo.
    ///
    /// ```
    /// # use hf_hub::Cache;
    /// let cache = Cache::new("/tmp/".into());
    /// let repo = cache.model("gpt2".to_string());
    /// assert!(repo.get("config.json").is_none());
    /// ```
    #[must_use]
    pub fn model(&self, model_id: String) -> CacheRepo {
        self.repo(Repo::new(model_id, RepoType::Model))
    }

    /// Shorthand for a dataset repo.
    #[must_use]
    pub fn dataset(&self, model_id: String) -> CacheRepo {
        self.repo(Repo::new(model_id, RepoType::Dataset))
    }

    /// Shorthand for a space repo.
    #[must_use]
    pub fn space(&self, model_id: String) -> CacheRepo {
        self.repo(Repo::new(model_id, RepoType::Space))
    }

    pub(crate) fn engine(&self) -> crate::cache::CacheDir {
        crate::cache::CacheDir::new(self.path.clone())
    }
}

impl Default for Cache {
    fn default() -> Self {
        Self::new(crate::env::default_home().join("hub"))
    }
}

/// One repo inside a [`Cache`].
#[derive(Debug)]
pub struct CacheRepo {
    cache: Cache,
    repo: Repo,
}

impl CacheRepo {
    fn new(cache: Cache, repo: Repo) -> Self {
        Self { cache, repo }
    }

    /// The cached file for `filename` at the repo's revision, if present.
    /// Invalid names (`..`, absolute paths) are never found.
    #[must_use]
    pub fn get(&self, filename: &str) -> Option<PathBuf> {
        let (repo, revision) = self.repo.engine().ok()?;
        let path = RepoPath::new(filename).ok()?;
        self.cache
            .engine()
            .repo(&repo)
            .cached_file(&revision, &path)
    }

    /// Records that the repo's revision points at `commit_hash`.
    pub fn create_ref(&self, commit_hash: &str) -> Result<(), std::io::Error> {
        let invalid = |e: crate::HubError| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string())
        };
        let (repo, revision) = self.repo.engine().map_err(invalid)?;
        self.cache
            .engine()
            .repo(&repo)
            .write_ref(&revision, commit_hash.trim())
            .map_err(|e| match e {
                crate::HubError::Io { source, .. } => source,
                other => invalid(other),
            })
    }
}

/// A repo on the Hub at a revision.
#[derive(Clone, Debug)]
pub struct Repo {
    repo_id: String,
    repo_type: RepoType,
    revision: String,
}

impl Repo {
    /// The repo at its default branch (`main`).
    #[must_use]
    pub fn new(repo_id: String, repo_type: RepoType) -> Self {
        Self::with_revision(repo_id, repo_type, "main".to_string())
    }

    /// The repo at `revision`.
    #[must_use]
    pub fn with_revision(repo_id: String, repo_type: RepoType, revision: String) -> Self {
        Self {
            repo_id,
            repo_type,
            revision,
        }
    }

    /// A model repo.
    #[must_use]
    pub fn model(repo_id: String) -> Self {
        Self::new(repo_id, RepoType::Model)
    }

    /// A dataset repo.
    #[must_use]
    pub fn dataset(repo_id: String) -> Self {
        Self::new(repo_id, RepoType::Dataset)
    }

    /// A space repo.
    #[must_use]
    pub fn space(repo_id: String) -> Self {
        Self::new(repo_id, RepoType::Space)
    }

    /// The cache folder name, e.g. `models--org--name`.
    #[must_use]
    pub fn folder_name(&self) -> String {
        format!("{}--{}", self.repo_type.plural(), self.repo_id).replace('/', "--")
    }

    /// The revision.
    #[must_use]
    pub fn revision(&self) -> &str {
        &self.revision
    }

    /// The URL part of the repo: `id`, `datasets/id` or `spaces/id`.
    #[must_use]
    pub fn url(&self) -> String {
        match self.repo_type {
            RepoType::Model => self.repo_id.clone(),
            other => format!("{}/{}", other.plural(), self.repo_id),
        }
    }

    /// The revision with `/` escaped for URLs.
    #[must_use]
    pub fn url_revision(&self) -> String {
        self.revision.replace('/', "%2F")
    }

    /// The API path of the repo's revision info.
    #[must_use]
    pub fn api_url(&self) -> String {
        format!(
            "{}/{}/revision/{}",
            self.repo_type.plural(),
            self.repo_id,
            self.url_revision()
        )
    }

    /// The validated engine form of this repo and revision.
    pub fn engine(&self) -> Result<(RepoRef, Revision), crate::HubError> {
        Ok((
            RepoRef::new(self.repo_type, &self.repo_id)?,
            Revision::new(&self.revision)?,
        ))
    }
}
