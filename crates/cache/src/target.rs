//! What a command names: `REPO[@REV]`, where REPO is `org/name` or a cache
//! id (`model/org/name`, `dataset/org/name`) and REV a ref or a commit
//! (a prefix of at least 7 hex digits will do).

use crate::CacheError;
use crate::scan::{CacheScan, Repo, RepoKind, Revision};

/// A repo, and optionally one of its revisions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Model unless the name says otherwise.
    pub kind: RepoKind,
    /// `org/name`.
    pub repo: String,
    /// A ref or commit; every revision when absent.
    pub revision: Option<String>,
}

impl std::str::FromStr for Target {
    type Err = CacheError;

    fn from_str(s: &str) -> Result<Self, CacheError> {
        let bad = || CacheError::BadTarget(s.to_string());
        let (repo, revision) = match s.split_once('@') {
            Some((r, v)) if !v.is_empty() => (r, Some(v.to_string())),
            Some(_) => return Err(bad()),
            None => (s, None),
        };
        let (kind, repo) = match repo.split_once('/') {
            Some(("model", rest)) => (RepoKind::Model, rest),
            Some(("dataset", rest)) => (RepoKind::Dataset, rest),
            Some(("space", rest)) => (RepoKind::Space, rest),
            _ => (RepoKind::Model, repo),
        };
        let parts: Vec<&str> = repo.split('/').collect();
        let ok = |p: &str| {
            !p.is_empty()
                && p != "."
                && p != ".."
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        };
        if parts.len() > 2 || !parts.iter().all(|p| ok(p)) {
            return Err(bad());
        }
        Ok(Target {
            kind,
            repo: repo.to_string(),
            revision,
        })
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.kind.name(), self.repo)?;
        if let Some(r) = &self.revision {
            write!(f, "@{r}")?;
        }
        Ok(())
    }
}

impl Target {
    /// The repo and the revisions this target names in `scan`; an unknown
    /// repo or revision is an error naming it.
    pub fn resolve<'a>(
        &self,
        scan: &'a CacheScan,
    ) -> Result<(&'a Repo, Vec<&'a Revision>), CacheError> {
        let repo = scan.repo(self.kind, &self.repo).ok_or_else(|| {
            CacheError::UnknownRepo(format!("{}/{}", self.kind.name(), self.repo))
        })?;
        let Some(rev) = &self.revision else {
            return Ok((repo, repo.revisions.iter().collect()));
        };
        let by_ref: Vec<&Revision> = repo
            .revisions
            .iter()
            .filter(|r| r.refs.iter().any(|x| x == rev))
            .collect();
        if !by_ref.is_empty() {
            return Ok((repo, by_ref));
        }
        let hex = rev.len() >= 7 && rev.bytes().all(|b| b.is_ascii_hexdigit());
        let by_commit: Vec<&Revision> = repo
            .revisions
            .iter()
            .filter(|r| hex && r.commit.starts_with(rev.as_str()))
            .collect();
        match by_commit.len() {
            1 => Ok((repo, by_commit)),
            0 => Err(CacheError::UnknownRevision {
                repo: repo.cache_id(),
                revision: rev.clone(),
            }),
            _ => Err(CacheError::AmbiguousRevision {
                repo: repo.cache_id(),
                revision: rev.clone(),
            }),
        }
    }
}
