//! The whole path of a download: resolve -> plan -> transfer -> verify ->
//! commit to the cache, for one file or a snapshot of a repo.

mod blob;
mod located;
mod offline;

use std::path::PathBuf;

use futures::StreamExt;
use tektra_progress::{FileProgress, SharedReporter, Stage, Tracker};
use tokio_util::sync::CancellationToken;

use crate::cache::{BlobLock, BlobState, RepoCache};
use crate::client::{Hub, XetMode};
use crate::error::HubError;
use crate::filter::Filter;
use crate::ids::{RepoPath, RepoRef, Revision};
use crate::resolve::{FileMeta, TreeFile};
use crate::transfer::{self, Job, TransferStats};
use crate::verify::Expected;
use offline::{list_snapshot, offline_file, offline_snapshot};

/// A file that is in the cache now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedFile {
    /// Path inside the repo.
    pub repo_path: RepoPath,
    /// `snapshots/<commit>/<path>`: what to open.
    pub path: PathBuf,
    /// The commit it belongs to.
    pub commit: String,
    /// Size in bytes, when known (always, except offline without a listing).
    pub size: Option<u64>,
    /// Whether it was already there.
    pub was_cached: bool,
    /// What the transfer did (zero when cached).
    pub stats: TransferStats,
}

/// A repo at one commit, with the files asked for in the cache.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The commit.
    pub commit: String,
    /// `snapshots/<commit>/`.
    pub dir: PathBuf,
    /// The files, in listing order.
    pub files: Vec<CachedFile>,
}

impl Hub {
    /// Downloads one file (or finds it cached) without progress or cancellation.
    pub async fn file(
        &self,
        repo: &RepoRef,
        revision: &Revision,
        path: &RepoPath,
    ) -> Result<CachedFile, HubError> {
        self.download_file(
            repo,
            revision,
            path,
            tektra_progress::silent(),
            &CancellationToken::new(),
        )
        .await
    }

    /// Downloads one file into the cache, reporting progress and stopping
    /// when `cancel` fires (the partial file is kept for the next run).
    ///
    /// Online, the Hub is always asked which commit `revision` means, so a
    /// moved branch is noticed; offline, the cache answers alone.
    pub async fn download_file(
        &self,
        repo: &RepoRef,
        revision: &Revision,
        path: &RepoPath,
        reporter: SharedReporter,
        cancel: &CancellationToken,
    ) -> Result<CachedFile, HubError> {
        self.download_file_following(repo, revision, path, reporter, cancel, None)
            .await
    }

    /// [`Hub::download_file`], publishing on `frontier` how much of the
    /// partial file is written and hashed in order, so a reader can pass
    /// those bytes on while the rest arrives (see [`crate::Frontier`]). A
    /// file found in the cache publishes nothing: the call returns at once.
    pub async fn download_file_following(
        &self,
        repo: &RepoRef,
        revision: &Revision,
        path: &RepoPath,
        reporter: SharedReporter,
        cancel: &CancellationToken,
        frontier: Option<&crate::Frontier>,
    ) -> Result<CachedFile, HubError> {
        let repo_cache = self.cache().repo(repo);
        if self.options().offline {
            return offline_file(self, &repo_cache, repo, revision, path);
        }
        let tracker = Tracker::new(Stage::Resolving, reporter);
        tracker.begin_stage(Stage::Resolving, Some(format!("{repo}@{revision}")));
        let meta = self.resolve(repo, revision, path, cancel).await?;
        tracker.begin_stage(Stage::Downloading, Some(format!("{repo}@{}", meta.commit)));
        let progress = tracker.file(path.as_str(), Some(meta.size));
        let result = self
            .fetch_meta(
                &repo_cache,
                (repo, revision),
                &meta,
                (&progress, frontier),
                cancel,
            )
            .await;
        report_end(&progress, &result);
        let file = result?;
        tracker.end_stage(None);
        Ok(file)
    }

    /// Downloads the files of a repo that `filter` takes, several at once,
    /// and returns the snapshot folder. The listing is stored as
    /// `trees/<commit>.json`, so offline use can tell a complete snapshot
    /// from a partial one.
    pub async fn snapshot(
        &self,
        repo: &RepoRef,
        revision: &Revision,
        filter: &Filter,
        reporter: SharedReporter,
        cancel: &CancellationToken,
    ) -> Result<Snapshot, HubError> {
        let repo_cache = self.cache().repo(repo);
        if self.options().offline {
            return offline_snapshot(self, &repo_cache, repo, revision, filter);
        }
        let tracker = Tracker::new(Stage::Resolving, reporter);
        tracker.begin_stage(Stage::Resolving, Some(format!("{repo}@{revision}")));
        let info = self.repo_info(repo, revision, cancel).await?;
        let commit = info.commit;
        let at_commit = Revision::new(&commit)?;
        let tree = self.tree(repo, &at_commit, cancel).await?;
        repo_cache.write_ref(revision, &commit)?;
        // Best effort: the listing helps offline use but is not required.
        let _ = repo_cache.write_tree(&commit, &tree);
        self.cache().ensure_tag();
        let wanted: Vec<Planned> = tree
            .into_iter()
            .filter(|f| filter.matches(f.path.as_str()))
            .map(Planned::Listed)
            .collect();
        self.fetch_all(
            &repo_cache,
            repo,
            revision,
            &at_commit,
            wanted,
            &tracker,
            cancel,
        )
        .await
    }

    /// The files of `repo` at `revision` that are in the cache now, found
    /// without a request (online or offline): what an offline caller can
    /// choose from.
    ///
    /// ```no_run
    /// # async fn f(hub: &hf_hub::Hub) -> Result<(), hf_hub::HubError> {
    /// use hf_hub::ids::{RepoRef, Revision};
    /// let repo = RepoRef::model("HuggingFaceTB/SmolLM2-135M-Instruct")?;
    /// for path in hub.cached_files(&repo, &Revision::main())? {
    ///     println!("{path}");
    /// }
    /// # Ok(()) }
    /// ```
    pub fn cached_files(
        &self,
        repo: &RepoRef,
        revision: &Revision,
    ) -> Result<Vec<RepoPath>, HubError> {
        let repo_cache = self.cache().repo(repo);
        let Some(commit) = repo_cache.commit_of(revision) else {
            return Err(HubError::NotCached {
                what: format!("{repo}@{revision} (no ref for this revision)"),
                cache: self.cache().root().to_path_buf(),
            });
        };
        let dir = repo_cache.snapshot_dir(&commit);
        let mut present = list_snapshot(&dir)?;
        present.retain(|p| repo_cache.snapshot_path(&commit, p).is_file());
        Ok(present)
    }

    /// Downloads the given files of a repo, several at once, with one
    /// progress stream. Every file is resolved first, so a missing one fails
    /// before any byte moves.
    pub async fn download_files(
        &self,
        repo: &RepoRef,
        revision: &Revision,
        paths: &[RepoPath],
        reporter: SharedReporter,
        cancel: &CancellationToken,
    ) -> Result<Snapshot, HubError> {
        let repo_cache = self.cache().repo(repo);
        if self.options().offline {
            let files = paths
                .iter()
                .map(|p| offline_file(self, &repo_cache, repo, revision, p))
                .collect::<Result<Vec<_>, _>>()?;
            let commit = files.first().map(|f| f.commit.clone()).unwrap_or_default();
            crate::cache::mark_used(&repo_cache.snapshot_dir(&commit));
            return Ok(Snapshot {
                dir: repo_cache.snapshot_dir(&commit),
                commit,
                files,
            });
        }
        let tracker = Tracker::new(Stage::Resolving, reporter);
        tracker.begin_stage(Stage::Resolving, Some(format!("{repo}@{revision}")));
        // The futures are collected first: a lazy `map` over borrowed items
        // inside the stream makes the whole download future fail the `Send`
        // check of `tokio::spawn` (the closure's lifetimes are not general).
        let resolving: Vec<_> = paths
            .iter()
            .map(|p| self.resolve(repo, revision, p, cancel))
            .collect();
        let metas = futures::stream::iter(resolving)
            .buffered(8)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<Vec<_>, _>>()?;
        let Some(commit) = metas.first().map(|m| m.commit.clone()) else {
            return Err(HubError::InvalidArgument {
                kind: "file list",
                value: String::new(),
                reason: "no files given",
            });
        };
        let at_commit = Revision::new(&commit)?;
        let wanted = metas.into_iter().map(Planned::Resolved).collect();
        self.fetch_all(
            &repo_cache,
            repo,
            revision,
            &at_commit,
            wanted,
            &tracker,
            cancel,
        )
        .await
    }

    /// Fetches planned files concurrently (`max_files` at a time) under one
    /// tracker. One failure stops the rest; their partial files stay.
    #[allow(clippy::too_many_arguments)]
    async fn fetch_all(
        &self,
        repo_cache: &RepoCache,
        repo: &RepoRef,
        revision: &Revision,
        at_commit: &Revision,
        wanted: Vec<Planned>,
        tracker: &Tracker,
        cancel: &CancellationToken,
    ) -> Result<Snapshot, HubError> {
        let commit = at_commit.as_str().to_string();
        tracker.begin_stage(
            Stage::Downloading,
            Some(format!("{repo}@{commit}: {} files", wanted.len())),
        );
        let handles: Vec<FileProgress> = wanted
            .iter()
            .map(|f| tracker.file(f.path().as_str(), Some(f.size())))
            .collect();
        let stop = cancel.child_token();
        let jobs: Vec<_> = wanted
            .iter()
            .zip(handles.iter())
            .map(|(entry, progress)| {
                let stop = &stop;
                async move {
                    let result = match entry {
                        Planned::Listed(entry) => {
                            self.snapshot_file(
                                repo_cache, repo, revision, at_commit, entry, progress, stop,
                            )
                            .await
                        }
                        Planned::Resolved(meta) => {
                            self.fetch_meta(
                                repo_cache,
                                (repo, revision),
                                meta,
                                (progress, None),
                                stop,
                            )
                            .await
                        }
                    };
                    report_end(progress, &result);
                    if result.is_err() {
                        stop.cancel();
                    }
                    result
                }
            })
            .collect();
        let mut results: Vec<Result<CachedFile, HubError>> = futures::stream::iter(jobs)
            .buffered(self.options().max_files)
            .collect()
            .await;
        if cancel.is_cancelled() {
            return Err(HubError::Cancelled);
        }
        // The first real error, not the cancellations it caused.
        if let Some(pos) = results
            .iter()
            .position(|r| matches!(r, Err(e) if !matches!(e, HubError::Cancelled)))
        {
            return Err(results
                .swap_remove(pos)
                .err()
                .unwrap_or(HubError::Cancelled));
        }
        let files = results.into_iter().collect::<Result<Vec<_>, _>>()?;
        tracker.end_stage(None);
        // For `tektra cache prune`: the least recently used go first.
        crate::cache::mark_used(&repo_cache.snapshot_dir(&commit));
        Ok(Snapshot {
            dir: repo_cache.snapshot_dir(&commit),
            commit,
            files,
        })
    }

    #[allow(clippy::too_many_arguments)]
    async fn snapshot_file(
        &self,
        repo_cache: &RepoCache,
        repo: &RepoRef,
        revision: &Revision,
        at_commit: &Revision,
        entry: &TreeFile,
        progress: &FileProgress,
        cancel: &CancellationToken,
    ) -> Result<CachedFile, HubError> {
        let commit = at_commit.as_str();
        let name = RepoCache::blob_name(&entry.etag, commit, &entry.path);
        if blob::is_verified(repo_cache, &name, entry.size) {
            let path = repo_cache.link_snapshot(commit, &entry.path, &name)?;
            return Ok(cached(&entry.path, path, commit, Some(entry.size)));
        }
        let meta = self.resolve(repo, at_commit, &entry.path, cancel).await?;
        if meta.etag != entry.etag || meta.size != entry.size {
            return Err(HubError::Protocol {
                url: crate::client::display_url(&meta.url),
                reason: format!(
                    "{}: the listing says etag {} size {}, the file says etag {} size {}",
                    entry.path, entry.etag, entry.size, meta.etag, meta.size
                ),
            });
        }
        self.fetch_meta(
            repo_cache,
            (repo, revision),
            &meta,
            (progress, None),
            cancel,
        )
        .await
    }

    /// Plan -> transfer -> verify -> commit for a resolved file.
    async fn fetch_meta(
        &self,
        repo_cache: &RepoCache,
        (repo, revision): (&RepoRef, &Revision),
        meta: &FileMeta,
        (progress, frontier): (&FileProgress, Option<&crate::Frontier>),
        cancel: &CancellationToken,
    ) -> Result<CachedFile, HubError> {
        self.cache().ensure_tag();
        repo_cache.write_ref(revision, &meta.commit)?;
        let name = RepoCache::blob_name(&meta.etag, &meta.commit, &meta.path);
        let link = || {
            let path = repo_cache.link_snapshot(&meta.commit, &meta.path, &name)?;
            Ok(cached(&meta.path, path, &meta.commit, Some(meta.size)))
        };
        if blob::is_verified(repo_cache, &name, meta.size) {
            return link();
        }
        let lock_path = repo_cache.lock_path(&name);
        let _lock = BlobLock::acquire(&lock_path, self.options().lock_timeout, cancel, || {
            progress.note("waiting for another process that is downloading this file");
        })
        .await?;
        // Another process may have finished it while we waited; a blob we
        // did not commit is checked before it is trusted.
        match repo_cache.blob_state(&name, meta.size) {
            BlobState::Verified => return link(),
            BlobState::Unverified => {
                let blob = (name.as_str(), meta.etag.as_str(), meta.size);
                if blob::recheck(repo_cache, blob, progress, cancel).await? {
                    return link();
                }
            }
            BlobState::Missing => {}
        }
        let stats = self
            .transfer_verified(
                repo_cache,
                (repo, revision),
                (meta, &name),
                (progress, frontier),
                cancel,
            )
            .await?;
        repo_cache.commit_blob(&name, self.options().fsync)?;
        let path = repo_cache.link_snapshot(&meta.commit, &meta.path, &name)?;
        Ok(CachedFile {
            repo_path: meta.path.clone(),
            path,
            commit: meta.commit.clone(),
            size: Some(meta.size),
            was_cached: false,
            stats,
        })
    }

    /// Transfers the bytes; a hash mismatch discards them and tries once
    /// more before failing.
    async fn transfer_verified(
        &self,
        repo_cache: &RepoCache,
        (repo, revision): (&RepoRef, &Revision),
        (meta, name): (&FileMeta, &str),
        (progress, frontier): (&FileProgress, Option<&crate::Frontier>),
        cancel: &CancellationToken,
    ) -> Result<TransferStats, HubError> {
        let job = Job {
            url: meta.url.clone(),
            size: meta.size,
            expected: Expected::from_etag(&meta.etag),
            incomplete: repo_cache.incomplete_path(name),
            parts: repo_cache.parts_path(name),
            repo: repo.id().to_string(),
            revision: revision.as_str().to_string(),
            path: meta.path.as_str().to_string(),
            frontier: frontier.cloned(),
        };
        if job.expected == Expected::SizeOnly {
            tracing::warn!(file = %meta.path, etag = %meta.etag, "etag is not a content hash: checking the size only");
        }
        match self.transfer_any(meta, &job, progress, cancel).await {
            Err(HubError::HashMismatch {
                expected, actual, ..
            }) => {
                progress.note(format!(
                    "content hash mismatch (expected {expected}, got {actual}): bytes discarded, downloading again"
                ));
                progress.set_done(0);
                self.transfer_any(meta, &job, progress, cancel).await
            }
            other => other,
        }
    }

    /// The transport for one attempt: Xet when the file has it and it is
    /// enabled, plain HTTP otherwise. With [`XetMode::Auto`], a Xet failure
    /// of any kind is reported as a note and the file is fetched once more
    /// over HTTP; with [`XetMode::Require`] it is the error.
    async fn transfer_any(
        &self,
        meta: &FileMeta,
        job: &Job,
        progress: &FileProgress,
        cancel: &CancellationToken,
    ) -> Result<TransferStats, HubError> {
        let mode = self.options().xet;
        if let Some(xet) = &meta.xet
            && mode != XetMode::Disabled
        {
            #[cfg(feature = "xet")]
            {
                if mode == XetMode::Auto && crate::xet::has_http_partial(job) {
                    // An interrupted HTTP download resumes where it stopped;
                    // Xet would start over.
                    progress.note("resuming an earlier partial download over HTTP");
                } else {
                    match crate::xet::transfer(self, xet, job, progress, cancel).await {
                        Ok(stats) => return Ok(stats),
                        Err(HubError::Cancelled) => return Err(HubError::Cancelled),
                        Err(e) if mode == XetMode::Require => return Err(e),
                        Err(e) => {
                            // The note is the warning; a warn! too would
                            // print the same line twice in the CLI.
                            tracing::info!(file = %meta.path, error = %e, "Xet failed: falling back to HTTP");
                            progress.note(format!("{e}; downloading over HTTP instead"));
                            progress.set_done(0);
                        }
                    }
                }
            }
            #[cfg(not(feature = "xet"))]
            {
                let _ = xet;
                if mode == XetMode::Require {
                    return Err(HubError::Backend {
                        backend: "xet",
                        file: meta.path.as_str().to_string(),
                        reason: "Xet was required, but this build has no Xet support (built without the `xet` feature)".into(),
                    });
                }
            }
        }
        transfer::run(self, job, progress, cancel).await
    }
}

/// A file to fetch: from a listing (resolved lazily, skipped when its blob
/// is cached) or already resolved.
enum Planned {
    Listed(TreeFile),
    Resolved(FileMeta),
}

impl Planned {
    fn path(&self) -> &RepoPath {
        match self {
            Planned::Listed(f) => &f.path,
            Planned::Resolved(m) => &m.path,
        }
    }

    fn size(&self) -> u64 {
        match self {
            Planned::Listed(f) => f.size,
            Planned::Resolved(m) => m.size,
        }
    }
}

fn report_end(progress: &FileProgress, result: &Result<CachedFile, HubError>) {
    match result {
        Ok(file) if file.was_cached => progress.cached(),
        Ok(_) => progress.finish(),
        Err(HubError::Cancelled) => progress.cancel(),
        Err(e) => progress.fail(e.to_string()),
    }
}

pub(super) fn cached(
    repo_path: &RepoPath,
    path: PathBuf,
    commit: &str,
    size: Option<u64>,
) -> CachedFile {
    CachedFile {
        repo_path: repo_path.clone(),
        path,
        commit: commit.to_string(),
        size,
        was_cached: true,
        stats: TransferStats::default(),
    }
}
