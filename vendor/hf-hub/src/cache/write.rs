//! Small writes into the cache that must be all-or-nothing.

use std::io::Write;
use std::path::Path;

use crate::error::HubError;

fn unique_suffix() -> String {
    format!("{}.{:08x}", std::process::id(), rand::random::<u32>())
}

fn create_parent(path: &Path) -> Result<(), HubError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| HubError::io("creating", parent, e))?;
    }
    Ok(())
}

/// Writes `bytes` to `path` through a temporary file in the same folder and
/// a rename, so readers see the old content or the new one, never a part.
/// The file is synced before the rename and the folder after it, so after
/// a power cut the name holds the old bytes or the new ones, not zeros.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), HubError> {
    create_parent(path)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", unique_suffix()));
    let result = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    result.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        HubError::io("writing", path, e)
    })?;
    if let Some(parent) = path.parent() {
        sync_dir(parent).map_err(|e| HubError::io("syncing", parent, e))?;
    }
    Ok(())
}

/// Makes a folder's entries (a rename into it) durable. Nothing to do
/// where folders cannot be opened for that (Windows).
pub(crate) fn sync_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        std::fs::File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

/// Makes `link` a symlink to `target` (relative), replacing what was there
/// in one rename. Where symlinks are unavailable the blob is copied, as
/// huggingface_hub does.
pub(crate) fn symlink_atomic(target: &Path, link: &Path, blob: &Path) -> Result<(), HubError> {
    create_parent(link)?;
    let name = link
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = link.with_file_name(format!(".{name}.{}.tmp", unique_suffix()));
    #[cfg(unix)]
    let made = std::os::unix::fs::symlink(target, &tmp);
    #[cfg(windows)]
    let made = std::os::windows::fs::symlink_file(target, &tmp);
    #[cfg(not(any(unix, windows)))]
    let made: std::io::Result<()> = Err(std::io::Error::other("no symlinks"));
    if made.is_err() {
        std::fs::copy(blob, &tmp)
            .map_err(|e| HubError::io("copying into the snapshot", &tmp, e))?;
    }
    std::fs::rename(&tmp, link).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        HubError::io("linking", link, e)
    })
}

/// Appends one `start end` line (a written byte range) to a range journal.
pub(crate) fn write_ranges_line(
    file: &mut std::fs::File,
    start: u64,
    end: u64,
) -> std::io::Result<()> {
    // One write per line: an interrupted process leaves whole lines, or a
    // torn last line that the reader ignores.
    file.write_all(format!("{start} {end}\n").as_bytes())
}
