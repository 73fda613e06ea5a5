//! batch/v1 Job: `SetDefaults_Job` (pkg/apis/batch/v1/defaults.go), the job strategy's create
//! preparation and selector generation (pkg/registry/batch/job/strategy.go) and
//! `ValidateJob`/`ValidateJobUpdate` (pkg/apis/batch/validation/validation.go), current
//! upstream with its default feature gates (JobPodReplacementPolicy, JobSuccessPolicy,
//! JobBackoffLimitPerIndex, JobManagedBy, ElasticIndexedJob, PodIndexLabel all on).
//!
//! Order on create, as kube-apiserver does it: [`default_job`] (decoding), then the registry's
//! [`prepare_for_create`], the uid set by the storage layer, [`generate_selector`] (done by the
//! strategy's `Validate` before validating), then [`validate_job`].

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::batch::v1::{Job, JobSpec, PodFailurePolicyRule, SuccessPolicyRule};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::template::{
    default_pod_template, json_value, selector_json, selector_matches, template_labels,
    validate_pod_template,
};
use crate::field::{BadValue, ErrorList, FieldError, Path};
use crate::validation::{self, names};

/// The selector label the API server generates (`batch.ControllerUidLabel`).
pub const CONTROLLER_UID_LABEL: &str = "batch.kubernetes.io/controller-uid";
/// `batch.JobNameLabel`.
pub const JOB_NAME_LABEL: &str = "batch.kubernetes.io/job-name";
/// `batch.LegacyControllerUidLabel`.
pub const LEGACY_CONTROLLER_UID_LABEL: &str = "controller-uid";
/// `batch.LegacyJobNameLabel`.
pub const LEGACY_JOB_NAME_LABEL: &str = "job-name";
/// Annotation and label of an Indexed Job's pods (`batch.JobCompletionIndexAnnotation`).
pub const JOB_COMPLETION_INDEX: &str = "batch.kubernetes.io/job-completion-index";
/// Per-index failure count annotation (`batch.JobIndexFailureCountAnnotation`).
pub const JOB_INDEX_FAILURE_COUNT: &str = "batch.kubernetes.io/job-index-failure-count";
/// The finalizer the Job controller puts on its pods until it has counted them.
pub const JOB_TRACKING_FINALIZER: &str = "batch.kubernetes.io/job-tracking";

/// `maxParallelismForIndexedJob`.
const MAX_PARALLELISM_INDEXED: i32 = 100_000;
/// `maxFailedIndexesForIndexedJob`.
const MAX_FAILED_INDEXES: i32 = 100_000;
const COMPLETIONS_SOFT_LIMIT: i32 = 100_000;
const PARALLELISM_LIMIT_HIGH_COMPLETIONS: i32 = 10_000;
const MAX_FAILED_INDEXES_HIGH_COMPLETIONS: i32 = 10_000;
const MAX_POD_FAILURE_POLICY_RULES: usize = 20;
const MAX_ON_EXIT_CODES_VALUES: usize = 255;
const MAX_ON_POD_CONDITIONS_PATTERNS: usize = 20;
const MAX_MANAGED_BY_LENGTH: usize = 63;
const MAX_SUCCEEDED_INDEXES_LENGTH: usize = 64 * 1024;
const MAX_SUCCESS_POLICY_RULES: usize = 20;

/// Defaults a Job on create (`SetDefaults_Job` plus the template's pod spec): completions and
/// parallelism 1 when both are unset (parallelism alone set: completions stay nil, the
/// work-queue mode), backoffLimit 6 (MaxInt32 with backoffLimitPerIndex), the Job's labels from
/// the template's when it has none, completionMode NonIndexed, suspend false, onPodConditions
/// status True, podReplacementPolicy Failed with a podFailurePolicy else TerminatingOrFailed.
pub fn default_job(job: &mut Job) {
    let spec = job.spec.get_or_insert_with(JobSpec::default);
    if spec.completions.is_none() && spec.parallelism.is_none() {
        spec.completions = Some(1);
        spec.parallelism = Some(1);
    }
    if spec.parallelism.is_none() {
        spec.parallelism = Some(1);
    }
    if spec.backoff_limit.is_none() {
        spec.backoff_limit = Some(if spec.backoff_limit_per_index.is_some() {
            i32::MAX
        } else {
            6
        });
    }
    if let Some(labels) = template_labels(&spec.template) {
        if job.metadata.labels.as_ref().is_none_or(BTreeMap::is_empty) {
            job.metadata.labels = Some(labels.clone());
        }
    }
    if spec.completion_mode.is_none() {
        spec.completion_mode = Some("NonIndexed".into());
    }
    if spec.suspend.is_none() {
        spec.suspend = Some(false);
    }
    if let Some(policy) = spec.pod_failure_policy.as_mut() {
        for rule in &mut policy.rules {
            for pattern in rule.on_pod_conditions.iter_mut().flatten() {
                if pattern.status.as_deref().unwrap_or("").is_empty() {
                    pattern.status = Some("True".into());
                }
            }
        }
    }
    if spec.pod_replacement_policy.is_none() {
        spec.pod_replacement_policy = Some(if spec.pod_failure_policy.is_some() {
            "Failed".into()
        } else {
            "TerminatingOrFailed".into()
        });
    }
    default_pod_template(&mut spec.template);
}

/// The job strategy's `PrepareForCreate`: the status is the server's (empty), generation 1.
pub fn prepare_for_create(job: &mut Job) {
    job.status = None;
    job.metadata.generation = Some(1);
}

/// The strategy's `generateSelector` (unless `manualSelector: true`): the template gets the
/// labels `batch.kubernetes.io/job-name`, `job-name` (the Job's name),
/// `batch.kubernetes.io/controller-uid` and `controller-uid` (its uid) where not set, and
/// the selector matches `batch.kubernetes.io/controller-uid`. Call it once the uid is set.
/// A label the user set to something else stays, for validation to refuse.
pub fn generate_selector(job: &mut Job) {
    let name = job.metadata.name.clone().unwrap_or_default();
    let uid = job.metadata.uid.clone().unwrap_or_default();
    let spec = job.spec.get_or_insert_with(JobSpec::default);
    if spec.manual_selector == Some(true) {
        return;
    }
    let meta = spec.template.metadata.get_or_insert_with(Default::default);
    let labels = meta.labels.get_or_insert_with(BTreeMap::new);
    for key in [LEGACY_JOB_NAME_LABEL, JOB_NAME_LABEL] {
        labels.entry(key.into()).or_insert_with(|| name.clone());
    }
    for key in [LEGACY_CONTROLLER_UID_LABEL, CONTROLLER_UID_LABEL] {
        labels.entry(key.into()).or_insert_with(|| uid.clone());
    }
    let selector = spec.selector.get_or_insert_with(LabelSelector::default);
    selector
        .match_labels
        .get_or_insert_with(BTreeMap::new)
        .entry(CONTROLLER_UID_LABEL.into())
        .or_insert(uid);
}

/// `ValidateJob` (create), with `RequirePrefixedLabels` as on every new Job.
pub fn validate_job(job: &Job) -> ErrorList {
    let default_spec = JobSpec::default();
    let spec = job.spec.as_ref().unwrap_or(&default_spec);
    let mut errs = validation::meta::validate_object_meta(&job.metadata, &Path::new("metadata"));
    errs.extend(validate_generated_selector(job, spec));
    errs.extend(validate_job_spec(spec, &Path::new("spec")));
    let name = job.metadata.name.as_deref().unwrap_or("");
    if spec.completion_mode.as_deref() == Some("Indexed") {
        if let Some(c) = spec.completions.filter(|c| *c > 0) {
            // The controller names Indexed pods' hostnames `<job>-<index>`.
            let max_hostname = format!("{name}-{}", c - 1);
            if !names::is_dns1123_label(&max_hostname).is_empty() {
                errs.push(FieldError::invalid(
                    &Path::new("metadata").child("name"),
                    name,
                    format!("will not able to create pod with invalid DNS label: {max_hostname}"),
                ));
            }
        }
    }
    errs
}

/// `validateGeneratedSelector` with the prefixed labels required.
fn validate_generated_selector(job: &Job, spec: &JobSpec) -> ErrorList {
    let mut errs = ErrorList::new();
    if spec.manual_selector == Some(true) {
        return errs;
    }
    let Some(selector) = spec.selector.as_ref() else {
        return errs;
    };
    let uid = job.metadata.uid.as_deref().unwrap_or("");
    let name = job.metadata.name.as_deref().unwrap_or("");
    if uid.is_empty() {
        errs.push(FieldError::required(
            &Path::new("metadata").child("uid"),
            "",
        ));
    }
    let meta_path = Path::new("spec").child("template").child("metadata");
    let labels = template_labels(&spec.template);
    for (key, want) in [
        (LEGACY_CONTROLLER_UID_LABEL, uid),
        (LEGACY_JOB_NAME_LABEL, name),
        (CONTROLLER_UID_LABEL, uid),
        (JOB_NAME_LABEL, name),
    ] {
        errs.extend(validate_has_label(labels, &meta_path, key, want));
    }
    let expected: BTreeMap<String, String> = [
        (CONTROLLER_UID_LABEL, uid),
        (JOB_NAME_LABEL, name),
        (LEGACY_CONTROLLER_UID_LABEL, uid),
        (LEGACY_JOB_NAME_LABEL, name),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    if selector_is_valid(selector) && !selector_matches(selector, Some(&expected)) {
        errs.push(FieldError::invalid(
            &Path::new("spec").child("selector"),
            selector_json(selector),
            "`selector` not auto-generated",
        ));
    }
    errs
}

/// `ValidateHasLabel`.
fn validate_has_label(
    labels: Option<&BTreeMap<String, String>>,
    meta_path: &Path,
    key: &str,
    want: &str,
) -> ErrorList {
    let path = meta_path.child("labels");
    match labels.and_then(|l| l.get(key)) {
        None => vec![FieldError::required(
            &path.key(key),
            format!("must be '{want}'"),
        )],
        Some(v) if v != want => vec![FieldError::invalid(
            &path.key(key),
            v.as_str(),
            format!("must be '{want}'"),
        )],
        Some(_) => Vec::new(),
    }
}

/// Whether `LabelSelectorAsSelector` would accept the selector (operators it knows).
fn selector_is_valid(s: &LabelSelector) -> bool {
    s.match_expressions.iter().flatten().all(|e| {
        matches!(
            e.operator.as_str(),
            "In" | "NotIn" | "Exists" | "DoesNotExist"
        )
    })
}

/// `ValidateJobSpec`: the spec rules, the selector required and valid, and the selector
/// selecting the template's labels.
fn validate_job_spec(spec: &JobSpec, path: &Path) -> ErrorList {
    let mut errs = validate_job_spec_body(spec, path);
    match spec.selector.as_ref() {
        None => errs.push(FieldError::required(&path.child("selector"), "")),
        Some(s) => errs.extend(validation::validate_label_selector(
            Some(s),
            &path.child("selector"),
        )),
    }
    // A nil selector converts to "nothing": it matches no labels.
    let labels = template_labels(&spec.template);
    let matches = spec
        .selector
        .as_ref()
        .is_some_and(|s| selector_is_valid(s) && selector_matches(s, labels));
    if spec.selector.as_ref().is_none_or(selector_is_valid) && !matches {
        errs.push(FieldError::invalid(
            &path.child("template").child("metadata").child("labels"),
            labels.map_or(BadValue::Raw("null".into()), json_value),
            "`selector` does not match template `labels`",
        ));
    }
    errs
}

/// `validateJobSpec`: what a Job and a CronJob's job template share.
pub(crate) fn validate_job_spec_body(spec: &JobSpec, path: &Path) -> ErrorList {
    let mut errs = ErrorList::new();
    let nonneg = |v: Option<i64>, name: &str, errs: &mut ErrorList| {
        if let Some(v) = v {
            errs.extend(validation::validate_nonnegative(v, &path.child(name)));
        }
    };
    nonneg(spec.parallelism.map(i64::from), "parallelism", &mut errs);
    nonneg(spec.completions.map(i64::from), "completions", &mut errs);
    nonneg(
        spec.active_deadline_seconds,
        "activeDeadlineSeconds",
        &mut errs,
    );
    nonneg(spec.backoff_limit.map(i64::from), "backoffLimit", &mut errs);
    nonneg(
        spec.ttl_seconds_after_finished.map(i64::from),
        "ttlSecondsAfterFinished",
        &mut errs,
    );
    nonneg(
        spec.backoff_limit_per_index.map(i64::from),
        "backoffLimitPerIndex",
        &mut errs,
    );
    if let Some(m) = spec.max_failed_indexes {
        errs.extend(validation::validate_nonnegative(
            i64::from(m),
            &path.child("maxFailedIndexes"),
        ));
        if spec.backoff_limit_per_index.is_none() {
            errs.push(FieldError::required(
                &path.child("backoffLimitPerIndex"),
                "when maxFailedIndexes is specified",
            ));
        }
    }
    if let Some(m) = spec.managed_by.as_deref() {
        errs.extend(validate_domain_prefixed_path(m, &path.child("managedBy")));
        if m.len() > MAX_MANAGED_BY_LENGTH {
            errs.push(FieldError::too_long(
                &path.child("managedBy"),
                MAX_MANAGED_BY_LENGTH,
            ));
        }
    }
    let indexed = spec.completion_mode.as_deref() == Some("Indexed");
    if let Some(mode) = spec.completion_mode.as_deref() {
        if mode != "NonIndexed" && mode != "Indexed" {
            errs.push(FieldError::not_supported(
                &path.child("completionMode"),
                mode,
                &["NonIndexed", "Indexed"],
            ));
        }
        if indexed {
            if spec.completions.is_none() {
                errs.push(FieldError::required(
                    &path.child("completions"),
                    "when completion mode is Indexed",
                ));
            }
            if let Some(p) = spec.parallelism.filter(|p| *p > MAX_PARALLELISM_INDEXED) {
                errs.push(FieldError::invalid(
                    &path.child("parallelism"),
                    p,
                    format!("must be less than or equal to {MAX_PARALLELISM_INDEXED} when completion mode is Indexed"),
                ));
            }
            if let (Some(c), Some(m)) = (spec.completions, spec.max_failed_indexes) {
                if m > c {
                    errs.push(FieldError::invalid(
                        &path.child("maxFailedIndexes"),
                        m,
                        "must be less than or equal to completions",
                    ));
                }
            }
            if let Some(m) = spec.max_failed_indexes.filter(|m| *m > MAX_FAILED_INDEXES) {
                errs.push(FieldError::invalid(
                    &path.child("maxFailedIndexes"),
                    m,
                    format!("must be less than or equal to {MAX_FAILED_INDEXES}"),
                ));
            }
            if spec.completions.is_some_and(|c| c > COMPLETIONS_SOFT_LIMIT)
                && spec.backoff_limit_per_index.is_some()
            {
                if spec.max_failed_indexes.is_none() {
                    errs.push(FieldError::required(
                        &path.child("maxFailedIndexes"),
                        format!(
                            "must be specified when completions is above {COMPLETIONS_SOFT_LIMIT}"
                        ),
                    ));
                }
                if let Some(p) = spec
                    .parallelism
                    .filter(|p| *p > PARALLELISM_LIMIT_HIGH_COMPLETIONS)
                {
                    errs.push(FieldError::invalid(
                        &path.child("parallelism"),
                        p,
                        format!("must be less than or equal to {PARALLELISM_LIMIT_HIGH_COMPLETIONS} when completions are above {COMPLETIONS_SOFT_LIMIT} and used with backoff limit per index"),
                    ));
                }
                if let Some(m) = spec
                    .max_failed_indexes
                    .filter(|m| *m > MAX_FAILED_INDEXES_HIGH_COMPLETIONS)
                {
                    errs.push(FieldError::invalid(
                        &path.child("maxFailedIndexes"),
                        m,
                        format!("must be less than or equal to {MAX_FAILED_INDEXES_HIGH_COMPLETIONS} when completions are above {COMPLETIONS_SOFT_LIMIT} and used with backoff limit per index"),
                    ));
                }
            }
        }
    }
    if spec
        .completion_mode
        .as_deref()
        .is_none_or(|m| m == "NonIndexed")
    {
        if let Some(b) = spec.backoff_limit_per_index {
            errs.push(FieldError::invalid(
                &path.child("backoffLimitPerIndex"),
                b,
                "requires indexed completion mode",
            ));
        }
        if let Some(m) = spec.max_failed_indexes {
            errs.push(FieldError::invalid(
                &path.child("maxFailedIndexes"),
                m,
                "requires indexed completion mode",
            ));
        }
    }
    if spec.pod_failure_policy.is_some() {
        errs.extend(validate_pod_failure_policy(
            spec,
            &path.child("podFailurePolicy"),
        ));
    }
    if let Some(sp) = &spec.success_policy {
        if !indexed {
            errs.push(FieldError::invalid(
                &path.child("successPolicy"),
                json_value(sp),
                "requires indexed completion mode",
            ));
        } else {
            errs.extend(validate_success_policy(
                &sp.rules,
                spec.completions.unwrap_or(0),
                &path.child("successPolicy"),
            ));
        }
    }
    if let Some(p) = spec.pod_replacement_policy.as_deref() {
        let pp = path.child("podReplacementPolicy");
        if spec.pod_failure_policy.is_some() {
            if p != "Failed" {
                errs.push(FieldError::not_supported(&pp, p, &["Failed"]));
            }
        } else if p != "Failed" && p != "TerminatingOrFailed" {
            errs.push(FieldError::not_supported(
                &pp,
                p,
                &["Failed", "TerminatingOrFailed"],
            ));
        }
    }
    let template_path = path.child("template");
    errs.extend(validate_pod_template(&spec.template, &template_path));
    let policy = spec
        .template
        .spec
        .as_ref()
        .and_then(|s| s.restart_policy.as_deref())
        .unwrap_or("");
    let rp = template_path.child("spec").child("restartPolicy");
    match policy {
        "Always" | "" => errs.push(FieldError::required(
            &rp,
            "valid values: \"OnFailure\", \"Never\"",
        )),
        "OnFailure" | "Never" => {
            if spec.pod_failure_policy.is_some() && policy != "Never" {
                errs.push(FieldError::invalid(
                    &rp,
                    policy,
                    "only \"Never\" is supported when podFailurePolicy is specified",
                ));
            }
        }
        other => errs.push(FieldError::not_supported(
            &rp,
            other,
            &["OnFailure", "Never"],
        )),
    }
    errs
}

/// `IsDomainPrefixedPath`: `<DNS-1123 subdomain>/<path>`.
fn validate_domain_prefixed_path(value: &str, path: &Path) -> ErrorList {
    let Some((host, rest)) = value.split_once('/') else {
        return vec![FieldError::invalid(
            path,
            value,
            "must be a domain-prefixed path (such as \"acme.io/foo\")",
        )];
    };
    let mut errs: ErrorList = names::is_dns1123_subdomain(host)
        .into_iter()
        .map(|m| FieldError::invalid(path, host, m))
        .collect();
    let ok = |c: char| c.is_ascii_alphanumeric() || "-_./~%!$&'()*+,;=:@".contains(c);
    if !rest.chars().all(ok) {
        errs.push(FieldError::invalid(
            path,
            rest,
            "Invalid path: must match the regex [A-Za-z0-9/\\-._~%!$&'()*+,;=:]+",
        ));
    }
    errs
}

/// `validatePodFailurePolicy`.
fn validate_pod_failure_policy(spec: &JobSpec, path: &Path) -> ErrorList {
    let mut errs = ErrorList::new();
    let Some(policy) = &spec.pod_failure_policy else {
        return errs;
    };
    let rules_path = path.child("rules");
    if policy.rules.len() > MAX_POD_FAILURE_POLICY_RULES {
        errs.push(FieldError::too_many(
            &rules_path,
            policy.rules.len(),
            MAX_POD_FAILURE_POLICY_RULES,
        ));
    }
    let pod_spec = spec.template.spec.clone().unwrap_or_default();
    let names: BTreeSet<&str> = pod_spec
        .containers
        .iter()
        .chain(pod_spec.init_containers.iter().flatten())
        .map(|c| c.name.as_str())
        .collect();
    for (i, rule) in policy.rules.iter().enumerate() {
        errs.extend(validate_pod_failure_policy_rule(
            spec,
            rule,
            &rules_path.index(i),
            &names,
        ));
    }
    errs
}

const ACTIONS: &[&str] = &["Count", "FailIndex", "FailJob", "Ignore"];

fn validate_pod_failure_policy_rule(
    spec: &JobSpec,
    rule: &PodFailurePolicyRule,
    path: &Path,
    names: &BTreeSet<&str>,
) -> ErrorList {
    let mut errs = ErrorList::new();
    let action_path = path.child("action");
    match rule.action.as_str() {
        "" => errs.push(FieldError::required(
            &action_path,
            format!("valid values: {}", go_quoted_list(ACTIONS)),
        )),
        "FailIndex" if spec.backoff_limit_per_index.is_none() => {
            errs.push(FieldError::invalid(
                &action_path,
                "FailIndex",
                "requires the backoffLimitPerIndex to be set",
            ));
        }
        "FailIndex" => {}
        a if !ACTIONS.contains(&a) => {
            errs.push(FieldError::not_supported(&action_path, a, ACTIONS))
        }
        _ => {}
    }
    let conditions = rule.on_pod_conditions.as_deref().unwrap_or_default();
    if let Some(codes) = &rule.on_exit_codes {
        let p = path.child("onExitCodes");
        let op_path = p.child("operator");
        match codes.operator.as_str() {
            "" => errs.push(FieldError::required(
                &op_path,
                format!("valid values: {}", go_quoted_list(&["In", "NotIn"])),
            )),
            "In" | "NotIn" => {}
            other => errs.push(FieldError::not_supported(&op_path, other, &["In", "NotIn"])),
        }
        if let Some(c) = codes.container_name.as_deref() {
            if !names.contains(c) {
                errs.push(FieldError::invalid(
                    &p.child("containerName"),
                    c,
                    "must be one of the container or initContainer names in the pod template",
                ));
            }
        }
        let values_path = p.child("values");
        if codes.values.is_empty() {
            errs.push(FieldError::invalid(
                &values_path,
                json_value(&codes.values),
                "at least one value is required",
            ));
        } else if codes.values.len() > MAX_ON_EXIT_CODES_VALUES {
            errs.push(FieldError::too_many(
                &values_path,
                codes.values.len(),
                MAX_ON_EXIT_CODES_VALUES,
            ));
        }
        let mut seen = BTreeSet::new();
        let mut ordered = true;
        for (j, v) in codes.values.iter().enumerate() {
            let vp = values_path.index(j);
            if codes.operator == "In" && *v == 0 {
                errs.push(FieldError::invalid(
                    &vp,
                    *v,
                    "must not be 0 for the In operator",
                ));
            }
            if !seen.insert(*v) {
                errs.push(FieldError::duplicate(&vp, *v));
            }
            if j > 0 && codes.values[j - 1] > *v {
                ordered = false;
            }
        }
        if !ordered {
            errs.push(FieldError::invalid(
                &values_path,
                json_value(&codes.values),
                "must be ordered",
            ));
        }
    }
    if !conditions.is_empty() {
        let p = path.child("onPodConditions");
        if conditions.len() > MAX_ON_POD_CONDITIONS_PATTERNS {
            errs.push(FieldError::too_many(
                &p,
                conditions.len(),
                MAX_ON_POD_CONDITIONS_PATTERNS,
            ));
        }
        for (j, pattern) in conditions.iter().enumerate() {
            let pp = p.index(j);
            errs.extend(validation::validate_qualified_name_at(
                &pattern.type_,
                &pp.child("type"),
            ));
            let statuses = ["False", "True", "Unknown"];
            match pattern.status.as_deref().unwrap_or("") {
                "" => errs.push(FieldError::required(
                    &pp.child("status"),
                    format!("valid values: {}", go_quoted_list(&statuses)),
                )),
                s if !statuses.contains(&s) => {
                    errs.push(FieldError::not_supported(&pp.child("status"), s, &statuses))
                }
                _ => {}
            }
        }
    }
    if rule.on_exit_codes.is_some() && !conditions.is_empty() {
        errs.push(FieldError::invalid(
            path,
            BadValue::Omit,
            "specifying both OnExitCodes and OnPodConditions is not supported",
        ));
    }
    if rule.on_exit_codes.is_none() && conditions.is_empty() {
        errs.push(FieldError::invalid(
            path,
            BadValue::Omit,
            "specifying one of OnExitCodes and OnPodConditions is required",
        ));
    }
    errs
}

/// Go's `%q` of a `[]string`: `["a" "b"]`.
fn go_quoted_list(items: &[&str]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| crate::field::go_quote(s)).collect();
    format!("[{}]", quoted.join(" "))
}

/// `validateSuccessPolicy`.
fn validate_success_policy(
    rules: &[SuccessPolicyRule],
    completions: i32,
    path: &Path,
) -> ErrorList {
    let mut errs = ErrorList::new();
    let rules_path = path.child("rules");
    if rules.is_empty() {
        errs.push(FieldError::required(
            &rules_path,
            "at least one rules must be specified when the successPolicy is specified",
        ));
    }
    if rules.len() > MAX_SUCCESS_POLICY_RULES {
        errs.push(FieldError::too_many(
            &rules_path,
            rules.len(),
            MAX_SUCCESS_POLICY_RULES,
        ));
    }
    for (i, rule) in rules.iter().enumerate() {
        let rp = rules_path.index(i);
        if rule.succeeded_count.is_none() && rule.succeeded_indexes.is_none() {
            errs.push(FieldError::required(
                &rp,
                "at least one of succeededCount or succeededIndexes must be specified",
            ));
        }
        let mut total = 0i64;
        if let Some(ix) = &rule.succeeded_indexes {
            let p = rp.child("succeededIndexes");
            if ix.len() > MAX_SUCCEEDED_INDEXES_LENGTH {
                errs.push(FieldError::too_long(&p, MAX_SUCCEEDED_INDEXES_LENGTH));
            }
            match parse_indexes(ix, completions) {
                Ok(intervals) => total = intervals.iter().map(|(a, b)| b - a + 1).sum(),
                Err(e) => errs.push(FieldError::invalid(
                    &p,
                    ix.as_str(),
                    format!("error parsing succeededIndexes: {e}"),
                )),
            }
        }
        if let Some(c) = rule.succeeded_count {
            let p = rp.child("succeededCount");
            errs.extend(validation::validate_nonnegative(i64::from(c), &p));
            if c > completions {
                errs.push(FieldError::invalid(
                    &p,
                    c,
                    format!("must be less than or equal to {completions} (the number of specified completions)"),
                ));
            }
            if rule.succeeded_indexes.is_some() && i64::from(c) > total {
                errs.push(FieldError::invalid(
                    &p,
                    c,
                    format!("must be less than or equal to {total} (the number of indexes in the specified succeededIndexes field)"),
                ));
            }
        }
    }
    errs
}

/// `validateIndexesFormat`: `"1,3-5,7"` → the intervals (inclusive), each below
/// `completions`, strictly increasing; the error text is upstream's.
pub fn parse_indexes(text: &str, completions: i32) -> Result<Vec<(i64, i64)>, String> {
    let mut out: Vec<(i64, i64)> = Vec::new();
    if text.is_empty() {
        return Ok(out);
    }
    for interval in text.split(',') {
        let parts: Vec<&str> = interval.split('-').collect();
        if parts.len() > 2 {
            return Err(format!(
                "the fragment {} violates the requirement that an index interval can have at most two parts separated by '-'",
                crate::field::go_quote(interval)
            ));
        }
        let parse = |s: &str| -> Result<i64, String> {
            let n: i64 = s.parse().map_err(|_| {
                format!(
                    "cannot convert string to integer for index: {}",
                    crate::field::go_quote(s)
                )
            })?;
            if n >= i64::from(completions) {
                return Err(format!("too large index: {}", crate::field::go_quote(s)));
            }
            Ok(n)
        };
        let x = parse(parts[0])?;
        let y = match parts.get(1) {
            Some(s) => {
                let y = parse(s)?;
                if x >= y {
                    return Err(format!("non-increasing order, previous: {x}, current: {y}"));
                }
                y
            }
            None => x,
        };
        if let Some((_, last)) = out.last() {
            if *last >= x {
                return Err(format!(
                    "non-increasing order, previous: {last}, current: {x}"
                ));
            }
        }
        out.push((x, y));
    }
    Ok(out)
}

/// `ValidateJobUpdate`: the create rules of the spec plus what may not change: completions
/// (an Indexed Job may change them in tandem with parallelism), selector, completionMode,
/// podFailurePolicy, backoffLimitPerIndex, managedBy, successPolicy, and the template
/// (except, while the Job is suspended and never started, its scheduling directives:
/// nodeSelector, node affinity, tolerations, schedulingGates, labels and annotations).
/// Metadata update rules (`ValidateObjectMetaUpdate`) are the registry's.
pub fn validate_job_update(new: &Job, old: &Job) -> ErrorList {
    let default_spec = JobSpec::default();
    let spec = new.spec.as_ref().unwrap_or(&default_spec);
    let old_spec = old.spec.as_ref().unwrap_or(&default_spec);
    let path = Path::new("spec");
    let mut errs = validate_job_spec(spec, &path);
    let immutable =
        |p: &str, value: BadValue| FieldError::invalid(&path.child(p), value, "field is immutable");
    let indexed = spec.completion_mode.as_deref() == Some("Indexed");
    if spec.completions != old_spec.completions {
        if !indexed {
            errs.push(immutable(
                "completions",
                spec.completions
                    .map_or(BadValue::Raw("null".into()), BadValue::from),
            ));
        } else if let Some(c) = spec.completions {
            if Some(c) != spec.parallelism {
                errs.push(FieldError::invalid(
                    &path.child("completions"),
                    c,
                    "can only be modified in tandem with spec.parallelism",
                ));
            }
        }
    }
    if spec.selector != old_spec.selector {
        errs.push(immutable(
            "selector",
            spec.selector
                .as_ref()
                .map_or(BadValue::Raw("null".into()), selector_json),
        ));
    }
    // AllowMutableSchedulingDirectives: the old Job suspended and never started.
    let old_started = old.status.as_ref().is_some_and(|s| s.start_time.is_some());
    let mutable_scheduling = old_spec.suspend == Some(true) && !old_started;
    let mut old_template = old_spec.template.clone();
    if mutable_scheduling {
        let new_t = &spec.template;
        if let (Some(o), n) = (old_template.spec.as_mut(), new_t.spec.as_ref()) {
            let n_aff = n.and_then(|s| s.affinity.clone());
            match (n_aff, o.affinity.take()) {
                (None, Some(mut oa)) => {
                    oa.node_affinity = None;
                    o.affinity = (oa != Default::default()).then_some(oa);
                }
                (Some(na), None) => {
                    o.affinity = Some(k8s_openapi::api::core::v1::Affinity {
                        node_affinity: na.node_affinity,
                        ..Default::default()
                    })
                }
                (Some(na), Some(mut oa)) => {
                    oa.node_affinity = na.node_affinity;
                    o.affinity = Some(oa);
                }
                (None, None) => {}
            }
            o.node_selector = n.and_then(|s| s.node_selector.clone());
            o.tolerations = n.and_then(|s| s.tolerations.clone());
            o.scheduling_gates = n.and_then(|s| s.scheduling_gates.clone());
        }
        let om = old_template.metadata.get_or_insert_with(Default::default);
        let nm = new_t.metadata.clone().unwrap_or_default();
        om.annotations = nm.annotations;
        om.labels = nm.labels;
    }
    if normalized(&spec.template) != normalized(&old_template) {
        // Upstream prints the internal core.PodTemplateSpec with %#v (pointer addresses
        // included); a stable stand-in is printed instead.
        errs.push(immutable(
            "template",
            BadValue::Raw("core.PodTemplateSpec{...}".into()),
        ));
    }
    for (name, differs, value) in [
        (
            "completionMode",
            spec.completion_mode != old_spec.completion_mode,
            spec.completion_mode
                .as_ref()
                .map_or(BadValue::Raw("null".into()), BadValue::from),
        ),
        (
            "podFailurePolicy",
            spec.pod_failure_policy != old_spec.pod_failure_policy,
            spec.pod_failure_policy
                .as_ref()
                .map_or(BadValue::Raw("null".into()), json_value),
        ),
        (
            "backoffLimitPerIndex",
            spec.backoff_limit_per_index != old_spec.backoff_limit_per_index,
            spec.backoff_limit_per_index
                .map_or(BadValue::Raw("null".into()), BadValue::from),
        ),
        (
            "managedBy",
            spec.managed_by != old_spec.managed_by,
            spec.managed_by
                .as_ref()
                .map_or(BadValue::Raw("null".into()), BadValue::from),
        ),
        (
            "successPolicy",
            spec.success_policy != old_spec.success_policy,
            spec.success_policy
                .as_ref()
                .map_or(BadValue::Raw("null".into()), json_value),
        ),
    ] {
        if differs {
            errs.push(immutable(name, value));
        }
    }
    errs
}

/// `ValidateJobUpdateStatus`, the rules that hold for every status write: counters
/// (active, succeeded, failed, ready, terminating) non-negative, `uncountedTerminatedPods`
/// uids non-empty and unique, a terminal condition (Complete, Failed, FailureTarget) or
/// SuccessCriteriaMet never turned off, succeeded/failed never decreased, Complete and Failed
/// not both. Upstream's further checks (`JobStatusValidationOptions`, each enabled depending on
/// the old status) are not implemented.
pub fn validate_job_status_update(new: &Job, old: &Job) -> ErrorList {
    let default_status = k8s_openapi::api::batch::v1::JobStatus::default();
    let status = new.status.as_ref().unwrap_or(&default_status);
    let old_status = old.status.as_ref().unwrap_or(&default_status);
    let path = Path::new("status");
    let mut errs = ErrorList::new();
    for (v, name) in [
        (status.active, "active"),
        (status.succeeded, "succeeded"),
        (status.failed, "failed"),
        (status.ready, "ready"),
        (status.terminating, "terminating"),
    ] {
        if let Some(v) = v {
            errs.extend(validation::validate_nonnegative(
                i64::from(v),
                &path.child(name),
            ));
        }
    }
    if let Some(u) = &status.uncounted_terminated_pods {
        let up = path.child("uncountedTerminatedPods");
        let mut seen = BTreeSet::new();
        for (list, name) in [(&u.succeeded, "succeeded"), (&u.failed, "failed")] {
            for (i, uid) in list.iter().flatten().enumerate() {
                let p = up.child(name).index(i);
                if uid.is_empty() {
                    errs.push(FieldError::invalid(&p, "", "must not be empty"));
                } else if !seen.insert(uid.as_str()) {
                    errs.push(FieldError::duplicate(&p, uid.as_str()));
                }
            }
        }
    }
    let is_true = |st: &k8s_openapi::api::batch::v1::JobStatus, t: &str| {
        st.conditions
            .iter()
            .flatten()
            .any(|c| c.type_ == t && c.status == "True")
    };
    let cp = path.child("conditions");
    if is_true(status, "Complete") && is_true(status, "Failed") {
        errs.push(FieldError::invalid(
            &cp,
            BadValue::Omit,
            "cannot set Complete=True and Failed=true conditions",
        ));
    }
    for t in ["Failed", "Complete", "FailureTarget"] {
        if is_true(old_status, t) && !is_true(status, t) {
            errs.push(FieldError::invalid(
                &cp,
                BadValue::Omit,
                format!("cannot disable the terminal {t}=True condition"),
            ));
        }
    }
    if is_true(old_status, "SuccessCriteriaMet") && !is_true(status, "SuccessCriteriaMet") {
        errs.push(FieldError::invalid(
            &cp,
            BadValue::Omit,
            "cannot disable the SuccessCriteriaMet=True condition",
        ));
    }
    for (new_v, old_v, name) in [
        (status.failed, old_status.failed, "failed"),
        (status.succeeded, old_status.succeeded, "succeeded"),
    ] {
        let (n, o) = (new_v.unwrap_or(0), old_v.unwrap_or(0));
        if n < o {
            errs.push(FieldError::invalid(
                &path.child(name),
                n,
                format!("cannot decrease the {name} counter"),
            ));
        }
    }
    errs
}

/// A template compared semantically: empty maps and lists equal to absent ones.
fn normalized(t: &k8s_openapi::api::core::v1::PodTemplateSpec) -> serde_json::Value {
    fn strip(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(m) => {
                m.values_mut().for_each(strip);
                m.retain(|_, v| {
                    !(v.is_null()
                        || v.as_object().is_some_and(serde_json::Map::is_empty)
                        || v.as_array().is_some_and(Vec::is_empty))
                });
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(strip),
            _ => {}
        }
    }
    let mut v = serde_json::to_value(t).unwrap_or_default();
    strip(&mut v);
    v
}

#[cfg(test)]
mod tests;
