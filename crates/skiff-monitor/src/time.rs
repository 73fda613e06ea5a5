//! UTC timestamps as the kubelet's CRI logs write them. Written here rather than taken from a
//! date crate: the monitor needs exactly two fixed formats and must stay small (skiff-node's
//! tests check both against jiff).

use std::time::{SystemTime, UNIX_EPOCH};

/// Calendar date and time of day (UTC) of a point in time.
struct Civil {
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    nanos: u32,
}

fn civil(t: SystemTime) -> Civil {
    // Before 1970 cannot happen for a clock read now; it maps to the epoch.
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    let (year, month, day) = date_of(days);
    Civil {
        year,
        month,
        day,
        hour: (rem / 3600) as u32,
        minute: (rem % 3600 / 60) as u32,
        second: (rem % 60) as u32,
        nanos: d.subsec_nanos(),
    }
}

/// The proleptic Gregorian date `days` after 1970-01-01: counted in 400-year eras (146 097
/// days each) starting on a 1 March, so that the leap day is the last day of a year.
fn date_of(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468; // days from 0000-03-01 to 1970-01-01
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // day of era, 0..=146096
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // year of era
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // day of year from 1 March
    let mp = (5 * doy + 2) / 153; // month from March = 0
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Go's `time.RFC3339Nano` in UTC: `2006-01-02T15:04:05.999999999Z`, trailing zeros of the
/// fraction trimmed (the format containerd writes CRI logs with).
pub fn rfc3339_nano(t: SystemTime) -> String {
    let c = civil(t);
    let mut s = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        c.year, c.month, c.day, c.hour, c.minute, c.second
    );
    if c.nanos != 0 {
        let frac = format!("{:09}", c.nanos);
        s.push('.');
        s.push_str(frac.trim_end_matches('0'));
    }
    s.push('Z');
    s
}

/// `20060102-150405.000000000`: suffix of rotated log files (the kubelet uses
/// `20060102-150405`; nanoseconds keep names unique under floods, fixed width keeps them
/// sorted).
pub fn rotation_suffix(t: SystemTime) -> String {
    let c = civil(t);
    format!(
        "{:04}{:02}{:02}-{:02}{:02}{:02}.{:09}",
        c.year, c.month, c.day, c.hour, c.minute, c.second, c.nanos
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn formats_like_go_rfc3339nano() {
        let at = |s, n| UNIX_EPOCH + Duration::new(s, n);
        assert_eq!(
            rfc3339_nano(at(1_700_000_000, 123_450_000)),
            "2023-11-14T22:13:20.12345Z"
        );
        assert_eq!(rfc3339_nano(at(951_782_400, 0)), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339_nano(at(0, 1)), "1970-01-01T00:00:00.000000001Z");
        assert_eq!(rfc3339_nano(at(4_107_542_399, 0)), "2100-02-28T23:59:59Z");
        assert_eq!(rfc3339_nano(at(4_107_542_400, 0)), "2100-03-01T00:00:00Z");
        assert_eq!(
            rotation_suffix(at(1_700_000_000, 5)),
            "20231114-221320.000000005"
        );
        assert_eq!(
            rotation_suffix(at(1_700_000_000, 500_000_000)),
            "20231114-221320.500000000"
        );
    }

    #[test]
    fn every_day_of_four_centuries_follows_the_previous_one() {
        let mut prev = date_of(-1);
        for days in 0..146_097 * 2 {
            let d = date_of(days);
            let next_day = (prev.0, prev.1, prev.2 + 1);
            let next_month = (prev.0, prev.1 + 1, 1);
            let next_year = (prev.0 + 1, 1, 1);
            assert!(
                d == next_day || d == next_month || d == next_year,
                "{prev:?} -> {d:?}"
            );
            prev = d;
        }
        assert_eq!(date_of(0), (1970, 1, 1));
        assert_eq!(date_of(11_016), (2000, 2, 29));
    }
}
