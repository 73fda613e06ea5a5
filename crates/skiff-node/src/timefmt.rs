//! UTC timestamps in the formats the kubelet writes (via jiff, which k8s-openapi already uses).

use std::time::{SystemTime, UNIX_EPOCH};

use k8s_openapi::jiff::Timestamp;

fn timestamp(t: SystemTime) -> Timestamp {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
    // subsec_nanos < 1e9 always fits; out-of-range seconds fall back to the epoch.
    Timestamp::new(secs, d.subsec_nanos() as i32).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// Go's `time.RFC3339Nano` in UTC and the rotated logs' suffix: the monitor writes both (it
/// has no date crate), so there is one implementation, checked against jiff below.
pub use skiff_monitor::time::{rfc3339_nano, rotation_suffix};

/// `2006_01_02_15_04_05` in UTC: the kubelet AtomicWriter's timestamped directory names.
pub fn underscore_stamp(t: SystemTime) -> String {
    timestamp(t).strftime("%Y_%m_%d_%H_%M_%S").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    // The monitor's hand-written formatter (no date crate in it) agrees with jiff's RFC 3339
    // over a spread of instants, leap days and centuries included.
    #[test]
    fn the_monitors_formatter_agrees_with_jiff() {
        let mut secs: u64 = 0;
        while secs < 8_000_000_000 {
            for nanos in [0u32, 1, 500_000_000, 123_456_789] {
                let t = UNIX_EPOCH + Duration::new(secs, nanos);
                assert_eq!(rfc3339_nano(t), timestamp(t).to_string(), "{secs}.{nanos}");
                assert_eq!(
                    rotation_suffix(t),
                    timestamp(t).strftime("%Y%m%d-%H%M%S.%9f").to_string()
                );
            }
            secs += 86_400 * 7 + 3_599;
        }
    }

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
