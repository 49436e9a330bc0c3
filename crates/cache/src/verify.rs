//! Re-hashing blobs against their names, offline: a blob named by a
//! 64-hex etag must hash to that sha256, one named by a 40-hex etag to
//! that git blob sha1 (what the Hub's etags are). Files are spread over
//! threads, biggest first; progress goes to the caller's reporter.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use hf_hub::verify::Expected;
use serde::Serialize;
use tektra_progress::{SharedReporter, Stage, State, Tracker};
use tokio_util::sync::CancellationToken;

use crate::CacheError;
use crate::scan::CacheScan;
use crate::target::Target;

/// What one blob turned out to be.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    /// Its bytes hash to its name.
    Ok,
    /// They do not.
    Mismatch {
        /// `sha256` or `git-sha1`.
        algorithm: String,
        /// The name's hash.
        expected: String,
        /// The bytes' hash.
        actual: String,
    },
    /// Its name is not a content hash (a foreign mirror's etag): not checked.
    Unverifiable,
    /// It could not be read.
    Unreadable {
        /// Why.
        reason: String,
    },
}

/// One blob checked.
#[derive(Debug, Clone, Serialize)]
pub struct BlobCheck {
    /// The repo's cache id.
    pub repo: String,
    /// The blob.
    pub blob: PathBuf,
    /// The links (files of revisions) that point to it.
    pub links: Vec<PathBuf>,
    /// Its size.
    pub size: u64,
    /// What it is.
    pub verdict: Verdict,
    /// Whether `--fix` removed it and its links.
    pub removed: bool,
}

/// The outcome of [`verify`].
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    /// Every blob checked, in the order of the scan.
    pub blobs: Vec<BlobCheck>,
    /// Bytes hashed.
    pub bytes: u64,
    /// Seconds it took.
    pub secs: f64,
    /// Threads used.
    pub threads: usize,
}

impl VerifyReport {
    /// Blobs whose bytes do not match their names (or cannot be read).
    pub fn bad(&self) -> impl Iterator<Item = &BlobCheck> {
        self.blobs.iter().filter(|b| {
            matches!(
                b.verdict,
                Verdict::Mismatch { .. } | Verdict::Unreadable { .. }
            )
        })
    }
}

/// Re-hashes the blobs of `targets` (every repo when empty) on `threads`
/// threads; with `fix`, removes each bad blob and the links to it, so the
/// next download fetches it again.
pub fn verify(
    scan: &CacheScan,
    targets: &[Target],
    threads: usize,
    fix: bool,
    reporter: SharedReporter,
    cancel: &CancellationToken,
) -> Result<VerifyReport, CacheError> {
    // Blob -> (repo id, links, size), once per blob.
    let mut blobs: BTreeMap<PathBuf, (String, Vec<PathBuf>, u64)> = BTreeMap::new();
    let mut add = |repo: String, revisions: Vec<&crate::scan::Revision>| {
        for rev in revisions {
            for f in &rev.files {
                let e = blobs
                    .entry(f.blob.clone())
                    .or_insert_with(|| (repo.clone(), Vec::new(), f.size));
                e.1.push(f.path.clone());
            }
        }
    };
    if targets.is_empty() {
        for repo in &scan.repos {
            add(repo.cache_id(), repo.revisions.iter().collect());
        }
    } else {
        for t in targets {
            let (repo, revisions) = t.resolve(scan)?;
            add(repo.cache_id(), revisions);
        }
    }
    let mut work: Vec<(PathBuf, String, Vec<PathBuf>, u64)> = blobs
        .into_iter()
        .map(|(b, (r, l, s))| (b, r, l, s))
        .collect();
    // Biggest first, so the last thread to finish is not stuck with a
    // big file started late.
    work.sort_by_key(|w| std::cmp::Reverse(w.3));
    let tracker = Tracker::new(Stage::Verifying, reporter);
    tracker.begin_stage(Stage::Verifying, Some(format!("{} files", work.len())));
    let handles: Vec<_> = work
        .iter()
        .map(|(blob, _, _, size)| {
            tracker.file(
                blob.file_name()
                    .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
                Some(*size),
            )
        })
        .collect();
    let threads = threads.clamp(1, work.len().max(1));
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Verdict>>> = Mutex::new(vec![None; work.len()]);
    let started = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some((blob, _, _, _)) = work.get(i) else {
                        return;
                    };
                    if cancel.is_cancelled() {
                        handles[i].cancel();
                        continue;
                    }
                    let progress = &handles[i];
                    progress.set_state(State::Verifying);
                    let name = blob
                        .file_name()
                        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
                    let expected = Expected::from_etag(&name);
                    let verdict = if expected == Expected::SizeOnly {
                        Verdict::Unverifiable
                    } else {
                        match hf_hub::verify::hash_file_until(blob, &expected, cancel, |n| {
                            progress.advance(n);
                        }) {
                            Ok((_, actual)) if actual == expected.hex() => Verdict::Ok,
                            Ok((_, actual)) => Verdict::Mismatch {
                                algorithm: expected.algorithm().to_string(),
                                expected: expected.hex(),
                                actual,
                            },
                            Err(e) if cancel.is_cancelled() => {
                                let _ = e;
                                progress.cancel();
                                continue;
                            }
                            Err(e) => Verdict::Unreadable {
                                reason: e.to_string(),
                            },
                        }
                    };
                    match &verdict {
                        Verdict::Ok | Verdict::Unverifiable => progress.finish(),
                        Verdict::Mismatch { .. } => {
                            progress.fail("content does not match its name")
                        }
                        Verdict::Unreadable { reason } => progress.fail(reason.clone()),
                    }
                    if let Ok(mut r) = results.lock() {
                        r[i] = Some(verdict);
                    }
                }
            });
        }
    });
    if cancel.is_cancelled() {
        return Err(CacheError::Cancelled);
    }
    tracker.end_stage(None);
    let verdicts = results
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut report = VerifyReport {
        blobs: Vec::new(),
        bytes: 0,
        secs: 0.0,
        threads,
    };
    for ((blob, repo, links, size), verdict) in work.into_iter().zip(verdicts) {
        let verdict = verdict.unwrap_or(Verdict::Unreadable {
            reason: "not checked".into(),
        });
        report.bytes += size;
        let bad = matches!(verdict, Verdict::Mismatch { .. });
        let mut removed = false;
        if fix && bad {
            for link in &links {
                let _ = std::fs::remove_file(link);
            }
            removed = std::fs::remove_file(&blob).is_ok();
        }
        report.blobs.push(BlobCheck {
            repo,
            blob,
            links,
            size,
            verdict,
            removed,
        });
    }
    report.secs = started.elapsed().as_secs_f64();
    Ok(report)
}
