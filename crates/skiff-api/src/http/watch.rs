//! Watch streams: HTTP 200, chunked, one JSON object per line
//! (`{"type":"ADDED","object":{…}}`), Table-shaped objects when the Accept asks for Tables
//! (kubectl `get -w`), BOOKMARKs when allowed, an ERROR event (a Status, e.g. 410 Expired)
//! ends the stream, and `timeoutSeconds` (or kube's random 30–60 min default) ends it cleanly.
//!
//! Memory: events are pulled from the registry's watch only as fast as hyper writes them to
//! the client, so a client that never reads stops the pull here; its queue lives in the store,
//! which cuts a lagging watcher off (ERROR 410). Nothing is buffered in this layer beyond the
//! one event being written.
//!
//! The registry's `ApiWatch::next` must be cancel-safe: the timers below race it.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use futures_util::stream;
use serde::Serialize;
use serde_json::{json, Value};
use tokio::time::Instant;

use super::{table, watch_options, ApiError, Include, Output, Params, BOOKMARK_INTERVAL};
use crate::registry::{Api, ApiWatch, ApiWatchEvent, Resource};

#[derive(Serialize)]
struct EventOut<'a, T: Serialize> {
    #[serde(rename = "type")]
    type_: &'a str,
    object: T,
}

struct WatchStream {
    watch: ApiWatch,
    r: &'static Resource,
    out: Output,
    include: Include,
    deadline: Instant,
    bookmarks: bool,
    next_bookmark: Instant,
    /// The newest resourceVersion this client has been sent everything up to (bookmark RV).
    rv: u64,
    done: bool,
}

fn rv_of(o: &Value) -> Option<u64> {
    o.pointer("/metadata/resourceVersion")?
        .as_str()?
        .parse()
        .ok()
}

impl WatchStream {
    fn encode(&self, type_: &str, object: &Value) -> Bytes {
        let line = match self.out {
            // Status objects (ERROR) are never converted.
            Output::Table(v) if type_ != "ERROR" => {
                let meta = json!({"resourceVersion": object.pointer("/metadata/resourceVersion").cloned().unwrap_or(Value::Null)});
                let rows: Box<dyn Iterator<Item = &Value>> = if type_ == "BOOKMARK" {
                    Box::new(std::iter::empty())
                } else {
                    Box::new(std::iter::once(object))
                };
                serde_json::to_vec(&EventOut {
                    type_,
                    object: table(self.r, rows, meta, v, self.include),
                })
            }
            Output::Partial(v) if type_ != "ERROR" => serde_json::to_vec(&EventOut {
                type_,
                object: json!({
                    "kind": "PartialObjectMetadata",
                    "apiVersion": format!("meta.k8s.io/{v}"),
                    "metadata": object.get("metadata").cloned().unwrap_or(Value::Null),
                }),
            }),
            _ => serde_json::to_vec(&EventOut { type_, object }),
        };
        let mut line = line.unwrap_or_default();
        line.push(b'\n');
        Bytes::from(line)
    }

    fn bookmark(&self) -> Bytes {
        let obj = json!({
            "kind": self.r.kind,
            "apiVersion": self.r.api_version(),
            "metadata": {"resourceVersion": self.rv.to_string()},
        });
        self.encode("BOOKMARK", &obj)
    }

    fn event(&mut self, ev: ApiWatchEvent) -> Bytes {
        if ev.type_ == "ERROR" {
            // After an error the watch is over (the client re-lists).
            self.done = true;
        } else if let Some(rv) = rv_of(&ev.object) {
            self.rv = self.rv.max(rv);
        }
        self.encode(ev.type_, &ev.object)
    }

    /// The next chunk, or None at the end of the stream.
    async fn next_chunk(&mut self) -> Option<Bytes> {
        if self.done {
            return None;
        }
        loop {
            tokio::select! {
                // Events first: a bookmark must never overtake a pending event.
                biased;
                ev = self.watch.next() => {
                    return match ev {
                        Some(ev) => Some(self.event(ev)),
                        None => None,
                    };
                }
                _ = tokio::time::sleep_until(self.deadline) => {
                    self.done = true;
                    return (self.bookmarks && self.rv > 0).then(|| self.bookmark());
                }
                _ = tokio::time::sleep_until(self.next_bookmark), if self.bookmarks => {
                    self.next_bookmark = Instant::now() + BOOKMARK_INTERVAL;
                    if self.rv > 0 {
                        return Some(self.bookmark());
                    }
                }
            }
        }
    }
}

/// Starts a watch and answers with its stream; errors before the stream starts (bad
/// options, expired resourceVersion the registry refuses outright) are plain Status
/// responses.
pub(super) async fn serve(
    api: &Api,
    r: &'static Resource,
    ns: Option<&str>,
    name: Option<&str>,
    p: &Params,
    out: Output,
) -> Result<Response, ApiError> {
    let o = watch_options(p, name)?;
    let include = super::include_object(p)?;
    let timeout = o.timeout.unwrap_or(Duration::from_secs(1800));
    // The bookmark RV before any event: the requested one, or (watch from "now") the store's
    // revision before the watch starts, which the watch's own snapshot is not older than.
    let start_rv = o
        .resource_version
        .as_deref()
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|v| *v > 0)
        .unwrap_or_else(|| api.store().current_rev());
    let watch = api.watch(r, ns, &o)?;
    let now = Instant::now();
    let state = WatchStream {
        watch,
        r,
        out,
        include,
        deadline: now + timeout,
        bookmarks: o.allow_bookmarks,
        next_bookmark: now + BOOKMARK_INTERVAL.min(timeout),
        rv: start_rv,
        done: false,
    };
    let body = stream::unfold(state, |mut st| async move {
        let chunk = st.next_chunk().await?;
        Some((Ok::<_, std::io::Error>(chunk), st))
    });
    let mut resp = Response::new(Body::from_stream(body));
    *resp.status_mut() = StatusCode::OK;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, private"),
    );
    Ok(resp)
}
