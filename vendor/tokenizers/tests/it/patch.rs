//! The upstream patch in patches/ must apply cleanly to the registry source
//! of candle-core 0.10.2 (our build does not apply it; this keeps it honest).

use std::path::{Path, PathBuf};
use std::process::Command;

const PATCH: &str = "candle-core-0.10.2-gguf-tokenizer-pretokenizers.patch";

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// The host's target triple, from the rustc that cargo would run.
fn host_triple() -> String {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let output = Command::new(rustc)
        .arg("-vV")
        .output()
        .expect("run rustc -vV");
    assert!(output.status.success(), "rustc -vV failed");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .find_map(|line| line.strip_prefix("host: "))
        .expect("rustc -vV names the host")
        .to_owned()
}

/// candle-core's source directory, as cargo resolved it for this workspace.
///
/// Offline, and only for the host platform: a registry filled by building
/// here holds this platform's crates and no other's, and an unfiltered
/// `cargo metadata --offline` fails for want of (say) an Android-only crate.
fn candle_core_dir() -> PathBuf {
    let output = Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--offline",
            "--filter-platform",
        ])
        .arg(host_triple())
        .arg("--manifest-path")
        .arg(workspace_root().join("Cargo.toml"))
        .output()
        .expect("run cargo metadata");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let manifest = metadata["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "candle-core" && p["version"] == "0.10.2")
        .expect("candle-core 0.10.2 in the dependency graph")["manifest_path"]
        .as_str()
        .unwrap()
        .to_owned();
    Path::new(&manifest).parent().unwrap().to_owned()
}

#[test]
fn candle_patch_applies_cleanly_to_the_registry_source() {
    let patch = workspace_root().join("patches").join(PATCH);
    let patch_text = std::fs::read_to_string(&patch).unwrap();
    assert!(
        patch_text.contains("Offered upstream"),
        "the header says where it stands"
    );

    let source = candle_core_dir().join("src/quantized/tokenizer.rs");
    let copy = tempfile::tempdir().unwrap();
    let target = copy.path().join("src/quantized");
    std::fs::create_dir_all(&target).unwrap();
    std::fs::copy(&source, target.join("tokenizer.rs")).unwrap();

    for dry_run in [true, false] {
        let mut command = Command::new("patch");
        command
            .arg("-p1")
            .arg("--forward")
            .arg("--batch")
            .arg("-i")
            .arg(&patch)
            .arg("-d")
            .arg(copy.path());
        if dry_run {
            command.arg("--dry-run");
        }
        let output = command.output().expect("run patch");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "patch failed:\n{stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            !stdout.contains("offset") && !stdout.contains("fuzz"),
            "applies exactly: {stdout}"
        );
    }
    let patched = std::fs::read_to_string(target.join("tokenizer.rs")).unwrap();
    assert!(patched.contains("\"smollm\""));
    assert!(patched.contains("tokenizer.ggml.unknown_token_id"));
}

/// What the patch is for: candle-core 0.10.2's own builder, on the SmolLM2
/// GGUF, disagrees with the reference ids (digit split lost, and a space put
/// before the text), where ours agrees (tests in `smollm`).
#[test]
fn unpatched_candle_builder_gets_smollm_wrong() {
    use candle_core::quantized::tokenizer::TokenizerFromGguf;
    let candle = tokenizers::Tokenizer::from_gguf(crate::smollm_content()).unwrap();
    let mut wrong = 0;
    for case in &crate::fixture().cases {
        let ids = candle
            .encode(case.text.as_str(), false)
            .unwrap()
            .get_ids()
            .to_vec();
        if ids != case.ids {
            wrong += 1;
        }
    }
    assert_eq!(
        wrong,
        43,
        "of {} fixture strings",
        crate::fixture().cases.len()
    );
    // ByteLevel::default() adds a prefix space.
    assert_eq!(
        candle.encode("Hello", false).unwrap().get_tokens(),
        ["ĠHello"]
    );
}
