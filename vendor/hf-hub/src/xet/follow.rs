//! Hashing a file while hf-xet writes it. hf-xet writes a file front to
//! back, so a reader that follows its end sees every byte once, moments
//! after it was written and while it is still in the page cache: the digest
//! is ready when the last byte lands, with no second pass over the file.

use std::fs::File;
use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::verify::{Expected, Hasher};

/// How long the follower sleeps when it has caught up with the writer.
const POLL: Duration = Duration::from_millis(5);

/// A hasher running behind a writer on its own thread.
pub(crate) struct Follower {
    writer_done: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<std::io::Result<(u64, String)>>,
}

impl Follower {
    /// Starts following `path`, which the writer creates (it must not exist
    /// yet). Reads stop at `size + 1` bytes: more than that is already wrong.
    pub(crate) fn start(path: PathBuf, expected: &Expected, size: u64) -> Self {
        let writer_done = Arc::new(AtomicBool::new(false));
        let done = writer_done.clone();
        let hasher = Hasher::new(expected, size);
        let task = tokio::task::spawn_blocking(move || follow(&path, hasher, size, &done));
        Follower { writer_done, task }
    }

    /// Tells the follower the writer has finished, waits for it to read the
    /// rest, and returns the bytes read and their digest.
    pub(crate) async fn finish(self) -> std::io::Result<(u64, String)> {
        self.writer_done.store(true, Ordering::Release);
        match self.task.await {
            Ok(result) => result,
            Err(e) => Err(std::io::Error::other(e.to_string())),
        }
    }

    /// Stops the follower without waiting for it.
    pub(crate) fn abandon(self) {
        self.writer_done.store(true, Ordering::Release);
    }
}

fn follow(
    path: &PathBuf,
    mut hasher: Hasher,
    size: u64,
    writer_done: &AtomicBool,
) -> std::io::Result<(u64, String)> {
    let mut file = loop {
        // Read the flag before trying: a writer that finished without
        // creating the file leaves nothing to hash.
        let finished = writer_done.load(Ordering::Acquire);
        match File::open(path) {
            Ok(file) => break file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !finished => {
                std::thread::sleep(POLL);
            }
            Err(e) => return Err(e),
        }
    };
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let finished = writer_done.load(Ordering::Acquire);
        let n = file.read(&mut buf)?;
        if n > 0 {
            hasher.update(&buf[..n]);
            total += n as u64;
            if total > size {
                break;
            }
            continue;
        }
        // At the end of what is written so far: done if the writer is,
        // else wait for more.
        if finished {
            break;
        }
        std::thread::sleep(POLL);
    }
    Ok((total, hasher.finish_hex()))
}
