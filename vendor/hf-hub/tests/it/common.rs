use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hf_hub::ids::{RepoPath, RepoRef, Revision};
use hf_hub::progress::{Event, SharedReporter};
use hf_hub::{Hub, HubOptions};
use tektra_hub_server::{Kind, Server, Store};

pub const TOKEN: &str = "hf_test_token_private";
pub const BIG: usize = 40 << 20;

/// Deterministic bytes that do not compress or repeat in any short period.
pub fn bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

pub struct Fixture {
    pub repos: tempfile::TempDir,
    pub cache: tempfile::TempDir,
    pub server: Server,
}

fn write(root: &Path, rel: &str, data: &[u8]) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, data).unwrap();
}

impl Fixture {
    pub async fn new() -> Fixture {
        let repos = tempfile::tempdir().unwrap();
        let root = repos.path();
        write(root, "org/small/config.json", br#"{"model_type": "llama"}"#);
        write(root, "org/small/nested/dir/notes.txt", b"hello\n");
        write(root, "org/small/weights.safetensors", &bytes(300_000, 1));
        write(root, "org/big/README.md", b"# big\n");
        write(root, "org/big/model.bin", &bytes(BIG, 2));
        write(root, "org/private/model.gguf", &bytes(3 << 20, 3));
        write(root, "org/private/config.json", b"{}");
        let mut store = Store::open(root).unwrap();
        store.set_tokens(Kind::Model, "org/private", vec![TOKEN.to_string()]);
        let server = Server::builder(store)
            .alias(Kind::Model, "org/old-name", "org/small")
            .page_size(2)
            .start()
            .await
            .unwrap();
        Fixture {
            repos,
            cache: tempfile::tempdir().unwrap(),
            server,
        }
    }

    pub fn options(&self) -> HubOptions {
        let mut options = HubOptions {
            endpoint: self.server.url(),
            cache_dir: self.cache.path().to_path_buf(),
            token: None,
            ..HubOptions::default()
        };
        options.retry.base_delay = Duration::from_millis(10);
        options.retry.max_delay = Duration::from_millis(200);
        options.chunk_size = 4 << 20;
        options
    }

    pub fn hub(&self) -> Hub {
        Hub::new(self.options()).unwrap()
    }

    pub fn source(&self, repo: &str, path: &str) -> Vec<u8> {
        std::fs::read(self.repos.path().join(repo).join(path)).unwrap()
    }

    pub fn cache_root(&self) -> PathBuf {
        self.cache.path().to_path_buf()
    }
}

pub fn model(id: &str) -> RepoRef {
    RepoRef::model(id).unwrap()
}

pub fn main() -> Revision {
    Revision::main()
}

pub fn path(p: &str) -> RepoPath {
    RepoPath::new(p).unwrap()
}

/// A reporter that keeps every event.
pub fn recorder() -> (SharedReporter, Arc<Mutex<Vec<Event>>>) {
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = events.clone();
    (
        Arc::new(move |e: &Event| sink.lock().unwrap().push(e.clone())),
        events,
    )
}

/// Every file under `dir` (recursively), with what it is.
pub fn tree(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let p = entry.path();
            let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
            let meta = std::fs::symlink_metadata(&p).unwrap();
            if meta.file_type().is_symlink() {
                out.push(format!(
                    "{rel} -> {}",
                    std::fs::read_link(&p).unwrap().display()
                ));
            } else if meta.is_dir() {
                out.push(format!("{rel}/"));
                stack.push(p);
            } else {
                out.push(rel);
            }
        }
    }
    out.sort();
    out
}
