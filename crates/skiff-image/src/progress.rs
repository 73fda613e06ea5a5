//! Pull progress: events from [`crate::registry`] to whoever watches (a callback), and two
//! renderers for `skiff image pull`: a terminal bar (indicatif) and plain event lines.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One step of a pull.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PullEvent {
    /// The manifest is known: what will be fetched.
    Resolved {
        /// The image (fully-qualified reference).
        image: String,
        /// The manifest digest.
        digest: String,
        /// Number of layers.
        layers: usize,
        /// Sum of the layers' (compressed) sizes.
        total: u64,
    },
    /// Bytes of one layer so far (sent at most every [`PROGRESS_STEP`] bytes and at the end).
    Layer {
        /// The layer digest.
        digest: String,
        /// Bytes received and written.
        done: u64,
        /// The descriptor's size.
        total: u64,
    },
    /// A layer is in the store: fetched and verified, or already there (`cached`).
    LayerDone {
        /// The layer digest.
        digest: String,
        /// Its size.
        size: u64,
        /// It was already in the store.
        cached: bool,
    },
    /// All blobs are stored and the image is tagged.
    Fetched {
        /// Bytes downloaded (cached blobs not counted).
        bytes: u64,
        /// Time from the first request to the tag.
        elapsed: Duration,
    },
    /// The layers are unpacked.
    Unpacked {
        /// The layers' compressed size (the rate is of layer data read).
        bytes: u64,
        /// Time spent unpacking after the fetch.
        elapsed: Duration,
    },
}

/// Sends at most one [`PullEvent::Layer`] per this many bytes of a layer.
pub const PROGRESS_STEP: u64 = 256 * 1024;

/// Where progress goes: any number of watchers (a pull shared by several callers reports to
/// all of them).
pub type ProgressFn = Arc<dyn Fn(&PullEvent) + Send + Sync>;

/// A set of watchers one pull reports to.
#[derive(Clone, Default)]
pub struct Watchers(Arc<Mutex<Vec<ProgressFn>>>);

impl Watchers {
    /// Adds a watcher.
    pub fn add(&self, f: ProgressFn) {
        if let Ok(mut v) = self.0.lock() {
            v.push(f);
        }
    }

    /// Reports `ev` to every watcher.
    pub fn emit(&self, ev: &PullEvent) {
        let list = match self.0.lock() {
            Ok(v) => v.clone(),
            Err(_) => return,
        };
        for f in list {
            f(ev);
        }
    }
}

fn mb(b: u64) -> f64 {
    b as f64 / 1e6
}

/// Renders events as plain lines (`stderr` is not a terminal): one per layer start/end and
/// the totals, never one per chunk. `out` receives each line.
pub fn plain_lines(out: impl Fn(String) + Send + Sync + 'static) -> ProgressFn {
    struct State {
        start: Instant,
        last: BTreeMap<String, Instant>,
    }
    let state = Mutex::new(State {
        start: Instant::now(),
        last: BTreeMap::new(),
    });
    Arc::new(move |ev: &PullEvent| {
        let Ok(mut st) = state.lock() else { return };
        let line = match ev {
            PullEvent::Resolved {
                image,
                digest,
                layers,
                total,
            } => {
                st.start = Instant::now();
                format!(
                    "resolved {image} {digest}: {layers} layers, {:.1} MB",
                    mb(*total)
                )
            }
            PullEvent::Layer {
                digest,
                done,
                total,
            } => {
                // At most one line per layer every 2 s.
                let now = Instant::now();
                let due = st
                    .last
                    .get(digest)
                    .is_none_or(|t| now.duration_since(*t) >= Duration::from_secs(2));
                if !due || done == total {
                    return;
                }
                st.last.insert(digest.clone(), now);
                format!(
                    "layer {} {:.1}/{:.1} MB",
                    short(digest),
                    mb(*done),
                    mb(*total)
                )
            }
            PullEvent::LayerDone {
                digest,
                size,
                cached,
            } => {
                let how = if *cached { "already present" } else { "done" };
                format!("layer {} {how} ({:.1} MB)", short(digest), mb(*size))
            }
            PullEvent::Fetched { bytes, elapsed } => format!(
                "fetched {:.1} MB in {:.2}s ({:.1} MB/s)",
                mb(*bytes),
                elapsed.as_secs_f64(),
                rate(*bytes, *elapsed)
            ),
            PullEvent::Unpacked { bytes, elapsed } => format!(
                "unpacked {:.1} MB in {:.2}s ({:.1} MB/s)",
                mb(*bytes),
                elapsed.as_secs_f64(),
                rate(*bytes, *elapsed)
            ),
        };
        out(line);
    })
}

fn rate(bytes: u64, d: Duration) -> f64 {
    let s = d.as_secs_f64();
    if s > 0.0 {
        mb(bytes) / s
    } else {
        0.0
    }
}

fn short(digest: &str) -> &str {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    hex.get(..12).unwrap_or(hex)
}

/// A terminal progress display (stderr is a TTY): one bar per layer and a total bar with
/// bytes, rate and layers done. Dropping it clears nothing: finished bars stay.
pub fn terminal_bars() -> ProgressFn {
    use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
    struct State {
        multi: MultiProgress,
        total: Option<ProgressBar>,
        layers: BTreeMap<String, (ProgressBar, u64)>,
        layer_count: usize,
        done_count: usize,
    }
    let layer_style = ProgressStyle::with_template(
        "{prefix:.bold} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {msg}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ");
    let total_style = ProgressStyle::with_template(
        "{prefix:.bold} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta} {msg}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ");
    let state = Mutex::new(State {
        multi: MultiProgress::new(),
        total: None,
        layers: BTreeMap::new(),
        layer_count: 0,
        done_count: 0,
    });
    Arc::new(move |ev: &PullEvent| {
        let Ok(mut st) = state.lock() else { return };
        match ev {
            PullEvent::Resolved {
                image,
                layers,
                total,
                ..
            } => {
                let bar = st.multi.add(ProgressBar::new(*total));
                bar.set_style(total_style.clone());
                bar.set_prefix(image.clone());
                bar.set_message(format!("0/{layers} layers"));
                st.total = Some(bar);
                st.layer_count = *layers;
            }
            PullEvent::Layer {
                digest,
                done,
                total,
            } => {
                if !st.layers.contains_key(digest) {
                    let bar = st.multi.add(ProgressBar::new(*total));
                    bar.set_style(layer_style.clone());
                    bar.set_prefix(short(digest).to_string());
                    st.layers.insert(digest.clone(), (bar, 0));
                }
                let mut delta = 0;
                if let Some((bar, seen)) = st.layers.get_mut(digest) {
                    delta = done.saturating_sub(*seen);
                    *seen = *done;
                    bar.set_position(*done);
                }
                if let Some(t) = &st.total {
                    t.inc(delta);
                }
            }
            PullEvent::LayerDone {
                digest,
                size,
                cached,
            } => {
                st.done_count += 1;
                let (n, of) = (st.done_count, st.layer_count);
                let seen = match st.layers.get(digest) {
                    Some((bar, seen)) => {
                        bar.finish_with_message(if *cached { "present" } else { "done" });
                        *seen
                    }
                    None => 0,
                };
                if let Some(t) = &st.total {
                    t.inc(size.saturating_sub(seen));
                    t.set_message(format!("{n}/{of} layers"));
                }
            }
            PullEvent::Fetched { .. } => {
                if let Some(t) = &st.total {
                    t.finish();
                }
            }
            PullEvent::Unpacked { bytes, elapsed } => {
                let _ = st.multi.println(format!(
                    "unpacked {:.1} MB in {:.2}s ({:.1} MB/s)",
                    mb(*bytes),
                    elapsed.as_secs_f64(),
                    rate(*bytes, *elapsed)
                ));
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_lines_are_few_and_say_what_happened() {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let l2 = lines.clone();
        let f = plain_lines(move |s| l2.lock().map(|mut v| v.push(s)).unwrap_or(()));
        let w = Watchers::default();
        w.add(f);
        let d = format!("sha256:{}", "ab".repeat(32));
        w.emit(&PullEvent::Resolved {
            image: "localhost:5000/busybox:latest".into(),
            digest: "sha256:00".into(),
            layers: 1,
            total: 2_000_000,
        });
        for i in 1..=8 {
            w.emit(&PullEvent::Layer {
                digest: d.clone(),
                done: i * 250_000,
                total: 2_000_000,
            });
        }
        w.emit(&PullEvent::LayerDone {
            digest: d.clone(),
            size: 2_000_000,
            cached: false,
        });
        w.emit(&PullEvent::Fetched {
            bytes: 2_000_000,
            elapsed: Duration::from_secs(1),
        });
        let got = lines.lock().map(|v| v.clone()).unwrap_or_default();
        assert_eq!(
            got,
            [
                "resolved localhost:5000/busybox:latest sha256:00: 1 layers, 2.0 MB",
                "layer abababababab 0.2/2.0 MB",
                "layer abababababab done (2.0 MB)",
                "fetched 2.0 MB in 1.00s (2.0 MB/s)",
            ]
        );
    }
}
