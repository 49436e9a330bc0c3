//! Public API drift, from rustdoc JSON.
//!
//! The JSON is read as plain `serde_json::Value` rather than through the
//! `rustdoc-types` crate: that crate must match the toolchain's
//! `FORMAT_VERSION` exactly and would break this tool at every rustc
//! update, while the parts read here (modules, re-exports, items, impls)
//! keep their shape across format versions. Each public item becomes a
//! path and a signature (its JSON with ids taken out), and two APIs are
//! compared by those.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::error::{Result, SyncError, io};
use crate::exec;
use crate::report::{ApiDrift, ApiItem};

/// Public items by path: (kind, signature).
pub type Api = BTreeMap<String, (String, String)>;

fn key(v: &Value) -> Option<String> {
    match v {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(s.clone()),
        _ => None,
    }
}

/// The item's JSON without ids and lists of child ids, for comparing.
fn canonical(v: &Value) -> Value {
    const DROP: &[&str] = &[
        "id",
        "items",
        "impls",
        "implementations",
        "fields",
        "variants",
        "has_body",
    ];
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !DROP.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), canonical(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(canonical).collect()),
        other => other.clone(),
    }
}

struct Walker<'a> {
    index: &'a serde_json::Map<String, Value>,
    out: Api,
    seen: BTreeSet<String>,
}

impl Walker<'_> {
    fn kind_body(item: &Value) -> Option<(&str, &Value)> {
        item.get("inner")?
            .as_object()?
            .iter()
            .next()
            .map(|(k, v)| (k.as_str(), v))
    }

    fn record(&mut self, path: &str, kind: &str, body: &Value) {
        let sig = serde_json::to_string(&canonical(body)).unwrap_or_default();
        self.out.insert(path.to_owned(), (kind.to_owned(), sig));
    }

    fn visit(&mut self, id: &Value, prefix: &str, alias: Option<&str>) {
        let Some(k) = key(id) else { return };
        let Some(item) = self.index.get(&k) else {
            return;
        };
        let Some((kind, body)) = Self::kind_body(item) else {
            return;
        };
        if alias.is_none() && item.get("visibility").and_then(|v| v.as_str()) != Some("public") {
            return;
        }
        if prefix.matches("::").count() > 12 {
            return;
        }
        let name = alias
            .or_else(|| item.get("name").and_then(|n| n.as_str()))
            .unwrap_or("_");
        let path = format!("{prefix}::{name}");
        match kind {
            "use" => {
                let target = body.get("id").cloned().unwrap_or(Value::Null);
                let uname = body.get("name").and_then(|n| n.as_str()).unwrap_or(name);
                let glob = body
                    .get("is_glob")
                    .and_then(|g| g.as_bool())
                    .unwrap_or(false);
                let local = key(&target).is_some_and(|t| self.index.contains_key(&t));
                if glob && local {
                    let t = key(&target).unwrap_or_default();
                    if self.seen.insert(format!("glob {t} {prefix}"))
                        && let Some(module) = self.index.get(&t)
                        && let Some(("module", mb)) = Self::kind_body(module)
                    {
                        for c in mb
                            .get("items")
                            .and_then(|i| i.as_array())
                            .cloned()
                            .unwrap_or_default()
                        {
                            self.visit(&c, prefix, None);
                        }
                    }
                } else if local {
                    self.visit(&target, prefix, Some(uname));
                } else {
                    let shown = if glob {
                        format!("{prefix}::*")
                    } else {
                        format!("{prefix}::{uname}")
                    };
                    self.record(
                        &shown,
                        "reexport",
                        &Value::String(
                            body.get("source")
                                .and_then(|s| s.as_str())
                                .unwrap_or("")
                                .to_owned(),
                        ),
                    );
                }
            }
            "module" => {
                self.out
                    .insert(path.clone(), ("module".to_owned(), String::new()));
                if self.seen.insert(format!("mod {k} {path}")) {
                    for c in body
                        .get("items")
                        .and_then(|i| i.as_array())
                        .cloned()
                        .unwrap_or_default()
                    {
                        self.visit(&c, &path, None);
                    }
                }
            }
            _ => {
                self.record(&path, kind, body);
                self.members(kind, body, &path);
            }
        }
    }

    fn members(&mut self, kind: &str, body: &Value, path: &str) {
        let ids = |v: Option<&Value>| v.and_then(|i| i.as_array()).cloned().unwrap_or_default();
        // Fields of a plain or tuple struct, or of a union.
        let fields = match body.get("kind") {
            Some(Value::Object(m)) => m
                .get("plain")
                .and_then(|p| p.get("fields"))
                .or_else(|| m.get("tuple"))
                .cloned(),
            _ => body.get("fields").cloned(),
        };
        for f in ids(fields.as_ref()) {
            if let Some(item) = key(&f).and_then(|k| self.index.get(&k))
                && item.get("visibility").and_then(|v| v.as_str()) == Some("public")
                && let Some((fk, fb)) = Self::kind_body(item)
            {
                let name = item.get("name").and_then(|n| n.as_str()).unwrap_or("_");
                self.record(&format!("{path}::{name}"), fk, fb);
            }
        }
        if kind == "enum" || kind == "trait" {
            let list = if kind == "enum" {
                body.get("variants")
            } else {
                body.get("items")
            };
            for v in ids(list) {
                if let Some(item) = key(&v).and_then(|k| self.index.get(&k))
                    && let Some((vk, vb)) = Self::kind_body(item)
                {
                    let name = item.get("name").and_then(|n| n.as_str()).unwrap_or("_");
                    self.record(&format!("{path}::{name}"), vk, vb);
                }
            }
        }
        for i in ids(body.get("impls")) {
            let Some(item) = key(&i).and_then(|k| self.index.get(&k)) else {
                continue;
            };
            let Some(("impl", ib)) = Self::kind_body(item) else {
                continue;
            };
            if !ib.get("blanket_impl").is_none_or(Value::is_null) {
                continue;
            }
            match ib.get("trait").filter(|t| !t.is_null()) {
                None => {
                    for m in ids(ib.get("items")) {
                        if let Some(mi) = key(&m).and_then(|k| self.index.get(&k))
                            && mi.get("visibility").and_then(|v| v.as_str()) == Some("public")
                            && let Some((mk, mb)) = Self::kind_body(mi)
                        {
                            let name = mi.get("name").and_then(|n| n.as_str()).unwrap_or("_");
                            self.record(&format!("{path}::{name}"), mk, mb);
                        }
                    }
                }
                Some(t) => {
                    let tname = t
                        .get("path")
                        .or_else(|| t.get("name"))
                        .and_then(|n| n.as_str())
                        .unwrap_or("?");
                    let tname = tname.rsplit("::").next().unwrap_or(tname);
                    let neg = if ib
                        .get("is_negative")
                        .and_then(|n| n.as_bool())
                        .unwrap_or(false)
                    {
                        "!"
                    } else {
                        ""
                    };
                    self.out.insert(
                        format!("{path}: impl {neg}{tname}"),
                        ("impl".to_owned(), String::new()),
                    );
                }
            }
        }
    }
}

/// The public API in a rustdoc JSON document.
pub fn extract(doc: &Value, path: &Path) -> Result<Api> {
    let bad = |m: &str| SyncError::Rustdoc {
        path: path.to_owned(),
        message: m.to_owned(),
    };
    let index = doc
        .get("index")
        .and_then(|i| i.as_object())
        .ok_or_else(|| bad("no index"))?;
    let root = doc
        .get("root")
        .and_then(key)
        .ok_or_else(|| bad("no root"))?;
    let krate = index
        .get(&root)
        .and_then(|r| r.get("name"))
        .and_then(|n| n.as_str())
        .ok_or_else(|| bad("no root module"))?
        .to_owned();
    let mut w = Walker {
        index,
        out: Api::new(),
        seen: BTreeSet::new(),
    };
    let root_item = &index[&root];
    if let Some(("module", body)) = Walker::kind_body(root_item) {
        for c in body
            .get("items")
            .and_then(|i| i.as_array())
            .cloned()
            .unwrap_or_default()
        {
            w.visit(&c, &krate, None);
        }
    }
    Ok(w.out)
}

/// Reads a rustdoc JSON file's API.
pub fn load(path: &Path) -> Result<Api> {
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    let doc: Value = serde_json::from_str(&text)?;
    extract(&doc, path)
}

/// Items as (path, kind).
pub type Items = Vec<(String, String)>;

/// `(removed, changed, added)` between `old` and `new`.
pub fn diff(old: &Api, new: &Api) -> (Items, Items, usize) {
    let removed = old
        .iter()
        .filter(|(p, _)| !new.contains_key(*p))
        .map(|(p, (k, _))| (p.clone(), k.clone()))
        .collect();
    let changed = old
        .iter()
        .filter_map(|(p, (k, s))| {
            new.get(p)
                .filter(|(_, ns)| ns != s)
                .map(|_| (p.clone(), k.clone()))
        })
        .collect();
    let added = new.keys().filter(|p| !old.contains_key(*p)).count();
    (removed, changed, added)
}

/// rustdoc JSON for `name` at `version` from the registry, built in a
/// scratch crate under `dir` (default features). Returns the JSON's path.
pub fn registry_json(
    name: &str,
    version: &str,
    dir: &Path,
    target: &Path,
    log: &Path,
) -> Result<PathBuf> {
    let probe = dir.join(format!("{name}-{version}"));
    let saved = dir.join(format!("{name}-{version}.json"));
    if saved.is_file() {
        return Ok(saved);
    }
    std::fs::create_dir_all(probe.join("src")).map_err(io(&probe))?;
    let manifest = format!(
        "[package]\nname = \"api-probe\"\nversion = \"0.0.0\"\nedition = \"2021\"\npublish = false\n\n\
         [dependencies]\n{name} = \"={version}\"\n\n[workspace]\n"
    );
    std::fs::write(probe.join("Cargo.toml"), manifest).map_err(io(&probe))?;
    std::fs::write(probe.join("src/lib.rs"), "").map_err(io(&probe))?;
    let mut cmd = exec::cargo(&probe);
    cmd.args(["rustdoc", "-p", &format!("{name}@{version}"), "--lib"]);
    json_of(cmd, name, target, &saved, log)
}

/// rustdoc JSON for the workspace package `package` at `ws`.
pub fn workspace_json(
    ws: &Path,
    package: &str,
    target: &Path,
    saved: &Path,
    log: &Path,
) -> Result<PathBuf> {
    let mut cmd = exec::cargo(ws);
    cmd.args(["rustdoc", "-p", package, "--lib"]);
    json_of(cmd, package, target, saved, log)
}

fn json_of(
    mut cmd: std::process::Command,
    name: &str,
    target: &Path,
    saved: &Path,
    log: &Path,
) -> Result<PathBuf> {
    // rustdoc's JSON output is unstable; RUSTC_BOOTSTRAP lets the stable
    // toolchain emit it. A target dir of its own keeps that flag's builds
    // away from the user's.
    cmd.env("RUSTC_BOOTSTRAP", "1")
        .env("CARGO_TARGET_DIR", target)
        .args(["--", "-Z", "unstable-options", "--output-format", "json"]);
    exec::run_ok(&mut cmd, log)?;
    let produced = target
        .join("doc")
        .join(format!("{}.json", name.replace('-', "_")));
    std::fs::copy(&produced, saved).map_err(io(&produced))?;
    Ok(saved.to_owned())
}

/// Our `.rs` files (relative paths) and their text, outside target/.
pub fn our_sources(root: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.filter_map(|e| e.ok()) {
            let p = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            if p.is_dir() {
                if !["target", ".git", "patched", "node_modules"].contains(&name.as_str()) {
                    stack.push(p);
                }
            } else if name.ends_with(".rs")
                && let Ok(text) = std::fs::read_to_string(&p)
            {
                let rel = p
                    .strip_prefix(root)
                    .unwrap_or(&p)
                    .to_string_lossy()
                    .into_owned();
                out.push((rel, text));
            }
        }
    }
    out.sort();
    out
}

fn has_word(text: &str, word: &str) -> bool {
    text.match_indices(word).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + word.len()..].chars().next();
        let ident = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
        !ident(before) && !ident(after)
    })
}

/// Our files that name `path` (an item of crate `ident`): files that
/// mention the crate and name the item's last segment and, for a member
/// (`Type::method`), its type too. A heuristic: it finds uses by name.
pub fn users(sources: &[(String, String)], ident: &str, path: &str) -> Vec<String> {
    let clean = path.split(": impl").next().unwrap_or(path);
    let segs: Vec<&str> = clean.split("::").collect();
    let last = segs.last().copied().unwrap_or("");
    let owner = if segs.len() >= 3 {
        Some(segs[segs.len() - 2])
    } else {
        None
    };
    sources
        .iter()
        .filter(|(_, t)| has_word(t, ident))
        .filter(|(_, t)| has_word(t, last) && owner.is_none_or(|o| has_word(t, o)))
        .map(|(f, _)| f.clone())
        .collect()
}

/// The drift from `old` to `new`, with our files that name each item.
pub fn drift(
    what: String,
    old: &Api,
    new: &Api,
    ident: Option<&str>,
    sources: &[(String, String)],
) -> ApiDrift {
    let (removed, changed, added) = diff(old, new);
    let item = |(path, kind): (String, String)| ApiItem {
        used_in: ident.map(|i| users(sources, i, &path)).unwrap_or_default(),
        path,
        kind,
    };
    ApiDrift {
        what,
        removed: removed.into_iter().map(item).collect(),
        changed: changed.into_iter().map(item).collect(),
        added,
        error: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc(sig: &str, with_b: bool) -> Value {
        let mut index = json!({
            "0": {"name": "k", "visibility": "public", "inner": {"module": {"items": [1, 2, 5]}}},
            "1": {"name": "Api", "visibility": "public", "inner": {"struct": {"kind": {"plain": {"fields": []}}, "impls": [3, 6]}}},
            "3": {"name": null, "visibility": "default", "inner": {"impl": {"trait": null, "blanket_impl": null, "items": [4]}}},
            "4": {"name": "model", "visibility": "public", "inner": {"function": {"sig": {"inputs": sig}, "id": 9}}},
            "6": {"name": null, "visibility": "default", "inner": {"impl": {"trait": {"path": "Send", "id": 77}, "blanket_impl": null, "items": [], "is_synthetic": true}}},
            "5": {"name": "sub", "visibility": "public", "inner": {"module": {"items": [7]}}},
            "7": {"name": "hidden", "visibility": "crate", "inner": {"function": {"sig": {}}}}
        });
        if with_b {
            index["0"]["inner"]["module"]["items"] = json!([1, 2, 5, 8]);
            index["8"] = json!({"name": "b", "visibility": "public", "inner": {"use": {"source": "x::B", "name": "B", "id": null, "is_glob": false}}});
        }
        json!({"root": 0, "index": index})
    }

    #[test]
    fn extracts_items_members_and_trait_impls() {
        let api = extract(&doc("a", false), Path::new("t.json")).unwrap();
        let keys: Vec<&str> = api.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            ["k::Api", "k::Api: impl Send", "k::Api::model", "k::sub"]
        );
    }

    #[test]
    fn diff_finds_changed_removed_added_and_our_users() {
        let old = extract(&doc("a", true), Path::new("o")).unwrap();
        let new = extract(&doc("b", false), Path::new("n")).unwrap();
        let sources = vec![
            (
                "src/a.rs".to_owned(),
                "use k::Api; fn f(a: &Api) { a.model(); }".to_owned(),
            ),
            ("src/b.rs".to_owned(), "fn model() {}".to_owned()),
        ];
        let d = drift("k".into(), &old, &new, Some("k"), &sources);
        assert_eq!(d.removed.len(), 1);
        assert_eq!(d.removed[0].path, "k::B");
        assert_eq!(d.changed.len(), 1);
        assert_eq!(d.changed[0].path, "k::Api::model");
        assert_eq!(d.changed[0].used_in, ["src/a.rs"]);
        assert_eq!(d.added, 0);
    }
}
