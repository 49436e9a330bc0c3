//! What the workspace pins: its manifests, its lock, its upstream crates.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use semver::{Version, VersionReq};
use serde::Serialize;

use crate::error::{Result, SyncError, io};

/// One place a manifest asks for a registry crate.
#[derive(Debug, Clone, Serialize)]
pub struct Pin {
    /// The manifest, relative to the workspace root.
    pub manifest: PathBuf,
    /// The table holding it (`workspace.dependencies`, `dependencies`, ...).
    pub table: String,
    /// The key in that table (the crate's name unless renamed).
    pub key: String,
    /// The version requirement as written.
    pub req: String,
}

/// How an upstream crate is tied to the workspace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// A manifest of ours pins it.
    Pinned,
    /// It moves with another crate of the same project (mistral.rs's own
    /// crates move with `mistralrs`).
    Follows(String),
    /// Our fork in this folder stands in for it; the version is the
    /// upstream release whose API the fork keeps.
    Fork(PathBuf),
}

/// An upstream crate the sync looks after.
#[derive(Debug, Clone)]
pub struct Upstream {
    /// The crate's name on the registry.
    pub name: String,
    /// The version in use (the lock's, or the one a fork mirrors).
    pub current: Version,
    /// How it is tied to us.
    pub role: Role,
    /// Where our manifests pin it (empty for followers and forks).
    pub pins: Vec<Pin>,
}

/// A registry package in Cargo.lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Locked {
    /// Its name.
    pub name: String,
    /// Its version.
    pub version: Version,
}

/// Reads a TOML file.
pub(crate) fn read_toml(path: &Path) -> Result<toml::Table> {
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    text.parse::<toml::Table>()
        .map_err(|e| SyncError::Manifest {
            path: path.to_owned(),
            message: e.to_string(),
        })
}

/// The registry packages of `root`/Cargo.lock.
pub fn lock(root: &Path) -> Result<Vec<Locked>> {
    let path = root.join("Cargo.lock");
    let table = read_toml(&path)?;
    let mut out = Vec::new();
    let packages = table
        .get("package")
        .and_then(|p| p.as_array())
        .cloned()
        .unwrap_or_default();
    for p in packages {
        let source = p.get("source").and_then(|s| s.as_str()).unwrap_or("");
        if !(source.starts_with("registry+") || source.starts_with("sparse+")) {
            continue;
        }
        let (Some(name), Some(version)) = (
            p.get("name").and_then(|s| s.as_str()),
            p.get("version").and_then(|s| s.as_str()),
        ) else {
            continue;
        };
        out.push(Locked {
            name: name.to_owned(),
            version: parse_version(version)?,
        });
    }
    Ok(out)
}

/// Parses a version, naming the text on failure.
pub fn parse_version(text: &str) -> Result<Version> {
    Version::parse(text).map_err(|source| SyncError::Version {
        text: text.to_owned(),
        source,
    })
}

/// Parses a version requirement, naming the text on failure.
pub fn parse_req(text: &str) -> Result<VersionReq> {
    VersionReq::parse(text).map_err(|source| SyncError::Version {
        text: text.to_owned(),
        source,
    })
}

/// The workspace's manifests, relative to `root`: the root's and every
/// member's (the `members` globs of one `*` level expanded).
pub fn manifests(root: &Path) -> Result<Vec<PathBuf>> {
    let top = read_toml(&root.join("Cargo.toml"))?;
    let mut out = vec![PathBuf::from("Cargo.toml")];
    let members = top
        .get("workspace")
        .and_then(|w| w.get("members"))
        .and_then(|m| m.as_array())
        .cloned()
        .unwrap_or_default();
    for m in members.iter().filter_map(|m| m.as_str()) {
        if let Some(parent) = m.strip_suffix("/*") {
            let dir = root.join(parent);
            let mut found = Vec::new();
            for entry in std::fs::read_dir(&dir).map_err(io(&dir))? {
                let entry = entry.map_err(io(&dir))?;
                let rel = Path::new(parent).join(entry.file_name()).join("Cargo.toml");
                if root.join(&rel).is_file() {
                    found.push(rel);
                }
            }
            found.sort();
            out.extend(found);
        } else if m != "." {
            let rel = Path::new(m).join("Cargo.toml");
            if root.join(&rel).is_file() {
                out.push(rel);
            }
        }
    }
    Ok(out)
}

/// Every dependency table of a manifest, by its dotted name.
fn dependency_tables(manifest: &toml::Table) -> Vec<(String, &toml::Table)> {
    let mut out = Vec::new();
    for kind in ["dependencies", "dev-dependencies", "build-dependencies"] {
        if let Some(t) = manifest.get(kind).and_then(|t| t.as_table()) {
            out.push((kind.to_owned(), t));
        }
    }
    if let Some(t) = manifest
        .get("workspace")
        .and_then(|w| w.get("dependencies"))
        .and_then(|t| t.as_table())
    {
        out.push(("workspace.dependencies".to_owned(), t));
    }
    if let Some(targets) = manifest.get("target").and_then(|t| t.as_table()) {
        for (cfg, t) in targets {
            for kind in ["dependencies", "dev-dependencies", "build-dependencies"] {
                if let Some(t) = t.get(kind).and_then(|t| t.as_table()) {
                    out.push((format!("target.{cfg}.{kind}"), t));
                }
            }
        }
    }
    out
}

/// The registry pins in the workspace's manifests, by crate name.
pub fn pins(root: &Path) -> Result<BTreeMap<String, Vec<Pin>>> {
    let mut out: BTreeMap<String, Vec<Pin>> = BTreeMap::new();
    for rel in manifests(root)? {
        let manifest = read_toml(&root.join(&rel))?;
        for (table, deps) in dependency_tables(&manifest) {
            for (key, value) in deps {
                let (name, req) = match value {
                    toml::Value::String(req) => (key.clone(), req.clone()),
                    toml::Value::Table(t) => {
                        if ["path", "git", "workspace"]
                            .iter()
                            .any(|k| t.contains_key(*k))
                        {
                            continue;
                        }
                        let Some(req) = t.get("version").and_then(|v| v.as_str()) else {
                            continue;
                        };
                        let name = t
                            .get("package")
                            .and_then(|p| p.as_str())
                            .unwrap_or(key)
                            .to_owned();
                        (name, req.to_owned())
                    }
                    _ => continue,
                };
                out.entry(name).or_default().push(Pin {
                    manifest: rel.clone(),
                    table: table.clone(),
                    key: key.clone(),
                    req,
                });
            }
        }
    }
    Ok(out)
}

/// The version of `name` in the lock that our pins resolve to: the newest
/// locked version matching one of them (the lock may hold others, pulled
/// by other crates).
pub fn current(locked: &[Locked], name: &str, pins: &[Pin]) -> Result<Option<Version>> {
    let mut reqs = Vec::new();
    for p in pins {
        reqs.push(parse_req(&p.req)?);
    }
    Ok(locked
        .iter()
        .filter(|l| l.name == name)
        .filter(|l| reqs.is_empty() || reqs.iter().any(|r| r.matches(&l.version)))
        .map(|l| l.version.clone())
        .max())
}

/// The crate that stands for a group that moves together, and its members'
/// prefix: mistral.rs's crates all move with `mistralrs`.
pub const FAMILIES: &[(&str, &str)] = &[("mistralrs", "mistralrs-")];

/// Forks of ours that stand in for an upstream crate: the crate name and
/// the fork's folder. The fork's manifest names the upstream release whose
/// API it keeps in `[package.metadata.tektra] upstream`.
pub const FORKS: &[(&str, &str)] = &[("hf-hub", "vendor/hf-hub")];

/// Registry crates pinned outside `[workspace.dependencies]` that the
/// sync looks after too.
pub const EXTRA: &[&str] = &["mistralrs", "hf-xet"];

/// The upstream release a fork keeps the API of.
pub fn fork_upstream(root: &Path, dir: &str) -> Result<Version> {
    let path = root.join(dir).join("Cargo.toml");
    let manifest = read_toml(&path)?;
    let text = manifest
        .get("package")
        .and_then(|p| p.get("metadata"))
        .and_then(|m| m.get("tektra"))
        .and_then(|t| t.get("upstream"))
        .and_then(|u| u.as_str())
        .ok_or_else(|| SyncError::Manifest {
            path: path.clone(),
            message: "no [package.metadata.tektra] upstream = \"VERSION\"".to_owned(),
        })?;
    parse_version(text)
}

/// The crates a sync with no crate named looks after: every registry pin
/// of the root's `[workspace.dependencies]`, the [`EXTRA`] ones, the
/// members of their families found in the lock, and the [`FORKS`].
pub fn default_upstreams(root: &Path) -> Result<Vec<Upstream>> {
    let all_pins = pins(root)?;
    let locked = lock(root)?;
    let mut names: Vec<String> = all_pins
        .iter()
        .filter(|(_, ps)| ps.iter().any(|p| p.table == "workspace.dependencies"))
        .map(|(n, _)| n.clone())
        .collect();
    for extra in EXTRA {
        if !names.iter().any(|n| n == extra) && all_pins.contains_key(*extra) {
            names.push((*extra).to_owned());
        }
    }
    let mut out = Vec::new();
    for name in names {
        out.push(upstream(root, &name, &all_pins, &locked)?);
    }
    for (head, prefix) in FAMILIES {
        if !out.iter().any(|u| u.name == *head) {
            continue;
        }
        let mut members: Vec<&Locked> = locked
            .iter()
            .filter(|l| l.name.starts_with(prefix))
            .collect();
        members.sort_by(|a, b| a.name.cmp(&b.name));
        for m in members {
            if !out.iter().any(|u| u.name == m.name) {
                out.push(Upstream {
                    name: m.name.clone(),
                    current: m.version.clone(),
                    role: Role::Follows((*head).to_owned()),
                    pins: Vec::new(),
                });
            }
        }
    }
    for (name, dir) in FORKS {
        out.retain(|u| u.name != *name);
        out.push(Upstream {
            name: (*name).to_owned(),
            current: fork_upstream(root, dir)?,
            role: Role::Fork(PathBuf::from(dir)),
            pins: Vec::new(),
        });
    }
    Ok(out)
}

/// One named crate: a fork, a family member, or a crate our manifests pin.
pub fn upstream(
    root: &Path,
    name: &str,
    all_pins: &BTreeMap<String, Vec<Pin>>,
    locked: &[Locked],
) -> Result<Upstream> {
    if let Some((_, dir)) = FORKS.iter().find(|(n, _)| *n == name) {
        return Ok(Upstream {
            name: name.to_owned(),
            current: fork_upstream(root, dir)?,
            role: Role::Fork(PathBuf::from(dir)),
            pins: Vec::new(),
        });
    }
    let pins = all_pins.get(name).cloned().unwrap_or_default();
    if pins.is_empty() {
        if let Some((head, _)) = FAMILIES
            .iter()
            .find(|(h, prefix)| name.starts_with(prefix) && *h != name)
            && let Some(l) = locked.iter().find(|l| l.name == name)
        {
            return Ok(Upstream {
                name: name.to_owned(),
                current: l.version.clone(),
                role: Role::Follows((*head).to_owned()),
                pins,
            });
        }
        return Err(SyncError::Usage(format!(
            "no manifest of the workspace pins `{name}` from the registry"
        )));
    }
    let current = current(locked, name, &pins)?.ok_or_else(|| {
        SyncError::Usage(format!(
            "Cargo.lock holds no version of `{name}` matching our pins ({})",
            pins.iter()
                .map(|p| p.req.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })?;
    Ok(Upstream {
        name: name.to_owned(),
        current,
        role: Role::Pinned,
        pins,
    })
}

/// Rewrites the version requirement of `pin` in its manifest to `req`:
/// an edit of that one line, so comments and layout stay.
pub fn set_req(root: &Path, pin: &Pin, req: &str) -> Result<()> {
    let path = root.join(&pin.manifest);
    let text = std::fs::read_to_string(&path).map_err(io(&path))?;
    let header = format!("[{}]", pin.table);
    let mut in_table = pin.table.is_empty();
    let mut done = false;
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let t = line.trim();
        if t.starts_with('[') {
            in_table = t == header;
        }
        let key_matches = t
            .strip_prefix(pin.key.as_str())
            .or_else(|| t.strip_prefix(&format!("\"{}\"", pin.key)))
            .is_some_and(|rest| rest.trim_start().starts_with('='));
        if in_table && !done && key_matches {
            let old_plain = format!("\"{}\"", pin.req);
            let new_plain = format!("\"{req}\"");
            let replaced = if let Some(i) = line.find("version") {
                let (a, b) = line.split_at(i);
                format!("{a}{}", b.replacen(&old_plain, &new_plain, 1))
            } else {
                line.replacen(&old_plain, &new_plain, 1)
            };
            if replaced != line {
                done = true;
            }
            out.push_str(&replaced);
        } else {
            out.push_str(line);
        }
    }
    if !done {
        return Err(SyncError::Manifest {
            path,
            message: format!(
                "could not find `{} = \"{}\"` under [{}] to rewrite",
                pin.key, pin.req, pin.table
            ),
        });
    }
    std::fs::write(&path, out).map_err(io(&path))?;
    // What we wrote must still be a manifest.
    read_toml(&path).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_req_edits_one_line_and_keeps_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let manifest = "[package]\nname = \"x\"\n# keep me\n[dependencies]\nhalf = \"2\"\n\
                        tokenizers = { version = \"0.22\", default-features = false }\n";
        std::fs::write(dir.path().join("Cargo.toml"), manifest).unwrap();
        let pin = |key: &str, req: &str| Pin {
            manifest: "Cargo.toml".into(),
            table: "dependencies".into(),
            key: key.into(),
            req: req.into(),
        };
        set_req(dir.path(), &pin("tokenizers", "0.22"), "0.21.4").unwrap();
        set_req(dir.path(), &pin("half", "2"), "=2.6.0").unwrap();
        let text = std::fs::read_to_string(dir.path().join("Cargo.toml")).unwrap();
        assert!(text.contains("# keep me"));
        assert!(text.contains("half = \"=2.6.0\""));
        assert!(text.contains("tokenizers = { version = \"0.21.4\", default-features = false }"));
        assert!(set_req(dir.path(), &pin("rand", "0.9"), "0.10").is_err());
    }
}
