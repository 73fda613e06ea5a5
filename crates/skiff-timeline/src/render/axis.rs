//! The time axis every rendering shares: record time (ms) → a position in [0, width), with
//! long quiet stretches (nothing starts, ends, fails or changes) compressed to a fixed width
//! and marked, and tick labels whose unit follows the span shown (ms, s, min, h).

use crate::model::Timeline;

/// A stretch of the axis: times `t0..t1` drawn over `x0..x1`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Segment {
    pub t0: i64,
    pub t1: i64,
    pub x0: f64,
    pub x1: f64,
    /// A quiet gap drawn shorter than its time (draw a break mark over it).
    pub compressed: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Axis {
    pub segments: Vec<Segment>,
    pub width: f64,
    pub start_ms: i64,
    pub end_ms: i64,
}

/// How wide a compressed gap is drawn, as a share of the width.
const GAP_SHARE: f64 = 0.03;
/// A quiet stretch longer than this share of the whole is compressed…
const QUIET_SHARE: f64 = 0.12;
/// …and longer than a minute (a pod of minutes is drawn to scale: steady running is news).
const QUIET_MIN_MS: i64 = 60_000;

impl Axis {
    /// The axis for `tl` over `width` units (columns or pixels).
    pub fn build(tl: &Timeline, width: f64) -> Axis {
        let times = interesting_times(tl);
        Axis::from_times(&times, 0, tl.end_ms.max(1), width)
    }

    /// The axis over `start..end` with the given moments of interest.
    pub fn from_times(times: &[i64], start: i64, end: i64, width: f64) -> Axis {
        let end = end.max(start + 1);
        let width = width.max(1.0);
        let total = end - start;
        let quiet = ((total as f64 * QUIET_SHARE) as i64).max(QUIET_MIN_MS);
        // Stretches between consecutive moments of interest: quiet ones get compressed.
        let mut pts: Vec<i64> = times
            .iter()
            .copied()
            .filter(|t| (start..=end).contains(t))
            .collect();
        pts.push(start);
        pts.push(end);
        pts.sort_unstable();
        pts.dedup();
        let mut spans: Vec<(i64, i64, bool)> = Vec::new();
        for w in pts.windows(2) {
            let (a, b) = (w[0], w[1]);
            let gap = b - a > quiet;
            match spans.last_mut() {
                Some(last) if !last.2 && !gap => last.1 = b,
                _ => spans.push((a, b, gap)),
            }
        }
        let spans = with_shoulders(spans);
        let n_gaps = spans.iter().filter(|s| s.2).count() as f64;
        let gap_w = (width * GAP_SHARE).max(1.0);
        let scaled_ms: i64 = spans.iter().filter(|s| !s.2).map(|s| s.1 - s.0).sum();
        let room = (width - gap_w * n_gaps).max(width * 0.5);
        // When everything is a gap (a pod that only idles), draw it to scale.
        let per_ms = if scaled_ms > 0 {
            room / scaled_ms as f64
        } else {
            width / total as f64
        };
        let mut x = 0.0;
        let mut segments = Vec::with_capacity(spans.len());
        for (t0, t1, gap) in spans {
            let compressed = gap && scaled_ms > 0;
            let w = if compressed {
                gap_w
            } else {
                (t1 - t0) as f64 * per_ms
            };
            segments.push(Segment {
                t0,
                t1,
                x0: x,
                x1: x + w,
                compressed,
            });
            x += w;
        }
        // Rounding: the last segment ends exactly at the width.
        let scale = if x > 0.0 { width / x } else { 1.0 };
        for s in &mut segments {
            s.x0 *= scale;
            s.x1 *= scale;
        }
        Axis {
            segments,
            width,
            start_ms: start,
            end_ms: end,
        }
    }

    /// Where time `t` is drawn.
    pub fn x(&self, t: i64) -> f64 {
        let t = t.clamp(self.start_ms, self.end_ms);
        for s in &self.segments {
            if t <= s.t1 {
                let span = (s.t1 - s.t0).max(1) as f64;
                return s.x0 + (s.x1 - s.x0) * ((t - s.t0) as f64 / span);
            }
        }
        self.width
    }

    /// Tick marks: (position, label), a few per scaled segment, in one unit for the axis.
    pub fn ticks(&self, max_ticks: usize) -> Vec<(f64, String)> {
        let total = self.end_ms - self.start_ms;
        let step = nice_step(total / max_ticks.max(1) as i64);
        let mut out = Vec::new();
        let mut t = (self.start_ms / step) * step;
        if t < self.start_ms {
            t += step;
        }
        while t <= self.end_ms {
            // No ticks inside compressed gaps: their labels would pile up.
            if !self
                .segments
                .iter()
                .any(|s| s.compressed && t > s.t0 && t < s.t1)
            {
                out.push((self.x(t), label(t, step)));
            }
            t += step;
        }
        // Each gap gets its far edge labelled, so the jump is readable.
        for s in self.segments.iter().filter(|s| s.compressed) {
            out.push((s.x1, label(s.t1, step)));
        }
        out.sort_by(|a, b| a.0.total_cmp(&b.0));
        out
    }
}

/// Each quiet stretch keeps a shoulder drawn to scale on either side, as long as the busy
/// stretch beside it (1 s to 30 s, at most a quarter of the stretch): what runs into and out
/// of the skipped time shows as running, not as a mark squeezed against the break.
fn with_shoulders(spans: Vec<(i64, i64, bool)>) -> Vec<(i64, i64, bool)> {
    let len = |s: Option<&(i64, i64, bool)>| s.filter(|s| !s.2).map_or(0, |s| s.1 - s.0);
    let mut out: Vec<(i64, i64, bool)> = Vec::with_capacity(spans.len() * 3);
    for (k, &(a, b, gap)) in spans.iter().enumerate() {
        if !gap {
            out.push((a, b, false));
            continue;
        }
        let cap = (b - a) / 4;
        let pad = |n: i64| n.clamp(1_000, 30_000).min(cap);
        let pad_l = pad(len(k.checked_sub(1).and_then(|j| spans.get(j))));
        let pad_r = pad(len(spans.get(k + 1)));
        out.push((a, a + pad_l, false));
        out.push((a + pad_l, b - pad_r, true));
        out.push((b - pad_r, b, false));
    }
    // Neighbouring stretches drawn to scale are one.
    let mut merged: Vec<(i64, i64, bool)> = Vec::with_capacity(out.len());
    for s in out.into_iter().filter(|s| s.1 > s.0) {
        match merged.last_mut() {
            Some(last) if !last.2 && !s.2 => last.1 = s.1,
            _ => merged.push(s),
        }
    }
    merged
}

/// Every moment something happens in `tl` (starts, ends, failures, signals, changes).
pub fn interesting_times(tl: &Timeline) -> Vec<i64> {
    let mut v = Vec::new();
    for i in &tl.instances {
        v.push(i.requested_ms);
        v.extend(i.started_ms);
        v.extend(i.ended_ms());
        v.extend(i.startup_passed_ms);
        for s in [i.image_pull, i.backoff].into_iter().flatten() {
            v.push(s.begin_ms);
            v.extend(s.end_ms);
        }
        for h in [&i.post_start, &i.pre_stop].into_iter().flatten() {
            v.push(h.begin_ms);
            v.extend(h.end_ms);
        }
        for p in &i.probes {
            v.push(p.first_ms);
            if !p.ok {
                v.push(p.last_ms);
            }
        }
        v.extend(i.ready.iter().map(|f| f.at_ms));
        v.extend(i.signals.iter().map(|s| s.at_ms));
        v.extend(i.notes.iter().map(|n| n.at_ms));
    }
    v.extend(tl.pod_marks.iter().map(|m| m.at_ms));
    v
}

/// A round step near `raw` ms: 1, 2, 5 × 10ⁿ ms, then seconds, minutes and hours.
pub fn nice_step(raw: i64) -> i64 {
    const STEPS: &[i64] = &[
        1, 2, 5, 10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 15_000, 30_000, 60_000,
        120_000, 300_000, 600_000, 900_000, 1_800_000, 3_600_000, 7_200_000, 10_800_000,
        21_600_000, 43_200_000, 86_400_000,
    ];
    STEPS
        .iter()
        .copied()
        .find(|s| *s >= raw)
        .unwrap_or(86_400_000)
}

/// `t` in the unit the step calls for: "250ms", "1.5s", "12s", "3m", "1h30m", "2h".
pub fn label(t: i64, step: i64) -> String {
    if step < 1_000 {
        if t < 1_000 {
            format!("{t}ms")
        } else {
            format!("{:.1}s", t as f64 / 1000.0).replace(".0s", "s")
        }
    } else if step < 60_000 {
        let s = t / 1000;
        if s >= 60 {
            format!("{}m{:02}s", s / 60, s % 60)
        } else {
            format!("{s}s")
        }
    } else if step < 3_600_000 {
        let m = t / 60_000;
        if m >= 60 {
            format!("{}h{:02}m", m / 60, m % 60)
        } else {
            format!("{m}m")
        }
    } else {
        format!("{}h", t / 3_600_000)
    }
}

/// A duration for people: "850ms", "1.2s", "45s", "3m20s", "2h05m".
pub fn duration(ms: i64) -> String {
    let ms = ms.max(0);
    if ms < 1_000 {
        format!("{ms}ms")
    } else if ms < 10_000 {
        format!("{:.1}s", ms as f64 / 1000.0)
    } else if ms < 60_000 {
        format!("{}s", ms / 1000)
    } else if ms < 3_600_000 {
        format!("{}m{:02}s", ms / 60_000, (ms / 1000) % 60)
    } else {
        format!("{}h{:02}m", ms / 3_600_000, (ms / 60_000) % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_pod_is_drawn_to_scale() {
        let a = Axis::from_times(&[0, 1000, 2000, 3000], 0, 4000, 100.0);
        assert_eq!(a.segments.len(), 1);
        assert!((a.x(2000) - 50.0).abs() < 1e-9);
    }

    #[test]
    fn a_quiet_hour_is_compressed_and_marked() {
        let hour = 3_600_000;
        // Half a minute of quiet in a short pod stays to scale.
        let a = Axis::from_times(&[0, 1000, 31_000], 0, 32_000, 100.0);
        assert!(a.segments.iter().all(|s| !s.compressed), "{a:?}");
        let a = Axis::from_times(&[0, 1000, 2000, hour, hour + 1000], 0, hour + 2000, 100.0);
        let gaps: Vec<_> = a.segments.iter().filter(|s| s.compressed).collect();
        assert_eq!(gaps.len(), 1, "{a:?}");
        assert!(gaps[0].x1 - gaps[0].x0 <= 3.5);
        // Both busy stretches (2 s each, with 2 s shoulders) get most of the width.
        assert!(a.x(2000) > 20.0, "{}", a.x(2000));
        assert!(a.x(4000) < 50.0 && a.x(hour - 2000) > 50.0);
        assert!((a.x(hour + 2000) - 100.0).abs() < 1e-9);
        // Monotonic.
        let xs: Vec<f64> = (0..=20).map(|k| a.x(k * (hour + 2000) / 20)).collect();
        assert!(xs.windows(2).all(|w| w[0] <= w[1]), "{xs:?}");
    }

    #[test]
    fn labels_follow_the_scale() {
        assert_eq!(label(250, 50), "250ms");
        assert_eq!(label(1500, 500), "1.5s");
        assert_eq!(label(90_000, 10_000), "1m30s");
        assert_eq!(label(5_400_000, 600_000), "1h30m");
        assert_eq!(label(7_200_000, 3_600_000), "2h");
        assert_eq!(duration(61_000), "1m01s");
    }
}
