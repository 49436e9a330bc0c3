//! Who the mirror asks the upstream as, and which repos are private.
//!
//! The private set is kept beside the cache (`<cache>.mirror-private`, one
//! `kind/id` per line), not in it: huggingface_hub's cache scan would
//! report a stray file, and a restarted mirror with its upstream down must
//! still know not to serve a private repo to everyone.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tektra_hub_server::Kind;

/// Whose credentials a request to the upstream carries.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum Identity {
    /// No token.
    Anonymous,
    /// The mirror's own token (`--upstream-token`), for allowed repos.
    Mirror,
    /// A client's token, passed on to be checked.
    Client(Arc<str>),
}

impl Identity {
    pub(crate) fn client(token: &str) -> Self {
        Identity::Client(Arc::from(token))
    }
}

impl std::fmt::Debug for Identity {
    // Tokens never reach logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Identity::Anonymous => f.write_str("Anonymous"),
            Identity::Mirror => f.write_str("Mirror"),
            Identity::Client(_) => f.write_str("Client(<hidden>)"),
        }
    }
}

/// Repos the upstream showed only with a client's token.
pub(crate) struct Gate {
    file: PathBuf,
    private: Mutex<HashSet<(Kind, String)>>,
}

fn line(kind: Kind, id: &str) -> String {
    format!("{}/{id}", kind.plural())
}

impl Gate {
    pub(crate) fn load(cache_dir: &Path) -> Self {
        let mut name = cache_dir
            .file_name()
            .map(std::ffi::OsStr::to_os_string)
            .unwrap_or_default();
        name.push(".mirror-private");
        let file = cache_dir.with_file_name(name);
        let mut private = HashSet::new();
        if let Ok(text) = std::fs::read_to_string(&file) {
            for entry in text.lines() {
                if let Some((plural, id)) = entry.split_once('/')
                    && let Some(kind) = Kind::from_plural(plural)
                {
                    private.insert((kind, id.to_string()));
                }
            }
        }
        Gate {
            file,
            private: Mutex::new(private),
        }
    }

    pub(crate) fn is_private(&self, repo: &(Kind, String)) -> bool {
        crate::lock(&self.private).contains(repo)
    }

    pub(crate) fn mark_private(&self, repo: &(Kind, String)) {
        let mut set = crate::lock(&self.private);
        if set.insert(repo.clone()) {
            let mut lines: Vec<String> = set.iter().map(|(k, id)| line(*k, id)).collect();
            lines.sort();
            let text = lines.join("\n") + "\n";
            let tmp = self.file.with_extension("tmp");
            // Written whole and renamed: a crash leaves the old list or the new.
            let written =
                std::fs::write(&tmp, text).and_then(|()| std::fs::rename(&tmp, &self.file));
            if let Err(e) = written {
                tracing::warn!(file = %self.file.display(), error = %e, "cannot record a private repo; it stays private while this mirror runs");
            }
        }
    }
}
