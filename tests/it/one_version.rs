//! One version of each upstream crate in the graph (shared/design.md): no
//! second candle, tokenizers, safetensors or hf-hub, in the default build and
//! in the `mistralrs` build with our patches (scripts/apply-patches).
//!
//! `cargo tree` runs on a mirror of the workspace in a temporary folder
//! (symlinks to everything but Cargo.lock, which is copied), because the
//! patched build re-resolves mistral.rs and would rewrite the real lock.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;

/// Crates of which the graph must hold exactly one version: the list the
/// upstream sync checks too, so the two cannot drift apart.
use tektra_sync::graph::ONE_VERSION;

/// The engine crate's feature that pulls in mistral.rs.
const MISTRALRS_FEATURE: &str = "tektra-inference/mistralrs";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn patch_config() -> PathBuf {
    root().join("vendor/mistralrs/patched/config.toml")
}

/// A folder that cargo takes for the workspace, with its own Cargo.lock.
fn mirror() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(root()).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        if name == "Cargo.lock" {
            std::fs::copy(entry.path(), dir.path().join(&name)).unwrap();
        } else if name != "target" && name != ".git" {
            std::os::unix::fs::symlink(entry.path(), dir.path().join(&name)).unwrap();
        }
    }
    dir
}

/// Every package of the workspace's normal-dependency graph, by name: the
/// distinct `vX.Y.Z (source)` it appears with.
fn graph(extra: &[&str]) -> BTreeMap<String, BTreeSet<String>> {
    let ws = mirror();
    let output = Command::new(env!("CARGO"))
        .current_dir(ws.path())
        .arg("tree")
        .arg("--manifest-path")
        .arg(ws.path().join("Cargo.toml"))
        .args([
            "--workspace",
            "--offline",
            "-e",
            "normal",
            "--prefix",
            "none",
            "--format",
            "{p}",
        ])
        .args(extra)
        .output()
        .expect("run cargo tree");
    assert!(
        output.status.success(),
        "cargo tree {extra:?} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut packages: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in String::from_utf8(output.stdout).unwrap().lines() {
        let line = line.trim().trim_end_matches(" (*)");
        if let Some((name, rest)) = line.split_once(' ') {
            // Sources are paths into the mirror or the real tree: compare by
            // what follows the workspace root, so both spell the same crate.
            let rest = rest
                .replace(&*ws.path().to_string_lossy(), "<root>")
                .replace(&*root().to_string_lossy(), "<root>");
            packages.entry(name.to_owned()).or_default().insert(rest);
        }
    }
    packages
}

/// The rules every build keeps; `what` names the build in messages.
fn check(what: &str, packages: &BTreeMap<String, BTreeSet<String>>) {
    let mut problems = Vec::new();
    for name in ONE_VERSION {
        if let Some(versions) = packages.get(*name)
            && versions.len() > 1
        {
            problems.push(format!(
                "{name}: {} versions: {versions:?} (see `cargo tree -i {name}`)",
                versions.len()
            ));
        }
    }
    for name in ["candle-core", "candle-nn", "candle-transformers"] {
        for v in packages.get(name).into_iter().flatten() {
            if !v.starts_with("v0.10.2") {
                problems.push(format!("{name} {v}: the workspace pins 0.10.2"));
            }
        }
    }
    for v in packages.get("tokenizers").into_iter().flatten() {
        if !v.starts_with("v0.22.") {
            problems.push(format!("tokenizers {v}: the workspace pins 0.22"));
        }
    }
    for v in packages.get("hf-hub").into_iter().flatten() {
        if !v.contains("(<root>/vendor/hf-hub)") {
            problems.push(format!("hf-hub {v} is not our fork in vendor/hf-hub"));
        }
    }
    for name in ["candle-core", "tokenizers", "safetensors", "hf-hub"] {
        if !packages.contains_key(name) {
            problems.push(format!(
                "{name} is missing: is the tree output parsed right?"
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "{what} breaks \"one version of each upstream crate\":\n  {}",
        problems.join("\n  ")
    );
}

#[test]
fn default_build_has_one_version_of_each_upstream_crate() {
    check("the default build", &graph(&[]));
}

/// Runs wherever the suite runs: it prepares the patched crates itself
/// (`scripts/apply-patches`, idempotent and cheap once done), so it checks
/// the `mistralrs` graph or fails saying why it could not.
#[test]
fn mistralrs_build_has_one_version_of_each_upstream_crate() {
    let prepared = Command::new("bash")
        .arg(root().join("scripts/apply-patches"))
        .current_dir(root())
        .output()
        .expect("run scripts/apply-patches");
    assert!(
        prepared.status.success(),
        "scripts/apply-patches failed, so the mistralrs graph cannot be checked:\n{}",
        String::from_utf8_lossy(&prepared.stderr)
    );
    let config = patch_config();
    assert!(
        config.exists(),
        "scripts/apply-patches did not write {}",
        config.display()
    );
    let config = config.to_string_lossy().into_owned();
    let packages = graph(&["--config", &config, "--features", MISTRALRS_FEATURE]);
    check("the `mistralrs` build", &packages);
    // Not vacuous: mistral.rs is in this graph, on our patched copies.
    for name in ["mistralrs-core", "toktrie_hf_tokenizers"] {
        let sources = packages.get(name).cloned().unwrap_or_default();
        assert!(
            !sources.is_empty()
                && sources
                    .iter()
                    .all(|v| v.contains("(<root>/vendor/mistralrs/patched/")),
            "{name} should come from vendor/mistralrs/patched/, got {sources:?}"
        );
    }
}
