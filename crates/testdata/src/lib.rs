//! Paths to the data that `scripts/setup` prepares for tests: the SmolLM2
//! test model and the Python venv with the cross-check packages.
//!
//! These functions panic with the command to run when the data is missing:
//! a test that needs the model fails loudly instead of skipping.
#![allow(clippy::panic)]

use std::path::PathBuf;

mod s3;
pub use s3::{ACCESS_KEY, S3Server, SECRET_KEY, s3_server_binary};

/// sha256 of `SmolLM2-135M-Instruct.Q4_1.gguf` (design.md).
pub const SMOLLM2_SHA256: &str = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53";

fn data_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("TEKTRA_DATA") {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
    home.join(".cache").join("tektra")
}

/// The SmolLM2-135M-Instruct Q4_1 GGUF file.
///
/// # Panics
/// When the file is missing: run `scripts/setup` (or `scripts/fetch-test-model`).
#[must_use]
pub fn smollm2_gguf() -> PathBuf {
    let path = std::env::var_os("TEKTRA_TEST_MODEL").map_or_else(
        || {
            data_dir()
                .join("models")
                .join("SmolLM2-135M-Instruct.Q4_1.gguf")
        },
        PathBuf::from,
    );
    assert!(
        path.is_file(),
        "test model missing at {}: run scripts/fetch-test-model (scripts/setup does it)",
        path.display()
    );
    path
}

/// The Python interpreter of the test venv (with huggingface_hub installed).
///
/// # Panics
/// When the venv is missing: run `scripts/setup`.
#[must_use]
pub fn python() -> PathBuf {
    let path = std::env::var_os("TEKTRA_PYTHON").map_or_else(
        || data_dir().join("venv").join("bin").join("python"),
        PathBuf::from,
    );
    assert!(
        path.is_file(),
        "test Python missing at {}: run scripts/setup",
        path.display()
    );
    path
}

/// A real model of another architecture, fetched by `scripts/fetch-models`.
fn extra_model(file: &str) -> PathBuf {
    let path = data_dir().join("models").join(file);
    assert!(
        path.is_file(),
        "test model missing at {}: run scripts/fetch-models (scripts/setup does it)",
        path.display()
    );
    path
}

/// Gemma 3 270M (base), Q4_K_M: the `gemma3` architecture.
///
/// # Panics
/// When the file is missing: run `scripts/setup` (or `scripts/fetch-models`).
#[must_use]
pub fn gemma3_gguf() -> PathBuf {
    extra_model("gemma-3-270m-Q4_K_M.gguf")
}

/// Qwen2.5-Coder-0.5B-Instruct, Q4_K_M: the `qwen2` architecture.
///
/// # Panics
/// When the file is missing: run `scripts/setup` (or `scripts/fetch-models`).
#[must_use]
pub fn qwen2_gguf() -> PathBuf {
    extra_model("Qwen2.5-Coder-0.5B-Instruct-AWQ.Q4_K_M.gguf")
}
