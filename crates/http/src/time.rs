//! Times as people type them and read them: RFC 3339, relative (`-15m`), µs since the
//! epoch; RFC 3339 and ages ("3 min ago") in output.

/// A time as people type it, in µs since the epoch: RFC 3339 with `Z` or an offset
/// (`2025-12-24T15:30:00Z`, `2025-12-24T16:30:00+01:00`), a time before `now_us`
/// (`-15m`, `-2h`, `-1day`, `-90s`), µs since the epoch (`1795000000000000`) or seconds
/// with an `s` suffix (`1795000000s`). A time before 1970 is 1970 (nothing is
/// restorable then; the restore says what is nearest).
pub fn parse_time_at(s: &str, now_us: u64) -> Result<u64, String> {
    let s = s.trim();
    let bad = |why: &str| {
        format!(
            "{s:?} is not a time ({why}): use RFC 3339 like 2025-12-24T15:30:00Z, a time ago like -15m or -2h, or µs since the epoch"
        )
    };
    if let Some(ago) = s.strip_prefix('-') {
        let d = humantime::parse_duration(ago).map_err(|e| bad(&e.to_string()))?;
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        return Ok(now_us.saturating_sub(us));
    }
    if s.contains('T') || s.contains('t') {
        let t: jiff::Timestamp = s.parse().map_err(|e: jiff::Error| bad(&e.to_string()))?;
        return Ok(u64::try_from(t.as_microsecond()).unwrap_or(0));
    }
    let (num, mul) = match s.strip_suffix('s') {
        Some(n) => (n, 1_000_000u64),
        None => (s, 1),
    };
    num.parse::<u64>()
        .map_err(|_| bad("not a number"))?
        .checked_mul(mul)
        .ok_or_else(|| bad("too large"))
}

pub use bindspace_core::clock::rfc3339;

/// How long before `now_us` the time `us` was, in words: `just now`, `42 s ago`,
/// `3 min ago`, `5 h ago`, `2 days ago` (`in the future` for a later time).
pub fn ago(us: u64, now_us: u64) -> String {
    let Some(d) = now_us.checked_sub(us) else {
        return "in the future".into();
    };
    let s = d / 1_000_000;
    match s {
        0 => "just now".into(),
        1..=99 => format!("{s} s ago"),
        100..=5_999 => format!("{} min ago", s / 60),
        6_000..=172_799 => format!("{} h ago", s / 3_600),
        _ => format!("{} days ago", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_766_590_200_000_000; // 2025-12-24T15:30:00Z

    #[test]
    fn times_people_type() {
        assert_eq!(parse_time_at("2025-12-24T15:30:00Z", 0), Ok(NOW));
        assert_eq!(parse_time_at("2025-12-24T16:30:00+01:00", 0), Ok(NOW));
        assert_eq!(parse_time_at("-15m", NOW), Ok(NOW - 900_000_000));
        assert_eq!(parse_time_at("-2h", NOW), Ok(NOW - 7_200_000_000));
        assert_eq!(parse_time_at("1766590200s", 0), Ok(NOW));
        assert_eq!(parse_time_at(&NOW.to_string(), 0), Ok(NOW));
        assert_eq!(
            parse_time_at("2025-12-24t15:30:00.5z", 0),
            Ok(NOW + 500_000)
        );
        assert_eq!(parse_time_at("-1day", NOW), Ok(NOW - 86_400_000_000));
        for bad in [
            "yesterday",
            "2025-13-01T00:00:00Z",
            "-",
            "-1x",
            "99999999999999999999",
        ] {
            assert!(parse_time_at(bad, NOW).is_err(), "{bad}");
        }
        assert_eq!(parse_time_at("-100000days", 1), Ok(0));
        assert_eq!(parse_time_at("1900-01-01T00:00:00Z", NOW), Ok(0));
    }

    #[test]
    fn times_people_read() {
        assert_eq!(rfc3339(NOW), "2025-12-24T15:30:00Z");
        assert_eq!(rfc3339(NOW + 400_000), "2025-12-24T15:30:00Z");
        assert_eq!(ago(NOW, NOW), "just now");
        assert_eq!(ago(NOW - 42_000_000, NOW), "42 s ago");
        assert_eq!(ago(NOW - 180_000_000, NOW), "3 min ago");
        assert_eq!(ago(NOW - 5 * 3_600_000_000, NOW), "5 h ago");
        assert_eq!(ago(NOW - 3 * 86_400_000_000, NOW), "3 days ago");
        assert_eq!(ago(NOW + 1, NOW), "in the future");
    }
}
