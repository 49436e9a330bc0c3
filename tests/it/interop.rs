//! One cache, two tools: what tektra writes, Python's huggingface_hub reads
//! offline, and the other way round.

use crate::common::*;

#[tokio::test(flavor = "multi_thread")]
async fn python_reads_what_we_downloaded_offline() {
    let fx = Fixture::new().await;
    let out = fx
        .tektra(&["download", "org/model", "-q"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let ours = stdout(&out);
    let py = fx.python(
        "from huggingface_hub import hf_hub_download, snapshot_download\n\
         print(snapshot_download('org/model'))\n\
         print(hf_hub_download('org/model', 'weights.bin'))\n\
         print(hf_hub_download('org/model', 'extra/notes.md'))",
        true,
    );
    assert!(py.status.success(), "{}", stderr(&py));
    let lines: Vec<String> = stdout(&py).lines().map(str::to_string).collect();
    assert_eq!(lines[0], ours);
    assert_eq!(lines[1], format!("{ours}/weights.bin"));
    assert!(std::fs::read(&lines[1]).unwrap() == fx.source("org/model/weights.bin"));
    assert_eq!(std::fs::read(&lines[2]).unwrap(), b"notes\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn we_read_what_python_downloaded_offline() {
    let fx = Fixture::new().await;
    let py = fx.python(
        "from huggingface_hub import snapshot_download\nprint(snapshot_download('org/model'))",
        false,
    );
    assert!(py.status.success(), "{}", stderr(&py));
    let theirs = stdout(&py);
    let before = fx.server.stats();
    let out = fx
        .tektra(&["download", "org/model", "--offline", "-q"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), theirs);
    let out = fx
        .tektra(&["download", "org/model", "weights.bin", "--offline", "-q"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(std::fs::read(stdout(&out)).unwrap() == fx.source("org/model/weights.bin"));
    // And online, the blobs Python fetched count as cached: nothing moves.
    let out = fx
        .tektra(&["download", "org/model", "-q"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(fx.server.stats().content_bytes, before.content_bytes);
}

/// Every entry under `dir`, by path relative to it: a symlink's target, a
/// file's bytes, or a folder.
fn entries(dir: &std::path::Path) -> std::collections::BTreeMap<String, Entry> {
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(folder) = stack.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            let rel = path
                .strip_prefix(dir)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let entry = if meta.file_type().is_symlink() {
                Entry::Link(
                    std::fs::read_link(&path)
                        .unwrap()
                        .to_string_lossy()
                        .into_owned(),
                )
            } else if meta.is_dir() {
                stack.push(path);
                Entry::Dir
            } else {
                Entry::File(std::fs::read(&path).unwrap())
            };
            out.insert(rel, entry);
        }
    }
    out
}

#[derive(PartialEq, Eq)]
enum Entry {
    Dir,
    Link(String),
    File(Vec<u8>),
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Entry::Dir => write!(f, "dir"),
            Entry::Link(to) => write!(f, "-> {to}"),
            Entry::File(bytes) if bytes.len() <= 512 => {
                write!(f, "{:?}", String::from_utf8_lossy(bytes))
            }
            Entry::File(bytes) => write!(f, "{} bytes", bytes.len()),
        }
    }
}

/// The same repo fetched whole by huggingface_hub (`snapshot_download`) and
/// by `tektra download` into two empty homes: the caches are the same,
/// entry by entry (folders, symlink targets, blobs, refs, `trees/*.json`,
/// `CACHEDIR.TAG`), lock files aside (empty files whose presence depends on
/// the order each tool takes its locks in).
#[tokio::test(flavor = "multi_thread")]
async fn a_cache_written_by_huggingface_hub_is_the_same_as_ours() {
    let fx = Fixture::new().await;
    let theirs = tempfile::tempdir().unwrap();
    let py = fx.python_at(
        theirs.path(),
        "from huggingface_hub import snapshot_download\nprint(snapshot_download('org/model'))",
        false,
    );
    assert!(py.status.success(), "{}", stderr(&py));
    let out = fx
        .tektra(&["download", "org/model", "-q"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));

    let keep = |map: std::collections::BTreeMap<String, Entry>| {
        map.into_iter()
            .filter(|(path, _)| !path.starts_with(".locks/"))
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    let theirs = keep(entries(&theirs.path().join("hub")));
    let ours = keep(entries(&fx.cache()));
    let paths =
        |m: &std::collections::BTreeMap<String, Entry>| m.keys().cloned().collect::<Vec<_>>();
    assert_eq!(paths(&ours), paths(&theirs), "the same entries");
    for (path, entry) in &theirs {
        assert_eq!(&ours[path], entry, "{path}");
    }
    // Not vacuous: what the comparison covered.
    for must in ["CACHEDIR.TAG", "models--org--model/refs/main"] {
        assert!(theirs.contains_key(must), "{must}: {:?}", paths(&theirs));
    }
    assert!(
        theirs
            .keys()
            .any(|p| p.starts_with("models--org--model/trees/") && p.ends_with(".json")),
        "{:?}",
        paths(&theirs)
    );
}

/// huggingface_hub's HfApi, unchanged, against `tektra serve`'s routes.
#[tokio::test(flavor = "multi_thread")]
async fn hf_api_reads_repo_info_listings_and_paths_from_our_server() {
    let fx = Fixture::new().await;
    let py = fx.python(
        &format!(
            r#"
import json
from huggingface_hub import HfApi
api = HfApi()
info = api.model_info("org/model")
full = api.model_info("org/model", files_metadata=True)
at = api.model_info("org/model", revision=info.sha)
sizes = {{s.rfilename: (s.size, s.lfs.sha256 if s.lfs else None) for s in full.siblings}}
found = [m.id for m in api.list_models(search="mod", author="org", limit=10)]
everything = [m.id for m in api.list_models()]
with_token = [m.id for m in api.list_models(token="{TOKEN}")]
files = api.list_repo_files("org/model")
tree = sorted((e.path, type(e).__name__) for e in api.list_repo_tree("org/model", recursive=True))
top = sorted(e.path for e in api.list_repo_tree("org/model"))
paths = sorted((e.path, type(e).__name__) for e in api.get_paths_info("org/model", ["config.json", "extra", "nope.txt"]))
exists = [api.file_exists("org/model", "config.json"), api.file_exists("org/model", "nope.txt"), api.repo_exists("org/model"), api.repo_exists("org/none")]
private = api.model_info("org/private", token="{TOKEN}").id
print(json.dumps(dict(sha=info.sha, same=at.sha == info.sha, siblings=sorted(s.rfilename for s in info.siblings), sizes=sizes,
    found=found, everything=everything, with_token=with_token, files=sorted(files), tree=tree, top=top, paths=paths, exists=exists, private=private)))
"#
        ),
        false,
    );
    assert!(py.status.success(), "{}", stderr(&py));
    let v: serde_json::Value = serde_json::from_str(&stdout(&py)).unwrap();
    assert_eq!(v["sha"].as_str().unwrap().len(), 40);
    assert_eq!(v["same"], true);
    let files = serde_json::json!(["config.json", "extra/notes.md", "weights.bin"]);
    assert_eq!(v["siblings"], files);
    assert_eq!(v["files"], files);
    assert_eq!(v["sizes"]["weights.bin"][0], BIG as u64);
    assert_eq!(
        v["sizes"]["weights.bin"][1].as_str().unwrap().len(),
        64,
        "LFS sha256: {v}"
    );
    assert_eq!(v["sizes"]["extra/notes.md"][0], 6);
    assert_eq!(v["found"], serde_json::json!(["org/model"]));
    assert_eq!(
        v["everything"],
        serde_json::json!(["org/model"]),
        "private repos stay hidden"
    );
    assert_eq!(
        v["with_token"],
        serde_json::json!(["org/model", "org/private"])
    );
    assert_eq!(
        v["tree"],
        serde_json::json!([
            ["config.json", "RepoFile"],
            ["extra", "RepoFolder"],
            ["extra/notes.md", "RepoFile"],
            ["weights.bin", "RepoFile"]
        ])
    );
    assert_eq!(
        v["top"],
        serde_json::json!(["config.json", "extra", "weights.bin"])
    );
    assert_eq!(
        v["paths"],
        serde_json::json!([["config.json", "RepoFile"], ["extra", "RepoFolder"]])
    );
    assert_eq!(v["exists"], serde_json::json!([true, false, true, false]));
    assert_eq!(v["private"], "org/private");
}
