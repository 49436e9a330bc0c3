//! What a load did: counts, bytes, time and the process's peak memory.

use std::time::Duration;

/// The format of a model's weight files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ModelFormat {
    /// One `.safetensors` file or several shards.
    Safetensors,
    /// One `.gguf` file.
    Gguf,
}

impl std::fmt::Display for ModelFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ModelFormat::Safetensors => "safetensors",
            ModelFormat::Gguf => "gguf",
        })
    }
}

/// Summary of one load, for `tektra load` and the benchmark.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadReport {
    /// The files' format.
    pub format: ModelFormat,
    /// Weight files read.
    pub files: usize,
    /// Tensors loaded.
    pub tensors: usize,
    /// Tensor bytes read from the files (before any dtype conversion).
    pub bytes: u64,
    /// Wall time from opening the first file to the last tensor.
    pub elapsed: Duration,
    /// The process's peak resident set after the load ([`peak_rss`]).
    pub peak_rss: Option<u64>,
}

/// The process's peak resident set size in bytes (`VmHWM` in
/// `/proc/self/status`). `None` where the OS does not report it (anything
/// but Linux).
///
/// ```
/// let peak = tektra_candle::peak_rss();
/// if cfg!(target_os = "linux") {
///     assert!(peak.unwrap() > 0);
/// }
/// ```
#[must_use]
pub fn peak_rss() -> Option<u64> {
    proc_status_kib("VmHWM:").map(|kib| kib.saturating_mul(1024))
}

/// The process's current resident set size in bytes (`VmRSS`), where the OS
/// reports it.
#[must_use]
pub fn current_rss() -> Option<u64> {
    proc_status_kib("VmRSS:").map(|kib| kib.saturating_mul(1024))
}

fn proc_status_kib(field: &str) -> Option<u64> {
    if !cfg!(target_os = "linux") {
        return None;
    }
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line[field.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}
