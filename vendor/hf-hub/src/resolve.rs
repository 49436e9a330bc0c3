//! Resolve: from (repo, revision, path) to what the file is — its commit,
//! etag, size and where to fetch it — and from (repo, revision) to the
//! list of its files.

use std::collections::HashSet;

use reqwest::header::{HeaderMap, LINK, LOCATION};
use reqwest::{Method, Url};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use crate::client::{Hub, display_url};
use crate::error::HubError;
use crate::http::{Subject, error_from_response, get_json, send_with_retry};
use crate::ids::{RepoPath, RepoRef, Revision, check_commit, check_etag, truncate};

/// What the Hub says about one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileMeta {
    /// Path inside the repo.
    pub path: RepoPath,
    /// The commit the revision resolved to.
    pub commit: String,
    /// The blob's etag: sha256 for LFS files, git blob sha1 for others.
    pub etag: String,
    /// Size in bytes.
    pub size: u64,
    /// Where to GET the bytes: the resolve URL, or a CDN URL it redirects to.
    pub url: Url,
    /// Xet storage details, when the file lives there.
    pub xet: Option<XetFile>,
}

/// A file stored in Xet: its hash and where to get a read token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XetFile {
    /// The Xet file hash (`X-Xet-Hash`).
    pub hash: String,
    /// The token endpoint (`Link: <...>; rel="xet-auth"`).
    pub token_url: Url,
}

/// The resolve URL of a file.
pub fn resolve_url(
    hub: &Hub,
    repo: &RepoRef,
    revision: &Revision,
    path: &RepoPath,
) -> Result<Url, HubError> {
    hub.url(&format!(
        "{}/resolve/{}/{}",
        repo.url_prefix(),
        revision.url_form(),
        path.url_form()
    ))
}

impl Hub {
    /// Asks the Hub for a file's metadata with `HEAD` on its resolve URL.
    /// Relative redirects (renamed repos) are followed; an absolute one is
    /// the download location (a CDN) and its headers carry the metadata.
    /// A 404 for a missing file is remembered in `.no_exist/`.
    pub async fn resolve(
        &self,
        repo: &RepoRef,
        revision: &Revision,
        path: &RepoPath,
        cancel: &CancellationToken,
    ) -> Result<FileMeta, HubError> {
        if self.options().offline {
            return Err(HubError::NotCached {
                what: format!("{repo}@{revision}: {path}"),
                cache: self.cache().root().to_path_buf(),
            });
        }
        let subject = Subject {
            repo: repo.id(),
            revision: revision.as_str(),
            path: Some(path.as_str()),
        };
        let mut url = resolve_url(self, repo, revision, path)?;
        for _hop in 0..5 {
            let response = send_with_retry(self, &url, cancel, || {
                self.request(Method::HEAD, &url)
                    .header(reqwest::header::ACCEPT_ENCODING, "identity")
                    .send()
            })
            .await?;
            let status = response.status();
            if status.is_redirection() {
                let location = header(response.headers(), LOCATION.as_str()).ok_or_else(|| {
                    HubError::Protocol {
                        url: display_url(&url),
                        reason: format!("{status} without a Location header"),
                    }
                })?;
                if is_relative(location) {
                    url = url.join(location).map_err(|e| HubError::Protocol {
                        url: display_url(&url),
                        reason: format!("bad redirect location: {e}"),
                    })?;
                    continue;
                }
                let target = Url::parse(location).map_err(|e| HubError::Protocol {
                    url: display_url(&url),
                    reason: format!("bad redirect location: {e}"),
                })?;
                if !matches!(target.scheme(), "http" | "https") {
                    return Err(HubError::HostileAnswer {
                        what: "redirect",
                        value: truncate(target.scheme()),
                        url: display_url(&url),
                        reason: "downloads go over http or https only",
                    });
                }
                return meta_from_headers(response.headers(), path, target, &url);
            }
            if status.is_success() {
                let at = url.clone();
                return meta_from_headers(response.headers(), path, url, &at);
            }
            let commit = header(response.headers(), "x-repo-commit").map(str::to_string);
            let error = error_from_response(self, response, subject).await;
            if let (HubError::EntryNotFound { .. }, Some(commit)) = (&error, commit)
                && check_commit(&commit, &display_url(&url)).is_ok()
            {
                let repo_cache = self.cache().repo(repo);
                // Best effort, as in huggingface_hub: the error is what matters.
                let _ = repo_cache.mark_missing(&commit, path);
                let _ = repo_cache.write_ref(revision, &commit);
            }
            return Err(error);
        }
        Err(HubError::Protocol {
            url: display_url(&url),
            reason: "more than 5 redirects".into(),
        })
    }

    /// `GET /api/{models}/{repo}/revision/{rev}`: the commit and file names.
    pub async fn repo_info(
        &self,
        repo: &RepoRef,
        revision: &Revision,
        cancel: &CancellationToken,
    ) -> Result<RepoListing, HubError> {
        if self.options().offline {
            return Err(HubError::NotCached {
                what: format!("the file list of {repo}@{revision}"),
                cache: self.cache().root().to_path_buf(),
            });
        }
        let url = self.url(&format!(
            "api/{}/revision/{}",
            repo.api_prefix(),
            revision.url_form()
        ))?;
        let subject = Subject {
            repo: repo.id(),
            revision: revision.as_str(),
            path: None,
        };
        let (info, _) = get_json::<RawRepoInfo>(self, &url, subject, cancel).await?;
        let shown = display_url(&url);
        check_commit(&info.sha, &shown)?;
        let mut files = Vec::with_capacity(info.siblings.len());
        for s in info.siblings {
            files.push(RepoPath::from_server(&s.rfilename, &shown)?);
        }
        Ok(RepoListing {
            commit: info.sha,
            files,
        })
    }

    /// `GET /api/{models}/{repo}/tree/{rev}?recursive=true`, every page:
    /// each file with its size and hashes. Paths are checked; one bad path,
    /// a path listed twice, or a next-page link back to a page already read
    /// refuses the whole listing, and so does going past the pages, entries
    /// or time of `HubOptions::limits`.
    pub async fn tree(
        &self,
        repo: &RepoRef,
        revision: &Revision,
        cancel: &CancellationToken,
    ) -> Result<Vec<TreeFile>, HubError> {
        let mut url = self.url(&format!(
            "api/{}/tree/{}?recursive=true",
            repo.api_prefix(),
            revision.url_form()
        ))?;
        let subject = Subject {
            repo: repo.id(),
            revision: revision.as_str(),
            path: None,
        };
        let limits = &self.options().limits;
        let over = |url: &Url, limit: String| HubError::OverLimit {
            what: "the tree listing",
            url: display_url(url),
            limit,
        };
        // No deadline when the limit is past what the clock holds.
        let deadline = tokio::time::Instant::now().checked_add(limits.listing_time);
        let mut pages = HashSet::from([url.to_string()]);
        let mut listed_pages = 0usize;
        let mut paths = HashSet::new();
        let mut entries_seen = 0usize;
        let mut files = Vec::new();
        loop {
            // Checked before each page too: `timeout_at` polls the request
            // first, so a page answered quickly after the deadline would
            // still be taken (a zero limit passed now and then).
            if deadline.is_some_and(|at| tokio::time::Instant::now() >= at) {
                return Err(over(
                    &url,
                    format!("{} s", limits.listing_time.as_secs_f32()),
                ));
            }
            let page = get_json::<Vec<RawTreeEntry>>(self, &url, subject, cancel);
            let (entries, headers) = match deadline {
                Some(at) => tokio::time::timeout_at(at, page).await.map_err(|_| {
                    over(&url, format!("{} s", limits.listing_time.as_secs_f32()))
                })??,
                None => page.await?,
            };
            let shown = display_url(&url);
            entries_seen = entries_seen.saturating_add(entries.len());
            if entries_seen > limits.listing_entries {
                return Err(over(&url, format!("{} entries", limits.listing_entries)));
            }
            for entry in entries {
                if entry.kind != "file" {
                    continue;
                }
                let path = RepoPath::from_server(&entry.path, &shown)?;
                if !paths.insert(path.as_str().to_string()) {
                    return Err(HubError::HostileAnswer {
                        what: "path",
                        value: truncate(path.as_str()),
                        url: shown,
                        reason: "listed twice in one listing",
                    });
                }
                let etag = entry
                    .lfs
                    .as_ref()
                    .map_or(entry.oid.clone(), |l| l.oid.clone());
                check_etag(&etag, &shown)?;
                files.push(TreeFile {
                    path,
                    size: entry.lfs.as_ref().map_or(entry.size, |l| l.size),
                    etag,
                    blob_id: entry.oid,
                    lfs: entry.lfs.is_some(),
                    xet_hash: entry.xet_hash,
                });
            }
            let Some(next) = next_link(&headers) else {
                return Ok(files);
            };
            let next = url.join(&next).map_err(|e| HubError::Protocol {
                url: shown.clone(),
                reason: format!("bad next-page link: {e}"),
            })?;
            if !self.is_hub_origin(&next) {
                return Err(HubError::HostileAnswer {
                    what: "next-page link",
                    value: display_url(&next),
                    url: shown,
                    reason: "listing pages must stay on the Hub's origin",
                });
            }
            if !pages.insert(next.to_string()) {
                return Err(HubError::HostileAnswer {
                    what: "next-page link",
                    value: truncate(next.as_str()),
                    url: shown,
                    reason: "it leads back to a page already listed",
                });
            }
            // Counted apart from the set: the bound holds whatever it does.
            listed_pages += 1;
            if listed_pages >= limits.listing_pages {
                return Err(over(&url, format!("{} pages", limits.listing_pages)));
            }
            url = next;
        }
    }
}

/// A repo's commit and file names.
#[derive(Debug, Clone)]
pub struct RepoListing {
    /// Commit hash.
    pub commit: String,
    /// Every file.
    pub files: Vec<RepoPath>,
}

/// One file of a tree listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeFile {
    /// Path inside the repo.
    pub path: RepoPath,
    /// Size in bytes.
    pub size: u64,
    /// The etag the Hub will give it: LFS sha256, else the git blob id.
    pub etag: String,
    /// The git blob id.
    pub blob_id: String,
    /// Whether it is an LFS file.
    pub lfs: bool,
    /// The Xet hash, when stored in Xet.
    pub xet_hash: Option<String>,
}

#[derive(Deserialize)]
struct RawRepoInfo {
    sha: String,
    #[serde(default)]
    siblings: Vec<RawSibling>,
}

#[derive(Deserialize)]
struct RawSibling {
    rfilename: String,
}

#[derive(Deserialize)]
struct RawTreeEntry {
    #[serde(rename = "type")]
    kind: String,
    path: String,
    #[serde(default)]
    oid: String,
    #[serde(default)]
    size: u64,
    #[serde(default)]
    lfs: Option<RawLfs>,
    #[serde(default, rename = "xetHash")]
    xet_hash: Option<String>,
}

#[derive(Deserialize)]
struct RawLfs {
    oid: String,
    size: u64,
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name)?.to_str().ok()
}

fn is_relative(location: &str) -> bool {
    !location.starts_with("//") && !location.contains("://")
}

/// Strips `W/` and quotes from an etag header.
fn clean_etag(raw: &str) -> &str {
    raw.trim().trim_start_matches("W/").trim_matches('"')
}

fn meta_from_headers(
    headers: &HeaderMap,
    path: &RepoPath,
    download: Url,
    at: &Url,
) -> Result<FileMeta, HubError> {
    let shown = display_url(at);
    let missing = |name: &str| HubError::Protocol {
        url: shown.clone(),
        reason: format!("the {name} header is missing: is HF_ENDPOINT a Hub?"),
    };
    let commit = header(headers, "x-repo-commit").ok_or_else(|| missing("X-Repo-Commit"))?;
    check_commit(commit, &shown)?;
    let etag = header(headers, "x-linked-etag")
        .or_else(|| header(headers, "etag"))
        .map(clean_etag)
        .ok_or_else(|| missing("ETag"))?;
    check_etag(etag, &shown)?;
    let size_text = header(headers, "x-linked-size")
        .or_else(|| header(headers, "content-length"))
        .ok_or_else(|| missing("Content-Length"))?;
    let size = size_text
        .trim()
        .parse::<u64>()
        .map_err(|_| HubError::HostileAnswer {
            what: "size",
            value: truncate(size_text),
            url: shown.clone(),
            reason: "not a byte count",
        })?;
    let xet = match (header(headers, "x-xet-hash"), xet_auth_link(headers)) {
        (Some(hash), Some(link)) => Some(XetFile {
            hash: hash.trim().to_string(),
            token_url: at.join(&link).map_err(|e| HubError::Protocol {
                url: shown.clone(),
                reason: format!("bad xet-auth link: {e}"),
            })?,
        }),
        _ => None,
    };
    Ok(FileMeta {
        path: path.clone(),
        commit: commit.to_string(),
        etag: etag.to_string(),
        size,
        url: download,
        xet,
    })
}

/// Targets of `Link` header entries with the given `rel`.
fn link_with_rel(headers: &HeaderMap, rel: &str) -> Option<String> {
    for value in headers.get_all(LINK) {
        let Ok(text) = value.to_str() else { continue };
        for entry in text.split(',') {
            let mut parts = entry.split(';');
            let Some(target) = parts.next() else { continue };
            let target = target.trim();
            let is_rel = parts.any(|p| {
                let p = p.trim();
                p == format!("rel=\"{rel}\"") || p == format!("rel={rel}")
            });
            if is_rel && target.starts_with('<') && target.ends_with('>') {
                return Some(target[1..target.len() - 1].to_string());
            }
        }
    }
    None
}

fn next_link(headers: &HeaderMap) -> Option<String> {
    link_with_rel(headers, "next")
}

fn xet_auth_link(headers: &HeaderMap) -> Option<String> {
    link_with_rel(headers, "xet-auth")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_header_parsing() {
        let mut h = HeaderMap::new();
        h.insert(
            LINK,
            "<https://hub/api/models/a/b/tree/main?cursor=x>; rel=\"next\", <https://hub/api/models/a/b/xet-read-token/c>; rel=\"xet-auth\""
                .parse()
                .unwrap(),
        );
        assert_eq!(
            next_link(&h).unwrap(),
            "https://hub/api/models/a/b/tree/main?cursor=x"
        );
        assert_eq!(
            xet_auth_link(&h).unwrap(),
            "https://hub/api/models/a/b/xet-read-token/c"
        );
    }

    #[test]
    fn etags_lose_weak_marker_and_quotes() {
        assert_eq!(clean_etag("W/\"abc\""), "abc");
        assert_eq!(clean_etag("\"abc\""), "abc");
    }

    #[test]
    fn relative_locations() {
        assert!(is_relative("/api/x"));
        assert!(is_relative("x/y"));
        assert!(!is_relative("https://cdn/x"));
        assert!(!is_relative("//cdn/x"));
    }
}
