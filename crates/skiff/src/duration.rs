//! Durations on the command line, as kubectl takes them: Go's `time.ParseDuration` syntax
//! (`90s`, `2m`, `1h30m`, `1.5h`, `300ms`), and — like kubectl's `--request-timeout` — a bare
//! integer is seconds (`--timeout 90`), which also keeps the old integer form working.
//!
//! Hand-written: the grammar is small and the Rust duration crates either take other forms
//! (`1 hour`, spaces) or reject Go's (`1.5h`, `µs`), while skiff must accept exactly what
//! kubectl accepts and report errors in Go's words.

use std::time::Duration;

/// Nanoseconds per unit, Go's unit names.
const UNITS: [(&str, u128); 8] = [
    ("ns", 1),
    ("us", 1_000),
    ("µs", 1_000), // U+00B5 micro sign
    ("μs", 1_000), // U+03BC Greek mu
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
];

/// Go's limit: a `time.Duration` is an int64 of nanoseconds (about 292 years).
const MAX_NANOS: u128 = i64::MAX as u128;

/// Parses `s` as Go's `time.ParseDuration` does, into signed nanoseconds. Errors are Go's
/// messages.
pub fn parse_go(s: &str) -> Result<i128, String> {
    let invalid = || format!("time: invalid duration {s:?}");
    let (neg, mut rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total: u128 = 0;
    while !rest.is_empty() {
        // The number: digits, optionally `.` and more digits; at least one digit in all.
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (int_part, after) = rest.split_at(int_len);
        let (frac_part, after) = match after.strip_prefix('.') {
            Some(a) => {
                let n = a.bytes().take_while(u8::is_ascii_digit).count();
                a.split_at(n)
            }
            None if int_len == 0 => return Err(invalid()),
            None => ("", after),
        };
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(invalid());
        }
        // The unit: everything up to the next number.
        let unit_len = after
            .char_indices()
            .find(|(_, c)| *c == '.' || c.is_ascii_digit())
            .map_or(after.len(), |(i, _)| i);
        let (unit, next) = after.split_at(unit_len);
        if unit.is_empty() {
            return Err(format!("time: missing unit in duration {s:?}"));
        }
        let Some(&(_, per)) = UNITS.iter().find(|(name, _)| *name == unit) else {
            return Err(format!("time: unknown unit {unit:?} in duration {s:?}"));
        };
        let mut int: u128 = 0;
        for d in int_part.bytes() {
            int = int
                .checked_mul(10)
                .and_then(|v| v.checked_add(u128::from(d - b'0')))
                .filter(|v| *v <= MAX_NANOS)
                .ok_or_else(invalid)?;
        }
        // Fractional digits past 10^18 of precision change nothing a nanosecond can show.
        let (mut frac, mut scale): (u128, u128) = (0, 1);
        for d in frac_part.bytes() {
            if scale >= 1_000_000_000_000_000_000 {
                break;
            }
            frac = frac * 10 + u128::from(d - b'0');
            scale *= 10;
        }
        let value = int
            .checked_mul(per)
            .and_then(|v| v.checked_add(frac * per / scale))
            .ok_or_else(invalid)?;
        total = total
            .checked_add(value)
            .filter(|v| *v <= MAX_NANOS)
            .ok_or_else(invalid)?;
        rest = next;
    }
    let total = i128::try_from(total).map_err(|_| invalid())?;
    Ok(if neg { -total } else { total })
}

/// A duration flag value: a bare integer is seconds, anything else Go syntax. Negative values
/// are refused. For clap's `value_parser`.
pub fn parse_flag(s: &str) -> Result<Duration, String> {
    let hint = "(a Go duration such as 90s, 2m or 1h30m, or whole seconds)";
    let nanos = if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        let secs: u64 = s
            .parse()
            .map_err(|_| format!("{s:?} is too large {hint}"))?;
        i128::from(secs) * 1_000_000_000
    } else {
        parse_go(s).map_err(|e| format!("{e} {hint}"))?
    };
    if nanos < 0 {
        return Err(format!("{s:?} is negative {hint}"));
    }
    let nanos = u128::try_from(nanos).unwrap_or(0);
    let secs = u64::try_from(nanos / 1_000_000_000).unwrap_or(u64::MAX);
    let sub = u32::try_from(nanos % 1_000_000_000).unwrap_or(0);
    Ok(Duration::new(secs, sub))
}

/// `d` in Go's `Duration.String` form, as kubectl echoes flag values: `1h30m0s`, `1.5s`,
/// `300ms`, `0s`.
pub fn format_go(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".into();
    }
    if nanos < 1_000_000_000 {
        // Sub-second: the largest unit that keeps an integer part.
        let (per, unit) = if nanos < 1_000 {
            (1, "ns")
        } else if nanos < 1_000_000 {
            (1_000, "µs")
        } else {
            (1_000_000, "ms")
        };
        return format!("{}{unit}", fraction(nanos, per));
    }
    let secs = nanos / 1_000_000_000;
    let (h, m) = (secs / 3600, (secs / 60) % 60);
    let s = fraction(nanos % 60_000_000_000, 1_000_000_000);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if h > 0 || m > 0 {
        out.push_str(&format!("{m}m"));
    }
    out.push_str(&format!("{s}s"));
    out
}

/// `value / per` with the remainder as decimals, trailing zeros dropped.
fn fraction(value: u128, per: u128) -> String {
    let int = value / per;
    let rem = value % per;
    if rem == 0 {
        return int.to_string();
    }
    let width = per.to_string().len() - 1;
    let digits = format!("{rem:0width$}");
    format!("{int}.{}", digits.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const S: i128 = 1_000_000_000;

    #[test]
    fn go_forms() {
        assert_eq!(parse_go("90s"), Ok(90 * S));
        assert_eq!(parse_go("2m"), Ok(120 * S));
        assert_eq!(parse_go("1h30m"), Ok(5400 * S));
        assert_eq!(parse_go("1.5h"), Ok(5400 * S));
        assert_eq!(parse_go(".5s"), Ok(S / 2));
        assert_eq!(parse_go("1.s"), Ok(S));
        assert_eq!(parse_go("300ms"), Ok(300_000_000));
        assert_eq!(parse_go("1µs"), Ok(1_000));
        assert_eq!(parse_go("1μs"), Ok(1_000));
        assert_eq!(parse_go("2us3ns"), Ok(2_003));
        assert_eq!(parse_go("0"), Ok(0));
        assert_eq!(parse_go("-0"), Ok(0));
        assert_eq!(parse_go("+5s"), Ok(5 * S));
        assert_eq!(parse_go("-1m"), Ok(-60 * S));
        assert_eq!(parse_go("1m1m"), Ok(120 * S), "units may repeat, as in Go");
        assert_eq!(
            parse_go("2562047h47m16.854775807s"),
            Ok(i128::from(i64::MAX))
        );
        assert_eq!(parse_go("0.1234567891ns"), Ok(0));
    }

    #[test]
    fn go_errors() {
        assert_eq!(parse_go(""), Err("time: invalid duration \"\"".into()));
        assert_eq!(parse_go("-"), Err("time: invalid duration \"-\"".into()));
        assert_eq!(
            parse_go("abc"),
            Err("time: invalid duration \"abc\"".into())
        );
        assert_eq!(parse_go(".s"), Err("time: invalid duration \".s\"".into()));
        assert_eq!(
            parse_go("1.5"),
            Err("time: missing unit in duration \"1.5\"".into())
        );
        assert_eq!(
            parse_go("90"),
            Err("time: missing unit in duration \"90\"".into())
        );
        assert_eq!(
            parse_go("1d"),
            Err("time: unknown unit \"d\" in duration \"1d\"".into())
        );
        assert_eq!(
            parse_go("1h 30m"),
            Err("time: unknown unit \"h \" in duration \"1h 30m\"".into())
        );
        assert_eq!(
            parse_go("2562048h"),
            Err("time: invalid duration \"2562048h\"".into())
        );
        assert_eq!(
            parse_go("99999999999999999999999s"),
            Err("time: invalid duration \"99999999999999999999999s\"".into())
        );
    }

    #[test]
    fn flag_takes_bare_seconds_and_refuses_negatives() {
        assert_eq!(parse_flag("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_flag("0"), Ok(Duration::ZERO));
        assert_eq!(parse_flag("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_flag("1.5s"), Ok(Duration::from_millis(1500)));
        let e = parse_flag("-5s").unwrap_err();
        assert!(e.contains("negative"), "{e}");
        let e = parse_flag("5x").unwrap_err();
        assert!(e.starts_with("time: unknown unit \"x\""), "{e}");
        assert!(
            e.contains("1h30m"),
            "the error shows the accepted forms: {e}"
        );
        assert!(parse_flag("99999999999999999999999").is_err());
    }

    #[test]
    fn go_string_form() {
        assert_eq!(format_go(Duration::ZERO), "0s");
        assert_eq!(format_go(Duration::from_secs(90)), "1m30s");
        assert_eq!(format_go(Duration::from_secs(5400)), "1h30m0s");
        assert_eq!(format_go(Duration::from_secs(2)), "2s");
        assert_eq!(format_go(Duration::from_millis(1500)), "1.5s");
        assert_eq!(format_go(Duration::from_millis(300)), "300ms");
        assert_eq!(format_go(Duration::from_micros(2)), "2µs");
        assert_eq!(format_go(Duration::from_nanos(7)), "7ns");
    }
}
