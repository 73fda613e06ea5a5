//! API request metrics with kube-apiserver's names and labels (`staging/src/k8s.io/apiserver/
//! pkg/endpoints/metrics`): `apiserver_request_total`, `apiserver_request_duration_seconds`,
//! `apiserver_longrunning_requests`. The verb is kube's reported verb (GET/LIST by scope,
//! WATCH for `watch=true`, APPLY for apply patches, CONNECT for the `log`, `exec`, `attach`,
//! `portforward`, `proxy` subresources); the duration is until the response starts, so watches
//! and followed logs do not fill the histogram's top bucket (kube times a watch's whole life);
//! a long-running response counts in `apiserver_longrunning_requests` until its body ends.
//!
//! Every label value is a `&'static str` (from the resource table or fixed lists): a request's
//! bookkeeping is a path split, a table lookup, a cache lookup by the labels' addresses, a
//! counter increment and a histogram observe (about 0.6 µs; list_bench).
//! Paths skiff does not serve are not recorded (an attacker's paths never become series).

use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::sync::RwLock;
use std::time::Instant;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, Method};
use axum::response::Response;
use http_body_util::BodyExt;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use super::REQUEST_BUCKETS;
use crate::registry::resource;

/// kube's `validConnectRequests`: these subresources are reported as CONNECT and are
/// long-running.
const CONNECT_SUBRESOURCES: &[&str] = &["log", "exec", "portforward", "attach", "proxy"];

/// Non-resource paths recorded (kube labels them `subresource="/healthz"` etc.).
const NON_RESOURCE: &[&str] = &[
    "/healthz", "/livez", "/readyz", "/version", "/metrics", "/api", "/apis", "/openapi",
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct Labels {
    pub verb: &'static str,
    pub dry_run: &'static str,
    pub group: &'static str,
    pub version: &'static str,
    pub resource: &'static str,
    pub subresource: &'static str,
    pub scope: &'static str,
    pub component: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct CodeLabels {
    pub verb: &'static str,
    pub dry_run: &'static str,
    pub group: &'static str,
    pub version: &'static str,
    pub resource: &'static str,
    pub subresource: &'static str,
    pub scope: &'static str,
    pub component: &'static str,
    pub code: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct LongLabels {
    pub verb: &'static str,
    pub group: &'static str,
    pub version: &'static str,
    pub resource: &'static str,
    pub subresource: &'static str,
    pub scope: &'static str,
    pub component: &'static str,
}

fn request_histogram() -> Histogram {
    Histogram::new(REQUEST_BUCKETS.iter().copied())
}

/// A request's series, found by the addresses of its static label values and the code: a
/// few integer operations instead of hashing every label's text (which the families do).
/// Equal texts at different addresses only make two cache entries for the same series.
type SeriesKey = ([usize; 7], u16);

/// FxHash's mixing step: the key is a handful of addresses, no hostile input.
#[derive(Default)]
struct AddrHasher(u64);

impl std::hash::Hasher for AddrHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u64(u64::from(*b));
        }
    }
    fn write_u64(&mut self, x: u64) {
        self.0 = (self.0.rotate_left(5) ^ x).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn write_usize(&mut self, x: usize) {
        self.write_u64(x as u64);
    }
    fn write_u16(&mut self, x: u16) {
        self.write_u64(u64::from(x));
    }
}

type Cache = HashMap<SeriesKey, (Counter, Histogram), BuildHasherDefault<AddrHasher>>;

#[derive(Debug)]
pub(crate) struct RequestMetrics {
    total: Family<CodeLabels, Counter>,
    duration: Family<Labels, Histogram, fn() -> Histogram>,
    longrunning: Family<LongLabels, Gauge>,
    cache: RwLock<Cache>,
}

impl Default for RequestMetrics {
    fn default() -> Self {
        Self {
            total: Family::default(),
            duration: Family::new_with_constructor(request_histogram),
            longrunning: Family::default(),
            cache: RwLock::new(Cache::default()),
        }
    }
}

impl RequestMetrics {
    pub(crate) fn register(&self, r: &mut Registry) {
        // prometheus-client appends `_total` to counters.
        r.register(
            "apiserver_request",
            "Counter of apiserver requests broken out for each verb, dry run value, group, version, resource, scope, component, and HTTP response code",
            self.total.clone(),
        );
        r.register(
            "apiserver_request_duration_seconds",
            "Response latency distribution in seconds for each verb, dry run value, group, version, resource, subresource, scope and component",
            self.duration.clone(),
        );
        r.register(
            "apiserver_longrunning_requests",
            "Gauge of all active long-running apiserver requests broken out by verb, group, version, resource, scope and component. Not all requests are tracked this way",
            self.longrunning.clone(),
        );
    }

    fn observe(&self, l: &Labels, code: u16, secs: f64) {
        let a = |s: &'static str| s.as_ptr() as usize;
        let key = (
            [
                a(l.verb),
                a(l.dry_run),
                a(l.group),
                a(l.version),
                a(l.resource),
                a(l.subresource),
                a(l.scope),
            ],
            code,
        );
        {
            let cache = self.cache.read().unwrap_or_else(|p| p.into_inner());
            if let Some((c, h)) = cache.get(&key) {
                c.inc();
                h.observe(secs);
                return;
            }
        }
        let counter = self.total.get_or_create_owned(&CodeLabels {
            verb: l.verb,
            dry_run: l.dry_run,
            group: l.group,
            version: l.version,
            resource: l.resource,
            subresource: l.subresource,
            scope: l.scope,
            component: l.component,
            code,
        });
        let histogram = self.duration.get_or_create_owned(l);
        counter.inc();
        histogram.observe(secs);
        let mut cache = self.cache.write().unwrap_or_else(|p| p.into_inner());
        // Bounded by the label combinations of the static tables (a few thousand at most).
        cache.insert(key, (counter, histogram));
    }
}

/// What a request is, in the metrics' terms; `long_running` for WATCH and CONNECT.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Info {
    pub labels: Labels,
    pub long_running: bool,
}

/// kube's `cleanDryRun`: "" when absent, "All" when every value is `All`, else "invalid"
/// (the request fails then anyway).
fn dry_run(query: Option<&str>) -> &'static str {
    let Some(q) = query.filter(|q| q.contains("dryRun")) else {
        return "";
    };
    let mut any = false;
    for (k, v) in q.split('&').filter_map(|kv| kv.split_once('=')) {
        if k == "dryRun" {
            if v != "All" {
                return "invalid";
            }
            any = true;
        }
    }
    if any {
        "All"
    } else {
        ""
    }
}

/// Convert_Slice_string_To_bool of the first `watch` value, as kube's `getVerbIfWatch`.
fn is_watch(query: Option<&str>) -> bool {
    let Some(q) = query.filter(|q| q.contains("watch")) else {
        return false;
    };
    q.split('&')
        .map(|kv| kv.split_once('=').unwrap_or((kv, "")))
        .find(|(k, _)| *k == "watch")
        .is_some_and(|(_, v)| {
            let v = v.to_ascii_lowercase();
            v != "0" && v != "false"
        })
}

/// Classifies a request for the metrics; `None`: a path skiff does not serve.
pub(crate) fn classify(
    method: &Method,
    path: &str,
    query: Option<&str>,
    content_type: Option<&[u8]>,
) -> Option<Info> {
    let mut segs = [""; 8];
    let mut n = 0;
    for s in path.split('/').filter(|s| !s.is_empty()) {
        if n == segs.len() {
            return None;
        }
        segs[n] = s;
        n += 1;
    }
    let segs = &segs[..n];
    let (group, version, rest): (&str, &str, &[&str]) = match segs {
        ["api", v, rest @ ..] if !rest.is_empty() => ("", v, rest),
        ["apis", g, v, rest @ ..] if !rest.is_empty() => (g, v, rest),
        _ => return non_resource(method, segs),
    };
    // (plural, namespace given, name given, subresource)
    let (plural, namespaced_path, name, sub) = match rest {
        [p] => (*p, false, false, None),
        ["namespaces", _, p, tail @ ..]
            if resource(group, p).is_some_and(|r| r.namespaced) && tail.len() <= 2 =>
        {
            (*p, true, !tail.is_empty(), tail.get(1).copied())
        }
        [p, _] => (*p, false, true, None),
        [p, _, s] => (*p, false, true, Some(*s)),
        _ => return None,
    };
    let r = resource(group, plural).filter(|r| r.version == version)?;
    if name && !namespaced_path && r.namespaced {
        // `/api/v1/pods/x`: not served.
        return None;
    }
    let subresource = match sub {
        None => "",
        Some(s) => r
            .subresources
            .iter()
            .chain(CONNECT_SUBRESOURCES)
            .find(|x| **x == s)
            .copied()?,
    };
    // kube's CleanScope: a named object or a create is "resource".
    let scope = if name || *method == Method::POST {
        "resource"
    } else if namespaced_path {
        "namespace"
    } else {
        "cluster"
    };
    let connect = CONNECT_SUBRESOURCES.contains(&subresource);
    let watch = (*method == Method::GET || *method == Method::HEAD) && is_watch(query);
    let verb = if watch {
        "WATCH"
    } else if connect {
        "CONNECT"
    } else {
        match *method {
            Method::GET | Method::HEAD if scope == "resource" => "GET",
            Method::GET | Method::HEAD => "LIST",
            Method::POST => "POST",
            Method::PUT => "PUT",
            Method::DELETE => "DELETE",
            Method::PATCH if content_type == Some(b"application/apply-patch+yaml") => "APPLY",
            Method::PATCH => "PATCH",
            _ => "other",
        }
    };
    Some(Info {
        labels: Labels {
            verb,
            dry_run: dry_run(query),
            group: r.group,
            version: r.version,
            resource: r.plural,
            subresource,
            scope,
            component: "apiserver",
        },
        long_running: watch || connect,
    })
}

fn non_resource(method: &Method, segs: &[&str]) -> Option<Info> {
    let first = segs.first().copied().unwrap_or("");
    let path = NON_RESOURCE
        .iter()
        .find(|p| p.get(1..) == Some(first))
        .copied()?;
    let verb = match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        _ => "other",
    };
    Some(Info {
        labels: Labels {
            verb,
            dry_run: "",
            group: "",
            version: "",
            resource: "",
            subresource: path,
            scope: "",
            component: "apiserver",
        },
        long_running: false,
    })
}

/// Decrements `apiserver_longrunning_requests` when dropped (with the response body).
struct LongRunning(Gauge);

impl Drop for LongRunning {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// A request being timed: from [`RequestMetrics::begin`] to [`RequestMetrics::end`].
pub(crate) struct Timing {
    info: Option<Info>,
    began: Instant,
    long: Option<LongRunning>,
}

impl RequestMetrics {
    /// Called as the router takes `req`.
    pub(crate) fn begin(&self, req: &Request) -> Timing {
        let info = classify(
            req.method(),
            req.uri().path(),
            req.uri().query(),
            req.headers()
                .get(header::CONTENT_TYPE)
                .map(|v| v.as_bytes()),
        );
        let long = info.as_ref().filter(|i| i.long_running).map(|info| {
            let l = &info.labels;
            let g = self.longrunning.get_or_create_owned(&LongLabels {
                verb: l.verb,
                group: l.group,
                version: l.version,
                resource: l.resource,
                subresource: l.subresource,
                scope: l.scope,
                component: l.component,
            });
            g.inc();
            LongRunning(g)
        });
        Timing {
            info,
            began: Instant::now(),
            long,
        }
    }

    /// Called with the response (before its body is sent).
    pub(crate) fn end(&self, t: Timing, resp: Response) -> Response {
        let Some(info) = t.info else {
            return resp;
        };
        self.observe(
            &info.labels,
            resp.status().as_u16(),
            t.began.elapsed().as_secs_f64(),
        );
        match t.long {
            // The guard lives as long as the body (a watch stream, a followed log).
            Some(guard) => resp.map(|b| {
                Body::new(b.map_frame(move |f| {
                    let _ = &guard;
                    f
                }))
            }),
            None => resp,
        }
    }
}
