//! The steps of a sync, in order, each timed and logged.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use semver::Version;

use crate::error::{Result, SyncError, io};
use crate::report::{CrateRow, Report, Status, StepResult};
use crate::version::{MoveKind, classify, distance, newest};
use crate::workspace::{self, Role, Upstream};
use crate::{api, exec, graph, patches, registry};

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
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
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

    fn behind(&mut self, log: &Path) -> Result<Outcome> {
        let root = self.opts.repo.clone();
        let all_pins = workspace::pins(&root)?;
        let locked = workspace::lock(&root)?;
        let mut explicit: BTreeMap<String, Option<Version>> = BTreeMap::new();
        self.upstreams = if self.opts.crates.is_empty() {
            workspace::default_upstreams(&root)?
        } else {
            let mut v = Vec::new();
            for (name, version) in &self.opts.crates {
                v.push(workspace::upstream(&root, name, &all_pins, &locked)?);
                explicit.insert(name.clone(), version.clone());
            }
            v
        };
        let scratch = self.out.join("scratch");
        let (mut behind, mut compat, mut breaking) = (0, 0, 0);
        let mut errors = Vec::new();
        for up in self.upstreams.clone() {
            let mut row = CrateRow {
                name: up.name.clone(),
                role: match &up.role {
                    Role::Pinned => "pinned".to_owned(),
                    Role::Follows(h) => format!("follows {h}"),
                    Role::Fork(d) => format!("fork in {}", d.display()),
                },
                current: up.current.to_string(),
                newest_compatible: None,
                newest: None,
                newest_kind: "?".to_owned(),
                behind: "?".to_owned(),
                target: None,
                target_kind: None,
                target_distance: None,
                bumped: None,
                note: String::new(),
            };
            let releases = match registry::releases(&up.name, &scratch, log) {
                Ok(r) => r,
                Err(e) => {
                    row.note = e.to_string();
                    errors.push(up.name.clone());
                    self.report.crates.push(row);
                    continue;
                }
            };
            let list = releases.complete.then_some(releases.versions.as_slice());
            let (nc, no) = newest(&up.current, &releases.versions);
            if let Some(no) = &no {
                row.newest_kind = classify(&up.current, no).as_str().to_owned();
                row.behind = if no > &up.current {
                    distance(&up.current, no, list)
                } else {
                    "none".to_owned()
                };
                if no > &up.current {
                    behind += 1;
                    if classify(&up.current, no) == MoveKind::Compatible {
                        compat += 1;
                    } else {
                        breaking += 1;
                    }
                }
            }
            row.newest_compatible = nc.as_ref().map(|v| v.to_string());
            row.newest = no.as_ref().map(|v| v.to_string());
            let wanted = match explicit.get(&up.name) {
                Some(Some(v)) => {
                    if releases.complete && !releases.versions.contains(v) {
                        row.note = format!("{v} is not an unyanked release");
                        errors.push(up.name.clone());
                        None
                    } else {
                        Some(v.clone())
                    }
                }
                Some(None) => no.clone(),
                None if self.opts.compatible_only => nc.clone().filter(|v| v > &up.current),
                None => no.clone().filter(|v| v > &up.current),
            };
            if let Some(to) = wanted {
                row.target_kind = Some(classify(&up.current, &to).as_str().to_owned());
                row.target_distance = Some(distance(&up.current, &to, list));
                row.target = Some(to.to_string());
                match &up.role {
                    Role::Pinned => self.targets.push(Target { up: up.clone(), to }),
                    Role::Follows(h) => row.note = format!("moves with {h}"),
                    Role::Fork(_) => {
                        row.note = "our fork stands in: not bumped; see API drift".to_owned();
                        if explicit.contains_key(&up.name) {
                            self.targets.push(Target { up: up.clone(), to });
                        }
                    }
                }
            } else if let Role::Fork(_) = up.role {
                row.note = "our fork stands in: name it to see its API drift".to_owned();
            }
            self.report.crates.push(row);
        }
        let summary = format!(
            "{behind} of {} crates behind ({compat} compatible, {breaking} breaking); {} to move",
            self.upstreams.len(),
            self.targets
                .iter()
                .filter(|t| t.up.role == Role::Pinned)
                .count()
        );
        if !errors.is_empty() {
            return Ok((
                Status::Failed,
                format!("{summary}; no answer for {}", errors.join(", ")),
            ));
        }
        if self.targets.is_empty() {
            self.stop = Some("nothing is behind".to_owned());
        }
        Ok((Status::Ok, summary))
    }

    fn worktree(&mut self, log: &Path) -> Result<Outcome> {
        let repo = self.opts.repo.clone();
        if self.wt.exists() {
            let _ = exec::run(
                git(&repo)
                    .args(["worktree", "remove", "--force"])
                    .arg(&self.wt),
                log,
            );
            if self.wt.exists() {
                std::fs::remove_dir_all(&self.wt).map_err(io(&self.wt))?;
            }
        }
        exec::run_ok(git(&repo).args(["worktree", "prune"]), log)?;
        exec::run_ok(
            git(&repo)
                .args(["worktree", "add", "--detach"])
                .arg(&self.wt)
                .arg("HEAD"),
            log,
        )?;
        Ok((
            Status::Ok,
            format!("{} at {}", self.wt.display(), self.report.head),
        ))
    }

    fn bump(&mut self, log: &Path) -> Result<Outcome> {
        let wt = self.wt.clone();
        let before = workspace::lock(&wt)?;
        let mut failed = Vec::new();
        let mut notes: BTreeMap<String, String> = BTreeMap::new();
        for t in self.targets.clone() {
            if t.up.role != Role::Pinned {
                continue;
            }
            if let Err(e) = self.bump_one(&t, log) {
                notes.insert(t.up.name.clone(), e.to_string());
                failed.push(t.up.name.clone());
            }
        }
        let after = workspace::lock(&wt)?;
        let pins = workspace::pins(&wt)?;
        let mut moved = Vec::new();
        for row in &mut self.report.crates {
            let Some(up) = self.upstreams.iter().find(|u| u.name == row.name) else {
                continue;
            };
            let now = match &up.role {
                Role::Pinned => workspace::current(
                    &after,
                    &up.name,
                    pins.get(&up.name).map(Vec::as_slice).unwrap_or(&[]),
                )?,
                Role::Follows(_) => after
                    .iter()
                    .filter(|l| l.name == up.name)
                    .map(|l| l.version.clone())
                    .max(),
                Role::Fork(_) => None,
            };
            if let Some(n) = &notes.get(&row.name) {
                row.note = format!("bump failed: {n}");
            }
            if let Some(now) = now {
                let was = before
                    .iter()
                    .any(|l| l.name == up.name && l.version == up.current);
                if now != up.current || !was {
                    moved.push(format!("{} {} -> {now}", up.name, up.current));
                    self.bumped
                        .push((up.name.clone(), up.current.clone(), now.clone()));
                    if matches!(up.role, Role::Follows(_)) {
                        row.note = format!("moved to {now} with the family");
                    }
                }
                if row.target.is_some() || now != up.current {
                    row.bumped = Some(row.target.as_deref() == Some(now.to_string().as_str()));
                }
            }
        }
        let summary = if moved.is_empty() {
            "no pin moved".to_owned()
        } else {
            moved.join(", ")
        };
        if failed.is_empty() {
            Ok((Status::Ok, summary))
        } else {
            Ok((
                Status::Failed,
                format!("{summary}; could not move {}", failed.join(", ")),
            ))
        }
    }

    fn bump_one(&mut self, t: &Target, log: &Path) -> Result<()> {
        let wt = self.wt.clone();
        let name = &t.up.name;
        if t.to == t.up.current {
            return Ok(());
        }
        let to = t.to.to_string();
        let mut edited = false;
        for pin in &t.up.pins {
            if !workspace::parse_req(&pin.req)?.matches(&t.to) {
                let req = if pin.req.trim_start().starts_with('=') {
                    format!("={to}")
                } else {
                    to.clone()
                };
                workspace::set_req(&wt, pin, &req)?;
                edited = true;
            }
        }
        let mut from = t.up.current.clone();
        if edited {
            // Re-resolve the edited requirement, the rest of the lock kept.
            exec::run_ok(exec::cargo(&wt).args(["update", "--workspace"]), log)?;
            let pins = workspace::pins(&wt)?;
            let lock = workspace::lock(&wt)?;
            match workspace::current(
                &lock,
                name,
                pins.get(name).map(Vec::as_slice).unwrap_or(&[]),
            )? {
                Some(v) if v == t.to => return Ok(()),
                Some(v) => from = v,
                None => {
                    return Err(SyncError::Registry(format!(
                        "{name}: no version resolved for {to}"
                    )));
                }
            }
        }
        exec::run_ok(
            exec::cargo(&wt).args(["update", "-p", &format!("{name}@{from}"), "--precise", &to]),
            log,
        )?;
        Ok(())
    }

    fn patches(&mut self, log: &Path) -> Result<Outcome> {
        let names: Vec<String> = self.bumped.iter().map(|(n, _, _)| n.clone()).collect();
        let (outcomes, config) = patches::run_all(&self.wt, &names, &self.out, log)?;
        self.patch_config = config;
        let failed: Vec<String> = outcomes
            .iter()
            .filter(|o| o.status == crate::report::PatchStatus::Failed)
            .map(|o| o.file.clone())
            .collect();
        let fuzzy = outcomes
            .iter()
            .filter(|o| o.status == crate::report::PatchStatus::OffsetOrFuzz)
            .count();
        let summary = format!(
            "{} patches: {} clean, {fuzzy} with offset or fuzz, {} failed{}",
            outcomes.len(),
            outcomes.len() - fuzzy - failed.len(),
            failed.len(),
            if failed.is_empty() {
                String::new()
            } else {
                format!(" ({})", failed.join(", "))
            }
        );
        self.report.patches = outcomes;
        Ok((
            if failed.is_empty() {
                Status::Ok
            } else {
                Status::Failed
            },
            summary,
        ))
    }

    fn one_version(&mut self, log: &Path) -> Result<Outcome> {
        let mut checks = vec![graph::check(&self.wt, "default", &[], log)?];
        if let Some(config) = &self.patch_config {
            let extra = vec![
                "--config".to_owned(),
                config.to_string_lossy().into_owned(),
                "--features".to_owned(),
                "tektra-inference/mistralrs".to_owned(),
            ];
            checks.push(graph::check(&self.wt, "mistralrs", &extra, log)?);
        }
        let problems: Vec<String> = checks
            .iter()
            .flat_map(|c| c.problems.iter().map(move |p| format!("{}: {p}", c.graph)))
            .collect();
        self.report.one_version = checks;
        if problems.is_empty() {
            Ok((
                Status::Ok,
                "one version of each in the default and mistralrs graphs".to_owned(),
            ))
        } else {
            Ok((Status::Failed, problems.join("; ")))
        }
    }

    fn target_dir(&self) -> PathBuf {
        std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| self.opts.repo.join("target"))
    }

    fn build(&mut self, log: &Path) -> Result<Outcome> {
        let td = self.target_dir();
        let mut default = exec::cargo(&self.wt);
        default
            .env("CARGO_TARGET_DIR", &td)
            .args(["build", "--release"]);
        if !exec::run_to_log(&mut default, log)? {
            return Ok((
                Status::Failed,
                "default `cargo build --release` failed".to_owned(),
            ));
        }
        // The mistralrs build as scripts/test makes it.
        let mut mr = Command::new("bash");
        mr.current_dir(&self.wt)
            .env("CARGO_TARGET_DIR", &td)
            .arg("scripts/apply-patches")
            .args([
                "--",
                "cargo",
                "nextest",
                "run",
                "--no-run",
                "--config",
                "vendor/mistralrs/patched/config.toml",
                "--config",
                "vendor/mistralrs/dev-profile.toml",
                "-p",
                "tektra-inference",
                "-p",
                "tektra",
                "--features",
                "tektra-inference/mistralrs,tektra/mistralrs",
            ]);
        if !exec::run_to_log(&mut mr, log)? {
            return Ok((Status::Failed, "the mistralrs build failed".to_owned()));
        }
        Ok((
            Status::Ok,
            "default release build and mistralrs build passed".to_owned(),
        ))
    }

    fn test(&mut self, log: &Path) -> Result<Outcome> {
        let mut cmd = Command::new("bash");
        cmd.current_dir(&self.wt)
            .env("CARGO_TARGET_DIR", self.target_dir())
            .arg("scripts/test");
        Ok(if exec::run_to_log(&mut cmd, log)? {
            (Status::Ok, "scripts/test passed".to_owned())
        } else {
            (Status::Failed, "scripts/test failed".to_owned())
        })
    }

    fn bench(&mut self, log: &Path) -> Result<Outcome> {
        let script = self.wt.join("scripts/bench");
        let text = std::fs::read_to_string(&script).unwrap_or_default();
        let knows = text.lines().any(|l| {
            let t = l.trim_start();
            t.starts_with("check)") || t.starts_with("check|") || t.contains("|check)")
        });
        if !knows {
            return Ok((
                Status::Skipped,
                "scripts/bench has no `check` yet".to_owned(),
            ));
        }
        let mut cmd = Command::new("bash");
        cmd.current_dir(&self.wt)
            .env("CARGO_TARGET_DIR", self.target_dir())
            .args(["scripts/bench", "check"]);
        Ok(if exec::run_to_log(&mut cmd, log)? {
            (Status::Ok, "scripts/bench check passed".to_owned())
        } else {
            (Status::Failed, "scripts/bench check failed".to_owned())
        })
    }

    fn api_drift(&mut self, log: &Path) -> Result<Outcome> {
        let dir = self.out.join("api");
        let target = self.out.join("api-target");
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        let sources = api::our_sources(&self.wt);
        let mut drifts = Vec::new();
        let mut failed = 0;
        // (a) upstream's newest API against our fork's.
        for up in self
            .upstreams
            .iter()
            .filter(|u| matches!(u.role, Role::Fork(_)))
        {
            let row = self.report.crates.iter().find(|r| r.name == up.name);
            let Some(newest) = row.and_then(|r| r.target.clone().or(r.newest.clone())) else {
                continue;
            };
            let what = format!("{} {newest} (upstream) -> our fork", up.name);
            let result = api::registry_json(&up.name, &newest, &dir, &target, log).and_then(|u| {
                let ours = api::workspace_json(
                    &self.wt,
                    &up.name,
                    &target,
                    &dir.join(format!("{}-fork.json", up.name)),
                    log,
                )?;
                Ok((api::load(&u)?, api::load(&ours)?))
            });
            drifts.push(match result {
                Ok((upstream, ours)) => api::drift(what, &upstream, &ours, None, &sources),
                Err(e) => {
                    failed += 1;
                    errored(what, e)
                }
            });
        }
        // (b) each bumped crate, old against new, with our files naming items.
        for (name, old, new) in self.bumped.clone() {
            let what = format!("{name} {old} -> {new}");
            let result =
                api::registry_json(&name, &old.to_string(), &dir, &target, log).and_then(|o| {
                    let n = api::registry_json(&name, &new.to_string(), &dir, &target, log)?;
                    Ok((api::load(&o)?, api::load(&n)?))
                });
            drifts.push(match result {
                Ok((o, n)) => api::drift(what, &o, &n, Some(&name.replace('-', "_")), &sources),
                Err(e) => {
                    failed += 1;
                    errored(what, e)
                }
            });
        }
        let summary = drifts
            .iter()
            .map(|d| match &d.error {
                Some(_) => format!("{}: not compared", d.what),
                None => format!(
                    "{}: {} removed, {} changed ({} named by us)",
                    d.what,
                    d.removed.len(),
                    d.changed.len(),
                    d.removed
                        .iter()
                        .chain(&d.changed)
                        .filter(|i| !i.used_in.is_empty())
                        .count()
                ),
            })
            .collect::<Vec<_>>()
            .join("; ");
        self.report.api_drift = drifts;
        let summary = if summary.is_empty() {
            "nothing to compare".to_owned()
        } else {
            summary
        };
        Ok((
            if failed > 0 {
                Status::Failed
            } else {
                Status::Ok
            },
            summary,
        ))
    }

    fn commit(&mut self, log: &Path) -> Result<String> {
        let date = utc_now().chars().take(10).collect::<String>();
        let mut branch = format!("sync/{date}");
        let mut n = 2;
        while git(&self.opts.repo)
            .args([
                "rev-parse",
                "--verify",
                "--quiet",
                &format!("refs/heads/{branch}"),
            ])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
        {
            branch = format!("sync/{date}-{n}");
            n += 1;
        }
        let moves: Vec<String> = self
            .bumped
            .iter()
            .map(|(n, o, v)| format!("{n} {o} -> {v}"))
            .collect();
        let message = format!(
            "sync-upstream: {}\n\nEvery step of scripts/sync-upstream passed or was skipped on request\n(target/sync/report.md).",
            if moves.is_empty() {
                "no pin moved".to_owned()
            } else {
                moves.join(", ")
            }
        );
        exec::run_ok(git(&self.wt).args(["switch", "-c", &branch]), log)?;
        exec::run_ok(git(&self.wt).args(["add", "-A"]), log)?;
        exec::run_ok(git(&self.wt).args(["commit", "-q", "-m", &message]), log)?;
        Ok(branch)
    }
}

fn errored(what: String, e: SyncError) -> crate::report::ApiDrift {
    crate::report::ApiDrift {
        what,
        removed: Vec::new(),
        changed: Vec::new(),
        added: 0,
        error: Some(e.to_string()),
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
