use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tektra_hub_server::{Kind, Server, ServerBuilder, Store};

pub const TOKEN: &str = "hf_cli_test_token";
pub const BIG: usize = 48 << 20;

/// A child process that is killed and reaped if the test ends (or panics)
/// while it still runs, so no `tektra` outlives its test.
pub struct Running(Option<Child>);

impl Running {
    pub fn spawn(cmd: &mut Command) -> Running {
        Running(Some(cmd.spawn().unwrap()))
    }

    /// The child, for waiting on it to the end.
    pub fn into_inner(mut self) -> Child {
        self.0.take().expect("the child is there until dropped")
    }
}

impl std::ops::Deref for Running {
    type Target = Child;
    fn deref(&self) -> &Child {
        self.0.as_ref().expect("the child is there until dropped")
    }
}

impl std::ops::DerefMut for Running {
    fn deref_mut(&mut self) -> &mut Child {
        self.0.as_mut().expect("the child is there until dropped")
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Lowercase hex sha256 of `data`: an LFS file's etag.
pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}

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

/// Writes `data` at `rel` under `dir`, making folders as needed.
pub fn put(dir: &Path, rel: &str, data: &[u8]) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, data).unwrap();
}

/// A local Hub serving a folder of repos, and an empty HF_HOME for the CLI.
pub struct Fixture {
    repos: tempfile::TempDir,
    pub home: tempfile::TempDir,
    pub server: Server,
}

impl Fixture {
    /// `org/model` (a config, a 48 MiB file, a nested note) and
    /// `org/private` (readable with [`TOKEN`]), served over HTTP.
    pub async fn new() -> Fixture {
        let repos = tempfile::tempdir().unwrap();
        put(
            repos.path(),
            "org/model/config.json",
            br#"{"architectures": ["LlamaForCausalLM"]}"#,
        );
        put(repos.path(), "org/model/weights.bin", &bytes(BIG, 7));
        put(repos.path(), "org/model/extra/notes.md", b"notes\n");
        put(
            repos.path(),
            "org/private/model.safetensors",
            &bytes(2 << 20, 8),
        );
        Fixture::serve(repos, |mut store| {
            store.set_tokens(Kind::Model, "org/private", vec![TOKEN.into()]);
            Server::builder(store)
        })
        .await
    }

    /// Serves `repos` with the server `build` makes from their store.
    pub async fn serve(
        repos: tempfile::TempDir,
        build: impl FnOnce(Store) -> ServerBuilder,
    ) -> Fixture {
        let store = Store::open(repos.path()).unwrap();
        let server = build(store).start().await.unwrap();
        Fixture {
            repos,
            home: tempfile::tempdir().unwrap(),
            server,
        }
    }

    pub fn cache(&self) -> PathBuf {
        self.home.path().join("hub")
    }

    pub fn source(&self, rel: &str) -> Vec<u8> {
        std::fs::read(self.repos.path().join(rel)).unwrap()
    }

    /// `tektra ARGS` with a clean environment pointing at our server and cache.
    pub fn tektra(&self, args: &[&str]) -> Command {
        tektra(args, self.home.path(), &self.server)
    }

    pub fn python(&self, script: &str, offline: bool) -> std::process::Output {
        self.python_at(self.home.path(), script, offline)
    }

    /// [`Fixture::python`] with `home` as HF_HOME.
    pub fn python_at(&self, home: &Path, script: &str, offline: bool) -> std::process::Output {
        let mut cmd = Command::new(tektra_testdata::python());
        cmd.arg("-c").arg(script);
        for var in HUB_ENV {
            cmd.env_remove(var);
        }
        cmd.env("HF_HOME", home)
            .env("HF_ENDPOINT", self.server.url())
            .env("HF_HUB_DISABLE_TELEMETRY", "1")
            .env("HF_HUB_DISABLE_PROGRESS_BARS", "1");
        if offline {
            cmd.env("HF_HUB_OFFLINE", "1");
        }
        cmd.output().unwrap()
    }
}

pub fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

pub fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).trim().to_string()
}

/// Bytes covered by the range journal of the (only) partial file.
pub fn journal_covered(blobs: &Path) -> u64 {
    let Ok(dir) = std::fs::read_dir(blobs) else {
        return 0;
    };
    let mut ranges: Vec<(u64, u64)> = Vec::new();
    for entry in dir.flatten() {
        if entry
            .file_name()
            .to_string_lossy()
            .ends_with(".incomplete.parts")
        {
            for line in std::fs::read_to_string(entry.path())
                .unwrap_or_default()
                .lines()
            {
                let mut it = line.split(' ').map(|n| n.parse::<u64>());
                if let (Some(Ok(a)), Some(Ok(b))) = (it.next(), it.next()) {
                    ranges.push((a, b));
                }
            }
        }
    }
    ranges.sort_unstable();
    let (mut covered, mut end) = (0, 0);
    for (a, b) in ranges {
        let a = a.max(end);
        if b > a {
            covered += b - a;
            end = b;
        }
    }
    covered
}

/// Polls `check` every 20 ms until it holds; panics after `limit`.
pub async fn wait_until(limit: Duration, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(
            start.elapsed() < limit,
            "condition not reached in {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The caller's Hub settings that must not reach a child under test: a
/// real token, a shared cache, offline or Xet switches.
pub const HUB_ENV: &[&str] = &[
    "HF_TOKEN",
    "HF_TOKEN_PATH",
    "HUGGING_FACE_HUB_TOKEN",
    "HF_HUB_OFFLINE",
    "HF_HUB_CACHE",
    "HUGGINGFACE_HUB_CACHE",
    "HF_XET_CACHE",
    "HF_HUB_DISABLE_XET",
    "HF_ENDPOINT",
];

/// `tektra ARGS` with only `home` as HF_HOME and `server` as the Hub: none of
/// the caller's Hub settings (token, offline, cache, Xet switch) leak in.
pub fn tektra(args: &[&str], home: &Path, server: &Server) -> Command {
    tektra_at(args, home, &server.url())
}

/// [`tektra`] with the Hub at `endpoint` (e.g. a `tektra serve` child).
pub fn tektra_at(args: &[&str], home: &Path, endpoint: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tektra"));
    cmd.args(args);
    for var in HUB_ENV {
        cmd.env_remove(var);
    }
    cmd.env("HF_HOME", home)
        .env("HF_ENDPOINT", endpoint)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// Every stderr line of a `--json` run, parsed: each one must be JSON.
pub fn json_lines(out: &std::process::Output) -> Vec<serde_json::Value> {
    stderr(out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not NDJSON: {l}: {e}")))
        .collect()
}
