//! What the benchmarks under `benches/` share: [`run`] a child to the end and
//! read what the kernel accounted for it, and [`Served`], a `tektra serve`
//! for the length of a run, and [`read_bandwidth`], the ceiling a
//! memory-bound kernel is measured against, and [`history`], the dated
//! record each wall-clock benchmark appends and charts.
//!
//! Errors are plain strings: a benchmark prints them and stops.

mod bandwidth;
mod chart;
pub mod history;
mod measure;
mod serve;

pub use bandwidth::{median, read_bandwidth, time};
pub use measure::{Cost, run};
pub use serve::Served;

use std::path::PathBuf;

/// Where fetched and generated data lives: `$TEKTRA_DATA` (as scripts/lib.sh
/// sets it; default `~/.cache/tektra`), never the repository.
#[must_use]
pub fn data_dir() -> PathBuf {
    std::env::var_os("TEKTRA_DATA").map_or_else(
        || {
            std::env::var_os("HOME")
                .map_or_else(|| PathBuf::from("."), PathBuf::from)
                .join(".cache/tektra")
        },
        PathBuf::from,
    )
}

/// Fills `block` with xorshift64 output from state `x`: bytes that neither
/// compress nor repeat, the same for the same seed.
pub fn fill_random(x: &mut u64, block: &mut [u8]) {
    for word in block.chunks_exact_mut(8) {
        *x ^= *x << 13;
        *x ^= *x >> 7;
        *x ^= *x << 17;
        word.copy_from_slice(&x.to_le_bytes());
    }
}
