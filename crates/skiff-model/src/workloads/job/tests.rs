//! Tests of Job defaulting and validation against kube-apiserver's rules
//! (pkg/apis/batch/v1/defaults.go, pkg/apis/batch/validation/validation.go,
//! pkg/registry/batch/job/strategy.go).
#![allow(clippy::unwrap_used)]

use super::*;
use serde_json::json;

fn job(v: serde_json::Value) -> Job {
    serde_json::from_value(v).unwrap()
}

/// The API server's create path: defaults, prepare, uid, selector, validation.
fn create(mut j: Job) -> (Job, Vec<String>) {
    default_job(&mut j);
    prepare_for_create(&mut j);
    j.metadata.uid = Some("u-1".into());
    generate_selector(&mut j);
    let errs = validate_job(&j).iter().map(ToString::to_string).collect();
    (j, errs)
}

fn minimal() -> serde_json::Value {
    json!({
        "metadata": {"name": "pi"},
        "spec": {"template": {"spec": {"restartPolicy": "Never",
            "containers": [{"name": "c", "image": "busybox", "command": ["true"]}]}}},
    })
}

#[test]
fn defaults_follow_set_defaults_job() {
    let (j, errs) = create(job(minimal()));
    assert!(errs.is_empty(), "{errs:?}");
    let s = j.spec.unwrap();
    assert_eq!(
        (s.completions, s.parallelism, s.backoff_limit),
        (Some(1), Some(1), Some(6))
    );
    assert_eq!(s.completion_mode.as_deref(), Some("NonIndexed"));
    assert_eq!(s.suspend, Some(false));
    assert_eq!(
        s.pod_replacement_policy.as_deref(),
        Some("TerminatingOrFailed")
    );
    assert_eq!(
        s.template.spec.unwrap().termination_grace_period_seconds,
        Some(30)
    );
}

#[test]
fn parallelism_alone_leaves_completions_nil_work_queue() {
    let mut v = minimal();
    v["spec"]["parallelism"] = json!(3);
    let (j, _) = create(job(v));
    let s = j.spec.unwrap();
    assert_eq!((s.completions, s.parallelism), (None, Some(3)));
}

#[test]
fn backoff_limit_per_index_defaults_backoff_limit_to_max_int32() {
    let mut v = minimal();
    v["spec"]["completionMode"] = json!("Indexed");
    v["spec"]["completions"] = json!(2);
    v["spec"]["backoffLimitPerIndex"] = json!(1);
    let (j, errs) = create(job(v));
    assert!(errs.is_empty(), "{errs:?}");
    assert_eq!(j.spec.unwrap().backoff_limit, Some(i32::MAX));
}

#[test]
fn pod_failure_policy_defaults_replacement_failed_and_condition_status_true() {
    let mut v = minimal();
    v["spec"]["podFailurePolicy"] = json!({"rules": [
        {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]}]});
    let (j, errs) = create(job(v));
    assert!(errs.is_empty(), "{errs:?}");
    let s = j.spec.unwrap();
    assert_eq!(s.pod_replacement_policy.as_deref(), Some("Failed"));
    let rule = &s.pod_failure_policy.unwrap().rules[0];
    assert_eq!(
        rule.on_pod_conditions.as_ref().unwrap()[0]
            .status
            .as_deref(),
        Some("True")
    );
}

#[test]
fn generated_selector_and_template_labels_carry_uid_and_name() {
    let mut v = minimal();
    v["spec"]["template"]["metadata"] = json!({"labels": {"app": "x"}});
    let (j, errs) = create(job(v));
    assert!(errs.is_empty(), "{errs:?}");
    // The Job's own labels default to the template's (before the generated ones are added).
    assert_eq!(
        j.metadata
            .labels
            .as_ref()
            .unwrap()
            .get("app")
            .map(String::as_str),
        Some("x")
    );
    let s = j.spec.unwrap();
    let labels = s.template.metadata.unwrap().labels.unwrap();
    for (k, v) in [
        ("batch.kubernetes.io/controller-uid", "u-1"),
        ("controller-uid", "u-1"),
        ("batch.kubernetes.io/job-name", "pi"),
        ("job-name", "pi"),
        ("app", "x"),
    ] {
        assert_eq!(labels.get(k).map(String::as_str), Some(v), "{k}");
    }
    let sel = s.selector.unwrap().match_labels.unwrap();
    assert_eq!(sel.len(), 1);
    assert_eq!(
        sel.get("batch.kubernetes.io/controller-uid")
            .map(String::as_str),
        Some("u-1")
    );
}

#[test]
fn restart_policy_must_be_never_or_on_failure() {
    let mut v = minimal();
    v["spec"]["template"]["spec"]["restartPolicy"] = json!(null);
    let (_, errs) = create(job(v));
    assert_eq!(
        errs,
        vec!["spec.template.spec.restartPolicy: Required value: valid values: \"OnFailure\", \"Never\""]
    );
    let mut v = minimal();
    v["spec"]["template"]["spec"]["restartPolicy"] = json!("OnFailure");
    v["spec"]["podFailurePolicy"] = json!({"rules": [
        {"action": "FailJob", "onExitCodes": {"operator": "In", "values": [42]}}]});
    let (_, errs) = create(job(v));
    assert_eq!(
        errs,
        vec!["spec.template.spec.restartPolicy: Invalid value: \"OnFailure\": only \"Never\" is supported when podFailurePolicy is specified"]
    );
}

#[test]
fn a_user_selector_without_manual_selector_is_refused() {
    let mut v = minimal();
    v["spec"]["selector"] = json!({"matchLabels": {"app": "x"}});
    v["spec"]["template"]["metadata"] = json!({"labels": {"app": "x"}});
    let (_, errs) = create(job(v));
    assert_eq!(
        errs,
        vec![
            r#"spec.selector: Invalid value: {"matchLabels":{"app":"x","batch.kubernetes.io/controller-uid":"u-1"}}: `selector` not auto-generated"#
        ]
    );
}

#[test]
fn manual_selector_must_select_the_template() {
    let mut v = minimal();
    v["spec"]["manualSelector"] = json!(true);
    v["spec"]["selector"] = json!({"matchLabels": {"app": "x"}});
    v["spec"]["template"]["metadata"] = json!({"labels": {"app": "y"}});
    let (_, errs) = create(job(v));
    assert_eq!(
        errs,
        vec![
            r#"spec.template.metadata.labels: Invalid value: {"app":"y"}: `selector` does not match template `labels`"#
        ]
    );
}

#[test]
fn counts_are_non_negative_and_indexed_needs_completions() {
    let mut v = minimal();
    v["spec"]["parallelism"] = json!(-1);
    v["spec"]["backoffLimit"] = json!(-2);
    v["spec"]["completionMode"] = json!("Indexed");
    let (_, errs) = create(job(v));
    assert_eq!(
        errs,
        vec![
            "spec.parallelism: Invalid value: -1: must be greater than or equal to 0",
            "spec.backoffLimit: Invalid value: -2: must be greater than or equal to 0",
            "spec.completions: Required value: when completion mode is Indexed",
        ]
    );
}

#[test]
fn indexed_job_names_must_leave_room_for_the_index_hostname() {
    let mut v = minimal();
    v["metadata"]["name"] = json!("a".repeat(62));
    v["spec"]["completionMode"] = json!("Indexed");
    v["spec"]["completions"] = json!(10);
    let (_, errs) = create(job(v));
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(errs[0].starts_with("metadata.name: Invalid value: \"aaaa"));
    assert!(errs[0].ends_with(&format!(
        "will not able to create pod with invalid DNS label: {}-9",
        "a".repeat(62)
    )));
}

#[test]
fn pod_failure_policy_rules_are_checked() {
    let mut v = minimal();
    v["spec"]["podFailurePolicy"] = json!({"rules": [
        {"action": "FailIndex", "onExitCodes": {"operator": "In", "values": [3, 0, 3], "containerName": "nope"}},
        {"action": "Bogus"},
    ]});
    let (_, errs) = create(job(v));
    assert_eq!(
        errs,
        vec![
            "spec.podFailurePolicy.rules[0].action: Invalid value: \"FailIndex\": requires the backoffLimitPerIndex to be set",
            "spec.podFailurePolicy.rules[0].onExitCodes.containerName: Invalid value: \"nope\": must be one of the container or initContainer names in the pod template",
            "spec.podFailurePolicy.rules[0].onExitCodes.values[1]: Invalid value: 0: must not be 0 for the In operator",
            "spec.podFailurePolicy.rules[0].onExitCodes.values[2]: Duplicate value: 3",
            "spec.podFailurePolicy.rules[0].onExitCodes.values: Invalid value: [3,0,3]: must be ordered",
            "spec.podFailurePolicy.rules[1].action: Unsupported value: \"Bogus\": supported values: \"Count\", \"FailIndex\", \"FailJob\", \"Ignore\"",
            "spec.podFailurePolicy.rules[1]: Invalid value: specifying one of OnExitCodes and OnPodConditions is required",
        ]
    );
}

#[test]
fn indexes_parse_as_upstream() {
    assert_eq!(parse_indexes("1,3-5", 6), Ok(vec![(1, 1), (3, 5)]));
    assert_eq!(parse_indexes("", 6), Ok(vec![]));
    assert_eq!(parse_indexes("6", 6), Err("too large index: \"6\"".into()));
    assert_eq!(
        parse_indexes("3,1", 6),
        Err("non-increasing order, previous: 3, current: 1".into())
    );
    assert_eq!(
        parse_indexes("x", 6),
        Err("cannot convert string to integer for index: \"x\"".into())
    );
}

#[test]
fn update_keeps_completions_selector_and_template_immutable() {
    let (old, _) = create(job(minimal()));
    let mut new = old.clone();
    new.spec.as_mut().unwrap().completions = Some(2);
    new.spec
        .as_mut()
        .unwrap()
        .template
        .spec
        .as_mut()
        .unwrap()
        .containers[0]
        .image = Some("other".into());
    new.spec.as_mut().unwrap().parallelism = Some(5);
    let errs: Vec<String> = validate_job_update(&new, &old)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        errs,
        vec![
            "spec.completions: Invalid value: 2: field is immutable",
            "spec.template: Invalid value: core.PodTemplateSpec{...}: field is immutable",
        ]
    );
}

#[test]
fn a_suspended_unstarted_job_may_change_its_scheduling_directives() {
    let mut v = minimal();
    v["spec"]["suspend"] = json!(true);
    let (old, _) = create(job(v));
    let mut new = old.clone();
    new.spec
        .as_mut()
        .unwrap()
        .template
        .spec
        .as_mut()
        .unwrap()
        .node_selector = Some(
        [("disk".to_string(), "ssd".to_string())]
            .into_iter()
            .collect(),
    );
    assert!(validate_job_update(&new, &old).is_empty());
    let mut old_started = old.clone();
    old_started.status = Some(k8s_openapi::api::batch::v1::JobStatus {
        start_time: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
        )),
        ..Default::default()
    });
    assert_eq!(validate_job_update(&new, &old_started).len(), 1);
}

#[test]
fn status_updates_keep_counters_and_terminal_conditions() {
    let (mut old, _) = create(job(minimal()));
    old.status = Some(
        serde_json::from_value(json!({
            "succeeded": 2, "failed": 1,
            "conditions": [{"type": "Complete", "status": "True"}],
        }))
        .unwrap(),
    );
    let mut new = old.clone();
    new.status = Some(
        serde_json::from_value(json!({
            "succeeded": 1, "failed": 1, "ready": -1,
            "uncountedTerminatedPods": {"succeeded": ["a", ""], "failed": ["a"]},
        }))
        .unwrap(),
    );
    let errs: Vec<String> = validate_job_status_update(&new, &old)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        errs,
        vec![
            "status.ready: Invalid value: -1: must be greater than or equal to 0",
            "status.uncountedTerminatedPods.succeeded[1]: Invalid value: \"\": must not be empty",
            "status.uncountedTerminatedPods.failed[0]: Duplicate value: \"a\"",
            "status.conditions: Invalid value: cannot disable the terminal Complete=True condition",
            "status.succeeded: Invalid value: 1: cannot decrease the succeeded counter",
        ]
    );
}
