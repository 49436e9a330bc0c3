//! The three scenarios of a sync, each checked in report.json and report.md.

use std::time::Duration;

use crate::common::{git, locked, ok, scratch_repo, step, sync};

/// A sync without the workspace's own suite; each test says so in its args.
const SKIP: &str = "--skip=build,test,bench,api-drift";

/// Bound on one run (the registry answers, two `cargo tree`s, a metadata).
const LIMIT: Duration = Duration::from_secs(300);

/// Steps the tests skip are reported as skipped "by --skip".
fn skipped_by_flag(json: &serde_json::Value) {
    for name in ["build", "test", "bench", "api-drift"] {
        let s = step(json, name);
        assert_eq!(s["status"], "skipped", "{s}");
        assert_eq!(s["summary"], "by --skip", "{s}");
    }
}

/// globset 0.4.20 -> 0.4.21 is one release, compatible. (half, the first
/// idea, cannot go back: mistralrs-core 0.8.1 needs half ^2.7.1 and 2.7.0
/// was never released.)
#[test]
fn a_pin_moved_back_one_release_is_synced_forward() {
    let repo = scratch_repo();
    ok(std::process::Command::new("cargo")
        .current_dir(repo.path())
        .args(["update", "-q", "-p", "globset", "--precise", "0.4.20"]));
    ok(git(repo.path()).args(["commit", "-q", "-am", "globset back one release"]));
    let head = ok(git(repo.path()).args(["rev-parse", "HEAD"]));

    let run = sync(repo.path(), &["globset@0.4.21", SKIP, "--commit"], LIMIT);
    assert!(run.success, "{}", run.md);
    let j = &run.json;
    assert_eq!(j["ok"], true);
    // --commit: the bump is a commit on a new branch, the user's branch as it was.
    let branch = j["branch"].as_str().unwrap();
    assert!(branch.starts_with("sync/20"), "{branch}");
    let lock = ok(git(repo.path()).args(["show", &format!("{branch}:Cargo.lock")]));
    assert!(lock.contains("name = \"globset\"\nversion = \"0.4.21\""));
    let parent = ok(git(repo.path()).args(["rev-parse", &format!("{branch}^")]));
    assert_eq!(parent, ok(git(repo.path()).args(["rev-parse", "HEAD"])));
    let c = &j["crates"][0];
    assert_eq!(c["name"], "globset");
    assert_eq!(c["current"], "0.4.20");
    assert_eq!(c["target"], "0.4.21");
    assert_eq!(c["target_kind"], "compatible");
    assert_eq!(c["target_distance"], "1 release");
    assert_eq!(c["bumped"], true);
    assert_eq!(step(j, "bump")["status"], "ok");
    assert_eq!(step(j, "bump")["summary"], "globset 0.4.20 -> 0.4.21");
    assert_eq!(step(j, "patches")["status"], "ok");
    for p in j["patches"].as_array().unwrap() {
        assert_eq!(p["status"], "clean", "{p}");
    }
    assert_eq!(step(j, "one-version")["status"], "ok");
    let graphs: Vec<&str> = j["one_version"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["graph"].as_str().unwrap())
        .collect();
    assert_eq!(graphs, ["default", "mistralrs"]);
    assert!(
        j["one_version"]
            .as_array()
            .unwrap()
            .iter()
            .all(|g| g["ok"] == true)
    );
    skipped_by_flag(j);

    assert!(
        run.md.contains("| globset | pinned | 0.4.20 |"),
        "{}",
        run.md
    );
    assert!(
        run.md.contains("| 0.4.21 (compatible, 1 release) | yes |"),
        "{}",
        run.md
    );
    assert!(run.md.contains("| bump | ok |"), "{}", run.md);
    assert!(run.md.contains("| patches | ok |"), "{}", run.md);
    assert!(run.md.contains("| one-version | ok |"), "{}", run.md);
    assert!(
        run.md
            .contains("The `mistralrs` graph: one version of each."),
        "{}",
        run.md
    );
    assert!(run.stdout.contains("globset"), "{}", run.stdout);
    // The user's tree and branch are untouched; the scratch worktree is gone.
    assert_eq!(ok(git(repo.path()).args(["rev-parse", "HEAD"])), head);
    assert_eq!(
        ok(git(repo.path()).args(["status", "--porcelain", "--untracked-files=no"])),
        ""
    );
    assert_eq!(locked(repo.path(), "globset", "0.4."), "0.4.20");
    assert!(!repo.path().join("target/sync/worktree").exists());
}

#[test]
fn a_patch_that_no_longer_applies_fails_and_keeps_its_rejects() {
    let repo = scratch_repo();
    let file = "toktrie_hf_tokenizers-1.9.1-tokenizers-0.22.patch";
    let path = repo.path().join("patches").join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    // The context line next to the change: no fuzz reaches past it.
    let broken = text.replacen(
        "\n [dependencies.tokenizers]\n",
        "\n [dependencies.tokenizerz]\n",
        1,
    );
    assert_ne!(
        broken, text,
        "the patch's context changed; pick another line"
    );
    std::fs::write(&path, broken).unwrap();
    // A move to make (as in the first test), so the patches step runs.
    ok(std::process::Command::new("cargo")
        .current_dir(repo.path())
        .args(["update", "-q", "-p", "globset", "--precise", "0.4.20"]));
    ok(git(repo.path()).args(["commit", "-q", "-am", "break a patch"]));

    let run = sync(repo.path(), &["globset@0.4.21", SKIP], LIMIT);
    assert!(!run.success);
    let j = &run.json;
    assert_eq!(j["ok"], false);
    let s = step(j, "patches");
    assert_eq!(s["status"], "failed");
    assert!(
        s["summary"]
            .as_str()
            .unwrap()
            .contains(&format!("1 failed ({file})")),
        "{s}"
    );
    let p = j["patches"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["file"] == file)
        .unwrap();
    assert_eq!(p["status"], "failed");
    assert_eq!(p["tried_on"], "1.9.1");
    let rej = p["rejects"].as_str().unwrap();
    assert!(
        rej.ends_with(&format!("target/sync/rejects/{file}.rej")),
        "{rej}"
    );
    let rejected = std::fs::read_to_string(rej).unwrap();
    assert!(rejected.contains("+version = \"0.22.0\""), "{rejected}");
    // The other patches are still checked, and fine.
    assert!(
        j["patches"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["file"] != file)
            .all(|p| p["status"] == "clean")
    );
    assert_eq!(step(j, "one-version")["status"], "skipped");
    assert_eq!(step(j, "one-version")["summary"], "`patches` did not pass");
    skipped_by_flag(j);

    assert!(run.md.contains("| patches | failed |"), "{}", run.md);
    assert!(
        run.md.contains(&format!(
            "| {file} | toktrie_hf_tokenizers 1.9.1 | FAILED, rejected hunks in `{rej}` | yes |"
        )),
        "{}",
        run.md
    );
    assert!(run.md.contains("**a step FAILED**"), "{}", run.md);
}

#[test]
fn a_bump_that_brings_a_second_tokenizers_fails_one_version() {
    let repo = scratch_repo();
    let run = sync(repo.path(), &["tokenizers@0.21.4", SKIP], LIMIT);
    assert!(!run.success);
    let j = &run.json;
    let c = &j["crates"][0];
    assert_eq!(c["name"], "tokenizers");
    assert_eq!(c["target"], "0.21.4");
    assert_eq!(c["target_kind"], "breaking");
    assert_eq!(c["bumped"], true);
    assert_eq!(step(j, "bump")["status"], "ok");
    assert_eq!(step(j, "patches")["status"], "ok");
    let s = step(j, "one-version");
    assert_eq!(s["status"], "failed");
    let summary = s["summary"].as_str().unwrap();
    // candle-core 0.10.2 still pulls 0.22.x.
    assert!(
        summary.contains("default: tokenizers: 2 versions: 0.21.4 (pulled by "),
        "{summary}"
    );
    assert!(summary.contains(" and 0.22."), "{summary}");
    assert!(summary.contains("candle-core 0.10.2"), "{summary}");
    let default = &j["one_version"][0];
    assert_eq!(default["graph"], "default");
    assert_eq!(default["ok"], false);
    let toks = default["crates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c[0] == "tokenizers")
        .unwrap();
    let versions: Vec<&str> = toks[1]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["version"].as_str().unwrap())
        .collect();
    assert_eq!(versions.len(), 2, "{toks}");
    assert_eq!(versions[0], "0.21.4");
    assert!(versions[1].starts_with("0.22."), "{toks}");
    skipped_by_flag(j);

    assert!(run.md.contains("| one-version | failed |"), "{}", run.md);
    assert!(
        run.md.contains("The `default` graph: SECOND VERSION."),
        "{}",
        run.md
    );
    assert!(
        run.md
            .contains("- **tokenizers: 2 versions: 0.21.4 (pulled by "),
        "{}",
        run.md
    );
}

/// Naming a crate at the version already pinned is a sync with nothing to
/// move: it stops after `behind`, every later step skipped, success. No
/// `--skip` here: a run that went on would build and test the workspace
/// and hit the time bound.
#[test]
fn nothing_to_move_stops_after_behind() {
    let repo = scratch_repo();
    let current = locked(repo.path(), "globset", "0.4.");
    let run = sync(
        repo.path(),
        &[&format!("globset@{current}")],
        Duration::from_secs(120),
    );
    assert!(run.success, "{}", run.md);
    let j = &run.json;
    assert_eq!(j["ok"], true);
    assert_eq!(step(j, "behind")["status"], "ok");
    for name in [
        "worktree",
        "bump",
        "patches",
        "one-version",
        "build",
        "test",
        "bench",
        "api-drift",
    ] {
        let s = step(j, name);
        assert_eq!(s["status"], "skipped", "{s}");
        assert_eq!(s["summary"], "nothing to move", "{s}");
    }
    assert!(run.md.contains("| bump | skipped |"), "{}", run.md);
}
