//! The steps that check a bump: patches, one version, build, tests,
//! benchmarks, API drift; and the commit when all pass.

use super::*;

impl Sync {
    pub(super) fn patches(&mut self, log: &Path) -> Result<Outcome> {
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

    pub(super) fn one_version(&mut self, log: &Path) -> Result<Outcome> {
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

    pub(super) fn target_dir(&self) -> PathBuf {
        std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| self.opts.repo.join("target"))
    }

    pub(super) fn build(&mut self, log: &Path) -> Result<Outcome> {
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

    pub(super) fn test(&mut self, log: &Path) -> Result<Outcome> {
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

    pub(super) fn bench(&mut self, log: &Path) -> Result<Outcome> {
        let script = self.wt.join("scripts/bench");
        let text = std::fs::read_to_string(&script).unwrap_or_default();
        let knows = text.lines().any(|l| {
            let t = l.trim_start();
            t.contains("= check ]") || t.starts_with("check)") || t.contains("|check)")
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

    pub(super) fn api_drift(&mut self, log: &Path) -> Result<Outcome> {
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

    pub(super) fn commit(&mut self, log: &Path) -> Result<String> {
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

pub(super) fn errored(what: String, e: SyncError) -> crate::report::ApiDrift {
    crate::report::ApiDrift {
        what,
        removed: Vec::new(),
        changed: Vec::new(),
        added: 0,
        error: Some(e.to_string()),
    }
}
