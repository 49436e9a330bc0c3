//! Which files make up a model: one `.gguf`, one `.safetensors`, or the
//! shards a `model.safetensors.index.json` lists.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Component, Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::report::ModelFormat;
use crate::shard::Shard;

/// The index file transformers writes beside sharded weights.
pub const INDEX_FILE: &str = "model.safetensors.index.json";

/// The weight files of one model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelFiles {
    /// Their format.
    pub format: ModelFormat,
    /// The files, in a stable order (shards sorted by name).
    pub files: Vec<PathBuf>,
    /// The shard index, when the files came from one.
    pub index: Option<PathBuf>,
}

#[derive(Deserialize)]
struct IndexJson {
    weight_map: BTreeMap<String, String>,
}

impl ModelFiles {
    /// Finds a model's weights from a path: a `.gguf` or `.safetensors`
    /// file, a `*.safetensors.index.json`, or a directory holding one of
    /// these (the index first, then every `.safetensors` file, then a
    /// single `.gguf`).
    ///
    /// An index is checked against its shards before anything is loaded:
    /// every shard it names must lie beside it (no absolute paths, no
    /// `..`), and must hold the tensors the index puts in it.
    ///
    /// # Errors
    /// [`Error::NoWeights`], [`Error::Open`], the index errors, or an
    /// invalid shard header.
    pub fn resolve(path: &Path) -> Result<Self> {
        let meta = std::fs::metadata(path).map_err(|source| Error::Open {
            path: path.to_owned(),
            source,
        })?;
        if meta.is_dir() {
            return Self::from_dir(path);
        }
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        let name = name.unwrap_or_default();
        if name.ends_with(".index.json") {
            Self::from_index(path)
        } else if name.ends_with(".safetensors") {
            Ok(ModelFiles {
                format: ModelFormat::Safetensors,
                files: vec![path.to_owned()],
                index: None,
            })
        } else if name.ends_with(".gguf") {
            Ok(ModelFiles {
                format: ModelFormat::Gguf,
                files: vec![path.to_owned()],
                index: None,
            })
        } else {
            Err(Error::NoWeights {
                path: path.to_owned(),
                reason: "not a .gguf, .safetensors or .safetensors.index.json file".into(),
            })
        }
    }

    fn from_dir(dir: &Path) -> Result<Self> {
        let index = dir.join(INDEX_FILE);
        if index.is_file() {
            return Self::from_index(&index);
        }
        let read_err = |source| Error::Read {
            path: dir.to_owned(),
            tensor: None,
            source,
        };
        let mut names = BTreeSet::new();
        for entry in std::fs::read_dir(dir).map_err(read_err)? {
            let entry = entry.map_err(read_err)?;
            if entry.path().is_file() {
                names.insert(entry.file_name().to_string_lossy().into_owned());
            }
        }
        let indexes: Vec<&String> = names
            .iter()
            .filter(|n| n.ends_with(".safetensors.index.json"))
            .collect();
        if let [only] = indexes.as_slice() {
            return Self::from_index(&dir.join(only));
        }
        let with = |ext: &str| -> Vec<PathBuf> {
            names
                .iter()
                .filter(|n| n.ends_with(ext))
                .map(|n| dir.join(n))
                .collect()
        };
        let safetensors = with(".safetensors");
        if !safetensors.is_empty() {
            return Ok(ModelFiles {
                format: ModelFormat::Safetensors,
                files: safetensors,
                index: None,
            });
        }
        let mut ggufs = with(".gguf");
        match ggufs.len() {
            1 => Ok(ModelFiles {
                format: ModelFormat::Gguf,
                files: ggufs.split_off(0),
                index: None,
            }),
            0 => Err(Error::NoWeights {
                path: dir.to_owned(),
                reason: "no .safetensors, .gguf or shard index in the directory".into(),
            }),
            n => Err(Error::NoWeights {
                path: dir.to_owned(),
                reason: format!("{n} .gguf files; name the one to load"),
            }),
        }
    }

    fn from_index(index: &Path) -> Result<Self> {
        let text = std::fs::read(index).map_err(|source| Error::Read {
            path: index.to_owned(),
            tensor: None,
            source,
        })?;
        let parsed: IndexJson =
            serde_json::from_slice(&text).map_err(|source| Error::IndexJson {
                path: index.to_owned(),
                source,
            })?;
        let dir = index.parent().unwrap_or_else(|| Path::new("."));
        let mut shard_of: BTreeMap<&str, PathBuf> = BTreeMap::new();
        let mut files = BTreeSet::new();
        for (tensor, shard) in &parsed.weight_map {
            let beside = Path::new(shard)
                .components()
                .all(|c| matches!(c, Component::Normal(_)));
            if !beside || shard.is_empty() {
                return Err(Error::IndexBadShard {
                    path: index.to_owned(),
                    shard: shard.clone(),
                });
            }
            let file = dir.join(shard);
            files.insert(file.clone());
            shard_of.insert(tensor, file);
        }
        if files.is_empty() {
            return Err(Error::NoWeights {
                path: index.to_owned(),
                reason: "the index lists no tensors".into(),
            });
        }
        let files: Vec<PathBuf> = files.into_iter().collect();
        check_weight_map(index, &shard_of, &files)?;
        Ok(ModelFiles {
            format: ModelFormat::Safetensors,
            files,
            index: Some(index.to_owned()),
        })
    }
}

/// Every tensor the index names must be in the shard it names.
fn check_weight_map(
    index: &Path,
    shard_of: &BTreeMap<&str, PathBuf>,
    files: &[PathBuf],
) -> Result<()> {
    for file in files {
        let shard = Shard::open(file)?;
        let held: HashSet<&str> = shard
            .header
            .tensors
            .iter()
            .map(|t| t.name.as_str())
            .collect();
        for (tensor, path) in shard_of {
            if path == file && !held.contains(tensor) {
                return Err(Error::IndexMissingTensor {
                    path: index.to_owned(),
                    tensor: (*tensor).to_owned(),
                    shard: file.clone(),
                });
            }
        }
    }
    Ok(())
}
