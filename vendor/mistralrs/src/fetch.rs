//! From a model reference to model files on disk: through the Hub cache
//! (downloading what is missing) or straight from a local path.

use std::path::{Path, PathBuf};

use hf_hub::filter::Filter;
use hf_hub::ids::{RepoPath, RepoRef, Revision};
use hf_hub::{Hub, HubOptions};
use tektra_progress::SharedReporter;
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};
use crate::model_ref::ModelRef;

/// The files of a model, ready to load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelFiles {
    /// One GGUF file: weights, tokenizer and chat template.
    Gguf(PathBuf),
    /// A folder with safetensors weights, `config.json` and tokenizer files.
    Safetensors(PathBuf),
}

impl ModelFiles {
    /// The file or folder.
    #[must_use]
    pub fn path(&self) -> &Path {
        match self {
            ModelFiles::Gguf(p) | ModelFiles::Safetensors(p) => p,
        }
    }
}

/// GGUF quantizations in order of preference when a repo has several: the
/// usual quality/size balance first.
const QUANT_PREFERENCE: &[&str] = &[
    "q4_k_m", "q4_k_s", "q5_k_m", "q4_0", "q4_1", "q5_k_s", "q5_0", "q8_0", "q6_k", "q3_k_m", "f16",
];

/// Picks one GGUF from several names.
#[must_use]
pub fn pick_gguf<'a>(names: &[&'a str]) -> Option<&'a str> {
    let ggufs: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| n.to_ascii_lowercase().ends_with(".gguf"))
        .collect();
    for quant in QUANT_PREFERENCE {
        if let Some(n) = ggufs
            .iter()
            .find(|n| n.to_ascii_lowercase().contains(quant))
        {
            return Some(n);
        }
    }
    ggufs.first().copied()
}

/// Files a safetensors model needs besides the weights.
const SIDE_FILES: &[&str] = &[
    "config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "generation_config.json",
    "chat_template.jinja",
    "special_tokens_map.json",
];

/// Resolves `model` to files, downloading from the Hub when needed.
pub async fn fetch(
    model: &ModelRef,
    hub_options: &HubOptions,
    reporter: SharedReporter,
    cancel: &CancellationToken,
) -> Result<ModelFiles> {
    match model {
        ModelRef::File(path) => local_file(path),
        ModelRef::Dir(path) => local_dir(path),
        ModelRef::Hub {
            repo,
            revision,
            file,
        } => {
            let hub = Hub::new(hub_options.clone())?;
            let repo = RepoRef::model(repo)?;
            let revision = match revision {
                Some(r) => Revision::new(r)?,
                None => Revision::main(),
            };
            if let Some(file) = file {
                return one_file(&hub, &repo, &revision, file, model, reporter, cancel).await;
            }
            // Offline, the choice is among what the cache holds: a GGUF
            // fetched earlier is found without asking for safetensors.
            let listing = if hub_options.offline {
                hub.cached_files(&repo, &revision)?
            } else {
                hub.repo_info(&repo, &revision, cancel).await?.files
            };
            let names: Vec<&str> = listing.iter().map(RepoPath::as_str).collect();
            if let Some(gguf) = pick_gguf(&names) {
                return one_file(&hub, &repo, &revision, gguf, model, reporter, cancel).await;
            }
            let mut include: Vec<String> = SIDE_FILES.iter().map(|s| (*s).to_string()).collect();
            include.push("*.safetensors".into());
            include.push("*.safetensors.index.json".into());
            let filter = Filter::new(&include, &[] as &[&str])?;
            let snapshot = hub
                .snapshot(&repo, &revision, &filter, reporter, cancel)
                .await?;
            local_dir(&snapshot.dir)
        }
    }
}

/// One file of a Hub repo, downloaded (or found in the cache) and verified.
async fn one_file(
    hub: &Hub,
    repo: &RepoRef,
    revision: &Revision,
    file: &str,
    model: &ModelRef,
    reporter: SharedReporter,
    cancel: &CancellationToken,
) -> Result<ModelFiles> {
    let path = RepoPath::new(file)?;
    let snapshot = hub
        .download_files(repo, revision, &[path], reporter, cancel)
        .await?;
    let Some(got) = snapshot.files.first() else {
        return Err(Error::BadReference {
            reference: model.to_string(),
            reason: "the Hub returned no file".into(),
        });
    };
    local_file(&got.path)
}

fn local_file(path: &Path) -> Result<ModelFiles> {
    let name = path.to_string_lossy().to_ascii_lowercase();
    if name.ends_with(".gguf") {
        Ok(ModelFiles::Gguf(path.to_path_buf()))
    } else if name.ends_with(".safetensors") || name.ends_with(".safetensors.index.json") {
        let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        Ok(ModelFiles::Safetensors(dir))
    } else {
        Err(Error::BadReference {
            reference: path.display().to_string(),
            reason: "not a .gguf or .safetensors file".into(),
        })
    }
}

fn local_dir(dir: &Path) -> Result<ModelFiles> {
    let entries = std::fs::read_dir(dir).map_err(|source| Error::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let names: Vec<String> = entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    if let Some(gguf) = pick_gguf(&refs) {
        return Ok(ModelFiles::Gguf(dir.join(gguf)));
    }
    if names.iter().any(|n| n.ends_with(".safetensors")) {
        return Ok(ModelFiles::Safetensors(dir.to_path_buf()));
    }
    Err(Error::BadReference {
        reference: dir.display().to_string(),
        reason: "no .gguf or .safetensors file in this folder".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefers_q4_k_m_then_falls_back() {
        let names = ["model.Q8_0.gguf", "model.Q4_K_M.gguf", "README.md"];
        assert_eq!(pick_gguf(&names), Some("model.Q4_K_M.gguf"));
        assert_eq!(
            pick_gguf(&["x.IQ2_XS.gguf", "y.txt"]),
            Some("x.IQ2_XS.gguf")
        );
        assert_eq!(pick_gguf(&["model.safetensors"]), None);
    }
}
