//! The object store: an etcd-like revision log (SEMANTICS-free: it knows keys, JSON and
//! revisions, not kinds).
//!
//! Contract (the registry and the daemon rely on it):
//! * One global revision counter. Every committed mutation gets the next revision; it is the
//!   object's `metadata.resourceVersion` (stamped by the store, as a decimal string) and the
//!   revision of the watch event it makes.
//! * [`Store::commit`] is one atomic transaction per mutation, acknowledged only once durable
//!   (a `kill -9` after the ack loses nothing). Concurrent commits are grouped into one disk
//!   transaction (group commit) without changing any single mutation's atomicity.
//! * Preconditions (`expect_rev`, `expect_uid`) are checked inside the transaction: a stale
//!   one is [`StoreError::Conflict`].
//! * [`Store::list`] returns a consistent snapshot and its revision; [`Store::watch`] from that
//!   revision delivers exactly the later events, in revision order, none missing, none twice.
//! * A watch from a revision older than the compacted one is [`StoreError::Expired`]; a watcher
//!   that does not keep up is cut off ([`WatchItem::Lagged`]) rather than buffered without bound.
//!
//! # How it is built, and why
//!
//! **redb** (`<dir>/store.redb`) holds three tables: `meta` (`rev`, `compacted_rev`, the format
//! version), `objects` (key → create_rev, mod_rev, JSON) and `log` (rev → event type, commit
//! time, key, JSON; a DELETED entry carries the object's last state). redb is pure Rust (no C
//! build), an embedded ACID store of copy-on-write B-trees: a commit writes the new pages and
//! flips a checksummed commit slot, so a crash at any moment leaves the last committed state,
//! with no log replay of our own. It is the source of truth at start: [`Store::open`] reads it
//! whole into memory.
//!
//! **Reads never touch the disk.** Every object lives in an in-memory index (`BTreeMap` by
//! key, parsed JSON behind an `Arc`), and the recent log (the watch history) in memory too;
//! `get`, `list` and watch replays are memory lookups. A history event keeps its JSON as the
//! bytes written to disk, and its parsed object only while that is the object's current
//! state (the index's own `Arc`): superseded versions cost their JSON size, not a parsed tree
//! several times bigger, and a replaying watcher parses them in its own task. The index changes only after the disk transaction has
//! committed, so a reader never sees a write that could still be lost.
//!
//! **Group commit.** Every commit costs an fsync (milliseconds on a virtual disk), so one
//! transaction per API call would cap the store at a few hundred writes per second. One
//! writer thread takes every queued request, applies each mutation on its own (checked
//! against the committed state plus the earlier mutations of the batch; a failing
//! precondition drops that mutation only), writes them all in ONE redb transaction with
//! `Durability::Immediate`, and only after that commit updates the index, fans the events
//! out to the watchers and acknowledges each caller. While one batch is on its fsync, the
//! next one queues up, so the batch size follows the load with no timer. The fsync happens
//! on that thread, never on a tokio worker: callers only await a oneshot reply.
//!
//! **Watch.** A watch registers under the watcher lock, replays the history after its
//! revision and then receives live events; the writer publishes (index, history) and fans out
//! while holding that same lock, so no event falls between a list and a watch from its
//! revision, and none is seen twice. Live events are shared (`Arc`): the per-watcher cost of
//! an event is a reference count and a queue slot. Each watcher has a bounded queue with one
//! slot kept for the [`WatchItem::Lagged`] marker: when the rest is full the marker goes in
//! and the watcher is dropped, so the marker always arrives and a watcher that does not read
//! holds at most `watcher_queue` live events (and at most as many replayed ones: a replay
//! longer than that is cut off the same way).
//!
//! **Compaction** keeps the newest `history` events, none older than `history_age`
//! (5 minutes, etcd's default retention) and at most `history_bytes` of their JSON, in memory
//! and on disk alike: the writer drops the
//! older log entries and raises `compacted_rev` in the same transaction as a batch (a range
//! delete of the few entries that just fell out), or on its own when idle, or when the daemon
//! calls [`Store::compact_now`]. A watch from below `compacted_rev` is [`StoreError::Expired`].
//! Reads of objects are never affected: the latest state of every object is always kept.

mod codec;
mod writer;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fs::{self, OpenOptions};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc as std_mpsc, Arc, Mutex, MutexGuard, OnceLock, RwLock, RwLockReadGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

/// A revision of the store (= resourceVersion).
pub type Rev = u64;

/// Where an object lives: `resource` is the plural, group-qualified for non-core groups
/// (`pods`, `events`, `namespaces`, `batch/jobs`); `namespace` is empty for cluster-scoped ones.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    pub resource: String,
    pub namespace: String,
    pub name: String,
}

impl Key {
    pub fn new(resource: &str, namespace: &str, name: &str) -> Key {
        Key {
            resource: resource.to_string(),
            namespace: namespace.to_string(),
            name: name.to_string(),
        }
    }
}

/// An object as stored: its JSON (with `metadata.resourceVersion` = `mod_rev`) and revisions.
#[derive(Clone, Debug)]
pub struct Stored {
    pub key: Key,
    /// The revision of its creation.
    pub create_rev: Rev,
    /// The revision of its last change (its resourceVersion).
    pub mod_rev: Rev,
    pub object: Arc<Value>,
}

/// One change to commit.
#[derive(Clone, Debug)]
pub enum Mutation {
    /// Fails with [`StoreError::AlreadyExists`] when the key exists.
    Create { key: Key, object: Value },
    /// Fails with [`StoreError::NotFound`], or [`StoreError::Conflict`] when `expect_rev` is set
    /// and differs from the stored `mod_rev`.
    Update {
        key: Key,
        object: Value,
        expect_rev: Option<Rev>,
    },
    /// Removes the object; the DELETED event carries its last state with the new revision.
    /// Preconditions as for updates, plus `expect_uid` against `metadata.uid`.
    Delete {
        key: Key,
        expect_rev: Option<Rev>,
        expect_uid: Option<String>,
    },
}

impl Mutation {
    pub fn key(&self) -> &Key {
        match self {
            Mutation::Create { key, .. }
            | Mutation::Update { key, .. }
            | Mutation::Delete { key, .. } => key,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

/// A committed change as watchers see it.
#[derive(Clone, Debug)]
pub struct WatchEvent {
    pub rev: Rev,
    pub kind: EventType,
    pub key: Key,
    /// The object after the change (for DELETED: its last state, resourceVersion = `rev`).
    pub object: Arc<Value>,
}

/// What a watcher receives.
#[derive(Clone, Debug)]
pub enum WatchItem {
    Event(WatchEvent),
    /// The watcher fell too far behind and was cut off; it must re-list (the HTTP layer sends
    /// an ERROR 410 Expired event and ends the stream).
    Lagged,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("{0:?} already exists")]
    AlreadyExists(Key),
    #[error("{0:?} not found")]
    NotFound(Key),
    /// A precondition failed: `expect_rev` or `expect_uid` differs from what is stored.
    #[error("{key:?} was modified (stored revision {stored})")]
    Conflict { key: Key, stored: Rev },
    /// A watch or read at a compacted revision.
    #[error("too old resource version: {requested} ({oldest})")]
    Expired { requested: Rev, oldest: Rev },
    #[error("object is not valid JSON with metadata: {0}")]
    BadObject(String),
    #[error("store I/O: {0}")]
    Io(String),
}

/// Tuning of the store.
#[derive(Clone, Debug)]
pub struct StoreConfig {
    /// At most this many recent events are kept for watches from a past revision (in memory
    /// and on disk); older ones are compacted.
    pub history: usize,
    /// Events older than this are compacted too (etcd's default retention is 5 minutes).
    pub history_age: Duration,
    /// And the history's JSON may not exceed this many bytes (parsed, it takes a few times
    /// that in memory), so a burst of big objects cannot grow the daemon without bound.
    pub history_bytes: usize,
    /// Events a watcher may have queued before it is cut off ([`WatchItem::Lagged`]).
    pub watcher_queue: usize,
    /// At most this many mutations go into one disk transaction (a bigger queue is split).
    pub max_batch: usize,
    /// redb's page cache. Reads are served from the in-memory index, so the cache only
    /// serves the writer's B-tree walks; a small one keeps the daemon's memory low.
    pub cache_bytes: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            history: 10_000,
            history_age: Duration::from_secs(5 * 60),
            history_bytes: 16 << 20,
            watcher_queue: 1_000,
            max_batch: 2_000,
            cache_bytes: 2 << 20,
        }
    }
}

/// One event of the history. Its JSON is kept as the bytes written to disk; the parsed
/// object only while it is the object's current state (then it is the index's own `Arc`,
/// free): a superseded version costs its JSON size, not a parsed tree several times that.
struct Logged {
    rev: Rev,
    kind: EventType,
    key: Key,
    /// Commit time (for age-based compaction).
    at_ms: u64,
    json: Arc<[u8]>,
    parsed: Option<Arc<WatchEvent>>,
}

/// An event of a watch's replay, parsed when the watcher reads it (by its own task, outside
/// the store's locks).
struct Pending {
    rev: Rev,
    kind: EventType,
    key: Key,
    json: Arc<[u8]>,
    parsed: Option<Arc<WatchEvent>>,
}

impl Pending {
    fn of(l: &Logged) -> Pending {
        Pending {
            rev: l.rev,
            kind: l.kind,
            key: l.key.clone(),
            json: Arc::clone(&l.json),
            parsed: l.parsed.clone(),
        }
    }

    fn into_event(self) -> Option<WatchEvent> {
        if let Some(e) = self.parsed {
            return Some((*e).clone());
        }
        // The store wrote these bytes from a `Value`; should they not parse (a damaged file),
        // the watcher is cut off and re-lists rather than miss an event.
        let object: Value = serde_json::from_slice(&self.json).ok()?;
        Some(WatchEvent {
            rev: self.rev,
            kind: self.kind,
            key: self.key,
            object: Arc::new(object),
        })
    }
}

/// What readers see: only committed state.
struct State {
    rev: Rev,
    compacted: Rev,
    objects: BTreeMap<Key, Stored>,
    /// Events after `compacted`, in revision order.
    history: VecDeque<Logged>,
    /// The sum of their JSON sizes.
    history_bytes: usize,
}

/// What a watcher's queue carries: the event is shared by every watcher.
enum Queued {
    Event(Arc<WatchEvent>),
    Lagged,
}

struct Watcher {
    namespace: Option<String>,
    /// The revision it watches from: a watch from a future revision skips what comes
    /// before it.
    after: Rev,
    tx: mpsc::Sender<Queued>,
}

/// Offers `event` to one watcher; false when the watcher is gone or has just been cut off.
/// The queue has `watcher_queue + 1` slots and the writer is its only sender, so when only
/// one slot is left it is the `Lagged` marker's.
fn offer(tx: &mpsc::Sender<Queued>, event: &Arc<WatchEvent>) -> bool {
    if tx.is_closed() {
        return false;
    }
    if tx.capacity() <= 1 {
        let _ = tx.try_send(Queued::Lagged);
        return false;
    }
    tx.try_send(Queued::Event(Arc::clone(event))).is_ok()
}

#[derive(Default)]
struct Watchers {
    by_resource: HashMap<String, Vec<Watcher>>,
}

impl Watchers {
    fn fan_out(&mut self, event: &Arc<WatchEvent>) {
        let Some(list) = self.by_resource.get_mut(&event.key.resource) else {
            return;
        };
        list.retain(|w| {
            if event.rev <= w.after
                || w.namespace
                    .as_deref()
                    .is_some_and(|n| n != event.key.namespace)
            {
                return !w.tx.is_closed();
            }
            offer(&w.tx, event)
        });
        if list.is_empty() {
            self.by_resource.remove(&event.key.resource);
        }
    }
}

/// Told of every durable transaction by the writer thread (after it, on that thread): keep it
/// to an atomic or a histogram observe.
pub trait CommitObserver: Send + Sync {
    /// A transaction of `mutations` took `took` (its write and fsync).
    fn committed(&self, took: Duration, mutations: usize);
}

/// Counters of the writer's work (see [`Store::stats`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Durable disk transactions (fsyncs) committed.
    pub transactions: u64,
    /// Mutations committed (each one revision).
    pub mutations: u64,
}

/// What the handles and the writer thread share. Lock order: `watchers`, then `state`.
struct Shared {
    state: RwLock<State>,
    watchers: Mutex<Watchers>,
    cfg: StoreConfig,
    transactions: AtomicU64,
    mutations: AtomicU64,
    /// Commit latency and batch sizes (`/metrics`), once a registry is attached.
    metrics: OnceLock<Arc<dyn CommitObserver>>,
}

impl Shared {
    fn read(&self) -> RwLockReadGuard<'_, State> {
        // Every change to the state is applied after its checks, so a poisoned lock holds
        // consistent data and is taken over.
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn watchers(&self) -> MutexGuard<'_, Watchers> {
        self.watchers.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A request to the writer thread.
enum Request {
    Commit {
        mutations: Vec<Mutation>,
        reply: oneshot::Sender<Vec<Result<Stored, StoreError>>>,
    },
    Compact {
        reply: oneshot::Sender<Result<Rev, StoreError>>,
    },
}

struct Handle {
    shared: Arc<Shared>,
    tx: Option<std_mpsc::Sender<Request>>,
    writer: Option<JoinHandle<()>>,
    path: PathBuf,
}

impl Drop for Handle {
    fn drop(&mut self) {
        // Closing the queue stops the writer after its current batch; joining it closes the
        // database file, so the store can be opened again at once (redb locks the file).
        self.tx.take();
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

/// The store handle; cheap to clone. The last clone dropped stops the writer (after the batch
/// it is on) and closes the file.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Handle>,
}

/// A watch on one resource (optionally one namespace).
pub struct Watch {
    /// The history it started with, read before `rx`.
    replay: VecDeque<Pending>,
    /// The replay alone filled the queue: `Lagged` follows it, and nothing else.
    lagged: bool,
    rx: Option<mpsc::Receiver<Queued>>,
}

impl Watch {
    /// The next event; `None` when the store is gone or after [`WatchItem::Lagged`].
    pub async fn next(&mut self) -> Option<WatchItem> {
        if let Some(p) = self.replay.pop_front() {
            return match p.into_event() {
                Some(e) => Some(WatchItem::Event(e)),
                None => {
                    self.replay.clear();
                    self.lagged = true;
                    self.next_live().await
                }
            };
        }
        self.next_live().await
    }

    async fn next_live(&mut self) -> Option<WatchItem> {
        if self.lagged {
            self.lagged = false;
            self.rx = None;
            return Some(WatchItem::Lagged);
        }
        Some(match self.rx.as_mut()?.recv().await? {
            // The key's strings are copied here, by the watcher's own task, not by the writer
            // for every watcher.
            Queued::Event(e) => WatchItem::Event((*e).clone()),
            Queued::Lagged => WatchItem::Lagged,
        })
    }
}

fn stamp(object: &mut Value, rev: Rev) -> Result<(), StoreError> {
    let meta = object
        .get_mut("metadata")
        .and_then(Value::as_object_mut)
        .ok_or_else(|| StoreError::BadObject("no metadata".into()))?;
    meta.insert("resourceVersion".into(), Value::String(rev.to_string()));
    Ok(())
}

fn uid_of(object: &Value) -> Option<&str> {
    object.get("metadata")?.get("uid")?.as_str()
}

fn io_err(what: &str) -> impl Fn(&dyn std::fmt::Display) -> StoreError + '_ {
    move |e| StoreError::Io(format!("{what}: {e}"))
}

/// The store's file under the data dir.
pub const STORE_FILE: &str = "store.redb";

impl Store {
    /// Opens (creating) the store `<dir>/store.redb` and loads it into memory. Blocking (it
    /// reads the whole file): call it at start-up, or from `spawn_blocking`. Fails with
    /// [`StoreError::Io`] when another process (or handle) has the store open.
    pub fn open(dir: &Path, cfg: StoreConfig) -> Result<Store, StoreError> {
        fs::create_dir_all(dir).map_err(|e| io_err("creating the store's directory")(&e))?;
        let path = dir.join(STORE_FILE);
        // The store holds Secrets and tokens: the file is the daemon's alone. redb would
        // create it with the umask's mode, so create it first.
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| io_err(&format!("opening {}", path.display()))(&e))?;
        file.set_permissions(fs::Permissions::from_mode(0o600))
            .map_err(|e| io_err(&format!("chmod {}", path.display()))(&e))?;
        drop(file);
        let (db, state) = writer::open_db(&path, &cfg)?;
        let shared = Arc::new(Shared {
            state: RwLock::new(state),
            watchers: Mutex::new(Watchers::default()),
            cfg,
            transactions: AtomicU64::new(0),
            mutations: AtomicU64::new(0),
            metrics: OnceLock::new(),
        });
        let (tx, rx) = std_mpsc::channel();
        let writer = writer::spawn(db, Arc::clone(&shared), rx)?;
        Ok(Store {
            inner: Arc::new(Handle {
                shared,
                tx: Some(tx),
                writer: Some(writer),
                path,
            }),
        })
    }

    fn shared(&self) -> &Shared {
        &self.inner.shared
    }

    /// The store's file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The newest committed revision.
    pub fn current_rev(&self) -> Rev {
        self.shared().read().rev
    }

    /// The oldest revision a watch may start from (older ones are [`StoreError::Expired`]).
    pub fn compacted_rev(&self) -> Rev {
        self.shared().read().compacted
    }

    /// The object and its revisions (`mod_rev` is its resourceVersion).
    pub fn get(&self, key: &Key) -> Option<Stored> {
        self.shared().read().objects.get(key).cloned()
    }

    /// Every object of `resource` (in `namespace` if given), ordered by key, and the revision
    /// the snapshot is at.
    pub fn list(&self, resource: &str, namespace: Option<&str>) -> (Vec<Stored>, Rev) {
        let st = self.shared().read();
        // Keys order by (resource, namespace, name): the wanted ones are one range.
        let from = Key::new(resource, namespace.unwrap_or(""), "");
        let items = st
            .objects
            .range(from..)
            .map(|(_, s)| s)
            .take_while(|s| {
                s.key.resource == resource && namespace.is_none_or(|n| s.key.namespace == n)
            })
            .cloned()
            .collect();
        (items, st.rev)
    }

    /// Every object of every resource, ordered by key, and the snapshot's revision (for a
    /// daemon's start-up: re-adopting pods, checking namespaces).
    pub fn list_all(&self) -> (Vec<Stored>, Rev) {
        let st = self.shared().read();
        (st.objects.values().cloned().collect(), st.rev)
    }

    fn send(&self, req: Request) -> Result<(), StoreError> {
        self.inner
            .tx
            .as_ref()
            .ok_or_else(closed)?
            .send(req)
            .map_err(|_| closed())
    }

    /// Commits one mutation; returns the object as stored (for a delete: its last state).
    pub async fn commit(&self, mutation: Mutation) -> Result<Stored, StoreError> {
        self.commit_many(vec![mutation])
            .await
            .pop()
            .unwrap_or_else(|| Err(StoreError::Io("empty commit".into())))
    }

    /// Commits several mutations, each on its own (one failing does not stop the others),
    /// in one disk transaction. Results in the order given.
    pub async fn commit_many(&self, mutations: Vec<Mutation>) -> Vec<Result<Stored, StoreError>> {
        let n = mutations.len();
        if n == 0 {
            return Vec::new();
        }
        let (reply, rx) = oneshot::channel();
        if let Err(e) = self.send(Request::Commit { mutations, reply }) {
            return vec![Err(e); n];
        }
        match rx.await {
            Ok(results) => results,
            Err(_) => vec![Err(closed()); n],
        }
    }

    /// Compacts now by the configured policy (the writer also does it with every batch and
    /// when idle); returns the compacted revision.
    pub async fn compact_now(&self) -> Result<Rev, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.send(Request::Compact { reply })?;
        rx.await.map_err(|_| closed())?
    }

    /// Events of `resource` (in `namespace` if given) after revision `from`.
    pub fn watch(
        &self,
        resource: &str,
        namespace: Option<&str>,
        from: Rev,
    ) -> Result<Watch, StoreError> {
        let shared = self.shared();
        // The watcher lock first (the writer publishes and fans out under it): no event can
        // be published between the replay below and the registration.
        let mut watchers = shared.watchers();
        let st = shared.read();
        if from < st.compacted {
            return Err(StoreError::Expired {
                requested: from,
                oldest: st.compacted,
            });
        }
        // The replay is handed to the watch itself (its task parses it); live events after
        // the current revision go to its queue. Each holds at most `watcher_queue`.
        let queue = shared.cfg.watcher_queue.max(1);
        let start = st.history.partition_point(|l| l.rev <= from);
        let mut replay = VecDeque::new();
        for l in st.history.range(start..) {
            if l.key.resource == resource && namespace.is_none_or(|n| l.key.namespace == n) {
                if replay.len() == queue {
                    // Too far behind already: what fits, then `Lagged`.
                    return Ok(Watch {
                        replay,
                        lagged: true,
                        rx: None,
                    });
                }
                replay.push_back(Pending::of(l));
            }
        }
        let after = from.max(st.rev);
        drop(st);
        let (tx, rx) = mpsc::channel(queue.saturating_add(1));
        let list = watchers
            .by_resource
            .entry(resource.to_string())
            .or_default();
        // Watches that ended are pruned here too, so a storm of short watches on a quiet
        // resource does not pile up.
        list.retain(|w| !w.tx.is_closed());
        list.push(Watcher {
            namespace: namespace.map(str::to_string),
            after,
            tx,
        });
        Ok(Watch {
            replay,
            lagged: false,
            rx: Some(rx),
        })
    }

    /// What the writer has done since the store was opened: `mutations / transactions` is
    /// the mean group-commit batch.
    pub fn stats(&self) -> StoreStats {
        StoreStats {
            transactions: self.shared().transactions.load(Ordering::Relaxed),
            mutations: self.shared().mutations.load(Ordering::Relaxed),
        }
    }

    /// Hooks the writer's commits to `m` (`/metrics`); only the first call counts.
    pub fn set_metrics(&self, m: Arc<dyn CommitObserver>) {
        let _ = self.shared().metrics.set(m);
    }

    /// The number of objects per resource key (`pods`, `batch/jobs`), for `/metrics`: one
    /// pass over the index under its read lock, nothing cloned but the names.
    pub fn counts(&self) -> Vec<(String, usize)> {
        let st = self.shared().read();
        let mut out: Vec<(String, usize)> = Vec::new();
        for k in st.objects.keys() {
            match out.last_mut() {
                Some((r, n)) if *r == k.resource => *n += 1,
                _ => out.push((k.resource.clone(), 1)),
            }
        }
        out
    }

    /// Whether the writer still runs (commits can succeed): `/readyz`'s `etcd` check.
    pub fn is_open(&self) -> bool {
        self.inner.tx.is_some() && self.inner.writer.as_ref().is_some_and(|w| !w.is_finished())
    }

    /// The number of registered watchers (for tests and metrics).
    pub fn watcher_count(&self) -> usize {
        self.shared()
            .watchers()
            .by_resource
            .values()
            .map(|l| l.iter().filter(|w| !w.tx.is_closed()).count())
            .sum()
    }
}

fn closed() -> StoreError {
    StoreError::Io("the store's writer has stopped".into())
}

/// Applies one mutation to `current` (the committed state of its key, as changed by the
/// earlier mutations of the batch) at revision `next`: the event type and the new stored
/// state (for a delete: the last state, stamped with `next`).
fn apply(
    m: Mutation,
    current: Option<&Stored>,
    next: Rev,
) -> Result<(EventType, Stored), StoreError> {
    let key = m.key().clone();
    if !codec::key_fits(&key) {
        return Err(StoreError::BadObject(format!(
            "key part longer than {} bytes",
            codec::MAX_KEY_PART
        )));
    }
    match m {
        Mutation::Create { mut object, .. } => {
            if current.is_some() {
                return Err(StoreError::AlreadyExists(key));
            }
            stamp(&mut object, next)?;
            Ok((
                EventType::Added,
                Stored {
                    key,
                    create_rev: next,
                    mod_rev: next,
                    object: Arc::new(object),
                },
            ))
        }
        Mutation::Update {
            mut object,
            expect_rev,
            ..
        } => {
            let old = current.ok_or_else(|| StoreError::NotFound(key.clone()))?;
            if expect_rev.is_some_and(|r| r != old.mod_rev) {
                return Err(StoreError::Conflict {
                    key,
                    stored: old.mod_rev,
                });
            }
            stamp(&mut object, next)?;
            Ok((
                EventType::Modified,
                Stored {
                    key,
                    create_rev: old.create_rev,
                    mod_rev: next,
                    object: Arc::new(object),
                },
            ))
        }
        Mutation::Delete {
            expect_rev,
            expect_uid,
            ..
        } => {
            let old = current.ok_or_else(|| StoreError::NotFound(key.clone()))?;
            if expect_rev.is_some_and(|r| r != old.mod_rev)
                || expect_uid
                    .as_deref()
                    .is_some_and(|u| uid_of(&old.object) != Some(u))
            {
                return Err(StoreError::Conflict {
                    key,
                    stored: old.mod_rev,
                });
            }
            let mut object = (*old.object).clone();
            stamp(&mut object, next)?;
            Ok((
                EventType::Deleted,
                Stored {
                    key,
                    create_rev: old.create_rev,
                    mod_rev: next,
                    object: Arc::new(object),
                },
            ))
        }
    }
}
