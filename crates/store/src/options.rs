//! Where a store is and how to reach it: `s3://bucket/prefix` with the
//! usual AWS environment variables, or `file:///dir`.

use std::path::PathBuf;
use std::sync::Arc;

use object_store::ObjectStore;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::local::LocalFileSystem;
use object_store::path::Path;

use crate::StoreError;

/// How to open a store. Credentials are never shown by `Debug`.
///
/// ```
/// let options = tektra_store::StoreOptions::new("s3://models/hub")
///     .endpoint("http://127.0.0.1:9000");
/// assert!(!format!("{options:?}").contains("secret"));
/// ```
#[derive(Clone, Default)]
pub struct StoreOptions {
    /// `s3://bucket[/prefix]` or `file:///absolute/dir[/prefix]`.
    pub url: String,
    /// An S3 endpoint other than AWS's (Garage, MinIO, s3s-fs...). Else
    /// `AWS_ENDPOINT_URL_S3` or `AWS_ENDPOINT_URL`.
    pub endpoint: Option<String>,
    /// The region. Else `AWS_REGION` or `AWS_DEFAULT_REGION`, else
    /// `us-east-1`.
    pub region: Option<String>,
    /// Access key id and secret. Else `AWS_ACCESS_KEY_ID` and
    /// `AWS_SECRET_ACCESS_KEY` (and `AWS_SESSION_TOKEN`).
    pub credentials: Option<(String, String)>,
}

impl std::fmt::Debug for StoreOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreOptions")
            .field("url", &self.url)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field(
                "credentials",
                &self.credentials.as_ref().map(|_| "<hidden>"),
            )
            .finish()
    }
}

impl StoreOptions {
    /// Options for `url`, everything else from the environment.
    #[must_use]
    pub fn new(url: &str) -> Self {
        StoreOptions {
            url: url.to_string(),
            ..StoreOptions::default()
        }
    }

    /// With an S3 endpoint.
    #[must_use]
    pub fn endpoint(mut self, endpoint: &str) -> Self {
        self.endpoint = Some(endpoint.to_string());
        self
    }
}

/// What [`StoreOptions`] opened.
pub(crate) struct Opened {
    pub(crate) objects: Arc<dyn ObjectStore>,
    /// S3: hands out signed URLs for the engine to read blobs through.
    pub(crate) s3: Option<Arc<AmazonS3>>,
    /// `file://`: the directory objects live under.
    pub(crate) root: Option<PathBuf>,
    pub(crate) prefix: Path,
}

pub(crate) fn open(options: &StoreOptions) -> Result<Opened, StoreError> {
    let bad = |reason: &str| StoreError::BadUrl {
        url: options.url.clone(),
        reason: reason.to_string(),
    };
    let (scheme, rest) = options
        .url
        .split_once("://")
        .ok_or_else(|| bad("expected s3://bucket/prefix or file:///dir"))?;
    match scheme {
        "s3" => {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(bad("no bucket"));
            }
            let prefix = Path::parse(prefix).map_err(|e| bad(&e.to_string()))?;
            // The client's TLS comes from the same rustls provider as the
            // engine's; without one installed, building it would panic.
            hf_hub::install_tls_provider();
            let builder = s3_builder(options, bucket);
            // A self-hosted store has no instance metadata to fall back on:
            // say what is missing instead of showing that lookup's failure.
            let has_keys = builder
                .get_config_value(&object_store::aws::AmazonS3ConfigKey::AccessKeyId)
                .is_some();
            let custom = builder
                .get_config_value(&object_store::aws::AmazonS3ConfigKey::Endpoint)
                .is_some();
            if custom && !has_keys {
                return Err(StoreError::Config {
                    url: options.url.clone(),
                    reason: "no credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
                        .into(),
                });
            }
            let s3 = Arc::new(builder.build().map_err(|e| StoreError::Config {
                url: options.url.clone(),
                reason: e.to_string(),
            })?);
            Ok(Opened {
                objects: s3.clone(),
                s3: Some(s3),
                root: None,
                prefix,
            })
        }
        "file" => {
            let dir = PathBuf::from(rest);
            if !dir.is_absolute() {
                return Err(bad("a file:// store needs an absolute path"));
            }
            std::fs::create_dir_all(&dir).map_err(|e| StoreError::Io {
                action: "creating",
                path: dir.clone(),
                source: e,
            })?;
            let local = LocalFileSystem::new_with_prefix(&dir).map_err(|e| StoreError::Config {
                url: options.url.clone(),
                reason: e.to_string(),
            })?;
            Ok(Opened {
                objects: Arc::new(local),
                s3: None,
                root: Some(dir),
                prefix: Path::default(),
            })
        }
        _ => Err(bad("only s3:// and file:// stores are supported")),
    }
}

fn s3_builder(options: &StoreOptions, bucket: &str) -> AmazonS3Builder {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    // AWS_* variables object_store knows (keys, token, region, endpoint).
    let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
    let endpoint = options
        .endpoint
        .clone()
        .or_else(|| env("AWS_ENDPOINT_URL_S3"))
        .or_else(|| env("AWS_ENDPOINT_URL"));
    if let Some(endpoint) = endpoint {
        // A self-hosted server on plain HTTP is the common case here.
        builder = builder
            .with_allow_http(endpoint.starts_with("http://"))
            .with_endpoint(endpoint.trim_end_matches('/'));
    }
    let region = options
        .region
        .clone()
        .or_else(|| env("AWS_REGION"))
        .or_else(|| env("AWS_DEFAULT_REGION"))
        .unwrap_or_else(|| "us-east-1".into());
    builder = builder.with_region(region);
    if let Some((id, secret)) = &options.credentials {
        builder = builder
            .with_access_key_id(id)
            .with_secret_access_key(secret);
    }
    builder
}
