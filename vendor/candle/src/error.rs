//! Typed errors. Every failure names the file and, where there is one, the
//! tensor, and keeps its cause as a `source` rather than pasting it into the
//! message.

use std::io;
use std::path::{Path, PathBuf};

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

fn in_tensor(tensor: Option<&String>) -> String {
    tensor.map_or_else(String::new, |t| format!(" (tensor `{t}`)"))
}

/// What is wrong with a file's header: a safetensors JSON header or a GGUF
/// header and tensor-info table. Headers are untrusted input; the parsers
/// return one of these instead of panicking or allocating what a length
/// field claims.
///
/// The parsers do not know the file's path; [`Error::Header`] adds it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HeaderError {
    /// The file ends inside a fixed-size part of the header.
    #[error("the file ends after {file_len} bytes, inside the header (needs at least {needed}){}", in_tensor(tensor.as_ref()))]
    Truncated {
        /// The tensor whose header entry was being read, if any.
        tensor: Option<String>,
        /// Bytes the header needed at that point.
        needed: u64,
        /// Length of the file.
        file_len: u64,
    },
    /// A length or count read from the header runs past the end of the file.
    #[error("{what}: length {len} runs past the end of the file ({available} bytes left){}", in_tensor(tensor.as_ref()))]
    LengthPastEnd {
        /// What the length belongs to (the header, a metadata key, a string).
        what: String,
        /// The tensor concerned, if any.
        tensor: Option<String>,
        /// The length the header declares.
        len: u64,
        /// What the file still holds from there.
        available: u64,
    },
    /// The declared header length is above what any real model needs.
    #[error("header length {len} is above the {limit}-byte limit")]
    HeaderTooLarge {
        /// The declared length.
        len: u64,
        /// The limit.
        limit: u64,
    },
    /// The safetensors header is not a JSON object.
    #[error("the header is not a JSON object")]
    Json(#[source] serde_json::Error),
    /// A safetensors header entry lacks `dtype`, `shape` or `data_offsets`,
    /// or has them with the wrong types.
    #[error("the entry of tensor `{tensor}` is malformed")]
    Entry {
        /// The tensor.
        tensor: String,
        /// What serde found.
        #[source]
        source: serde_json::Error,
    },
    /// `__metadata__` is not a map of strings to strings.
    #[error("`__metadata__` is not a map of strings to strings")]
    Metadata(#[source] serde_json::Error),
    /// A dtype name or GGML type id this crate does not know.
    #[error("tensor `{tensor}` has unknown dtype {dtype}")]
    UnknownDtype {
        /// The tensor.
        tensor: String,
        /// The dtype as written in the file.
        dtype: String,
    },
    /// The shape's element count does not fit in memory sizes.
    #[error("tensor `{tensor}`: shape {shape:?} is too large")]
    ShapeOverflow {
        /// The tensor.
        tensor: String,
        /// The shape as written.
        shape: Vec<u64>,
    },
    /// The bytes a tensor's offsets hold differ from what its shape and
    /// dtype need.
    #[error(
        "tensor `{tensor}`: shape {shape:?} of {dtype} needs {expected} bytes but its offsets hold {actual}"
    )]
    ShapeMismatch {
        /// The tensor.
        tensor: String,
        /// The shape as written.
        shape: Vec<u64>,
        /// The dtype name.
        dtype: String,
        /// Bytes the shape needs.
        expected: u64,
        /// Bytes between the offsets.
        actual: u64,
    },
    /// A GGUF tensor's element count is not a whole number of blocks.
    #[error(
        "tensor `{tensor}`: {elements} elements are not a whole number of {block}-element {dtype} blocks"
    )]
    PartialBlock {
        /// The tensor.
        tensor: String,
        /// Elements in the shape.
        elements: u64,
        /// Elements per block.
        block: u64,
        /// The GGML type.
        dtype: String,
    },
    /// A tensor's data lies (partly) outside the file's data area, or its
    /// end offset is before its start.
    #[error(
        "tensor `{tensor}`: data at bytes {begin}..{end} is outside the data area, which ends at {limit}"
    )]
    OutOfRange {
        /// The tensor.
        tensor: String,
        /// First byte (absolute in the file where known).
        begin: u64,
        /// One past the last byte.
        end: u64,
        /// Where the data area ends.
        limit: u64,
    },
    /// Two tensors claim some of the same bytes.
    #[error("tensor `{tensor}` overlaps tensor `{other}`")]
    Overlap {
        /// The later tensor.
        tensor: String,
        /// The tensor it overlaps.
        other: String,
    },
    /// The same tensor name appears twice in one header.
    #[error("tensor `{tensor}` appears twice")]
    DuplicateTensor {
        /// The tensor.
        tensor: String,
    },
    /// The file does not start with the GGUF magic.
    #[error("not a GGUF file (magic {magic:#010x})")]
    BadMagic {
        /// The first four bytes, little-endian.
        magic: u32,
    },
    /// A GGUF version this crate does not read.
    #[error("unsupported GGUF version {version}")]
    UnsupportedVersion {
        /// The version field.
        version: u32,
    },
    /// A metadata value type id outside the GGUF specification.
    #[error("metadata `{key}` has unknown value type {value_type}")]
    UnknownValueType {
        /// The metadata key.
        key: String,
        /// The type id.
        value_type: u32,
    },
    /// Arrays nested deeper than any model uses.
    #[error("metadata `{key}`: arrays nested deeper than {limit}")]
    TooDeep {
        /// The metadata key.
        key: String,
        /// The depth limit.
        limit: u32,
    },
    /// More metadata values than any model carries.
    #[error("metadata holds more than {limit} values")]
    TooManyValues {
        /// The limit.
        limit: u64,
    },
    /// More dimensions than GGML tensors have.
    #[error("tensor `{tensor}` has {dims} dimensions, more than {limit}")]
    TooManyDims {
        /// The tensor.
        tensor: String,
        /// Dimensions declared.
        dims: u32,
        /// The limit.
        limit: u32,
    },
    /// `general.alignment` is zero or not a power of two.
    #[error("`general.alignment` is {alignment}, not a power of two")]
    BadAlignment {
        /// The value found.
        alignment: u64,
    },
}

impl HeaderError {
    /// The tensor the problem belongs to, when it belongs to one.
    #[must_use]
    pub fn tensor(&self) -> Option<&str> {
        match self {
            HeaderError::Truncated { tensor, .. } | HeaderError::LengthPastEnd { tensor, .. } => {
                tensor.as_deref()
            }
            HeaderError::Entry { tensor, .. }
            | HeaderError::UnknownDtype { tensor, .. }
            | HeaderError::ShapeOverflow { tensor, .. }
            | HeaderError::ShapeMismatch { tensor, .. }
            | HeaderError::PartialBlock { tensor, .. }
            | HeaderError::OutOfRange { tensor, .. }
            | HeaderError::Overlap { tensor, .. }
            | HeaderError::DuplicateTensor { tensor }
            | HeaderError::TooManyDims { tensor, .. } => Some(tensor),
            _ => None,
        }
    }
}

/// Everything loading can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The file could not be opened or mapped.
    #[error("cannot open {}", path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Reading failed.
    #[error("cannot read {}{}", path.display(), in_tensor(tensor.as_ref()))]
    Read {
        /// The file.
        path: PathBuf,
        /// The tensor being read, if any.
        tensor: Option<String>,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The header is malformed; see [`HeaderError`].
    #[error("invalid header in {}{}", path.display(), in_tensor(source.tensor().map(str::to_owned).as_ref()))]
    Header {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        #[source]
        source: HeaderError,
    },
    /// A valid safetensors dtype that candle has no tensor type for.
    #[error("{}: tensor `{tensor}` has dtype {dtype}, which candle cannot hold", path.display())]
    UnsupportedDtype {
        /// The file.
        path: PathBuf,
        /// The tensor.
        tensor: String,
        /// The dtype name.
        dtype: String,
    },
    /// Two shards hold a tensor of the same name.
    #[error("tensor `{tensor}` is in both {} and {}", first.display(), second.display())]
    DuplicateAcrossShards {
        /// The tensor.
        tensor: String,
        /// The first shard holding it.
        first: PathBuf,
        /// The second.
        second: PathBuf,
    },
    /// `model.safetensors.index.json` could not be parsed.
    #[error("invalid shard index {}", path.display())]
    IndexJson {
        /// The index file.
        path: PathBuf,
        /// What serde found.
        #[source]
        source: serde_json::Error,
    },
    /// The index names a shard outside its own directory (absolute, or
    /// with `..`): refused rather than followed.
    #[error("shard index {} names `{shard}`, which is not a file beside it", path.display())]
    IndexBadShard {
        /// The index file.
        path: PathBuf,
        /// The shard name as written.
        shard: String,
    },
    /// The index maps a tensor to a shard that does not hold it.
    #[error("shard index {} puts tensor `{tensor}` in {}, which does not hold it", path.display(), shard.display())]
    IndexMissingTensor {
        /// The index file.
        path: PathBuf,
        /// The tensor.
        tensor: String,
        /// The shard it names.
        shard: PathBuf,
    },
    /// The path holds no weights this crate recognises.
    #[error("no model weights found at {}: {reason}", path.display())]
    NoWeights {
        /// The path given.
        path: PathBuf,
        /// Why not.
        reason: String,
    },
    /// No tensor of that name.
    #[error("no tensor `{tensor}` in the model")]
    TensorNotFound {
        /// The name asked for.
        tensor: String,
    },
    /// A tensor has another shape than the model asked for.
    #[error("{}: tensor `{tensor}` has shape {actual:?}, the model expects {expected:?}", path.display())]
    UnexpectedShape {
        /// The file.
        path: PathBuf,
        /// The tensor.
        tensor: String,
        /// The shape asked for.
        expected: Vec<usize>,
        /// The shape in the file.
        actual: Vec<usize>,
    },
    /// candle refused to build a tensor from validated bytes (device
    /// memory, an unsupported conversion).
    #[error("{}: candle failed on tensor `{tensor}`", path.display())]
    Candle {
        /// The file.
        path: PathBuf,
        /// The tensor.
        tensor: String,
        /// candle's error (boxed: it is large).
        #[source]
        source: Box<candle_core::Error>,
    },
    /// The device asked for cannot be opened.
    #[error("device `{choice}` is not available")]
    Device {
        /// The device choice as written.
        choice: String,
        /// candle's error (boxed: it is large).
        #[source]
        source: Box<candle_core::Error>,
    },
    /// A device name that is not `auto`, `cpu`, `metal[:N]` or `cuda[:N]`.
    #[error("unknown device `{name}`: expected auto, cpu, metal, metal:N, cuda or cuda:N")]
    BadDeviceName {
        /// The name given.
        name: String,
    },
    /// The caller's cancellation token fired; partial tensors were dropped.
    #[error("loading was cancelled")]
    Cancelled,
}

impl Error {
    /// The file the error is about, when there is one.
    #[must_use]
    pub fn path(&self) -> Option<&Path> {
        match self {
            Error::Open { path, .. }
            | Error::Read { path, .. }
            | Error::Header { path, .. }
            | Error::UnsupportedDtype { path, .. }
            | Error::IndexJson { path, .. }
            | Error::IndexBadShard { path, .. }
            | Error::IndexMissingTensor { path, .. }
            | Error::NoWeights { path, .. }
            | Error::UnexpectedShape { path, .. }
            | Error::Candle { path, .. } => Some(path),
            Error::DuplicateAcrossShards { second, .. } => Some(second),
            _ => None,
        }
    }

    /// The tensor the error is about, when there is one.
    #[must_use]
    pub fn tensor(&self) -> Option<&str> {
        match self {
            Error::Read { tensor, .. } => tensor.as_deref(),
            Error::Header { source, .. } => source.tensor(),
            Error::UnsupportedDtype { tensor, .. }
            | Error::DuplicateAcrossShards { tensor, .. }
            | Error::IndexMissingTensor { tensor, .. }
            | Error::TensorNotFound { tensor }
            | Error::UnexpectedShape { tensor, .. }
            | Error::Candle { tensor, .. } => Some(tensor),
            _ => None,
        }
    }

    /// True when the error is the caller's cancellation.
    #[must_use]
    pub fn is_cancelled(&self) -> bool {
        matches!(self, Error::Cancelled)
    }

    pub(crate) fn header(path: &Path, source: HeaderError) -> Self {
        Error::Header {
            path: path.to_owned(),
            source,
        }
    }
}
