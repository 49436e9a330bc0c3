//! What the registry holds, asked through cargo's own client.
//!
//! `cargo info NAME` refreshes cargo's local index entry for the crate;
//! the entry (cargo's cache under `$CARGO_HOME/registry/index/*/.cache/`)
//! then gives every release and whether it is yanked. When that cache
//! cannot be read (another cargo, another layout) only the newest version
//! `cargo info` printed is known.

use std::path::{Path, PathBuf};
use std::process::Command;

use semver::Version;

use crate::error::{Result, SyncError};
use crate::exec;

/// The releases of one crate.
#[derive(Debug, Clone)]
pub struct Releases {
    /// Unyanked releases without a pre-release tag, oldest first.
    pub versions: Vec<Version>,
    /// False when only `cargo info`'s newest version is known.
    pub complete: bool,
}

fn cargo_home() -> Option<PathBuf> {
    std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
}

/// Where cargo's index cache keeps a crate's entry, relative to an index.
fn cache_rel(name: &str) -> PathBuf {
    let n = name.to_lowercase();
    match n.len() {
        1 => PathBuf::from("1").join(&n),
        2 => PathBuf::from("2").join(&n),
        3 => PathBuf::from("3").join(&n[..1]).join(&n),
        _ => PathBuf::from(&n[..2]).join(&n[2..4]).join(&n),
    }
}

/// The most recently written cache entry for `name` in any index.
fn cache_file(name: &str) -> Option<PathBuf> {
    let index = cargo_home()?.join("registry").join("index");
    let rel = cache_rel(name);
    std::fs::read_dir(index)
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path().join(".cache").join(&rel))
        .filter(|p| p.is_file())
        .max_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
}

/// Releases in a cache entry: NUL-separated records, the JSON ones being
/// index lines (`{"name", "vers", "yanked", ...}`).
pub(crate) fn parse_cache(bytes: &[u8], name: &str) -> Vec<Version> {
    let mut out: Vec<Version> = bytes
        .split(|b| *b == 0)
        .filter(|rec| rec.first() == Some(&b'{'))
        .filter_map(|rec| serde_json::from_slice::<serde_json::Value>(rec).ok())
        .filter(|v| {
            v.get("name")
                .and_then(|n| n.as_str())
                .is_some_and(|n| n.eq_ignore_ascii_case(name))
        })
        .filter(|v| !v.get("yanked").and_then(|y| y.as_bool()).unwrap_or(false))
        .filter_map(|v| {
            v.get("vers")
                .and_then(|s| s.as_str())
                .and_then(|s| Version::parse(s).ok())
        })
        .filter(|v| v.pre.is_empty())
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Asks the registry about `name` (`cargo info`, run outside any
/// workspace so it reports the registry's newest, not our lock's).
pub fn releases(name: &str, scratch: &Path, log: &Path) -> Result<Releases> {
    std::fs::create_dir_all(scratch).map_err(crate::error::io(scratch))?;
    let mut cmd = Command::new("cargo");
    cmd.current_dir(scratch).args(["info", name]);
    let out = exec::run(&mut cmd, log)?;
    if !out.status.success() {
        return Err(SyncError::Registry(format!(
            "`cargo info {name}` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    if let Some(bytes) = cache_file(name).and_then(|p| std::fs::read(p).ok()) {
        let versions = parse_cache(&bytes, name);
        if !versions.is_empty() {
            return Ok(Releases {
                versions,
                complete: true,
            });
        }
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let newest = stdout
        .lines()
        .find_map(|l| l.strip_prefix("version: "))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| Version::parse(v).ok())
        .ok_or_else(|| SyncError::Registry(format!("`cargo info {name}` printed no version")))?;
    Ok(Releases {
        versions: vec![newest],
        complete: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_paths_follow_cargos_layout() {
        assert_eq!(cache_rel("a"), PathBuf::from("1/a"));
        assert_eq!(cache_rel("cc"), PathBuf::from("2/cc"));
        assert_eq!(cache_rel("syn"), PathBuf::from("3/s/syn"));
        assert_eq!(cache_rel("Half"), PathBuf::from("ha/lf/half"));
    }

    #[test]
    fn cache_records_give_unyanked_releases() {
        let mut bytes = b"\x03\x02\x00\x00\x00etag\x002.6.0\x00".to_vec();
        for (v, y) in [
            ("2.6.0", false),
            ("2.7.0", true),
            ("2.7.1", false),
            ("3.0.0-rc.1", false),
        ] {
            bytes.extend_from_slice(
                format!("{{\"name\":\"half\",\"vers\":\"{v}\",\"yanked\":{y}}}").as_bytes(),
            );
            bytes.push(0);
            bytes.extend_from_slice(v.as_bytes());
            bytes.push(0);
        }
        let got: Vec<String> = parse_cache(&bytes, "half")
            .iter()
            .map(|v| v.to_string())
            .collect();
        assert_eq!(got, ["2.6.0", "2.7.1"]);
    }
}
