//! Event correlation for `skiff run`'s live stream: repeated events are counted instead of
//! printed once per probe period, the way the kubelet's event correlator (client-go
//! `tools/record/events_cache.go`) counts them for `kubectl describe`'s `(x5 over 7s)`.
//!
//! Which events are the same, as upstream:
//! - **Identical** events — same container, type, reason and message — are one entry whose
//!   count grows (the correlator's event logger).
//! - **Similar** events — same container, type and reason, different message — are
//!   aggregated once 10 different messages were seen with no gap over 10 minutes: from the
//!   10th on, the message becomes `(combined from similar events): <latest message>` and they
//!   count as one entry (the correlator's aggregator). Upstream groups similar events per pod,
//!   whatever the container; skiff groups them per container, so that ten containers starting
//!   are not "combined".
//! - The kubelet's spam filter (25 events per pod, then one per 5 minutes) drops events on
//!   their way to the API server; a terminal loses nothing, so it is not applied.
//!
//! When a line is printed (skiff's choice, for a stream read as it scrolls):
//! - the first occurrence of an entry at once;
//! - a repeat at once if the entry's last line is at least its interval old, else it is held;
//!   the interval starts at 10 s and doubles with each line of the entry, up to 5 minutes (the
//!   spam filter's refill period), so a probe failing every period prints at 0, 10 s, 30 s,
//!   70 s, … then every 5 minutes, each line with the count so far (`(x7 over 1m10s)`);
//! - held repeats are printed, oldest first, before any other event line (so the stream stays
//!   in order), before a line of their container's output (so a restarted container's Started
//!   event comes before what it prints), when their interval is up ([`Correlator::tick`]),
//!   and at the end ([`Correlator::flush_all`]).

use std::collections::{HashMap, HashSet};

use skiff_engine::{Event, EventType, Time};

/// The first interval between two lines of one entry.
pub const INITIAL_INTERVAL_MS: i64 = 10_000;
/// The longest interval between two lines of one entry.
pub const MAX_INTERVAL_MS: i64 = 300_000;
/// Different messages of similar events before they are combined (upstream's default).
const AGGREGATE_MAX_MESSAGES: usize = 10;
/// How long similar events are remembered after the last one (upstream's default).
const AGGREGATE_WINDOW_MS: i64 = 600_000;
/// Entries kept at most (upstream's LRU size); the least recently seen one is forgotten.
const MAX_ENTRIES: usize = 4096;

const COMBINED_PREFIX: &str = "(combined from similar events): ";

/// One event line to print.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    /// The latest occurrence (its message, for a combined entry).
    pub event: Event,
    /// When it last occurred.
    pub at: Time,
    /// How often it occurred so far.
    pub count: u32,
    /// When it first occurred.
    pub first: Time,
}

impl Line {
    /// `x5 over 7s` for a repeated event (kubectl describe's words), `None` for a first one.
    pub fn repeats(&self) -> Option<String> {
        (self.count > 1).then(|| {
            format!(
                "x{} over {}",
                self.count,
                human_duration_ms(self.at.millis_since(self.first))
            )
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Key {
    container: Option<String>,
    warning: bool,
    reason: String,
    /// `None` for the combined entry of similar events.
    message: Option<String>,
}

#[derive(Debug)]
struct Entry {
    event: Event,
    count: u32,
    first: Time,
    last: Time,
    printed_at: Time,
    printed_count: u32,
    interval_ms: i64,
}

impl Entry {
    fn held(&self) -> bool {
        self.count > self.printed_count
    }

    fn due(&self) -> Time {
        self.printed_at.add_millis(self.interval_ms)
    }

    fn line(&self) -> Line {
        Line {
            event: self.event.clone(),
            at: self.last,
            count: self.count,
            first: self.first,
        }
    }

    /// Marks the entry printed now (`at`) and widens its interval.
    fn printed(&mut self, at: Time) -> Line {
        self.printed_at = at;
        self.printed_count = self.count;
        self.interval_ms = self.interval_ms.saturating_mul(2).min(MAX_INTERVAL_MS);
        self.line()
    }
}

#[derive(Debug, Default)]
struct Similar {
    messages: HashSet<String>,
    last: Time,
}

/// The correlator (see the module docs). Pure: time comes in with each call.
#[derive(Debug, Default)]
pub struct Correlator {
    entries: HashMap<Key, Entry>,
    /// Keys of entries with unprinted repeats.
    held: Vec<Key>,
    similar: HashMap<(Option<String>, bool, String), Similar>,
}

impl Correlator {
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes one event that occurred at `at`; returns the lines to print now, in order.
    pub fn observe(&mut self, event: Event, at: Time) -> Vec<Line> {
        let (event, key) = self.aggregate(event, at);
        let mut out = Vec::new();
        match self.entries.get_mut(&key) {
            None => {
                out = self.flush_all_but(None, at);
                let entry = Entry {
                    event,
                    count: 1,
                    first: at,
                    last: at,
                    printed_at: at,
                    printed_count: 1,
                    interval_ms: INITIAL_INTERVAL_MS,
                };
                out.push(entry.line());
                self.entries.insert(key, entry);
                self.forget_old();
            }
            Some(entry) => {
                entry.count = entry.count.saturating_add(1);
                entry.last = at;
                entry.event = event;
                if at >= entry.due() {
                    out = self.flush_all_but(Some(&key), at);
                    self.held.retain(|k| *k != key);
                    if let Some(entry) = self.entries.get_mut(&key) {
                        out.push(entry.printed(at));
                    }
                } else if !self.held.contains(&key) {
                    self.held.push(key);
                }
            }
        }
        out
    }

    /// When the next held repeat is due ([`Correlator::tick`]), if any is held.
    pub fn next_due(&self) -> Option<Time> {
        self.held
            .iter()
            .filter_map(|k| self.entries.get(k))
            .map(Entry::due)
            .min()
    }

    /// The held repeats whose interval is up at `now`.
    pub fn tick(&mut self, now: Time) -> Vec<Line> {
        self.flush_where(now, |e| e.due() <= now)
    }

    /// The held repeats of container `name` (before a line of its output is printed).
    pub fn flush_container(&mut self, name: &str, now: Time) -> Vec<Line> {
        if self.held.is_empty() {
            return Vec::new();
        }
        self.flush_where(now, |e| e.event.container.as_deref() == Some(name))
    }

    /// Every held repeat (at the end of the run).
    pub fn flush_all(&mut self, now: Time) -> Vec<Line> {
        self.flush_where(now, |_| true)
    }

    fn flush_all_but(&mut self, except: Option<&Key>, now: Time) -> Vec<Line> {
        if self.held.is_empty() {
            return Vec::new();
        }
        let keep: Vec<Key> = except.into_iter().cloned().collect();
        let held = std::mem::take(&mut self.held);
        let (flush, stay): (Vec<Key>, Vec<Key>) = held.into_iter().partition(|k| !keep.contains(k));
        self.held = stay;
        self.print_keys(flush, now)
    }

    fn flush_where(&mut self, now: Time, pred: impl Fn(&Entry) -> bool) -> Vec<Line> {
        let held = std::mem::take(&mut self.held);
        let (flush, stay): (Vec<Key>, Vec<Key>) = held
            .into_iter()
            .partition(|k| self.entries.get(k).is_some_and(&pred));
        self.held = stay;
        self.print_keys(flush, now)
    }

    /// Lines for `keys`' entries, oldest last occurrence first.
    fn print_keys(&mut self, keys: Vec<Key>, now: Time) -> Vec<Line> {
        let mut lines = Vec::new();
        for k in &keys {
            if let Some(e) = self.entries.get_mut(k).filter(|e| e.held()) {
                lines.push(e.printed(now));
            }
        }
        lines.sort_by_key(|l| l.at);
        lines
    }

    /// Upstream's aggregator: the (possibly combined) event and its entry key.
    fn aggregate(&mut self, event: Event, at: Time) -> (Event, Key) {
        let warning = event.type_ == EventType::Warning;
        let group = (event.container.clone(), warning, event.reason.clone());
        let rec = self.similar.entry(group).or_default();
        if at.millis_since(rec.last) > AGGREGATE_WINDOW_MS {
            rec.messages.clear();
        }
        rec.messages.insert(event.message.clone());
        rec.last = at;
        let combined = rec.messages.len() >= AGGREGATE_MAX_MESSAGES;
        if combined {
            // Keep the set below the limit: every further new message is combined too.
            rec.messages.remove(&event.message);
        }
        if self.similar.len() > MAX_ENTRIES {
            if let Some(oldest) = self
                .similar
                .iter()
                .min_by_key(|(_, s)| s.last)
                .map(|(k, _)| k.clone())
            {
                self.similar.remove(&oldest);
            }
        }
        let key = Key {
            container: event.container.clone(),
            warning,
            reason: event.reason.clone(),
            message: (!combined).then(|| event.message.clone()),
        };
        let event = if combined {
            Event {
                message: format!("{COMBINED_PREFIX}{}", event.message),
                ..event
            }
        } else {
            event
        };
        (event, key)
    }

    /// Bounds memory: past [`MAX_ENTRIES`], the least recently seen entry without held
    /// repeats is forgotten (a later occurrence starts a new count).
    fn forget_old(&mut self) {
        if self.entries.len() <= MAX_ENTRIES {
            return;
        }
        if let Some(oldest) = self
            .entries
            .iter()
            .filter(|(_, e)| !e.held())
            .min_by_key(|(_, e)| e.last)
            .map(|(k, _)| k.clone())
        {
            self.entries.remove(&oldest);
        }
    }
}

/// kubectl's `HumanDuration` (apimachinery `util/duration`): `7s`, `2m5s`, `15m`, `3h4m`,
/// `2d3h`, … about two significant figures.
pub fn human_duration_ms(ms: i64) -> String {
    let secs = ms / 1000;
    if secs < -1 {
        return "<invalid>".into();
    }
    if secs < 0 {
        return "0s".into();
    }
    if secs < 120 {
        return format!("{secs}s");
    }
    let minutes = secs / 60;
    if minutes < 10 {
        return match secs % 60 {
            0 => format!("{minutes}m"),
            s => format!("{minutes}m{s}s"),
        };
    }
    if minutes < 180 {
        return format!("{minutes}m");
    }
    let hours = secs / 3600;
    if hours < 8 {
        return match minutes % 60 {
            0 => format!("{hours}h"),
            m => format!("{hours}h{m}m"),
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        return match hours % 24 {
            0 => format!("{}d", hours / 24),
            h => format!("{}d{h}h", hours / 24),
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let years = hours / 24 / 365;
        return match (hours / 24) % 365 {
            0 => format!("{years}y"),
            d => format!("{years}y{d}d"),
        };
    }
    format!("{}y", hours / 24 / 365)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(container: &str, warning: bool, reason: &str, message: &str) -> Event {
        Event {
            type_: if warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: reason.into(),
            message: message.into(),
            container: (!container.is_empty()).then(|| container.to_string()),
        }
    }

    fn t(s: f64) -> Time {
        Time::from_millis((s * 1000.0) as i64)
    }

    fn unhealthy() -> Event {
        ev("app", true, "Unhealthy", "Readiness probe failed: nope")
    }

    /// (message, count) of each line.
    fn show(lines: &[Line]) -> Vec<(String, u32)> {
        lines
            .iter()
            .map(|l| (l.event.reason.clone(), l.count))
            .collect()
    }

    #[test]
    fn first_occurrence_prints_at_once_repeats_are_held_then_counted() {
        let mut c = Correlator::new();
        let first = c.observe(unhealthy(), t(0.0));
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].repeats(), None);
        // A probe period of 1 s: repeats within the 10 s interval are held.
        for i in 1..10 {
            assert!(c.observe(unhealthy(), t(f64::from(i))).is_empty(), "{i}");
        }
        assert_eq!(c.next_due(), Some(t(10.0)));
        assert!(c.tick(t(9.9)).is_empty());
        let due = c.tick(t(10.0));
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].count, 10);
        assert_eq!(due[0].at, t(9.0));
        assert_eq!(due[0].repeats().as_deref(), Some("x10 over 9s"));
        assert_eq!(c.next_due(), None, "nothing held any more");
    }

    #[test]
    fn the_interval_doubles_to_five_minutes() {
        let mut c = Correlator::new();
        let mut printed_at = Vec::new();
        // One failure per second for an hour, printed lines' times recorded.
        for s in 0..3600 {
            let now = t(f64::from(s));
            let mut lines = c.tick(now);
            lines.extend(c.observe(unhealthy(), now));
            if !lines.is_empty() {
                printed_at.push(s);
            }
        }
        assert_eq!(&printed_at[..7], &[0, 10, 30, 70, 150, 310, 610]);
        let gaps: Vec<i32> = printed_at.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(gaps[6..].iter().all(|g| *g == 300), "{gaps:?}");
        assert!(
            printed_at.len() < 20,
            "{} lines in an hour",
            printed_at.len()
        );
        let end = c.flush_all(t(3600.0));
        assert_eq!(end.len(), 1);
        assert_eq!(end[0].count, 3600);
        assert_eq!(end[0].repeats().as_deref(), Some("x3600 over 59m"));
    }

    #[test]
    fn a_repeat_after_its_interval_prints_at_once() {
        let mut c = Correlator::new();
        c.observe(ev("app", false, "Started", "Started container app"), t(0.0));
        // A restart after a 10 s back-off.
        let again = c.observe(
            ev("app", false, "Started", "Started container app"),
            t(10.5),
        );
        assert_eq!(show(&again), [("Started".to_string(), 2)]);
        assert_eq!(again[0].repeats().as_deref(), Some("x2 over 10s"));
    }

    #[test]
    fn a_new_event_flushes_held_repeats_first_in_order() {
        let mut c = Correlator::new();
        c.observe(unhealthy(), t(0.0));
        let live = ev("app", true, "Unhealthy", "Liveness probe failed: nope");
        c.observe(live.clone(), t(0.5));
        c.observe(live.clone(), t(1.5));
        c.observe(unhealthy(), t(1.0));
        c.observe(unhealthy(), t(2.0));
        let kill = ev(
            "app",
            false,
            "Killing",
            "Container app failed liveness probe",
        );
        let lines = c.observe(kill, t(3.0));
        let got: Vec<(String, u32, Time)> = lines
            .iter()
            .map(|l| (l.event.message.clone(), l.count, l.at))
            .collect();
        assert_eq!(
            got,
            [
                ("Liveness probe failed: nope".to_string(), 2, t(1.5)),
                ("Readiness probe failed: nope".to_string(), 3, t(2.0)),
                ("Container app failed liveness probe".to_string(), 1, t(3.0)),
            ]
        );
    }

    #[test]
    fn output_of_a_container_flushes_only_its_held_events() {
        let mut c = Correlator::new();
        let started = |n: &str| ev(n, false, "Started", &format!("Started container {n}"));
        c.observe(started("a"), t(0.0));
        c.observe(started("b"), t(0.0));
        c.observe(started("a"), t(1.0));
        c.observe(started("b"), t(1.0));
        let a = c.flush_container("a", t(1.1));
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].event.container.as_deref(), Some("a"));
        assert_eq!(a[0].count, 2);
        assert!(c.flush_container("a", t(1.2)).is_empty());
        assert_eq!(c.flush_all(t(2.0)).len(), 1, "b still held until the end");
    }

    #[test]
    fn ten_different_messages_are_combined() {
        let mut c = Correlator::new();
        let mut printed = Vec::new();
        for i in 0..15 {
            let e = ev(
                "app",
                true,
                "Unhealthy",
                &format!("Readiness probe failed: {i}"),
            );
            printed.extend(c.observe(e, t(f64::from(i))));
        }
        printed.extend(c.flush_all(t(20.0)));
        let msgs: Vec<&str> = printed.iter().map(|l| l.event.message.as_str()).collect();
        // Nine plain ones, then one combined entry: its first line, then its count at the end.
        assert_eq!(msgs.len(), 11, "{msgs:?}");
        assert_eq!(msgs[8], "Readiness probe failed: 8");
        assert_eq!(
            msgs[9],
            "(combined from similar events): Readiness probe failed: 9"
        );
        assert_eq!(
            msgs[10],
            "(combined from similar events): Readiness probe failed: 14"
        );
        assert_eq!(printed[10].count, 6);
        assert_eq!(printed[10].repeats().as_deref(), Some("x6 over 5s"));
        // Another container's events are not combined with these.
        let other = c.observe(
            ev("db", true, "Unhealthy", "Readiness probe failed: 99"),
            t(21.0),
        );
        assert_eq!(other[0].event.message, "Readiness probe failed: 99");
    }

    #[test]
    fn similar_messages_are_forgotten_after_ten_quiet_minutes() {
        let mut c = Correlator::new();
        for i in 0..9 {
            c.observe(
                ev("app", true, "Unhealthy", &format!("m{i}")),
                t(f64::from(i)),
            );
        }
        let later = c.observe(ev("app", true, "Unhealthy", "m9"), t(700.0));
        assert_eq!(
            later[0].event.message, "m9",
            "window restarted: not combined"
        );
    }

    #[test]
    fn memory_is_bounded() {
        let mut c = Correlator::new();
        for i in 0..(MAX_ENTRIES + 100) {
            let e = ev(&format!("c{i}"), false, "Started", "x");
            c.observe(e, t(i as f64));
        }
        assert!(c.entries.len() <= MAX_ENTRIES);
        assert!(c.similar.len() <= MAX_ENTRIES + 1);
    }

    #[test]
    fn human_durations_as_kubectl() {
        let cases = [
            (0, "0s"),
            (-1500, "0s"),
            (-3000, "<invalid>"),
            (7_000, "7s"),
            (119_000, "119s"),
            (120_000, "2m"),
            (125_000, "2m5s"),
            (600_000, "10m"),
            (179 * 60_000, "179m"),
            (3 * 3_600_000, "3h"),
            (3 * 3_600_000 + 240_000, "3h4m"),
            (8 * 3_600_000 + 240_000, "8h"),
            (51 * 3_600_000, "2d3h"),
            (10 * 86_400_000, "10d"),
            ((2 * 365 + 3) * 86_400_000, "2y3d"),
            (9 * 365 * 86_400_000, "9y"),
        ];
        for (ms, want) in cases {
            assert_eq!(human_duration_ms(ms), want, "{ms}");
        }
    }
}
