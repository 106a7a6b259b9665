//! RFC 3339 `date-time` (the SIWE times) to and from milliseconds since the Unix
//! epoch, without a clock (ATT-31).
//!
//! Accepted: `YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM)`, with an upper-case
//! `T` and `Z`, a real calendar date, hours 0-23, minutes and seconds 0-59 (no leap
//! second), 1 to 9 fraction digits (truncated to milliseconds), offsets up to
//! ±23:59. Years 0000-9999.

/// Days from 1970-01-01 to the civil date (proleptic Gregorian).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date of a day count from 1970-01-01.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

/// `n` ASCII digits at the start of `s` as a number, and the rest.
fn digits(s: &[u8], n: usize) -> Option<(i64, &[u8])> {
    let (head, rest) = s.split_at_checked(n)?;
    let mut v = 0i64;
    for &b in head {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v * 10 + i64::from(b - b'0');
    }
    Some((v, rest))
}

fn expect(s: &[u8], c: u8) -> Option<&[u8]> {
    match s.split_first() {
        Some((&b, rest)) if b == c => Some(rest),
        _ => None,
    }
}

/// Milliseconds since 1970-01-01T00:00:00Z of an RFC 3339 date-time.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let (year, b) = digits(b, 4)?;
    let b = expect(b, b'-')?;
    let (month, b) = digits(b, 2)?;
    let b = expect(b, b'-')?;
    let (day, b) = digits(b, 2)?;
    let b = expect(b, b'T')?;
    let (hour, b) = digits(b, 2)?;
    let b = expect(b, b':')?;
    let (minute, b) = digits(b, 2)?;
    let b = expect(b, b':')?;
    let (second, mut b) = digits(b, 2)?;
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    let mut millis = 0i64;
    if let Some(rest) = expect(b, b'.') {
        let n = rest.iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 || n > 9 {
            return None;
        }
        let (frac, rest) = digits(rest, n)?;
        millis = match n {
            1 => frac * 100,
            2 => frac * 10,
            3 => frac,
            _ => frac / 10i64.pow(u32::try_from(n - 3).ok()?),
        };
        b = rest;
    }
    let offset_min = match b.split_first() {
        Some((b'Z', [])) => 0,
        Some((&sign @ (b'+' | b'-'), rest)) => {
            let (oh, rest) = digits(rest, 2)?;
            let rest = expect(rest, b':')?;
            let (om, rest) = digits(rest, 2)?;
            if !rest.is_empty() || oh > 23 || om > 59 {
                return None;
            }
            let m = oh * 60 + om;
            if sign == b'-' { -m } else { m }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset_min * 60;
    Some(secs * 1000 + millis)
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` of milliseconds since the epoch (what JavaScript's
/// `Date.toISOString` writes for years 0-9999).
pub fn format_rfc3339(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        sod / 3600,
        (sod % 3600) / 60,
        sod % 60
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn known_times() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_rfc3339("2021-09-30T16:25:24.000Z"),
            Some(1_633_019_124_000)
        );
        assert_eq!(
            parse_rfc3339("2021-09-30T18:25:24.5+02:00"),
            Some(1_633_019_124_500)
        );
        assert_eq!(
            parse_rfc3339("2021-09-30T16:25:24.123456789Z"),
            Some(1_633_019_124_123)
        );
        assert_eq!(
            parse_rfc3339("2024-02-29T00:00:00Z"),
            Some(1_709_164_800_000)
        );
        for bad in [
            "2023-02-29T00:00:00Z",
            "2021-13-01T00:00:00Z",
            "2021-09-30T24:00:00Z",
            "2021-09-30T16:25:60Z",
            "2021-09-30 16:25:24Z",
            "2021-09-30T16:25:24",
            "2021-09-30T16:25:24.Z",
            "2021-09-30T16:25:24z",
            "2021-09-30T16:25:24+0200",
            "2021-09-30T16:25:24.0000000000Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn format_round_trips() {
        for ms in [0, 1_633_019_124_123, 1_797_000_000_000, 253_402_300_799_999] {
            assert_eq!(parse_rfc3339(&format_rfc3339(ms)), Some(ms));
        }
        assert_eq!(
            format_rfc3339(1_633_019_124_000),
            "2021-09-30T16:25:24.000Z"
        );
    }
}
