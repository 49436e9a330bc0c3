//! A pull job's work: the files a load of the model would fetch, or the
//! repo's files a filter picks, downloaded into the cache (verified,
//! resumable: a cancelled pull keeps its partial files).

use std::sync::Arc;

use hf_hub::filter::Filter;
use hf_hub::ids::{RepoRef, Revision};
use hf_hub::{Hub, HubError, HubOptions};
use tektra_inference::ModelRef;

use crate::jobs::{Job, JobState};

/// Runs `job` to its end.
pub(crate) async fn run(job: Arc<Job>, model: ModelRef, hub: HubOptions) {
    job.set_running();
    let outcome = fetch(&job, &model, hub).await;
    job.finish(outcome);
}

async fn fetch(
    job: &Arc<Job>,
    model: &ModelRef,
    hub: HubOptions,
) -> Result<String, (JobState, String)> {
    let reporter: tektra_progress::SharedReporter = job.clone();
    let filtered = !job.key.include.is_empty() || !job.key.exclude.is_empty();
    if !filtered {
        return tektra_inference::fetch(model, &hub, reporter, &job.cancel)
            .await
            .map(|files| files.path().display().to_string())
            .map_err(|e| {
                if e.is_cancelled() {
                    (JobState::Cancelled, "cancelled".into())
                } else {
                    (JobState::Failed, e.to_string())
                }
            });
    }
    let ModelRef::Hub { repo, revision, .. } = model else {
        return Err((JobState::Failed, "only Hub models are pulled".into()));
    };
    let failed = |e: HubError| match e {
        HubError::Cancelled => (JobState::Cancelled, "cancelled".to_string()),
        e => (JobState::Failed, e.to_string()),
    };
    let hub = Hub::new(hub).map_err(failed)?;
    let repo = RepoRef::model(repo).map_err(failed)?;
    let revision = match revision {
        Some(r) => Revision::new(r).map_err(failed)?,
        None => Revision::main(),
    };
    let filter = Filter::new(&job.key.include, &job.key.exclude).map_err(failed)?;
    hub.snapshot(&repo, &revision, &filter, reporter, &job.cancel)
        .await
        .map(|s| s.dir.display().to_string())
        .map_err(failed)
}
