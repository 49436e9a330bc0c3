//! The safetensors header: parsed and validated here, not trusted.
//!
//! Layout (the format's facts): 8 bytes little-endian header length `n`,
//! then `n` bytes of JSON mapping each tensor name to `{dtype, shape,
//! data_offsets: [begin, end]}` (offsets relative to the byte after the
//! header) plus an optional `__metadata__` map of strings; then the data.

use std::collections::{HashMap, HashSet};
use std::fmt;

use candle_core::DType;
use serde::Deserialize;
use serde::de::{MapAccess, Visitor};

use crate::error::HeaderError;

/// Largest header accepted. Real headers are a few hundred kilobytes; the
/// reference implementation refuses above the same figure.
pub const MAX_HEADER_LEN: u64 = 100 * 1024 * 1024;

/// A safetensors element type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StDtype {
    /// `BOOL`, one byte.
    Bool,
    /// `U8`.
    U8,
    /// `I8`.
    I8,
    /// `F8_E5M2`.
    F8E5M2,
    /// `F8_E4M3`.
    F8E4M3,
    /// `I16`.
    I16,
    /// `U16`.
    U16,
    /// `F16`.
    F16,
    /// `BF16`.
    BF16,
    /// `I32`.
    I32,
    /// `U32`.
    U32,
    /// `F32`.
    F32,
    /// `F64`.
    F64,
    /// `I64`.
    I64,
    /// `U64`.
    U64,
}

impl StDtype {
    /// Parses the name used in headers (`"BF16"`, ...).
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "BOOL" => StDtype::Bool,
            "U8" => StDtype::U8,
            "I8" => StDtype::I8,
            "F8_E5M2" => StDtype::F8E5M2,
            "F8_E4M3" => StDtype::F8E4M3,
            "I16" => StDtype::I16,
            "U16" => StDtype::U16,
            "F16" => StDtype::F16,
            "BF16" => StDtype::BF16,
            "I32" => StDtype::I32,
            "U32" => StDtype::U32,
            "F32" => StDtype::F32,
            "F64" => StDtype::F64,
            "I64" => StDtype::I64,
            "U64" => StDtype::U64,
            _ => return None,
        })
    }

    /// The name used in headers.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            StDtype::Bool => "BOOL",
            StDtype::U8 => "U8",
            StDtype::I8 => "I8",
            StDtype::F8E5M2 => "F8_E5M2",
            StDtype::F8E4M3 => "F8_E4M3",
            StDtype::I16 => "I16",
            StDtype::U16 => "U16",
            StDtype::F16 => "F16",
            StDtype::BF16 => "BF16",
            StDtype::I32 => "I32",
            StDtype::U32 => "U32",
            StDtype::F32 => "F32",
            StDtype::F64 => "F64",
            StDtype::I64 => "I64",
            StDtype::U64 => "U64",
        }
    }

    /// Bytes per element.
    #[must_use]
    pub fn size(self) -> u64 {
        match self {
            StDtype::Bool | StDtype::U8 | StDtype::I8 | StDtype::F8E5M2 | StDtype::F8E4M3 => 1,
            StDtype::I16 | StDtype::U16 | StDtype::F16 | StDtype::BF16 => 2,
            StDtype::I32 | StDtype::U32 | StDtype::F32 => 4,
            StDtype::F64 | StDtype::I64 | StDtype::U64 => 8,
        }
    }

    /// The candle dtype holding these elements unchanged, if candle has one.
    #[must_use]
    pub fn candle(self) -> Option<DType> {
        Some(match self {
            StDtype::U8 => DType::U8,
            StDtype::F8E4M3 => DType::F8E4M3,
            StDtype::I16 => DType::I16,
            StDtype::F16 => DType::F16,
            StDtype::BF16 => DType::BF16,
            StDtype::I32 => DType::I32,
            StDtype::U32 => DType::U32,
            StDtype::F32 => DType::F32,
            StDtype::F64 => DType::F64,
            StDtype::I64 => DType::I64,
            StDtype::Bool | StDtype::I8 | StDtype::F8E5M2 | StDtype::U16 | StDtype::U64 => {
                return None;
            }
        })
    }
}

impl fmt::Display for StDtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One tensor of a validated header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorEntry {
    /// The tensor's name.
    pub name: String,
    /// Its element type.
    pub dtype: StDtype,
    /// Its shape, outermost dimension first.
    pub shape: Vec<usize>,
    /// Absolute offset of its first byte in the file.
    pub offset: u64,
    /// Its length in bytes (`elements * dtype.size()`).
    pub len: u64,
}

/// A validated safetensors header: every tensor's bytes lie inside the
/// file, match its shape and dtype, and overlap no other tensor's.
#[derive(Debug, Clone, Default)]
pub struct SafetensorsHeader {
    /// Absolute offset of the data area (`8 + header length`).
    pub data_start: u64,
    /// The tensors, in the order of their data.
    pub tensors: Vec<TensorEntry>,
    /// The `__metadata__` map, empty when absent.
    pub metadata: HashMap<String, String>,
}

#[derive(Deserialize)]
struct RawEntry {
    dtype: String,
    shape: Vec<u64>,
    data_offsets: (u64, u64),
}

/// The header's top-level object as (key, value) pairs in file order, so
/// duplicate keys are seen instead of silently overwritten.
struct Entries(Vec<(String, serde_json::Value)>);

impl<'de> Deserialize<'de> for Entries {
    fn deserialize<D: serde::Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Entries;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object of tensor entries")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entries, A::Error> {
                let mut out = Vec::new();
                while let Some(pair) = map.next_entry::<String, serde_json::Value>()? {
                    out.push(pair);
                }
                Ok(Entries(out))
            }
        }
        de.deserialize_map(V)
    }
}

impl SafetensorsHeader {
    /// Parses and validates the header of a safetensors file whose whole
    /// contents are `file`.
    ///
    /// ```
    /// use tektra_candle::safetensors::SafetensorsHeader;
    /// let json = br#"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#;
    /// let mut file = (json.len() as u64).to_le_bytes().to_vec();
    /// file.extend_from_slice(json);
    /// file.extend_from_slice(&[0; 8]);
    /// let header = SafetensorsHeader::parse(&file).unwrap();
    /// assert_eq!(header.tensors[0].shape, [2]);
    /// file.truncate(file.len() - 1);
    /// assert!(SafetensorsHeader::parse(&file).is_err());
    /// ```
    ///
    /// # Errors
    /// A [`HeaderError`] naming the tensor at fault.
    pub fn parse(file: &[u8]) -> Result<Self, HeaderError> {
        let file_len = file.len() as u64;
        let Some(len_bytes) = file.first_chunk::<8>() else {
            return Err(HeaderError::Truncated {
                tensor: None,
                needed: 8,
                file_len,
            });
        };
        let header_len = u64::from_le_bytes(*len_bytes);
        if header_len > MAX_HEADER_LEN {
            return Err(HeaderError::HeaderTooLarge {
                len: header_len,
                limit: MAX_HEADER_LEN,
            });
        }
        let available = file_len - 8;
        if header_len > available {
            return Err(HeaderError::LengthPastEnd {
                what: "header".into(),
                tensor: None,
                len: header_len,
                available,
            });
        }
        // Both bounds were checked against the slice just above.
        let data_start = 8 + header_len;
        let json = file
            .get(8..usize::try_from(data_start).unwrap_or(usize::MAX))
            .unwrap_or_default();
        let Entries(entries) = serde_json::from_slice(json).map_err(HeaderError::Json)?;
        let data_len = file_len - data_start;
        let mut header = SafetensorsHeader {
            data_start,
            ..SafetensorsHeader::default()
        };
        let mut seen = HashSet::new();
        for (name, value) in entries {
            if name == "__metadata__" {
                header.metadata = HashMap::deserialize(value).map_err(HeaderError::Metadata)?;
                continue;
            }
            if !seen.insert(name.clone()) {
                return Err(HeaderError::DuplicateTensor { tensor: name });
            }
            let raw = RawEntry::deserialize(value).map_err(|source| HeaderError::Entry {
                tensor: name.clone(),
                source,
            })?;
            header
                .tensors
                .push(validate_entry(name, raw, data_start, data_len)?);
        }
        check_overlaps(&mut header.tensors)?;
        Ok(header)
    }
}

fn validate_entry(
    name: String,
    raw: RawEntry,
    data_start: u64,
    data_len: u64,
) -> Result<TensorEntry, HeaderError> {
    let Some(dtype) = StDtype::from_name(&raw.dtype) else {
        return Err(HeaderError::UnknownDtype {
            tensor: name,
            dtype: raw.dtype,
        });
    };
    let (begin, end) = raw.data_offsets;
    if begin > end || end > data_len {
        return Err(HeaderError::OutOfRange {
            tensor: name,
            begin: data_start.saturating_add(begin),
            end: data_start.saturating_add(end),
            limit: data_start + data_len,
        });
    }
    let overflow = || HeaderError::ShapeOverflow {
        tensor: name.clone(),
        shape: raw.shape.clone(),
    };
    let elements = raw
        .shape
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d))
        .ok_or_else(overflow)?;
    let expected = elements.checked_mul(dtype.size()).ok_or_else(overflow)?;
    let shape = raw
        .shape
        .iter()
        .map(|&d| usize::try_from(d))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| overflow())?;
    if expected != end - begin {
        return Err(HeaderError::ShapeMismatch {
            tensor: name,
            shape: raw.shape,
            dtype: dtype.name().into(),
            expected,
            actual: end - begin,
        });
    }
    Ok(TensorEntry {
        name,
        dtype,
        shape,
        offset: data_start + begin,
        len: expected,
    })
}

/// Sorts tensors by offset and refuses any two that share a byte.
/// Empty tensors own no bytes and may sit anywhere.
pub(crate) fn check_overlaps<T: Span>(tensors: &mut [T]) -> Result<(), HeaderError> {
    tensors.sort_by_key(|t| (t.span().0, t.span().1));
    let mut last: Option<(u64, &str)> = None;
    for t in tensors.iter() {
        let (offset, len, name) = t.span();
        if len == 0 {
            continue;
        }
        if let Some((end, other)) = last
            && offset < end
        {
            return Err(HeaderError::Overlap {
                tensor: name.to_owned(),
                other: other.to_owned(),
            });
        }
        last = Some((offset + len, name));
    }
    Ok(())
}

/// Where an item's bytes lie: (absolute offset, length, name).
pub(crate) trait Span {
    fn span(&self) -> (u64, u64, &str);
}

impl Span for TensorEntry {
    fn span(&self) -> (u64, u64, &str) {
        (self.offset, self.len, &self.name)
    }
}
