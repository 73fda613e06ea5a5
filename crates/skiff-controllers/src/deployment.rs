//! The Deployment controller (pkg/controller/deployment/{deployment_controller,sync,rolling,
//! recreate,progress}.go and util/deployment_util.go), as pure decision code.
//!
//! [`sync`] takes one Deployment, the ReplicaSets and Pods of its namespace and the time, and
//! decides, as one pass of upstream's `syncDeployment` does:
//! - which ReplicaSets it owns (adoption and release by selector, as for pods);
//! - the new ReplicaSet for the current template: found by comparing templates without the
//!   `pod-template-hash` label, or created as `<deployment>-<hash>` with the hash label on its
//!   selector and template and the `deployment.kubernetes.io/{revision,desired-replicas,
//!   max-replicas}` annotations;
//! - scaling: RollingUpdate (scale the new ReplicaSet up within `maxSurge`, old ones down as
//!   availability allows within `maxUnavailable`), Recreate (old ones to zero, wait for their
//!   pods to end, then the new one up), proportional scaling when `spec.replicas` changes in the
//!   middle of a rollout, nothing but scaling while `paused`;
//! - cleanup of old ReplicaSets beyond `revisionHistoryLimit`;
//! - the status `kubectl rollout status` reads (observedGeneration, replicas, updatedReplicas,
//!   readyReplicas, availableReplicas, unavailableReplicas) and the Available and Progressing
//!   conditions with upstream's reasons and messages; a requeue at the progress deadline.
//!
//! Every write to one object is merged into one action (updates carry the resourceVersion
//! read, so two writes of one object in one decision would conflict).

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet, ReplicaSetSpec,
};
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::replicaset::{
    adopt, claim, controller_of, controller_ref, event, fnv32a, nz, release, wire_time, Claim,
    FNV32_OFFSET,
};
use crate::{Action, Decision, Kind, Now, Object, Propagation};

/// The label (and selector key) a Deployment adds to its ReplicaSets and their pods.
pub const POD_TEMPLATE_HASH: &str = "pod-template-hash";
pub const REVISION: &str = "deployment.kubernetes.io/revision";
const REVISION_HISTORY: &str = "deployment.kubernetes.io/revision-history";
pub const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
pub const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";
const ROLLBACK_TO: &str = "deprecated.deployment.rollback.to";

/// `rand.SafeEncodeString`'s alphabet.
const SAFE_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// Decides what the Deployment controller does for `d` at `now`. `replica_sets` and `pods`
/// are those of the Deployment's namespace.
pub fn sync(d: &Deployment, replica_sets: &[ReplicaSet], pods: &[Pod], now: Now) -> Decision {
    let mut s = State::new(d, now);
    if selector_is_empty(&d.spec.selector) {
        s.decision.events.push(event(
            Kind::Deployment,
            &d.metadata,
            "Warning",
            "SelectingAll",
            "This deployment is selecting all pods. A non-empty selector is required.".into(),
        ));
        return s.decision;
    }
    s.claim(replica_sets);
    if d.metadata.deletion_timestamp.is_some() {
        // syncStatusOnly
        s.sync_revision(false);
        s.sync_deployment_status();
        return s.finish();
    }
    s.check_paused_conditions();
    if d.spec.paused == Some(true) || s.is_scaling_event() {
        s.sync_scale_only();
    } else if strategy_type(d) == "Recreate" {
        s.rollout_recreate(pods);
    } else {
        s.rollout_rolling();
    }
    s.finish()
}

/// One ReplicaSet as this pass sees it: `create` for the new one, `dirty` when changed.
struct Rs {
    obj: ReplicaSet,
    create: bool,
    dirty: bool,
    delete: bool,
}

struct State {
    original: Deployment,
    /// The Deployment as this pass changes it (annotations and status).
    d: Deployment,
    now: Now,
    rs: Vec<Rs>,
    decision: Decision,
    /// A hash collision was found: only the status (collisionCount) is written.
    collided: bool,
    /// Names of every ReplicaSet of the namespace (owned or not), for collisions.
    taken: std::collections::BTreeSet<String>,
}

impl State {
    fn new(d: &Deployment, now: Now) -> Self {
        State {
            original: d.clone(),
            d: d.clone(),
            now,
            rs: Vec::new(),
            decision: Decision::default(),
            collided: false,
            taken: std::collections::BTreeSet::new(),
        }
    }

    fn replicas(&self) -> i32 {
        want_of(&self.d)
    }

    fn status(&mut self) -> &mut DeploymentStatus {
        self.d.status.get_or_insert_with(DeploymentStatus::default)
    }

    /// `getReplicaSetsForDeployment`: ClaimReplicaSets.
    fn claim(&mut self, replica_sets: &[ReplicaSet]) {
        let uid = self.d.metadata.uid.clone().unwrap_or_default();
        let deleting = self.d.metadata.deletion_timestamp.is_some();
        let ns = self.d.metadata.namespace.clone();
        self.taken = replica_sets
            .iter()
            .filter_map(|r| r.metadata.name.clone())
            .collect();
        for rs in replica_sets
            .iter()
            .filter(|r| r.metadata.namespace == ns || ns.is_none())
        {
            let mut rs = Rs {
                obj: rs.clone(),
                create: false,
                dirty: false,
                delete: false,
            };
            match claim(&uid, deleting, &self.d.spec.selector, &rs.obj.metadata) {
                Claim::Owned => self.rs.push(rs),
                Claim::Adopt => {
                    let owner = controller_ref("apps/v1", "Deployment", &self.d.metadata);
                    adopt(&mut rs.obj.metadata, owner);
                    rs.dirty = true;
                    self.rs.push(rs);
                }
                Claim::Release => {
                    release(&mut rs.obj.metadata, &uid);
                    self.decision
                        .actions
                        .push(Action::Update(Object::ReplicaSet(Box::new(rs.obj))));
                }
                Claim::Ignore => {}
            }
        }
        // Oldest first (`ReplicaSetsByCreationTimestamp`, ties by name).
        self.rs.sort_by(|a, b| {
            let key = |r: &Rs| {
                (
                    r.obj.metadata.creation_timestamp.clone(),
                    r.obj.metadata.name.clone(),
                )
            };
            key(a).cmp(&key(b))
        });
    }

    /// `FindNewReplicaSet`: the oldest ReplicaSet whose template equals the Deployment's
    /// without the hash label.
    fn find_new(&self) -> Option<usize> {
        let want = template_without_hash(&self.d.spec.template);
        self.rs.iter().position(|r| {
            !r.delete
                && r.obj
                    .spec
                    .template
                    .as_ref()
                    .is_some_and(|t| template_without_hash(t) == want)
        })
    }

    fn old_indices(&self, new: Option<usize>) -> Vec<usize> {
        (0..self.rs.len())
            .filter(|i| Some(*i) != new && !self.rs[*i].delete)
            .collect()
    }

    /// `getAllReplicaSetsAndSyncRevision`/`getNewReplicaSet`: finds (and, with `create`,
    /// creates) the new ReplicaSet and keeps the revision annotations in step.
    fn sync_revision(&mut self, create: bool) -> Option<usize> {
        let existing = self.find_new();
        let old = self.old_indices(existing);
        let max_old = old
            .iter()
            .map(|i| revision_of(&self.rs[*i].obj))
            .max()
            .unwrap_or(0);
        let new_revision = (max_old + 1).to_string();
        if let Some(i) = existing {
            let d = self.d.clone();
            let rs = &mut self.rs[i];
            let mut changed = set_new_rs_annotations(&d, &mut rs.obj, &new_revision, true);
            if rs.obj.spec.min_ready_seconds != d.spec.min_ready_seconds {
                rs.obj.spec.min_ready_seconds = d.spec.min_ready_seconds;
                changed = true;
            }
            if changed {
                rs.dirty = true;
            }
            let revision = annotation(&rs.obj.metadata, REVISION).unwrap_or_default();
            let name = rs.obj.metadata.name.clone().unwrap_or_default();
            self.set_deployment_revision(&revision);
            if has_progress_deadline(&self.d) && self.condition("Progressing").is_none() {
                let msg = format!("Found new replica set {}", go_q(&name));
                self.set_condition(new_condition(
                    "Progressing",
                    "True",
                    "FoundNewReplicaSet",
                    msg,
                    self.now,
                ));
            }
            return Some(i);
        }
        if !create {
            return None;
        }

        // Create the new ReplicaSet.
        let collision = self.d.status.as_ref().and_then(|s| s.collision_count);
        let hash = compute_hash(&self.d.spec.template, collision);
        let d_name = self.d.metadata.name.clone().unwrap_or_default();
        let name = format!("{d_name}-{hash}");
        if self.taken.contains(&name) {
            // A ReplicaSet of that name exists with another template: a hash collision.
            // Bump collisionCount so the next pass computes another name.
            let st = self.status();
            st.collision_count = Some(st.collision_count.unwrap_or(0).saturating_add(1));
            self.collided = true;
            return None;
        }
        let mut template = self.d.spec.template.clone();
        let tmeta = template.metadata.get_or_insert_with(ObjectMeta::default);
        tmeta
            .labels
            .get_or_insert_with(BTreeMap::new)
            .insert(POD_TEMPLATE_HASH.into(), hash.clone());
        let labels = tmeta.labels.clone();
        let mut selector = self.d.spec.selector.clone();
        selector
            .match_labels
            .get_or_insert_with(BTreeMap::new)
            .insert(POD_TEMPLATE_HASH.into(), hash);
        let mut new_rs = ReplicaSet {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: self.d.metadata.namespace.clone(),
                labels,
                owner_references: Some(vec![controller_ref(
                    "apps/v1",
                    "Deployment",
                    &self.d.metadata,
                )]),
                ..ObjectMeta::default()
            },
            spec: ReplicaSetSpec {
                replicas: Some(0),
                min_ready_seconds: self.d.spec.min_ready_seconds,
                selector,
                template: Some(template),
            },
            status: None,
        };
        let all: Vec<&ReplicaSet> = old
            .iter()
            .map(|i| &self.rs[*i].obj)
            .chain(std::iter::once(&new_rs))
            .collect();
        let new_replicas = new_rs_new_replicas(&self.d, &all, &new_rs);
        new_rs.spec.replicas = Some(new_replicas);
        set_new_rs_annotations(&self.d, &mut new_rs, &new_revision, false);
        if new_replicas > 0 {
            self.decision.events.push(event(
                Kind::Deployment,
                &self.d.metadata,
                "Normal",
                "ScalingReplicaSet",
                format!("Scaled up replica set {name} from 0 to {new_replicas}"),
            ));
        }
        self.rs.push(Rs {
            obj: new_rs,
            create: true,
            dirty: true,
            delete: false,
        });
        self.set_deployment_revision(&new_revision);
        if has_progress_deadline(&self.d) {
            let msg = format!("Created new replica set {}", go_q(&name));
            self.set_condition(new_condition(
                "Progressing",
                "True",
                "NewReplicaSetCreated",
                msg,
                self.now,
            ));
        }
        Some(self.rs.len() - 1)
    }

    fn set_deployment_revision(&mut self, revision: &str) {
        if annotation(&self.d.metadata, REVISION).as_deref() != Some(revision) {
            self.d
                .metadata
                .annotations
                .get_or_insert_with(BTreeMap::new)
                .insert(REVISION.into(), revision.into());
        }
    }

    fn condition(&self, type_: &str) -> Option<&DeploymentCondition> {
        self.d
            .status
            .as_ref()?
            .conditions
            .as_ref()?
            .iter()
            .find(|c| c.type_.as_deref() == Some(type_))
    }

    /// `SetDeploymentCondition`.
    fn set_condition(&mut self, cond: DeploymentCondition) {
        set_condition(self.status(), cond);
    }

    /// `checkPausedConditions`.
    fn check_paused_conditions(&mut self) {
        if !has_progress_deadline(&self.d) {
            return;
        }
        let reason = self
            .condition("Progressing")
            .and_then(|c| c.reason.clone())
            .unwrap_or_default();
        let paused = self.d.spec.paused == Some(true);
        if paused && reason != "DeploymentPaused" {
            self.set_condition(new_condition(
                "Progressing",
                "Unknown",
                "DeploymentPaused",
                "Deployment is paused".into(),
                self.now,
            ));
        } else if !paused && reason == "DeploymentPaused" {
            self.set_condition(new_condition(
                "Progressing",
                "Unknown",
                "DeploymentResumed",
                "Deployment is resumed".into(),
                self.now,
            ));
        }
    }

    /// `isScalingEvent`: an active ReplicaSet's desired-replicas annotation differs from
    /// `spec.replicas`.
    fn is_scaling_event(&mut self) -> bool {
        let new = self.sync_revision(false);
        let mut all = self.old_indices(new);
        all.extend(new);
        let want = self.replicas();
        all.into_iter()
            .filter(|i| spec_replicas(&self.rs[*i].obj) > 0)
            .any(|i| {
                annotation(&self.rs[i].obj.metadata, DESIRED_REPLICAS)
                    .and_then(|v| v.parse::<i32>().ok())
                    .is_some_and(|v| v != want)
            })
    }

    /// `sync`: scaling only (paused, or `spec.replicas` changed), then the status.
    fn sync_scale_only(&mut self) {
        let new = self.sync_revision(false);
        self.scale(new);
        if self.d.spec.paused == Some(true) {
            self.cleanup(new);
        }
        self.sync_deployment_status();
    }

    /// `scale`: proportional scaling across the active ReplicaSets.
    fn scale(&mut self, new: Option<usize>) {
        let want = self.replicas();
        let old = self.old_indices(new);
        if let Some(i) = self.active_or_latest(new, &old) {
            if spec_replicas(&self.rs[i].obj) != want {
                self.scale_rs(i, want);
            }
            return;
        }
        if let Some(n) = new.filter(|n| is_saturated(&self.d, &self.rs[*n].obj)) {
            let _ = n;
            for i in old {
                if spec_replicas(&self.rs[i].obj) > 0 {
                    self.scale_rs(i, 0);
                }
            }
            return;
        }
        if strategy_type(&self.d) != "RollingUpdate" {
            return;
        }
        let mut active: Vec<usize> = old
            .into_iter()
            .chain(new)
            .filter(|i| spec_replicas(&self.rs[*i].obj) > 0)
            .collect();
        let total: i32 = active
            .iter()
            .map(|i| spec_replicas(&self.rs[*i].obj))
            .fold(0, i32::saturating_add);
        let allowed = if want > 0 {
            want + max_surge(&self.d)
        } else {
            0
        };
        let to_add = allowed - total;
        let created = |r: &Rs| r.obj.metadata.creation_timestamp.clone();
        // Larger first; ties: newer first when scaling up, older first when scaling down.
        active.sort_by(|a, b| {
            let (ra, rb) = (&self.rs[*a], &self.rs[*b]);
            let by_size = spec_replicas(&rb.obj).cmp(&spec_replicas(&ra.obj));
            by_size.then_with(|| {
                if to_add > 0 {
                    created(rb).cmp(&created(ra))
                } else {
                    created(ra).cmp(&created(rb))
                }
            })
        });
        let mut added = 0;
        let mut sizes = Vec::with_capacity(active.len());
        for i in &active {
            let rs = &self.rs[*i].obj;
            if to_add != 0 {
                let p = proportion(rs, &self.d, to_add, added);
                sizes.push(spec_replicas(rs) + p);
                added += p;
            } else {
                sizes.push(spec_replicas(rs));
            }
        }
        for (k, i) in active.into_iter().enumerate() {
            let mut size = sizes[k];
            if k == 0 && to_add != 0 {
                size = size.saturating_add(to_add - added).max(0);
            }
            self.scale_rs(i, size);
        }
    }

    /// `FindActiveOrLatest`.
    fn active_or_latest(&self, new: Option<usize>, old: &[usize]) -> Option<usize> {
        if old.is_empty() {
            return new;
        }
        let active: Vec<usize> = old
            .iter()
            .copied()
            .chain(new)
            .filter(|i| spec_replicas(&self.rs[*i].obj) > 0)
            .collect();
        match active.len() {
            // The newest: the new one, else the most recently created old one.
            0 => new.or_else(|| old.last().copied()),
            1 => Some(active[0]),
            _ => None,
        }
    }

    /// `scaleReplicaSet`: size and the replicas annotations; an event when the size changes.
    fn scale_rs(&mut self, i: usize, new_scale: i32) -> bool {
        let desired = self.replicas();
        let max = desired + max_surge(&self.d);
        let d_meta = self.d.metadata.clone();
        let rs = &mut self.rs[i];
        let old_scale = spec_replicas(&rs.obj);
        let size_changed = old_scale != new_scale;
        let annotations_changed = set_replicas_annotations(&mut rs.obj, desired, max);
        if size_changed || annotations_changed {
            rs.obj.spec.replicas = Some(new_scale);
            rs.dirty = true;
        }
        if size_changed {
            let op = if old_scale < new_scale { "up" } else { "down" };
            let name = rs.obj.metadata.name.clone().unwrap_or_default();
            self.decision.events.push(event(
                Kind::Deployment,
                &d_meta,
                "Normal",
                "ScalingReplicaSet",
                format!("Scaled {op} replica set {name} from {old_scale} to {new_scale}"),
            ));
        }
        size_changed
    }

    /// `rolloutRolling`.
    fn rollout_rolling(&mut self) {
        let new = self.sync_revision(true);
        if self.collided {
            return;
        }
        if self.reconcile_new(new) {
            self.sync_rollout_status(new);
            return;
        }
        if self.reconcile_old(new) {
            self.sync_rollout_status(new);
            return;
        }
        let status = self.original.status.clone().unwrap_or_default();
        if deployment_complete(&self.d, &status) {
            self.cleanup(new);
        }
        self.sync_rollout_status(new);
    }

    /// `reconcileNewReplicaSet`.
    fn reconcile_new(&mut self, new: Option<usize>) -> bool {
        let Some(n) = new else { return false };
        let want = self.replicas();
        let have = spec_replicas(&self.rs[n].obj);
        if have == want {
            return false;
        }
        if have > want {
            return self.scale_rs(n, want);
        }
        let all: Vec<&ReplicaSet> = self.live().map(|r| &r.obj).collect();
        let count = new_rs_new_replicas(&self.d, &all, &self.rs[n].obj);
        self.scale_rs(n, count)
    }

    fn live(&self) -> impl Iterator<Item = &Rs> {
        self.rs.iter().filter(|r| !r.delete)
    }

    /// `reconcileOldReplicaSets` (with `cleanupUnhealthyReplicas` and
    /// `scaleDownOldReplicaSetsForRollingUpdate`).
    fn reconcile_old(&mut self, new: Option<usize>) -> bool {
        let old: Vec<usize> = self
            .old_indices(new)
            .into_iter()
            .filter(|i| spec_replicas(&self.rs[*i].obj) > 0)
            .collect();
        let old_pods: i32 = old
            .iter()
            .map(|i| spec_replicas(&self.rs[*i].obj))
            .fold(0, i32::saturating_add);
        if old_pods == 0 {
            return false;
        }
        let all_pods: i32 = self
            .live()
            .map(|r| spec_replicas(&r.obj))
            .fold(0, i32::saturating_add);
        let min_available = self.replicas() - max_unavailable(&self.d);
        let new_unavailable = new.map_or(0, |n| {
            let rs = &self.rs[n].obj;
            spec_replicas(rs) - available(rs)
        });
        let max_scaled_down = all_pods
            .saturating_sub(min_available)
            .saturating_sub(new_unavailable);
        if max_scaled_down <= 0 {
            return false;
        }
        // Old ReplicaSets' unhealthy replicas first, oldest first.
        let mut cleaned = 0;
        for &i in &old {
            if cleaned >= max_scaled_down {
                break;
            }
            let rs = &self.rs[i].obj;
            let (replicas, avail) = (spec_replicas(rs), available(rs));
            if replicas == 0 || replicas == avail {
                continue;
            }
            let n = (max_scaled_down - cleaned).min(replicas - avail);
            self.scale_rs(i, replicas - n);
            cleaned += n;
        }
        // Then healthy ones, as long as availability stays at minAvailable.
        let available_pods: i32 = self
            .live()
            .map(|r| available(&r.obj))
            .fold(0, i32::saturating_add);
        let mut scaled = 0;
        if available_pods > min_available {
            let total = available_pods - min_available;
            for &i in &old {
                if scaled >= total {
                    break;
                }
                let replicas = spec_replicas(&self.rs[i].obj);
                if replicas == 0 {
                    continue;
                }
                let n = replicas.min(total - scaled);
                self.scale_rs(i, replicas - n);
                scaled += n;
            }
        }
        cleaned + scaled > 0
    }

    /// `rolloutRecreate`.
    fn rollout_recreate(&mut self, pods: &[Pod]) {
        let mut new = self.sync_revision(false);
        let old: Vec<usize> = self.old_indices(new);
        let mut scaled_down = false;
        for &i in &old {
            if spec_replicas(&self.rs[i].obj) > 0 {
                scaled_down |= self.scale_rs(i, 0);
            }
        }
        if scaled_down {
            self.sync_rollout_status(new);
            return;
        }
        if self.old_pods_running(new, &old, pods) {
            self.sync_rollout_status(new);
            // Upstream wakes on the last old pod's deletion (its pod handler); look again
            // soon in case the caller does not resync Deployments on pod events.
            let soon = Duration::from_secs(1);
            self.decision.requeue_after =
                Some(self.decision.requeue_after.map_or(soon, |r| r.min(soon)));
            return;
        }
        if new.is_none() {
            new = self.sync_revision(true);
            if self.collided {
                return;
            }
        }
        if let Some(n) = new {
            let want = self.replicas();
            if spec_replicas(&self.rs[n].obj) != want {
                self.scale_rs(n, want);
            }
        }
        let status = self.original.status.clone().unwrap_or_default();
        if deployment_complete(&self.d, &status) {
            self.cleanup(new);
        }
        self.sync_rollout_status(new);
    }

    /// `oldPodsRunning`: an old ReplicaSet still reports pods, or one of its pods is not
    /// terminal yet (terminating pods count: Recreate waits for them to end).
    fn old_pods_running(&self, new: Option<usize>, old: &[usize], pods: &[Pod]) -> bool {
        if old.iter().any(|i| {
            self.rs[*i]
                .obj
                .status
                .as_ref()
                .is_some_and(|s| s.replicas > 0)
        }) {
            return true;
        }
        let new_uid = new.and_then(|n| self.rs[n].obj.metadata.uid.clone());
        let old_uids: Vec<String> = old
            .iter()
            .filter_map(|i| self.rs[*i].obj.metadata.uid.clone())
            .collect();
        pods.iter().any(|p| {
            let Some(owner) = controller_of(&p.metadata) else {
                return false;
            };
            if Some(&owner.uid) == new_uid.as_ref() || !old_uids.contains(&owner.uid) {
                return false;
            }
            let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
            !matches!(phase, Some("Succeeded" | "Failed"))
        })
    }

    /// `cleanupDeployment`: delete the oldest revisions beyond `revisionHistoryLimit`, only
    /// those scaled to zero and settled.
    fn cleanup(&mut self, new: Option<usize>) {
        let Some(limit) = self.d.spec.revision_history_limit else {
            return;
        };
        let mut cleanable: Vec<usize> = self
            .old_indices(new)
            .into_iter()
            .filter(|i| self.rs[*i].obj.metadata.deletion_timestamp.is_none())
            .collect();
        let diff = i64::try_from(cleanable.len()).unwrap_or(i64::MAX) - i64::from(limit);
        if diff <= 0 {
            return;
        }
        cleanable.sort_by(|a, b| {
            let key = |i: usize| {
                let r = &self.rs[i].obj;
                (revision_of(r), r.metadata.creation_timestamp.clone())
            };
            key(*a).cmp(&key(*b))
        });
        for &i in cleanable
            .iter()
            .take(usize::try_from(diff).unwrap_or(usize::MAX))
        {
            let rs = &self.rs[i].obj;
            let st = rs.status.clone().unwrap_or_default();
            let settled =
                rs.metadata.generation.unwrap_or(0) <= st.observed_generation.unwrap_or(0);
            if st.replicas != 0
                || spec_replicas(rs) != 0
                || !settled
                || rs.metadata.deletion_timestamp.is_some()
            {
                continue;
            }
            self.rs[i].delete = true;
        }
    }

    /// `calculateStatus`.
    fn calculate_status(&self, new: Option<usize>) -> DeploymentStatus {
        let live: Vec<&ReplicaSet> = self.live().map(|r| &r.obj).collect();
        let avail: i32 = live
            .iter()
            .map(|r| available(r))
            .fold(0, i32::saturating_add);
        let total: i32 = live
            .iter()
            .map(|r| spec_replicas(r))
            .fold(0, i32::saturating_add);
        let actual: i32 = live
            .iter()
            .map(|r| actual_replicas(r))
            .fold(0, i32::saturating_add);
        let ready: i32 = live
            .iter()
            .map(|r| {
                r.status
                    .as_ref()
                    .and_then(|s| s.ready_replicas)
                    .unwrap_or(0)
            })
            .fold(0, i32::saturating_add);
        let updated = new.map_or(0, |n| actual_replicas(&self.rs[n].obj));
        let old = self.d.status.clone().unwrap_or_default();
        let mut status = DeploymentStatus {
            observed_generation: self.d.metadata.generation.filter(|g| *g != 0),
            replicas: nz(actual),
            updated_replicas: nz(updated),
            ready_replicas: nz(ready),
            available_replicas: nz(avail),
            unavailable_replicas: nz((total - avail).max(0)),
            collision_count: old.collision_count,
            conditions: old.conditions.clone(),
            terminating_replicas: terminating_replicas(&live),
        };
        let cond = if avail >= self.replicas() - max_unavailable(&self.d) {
            new_condition(
                "Available",
                "True",
                "MinimumReplicasAvailable",
                "Deployment has minimum availability.".into(),
                self.now,
            )
        } else {
            new_condition(
                "Available",
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.".into(),
                self.now,
            )
        };
        set_condition(&mut status, cond);
        status
    }

    /// `syncDeploymentStatus`.
    fn sync_deployment_status(&mut self) {
        let new = self.find_new();
        let status = self.calculate_status(new);
        self.d.status = Some(status);
    }

    /// `syncRolloutStatus`: the status with the Progressing condition.
    fn sync_rollout_status(&mut self, new: Option<usize>) {
        let mut status = self.calculate_status(new);
        let old_status = self.original.status.clone().unwrap_or_default();
        if !has_progress_deadline(&self.d) {
            if let Some(c) = status.conditions.as_mut() {
                c.retain(|c| c.type_.as_deref() != Some("Progressing"));
            }
        }
        let current = find_condition(&status, "Progressing").cloned();
        let complete_before = current
            .as_ref()
            .is_some_and(|c| c.reason.as_deref() == Some("NewReplicaSetAvailable"))
            && status.replicas == status.updated_replicas;
        let new_name = new.and_then(|n| self.rs[n].obj.metadata.name.clone());
        let what = |name: &Option<String>| match name {
            Some(n) => format!("ReplicaSet {}", go_q(n)),
            None => format!(
                "Deployment {}",
                go_q(self.d.metadata.name.as_deref().unwrap_or(""))
            ),
        };
        if has_progress_deadline(&self.d) && !complete_before {
            if deployment_complete(&self.d, &status) {
                let msg = format!("{} has successfully progressed.", what(&new_name));
                set_condition(
                    &mut status,
                    new_condition(
                        "Progressing",
                        "True",
                        "NewReplicaSetAvailable",
                        msg,
                        self.now,
                    ),
                );
            } else if deployment_progressing(&old_status, &status) {
                let msg = format!("{} is progressing.", what(&new_name));
                let mut cond =
                    new_condition("Progressing", "True", "ReplicaSetUpdated", msg, self.now);
                // Progress moves lastUpdateTime even with the same reason; lastTransitionTime
                // stays while the status stays True.
                if let Some(cur) = &current {
                    if cur.status.as_deref() == Some("True") {
                        cond.last_transition_time = cur.last_transition_time.clone();
                    }
                    if let Some(c) = status.conditions.as_mut() {
                        c.retain(|c| c.type_.as_deref() != Some("Progressing"));
                    }
                }
                set_condition(&mut status, cond);
            } else if self.timed_out(&status) {
                let msg = format!("{} has timed out progressing.", what(&new_name));
                set_condition(
                    &mut status,
                    new_condition(
                        "Progressing",
                        "False",
                        "ProgressDeadlineExceeded",
                        msg,
                        self.now,
                    ),
                );
            }
        }
        // Look again when the progress deadline passes.
        if let (Some(cond), Some(deadline)) = (
            find_condition(&status, "Progressing"),
            self.d.spec.progress_deadline_seconds,
        ) {
            let done = matches!(
                cond.reason.as_deref(),
                Some("NewReplicaSetAvailable" | "ProgressDeadlineExceeded")
            );
            if has_progress_deadline(&self.d) && !done && cond.status.as_deref() == Some("True") {
                if let Some(t) = &cond.last_update_time {
                    self.decision.requeue_after =
                        Some(crate::replicaset::until(t.0, i64::from(deadline), self.now));
                }
            }
        }
        self.d.status = Some(status);
    }

    /// `DeploymentTimedOut`.
    fn timed_out(&self, status: &DeploymentStatus) -> bool {
        let Some(cond) = find_condition(status, "Progressing") else {
            return false;
        };
        match cond.reason.as_deref() {
            Some("NewReplicaSetAvailable") => false,
            Some("ProgressDeadlineExceeded") => true,
            _ => {
                let deadline = i64::from(self.d.spec.progress_deadline_seconds.unwrap_or(0));
                cond.last_update_time
                    .as_ref()
                    .is_some_and(|t| t.0.as_second() + deadline < self.now.as_second())
            }
        }
    }

    /// The actions: ReplicaSet creations, updates and deletions, then the Deployment's status
    /// (with its revision annotation, as upstream's status update carries it).
    fn finish(mut self) -> Decision {
        let ns = self.d.metadata.namespace.clone().unwrap_or_default();
        for rs in std::mem::take(&mut self.rs) {
            if rs.delete {
                if !rs.create {
                    self.decision.actions.push(Action::Delete {
                        kind: Kind::ReplicaSet,
                        namespace: ns.clone(),
                        name: rs.obj.metadata.name.clone().unwrap_or_default(),
                        uid: rs.obj.metadata.uid.clone(),
                        propagation: Some(Propagation::Background),
                    });
                }
            } else if rs.create {
                self.decision
                    .actions
                    .push(Action::Create(Object::ReplicaSet(Box::new(rs.obj))));
            } else if rs.dirty {
                self.decision
                    .actions
                    .push(Action::Update(Object::ReplicaSet(Box::new(rs.obj))));
            }
        }
        if self.d.status != self.original.status
            || self.d.metadata.annotations != self.original.metadata.annotations
        {
            self.decision
                .actions
                .push(Action::UpdateStatus(Object::Deployment(Box::new(self.d))));
        }
        if self.collided {
            self.decision.requeue_after = Some(Duration::ZERO);
        }
        self.decision
    }
}

fn strategy_type(d: &Deployment) -> &str {
    d.spec
        .strategy
        .as_ref()
        .and_then(|s| s.type_.as_deref())
        .unwrap_or("RollingUpdate")
}

fn selector_is_empty(sel: &LabelSelector) -> bool {
    sel.match_labels.as_ref().is_none_or(BTreeMap::is_empty)
        && sel.match_expressions.as_ref().is_none_or(Vec::is_empty)
}

/// Replica counts beyond this are taken as this (one node runs far fewer pods), so that the
/// sums and surges below cannot overflow on hostile values.
const REPLICA_BOUND: i32 = 1_000_000;

fn bounded(v: i32) -> i32 {
    v.clamp(0, REPLICA_BOUND)
}

/// The Deployment's `spec.replicas` (bounded).
fn want_of(d: &Deployment) -> i32 {
    bounded(d.spec.replicas.unwrap_or(1))
}

fn spec_replicas(rs: &ReplicaSet) -> i32 {
    bounded(rs.spec.replicas.unwrap_or(1))
}

fn available(rs: &ReplicaSet) -> i32 {
    bounded(
        rs.status
            .as_ref()
            .and_then(|s| s.available_replicas)
            .unwrap_or(0),
    )
}

fn actual_replicas(rs: &ReplicaSet) -> i32 {
    bounded(rs.status.as_ref().map_or(0, |s| s.replicas))
}

fn annotation(meta: &ObjectMeta, key: &str) -> Option<String> {
    meta.annotations.as_ref()?.get(key).cloned()
}

fn revision_of(rs: &ReplicaSet) -> i64 {
    annotation(&rs.metadata, REVISION)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Go's `%q` for names in condition messages.
fn go_q(s: &str) -> String {
    skiff_model::field::go_quote(s)
}

/// `HasProgressDeadline`.
fn has_progress_deadline(d: &Deployment) -> bool {
    d.spec
        .progress_deadline_seconds
        .is_some_and(|s| s != i32::MAX)
}

/// `GetScaledValueFromIntOrPercent`.
fn scaled_value(v: Option<&IntOrString>, total: i32, round_up: bool) -> i32 {
    match v {
        None => 0,
        Some(IntOrString::Int(i)) => bounded(*i),
        Some(IntOrString::String(s)) => {
            let pct: i64 = s.trim_end_matches('%').parse().unwrap_or(0);
            let x = pct.clamp(0, 1_000_000).saturating_mul(i64::from(total));
            let v = if round_up {
                (x + 99).div_euclid(100)
            } else {
                x.div_euclid(100)
            };
            bounded(i32::try_from(v).unwrap_or(REPLICA_BOUND))
        }
    }
}

/// `ResolveFenceposts`: (maxSurge, maxUnavailable) for `desired` replicas.
fn fenceposts(d: &Deployment, desired: i32) -> (i32, i32) {
    let ru = d
        .spec
        .strategy
        .as_ref()
        .and_then(|s| s.rolling_update.clone())
        .unwrap_or_default();
    let surge = scaled_value(ru.max_surge.as_ref(), desired, true);
    let mut unavailable = scaled_value(ru.max_unavailable.as_ref(), desired, false);
    if surge == 0 && unavailable == 0 {
        unavailable = 1;
    }
    (surge, unavailable)
}

/// `MaxSurge`.
pub fn max_surge(d: &Deployment) -> i32 {
    if strategy_type(d) != "RollingUpdate" {
        return 0;
    }
    fenceposts(d, want_of(d)).0
}

/// `MaxUnavailable`.
pub fn max_unavailable(d: &Deployment) -> i32 {
    let replicas = want_of(d);
    if strategy_type(d) != "RollingUpdate" || replicas == 0 {
        return 0;
    }
    fenceposts(d, replicas).1.min(replicas)
}

/// `NewRSNewReplicas`.
fn new_rs_new_replicas(d: &Deployment, all: &[&ReplicaSet], new_rs: &ReplicaSet) -> i32 {
    let want = want_of(d);
    if strategy_type(d) != "RollingUpdate" {
        return want;
    }
    let current: i32 = all
        .iter()
        .map(|r| spec_replicas(r))
        .fold(0, i32::saturating_add);
    let max_total = want + max_surge(d);
    let have = spec_replicas(new_rs);
    if current >= max_total {
        return have;
    }
    have + (max_total - current).min(want - have)
}

/// `IsSaturated`.
fn is_saturated(d: &Deployment, rs: &ReplicaSet) -> bool {
    let want = want_of(d);
    let desired = annotation(&rs.metadata, DESIRED_REPLICAS).and_then(|v| v.parse::<i32>().ok());
    spec_replicas(rs) == want && desired == Some(want) && available(rs) == want
}

/// `GetProportion`.
fn proportion(rs: &ReplicaSet, d: &Deployment, to_add: i32, added: i32) -> i32 {
    let replicas = spec_replicas(rs);
    if replicas == 0 || to_add == 0 || to_add == added {
        return 0;
    }
    let fraction = replica_set_fraction(rs, d);
    let allowed = to_add - added;
    if to_add > 0 {
        fraction.min(allowed)
    } else {
        fraction.max(allowed)
    }
}

/// `getReplicaSetFraction`.
fn replica_set_fraction(rs: &ReplicaSet, d: &Deployment) -> i32 {
    let want = want_of(d);
    let replicas = spec_replicas(rs);
    if want == 0 {
        return -replicas;
    }
    let max = want + max_surge(d);
    let before = annotation(&rs.metadata, MAX_REPLICAS)
        .and_then(|v| v.parse::<i32>().ok())
        .filter(|v| *v != 0)
        .unwrap_or_else(|| d.status.as_ref().and_then(|s| s.replicas).unwrap_or(0));
    if before == 0 {
        return 0;
    }
    let size = f64::from(replicas) * f64::from(max) / f64::from(before);
    // integer.RoundToInt32: half away from zero.
    (size.round() as i32) - replicas
}

/// `GetTerminatingReplicaCountForReplicaSets`: the sum, unknown (`None`) when a ReplicaSet
/// the controller has synced does not report its count.
fn terminating_replicas(live: &[&ReplicaSet]) -> Option<i32> {
    let mut sum: i32 = 0;
    for rs in live {
        let st = rs.status.clone().unwrap_or_default();
        match st.terminating_replicas {
            Some(n) => sum = sum.saturating_add(bounded(n)),
            None if st.observed_generation.unwrap_or(0) == 0 => {}
            None => return None,
        }
    }
    Some(sum)
}

/// `DeploymentComplete`.
fn deployment_complete(d: &Deployment, status: &DeploymentStatus) -> bool {
    let want = Some(want_of(d)).filter(|v| *v != 0);
    status.updated_replicas == want
        && status.replicas == want
        && status.available_replicas == want
        && status.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0)
}

/// `DeploymentProgressing`.
fn deployment_progressing(old: &DeploymentStatus, new: &DeploymentStatus) -> bool {
    let v = |x: Option<i32>| x.unwrap_or(0);
    let old_old = v(old.replicas).saturating_sub(v(old.updated_replicas));
    let new_old = v(new.replicas).saturating_sub(v(new.updated_replicas));
    v(new.updated_replicas) > v(old.updated_replicas)
        || new_old < old_old
        || v(new.ready_replicas) > v(old.ready_replicas)
        || v(new.available_replicas) > v(old.available_replicas)
}

fn find_condition<'a>(
    status: &'a DeploymentStatus,
    type_: &str,
) -> Option<&'a DeploymentCondition> {
    status
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_.as_deref() == Some(type_))
}

/// `NewDeploymentCondition`.
fn new_condition(
    type_: &str,
    status: &str,
    reason: &str,
    message: String,
    now: Now,
) -> DeploymentCondition {
    DeploymentCondition {
        type_: Some(type_.into()),
        status: Some(status.into()),
        reason: Some(reason.into()),
        message: Some(message),
        last_update_time: Some(wire_time(now)),
        last_transition_time: Some(wire_time(now)),
    }
}

/// `SetDeploymentCondition`: same status and reason → unchanged; same status → keeps its
/// lastTransitionTime.
fn set_condition(status: &mut DeploymentStatus, mut cond: DeploymentCondition) {
    if let Some(cur) = find_condition(status, cond.type_.as_deref().unwrap_or("")) {
        if cur.status == cond.status && cur.reason == cond.reason {
            return;
        }
        if cur.status == cond.status {
            cond.last_transition_time = cur.last_transition_time.clone();
        }
    }
    let conds = status.conditions.get_or_insert_with(Vec::new);
    conds.retain(|c| c.type_ != cond.type_);
    conds.push(cond);
}

/// `SetReplicasAnnotations`: whether they changed.
fn set_replicas_annotations(rs: &mut ReplicaSet, desired: i32, max: i32) -> bool {
    let a = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
    let mut changed = false;
    for (k, v) in [(DESIRED_REPLICAS, desired), (MAX_REPLICAS, max)] {
        let v = v.to_string();
        if a.get(k) != Some(&v) {
            a.insert(k.into(), v);
            changed = true;
        }
    }
    changed
}

/// `SetNewReplicaSetAnnotations`: the Deployment's own annotations (not the skipped ones),
/// the revision (raised only), the replicas annotations on a ReplicaSet about to be created.
fn set_new_rs_annotations(
    d: &Deployment,
    rs: &mut ReplicaSet,
    new_revision: &str,
    exists: bool,
) -> bool {
    let mut changed = false;
    let a = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
    for (k, v) in d.metadata.annotations.iter().flatten() {
        let skip = [
            LAST_APPLIED,
            REVISION,
            REVISION_HISTORY,
            DESIRED_REPLICAS,
            MAX_REPLICAS,
            ROLLBACK_TO,
        ]
        .contains(&k.as_str());
        if skip || a.get(k) == Some(v) {
            continue;
        }
        a.insert(k.clone(), v.clone());
        changed = true;
    }
    let old = a.get(REVISION).cloned();
    let old_int: i64 = match old.as_deref() {
        None | Some("") => 0,
        Some(v) => match v.parse() {
            Ok(n) => n,
            Err(_) => return changed,
        },
    };
    let new_int: i64 = new_revision.parse().unwrap_or(0);
    if old_int < new_int {
        a.insert(REVISION.into(), new_revision.into());
        changed = true;
        // A rollback to this ReplicaSet: keep its former revision in the history.
        if let Some(prev) = old.filter(|v| !v.is_empty()) {
            let history = match a.get(REVISION_HISTORY) {
                Some(h) if !h.is_empty() => format!("{h},{prev}"),
                _ => prev,
            };
            a.insert(REVISION_HISTORY.into(), history);
        }
    }
    if !exists {
        let desired = want_of(d);
        if set_replicas_annotations(rs, desired, desired + max_surge(d)) {
            changed = true;
        }
    }
    changed
}

/// The template as JSON without the `pod-template-hash` label (`EqualIgnoreHash`).
fn template_without_hash(t: &PodTemplateSpec) -> serde_json::Value {
    let mut t = t.clone();
    if let Some(labels) = t.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
        labels.remove(POD_TEMPLATE_HASH);
    }
    if let Some(m) = t.metadata.as_mut() {
        if m.labels.as_ref().is_some_and(BTreeMap::is_empty) {
            m.labels = None;
        }
    }
    serde_json::to_value(&t).unwrap_or(serde_json::Value::Null)
}

/// `ComputeHash`: the pod-template-hash of a template and the collision count.
///
/// Upstream hashes Go's deep-hash printing of the template with FNV-32a; that printing is
/// Go-specific, so skiff hashes the template's JSON (stable: fields in schema order, maps
/// sorted) with the same FNV-32a and collision count, and renders it with the same
/// `SafeEncodeString` alphabet. The value therefore differs from upstream's for the same
/// template, while having the same form (up to 10 characters of `bcdf…789`).
pub fn compute_hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    let json = serde_json::to_vec(template).unwrap_or_default();
    let mut h = fnv32a(&json, FNV32_OFFSET);
    if let Some(c) = collision_count {
        h = fnv32a(&c.to_le_bytes(), h);
    }
    h.to_string()
        .bytes()
        .map(|b| char::from(SAFE_ALPHABET[usize::from(b) % SAFE_ALPHABET.len()]))
        .collect()
}

/// kubectl's rollout status for a Deployment (polymorphichelpers/rollout_status.go): the
/// message and whether the rollout is done; `Err` when the progress deadline passed. For
/// tests and callers that want kubectl's view without kubectl.
pub fn rollout_status(d: &Deployment) -> Result<(String, bool), String> {
    let name = d.metadata.name.clone().unwrap_or_default();
    let st = d.status.clone().unwrap_or_default();
    let v = |x: Option<i32>| x.unwrap_or(0);
    if d.metadata.generation.unwrap_or(0) > st.observed_generation.unwrap_or(0) {
        return Ok((
            "Waiting for deployment spec update to be observed...\n".into(),
            false,
        ));
    }
    if find_condition(&st, "Progressing").and_then(|c| c.reason.as_deref())
        == Some("ProgressDeadlineExceeded")
    {
        return Err(format!(
            "deployment {} exceeded its progress deadline",
            go_q(&name)
        ));
    }
    let want = want_of(d);
    let waiting = |m: String| {
        Ok((
            format!(
                "Waiting for deployment {} rollout to finish: {m}\n",
                go_q(&name)
            ),
            false,
        ))
    };
    if v(st.updated_replicas) < want {
        return waiting(format!(
            "{} out of {want} new replicas have been updated...",
            v(st.updated_replicas)
        ));
    }
    if v(st.replicas) > v(st.updated_replicas) {
        return waiting(format!(
            "{} old replicas are pending termination...",
            v(st.replicas).saturating_sub(v(st.updated_replicas))
        ));
    }
    if v(st.available_replicas) < v(st.updated_replicas) {
        return waiting(format!(
            "{} of {} updated replicas are available...",
            v(st.available_replicas),
            v(st.updated_replicas)
        ));
    }
    Ok((
        format!("deployment {} successfully rolled out\n", go_q(&name)),
        true,
    ))
}

#[cfg(test)]
mod tests;
