//! `tektra cache` on a cache huggingface_hub writes too, checked by
//! huggingface_hub's own scanner and `hf cache verify`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use tektra_hub_server::FaultPlan;

use crate::common::*;

/// huggingface_hub's view: repo id -> (size_on_disk, nb_files), and its
/// warnings.
fn scan_cache_dir(fx: &Fixture) -> (BTreeMap<String, (u64, u64)>, Vec<String>) {
    let py = fx.python(
        "import json\nfrom huggingface_hub import scan_cache_dir\n\
         info = scan_cache_dir()\n\
         print(json.dumps({'repos': {r.repo_id: [r.size_on_disk, r.nb_files] for r in info.repos},\
                           'warnings': [str(w) for w in info.warnings]}))",
        true,
    );
    assert!(py.status.success(), "{}", stderr(&py));
    let v: Value = serde_json::from_str(&stdout(&py)).unwrap();
    let repos = v["repos"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), (v[0].as_u64().unwrap(), v[1].as_u64().unwrap())))
        .collect();
    let warnings = v["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_str().unwrap().to_string())
        .collect();
    (repos, warnings)
}

/// Ours: repo id -> (size, files), from `tektra cache ls --json`.
fn ls(fx: &Fixture) -> BTreeMap<String, (u64, u64)> {
    let out = fx.tektra(&["cache", "ls", "--json"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let v: Value = serde_json::from_str(&stdout(&out)).unwrap();
    v["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["repo_id"].as_str().unwrap().to_string(),
                (r["size"].as_u64().unwrap(), r["files"].as_u64().unwrap()),
            )
        })
        .collect()
}

fn tree(root: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            if m.is_dir() && !m.is_symlink() {
                stack.push(p.clone());
            }
            out.insert(
                p,
                format!("{} {:?}", m.len(), std::fs::read_link(e.path()).ok()),
            );
        }
    }
    out
}

fn weights_blob(fx: &Fixture) -> PathBuf {
    std::fs::canonicalize(
        std::fs::read_dir(fx.cache().join("models--org--model/snapshots"))
            .unwrap()
            .flatten()
            .next()
            .unwrap()
            .path()
            .join("weights.bin"),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn ls_verify_rm_and_prune_agree_with_huggingface_hub() {
    let fx = Fixture::new().await;
    // huggingface_hub writes one repo, we write the other.
    let py = fx.python(
        "from huggingface_hub import snapshot_download\nsnapshot_download('org/model')",
        false,
    );
    assert!(py.status.success(), "{}", stderr(&py));
    let token = format!("--token={TOKEN}");
    let out = fx
        .tektra(&["download", "org/private", "-q", &token])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let (theirs, warnings) = scan_cache_dir(&fx);
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(ls(&fx), theirs);
    let text = fx.tektra(&["cache", "ls"]).output().unwrap();
    assert!(
        stdout(&text).contains("model/org/model"),
        "{}",
        stdout(&text)
    );
    assert!(
        stdout(&text).contains("Found 2 repo(s)"),
        "{}",
        stdout(&text)
    );

    // A flipped byte: both verifiers say so and exit 1.
    let blob = weights_blob(&fx);
    let mut bytes = std::fs::read(&blob).unwrap();
    bytes[12_345] ^= 1;
    std::fs::write(&blob, &bytes).unwrap();
    let ours = fx
        .tektra(&["cache", "verify", "org/model"])
        .output()
        .unwrap();
    assert_eq!(ours.status.code(), Some(1), "{}", stdout(&ours));
    assert!(stdout(&ours).contains("MISMATCH"), "{}", stdout(&ours));
    assert!(stdout(&ours).contains("weights.bin"), "{}", stdout(&ours));
    let hf = tektra_testdata::python().with_file_name("hf");
    let run_hf = |args: &[&str]| {
        Command::new(&hf)
            .args(args)
            .env("HF_HOME", fx.home.path())
            .env("HF_ENDPOINT", fx.server.url())
            .env_remove("HF_TOKEN")
            .env("HF_HUB_DISABLE_TELEMETRY", "1")
            .output()
            .unwrap()
    };
    let theirs = run_hf(&["cache", "verify", "org/model"]);
    assert_ne!(
        theirs.status.code(),
        Some(0),
        "hf cache verify: {}",
        stdout(&theirs)
    );
    assert!(
        format!("{}{}", stdout(&theirs), stderr(&theirs)).contains("weights.bin"),
        "{}\n{}",
        stdout(&theirs),
        stderr(&theirs)
    );
    bytes[12_345] ^= 1;
    std::fs::write(&blob, &bytes).unwrap();
    let ours = fx.tektra(&["cache", "verify"]).output().unwrap();
    assert_eq!(ours.status.code(), Some(0), "{}", stdout(&ours));
    let theirs = run_hf(&["cache", "verify", "org/model"]);
    assert_eq!(
        theirs.status.code(),
        Some(0),
        "{}{}",
        stdout(&theirs),
        stderr(&theirs)
    );

    // Unknown names and bad flags: an error naming them, nothing removed.
    let before = tree(&fx.cache());
    for (args, says) in [
        (&["cache", "rm", "org/none", "--yes"][..], "org/none"),
        (&["cache", "rm", "org/model@v9", "--yes"], "v9"),
        (
            &["cache", "prune", "--max-size", "20X", "--yes"],
            "not a size",
        ),
        (
            &["cache", "prune", "--older-than", "soon", "--yes"],
            "not a duration",
        ),
        (&["cache", "ls", "--filter", "size~1"], "not a filter"),
    ] {
        let out = fx.tektra(args).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(stderr(&out).contains(says), "{args:?}: {}", stderr(&out));
    }
    let dry = fx
        .tektra(&["cache", "rm", "org/private", "--dry-run"])
        .output()
        .unwrap();
    assert!(dry.status.success(), "{}", stderr(&dry));
    assert!(stdout(&dry).contains("Dry run"), "{}", stdout(&dry));
    let dry = fx
        .tektra(&["cache", "prune", "--max-size", "0", "--dry-run"])
        .output()
        .unwrap();
    assert!(dry.status.success(), "{}", stderr(&dry));
    assert_eq!(
        tree(&fx.cache()),
        before,
        "errors and dry runs change nothing"
    );

    // rm, then prune: huggingface_hub sees a sound cache that agrees with ours.
    let out = fx
        .tektra(&["cache", "rm", "org/private", "--yes"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let (theirs, warnings) = scan_cache_dir(&fx);
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(theirs.keys().collect::<Vec<_>>(), ["org/model"]);
    assert_eq!(ls(&fx), theirs);
    let out = fx
        .tektra(&["cache", "prune", "--max-size", "1MB", "--yes"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let (theirs, warnings) = scan_cache_dir(&fx);
    assert!(
        warnings.is_empty() && theirs.is_empty(),
        "{theirs:?} {warnings:?}"
    );
    assert!(ls(&fx).is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_download_huggingface_hub_is_making_is_left_alone() {
    let fx = Fixture::new().await;
    let out = fx
        .tektra(&["download", "org/model", "config.json", "-q"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    fx.server.faults().set(FaultPlan {
        rate_limit: Some(8 << 20),
        ..FaultPlan::default()
    });
    let script = "from huggingface_hub import hf_hub_download\nprint(hf_hub_download('org/model', 'weights.bin'))";
    let mut py = Running::spawn(
        Command::new(tektra_testdata::python())
            .args(["-c", script])
            .env("HF_HOME", fx.home.path())
            .env("HF_ENDPOINT", fx.server.url())
            .env_remove("HF_TOKEN")
            .env("HF_HUB_DISABLE_PROGRESS_BARS", "1")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped()),
    );
    let blobs = fx.cache().join("models--org--model/blobs");
    let start = Instant::now();
    while !std::fs::read_dir(&blobs)
        .map(|d| {
            d.flatten()
                .any(|e| e.file_name().to_string_lossy().ends_with(".incomplete"))
        })
        .unwrap_or(false)
    {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no partial file appeared"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = fx
        .tektra(&["cache", "rm", "org/model", "--yes"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("held by another process"),
        "{}",
        stderr(&out)
    );
    let out = fx
        .tektra(&["cache", "prune", "--max-size", "0", "--yes"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(fx.cache().join("models--org--model").exists());
    let done = py.wait().unwrap();
    assert!(done.success());
    let mut path = String::new();
    std::io::Read::read_to_string(&mut py.stdout.take().unwrap(), &mut path).unwrap();
    assert!(std::fs::read(path.trim()).unwrap() == fx.source("org/model/weights.bin"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_download_with_keep_free_prunes_other_repos_first() {
    let fx = Fixture::new().await;
    let token = format!("--token={TOKEN}");
    let out = fx
        .tektra(&["download", "org/private", "-q", &token])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let out = fx
        .tektra(&["download", "org/model", "config.json", "-q"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    // More free space than any disk has: every other repo goes, this one stays.
    let out = fx
        .tektra(&[
            "download",
            "org/model",
            "extra/notes.md",
            "-q",
            "--keep-free",
            "1000000T",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("pruned 1 revision(s)"),
        "{}",
        stderr(&out)
    );
    assert!(!fx.cache().join("models--org--private").exists());
    assert!(std::fs::read(stdout(&out)).unwrap() == b"notes\n");
    let out = fx
        .tektra(&[
            "download",
            "org/model",
            "config.json",
            "-q",
            "--keep-free",
            "lots",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("not a size"), "{}", stderr(&out));
}
