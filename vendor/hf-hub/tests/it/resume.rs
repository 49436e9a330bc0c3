//! Resuming a large partial file: its trusted prefix is hashed again from
//! disk, and a cancel must stop that read-back, not wait for it.

use std::io::Write;
use std::os::unix::io::AsRawFd;
use std::time::{Duration, Instant};

use hf_hub::cache::RepoCache;
use hf_hub::{Hub, HubError, HubOptions};
use tektra_hub_server::{Server, Store};
use tokio_util::sync::CancellationToken;

use crate::common::*;

const SIZE: u64 = 1 << 30;
const SHORT: u64 = 1 << 20;

/// Bytes this process has read through system calls (`rchar`).
fn bytes_read() -> u64 {
    let io = std::fs::read_to_string("/proc/self/io").unwrap();
    io.lines()
        .find_map(|l| l.strip_prefix("rchar: "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cancel_stops_the_read_back_of_a_resumed_gigabyte() {
    // The served file is sparse (no disk); its bytes never matter, the
    // download is cancelled while the partial file is hashed again.
    let repos = tempfile::tempdir().unwrap();
    let served = repos.path().join("org/huge/model.bin");
    std::fs::create_dir_all(served.parent().unwrap()).unwrap();
    std::fs::File::create(&served)
        .unwrap()
        .set_len(SIZE)
        .unwrap();
    let server = Server::builder(Store::open(repos.path()).unwrap())
        .start()
        .await
        .unwrap();
    let cache = tempfile::tempdir().unwrap();
    let hub = Hub::new(HubOptions {
        endpoint: server.url(),
        cache_dir: cache.path().to_path_buf(),
        ..HubOptions::default()
    })
    .unwrap();
    let (repo, file) = (model("org/huge"), path("model.bin"));
    let meta = hub
        .resolve(&repo, &main(), &file, &CancellationToken::new())
        .await
        .unwrap();
    let name = RepoCache::blob_name(&meta.etag, &meta.commit, &file);
    let repo_cache = hub.cache().repo(&repo);

    // A partial file of 1 GiB less 1 MiB of real bytes, a journal that
    // trusts all of them, and none of it in the page cache.
    let partial = repo_cache.incomplete_path(&name);
    std::fs::create_dir_all(partial.parent().unwrap()).unwrap();
    let mut out = std::fs::File::create(&partial).unwrap();
    let block = bytes(1 << 20, 5);
    for _ in 0..(SIZE - SHORT) >> 20 {
        out.write_all(&block).unwrap();
    }
    out.sync_all().unwrap();
    #[allow(unsafe_code)]
    // SAFETY: a valid open descriptor; the call only drops cached pages.
    let rc = unsafe { libc::posix_fadvise(out.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    assert_eq!(rc, 0);
    drop(out);
    std::fs::write(
        repo_cache.parts_path(&name),
        format!("0 {}\n", SIZE - SHORT),
    )
    .unwrap();

    // Cancel once the read-back is under way (64 MiB read), and time from
    // the cancel, not from when it was planned.
    let start = bytes_read();
    let cancel = CancellationToken::new();
    let stopper = cancel.clone();
    let watcher = tokio::task::spawn_blocking(move || {
        let give_up = Instant::now() + Duration::from_secs(60);
        while Instant::now() < give_up {
            if bytes_read() - start >= 64 << 20 {
                let at = Instant::now();
                stopper.cancel();
                return Some(at);
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        None
    });
    let result = hub
        .download_file(&repo, &main(), &file, hf_hub::progress::silent(), &cancel)
        .await;
    let returned = Instant::now();
    let read = bytes_read() - start;
    let cancelled_at = watcher.await.unwrap().expect("the read-back never started");
    assert!(matches!(result, Err(HubError::Cancelled)), "{result:?}");
    let took = returned.saturating_duration_since(cancelled_at);
    eprintln!(
        "cancel landed {took:?} after it was made; {} MiB of {} MiB read back",
        read >> 20,
        (SIZE - SHORT) >> 20
    );
    // The read-back stopped near where the cancel found it, far from the
    // end (a read-back that ignores the cancel reads all of it).
    assert!(read < SIZE / 2, "read {read} bytes after the cancel");
    assert!(
        took < Duration::from_secs(5),
        "stopped {took:?} after cancel"
    );
    // The partial file and its journal stay for the next run.
    assert!(partial.is_file() && repo_cache.parts_path(&name).is_file());
}
