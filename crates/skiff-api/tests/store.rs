//! The durable store (`skiff_api::store`): semantics, list+watch consistency, compaction,
//! slow and many watchers, and a kill -9 crash test against a child process.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use skiff_api::store::{
    EventType, Key, Mutation, Rev, Store, StoreConfig, StoreError, WatchEvent, WatchItem,
};

fn obj(name: &str, uid: &str, n: u64) -> Value {
    json!({"metadata": {"name": name, "uid": uid}, "spec": {"n": n}})
}

fn rv(v: &Value) -> &str {
    v["metadata"]["resourceVersion"].as_str().unwrap()
}

fn create(key: &Key, n: u64) -> Mutation {
    Mutation::Create {
        key: key.clone(),
        object: obj(&key.name, &format!("uid-{}", key.name), n),
    }
}

fn open(dir: &Path) -> Store {
    Store::open(dir, StoreConfig::default()).unwrap()
}

/// The next item of a watch, failing the test after 10 s.
async fn next(w: &mut skiff_api::store::Watch) -> Option<WatchItem> {
    tokio::time::timeout(Duration::from_secs(10), w.next())
        .await
        .expect("watch stalled")
}

async fn next_event(w: &mut skiff_api::store::Watch) -> WatchEvent {
    match next(w).await {
        Some(WatchItem::Event(e)) => e,
        other => panic!("expected an event, got {other:?}"),
    }
}

#[tokio::test]
async fn create_update_delete_and_preconditions() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let r0 = store.current_rev();
    let k = Key::new("pods", "default", "a");

    let c = store.commit(create(&k, 1)).await.unwrap();
    assert_eq!(c.mod_rev, r0 + 1);
    assert_eq!(c.create_rev, r0 + 1);
    assert_eq!(rv(&c.object), (r0 + 1).to_string());
    assert_eq!(store.current_rev(), r0 + 1);
    assert_eq!(
        store.commit(create(&k, 2)).await.unwrap_err(),
        StoreError::AlreadyExists(k.clone())
    );

    // A stale resourceVersion is a conflict; the right one or none updates.
    let stale = store
        .commit(Mutation::Update {
            key: k.clone(),
            object: obj("a", "uid-a", 2),
            expect_rev: Some(c.mod_rev + 7),
        })
        .await
        .unwrap_err();
    assert_eq!(
        stale,
        StoreError::Conflict {
            key: k.clone(),
            stored: c.mod_rev
        }
    );
    let u = store
        .commit(Mutation::Update {
            key: k.clone(),
            object: obj("a", "uid-a", 3),
            expect_rev: Some(c.mod_rev),
        })
        .await
        .unwrap();
    assert_eq!((u.create_rev, u.mod_rev), (c.mod_rev, c.mod_rev + 1));
    let u2 = store
        .commit(Mutation::Update {
            key: k.clone(),
            object: obj("a", "uid-a", 4),
            expect_rev: None,
        })
        .await
        .unwrap();
    assert_eq!(u2.mod_rev, u.mod_rev + 1);
    let got = store.get(&k).unwrap();
    assert_eq!(got.mod_rev, u2.mod_rev);
    assert_eq!(got.object["spec"]["n"], 4);

    // Delete: a wrong uid or revision is a conflict; the right ones delete, and the result is
    // the last state stamped with the delete's revision.
    for (rev, uid) in [(None, Some("other")), (Some(1), None)] {
        let e = store
            .commit(Mutation::Delete {
                key: k.clone(),
                expect_rev: rev,
                expect_uid: uid.map(str::to_string),
            })
            .await
            .unwrap_err();
        assert!(matches!(e, StoreError::Conflict { .. }), "{e:?}");
    }
    let d = store
        .commit(Mutation::Delete {
            key: k.clone(),
            expect_rev: Some(u2.mod_rev),
            expect_uid: Some("uid-a".into()),
        })
        .await
        .unwrap();
    assert_eq!(d.mod_rev, u2.mod_rev + 1);
    assert_eq!(rv(&d.object), d.mod_rev.to_string());
    assert_eq!(d.object["spec"]["n"], 4);
    assert!(store.get(&k).is_none());
    assert_eq!(store.current_rev(), d.mod_rev);

    // Missing objects and objects without metadata.
    let e = store
        .commit(Mutation::Update {
            key: k.clone(),
            object: obj("a", "u", 1),
            expect_rev: None,
        })
        .await
        .unwrap_err();
    assert_eq!(e, StoreError::NotFound(k.clone()));
    let e = store
        .commit(Mutation::Delete {
            key: k.clone(),
            expect_rev: None,
            expect_uid: None,
        })
        .await
        .unwrap_err();
    assert_eq!(e, StoreError::NotFound(k.clone()));
    let e = store
        .commit(Mutation::Create {
            key: k.clone(),
            object: json!({"spec": {}}),
        })
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::BadObject(_)), "{e:?}");
    // Failed mutations take no revision.
    assert_eq!(store.current_rev(), d.mod_rev);
}

#[tokio::test]
async fn commit_many_applies_each_mutation_on_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let r0 = store.current_rev();
    let a = Key::new("pods", "ns", "a");
    let b = Key::new("pods", "ns", "b");
    let res = store
        .commit_many(vec![
            create(&a, 1),
            create(&a, 2),
            Mutation::Update {
                key: b.clone(),
                object: obj("b", "uid-b", 1),
                expect_rev: None,
            },
            create(&b, 1),
            // Sees the create of b just before it, in the same transaction.
            Mutation::Update {
                key: b.clone(),
                object: obj("b", "uid-b", 2),
                expect_rev: Some(r0 + 2),
            },
            Mutation::Delete {
                key: a.clone(),
                expect_rev: None,
                expect_uid: None,
            },
        ])
        .await;
    assert_eq!(res.len(), 6);
    assert_eq!(res[0].as_ref().unwrap().mod_rev, r0 + 1);
    assert_eq!(
        res[1].as_ref().unwrap_err(),
        &StoreError::AlreadyExists(a.clone())
    );
    assert_eq!(
        res[2].as_ref().unwrap_err(),
        &StoreError::NotFound(b.clone())
    );
    assert_eq!(res[3].as_ref().unwrap().mod_rev, r0 + 2);
    assert_eq!(res[4].as_ref().unwrap().mod_rev, r0 + 3);
    assert_eq!(res[5].as_ref().unwrap().mod_rev, r0 + 4);
    assert!(store.get(&a).is_none());
    let got = store.get(&b).unwrap();
    assert_eq!((got.create_rev, got.mod_rev), (r0 + 2, r0 + 3));
    assert!(store.commit_many(Vec::new()).await.is_empty());
}

#[tokio::test]
async fn state_history_and_revisions_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (rev, k_rev) = {
        let store = open(dir.path());
        let file = store.path().to_path_buf();
        assert_eq!(file, dir.path().join("store.redb"));
        assert_eq!(
            std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );
        // One process (or handle) at a time.
        let again = Store::open(dir.path(), StoreConfig::default());
        assert!(matches!(again, Err(StoreError::Io(_))), "second open");
        for i in 0..20 {
            store
                .commit(create(&Key::new("pods", "default", &format!("p{i}")), i))
                .await
                .unwrap();
        }
        store
            .commit(Mutation::Delete {
                key: Key::new("pods", "default", "p3"),
                expect_rev: None,
                expect_uid: None,
            })
            .await
            .unwrap();
        let k = store
            .commit(create(&Key::new("namespaces", "", "kube-system"), 0))
            .await
            .unwrap();
        (store.current_rev(), k.mod_rev)
    };
    let store = open(dir.path());
    assert_eq!(store.current_rev(), rev);
    let (pods, at) = store.list("pods", Some("default"));
    assert_eq!(at, rev);
    assert_eq!(pods.len(), 19);
    assert!(pods.iter().all(|p| p.key.name != "p3"));
    let ns = store
        .get(&Key::new("namespaces", "", "kube-system"))
        .unwrap();
    assert_eq!(
        (ns.mod_rev, rv(&ns.object)),
        (k_rev, k_rev.to_string().as_str())
    );
    let (all, _) = store.list_all();
    assert_eq!(all.len(), 20);

    // The history came back too: a watch from the first revision replays every pod event.
    let mut w = store.watch("pods", None, 1).unwrap();
    let mut kinds = Vec::new();
    for _ in 0..21 {
        let e = next_event(&mut w).await;
        kinds.push(e.kind);
    }
    assert_eq!(kinds.iter().filter(|k| **k == EventType::Added).count(), 20);
    assert_eq!(kinds[20], EventType::Deleted);

    // Revisions go on from where they were.
    let n = store
        .commit(create(&Key::new("pods", "default", "new"), 0))
        .await
        .unwrap();
    assert_eq!(n.mod_rev, rev + 1);
    let e = next_event(&mut w).await;
    assert_eq!((e.rev, e.key.name.as_str()), (rev + 1, "new"));
}

#[tokio::test]
async fn list_and_watch_filter_by_resource_and_namespace() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let mut w_ns = store.watch("pods", Some("b"), store.current_rev()).unwrap();
    for (res, ns, name) in [
        ("pods", "a", "x"),
        ("pods", "b", "x"),
        ("podsx", "b", "y"),
        ("pod", "b", "z"),
        ("pods", "c", "x"),
        ("pods", "b", "w"),
    ] {
        store
            .commit(create(&Key::new(res, ns, name), 0))
            .await
            .unwrap();
    }
    let names = |v: Vec<skiff_api::store::Stored>| -> Vec<String> {
        v.into_iter()
            .map(|s| format!("{}/{}", s.key.namespace, s.key.name))
            .collect()
    };
    assert_eq!(
        names(store.list("pods", None).0),
        ["a/x", "b/w", "b/x", "c/x"]
    );
    assert_eq!(names(store.list("pods", Some("b")).0), ["b/w", "b/x"]);
    assert_eq!(
        names(store.list("pods", Some("zz")).0),
        Vec::<String>::new()
    );
    assert_eq!(names(store.list("pod", None).0), ["b/z"]);
    let e1 = next_event(&mut w_ns).await;
    let e2 = next_event(&mut w_ns).await;
    assert_eq!((e1.key.name.as_str(), e2.key.name.as_str()), ("x", "w"));
    assert!(e1.rev < e2.rev);
}

#[tokio::test]
async fn a_replay_has_each_version_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let r0 = store.current_rev();
    let k = Key::new("pods", "d", "a");
    store.commit(create(&k, 1)).await.unwrap();
    for n in 2..=3 {
        store
            .commit(Mutation::Update {
                key: k.clone(),
                object: obj("a", "uid-a", n),
                expect_rev: None,
            })
            .await
            .unwrap();
    }
    store
        .commit(Mutation::Delete {
            key: k.clone(),
            expect_rev: None,
            expect_uid: None,
        })
        .await
        .unwrap();
    store.commit(create(&k, 5)).await.unwrap();
    let want = [
        (EventType::Added, 1),
        (EventType::Modified, 2),
        (EventType::Modified, 3),
        (EventType::Deleted, 3),
        (EventType::Added, 5),
    ];
    // Twice: the parsed replay must not disturb the stored bytes.
    for _ in 0..2 {
        let mut w = store.watch("pods", None, r0).unwrap();
        for (i, (kind, n)) in want.iter().enumerate() {
            let e = next_event(&mut w).await;
            assert_eq!(e.rev, r0 + 1 + i as u64);
            assert_eq!((e.kind, &e.object["spec"]["n"]), (*kind, &json!(n)));
            assert_eq!(rv(&e.object), e.rev.to_string());
        }
    }
    // The live object and the newest event are one and the same JSON.
    let mut w = store.watch("pods", None, r0 + 4).unwrap();
    let e = next_event(&mut w).await;
    assert!(Arc::ptr_eq(&e.object, &store.get(&k).unwrap().object));
}

#[tokio::test]
async fn a_watch_from_a_future_revision_gets_only_later_events() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let from = store.current_rev() + 2;
    let mut w = store.watch("pods", None, from).unwrap();
    for i in 0..4 {
        store
            .commit(create(&Key::new("pods", "d", &format!("p{i}")), i))
            .await
            .unwrap();
    }
    assert_eq!(next_event(&mut w).await.rev, from + 1);
    assert_eq!(next_event(&mut w).await.rev, from + 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn list_then_watch_is_consistent_under_concurrent_writers() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(
        dir.path(),
        StoreConfig {
            watcher_queue: 100_000,
            ..StoreConfig::default()
        },
    )
    .unwrap();
    let writers: Vec<_> = (0..6)
        .map(|t| {
            let store = store.clone();
            tokio::spawn(async move {
                for i in 0..150u64 {
                    let key = Key::new("pods", &format!("t{t}"), &format!("k{}", i % 10));
                    let m = match store.get(&key) {
                        None => create(&key, i),
                        Some(s) if i % 3 == 0 => Mutation::Delete {
                            key,
                            expect_rev: Some(s.mod_rev),
                            expect_uid: None,
                        },
                        Some(s) => Mutation::Update {
                            key: key.clone(),
                            object: obj(&key.name, "u", i),
                            expect_rev: Some(s.mod_rev),
                        },
                    };
                    store.commit(m).await.unwrap();
                }
            })
        })
        .collect();
    // Snapshots (list + watch from its revision) taken while the writers run.
    let mut snaps = Vec::new();
    for i in 0..12 {
        let ns = (i % 4 == 3).then_some("t0");
        let (items, rev) = store.list("pods", ns);
        let w = store.watch("pods", ns, rev).unwrap();
        snaps.push((ns, items, rev, w));
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    for w in writers {
        w.await.unwrap();
    }
    // A last write every snapshot's watch sees: reading up to it reads everything.
    let sentinel = store
        .commit(create(&Key::new("pods", "t0", "zz-sentinel"), 0))
        .await
        .unwrap()
        .mod_rev;
    let mut checked_events = 0;
    for (ns, items, rev, mut w) in snaps {
        let (final_items, _) = store.list("pods", ns);
        let want: BTreeMap<Key, Rev> = final_items
            .iter()
            .map(|s| (s.key.clone(), s.mod_rev))
            .collect();
        let mut state: BTreeMap<Key, Rev> =
            items.iter().map(|s| (s.key.clone(), s.mod_rev)).collect();
        let mut last = rev;
        while last < sentinel {
            let e = next_event(&mut w).await;
            assert!(e.rev > last, "revision order: {} after {last}", e.rev);
            if ns.is_none() {
                // Every write is a pod: nothing may be skipped.
                assert_eq!(e.rev, last + 1, "missing event after {last}");
            } else {
                assert_eq!(e.key.namespace, "t0");
            }
            assert_eq!(rv(&e.object), e.rev.to_string());
            match e.kind {
                EventType::Added => assert!(state.insert(e.key.clone(), e.rev).is_none()),
                EventType::Modified => assert!(state.insert(e.key.clone(), e.rev).is_some()),
                EventType::Deleted => assert!(state.remove(&e.key).is_some()),
            }
            last = e.rev;
            checked_events += 1;
        }
        assert_eq!(
            state, want,
            "snapshot at {rev} (namespace {ns:?}) + its events"
        );
    }
    assert!(checked_events > 100, "only {checked_events} events checked");
}

#[tokio::test]
async fn watch_below_the_compacted_revision_is_expired() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = StoreConfig {
        history: 5,
        ..StoreConfig::default()
    };
    let first;
    {
        let store = Store::open(dir.path(), cfg.clone()).unwrap();
        first = store.current_rev();
        for i in 0..20 {
            store
                .commit(create(&Key::new("pods", "d", &format!("p{i}")), i))
                .await
                .unwrap();
        }
        let cur = store.current_rev();
        assert_eq!(store.compacted_rev(), cur - 5);
        match store.watch("pods", None, first) {
            Err(StoreError::Expired { requested, oldest }) => {
                assert_eq!((requested, oldest), (first, cur - 5));
            }
            other => panic!("expected Expired, got {:?}", other.err()),
        }
        // From the compacted revision on, the kept events replay.
        let mut w = store.watch("pods", None, cur - 5).unwrap();
        for r in cur - 4..=cur {
            assert_eq!(next_event(&mut w).await.rev, r);
        }
        // Objects are never compacted.
        assert_eq!(store.list("pods", None).0.len(), 20);
    }
    // compacted_rev is persisted.
    let store = Store::open(dir.path(), cfg).unwrap();
    let cur = store.current_rev();
    assert_eq!(store.compacted_rev(), cur - 5);
    assert!(store.watch("pods", None, cur - 6).is_err());
    assert!(store.watch("pods", None, cur - 5).is_ok());
}

#[tokio::test]
async fn compaction_by_age() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(
        dir.path(),
        StoreConfig {
            history_age: Duration::from_secs(1),
            ..StoreConfig::default()
        },
    )
    .unwrap();
    let r0 = store.current_rev();
    for i in 0..3 {
        store
            .commit(create(&Key::new("pods", "d", &format!("p{i}")), i))
            .await
            .unwrap();
    }
    assert_eq!(store.compacted_rev(), 0);
    assert!(store.watch("pods", None, r0).is_ok());
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let c = store.compact_now().await.unwrap();
    assert_eq!(c, r0 + 3);
    assert_eq!(store.compacted_rev(), r0 + 3);
    assert!(matches!(
        store.watch("pods", None, r0),
        Err(StoreError::Expired { .. })
    ));
    // A watch from the current revision still works and gets new events.
    let mut w = store.watch("pods", None, store.current_rev()).unwrap();
    store
        .commit(create(&Key::new("pods", "d", "late"), 0))
        .await
        .unwrap();
    assert_eq!(next_event(&mut w).await.key.name, "late");
}

#[tokio::test]
async fn a_slow_watcher_is_cut_off_with_lagged() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(
        dir.path(),
        StoreConfig {
            watcher_queue: 10,
            ..StoreConfig::default()
        },
    )
    .unwrap();
    let from = store.current_rev();
    let mut slow = store.watch("pods", None, from).unwrap();
    let mut fast = store.watch("pods", None, from).unwrap();
    let fast_reader = tokio::spawn(async move {
        let mut n = 0;
        while let Some(WatchItem::Event(_)) = fast.next().await {
            n += 1;
            if n == 100 {
                break;
            }
        }
        n
    });
    for i in 0..100 {
        store
            .commit(create(&Key::new("pods", "d", &format!("p{i}")), i))
            .await
            .unwrap();
    }
    assert_eq!(fast_reader.await.unwrap(), 100);
    // The slow one holds exactly its queue, then the marker, then the end.
    for r in from + 1..=from + 10 {
        assert_eq!(next_event(&mut slow).await.rev, r);
    }
    assert!(matches!(next(&mut slow).await, Some(WatchItem::Lagged)));
    assert!(next(&mut slow).await.is_none());
    // The store dropped it (and the fast one, whose receiver is gone).
    assert_eq!(store.watcher_count(), 0);

    // A watch from a past revision whose replay does not fit is cut off at once.
    let mut behind = store.watch("pods", None, from).unwrap();
    for _ in 0..10 {
        next_event(&mut behind).await;
    }
    assert!(matches!(next(&mut behind).await, Some(WatchItem::Lagged)));
    assert!(next(&mut behind).await.is_none());
    assert_eq!(store.watcher_count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_watchers_share_each_event() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let from = store.current_rev();
    let mut watches: Vec<_> = (0..1000)
        .map(|_| store.watch("pods", None, from).unwrap())
        .collect();
    assert_eq!(store.watcher_count(), 1000);
    let start = Instant::now();
    for i in 0..50 {
        store
            .commit(create(&Key::new("pods", "d", &format!("p{i}")), i))
            .await
            .unwrap();
    }
    let took = start.elapsed();
    let mut first: Vec<Arc<Value>> = Vec::new();
    for (n, w) in watches.iter_mut().enumerate() {
        for i in 0..50u64 {
            let e = next_event(w).await;
            assert_eq!(e.rev, from + 1 + i);
            if n == 0 {
                first.push(e.object);
            } else {
                // The same JSON, not a copy per watcher.
                assert!(Arc::ptr_eq(&first[i as usize], &e.object));
            }
        }
    }
    eprintln!("50 commits with 1000 watchers: {took:?}");
    assert!(took < Duration::from_secs(10), "{took:?}");
    // Watches that end are pruned at the next registration.
    drop(watches);
    let _w = store.watch("pods", None, store.current_rev()).unwrap();
    assert_eq!(store.watcher_count(), 1);
}

// ---- kill -9 ----

const CHILD_ENV: &str = "SKIFF_STORE_CRASH_DIR";

/// The crash test's config: no compaction, so the parent can check every acked event in the
/// log.
fn crash_cfg() -> StoreConfig {
    StoreConfig {
        history: usize::MAX,
        history_bytes: usize::MAX,
        history_age: Duration::from_secs(365 * 24 * 3600),
        watcher_queue: 10_000_000,
        ..StoreConfig::default()
    }
}

/// The child of `kill_9_loses_no_acknowledged_write` (the same test re-run by it with
/// `CHILD_ENV` set): commits from several tasks until killed, printing
/// `ACK <rev> <C|U|D> <name>` after each ack.
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let round = std::env::var("SKIFF_STORE_CRASH_ROUND").unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        // Odd rounds compact as they go (count-based, with each batch), so kills also land
        // in compacting transactions.
        let mut cfg = crash_cfg();
        if round.parse::<u32>().unwrap() % 2 == 1 {
            cfg.history = 200;
        }
        let store = Store::open(Path::new(&dir), cfg).unwrap();
        println!("READY {}", store.current_rev());
        let tasks: Vec<_> = (0..6)
            .map(|t| {
                let store = store.clone();
                let round = round.clone();
                tokio::spawn(async move {
                    for i in 0u64.. {
                        let name = format!("r{round}-t{t}-{i}");
                        let key = Key::new("crash", "ns", &name);
                        let c = store.commit(create(&key, i)).await.unwrap();
                        println!("ACK {} C {name}", c.mod_rev);
                        let u = store
                            .commit(Mutation::Update {
                                key: key.clone(),
                                object: obj(&name, "u", i + 1),
                                expect_rev: Some(c.mod_rev),
                            })
                            .await
                            .unwrap();
                        println!("ACK {} U {name}", u.mod_rev);
                        if i % 2 == 0 {
                            let d = store
                                .commit(Mutation::Delete {
                                    key,
                                    expect_rev: Some(u.mod_rev),
                                    expect_uid: None,
                                })
                                .await
                                .unwrap();
                            println!("ACK {} D {name}", d.mod_rev);
                        }
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    });
}

/// Kills the child on drop, by its PID (a failed assertion must not leave it running).
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A small xorshift PRNG: the kill moments need no more (the seed is printed to replay).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

#[test]
fn kill_9_loses_no_acknowledged_write() {
    if std::env::var_os(CHILD_ENV).is_some() {
        crash_child();
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let seed = std::env::var("SKIFF_STORE_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    eprintln!("crash test seed {seed} (SKIFF_STORE_CRASH_SEED to replay)");
    let mut rng = Rng(seed);
    let exe = std::env::current_exe().unwrap();
    // rev → (op, name) of every acked write, over all rounds.
    let mut acked: BTreeMap<Rev, (char, String)> = BTreeMap::new();
    let mut prev_rev: Rev = 0;
    let mut total_acks = 0;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for round in 0..20 {
        let child = Command::new(&exe)
            .args([
                "--exact",
                "kill_9_loses_no_acknowledged_write",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, dir.path())
            .env("SKIFF_STORE_CRASH_ROUND", round.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut child = ChildGuard(child);
        let stdout = child.0.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        let reader = std::thread::spawn(move || {
            let mut r = BufReader::new(stdout);
            let mut line = Vec::new();
            loop {
                line.clear();
                match r.read_until(b'\n', &mut line) {
                    // A line cut by the kill has no newline: it was never acknowledged output.
                    Ok(n) if n > 0 && line.ends_with(b"\n") => {
                        let _ = tx.send(String::from_utf8_lossy(&line).trim_end().to_string());
                    }
                    _ => break,
                }
            }
        });
        let mut lines = Vec::new();
        if round % 5 == 4 {
            // Sometimes kill early: during the open (and its repair) or the first commits.
            std::thread::sleep(Duration::from_millis(rng.below(60)));
        } else {
            // Otherwise at a random moment once writes are flowing.
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                let l = rx
                    .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                    .unwrap_or_else(|e| panic!("round {round}: child not writing: {e}"));
                let is_ack = l.starts_with("ACK ");
                lines.push(l);
                if is_ack {
                    break;
                }
            }
            std::thread::sleep(Duration::from_millis(50 + rng.below(300)));
        }
        child.0.kill().unwrap(); // SIGKILL
        child.0.wait().unwrap();
        drop(child);
        reader.join().unwrap();
        lines.extend(rx.try_iter());
        let mut round_first: Option<Rev> = None;
        let mut n = 0;
        for l in &lines {
            if let Some(rest) = l.strip_prefix("ACK ") {
                let rev = record(&mut acked, rest, round);
                round_first = Some(round_first.map_or(rev, |f: Rev| f.min(rev)));
                n += 1;
            } else if let Some(r) = l.strip_prefix("READY ") {
                // The child opened at the revision the parent last saw (or later).
                assert!(r.parse::<Rev>().unwrap() >= prev_rev, "round {round}: {l}");
            }
        }
        total_acks += n;
        if let Some(f) = round_first {
            assert!(f > prev_rev, "round {round}: revision {f} after {prev_rev}");
        }

        // Reopen and check everything acked so far.
        let store = Store::open(dir.path(), crash_cfg())
            .unwrap_or_else(|e| panic!("round {round}: reopen failed: {e}"));
        let cur = store.current_rev();
        assert!(cur >= prev_rev, "round {round}: revision went back");
        if let Some((max, _)) = acked.last_key_value() {
            assert!(cur >= *max, "round {round}: current {cur} < acked {max}");
        }
        prev_rev = cur;
        // The log from the compacted revision (odd rounds' children compact as they go).
        let compacted = store.compacted_rev();
        assert!(compacted <= cur);
        if round % 2 == 1 {
            assert!(
                compacted > 0 || cur < 300,
                "round {round}: the child compacted nothing"
            );
        }
        let log = rt.block_on(async {
            let mut w = store.watch("crash", None, compacted).unwrap();
            let mut log: BTreeMap<Rev, (EventType, String)> = BTreeMap::new();
            let mut last = compacted;
            while last < cur {
                let e = next_event(&mut w).await;
                assert!(e.rev > last);
                last = e.rev;
                assert!(log.insert(e.rev, (e.kind, e.key.name.clone())).is_none());
            }
            log
        });
        // Every revision is one event: no gaps, nothing twice.
        let revs: Vec<Rev> = log.keys().copied().collect();
        let expected: Vec<Rev> = (compacted.max(1) + 1..=cur).collect();
        assert_eq!(revs, expected, "round {round}: revisions of the log");
        // Every acked write the log still covers is in it.
        for (rev, (op, name)) in acked.range(compacted + 1..) {
            let (kind, logged) = log
                .get(rev)
                .unwrap_or_else(|| panic!("round {round}: acked {op} {name} at {rev} lost"));
            assert_eq!(
                (kind, logged),
                (&kind_of(*op), name),
                "round {round}: revision {rev}"
            );
        }
        // Each name was created once; the objects agree with the log's last word on them.
        let mut created = HashSet::new();
        let mut last_event: HashMap<&str, (Rev, EventType)> = HashMap::new();
        for (rev, (kind, name)) in &log {
            if *kind == EventType::Added {
                assert!(created.insert(name.clone()), "{name} created twice");
            }
            last_event.insert(name, (*rev, *kind));
        }
        let (objects, at) = store.list("crash", None);
        assert_eq!(at, cur);
        let got: HashMap<&str, Rev> = objects
            .iter()
            .map(|s| (s.key.name.as_str(), s.mod_rev))
            .collect();
        for (name, (rev, kind)) in &last_event {
            let want = (*kind != EventType::Deleted).then_some(*rev);
            assert_eq!(
                got.get(name).copied(),
                want,
                "round {round}: {name} vs the log"
            );
        }
        for (name, rev) in &got {
            assert!(*rev <= cur);
            if *rev > compacted {
                assert!(
                    last_event.contains_key(name),
                    "round {round}: {name} at {rev}"
                );
            }
        }
        // And with the acks, compacted or not: the newest acked write of each name is there
        // (or a later one the kill kept from being acked: only a delete can follow).
        let mut newest: HashMap<&str, (Rev, char)> = HashMap::new();
        for (rev, (op, name)) in &acked {
            newest.insert(name, (*rev, *op));
        }
        for (name, (rev, op)) in &newest {
            match got.get(name) {
                Some(m) => {
                    assert!(
                        *op != 'D',
                        "round {round}: {name} deleted at {rev} but present"
                    );
                    assert!(m >= rev, "round {round}: {name} at {m}, acked at {rev}");
                }
                None if *op == 'D' => {}
                None => {
                    let deletable =
                        name.rsplit('-').next().unwrap().parse::<u64>().unwrap() % 2 == 0;
                    let deleted_later = matches!(last_event.get(name), Some((r, EventType::Deleted)) if r > rev)
                        || compacted > *rev;
                    assert!(
                        deletable && deleted_later,
                        "round {round}: {name} acked {op} at {rev} is gone"
                    );
                }
            }
        }
        drop(store);
    }
    eprintln!("20 kill -9 rounds: {total_acks} acknowledged writes, all present");
    assert!(
        total_acks > 100,
        "too few writes to mean anything: {total_acks}"
    );
}

fn kind_of(op: char) -> EventType {
    match op {
        'C' => EventType::Added,
        'U' => EventType::Modified,
        _ => EventType::Deleted,
    }
}

/// Records one `<rev> <op> <name>` ack; returns its revision.
fn record(acked: &mut BTreeMap<Rev, (char, String)>, rest: &str, round: i32) -> Rev {
    let mut it = rest.splitn(3, ' ');
    let rev: Rev = it.next().unwrap().parse().unwrap();
    let op = it.next().unwrap().chars().next().unwrap();
    let name = it.next().unwrap().to_string();
    let prev = acked.insert(rev, (op, name.clone()));
    assert!(
        prev.is_none() || prev.as_ref() == Some(&(op, name.clone())),
        "round {round}: revision {rev} acked twice: {prev:?} and {op} {name}"
    );
    rev
}

#[test]
fn handles_cross_threads() {
    // The daemon keeps the store in axum's state and moves watches into response streams.
    fn send_sync<T: Send + Sync + 'static>() {}
    fn send<T: Send + 'static>() {}
    send_sync::<Store>();
    send::<skiff_api::store::Watch>();
}
