//! `tektra cache ls`'s rows: repos (or revisions) filtered and sorted with
//! the expressions `hf cache ls` takes (`size>1GB`, `accessed>30d`,
//! `modified<1w`, `refs=main`, `type=model`; `size`, `accessed`,
//! `modified`, `name`, each with `:asc` or `:desc`).

use std::time::SystemTime;

use serde::Serialize;

use crate::CacheError;
use crate::scan::{CacheScan, Repo, Revision};
use crate::units::{parse_duration, parse_size};

/// One row: a repo, or one of its revisions.
#[derive(Debug, Clone, Serialize)]
pub struct Entry<'a> {
    /// The repo.
    pub repo: &'a Repo,
    /// The revision, when listing revisions.
    pub revision: Option<&'a Revision>,
}

impl Entry<'_> {
    /// Bytes of the revision, or of the repo.
    #[must_use]
    pub fn size(&self) -> u64 {
        self.revision.map_or(self.repo.size, |r| r.size)
    }

    /// Last modified: the revision's, or the repo's.
    #[must_use]
    pub fn modified(&self) -> SystemTime {
        self.revision.map_or(self.repo.modified, |r| r.modified)
    }

    /// Refs of the revision, or of every revision of the repo.
    #[must_use]
    pub fn refs(&self) -> Vec<String> {
        self.revision
            .map_or_else(|| self.repo.refs(), |r| r.refs.clone())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Gt,
    Lt,
    Ge,
    Le,
}

impl Op {
    fn holds<T: PartialOrd>(self, a: T, b: T) -> bool {
        match self {
            Op::Eq => a == b,
            Op::Ne => a != b,
            Op::Gt => a > b,
            Op::Lt => a < b,
            Op::Ge => a >= b,
            Op::Le => a <= b,
        }
    }
}

/// One `--filter` expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    /// `size OP BYTES`.
    Size(Op2, u64),
    /// `accessed OP AGE` (seconds since last access).
    Accessed(Op2, u64),
    /// `modified OP AGE`.
    Modified(Op2, u64),
    /// `refs=NAME`.
    Ref(String),
    /// `type=model|dataset|space`.
    Kind(String),
}

/// A comparison of a filter (public so a [`Filter`] can be built by hand).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Op2(Op);

impl std::str::FromStr for Filter {
    type Err = CacheError;

    fn from_str(expr: &str) -> Result<Filter, CacheError> {
        let bad = || CacheError::BadFilter(expr.to_string());
        let at = expr.find(['=', '!', '>', '<']).ok_or_else(bad)?;
        let key = expr[..at].trim().to_ascii_lowercase();
        let rest = &expr[at..];
        let (op, value) = [
            (">=", Op::Ge),
            ("<=", Op::Le),
            ("!=", Op::Ne),
            ("==", Op::Eq),
            (">", Op::Gt),
            ("<", Op::Lt),
            ("=", Op::Eq),
        ]
        .iter()
        .find_map(|(s, op)| rest.strip_prefix(s).map(|v| (*op, v.trim())))
        .ok_or_else(bad)?;
        if value.is_empty() {
            return Err(bad());
        }
        match key.as_str() {
            "size" => Ok(Filter::Size(Op2(op), parse_size(value)?)),
            "accessed" => Ok(Filter::Accessed(Op2(op), parse_duration(value)?)),
            "modified" => Ok(Filter::Modified(Op2(op), parse_duration(value)?)),
            "refs" if op == Op::Eq => Ok(Filter::Ref(value.to_ascii_lowercase())),
            "type" if op == Op::Eq => Ok(Filter::Kind(value.to_ascii_lowercase())),
            _ => Err(bad()),
        }
    }
}

fn age(now: SystemTime, t: SystemTime) -> u64 {
    now.duration_since(t).map_or(0, |d| d.as_secs())
}

impl Filter {
    fn keeps(&self, e: &Entry<'_>, now: SystemTime) -> bool {
        match self {
            Filter::Size(op, n) => op.0.holds(e.size(), *n),
            Filter::Accessed(op, s) => op.0.holds(age(now, e.repo.accessed), *s),
            Filter::Modified(op, s) => op.0.holds(age(now, e.modified()), *s),
            Filter::Ref(name) => e.refs().iter().any(|r| r.to_ascii_lowercase() == *name),
            Filter::Kind(k) => e.repo.kind.name() == k,
        }
    }
}

/// How rows are ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sort {
    key: SortKey,
    descending: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SortKey {
    Size,
    Accessed,
    Modified,
    Name,
}

impl std::str::FromStr for Sort {
    type Err = CacheError;

    /// `size`, `accessed`, `modified` (biggest or newest first) or `name`
    /// (A to Z), with an optional `:asc` or `:desc`.
    fn from_str(s: &str) -> Result<Sort, CacheError> {
        let lower = s.trim().to_ascii_lowercase();
        let (key, order) = match lower.split_once(':') {
            Some((k, o)) => (k, Some(o)),
            None => (lower.as_str(), None),
        };
        let key = match key {
            "size" => SortKey::Size,
            "accessed" => SortKey::Accessed,
            "modified" => SortKey::Modified,
            "name" => SortKey::Name,
            _ => return Err(CacheError::BadSort(s.to_string())),
        };
        let descending = match order {
            None => key != SortKey::Name,
            Some("desc") => true,
            Some("asc") => false,
            Some(_) => return Err(CacheError::BadSort(s.to_string())),
        };
        Ok(Sort { key, descending })
    }
}

/// The rows of `scan`: one per repo, or per revision with `revisions`;
/// only those every filter keeps; sorted by `sort`, else by kind and name.
#[must_use]
pub fn entries<'a>(
    scan: &'a CacheScan,
    revisions: bool,
    filters: &[Filter],
    sort: Option<Sort>,
    now: SystemTime,
) -> Vec<Entry<'a>> {
    let mut rows: Vec<Entry<'a>> = Vec::new();
    for repo in &scan.repos {
        if revisions {
            rows.extend(repo.revisions.iter().map(|r| Entry {
                repo,
                revision: Some(r),
            }));
        } else {
            rows.push(Entry {
                repo,
                revision: None,
            });
        }
    }
    rows.retain(|e| filters.iter().all(|f| f.keeps(e, now)));
    if let Some(sort) = sort {
        rows.sort_by(|a, b| {
            let o = match sort.key {
                SortKey::Size => a.size().cmp(&b.size()),
                SortKey::Accessed => a.repo.accessed.cmp(&b.repo.accessed),
                SortKey::Modified => a.modified().cmp(&b.modified()),
                SortKey::Name => a
                    .repo
                    .cache_id()
                    .to_ascii_lowercase()
                    .cmp(&b.repo.cache_id().to_ascii_lowercase()),
            };
            if sort.descending { o.reverse() } else { o }
        });
    }
    rows
}
