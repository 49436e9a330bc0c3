//! Hostile safetensors headers and shard indexes: each defect ends in its
//! typed error naming the file and the tensor.

use std::path::{Path, PathBuf};

use tektra_candle::safetensors::SafetensorsHeader;
use tektra_candle::{Error, HeaderError, LoadOptions, ModelFiles, load};
use tokio_util::sync::CancellationToken;

use crate::common::{St, noise, raw_safetensors, safetensors_bytes, write};

fn valid_tensors() -> Vec<St<'static>> {
    vec![
        St {
            name: "w",
            dtype: "F32",
            shape: vec![2, 3],
            data: noise(24, 1),
        },
        St {
            name: "b",
            dtype: "BF16",
            shape: vec![3],
            data: noise(6, 2),
        },
    ]
}

fn try_load(path: &Path) -> Result<tektra_candle::LoadedModel, Error> {
    load(
        path,
        &LoadOptions::default(),
        tektra_progress::silent(),
        &CancellationToken::new(),
    )
}

/// Writes `bytes`, loads, and returns the header error after checking the
/// error names the file.
fn header_error(bytes: &[u8]) -> HeaderError {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    write(&path, bytes);
    let err = try_load(&path).expect_err("malformed file must not load");
    assert_eq!(err.path(), Some(path.as_path()), "{err}");
    assert!(err.to_string().contains("model.safetensors"), "{err}");
    match err {
        Error::Header { source, .. } => source,
        other => panic!("expected a header error, got {other:?}"),
    }
}

fn entry(name: &str, dtype: &str, shape: &str, begin: u64, end: u64) -> String {
    format!(r#""{name}":{{"dtype":"{dtype}","shape":{shape},"data_offsets":[{begin},{end}]}}"#)
}

#[test]
fn valid_base_file_loads() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ok.safetensors");
    write(&path, &safetensors_bytes(&valid_tensors(), 0));
    assert_eq!(try_load(&path).unwrap().report.tensors, 2);
}

#[test]
fn header_length_past_end_of_file() {
    let mut bytes = safetensors_bytes(&valid_tensors(), 0);
    let too_long = bytes.len() as u64;
    bytes[..8].copy_from_slice(&too_long.to_le_bytes());
    let err = header_error(&bytes);
    assert!(
        matches!(err, HeaderError::LengthPastEnd { len, .. } if len == too_long),
        "{err:?}"
    );
    bytes[..8].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(matches!(
        header_error(&bytes),
        HeaderError::HeaderTooLarge { .. }
    ));
}

#[test]
fn offsets_out_of_range() {
    // End past the data, and end before begin.
    for (begin, end) in [(0, 1000), (24, 12), (u64::MAX - 1, u64::MAX)] {
        let json = format!(
            "{{{},{}}}",
            entry("w", "F32", "[2,3]", 0, 24),
            entry("b", "BF16", "[3]", begin, end)
        );
        let err = header_error(&raw_safetensors(&json, &noise(30, 3)));
        assert!(
            matches!(err, HeaderError::OutOfRange { .. }),
            "{begin}..{end}: {err:?}"
        );
        assert_eq!(err.tensor(), Some("b"));
    }
}

#[test]
fn overlapping_offsets() {
    let json = format!(
        "{{{},{}}}",
        entry("w", "F32", "[2,3]", 0, 24),
        entry("b", "BF16", "[3]", 20, 26)
    );
    let err = header_error(&raw_safetensors(&json, &noise(30, 3)));
    let HeaderError::Overlap { tensor, other } = &err else {
        panic!("{err:?}")
    };
    assert_eq!((tensor.as_str(), other.as_str()), ("b", "w"));
}

#[test]
fn unknown_dtype() {
    let json = format!("{{{}}}", entry("w", "F33", "[2,3]", 0, 24));
    let err = header_error(&raw_safetensors(&json, &noise(24, 3)));
    assert!(
        matches!(err, HeaderError::UnknownDtype { ref dtype, .. } if dtype == "F33"),
        "{err:?}"
    );
    assert_eq!(err.tensor(), Some("w"));
}

#[test]
fn shape_not_matching_its_bytes() {
    let json = format!("{{{}}}", entry("w", "F32", "[2,4]", 0, 24));
    let err = header_error(&raw_safetensors(&json, &noise(24, 3)));
    assert!(
        matches!(
            err,
            HeaderError::ShapeMismatch {
                expected: 32,
                actual: 24,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.tensor(), Some("w"));
    let json = format!(
        "{{{}}}",
        entry("w", "F32", "[4294967296,4294967296,16]", 0, 24)
    );
    let err = header_error(&raw_safetensors(&json, &noise(24, 3)));
    assert!(matches!(err, HeaderError::ShapeOverflow { .. }), "{err:?}");
    assert_eq!(err.tensor(), Some("w"));
}

#[test]
fn truncated_file() {
    let bytes = safetensors_bytes(&valid_tensors(), 0);
    for cut in 0..bytes.len() {
        let err = SafetensorsHeader::parse(&bytes[..cut]).expect_err("a cut file is invalid");
        assert!(
            matches!(
                err,
                HeaderError::Truncated { .. }
                    | HeaderError::LengthPastEnd { .. }
                    | HeaderError::OutOfRange { .. }
            ),
            "cut at {cut}: {err:?}"
        );
    }
    assert!(matches!(
        header_error(&bytes[..5]),
        HeaderError::Truncated {
            needed: 8,
            file_len: 5,
            ..
        }
    ));
    assert!(matches!(
        header_error(&bytes[..20]),
        HeaderError::LengthPastEnd { .. }
    ));
    // Cut in the data: the tensor that no longer fits is named.
    let err = header_error(&bytes[..bytes.len() - 1]);
    assert!(matches!(err, HeaderError::OutOfRange { .. }), "{err:?}");
    assert_eq!(err.tensor(), Some("b"));
}

#[test]
fn malformed_json_entries_and_metadata() {
    assert!(matches!(
        header_error(&raw_safetensors("{not json", &[])),
        HeaderError::Json(_)
    ));
    assert!(matches!(
        header_error(&raw_safetensors("[1,2]", &[])),
        HeaderError::Json(_)
    ));
    let err = header_error(&raw_safetensors(
        r#"{"w":{"dtype":"F32","shape":[1]}}"#,
        &[0; 4],
    ));
    assert!(
        matches!(err, HeaderError::Entry { ref tensor, .. } if tensor == "w"),
        "{err:?}"
    );
    let err = header_error(&raw_safetensors(r#"{"__metadata__":{"a":1}}"#, &[]));
    assert!(matches!(err, HeaderError::Metadata(_)), "{err:?}");
    let json = format!(
        "{{{},{}}}",
        entry("w", "F32", "[1]", 0, 4),
        entry("w", "F32", "[1]", 4, 8)
    );
    let err = header_error(&raw_safetensors(&json, &[0; 8]));
    assert!(
        matches!(err, HeaderError::DuplicateTensor { ref tensor } if tensor == "w"),
        "{err:?}"
    );
    // Nesting deeper than serde_json's recursion limit is an error, not a stack overflow.
    let deep = format!("{{\"w\":{}{}}}", "[".repeat(100_000), "]".repeat(100_000));
    assert!(matches!(
        header_error(&raw_safetensors(&deep, &[])),
        HeaderError::Entry { .. } | HeaderError::Json(_)
    ));
}

#[test]
fn valid_dtype_candle_cannot_hold_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("i8.safetensors");
    let tensors = vec![St {
        name: "q",
        dtype: "I8",
        shape: vec![4],
        data: vec![1, 2, 3, 4],
    }];
    write(&path, &safetensors_bytes(&tensors, 0));
    let err = try_load(&path).err().unwrap();
    assert!(
        matches!(err, Error::UnsupportedDtype { ref tensor, ref dtype, .. } if tensor == "q" && dtype == "I8"),
        "{err:?}"
    );
    assert_eq!(err.path(), Some(path.as_path()));
}

fn two_shards(dir: &Path) -> (PathBuf, PathBuf) {
    let a = dir.join("model-00001-of-00002.safetensors");
    let b = dir.join("model-00002-of-00002.safetensors");
    write(
        &a,
        &safetensors_bytes(
            &[St {
                name: "x",
                dtype: "F32",
                shape: vec![1],
                data: vec![0; 4],
            }],
            0,
        ),
    );
    write(
        &b,
        &safetensors_bytes(
            &[St {
                name: "y",
                dtype: "F32",
                shape: vec![1],
                data: vec![0; 4],
            }],
            0,
        ),
    );
    (a, b)
}

fn write_index(dir: &Path, map: &str) -> PathBuf {
    let index = dir.join("model.safetensors.index.json");
    write(
        &index,
        format!(r#"{{"metadata":{{"total_size":8}},"weight_map":{map}}}"#).as_bytes(),
    );
    index
}

#[test]
fn index_naming_files_outside_its_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    two_shards(dir.path());
    for bad in ["../model-00001-of-00002.safetensors", "/etc/passwd", ""] {
        let index = write_index(dir.path(), &format!(r#"{{"x":"{bad}"}}"#));
        let err = ModelFiles::resolve(dir.path()).unwrap_err();
        assert!(
            matches!(err, Error::IndexBadShard { ref shard, .. } if shard == bad),
            "{err:?}"
        );
        assert_eq!(err.path(), Some(index.as_path()));
    }
}

#[test]
fn index_that_misplaces_a_tensor_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (_, b) = two_shards(dir.path());
    write_index(
        dir.path(),
        r#"{"x":"model-00001-of-00002.safetensors","z":"model-00002-of-00002.safetensors"}"#,
    );
    let err = ModelFiles::resolve(dir.path()).unwrap_err();
    assert!(
        matches!(err, Error::IndexMissingTensor { ref tensor, ref shard, .. } if tensor == "z" && *shard == b),
        "{err:?}"
    );
    write_index(dir.path(), r#"{"x": 3}"#);
    assert!(matches!(
        ModelFiles::resolve(dir.path()).unwrap_err(),
        Error::IndexJson { .. }
    ));
}

#[test]
fn tensor_in_two_shards_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = two_shards(dir.path());
    write(
        &b,
        &safetensors_bytes(
            &[St {
                name: "x",
                dtype: "F32",
                shape: vec![1],
                data: vec![0; 4],
            }],
            0,
        ),
    );
    let err = try_load(dir.path()).err().unwrap();
    assert!(
        matches!(err, Error::DuplicateAcrossShards { ref tensor, ref first, ref second } if tensor == "x" && *first == a && *second == b),
        "{err:?}"
    );
}
