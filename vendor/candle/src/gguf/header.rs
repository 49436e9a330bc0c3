//! The GGUF header and tensor-info table, parsed and validated here.
//!
//! candle's own reader trusts every count and length it reads (it allocates
//! what a length field claims and divides by the declared alignment), so
//! hostile files can abort it. This parser checks each count against the
//! bytes left before allocating, bounds nesting and the number of values,
//! and checks every tensor against the file before anything reads it. The
//! result converts into candle's [`Content`] for its quantized models.
//!
//! Layout (the format's facts): magic `GGUF`, version (1..=3), tensor count
//! and metadata count (u32 in v1, u64 after), metadata key/value pairs,
//! tensor infos (name, dimension count, dimensions innermost first, GGML
//! type, offset from the data area), then padding to `general.alignment`
//! (32 by default) and the data area.

use std::collections::{HashMap, HashSet};

use candle_core::quantized::GgmlDType;
use candle_core::quantized::gguf_file::{Content, TensorInfo, Value, VersionedMagic};

use crate::error::HeaderError;
use crate::safetensors::{Span, check_overlaps};

/// `GGUF` read as a little-endian u32.
const MAGIC: u32 = 0x4655_4747;
/// GGML tensors have at most four dimensions.
pub const MAX_DIMS: u32 = 4;
/// Arrays of arrays deeper than this are refused (no model uses any).
pub const MAX_DEPTH: u32 = 4;
/// Metadata values accepted in total. The largest vocabularies carry a few
/// million (tokens, scores, types, merges); each value costs 32 bytes of
/// memory however small it is in the file.
pub const MAX_VALUES: u64 = 1 << 24;
/// Alignment when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: u64 = 32;

/// One tensor of a validated GGUF file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GgufTensorInfo {
    /// The tensor's name.
    pub name: String,
    /// Its GGML type.
    pub dtype: GgmlDType,
    /// Its shape as candle orders it (outermost first; the file stores the
    /// innermost first).
    pub shape: Vec<usize>,
    /// Offset of its data from the start of the data area, as in the file.
    pub offset: u64,
    /// Absolute offset of its data in the file.
    pub file_offset: u64,
    /// Its length in bytes.
    pub len: u64,
}

impl Span for GgufTensorInfo {
    fn span(&self) -> (u64, u64, &str) {
        (self.file_offset, self.len, &self.name)
    }
}

/// A validated GGUF header: counts fit the file, every tensor's type is
/// known, its shape is whole blocks, and its bytes lie inside the file
/// without overlapping another's.
#[derive(Debug, Clone)]
pub struct GgufHeader {
    /// The format version (1, 2 or 3).
    pub version: u32,
    /// Metadata, as candle's values.
    pub metadata: HashMap<String, Value>,
    /// Tensors, in the order of their data.
    pub tensors: Vec<GgufTensorInfo>,
    /// The data area's alignment.
    pub alignment: u64,
    /// Absolute offset of the data area.
    pub data_start: u64,
}

impl GgufHeader {
    /// Parses and validates the header of a GGUF file whose whole contents
    /// are `file`.
    ///
    /// ```
    /// use tektra_candle::gguf::GgufHeader;
    /// let mut file = b"GGUF".to_vec();
    /// file.extend_from_slice(&3u32.to_le_bytes());
    /// file.extend_from_slice(&0u64.to_le_bytes()); // tensors
    /// file.extend_from_slice(&0u64.to_le_bytes()); // metadata
    /// assert!(GgufHeader::parse(&file).unwrap().tensors.is_empty());
    /// // A metadata count no file of this size can hold:
    /// file[16..24].copy_from_slice(&u64::MAX.to_le_bytes());
    /// assert!(GgufHeader::parse(&file).is_err());
    /// ```
    ///
    /// # Errors
    /// A [`HeaderError`] naming the metadata key or tensor at fault.
    pub fn parse(file: &[u8]) -> Result<Self, HeaderError> {
        let mut r = Reader {
            bytes: file,
            pos: 0,
            values: 0,
            v1: false,
        };
        let magic = r.u32(None)?;
        if magic != MAGIC {
            return Err(HeaderError::BadMagic { magic });
        }
        let version = r.u32(None)?;
        if !(1..=3).contains(&version) {
            return Err(HeaderError::UnsupportedVersion { version });
        }
        r.v1 = version == 1;
        let tensor_count = r.count(None)?;
        let kv_count = r.count(None)?;
        // Smallest possible entries: key length + type + one byte of value;
        // name length + dimension count + type + offset.
        r.fits(kv_count, r.len_size() + 5, || "metadata count".into(), None)?;
        let mut metadata = HashMap::new();
        for _ in 0..kv_count {
            let key = r.string(|| "metadata key".into(), None)?;
            let value_type = r.u32(None)?;
            let value = r.value(&key, value_type, 0)?;
            metadata.insert(key, value);
        }
        r.fits(
            tensor_count,
            r.len_size() + 16,
            || "tensor count".into(),
            None,
        )?;
        let mut raw = Vec::new();
        let mut names = HashSet::new();
        for _ in 0..tensor_count {
            let name = r.string(|| "tensor name".into(), None)?;
            if !names.insert(name.clone()) {
                return Err(HeaderError::DuplicateTensor { tensor: name });
            }
            let dims = r.u32(Some(&name))?;
            if dims > MAX_DIMS {
                return Err(HeaderError::TooManyDims {
                    tensor: name,
                    dims,
                    limit: MAX_DIMS,
                });
            }
            let mut shape = Vec::with_capacity(dims as usize);
            for _ in 0..dims {
                shape.push(if r.v1 {
                    u64::from(r.u32(Some(&name))?)
                } else {
                    r.u64(Some(&name))?
                });
            }
            let type_id = r.u32(Some(&name))?;
            let offset = r.u64(Some(&name))?;
            raw.push((name, shape, type_id, offset));
        }
        let alignment = alignment(&metadata)?;
        let end_of_header = r.pos as u64;
        let data_start = end_of_header.div_ceil(alignment).saturating_mul(alignment);
        let file_len = file.len() as u64;
        let mut tensors = raw
            .into_iter()
            .map(|(name, dims, type_id, offset)| {
                tensor_info(name, &dims, type_id, offset, data_start, file_len)
            })
            .collect::<Result<Vec<_>, _>>()?;
        check_overlaps(&mut tensors)?;
        Ok(GgufHeader {
            version,
            metadata,
            tensors,
            alignment,
            data_start,
        })
    }

    /// candle's view of the same header, for
    /// `ModelWeights::from_gguf(content, reader, device)`. Built from the
    /// validated fields, so candle never parses the untrusted header.
    #[must_use]
    pub fn to_content(&self) -> Content {
        self.clone().into_content()
    }

    /// Like [`GgufHeader::to_content`], without copying the metadata (a
    /// vocabulary is a hundred thousand strings or more).
    #[must_use]
    pub fn into_content(self) -> Content {
        let magic = match self.version {
            1 => VersionedMagic::GgufV1,
            2 => VersionedMagic::GgufV2,
            _ => VersionedMagic::GgufV3,
        };
        let tensor_infos = self
            .tensors
            .into_iter()
            .map(|t| {
                let info = TensorInfo {
                    ggml_dtype: t.dtype,
                    shape: t.shape.into(),
                    offset: t.offset,
                };
                (t.name, info)
            })
            .collect();
        Content {
            magic,
            metadata: self.metadata,
            tensor_infos,
            tensor_data_offset: self.data_start,
        }
    }
}

fn alignment(metadata: &HashMap<String, Value>) -> Result<u64, HeaderError> {
    let value = match metadata.get("general.alignment") {
        None => return Ok(DEFAULT_ALIGNMENT),
        Some(Value::U8(v)) => u64::from(*v),
        Some(Value::U16(v)) => u64::from(*v),
        Some(Value::U32(v)) => u64::from(*v),
        Some(Value::U64(v)) => *v,
        Some(Value::I8(v)) => u64::try_from(*v).unwrap_or(0),
        Some(Value::I16(v)) => u64::try_from(*v).unwrap_or(0),
        Some(Value::I32(v)) => u64::try_from(*v).unwrap_or(0),
        Some(Value::I64(v)) => u64::try_from(*v).unwrap_or(0),
        // Not an integer: ignored, as candle does.
        Some(_) => return Ok(DEFAULT_ALIGNMENT),
    };
    if value.is_power_of_two() {
        Ok(value)
    } else {
        Err(HeaderError::BadAlignment { alignment: value })
    }
}

/// GGML type ids candle can hold (ids from the GGML type table).
fn ggml_dtype(id: u32) -> Option<GgmlDType> {
    Some(match id {
        0 => GgmlDType::F32,
        1 => GgmlDType::F16,
        2 => GgmlDType::Q4_0,
        3 => GgmlDType::Q4_1,
        6 => GgmlDType::Q5_0,
        7 => GgmlDType::Q5_1,
        8 => GgmlDType::Q8_0,
        9 => GgmlDType::Q8_1,
        10 => GgmlDType::Q2K,
        11 => GgmlDType::Q3K,
        12 => GgmlDType::Q4K,
        13 => GgmlDType::Q5K,
        14 => GgmlDType::Q6K,
        15 => GgmlDType::Q8K,
        30 => GgmlDType::BF16,
        _ => return None,
    })
}

fn tensor_info(
    name: String,
    dims: &[u64],
    type_id: u32,
    offset: u64,
    data_start: u64,
    file_len: u64,
) -> Result<GgufTensorInfo, HeaderError> {
    let Some(dtype) = ggml_dtype(type_id) else {
        return Err(HeaderError::UnknownDtype {
            tensor: name,
            dtype: format!("GGML type {type_id}"),
        });
    };
    let overflow = || HeaderError::ShapeOverflow {
        tensor: name.clone(),
        shape: dims.to_vec(),
    };
    let elements = dims
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d))
        .ok_or_else(overflow)?;
    let block = dtype.block_size() as u64;
    if elements % block != 0 {
        return Err(HeaderError::PartialBlock {
            tensor: name,
            elements,
            block,
            dtype: format!("{dtype:?}"),
        });
    }
    let len = (elements / block)
        .checked_mul(dtype.type_size() as u64)
        .ok_or_else(overflow)?;
    let mut shape = dims
        .iter()
        .map(|&d| usize::try_from(d))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| overflow())?;
    shape.reverse();
    let begin = data_start.checked_add(offset);
    let end = begin.and_then(|b| b.checked_add(len));
    match (begin, end) {
        (Some(file_offset), Some(end)) if end <= file_len => Ok(GgufTensorInfo {
            name,
            dtype,
            shape,
            offset,
            file_offset,
            len,
        }),
        _ => Err(HeaderError::OutOfRange {
            tensor: name,
            begin: data_start.saturating_add(offset),
            end: data_start.saturating_add(offset).saturating_add(len),
            limit: file_len,
        }),
    }
}

/// A cursor that never reads past the slice and never allocates more than
/// the bytes left could justify.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    values: u64,
    v1: bool,
}

impl Reader<'_> {
    fn remaining(&self) -> u64 {
        (self.bytes.len() - self.pos) as u64
    }

    fn take(&mut self, n: usize, tensor: Option<&str>) -> Result<&[u8], HeaderError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.bytes.len());
        let Some(slice) = end.and_then(|end| self.bytes.get(self.pos..end)) else {
            return Err(HeaderError::Truncated {
                tensor: tensor.map(str::to_owned),
                needed: (self.pos as u64).saturating_add(n as u64),
                file_len: self.bytes.len() as u64,
            });
        };
        self.pos += n;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self, tensor: Option<&str>) -> Result<[u8; N], HeaderError> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N, tensor)?);
        Ok(out)
    }

    fn u32(&mut self, tensor: Option<&str>) -> Result<u32, HeaderError> {
        self.array(tensor).map(u32::from_le_bytes)
    }

    fn u64(&mut self, tensor: Option<&str>) -> Result<u64, HeaderError> {
        self.array(tensor).map(u64::from_le_bytes)
    }

    /// Lengths and counts are u32 in version 1, u64 after.
    fn count(&mut self, tensor: Option<&str>) -> Result<u64, HeaderError> {
        if self.v1 {
            self.u32(tensor).map(u64::from)
        } else {
            self.u64(tensor)
        }
    }

    fn len_size(&self) -> u64 {
        if self.v1 { 4 } else { 8 }
    }

    /// Refuses `count` items of at least `min_size` bytes each when the rest
    /// of the file cannot hold them.
    fn fits(
        &self,
        count: u64,
        min_size: u64,
        what: impl FnOnce() -> String,
        tensor: Option<&str>,
    ) -> Result<(), HeaderError> {
        if count.saturating_mul(min_size) > self.remaining() {
            return Err(HeaderError::LengthPastEnd {
                what: what(),
                tensor: tensor.map(str::to_owned),
                len: count,
                available: self.remaining(),
            });
        }
        Ok(())
    }

    fn string(
        &mut self,
        what: impl FnOnce() -> String,
        tensor: Option<&str>,
    ) -> Result<String, HeaderError> {
        let len = self.count(tensor)?;
        self.fits(len, 1, what, tensor)?;
        let bytes = self.take(usize::try_from(len).unwrap_or(usize::MAX), tensor)?;
        // Writers in the wild pad strings with NULs and do not always write
        // UTF-8; both are read leniently, as llama.cpp and candle do.
        let trimmed = bytes
            .iter()
            .rposition(|&b| b != 0)
            .map_or(&bytes[..0], |last| &bytes[..=last]);
        Ok(String::from_utf8_lossy(trimmed).into_owned())
    }

    fn value(&mut self, key: &str, value_type: u32, depth: u32) -> Result<Value, HeaderError> {
        self.values += 1;
        if self.values > MAX_VALUES {
            return Err(HeaderError::TooManyValues { limit: MAX_VALUES });
        }
        Ok(match value_type {
            0 => Value::U8(self.array::<1>(None)?[0]),
            1 => Value::I8(i8::from_le_bytes(self.array(None)?)),
            2 => Value::U16(u16::from_le_bytes(self.array(None)?)),
            3 => Value::I16(i16::from_le_bytes(self.array(None)?)),
            4 => Value::U32(self.u32(None)?),
            5 => Value::I32(i32::from_le_bytes(self.array(None)?)),
            6 => Value::F32(f32::from_le_bytes(self.array(None)?)),
            7 => Value::Bool(self.array::<1>(None)?[0] != 0),
            8 => Value::String(self.string(|| format!("metadata `{key}`"), None)?),
            9 => {
                if depth >= MAX_DEPTH {
                    return Err(HeaderError::TooDeep {
                        key: key.to_owned(),
                        limit: MAX_DEPTH,
                    });
                }
                let elem_type = self.u32(None)?;
                let count = self.count(None)?;
                let Some(min_size) = self.min_size(elem_type) else {
                    return Err(HeaderError::UnknownValueType {
                        key: key.to_owned(),
                        value_type: elem_type,
                    });
                };
                self.fits(count, min_size, || format!("array `{key}`"), None)?;
                if self.values.saturating_add(count) > MAX_VALUES {
                    return Err(HeaderError::TooManyValues { limit: MAX_VALUES });
                }
                // Bounded by the bytes left (checked just above).
                let mut items = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
                for _ in 0..count {
                    items.push(self.value(key, elem_type, depth + 1)?);
                }
                Value::Array(items)
            }
            10 => Value::U64(self.u64(None)?),
            11 => Value::I64(i64::from_le_bytes(self.array(None)?)),
            12 => Value::F64(f64::from_le_bytes(self.array(None)?)),
            other => {
                return Err(HeaderError::UnknownValueType {
                    key: key.to_owned(),
                    value_type: other,
                });
            }
        })
    }

    /// Fewest bytes a value of the type takes in the file.
    fn min_size(&self, value_type: u32) -> Option<u64> {
        Some(match value_type {
            0 | 1 | 7 => 1,
            2 | 3 => 2,
            4..=6 => 4,
            8 => self.len_size(),
            9 => 4 + self.len_size(),
            10..=12 => 8,
            _ => return None,
        })
    }
}
