//! The store's single writer: opening the redb file, and the thread that group-commits.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::ops::Bound;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redb::{Builder, Database, DatabaseError, Durability, ReadableTable, TableDefinition};
use serde_json::Value;

use super::codec::{decode_key, decode_log, decode_object, encode_key, encode_log, encode_object};
use super::{
    apply, io_err, EventType, Key, Logged, Mutation, Request, Rev, Shared, State, StoreConfig,
    StoreError, Stored, WatchEvent,
};

/// `rev`, `compacted_rev`, `format` → u64.
const META: TableDefinition<&[u8], u64> = TableDefinition::new("meta");
/// encoded key → `create_rev | mod_rev | json`.
const OBJECTS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("objects");
/// rev → `type | commit time | key | json`.
const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("log");

const META_REV: &[u8] = b"rev";
const META_COMPACTED: &[u8] = b"compacted_rev";
const META_FORMAT: &[u8] = b"format";
/// The layout of the tables above; a file with another one is refused, not misread.
const FORMAT: u64 = 1;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Io(format!("the store file is corrupt: {what}"))
}

/// Opens (creating) the database and reads it whole: the committed state readers start from.
pub(super) fn open_db(path: &Path, cfg: &StoreConfig) -> Result<(Database, State), StoreError> {
    let db = Builder::new()
        .set_cache_size(cfg.cache_bytes)
        .create(path)
        .map_err(|e| match e {
            DatabaseError::DatabaseAlreadyOpen => StoreError::Io(format!(
                "{} is already open (another skiff serve on this data dir?)",
                path.display()
            )),
            e => io_err(&format!("opening {}", path.display()))(&e),
        })?;
    let txn = db.begin_write().map_err(|e| io_err("open")(&e))?;
    let state = {
        let e = io_err("reading the store");
        let mut meta = txn.open_table(META).map_err(|x| e(&x))?;
        let objects_t = txn.open_table(OBJECTS).map_err(|x| e(&x))?;
        let mut log = txn.open_table(LOG).map_err(|x| e(&x))?;
        let format = meta.get(META_FORMAT).map_err(|x| e(&x))?.map(|g| g.value());
        match format {
            None => {
                meta.insert(META_FORMAT, FORMAT).map_err(|x| e(&x))?;
            }
            Some(FORMAT) => {}
            Some(other) => {
                return Err(StoreError::Io(format!(
                    "{} has store format {other}; this skiff reads format {FORMAT}",
                    path.display()
                )))
            }
        }
        // A fresh store is at revision 1, so that the first object is at 2 and "0" (any
        // revision, to kube clients) never names a real state.
        let mut rev = meta
            .get(META_REV)
            .map_err(|x| e(&x))?
            .map_or(1, |g| g.value());
        let compacted = meta
            .get(META_COMPACTED)
            .map_err(|x| e(&x))?
            .map_or(0, |g| g.value());

        let mut objects = BTreeMap::new();
        for item in objects_t.range(..).map_err(|x| e(&x))? {
            let (k, v) = item.map_err(|x| e(&x))?;
            let key = decode_key(k.value()).ok_or_else(|| corrupt("an object's key"))?;
            let (create_rev, mod_rev, json) =
                decode_object(v.value()).ok_or_else(|| corrupt("an object's header"))?;
            let object: Value = serde_json::from_slice(json)
                .map_err(|x| corrupt(&format!("the JSON of {key:?}: {x}")))?;
            rev = rev.max(mod_rev);
            objects.insert(
                key.clone(),
                Stored {
                    key,
                    create_rev,
                    mod_rev,
                    object: Arc::new(object),
                },
            );
        }

        let mut history = VecDeque::new();
        let mut history_bytes = 0;
        for item in log
            .range((Bound::Excluded(compacted), Bound::Unbounded))
            .map_err(|x| e(&x))?
        {
            let (r, v) = item.map_err(|x| e(&x))?;
            let r = r.value();
            let entry = decode_log(v.value()).ok_or_else(|| corrupt("a log entry"))?;
            // The newest event of a live object is the object: share the parsed one. Older
            // events stay bytes until a watch replays them.
            let parsed = match objects.get(&entry.key) {
                Some(s) if s.mod_rev == r && entry.kind != EventType::Deleted => {
                    Some(Arc::new(WatchEvent {
                        rev: r,
                        kind: entry.kind,
                        key: entry.key.clone(),
                        object: Arc::clone(&s.object),
                    }))
                }
                _ => None,
            };
            rev = rev.max(r);
            history_bytes += entry.json.len();
            history.push_back(Logged {
                rev: r,
                kind: entry.kind,
                key: entry.key,
                at_ms: entry.at_ms,
                json: Arc::from(entry.json),
                parsed,
            });
        }
        // Compaction deletes its entries in the transaction that raises `compacted_rev`, so
        // there are none at or below it; should a file have some, they are dropped here.
        log.retain_in(..=compacted, |_, _| false)
            .map_err(|x| e(&x))?;
        meta.insert(META_REV, rev).map_err(|x| e(&x))?;
        State {
            rev,
            compacted,
            objects,
            history,
            history_bytes,
        }
    };
    txn.commit().map_err(|e| io_err("open")(&e))?;
    Ok((db, state))
}

/// Starts the writer thread.
pub(super) fn spawn(
    db: Database,
    shared: Arc<Shared>,
    rx: Receiver<Request>,
) -> Result<JoinHandle<()>, StoreError> {
    let (rev, compacted) = {
        let st = shared.read();
        (st.rev, st.compacted)
    };
    let mut writer = Writer {
        db,
        shared,
        rev,
        compacted,
    };
    std::thread::Builder::new()
        .name("skiff-store".into())
        .spawn(move || writer.run(rx))
        .map_err(|e| io_err("starting the store's writer")(&e))
}

/// A committed change, to publish.
struct Change {
    /// The new state; `None` for a delete.
    stored: Option<Stored>,
    event: Arc<WatchEvent>,
    /// The JSON as written.
    json: Arc<[u8]>,
}

/// What a batch committed.
struct Outcome {
    results: Vec<Vec<Result<Stored, StoreError>>>,
    changes: Vec<Change>,
    rev: Rev,
    compacted: Rev,
    at_ms: u64,
}

struct Writer {
    db: Database,
    shared: Arc<Shared>,
    /// Copies of the committed state's revisions (only this thread changes them).
    rev: Rev,
    compacted: Rev,
}

fn mutation_count(r: &Request) -> usize {
    match r {
        Request::Commit { mutations, .. } => mutations.len(),
        Request::Compact { .. } => 0,
    }
}

/// How often an idle writer checks for events that aged out.
fn idle_tick(cfg: &StoreConfig) -> Duration {
    (cfg.history_age / 4).clamp(Duration::from_secs(1), Duration::from_secs(30))
}

/// The revision to compact to: the newest of the events (the history, then `new`: this
/// batch's revisions and sizes, committed at `now_ms`) that are beyond the newest `history`,
/// older than `history_age`, or beyond `history_bytes` of JSON counted from the newest;
/// `compacted` when there are none. It looks only at the events it drops, and one more.
fn compaction_target(
    st: &State,
    new: &[(Rev, usize)],
    now_ms: u64,
    cfg: &StoreConfig,
    compacted: Rev,
) -> Rev {
    let over = (st.history.len() + new.len()).saturating_sub(cfg.history);
    let age_ms = u64::try_from(cfg.history_age.as_millis()).unwrap_or(u64::MAX);
    let mut bytes = st.history_bytes + new.iter().map(|(_, b)| b).sum::<usize>();
    let events = st
        .history
        .iter()
        .map(|l| (l.rev, l.at_ms, l.json.len()))
        .chain(new.iter().map(|&(r, b)| (r, now_ms, b)));
    let mut target = compacted;
    for (i, (rev, at, size)) in events.enumerate() {
        if i < over || at.saturating_add(age_ms) < now_ms || bytes > cfg.history_bytes {
            target = rev;
            bytes -= size;
        } else {
            break;
        }
    }
    target
}

impl Writer {
    fn run(&mut self, rx: Receiver<Request>) {
        let max_batch = self.shared.cfg.max_batch.max(1);
        let tick = idle_tick(&self.shared.cfg);
        // Events may have aged out while the store was closed.
        self.process(Vec::new());
        loop {
            let first = match rx.recv_timeout(tick) {
                Ok(r) => r,
                Err(RecvTimeoutError::Timeout) => {
                    self.process(Vec::new());
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => break,
            };
            // Everything queued meanwhile goes into this transaction (group commit).
            let mut n = mutation_count(&first);
            let mut reqs = vec![first];
            while n < max_batch {
                match rx.try_recv() {
                    Ok(r) => {
                        n += mutation_count(&r);
                        reqs.push(r);
                    }
                    Err(_) => break,
                }
            }
            self.process(reqs);
        }
    }

    fn process(&mut self, reqs: Vec<Request>) {
        let mut batches = Vec::new();
        let mut replies = Vec::new();
        let mut compacts = Vec::new();
        for r in reqs {
            match r {
                Request::Commit { mutations, reply } => {
                    replies.push((mutations.len(), reply));
                    batches.push(mutations);
                }
                Request::Compact { reply } => compacts.push(reply),
            }
        }
        let began = std::time::Instant::now();
        let written = self.write(batches);
        if let (Some(m), Ok(out)) = (self.shared.metrics.get(), &written) {
            if !out.changes.is_empty() {
                m.committed(began.elapsed(), out.changes.len());
            }
        }
        match written {
            Ok(out) => {
                self.publish(&out);
                for ((_, reply), results) in replies.into_iter().zip(out.results) {
                    // A caller that went away (its task was cancelled) still had its write
                    // committed; nobody is left to tell.
                    let _ = reply.send(results);
                }
                for reply in compacts {
                    let _ = reply.send(Ok(self.compacted));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "store commit failed");
                for (n, reply) in replies {
                    let _ = reply.send(vec![Err(e.clone()); n]);
                }
                for reply in compacts {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
    }

    /// Applies the batches' mutations and the due compaction in one durable transaction.
    /// Nothing of it is visible to readers yet.
    fn write(&mut self, batches: Vec<Vec<Mutation>>) -> Result<Outcome, StoreError> {
        let now = now_ms();
        let cfg = &self.shared.cfg;
        if batches.is_empty() {
            let target = compaction_target(&self.shared.read(), &[], now, cfg, self.compacted);
            if target == self.compacted {
                return Ok(Outcome {
                    results: Vec::new(),
                    changes: Vec::new(),
                    rev: self.rev,
                    compacted: self.compacted,
                    at_ms: now,
                });
            }
        }
        let e = io_err("store commit");
        let mut txn = self.db.begin_write().map_err(|x| e(&x))?;
        txn.set_durability(Durability::Immediate)
            .map_err(|x| e(&x))?;
        let mut results = Vec::with_capacity(batches.len());
        let mut changes: Vec<Change> = Vec::new();
        let mut rev = self.rev;
        let target;
        {
            let mut objects_t = txn.open_table(OBJECTS).map_err(|x| e(&x))?;
            let mut log = txn.open_table(LOG).map_err(|x| e(&x))?;
            let mut meta = txn.open_table(META).map_err(|x| e(&x))?;
            // The batch's own changes, over the committed state (which only this thread
            // changes, so reading it under the read lock is reading it as committed).
            let mut overlay: HashMap<Key, Option<Stored>> = HashMap::new();
            let st = self.shared.read();
            for mutations in batches {
                let mut res = Vec::with_capacity(mutations.len());
                for m in mutations {
                    let key = m.key().clone();
                    let current = match overlay.get(&key) {
                        Some(o) => o.as_ref(),
                        None => st.objects.get(&key),
                    };
                    let (kind, stored) = match apply(m, current, rev + 1) {
                        Ok(x) => x,
                        Err(err) => {
                            res.push(Err(err));
                            continue;
                        }
                    };
                    let json = match serde_json::to_vec(&*stored.object) {
                        Ok(j) => j,
                        Err(x) => {
                            res.push(Err(StoreError::BadObject(x.to_string())));
                            continue;
                        }
                    };
                    let kb = encode_key(&key);
                    if kind == EventType::Deleted {
                        objects_t.remove(kb.as_slice()).map_err(|x| e(&x))?;
                    } else {
                        let v = encode_object(stored.create_rev, stored.mod_rev, &json);
                        objects_t
                            .insert(kb.as_slice(), v.as_slice())
                            .map_err(|x| e(&x))?;
                    }
                    rev += 1;
                    log.insert(rev, encode_log(kind, now, &kb, &json).as_slice())
                        .map_err(|x| e(&x))?;
                    let live = (kind != EventType::Deleted).then(|| stored.clone());
                    overlay.insert(key.clone(), live.clone());
                    changes.push(Change {
                        json: Arc::from(json),
                        stored: live,
                        event: Arc::new(WatchEvent {
                            rev,
                            kind,
                            key,
                            object: Arc::clone(&stored.object),
                        }),
                    });
                    res.push(Ok(stored));
                }
                results.push(res);
            }
            let new: Vec<(Rev, usize)> = changes
                .iter()
                .map(|c| (c.event.rev, c.json.len()))
                .collect();
            target = compaction_target(&st, &new, now, cfg, self.compacted);
            drop(st);
            if rev != self.rev {
                meta.insert(META_REV, rev).map_err(|x| e(&x))?;
            }
            if target > self.compacted {
                log.retain_in(..=target, |_, _| false).map_err(|x| e(&x))?;
                meta.insert(META_COMPACTED, target).map_err(|x| e(&x))?;
            }
        }
        if changes.is_empty() && target == self.compacted {
            // Every mutation failed its checks: nothing to make durable.
            txn.abort().map_err(|x| e(&x))?;
        } else {
            txn.commit().map_err(|x| e(&x))?;
            let sh = &self.shared;
            sh.transactions.fetch_add(1, Ordering::Relaxed);
            sh.mutations
                .fetch_add(changes.len() as u64, Ordering::Relaxed);
        }
        Ok(Outcome {
            results,
            changes,
            rev,
            compacted: target,
            at_ms: now,
        })
    }

    /// Makes a committed batch visible: the index and history first, then the watchers, all
    /// under the watcher lock (see `Store::watch`).
    fn publish(&mut self, out: &Outcome) {
        if out.changes.is_empty() && out.compacted == self.compacted {
            return;
        }
        // What leaves the index and the history is freed after the locks are released
        // (freeing a big JSON tree takes a while; readers need not wait for it).
        let mut garbage_objects = Vec::new();
        let mut garbage_events = Vec::new();
        let mut garbage_logged = Vec::new();
        let mut watchers = self.shared.watchers();
        {
            let mut st = self.shared.state.write().unwrap_or_else(|p| p.into_inner());
            for c in &out.changes {
                let old = match &c.stored {
                    Some(s) => st.objects.insert(c.event.key.clone(), s.clone()),
                    None => st.objects.remove(&c.event.key),
                };
                if let Some(old) = old {
                    // Its event in the history is no longer the current state: keep only its
                    // bytes there.
                    let i = st.history.partition_point(|l| l.rev < old.mod_rev);
                    if let Some(l) = st.history.get_mut(i).filter(|l| l.rev == old.mod_rev) {
                        if let Some(p) = l.parsed.take() {
                            garbage_events.push(p);
                        }
                    }
                    garbage_objects.push(old);
                }
                st.history_bytes += c.json.len();
                st.history.push_back(Logged {
                    rev: c.event.rev,
                    kind: c.event.kind,
                    key: c.event.key.clone(),
                    at_ms: out.at_ms,
                    json: Arc::clone(&c.json),
                    parsed: c.stored.is_some().then(|| Arc::clone(&c.event)),
                });
            }
            st.rev = out.rev;
            if out.compacted > st.compacted {
                while st.history.front().is_some_and(|l| l.rev <= out.compacted) {
                    if let Some(l) = st.history.pop_front() {
                        st.history_bytes -= l.json.len();
                        garbage_logged.push(l);
                    }
                }
                st.compacted = out.compacted;
            }
        }
        self.rev = out.rev;
        self.compacted = out.compacted;
        for c in &out.changes {
            watchers.fan_out(&c.event);
        }
        drop(watchers);
        drop(garbage_objects);
        drop(garbage_events);
        drop(garbage_logged);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::EventType;

    fn state(events: &[(Rev, u64, usize)]) -> State {
        State {
            rev: 0,
            compacted: 0,
            objects: BTreeMap::new(),
            history: events
                .iter()
                .map(|&(rev, at_ms, bytes)| Logged {
                    rev,
                    kind: EventType::Added,
                    key: Key::new("pods", "default", "x"),
                    at_ms,
                    json: Arc::from(vec![b' '; bytes]),
                    parsed: None,
                })
                .collect(),
            history_bytes: events.iter().map(|e| e.2).sum(),
        }
    }

    #[test]
    fn compaction_keeps_the_newest_n_young_and_small_enough() {
        let cfg = StoreConfig {
            history: 3,
            history_age: Duration::from_secs(60),
            history_bytes: 1000,
            ..StoreConfig::default()
        };
        let now = 1_000_000;
        let five: Vec<_> = (2..=6).map(|r| (r, now, 10)).collect();
        // 5 events, keep 3: 2 and 3 go.
        assert_eq!(compaction_target(&state(&five), &[], now, &cfg, 1), 3);
        // 3 in the history and 2 new: the same.
        assert_eq!(
            compaction_target(&state(&five[..3]), &[(5, 10), (6, 10)], now, &cfg, 1),
            3
        );
        // Within the bounds: nothing to do.
        assert_eq!(compaction_target(&state(&five[2..]), &[], now, &cfg, 3), 3);
        // Age: the two older than 60 s go, though the count bound keeps them.
        let aged =
            [(4, now - 61_000), (5, now - 60_500), (6, now - 59_000)].map(|(r, a)| (r, a, 10));
        assert_eq!(compaction_target(&state(&aged), &[], now, &cfg, 3), 5);
        // Bytes: 400 + 400 + 300 > 1000, so the oldest goes; a new event of 1200 alone
        // exceeds it, and everything goes.
        let big = [(4, now, 400), (5, now, 400), (6, now, 300)];
        assert_eq!(compaction_target(&state(&big), &[], now, &cfg, 3), 4);
        assert_eq!(
            compaction_target(&state(&big), &[(7, 1200)], now, &cfg, 3),
            7
        );
        // An empty history compacts nothing.
        assert_eq!(compaction_target(&state(&[]), &[], now, &cfg, 7), 7);
    }

    #[test]
    fn idle_tick_is_bounded() {
        let mut cfg = StoreConfig::default();
        assert_eq!(idle_tick(&cfg), Duration::from_secs(30));
        cfg.history_age = Duration::ZERO;
        assert_eq!(idle_tick(&cfg), Duration::from_secs(1));
    }
}
