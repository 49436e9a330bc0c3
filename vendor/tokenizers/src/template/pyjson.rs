//! The `tojson` filter as Hugging Face templates expect it: Python's
//! `json.dumps(x, ensure_ascii=False, indent=indent, sort_keys=sort_keys)`.
//!
//! minijinja's own `tojson` is made for HTML (it escapes `<`, `>`, `&`, `'`)
//! and writes compact separators; a prompt must get Python's `", "` and
//! `": "` and the characters as they are, or the model sees other tokens
//! than it was trained on.

use std::fmt::Write as _;

use minijinja::value::{Kwargs, ValueKind};
use minijinja::{Error, ErrorKind, Value};

/// Nesting limit: template values can be self-referential through objects.
const MAX_DEPTH: usize = 128;

/// `value | tojson`, `value | tojson(2)`, `value | tojson(indent=2, sort_keys=true)`.
pub(crate) fn tojson(value: &Value, indent: Option<usize>, kwargs: Kwargs) -> Result<Value, Error> {
    let indent = match kwargs.get::<Option<usize>>("indent")? {
        Some(i) => Some(i),
        None => indent,
    };
    let sort_keys = kwargs.get::<Option<bool>>("sort_keys")?.unwrap_or(false);
    // Accepted for compatibility; output is always ensure_ascii=False.
    let _ = kwargs.get::<Option<bool>>("ensure_ascii")?;
    kwargs.assert_all_used()?;
    let mut out = String::new();
    write_value(&mut out, value, indent, sort_keys, 0)?;
    Ok(Value::from(out))
}

fn write_value(
    out: &mut String,
    value: &Value,
    indent: Option<usize>,
    sort_keys: bool,
    depth: usize,
) -> Result<(), Error> {
    if depth > MAX_DEPTH {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            "tojson: value nested too deeply",
        ));
    }
    match value.kind() {
        ValueKind::Undefined | ValueKind::None => out.push_str("null"),
        ValueKind::Bool => out.push_str(if value.is_true() { "true" } else { "false" }),
        ValueKind::Number => write_number(out, value),
        ValueKind::String => write_string(out, value.as_str().unwrap_or_default()),
        ValueKind::Seq | ValueKind::Iterable => {
            let items: Vec<Value> = value.try_iter()?.collect();
            write_container(out, ('[', ']'), items.len(), indent, depth, |out, i| {
                write_value(out, &items[i], indent, sort_keys, depth + 1)
            })?;
        }
        ValueKind::Map => {
            let mut keys: Vec<Value> = value.try_iter()?.collect();
            if sort_keys {
                keys.sort_by_key(ToString::to_string);
            }
            write_container(out, ('{', '}'), keys.len(), indent, depth, |out, i| {
                let key = &keys[i];
                write_string(
                    out,
                    &key.as_str().map_or_else(|| key.to_string(), str::to_owned),
                );
                out.push_str(": ");
                write_value(out, &value.get_item(key)?, indent, sort_keys, depth + 1)
            })?;
        }
        // Bytes, plain objects, invalid values: their string form.
        _ => write_string(out, &value.to_string()),
    }
    Ok(())
}

fn write_container(
    out: &mut String,
    (open, close): (char, char),
    len: usize,
    indent: Option<usize>,
    depth: usize,
    mut item: impl FnMut(&mut String, usize) -> Result<(), Error>,
) -> Result<(), Error> {
    out.push(open);
    if len == 0 {
        out.push(close);
        return Ok(());
    }
    for i in 0..len {
        match indent {
            // Python: ", " between items without indent, "," plus newline with it.
            None if i > 0 => out.push_str(", "),
            None => {}
            Some(width) => {
                if i > 0 {
                    out.push(',');
                }
                out.push('\n');
                out.push_str(&" ".repeat(width * (depth + 1)));
            }
        }
        item(out, i)?;
    }
    if let Some(width) = indent {
        out.push('\n');
        out.push_str(&" ".repeat(width * depth));
    }
    out.push(close);
    Ok(())
}

fn write_number(out: &mut String, value: &Value) {
    if value.is_integer()
        && let Ok(int) = i128::try_from(value.clone())
    {
        let _ = write!(out, "{int}");
        return;
    }
    let float = f64::try_from(value.clone()).unwrap_or(f64::NAN);
    if float.is_nan() {
        out.push_str("NaN");
    } else if float.is_infinite() {
        out.push_str(if float > 0.0 { "Infinity" } else { "-Infinity" });
    } else if float.fract() == 0.0 && float.abs() < 1e16 {
        // Python writes integral floats as `1.0`.
        let _ = write!(out, "{float:.1}");
    } else {
        let _ = write!(out, "{float}");
    }
}

fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}
