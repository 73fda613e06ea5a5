//! UTC timestamps in the formats the kubelet writes (via jiff, which k8s-openapi already uses).

use std::time::{SystemTime, UNIX_EPOCH};

use k8s_openapi::jiff::Timestamp;

fn timestamp(t: SystemTime) -> Timestamp {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
    // subsec_nanos < 1e9 always fits; out-of-range seconds fall back to the epoch.
    Timestamp::new(secs, d.subsec_nanos() as i32).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// Go's `time.RFC3339Nano` in UTC: `2006-01-02T15:04:05.999999999Z`, trailing
/// zeros of the fraction trimmed (the format containerd writes CRI logs with).
pub fn rfc3339_nano(t: SystemTime) -> String {
    // jiff's Display is RFC 3339 in UTC with only the fraction digits needed.
    timestamp(t).to_string()
}

/// `20060102-150405.000000000` — suffix for rotated log files (the kubelet
/// uses `20060102-150405`; nanoseconds keep names unique under floods).
pub fn rotation_suffix(t: SystemTime) -> String {
    timestamp(t).strftime("%Y%m%d-%H%M%S.%9f").to_string()
}

/// `2006_01_02_15_04_05` in UTC: the kubelet AtomicWriter's timestamped directory names.
pub fn underscore_stamp(t: SystemTime) -> String {
    timestamp(t).strftime("%Y_%m_%d_%H_%M_%S").to_string()
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
        // Fixed width, so rotated files sort by name.
        assert_eq!(
            rotation_suffix(UNIX_EPOCH + Duration::new(1_700_000_000, 500_000_000)),
            "20231114-221320.500000000"
        );
    }
}
