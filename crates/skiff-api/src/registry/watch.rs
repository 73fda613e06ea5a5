//! A watch as kube-apiserver's cacher serves it: synthetic ADDED events for the current
//! objects (resourceVersion unset or "0", or `sendInitialEvents=true` followed by the
//! `k8s.io/initial-events-end` bookmark), then the store's events after the start revision,
//! filtered by the request's selectors with the cacher's transitions (an object that stops
//! matching is sent as DELETED, one that starts matching as ADDED:
//! staging/src/k8s.io/apiserver/pkg/storage/cacher/cache_watcher.go `convertToWatchEvent`);
//! a compacted start revision or a watcher cut off for lagging ends with an ERROR event
//! carrying a 410 Expired Status.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

use serde_json::{json, Value};

use super::selector::Filter;
use super::ApiWatchEvent;
use crate::store::{EventType, Key, Rev, WatchEvent, WatchItem};

/// Which objects the watcher has been told match, when its selectors filter.
pub(crate) struct Tracking {
    /// Keys whose last state sent matched.
    matched: HashSet<Key>,
    /// Keys whose state at the start revision is unknown (watch from an explicit revision
    /// older than their last change): their first event decides.
    uncertain: HashSet<Key>,
}

impl Tracking {
    pub(crate) fn new(matched: HashSet<Key>, uncertain: HashSet<Key>) -> Tracking {
        Tracking { matched, uncertain }
    }
}

/// A running watch; dropping it ends it.
pub struct ApiWatch {
    pub(crate) queue: VecDeque<ApiWatchEvent>,
    pub(crate) inner: Option<crate::store::Watch>,
    pub(crate) filter: Filter,
    pub(crate) tracking: Option<Tracking>,
    pub(crate) last_rev: Rev,
    pub(crate) kind: &'static str,
    pub(crate) api_version: String,
    pub(crate) allow_bookmarks: bool,
    pub(crate) ended: bool,
}

/// The Status of an ERROR event: 410 Expired.
pub(crate) fn expired_event(message: String) -> ApiWatchEvent {
    ApiWatchEvent {
        type_: "ERROR",
        object: Arc::new(json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": message,
            "reason": "Expired",
            "code": 410,
        })),
    }
}

impl ApiWatch {
    /// The next event; `None` at the end of the stream (a cut-off watcher gets an ERROR 410
    /// first).
    pub async fn next(&mut self) -> Option<ApiWatchEvent> {
        loop {
            if let Some(e) = self.queue.pop_front() {
                return Some(e);
            }
            if self.ended {
                return None;
            }
            let item = match self.inner.as_mut() {
                Some(w) => w.next().await,
                None => None,
            };
            match item {
                None => {
                    self.ended = true;
                    return None;
                }
                Some(WatchItem::Lagged) => {
                    self.ended = true;
                    self.inner = None;
                    return Some(expired_event(format!(
                        "too old resource version: {} ({})",
                        self.last_rev,
                        self.last_rev + 1
                    )));
                }
                Some(WatchItem::Event(e)) => {
                    self.last_rev = self.last_rev.max(e.rev);
                    if let Some(ev) = self.convert(e) {
                        return Some(ev);
                    }
                }
            }
        }
    }

    /// A BOOKMARK at the revision the watcher has seen everything up to (`None` unless the
    /// client asked for bookmarks): the HTTP layer sends it when it likes (kube-apiserver:
    /// about every minute and before a timeout closes the stream).
    pub fn bookmark(&self) -> Option<ApiWatchEvent> {
        if !self.allow_bookmarks || self.ended {
            return None;
        }
        Some(bookmark_event(
            self.kind,
            &self.api_version,
            self.last_rev,
            false,
        ))
    }

    /// The revision the watcher has seen everything up to.
    pub fn resource_version(&self) -> Rev {
        self.last_rev
    }

    /// The cacher's conversion of a store event for this watcher's selectors.
    fn convert(&mut self, e: WatchEvent) -> Option<ApiWatchEvent> {
        let ev = |t: &'static str, o: Arc<Value>| {
            Some(ApiWatchEvent {
                type_: t,
                object: o,
            })
        };
        let Some(tr) = self.tracking.as_mut() else {
            return ev(type_name(e.kind), e.object);
        };
        let now = self.filter.matches(&e.object);
        let uncertain = tr.uncertain.remove(&e.key);
        let was = tr.matched.contains(&e.key);
        match e.kind {
            EventType::Added => {
                if now {
                    tr.matched.insert(e.key);
                    ev("ADDED", e.object)
                } else {
                    None
                }
            }
            EventType::Modified => match (was || uncertain, now) {
                (true, true) => {
                    tr.matched.insert(e.key);
                    ev("MODIFIED", e.object)
                }
                (false, true) => {
                    tr.matched.insert(e.key);
                    ev("ADDED", e.object)
                }
                (true, false) => {
                    tr.matched.remove(&e.key);
                    ev("DELETED", e.object)
                }
                (false, false) => None,
            },
            EventType::Deleted => {
                tr.matched.remove(&e.key);
                if was || now {
                    ev("DELETED", e.object)
                } else {
                    None
                }
            }
        }
    }
}

fn type_name(k: EventType) -> &'static str {
    match k {
        EventType::Added => "ADDED",
        EventType::Modified => "MODIFIED",
        EventType::Deleted => "DELETED",
    }
}

/// `{"type":"BOOKMARK","object":{"kind":…,"apiVersion":…,"metadata":{"resourceVersion":…}}}`,
/// with the `k8s.io/initial-events-end` annotation at the end of a streaming list.
pub(crate) fn bookmark_event(
    kind: &str,
    api_version: &str,
    rev: Rev,
    initial_end: bool,
) -> ApiWatchEvent {
    let mut meta = json!({"resourceVersion": rev.to_string()});
    if initial_end {
        meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    ApiWatchEvent {
        type_: "BOOKMARK",
        object: Arc::new(json!({
            "kind": kind,
            "apiVersion": api_version,
            "metadata": meta,
        })),
    }
}
