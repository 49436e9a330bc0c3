//! Include/exclude patterns for snapshot downloads, with huggingface_hub's
//! semantics: shell globs where `*` also matches `/`, and a pattern ending
//! in `/` meaning everything under that folder.

use globset::{Glob, GlobSet, GlobSetBuilder};

use crate::error::HubError;

/// Which files of a repo to take.
///
/// ```
/// use hf_hub::filter::Filter;
/// let f = Filter::new(&["*.json", "onnx/"], &["*fp16*"]).unwrap();
/// assert!(f.matches("config.json"));
/// assert!(f.matches("onnx/model.onnx"));
/// assert!(!f.matches("onnx/model_fp16.onnx"));
/// assert!(!f.matches("model.safetensors"));
/// ```
#[derive(Debug, Clone, Default)]
pub struct Filter {
    include: Option<GlobSet>,
    exclude: Option<GlobSet>,
}

impl Filter {
    /// Everything.
    #[must_use]
    pub fn all() -> Self {
        Filter::default()
    }

    /// Files matching any `include` pattern (all when empty) and no
    /// `exclude` pattern.
    pub fn new(include: &[impl AsRef<str>], exclude: &[impl AsRef<str>]) -> Result<Self, HubError> {
        Ok(Filter {
            include: build(include)?,
            exclude: build(exclude)?,
        })
    }

    /// Whether `path` is taken.
    #[must_use]
    pub fn matches(&self, path: &str) -> bool {
        self.include.as_ref().is_none_or(|set| set.is_match(path))
            && !self.exclude.as_ref().is_some_and(|set| set.is_match(path))
    }
}

fn build(patterns: &[impl AsRef<str>]) -> Result<Option<GlobSet>, HubError> {
    if patterns.is_empty() {
        return Ok(None);
    }
    let mut builder = GlobSetBuilder::new();
    for pattern in patterns {
        let pattern = pattern.as_ref();
        let full = if pattern.ends_with('/') {
            format!("{pattern}*")
        } else {
            pattern.to_string()
        };
        let glob = globset::GlobBuilder::new(&full)
            .literal_separator(false)
            .backslash_escape(true)
            .build()
            .or_else(|_| Glob::new(&globset::escape(&full)))
            .map_err(|_| HubError::InvalidArgument {
                kind: "pattern",
                value: pattern.to_string(),
                reason: "not a valid glob",
            })?;
        builder.add(glob);
    }
    builder
        .build()
        .map(Some)
        .map_err(|_| HubError::InvalidArgument {
            kind: "pattern",
            value: String::new(),
            reason: "patterns could not be combined",
        })
}
