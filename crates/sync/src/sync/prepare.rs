//! The first steps: what is behind, a scratch worktree, the bump.

use super::*;

impl Sync {
    pub(super) fn behind(&mut self, log: &Path) -> Result<Outcome> {
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
                // Named without a version, or not named: only a newer release
                // is a move (a current crate makes a no-op sync that stops here).
                _ if self.opts.compatible_only => nc.clone().filter(|v| v > &up.current),
                _ => no.clone().filter(|v| v > &up.current),
            };
            // Moving to the version already pinned is no move.
            if let Some(to) = wanted.filter(|v| v != &up.current) {
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
            self.stop = Some("nothing to move".to_owned());
        }
        Ok((Status::Ok, summary))
    }

    pub(super) fn worktree(&mut self, log: &Path) -> Result<Outcome> {
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

    pub(super) fn bump(&mut self, log: &Path) -> Result<Outcome> {
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

    pub(super) fn bump_one(&mut self, t: &Target, log: &Path) -> Result<()> {
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
}
