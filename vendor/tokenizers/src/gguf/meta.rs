//! Typed, checked access to GGUF metadata values.
//!
//! GGUF files are untrusted: every accessor says which key was missing or had
//! the wrong type instead of panicking or silently falling back.

use std::collections::HashMap;

use candle_core::quantized::gguf_file::Value;

use crate::error::{Error, Result};

/// A read-only view of a GGUF metadata map.
#[derive(Clone, Copy)]
pub(crate) struct Meta<'a> {
    map: &'a HashMap<String, Value>,
}

/// A short description of a value for error messages (never the whole array).
pub(crate) fn describe(value: &Value) -> String {
    match value {
        Value::String(s) => format!("string \"{}\"", s.chars().take(40).collect::<String>()),
        Value::Array(items) => format!("array of {} values", items.len()),
        Value::Bool(b) => format!("bool {b}"),
        Value::F32(v) => format!("f32 {v}"),
        Value::F64(v) => format!("f64 {v}"),
        other => match as_integer(other) {
            Some(n) => format!("{:?} {n}", other.value_type()),
            None => format!("{:?}", other.value_type()),
        },
    }
}

fn as_integer(value: &Value) -> Option<i128> {
    Some(match value {
        Value::U8(v) => i128::from(*v),
        Value::I8(v) => i128::from(*v),
        Value::U16(v) => i128::from(*v),
        Value::I16(v) => i128::from(*v),
        Value::U32(v) => i128::from(*v),
        Value::I32(v) => i128::from(*v),
        Value::U64(v) => i128::from(*v),
        Value::I64(v) => i128::from(*v),
        _ => return None,
    })
}

fn wrong(key: &str, expected: &'static str, found: &Value) -> Error {
    Error::WrongType {
        key: key.to_owned(),
        expected,
        found: describe(found),
    }
}

impl<'a> Meta<'a> {
    pub(crate) fn new(map: &'a HashMap<String, Value>) -> Self {
        Self { map }
    }

    pub(crate) fn get(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key)
    }

    pub(crate) fn string(&self, key: &str) -> Result<Option<&'a str>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(wrong(key, "a string", other)),
        }
    }

    pub(crate) fn require_string(&self, key: &str) -> Result<&'a str> {
        self.string(key)?.ok_or_else(|| Error::MissingKey {
            key: key.to_owned(),
        })
    }

    pub(crate) fn bool(&self, key: &str) -> Result<Option<bool>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            // Some converters write flags as integers; 0/1 mean the obvious.
            Some(other) => match as_integer(other) {
                Some(0) => Ok(Some(false)),
                Some(1) => Ok(Some(true)),
                _ => Err(wrong(key, "a bool", other)),
            },
        }
    }

    /// A token id that must name one of `vocab_size` tokens. Negative values
    /// mean "unset" (llama.cpp writes -1 for a missing special token).
    pub(crate) fn token_id(&self, key: &str, vocab_size: usize) -> Result<Option<u32>> {
        let Some(value) = self.get(key) else {
            return Ok(None);
        };
        let id = as_integer(value).ok_or_else(|| wrong(key, "an integer token id", value))?;
        if id < 0 {
            return Ok(None);
        }
        match u32::try_from(id) {
            Ok(small) if (small as usize) < vocab_size => Ok(Some(small)),
            _ => Err(Error::TokenIdOutOfRange {
                key: key.to_owned(),
                id,
                vocab_size,
            }),
        }
    }

    fn array(&self, key: &str) -> Result<Option<&'a [Value]>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Array(items)) => Ok(Some(items)),
            Some(other) => Err(wrong(key, "an array", other)),
        }
    }

    pub(crate) fn string_array(&self, key: &str) -> Result<Option<Vec<&'a str>>> {
        let Some(items) = self.array(key)? else {
            return Ok(None);
        };
        items
            .iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::String(s) => Ok(s.as_str()),
                other => Err(wrong(&format!("{key}[{i}]"), "a string", other)),
            })
            .collect::<Result<Vec<_>>>()
            .map(Some)
    }

    /// A per-token array of numbers, checked to have one entry per token.
    pub(crate) fn f32_array(&self, key: &str, vocab_size: usize) -> Result<Option<Vec<f32>>> {
        let Some(items) = self.array(key)? else {
            return Ok(None);
        };
        check_len(key, vocab_size, items.len())?;
        items
            .iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::F32(x) => Ok(*x),
                #[allow(clippy::cast_possible_truncation)] // scores only rank merges
                Value::F64(x) => Ok(*x as f32),
                other => Err(wrong(&format!("{key}[{i}]"), "a number", other)),
            })
            .collect::<Result<Vec<_>>>()
            .map(Some)
    }

    /// A per-token array of small integers (token types).
    pub(crate) fn int_array(&self, key: &str, vocab_size: usize) -> Result<Option<Vec<i128>>> {
        let Some(items) = self.array(key)? else {
            return Ok(None);
        };
        check_len(key, vocab_size, items.len())?;
        items
            .iter()
            .enumerate()
            .map(|(i, v)| {
                as_integer(v).ok_or_else(|| wrong(&format!("{key}[{i}]"), "an integer", v))
            })
            .collect::<Result<Vec<_>>>()
            .map(Some)
    }
}

fn check_len(key: &str, expected: usize, found: usize) -> Result<()> {
    if expected == found {
        Ok(())
    } else {
        Err(Error::LengthMismatch {
            key: key.to_owned(),
            expected,
            found,
        })
    }
}
