//! Downloads whose commit, blob and address are known without asking the
//! Hub: an object store shared by mirrors hands out signed URLs for the
//! blobs a stored listing names. The bytes still go through the same plan,
//! transfer, verify and commit as a Hub download, so a store holding wrong
//! bytes under a blob's name fails the hash like any server would.

use tektra_progress::FileProgress;
use tokio_util::sync::CancellationToken;

use super::CachedFile;
use crate::client::Hub;
use crate::error::HubError;
use crate::ids::{RepoRef, Revision};
use crate::resolve::FileMeta;

impl Hub {
    /// Downloads one file from the URL `meta` carries into the cache as
    /// `repo`'s file at `meta.commit` (`revision` is the name its ref is
    /// stored under), publishing its in-order prefix on `frontier` as
    /// [`Hub::download_file_following`] does. Nothing is asked of the Hub,
    /// and the token goes only to URLs on the Hub's origin, as always.
    /// The caller reports the file's end on `progress`.
    ///
    /// ```no_run
    /// # async fn f(hub: &hf_hub::Hub, meta: hf_hub::resolve::FileMeta) -> Result<(), hf_hub::HubError> {
    /// use hf_hub::ids::{RepoRef, Revision};
    /// let repo = RepoRef::model("HuggingFaceTB/SmolLM2-135M-Instruct")?;
    /// let tracker = hf_hub::progress::Tracker::new(hf_hub::progress::Stage::Downloading, hf_hub::progress::silent());
    /// let progress = tracker.file(meta.path.as_str(), Some(meta.size));
    /// let cancel = tokio_util::sync::CancellationToken::new();
    /// let file = hub.download_located(&repo, &Revision::main(), &meta, &progress, &cancel, None).await?;
    /// println!("{}", file.path.display());
    /// # Ok(()) }
    /// ```
    pub async fn download_located(
        &self,
        repo: &RepoRef,
        revision: &Revision,
        meta: &FileMeta,
        progress: &FileProgress,
        cancel: &CancellationToken,
        frontier: Option<&crate::Frontier>,
    ) -> Result<CachedFile, HubError> {
        let repo_cache = self.cache().repo(repo);
        self.fetch_meta(
            &repo_cache,
            (repo, revision),
            meta,
            (progress, frontier),
            cancel,
        )
        .await
    }
}
