//! Tektra: local models from the Hub to tokens. The library side of the
//! app crate wires the stages (download, load, generate) into one
//! [`runtime::Runtime`] and one progress stream; the `tektra` binary is flag
//! parsing over it.

pub mod runtime;

pub use hf_hub;
pub use tektra_inference as inference;
pub use tektra_progress as progress;
