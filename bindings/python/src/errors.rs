//! Python exceptions per kind of failure, all under `tektra.TektraError`.

use hf_hub::HubError;
use pyo3::prelude::*;

pyo3::create_exception!(
    tektra,
    TektraError,
    pyo3::exceptions::PyException,
    "Any failure of tektra."
);
pyo3::create_exception!(
    tektra,
    NotFoundError,
    TektraError,
    "The repo, revision or file does not exist (or is not visible with this token)."
);
pyo3::create_exception!(
    tektra,
    AuthError,
    TektraError,
    "The repo needs a token, or access was refused."
);
pyo3::create_exception!(
    tektra,
    NetworkError,
    TektraError,
    "The Hub could not be reached, or kept failing."
);
pyo3::create_exception!(
    tektra,
    IntegrityError,
    TektraError,
    "Bytes that do not match their size or hash, or a hostile answer."
);
pyo3::create_exception!(
    tektra,
    DiskError,
    TektraError,
    "The disk is full, or a file could not be written."
);
pyo3::create_exception!(
    tektra,
    CancelledError,
    TektraError,
    "Stopped by a cancel; the download resumes when asked again."
);
pyo3::create_exception!(
    tektra,
    BadInputError,
    TektraError,
    "An argument that is not valid (a repo id, a path, a glob)."
);
pyo3::create_exception!(
    tektra,
    OfflineError,
    TektraError,
    "Offline, and the cache does not hold what was asked."
);

/// A Hub error as the Python exception of its kind.
pub(crate) fn hub_error(e: HubError) -> PyErr {
    let text = e.to_string();
    match e {
        HubError::Cancelled => CancelledError::new_err(text),
        HubError::RepoNotFound { .. }
        | HubError::RevisionNotFound { .. }
        | HubError::EntryNotFound { .. } => NotFoundError::new_err(text),
        HubError::GatedRepo { .. } => AuthError::new_err(text),
        HubError::Http {
            status: 401 | 403, ..
        } => AuthError::new_err(text),
        HubError::Transport { .. }
        | HubError::Stalled { .. }
        | HubError::TooManyRetries { .. }
        | HubError::RetryAfterTooLong { .. }
        | HubError::Http { .. } => NetworkError::new_err(text),
        HubError::HashMismatch { .. }
        | HubError::WrongSize { .. }
        | HubError::HostileAnswer { .. }
        | HubError::Protocol { .. }
        | HubError::OverLimit { .. } => IntegrityError::new_err(text),
        HubError::Io { .. } | HubError::DiskFull { .. } | HubError::LockTimeout { .. } => {
            DiskError::new_err(text)
        }
        HubError::InvalidArgument { .. } | HubError::InvalidOption { .. } => {
            BadInputError::new_err(text)
        }
        HubError::NotCached { .. } => OfflineError::new_err(text),
        _ => TektraError::new_err(text),
    }
}

/// A cache error as the Python exception of its kind.
pub(crate) fn cache_error(e: tektra_cache::CacheError) -> PyErr {
    use tektra_cache::CacheError as E;
    let text = e.to_string();
    match e {
        E::NotFound(_) | E::UnknownRepo(_) | E::UnknownRevision { .. } => {
            NotFoundError::new_err(text)
        }
        E::Cancelled => CancelledError::new_err(text),
        E::Io { .. } | E::Locked(_) => DiskError::new_err(text),
        _ => BadInputError::new_err(text),
    }
}

/// An engine error as the Python exception of its kind.
pub(crate) fn engine_error(e: tektra_inference::Error) -> PyErr {
    use tektra_inference::Error as E;
    match e {
        E::Hub(hub) => hub_error(*hub),
        E::Cancelled => CancelledError::new_err("cancelled"),
        E::BadReference { .. } | E::Sampling(_) | E::ContextOverflow { .. } => {
            BadInputError::new_err(e.to_string())
        }
        other => TektraError::new_err(other.to_string()),
    }
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("TektraError", py.get_type::<TektraError>())?;
    m.add("NotFoundError", py.get_type::<NotFoundError>())?;
    m.add("AuthError", py.get_type::<AuthError>())?;
    m.add("NetworkError", py.get_type::<NetworkError>())?;
    m.add("IntegrityError", py.get_type::<IntegrityError>())?;
    m.add("DiskError", py.get_type::<DiskError>())?;
    m.add("CancelledError", py.get_type::<CancelledError>())?;
    m.add("BadInputError", py.get_type::<BadInputError>())?;
    m.add("OfflineError", py.get_type::<OfflineError>())?;
    Ok(())
}
