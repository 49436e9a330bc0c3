//! The steps of a sync, in order, each timed and logged.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Instant, SystemTime};

use semver::Version;

use crate::error::{Result, SyncError, io};
use crate::report::{CrateRow, Report, Status, StepResult};
use crate::version::{MoveKind, classify, distance, newest};
use crate::workspace::{self, Role, Upstream};
use crate::{api, exec, graph, patches, registry};

mod prepare;
mod verify;

/// The steps, in the order they run.
pub const STEPS: &[&str] = &[
    "behind",
    "worktree",
    "bump",
    "patches",
    "one-version",
    "build",
    "test",
    "bench",
    "api-drift",
];

/// What a sync is asked to do.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The repository (its working tree is only read; work happens in a
    /// scratch worktree of its HEAD).
    pub repo: PathBuf,
    /// Crates named on the command line, with an exact version or none
    /// (its newest). Empty: every upstream the workspace pins.
    pub crates: Vec<(String, Option<Version>)>,
    /// Steps not to run.
    pub skip: Vec<String>,
    /// Leave the bump as a commit on a new branch when every step passed.
    pub commit: bool,
    /// Keep the scratch worktree afterwards.
    pub keep: bool,
    /// Move only to the newest semver-compatible release.
    pub compatible_only: bool,
}

/// A crate the sync moves.
#[derive(Debug, Clone)]
struct Target {
    up: Upstream,
    to: Version,
}

/// Result of a step's body: its status and a one-line summary.
type Outcome = (Status, String);

struct Sync {
    opts: Options,
    out: PathBuf,
    logs: PathBuf,
    wt: PathBuf,
    report: Report,
    /// Steps that failed, or were skipped because one they need failed.
    blocked: BTreeMap<String, String>,
    upstreams: Vec<Upstream>,
    targets: Vec<Target>,
    bumped: Vec<(String, Version, Version)>,
    patch_config: Option<PathBuf>,
    stop: Option<String>,
}

/// UTC now as `YYYY-MM-DDTHH:MM:SSZ` (civil-from-days, no clock crate).
pub fn utc_now() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

fn git(dir: &Path) -> Command {
    let mut c = Command::new("git");
    c.current_dir(dir);
    c
}

/// Which steps a step needs: when one of them failed it is skipped.
fn needs(step: &str) -> &'static [&'static str] {
    match step {
        "worktree" => &["behind"],
        "bump" => &["worktree"],
        "patches" => &["bump"],
        "one-version" => &["bump", "patches"],
        "build" => &["bump", "patches"],
        "test" => &["build"],
        "bench" => &["build"],
        "api-drift" => &["bump"],
        _ => &[],
    }
}

impl Sync {
    fn step(&mut self, name: &str, body: impl FnOnce(&mut Sync, &Path) -> Result<Outcome>) {
        let start = Instant::now();
        let skip = |why: String, blocked: bool, this: &mut Sync| {
            if blocked {
                this.blocked.insert(name.to_owned(), why.clone());
            }
            this.report.steps.push(StepResult {
                name: name.to_owned(),
                status: Status::Skipped,
                summary: why,
                seconds: 0.0,
                log: None,
            });
        };
        if let Some(why) = self.stop.clone() {
            return skip(why, true, self);
        }
        if self.opts.skip.iter().any(|s| s == name) {
            return skip("by --skip".to_owned(), false, self);
        }
        if let Some(dep) = needs(name).iter().find(|d| self.blocked.contains_key(**d)) {
            return skip(format!("`{dep}` did not pass"), true, self);
        }
        let log = self.logs.join(format!("{name}.log"));
        let (status, summary) = match body(self, &log) {
            Ok(o) => o,
            Err(e) => (Status::Failed, e.to_string()),
        };
        if status == Status::Failed {
            self.blocked.insert(name.to_owned(), summary.clone());
            self.report.ok = false;
        }
        self.report.steps.push(StepResult {
            name: name.to_owned(),
            status,
            summary,
            seconds: (start.elapsed().as_secs_f64() * 10.0).round() / 10.0,
            log: log.exists().then_some(log),
        });
    }
}

/// Runs a sync and writes its report to `repo/target/sync/`. The returned
/// report says whether every step passed (`ok`).
pub fn run(opts: Options) -> Result<Report> {
    for s in &opts.skip {
        if !STEPS.contains(&s.as_str()) {
            return Err(SyncError::Usage(format!(
                "--skip {s}: no such step (steps: {})",
                STEPS.join(", ")
            )));
        }
        if s == "behind" || s == "worktree" {
            return Err(SyncError::Usage(format!(
                "--skip {s}: every other step needs it"
            )));
        }
    }
    let repo = opts.repo.canonicalize().map_err(io(&opts.repo))?;
    let out = repo.join("target").join("sync");
    let logs = out.join("logs");
    for stale in ["logs", "rejects", "patched"] {
        let p = out.join(stale);
        if p.exists() {
            std::fs::remove_dir_all(&p).map_err(io(&p))?;
        }
    }
    std::fs::create_dir_all(&logs).map_err(io(&logs))?;
    let head_log = logs.join("git.log");
    let head = exec::run_ok(git(&repo).args(["rev-parse", "HEAD"]), &head_log)?
        .trim()
        .to_owned();
    let mut s = Sync {
        opts: Options {
            repo: repo.clone(),
            ..opts
        },
        wt: out.join("worktree"),
        out: out.clone(),
        logs,
        report: Report {
            started: utc_now(),
            repo,
            head,
            ok: true,
            crates: Vec::new(),
            steps: Vec::new(),
            patches: Vec::new(),
            one_version: Vec::new(),
            api_drift: Vec::new(),
            branch: None,
        },
        blocked: BTreeMap::new(),
        upstreams: Vec::new(),
        targets: Vec::new(),
        bumped: Vec::new(),
        patch_config: None,
        stop: None,
    };
    s.step("behind", Sync::behind);
    s.step("worktree", Sync::worktree);
    s.step("bump", Sync::bump);
    s.step("patches", Sync::patches);
    s.step("one-version", Sync::one_version);
    s.step("build", Sync::build);
    s.step("test", Sync::test);
    s.step("bench", Sync::bench);
    s.step("api-drift", Sync::api_drift);
    let log = s.logs.join("finish.log");
    if s.opts.commit && s.report.ok && s.stop.is_none() {
        match s.commit(&log) {
            Ok(b) => s.report.branch = Some(b),
            Err(e) => {
                s.report.ok = false;
                s.report.steps.push(StepResult {
                    name: "commit".to_owned(),
                    status: Status::Failed,
                    summary: e.to_string(),
                    seconds: 0.0,
                    log: Some(log.clone()),
                });
            }
        }
    }
    if !s.opts.keep && s.wt.exists() {
        let _ = exec::run(
            git(&s.opts.repo)
                .args(["worktree", "remove", "--force"])
                .arg(&s.wt),
            &log,
        );
    }
    s.report.write(&out)?;
    Ok(s.report)
}
