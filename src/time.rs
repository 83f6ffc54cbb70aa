//! Event timestamps: microseconds since the Unix epoch, UTC, written as RFC 3339.
//!
//! The store stamps every batch with `max(now, last stamp)`, so time never decreases within a
//! store even when the wall clock steps back. The text form is fixed-width
//! (`YYYY-MM-DDTHH:MM:SS.ffffffZ`, 27 bytes) so parsing it is a handful of digit reads.

use std::time::{SystemTime, UNIX_EPOCH};

/// Microseconds since 1970-01-01T00:00:00Z.
pub type Micros = i64;

/// The wall clock, in microseconds (0 for a clock before 1970).
pub(crate) fn now_micros() -> Micros {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => micros_of(d),
        Err(_) => 0,
    }
}

/// A duration in microseconds, saturating: a span longer than the clock can hold (about
/// 292,000 years) compares as the longest one, never wraps to a negative age.
pub(crate) fn micros_of(d: std::time::Duration) -> Micros {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

// Days from civil date and back: Howard Hinnant's algorithms for the proleptic Gregorian calendar.
pub(crate) fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Formats a timestamp as `YYYY-MM-DDTHH:MM:SS.ffffffZ`. Years outside 0..=9999 are clamped.
pub fn format_rfc3339(micros: Micros) -> String {
    let mut s = String::with_capacity(RFC3339_LEN);
    write_rfc3339(micros, &mut s);
    s
}

/// The length of [`format_rfc3339`]'s text.
pub(crate) const RFC3339_LEN: usize = 27;

/// [`format_rfc3339`] written over `out` (cleared first), digit by digit: an import formats
/// every event's time, and `format!` was 5% of a bulk load's CPU.
pub(crate) fn write_rfc3339(micros: Micros, out: &mut String) {
    let min = days_from_civil(0, 1, 1) * 86_400_000_000;
    let max = (days_from_civil(10_000, 1, 1)) * 86_400_000_000 - 1;
    let micros = micros.clamp(min, max);
    let secs = micros.div_euclid(1_000_000);
    let frac = micros.rem_euclid(1_000_000) as u64;
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400) as u64;
    let (y, m, d) = civil_from_days(days);
    let mut b = *b"0000-00-00T00:00:00.000000Z";
    // Writes `v` (below 10^width) as `width` digits ending before `end`.
    let mut digits = |end: usize, width: usize, mut v: u64| {
        for i in (end - width..end).rev() {
            b[i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    // The clamp keeps the year in 0..=9999.
    digits(4, 4, y as u64);
    digits(7, 2, u64::from(m));
    digits(10, 2, u64::from(d));
    digits(13, 2, sod / 3600);
    digits(16, 2, (sod / 60) % 60);
    digits(19, 2, sod % 60);
    digits(26, 6, frac);
    out.clear();
    out.extend(b.iter().map(|&c| char::from(c)));
}

/// Parses an RFC 3339 timestamp: `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`. A fraction finer
/// than microseconds is truncated. Returns `None` for anything else.
pub fn parse_rfc3339(s: &str) -> Option<Micros> {
    let b = s.as_bytes();
    if b.len() < 20 {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = b.get(r)?;
        let mut v = 0i64;
        for &c in part {
            if !c.is_ascii_digit() {
                return None;
            }
            v = v * 10 + i64::from(c - b'0');
        }
        Some(v)
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    if !(1..=12).contains(&mo) || d < 1 || d > days_in_month(y, mo as u32) as i64 {
        return None;
    }
    if h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let mut i = 19;
    let mut frac = 0i64;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            if i - start < 6 {
                frac = frac * 10 + i64::from(b[i] - b'0');
            }
            i += 1;
        }
        let digits = i - start;
        if digits == 0 {
            return None;
        }
        for _ in digits..6 {
            frac *= 10;
        }
    }
    let offset_secs = match b.get(i..)? {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let digits = [*h1, *h2, *m1, *m2];
            if !digits.iter().all(u8::is_ascii_digit) {
                return None;
            }
            let oh = i64::from((h1 - b'0') * 10 + (h2 - b'0'));
            let om = i64::from((m1 - b'0') * 10 + (m2 - b'0'));
            if oh > 23 || om > 59 {
                return None;
            }
            let v = oh * 3600 + om * 60;
            if *sign == b'+' { v } else { -v }
        }
        _ => return None,
    };
    let days = days_from_civil(y, mo as u32, d as u32);
    let secs = days * 86_400 + h * 3600 + mi * 60 + se.min(59) - offset_secs;
    Some(secs * 1_000_000 + frac)
}

pub(crate) fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_and_known_dates() {
        assert_eq!(format_rfc3339(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(
            format_rfc3339(1_763_847_072_123_456),
            "2025-11-22T21:31:12.123456Z"
        );
        assert_eq!(
            format_rfc3339(951_782_400_000_000),
            "2000-02-29T00:00:00.000000Z"
        );
    }

    #[test]
    fn digits_written_by_hand_match_format() {
        let by_format = |micros: Micros| {
            let min = days_from_civil(0, 1, 1) * 86_400_000_000;
            let max = (days_from_civil(10_000, 1, 1)) * 86_400_000_000 - 1;
            let micros = micros.clamp(min, max);
            let (secs, frac) = (micros.div_euclid(1_000_000), micros.rem_euclid(1_000_000));
            let sod = secs.rem_euclid(86_400);
            let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
            format!(
                "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{frac:06}Z",
                sod / 3600,
                (sod / 60) % 60,
                sod % 60
            )
        };
        let mut t = i64::MIN;
        let mut out = String::from("left over");
        for step in [1u64 << 62, 1 << 50, 7_777_777_777_777, 999_999_937] {
            for _ in 0..4000 {
                write_rfc3339(t, &mut out);
                assert_eq!(out, by_format(t), "{t}");
                assert_eq!(out.len(), RFC3339_LEN);
                t = t.saturating_add(step as i64);
            }
            t = -62_167_219_200_000_000 - 5;
        }
        assert_eq!(format_rfc3339(i64::MAX), "9999-12-31T23:59:59.999999Z");
        assert_eq!(format_rfc3339(i64::MIN), "0000-01-01T00:00:00.000000Z");
    }

    #[test]
    fn round_trip_many() {
        let mut t = -86_400_000_000i64 * 365 * 3;
        while t < 4_102_444_800_000_000 {
            let s = format_rfc3339(t);
            assert_eq!(parse_rfc3339(&s), Some(t), "{s}");
            t += 7_777_777_777_777;
        }
    }

    #[test]
    fn offsets_and_fractions() {
        let z = parse_rfc3339("2026-11-22T10:00:00Z").unwrap();
        assert_eq!(parse_rfc3339("2026-11-22T12:00:00+02:00"), Some(z));
        assert_eq!(parse_rfc3339("2026-11-22T09:30:00-00:30"), Some(z));
        assert_eq!(parse_rfc3339("2026-11-22T10:00:00.5Z"), Some(z + 500_000));
        assert_eq!(
            parse_rfc3339("2026-11-22T10:00:00.123456789Z"),
            Some(z + 123_456)
        );
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "2026-11-22",
            "2026-13-01T00:00:00Z",
            "2026-02-30T00:00:00Z",
            "2026-11-22T24:00:00Z",
            "2026-11-22T10:00:00",
            "2026-11-22T10:00:00.Z",
            "2026-11-22T10:00:00+0200",
            "2026-11-22T10:00:00Zjunk",
            "２０２６-11-22T10:00:00Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }
}
