//! The Job controller (kube-controller-manager's pkg/controller/job: job_controller.go
//! `syncJob`/`manageJob`/`trackJobStatusAndRemoveFinalizers`, backoff_utils.go,
//! pod_failure_policy.go, indexed_job_utils.go, success_policy.go) and the TTL-after-finished
//! controller (pkg/controller/ttlafterfinished), as pure decisions.
//!
//! [`reconcile`] takes a Job (as stored: defaulted, with its generated selector) and **every**
//! pod it owns (its controller ownerReference names the Job's uid; [`owned_pods`] picks them
//! from a namespace's pods), including the pods created by earlier decisions, and returns what
//! to do now. The caller carries the actions out **in order** and stops at the first that
//! fails (then reconciles again): the status update that lists finished pods in
//! `uncountedTerminatedPods` comes before the updates removing their tracking finalizers,
//! which is what keeps a pod from being counted twice or lost. It reconciles again when a
//! pod or the Job changes, and after `requeue_after`.
//!
//! Differences from upstream, all because the decision is a pure function of one snapshot:
//! - Upstream counts a finished pod in two writes within one sync (uids into
//!   `uncountedTerminatedPods`, finalizers removed, then the counters); here the counters move
//!   on the next reconcile, which the pod updates trigger. `Complete`/`Failed` therefore come
//!   one reconcile after `SuccessCriteriaMet`/`FailureTarget` at the earliest, as upstream's
//!   do when a finalizer removal is still pending.
//! - The pod-failure back-off is computed from the pods' finish times (upstream keeps the
//!   same numbers in memory, fed by the same pods); a failed pod deleted by someone else no
//!   longer counts towards it.
//! - Created pods get `generateName`; the API assigns the name, so the caller records
//!   `SuccessfulCreate` with [`created_event`] once it knows the name.
//! - With `backoffLimitPerIndex`, the per-index failure count is the number of failed pods of
//!   the index (upstream carries it from pod to pod in an annotation, which is also set), and
//!   a failed pod's finalizer is removed at once (upstream may keep it until the replacement
//!   exists).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use k8s_openapi::api::batch::v1::{Job, JobCondition, JobSpec, JobStatus, UncountedTerminatedPods};
use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, ObjectFieldSelector, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use skiff_model::workloads::job::{
    JOB_COMPLETION_INDEX, JOB_INDEX_FAILURE_COUNT, JOB_TRACKING_FINALIZER,
};

use crate::{Action, Decision, EventNote, Kind, Now, Object, Propagation};

/// The environment variable carrying an Indexed Job pod's index.
pub const COMPLETION_INDEX_ENV: &str = "JOB_COMPLETION_INDEX";
/// Longest `generateName` prefix the API keeps (`names.MaxGeneratedNameLength`: 63 − 5).
const MAX_GENERATED_NAME_LENGTH: usize = 58;
/// `MaxPodCreateDeletePerSync`.
const MAX_CREATE_DELETE_PER_SYNC: usize = 500;
/// `MaxUncountedPods`: at most this many uids wait in `uncountedTerminatedPods`.
const MAX_UNCOUNTED_PODS: usize = 500;

/// Timing the controller is configured with (kube-controller-manager's package variables).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// `DefaultJobPodFailureBackOff`: the delay before replacing a pod after the first
    /// failure; doubled per further consecutive failure.
    pub pod_failure_backoff: Duration,
    /// `MaxJobPodFailureBackOff`: the cap of that delay.
    pub max_pod_failure_backoff: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            pod_failure_backoff: Duration::from_secs(10),
            max_pod_failure_backoff: Duration::from_secs(600),
        }
    }
}

fn millis(t: &Time) -> i64 {
    t.0.as_millisecond()
}

fn dur_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn ms_dur(ms: i64) -> Duration {
    Duration::from_millis(u64::try_from(ms.max(0)).unwrap_or(0))
}

/// The pods of `pods` whose controller ownerReference is the Job (by uid).
pub fn owned_pods<'a>(job: &Job, pods: &'a [Pod]) -> Vec<&'a Pod> {
    let uid = job.metadata.uid.as_deref().unwrap_or("");
    pods.iter()
        .filter(|p| {
            p.metadata
                .owner_references
                .iter()
                .flatten()
                .any(|r| r.controller == Some(true) && r.uid == uid && r.kind == "Job")
        })
        .collect()
}

/// The event the pod control records once a pod it created has its name.
pub fn created_event(job: &Job, pod_name: &str) -> EventNote {
    event(
        job,
        "Normal",
        "SuccessfulCreate",
        format!("Created pod: {pod_name}"),
    )
}

fn event(job: &Job, type_: &'static str, reason: &str, message: String) -> EventNote {
    EventNote {
        kind: Kind::Job,
        namespace: job.metadata.namespace.clone().unwrap_or_default(),
        name: job.metadata.name.clone().unwrap_or_default(),
        uid: job.metadata.uid.clone().unwrap_or_default(),
        type_,
        reason: reason.to_string(),
        message,
    }
}

fn condition_true<'a>(job: &'a Job, type_: &str) -> Option<&'a JobCondition> {
    job.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == type_ && c.status == "True"))
}

/// `Complete` or `Failed`, when the Job has finished.
pub fn finished_condition(job: &Job) -> Option<&JobCondition> {
    condition_true(job, "Complete").or_else(|| condition_true(job, "Failed"))
}

fn new_condition(type_: &str, status: &str, reason: &str, message: &str, now: Now) -> JobCondition {
    JobCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_probe_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    }
}

/// `ensureJobConditionStatus`: whether the list changed.
fn ensure_condition(
    list: &mut Vec<JobCondition>,
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
    now: Now,
) -> bool {
    if let Some(c) = list.iter_mut().find(|c| c.type_ == type_) {
        if c.status != status
            || c.reason.as_deref() != Some(reason)
            || c.message.as_deref() != Some(message)
        {
            *c = new_condition(type_, status, reason, message, now);
            return true;
        }
        return false;
    }
    if status != "False" {
        list.push(new_condition(type_, status, reason, message, now));
        return true;
    }
    false
}

fn phase(p: &Pod) -> &str {
    p.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

fn uid(p: &Pod) -> &str {
    p.metadata.uid.as_deref().unwrap_or("")
}

fn has_finalizer(p: &Pod) -> bool {
    p.metadata
        .finalizers
        .iter()
        .flatten()
        .any(|f| f == JOB_TRACKING_FINALIZER)
}

fn is_terminal(p: &Pod) -> bool {
    matches!(phase(p), "Succeeded" | "Failed")
}

/// `FilterActivePods`: not terminal, not being deleted.
fn is_active(p: &Pod) -> bool {
    !is_terminal(p) && p.metadata.deletion_timestamp.is_none()
}

/// `IsPodTerminating` as `CountTerminatingPods` uses it.
fn is_terminating(p: &Pod) -> bool {
    !is_terminal(p) && p.metadata.deletion_timestamp.is_some()
}

fn is_ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// `onlyReplaceFailedPods`.
fn only_replace_failed(spec: &JobSpec) -> bool {
    spec.pod_replacement_policy.as_deref() == Some("Failed") || spec.pod_failure_policy.is_some()
}

/// `isPodFailed`: phase Failed; or, unless only failed pods are replaced, being deleted and
/// not Succeeded.
fn is_pod_failed(p: &Pod, spec: &JobSpec) -> bool {
    if phase(p) == "Failed" {
        return true;
    }
    if only_replace_failed(spec) {
        return false;
    }
    p.metadata.deletion_timestamp.is_some() && phase(p) != "Succeeded"
}

/// `getCompletionIndex`: the annotation as a non-negative integer.
pub fn completion_index(p: &Pod) -> Option<i64> {
    p.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(JOB_COMPLETION_INDEX))
        .and_then(|v| v.parse::<i64>().ok())
        .filter(|i| *i >= 0)
}

/// `getFinishedTime` (ms): the last container finish when every regular container and
/// sidecar has terminated, else the Ready=False transition, else deletion − grace, else
/// creation.
fn finished_time(p: &Pod) -> i64 {
    if let Some(t) = finish_from_containers(p) {
        return t;
    }
    let status = p.status.as_ref();
    if let Some(t) = status
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| {
            cs.iter()
                .find(|c| c.type_ == "Ready" && c.status == "False")
        })
        .and_then(|c| c.last_transition_time.as_ref())
    {
        return millis(t);
    }
    if let Some(d) = &p.metadata.deletion_timestamp {
        let grace = p.metadata.deletion_grace_period_seconds.unwrap_or(0);
        return millis(d).saturating_sub(grace.saturating_mul(1000));
    }
    p.metadata.creation_timestamp.as_ref().map_or(0, millis)
}

fn finish_from_containers(p: &Pod) -> Option<i64> {
    let status = p.status.as_ref()?;
    let sidecars: BTreeSet<&str> = p
        .spec
        .iter()
        .flat_map(|s| s.init_containers.iter().flatten())
        .filter(|c| c.restart_policy.as_deref() == Some("Always"))
        .map(|c| c.name.as_str())
        .collect();
    let mut latest: Option<i64> = None;
    let regular = status.container_statuses.iter().flatten();
    let side = status
        .init_container_statuses
        .iter()
        .flatten()
        .filter(|s| sidecars.contains(s.name.as_str()));
    for cs in regular.chain(side) {
        let t = cs
            .state
            .as_ref()
            .and_then(|s| s.terminated.as_ref())
            .and_then(|t| t.finished_at.as_ref())
            .map(millis)?;
        latest = Some(latest.map_or(t, |l| l.max(t)));
    }
    latest
}

/// What a pod failure policy says about a failed pod (`matchPodFailurePolicy`).
struct PolicyMatch {
    /// A FailJob rule matched: the Job's failure message.
    fail_job: Option<String>,
    /// Whether the failure counts towards the back-off limits (not for Ignore).
    count: bool,
    /// A FailIndex rule matched.
    fail_index: bool,
}

fn match_pod_failure_policy(spec: &JobSpec, pod: &Pod) -> PolicyMatch {
    let none = PolicyMatch {
        fail_job: None,
        count: true,
        fail_index: false,
    };
    let Some(policy) = &spec.pod_failure_policy else {
        return none;
    };
    let status = pod.status.clone().unwrap_or_default();
    let ns = pod.metadata.namespace.as_deref().unwrap_or("");
    let name = pod.metadata.name.as_deref().unwrap_or("");
    for (index, rule) in policy.rules.iter().enumerate() {
        let action = rule.action.as_str();
        let hit_message = if let Some(req) = &rule.on_exit_codes {
            let matching = |list: &[k8s_openapi::api::core::v1::ContainerStatus]| {
                list.iter().find_map(|cs| {
                    let code = cs.state.as_ref()?.terminated.as_ref()?.exit_code;
                    let named = req.container_name.as_deref().is_none_or(|n| n == cs.name);
                    let op = match req.operator.as_str() {
                        "In" => req.values.contains(&code),
                        "NotIn" => !req.values.contains(&code),
                        _ => false,
                    };
                    (named && code != 0 && op).then(|| (cs.name.clone(), code))
                })
            };
            matching(status.container_statuses.as_deref().unwrap_or_default())
                .or_else(|| matching(status.init_container_statuses.as_deref().unwrap_or_default()))
                .map(|(c, code)| {
                    format!(
                        "Container {c} for pod {ns}/{name} failed with exit code {code} matching {action} rule at index {index}"
                    )
                })
        } else if let Some(patterns) = &rule.on_pod_conditions {
            status.conditions.iter().flatten().find_map(|c| {
                patterns
                    .iter()
                    .any(|p| {
                        p.type_ == c.type_ && p.status.as_deref().unwrap_or("True") == c.status
                    })
                    .then(|| {
                        format!(
                            "Pod {ns}/{name} has condition {} matching {action} rule at index {index}",
                            c.type_
                        )
                    })
            })
        } else {
            None
        };
        let Some(message) = hit_message else { continue };
        return match action {
            "Ignore" => PolicyMatch {
                fail_job: None,
                count: false,
                fail_index: false,
            },
            "FailJob" => PolicyMatch {
                fail_job: Some(message),
                count: true,
                fail_index: false,
            },
            "FailIndex" => PolicyMatch {
                fail_job: None,
                count: true,
                fail_index: true,
            },
            _ => none,
        };
    }
    none
}

/// Sorted, merged `[first, last]` intervals of indexes (`orderedIntervals`). Intervals, not
/// a set of numbers: a status may say `0-999999999`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Indexes(Vec<(i64, i64)>);

impl Indexes {
    /// `parseIndexesFromString`: tolerant, bad fragments skipped, capped below `completions`.
    fn parse(text: Option<&str>, completions: i32) -> Indexes {
        let mut out = Indexes::default();
        let limit = i64::from(completions) - 1;
        for part in text.unwrap_or("").split(',').filter(|s| !s.is_empty()) {
            let mut ends = part.splitn(2, '-');
            let Some(a) = ends.next().and_then(|s| s.parse::<i64>().ok()) else {
                continue;
            };
            let b = match ends.next() {
                None => a,
                Some(s) => match s.parse::<i64>() {
                    Ok(b) => b,
                    Err(_) => continue,
                },
            };
            if a < 0 || a > b.min(limit) {
                continue;
            }
            out.add(a, b.min(limit));
        }
        out
    }

    fn add(&mut self, a: i64, b: i64) {
        self.0.push((a, b));
        self.0.sort_unstable();
        let mut merged: Vec<(i64, i64)> = Vec::with_capacity(self.0.len());
        for (x, y) in self.0.drain(..) {
            match merged.last_mut() {
                Some(last) if x <= last.1.saturating_add(1) => last.1 = last.1.max(y),
                _ => merged.push((x, y)),
            }
        }
        self.0 = merged;
    }

    fn insert(&mut self, i: i64) {
        if !self.contains(i) {
            self.add(i, i);
        }
    }

    fn contains(&self, i: i64) -> bool {
        self.0.iter().any(|(a, b)| *a <= i && i <= *b)
    }

    /// The end of the interval holding `i`.
    fn end_of(&self, i: i64) -> Option<i64> {
        self.0
            .iter()
            .find(|(a, b)| *a <= i && i <= *b)
            .map(|(_, b)| *b)
    }

    fn total(&self) -> i64 {
        self.0.iter().map(|(a, b)| b - a + 1).sum()
    }

    fn union(&mut self, other: &Indexes) {
        for (a, b) in &other.0 {
            self.add(*a, *b);
        }
    }

    /// How many of `self`'s indexes `other` holds.
    fn overlap(&self, other: &Indexes) -> i64 {
        let mut n = 0;
        for (a, b) in &self.0 {
            for (c, d) in &other.0 {
                let (lo, hi) = ((*a).max(*c), (*b).min(*d));
                if lo <= hi {
                    n += hi - lo + 1;
                }
            }
        }
        n
    }

    /// `self` without `other`'s indexes.
    fn minus(&self, other: &Indexes) -> Indexes {
        let mut out = Indexes::default();
        for (a, b) in &self.0 {
            let mut start = *a;
            for (c, d) in &other.0 {
                if *d < start || *c > *b {
                    continue;
                }
                if *c > start {
                    out.0.push((start, c - 1));
                }
                start = start.max(d + 1);
            }
            if start <= *b {
                out.0.push((start, *b));
            }
        }
        out
    }

    /// `"1,3-5"`.
    fn render(&self) -> String {
        self.0
            .iter()
            .map(|(a, b)| {
                if a == b {
                    a.to_string()
                } else {
                    format!("{a}-{b}")
                }
            })
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// `ActivePods` order for removal: unscheduled, then pending before unknown before running,
/// not ready before ready, more restarts first, newer first.
fn removal_key(p: &Pod) -> (bool, u8, bool, i64, i64) {
    let scheduled = p
        .spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .is_some_and(|n| !n.is_empty());
    let rank = match phase(p) {
        "Pending" => 0,
        "Unknown" => 1,
        "Running" => 2,
        _ => 0,
    };
    let restarts: i64 = p
        .status
        .iter()
        .flat_map(|s| s.container_statuses.iter().flatten())
        .map(|c| i64::from(c.restart_count))
        .sum();
    let created = p.metadata.creation_timestamp.as_ref().map_or(0, millis);
    (scheduled, rank, is_ready(p), -restarts, -created)
}

/// The TTL-after-finished controller for one Job: once `ttlSecondsAfterFinished` has passed
/// since the Job's Complete/Failed condition, delete it (Background propagation, uid
/// precondition); before that, look again when it expires.
pub fn ttl_after_finished(job: &Job, now: Now) -> Decision {
    let mut d = Decision::default();
    let Some(ttl) = job.spec.as_ref().and_then(|s| s.ttl_seconds_after_finished) else {
        return d;
    };
    if job.metadata.deletion_timestamp.is_some() {
        return d;
    }
    let Some(finished_at) = finished_condition(job).and_then(|c| c.last_transition_time.as_ref())
    else {
        return d;
    };
    let expire = millis(finished_at).saturating_add(i64::from(ttl).saturating_mul(1000));
    let now_ms = now.as_millisecond();
    if now_ms >= expire {
        d.actions.push(Action::Delete {
            kind: Kind::Job,
            namespace: job.metadata.namespace.clone().unwrap_or_default(),
            name: job.metadata.name.clone().unwrap_or_default(),
            uid: job.metadata.uid.clone(),
            propagation: Some(Propagation::Background),
        });
    } else {
        d.requeue_after = Some(ms_dur(expire - now_ms));
    }
    d
}

/// [`reconcile_with`] with upstream's timing.
pub fn reconcile(job: &Job, pods: &[Pod], now: Now) -> Decision {
    reconcile_with(job, pods, now, &Config::default())
}

/// One `syncJob` of `job` with its `pods` at `now` (see the module docs).
pub fn reconcile_with(job: &Job, pods: &[Pod], now: Now, cfg: &Config) -> Decision {
    let owned = owned_pods(job, pods);
    let mut d = Decision::default();
    let Some(spec) = job.spec.as_ref() else {
        return d;
    };
    // Managed by another controller (spec.managedBy): not ours to sync.
    if spec
        .managed_by
        .as_deref()
        .is_some_and(|m| m != "kubernetes.io/job-controller")
    {
        return d;
    }
    if finished_condition(job).is_some() {
        // A finished Job's pods keep no tracking finalizer (`cleanupPodFinalizers`).
        for p in owned.iter().filter(|p| has_finalizer(p)) {
            d.actions
                .push(Action::Update(Object::Pod(Box::new(without_finalizer(p)))));
        }
        let ttl = ttl_after_finished(job, now);
        d.actions.extend(ttl.actions);
        d.requeue_after = ttl.requeue_after;
        return d;
    }
    let mode = spec.completion_mode.as_deref().unwrap_or("NonIndexed");
    if mode != "NonIndexed" && mode != "Indexed" {
        d.events.push(event(
            job,
            "Warning",
            "UnknownCompletionMode",
            "Skipped Job sync because completion mode is unknown".into(),
        ));
        return d;
    }
    Sync::new(job, spec, owned, now, cfg).run()
}

/// A copy of `p` without the tracking finalizer.
fn without_finalizer(p: &Pod) -> Pod {
    let mut p = p.clone();
    if let Some(f) = p.metadata.finalizers.as_mut() {
        f.retain(|f| f != JOB_TRACKING_FINALIZER);
    }
    p
}

/// `syncJobCtx` and the steps of one sync.
struct Sync<'a> {
    job: &'a Job,
    spec: &'a JobSpec,
    pods: Vec<&'a Pod>,
    now: Now,
    now_ms: i64,
    cfg: &'a Config,
    status: JobStatus,
    indexed: bool,
    completions: i32,
    d: Decision,
}

impl<'a> Sync<'a> {
    fn new(job: &'a Job, spec: &'a JobSpec, pods: Vec<&'a Pod>, now: Now, cfg: &'a Config) -> Self {
        let mut status = job.status.clone().unwrap_or_default();
        status
            .uncounted_terminated_pods
            .get_or_insert_with(UncountedTerminatedPods::default);
        Sync {
            job,
            spec,
            pods,
            now,
            now_ms: now.as_millisecond(),
            cfg,
            status,
            indexed: spec.completion_mode.as_deref() == Some("Indexed"),
            completions: spec.completions.unwrap_or(0),
            d: Decision::default(),
        }
    }

    fn suspended(&self) -> bool {
        self.spec.suspend == Some(true)
    }

    fn uncounted(&self) -> (BTreeSet<String>, BTreeSet<String>) {
        let u = self
            .status
            .uncounted_terminated_pods
            .clone()
            .unwrap_or_default();
        (
            u.succeeded.unwrap_or_default().into_iter().collect(),
            u.failed.unwrap_or_default().into_iter().collect(),
        )
    }

    fn valid_index(&self, p: &Pod) -> bool {
        !self.indexed || completion_index(p).is_some_and(|i| i < i64::from(self.completions))
    }

    /// `getNewFinishedPods`: finished pods with the finalizer, not yet in the uncounted lists.
    fn new_finished(&self) -> (Vec<&'a Pod>, Vec<&'a Pod>) {
        let (us, uf) = self.uncounted();
        let candidates = |uncounted: &BTreeSet<String>| {
            self.pods
                .iter()
                .copied()
                .filter(|p| has_finalizer(p) && !uncounted.contains(uid(p)) && self.valid_index(p))
                .collect::<Vec<_>>()
        };
        let succeeded = candidates(&us)
            .into_iter()
            .filter(|p| phase(p) == "Succeeded")
            .collect();
        let failed = candidates(&uf)
            .into_iter()
            .filter(|p| is_pod_failed(p, self.spec))
            .collect();
        (succeeded, failed)
    }

    /// The back-off before creating a replacement pod, from the pods' finish times
    /// (`newBackoffRecord` + `getRemainingTime`).
    fn backoff_remaining(&self) -> i64 {
        let last_success = self
            .pods
            .iter()
            .filter(|p| phase(p) == "Succeeded")
            .map(|p| finished_time(p))
            .max();
        let failures: Vec<i64> = self
            .pods
            .iter()
            .filter(|p| is_pod_failed(p, self.spec) && self.valid_index(p))
            .map(|p| finished_time(p))
            .filter(|t| last_success.is_none_or(|s| *t > s))
            .collect();
        let Some(last) = failures.iter().max().copied() else {
            return 0;
        };
        self.remaining_for(failures.len(), last)
    }

    fn remaining_for(&self, failures: usize, last_failure_ms: i64) -> i64 {
        if failures == 0 {
            return 0;
        }
        let max = dur_ms(self.cfg.max_pod_failure_backoff);
        let mut backoff = dur_ms(self.cfg.pod_failure_backoff);
        for _ in 1..failures {
            backoff = backoff.saturating_mul(2);
            if backoff >= max {
                backoff = max;
                break;
            }
        }
        let elapsed = self.now_ms.saturating_sub(last_failure_ms);
        if backoff < elapsed {
            0
        } else {
            backoff - elapsed
        }
    }

    fn requeue(&mut self, after_ms: i64) {
        let after = ms_dur(after_ms);
        self.d.requeue_after = Some(self.d.requeue_after.map_or(after, |r| r.min(after)));
    }

    /// Per-index failures (backoffLimitPerIndex): failed pods of each index, and the indexes
    /// failed for good (limit exceeded or a FailIndex rule matched).
    fn index_failures(&self) -> (BTreeMap<i64, (usize, i64)>, Indexes) {
        let mut counts: BTreeMap<i64, (usize, i64)> = BTreeMap::new();
        let mut failed = Indexes::parse(self.status.failed_indexes.as_deref(), self.completions);
        let limit = self.spec.backoff_limit_per_index.unwrap_or(0);
        for p in self.pods.iter().filter(|p| is_pod_failed(p, self.spec)) {
            let Some(ix) = completion_index(p).filter(|i| *i < i64::from(self.completions)) else {
                continue;
            };
            let m = match_pod_failure_policy(self.spec, p);
            if m.fail_index {
                failed.insert(ix);
            }
            if !m.count {
                continue;
            }
            let e = counts.entry(ix).or_insert((0, 0));
            e.0 += 1;
            e.1 = e.1.max(finished_time(p));
            if e.0 > usize::try_from(limit).unwrap_or(0) {
                failed.insert(ix);
            }
        }
        (counts, failed)
    }

    fn run(mut self) -> Decision {
        let spec = self.spec;
        let active_pods: Vec<&Pod> = self.pods.iter().copied().filter(|p| is_active(p)).collect();
        let mut active = active_pods.len() as i64;
        let mut ready = active_pods.iter().filter(|p| is_ready(p)).count() as i64;
        let mut terminating = self.pods.iter().filter(|p| is_terminating(p)).count() as i64;
        let (new_succeeded, new_failed) = self.new_finished();
        let (us, uf) = self.uncounted();
        let mut succeeded = i64::from(self.status.succeeded.unwrap_or(0))
            + new_succeeded.len() as i64
            + us.len() as i64;
        let non_ignored = new_failed
            .iter()
            .filter(|p| match_pod_failure_policy(spec, p).count)
            .count() as i64;
        let failed = i64::from(self.status.failed.unwrap_or(0)) + non_ignored + uf.len() as i64;

        if self.status.start_time.is_none() && !self.suspended() {
            self.status.start_time = Some(Time(self.now));
        }

        let backoff_limit = i64::from(spec.backoff_limit.unwrap_or(6));
        // The interim or final condition this sync decides on.
        let mut finished: Option<JobCondition> =
            condition_true(self.job, "SuccessCriteriaMet").cloned();
        if finished.is_none() {
            if let Some(ft) = condition_true(self.job, "FailureTarget") {
                finished = Some(ft.clone());
            } else if let Some(msg) = self
                .pods
                .iter()
                .filter(|p| is_pod_failed(p, spec))
                .find_map(|p| match_pod_failure_policy(spec, p).fail_job)
            {
                finished = Some(new_condition(
                    "FailureTarget",
                    "True",
                    "PodFailurePolicy",
                    &msg,
                    self.now,
                ));
            }
        }
        if finished.is_none() {
            if failed > backoff_limit || self.past_backoff_limit_on_failure() {
                finished = Some(new_condition(
                    "FailureTarget",
                    "True",
                    "BackoffLimitExceeded",
                    "Job has reached the specified backoff limit",
                    self.now,
                ));
            } else if self.past_active_deadline() {
                finished = Some(new_condition(
                    "FailureTarget",
                    "True",
                    "DeadlineExceeded",
                    "Job was active longer than specified deadline",
                    self.now,
                ));
            } else if let (Some(ads), Some(start), false) = (
                spec.active_deadline_seconds,
                self.status.start_time.as_ref(),
                self.suspended(),
            ) {
                let deadline = millis(start).saturating_add(ads.saturating_mul(1000));
                self.requeue(deadline - self.now_ms);
            }
        }

        let mut prev_succeeded_indexes = Indexes::default();
        let mut succeeded_indexes = Indexes::default();
        let mut failed_indexes: Option<Indexes> = None;
        let mut index_counts = BTreeMap::new();
        if self.indexed {
            prev_succeeded_indexes =
                Indexes::parse(self.status.completed_indexes.as_deref(), self.completions);
            succeeded_indexes = prev_succeeded_indexes.clone();
            for p in self
                .pods
                .iter()
                .filter(|p| phase(p) == "Succeeded" && has_finalizer(p))
            {
                if let Some(ix) = completion_index(p).filter(|i| *i < i64::from(self.completions)) {
                    succeeded_indexes.insert(ix);
                }
            }
            succeeded = succeeded_indexes.total();
            if spec.backoff_limit_per_index.is_some() {
                let (counts, mut fi) = self.index_failures();
                fi = fi.minus(&succeeded_indexes);
                index_counts = counts;
                if finished.is_none() {
                    let total = fi.total();
                    if spec
                        .max_failed_indexes
                        .is_some_and(|m| total > i64::from(m))
                    {
                        finished = Some(new_condition(
                            "FailureTarget",
                            "True",
                            "MaxFailedIndexesExceeded",
                            "Job has exceeded the specified maximal number of failed indexes",
                            self.now,
                        ));
                    } else if total > 0 && total + succeeded >= i64::from(self.completions) {
                        finished = Some(new_condition(
                            "FailureTarget",
                            "True",
                            "FailedIndexes",
                            "Job has failed indexes",
                            self.now,
                        ));
                    }
                }
                failed_indexes = Some(fi);
            }
            if finished.is_none() {
                if let Some(msg) = self.match_success_policy(&succeeded_indexes) {
                    finished = Some(new_condition(
                        "SuccessCriteriaMet",
                        "True",
                        "SuccessPolicy",
                        &msg,
                        self.now,
                    ));
                }
            }
        }

        if finished.is_some() {
            // Remove the active pods of a finished Job (their finalizers stay: they are
            // counted as failed once terminated, unless the Job succeeded).
            for p in &active_pods {
                self.delete_pod(p, false);
                if is_ready(p) {
                    ready -= 1;
                }
            }
            terminating += active;
            active = 0;
        } else if self.job.metadata.deletion_timestamp.is_none() {
            active = self.manage(
                &active_pods,
                active,
                &mut ready,
                &mut terminating,
                succeeded,
                &succeeded_indexes,
                failed_indexes.as_ref(),
                &index_counts,
            );
            let complete = match spec.completions {
                None => succeeded > 0 && active == 0,
                Some(c) => succeeded >= i64::from(c) && active == 0,
            };
            if complete {
                finished = Some(new_condition(
                    "SuccessCriteriaMet",
                    "True",
                    "CompletionsReached",
                    "Reached expected number of succeeded pods",
                    self.now,
                ));
            } else {
                let conditions = self.status.conditions.get_or_insert_with(Vec::new);
                if self.spec.suspend == Some(true) {
                    if ensure_condition(
                        conditions,
                        "Suspended",
                        "True",
                        "JobSuspended",
                        "Job suspended",
                        self.now,
                    ) {
                        self.d.events.push(event(
                            self.job,
                            "Normal",
                            "Suspended",
                            "Job suspended".into(),
                        ));
                    }
                } else if ensure_condition(
                    conditions,
                    "Suspended",
                    "False",
                    "JobResumed",
                    "Job resumed",
                    self.now,
                ) {
                    self.d
                        .events
                        .push(event(self.job, "Normal", "Resumed", "Job resumed".into()));
                    // The deadline counts from the resumption.
                    self.status.start_time = Some(Time(self.now));
                }
                if self.status.conditions.as_ref().is_some_and(Vec::is_empty) {
                    self.status.conditions = None;
                }
            }
        }
        self.status.active = (active > 0).then_some(to_i32(active));
        self.status.ready = Some(to_i32(ready.max(0)));
        self.status.terminating = Some(to_i32(terminating));
        self.track_and_remove_finalizers(
            finished,
            &prev_succeeded_indexes,
            succeeded_indexes,
            failed_indexes,
        );
        self.d
    }

    /// `pastBackoffLimitOnFailure`: with restartPolicy OnFailure, the container restarts of
    /// running and pending pods count as failures.
    fn past_backoff_limit_on_failure(&self) -> bool {
        let policy = self
            .spec
            .template
            .spec
            .as_ref()
            .and_then(|s| s.restart_policy.as_deref());
        if policy != Some("OnFailure") {
            return false;
        }
        let restarts: i64 = self
            .pods
            .iter()
            .filter(|p| matches!(phase(p), "Running" | "Pending"))
            .flat_map(|p| {
                p.status.iter().flat_map(|s| {
                    s.init_container_statuses
                        .iter()
                        .flatten()
                        .chain(s.container_statuses.iter().flatten())
                })
            })
            .map(|c| i64::from(c.restart_count))
            .sum();
        let limit = i64::from(self.spec.backoff_limit.unwrap_or(6));
        if limit == 0 {
            restarts > 0
        } else {
            restarts >= limit
        }
    }

    fn past_active_deadline(&self) -> bool {
        let (Some(ads), Some(start)) = (
            self.spec.active_deadline_seconds,
            self.status.start_time.as_ref(),
        ) else {
            return false;
        };
        if self.suspended() {
            return false;
        }
        self.now_ms.saturating_sub(millis(start)) >= ads.saturating_mul(1000)
    }

    /// `matchSuccessPolicy`: the first rule whose indexes/count the succeeded indexes meet.
    fn match_success_policy(&self, succeeded: &Indexes) -> Option<String> {
        let policy = self.spec.success_policy.as_ref()?;
        for (i, rule) in policy.rules.iter().enumerate() {
            let met = match (&rule.succeeded_indexes, rule.succeeded_count) {
                (Some(ix), count) => {
                    let want = Indexes::parse(Some(ix), self.completions);
                    let have = want.overlap(succeeded);
                    match count {
                        Some(c) => have >= i64::from(c),
                        None => have == want.total(),
                    }
                }
                (None, Some(c)) => succeeded.total() >= i64::from(c),
                (None, None) => false,
            };
            if met {
                return Some(format!("Matched rules at index {i}"));
            }
        }
        None
    }

    /// Delete a pod (`remove_finalizer`: first drop the tracking finalizer, as
    /// `deleteJobPods` does for pods that must not count as failures).
    fn delete_pod(&mut self, p: &Pod, remove_finalizer: bool) {
        if remove_finalizer && has_finalizer(p) {
            self.d
                .actions
                .push(Action::Update(Object::Pod(Box::new(without_finalizer(p)))));
        }
        let name = p.metadata.name.clone().unwrap_or_default();
        self.d.actions.push(Action::Delete {
            kind: Kind::Pod,
            namespace: p.metadata.namespace.clone().unwrap_or_default(),
            name: name.clone(),
            uid: p.metadata.uid.clone(),
            propagation: None,
        });
        self.d.events.push(event(
            self.job,
            "Normal",
            "SuccessfulDelete",
            format!("Deleted pod: {name}"),
        ));
    }

    /// `manageJob`: the active pods towards what the Job wants; returns the new active count.
    #[allow(clippy::too_many_arguments)]
    fn manage(
        &mut self,
        active_pods: &[&Pod],
        mut active: i64,
        ready: &mut i64,
        terminating: &mut i64,
        succeeded: i64,
        succeeded_indexes: &Indexes,
        failed_indexes: Option<&Indexes>,
        index_counts: &BTreeMap<i64, (usize, i64)>,
    ) -> i64 {
        let spec = self.spec;
        let parallelism = i64::from(spec.parallelism.unwrap_or(1));
        if self.suspended() {
            for p in active_pods {
                self.delete_pod(p, true);
                if is_ready(p) {
                    *ready -= 1;
                }
            }
            *terminating += active;
            return 0;
        }
        let want = match spec.completions {
            None => {
                if succeeded > 0 {
                    active
                } else {
                    parallelism
                }
            }
            Some(c) => (i64::from(c) - succeeded).min(parallelism).max(0),
        };
        // Indexed: duplicates and out-of-range indexes go first.
        let mut remove: Vec<&Pod> = Vec::new();
        let mut left: Vec<&Pod> = active_pods.to_vec();
        if self.indexed {
            let mut seen: BTreeMap<i64, &Pod> = BTreeMap::new();
            let mut keep = Vec::new();
            let mut sorted = active_pods.to_vec();
            // Keep the most advanced pod of an index.
            sorted.sort_by_key(|p| std::cmp::Reverse(removal_key(p)));
            for p in sorted {
                match completion_index(p).filter(|i| *i < i64::from(self.completions)) {
                    None => remove.push(p),
                    Some(i) if seen.contains_key(&i) || succeeded_indexes.contains(i) => {
                        remove.push(p)
                    }
                    Some(i) => {
                        seen.insert(i, p);
                        keep.push(p);
                    }
                }
            }
            left = keep;
        }
        let rm_at_least = usize::try_from((active - want).max(0)).unwrap_or(0);
        if remove.len() < rm_at_least {
            left.sort_by_key(|p| removal_key(p));
            let extra = rm_at_least - remove.len();
            remove.extend(left.into_iter().take(extra));
        }
        remove.truncate(MAX_CREATE_DELETE_PER_SYNC);
        if !remove.is_empty() {
            for p in &remove {
                self.delete_pod(p, true);
                if is_ready(p) {
                    *ready -= 1;
                }
            }
            let n = remove.len() as i64;
            *terminating += n;
            return active - n;
        }
        let replacing = if only_replace_failed(spec) {
            *terminating
        } else {
            0
        };
        let mut diff = want - replacing - active;
        if diff <= 0 {
            return active;
        }
        let per_index = spec.backoff_limit_per_index.is_some();
        if !per_index {
            let remaining = self.backoff_remaining();
            if remaining > 0 {
                self.requeue(remaining.max(1000));
                return active;
            }
        }
        diff = diff.min(MAX_CREATE_DELETE_PER_SYNC as i64);
        let mut indexes: Vec<Option<i64>> = Vec::new();
        if self.indexed {
            let busy: BTreeSet<i64> = active_pods
                .iter()
                .filter_map(|p| completion_index(p))
                .collect();
            let failed = failed_indexes.cloned().unwrap_or_default();
            // firstPendingIndexes: the lowest indexes neither done, failed nor running,
            // skipping whole intervals.
            let want_n = usize::try_from(diff).unwrap_or(0);
            let mut pending: Vec<i64> = Vec::with_capacity(want_n);
            let mut i = 0i64;
            while i < i64::from(self.completions) && pending.len() < want_n {
                if let Some(end) = succeeded_indexes.end_of(i).or_else(|| failed.end_of(i)) {
                    i = end + 1;
                    continue;
                }
                if !busy.contains(&i) {
                    pending.push(i);
                }
                i += 1;
            }
            if per_index {
                // Indexes still in their own back-off wait; the soonest decides the requeue.
                let mut min_wait: Option<i64> = None;
                pending.retain(|i| {
                    let wait = index_counts
                        .get(i)
                        .map_or(0, |(n, last)| self.remaining_for(*n, *last));
                    if wait > 0 {
                        min_wait = Some(min_wait.map_or(wait, |m: i64| m.min(wait)));
                    }
                    wait == 0
                });
                if pending.is_empty() {
                    if let Some(w) = min_wait {
                        self.requeue(w.max(1000));
                    }
                    return active;
                }
            }
            indexes = pending.into_iter().map(Some).collect();
        } else {
            indexes.resize(usize::try_from(diff).unwrap_or(0), None);
        }
        for ix in indexes {
            let failures = ix.and_then(|i| index_counts.get(&i)).map_or(0, |(n, _)| *n);
            let pod = self.pod_from_template(ix, per_index.then_some(failures));
            self.d
                .actions
                .push(Action::Create(Object::Pod(Box::new(pod))));
            active += 1;
        }
        active
    }

    /// `GetPodFromTemplate` plus the Job controller's additions.
    fn pod_from_template(&self, index: Option<i64>, index_failures: Option<usize>) -> Pod {
        let job = self.job;
        let name = job.metadata.name.clone().unwrap_or_default();
        let template = &self.spec.template;
        let tmeta = template.metadata.clone().unwrap_or_default();
        let mut spec = template.spec.clone().unwrap_or_default();
        let mut labels = tmeta.labels.clone();
        let mut annotations = tmeta.annotations.clone();
        let mut finalizers = tmeta.finalizers.clone().unwrap_or_default();
        if !finalizers.iter().any(|f| f == JOB_TRACKING_FINALIZER) {
            finalizers.push(JOB_TRACKING_FINALIZER.to_string());
        }
        let mut generate_name = format!("{name}-");
        if let Some(ix) = index {
            // addCompletionIndexEnvVariables: every init and regular container.
            for c in spec
                .init_containers
                .iter_mut()
                .flatten()
                .chain(spec.containers.iter_mut())
            {
                let env = c.env.get_or_insert_with(Vec::new);
                if !env.iter().any(|e| e.name == COMPLETION_INDEX_ENV) {
                    env.push(EnvVar {
                        name: COMPLETION_INDEX_ENV.into(),
                        value: None,
                        value_from: Some(EnvVarSource {
                            field_ref: Some(ObjectFieldSelector {
                                api_version: None,
                                field_path: format!("metadata.labels['{JOB_COMPLETION_INDEX}']"),
                            }),
                            ..Default::default()
                        }),
                    });
                }
            }
            let ix_s = ix.to_string();
            let a = annotations.get_or_insert_with(BTreeMap::new);
            a.insert(JOB_COMPLETION_INDEX.into(), ix_s.clone());
            if let Some(n) = index_failures {
                a.insert(JOB_INDEX_FAILURE_COUNT.into(), n.to_string());
            }
            labels
                .get_or_insert_with(BTreeMap::new)
                .insert(JOB_COMPLETION_INDEX.into(), ix_s.clone());
            spec.hostname = Some(format!("{name}-{ix}"));
            let suffix = format!("-{ix}-");
            let mut prefix = format!("{name}{suffix}");
            if prefix.len() > MAX_GENERATED_NAME_LENGTH {
                let keep = MAX_GENERATED_NAME_LENGTH.saturating_sub(suffix.len());
                let cut = name
                    .char_indices()
                    .map(|(i, _)| i)
                    .take_while(|i| *i <= keep)
                    .last()
                    .unwrap_or(0);
                prefix = format!("{}{suffix}", &name[..cut.min(name.len())]);
            }
            generate_name = prefix;
        }
        Pod {
            metadata: ObjectMeta {
                generate_name: Some(generate_name),
                namespace: job.metadata.namespace.clone(),
                labels,
                annotations,
                finalizers: Some(finalizers),
                owner_references: Some(vec![OwnerReference {
                    api_version: "batch/v1".into(),
                    kind: "Job".into(),
                    name,
                    uid: job.metadata.uid.clone().unwrap_or_default(),
                    controller: Some(true),
                    block_owner_deletion: Some(true),
                }]),
                ..ObjectMeta::default()
            },
            spec: Some(spec),
            status: None,
        }
    }

    /// `trackJobStatusAndRemoveFinalizers` + `enactJobFinished`, one status write.
    fn track_and_remove_finalizers(
        &mut self,
        mut finished: Option<JobCondition>,
        prev_succeeded_indexes: &Indexes,
        mut succeeded_indexes: Indexes,
        failed_indexes: Option<Indexes>,
    ) {
        let spec = self.spec;
        let with_finalizer: BTreeSet<String> = self
            .pods
            .iter()
            .filter(|p| has_finalizer(p))
            .map(|p| uid(p).to_string())
            .collect();
        // Uids whose finalizer is gone move into the counters.
        let mut u = self
            .status
            .uncounted_terminated_pods
            .clone()
            .unwrap_or_default();
        let mut us: Vec<String> = u.succeeded.take().unwrap_or_default();
        let mut uf: Vec<String> = u.failed.take().unwrap_or_default();
        let before = (us.len(), uf.len());
        us.retain(|x| with_finalizer.contains(x));
        uf.retain(|x| with_finalizer.contains(x));
        let mut succeeded =
            i64::from(self.status.succeeded.unwrap_or(0)) + (before.0 - us.len()) as i64;
        let failed = i64::from(self.status.failed.unwrap_or(0)) + (before.1 - uf.len()) as i64;
        let job_finishing_failed = finished
            .as_ref()
            .is_some_and(|c| c.type_ != "SuccessCriteriaMet");
        let mut remove: Vec<&Pod> = Vec::new();
        let deleting = self.job.metadata.deletion_timestamp.is_some();
        for p in self.pods.iter().copied().filter(|p| has_finalizer(p)) {
            let considered_failed = is_pod_failed(p, spec);
            let can_remove =
                deleting || finished.is_some() || phase(p) == "Succeeded" || considered_failed;
            if !can_remove {
                continue;
            }
            remove.push(p);
            let id = uid(p).to_string();
            if phase(p) == "Succeeded" && !uf.contains(&id) {
                if self.indexed {
                    // The index is the record; no uid needed.
                } else if !us.contains(&id) {
                    us.push(id);
                }
            } else if (considered_failed || job_finishing_failed)
                && !uf.contains(&id)
                && self.valid_index(p)
                && match_pod_failure_policy(spec, p).count
            {
                uf.push(id);
            }
            if us.len() + uf.len() >= MAX_UNCOUNTED_PODS {
                break;
            }
        }
        if self.indexed {
            succeeded_indexes.union(prev_succeeded_indexes);
            succeeded = succeeded_indexes.total();
            self.status.completed_indexes =
                Some(succeeded_indexes.render()).filter(|s| !s.is_empty());
            self.status.failed_indexes = failed_indexes.map(|f| f.render());
        }
        self.status.succeeded = (succeeded > 0).then_some(to_i32(succeeded));
        self.status.failed = (failed > 0).then_some(to_i32(failed));
        let conditions = self.status.conditions.get_or_insert_with(Vec::new);
        if let Some(c) = finished.as_mut() {
            match c.type_.as_str() {
                "FailureTarget" => {
                    if !conditions
                        .iter()
                        .any(|x| x.type_ == "FailureTarget" && x.status == "True")
                    {
                        conditions.push(c.clone());
                    }
                    *c = new_condition(
                        "Failed",
                        "True",
                        c.reason.as_deref().unwrap_or(""),
                        c.message.as_deref().unwrap_or(""),
                        self.now,
                    );
                }
                "SuccessCriteriaMet" => {
                    if !conditions
                        .iter()
                        .any(|x| x.type_ == "SuccessCriteriaMet" && x.status == "True")
                    {
                        conditions.push(c.clone());
                    }
                    *c = new_condition(
                        "Complete",
                        "True",
                        c.reason.as_deref().unwrap_or(""),
                        c.message.as_deref().unwrap_or(""),
                        self.now,
                    );
                }
                _ => {}
            }
        }
        // enactJobFinished: only once nothing is uncounted or terminating.
        let no_uncounted = us.is_empty() && uf.is_empty();
        let no_terminating = self.status.terminating.unwrap_or(0) == 0;
        let mut just_finished = None;
        if let (Some(c), true, true) = (finished.as_ref(), no_uncounted, no_terminating) {
            ensure_condition(
                conditions,
                &c.type_,
                "True",
                c.reason.as_deref().unwrap_or(""),
                c.message.as_deref().unwrap_or(""),
                self.now,
            );
            if c.type_ == "Complete" {
                self.status.completion_time = Some(Time(self.now));
            }
            just_finished = Some(c.clone());
        }
        if conditions.is_empty() {
            self.status.conditions = None;
        }
        self.status.uncounted_terminated_pods = Some(UncountedTerminatedPods {
            succeeded: (!us.is_empty()).then_some(us),
            failed: (!uf.is_empty()).then_some(uf),
        });
        if self.job.status.as_ref() != Some(&self.status) {
            let mut job = self.job.clone();
            job.status = Some(self.status.clone());
            // The status write goes before the finalizer removals (see the module docs).
            self.d
                .actions
                .insert(0, Action::UpdateStatus(Object::Job(Box::new(job))));
        }
        for p in remove {
            self.d
                .actions
                .push(Action::Update(Object::Pod(Box::new(without_finalizer(p)))));
        }
        if let Some(c) = just_finished {
            if c.type_ == "Complete" {
                if spec.completions.is_some_and(|n| succeeded > i64::from(n)) {
                    self.d.events.push(event(
                        self.job,
                        "Warning",
                        "TooManySucceededPods",
                        "Too many succeeded pods running after completion count reached".into(),
                    ));
                }
                self.d.events.push(event(
                    self.job,
                    "Normal",
                    "Completed",
                    "Job completed".into(),
                ));
            } else {
                self.d.events.push(event(
                    self.job,
                    "Warning",
                    c.reason.as_deref().unwrap_or(""),
                    c.message.clone().unwrap_or_default(),
                ));
            }
            let mut finished_job = self.job.clone();
            finished_job.status = Some(self.status.clone());
            let ttl = ttl_after_finished(&finished_job, self.now);
            if let Some(r) = ttl.requeue_after {
                self.requeue(dur_ms(r));
            } else if !ttl.actions.is_empty() {
                self.requeue(0);
            }
        }
    }
}

fn to_i32(v: i64) -> i32 {
    i32::try_from(v.clamp(0, i64::from(i32::MAX))).unwrap_or(i32::MAX)
}

#[cfg(test)]
mod tests;
