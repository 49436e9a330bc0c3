//! `strftime_now(format)` for chat templates (Llama 3 puts today's date in
//! the system prompt). UTC: libraries read no environment, and the local
//! time zone is environment.

use std::time::{SystemTime, UNIX_EPOCH};

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const WEEKDAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

/// Seconds since the Unix epoch now (0 if the clock is before 1970).
pub(crate) fn now_epoch_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// A broken-down UTC time.
struct Civil {
    year: i64,
    month: usize, // 1..=12
    day: i64,
    yday: i64,      // 1..=366
    weekday: usize, // 0 = Sunday
    hour: i64,
    minute: i64,
    second: i64,
}

/// Days since 1970-01-01 to a proleptic Gregorian date (the well-known
/// era-based conversion: 400-year eras of 146097 days, years starting in March).
fn civil(epoch_secs: i64) -> Civil {
    let days = epoch_secs.div_euclid(86_400);
    let secs = epoch_secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let before = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
    let month_idx = usize::try_from(month - 1).unwrap_or(0).min(11);
    let yday = before[month_idx] + day + i64::from(leap && month > 2);
    Civil {
        year,
        month: month_idx + 1,
        day,
        yday,
        weekday: usize::try_from((days + 4).rem_euclid(7)).unwrap_or(0),
        hour: secs / 3600,
        minute: secs % 3600 / 60,
        second: secs % 60,
    }
}

/// Formats like C/Python `strftime` for the common directives
/// (`%Y %y %m %d %e %H %I %M %S %p %B %b %h %A %a %j %%`, and `%-d` style
/// unpadded variants); others are kept as written.
pub(crate) fn strftime(format: &str, epoch_secs: i64) -> String {
    let t = civil(epoch_secs);
    let mut out = String::with_capacity(format.len() + 16);
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut spec = chars.next();
        let unpadded = spec == Some('-');
        if unpadded {
            spec = chars.next();
        }
        let num = |v: i64, width: usize| {
            if unpadded {
                v.to_string()
            } else {
                format!("{v:0width$}")
            }
        };
        let hour12 = if t.hour % 12 == 0 { 12 } else { t.hour % 12 };
        match spec {
            Some('Y') => out.push_str(&t.year.to_string()),
            Some('y') => out.push_str(&num(t.year.rem_euclid(100), 2)),
            Some('m') => out.push_str(&num(i64::try_from(t.month).unwrap_or(0), 2)),
            Some('d') => out.push_str(&num(t.day, 2)),
            Some('e') => out.push_str(&format!("{:>2}", t.day)),
            Some('H') => out.push_str(&num(t.hour, 2)),
            Some('I') => out.push_str(&num(hour12, 2)),
            Some('M') => out.push_str(&num(t.minute, 2)),
            Some('S') => out.push_str(&num(t.second, 2)),
            Some('p') => out.push_str(if t.hour < 12 { "AM" } else { "PM" }),
            Some('B') => out.push_str(MONTHS[t.month - 1]),
            Some('b' | 'h') => out.push_str(&MONTHS[t.month - 1][..3]),
            Some('A') => out.push_str(WEEKDAYS[t.weekday]),
            Some('a') => out.push_str(&WEEKDAYS[t.weekday][..3]),
            Some('j') => out.push_str(&num(t.yday, 3)),
            Some('%') => out.push('%'),
            Some(other) => {
                out.push('%');
                if unpadded {
                    out.push('-');
                }
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::strftime;

    #[test]
    fn known_dates() {
        // 2024-02-29 13:05:09 UTC, a Thursday in a leap year.
        let t = 1_709_211_909;
        assert_eq!(strftime("%Y-%m-%d %H:%M:%S", t), "2024-02-29 13:05:09");
        assert_eq!(strftime("%d %b %Y", t), "29 Feb 2024");
        assert_eq!(
            strftime("%A %B %-d, %I%p day %j %%", t),
            "Thursday February 29, 01PM day 060 %"
        );
        assert_eq!(strftime("%Y-%m-%d %a", 0), "1970-01-01 Thu");
        // 2000-12-31 is day 366 of a leap century year.
        assert_eq!(strftime("%j %y %q", 978_220_800), "366 00 %q");
        assert_eq!(strftime("%Y-%m-%d", -86_400), "1969-12-31");
    }
}
