//! The store's write benchmark (issue 11: ≥ 2000 object writes/s with batching):
//!
//! ```text
//! cargo run --release -p skiff-api --example store_bench -- [--writers 64] [--seconds 5]
//!     [--size 2048] [--cache BYTES] [--dir DIR]
//! ```
//!
//! Three runs on a fresh store (in `--dir`, default a temporary directory beside the current
//! one, i.e. on the disk under test): `--writers` concurrent tasks each committing one object
//! at a time (what concurrent API calls do: the writer groups them), one sequential writer
//! (every commit its own fsync), and one writer committing 100 objects per `commit_many` (the
//! pod status batches). Each prints object writes per second, the p50/p99 latency of one
//! commit call, and the mean number of objects per disk transaction.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark may panic

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use skiff_api::store::{Key, Mutation, Store, StoreConfig};

struct Args {
    writers: usize,
    seconds: u64,
    size: usize,
    cache: Option<usize>,
    dir: Option<PathBuf>,
}

fn args() -> Args {
    let mut a = Args {
        writers: 64,
        seconds: 5,
        size: 2048,
        cache: None,
        dir: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let v = it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--writers" => a.writers = v.parse().expect("--writers N"),
            "--seconds" => a.seconds = v.parse().expect("--seconds S"),
            "--size" => a.size = v.parse().expect("--size BYTES"),
            "--cache" => a.cache = Some(v.parse().expect("--cache BYTES")),
            "--dir" => a.dir = Some(PathBuf::from(v)),
            _ => panic!("unknown flag {flag}"),
        }
    }
    a
}

/// A pod-like object of about `size` bytes of JSON.
fn object(name: &str, n: u64, size: usize) -> Value {
    let mut o = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "bench", "uid": format!("uid-{name}"),
                     "labels": {"app": "bench"}},
        "spec": {"containers": [{"name": "app", "image": "busybox", "command": ["sleep", "inf"]}]},
        "status": {"phase": "Running", "n": n},
    });
    let len = serde_json::to_vec(&o).map(|v| v.len()).unwrap_or(0);
    o["metadata"]["annotations"] = json!({"pad": "x".repeat(size.saturating_sub(len + 30))});
    o
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Runs `writers` tasks for `secs`, each committing `per_call` objects per call over its own
/// 100 keys (created, then updated with their revision as the precondition).
async fn run(store: &Store, label: &str, writers: usize, per_call: usize, secs: u64, size: usize) {
    let before = store.stats();
    let start = Instant::now();
    let end = start + Duration::from_secs(secs);
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let store = store.clone();
            let label = label.to_string();
            tokio::spawn(async move {
                let mut lat = Vec::new();
                let mut revs: Vec<Option<u64>> = vec![None; 100];
                let mut n = 0u64;
                let mut i = 0usize;
                while Instant::now() < end {
                    let mut batch = Vec::with_capacity(per_call);
                    let mut slots = Vec::with_capacity(per_call);
                    for _ in 0..per_call {
                        let slot = i % 100;
                        i += 1;
                        let name = format!("{label}-{w}-{slot}");
                        let key = Key::new("pods", "bench", &name);
                        let object = object(&name, n, size);
                        batch.push(match revs[slot] {
                            None => Mutation::Create { key, object },
                            Some(r) => Mutation::Update {
                                key,
                                object,
                                expect_rev: Some(r),
                            },
                        });
                        slots.push(slot);
                    }
                    let t = Instant::now();
                    let res = store.commit_many(batch).await;
                    lat.push(t.elapsed());
                    for (slot, r) in slots.into_iter().zip(res) {
                        revs[slot] = Some(r.expect("commit").mod_rev);
                        n += 1;
                    }
                }
                (n, lat)
            })
        })
        .collect();
    let mut total = 0;
    let mut lat = Vec::new();
    for t in tasks {
        let (n, l) = t.await.unwrap();
        total += n;
        lat.extend(l);
    }
    let took = start.elapsed().as_secs_f64();
    lat.sort();
    let after = store.stats();
    let txns = after.transactions - before.transactions;
    let per_txn = (after.mutations - before.mutations) as f64 / txns.max(1) as f64;
    println!(
        "{label:<12} writers={writers:<3} objects/call={per_call:<3} {:>8.0} object writes/s  \
         commit p50 {:>6.2} ms  p99 {:>6.2} ms  ({txns} transactions, {per_txn:.1} objects each)",
        total as f64 / took,
        pct(&lat, 0.50).as_secs_f64() * 1e3,
        pct(&lat, 0.99).as_secs_f64() * 1e3,
    );
}

/// The process's resident memory now and at its peak (the history holds up to
/// `StoreConfig::history_bytes` of JSON, parsed).
fn memory() -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .map_or("?".to_string(), |l| l[name.len()..].trim().to_string())
    };
    format!(
        "VmRSS {} (anonymous {}), VmHWM {}",
        field("VmRSS:"),
        field("RssAnon:"),
        field("VmHWM:")
    )
}

fn main() {
    let a = args();
    let tmp;
    let dir = match &a.dir {
        Some(d) => d.clone(),
        None => {
            tmp = tempfile::tempdir_in(".").expect("temporary directory");
            tmp.path().to_path_buf()
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut cfg = StoreConfig::default();
        if let Some(c) = a.cache {
            cfg.cache_bytes = c;
        }
        let store = Store::open(&dir, cfg).unwrap();
        println!(
            "store bench: {} s each, objects of {} bytes, {}",
            a.seconds,
            a.size,
            store.path().display()
        );
        run(&store, "concurrent", a.writers, 1, a.seconds, a.size).await;
        run(&store, "sequential", 1, 1, a.seconds, a.size).await;
        run(&store, "commit_many", 1, 100, a.seconds, a.size).await;
        let (objects, _) = store.list_all();
        println!(
            "{} objects, {} MiB file; process {}",
            objects.len(),
            std::fs::metadata(store.path()).map_or(0, |m| m.len() >> 20),
            memory()
        );
    });
}
