//! A bounds check of a GGUF header before candle parses it.
//!
//! `candle_core::quantized::gguf_file::Content::read` trusts the lengths in
//! the file: a string or array length of 2^60 makes it allocate that much
//! (a capacity-overflow panic or an abort), deeply nested arrays overflow the
//! stack, and `general.alignment = 0` divides by zero. This walk reads the
//! same structure without allocating, checks every length against the bytes
//! left in the file, and only then lets candle read it.

use std::io::Read;

/// Arrays of arrays deeper than this are refused (llama.cpp writes none).
const MAX_NESTING: usize = 4;
/// GGML tensors have at most four dimensions.
const MAX_DIMS: u32 = 4;

struct Walker<R> {
    reader: R,
    remaining: u64,
    wide: bool, // v2/v3: u64 lengths; v1: u32
}

impl<R: Read> Walker<R> {
    fn bytes<const N: usize>(&mut self, what: &str) -> Result<[u8; N], String> {
        let mut buf = [0u8; N];
        self.reader
            .read_exact(&mut buf)
            .map_err(|e| format!("cannot read {what}: {e}"))?;
        self.remaining = self.remaining.saturating_sub(N as u64);
        Ok(buf)
    }

    fn u32(&mut self, what: &str) -> Result<u32, String> {
        self.bytes::<4>(what).map(u32::from_le_bytes)
    }

    fn u64(&mut self, what: &str) -> Result<u64, String> {
        self.bytes::<8>(what).map(u64::from_le_bytes)
    }

    fn len(&mut self, what: &str) -> Result<u64, String> {
        if self.wide {
            self.u64(what)
        } else {
            self.u32(what).map(u64::from)
        }
    }

    /// Skips `n` bytes that must exist in the file.
    fn skip(&mut self, n: u64, what: &str) -> Result<(), String> {
        if n > self.remaining {
            return Err(format!(
                "{what} claims {n} bytes, only {} left in the file",
                self.remaining
            ));
        }
        let copied = std::io::copy(&mut (&mut self.reader).take(n), &mut std::io::sink())
            .map_err(|e| format!("cannot read {what}: {e}"))?;
        if copied != n {
            return Err(format!("{what} is cut short"));
        }
        self.remaining -= n;
        Ok(())
    }

    /// Reads a string, keeping its text only when it is short (keys).
    fn string(&mut self, what: &str) -> Result<Option<String>, String> {
        let n = self.len(what)?;
        if n <= 64 && n <= self.remaining {
            let mut buf = vec![0u8; usize::try_from(n).unwrap_or(0)];
            self.reader
                .read_exact(&mut buf)
                .map_err(|e| format!("cannot read {what}: {e}"))?;
            self.remaining -= n;
            return Ok(Some(String::from_utf8_lossy(&buf).into_owned()));
        }
        self.skip(n, what)?;
        Ok(None)
    }

    /// Walks one value of GGUF type `ty`; returns it when it is an integer.
    fn value(&mut self, ty: u32, key: &str, depth: usize) -> Result<Option<u64>, String> {
        let fixed = |size: u64| Some(size);
        let size = match ty {
            0 | 1 | 7 => fixed(1), // u8, i8, bool
            2 | 3 => fixed(2),
            4..=6 => fixed(4),   // u32, i32, f32
            10..=12 => fixed(8), // u64, i64, f64
            8 | 9 => None,
            other => return Err(format!("`{key}` has unknown value type {other}")),
        };
        if let Some(size) = size {
            let mut buf = [0u8; 8];
            let n = usize::try_from(size).unwrap_or(8);
            self.reader
                .read_exact(&mut buf[..n])
                .map_err(|e| format!("cannot read `{key}`: {e}"))?;
            self.remaining = self.remaining.saturating_sub(size);
            let int = matches!(ty, 0 | 2 | 4 | 10).then(|| u64::from_le_bytes(buf));
            return Ok(int);
        }
        if ty == 8 {
            self.string(key)?;
            return Ok(None);
        }
        if depth >= MAX_NESTING {
            return Err(format!("`{key}` nests arrays deeper than {MAX_NESTING}"));
        }
        let elem = self.u32(key)?;
        let count = self.len(key)?;
        // Every element takes at least one byte: a count beyond the file is a lie.
        if count > self.remaining {
            return Err(format!(
                "`{key}` claims {count} elements, only {} bytes left",
                self.remaining
            ));
        }
        for _ in 0..count {
            self.value(elem, key, depth + 1)?;
        }
        Ok(None)
    }
}

/// Checks the header in `reader` (positioned at the start of a file of
/// `file_len` bytes); the error says what is wrong.
pub(crate) fn check(reader: impl Read, file_len: u64) -> Result<(), String> {
    let mut w = Walker {
        reader,
        remaining: file_len,
        wide: true,
    };
    if &w.bytes::<4>("magic")? != b"GGUF" {
        return Err("not a GGUF file (bad magic)".to_owned());
    }
    let version = w.u32("version")?;
    w.wide = match version {
        1 => false,
        2 | 3 => true,
        other => return Err(format!("unsupported GGUF version {other}")),
    };
    let tensors = w.len("tensor count")?;
    let kvs = w.len("metadata count")?;
    if kvs > w.remaining || tensors > w.remaining {
        return Err(format!(
            "counts ({kvs} metadata, {tensors} tensors) exceed the file"
        ));
    }
    for _ in 0..kvs {
        let key = w.string("metadata key")?.unwrap_or_default();
        let ty = w.u32(&key)?;
        let int = w.value(ty, &key, 0)?;
        if key == "general.alignment" && int == Some(0) {
            return Err("general.alignment is 0".to_owned());
        }
    }
    for _ in 0..tensors {
        w.string("tensor name")?;
        let dims = w.u32("tensor dimensions")?;
        if dims > MAX_DIMS {
            return Err(format!("a tensor claims {dims} dimensions"));
        }
        let dim_size = if w.wide { 8 } else { 4 };
        w.skip(u64::from(dims) * dim_size, "tensor shape")?;
        w.skip(4 + 8, "tensor type and offset")?;
    }
    Ok(())
}
