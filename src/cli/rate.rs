//! `--max-rate` values: a size per second (`10MB/s`, `500K`, `2MiB/s`).

/// Bytes per second from `SIZE[/s]` (sizes as `tektra cache` takes them).
pub(crate) fn parse_rate(value: &str) -> Result<u64, String> {
    let size = value.trim();
    let size = size.strip_suffix("/s").unwrap_or(size);
    match tektra_cache::parse_size(size) {
        Ok(0) => Err("a rate above 0 (e.g. 10MB/s)".into()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!(
            "{value:?} is not a rate (e.g. 10MB/s, 500K, 2MiB/s)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_sizes_per_second() {
        assert_eq!(parse_rate("10MB/s"), Ok(10_000_000));
        assert_eq!(parse_rate("2MiB"), Ok(2 << 20));
        assert!(parse_rate("0").is_err());
        assert!(parse_rate("fast").is_err());
    }
}
