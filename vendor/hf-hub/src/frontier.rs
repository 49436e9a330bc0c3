//! How far a download's partial file holds bytes that were written and
//! hashed in order: what a reader (a pull-through mirror) may stream to
//! its own clients while the rest of the file is still arriving.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::watch;

/// Attempts are numbered across the process, so a reader can tell a
/// transfer that started over (after a hash mismatch, or a server that
/// ignored Range) from the one it was following.
static NEXT_ATTEMPT: AtomicU64 = AtomicU64::new(1);

/// The in-order prefix of one transfer attempt.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Prefix {
    /// Which attempt wrote it (0: none started yet).
    pub attempt: u64,
    /// Bytes from offset 0 that are on disk and hashed.
    pub len: u64,
}

/// Published by [`crate::Hub::download_file_following`]. A prefix is
/// only as good as the whole file's hash: when the call fails, whatever
/// was read from it must be thrown away, and a new attempt number means
/// the bytes read so far belonged to an attempt that was discarded.
///
/// ```
/// let frontier = hf_hub::Frontier::new();
/// let seen = frontier.subscribe();
/// assert_eq!(seen.borrow().len, 0);
/// ```
#[derive(Debug, Clone)]
pub struct Frontier(Arc<watch::Sender<Prefix>>);

impl Default for Frontier {
    fn default() -> Self {
        Self::new()
    }
}

impl Frontier {
    /// No attempt yet.
    #[must_use]
    pub fn new() -> Self {
        Frontier(Arc::new(watch::Sender::new(Prefix::default())))
    }

    /// Follows the prefix as it grows.
    #[must_use]
    pub fn subscribe(&self) -> watch::Receiver<Prefix> {
        self.0.subscribe()
    }

    /// A new attempt, from byte 0.
    pub(crate) fn start_attempt(&self) -> u64 {
        let attempt = NEXT_ATTEMPT.fetch_add(1, Ordering::Relaxed);
        self.0.send_replace(Prefix { attempt, len: 0 });
        attempt
    }

    /// `attempt` now holds `len` bytes in order.
    pub(crate) fn advance(&self, attempt: u64, len: u64) {
        self.0.send_if_modified(|p| {
            if p.attempt == attempt && p.len < len {
                p.len = len;
                true
            } else {
                false
            }
        });
    }
}
