//! The Table columns and cells of the issue-12 kinds, as pkg/printers/internalversion/printers.go
//! prints them: `printJob`, `printCronJob`, `printDeployment`, `printReplicaSet`,
//! `printResourceQuota` (LimitRange has no printer: the default `Name`/`Created At` table).

use k8s_openapi::api::core::v1::Container;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::jiff::Timestamp;
use serde_json::Value;

use super::{age, at, col, human_duration, name, parse_time, str_at, wide, Column, AGE, NAME};
use crate::registry::kinds::selector_string;

const CONTAINERS: Column = wide(col(
    "Containers",
    "string",
    "Names of each container in the template.",
));
const IMAGES: Column = wide(col(
    "Images",
    "string",
    "Images referenced by each container in the template.",
));
const SELECTOR: Column = wide(col("Selector", "string", "A label query over pods that should match the pod count. Normally, the system sets this field for you. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors"));

pub(super) static JOB: &[Column] = &[
    NAME,
    col("Status", "string", "Status of the job."),
    col("Completions", "string", "The number of pods which reached phase Succeeded. The value increases monotonically for a given spec. However, it may decrease in reaction to scale down of elastic indexed jobs."),
    col("Duration", "string", "Time required to complete the job."),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];

pub(super) static CRONJOB: &[Column] = &[
    NAME,
    col("Schedule", "string", "The schedule in Cron format, see https://en.wikipedia.org/wiki/Cron."),
    col("Timezone", "string", "The time zone name for the given schedule, see https://en.wikipedia.org/wiki/List_of_tz_database_time_zones. If not specified, this will default to the time zone of the kube-controller-manager process."),
    col("Suspend", "boolean", "This flag tells the controller to suspend subsequent executions, it does not apply to already started executions.  Defaults to false."),
    col("Active", "integer", "A list of pointers to currently running jobs."),
    col("Last Schedule", "string", "Information when was the last time the job was successfully scheduled."),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];

pub(super) static DEPLOYMENT: &[Column] = &[
    NAME,
    col("Ready", "string", "Number of the pod with ready state"),
    col("Up-to-date", "string", "Total number of non-terminating pods targeted by this deployment that have the desired template spec."),
    col("Available", "string", "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment."),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];

pub(super) static REPLICASET: &[Column] = &[
    NAME,
    col("Desired", "integer", "Replicas is the number of desired replicas. This is a pointer to distinguish between explicit zero and unspecified. Defaults to 1. More info: https://kubernetes.io/docs/concepts/workloads/controllers/replicationcontroller/#what-is-a-replicationcontroller"),
    col("Current", "integer", "Replicas is the most recently observed number of replicas. More info: https://kubernetes.io/docs/concepts/workloads/controllers/replicationcontroller/#what-is-a-replicationcontroller"),
    col("Ready", "integer", "The number of ready replicas for this replica set."),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];

pub(super) static RESOURCEQUOTA: &[Column] = &[
    NAME,
    col("Request", "string", "Request represents a minimum amount of cpu/memory that a container may consume."),
    col("Limit", "string", "Limits control the maximum amount of cpu/memory that a container may use independent of contention on the node."),
    AGE,
];

pub(super) static SCALE: &[Column] = &[
    Column { format: "", ..NAME },
    col(
        "Desired",
        "integer",
        "replicas is the desired number of instances for the scaled object.",
    ),
    col(
        "Available",
        "integer",
        "replicas is the actual number of observed instances of the scaled object.",
    ),
    AGE,
];

/// `printScale`.
pub(super) fn scale_cells(o: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        name(o).into(),
        i64_at(o, &["spec", "replicas"]).into(),
        i64_at(o, &["status", "replicas"]).into(),
        age(o, now).into(),
    ]
}

fn i64_at(v: &Value, path: &[&str]) -> i64 {
    at(v, path).and_then(Value::as_i64).unwrap_or(0)
}

/// `layoutContainerCells`: names and images, comma-separated.
fn containers(template: Option<&Value>) -> (String, String) {
    let list: Vec<Container> = template
        .and_then(|t| t.pointer("/spec/containers"))
        .and_then(|c| serde_json::from_value(c.clone()).ok())
        .unwrap_or_default();
    let names: Vec<&str> = list.iter().map(|c| c.name.as_str()).collect();
    let images: Vec<&str> = list
        .iter()
        .map(|c| c.image.as_deref().unwrap_or(""))
        .collect();
    (names.join(","), images.join(","))
}

fn selector(v: Option<&Value>) -> Option<LabelSelector> {
    v.and_then(|s| serde_json::from_value(s.clone()).ok())
}

/// `metav1.FormatLabelSelector`: `<none>` for an empty or absent selector.
fn format_selector(v: Option<&Value>) -> String {
    let s = selector_string(selector(v).as_ref());
    if s.is_empty() {
        "<none>".into()
    } else {
        s
    }
}

fn has_condition(o: &Value, type_: &str) -> bool {
    at(o, &["status", "conditions"])
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == type_ && c["status"] == "True")
        })
}

pub(super) fn job_cells(o: &Value, now: Timestamp) -> Vec<Value> {
    let succeeded = i64_at(o, &["status", "succeeded"]);
    let completions = match at(o, &["spec", "completions"]).and_then(Value::as_i64) {
        Some(c) => format!("{succeeded}/{c}"),
        None => {
            let parallelism = i64_at(o, &["spec", "parallelism"]);
            if parallelism > 1 {
                format!("{succeeded}/1 of {parallelism}")
            } else {
                format!("{succeeded}/1")
            }
        }
    };
    let start = parse_time(str_at(o, &["status", "startTime"]));
    let end = parse_time(str_at(o, &["status", "completionTime"]));
    let duration = match (start, end) {
        (None, _) => String::new(),
        (Some(s), None) => human_duration(now.as_nanosecond() - s.as_nanosecond()),
        (Some(s), Some(e)) => human_duration(e.as_nanosecond() - s.as_nanosecond()),
    };
    let deleting = at(o, &["metadata", "deletionTimestamp"]).is_some_and(|d| !d.is_null());
    let status = if has_condition(o, "Complete") {
        "Complete"
    } else if has_condition(o, "Failed") {
        "Failed"
    } else if deleting {
        "Terminating"
    } else if has_condition(o, "Suspended") {
        "Suspended"
    } else if has_condition(o, "FailureTarget") {
        "FailureTarget"
    } else if has_condition(o, "SuccessCriteriaMet") {
        "SuccessCriteriaMet"
    } else {
        "Running"
    };
    let (names, images) = containers(o.pointer("/spec/template"));
    vec![
        name(o).into(),
        status.into(),
        completions.into(),
        duration.into(),
        age(o, now).into(),
        names.into(),
        images.into(),
        format_selector(o.pointer("/spec/selector")).into(),
    ]
}

pub(super) fn cronjob_cells(o: &Value, now: Timestamp) -> Vec<Value> {
    let last = match parse_time(str_at(o, &["status", "lastScheduleTime"])) {
        Some(t) => super::translate_timestamp_since(Some(t), now),
        None => "<none>".into(),
    };
    let tz = match str_at(o, &["spec", "timeZone"]) {
        "" if at(o, &["spec", "timeZone"]).is_none_or(Value::is_null) => "<none>",
        tz => tz,
    };
    // printBoolPtr: the value, or `<unset>`.
    let suspend = match at(o, &["spec", "suspend"]).and_then(Value::as_bool) {
        Some(b) => Value::Bool(b),
        None => "<unset>".into(),
    };
    let active = at(o, &["status", "active"])
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    let (names, images) = containers(o.pointer("/spec/jobTemplate/spec/template"));
    vec![
        name(o).into(),
        str_at(o, &["spec", "schedule"]).into(),
        tz.into(),
        suspend,
        (active as i64).into(),
        last.into(),
        age(o, now).into(),
        names.into(),
        images.into(),
        format_selector(o.pointer("/spec/jobTemplate/spec/selector")).into(),
    ]
}

pub(super) fn deployment_cells(o: &Value, now: Timestamp) -> Vec<Value> {
    let (names, images) = containers(o.pointer("/spec/template"));
    vec![
        name(o).into(),
        format!(
            "{}/{}",
            i64_at(o, &["status", "readyReplicas"]),
            i64_at(o, &["spec", "replicas"])
        )
        .into(),
        i64_at(o, &["status", "updatedReplicas"]).into(),
        i64_at(o, &["status", "availableReplicas"]).into(),
        age(o, now).into(),
        names.into(),
        images.into(),
        // printDeployment prints `selector.String()` (empty stays empty).
        selector_string(selector(o.pointer("/spec/selector")).as_ref()).into(),
    ]
}

pub(super) fn replicaset_cells(o: &Value, now: Timestamp) -> Vec<Value> {
    let (names, images) = containers(o.pointer("/spec/template"));
    vec![
        name(o).into(),
        i64_at(o, &["spec", "replicas"]).into(),
        i64_at(o, &["status", "replicas"]).into(),
        i64_at(o, &["status", "readyReplicas"]).into(),
        age(o, now).into(),
        names.into(),
        images.into(),
        format_selector(o.pointer("/spec/selector")).into(),
    ]
}

/// A quantity as `resource.Quantity.String()` prints it (canonical), the text as stored when
/// it does not parse.
fn quantity(v: Option<&Value>) -> String {
    let s = v.and_then(Value::as_str).unwrap_or("0");
    skiff_model::quantity::Quantity::parse(s)
        .map(|q| q.to_canonical())
        .unwrap_or_else(|_| s.to_string())
}

pub(super) fn resourcequota_cells(o: &Value, now: Timestamp) -> Vec<Value> {
    let hard = at(o, &["status", "hard"]).and_then(Value::as_object);
    let used = at(o, &["status", "used"]);
    let mut requests = Vec::new();
    let mut limits = Vec::new();
    // Sorted by name (SortableResourceNames).
    let mut entries: Vec<(&String, &Value)> = hard.into_iter().flatten().collect();
    entries.sort_by(|a, b| a.0.cmp(b.0));
    for (resource, h) in entries {
        let text = format!(
            "{resource}: {}/{}",
            quantity(used.and_then(|u| u.get(resource))),
            quantity(Some(h))
        );
        if resource.split('.').next() == Some("limits") && resource.contains('.') {
            limits.push(text);
        } else {
            requests.push(text);
        }
    }
    vec![
        name(o).into(),
        requests.join(", ").into(),
        limits.join(", ").into(),
        age(o, now).into(),
    ]
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::{columns, row};
    use super::*;

    fn now() -> Timestamp {
        "2026-01-01T01:00:00Z"
            .parse()
            .unwrap_or(Timestamp::UNIX_EPOCH)
    }

    fn names(kind: &str) -> Vec<(&'static str, i32)> {
        columns(kind).iter().map(|c| (c.name, c.priority)).collect()
    }

    #[test]
    fn columns_are_kubectls() {
        assert_eq!(
            names("Job"),
            [
                ("Name", 0),
                ("Status", 0),
                ("Completions", 0),
                ("Duration", 0),
                ("Age", 0),
                ("Containers", 1),
                ("Images", 1),
                ("Selector", 1)
            ]
        );
        assert_eq!(
            names("CronJob").iter().map(|c| c.0).collect::<Vec<_>>(),
            [
                "Name",
                "Schedule",
                "Timezone",
                "Suspend",
                "Active",
                "Last Schedule",
                "Age",
                "Containers",
                "Images",
                "Selector"
            ]
        );
        assert_eq!(
            names("Deployment").iter().map(|c| c.0).collect::<Vec<_>>(),
            [
                "Name",
                "Ready",
                "Up-to-date",
                "Available",
                "Age",
                "Containers",
                "Images",
                "Selector"
            ]
        );
        assert_eq!(
            names("ReplicaSet").iter().map(|c| c.0).collect::<Vec<_>>(),
            [
                "Name",
                "Desired",
                "Current",
                "Ready",
                "Age",
                "Containers",
                "Images",
                "Selector"
            ]
        );
        assert_eq!(
            names("ResourceQuota")
                .iter()
                .map(|c| c.0)
                .collect::<Vec<_>>(),
            ["Name", "Request", "Limit", "Age"]
        );
        assert_eq!(
            names("LimitRange").iter().map(|c| c.0).collect::<Vec<_>>(),
            ["Name", "Created At"]
        );
    }

    #[test]
    fn job_cells_follow_print_job() {
        let j = json!({
            "metadata": {"name": "pi", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"completions": 3, "parallelism": 2, "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "u"}},
                "template": {"spec": {"containers": [{"name": "a", "image": "busybox"}, {"name": "b", "image": "alpine"}]}}},
            "status": {"succeeded": 2, "startTime": "2026-01-01T00:00:00Z", "completionTime": "2026-01-01T00:00:42Z",
                "conditions": [{"type": "Complete", "status": "True"}]},
        });
        let cells = row("Job", &j, now()).cells;
        assert_eq!(
            cells,
            vec![
                json!("pi"),
                json!("Complete"),
                json!("2/3"),
                json!("42s"),
                json!("60m"),
                json!("a,b"),
                json!("busybox,alpine"),
                json!("batch.kubernetes.io/controller-uid=u")
            ]
        );
        let running = json!({"metadata": {"name": "w"}, "spec": {"parallelism": 4}, "status": {"startTime": "2026-01-01T00:59:00Z"}});
        let cells = row("Job", &running, now()).cells;
        assert_eq!(
            &cells[1..4],
            &[json!("Running"), json!("0/1 of 4"), json!("60s")]
        );
        let failed = json!({"metadata": {"name": "f", "deletionTimestamp": "2026-01-01T00:00:00Z"}, "spec": {"completions": 1},
            "status": {"conditions": [{"type": "Failed", "status": "True"}]}});
        assert_eq!(row("Job", &failed, now()).cells[1], json!("Failed"));
    }

    #[test]
    fn cronjob_deployment_replicaset_quota_cells() {
        let cj = json!({"metadata": {"name": "c", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"schedule": "*/5 * * * *", "suspend": false, "jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "x", "image": "i"}]}}}}},
            "status": {"active": [{"name": "c-1"}], "lastScheduleTime": "2026-01-01T00:55:00Z"}});
        assert_eq!(
            row("CronJob", &cj, now()).cells,
            vec![
                json!("c"),
                json!("*/5 * * * *"),
                json!("<none>"),
                json!(false),
                json!(1),
                json!("5m"),
                json!("60m"),
                json!("x"),
                json!("i"),
                json!("<none>")
            ]
        );
        let d = json!({"metadata": {"name": "web", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}}, "template": {"spec": {"containers": [{"name": "n", "image": "nginx"}]}}},
            "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}});
        assert_eq!(
            row("Deployment", &d, now()).cells,
            vec![
                json!("web"),
                json!("2/3"),
                json!(3),
                json!(2),
                json!("60m"),
                json!("n"),
                json!("nginx"),
                json!("app=web")
            ]
        );
        let mut rs = d.clone();
        rs["status"] = json!({"replicas": 3, "readyReplicas": 1});
        assert_eq!(
            &row("ReplicaSet", &rs, now()).cells[..4],
            &[json!("web"), json!(3), json!(3), json!(1)]
        );
        let q = json!({"metadata": {"name": "q", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "status": {"hard": {"pods": "10", "limits.cpu": "2", "requests.memory": "1Gi", "requests.cpu": "1000m"},
                "used": {"pods": "1", "requests.cpu": "500m"}}});
        assert_eq!(
            row("ResourceQuota", &q, now()).cells,
            vec![
                json!("q"),
                json!("pods: 1/10, requests.cpu: 500m/1, requests.memory: 0/1Gi"),
                json!("limits.cpu: 0/2"),
                json!("60m")
            ]
        );
    }
}
