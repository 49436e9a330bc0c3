//! When and how long to wait before trying again.

use std::time::Duration;

use reqwest::header::{HeaderMap, RETRY_AFTER};

/// Retry settings. Transient failures (connection errors, timeouts, 408,
/// 429, 5xx, a body cut short) are retried; an attempt that moved bytes
/// resets the count, so a flaky but working connection finishes.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts in a row without progress before giving up.
    pub max_attempts: u32,
    /// First backoff delay; doubled each time, with jitter.
    pub base_delay: Duration,
    /// Longest backoff delay.
    pub max_delay: Duration,
    /// Longest `Retry-After` honoured; a server asking for more is an error.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 6,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(10),
            max_retry_after: Duration::from_secs(5 * 60),
        }
    }
}

impl RetryPolicy {
    /// Delay before attempt `attempt` (1 = first retry): exponential with
    /// full jitter in its upper half, so parallel connections spread out.
    #[must_use]
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exp = self
            .base_delay
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
        let capped = exp.min(self.max_delay);
        let half = capped / 2;
        half + half.mul_f64(rand::random::<f64>())
    }
}

/// What a server's `Retry-After` header asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryAfter {
    /// How long to wait; [`Duration::MAX`] for a wait too long to count
    /// (a number of seconds or a date past what the clock can hold).
    pub wait: Duration,
    /// What the server asked, for messages: `"120 s"` or `"until <date>"`.
    pub asked: String,
}

/// Reads `Retry-After` (seconds, or an HTTP date). Values that do not parse
/// are ignored (the caller backs off as usual); absurd ones become
/// [`Duration::MAX`], never a panic, and the caller refuses to wait that long.
///
/// ```
/// use hf_hub::retry::retry_after;
/// let mut h = reqwest::header::HeaderMap::new();
/// h.insert("retry-after", "99999999999999999999999".parse().unwrap());
/// assert_eq!(retry_after(&h).unwrap().wait, std::time::Duration::MAX);
/// ```
#[must_use]
pub fn retry_after(headers: &HeaderMap) -> Option<RetryAfter> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    let shown = crate::ids::truncate(value);
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // Too many digits for a u64 is still a number: an absurd wait.
        let wait = value
            .parse::<u64>()
            .map_or(Duration::MAX, Duration::from_secs);
        return Some(RetryAfter {
            wait,
            asked: format!("{shown} s"),
        });
    }
    let wait = match httpdate_parse(value)? {
        Some(when) => when
            .duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO),
        None => Duration::MAX,
    };
    Some(RetryAfter {
        wait,
        asked: format!("until {shown}"),
    })
}

/// Parses an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), the only date
/// form `Retry-After` uses in practice. `None`: not such a date;
/// `Some(None)`: a date the clock cannot hold (far in the future).
fn httpdate_parse(s: &str) -> Option<Option<std::time::SystemTime>> {
    let parts: Vec<&str> = s.split_ascii_whitespace().collect();
    let [_, day, month, year, time, "GMT"] = parts.as_slice() else {
        return None;
    };
    let day: u64 = day.parse().ok().filter(|d| (1..=31).contains(d))?;
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|m| m == month)? as u64
        + 1;
    let year: u64 = year.parse().ok()?;
    let mut hms = time.split(':').map(|p| p.parse::<u64>().ok());
    let (Some(Some(h)), Some(Some(mi)), Some(Some(sec)), None) =
        (hms.next(), hms.next(), hms.next(), hms.next())
    else {
        return None;
    };
    if h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    if year < 1970 {
        // Long past: no wait.
        return Some(Some(std::time::UNIX_EPOCH));
    }
    Some(unix_time(year, month, day, h * 3600 + mi * 60 + sec))
}

/// Days-from-civil (proleptic Gregorian) with checked arithmetic: a year
/// too large for the clock gives `None` rather than an overflow.
fn unix_time(year: u64, month: u64, day: u64, secs_of_day: u64) -> Option<std::time::SystemTime> {
    let (y, m) = if month <= 2 {
        (year - 1, month + 9)
    } else {
        (year, month - 3)
    };
    let era = y / 400;
    let yoe = y % 400;
    let doy = (153 * m + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era
        .checked_mul(146_097)?
        .checked_add(doe)?
        .checked_sub(719_468)?;
    let secs = days.checked_mul(86_400)?.checked_add(secs_of_day)?;
    std::time::UNIX_EPOCH.checked_add(Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wait(value: &str) -> Option<Duration> {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, value.parse().unwrap());
        retry_after(&h).map(|r| r.wait)
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        assert_eq!(wait("3"), Some(Duration::from_secs(3)));
        let t = httpdate_parse("Sun, 06 Nov 1994 08:49:37 GMT")
            .unwrap()
            .unwrap();
        assert_eq!(
            t.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs(),
            784_111_777
        );
        assert_eq!(wait("Sun, 06 Nov 1994 08:49:37 GMT"), Some(Duration::ZERO));
        assert_eq!(wait("soon"), None);
    }

    #[test]
    fn absurd_retry_after_values_are_a_long_wait_not_a_panic() {
        for absurd in [
            "18446744073709551615",
            "99999999999999999999999999",
            "Fri, 31 Dec 9999999999999 23:59:59 GMT",
            "Fri, 31 Dec 18446744073709551615 23:59:59 GMT",
            "Fri, 31 Dec 584554049253 23:59:59 GMT",
        ] {
            let w = wait(absurd).unwrap();
            assert!(w >= Duration::from_secs(u64::MAX), "{absurd}: {w:?}");
        }
        // Far, but within the clock: a long wait the caller refuses.
        assert!(wait("Fri, 31 Dec 9999 23:59:59 GMT").unwrap() > Duration::from_secs(1 << 30));
        for malformed in [
            "Fri, 99 Dec 2030 23:59:59 GMT",
            "Fri, 01 Dec 2030 25:00:00 GMT",
        ] {
            assert_eq!(wait(malformed), None, "{malformed}");
        }
        assert_eq!(wait("Fri, 01 Dec 1900 10:00:00 GMT"), Some(Duration::ZERO));
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let p = RetryPolicy::default();
        let first = p.backoff(1);
        assert!(first >= Duration::from_millis(100) && first <= Duration::from_millis(200));
        assert!(p.backoff(30) <= p.max_delay);
    }
}
