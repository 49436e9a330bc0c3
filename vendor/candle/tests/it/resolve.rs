//! Finding a model's weight files from a path.

use tektra_candle::{Error, ModelFiles, ModelFormat};

use crate::common::{St, safetensors_bytes, write};

fn tiny() -> Vec<u8> {
    safetensors_bytes(
        &[St {
            name: "x",
            dtype: "F32",
            shape: vec![1],
            data: vec![0; 4],
        }],
        0,
    )
}

#[test]
fn files_by_extension() {
    let dir = tempfile::tempdir().unwrap();
    let st = dir.path().join("a.safetensors");
    write(&st, &tiny());
    let found = ModelFiles::resolve(&st).unwrap();
    assert_eq!(
        (found.format, found.files, found.index),
        (ModelFormat::Safetensors, vec![st.clone()], None)
    );
    let gguf = tektra_testdata::smollm2_gguf();
    assert_eq!(
        ModelFiles::resolve(&gguf).unwrap().format,
        ModelFormat::Gguf
    );
    let other = dir.path().join("notes.txt");
    write(&other, b"hi");
    assert!(matches!(
        ModelFiles::resolve(&other),
        Err(Error::NoWeights { .. })
    ));
    let missing = dir.path().join("missing.safetensors");
    assert!(matches!(
        ModelFiles::resolve(&missing),
        Err(Error::Open { .. })
    ));
}

#[test]
fn directories_prefer_the_index_then_safetensors_then_one_gguf() {
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(
        ModelFiles::resolve(dir.path()),
        Err(Error::NoWeights { .. })
    ));
    write(&dir.path().join("a.gguf"), b"GGUF");
    assert_eq!(
        ModelFiles::resolve(dir.path()).unwrap().format,
        ModelFormat::Gguf
    );
    write(&dir.path().join("b.gguf"), b"GGUF");
    assert!(matches!(
        ModelFiles::resolve(dir.path()),
        Err(Error::NoWeights { .. })
    ));
    write(&dir.path().join("z.safetensors"), &tiny());
    write(&dir.path().join("y.safetensors"), &tiny());
    let found = ModelFiles::resolve(dir.path()).unwrap();
    assert_eq!(
        found.files,
        vec![
            dir.path().join("y.safetensors"),
            dir.path().join("z.safetensors")
        ]
    );
    let index = dir.path().join("model.safetensors.index.json");
    write(&index, br#"{"weight_map":{"x":"z.safetensors"}}"#);
    let found = ModelFiles::resolve(dir.path()).unwrap();
    assert_eq!(found.files, vec![dir.path().join("z.safetensors")]);
    assert_eq!(found.index, Some(index.clone()));
    assert_eq!(ModelFiles::resolve(&index).unwrap().files, found.files);
}
