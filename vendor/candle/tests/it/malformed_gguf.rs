//! Hostile GGUF headers: each defect ends in its typed error, naming the
//! file and the tensor, never in a panic or a huge allocation.

use std::path::PathBuf;

use tektra_candle::gguf::GgufHeader;
use tektra_candle::{Error, HeaderError, LoadOptions, load};
use tokio_util::sync::CancellationToken;

use crate::common::{Kv, Ti, gguf_bytes, noise};

const F32: u32 = 0;
const Q8_0: u32 = 8;

fn tensors() -> Vec<Ti<'static>> {
    vec![
        Ti {
            name: "a",
            dims: vec![8],
            ggml_type: F32,
            offset: 0,
        },
        // One Q8_0 block: 32 elements in 34 bytes.
        Ti {
            name: "b",
            dims: vec![32],
            ggml_type: Q8_0,
            offset: 32,
        },
    ]
}

fn kvs() -> Vec<(&'static str, Kv)> {
    vec![
        ("general.architecture", Kv::Str("llama".into())),
        ("general.alignment", Kv::U32(32)),
    ]
}

fn data() -> Vec<u8> {
    noise(66, 1)
}

fn valid() -> Vec<u8> {
    gguf_bytes(&kvs(), &tensors(), &data())
}

/// Loads `bytes` from a file and returns the header error, checking that
/// the error names the file.
fn header_error(bytes: &[u8]) -> (HeaderError, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.gguf");
    std::fs::write(&path, bytes).unwrap();
    let err = load(
        &path,
        &LoadOptions::default(),
        tektra_progress::silent(),
        &CancellationToken::new(),
    )
    .expect_err("malformed file must not load");
    assert_eq!(err.path(), Some(path.as_path()), "{err}");
    assert!(err.to_string().contains("model.gguf"), "{err}");
    match err {
        Error::Header { source, path } => (source, path),
        other => panic!("expected a header error, got {other:?}"),
    }
}

fn assert_names(err: &HeaderError, tensor: &str) {
    assert_eq!(err.tensor(), Some(tensor), "{err:?}");
}

#[test]
fn valid_base_file_loads() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ok.gguf");
    std::fs::write(&path, valid()).unwrap();
    let model = load(
        &path,
        &LoadOptions::default(),
        tektra_progress::silent(),
        &CancellationToken::new(),
    )
    .unwrap();
    assert_eq!(model.report.tensors, 2);
    assert_eq!(model.report.bytes, 66);
}

#[test]
fn string_length_past_end_of_file() {
    let mut payload = (u64::MAX / 2).to_le_bytes().to_vec();
    payload.extend_from_slice(b"short");
    let kvs = vec![("general.name", Kv::Raw(8, payload))];
    let (err, _) = header_error(&gguf_bytes(&kvs, &tensors(), &data()));
    let HeaderError::LengthPastEnd { what, len, .. } = err else {
        panic!("{err:?}")
    };
    assert!(what.contains("general.name"), "{what}");
    assert_eq!(len, u64::MAX / 2);
}

#[test]
fn array_count_past_end_of_file() {
    let mut payload = 0u32.to_le_bytes().to_vec(); // u8 elements
    payload.extend_from_slice(&(1u64 << 50).to_le_bytes());
    let kvs = vec![("tokenizer.ggml.scores", Kv::Raw(9, payload))];
    let (err, _) = header_error(&gguf_bytes(&kvs, &tensors(), &data()));
    let HeaderError::LengthPastEnd { what, .. } = err else {
        panic!("{err:?}")
    };
    assert!(what.contains("tokenizer.ggml.scores"), "{what}");
}

#[test]
fn tensor_count_past_end_of_file() {
    let mut bytes = valid();
    bytes[8..16].copy_from_slice(&(1u64 << 40).to_le_bytes());
    let (err, _) = header_error(&bytes);
    assert!(
        matches!(err, HeaderError::LengthPastEnd { ref what, .. } if what == "tensor count"),
        "{err:?}"
    );
}

#[test]
fn offset_out_of_range() {
    for offset in [1 << 20, u64::MAX - 8, 64] {
        let mut t = tensors();
        t[1].offset = offset;
        let (err, _) = header_error(&gguf_bytes(&kvs(), &t, &data()));
        assert!(
            matches!(err, HeaderError::OutOfRange { .. }),
            "{offset}: {err:?}"
        );
        assert_names(&err, "b");
    }
}

#[test]
fn overlapping_tensors() {
    let mut t = tensors();
    t[1].offset = 16;
    let (err, _) = header_error(&gguf_bytes(&kvs(), &t, &data()));
    let HeaderError::Overlap { tensor, other } = &err else {
        panic!("{err:?}")
    };
    assert_eq!((tensor.as_str(), other.as_str()), ("b", "a"));
}

#[test]
fn unknown_ggml_type() {
    let mut t = tensors();
    t[1].ggml_type = 99;
    let (err, _) = header_error(&gguf_bytes(&kvs(), &t, &data()));
    assert!(
        matches!(err, HeaderError::UnknownDtype { ref dtype, .. } if dtype.contains("99")),
        "{err:?}"
    );
    assert_names(&err, "b");
}

#[test]
fn shape_not_matching_blocks_or_bytes() {
    // 33 elements are not a whole Q8_0 block.
    let mut t = tensors();
    t[1].dims = vec![33];
    let (err, _) = header_error(&gguf_bytes(&kvs(), &t, &data()));
    assert!(
        matches!(
            err,
            HeaderError::PartialBlock {
                elements: 33,
                block: 32,
                ..
            }
        ),
        "{err:?}"
    );
    assert_names(&err, "b");
    // A shape whose bytes run past the data.
    let mut t = tensors();
    t[1].dims = vec![32 * 4];
    let (err, _) = header_error(&gguf_bytes(&kvs(), &t, &data()));
    assert!(matches!(err, HeaderError::OutOfRange { .. }), "{err:?}");
    assert_names(&err, "b");
    // A shape whose element count overflows.
    let mut t = tensors();
    t[0].dims = vec![u64::MAX, 2];
    let (err, _) = header_error(&gguf_bytes(&kvs(), &t, &data()));
    assert!(matches!(err, HeaderError::ShapeOverflow { .. }), "{err:?}");
    assert_names(&err, "a");
    // More dimensions than GGML has.
    let mut t = tensors();
    t[0].dims = vec![2, 2, 2, 1, 1];
    let (err, _) = header_error(&gguf_bytes(&kvs(), &t, &data()));
    assert!(
        matches!(err, HeaderError::TooManyDims { dims: 5, .. }),
        "{err:?}"
    );
    assert_names(&err, "a");
}

#[test]
fn shape_candle_cannot_quantize_is_a_named_error() {
    // Valid bytes, but the innermost dimension (1) is not a whole block.
    let mut t = tensors();
    t[1].dims = vec![1, 32];
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("odd.gguf");
    std::fs::write(&path, gguf_bytes(&kvs(), &t, &data())).unwrap();
    let err = load(
        &path,
        &LoadOptions::default(),
        tektra_progress::silent(),
        &CancellationToken::new(),
    )
    .unwrap_err();
    assert!(
        matches!(err, Error::Candle { ref tensor, .. } if tensor == "b"),
        "{err:?}"
    );
    assert_eq!(err.path(), Some(path.as_path()));
}

#[test]
fn truncated_at_every_length() {
    let bytes = valid();
    for cut in 0..bytes.len() {
        let err = GgufHeader::parse(&bytes[..cut]).expect_err("a cut file is invalid");
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
    // Cut inside the data: the last tensor no longer fits, by name.
    let (err, _) = header_error(&bytes[..bytes.len() - 1]);
    assert!(matches!(err, HeaderError::OutOfRange { .. }), "{err:?}");
    assert_names(&err, "b");
    // Cut inside the tensor infos: the table no longer fits, so the count
    // is refused before anything is allocated for it.
    let name_at = bytes
        .windows(9)
        .position(|w| w == [1, 0, 0, 0, 0, 0, 0, 0, b'b'])
        .unwrap();
    let (err, _) = header_error(&bytes[..name_at + 12]);
    assert!(
        matches!(err, HeaderError::LengthPastEnd { ref what, len: 2, .. } if what == "tensor count"),
        "{err:?}"
    );
}

#[test]
fn bad_magic_version_alignment_and_value_types() {
    let mut bytes = valid();
    bytes[0] = b'X';
    assert!(matches!(
        header_error(&bytes).0,
        HeaderError::BadMagic { .. }
    ));
    let mut bytes = valid();
    bytes[4..8].copy_from_slice(&7u32.to_le_bytes());
    assert!(matches!(
        header_error(&bytes).0,
        HeaderError::UnsupportedVersion { version: 7 }
    ));
    for alignment in [0, 3, 48] {
        let kvs = vec![("general.alignment", Kv::U32(alignment))];
        let (err, _) = header_error(&gguf_bytes(&kvs, &tensors(), &data()));
        assert!(
            matches!(err, HeaderError::BadAlignment { alignment: a } if a == u64::from(alignment)),
            "{err:?}"
        );
    }
    let kvs = vec![("odd", Kv::Raw(77, vec![0; 8]))];
    let (err, _) = header_error(&gguf_bytes(&kvs, &tensors(), &data()));
    assert!(
        matches!(err, HeaderError::UnknownValueType { value_type: 77, ref key } if key == "odd"),
        "{err:?}"
    );
}

#[test]
fn deeply_nested_arrays_are_refused() {
    // Arrays of one array, five levels deep, ending in one u8.
    let mut payload = Vec::new();
    for _ in 0..5 {
        payload.extend_from_slice(&9u32.to_le_bytes());
        payload.extend_from_slice(&1u64.to_le_bytes());
    }
    payload.extend_from_slice(&0u32.to_le_bytes());
    payload.extend_from_slice(&1u64.to_le_bytes());
    payload.push(7);
    let kvs = vec![("nested", Kv::Raw(9, payload))];
    let (err, _) = header_error(&gguf_bytes(&kvs, &tensors(), &data()));
    assert!(matches!(err, HeaderError::TooDeep { .. }), "{err:?}");
}

#[test]
fn duplicate_tensor_names() {
    let mut t = tensors();
    t[1].name = "a";
    let (err, _) = header_error(&gguf_bytes(&kvs(), &t, &data()));
    assert!(
        matches!(err, HeaderError::DuplicateTensor { .. }),
        "{err:?}"
    );
    assert_names(&err, "a");
}

#[test]
fn random_corruption_never_panics() {
    let base = valid();
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..20_000 {
        let mut bytes = base.clone();
        for _ in 0..(next() % 4 + 1) {
            let at = (next() as usize) % bytes.len();
            bytes[at] = next() as u8;
        }
        let _ = GgufHeader::parse(&bytes);
    }
    // Strings that are not UTF-8 and padded with NULs are read leniently.
    let kvs = vec![(
        "general.name",
        Kv::Raw(8, [&5u64.to_le_bytes()[..], b"\xffab\0\0"].concat()),
    )];
    let header = GgufHeader::parse(&gguf_bytes(&kvs, &tensors(), &data())).unwrap();
    assert_eq!(
        header.metadata["general.name"].to_string().unwrap(),
        "\u{fffd}ab"
    );
}
