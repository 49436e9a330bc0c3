//! The one error type of the sync library.

use std::path::PathBuf;

/// Why a part of the sync could not be done. Step failures that the report
/// records (a patch that does not apply, a second version in the graph) are
/// not errors: they are results. These are the failures that stop a step.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// A program could not be started.
    #[error("could not run `{program}`: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// What the system said.
        source: std::io::Error,
    },
    /// A program ran and failed.
    #[error("`{command}` failed ({status}); see {log}")]
    Command {
        /// The command line.
        command: String,
        /// Its exit status.
        status: String,
        /// The log holding its output.
        log: PathBuf,
    },
    /// A manifest or lock file is not the TOML we expect.
    #[error("{path}: {message}")]
    Manifest {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// A version or version requirement does not parse.
    #[error("`{text}` is not a version: {source}")]
    Version {
        /// The text.
        text: String,
        /// The parser's reason.
        source: semver::Error,
    },
    /// A command-line argument is wrong.
    #[error("{0}")]
    Usage(String),
    /// The registry does not answer for a crate or has no such version.
    #[error("registry: {0}")]
    Registry(String),
    /// rustdoc JSON is missing or not in the expected shape.
    #[error("rustdoc JSON {path}: {message}")]
    Rustdoc {
        /// The JSON file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// The report could not be serialized.
    #[error("report: {0}")]
    Json(#[from] serde_json::Error),
}

/// Shorthand for results of this crate.
pub type Result<T, E = SyncError> = std::result::Result<T, E>;

/// Adds the path to an I/O error.
pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> SyncError {
    let path = path.into();
    move |source| SyncError::Io { path, source }
}
