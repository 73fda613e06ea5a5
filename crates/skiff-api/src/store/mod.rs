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
//! This first implementation is in memory only (the skeleton the API layer is built on); the
//! durable redb-backed one replaces its insides behind the same API.

use std::collections::{BTreeMap, VecDeque};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::Value;
use tokio::sync::mpsc;

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
    /// Events kept in memory for watches from a past revision; older ones are compacted.
    pub history: usize,
    /// Events a watcher may have queued before it is cut off ([`WatchItem::Lagged`]).
    pub watcher_queue: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            history: 10_000,
            watcher_queue: 1_000,
        }
    }
}

struct Watcher {
    resource: String,
    namespace: Option<String>,
    tx: mpsc::Sender<WatchItem>,
}

struct Inner {
    rev: Rev,
    compacted: Rev,
    objects: BTreeMap<Key, Stored>,
    history: VecDeque<WatchEvent>,
    watchers: Vec<Watcher>,
    cfg: StoreConfig,
}

/// The store handle; cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Mutex<Inner>>,
}

/// A watch on one resource (optionally one namespace).
pub struct Watch {
    rx: mpsc::Receiver<WatchItem>,
}

impl Watch {
    /// The next event; `None` when the store is gone.
    pub async fn next(&mut self) -> Option<WatchItem> {
        self.rx.recv().await
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

impl Store {
    /// Opens (creating) the store under `dir`. This in-memory skeleton ignores `dir`.
    pub fn open(_dir: &Path, cfg: StoreConfig) -> Result<Store, StoreError> {
        Ok(Store {
            inner: Arc::new(Mutex::new(Inner {
                rev: 1,
                compacted: 0,
                objects: BTreeMap::new(),
                history: VecDeque::new(),
                watchers: Vec::new(),
                cfg,
            })),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves consistent data (every change is applied
        // after its checks), so a poisoned lock is taken over.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The newest committed revision.
    pub fn current_rev(&self) -> Rev {
        self.lock().rev
    }

    /// The oldest revision a watch may start from (older ones are [`StoreError::Expired`]).
    pub fn compacted_rev(&self) -> Rev {
        self.lock().compacted
    }

    pub fn get(&self, key: &Key) -> Option<Stored> {
        self.lock().objects.get(key).cloned()
    }

    /// Every object of `resource` (in `namespace` if given), ordered by key, and the revision
    /// the snapshot is at.
    pub fn list(&self, resource: &str, namespace: Option<&str>) -> (Vec<Stored>, Rev) {
        let inner = self.lock();
        let items = inner
            .objects
            .values()
            .filter(|s| s.key.resource == resource)
            .filter(|s| namespace.is_none_or(|n| s.key.namespace == n))
            .cloned()
            .collect();
        (items, inner.rev)
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
        let mut inner = self.lock();
        let mut out = Vec::with_capacity(mutations.len());
        for m in mutations {
            out.push(inner.apply(m));
        }
        out
    }

    /// Events of `resource` (in `namespace` if given) after revision `from`.
    pub fn watch(
        &self,
        resource: &str,
        namespace: Option<&str>,
        from: Rev,
    ) -> Result<Watch, StoreError> {
        let mut inner = self.lock();
        if from < inner.compacted {
            return Err(StoreError::Expired {
                requested: from,
                oldest: inner.compacted,
            });
        }
        let (tx, rx) = mpsc::channel(inner.cfg.watcher_queue.max(1));
        for e in inner.history.iter().filter(|e| e.rev > from) {
            if e.key.resource == resource && namespace.is_none_or(|n| e.key.namespace == n) {
                if tx.try_send(WatchItem::Event(e.clone())).is_err() {
                    let _ = tx.try_send(WatchItem::Lagged);
                    return Ok(Watch { rx });
                }
            }
        }
        inner.watchers.push(Watcher {
            resource: resource.to_string(),
            namespace: namespace.map(str::to_string),
            tx,
        });
        Ok(Watch { rx })
    }
}

impl Inner {
    fn apply(&mut self, m: Mutation) -> Result<Stored, StoreError> {
        let key = m.key().clone();
        let existing = self.objects.get(&key);
        let next = self.rev + 1;
        let (kind, stored) = match m {
            Mutation::Create { mut object, .. } => {
                if existing.is_some() {
                    return Err(StoreError::AlreadyExists(key));
                }
                stamp(&mut object, next)?;
                let s = Stored {
                    key: key.clone(),
                    create_rev: next,
                    mod_rev: next,
                    object: Arc::new(object),
                };
                (EventType::Added, s)
            }
            Mutation::Update {
                mut object,
                expect_rev,
                ..
            } => {
                let old = existing.ok_or_else(|| StoreError::NotFound(key.clone()))?;
                if expect_rev.is_some_and(|r| r != old.mod_rev) {
                    return Err(StoreError::Conflict {
                        key,
                        stored: old.mod_rev,
                    });
                }
                stamp(&mut object, next)?;
                let s = Stored {
                    key: key.clone(),
                    create_rev: old.create_rev,
                    mod_rev: next,
                    object: Arc::new(object),
                };
                (EventType::Modified, s)
            }
            Mutation::Delete {
                expect_rev,
                expect_uid,
                ..
            } => {
                let old = existing.ok_or_else(|| StoreError::NotFound(key.clone()))?;
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
                let s = Stored {
                    key: key.clone(),
                    create_rev: old.create_rev,
                    mod_rev: next,
                    object: Arc::new(object),
                };
                (EventType::Deleted, s)
            }
        };
        self.rev = next;
        if kind == EventType::Deleted {
            self.objects.remove(&key);
        } else {
            self.objects.insert(key.clone(), stored.clone());
        }
        let event = WatchEvent {
            rev: next,
            kind,
            key,
            object: stored.object.clone(),
        };
        self.history.push_back(event.clone());
        while self.history.len() > self.cfg.history {
            if let Some(old) = self.history.pop_front() {
                self.compacted = old.rev;
            }
        }
        self.watchers.retain(|w| {
            if w.resource != event.key.resource
                || w.namespace
                    .as_deref()
                    .is_some_and(|n| n != event.key.namespace)
            {
                return !w.tx.is_closed();
            }
            match w.tx.try_send(WatchItem::Event(event.clone())) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    // Cut off: the receiver sees the queued events, then the channel ends;
                    // a `Lagged` marker is sent when room appears (best effort).
                    let tx = w.tx.clone();
                    tokio::spawn(async move {
                        let _ = tx.send(WatchItem::Lagged).await;
                    });
                    false
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            }
        });
        Ok(stored)
    }
}
