//! The mark of a blob whose bytes were checked against its name and are on
//! disk: an extended attribute, `user.tektra.verified`, holding the blob's
//! name, size and modification time.
//!
//! An attribute rather than a file beside the blob, so the cache stays
//! huggingface_hub's layout file for file, and because it belongs to the
//! inode: a blob another tool replaces (a new file renamed over it) loses
//! it, and one rewritten in place no longer matches its size or time. A
//! blob without the mark (written by huggingface_hub, by an older tektra,
//! or left by a power cut) is hashed once before it is trusted. Where the
//! file system cannot hold the attribute, nothing is marked and such
//! blobs are hashed each time they are linked.

use std::path::Path;
use std::time::UNIX_EPOCH;

const ATTR: &str = "user.tektra.verified";

/// What the mark says about the blob at `path` named `name`, as it is now.
fn stamp(path: &Path, name: &str) -> std::io::Result<String> {
    let meta = std::fs::metadata(path)?;
    let mtime = meta
        .modified()?
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    Ok(format!("{name} {} {mtime}", meta.len()))
}

/// Marks the file at `path` as the verified blob `name`. The caller syncs
/// the file after this and before trusting the mark: only a durable blob
/// may carry it.
pub(crate) fn set(path: &Path, name: &str) -> std::io::Result<()> {
    let value = stamp(path, name)?;
    sys::set(path, ATTR, value.as_bytes())
}

/// Whether the file at `path` carries the mark of the verified blob `name`
/// with its present size and modification time.
pub(crate) fn is_set(path: &Path, name: &str) -> bool {
    let Ok(expected) = stamp(path, name) else {
        return false;
    };
    sys::get(path, ATTR).is_some_and(|v| v == expected.as_bytes())
}

/// When our downloads or loads last used a snapshot folder: an attribute
/// on the folder holding Unix seconds (so `tektra cache prune` can remove
/// the least recently used; atime alone is often off or coarse).
const USED: &str = "user.tektra.last_used";

/// Records that the snapshot at `dir` is used now (best effort: where the
/// file system has no attributes, pruning falls back to access times).
pub fn mark_used(dir: &Path) {
    let now = std::time::SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let _ = sys::set(dir, USED, now.to_string().as_bytes());
}

/// When the snapshot at `dir` was last used by us, if recorded.
#[must_use]
pub fn last_used(dir: &Path) -> Option<std::time::SystemTime> {
    let value = sys::get(dir, USED)?;
    let secs: u64 = std::str::from_utf8(&value).ok()?.trim().parse().ok()?;
    Some(UNIX_EPOCH + std::time::Duration::from_secs(secs))
}

#[cfg(any(target_os = "linux", target_os = "macos"))]
#[allow(unsafe_code)]
mod sys {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    use std::path::Path;

    fn c_path(path: &Path) -> std::io::Result<CString> {
        CString::new(path.as_os_str().as_bytes()).map_err(std::io::Error::other)
    }

    pub(super) fn set(path: &Path, name: &str, value: &[u8]) -> std::io::Result<()> {
        let (path, name) = (
            c_path(path)?,
            CString::new(name).map_err(std::io::Error::other)?,
        );
        // SAFETY: both strings are NUL-terminated and live across the call;
        // `value` is a valid buffer of `value.len()` bytes.
        #[cfg(target_os = "linux")]
        let rc = unsafe {
            libc::setxattr(
                path.as_ptr(),
                name.as_ptr(),
                value.as_ptr().cast(),
                value.len(),
                0,
            )
        };
        // SAFETY: as above; position and options 0 (a plain attribute).
        #[cfg(target_os = "macos")]
        let rc = unsafe {
            libc::setxattr(
                path.as_ptr(),
                name.as_ptr(),
                value.as_ptr().cast(),
                value.len(),
                0,
                0,
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    }

    pub(super) fn get(path: &Path, name: &str) -> Option<Vec<u8>> {
        let (path, name) = (c_path(path).ok()?, CString::new(name).ok()?);
        let mut buf = vec![0u8; 256];
        // SAFETY: NUL-terminated strings; `buf` is writable for `buf.len()`
        // bytes and the call writes at most that many.
        #[cfg(target_os = "linux")]
        let n = unsafe {
            libc::getxattr(
                path.as_ptr(),
                name.as_ptr(),
                buf.as_mut_ptr().cast(),
                buf.len(),
            )
        };
        // SAFETY: as above; position and options 0.
        #[cfg(target_os = "macos")]
        let n = unsafe {
            libc::getxattr(
                path.as_ptr(),
                name.as_ptr(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                0,
                0,
            )
        };
        let n = usize::try_from(n).ok()?;
        buf.truncate(n);
        Some(buf)
    }
}

#[cfg(not(any(target_os = "linux", target_os = "macos")))]
mod sys {
    use std::path::Path;

    pub(super) fn set(_path: &Path, _name: &str, _value: &[u8]) -> std::io::Result<()> {
        Err(std::io::ErrorKind::Unsupported.into())
    }

    pub(super) fn get(_path: &Path, _name: &str) -> Option<Vec<u8>> {
        None
    }
}
