//! Eager loading of safetensors files: every tensor of every shard, in
//! parallel, into a name to tensor map.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use candle_core::Tensor;
use rayon::prelude::*;
use tektra_progress::{FileProgress, SharedReporter, Stage, Tracker};
use tokio_util::sync::CancellationToken;

use crate::LoadOptions;
use crate::error::{Error, Result};
use crate::progress::{self, settle};
use crate::report::{LoadReport, ModelFormat, peak_rss};
use crate::shard::{ReadTo, Shard};

/// Opens and validates every shard (in parallel), refusing a tensor name
/// that two shards both claim.
pub(crate) fn open_shards(
    files: &[PathBuf],
    progress: &[(PathBuf, FileProgress)],
) -> Result<Vec<Shard>> {
    let shards = files
        .par_iter()
        .map(|path| Shard::open(path))
        .collect::<Result<Vec<_>>>()
        .inspect_err(|e| settle(progress, e))?;
    let mut owner: HashMap<&str, &Path> = HashMap::new();
    for shard in &shards {
        for t in &shard.header.tensors {
            if let Some(first) = owner.insert(&t.name, shard.path()) {
                let err = Error::DuplicateAcrossShards {
                    tensor: t.name.clone(),
                    first: first.to_owned(),
                    second: shard.path().to_owned(),
                };
                settle(progress, &err);
                return Err(err);
            }
        }
    }
    Ok(shards)
}

/// Loads every tensor of the given safetensors files (one file, or the
/// shards of one model) onto `device`.
///
/// `options.dtype` converts floating-point tensors (f32, f16, bf16, f64) to
/// that type while reading; integer tensors (quantisation indices, say)
/// keep theirs. `None` keeps every tensor as stored.
///
/// Shards are read in parallel on rayon's pool; each output tensor is
/// allocated once and filled from the mapped file, whose pages are released
/// behind the reader, so peak memory is about the size of the result.
/// Progress is reported per file (stage `loading`: bytes and tensors done
/// and total, rate, ETA). Cancellation is checked every few megabytes; on
/// cancellation every partial tensor is dropped before
/// [`Error::Cancelled`] is returned.
///
/// This call blocks: from async code run it under `spawn_blocking`.
///
/// # Errors
/// Any [`Error`]: unreadable files, invalid headers (naming the file and
/// tensor), dtypes candle cannot hold, a tensor in two shards, cancellation.
pub fn load_safetensors(
    files: &[PathBuf],
    options: &LoadOptions,
    reporter: SharedReporter,
    cancel: &CancellationToken,
) -> Result<(HashMap<String, Tensor>, LoadReport)> {
    let started = Instant::now();
    let tracker = Tracker::new(Stage::Loading, reporter);
    tracker.begin_stage(Stage::Loading, None);
    let files_progress: Vec<(PathBuf, FileProgress)> = files
        .iter()
        .map(|p| (p.clone(), progress::queue(&tracker, p)))
        .collect();
    let shards = open_shards(files, &files_progress)?;
    let remaining: Vec<AtomicUsize> = shards
        .iter()
        .map(|s| AtomicUsize::new(s.header.tensors.len()))
        .collect();
    for (shard, (_, file)) in shards.iter().zip(&files_progress) {
        progress::start(file, shard.tensor_bytes(), shard.header.tensors.len());
        if shard.header.tensors.is_empty() {
            file.finish();
        }
    }
    // Largest tensors first, so the two halves of a small pool end together.
    let mut jobs: Vec<(usize, usize)> = shards
        .iter()
        .enumerate()
        .flat_map(|(s, shard)| (0..shard.header.tensors.len()).map(move |t| (s, t)))
        .collect();
    jobs.sort_by_key(|&(s, t)| std::cmp::Reverse(shards[s].header.tensors[t].len));

    let loaded = jobs
        .par_iter()
        .map(|&(s, t)| {
            let shard = &shards[s];
            let entry = &shard.header.tensors[t];
            let file = &files_progress[s].1;
            let to = ReadTo {
                dtype: options
                    .dtype
                    .filter(|_| entry.dtype.candle().is_some_and(|d| d.is_float())),
                device: &options.device,
                huge_pages: options.huge_pages,
            };
            let tensor = shard.read(entry, to, file, cancel)?;
            if remaining[s].fetch_sub(1, Ordering::AcqRel) == 1 {
                file.finish();
            }
            Ok((entry.name.clone(), tensor))
        })
        .collect::<Result<Vec<_>>>();
    let loaded = match loaded {
        Ok(loaded) => loaded,
        Err(err) => {
            settle(&files_progress, &err);
            return Err(err);
        }
    };
    let bytes = shards.iter().map(Shard::tensor_bytes).sum();
    let tensors: HashMap<String, Tensor> = loaded.into_iter().collect();
    tracker.end_stage(None);
    let report = LoadReport {
        format: ModelFormat::Safetensors,
        files: files.len(),
        tensors: tensors.len(),
        bytes,
        elapsed: started.elapsed(),
        peak_rss: peak_rss(),
    };
    Ok((tensors, report))
}
