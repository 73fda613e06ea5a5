//! Server-side Tables (`Accept: application/json;as=Table;v=v1;g=meta.k8s.io`): the columns and
//! cells kube-apiserver's printers give each kind (pkg/printers/internalversion/printers.go,
//! always generated "wide": kubectl hides the `priority: 1` columns unless `-o wide`).
//!
//! Cells are computed from the stored JSON; pods go through the typed `Pod` for
//! [`skiff_model::display::display_status`] (SEMANTICS ST9), the same code `skiff run` prints with.

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

mod workloads;

/// One `TableColumnDefinition`.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Column {
    pub name: &'static str,
    #[serde(rename = "type")]
    pub type_: &'static str,
    pub format: &'static str,
    pub description: &'static str,
    pub priority: i32,
}

const fn col(name: &'static str, type_: &'static str, description: &'static str) -> Column {
    Column {
        name,
        type_,
        format: "",
        description,
        priority: 0,
    }
}

const fn wide(mut c: Column) -> Column {
    c.priority = 1;
    c
}

const NAME: Column = Column {
    name: "Name",
    type_: "string",
    format: "name",
    description: "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names",
    priority: 0,
};

const AGE: Column = col(
    "Age",
    "string",
    "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata",
);

static POD: &[Column] = &[
    NAME,
    col("Ready", "string", "The aggregate readiness state of this pod for accepting traffic."),
    col("Status", "string", "The aggregate status of the containers in this pod."),
    col("Restarts", "string", "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted."),
    AGE,
    wide(col("IP", "string", "podIP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated.")),
    wide(col("Node", "string", "NodeName indicates in which node this pod is scheduled. If empty, this pod is a candidate for scheduling by the scheduler defined in schedulerName.")),
    wide(col("Nominated Node", "string", "nominatedNodeName is set only when this pod preempts other pods on the node, but it cannot be scheduled right away as preemption victims receive their graceful termination periods.")),
    wide(col("Readiness Gates", "string", "If specified, all readiness gates will be evaluated for pod readiness.")),
];

static NAMESPACE: &[Column] = &[
    NAME,
    col("Status", "string", "The status of the namespace"),
    AGE,
];

static CONFIGMAP: &[Column] = &[
    NAME,
    col("Data", "string", "Data contains the configuration data."),
    AGE,
];

static SECRET: &[Column] = &[
    NAME,
    col(
        "Type",
        "string",
        "Used to facilitate programmatic handling of secret data.",
    ),
    col("Data", "string", "Data contains the secret data."),
    AGE,
];

static SERVICEACCOUNT: &[Column] = &[
    NAME,
    col("Secrets", "string", "Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use."),
    AGE,
];

static EVENT: &[Column] = &[
    col("Last Seen", "string", "The time at which the most recent occurrence of this event was recorded."),
    col("Type", "string", "Type of this event (Normal, Warning), new types could be added in the future"),
    col("Reason", "string", "This should be a short, machine understandable string that gives the reason for the transition into the object's current status."),
    col("Object", "string", "The object that this event is about."),
    wide(col("Subobject", "string", "If referring to a piece of an object instead of an entire object, this string should contain a valid JSON/Go field access statement, such as desiredState.manifest.containers[2].")),
    wide(col("Source", "string", "The component reporting this event. Should be a short machine understandable string.")),
    col("Message", "string", "A human-readable description of the status of this operation."),
    wide(col("First Seen", "string", "The time at which the event was first recorded. (Time of server receipt is in TypeMeta.)")),
    wide(col("Count", "string", "The number of times this event has occurred.")),
    Column {
        priority: 1,
        ..NAME
    },
];

static NODE: &[Column] = &[
    NAME,
    col("Status", "string", "The status of the node"),
    col("Roles", "string", "The roles of the node"),
    AGE,
    col("Version", "string", "Kubelet Version reported by the node."),
    wide(col("Internal-IP", "string", "List of addresses reachable to the node.")),
    wide(col("External-IP", "string", "List of addresses reachable to the node.")),
    wide(col("OS-Image", "string", "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy)).")),
    wide(col("Kernel-Version", "string", "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64).")),
    wide(col("Container-Runtime", "string", "ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2).")),
];

/// kube's default table convertor (`rest.NewDefaultTableConvertor`) for kinds without a
/// printer.
static DEFAULT: &[Column] = &[
    NAME,
    Column {
        name: "Created At",
        type_: "date",
        format: "",
        description: "CreationTimestamp is a timestamp representing the server time when this object was created.",
        priority: 0,
    },
];

/// The columns of `kind`'s Table.
pub fn columns(kind: &str) -> &'static [Column] {
    match kind {
        "Pod" => POD,
        "Namespace" => NAMESPACE,
        "ConfigMap" => CONFIGMAP,
        "Secret" => SECRET,
        "ServiceAccount" => SERVICEACCOUNT,
        "Event" => EVENT,
        "Node" => NODE,
        "Job" => workloads::JOB,
        "CronJob" => workloads::CRONJOB,
        "Deployment" => workloads::DEPLOYMENT,
        "ReplicaSet" => workloads::REPLICASET,
        "ResourceQuota" => workloads::RESOURCEQUOTA,
        "Scale" => workloads::SCALE,
        _ => DEFAULT,
    }
}

/// A Table row's cells and (for pods) its row conditions.
pub struct RowCells {
    pub cells: Vec<Value>,
    pub conditions: Option<Value>,
}

/// The cells of `object` (of `kind`) as printed at `now`.
pub fn row(kind: &str, object: &Value, now: Timestamp) -> RowCells {
    let cells = match kind {
        "Pod" => return pod_row(object, now),
        "Namespace" => vec![
            name(object).into(),
            str_at(object, &["status", "phase"]).into(),
            age(object, now).into(),
        ],
        "ConfigMap" => vec![
            name(object).into(),
            (len_at(object, &["data"]) + len_at(object, &["binaryData"])).into(),
            age(object, now).into(),
        ],
        "Secret" => vec![
            name(object).into(),
            str_at(object, &["type"]).into(),
            len_at(object, &["data"]).into(),
            age(object, now).into(),
        ],
        "ServiceAccount" => vec![
            name(object).into(),
            len_at(object, &["secrets"]).into(),
            age(object, now).into(),
        ],
        "Event" => event_cells(object, now),
        "Node" => node_cells(object, now),
        "Job" => workloads::job_cells(object, now),
        "CronJob" => workloads::cronjob_cells(object, now),
        "Deployment" => workloads::deployment_cells(object, now),
        "ReplicaSet" => workloads::replicaset_cells(object, now),
        "ResourceQuota" => workloads::resourcequota_cells(object, now),
        "Scale" => workloads::scale_cells(object, now),
        _ => vec![
            name(object).into(),
            object
                .pointer("/metadata/creationTimestamp")
                .cloned()
                .unwrap_or(Value::Null),
        ],
    };
    RowCells {
        cells,
        conditions: None,
    }
}

fn at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, k| v.get(k))
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    at(v, path).and_then(Value::as_str).unwrap_or("")
}

fn len_at(v: &Value, path: &[&str]) -> i64 {
    match at(v, path) {
        Some(Value::Object(m)) => m.len() as i64,
        Some(Value::Array(a)) => a.len() as i64,
        _ => 0,
    }
}

fn name(v: &Value) -> &str {
    str_at(v, &["metadata", "name"])
}

fn or_none(s: &str) -> String {
    if s.is_empty() {
        "<none>".to_string()
    } else {
        s.to_string()
    }
}

fn parse_time(s: &str) -> Option<Timestamp> {
    s.parse().ok()
}

/// The current time (jiff here is built without its `std` clock).
pub fn now() -> Timestamp {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Timestamp::new(d.as_secs() as i64, d.subsec_nanos() as i32).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// kube's `translateTimestampSince`: `<unknown>` for a zero/absent time, else the age.
pub fn translate_timestamp_since(t: Option<Timestamp>, now: Timestamp) -> String {
    match t {
        None => "<unknown>".to_string(),
        Some(t) => human_duration(now.as_nanosecond() - t.as_nanosecond()),
    }
}

fn since_at(v: &Value, path: &[&str], now: Timestamp) -> String {
    translate_timestamp_since(parse_time(str_at(v, path)), now)
}

fn age(v: &Value, now: Timestamp) -> String {
    since_at(v, &["metadata", "creationTimestamp"], now)
}

/// apimachinery's `duration.HumanDuration` (the model's, shared with `skiff get`).
pub use skiff_model::display::human_duration;

fn pod_row(object: &Value, now: Timestamp) -> RowCells {
    // A stored pod always decodes; a broken one still gets a row (its name and age).
    // Decoded from the borrowed value (no clone of the JSON).
    let pod = Pod::deserialize(object).unwrap_or_default();
    let d = skiff_model::display::display_status(&pod);
    let restarts = match d.last_restart.as_ref() {
        Some(t) if d.restarts != 0 => format!(
            "{} ({} ago)",
            d.restarts,
            translate_timestamp_since(Some(t.0), now)
        ),
        _ => d.restarts.to_string(),
    };
    let status = pod.status.as_ref();
    let ip = status
        .and_then(|s| s.pod_ips.as_ref())
        .and_then(|ips| ips.first())
        .map(|ip| ip.ip.as_str())
        .unwrap_or("");
    let node = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .unwrap_or("");
    let nominated = status
        .and_then(|s| s.nominated_node_name.as_deref())
        .unwrap_or("");
    let gates = pod
        .spec
        .as_ref()
        .and_then(|s| s.readiness_gates.as_ref())
        .filter(|g| !g.is_empty())
        .map_or_else(
            || "<none>".to_string(),
            |gates| {
                let conditions = status.and_then(|s| s.conditions.as_deref()).unwrap_or(&[]);
                let true_ = gates
                    .iter()
                    .filter(|g| {
                        conditions
                            .iter()
                            .find(|c| c.type_ == g.condition_type)
                            .is_some_and(|c| c.status == "True")
                    })
                    .count();
                format!("{true_}/{}", gates.len())
            },
        );
    let conditions = match status.and_then(|s| s.phase.as_deref()) {
        Some("Succeeded") => Some(
            json!([{"type": "Completed", "status": "True", "reason": "Succeeded", "message": "The pod has completed successfully."}]),
        ),
        Some("Failed") => Some(
            json!([{"type": "Completed", "status": "True", "reason": "Failed", "message": "The pod failed."}]),
        ),
        _ => None,
    };
    RowCells {
        cells: vec![
            name(object).into(),
            d.ready.into(),
            d.status.into(),
            restarts.into(),
            age(object, now).into(),
            or_none(ip).into(),
            or_none(node).into(),
            or_none(nominated).into(),
            gates.into(),
        ],
        conditions,
    }
}

fn event_cells(e: &Value, now: Timestamp) -> Vec<Value> {
    let first_ts = str_at(e, &["firstTimestamp"]);
    let first = if first_ts.is_empty() {
        since_at(e, &["eventTime"], now)
    } else {
        since_at(e, &["firstTimestamp"], now)
    };
    let mut last = if str_at(e, &["lastTimestamp"]).is_empty() {
        first.clone()
    } else {
        since_at(e, &["lastTimestamp"], now)
    };
    let mut count = at(e, &["count"]).and_then(Value::as_i64).unwrap_or(0);
    if let Some(series) = e.get("series").filter(|s| s.is_object()) {
        last = since_at(series, &["lastObservedTime"], now);
        count = series.get("count").and_then(Value::as_i64).unwrap_or(0);
    } else if count == 0 {
        // Singleton events don't have a count set in the new API.
        count = 1;
    }
    let kind = str_at(e, &["involvedObject", "kind"]).to_lowercase();
    let obj_name = str_at(e, &["involvedObject", "name"]);
    let target = if obj_name.is_empty() {
        kind
    } else {
        format!("{kind}/{obj_name}")
    };
    let component = match str_at(e, &["source", "component"]) {
        "" => str_at(e, &["reportingComponent"]),
        c => c,
    };
    let instance = match str_at(e, &["source", "host"]) {
        "" => str_at(e, &["reportingInstance"]),
        h => h,
    };
    let source = if instance.is_empty() {
        component.to_string()
    } else {
        format!("{component}, {instance}")
    };
    vec![
        last.into(),
        str_at(e, &["type"]).into(),
        str_at(e, &["reason"]).into(),
        target.into(),
        str_at(e, &["involvedObject", "fieldPath"]).into(),
        source.into(),
        str_at(e, &["message"]).trim().into(),
        first.into(),
        count.into(),
        name(e).into(),
    ]
}

fn node_cells(n: &Value, now: Timestamp) -> Vec<Value> {
    let conditions = at(n, &["status", "conditions"])
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    // The last Ready condition wins, as printNode's map does.
    let ready = conditions
        .iter()
        .rev()
        .find(|c| c.get("type").and_then(Value::as_str) == Some("Ready"));
    let mut status: Vec<&str> = match ready {
        Some(c) if c.get("status").and_then(Value::as_str) == Some("True") => vec!["Ready"],
        Some(_) => vec!["NotReady"],
        None => vec!["Unknown"],
    };
    if at(n, &["spec", "unschedulable"]).and_then(Value::as_bool) == Some(true) {
        status.push("SchedulingDisabled");
    }
    let mut roles: Vec<&str> = Vec::new();
    if let Some(labels) = at(n, &["metadata", "labels"]).and_then(Value::as_object) {
        for (k, v) in labels {
            if let Some(role) = k.strip_prefix("node-role.kubernetes.io/") {
                if !role.is_empty() {
                    roles.push(role);
                }
            } else if k == "kubernetes.io/role" {
                if let Some(v) = v.as_str().filter(|v| !v.is_empty()) {
                    roles.push(v);
                }
            }
        }
    }
    roles.sort_unstable();
    roles.dedup();
    let address = |type_: &str| {
        at(n, &["status", "addresses"])
            .and_then(Value::as_array)
            .and_then(|a| {
                a.iter()
                    .find(|x| x.get("type").and_then(Value::as_str) == Some(type_))
            })
            .and_then(|x| x.get("address").and_then(Value::as_str))
            .unwrap_or("<none>")
            .to_string()
    };
    let unknown = |s: &str| {
        if s.is_empty() {
            "<unknown>".to_string()
        } else {
            s.to_string()
        }
    };
    vec![
        name(n).into(),
        status.join(",").into(),
        or_none(&roles.join(",")).into(),
        age(n, now).into(),
        str_at(n, &["status", "nodeInfo", "kubeletVersion"]).into(),
        address("InternalIP").into(),
        address("ExternalIP").into(),
        unknown(str_at(n, &["status", "nodeInfo", "osImage"])).into(),
        unknown(str_at(n, &["status", "nodeInfo", "kernelVersion"])).into(),
        unknown(str_at(
            n,
            &["status", "nodeInfo", "containerRuntimeVersion"],
        ))
        .into(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i128 = 1_000_000_000;

    fn now() -> Timestamp {
        "2026-12-04T12:00:00Z"
            .parse()
            .unwrap_or(Timestamp::UNIX_EPOCH)
    }

    #[test]
    fn human_duration_like_apimachinery() {
        assert_eq!(human_duration(-2 * S), "<invalid>");
        assert_eq!(human_duration(-S / 2), "0s");
        assert_eq!(human_duration(119 * S), "119s");
        assert_eq!(human_duration(125 * S), "2m5s");
        assert_eq!(human_duration(180 * S), "3m");
        assert_eq!(human_duration(15 * 60 * S), "15m");
        assert_eq!(human_duration((3 * 3600 + 4 * 60) * S), "3h4m");
        assert_eq!(human_duration(10 * 3600 * S), "10h");
        assert_eq!(human_duration((3 * 24 + 5) * 3600 * S), "3d5h");
        assert_eq!(human_duration(30 * 24 * 3600 * S), "30d");
        assert_eq!(human_duration((3 * 365 + 10) * 24 * 3600 * S), "3y10d");
    }

    #[test]
    fn pod_cells_follow_print_pod() {
        let pod = json!({
            "metadata": {"name": "web", "creationTimestamp": "2026-12-04T11:50:00Z"},
            "spec": {
                "nodeName": "n1",
                "initContainers": [{"name": "side", "image": "i", "restartPolicy": "Always"}],
                "containers": [{"name": "app", "image": "i"}],
                "readinessGates": [{"conditionType": "x/y"}]
            },
            "status": {
                "phase": "Running",
                "podIPs": [{"ip": "10.0.0.7"}],
                "conditions": [{"type": "Ready", "status": "True"}, {"type": "x/y", "status": "True"}],
                "initContainerStatuses": [{"name": "side", "image": "i", "imageID": "", "ready": true, "started": true, "restartCount": 0,
                    "state": {"running": {}}}],
                "containerStatuses": [{"name": "app", "image": "i", "imageID": "", "ready": true, "restartCount": 3,
                    "state": {"running": {}},
                    "lastState": {"terminated": {"exitCode": 1, "finishedAt": "2026-12-04T11:58:00Z"}}}]
            }
        });
        let r = row("Pod", &pod, now());
        assert_eq!(
            r.cells,
            vec![
                json!("web"),
                json!("2/2"),
                json!("Running"),
                json!("3 (2m ago)"),
                json!("10m"),
                json!("10.0.0.7"),
                json!("n1"),
                json!("<none>"),
                json!("1/1")
            ]
        );
        assert_eq!(r.cells.len(), columns("Pod").len());
        assert!(r.conditions.is_none());
    }

    #[test]
    fn event_and_node_cells() {
        let ev = json!({
            "metadata": {"name": "web.1"},
            "involvedObject": {"kind": "Pod", "name": "web", "fieldPath": "spec.containers{app}"},
            "reason": "Started", "type": "Normal", "message": " Started container app\n",
            "source": {"component": "kubelet", "host": "n1"},
            "firstTimestamp": "2026-12-04T11:59:00Z", "lastTimestamp": "2026-12-04T11:59:30Z", "count": 2
        });
        let c = row("Event", &ev, now()).cells;
        assert_eq!(c.len(), columns("Event").len());
        assert_eq!(c[0], json!("30s"));
        assert_eq!(c[3], json!("pod/web"));
        assert_eq!(c[5], json!("kubelet, n1"));
        assert_eq!(c[6], json!("Started container app"));
        assert_eq!(c[7], json!("60s"));
        assert_eq!(c[8], json!(2));
        let node = json!({
            "metadata": {"name": "n1", "labels": {"node-role.kubernetes.io/control-plane": ""}},
            "spec": {"unschedulable": true},
            "status": {"conditions": [{"type": "Ready", "status": "False"}],
                "addresses": [{"type": "InternalIP", "address": "10.1.1.1"}],
                "nodeInfo": {"kubeletVersion": "v1.33.0-skiff"}}
        });
        let c = row("Node", &node, now()).cells;
        assert_eq!(c.len(), columns("Node").len());
        assert_eq!(c[1], json!("NotReady,SchedulingDisabled"));
        assert_eq!(c[2], json!("control-plane"));
        assert_eq!(c[3], json!("<unknown>"));
        assert_eq!(c[5], json!("10.1.1.1"));
        assert_eq!(c[6], json!("<none>"));
    }
}
