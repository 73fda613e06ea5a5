//! The Job controller on a simulated clock: a tiny in-memory API applies each decision's
//! actions (names and uids for created pods, deletion timestamps, finalizers), the test moves
//! pods through their phases, and each test proves one rule of upstream's
//! pkg/controller/job (file named in each test's comment).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateTerminated, ContainerStatus, PodCondition, PodStatus,
};
use k8s_openapi::jiff::Timestamp;
use serde_json::json;

const T0: i64 = 1_700_000_000_000;

struct Sim {
    job: Job,
    pods: Vec<Pod>,
    now_ms: i64,
    events: Vec<EventNote>,
    deleted_job: bool,
    next: u32,
    cfg: Config,
    last: Decision,
}

impl Sim {
    fn new(spec: serde_json::Value) -> Sim {
        let mut job: Job = serde_json::from_value(json!({
            "metadata": {"name": "pi", "namespace": "default", "uid": "job-uid"},
            "spec": spec,
        }))
        .unwrap();
        let t = spec_template();
        if job.spec.as_ref().unwrap().template.spec.is_none() {
            job.spec.as_mut().unwrap().template = t;
        }
        skiff_model::workloads::job::default_job(&mut job);
        skiff_model::workloads::job::generate_selector(&mut job);
        Sim {
            job,
            pods: Vec::new(),
            now_ms: T0,
            events: Vec::new(),
            deleted_job: false,
            next: 0,
            cfg: Config::default(),
            last: Decision::default(),
        }
    }

    fn now(&self) -> Now {
        Timestamp::from_millisecond(self.now_ms).unwrap()
    }

    fn advance(&mut self, secs: f64) {
        self.now_ms += (secs * 1000.0) as i64;
    }

    /// One reconcile, its actions applied in order.
    fn step(&mut self) -> Decision {
        let d = reconcile_with(&self.job, &self.pods, self.now(), &self.cfg);
        for a in &d.actions {
            match a {
                Action::Create(Object::Pod(p)) => {
                    let mut p = p.as_ref().clone();
                    self.next += 1;
                    let name = format!(
                        "{}{:05}",
                        p.metadata.generate_name.clone().unwrap(),
                        self.next
                    );
                    p.metadata.name = Some(name.clone());
                    p.metadata.uid = Some(format!("pod-uid-{}", self.next));
                    p.metadata.creation_timestamp = Some(Time(self.now()));
                    p.status = Some(PodStatus {
                        phase: Some("Pending".into()),
                        ..Default::default()
                    });
                    self.events.push(created_event(&self.job, &name));
                    self.pods.push(p);
                }
                Action::Update(Object::Pod(p)) => {
                    let i = self.index_of(p.metadata.uid.as_deref().unwrap());
                    // Only metadata changes through Update here (finalizers).
                    self.pods[i].metadata.finalizers = p.metadata.finalizers.clone();
                }
                Action::UpdateStatus(Object::Job(j)) => self.job.status = j.status.clone(),
                Action::Delete {
                    kind: Kind::Pod,
                    uid,
                    ..
                } => {
                    let i = self.index_of(uid.as_deref().unwrap());
                    let p = &mut self.pods[i];
                    if is_terminal(p) && !has_finalizer(p) {
                        self.pods.remove(i);
                    } else {
                        p.metadata.deletion_timestamp =
                            Some(Time(Timestamp::from_millisecond(self.now_ms).unwrap()));
                    }
                }
                Action::Delete {
                    kind: Kind::Job,
                    propagation,
                    ..
                } => {
                    assert_eq!(*propagation, Some(Propagation::Background));
                    self.deleted_job = true;
                }
                other => panic!("unexpected action {other:?}"),
            }
        }
        self.events.extend(d.events.iter().cloned());
        self.last = d.clone();
        d
    }

    /// Reconciles until a decision asks for nothing (what watch events would cause).
    fn settle(&mut self) {
        for _ in 0..20 {
            if self.step().actions.is_empty() {
                return;
            }
        }
        panic!("no fixed point");
    }

    fn index_of(&self, uid: &str) -> usize {
        self.pods
            .iter()
            .position(|p| p.metadata.uid.as_deref() == Some(uid))
            .unwrap()
    }

    fn live(&self) -> Vec<usize> {
        (0..self.pods.len())
            .filter(|i| is_active(&self.pods[*i]))
            .collect()
    }

    /// Every live pod's regular container ended with `code` (the pod's phase as a kubelet sets
    /// it with restartPolicy Never).
    fn finish(&mut self, i: usize, code: i32) {
        let at = Time(self.now());
        let p = &mut self.pods[i];
        let st = p.status.get_or_insert_with(Default::default);
        st.phase = Some(if code == 0 { "Succeeded" } else { "Failed" }.into());
        st.container_statuses = Some(vec![ContainerStatus {
            name: "c".into(),
            state: Some(ContainerState {
                terminated: Some(ContainerStateTerminated {
                    exit_code: code,
                    finished_at: Some(at),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }]);
    }

    fn finish_all_live(&mut self, code: i32) {
        for i in self.live() {
            self.finish(i, code);
        }
    }

    /// The node ends the pods being deleted (they fail).
    fn terminate_deleted(&mut self) {
        for i in 0..self.pods.len() {
            if is_terminating(&self.pods[i]) {
                self.finish(i, 137);
            }
        }
    }

    fn status(&self) -> JobStatus {
        self.job.status.clone().unwrap_or_default()
    }

    fn condition(&self, t: &str) -> Option<JobCondition> {
        self.status()
            .conditions
            .unwrap_or_default()
            .into_iter()
            .find(|c| c.type_ == t && c.status == "True")
    }

    fn reasons(&self) -> Vec<String> {
        self.events
            .iter()
            .map(|e| format!("{} {}", e.reason, e.message))
            .collect()
    }
}

fn spec_template() -> k8s_openapi::api::core::v1::PodTemplateSpec {
    serde_json::from_value(json!({"spec": {"restartPolicy": "Never",
        "containers": [{"name": "c", "image": "busybox", "command": ["true"]}]}}))
    .unwrap()
}

/// job_controller.go manageJob + controller_utils.go GetPodFromTemplate: as many pods as
/// parallelism allows, named `<job>-…`, with the template's labels, the tracking finalizer and
/// a controller ownerReference blocking the owner's deletion.
#[test]
fn creates_parallelism_pods_owned_and_tracked() {
    let mut s = Sim::new(json!({"completions": 5, "parallelism": 2}));
    s.step();
    assert_eq!(s.pods.len(), 2);
    let p = &s.pods[0];
    assert_eq!(p.metadata.generate_name.as_deref(), Some("pi-"));
    assert_eq!(
        p.metadata.finalizers.as_deref(),
        Some(&["batch.kubernetes.io/job-tracking".to_string()][..])
    );
    let r = &p.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (r.kind.as_str(), r.name.as_str(), r.uid.as_str()),
        ("Job", "pi", "job-uid")
    );
    assert_eq!(
        (r.controller, r.block_owner_deletion),
        (Some(true), Some(true))
    );
    let labels = p.metadata.labels.as_ref().unwrap();
    assert_eq!(
        labels
            .get("batch.kubernetes.io/controller-uid")
            .map(String::as_str),
        Some("job-uid")
    );
    assert_eq!(labels.get("job-name").map(String::as_str), Some("pi"));
    assert_eq!(s.status().active, Some(2));
    assert!(s.status().start_time.is_some());
    assert_eq!(s.reasons()[0], "SuccessfulCreate Created pod: pi-00001");
    // Nothing more while they run.
    assert!(s.step().actions.is_empty());
}

/// job_controller.go trackJobStatusAndRemoveFinalizers/enactJobFinished: a finished pod goes
/// through uncountedTerminatedPods before its finalizer is removed, then into the counter;
/// SuccessCriteriaMet comes first, Complete (with completionTime) once nothing is uncounted.
#[test]
fn completion_goes_through_uncounted_pods_and_success_criteria_met() {
    let mut s = Sim::new(json!({}));
    s.step();
    s.finish(0, 0);
    let d = s.step();
    // The status write comes before the finalizer removal.
    assert!(
        matches!(d.actions[0], Action::UpdateStatus(_)),
        "{:?}",
        d.actions
    );
    assert!(matches!(d.actions[1], Action::Update(_)));
    let st = s.status();
    assert_eq!(
        st.uncounted_terminated_pods.unwrap().succeeded,
        Some(vec!["pod-uid-1".to_string()])
    );
    assert_eq!(st.succeeded, None);
    assert!(s.condition("SuccessCriteriaMet").is_some());
    assert!(s.condition("Complete").is_none());
    s.step();
    let st = s.status();
    assert_eq!(st.succeeded, Some(1));
    assert_eq!(
        st.uncounted_terminated_pods,
        Some(UncountedTerminatedPods::default())
    );
    let c = s.condition("Complete").expect("Complete");
    assert_eq!(c.reason.as_deref(), Some("CompletionsReached"));
    assert_eq!(
        c.message.as_deref(),
        Some("Reached expected number of succeeded pods")
    );
    assert!(st.completion_time.is_some());
    assert!(s.reasons().contains(&"Completed Job completed".to_string()));
    assert!(!has_finalizer(&s.pods[0]));
    // Finished: nothing more.
    assert!(s.step().actions.is_empty());
}

/// manageJob: completions 3, parallelism 2 → never more than 2 active, never more pods than
/// completions left.
#[test]
fn completions_three_parallelism_two() {
    let mut s = Sim::new(json!({"completions": 3, "parallelism": 2}));
    s.settle();
    assert_eq!(s.live().len(), 2);
    s.finish(0, 0);
    s.settle();
    assert_eq!(
        s.live().len(),
        2,
        "one replacement for the remaining 2 completions"
    );
    s.finish_all_live(0);
    s.settle();
    assert_eq!(s.pods.len(), 3);
    assert_eq!(s.status().succeeded, Some(3));
    assert!(s.condition("Complete").is_some());
}

/// backoff_utils.go: the replacement of a failed pod waits 10 s, then 20 s after a second
/// consecutive failure; a success resets the count.
#[test]
fn replacement_back_off_doubles_from_ten_seconds() {
    let mut s = Sim::new(json!({"backoffLimit": 5}));
    s.settle();
    s.finish(0, 1);
    s.settle();
    assert_eq!(s.live().len(), 0, "no replacement yet");
    assert_eq!(s.last.requeue_after, Some(Duration::from_secs(10)));
    s.advance(9.0);
    s.settle();
    assert_eq!(s.live().len(), 0);
    s.advance(1.0);
    s.settle();
    assert_eq!(s.live().len(), 1, "replaced after 10 s");
    let i = s.live()[0];
    s.finish(i, 1);
    s.settle();
    assert_eq!(s.last.requeue_after, Some(Duration::from_secs(20)));
    assert_eq!(s.status().failed, Some(2));
}

/// job_controller.go: failed > backoffLimit → FailureTarget(BackoffLimitExceeded), then
/// Failed with the same reason once the pods are gone; the event is the condition's.
#[test]
fn backoff_limit_exceeded_fails_the_job() {
    let mut s = Sim::new(json!({"backoffLimit": 1}));
    s.settle();
    s.finish(0, 1);
    s.settle();
    s.advance(10.0);
    s.settle();
    let i = s.live()[0];
    s.finish(i, 2);
    s.settle();
    let st = s.status();
    assert_eq!(st.failed, Some(2));
    assert!(s.condition("FailureTarget").is_some());
    let f = s.condition("Failed").expect("Failed");
    assert_eq!(f.reason.as_deref(), Some("BackoffLimitExceeded"));
    assert_eq!(
        f.message.as_deref(),
        Some("Job has reached the specified backoff limit")
    );
    assert!(s
        .reasons()
        .contains(&"BackoffLimitExceeded Job has reached the specified backoff limit".to_string()));
    assert!(st.completion_time.is_none());
    assert_eq!(
        s.events
            .iter()
            .find(|e| e.reason == "BackoffLimitExceeded")
            .unwrap()
            .type_,
        "Warning"
    );
}

/// job_controller.go pastActiveDeadline: requeued for the deadline; past it, the active pods
/// are deleted and the Job fails with DeadlineExceeded only after they terminated.
#[test]
fn active_deadline_deletes_pods_and_fails_after_they_end() {
    let mut s = Sim::new(json!({"activeDeadlineSeconds": 30, "parallelism": 2, "completions": 4}));
    s.settle();
    assert_eq!(s.last.requeue_after, Some(Duration::from_secs(30)));
    s.advance(30.0);
    s.step();
    assert!(s.condition("FailureTarget").is_some());
    assert!(s.condition("Failed").is_none(), "pods still terminating");
    assert_eq!(s.status().terminating, Some(2));
    assert_eq!(s.status().active, None);
    assert!(s
        .reasons()
        .iter()
        .any(|r| r.starts_with("SuccessfulDelete Deleted pod: pi-")));
    s.terminate_deleted();
    s.settle();
    let f = s.condition("Failed").expect("Failed");
    assert_eq!(f.reason.as_deref(), Some("DeadlineExceeded"));
    assert_eq!(
        f.message.as_deref(),
        Some("Job was active longer than specified deadline")
    );
    assert_eq!(
        s.status().failed,
        Some(2),
        "the deleted pods count as failed"
    );
}

/// pod_failure_policy.go: FailJob on a matching exit code fails the Job at once with the
/// rule's message; Ignore does not count towards backoffLimit.
#[test]
fn pod_failure_policy_fail_job_and_ignore() {
    let policy = json!({"rules": [
        {"action": "FailJob", "onExitCodes": {"containerName": "c", "operator": "In", "values": [42]}},
        {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]},
    ]});
    let mut s = Sim::new(json!({"backoffLimit": 0, "podFailurePolicy": policy.clone()}));
    s.settle();
    // A disruption: ignored, not counted towards backoffLimit 0.
    s.finish(0, 137);
    s.pods[0].status.as_mut().unwrap().conditions = Some(vec![PodCondition {
        type_: "DisruptionTarget".into(),
        status: "True".into(),
        ..Default::default()
    }]);
    s.settle();
    assert_eq!(s.status().failed, None);
    assert!(s.condition("FailureTarget").is_none());
    // The ignored failure still starts the replacement back-off (backoff_utils.go counts
    // every failed pod), so the replacement comes after 10 s.
    s.advance(10.0);
    s.settle();
    let i = s.live()[0];
    s.finish(i, 42);
    s.settle();
    let f = s.condition("Failed").expect("Failed");
    assert_eq!(f.reason.as_deref(), Some("PodFailurePolicy"));
    assert_eq!(
        f.message.as_deref(),
        Some(format!("Container c for pod default/{} failed with exit code 42 matching FailJob rule at index 0", s.pods[i].metadata.name.as_deref().unwrap()).as_str())
    );
}

/// indexed_job_utils.go: Indexed pods are `<job>-<i>-…` with the index annotation and label,
/// JOB_COMPLETION_INDEX from the downward API, hostname `<job>-<i>`; completedIndexes lists
/// the done ones.
#[test]
fn indexed_pods_carry_their_index() {
    let mut s = Sim::new(json!({"completionMode": "Indexed", "completions": 3, "parallelism": 3}));
    s.settle();
    assert_eq!(s.pods.len(), 3);
    for (i, p) in s.pods.iter().enumerate() {
        let ix = i.to_string();
        assert_eq!(
            p.metadata.generate_name.as_deref(),
            Some(format!("pi-{i}-").as_str())
        );
        assert_eq!(
            p.metadata
                .annotations
                .as_ref()
                .unwrap()
                .get(JOB_COMPLETION_INDEX),
            Some(&ix)
        );
        assert_eq!(
            p.metadata
                .labels
                .as_ref()
                .unwrap()
                .get(JOB_COMPLETION_INDEX),
            Some(&ix)
        );
        let spec = p.spec.as_ref().unwrap();
        assert_eq!(spec.hostname.as_deref(), Some(format!("pi-{i}").as_str()));
        let env = &spec.containers[0].env.as_ref().unwrap()[0];
        assert_eq!(env.name, "JOB_COMPLETION_INDEX");
        assert_eq!(
            env.value_from
                .as_ref()
                .unwrap()
                .field_ref
                .as_ref()
                .unwrap()
                .field_path,
            "metadata.labels['batch.kubernetes.io/job-completion-index']"
        );
    }
    s.finish(0, 0);
    s.finish(2, 0);
    s.settle();
    assert_eq!(s.status().completed_indexes.as_deref(), Some("0,2"));
    assert_eq!(s.status().succeeded, Some(2));
    s.finish(1, 1);
    s.advance(10.0);
    s.settle();
    let i = s.live()[0];
    assert_eq!(
        completion_index(&s.pods[i]),
        Some(1),
        "the failed index is retried"
    );
    s.finish(i, 0);
    s.settle();
    assert_eq!(s.status().completed_indexes.as_deref(), Some("0-2"));
    assert!(s.condition("Complete").is_some());
}

/// job_controller.go: with completions unset (a work queue), the Job completes once a pod
/// succeeded and none is active; no new pods start after the first success.
#[test]
fn work_queue_completes_after_first_success_and_the_rest_ending() {
    let mut s = Sim::new(json!({"parallelism": 2}));
    s.settle();
    assert_eq!(s.live().len(), 2);
    s.finish(0, 0);
    s.settle();
    assert_eq!(s.live().len(), 1, "the other keeps running, no replacement");
    assert!(s.condition("Complete").is_none());
    s.finish(1, 0);
    s.settle();
    assert!(s.condition("Complete").is_some());
    assert_eq!(s.status().succeeded, Some(2));
}

/// manageJob suspended branch: active pods deleted (finalizer removed first, so not failures),
/// Suspended=True; resuming recreates them, Suspended=False JobResumed, startTime reset.
#[test]
fn suspend_deletes_active_pods_and_resume_restarts() {
    let mut s = Sim::new(json!({"parallelism": 2, "completions": 2}));
    s.settle();
    s.job.spec.as_mut().unwrap().suspend = Some(true);
    s.step();
    assert_eq!(s.live().len(), 0);
    assert!(s.pods.iter().all(|p| !has_finalizer(p)));
    let c = s.condition("Suspended").expect("Suspended");
    assert_eq!(
        (c.reason.as_deref(), c.message.as_deref()),
        (Some("JobSuspended"), Some("Job suspended"))
    );
    s.terminate_deleted();
    s.settle();
    assert_eq!(s.status().failed, None, "suspended pods are no failures");
    s.advance(60.0);
    s.job.spec.as_mut().unwrap().suspend = Some(false);
    s.settle();
    assert_eq!(s.live().len(), 2);
    let st = s.status();
    let c = st
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_ == "Suspended")
        .unwrap();
    assert_eq!(
        (c.status.as_str(), c.reason.as_deref()),
        ("False", Some("JobResumed"))
    );
    assert_eq!(st.start_time.unwrap().0.as_millisecond(), s.now_ms);
    assert!(s.reasons().contains(&"Resumed Job resumed".to_string()));
}

/// ttlafterfinished controller: the finished Job is deleted (Background) ttl seconds after
/// its Complete condition; before that the decision asks to look again then.
#[test]
fn ttl_deletes_the_finished_job_in_background() {
    let mut s = Sim::new(json!({"ttlSecondsAfterFinished": 5}));
    s.settle();
    s.finish(0, 0);
    s.settle();
    assert!(s.condition("Complete").is_some());
    let d = s.step();
    assert_eq!(d.requeue_after, Some(Duration::from_secs(5)));
    assert!(!s.deleted_job);
    s.advance(5.0);
    s.step();
    assert!(s.deleted_job);
}

/// manageJob: lowering parallelism deletes the extra pods (not-ready first), finalizers
/// removed so they do not count as failures.
#[test]
fn extra_pods_are_deleted_when_parallelism_drops() {
    let mut s = Sim::new(json!({"parallelism": 3, "completions": 10}));
    s.settle();
    s.job.spec.as_mut().unwrap().parallelism = Some(1);
    s.step();
    assert_eq!(s.live().len(), 1);
    s.terminate_deleted();
    s.settle();
    assert_eq!(s.status().failed, None);
    assert_eq!(s.live().len(), 1);
}

/// job_controller.go pastBackoffLimitOnFailure: with restartPolicy OnFailure, container
/// restarts of running pods reaching backoffLimit fail the Job.
#[test]
fn on_failure_restarts_count_against_backoff_limit() {
    let mut s = Sim::new(
        json!({"backoffLimit": 2, "template": {"spec": {"restartPolicy": "OnFailure",
        "containers": [{"name": "c", "image": "busybox"}]}}}),
    );
    s.settle();
    let st = s.pods[0].status.as_mut().unwrap();
    st.phase = Some("Running".into());
    st.container_statuses = Some(vec![ContainerStatus {
        name: "c".into(),
        restart_count: 2,
        ..Default::default()
    }]);
    s.step();
    let c = s.condition("FailureTarget").expect("FailureTarget");
    assert_eq!(c.reason.as_deref(), Some("BackoffLimitExceeded"));
}

/// job_controller.go isPodFailed: with podReplacementPolicy Failed, a terminating pod is not
/// replaced until it has failed.
#[test]
fn replacement_policy_failed_waits_for_terminating_pods() {
    let mut s = Sim::new(json!({"podReplacementPolicy": "Failed", "backoffLimit": 3}));
    s.settle();
    s.pods[0].metadata.deletion_timestamp = Some(Time(s.now()));
    s.settle();
    assert_eq!(s.pods.len(), 1, "no replacement while terminating");
    assert_eq!(s.status().terminating, Some(1));
    s.finish(0, 137);
    s.advance(10.0);
    s.settle();
    assert_eq!(s.live().len(), 1);
}

/// success_policy.go: an Indexed Job with a successPolicy succeeds when the rule's indexes
/// succeeded, deleting the rest.
#[test]
fn success_policy_ends_indexed_job_early() {
    let mut s = Sim::new(
        json!({"completionMode": "Indexed", "completions": 3, "parallelism": 3,
        "successPolicy": {"rules": [{"succeededIndexes": "0"}]}}),
    );
    s.settle();
    s.finish(0, 0);
    s.step();
    let c = s
        .condition("SuccessCriteriaMet")
        .expect("SuccessCriteriaMet");
    assert_eq!(
        (c.reason.as_deref(), c.message.as_deref()),
        (Some("SuccessPolicy"), Some("Matched rules at index 0"))
    );
    s.terminate_deleted();
    s.settle();
    assert!(s.condition("Complete").is_some());
    assert_eq!(
        s.status().failed,
        None,
        "pods of a succeeded Job are no failures"
    );
}

/// indexed_job_utils.go orderedIntervals: intervals stay intervals (a status may name a
/// billion indexes), merge when adjacent, and render as upstream.
#[test]
fn index_intervals_merge_and_stay_small() {
    let mut ix = Indexes::parse(Some("0-999999999,x,5-3"), i32::MAX);
    assert_eq!(ix.total(), 1_000_000_000);
    ix.insert(1_000_000_000);
    assert_eq!(ix.render(), "0-1000000000");
    let a = Indexes::parse(Some("1,3-5,7"), 10);
    assert_eq!(a.render(), "1,3-5,7");
    let b = Indexes::parse(Some("4,7-9"), 10);
    assert_eq!(a.minus(&b).render(), "1,3,5");
    assert_eq!(a.overlap(&b), 2);
    assert_eq!(Indexes::parse(Some("8-12"), 10).render(), "8-9");
}
