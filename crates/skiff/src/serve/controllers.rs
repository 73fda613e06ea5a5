//! The daemon's controller manager: runs skiff-controllers' pure decisions (Job, CronJob,
//! ReplicaSet, Deployment) against the API, as kube-controller-manager runs its controllers
//! against kube-apiserver.
//!
//! Per controller: informers (list + watch, re-listed when a watch ends) of the owner kind and
//! of the kinds it owns feed one work queue of owner keys (an owned object's change wakes its
//! controlling owner); one worker takes a key, reads the owner and the namespace's owned
//! objects from the API, asks the controller, and writes what it decided. Reads come straight
//! from the store after the previous writes were acknowledged, so the "expectations" upstream
//! needs for its lagging informer caches are not needed here: a decision never sees its own
//! earlier creates as missing. A write that conflicts requeues the key.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use serde_json::Value;
use skiff_api::registry::{
    self, Api, ApiError, BodyFormat, DeleteOptions, ListOptions, Resource, WatchOptions,
    WriteOptions,
};
use skiff_controllers::{Action, Decision, EventNote, Kind, Object, Propagation};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// How soon a key whose write conflicted is looked at again.
const CONFLICT_RETRY: Duration = Duration::from_millis(100);
/// How soon after an unexpected error.
const ERROR_RETRY: Duration = Duration::from_secs(1);
/// Every owner is reconciled this often even without a change (informers' resync), so a
/// missed wake-up cannot leave a Job stuck.
const RESYNC_EVERY: Duration = Duration::from_secs(60);
/// A watch that ended is re-listed after this pause.
const RELIST_PAUSE: Duration = Duration::from_millis(50);

/// One controller as the manager drives it: which kinds it reads, and its decision.
pub trait Reconciler: Send + Sync + 'static {
    /// The component name in events (`job-controller`).
    fn component(&self) -> &'static str;
    /// The kind it reconciles (jobs); `None` if this API does not serve it.
    fn owner(&self) -> Option<&'static Resource>;
    /// The kinds it owns and reads (pods for a Job; replicasets and pods for a Deployment).
    fn owned(&self) -> Vec<&'static Resource>;
    /// The decision for `owner`, given every object of each `owned` kind (same order) in the
    /// owner's namespace. `Err` is an object the controller could not read (logged).
    fn reconcile(
        &self,
        owner: &Value,
        owned: &[Vec<Arc<Value>>],
        now: Timestamp,
    ) -> Result<Decision, String>;
    /// An event for an object this controller's decision created, once the API named it
    /// (`generateName`): the Job controller's `Created pod: x`.
    fn created(&self, owner: &Value, created: &Value) -> Option<EventNote> {
        let _ = (owner, created);
        None
    }
    /// What to do with the objects that name a controlling owner which no longer exists
    /// (`owned` as in [`Reconciler::reconcile`]): the Job controller lets go of its pods'
    /// tracking finalizers so the garbage collector's deletion can finish.
    fn orphaned(&self, namespace: &str, name: &str, owned: &[Vec<Arc<Value>>]) -> Decision {
        let _ = (namespace, name, owned);
        Decision::default()
    }
}

/// The controllers `skiff serve` runs: kube-controller-manager's job-controller (with the
/// ttl-after-finished controller's TTL), replicaset-controller, deployment-controller and
/// cronjob-controller (v2).
pub fn all() -> Vec<Arc<dyn Reconciler>> {
    vec![
        Arc::new(Workload {
            component: "job-controller",
            owner: ("batch", "jobs"),
            owned: &[("", "pods")],
            decide: |owner, owned, now| {
                let pods = typed(nth(owned, 0));
                Ok(skiff_controllers::job::reconcile(
                    &owner_typed(owner)?,
                    &pods,
                    now,
                ))
            },
            created: Some(job_created),
            orphaned: Some(job_orphaned),
        }),
        Arc::new(Workload {
            component: "replicaset-controller",
            owner: ("apps", "replicasets"),
            owned: &[("", "pods")],
            decide: |owner, owned, now| {
                let pods = typed(nth(owned, 0));
                Ok(skiff_controllers::replicaset::sync(
                    &owner_typed(owner)?,
                    &pods,
                    now,
                ))
            },
            created: None,
            orphaned: None,
        }),
        Arc::new(Workload {
            component: "deployment-controller",
            owner: ("apps", "deployments"),
            owned: &[("apps", "replicasets"), ("", "pods")],
            decide: |owner, owned, now| {
                let (sets, pods) = (typed(nth(owned, 0)), typed(nth(owned, 1)));
                Ok(skiff_controllers::deployment::sync(
                    &owner_typed(owner)?,
                    &sets,
                    &pods,
                    now,
                ))
            },
            created: None,
            orphaned: None,
        }),
        Arc::new(Workload {
            component: "cronjob-controller",
            owner: ("batch", "cronjobs"),
            owned: &[("batch", "jobs")],
            decide: |owner, owned, now| {
                let jobs = typed(nth(owned, 0));
                Ok(skiff_controllers::cronjob::sync(
                    &owner_typed(owner)?,
                    &jobs,
                    now,
                ))
            },
            created: None,
            orphaned: None,
        }),
    ]
}

/// The decision of one owner, given its owned objects (in `owned` order) and the time.
type Decide = fn(&Value, &[Vec<Arc<Value>>], Timestamp) -> Result<Decision, String>;

/// A skiff-controllers controller and the kinds it reads, as the manager drives it.
struct Workload {
    component: &'static str,
    /// (group, plural) of the kind it reconciles.
    owner: (&'static str, &'static str),
    /// (group, plural) of the kinds it owns.
    owned: &'static [(&'static str, &'static str)],
    decide: Decide,
    created: Option<fn(&Value, &Value) -> Option<EventNote>>,
    orphaned: Option<Orphaned>,
}

/// What to do with the objects of an owner that is gone (namespace, owner name, owned).
type Orphaned = fn(&str, &str, &[Vec<Arc<Value>>]) -> Decision;

impl Reconciler for Workload {
    fn component(&self) -> &'static str {
        self.component
    }
    fn owner(&self) -> Option<&'static Resource> {
        // Started only when every kind it reads is served.
        let all_served = self
            .owned
            .iter()
            .all(|(g, p)| registry::resource(g, p).is_some());
        registry::resource(self.owner.0, self.owner.1).filter(|_| all_served)
    }
    fn owned(&self) -> Vec<&'static Resource> {
        self.owned
            .iter()
            .filter_map(|(g, p)| registry::resource(g, p))
            .collect()
    }
    fn reconcile(
        &self,
        owner: &Value,
        owned: &[Vec<Arc<Value>>],
        now: Timestamp,
    ) -> Result<Decision, String> {
        (self.decide)(owner, owned, now)
    }
    fn created(&self, owner: &Value, created: &Value) -> Option<EventNote> {
        self.created.and_then(|f| f(owner, created))
    }
    fn orphaned(&self, namespace: &str, name: &str, owned: &[Vec<Arc<Value>>]) -> Decision {
        self.orphaned
            .map(|f| f(namespace, name, owned))
            .unwrap_or_default()
    }
}

/// The `i`th owned list (empty when absent).
fn nth(owned: &[Vec<Arc<Value>>], i: usize) -> &[Arc<Value>] {
    owned.get(i).map(Vec::as_slice).unwrap_or_default()
}

/// Decodes stored objects into their typed form (they were validated on the way in; one
/// that does not decode is skipped, not fatal).
fn typed<T: serde::de::DeserializeOwned>(objects: &[Arc<Value>]) -> Vec<T> {
    objects
        .iter()
        .filter_map(|o| serde_json::from_value((**o).clone()).ok())
        .collect()
}

fn owner_typed<T: serde::de::DeserializeOwned>(owner: &Value) -> Result<T, String> {
    serde_json::from_value(owner.clone()).map_err(|e| format!("decoding: {e}"))
}

/// The Job controller's `Created pod: x`, once the API named the pod.
fn job_created(owner: &Value, created: &Value) -> Option<EventNote> {
    if created["kind"] != "Pod" {
        return None;
    }
    let job = owner_typed(owner).ok()?;
    let name = created["metadata"]["name"].as_str()?;
    Some(skiff_controllers::job::created_event(&job, name))
}

/// Pods whose Job is gone lose the Job's tracking finalizer, so their deletion can finish.
fn job_orphaned(namespace: &str, name: &str, owned: &[Vec<Arc<Value>>]) -> Decision {
    let finalizer = skiff_model::workloads::job::JOB_TRACKING_FINALIZER;
    let mut d = Decision::default();
    let pods: Vec<Pod> = typed(nth(owned, 0));
    for mut pod in pods {
        let ours = pod
            .metadata
            .owner_references
            .iter()
            .flatten()
            .any(|r| r.controller == Some(true) && r.kind == "Job" && r.name == name);
        let held = pod
            .metadata
            .finalizers
            .as_ref()
            .is_some_and(|f| f.iter().any(|f| f == finalizer));
        if ours && held && pod.metadata.namespace.as_deref() == Some(namespace) {
            if let Some(f) = pod.metadata.finalizers.as_mut() {
                f.retain(|f| f != finalizer);
            }
            d.actions.push(Action::Update(Object::Pod(Box::new(pod))));
        }
    }
    d
}

/// A namespaced owner's key.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Key {
    namespace: String,
    name: String,
}

/// The work queue: each key at most once in `ready`; timers for requeues.
#[derive(Default)]
struct Queue {
    ready: VecDeque<Key>,
    queued: HashSet<Key>,
    timers: BTreeMap<(Instant, u64), Key>,
    seq: u64,
}

impl Queue {
    fn add(&mut self, key: Key) {
        if self.queued.insert(key.clone()) {
            self.ready.push_back(key);
        }
    }

    fn add_after(&mut self, key: Key, after: Duration) {
        self.seq += 1;
        self.timers.insert((Instant::now() + after, self.seq), key);
    }

    /// Moves due timers to `ready`; returns when the next one is due.
    fn fire_timers(&mut self) -> Option<Instant> {
        let now = Instant::now();
        while let Some((&(at, seq), _)) = self.timers.first_key_value() {
            if at > now {
                return Some(at);
            }
            if let Some(key) = self.timers.remove(&(at, seq)) {
                self.add(key);
            }
        }
        None
    }

    fn pop(&mut self) -> Option<Key> {
        let key = self.ready.pop_front()?;
        self.queued.remove(&key);
        Some(key)
    }
}

/// A change seen by an informer: which watched kind (0 = the owner), and the object.
struct Change {
    kind: usize,
    object: Arc<Value>,
}

/// Runs `controllers` until `shutdown` fires.
pub async fn run(
    api: Api,
    controllers: Vec<Arc<dyn Reconciler>>,
    shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let mut tasks = Vec::new();
    for c in controllers {
        let Some(owner) = c.owner() else {
            tracing::debug!("{}: its kind is not served; not started", c.component());
            continue;
        };
        tasks.push(tokio::spawn(run_one(
            api.clone(),
            c,
            owner,
            shutdown.clone(),
        )));
    }
    for t in tasks {
        let _ = t.await;
    }
}

async fn run_one(
    api: Api,
    controller: Arc<dyn Reconciler>,
    owner: &'static Resource,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let owned = controller.owned();
    let (tx, mut changes) = mpsc::channel::<Change>(1024);
    let mut informers = Vec::new();
    for (i, r) in std::iter::once(owner)
        .chain(owned.iter().copied())
        .enumerate()
    {
        informers.push(tokio::spawn(inform(api.clone(), r, i, tx.clone())));
    }
    drop(tx);
    let mut queue = Queue::default();
    // Known owners per namespace: an owned object without a controller wakes them all (a
    // ReplicaSet may adopt it).
    let mut owners: HashMap<String, HashSet<String>> = HashMap::new();
    let mut resync = tokio::time::interval(RESYNC_EVERY);
    resync.tick().await;
    loop {
        let next_timer = queue.fire_timers();
        if let Some(key) = queue.pop() {
            sync(&api, controller.as_ref(), owner, &owned, &key, &mut queue).await;
            // Let informers and the shutdown signal in between keys.
            tokio::task::yield_now().await;
            if *shutdown.borrow() {
                break;
            }
            while let Ok(change) = changes.try_recv() {
                on_change(change, owner, &mut owners, &mut queue);
            }
            continue;
        }
        let sleep = async {
            match next_timer {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            change = changes.recv() => match change {
                Some(c) => on_change(c, owner, &mut owners, &mut queue),
                None => break,
            },
            _ = sleep => {}
            _ = resync.tick() => {
                for (ns, names) in &owners {
                    for name in names {
                        queue.add(Key { namespace: ns.clone(), name: name.clone() });
                    }
                }
            }
            _ = shutdown.changed() => break,
        }
    }
    for i in informers {
        i.abort();
    }
}

/// Which owners a change wakes.
fn on_change(
    change: Change,
    owner: &Resource,
    owners: &mut HashMap<String, HashSet<String>>,
    queue: &mut Queue,
) {
    let meta = &change.object["metadata"];
    let ns = meta["namespace"].as_str().unwrap_or_default().to_string();
    let name = meta["name"].as_str().unwrap_or_default().to_string();
    if change.kind == 0 {
        let gone = meta["deletionTimestamp"].is_string() && meta["finalizers"].is_null()
            || change.object.get("__deleted").is_some();
        if gone {
            if let Some(set) = owners.get_mut(&ns) {
                set.remove(&name);
            }
        } else {
            owners.entry(ns.clone()).or_default().insert(name.clone());
        }
        queue.add(Key {
            namespace: ns,
            name,
        });
        return;
    }
    let controller_ref = meta["ownerReferences"].as_array().and_then(|refs| {
        refs.iter()
            .find(|r| r["controller"].as_bool() == Some(true))
    });
    match controller_ref {
        Some(r) => {
            if r["kind"].as_str() == Some(owner.kind)
                && r["apiVersion"].as_str() == Some(&owner.api_version())
            {
                if let Some(owner_name) = r["name"].as_str() {
                    queue.add(Key {
                        namespace: ns,
                        name: owner_name.to_string(),
                    });
                }
            }
        }
        None => {
            if let Some(names) = owners.get(&ns) {
                for n in names {
                    queue.add(Key {
                        namespace: ns.clone(),
                        name: n.clone(),
                    });
                }
            }
        }
    }
}

/// An informer: list, then watch from the list's revision; re-list when the watch ends.
/// DELETED objects are passed on marked `__deleted` (the controller reads state fresh).
async fn inform(api: Api, r: &'static Resource, kind: usize, tx: mpsc::Sender<Change>) {
    loop {
        let list = match api.list(r, None, &ListOptions::default()) {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!("listing {}: {e}", r.plural);
                tokio::time::sleep(ERROR_RETRY).await;
                continue;
            }
        };
        for object in list.items {
            if tx.send(Change { kind, object }).await.is_err() {
                return;
            }
        }
        let opts = WatchOptions {
            resource_version: Some(list.resource_version.to_string()),
            ..Default::default()
        };
        let mut watch = match api.watch(r, None, &opts) {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!("watching {}: {e}", r.plural);
                tokio::time::sleep(ERROR_RETRY).await;
                continue;
            }
        };
        while let Some(event) = watch.next().await {
            let object = match event.type_ {
                "ADDED" | "MODIFIED" => event.object,
                "DELETED" => {
                    let mut o = (*event.object).clone();
                    if let Some(m) = o.as_object_mut() {
                        m.insert("__deleted".into(), Value::Bool(true));
                    }
                    Arc::new(o)
                }
                _ => continue,
            };
            if tx.send(Change { kind, object }).await.is_err() {
                return;
            }
        }
        tokio::time::sleep(RELIST_PAUSE).await;
    }
}

/// One reconcile of one owner: read, decide, write.
async fn sync(
    api: &Api,
    controller: &dyn Reconciler,
    owner_r: &'static Resource,
    owned: &[&'static Resource],
    key: &Key,
    queue: &mut Queue,
) {
    let owner = match api.get(owner_r, &key.namespace, &key.name) {
        Ok(o) => o,
        Err(e) if e.code == 404 => {
            let mut objects = Vec::with_capacity(owned.len());
            for r in owned {
                match api.list(r, Some(&key.namespace), &ListOptions::default()) {
                    Ok(l) => objects.push(l.items),
                    Err(_) => return,
                }
            }
            let decision = controller.orphaned(&key.namespace, &key.name, &objects);
            for action in decision.actions {
                if let Err(e) = apply(api, &action).await {
                    if e.code != 404 {
                        queue.add_after(key.clone(), CONFLICT_RETRY);
                    }
                    break;
                }
            }
            return;
        }
        Err(e) => {
            tracing::warn!(
                "{}: reading {}/{}: {e}",
                controller.component(),
                key.namespace,
                key.name
            );
            queue.add_after(key.clone(), ERROR_RETRY);
            return;
        }
    };
    let mut objects = Vec::with_capacity(owned.len());
    for r in owned {
        match api.list(r, Some(&key.namespace), &ListOptions::default()) {
            Ok(l) => objects.push(l.items),
            Err(e) => {
                tracing::warn!("{}: listing {}: {e}", controller.component(), r.plural);
                queue.add_after(key.clone(), ERROR_RETRY);
                return;
            }
        }
    }
    let decision = match controller.reconcile(&owner, &objects, Timestamp::now()) {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(
                "{}: {}/{}: {e}",
                controller.component(),
                key.namespace,
                key.name
            );
            return;
        }
    };
    let mut retry = None;
    let mut events = decision.events;
    for action in decision.actions {
        let applied = apply(api, &action).await;
        if let Ok(Some(created)) = &applied {
            events.extend(controller.created(&owner, created));
        }
        if let Err(e) = applied {
            match e.code {
                // Stale read or a race with a client: decide again from fresh state.
                409 | 404 => retry = Some(CONFLICT_RETRY),
                _ => {
                    tracing::warn!(
                        "{}: {}/{}: {e}",
                        controller.component(),
                        key.namespace,
                        key.name
                    );
                    retry = Some(ERROR_RETRY);
                }
            }
            break;
        }
    }
    if !events.is_empty() {
        let now = Timestamp::now();
        // One nanosecond apart: events are named `<object>.<nanoseconds in hex>`, and a
        // decision may record several about one object.
        let events = events
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let at = now
                    .checked_add(k8s_openapi::jiff::SignedDuration::from_nanos(i as i64))
                    .unwrap_or(now);
                event_object(controller.component(), n, at)
            })
            .collect();
        api.record_events(events).await;
    }
    let after = match (retry, decision.requeue_after) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    if let Some(after) = after {
        queue.add_after(key.clone(), after);
    }
}

/// The served resource of a controller-written kind.
pub fn resource_of(kind: Kind) -> Option<&'static Resource> {
    match kind {
        Kind::Pod => registry::resource("", "pods"),
        Kind::Job => registry::resource("batch", "jobs"),
        Kind::CronJob => registry::resource("batch", "cronjobs"),
        Kind::ReplicaSet => registry::resource("apps", "replicasets"),
        Kind::Deployment => registry::resource("apps", "deployments"),
    }
}

fn kind_of(object: &Object) -> Kind {
    match object {
        Object::Pod(_) => Kind::Pod,
        Object::Job(_) => Kind::Job,
        Object::CronJob(_) => Kind::CronJob,
        Object::ReplicaSet(_) => Kind::ReplicaSet,
        Object::Deployment(_) => Kind::Deployment,
    }
}

fn object_json(object: &Object) -> serde_json::Result<Vec<u8>> {
    match object {
        Object::Pod(o) => serde_json::to_vec(o),
        Object::Job(o) => serde_json::to_vec(o),
        Object::CronJob(o) => serde_json::to_vec(o),
        Object::ReplicaSet(o) => serde_json::to_vec(o),
        Object::Deployment(o) => serde_json::to_vec(o),
    }
}

fn object_meta(object: &Object) -> &ObjectMeta {
    match object {
        Object::Pod(o) => &o.metadata,
        Object::Job(o) => &o.metadata,
        Object::CronJob(o) => &o.metadata,
        Object::ReplicaSet(o) => &o.metadata,
        Object::Deployment(o) => &o.metadata,
    }
}

/// Carries out one action through the API (the same paths clients use: defaulting,
/// validation, admission, optimistic concurrency).
/// Returns the created object for a create.
async fn apply(api: &Api, action: &Action) -> Result<Option<Arc<Value>>, ApiError> {
    let not_served = |k: Kind| ApiError::new(500, "InternalError", format!("{k:?} is not served"));
    let opts = WriteOptions::default();
    match action {
        Action::Create(o) | Action::Update(o) | Action::UpdateStatus(o) => {
            let kind = kind_of(o);
            let r = resource_of(kind).ok_or_else(|| not_served(kind))?;
            let meta = object_meta(o);
            let ns = meta.namespace.as_deref().unwrap_or("default");
            let body =
                object_json(o).map_err(|e| ApiError::new(500, "InternalError", e.to_string()))?;
            match action {
                Action::Create(_) => {
                    let written = api.create(r, ns, &body, BodyFormat::Json, &opts).await?;
                    return Ok(Some(written.object));
                }
                Action::Update(_) | Action::UpdateStatus(_) => {
                    let name = meta.name.as_deref().unwrap_or_default();
                    let sub = matches!(action, Action::UpdateStatus(_)).then_some("status");
                    api.update(r, ns, name, sub, &body, BodyFormat::Json, &opts)
                        .await?;
                }
                Action::Delete { .. } => {}
            }
        }
        Action::Delete {
            kind,
            namespace,
            name,
            uid,
            propagation,
        } => {
            let r = resource_of(*kind).ok_or_else(|| not_served(*kind))?;
            let o = DeleteOptions {
                precondition_uid: uid.clone(),
                propagation_policy: propagation.map(|p| {
                    match p {
                        Propagation::Background => "Background",
                        Propagation::Foreground => "Foreground",
                        Propagation::Orphan => "Orphan",
                    }
                    .to_string()
                }),
                ..Default::default()
            };
            match api.delete(r, namespace, name, &o).await {
                Ok(_) => {}
                // Already gone: what the controller wanted.
                Err(e) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(None)
}

/// The Event kube-controller-manager's recorder writes for `note`.
fn event_object(component: &str, note: &EventNote, now: Timestamp) -> Event {
    let (api_version, kind) = match note.kind {
        Kind::Pod => ("v1", "Pod"),
        Kind::Job => ("batch/v1", "Job"),
        Kind::CronJob => ("batch/v1", "CronJob"),
        Kind::ReplicaSet => ("apps/v1", "ReplicaSet"),
        Kind::Deployment => ("apps/v1", "Deployment"),
    };
    // client-go names events `<object name>.<unix nanoseconds in hex>`.
    let nanos = now.as_nanosecond();
    let at = Time(now);
    Event {
        metadata: ObjectMeta {
            name: Some(format!("{}.{:x}", note.name, nanos)),
            namespace: Some(note.namespace.clone()),
            ..Default::default()
        },
        involved_object: ObjectReference {
            api_version: Some(api_version.into()),
            kind: Some(kind.into()),
            name: Some(note.name.clone()),
            namespace: Some(note.namespace.clone()),
            uid: Some(note.uid.clone()),
            ..Default::default()
        },
        reason: Some(note.reason.clone()),
        message: Some(note.message.clone()),
        source: Some(EventSource {
            component: Some(component.into()),
            host: None,
        }),
        first_timestamp: Some(at.clone()),
        last_timestamp: Some(at),
        event_time: None::<MicroTime>,
        count: Some(1),
        type_: Some(note.type_.into()),
        reporting_component: Some(component.into()),
        reporting_instance: Some(component.into()),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests;
