//! `tektra download --source`: a model straight from a store into a hub
//! cache, laid out as a Hub download would leave it.

use futures::StreamExt;
use hf_hub::filter::Filter;
use hf_hub::ids::{RepoRef, Revision};
use hf_hub::{CachedFile, Hub, Snapshot};
use tektra_progress::{SharedReporter, Stage, Tracker};
use tokio_util::sync::CancellationToken;

use crate::{BlobStore, StoreError};

/// What to take from the store.
#[derive(Debug, Clone, Default)]
pub struct PullOptions {
    /// The files of the listing to download.
    pub filter: Filter,
    /// Exactly these files instead (each must be in the listing).
    pub paths: Vec<String>,
}

/// Downloads the files of `repo` at `revision` that `options` takes from
/// `store` into `hub`'s cache, `hub.options().max_files` at a time, with
/// one progress stream. Every blob is hashed against its name on the way.
///
/// ```no_run
/// # async fn demo(hub: &hf_hub::Hub) -> Result<(), tektra_store::StoreError> {
/// use hf_hub::ids::{RepoRef, Revision};
/// use tektra_store::{BlobStore, PullOptions, StoreOptions, pull};
/// let store = BlobStore::open(&StoreOptions::new("file:///srv/models"))?;
/// let repo = RepoRef::model("HuggingFaceTB/SmolLM2-135M-Instruct")?;
/// let cancel = tokio_util::sync::CancellationToken::new();
/// let snapshot = pull(&store, hub, (&repo, &Revision::main()), &PullOptions::default(),
///     hf_hub::progress::silent(), &cancel).await?;
/// println!("{}", snapshot.dir.display());
/// # Ok(()) }
/// ```
pub async fn pull(
    store: &BlobStore,
    hub: &Hub,
    (repo, revision): (&RepoRef, &Revision),
    options: &PullOptions,
    reporter: SharedReporter,
    cancel: &CancellationToken,
) -> Result<Snapshot, StoreError> {
    let tracker = Tracker::new(Stage::Resolving, reporter);
    tracker.begin_stage(
        Stage::Resolving,
        Some(format!("{repo}@{revision} in {}", store.url())),
    );
    let listing = store
        .listing(repo, revision)
        .await?
        .ok_or_else(|| StoreError::Missing {
            store: store.url().to_string(),
            what: format!("{repo}@{revision}"),
        })?;
    let commit = listing.commit.as_str();
    let repo_cache = hub.cache().repo(repo);
    hub.cache().ensure_tag();
    repo_cache.write_ref(revision, commit)?;
    // For offline use, as a Hub snapshot leaves it.
    let _ = repo_cache.write_tree(commit, &listing.files);
    let wanted: Vec<_> = if options.paths.is_empty() {
        listing
            .files
            .iter()
            .filter(|f| options.filter.matches(f.path.as_str()))
            .collect()
    } else {
        let mut wanted = Vec::with_capacity(options.paths.len());
        for path in &options.paths {
            let file = listing.files.iter().find(|f| f.path.as_str() == path);
            wanted.push(file.ok_or_else(|| StoreError::Missing {
                store: store.url().to_string(),
                what: format!("{path} in {repo}@{commit}"),
            })?);
        }
        wanted
    };
    tracker.begin_stage(
        Stage::Downloading,
        Some(format!("{repo}@{commit}: {} files", wanted.len())),
    );
    let stop = cancel.child_token();
    let jobs: Vec<_> = wanted
        .iter()
        .map(|file| {
            let progress = tracker.file(file.path.as_str(), Some(file.size));
            let stop = &stop;
            async move {
                let result = store
                    .fetch_blob(hub, (repo, revision, commit), file, &progress, stop, None)
                    .await;
                match &result {
                    Ok(f) if f.was_cached => progress.cached(),
                    Ok(_) => progress.finish(),
                    Err(StoreError::Hub(hf_hub::HubError::Cancelled)) => progress.cancel(),
                    Err(e) => {
                        progress.fail(e.to_string());
                        stop.cancel();
                    }
                }
                result
            }
        })
        .collect();
    let results: Vec<Result<CachedFile, StoreError>> = futures::stream::iter(jobs)
        .buffered(hub.options().max_files.max(1))
        .collect()
        .await;
    if cancel.is_cancelled() {
        return Err(StoreError::Hub(hf_hub::HubError::Cancelled));
    }
    let mut files = Vec::with_capacity(results.len());
    let mut first_error = None;
    for result in results {
        match result {
            Ok(file) => files.push(file),
            // The first real error, not the cancellations it caused.
            Err(StoreError::Hub(hf_hub::HubError::Cancelled)) => {}
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    if files.len() != wanted.len() {
        return Err(StoreError::Hub(hf_hub::HubError::Cancelled));
    }
    tracker.end_stage(None);
    hf_hub::cache::mark_used(&repo_cache.snapshot_dir(commit));
    Ok(Snapshot {
        dir: repo_cache.snapshot_dir(commit),
        commit: commit.to_string(),
        files,
    })
}
