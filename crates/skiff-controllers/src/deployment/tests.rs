//! Rules of pkg/controller/deployment/{sync,rolling,recreate,progress}.go and
//! util/deployment_util.go, on a simulated clock. `Cluster` plays the API server (applies
//! decisions), the ReplicaSet controller (crate::replicaset) and the node (pods become Ready
//! when the test says so).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use crate::replicaset::tests::{make_ready, t};
use crate::EventNote;

fn deployment(replicas: i32, image: &str) -> Deployment {
    let mut d: Deployment = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "web", "namespace": "default", "uid": "d-uid", "generation": 1},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                         "spec": {"containers": [{"name": "c", "image": image}]}},
        }
    }))
    .unwrap();
    skiff_model::workloads::apps::default_deployment(&mut d);
    d
}

struct Cluster {
    sec: i64,
    d: Deployment,
    rss: Vec<ReplicaSet>,
    pods: Vec<Pod>,
    events: Vec<EventNote>,
    next_uid: u32,
    /// Checked after every applied decision: (max total pods, min ready pods).
    bounds: Option<(usize, usize)>,
    max_seen_total: usize,
    min_seen_ready: usize,
}

impl Cluster {
    fn new(d: Deployment) -> Self {
        Cluster {
            sec: 0,
            d,
            rss: Vec::new(),
            pods: Vec::new(),
            events: Vec::new(),
            next_uid: 0,
            bounds: None,
            max_seen_total: 0,
            min_seen_ready: usize::MAX,
        }
    }

    fn now(&self) -> Now {
        t(self.sec)
    }

    fn uid(&mut self) -> String {
        self.next_uid += 1;
        format!("uid-{}", self.next_uid)
    }

    fn ready_pods(&self) -> usize {
        self.pods
            .iter()
            .filter(|p| crate::replicaset::ready_since(p).is_some())
            .count()
    }

    /// Applies a decision as the API server would; returns whether it wrote anything.
    fn apply(&mut self, dec: Decision) -> bool {
        let wrote = !dec.actions.is_empty();
        self.events.extend(dec.events);
        for a in dec.actions {
            match a {
                Action::Create(Object::ReplicaSet(mut rs)) => {
                    assert!(!self.rss.iter().any(|r| r.metadata.name == rs.metadata.name));
                    rs.metadata.uid = Some(self.uid());
                    rs.metadata.generation = Some(1);
                    rs.metadata.creation_timestamp = Some(wire_time(self.now()));
                    self.rss.push(*rs);
                }
                Action::Update(Object::ReplicaSet(rs)) => {
                    let cur = self
                        .rss
                        .iter_mut()
                        .find(|r| r.metadata.name == rs.metadata.name)
                        .unwrap();
                    let spec_changed = cur.spec != rs.spec;
                    let generation = cur.metadata.generation.unwrap_or(1);
                    let status = cur.status.clone();
                    *cur = *rs;
                    cur.status = status;
                    cur.metadata.generation = Some(generation + i64::from(spec_changed));
                }
                Action::UpdateStatus(Object::ReplicaSet(rs)) => {
                    let cur = self
                        .rss
                        .iter_mut()
                        .find(|r| r.metadata.name == rs.metadata.name)
                        .unwrap();
                    cur.status = rs.status;
                }
                Action::UpdateStatus(Object::Deployment(d)) => {
                    self.d.status = d.status;
                    self.d.metadata.annotations = d.metadata.annotations;
                }
                Action::Delete {
                    kind: Kind::ReplicaSet,
                    name,
                    uid,
                    ..
                } => {
                    self.rss.retain(|r| r.metadata.name.as_ref() != Some(&name));
                    // Background propagation: the garbage collector removes its pods.
                    self.pods.retain(|p| {
                        controller_of(&p.metadata).map(|r| Some(&r.uid)) != Some(uid.as_ref())
                    });
                }
                Action::Create(Object::Pod(mut p)) => {
                    assert!(!self.pods.iter().any(|x| x.metadata.name == p.metadata.name));
                    p.metadata.uid = Some(self.uid());
                    p.metadata.creation_timestamp = Some(wire_time(self.now()));
                    p.spec.as_mut().unwrap().node_name = Some("node".into());
                    p.status = Some(k8s_openapi::api::core::v1::PodStatus {
                        phase: Some("Pending".into()),
                        ..Default::default()
                    });
                    self.pods.push(*p);
                }
                Action::Update(Object::Pod(p)) => {
                    let cur = self
                        .pods
                        .iter_mut()
                        .find(|x| x.metadata.name == p.metadata.name)
                        .unwrap();
                    *cur = *p;
                }
                Action::Delete {
                    kind: Kind::Pod,
                    name,
                    ..
                } => self
                    .pods
                    .retain(|p| p.metadata.name.as_ref() != Some(&name)),
                other => panic!("unexpected action {other:?}"),
            }
        }
        let total = self.pods.len();
        let ready = self.ready_pods();
        self.max_seen_total = self.max_seen_total.max(total);
        self.min_seen_ready = self.min_seen_ready.min(ready);
        if let Some((max_total, min_ready)) = self.bounds {
            assert!(
                total <= max_total,
                "{total} pods > {max_total} at t={}",
                self.sec
            );
            assert!(
                ready >= min_ready,
                "{ready} ready < {min_ready} at t={}",
                self.sec
            );
        }
        wrote
    }

    /// Runs the Deployment and ReplicaSet controllers until neither writes (informers
    /// delivering every change at once).
    fn settle(&mut self) {
        for _ in 0..100 {
            let mut wrote = false;
            let dec = sync(&self.d, &self.rss, &self.pods, self.now());
            wrote |= self.apply(dec);
            for i in 0..self.rss.len() {
                let Some(rs) = self.rss.get(i).cloned() else {
                    break;
                };
                let dec = crate::replicaset::sync(&rs, &self.pods, self.now());
                wrote |= self.apply(dec);
            }
            if !wrote {
                return;
            }
        }
        panic!("controllers never settled");
    }

    /// The node: every running pod not ready yet becomes Ready now.
    fn node_readies_pods(&mut self) {
        let now = self.now();
        for p in &mut self.pods {
            if crate::replicaset::ready_since(p).is_none() {
                make_ready(p, now);
            }
        }
    }

    /// settle, node, clock: one step of the world.
    fn step(&mut self) {
        self.settle();
        self.node_readies_pods();
        self.sec += 1;
        self.settle();
    }

    /// From now on every applied decision must keep within these bounds.
    fn bound(&mut self, max_total: usize, min_ready: usize) {
        self.bounds = Some((max_total, min_ready));
        self.max_seen_total = 0;
        self.min_seen_ready = usize::MAX;
    }

    fn set_template_image(&mut self, image: &str) {
        self.d.spec.template.spec.as_mut().unwrap().containers[0].image = Some(image.into());
        self.d.metadata.generation = Some(self.d.metadata.generation.unwrap() + 1);
    }

    fn set_replicas(&mut self, n: i32) {
        self.d.spec.replicas = Some(n);
        self.d.metadata.generation = Some(self.d.metadata.generation.unwrap() + 1);
    }

    fn rs_sizes(&self) -> Vec<(String, i32)> {
        self.rss
            .iter()
            .map(|r| (r.metadata.name.clone().unwrap(), spec_replicas(r)))
            .collect()
    }

    fn progressing(&self) -> DeploymentCondition {
        find_condition(self.d.status.as_ref().unwrap(), "Progressing")
            .unwrap()
            .clone()
    }

    fn messages(&self, reason: &str) -> Vec<String> {
        self.events
            .iter()
            .filter(|e| e.reason == reason)
            .map(|e| e.message.clone())
            .collect()
    }

    fn run_until_rolled_out(&mut self, max_steps: usize) -> Vec<String> {
        let mut seen = Vec::new();
        for _ in 0..max_steps {
            // What kubectl would print before the node makes the new pods ready, and after.
            self.settle();
            seen.push(rollout_status(&self.d).unwrap().0);
            self.node_readies_pods();
            self.sec += 1;
            self.settle();
            let (msg, done) = rollout_status(&self.d).unwrap();
            seen.push(msg);
            if done {
                return seen;
            }
        }
        panic!("rollout did not finish: {seen:?} {:?}", self.rs_sizes());
    }
}

fn pod_hashes(c: &Cluster) -> std::collections::BTreeSet<String> {
    c.pods
        .iter()
        .map(|p| p.metadata.labels.as_ref().unwrap()[POD_TEMPLATE_HASH].clone())
        .collect()
}

#[test]
fn first_sync_creates_hashed_replica_set_with_annotations_event_and_conditions() {
    let d = deployment(3, "nginx:1");
    let dec = sync(&d, &[], &[], t(0));
    let hash = compute_hash(&d.spec.template, None);
    let rs = dec
        .actions
        .iter()
        .find_map(|a| match a {
            Action::Create(Object::ReplicaSet(r)) => Some(r.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(
        rs.metadata.name.as_deref(),
        Some(format!("web-{hash}").as_str())
    );
    assert_eq!(rs.spec.replicas, Some(3));
    assert_eq!(
        rs.spec.selector.match_labels.as_ref().unwrap()[POD_TEMPLATE_HASH],
        hash
    );
    let tl = rs
        .spec
        .template
        .as_ref()
        .unwrap()
        .metadata
        .as_ref()
        .unwrap()
        .labels
        .as_ref()
        .unwrap();
    assert_eq!(
        (tl["app"].as_str(), tl[POD_TEMPLATE_HASH].as_str()),
        ("web", hash.as_str())
    );
    assert_eq!(
        rs.metadata.labels.as_ref().unwrap()[POD_TEMPLATE_HASH],
        hash
    );
    let a = rs.metadata.annotations.as_ref().unwrap();
    assert_eq!(a[REVISION], "1");
    assert_eq!(a[DESIRED_REPLICAS], "3");
    assert_eq!(a[MAX_REPLICAS], "4"); // 3 + ceil(25% of 3)
    let owner = controller_of(&rs.metadata).unwrap();
    assert_eq!(
        (owner.kind.as_str(), owner.uid.as_str()),
        ("Deployment", "d-uid")
    );
    assert_eq!(
        dec.events[0].message,
        format!("Scaled up replica set web-{hash} from 0 to 3")
    );
    assert_eq!(dec.events[0].reason, "ScalingReplicaSet");
    let st = dec
        .actions
        .iter()
        .find_map(|a| match a {
            Action::UpdateStatus(Object::Deployment(d)) => Some(d.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(st.metadata.annotations.as_ref().unwrap()[REVISION], "1");
    let status = st.status.unwrap();
    assert_eq!(status.observed_generation, Some(1));
    let p = find_condition(&status, "Progressing").unwrap();
    assert_eq!(p.reason.as_deref(), Some("NewReplicaSetCreated"));
    assert_eq!(
        p.message.as_deref(),
        Some(format!("Created new replica set \"web-{hash}\"").as_str())
    );
    let a = find_condition(&status, "Available").unwrap();
    assert_eq!(
        (
            a.status.as_deref(),
            a.reason.as_deref(),
            a.message.as_deref()
        ),
        (
            Some("False"),
            Some("MinimumReplicasUnavailable"),
            Some("Deployment does not have minimum availability.")
        )
    );
}

#[test]
fn pod_template_hash_is_stable_safe_encoded_and_changes_with_template_and_collisions() {
    let d = deployment(1, "nginx:1");
    let h = compute_hash(&d.spec.template, None);
    assert_eq!(h, compute_hash(&d.spec.template.clone(), None));
    assert!(!h.is_empty() && h.len() <= 10);
    assert!(h.bytes().all(|b| SAFE_ALPHABET.contains(&b)));
    assert_ne!(
        h,
        compute_hash(&deployment(1, "nginx:2").spec.template, None)
    );
    assert_ne!(h, compute_hash(&d.spec.template, Some(1)));
}

#[test]
fn rolling_update_keeps_availability_and_surge_within_bounds_to_completion() {
    // replicas 10, maxSurge 25% → 3 (rounded up), maxUnavailable 25% → 2 (rounded down).
    let mut c = Cluster::new(deployment(10, "nginx:1"));
    let first = c.run_until_rolled_out(10);
    assert!(first.last().unwrap().contains("successfully rolled out"));
    assert_eq!(c.pods.len(), 10);
    let v1 = pod_hashes(&c);

    c.bound(10 + 3, 10 - 2);
    c.set_template_image("nginx:2");
    assert_eq!(
        rollout_status(&c.d).unwrap().0,
        "Waiting for deployment spec update to be observed...\n"
    );
    let seen = c.run_until_rolled_out(40);
    // kubectl rollout status saw progress, then success.
    assert!(
        seen.iter()
            .any(|m| m.contains("new replicas have been updated")),
        "{seen:?}"
    );
    assert_eq!(
        seen.last().unwrap(),
        "deployment \"web\" successfully rolled out\n"
    );
    // The rollout used the room it had, and no more.
    assert_eq!(c.max_seen_total, 13);
    assert_eq!(c.min_seen_ready, 8);
    // Every pod is of the new template; the old ReplicaSet is kept at zero (history).
    let v2 = pod_hashes(&c);
    assert_eq!(v2.len(), 1);
    assert!(v1.is_disjoint(&v2));
    assert_eq!(c.pods.len(), 10);
    let sizes = c.rs_sizes();
    assert_eq!(sizes.len(), 2);
    assert!(sizes.iter().any(|(_, n)| *n == 0) && sizes.iter().any(|(_, n)| *n == 10));
    let st = c.d.status.clone().unwrap();
    assert_eq!(
        (
            st.replicas,
            st.updated_replicas,
            st.ready_replicas,
            st.available_replicas
        ),
        (Some(10), Some(10), Some(10), Some(10))
    );
    assert_eq!(st.unavailable_replicas, None);
    assert_eq!(st.terminating_replicas, Some(0));
    assert_eq!(c.d.metadata.annotations.as_ref().unwrap()[REVISION], "2");
    let p = c.progressing();
    assert_eq!(p.reason.as_deref(), Some("NewReplicaSetAvailable"));
    let new_name = &sizes.iter().find(|(_, n)| *n == 10).unwrap().0;
    assert_eq!(
        p.message.unwrap(),
        format!("ReplicaSet \"{new_name}\" has successfully progressed.")
    );
    let up = c.messages("ScalingReplicaSet");
    assert!(
        up.iter()
            .any(|m| m == &format!("Scaled up replica set {new_name} from 0 to 3")),
        "{up:?}"
    );
}

#[test]
fn rolling_update_with_zero_surge_never_exceeds_replicas() {
    let mut d = deployment(4, "nginx:1");
    let ru = d
        .spec
        .strategy
        .as_mut()
        .unwrap()
        .rolling_update
        .as_mut()
        .unwrap();
    ru.max_surge = Some(IntOrString::Int(0));
    ru.max_unavailable = Some(IntOrString::Int(1));
    let mut c = Cluster::new(d);
    c.run_until_rolled_out(10);
    c.bound(4, 3);
    c.set_template_image("nginx:2");
    c.run_until_rolled_out(40);
    assert_eq!(c.max_seen_total, 4);
    assert_eq!(pod_hashes(&c).len(), 1);
}

#[test]
fn recreate_scales_old_to_zero_waits_for_pods_then_creates_new() {
    let mut d = deployment(2, "nginx:1");
    d.spec.strategy = Some(k8s_openapi::api::apps::v1::DeploymentStrategy {
        type_: Some("Recreate".into()),
        rolling_update: None,
    });
    let mut c = Cluster::new(d);
    c.run_until_rolled_out(10);
    c.set_template_image("nginx:2");
    // The first pass only scales the old ReplicaSet down.
    let dec = sync(&c.d, &c.rss, &c.pods, c.now());
    assert!(!dec.actions.iter().any(|a| matches!(a, Action::Create(_))));
    let old_name = c.rss[0].metadata.name.clone().unwrap();
    assert!(dec
        .events
        .iter()
        .any(|e| e.message == format!("Scaled down replica set {old_name} from 2 to 0")));
    c.apply(dec);
    // While its pods still run, no new ReplicaSet; a look again soon.
    let dec = sync(&c.d, &c.rss, &c.pods, c.now());
    assert!(!dec.actions.iter().any(|a| matches!(a, Action::Create(_))));
    assert_eq!(dec.requeue_after, Some(Duration::from_secs(1)));
    c.run_until_rolled_out(10);
    assert_eq!(c.pods.len(), 2);
    assert_eq!(pod_hashes(&c).len(), 1);
}

#[test]
fn scaling_mid_rollout_is_proportional() {
    let mut c = Cluster::new(deployment(10, "nginx:1"));
    c.run_until_rolled_out(10);
    c.set_template_image("nginx:2");
    // One pass: the new ReplicaSet gets the surge (3), nothing is ready yet.
    c.settle();
    let sizes = c.rs_sizes();
    assert_eq!(sizes.iter().map(|s| s.1).collect::<Vec<_>>(), vec![8, 5]);
    // Scale to 20 in the middle: max 20+5=25 split in proportion to 8:5 of 13.
    c.set_replicas(20);
    let dec = sync(&c.d, &c.rss, &c.pods, c.now());
    c.apply(dec);
    let sizes: Vec<i32> = c.rs_sizes().iter().map(|s| s.1).collect();
    assert_eq!(sizes.iter().sum::<i32>(), 25);
    assert_eq!(sizes, vec![15, 10]);
    for r in &c.rss {
        let a = r.metadata.annotations.as_ref().unwrap();
        assert_eq!(
            (a[DESIRED_REPLICAS].as_str(), a[MAX_REPLICAS].as_str()),
            ("20", "25")
        );
    }
    c.run_until_rolled_out(60);
    assert_eq!(c.pods.len(), 20);
}

#[test]
fn paused_deployment_scales_but_does_not_roll_out() {
    let mut c = Cluster::new(deployment(2, "nginx:1"));
    c.run_until_rolled_out(10);
    c.d.spec.paused = Some(true);
    c.set_template_image("nginx:2");
    c.step();
    assert_eq!(c.rss.len(), 1, "no new ReplicaSet while paused");
    let p = c.progressing();
    assert_eq!(
        (
            p.status.as_deref(),
            p.reason.as_deref(),
            p.message.as_deref()
        ),
        (
            Some("Unknown"),
            Some("DeploymentPaused"),
            Some("Deployment is paused")
        )
    );
    c.set_replicas(3);
    c.step();
    assert_eq!(c.pods.len(), 3);
    c.d.spec.paused = Some(false);
    c.d.metadata.generation = Some(c.d.metadata.generation.unwrap() + 1);
    c.run_until_rolled_out(30);
    assert_eq!(c.rss.len(), 2);
    assert_eq!(c.pods.len(), 3);
}

#[test]
fn old_replica_sets_beyond_revision_history_limit_are_deleted() {
    let mut d = deployment(1, "img:0");
    d.spec.revision_history_limit = Some(1);
    let mut c = Cluster::new(d);
    c.run_until_rolled_out(10);
    for i in 1..4 {
        c.set_template_image(&format!("img:{i}"));
        c.run_until_rolled_out(20);
        c.step();
    }
    // The current one plus one old revision.
    assert_eq!(c.rss.len(), 2, "{:?}", c.rs_sizes());
    let revisions: Vec<i64> = c.rss.iter().map(revision_of).collect();
    assert!(
        revisions.contains(&4) && revisions.contains(&3),
        "{revisions:?}"
    );
    // Upstream records no event for these deletions (only the pods' SuccessfulDelete).
    assert!(!c
        .events
        .iter()
        .any(|e| e.kind == Kind::Deployment && e.reason == "SuccessfulDelete"));
}

#[test]
fn rollback_to_an_old_template_reuses_its_replica_set_with_a_new_revision() {
    let mut c = Cluster::new(deployment(1, "img:1"));
    c.run_until_rolled_out(10);
    let first = c.rss[0].metadata.name.clone();
    c.set_template_image("img:2");
    c.run_until_rolled_out(20);
    c.set_template_image("img:1");
    c.run_until_rolled_out(20);
    assert_eq!(c.rss.len(), 2);
    let rs = c.rss.iter().find(|r| r.metadata.name == first).unwrap();
    let a = rs.metadata.annotations.as_ref().unwrap();
    assert_eq!(
        (a[REVISION].as_str(), a[REVISION_HISTORY].as_str()),
        ("3", "1")
    );
    assert_eq!(spec_replicas(rs), 1);
}

#[test]
fn progress_deadline_exceeded_when_pods_never_become_ready() {
    let mut d = deployment(1, "nginx:1");
    d.spec.progress_deadline_seconds = Some(30);
    let mut c = Cluster::new(d);
    c.settle();
    let dec = sync(&c.d, &c.rss, &c.pods, c.now());
    assert!(dec
        .requeue_after
        .is_some_and(|r| r <= Duration::from_secs(30)));
    c.sec = 31;
    c.settle();
    let p = c.progressing();
    assert_eq!(
        (p.status.as_deref(), p.reason.as_deref()),
        (Some("False"), Some("ProgressDeadlineExceeded"))
    );
    assert!(p.message.unwrap().ends_with("has timed out progressing."));
    assert_eq!(
        rollout_status(&c.d).unwrap_err(),
        "deployment \"web\" exceeded its progress deadline"
    );
}

#[test]
fn orphan_replica_set_matching_the_selector_is_adopted() {
    let d = deployment(1, "nginx:1");
    let hash = compute_hash(&d.spec.template, None);
    let mut orphan: ReplicaSet = serde_json::from_value(serde_json::json!({
        "metadata": {"name": format!("web-{hash}"), "namespace": "default", "uid": "o",
                     "labels": {"app": "web", POD_TEMPLATE_HASH: hash}},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}}},
    }))
    .unwrap();
    let mut template = d.spec.template.clone();
    template
        .metadata
        .as_mut()
        .unwrap()
        .labels
        .as_mut()
        .unwrap()
        .insert(POD_TEMPLATE_HASH.into(), hash);
    orphan.spec.template = Some(template);
    let dec = sync(&d, &[orphan], &[], t(0));
    let adopted = dec
        .actions
        .iter()
        .find_map(|a| match a {
            Action::Update(Object::ReplicaSet(r)) => Some(r.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(controller_of(&adopted.metadata).unwrap().uid, "d-uid");
    assert!(!dec.actions.iter().any(|a| matches!(a, Action::Create(_))));
}

#[test]
fn a_name_taken_by_another_template_bumps_collision_count() {
    let d = deployment(1, "nginx:1");
    let hash = compute_hash(&d.spec.template, None);
    let other: ReplicaSet = serde_json::from_value(serde_json::json!({
        "metadata": {"name": format!("web-{hash}"), "namespace": "default", "uid": "x"},
        "spec": {"replicas": 0, "selector": {"matchLabels": {"other": "yes"}}},
    }))
    .unwrap();
    let dec = sync(&d, &[other], &[], t(0));
    assert!(!dec.actions.iter().any(|a| matches!(a, Action::Create(_))));
    let st = dec
        .actions
        .iter()
        .find_map(|a| match a {
            Action::UpdateStatus(Object::Deployment(d)) => d.status.clone(),
            _ => None,
        })
        .unwrap();
    assert_eq!(st.collision_count, Some(1));
    let mut d2 = d.clone();
    d2.status = Some(st);
    assert_ne!(compute_hash(&d2.spec.template, Some(1)), hash);
}

#[test]
fn settled_deployment_writes_nothing() {
    let mut c = Cluster::new(deployment(2, "nginx:1"));
    c.run_until_rolled_out(10);
    c.step();
    let dec = sync(&c.d, &c.rss, &c.pods, c.now());
    assert!(dec.actions.is_empty(), "{:?}", dec.actions);
    assert_eq!(dec.requeue_after, None);
}

#[test]
fn fenceposts_round_surge_up_and_unavailable_down() {
    let d = deployment(10, "x");
    assert_eq!((max_surge(&d), max_unavailable(&d)), (3, 2));
    let mut d = deployment(1, "x");
    assert_eq!((max_surge(&d), max_unavailable(&d)), (1, 0));
    let ru = d
        .spec
        .strategy
        .as_mut()
        .unwrap()
        .rolling_update
        .as_mut()
        .unwrap();
    ru.max_surge = Some(IntOrString::Int(0));
    ru.max_unavailable = Some(IntOrString::String("0%".into()));
    // Both zero: one may be unavailable.
    assert_eq!((max_surge(&d), max_unavailable(&d)), (0, 1));
}

#[test]
fn absurd_replica_counts_and_percentages_do_not_overflow() {
    let mut d = deployment(i32::MAX, "nginx:1");
    let ru = d
        .spec
        .strategy
        .as_mut()
        .unwrap()
        .rolling_update
        .as_mut()
        .unwrap();
    ru.max_surge = Some(IntOrString::String("99999999999999%".into()));
    ru.max_unavailable = Some(IntOrString::Int(i32::MAX));
    let mut c = Cluster::new(d.clone());
    // Two ReplicaSets claiming huge sizes and availability (a hostile store).
    let first = sync(&d, &[], &[], t(0));
    c.apply(first);
    let mut huge = c.rss[0].clone();
    huge.spec.replicas = Some(i32::MAX);
    huge.status = Some(k8s_openapi::api::apps::v1::ReplicaSetStatus {
        replicas: i32::MAX,
        available_replicas: Some(i32::MAX),
        ready_replicas: Some(i32::MAX),
        ..Default::default()
    });
    let mut other = huge.clone();
    other.metadata.name = Some("web-other".into());
    other.metadata.uid = Some("other".into());
    other
        .spec
        .template
        .as_mut()
        .unwrap()
        .spec
        .as_mut()
        .unwrap()
        .containers[0]
        .image = Some("nginx:0".into());
    for paused in [false, true] {
        d.spec.paused = Some(paused);
        let dec = sync(&d, &[huge.clone(), other.clone()], &[], t(1));
        assert!(dec.actions.len() <= 4);
    }
}

#[test]
fn recreate_waits_for_terminating_old_pods_to_be_gone() {
    let mut d = deployment(1, "nginx:1");
    d.spec.strategy = Some(k8s_openapi::api::apps::v1::DeploymentStrategy {
        type_: Some("Recreate".into()),
        rolling_update: None,
    });
    let mut c = Cluster::new(d);
    c.run_until_rolled_out(10);
    c.set_template_image("nginx:2");
    // Scale the old ReplicaSet down, but keep its pod as a terminating one (grace period).
    let dec = sync(&c.d, &c.rss, &c.pods, c.now());
    c.apply(dec);
    let mut terminating = c.pods[0].clone();
    terminating.metadata.deletion_timestamp = Some(wire_time(c.now()));
    let rs_dec = crate::replicaset::sync(&c.rss[0], &[terminating.clone()], c.now());
    c.apply(rs_dec);
    c.pods = vec![terminating];
    assert_eq!(c.rss[0].status.as_ref().unwrap().replicas, 0);
    let dec = sync(&c.d, &c.rss, &c.pods, c.now());
    assert!(!dec.actions.iter().any(|a| matches!(a, Action::Create(_))));
    // Gone: the new ReplicaSet comes.
    c.pods.clear();
    let dec = sync(&c.d, &c.rss, &c.pods, c.now());
    assert!(dec
        .actions
        .iter()
        .any(|a| matches!(a, Action::Create(Object::ReplicaSet(_)))));
}
