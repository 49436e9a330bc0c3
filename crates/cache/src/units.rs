//! Sizes and durations as people write them in flags (`20G`, `500MB`,
//! `30d`): the units `hf cache` takes (decimal sizes, `s m h d w mo y`),
//! plus binary sizes (`GiB`), parsed strictly.

use crate::CacheError;

const SIZES: &[(&str, u64)] = &[
    ("b", 1),
    ("k", 1_000),
    ("kb", 1_000),
    ("m", 1_000_000),
    ("mb", 1_000_000),
    ("g", 1_000_000_000),
    ("gb", 1_000_000_000),
    ("t", 1_000_000_000_000),
    ("tb", 1_000_000_000_000),
    ("kib", 1 << 10),
    ("mib", 1 << 20),
    ("gib", 1 << 30),
    ("tib", 1 << 40),
];

const DURATIONS: &[(&str, u64)] = &[
    ("s", 1),
    ("m", 60),
    ("h", 3_600),
    ("d", 86_400),
    ("w", 604_800),
    ("mo", 2_592_000),
    ("y", 31_536_000),
];

fn parse(value: &str, units: &[(&str, u64)]) -> Option<u64> {
    let v = value.trim();
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (digits, unit) = v.split_at(split);
    if digits.is_empty() {
        return None;
    }
    let number: u64 = digits.parse().ok()?;
    let unit = unit.trim().to_ascii_lowercase();
    let scale = if unit.is_empty() {
        1
    } else {
        units.iter().find(|(u, _)| *u == unit)?.1
    };
    number.checked_mul(scale)
}

/// Bytes in `20G`, `500MB`, `1GiB` or `1024`.
///
/// ```
/// assert_eq!(tektra_cache::parse_size("500MB").unwrap(), 500_000_000);
/// assert_eq!(tektra_cache::parse_size("2GiB").unwrap(), 2 << 30);
/// assert!(tektra_cache::parse_size("1.5G").is_err());
/// ```
pub fn parse_size(value: &str) -> Result<u64, CacheError> {
    parse(value, SIZES).ok_or_else(|| CacheError::BadSize(value.to_string()))
}

/// Seconds in `30d`, `12h`, `2w`, `6mo` or `90`.
///
/// ```
/// assert_eq!(tektra_cache::parse_duration("30d").unwrap(), 30 * 86_400);
/// assert!(tektra_cache::parse_duration("soon").is_err());
/// ```
pub fn parse_duration(value: &str) -> Result<u64, CacheError> {
    parse(value, DURATIONS).ok_or_else(|| CacheError::BadDuration(value.to_string()))
}

/// `1.2G`, `340.5M`, `12.0K` (decimal, as `hf cache ls` prints).
#[must_use]
pub fn format_size(bytes: u64) -> String {
    #[allow(clippy::cast_precision_loss)]
    let b = bytes as f64;
    for (unit, scale) in [("T", 1e12), ("G", 1e9), ("M", 1e6), ("K", 1e3)] {
        if b >= scale {
            return format!("{:.1}{unit}", b / scale);
        }
    }
    format!("{bytes}")
}

/// `3 days ago`, `5 minutes ago`, `just now`.
#[must_use]
pub fn format_age(secs: u64) -> String {
    let (n, unit) = match secs {
        0..60 => return "just now".into(),
        60..3_600 => (secs / 60, "minute"),
        3_600..86_400 => (secs / 3_600, "hour"),
        86_400..2_592_000 => (secs / 86_400, "day"),
        2_592_000..31_536_000 => (secs / 2_592_000, "month"),
        _ => (secs / 31_536_000, "year"),
    };
    format!("{n} {unit}{} ago", if n == 1 { "" } else { "s" })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations_parse_strictly() {
        assert_eq!(parse_size("20G").unwrap(), 20_000_000_000);
        assert_eq!(parse_size(" 7 kb ").unwrap(), 7_000);
        assert_eq!(parse_size("1024").unwrap(), 1024);
        for bad in [
            "",
            "G",
            "-1G",
            "1.5G",
            "20X",
            "20GBB",
            "99999999999999999999",
        ] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_duration("2w").unwrap(), 1_209_600);
        assert_eq!(parse_duration("1mo").unwrap(), 2_592_000);
        assert!(parse_duration("30 days").is_err());
        assert_eq!(format_size(1_234_567_890), "1.2G");
        assert_eq!(format_age(3 * 86_400 + 5), "3 days ago");
    }
}
