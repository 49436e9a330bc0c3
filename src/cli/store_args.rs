//! How `serve --store` and `download --source` reach an object store.
//! Credentials come only from the environment (`AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`): a flag would show them
//! in the process list.

use hf_hub::HubError;
use tektra_store::{BlobStore, StoreError, StoreOptions};

/// Object store settings besides its URL.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct StoreArgs {
    /// The S3 endpoint of a self-hosted store (Garage, MinIO, s3s-fs...)
    /// [default: AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL, else AWS].
    #[arg(long, value_name = "URL")]
    store_endpoint: Option<String>,
    /// The S3 region [default: AWS_REGION or AWS_DEFAULT_REGION, else us-east-1].
    #[arg(long, value_name = "REGION")]
    store_region: Option<String>,
}

impl StoreArgs {
    /// Opens the store at `url`.
    pub(crate) fn open(&self, url: &str) -> Result<BlobStore, StoreError> {
        let mut options = StoreOptions::new(url);
        options.endpoint.clone_from(&self.store_endpoint);
        options.region.clone_from(&self.store_region);
        BlobStore::open(&options)
    }
}

/// A store error as the download path reports errors.
pub(crate) fn as_hub_error(e: StoreError, what: &str) -> HubError {
    match e {
        StoreError::Hub(e) => e,
        other => HubError::Backend {
            backend: "store",
            file: what.to_string(),
            reason: other.to_string(),
        },
    }
}
