//! One version of each upstream crate in a graph (design.md's rule), read
//! from `cargo tree`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::error::Result;
use crate::exec;
use crate::report::{GraphCheck, VersionUse};

/// Crates of which a graph must hold exactly one version.
pub const ONE_VERSION: &[&str] = &[
    "candle-core",
    "candle-nn",
    "candle-transformers",
    "tokenizers",
    "safetensors",
    "hf-hub",
];

/// `cargo tree --prefix depth --format {p}` output -> for each package
/// `name`, its `(version, source)` uses and the packages depending on each.
pub(crate) fn parse_tree(
    text: &str,
    ws: &str,
) -> BTreeMap<String, BTreeMap<(String, String), BTreeSet<String>>> {
    let mut out: BTreeMap<String, BTreeMap<(String, String), BTreeSet<String>>> = BTreeMap::new();
    let mut stack: Vec<String> = Vec::new();
    for line in text.lines() {
        let digits: String = line.chars().take_while(|c| c.is_ascii_digit()).collect();
        let Ok(depth) = digits.parse::<usize>() else {
            continue;
        };
        let rest = line[digits.len()..]
            .trim()
            .trim_end_matches(" (*)")
            .trim_end_matches(" (proc-macro)");
        let mut parts = rest.splitn(3, ' ');
        let (Some(name), Some(version)) = (parts.next(), parts.next()) else {
            continue;
        };
        let version = version.trim_start_matches('v').to_owned();
        let source = match parts.next() {
            Some(s) => {
                let s = s.trim_start_matches('(').trim_end_matches(')');
                let s = s
                    .strip_prefix(ws)
                    .map(|r| r.trim_start_matches('/'))
                    .unwrap_or(s);
                if s.is_empty() {
                    ".".to_owned()
                } else {
                    s.to_owned()
                }
            }
            None => "registry".to_owned(),
        };
        stack.truncate(depth);
        let parent = if depth > 0 {
            stack.last().cloned()
        } else {
            None
        };
        let uses = out.entry(name.to_owned()).or_default();
        let parents = uses.entry((version.clone(), source)).or_default();
        if let Some(p) = parent {
            parents.insert(p);
        }
        stack.push(format!("{name} {version}"));
    }
    out
}

/// The findings for one parsed graph.
pub(crate) fn findings(
    graph: &str,
    packages: &BTreeMap<String, BTreeMap<(String, String), BTreeSet<String>>>,
) -> GraphCheck {
    let mut crates = Vec::new();
    let mut problems = Vec::new();
    for name in ONE_VERSION {
        let Some(uses) = packages.get(*name) else {
            continue;
        };
        let list: Vec<VersionUse> = uses
            .iter()
            .map(|((version, source), by)| VersionUse {
                version: version.clone(),
                source: source.clone(),
                pulled_by: by.iter().cloned().collect(),
            })
            .collect();
        if list.len() > 1 {
            let each: Vec<String> = list
                .iter()
                .map(|u| format!("{} (pulled by {})", u.version, u.pulled_by.join(", ")))
                .collect();
            problems.push(format!(
                "{name}: {} versions: {}",
                list.len(),
                each.join(" and ")
            ));
        }
        if *name == "hf-hub" && list.iter().any(|u| u.source == "registry") {
            problems.push(
                "hf-hub from the registry: our fork in vendor/hf-hub does not stand in".to_owned(),
            );
        }
        crates.push(((*name).to_owned(), list));
    }
    GraphCheck {
        graph: graph.to_owned(),
        ok: problems.is_empty(),
        crates,
        problems,
    }
}

/// Checks the graph of the workspace at `ws` with `extra` cargo arguments
/// (a `--config` and `--features` for the `mistralrs` build). Cargo.lock is
/// put back afterwards: a patched graph re-resolves and would rewrite it.
pub fn check(ws: &Path, graph: &str, extra: &[String], log: &Path) -> Result<GraphCheck> {
    let lock = ws.join("Cargo.lock");
    let saved = std::fs::read(&lock).map_err(crate::error::io(&lock))?;
    let mut cmd = exec::cargo(ws);
    cmd.args([
        "tree",
        "--workspace",
        "-e",
        "normal",
        "--prefix",
        "depth",
        "--format",
        "{p}",
    ])
    .args(extra);
    let out = exec::run_ok(&mut cmd, log);
    std::fs::write(&lock, saved).map_err(crate::error::io(&lock))?;
    let text = out?;
    let packages = parse_tree(&text, &ws.to_string_lossy());
    Ok(findings(graph, &packages))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_tokenizers_are_found_with_who_pulls_them() {
        let tree = "0tektra-tokenizers v0.1.0 (/ws/vendor/tokenizers)\n\
                    1tokenizers v0.21.4\n\
                    1candle-core v0.10.2\n\
                    2tokenizers v0.22.2\n\
                    0hf-hub v0.4.4 (/ws/vendor/hf-hub)\n\
                    0tektra v0.1.0 (/ws)\n\
                    1candle-core v0.10.2 (*)\n\
                    1hf-hub v0.4.4 (/ws/vendor/hf-hub)\n";
        let g = findings("default", &parse_tree(tree, "/ws"));
        assert!(!g.ok);
        assert_eq!(g.problems.len(), 1);
        assert!(g.problems[0].starts_with("tokenizers: 2 versions: 0.21.4 (pulled by tektra-tokenizers 0.1.0) and 0.22.2 (pulled by candle-core 0.10.2)"), "{}", g.problems[0]);
        let hub = &g.crates.iter().find(|(n, _)| n == "hf-hub").unwrap().1;
        assert_eq!(hub.len(), 1);
        assert_eq!(hub[0].source, "vendor/hf-hub");
        assert_eq!(hub[0].pulled_by, ["tektra 0.1.0"]);
    }
}
