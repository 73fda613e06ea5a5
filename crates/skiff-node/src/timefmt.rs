//! Tiny UTC time formatting (no calendar crate needed).

use std::time::{SystemTime, UNIX_EPOCH};

/// Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

struct Parts {
    y: i64,
    mo: u32,
    d: u32,
    h: u64,
    mi: u64,
    s: u64,
    nanos: u32,
}

fn parts(t: SystemTime) -> Parts {
    let dur = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = dur.as_secs();
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, mo, d) = civil_from_days(days);
    Parts {
        y,
        mo,
        d,
        h: rem / 3600,
        mi: (rem % 3600) / 60,
        s: rem % 60,
        nanos: dur.subsec_nanos(),
    }
}

/// Go's `time.RFC3339Nano` in UTC: `2006-01-02T15:04:05.999999999Z`, trailing
/// zeros of the fraction trimmed (the format containerd writes CRI logs with).
pub fn rfc3339_nano(t: SystemTime) -> String {
    let p = parts(t);
    let mut s = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        p.y, p.mo, p.d, p.h, p.mi, p.s
    );
    if p.nanos != 0 {
        let frac = format!("{:09}", p.nanos);
        s.push('.');
        s.push_str(frac.trim_end_matches('0'));
    }
    s.push('Z');
    s
}

/// `20060102-150405.000000000` — suffix for rotated log files (the kubelet
/// uses `20060102-150405`; nanoseconds keep names unique under floods).
pub fn rotation_suffix(t: SystemTime) -> String {
    let p = parts(t);
    format!(
        "{:04}{:02}{:02}-{:02}{:02}{:02}.{:09}",
        p.y, p.mo, p.d, p.h, p.mi, p.s, p.nanos
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn formats_like_go_rfc3339nano() {
        let t = UNIX_EPOCH + Duration::new(1_700_000_000, 123_450_000);
        assert_eq!(rfc3339_nano(t), "2023-11-14T22:13:20.12345Z");
        let t = UNIX_EPOCH + Duration::new(951_782_400, 0); // 2000-02-29
        assert_eq!(rfc3339_nano(t), "2000-02-29T00:00:00Z");
        let t = UNIX_EPOCH + Duration::new(0, 1);
        assert_eq!(rfc3339_nano(t), "1970-01-01T00:00:00.000000001Z");
        assert_eq!(
            rotation_suffix(UNIX_EPOCH + Duration::new(1_700_000_000, 5)),
            "20231114-221320.000000005"
        );
    }
}
