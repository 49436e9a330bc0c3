//! A scratch repository from the workspace's files, and the tool run on it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The workspace root (two levels above this crate).
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// Folders that are not the project's files: build output, git, the
/// patched copies and caches (ignored by git, absent from an export).
const LEAVE_OUT: &[&str] = &[
    "target",
    ".git",
    "patched",
    ".cache",
    "__pycache__",
    "corpus",
    "artifacts",
];

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        if LEAVE_OUT.iter().any(|l| name == *l) {
            continue;
        }
        let ty = entry.file_type().unwrap();
        let dest = to.join(&name);
        if ty.is_dir() {
            copy_tree(&entry.path(), &dest);
        } else if ty.is_file() {
            std::fs::copy(entry.path(), &dest).unwrap();
        }
    }
}

/// Runs `cmd` and fails the test with its output unless it succeeds.
pub fn ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A git command in `dir` with an identity of its own.
pub fn git(dir: &Path) -> Command {
    let mut c = Command::new("git");
    c.current_dir(dir).args([
        "-c",
        "user.name=sync-test",
        "-c",
        "user.email=sync-test@invalid",
    ]);
    c
}

/// A git repository holding a copy of the workspace (not its .git: the
/// suite may run from an export without one), one commit.
pub fn scratch_repo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_tree(&workspace(), dir.path());
    ok(git(dir.path()).args(["init", "-q"]));
    ok(git(dir.path()).args(["add", "-A"]));
    ok(git(dir.path()).args(["commit", "-q", "-m", "scratch"]));
    dir
}

/// What a run of the tool left.
pub struct Run {
    pub success: bool,
    pub stdout: String,
    pub json: serde_json::Value,
    pub md: String,
}

/// Runs the tool on `repo` with `args`, killed after `limit`.
pub fn sync(repo: &Path, args: &[&str], limit: Duration) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tektra-sync"))
        .arg("--repo")
        .arg(repo)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > limit {
            child.kill().unwrap();
            panic!("tektra-sync {args:?} took more than {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let mut stdout = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut stdout).unwrap();
    eprintln!("tektra-sync {args:?} ({:?}):\n{stdout}", start.elapsed());
    let dir = repo.join("target/sync");
    let json =
        serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap();
    let md = std::fs::read_to_string(dir.join("report.md")).unwrap();
    Run {
        success: status.success(),
        stdout,
        json,
        md,
    }
}

/// The step named `name` in a report.
pub fn step<'a>(json: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    json["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no step {name} in {json}"))
}

/// The version of `name` in `repo`'s Cargo.lock that matches `prefix`.
pub fn locked(repo: &Path, name: &str, prefix: &str) -> String {
    let lock = std::fs::read_to_string(repo.join("Cargo.lock")).unwrap();
    let mut lines = lock.lines();
    while let Some(l) = lines.next() {
        if l == format!("name = \"{name}\"") {
            let v = lines
                .next()
                .unwrap()
                .trim_start_matches("version = \"")
                .trim_end_matches('"');
            if v.starts_with(prefix) {
                return v.to_owned();
            }
        }
    }
    panic!("{name} {prefix}* is not in the lock")
}
