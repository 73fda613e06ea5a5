//! `/metrics` (Prometheus text format 0.0.4, the `prometheus-client` crate) and the health
//! endpoints ([`health`]) of `skiff serve` (issue 12 item 6).
//!
//! One [`Metrics`] per daemon; the router holds it. Names are kube's where kube has the
//! metric (kube-apiserver's `apiserver_*`, the kubelet's `kubelet_*` and `prober_*`,
//! kube-state-metrics' `kube_pod_container_status_restarts_total`), `skiff_*` otherwise:
//! * recorded as they happen: API requests (`requests`, a hook in the router's handler: a
//!   path split, a table lookup, a counter and a histogram per request), store commits
//!   ([`StoreMetrics`], from the writer thread);
//! * computed at scrape time from the store (cheap: one pass over the in-memory index):
//!   object counts per resource, pods by phase, containers by state, restarts ([`pods`]);
//! * node-side metrics the daemon registers itself ([`Metrics::register`]): probes, pod start
//!   latency (crates/skiff `serve::metrics`).

pub mod health;
mod pods;
pub(crate) mod requests;

use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::store::{CommitObserver, Store};

/// The `Content-Type` of a scrape (Prometheus text format 0.0.4, as kube's components serve).
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// kube-apiserver's `apiserver_request_duration_seconds` buckets.
pub const REQUEST_BUCKETS: &[f64] = &[
    0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0,
    10.0, 15.0, 20.0, 30.0, 45.0, 60.0,
];

/// Store commit durations: a local fsync takes from tens of microseconds (tmpfs) to tens of
/// milliseconds, finer than etcd's request buckets.
pub const COMMIT_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// Mutations per store transaction (the group commit's batch; the writer's cap is 2000).
pub const BATCH_BUCKETS: &[f64] = &[
    1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0,
];

/// The store writer's metrics; the writer thread observes them after each transaction (a
/// histogram observe each: no other lock on its path).
#[derive(Debug)]
pub struct StoreMetrics {
    commit: Histogram,
    batch: Histogram,
}

impl StoreMetrics {
    fn new() -> Self {
        Self {
            commit: Histogram::new(COMMIT_BUCKETS.iter().copied()),
            batch: Histogram::new(BATCH_BUCKETS.iter().copied()),
        }
    }
}

impl CommitObserver for StoreMetrics {
    fn committed(&self, took: Duration, mutations: usize) {
        self.commit.observe(took.as_secs_f64());
        self.batch.observe(mutations as f64);
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResourceLabel {
    resource: String,
}

/// Gauges set at scrape time.
#[derive(Debug, Default)]
struct Scraped {
    storage_objects: Family<ResourceLabel, Gauge>,
    watchers: Gauge,
    pods: pods::PodFamilies,
}

/// The daemon's metrics registry (see the module docs). Cheap to share (`Arc`).
#[derive(Debug)]
pub struct Metrics {
    registry: RwLock<Registry>,
    pub(crate) requests: requests::RequestMetrics,
    store: Arc<StoreMetrics>,
    scraped: Scraped,
    /// Scrapes one at a time: the scrape-time gauges are cleared and set by each.
    scrape: Mutex<()>,
}

impl Metrics {
    pub fn new() -> Arc<Metrics> {
        let requests = requests::RequestMetrics::default();
        let store = Arc::new(StoreMetrics::new());
        let scraped = Scraped::default();
        let mut r = Registry::default();
        requests.register(&mut r);
        r.register(
            "skiff_store_commit_duration_seconds",
            "Duration in seconds of a durable store transaction (write and fsync): skiff's etcd_request_duration_seconds",
            store.commit.clone(),
        );
        r.register(
            "skiff_store_commit_batch_size",
            "Mutations per durable store transaction (group commit)",
            store.batch.clone(),
        );
        r.register(
            "apiserver_storage_objects",
            "Number of stored objects at the time of last check split by kind",
            scraped.storage_objects.clone(),
        );
        r.register(
            "skiff_store_watchers",
            "Watches registered on the store (API watch requests and the daemon's own)",
            scraped.watchers.clone(),
        );
        scraped.pods.register(&mut r);
        Arc::new(Metrics {
            registry: RwLock::new(r),
            requests,
            store,
            scraped,
            scrape: Mutex::new(()),
        })
    }

    /// Adds metrics of the daemon's own (node-side) to every scrape.
    pub fn register(&self, f: impl FnOnce(&mut Registry)) {
        let mut r = self.registry.write().unwrap_or_else(|p| p.into_inner());
        f(&mut r);
    }

    /// The store's commit metrics.
    pub fn store(&self) -> Arc<StoreMetrics> {
        self.store.clone()
    }

    /// Hooks `store`'s writer to this registry (once per store; a later call is ignored).
    pub fn attach_store(&self, store: &Store) {
        store.set_metrics(self.store.clone());
    }

    /// The scrape: the scrape-time gauges from `store`, then every family in the text format.
    pub fn encode(&self, store: &Store) -> String {
        let _one = self.scrape.lock().unwrap_or_else(|p| p.into_inner());
        let s = &self.scraped;
        s.storage_objects.clear();
        for (resource, n) in store.counts() {
            // kube names the resource `plural.group` (`jobs.batch`); the store keys it `group/plural`.
            let resource = match resource.split_once('/') {
                Some((group, plural)) => format!("{plural}.{group}"),
                None => resource,
            };
            s.storage_objects
                .get_or_create(&ResourceLabel { resource })
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        s.watchers
            .set(i64::try_from(store.watcher_count()).unwrap_or(i64::MAX));
        let (pods, _) = store.list("pods", None);
        s.pods.set(pods.iter().map(|p| &*p.object));
        let mut out = String::with_capacity(16 * 1024);
        let r = self.registry.read().unwrap_or_else(|p| p.into_inner());
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &r);
        out
    }
}

#[cfg(test)]
mod tests;
