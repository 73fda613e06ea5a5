//! The ReplicaSet controller (pkg/controller/replicaset/replica_set.go and the helpers of
//! pkg/controller/controller_utils.go), as pure decision code.
//!
//! [`sync`] takes one ReplicaSet, every Pod of its namespace and the time, and decides:
//! - which pods it owns: a pod whose controller ownerReference is the ReplicaSet and whose
//!   labels match the selector; orphans matching the selector are adopted, owned pods that no
//!   longer match are released (`ClaimPods`);
//! - pods to create (from the template, `generateName: <rs>-`, controller ownerReference) or
//!   delete (kube's ranking: unscheduled, pending, not ready, ready for less time, more
//!   restarts, younger first — `ActivePodsWithRanks`);
//! - the status: replicas, fullyLabeledReplicas, readyReplicas, availableReplicas (ready for
//!   `minReadySeconds`, from the Ready condition's lastTransitionTime), observedGeneration;
//!   a requeue when a ready pod will become available.
//!
//! The pod name is chosen here (the `generateName` prefix plus five characters of the API
//! server's alphabet, derived from the ReplicaSet's UID and not taken by any pod of the
//! namespace) so that the event can name it as upstream's does (`Created pod: web-7d4-xk2bq`)
//! without the decision waiting for the API server's answer.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector, ObjectMeta, OwnerReference, Time,
};
use k8s_openapi::jiff::Timestamp;
use skiff_model::workloads::apps::selector_matches;

use crate::{Action, Decision, EventNote, Kind, Now, Object};

/// `BurstReplicas`: at most this many creations or deletions per sync.
const BURST_REPLICAS: usize = 500;

/// The API server's `generateName` suffix alphabet (`utilrand.String`: no vowels, no 0/1/3).
const NAME_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// Decides what the ReplicaSet controller does for `rs` at `now`. `pods` are the pods of the
/// ReplicaSet's namespace (all of them: adoption looks at orphans).
pub fn sync(rs: &ReplicaSet, pods: &[Pod], now: Now) -> Decision {
    let mut decision = Decision::default();
    let meta = &rs.metadata;
    let namespace = meta.namespace.clone().unwrap_or_default();
    let rs_uid = meta.uid.clone().unwrap_or_default();
    let deleting = meta.deletion_timestamp.is_some();
    let selector = &rs.spec.selector;

    // FilterActivePods, then ClaimPods.
    let mut owned: Vec<Pod> = Vec::new();
    for pod in pods.iter().filter(|p| is_pod_active(p)) {
        match claim(&rs_uid, deleting, selector, &pod.metadata) {
            Claim::Owned => owned.push(pod.clone()),
            Claim::Adopt => {
                let mut adopted = pod.clone();
                adopt(&mut adopted.metadata, controller_ref_to_rs(rs));
                decision
                    .actions
                    .push(Action::Update(Object::Pod(Box::new(adopted.clone()))));
                owned.push(adopted);
            }
            Claim::Release => {
                let mut released = pod.clone();
                release(&mut released.metadata, &rs_uid);
                decision
                    .actions
                    .push(Action::Update(Object::Pod(Box::new(released))));
            }
            Claim::Ignore => {}
        }
    }

    // manageReplicas (not while the ReplicaSet is being deleted).
    let want = usize::try_from(rs.spec.replicas.unwrap_or(1).max(0)).unwrap_or(0);
    if !deleting {
        if owned.len() < want {
            let n = (want - owned.len()).min(BURST_REPLICAS);
            let mut taken: BTreeSet<String> = pods
                .iter()
                .filter_map(|p| p.metadata.name.clone())
                .collect();
            let template = rs.spec.template.clone().unwrap_or_default();
            for _ in 0..n {
                let name_prefix = pod_name_prefix(meta.name.as_deref().unwrap_or(""));
                let name = unique_name(&name_prefix, &rs_uid, &taken);
                taken.insert(name.clone());
                let pod = pod_from_template(&template, &namespace, &name_prefix, &name, rs);
                decision
                    .actions
                    .push(Action::Create(Object::Pod(Box::new(pod))));
                decision.events.push(event_for_rs(
                    rs,
                    "Normal",
                    "SuccessfulCreate",
                    format!("Created pod: {name}"),
                ));
            }
        } else if owned.len() > want {
            let n = (owned.len() - want).min(BURST_REPLICAS);
            let mut ranked: Vec<&Pod> = owned.iter().collect();
            ranked.sort_by(|a, b| deletion_order(a, b, now));
            for pod in ranked.into_iter().take(n) {
                let name = pod.metadata.name.clone().unwrap_or_default();
                decision.actions.push(Action::Delete {
                    kind: Kind::Pod,
                    namespace: namespace.clone(),
                    name: name.clone(),
                    uid: pod.metadata.uid.clone(),
                    propagation: None,
                });
                decision.events.push(event_for_rs(
                    rs,
                    "Normal",
                    "SuccessfulDelete",
                    format!("Deleted pod: {name}"),
                ));
            }
        }
    }

    // calculateStatus over the claimed pods (before this sync's creations and deletions, as
    // upstream: the next sync sees them).
    let min_ready = rs.spec.min_ready_seconds.unwrap_or(0);
    let template_labels = rs
        .spec
        .template
        .as_ref()
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let mut status = rs.status.clone().unwrap_or_default();
    let count = |f: &dyn Fn(&Pod) -> bool| -> i32 {
        i32::try_from(owned.iter().filter(|p| f(p)).count()).unwrap_or(i32::MAX)
    };
    status.replicas = count(&|_| true);
    status.fully_labeled_replicas = nz(count(&|p| {
        let labels = p.metadata.labels.clone().unwrap_or_default();
        template_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
    }));
    status.ready_replicas = nz(count(&|p| ready_since(p).is_some()));
    status.available_replicas = nz(count(&|p| is_pod_available(p, min_ready, now)));
    status.observed_generation = meta.generation.filter(|g| *g != 0);
    // DeploymentReplicaSetTerminatingReplicas (beta, on by default since 1.35): owned pods
    // being deleted but not terminal yet.
    let empty = BTreeMap::new();
    let terminating = pods.iter().filter(|p| {
        let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
        p.metadata.deletion_timestamp.is_some()
            && !matches!(phase, Some("Succeeded" | "Failed"))
            && controller_of(&p.metadata).is_some_and(|r| r.uid == rs_uid)
            && selector_matches(selector, p.metadata.labels.as_ref().unwrap_or(&empty))
    });
    status.terminating_replicas = Some(i32::try_from(terminating.count()).unwrap_or(i32::MAX));
    if rs.status.as_ref() != Some(&status) {
        let mut updated = rs.clone();
        updated.status = Some(status);
        decision
            .actions
            .push(Action::UpdateStatus(Object::ReplicaSet(Box::new(updated))));
    }
    // Look again when a ready pod reaches minReadySeconds.
    decision.requeue_after = owned
        .iter()
        .filter(|p| !is_pod_available(p, min_ready, now))
        .filter_map(ready_since)
        .map(|since| until(since, i64::from(min_ready), now))
        .min();
    decision
}

/// An `omitempty` int32: zero is absent on the wire.
pub(crate) fn nz(v: i32) -> Option<i32> {
    (v != 0).then_some(v)
}

/// `FilterActivePods`/`IsPodActive`: not terminal and not being deleted.
pub(crate) fn is_pod_active(pod: &Pod) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    !matches!(phase, Some("Succeeded" | "Failed")) && pod.metadata.deletion_timestamp.is_none()
}

/// When the pod's Ready condition became True (`None`: not ready).
pub(crate) fn ready_since(pod: &Pod) -> Option<Timestamp> {
    let cond = pod
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")?;
    if cond.status != "True" {
        return None;
    }
    Some(
        cond.last_transition_time
            .as_ref()
            .map_or(Timestamp::UNIX_EPOCH, |t| t.0),
    )
}

/// `IsPodAvailable`: ready for at least `min_ready` seconds.
pub(crate) fn is_pod_available(pod: &Pod, min_ready: i32, now: Now) -> bool {
    match ready_since(pod) {
        None => false,
        Some(_) if min_ready <= 0 => true,
        Some(since) => since.as_second() + i64::from(min_ready) <= now.as_second(),
    }
}

/// The time from `now` until `since + seconds` (at least one second, so a requeue is never
/// a busy loop).
pub(crate) fn until(since: Timestamp, seconds: i64, now: Now) -> Duration {
    let left = since.as_second() + seconds - now.as_second();
    Duration::from_secs(u64::try_from(left.max(1)).unwrap_or(1))
}

/// `metav1.Time` of `now`, truncated to seconds as the wire format keeps it (so a status
/// written and read back compares equal).
pub(crate) fn wire_time(now: Now) -> Time {
    Time(Timestamp::from_second(now.as_second()).unwrap_or(now))
}

/// What `ClaimObject` decides for one object.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Claim {
    Owned,
    Adopt,
    Release,
    Ignore,
}

/// `BaseControllerRefManager.ClaimObject`.
pub(crate) fn claim(
    owner_uid: &str,
    owner_deleting: bool,
    selector: &LabelSelector,
    meta: &ObjectMeta,
) -> Claim {
    let empty = BTreeMap::new();
    let matches = selector_matches(selector, meta.labels.as_ref().unwrap_or(&empty));
    match controller_of(meta) {
        Some(r) if r.uid != owner_uid => Claim::Ignore,
        Some(_) if matches => Claim::Owned,
        Some(_) if owner_deleting => Claim::Ignore,
        Some(_) => Claim::Release,
        None if owner_deleting || !matches || meta.deletion_timestamp.is_some() => Claim::Ignore,
        None => Claim::Adopt,
    }
}

/// `metav1.GetControllerOf`.
pub(crate) fn controller_of(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true))
}

/// Adds the controller reference (the adoption patch).
pub(crate) fn adopt(meta: &mut ObjectMeta, owner: OwnerReference) {
    let refs = meta.owner_references.get_or_insert_with(Vec::new);
    refs.retain(|r| r.uid != owner.uid);
    refs.push(owner);
}

/// Removes the owner's reference (the release patch).
pub(crate) fn release(meta: &mut ObjectMeta, owner_uid: &str) {
    if let Some(refs) = meta.owner_references.as_mut() {
        refs.retain(|r| r.uid != owner_uid);
        if refs.is_empty() {
            meta.owner_references = None;
        }
    }
}

/// A controller reference (`metav1.NewControllerRef`: controller and blockOwnerDeletion).
pub(crate) fn controller_ref(api_version: &str, kind: &str, meta: &ObjectMeta) -> OwnerReference {
    OwnerReference {
        api_version: api_version.to_string(),
        kind: kind.to_string(),
        name: meta.name.clone().unwrap_or_default(),
        uid: meta.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

fn controller_ref_to_rs(rs: &ReplicaSet) -> OwnerReference {
    controller_ref("apps/v1", "ReplicaSet", &rs.metadata)
}

/// An event about an object.
pub(crate) fn event(
    kind: Kind,
    meta: &ObjectMeta,
    type_: &'static str,
    reason: &str,
    message: String,
) -> EventNote {
    EventNote {
        kind,
        namespace: meta.namespace.clone().unwrap_or_default(),
        name: meta.name.clone().unwrap_or_default(),
        uid: meta.uid.clone().unwrap_or_default(),
        type_,
        reason: reason.to_string(),
        message,
    }
}

fn event_for_rs(rs: &ReplicaSet, type_: &'static str, reason: &str, message: String) -> EventNote {
    event(Kind::ReplicaSet, &rs.metadata, type_, reason, message)
}

/// `getPodsPrefix`: `<name>-`, or the bare name when the dash would make it invalid (a name
/// already at the limit).
fn pod_name_prefix(name: &str) -> String {
    // Names are at most 253 characters; the generated name gets five more.
    if name.len() + 1 > 253 - 5 {
        name.chars().take(253 - 5).collect()
    } else {
        format!("{name}-")
    }
}

/// FNV-1a (32 bits): a small, stable hash for names (written here: the one function the
/// deployment's pod-template-hash uses too, no crate needed for ten lines).
pub(crate) fn fnv32a(bytes: &[u8], mut hash: u32) -> u32 {
    for b in bytes {
        hash ^= u32::from(*b);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash
}

pub(crate) const FNV32_OFFSET: u32 = 0x811c_9dc5;

/// `<prefix><five characters>` not taken yet, derived from the owner's UID and an attempt
/// counter (deterministic: the same snapshot gives the same names).
fn unique_name(prefix: &str, owner_uid: &str, taken: &BTreeSet<String>) -> String {
    let mut attempt: u32 = 0;
    loop {
        let mut h = fnv32a(owner_uid.as_bytes(), FNV32_OFFSET);
        h = fnv32a(&attempt.to_le_bytes(), h);
        let mut suffix = String::with_capacity(5);
        let mut x = u64::from(h) | (u64::from(attempt) << 32);
        for _ in 0..5 {
            let i = usize::try_from(x % NAME_ALPHABET.len() as u64).unwrap_or(0);
            suffix.push(char::from(NAME_ALPHABET[i]));
            x /= NAME_ALPHABET.len() as u64;
        }
        let name = format!("{prefix}{suffix}");
        if !taken.contains(&name) {
            return name;
        }
        attempt = attempt.wrapping_add(1);
    }
}

/// `GetPodFromTemplate` with the controller reference.
fn pod_from_template(
    template: &PodTemplateSpec,
    namespace: &str,
    prefix: &str,
    name: &str,
    rs: &ReplicaSet,
) -> Pod {
    let tmeta = template.metadata.clone().unwrap_or_default();
    Pod {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            generate_name: Some(prefix.to_string()),
            namespace: Some(namespace.to_string()),
            labels: tmeta.labels,
            annotations: tmeta.annotations,
            finalizers: tmeta.finalizers,
            owner_references: Some(vec![controller_ref_to_rs(rs)]),
            ..ObjectMeta::default()
        },
        spec: template.spec.clone(),
        status: None,
    }
}

/// `ActivePodsWithRanks.Less` on one node (every pod shares the node, so the co-location
/// rank is equal): the pod to delete first sorts first.
fn deletion_order(a: &Pod, b: &Pod, now: Now) -> Ordering {
    let _ = now;
    let assigned = |p: &Pod| {
        p.spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .is_some_and(|n| !n.is_empty())
    };
    // Pending < Unknown < Running.
    let phase_rank = |p: &Pod| match p.status.as_ref().and_then(|s| s.phase.as_deref()) {
        Some("Pending") | None => 0,
        Some("Unknown") => 1,
        Some("Running") => 2,
        Some(_) => 0,
    };
    let deletion_cost = |p: &Pod| -> i64 {
        p.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("controller.kubernetes.io/pod-deletion-cost"))
            .and_then(|v| v.parse::<i32>().ok())
            .map_or(0, i64::from)
    };
    let restarts = |p: &Pod| -> i32 {
        p.status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .and_then(|cs| cs.iter().map(|c| c.restart_count).max())
            .unwrap_or(0)
    };
    let created = |p: &Pod| p.metadata.creation_timestamp.as_ref().map(|t| t.0);
    assigned(a)
        .cmp(&assigned(b))
        .then(phase_rank(a).cmp(&phase_rank(b)))
        .then(ready_since(a).is_some().cmp(&ready_since(b).is_some()))
        .then(deletion_cost(a).cmp(&deletion_cost(b)))
        // Both ready: the one ready for less time (the later transition) first.
        .then_with(|| match (ready_since(a), ready_since(b)) {
            (Some(x), Some(y)) => y.cmp(&x),
            _ => Ordering::Equal,
        })
        .then(restarts(b).cmp(&restarts(a)))
        // Younger (later creation) first; a pod without a timestamp counts as youngest.
        .then_with(|| match (created(a), created(b)) {
            (Some(x), Some(y)) => y.cmp(&x),
            (None, Some(_)) => Ordering::Less,
            (Some(_), None) => Ordering::Greater,
            (None, None) => Ordering::Equal,
        })
}

#[cfg(test)]
pub(crate) mod tests {
    //! Rules of pkg/controller/replicaset/replica_set.go and pkg/controller/controller_utils.go.
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use k8s_openapi::api::apps::v1::ReplicaSetStatus;
    use k8s_openapi::api::core::v1::{PodCondition, PodStatus};

    pub(crate) fn t(sec: i64) -> Now {
        Timestamp::from_second(1_700_000_000 + sec).unwrap()
    }

    fn rs(replicas: i32, min_ready: i32) -> ReplicaSet {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web-abc", "namespace": "default", "uid": "rs-uid", "generation": 2},
            "spec": {
                "replicas": replicas,
                "minReadySeconds": min_ready,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web", "extra": "x"},
                                          "annotations": {"a": "b"}},
                             "spec": {"containers": [{"name": "c", "image": "nginx"}]}},
            }
        }))
        .unwrap()
    }

    /// A pod owned by `owner_uid` (None: an orphan) created at `created`.
    pub(crate) fn pod(name: &str, owner_uid: Option<&str>, created: i64) -> Pod {
        let mut p: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}"),
                         "labels": {"app": "web", "extra": "x"},
                         "creationTimestamp": wire_time(t(created)).0.to_string()},
            "spec": {"nodeName": "node", "containers": [{"name": "c", "image": "nginx"}]},
            "status": {"phase": "Running"},
        }))
        .unwrap();
        if let Some(uid) = owner_uid {
            p.metadata.owner_references = Some(vec![OwnerReference {
                api_version: "apps/v1".into(),
                kind: "ReplicaSet".into(),
                name: "owner".into(),
                uid: uid.into(),
                controller: Some(true),
                block_owner_deletion: Some(true),
            }]);
        }
        p
    }

    pub(crate) fn make_ready(p: &mut Pod, since: Now) {
        let st = p.status.get_or_insert_with(PodStatus::default);
        st.phase = Some("Running".into());
        st.conditions = Some(vec![PodCondition {
            type_: "Ready".into(),
            status: "True".into(),
            last_transition_time: Some(wire_time(since)),
            ..PodCondition::default()
        }]);
    }

    fn created(d: &Decision) -> Vec<Pod> {
        d.actions
            .iter()
            .filter_map(|a| match a {
                Action::Create(Object::Pod(p)) => Some((**p).clone()),
                _ => None,
            })
            .collect()
    }

    fn deleted(d: &Decision) -> Vec<String> {
        d.actions
            .iter()
            .filter_map(|a| match a {
                Action::Delete {
                    kind: Kind::Pod,
                    name,
                    ..
                } => Some(name.clone()),
                _ => None,
            })
            .collect()
    }

    fn new_status(d: &Decision) -> Option<ReplicaSetStatus> {
        d.actions.iter().find_map(|a| match a {
            Action::UpdateStatus(Object::ReplicaSet(r)) => r.status.clone(),
            _ => None,
        })
    }

    #[test]
    fn creates_missing_pods_from_the_template_with_controller_ref_and_events() {
        let d = sync(&rs(3, 0), &[], t(0));
        let pods = created(&d);
        assert_eq!(pods.len(), 3);
        let names: BTreeSet<_> = pods
            .iter()
            .map(|p| p.metadata.name.clone().unwrap())
            .collect();
        assert_eq!(names.len(), 3, "names are unique");
        for p in &pods {
            let m = &p.metadata;
            assert_eq!(m.generate_name.as_deref(), Some("web-abc-"));
            let name = m.name.as_deref().unwrap();
            assert!(name.starts_with("web-abc-") && name.len() == "web-abc-".len() + 5);
            assert!(name["web-abc-".len()..]
                .bytes()
                .all(|b| NAME_ALPHABET.contains(&b)));
            assert_eq!(m.labels.as_ref().unwrap()["app"], "web");
            assert_eq!(m.annotations.as_ref().unwrap()["a"], "b");
            let r = &m.owner_references.as_ref().unwrap()[0];
            assert_eq!((r.kind.as_str(), r.uid.as_str()), ("ReplicaSet", "rs-uid"));
            assert_eq!(
                (r.controller, r.block_owner_deletion),
                (Some(true), Some(true))
            );
        }
        let msgs: Vec<_> = d
            .events
            .iter()
            .map(|e| format!("{} {}", e.reason, e.message))
            .collect();
        for p in &pods {
            assert!(msgs.contains(&format!(
                "SuccessfulCreate Created pod: {}",
                p.metadata.name.clone().unwrap()
            )));
        }
        // Same snapshot, same names: a retried decision does not invent new pods.
        assert_eq!(created(&sync(&rs(3, 0), &[], t(5))), pods);
    }

    #[test]
    fn new_names_avoid_pods_that_exist() {
        let first = created(&sync(&rs(1, 0), &[], t(0)));
        let mut existing = first[0].clone();
        existing.metadata.owner_references = None;
        existing.metadata.labels = None; // not ours: only its name matters
        let again = created(&sync(&rs(1, 0), &[existing.clone()], t(0)));
        assert_ne!(again[0].metadata.name, existing.metadata.name);
    }

    #[test]
    fn adopts_matching_orphans_and_releases_pods_that_no_longer_match() {
        let orphan = pod("orphan", None, 0);
        let mut stray = pod("stray", Some("rs-uid"), 0);
        stray.metadata.labels = Some(BTreeMap::from([("app".into(), "other".into())]));
        let foreign = pod("foreign", Some("other-uid"), 0);
        let d = sync(&rs(1, 0), &[orphan, stray, foreign], t(0));
        let updates: Vec<&Pod> = d
            .actions
            .iter()
            .filter_map(|a| match a {
                Action::Update(Object::Pod(p)) => Some(&**p),
                _ => None,
            })
            .collect();
        assert_eq!(updates.len(), 2);
        let adopted = updates
            .iter()
            .find(|p| p.metadata.name.as_deref() == Some("orphan"))
            .unwrap();
        assert_eq!(controller_of(&adopted.metadata).unwrap().uid, "rs-uid");
        let released = updates
            .iter()
            .find(|p| p.metadata.name.as_deref() == Some("stray"))
            .unwrap();
        assert!(released.metadata.owner_references.is_none());
        // The adopted orphan fills the one replica: nothing created, nothing deleted.
        assert!(created(&d).is_empty() && deleted(&d).is_empty());
        assert_eq!(new_status(&d).unwrap().replicas, 1);
    }

    #[test]
    fn being_deleted_it_neither_adopts_nor_creates() {
        let mut r = rs(3, 0);
        r.metadata.deletion_timestamp = Some(wire_time(t(0)));
        let d = sync(&r, &[pod("orphan", None, 0)], t(1));
        assert!(d
            .actions
            .iter()
            .all(|a| matches!(a, Action::UpdateStatus(_))));
    }

    #[test]
    fn terminal_and_terminating_pods_do_not_count() {
        let mut done = pod("done", Some("rs-uid"), 0);
        done.status.as_mut().unwrap().phase = Some("Succeeded".into());
        let mut going = pod("going", Some("rs-uid"), 0);
        going.metadata.deletion_timestamp = Some(wire_time(t(0)));
        let d = sync(&rs(1, 0), &[done, going], t(1));
        assert_eq!(created(&d).len(), 1);
        let st = new_status(&d).unwrap();
        assert_eq!((st.replicas, st.terminating_replicas), (0, Some(1)));
    }

    #[test]
    fn deletes_surplus_unscheduled_pending_unready_young_first() {
        let mut old_ready = pod("old-ready", Some("rs-uid"), 0);
        make_ready(&mut old_ready, t(10));
        let mut young_ready = pod("young-ready", Some("rs-uid"), 50);
        make_ready(&mut young_ready, t(60));
        let not_ready = pod("not-ready", Some("rs-uid"), 0);
        let mut pending = pod("pending", Some("rs-uid"), 0);
        pending.status.as_mut().unwrap().phase = Some("Pending".into());
        let mut unscheduled = pod("unscheduled", Some("rs-uid"), 0);
        unscheduled.spec.as_mut().unwrap().node_name = None;
        let all = [old_ready, young_ready, not_ready, pending, unscheduled];
        let order = |n: i32| deleted(&sync(&rs(n, 0), &all, t(100)));
        assert_eq!(order(4), vec!["unscheduled"]);
        assert_eq!(order(2), vec!["unscheduled", "pending", "not-ready"]);
        assert_eq!(
            order(0),
            vec![
                "unscheduled",
                "pending",
                "not-ready",
                "young-ready",
                "old-ready"
            ]
        );
        let d = sync(&rs(4, 0), &all, t(100));
        assert_eq!(d.events[0].reason, "SuccessfulDelete");
        assert_eq!(d.events[0].message, "Deleted pod: unscheduled");
    }

    #[test]
    fn status_counts_ready_available_after_min_ready_seconds_and_requeues() {
        let mut a = pod("a", Some("rs-uid"), 0);
        make_ready(&mut a, t(0));
        let mut b = pod("b", Some("rs-uid"), 0);
        make_ready(&mut b, t(8));
        let mut c = pod("c", Some("rs-uid"), 0);
        c.metadata.labels = Some(BTreeMap::from([("app".into(), "web".into())]));
        let d = sync(&rs(3, 10), &[a.clone(), b.clone(), c.clone()], t(10));
        let st = new_status(&d).unwrap();
        assert_eq!(st.replicas, 3);
        assert_eq!(st.fully_labeled_replicas, Some(2));
        assert_eq!(st.ready_replicas, Some(2));
        assert_eq!(st.available_replicas, Some(1));
        assert_eq!(st.observed_generation, Some(2));
        // b becomes available at t(18): look again in 8 s.
        assert_eq!(d.requeue_after, Some(Duration::from_secs(8)));
        let mut r = rs(3, 10);
        r.status = Some(st);
        let later = sync(&r, &[a, b, c], t(18));
        assert_eq!(new_status(&later).unwrap().available_replicas, Some(2));
    }

    #[test]
    fn unchanged_status_is_not_written() {
        let mut a = pod("a", Some("rs-uid"), 0);
        make_ready(&mut a, t(0));
        let d = sync(&rs(1, 0), std::slice::from_ref(&a), t(1));
        let mut r = rs(1, 0);
        r.status = new_status(&d);
        let again = sync(&r, &[a], t(2));
        assert!(again.actions.is_empty(), "{:?}", again.actions);
        assert_eq!(again.requeue_after, None);
    }
}
