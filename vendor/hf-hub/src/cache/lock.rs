//! The per-blob lock, the same file huggingface_hub locks, with the same
//! primitive (`flock` on Unix), so Rust and Python never write one blob at
//! the same time.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::error::HubError;

/// Held while a blob is downloaded; released on drop (and by the OS if the
/// process dies).
#[derive(Debug)]
pub struct BlobLock {
    file: File,
    path: PathBuf,
}

impl BlobLock {
    /// Takes the lock, waiting (without blocking the runtime) while another
    /// process holds it. `on_wait` is called once if the lock was busy, so the
    /// caller can say what it waits for. Gives up after `timeout`.
    pub async fn acquire(
        path: &Path,
        timeout: Duration,
        cancel: &CancellationToken,
        on_wait: impl FnOnce(),
    ) -> Result<BlobLock, HubError> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| HubError::io("creating", parent, e))?;
        }
        let mut options = OpenOptions::new();
        options.create(true).truncate(false).write(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            // Group-writable like huggingface_hub's, so users sharing a cache can wait on it.
            options.mode(0o664);
        }
        let file = options
            .open(path)
            .map_err(|e| HubError::io("opening lock", path, e))?;
        let started = Instant::now();
        let mut on_wait = Some(on_wait);
        loop {
            match file.try_lock() {
                Ok(()) => {
                    return Ok(BlobLock {
                        file,
                        path: path.to_path_buf(),
                    });
                }
                Err(TryLockError::WouldBlock) => {}
                Err(TryLockError::Error(e)) => {
                    return Err(HubError::io("locking", path, e));
                }
            }
            if let Some(f) = on_wait.take() {
                f();
            }
            if started.elapsed() >= timeout {
                return Err(HubError::LockTimeout {
                    path: path.to_path_buf(),
                    secs: timeout.as_secs(),
                });
            }
            tokio::select! {
                () = cancel.cancelled() => return Err(HubError::Cancelled),
                () = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
        }
    }

    /// The lock file.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for BlobLock {
    fn drop(&mut self) {
        let _ = self.file.unlock();
    }
}
