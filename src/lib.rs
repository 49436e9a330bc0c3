//! Tektra: local models from the Hub to tokens. The library side of the
//! app crate wires the stages (download, load, generate) into one runtime
//! and one progress stream; the `tektra` binary is flag parsing over it.

pub use hf_hub;
pub use tektra_progress as progress;
