//! The regression gate's judge: instruction counts from a gungraun run
//! (callgrind, one line of JSON per benchmark) against the baseline
//! committed in `benches/check/baseline.json`.
//!
//! A count that rises by more than the tolerance (3% by default) fails
//! the gate; a benchmark that ran nothing (its code path is missing under
//! valgrind on this CPU) is reported NOT RUN and neither passes nor fails;
//! one missing from either side is named. `--update` writes the new counts
//! as the baseline, a change that shows in the diff.
//!
//! ```
//! use tektra_bench_check::{Baseline, Verdict, compare};
//! let before = Baseline::from_counts([("a".to_string(), 1_000_000)].into());
//! let after = Baseline::from_counts([("a".to_string(), 1_040_000)].into());
//! let rows = compare(&before, &after, 3.0);
//! assert_eq!(rows[0].verdict, Verdict::Regressed);
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// Counts below this are a benchmark whose body returned at once: the
/// code path it measures could not run under valgrind here.
pub const NOT_RUN_BELOW: u64 = 10_000;

/// What can go wrong reading a run or a baseline.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A line or file is not the JSON expected.
    #[error("{path}: {what}")]
    Format {
        /// The file.
        path: String,
        /// What was wrong.
        what: String,
    },
}

/// Instruction counts by benchmark name (`group::function::id`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Baseline {
    /// What produced the counts (tool versions), for the reader.
    #[serde(default)]
    pub about: String,
    /// The counts.
    pub counts: BTreeMap<String, u64>,
}

impl Baseline {
    /// Counts with no description.
    #[must_use]
    pub fn from_counts(counts: BTreeMap<String, u64>) -> Self {
        Baseline {
            about: String::new(),
            counts,
        }
    }

    /// Reads a baseline file.
    ///
    /// # Errors
    /// When the file cannot be read or is not a baseline.
    pub fn read(path: &Path) -> Result<Self, CheckError> {
        let text = std::fs::read_to_string(path).map_err(|source| CheckError::Io {
            path: path.display().to_string(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|e| CheckError::Format {
            path: path.display().to_string(),
            what: e.to_string(),
        })
    }

    /// Writes the baseline, sorted, one count per line (a readable diff).
    ///
    /// # Errors
    /// When the file cannot be written.
    pub fn write(&self, path: &Path) -> Result<(), CheckError> {
        let mut text = serde_json::to_string_pretty(self).map_err(|e| CheckError::Format {
            path: path.display().to_string(),
            what: e.to_string(),
        })?;
        text.push('\n');
        std::fs::write(path, text).map_err(|source| CheckError::Io {
            path: path.display().to_string(),
            source,
        })
    }

    /// Reads gungraun's `--output-format=json` lines: one summary per
    /// benchmark, the callgrind total's `Ir` taken from each.
    ///
    /// # Errors
    /// When a line is not JSON or holds no instruction count.
    pub fn from_gungraun(path: &Path, text: &str) -> Result<Self, CheckError> {
        let mut counts = BTreeMap::new();
        let bad = |what: String| CheckError::Format {
            path: path.display().to_string(),
            what,
        };
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if !line.starts_with('{') {
                continue;
            }
            let v: serde_json::Value =
                serde_json::from_str(line).map_err(|e| bad(format!("line {}: {e}", i + 1)))?;
            let name =
                summary_name(&v).ok_or_else(|| bad(format!("line {}: no module_path", i + 1)))?;
            let ir = summary_ir(&v).ok_or_else(|| bad(format!("{name}: no callgrind Ir")))?;
            counts.insert(name, ir);
        }
        if counts.is_empty() {
            return Err(bad("no benchmark summaries (did the run fail?)".into()));
        }
        Ok(Baseline::from_counts(counts))
    }
}

/// `group::function::id`, without the bench file's name.
fn summary_name(v: &serde_json::Value) -> Option<String> {
    let path = v.get("module_path")?.as_str()?;
    let path = path.split_once("::").map_or(path, |(_, rest)| rest);
    Some(match v.get("id").and_then(|i| i.as_str()) {
        Some(id) => format!("{path}::{id}"),
        None => path.to_string(),
    })
}

/// The new run's `Ir` in the callgrind profile's total (summary schema 7:
/// `profiles[].data.total.metrics.Ir.values.new`).
fn summary_ir(v: &serde_json::Value) -> Option<u64> {
    let profiles = v.get("profiles")?.as_array()?;
    profiles
        .iter()
        .filter(|p| p.get("tool").and_then(|t| t.as_str()) == Some("Callgrind"))
        .find_map(|p| p.pointer("/data/total/metrics/Ir/values/new")?.as_u64())
}

/// How one benchmark fared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Within the tolerance.
    Same,
    /// Fewer instructions beyond the tolerance (update the baseline to keep it).
    Improved,
    /// More instructions beyond the tolerance: the gate fails.
    Regressed,
    /// The code path could not run under valgrind here.
    NotRun,
    /// In the run, not in the baseline.
    New,
    /// In the baseline, not in the run: the gate fails.
    Missing,
}

/// One line of the before/after table.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The benchmark.
    pub name: String,
    /// The baseline's count.
    pub before: Option<u64>,
    /// This run's count.
    pub after: Option<u64>,
    /// The verdict.
    pub verdict: Verdict,
}

impl Row {
    /// Change in percent, when both sides have a count.
    #[must_use]
    pub fn change_pct(&self) -> Option<f64> {
        match (self.before, self.after) {
            (Some(b), Some(a)) if b > 0 => Some((a as f64 - b as f64) / b as f64 * 100.0),
            _ => None,
        }
    }
}

/// Compares a run with the baseline, `tolerance` in percent.
#[must_use]
pub fn compare(baseline: &Baseline, run: &Baseline, tolerance: f64) -> Vec<Row> {
    let mut names: Vec<&String> = baseline.counts.keys().chain(run.counts.keys()).collect();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .map(|name| {
            let before = baseline.counts.get(name).copied();
            let after = run.counts.get(name).copied();
            let mut row = Row {
                name: name.clone(),
                before,
                after,
                verdict: Verdict::Same,
            };
            row.verdict = match (before, after) {
                (_, Some(a)) if a < NOT_RUN_BELOW => Verdict::NotRun,
                (None, Some(_)) => Verdict::New,
                (Some(_), None) => Verdict::Missing,
                _ => match row.change_pct() {
                    Some(p) if p > tolerance => Verdict::Regressed,
                    Some(p) if p < -tolerance => Verdict::Improved,
                    _ => Verdict::Same,
                },
            };
            row
        })
        .collect()
}

/// Whether the gate fails on these rows.
#[must_use]
pub fn failed(rows: &[Row]) -> bool {
    rows.iter()
        .any(|r| matches!(r.verdict, Verdict::Regressed | Verdict::Missing))
}

/// The before/after table, one benchmark per line.
#[must_use]
pub fn render(rows: &[Row], tolerance: f64) -> String {
    let width = rows.iter().map(|r| r.name.len()).max().unwrap_or(9).max(9);
    let mut out = format!(
        "{:width$}  {:>15}  {:>15}  {:>8}  verdict (tolerance {tolerance}%)\n",
        "benchmark", "baseline Ir", "this run Ir", "change"
    );
    let num = |v: Option<u64>| v.map_or_else(|| "-".to_string(), |v| v.to_string());
    for r in rows {
        let change = r
            .change_pct()
            .map_or_else(|| "-".to_string(), |p| format!("{p:+.2}%"));
        let verdict = match r.verdict {
            Verdict::Same => "ok",
            Verdict::Improved => "improved (run --update to keep it)",
            Verdict::Regressed => "REGRESSED",
            Verdict::NotRun => "NOT RUN (this path cannot run under valgrind on this CPU)",
            Verdict::New => "new (not in the baseline)",
            Verdict::Missing => "MISSING from this run",
        };
        out += &format!(
            "{:width$}  {:>15}  {:>15}  {:>8}  {verdict}\n",
            r.name,
            num(r.before),
            num(r.after),
            change
        );
    }
    out
}

#[cfg(test)]
mod tests;
