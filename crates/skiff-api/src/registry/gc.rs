//! Garbage collection by `metadata.ownerReferences` (upstream
//! `pkg/controller/garbagecollector/garbagecollector.go` and the generic store's deletion
//! with `propagationPolicy`, `staging/.../registry/generic/registry/store.go`
//! `deletionFinalizersForGarbageCollection`).
//!
//! A DELETE decides the owner's fate at once:
//! - `Background` (the default of most kinds): the owner goes now; its dependents, whose owners
//!   are then all absent, are deleted by the collector afterwards.
//! - `Foreground`: the owner gets the `foregroundDeletion` finalizer and a deletionTimestamp;
//!   the collector deletes its dependents and removes the finalizer (which removes the owner)
//!   once no dependent with `blockOwnerDeletion: true` is left.
//! - `Orphan` (batch/v1 Job's default, with a warning; also `orphanDependents: true`): the owner
//!   gets the `orphan` finalizer; the collector removes the dependents' references to it, then
//!   the finalizer.
//!
//! The collector ([`Api::collect_garbage`]) is one pass over the store: orphaning, then every
//! object with owner references is classified as upstream's `attemptToDeleteItem` does (an
//! owner is *dangling* when absent or of another uid, *waiting* when it is being deleted in
//! the foreground, *solid* otherwise), then foreground owners without blocking dependents are
//! released. A DELETE that can leave work for it schedules a pass; the daemon's housekeeping
//! runs one periodically. Dependents are deleted through the registry's own delete, so pods
//! get their graceful deletion and the node stops them. Owner kinds the server cannot resolve
//! are left alone, as upstream leaves unresolvable references.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use serde_json::Value;

use super::{finalizers, is_deleting, meta_str, Api, ApiError, DeleteOptions, Resource, RESOURCES};
use crate::store::{Key, Mutation, StoreError};

/// `metav1.FinalizerOrphanDependents`.
pub const FINALIZER_ORPHAN: &str = "orphan";
/// `metav1.FinalizerDeleteDependents`.
pub const FINALIZER_FOREGROUND: &str = "foregroundDeletion";

/// The warning of a batch/v1 Job DELETE that leaves the policy to the server's default
/// (pkg/registry/batch/job/storage/storage.go `deleteOptionWarnings`).
pub const JOB_ORPHAN_WARNING: &str = "child pods are preserved by default when jobs are deleted; set propagationPolicy=Background to remove them or set propagationPolicy=Orphan to suppress this warning";

/// Kinds whose owner references resolve even when this server does not serve them (yet):
/// the workload kinds whose controllers set owner references.
const KNOWN_OWNERS: &[(&str, &str, &str)] = &[
    ("batch/v1", "Job", "batch/jobs"),
    ("batch/v1", "CronJob", "batch/cronjobs"),
    ("apps/v1", "ReplicaSet", "apps/replicasets"),
    ("apps/v1", "Deployment", "apps/deployments"),
    ("apps/v1", "StatefulSet", "apps/statefulsets"),
    ("apps/v1", "DaemonSet", "apps/daemonsets"),
];

/// The collector's state: one pass at a time, and a pass requested while one is queued is
/// not queued twice.
#[derive(Clone, Default)]
pub(crate) struct GcState {
    lock: Arc<tokio::sync::Mutex<()>>,
    pending: Arc<AtomicBool>,
}

/// What one pass did (for logs and tests).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Deletes issued for dependents (graceful for pods).
    pub deleted: usize,
    /// Owner references removed from dependents (orphaning, dangling references of objects
    /// that still have a live owner).
    pub unlinked: usize,
    /// `orphan` / `foregroundDeletion` finalizers removed from owners.
    pub released: usize,
}

/// The server-side default: does a DELETE of this kind without a policy orphan? (upstream
/// `DefaultGarbageCollectionPolicy`: `OrphanDependents` for batch/v1 Jobs, for back
/// compatibility; `DeleteDependents` elsewhere.)
pub(crate) fn default_orphans(r: &Resource) -> bool {
    r.group == "batch" && r.kind == "Job"
}

/// `deletionFinalizersForGarbageCollection`: the object's finalizers after this DELETE's
/// policy (an explicit policy, else an existing GC finalizer, else the kind's default), or
/// `None` when they do not change.
pub(crate) fn finalizers_for_delete(
    cur: &Value,
    o: &DeleteOptions,
    default_orphan: bool,
) -> Option<Vec<String>> {
    let old = finalizers(cur);
    let (orphan, foreground) = match o.propagation_policy.as_deref() {
        Some("Orphan") => (true, false),
        Some("Foreground") => (false, true),
        Some(_) => (false, false),
        None => {
            // An existing finalizer overrides the default (validation forbids both).
            let first = old
                .iter()
                .find(|f| *f == FINALIZER_ORPHAN || *f == FINALIZER_FOREGROUND);
            match first.map(String::as_str) {
                Some(FINALIZER_ORPHAN) => (true, false),
                Some(_) => (false, true),
                None => (default_orphan, false),
            }
        }
    };
    let mut new: Vec<String> = old
        .iter()
        .filter(|f| *f != FINALIZER_ORPHAN && *f != FINALIZER_FOREGROUND)
        .cloned()
        .collect();
    if orphan {
        new.push(FINALIZER_ORPHAN.into());
    }
    if foreground {
        new.push(FINALIZER_FOREGROUND.into());
    }
    let same = new.len() == old.len() && new.iter().all(|f| old.contains(f));
    (!same).then_some(new)
}

/// The finalizers written back (an empty list removes the field, as Go's omitempty).
pub(crate) fn set_finalizers(obj: &mut Value, list: &[String]) {
    if list.is_empty() {
        if let Some(m) = obj["metadata"].as_object_mut() {
            m.remove("finalizers");
        }
    } else {
        obj["metadata"]["finalizers"] = Value::from(list.to_vec());
    }
}

fn owner_refs(o: &Value) -> &[Value] {
    o["metadata"]["ownerReferences"]
        .as_array()
        .map_or(&[], Vec::as_slice)
}

fn uid(o: &Value) -> &str {
    meta_str(o, "uid")
}

/// The store resource an owner reference names, and whether that kind is namespaced.
fn owner_resource(api_version: &str, kind: &str) -> Option<(String, bool)> {
    if let Some(r) = RESOURCES
        .iter()
        .find(|r| r.api_version() == api_version && r.kind == kind)
    {
        return Some((r.store_key(), r.namespaced));
    }
    KNOWN_OWNERS
        .iter()
        .find(|(av, k, _)| *av == api_version && *k == kind)
        .map(|(_, _, key)| (key.to_string(), true))
}

/// The served resource stored under `store_key`.
fn served(store_key: &str) -> Option<&'static Resource> {
    RESOURCES.iter().find(|r| r.store_key() == store_key)
}

/// An owner reference's state, upstream's `classifyReferences`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum OwnerState {
    Solid,
    Dangling,
    Waiting,
}

/// A boxed pass, so that a DELETE can schedule one without its future type containing the
/// collector's (which itself deletes).
type GcFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

fn run_pass(api: Api) -> GcFuture {
    Box::pin(async move {
        if let Err(e) = api.collect_garbage().await {
            tracing::warn!("garbage collection: {e}");
        }
    })
}

impl Api {
    /// Schedules a collector pass on the current runtime (at most one queued at a time).
    pub(crate) fn gc_soon(&self) {
        if self.gc.pending.swap(true, Ordering::AcqRel) {
            return;
        }
        match tokio::runtime::Handle::try_current() {
            Ok(h) => {
                h.spawn(run_pass(self.clone()));
            }
            Err(_) => self.gc.pending.store(false, Ordering::Release),
        }
    }

    /// Whether a DELETE that ended with `obj` (removed when `gone`) leaves work for the
    /// collector: an owner marked for orphaning or foreground deletion, a removed object
    /// other objects may name as owner, or a removed dependent a foreground owner waits for.
    pub(crate) fn gc_after_delete(&self, obj: &Value, gone: bool) {
        let f = finalizers(obj);
        let marked = f
            .iter()
            .any(|x| x == FINALIZER_ORPHAN || x == FINALIZER_FOREGROUND);
        let kind = obj["kind"].as_str().unwrap_or("");
        let possible_owner = gone && kind != "Pod" && kind != "Event";
        let waited_for = gone
            && owner_refs(obj)
                .iter()
                .any(|r| self.owner_state(obj, r) == OwnerState::Waiting);
        if marked || possible_owner || waited_for {
            self.gc_soon();
        }
    }

    /// Classifies one owner reference of `dependent` against the store.
    fn owner_state(&self, dependent: &Value, r: &Value) -> OwnerState {
        let (Some(av), Some(kind), Some(name)) = (
            r["apiVersion"].as_str(),
            r["kind"].as_str(),
            r["name"].as_str(),
        ) else {
            return OwnerState::Solid;
        };
        let Some((resource, namespaced)) = owner_resource(av, kind) else {
            // Unresolvable: left alone.
            return OwnerState::Solid;
        };
        let dep_ns = meta_str(dependent, "namespace");
        if namespaced && dep_ns.is_empty() {
            // A cluster-scoped dependent cannot have a namespaced owner: unresolvable.
            return OwnerState::Solid;
        }
        let ns = if namespaced { dep_ns } else { "" };
        let Some(owner) = self.store.get(&Key::new(&resource, ns, name)) else {
            return OwnerState::Dangling;
        };
        if uid(&owner.object) != r["uid"].as_str().unwrap_or("") {
            return OwnerState::Dangling;
        }
        if is_deleting(&owner.object)
            && finalizers(&owner.object)
                .iter()
                .any(|f| f == FINALIZER_FOREGROUND)
        {
            return OwnerState::Waiting;
        }
        OwnerState::Solid
    }

    /// One pass of the garbage collector (see the module comment). Safe to call at any time,
    /// concurrently with requests; passes run one at a time.
    pub async fn collect_garbage(&self) -> Result<GcReport, ApiError> {
        let _pass = self.gc.lock.lock().await;
        self.gc.pending.store(false, Ordering::Release);
        let mut report = GcReport::default();
        let (all, _) = self.store.list_all();
        // owner uid → keys of the objects naming it.
        let mut dependents: HashMap<String, Vec<Key>> = HashMap::new();
        for s in &all {
            for r in owner_refs(&s.object) {
                if let Some(u) = r["uid"].as_str() {
                    dependents
                        .entry(u.to_string())
                        .or_default()
                        .push(s.key.clone());
                }
            }
        }
        let deps_of = |owner_uid: &str| dependents.get(owner_uid).cloned().unwrap_or_default();

        // 1. Orphaning owners: unlink their dependents, then release the owner.
        for s in &all {
            let o = &s.object;
            if !is_deleting(o) || !finalizers(o).iter().any(|f| f == FINALIZER_ORPHAN) {
                continue;
            }
            let owner_uid = uid(o).to_string();
            let mut done = true;
            // A fresh scan: a dependent created since the pass began must be orphaned too,
            // not left to be collected as dangling once the owner is gone.
            let fresh: Vec<Key> = self
                .store
                .list_all()
                .0
                .into_iter()
                .filter(|d| {
                    owner_refs(&d.object)
                        .iter()
                        .any(|r| r["uid"].as_str() == Some(owner_uid.as_str()))
                })
                .map(|d| d.key)
                .collect();
            for key in fresh {
                match self.unlink(&key, &[owner_uid.as_str()]).await {
                    Ok(true) => report.unlinked += 1,
                    Ok(false) => {}
                    Err(e) => {
                        tracing::warn!("orphaning {key:?}: {e}");
                        done = false;
                    }
                }
            }
            if done && self.release(&s.key, &owner_uid, FINALIZER_ORPHAN).await? {
                report.released += 1;
            }
        }

        // 2. Every object with owners: attemptToDeleteItem.
        for s in &all {
            if owner_refs(&s.object).is_empty() {
                continue;
            }
            let Some(cur) = self.store.get(&s.key) else {
                continue;
            };
            if uid(&cur.object) != uid(&s.object) {
                continue;
            }
            let o = &cur.object;
            if is_deleting(o) {
                // Being deleted already (a foreground one is released in step 3).
                continue;
            }
            let refs = owner_refs(o);
            if refs.is_empty() {
                // Orphaned meanwhile.
                continue;
            }
            let states: Vec<OwnerState> = refs.iter().map(|r| self.owner_state(o, r)).collect();
            let solid = states.contains(&OwnerState::Solid);
            let waiting = states.contains(&OwnerState::Waiting);
            if solid {
                // Keep it, but drop the references to absent or foreground-deleting owners.
                let stale: Vec<&str> = refs
                    .iter()
                    .zip(&states)
                    .filter(|(_, s)| **s != OwnerState::Solid)
                    .filter_map(|(r, _)| r["uid"].as_str())
                    .collect();
                if !stale.is_empty() && self.unlink(&s.key, &stale).await.unwrap_or(false) {
                    report.unlinked += 1;
                }
                continue;
            }
            let has_dependents = !deps_of(uid(o)).is_empty();
            let f = finalizers(o);
            let policy = if waiting && has_dependents {
                "Foreground"
            } else if f.iter().any(|x| x == FINALIZER_ORPHAN) {
                "Orphan"
            } else if f.iter().any(|x| x == FINALIZER_FOREGROUND) {
                "Foreground"
            } else {
                "Background"
            };
            let Some(r) = served(&s.key.resource) else {
                continue;
            };
            let opts = DeleteOptions {
                propagation_policy: Some(policy.into()),
                precondition_uid: Some(uid(o).to_string()),
                ..DeleteOptions::default()
            };
            match self.delete(r, &s.key.namespace, &s.key.name, &opts).await {
                Ok(_) => report.deleted += 1,
                Err(e) if e.code == 404 || e.code == 409 => {}
                Err(e) => tracing::warn!("collecting {:?}: {e}", s.key),
            }
        }

        // 3. Foreground owners: released when no blocking dependent is left.
        for s in &all {
            let Some(cur) = self.store.get(&s.key) else {
                continue;
            };
            let o = &cur.object;
            if !is_deleting(o) || !finalizers(o).iter().any(|f| f == FINALIZER_FOREGROUND) {
                continue;
            }
            let owner_uid = uid(o).to_string();
            let blocked = deps_of(&owner_uid).iter().any(|key| {
                self.store.get(key).is_some_and(|d| {
                    owner_refs(&d.object).iter().any(|r| {
                        r["uid"].as_str() == Some(owner_uid.as_str())
                            && r["blockOwnerDeletion"].as_bool() == Some(true)
                    })
                })
            });
            if !blocked
                && self
                    .release(&s.key, &owner_uid, FINALIZER_FOREGROUND)
                    .await?
            {
                report.released += 1;
            }
        }
        Ok(report)
    }

    /// Removes the owner references with these uids from the object at `key`. Returns
    /// whether it changed anything.
    async fn unlink(&self, key: &Key, owner_uids: &[&str]) -> Result<bool, ApiError> {
        for _ in 0..super::RETRIES {
            let Some(cur) = self.store.get(key) else {
                return Ok(false);
            };
            let refs = owner_refs(&cur.object);
            let kept: Vec<Value> = refs
                .iter()
                .filter(|r| !owner_uids.contains(&r["uid"].as_str().unwrap_or("")))
                .cloned()
                .collect();
            if kept.len() == refs.len() {
                return Ok(false);
            }
            let mut obj = (*cur.object).clone();
            if kept.is_empty() {
                if let Some(m) = obj["metadata"].as_object_mut() {
                    m.remove("ownerReferences");
                }
            } else {
                obj["metadata"]["ownerReferences"] = Value::from(kept);
            }
            match self
                .store
                .commit(Mutation::Update {
                    key: key.clone(),
                    object: obj,
                    expect_rev: Some(cur.mod_rev),
                })
                .await
            {
                Ok(_) => return Ok(true),
                Err(StoreError::Conflict { .. }) => continue,
                Err(StoreError::NotFound(_)) => return Ok(false),
                Err(e) => return Err(ApiError::internal(e.to_string())),
            }
        }
        Err(ApiError::internal(format!(
            "{key:?}: too many concurrent updates"
        )))
    }

    /// Removes `finalizer` from the owner at `key` (if it still has uid `owner_uid`); the
    /// owner is then removed when no finalizer is left and its grace period is over, as an
    /// update emptying the finalizers removes it (`shouldDeleteDuringUpdate`).
    async fn release(&self, key: &Key, owner_uid: &str, finalizer: &str) -> Result<bool, ApiError> {
        for _ in 0..super::RETRIES {
            let Some(cur) = self.store.get(key) else {
                return Ok(false);
            };
            if uid(&cur.object) != owner_uid {
                return Ok(false);
            }
            let old = finalizers(&cur.object);
            if !old.iter().any(|f| f == finalizer) {
                return Ok(false);
            }
            let new: Vec<String> = old.into_iter().filter(|f| f != finalizer).collect();
            let grace_over = cur.object["metadata"]["deletionGracePeriodSeconds"]
                .as_i64()
                .unwrap_or(0)
                == 0;
            let m = if new.is_empty() && grace_over {
                Mutation::Delete {
                    key: key.clone(),
                    expect_rev: Some(cur.mod_rev),
                    expect_uid: None,
                }
            } else {
                let mut obj = (*cur.object).clone();
                set_finalizers(&mut obj, &new);
                Mutation::Update {
                    key: key.clone(),
                    object: obj,
                    expect_rev: Some(cur.mod_rev),
                }
            };
            let removed = matches!(m, Mutation::Delete { .. });
            match self.store.commit(m).await {
                Ok(_) => {
                    if removed {
                        // Its own dependents may now be dangling.
                        self.gc_soon();
                        if key.resource == "pods" {
                            self.quota_usage_changed(&key.namespace).await;
                        }
                    }
                    return Ok(true);
                }
                Err(StoreError::Conflict { .. }) => continue,
                Err(StoreError::NotFound(_)) => return Ok(false),
                Err(e) => return Err(ApiError::internal(e.to_string())),
            }
        }
        Ok(false)
    }
}
