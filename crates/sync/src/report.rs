//! The sync's report: `report.json` for tools, `report.md` for people.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{Result, io};

/// A step's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// It ran and passed.
    Ok,
    /// It ran and failed.
    Failed,
    /// It did not run (the summary says why).
    Skipped,
}

impl Status {
    /// The word the report uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Failed => "failed",
            Status::Skipped => "skipped",
        }
    }
}

/// One step of the sync.
#[derive(Debug, Clone, Serialize)]
pub struct StepResult {
    /// Its name (`behind`, `worktree`, `bump`, ...).
    pub name: String,
    /// How it ended.
    pub status: Status,
    /// What happened, in a line (for a skip: why).
    pub summary: String,
    /// Wall time in seconds.
    pub seconds: f64,
    /// Its log file, when it ran.
    pub log: Option<PathBuf>,
}

/// One upstream crate: where it is and where it could go.
#[derive(Debug, Clone, Serialize)]
pub struct CrateRow {
    /// The crate.
    pub name: String,
    /// `pinned`, `follows X`, or `fork in DIR`.
    pub role: String,
    /// The version in use.
    pub current: String,
    /// The newest release the caret rule takes for `current`.
    pub newest_compatible: Option<String>,
    /// The newest release.
    pub newest: Option<String>,
    /// `compatible` or `breaking`: the move to `newest`; `same` when current.
    pub newest_kind: String,
    /// How far `newest` is ("3 releases").
    pub behind: String,
    /// The version this sync moves it to, if it moves.
    pub target: Option<String>,
    /// The move to `target`: `compatible`, `breaking` or `same`.
    pub target_kind: Option<String>,
    /// How far `target` is.
    pub target_distance: Option<String>,
    /// Whether the bump step moved it (None: not attempted).
    pub bumped: Option<bool>,
    /// Anything else to know (a bump failure, why it does not move).
    pub note: String,
}

/// How a patch fared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PatchStatus {
    /// Every hunk at its place.
    Clean,
    /// Every hunk applied, some at an offset or with fuzz.
    OffsetOrFuzz,
    /// Some hunk did not apply.
    Failed,
}

/// One patch of patches/.
#[derive(Debug, Clone, Serialize)]
pub struct PatchOutcome {
    /// Its file name.
    pub file: String,
    /// The crate it changes.
    pub krate: String,
    /// The version its name says.
    pub written_for: String,
    /// The version it was tried against (the pinned one after the bump).
    pub tried_on: Option<String>,
    /// How it fared.
    pub status: PatchStatus,
    /// `patch`'s lines about hunks (offsets, fuzz, failures).
    pub details: Vec<String>,
    /// Where the rejected hunks were saved.
    pub rejects: Option<PathBuf>,
    /// Whether the `mistralrs` build applies it (scripts/apply-patches).
    pub in_build: bool,
    /// Its new name in the worktree when it moved to another version.
    pub renamed_to: Option<String>,
}

/// One version of a crate in a graph, and who pulls it.
#[derive(Debug, Clone, Serialize)]
pub struct VersionUse {
    /// The version.
    pub version: String,
    /// Where it comes from (`registry`, or a path under the workspace).
    pub source: String,
    /// The packages that depend on it directly.
    pub pulled_by: Vec<String>,
}

/// One-version findings for one graph.
#[derive(Debug, Clone, Serialize)]
pub struct GraphCheck {
    /// `default` or `mistralrs`.
    pub graph: String,
    /// No crate with two versions.
    pub ok: bool,
    /// Each watched crate and its versions.
    pub crates: Vec<(String, Vec<VersionUse>)>,
    /// The breaches in words.
    pub problems: Vec<String>,
}

/// An item of a public API that differs.
#[derive(Debug, Clone, Serialize)]
pub struct ApiItem {
    /// Its path (`hf_hub::api::sync::Api::model`).
    pub path: String,
    /// Its kind (`function`, `struct`, ...).
    pub kind: String,
    /// Our source files that name it (empty: not named by us).
    pub used_in: Vec<String>,
}

/// The public API of one crate at two versions.
#[derive(Debug, Clone, Serialize)]
pub struct ApiDrift {
    /// What is compared (`hf-hub 1.0.0 (upstream) -> our fork`).
    pub what: String,
    /// Items in the old API missing from the new.
    pub removed: Vec<ApiItem>,
    /// Items in both whose signature differs.
    pub changed: Vec<ApiItem>,
    /// How many items the new API adds.
    pub added: usize,
    /// Why it could not be compared, if it could not.
    pub error: Option<String>,
}

/// Everything the sync found.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// When it started (UTC, RFC 3339).
    pub started: String,
    /// The repository synced.
    pub repo: PathBuf,
    /// Its HEAD commit.
    pub head: String,
    /// Whether no step failed.
    pub ok: bool,
    /// The upstream crates.
    pub crates: Vec<CrateRow>,
    /// The steps in order.
    pub steps: Vec<StepResult>,
    /// The patches.
    pub patches: Vec<PatchOutcome>,
    /// One version of each upstream crate, per graph.
    pub one_version: Vec<GraphCheck>,
    /// API drift.
    pub api_drift: Vec<ApiDrift>,
    /// The branch left with the bump (`--commit`).
    pub branch: Option<String>,
}

fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

fn opt(s: &Option<String>) -> &str {
    s.as_deref().unwrap_or("?")
}

/// How many API items the Markdown lists before it says "and N more".
const MD_ITEMS: usize = 40;

fn api_list(out: &mut String, title: &str, items: &[ApiItem]) {
    if items.is_empty() {
        return;
    }
    let _ = writeln!(out, "{title} ({}):\n", items.len());
    let (used, unused): (Vec<&ApiItem>, Vec<&ApiItem>) =
        items.iter().partition(|i| !i.used_in.is_empty());
    for i in used.iter().chain(unused.iter()).take(MD_ITEMS) {
        let by = if i.used_in.is_empty() {
            String::new()
        } else {
            format!(" - named in {}", i.used_in.join(", "))
        };
        let _ = writeln!(out, "- `{}` ({}){by}", i.path, i.kind);
    }
    if items.len() > MD_ITEMS {
        let _ = writeln!(
            out,
            "- ... and {} more (report.json)",
            items.len() - MD_ITEMS
        );
    }
    out.push('\n');
}

impl Report {
    /// The Markdown report.
    pub fn markdown(&self) -> String {
        let mut o = String::new();
        let verdict = if self.ok {
            "every step passed or was skipped"
        } else {
            "a step FAILED"
        };
        let _ = writeln!(o, "# Upstream sync report\n");
        let _ = writeln!(
            o,
            "Started {} on `{}` at `{}`: **{verdict}**.\n",
            self.started,
            self.repo.display(),
            self.head
        );
        if let Some(b) = &self.branch {
            let _ = writeln!(o, "The bump is committed on branch `{b}`.\n");
        }
        let _ = writeln!(o, "## Crates\n");
        let _ = writeln!(
            o,
            "| crate | role | current | newest compatible | newest | behind | kind | target | bumped | note |"
        );
        let _ = writeln!(o, "|---|---|---|---|---|---|---|---|---|---|");
        for c in &self.crates {
            let target = match (&c.target, &c.target_kind, &c.target_distance) {
                (Some(t), Some(k), Some(d)) => format!("{t} ({k}, {d})"),
                (Some(t), _, _) => t.clone(),
                _ => "-".to_owned(),
            };
            let bumped = match c.bumped {
                Some(true) => "yes",
                Some(false) => "no",
                None => "-",
            };
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                c.name,
                cell(&c.role),
                c.current,
                opt(&c.newest_compatible),
                opt(&c.newest),
                c.behind,
                c.newest_kind,
                target,
                bumped,
                cell(&c.note)
            );
        }
        let _ = writeln!(o, "\n## Steps\n");
        let _ = writeln!(o, "| step | result | time | summary | log |");
        let _ = writeln!(o, "|---|---|---:|---|---|");
        for s in &self.steps {
            let log = s
                .log
                .as_ref()
                .map(|l| format!("`{}`", l.display()))
                .unwrap_or_default();
            let _ = writeln!(
                o,
                "| {} | {} | {:.1} s | {} | {log} |",
                s.name,
                s.status.as_str(),
                s.seconds,
                cell(&s.summary)
            );
        }
        if !self.patches.is_empty() {
            let _ = writeln!(o, "\n## Patches\n");
            let _ = writeln!(
                o,
                "| patch | tried on | outcome | in the mistralrs build | details |"
            );
            let _ = writeln!(o, "|---|---|---|---|---|");
            for p in &self.patches {
                let outcome = match p.status {
                    PatchStatus::Clean => "applied cleanly".to_owned(),
                    PatchStatus::OffsetOrFuzz => "applied with offset or fuzz".to_owned(),
                    PatchStatus::Failed => match &p.rejects {
                        Some(r) => format!("FAILED, rejected hunks in `{}`", r.display()),
                        None => "FAILED".to_owned(),
                    },
                };
                let tried = match &p.tried_on {
                    Some(v) => format!("{} {v}", p.krate),
                    None => "-".to_owned(),
                };
                let mut details = p.details.join("; ");
                if let Some(n) = &p.renamed_to {
                    let _ = write!(details, " (renamed to {n})");
                }
                let _ = writeln!(
                    o,
                    "| {} | {} | {} | {} | {} |",
                    p.file,
                    tried,
                    outcome,
                    if p.in_build { "yes" } else { "no" },
                    cell(&details)
                );
            }
        }
        if !self.one_version.is_empty() {
            let _ = writeln!(o, "\n## One version\n");
            for g in &self.one_version {
                let verdict = if g.ok {
                    "one version of each"
                } else {
                    "SECOND VERSION"
                };
                let _ = writeln!(o, "The `{}` graph: {verdict}.\n", g.graph);
                for (name, uses) in &g.crates {
                    let list: Vec<String> = uses
                        .iter()
                        .map(|u| {
                            format!(
                                "{} ({}; pulled by {})",
                                u.version,
                                u.source,
                                u.pulled_by.join(", ")
                            )
                        })
                        .collect();
                    let _ = writeln!(o, "- {name}: {}", list.join(" and "));
                }
                for p in &g.problems {
                    let _ = writeln!(o, "- **{p}**");
                }
                o.push('\n');
            }
        }
        if !self.api_drift.is_empty() {
            let _ = writeln!(o, "\n## API drift\n");
            for d in &self.api_drift {
                let _ = writeln!(o, "### {}\n", d.what);
                if let Some(e) = &d.error {
                    let _ = writeln!(o, "Not compared: {e}\n");
                    continue;
                }
                let _ = writeln!(
                    o,
                    "{} removed, {} changed, {} added.\n",
                    d.removed.len(),
                    d.changed.len(),
                    d.added
                );
                api_list(&mut o, "Removed", &d.removed);
                api_list(&mut o, "Changed", &d.changed);
            }
        }
        o
    }

    /// Writes `report.json` and `report.md` into `dir`.
    pub fn write(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let json = serde_json::to_string_pretty(self)?;
        let path = dir.join("report.json");
        std::fs::write(&path, json).map_err(io(&path))?;
        let path = dir.join("report.md");
        std::fs::write(&path, self.markdown()).map_err(io(&path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Report {
        Report {
            started: "2026-12-02T10:00:00Z".into(),
            repo: "/r".into(),
            head: "abc".into(),
            ok: false,
            crates: vec![CrateRow {
                name: "half".into(),
                role: "pinned".into(),
                current: "2.6.0".into(),
                newest_compatible: Some("2.7.1".into()),
                newest: Some("2.7.1".into()),
                newest_kind: "compatible".into(),
                behind: "1 release".into(),
                target: Some("2.7.1".into()),
                target_kind: Some("compatible".into()),
                target_distance: Some("1 release".into()),
                bumped: Some(true),
                note: String::new(),
            }],
            steps: vec![StepResult {
                name: "one-version".into(),
                status: Status::Failed,
                summary: "tokenizers: 0.21.4 and 0.22.2".into(),
                seconds: 1.25,
                log: Some("logs/one-version.log".into()),
            }],
            patches: vec![PatchOutcome {
                file: "x-1.0.0-y.patch".into(),
                krate: "x".into(),
                written_for: "1.0.0".into(),
                tried_on: Some("1.0.0".into()),
                status: PatchStatus::Failed,
                details: vec!["Hunk #1 FAILED at 3.".into()],
                rejects: Some("rejects/x-1.0.0-y.patch.rej".into()),
                in_build: true,
                renamed_to: None,
            }],
            one_version: vec![GraphCheck {
                graph: "default".into(),
                ok: false,
                crates: vec![(
                    "tokenizers".into(),
                    vec![VersionUse {
                        version: "0.21.4".into(),
                        source: "registry".into(),
                        pulled_by: vec!["tektra-tokenizers".into()],
                    }],
                )],
                problems: vec!["tokenizers: 2 versions".into()],
            }],
            api_drift: vec![ApiDrift {
                what: "half 2.6.0 -> 2.7.1".into(),
                removed: vec![ApiItem {
                    path: "half::f16::old".into(),
                    kind: "function".into(),
                    used_in: vec!["src/a.rs".into()],
                }],
                changed: vec![],
                added: 3,
                error: None,
            }],
            branch: None,
        }
    }

    #[test]
    fn markdown_has_the_tables_and_findings() {
        let md = sample().markdown();
        assert!(md.contains("**a step FAILED**"));
        assert!(md.contains(
            "| half | pinned | 2.6.0 | 2.7.1 | 2.7.1 | 1 release | compatible | 2.7.1 (compatible, 1 release) | yes |  |"
        ));
        assert!(md.contains("| one-version | failed | 1.2 s | tokenizers: 0.21.4 and 0.22.2 | `logs/one-version.log` |"));
        assert!(md.contains("FAILED, rejected hunks in `rejects/x-1.0.0-y.patch.rej`"));
        assert!(md.contains("- tokenizers: 0.21.4 (registry; pulled by tektra-tokenizers)"));
        assert!(md.contains("1 removed, 0 changed, 3 added."));
        assert!(md.contains("- `half::f16::old` (function) - named in src/a.rs"));
    }

    #[test]
    fn json_carries_the_same_facts() {
        let v = serde_json::to_value(sample()).unwrap();
        assert_eq!(v["crates"][0]["behind"], "1 release");
        assert_eq!(v["steps"][0]["status"], "failed");
        assert_eq!(v["patches"][0]["status"], "failed");
        assert_eq!(v["one_version"][0]["crates"][0][0], "tokenizers");
        assert_eq!(v["api_drift"][0]["removed"][0]["used_in"][0], "src/a.rs");
    }
}
