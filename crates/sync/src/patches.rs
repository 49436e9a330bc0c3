//! Re-applying patches/ to the registry source of the versions pinned
//! after the bump.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use semver::Version;

use crate::error::{Result, SyncError, io};
use crate::exec;
use crate::report::{PatchOutcome, PatchStatus};

/// A patch file's name taken apart: `<crate>-<version>-<what>.patch`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatchName {
    /// The crate it changes.
    pub krate: String,
    /// The version it was written for.
    pub version: Version,
    /// What it does (the rest of the name).
    pub what: String,
}

/// Splits a patch file name; None when it does not follow the pattern.
pub fn parse_name(file: &str) -> Option<PatchName> {
    let stem = file.strip_suffix(".patch")?;
    let parts: Vec<&str> = stem.split('-').collect();
    let at = parts.iter().position(|p| Version::parse(p).is_ok())?;
    if at == 0 || at + 1 >= parts.len() {
        return None;
    }
    Some(PatchName {
        krate: parts[..at].join("-"),
        version: Version::parse(parts[at]).ok()?,
        what: parts[at + 1..].join("-"),
    })
}

/// The patches the `mistralrs` build applies, as scripts/apply-patches
/// lists them (`"crate version file"` lines): crate -> file.
pub fn build_patches(ws: &Path) -> Result<BTreeMap<String, String>> {
    let path = ws.join("scripts/apply-patches");
    let text = std::fs::read_to_string(&path).map_err(io(&path))?;
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let t = line.trim();
        let Some(inner) = t.strip_prefix('"').and_then(|s| s.strip_suffix('"')) else {
            continue;
        };
        let f: Vec<&str> = inner.split_whitespace().collect();
        if let [name, _version, file] = f[..]
            && file.ends_with(".patch")
        {
            out.insert(name.to_owned(), file.to_owned());
        }
    }
    Ok(out)
}

/// Where cargo unpacked each registry package of the `mistralrs` graph
/// (which holds the default one): `(name, version)` -> folder.
pub fn registry_sources(ws: &Path, log: &Path) -> Result<BTreeMap<(String, String), PathBuf>> {
    let host = exec::run_ok(Command::new("rustc").arg("-vV"), log)?
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_owned))
        .unwrap_or_default();
    let mut cmd = exec::cargo(ws);
    cmd.args([
        "metadata",
        "--format-version",
        "1",
        "--features",
        "tektra-inference/mistralrs",
    ]);
    if !host.is_empty() {
        cmd.args(["--filter-platform", &host]);
    }
    let text = exec::run_ok(&mut cmd, log)?;
    let meta: serde_json::Value = serde_json::from_str(&text)?;
    let mut out = BTreeMap::new();
    for p in meta["packages"].as_array().into_iter().flatten() {
        let source = p["source"].as_str().unwrap_or("");
        if !source.starts_with("registry+") && !source.starts_with("sparse+") {
            continue;
        }
        if let (Some(n), Some(v), Some(m)) = (
            p["name"].as_str(),
            p["version"].as_str(),
            p["manifest_path"].as_str(),
        ) && let Some(dir) = Path::new(m).parent()
        {
            out.insert((n.to_owned(), v.to_owned()), dir.to_owned());
        }
    }
    Ok(out)
}

/// Applies `patch` to a copy of `src` at `dest` (fuzz allowed, so an
/// offset or fuzz shows up as such); rejected hunks go to `rejects`.
pub fn apply(
    patch: &Path,
    src: &Path,
    dest: &Path,
    rejects: &Path,
    log: &Path,
) -> Result<(PatchStatus, Vec<String>)> {
    if dest.exists() {
        std::fs::remove_dir_all(dest).map_err(io(dest))?;
    }
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent).map_err(io(parent))?;
    }
    exec::run_ok(Command::new("cp").arg("-R").arg(src).arg(dest), log)?;
    exec::run_ok(Command::new("chmod").args(["-R", "u+w"]).arg(dest), log)?;
    if let Some(parent) = rejects.parent() {
        std::fs::create_dir_all(parent).map_err(io(parent))?;
    }
    let input = std::fs::File::open(patch).map_err(io(patch))?;
    let mut cmd = Command::new("patch");
    cmd.arg("-d")
        .arg(dest)
        .args(["-p1", "--forward", "--no-backup-if-mismatch", "-r"])
        .arg(rejects)
        .stdin(Stdio::from(input));
    let out = exec::run(&mut cmd, log)?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let details: Vec<String> = text
        .lines()
        .filter(|l| {
            let l = l.to_lowercase();
            l.contains("hunk")
                || l.contains("offset")
                || l.contains("fuzz")
                || l.contains("can't")
                || l.contains("reversed")
                || l.contains("malformed")
        })
        .map(|l| l.trim().to_owned())
        .collect();
    let status = if !out.status.success() {
        PatchStatus::Failed
    } else if details
        .iter()
        .any(|d| d.contains("offset") || d.contains("fuzz"))
    {
        PatchStatus::OffsetOrFuzz
    } else {
        PatchStatus::Clean
    };
    if status != PatchStatus::Failed && rejects.exists() {
        std::fs::remove_file(rejects).map_err(io(rejects))?;
    }
    Ok((status, details))
}

/// Renames a patch that applied to a newer version in the worktree: the
/// file (`git mv`), and its name in scripts/apply-patches and
/// patches/README.md, so the bumped tree's `mistralrs` build finds it.
pub fn rename(
    ws: &Path,
    old: &str,
    name: &PatchName,
    new_version: &Version,
    log: &Path,
) -> Result<String> {
    let new = format!("{}-{}-{}.patch", name.krate, new_version, name.what);
    exec::run_ok(
        Command::new("git").current_dir(ws).args([
            "mv",
            &format!("patches/{old}"),
            &format!("patches/{new}"),
        ]),
        log,
    )?;
    for rel in ["scripts/apply-patches", "patches/README.md"] {
        let path = ws.join(rel);
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let old_line = format!("\"{} {} {old}\"", name.krate, name.version);
        let new_line = format!("\"{} {new_version} {new}\"", name.krate);
        let updated = text.replace(&old_line, &new_line).replace(old, &new);
        if updated != text {
            std::fs::write(&path, updated).map_err(io(&path))?;
        }
    }
    Ok(new)
}

/// Tries every patch of `ws`/patches on the version the lock now pins.
/// `bumped` names the crates whose pin moved. Writes `config` (a cargo
/// config with `[patch.crates-io]` for the patched copies of the
/// `mistralrs` build's patches) when they all applied.
pub fn run_all(
    ws: &Path,
    bumped: &[String],
    out_dir: &Path,
    log: &Path,
) -> Result<(Vec<PatchOutcome>, Option<PathBuf>)> {
    let dir = ws.join("patches");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .map_err(io(&dir))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".patch"))
        .collect();
    files.sort();
    let in_build = build_patches(ws)?;
    let sources = registry_sources(ws, log)?;
    let mut outcomes = Vec::new();
    let mut config = String::from(
        "# Written by tektra-sync: the patched crates of the `mistralrs` build.\n[patch.crates-io]\n",
    );
    let mut build_ok = true;
    for file in files {
        let Some(name) = parse_name(&file) else {
            return Err(SyncError::Usage(format!(
                "patches/{file}: not named <crate>-<version>-<what>.patch"
            )));
        };
        let build = in_build.get(&name.krate).is_some_and(|f| *f == file);
        let moved = bumped
            .iter()
            .any(|b| b == &name.krate || name.krate.starts_with(&format!("{b}-")));
        let mut locked: Vec<Version> = sources
            .keys()
            .filter(|(n, _)| *n == name.krate)
            .filter_map(|(_, v)| Version::parse(v).ok())
            .collect();
        locked.sort();
        let version = if !moved && locked.contains(&name.version) {
            Some(name.version.clone())
        } else {
            locked.last().cloned()
        };
        let mut outcome = PatchOutcome {
            file: file.clone(),
            krate: name.krate.clone(),
            written_for: name.version.to_string(),
            tried_on: version.as_ref().map(|v| v.to_string()),
            status: PatchStatus::Failed,
            details: Vec::new(),
            rejects: None,
            in_build: build,
            renamed_to: None,
        };
        let src = version
            .as_ref()
            .and_then(|v| sources.get(&(name.krate.clone(), v.to_string())));
        match (version, src) {
            (Some(version), Some(src)) => {
                let dest = out_dir
                    .join("patched")
                    .join(format!("{}-{version}", name.krate));
                let rej = out_dir.join("rejects").join(format!("{file}.rej"));
                let (status, details) =
                    apply(&ws.join("patches").join(&file), src, &dest, &rej, log)?;
                outcome.status = status;
                outcome.details = details;
                if status == PatchStatus::Failed {
                    outcome.rejects = rej.exists().then_some(rej);
                } else {
                    if version != name.version {
                        outcome.renamed_to = Some(rename(ws, &file, &name, &version, log)?);
                    }
                    if build {
                        config.push_str(&format!(
                            "{} = {{ path = \"{}\" }}\n",
                            name.krate,
                            dest.display()
                        ));
                    }
                }
            }
            _ => {
                outcome
                    .details
                    .push(format!("{} is not in the graph's lock", name.krate));
            }
        }
        if build && outcome.status == PatchStatus::Failed {
            build_ok = false;
        }
        outcomes.push(outcome);
    }
    let config_path = out_dir.join("patched").join("config.toml");
    if build_ok {
        std::fs::create_dir_all(out_dir.join("patched")).map_err(io(out_dir))?;
        std::fs::write(&config_path, config).map_err(io(&config_path))?;
        Ok((outcomes, Some(config_path)))
    } else {
        Ok((outcomes, None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patch_names_split_at_the_version() {
        let n = parse_name("toktrie_hf_tokenizers-1.9.1-tokenizers-0.22.patch").unwrap();
        assert_eq!(n.krate, "toktrie_hf_tokenizers");
        assert_eq!(n.version, Version::new(1, 9, 1));
        assert_eq!(n.what, "tokenizers-0.22");
        let n = parse_name("candle-core-0.10.2-gguf-tokenizer-pretokenizers.patch").unwrap();
        assert_eq!(n.krate, "candle-core");
        assert_eq!(n.what, "gguf-tokenizer-pretokenizers");
        assert!(parse_name("README.md").is_none());
        assert!(parse_name("0.1.0-x.patch").is_none());
    }
}
