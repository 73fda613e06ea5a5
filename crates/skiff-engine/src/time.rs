//! Time as an input: milliseconds since the Unix epoch. The engine never reads a clock.

use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time as MetaTime;

/// A point in time, in milliseconds since the Unix epoch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Time(pub i64);

impl Time {
    pub const fn from_millis(ms: i64) -> Self {
        Time(ms)
    }

    pub const fn from_secs(s: i64) -> Self {
        Time(s.saturating_mul(1000))
    }

    pub const fn millis(self) -> i64 {
        self.0
    }

    pub const fn add_millis(self, ms: i64) -> Self {
        Time(self.0.saturating_add(ms))
    }

    pub const fn add_secs(self, s: i64) -> Self {
        Time(self.0.saturating_add(s.saturating_mul(1000)))
    }

    /// `self - earlier` in milliseconds (negative if `earlier` is later).
    pub const fn millis_since(self, earlier: Time) -> i64 {
        self.0.saturating_sub(earlier.0)
    }

    /// Whole seconds elapsed, truncated toward zero like Go's `int64(d.Seconds())`.
    pub const fn whole_secs_since(self, earlier: Time) -> i64 {
        self.millis_since(earlier) / 1000
    }

    /// RFC 3339 in UTC with second precision, as the API server serialises `metav1.Time`.
    pub fn to_rfc3339(self) -> String {
        self.to_meta().0.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
    }

    /// The API type, truncated to whole seconds (the API's precision).
    pub fn to_meta(self) -> MetaTime {
        let secs = self.0.div_euclid(1000);
        MetaTime(
            k8s_openapi::jiff::Timestamp::from_second(secs)
                .unwrap_or(k8s_openapi::jiff::Timestamp::UNIX_EPOCH),
        )
    }
}

impl fmt::Display for Time {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

/// Formats a duration like Go's `time.Duration.String()` (`10s`, `1m20s`, `5m0s`, `1.5s`, `500ms`).
pub fn go_duration(ms: i64) -> String {
    if ms == 0 {
        return "0s".into();
    }
    let neg = ms < 0;
    let ms = ms.unsigned_abs();
    let sign = if neg { "-" } else { "" };
    if ms < 1000 {
        return format!("{sign}{ms}ms");
    }
    let h = ms / 3_600_000;
    let m = (ms / 60_000) % 60;
    let s = (ms / 1000) % 60;
    let frac = ms % 1000;
    let mut secs = s.to_string();
    if frac != 0 {
        let f = format!("{frac:03}");
        secs.push('.');
        secs.push_str(f.trim_end_matches('0'));
    }
    let mut out = String::from(sign);
    if h > 0 {
        out.push_str(&format!("{h}h{m}m"));
    } else if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    out.push_str(&secs);
    out.push('s');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_formats_utc_seconds() {
        assert_eq!(Time::from_millis(0).to_rfc3339(), "1970-01-01T00:00:00Z");
        assert_eq!(
            Time::from_millis(1_700_000_000_999).to_rfc3339(),
            "2023-11-14T22:13:20Z"
        );
        assert_eq!(
            Time::from_secs(951_782_400).to_rfc3339(),
            "2000-02-29T00:00:00Z"
        );
    }

    #[test]
    fn go_durations() {
        assert_eq!(go_duration(10_000), "10s");
        assert_eq!(go_duration(80_000), "1m20s");
        assert_eq!(go_duration(300_000), "5m0s");
        assert_eq!(go_duration(3_600_000), "1h0m0s");
        assert_eq!(go_duration(1_500), "1.5s");
        assert_eq!(go_duration(500), "500ms");
    }
}
