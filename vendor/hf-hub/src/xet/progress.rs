//! hf-xet's progress, polled from its download group, turned into the same
//! `FileProgress` calls an HTTP transfer makes.
//!
//! hf-xet counts two things: network bytes (compressed, and only for what
//! the chunk cache or dedup did not already have) against the network bytes
//! it plans to move, and bytes written to the file. The bar follows the
//! network, expressed in file bytes so it ends at the file's size; the
//! written bytes go in `bytes_written`, which a UI shows when they trail.
//! A bar driven by written bytes alone sits at zero while the first blocks
//! download, which is what users saw with hf-xet's own counters.

use std::time::{Duration, Instant};

use tektra_progress::FileProgress;
use xet::xet_session::GroupProgressReport;

/// Follows one file's progress and notices when it stops moving.
pub(crate) struct ProgressMap {
    size: u64,
    shown: u64,
    network: u64,
    written: u64,
    last_change: Instant,
}

impl ProgressMap {
    /// For a file of `size` bytes, starting now.
    pub(crate) fn new(size: u64) -> Self {
        ProgressMap {
            size,
            shown: 0,
            network: 0,
            written: 0,
            last_change: Instant::now(),
        }
    }

    /// Reports the group's counters; returns how long nothing has moved.
    pub(crate) fn update(
        &mut self,
        report: &GroupProgressReport,
        progress: &FileProgress,
    ) -> Duration {
        let network = report.total_transfer_bytes_completed;
        let written = report.total_bytes_completed.min(self.size);
        if network != self.network || written != self.written {
            self.last_change = Instant::now();
        }
        self.network = network;
        self.written = written;
        let by_network = scale(network, report.total_transfer_bytes, self.size);
        // Nothing to fetch over the network (all in the chunk cache): the
        // written bytes are the only measure of progress.
        let done = if report.total_transfer_bytes == 0 {
            written
        } else {
            by_network.max(written)
        };
        // The planned total can grow as hf-xet learns the file's layout;
        // the bar never goes back.
        if done > self.shown {
            progress.advance(done - self.shown);
            self.shown = done;
        }
        progress.set_written(written);
        self.last_change.elapsed()
    }

    /// Network bytes moved so far.
    pub(crate) fn network_bytes(&self) -> u64 {
        self.network
    }

    /// Marks the file as fully arrived (after hf-xet finished).
    pub(crate) fn complete(&mut self, progress: &FileProgress) {
        if self.size > self.shown {
            progress.advance(self.size - self.shown);
            self.shown = self.size;
        }
        progress.set_written(self.size);
    }
}

/// `part / whole` of `size`, without overflow.
fn scale(part: u64, whole: u64, size: u64) -> u64 {
    if whole == 0 {
        return 0;
    }
    let scaled = u128::from(part.min(whole)) * u128::from(size) / u128::from(whole);
    u64::try_from(scaled).unwrap_or(size)
}

#[cfg(test)]
mod tests {
    use super::scale;

    #[test]
    fn network_bytes_scale_to_the_file_size() {
        assert_eq!(scale(50, 100, 1000), 500);
        assert_eq!(scale(150, 100, 1000), 1000, "never past the end");
        assert_eq!(scale(5, 0, 1000), 0);
        assert_eq!(scale(u64::MAX, u64::MAX, u64::MAX), u64::MAX);
    }
}
