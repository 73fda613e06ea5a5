//! `skiff get pods`: the pods of the data dir (running or finished) as `kubectl get pods`
//! prints them: kubectl's columns and STATUS rules (printers.go printPod), its ages
//! (duration.HumanDuration) and its table layout (tabwriter: min width 6, padding 3).
//!
//! A pod name may come back with a new uid on each run; like a cluster, where a name is one
//! pod, the newest pod of each namespace/name is shown. A pod whose skiff died before it
//! finished (its status is not terminal and no skiff holds its lock) shows `Unknown`, as
//! kubectl does for a pod on a lost node.
//!
//! When a `skiff serve` runs on the data dir, the pods are its pods, read from its API over
//! the unix socket ([`super::client`]), printed by the same code.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Pod, PodCondition};
use k8s_openapi::jiff::Timestamp;
use skiff_node::store::{self, StoredPod};

use crate::exit;
use crate::output::OutputFormat;
use crate::store::DataDirArg;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// `pods` (or `pod`, `po`) followed by pod names, or `pod/NAME`s.
    #[arg(value_name = "RESOURCE", required = true)]
    resource: String,
    #[arg(value_name = "NAME")]
    names: Vec<String>,
    /// Namespace of the pods.
    #[arg(short = 'n', long, default_value = "default")]
    namespace: String,
    /// Pods of every namespace (adds a NAMESPACE column).
    #[arg(short = 'A', long)]
    all_namespaces: bool,
    /// Output format: wide, name, json, yaml, jsonpath=TEMPLATE, jsonpath-file=FILE; the
    /// default is kubectl's table.
    #[arg(short = 'o', long = "output", value_parser = OutputFormat::parse)]
    output: Option<OutputFormat>,
    #[command(flatten)]
    data: DataDirArg,
}

/// kubectl's names of the pods resource.
pub fn is_pod_resource(s: &str) -> bool {
    matches!(s, "pods" | "pod" | "po")
}

pub fn run(args: &Args) -> u8 {
    let names = match requested_names(args) {
        Ok(n) => n,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::BAD_INPUT;
        }
    };
    if args.all_namespaces && !names.is_empty() {
        eprintln!("error: a resource cannot be retrieved by name across all namespaces");
        return exit::BAD_INPUT;
    }
    let data_dir = match args.data.resolve() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: {e:#}");
            return exit::FAILURE;
        }
    };
    let pods = match listed(args, &data_dir) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            return exit::FAILURE;
        }
    };
    let mut code = 0;
    let shown: Vec<Listed> = if names.is_empty() {
        pods
    } else {
        let by_name: BTreeMap<&str, &Listed> = pods.iter().map(|p| (p.name(), p)).collect();
        let mut out = Vec::new();
        for n in &names {
            match by_name.get(n.as_str()) {
                Some(p) => out.push((*p).clone()),
                None => {
                    eprintln!("Error from server (NotFound): pods \"{n}\" not found");
                    code = exit::FAILURE;
                }
            }
        }
        out
    };
    let text = match &args.output {
        None | Some(OutputFormat::Wide) => {
            if shown.is_empty() {
                if code == 0 {
                    if args.all_namespaces {
                        eprintln!("No resources found");
                    } else {
                        eprintln!("No resources found in {} namespace.", args.namespace);
                    }
                }
                return code;
            }
            let now = crate::store::now();
            table(
                &shown,
                args.all_namespaces,
                args.output == Some(OutputFormat::Wide),
                now,
            )
        }
        Some(OutputFormat::Name) => shown
            .iter()
            .map(|p| format!("pod/{}\n", p.name()))
            .collect(),
        Some(f) => match structured(&shown, names.len() == 1 && shown.len() == 1, f) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("error: {e:#}");
                return exit::FAILURE;
            }
        },
    };
    print!("{text}");
    code
}

/// A pod to show: one `skiff run` keeps in the data dir, or one of the daemon's.
#[derive(Clone)]
enum Listed {
    Stored(Box<StoredPod>),
    Api(Box<Pod>),
}

impl Listed {
    fn name(&self) -> &str {
        match self {
            Listed::Stored(p) => p.name(),
            Listed::Api(p) => p.metadata.name.as_deref().unwrap_or(""),
        }
    }

    fn namespace(&self) -> &str {
        match self {
            Listed::Stored(p) => p.namespace(),
            Listed::Api(p) => p.metadata.namespace.as_deref().unwrap_or(""),
        }
    }

    /// The pod the table is made of.
    fn table_pod(&self) -> &Pod {
        match self {
            Listed::Stored(p) => &p.summary.pod,
            Listed::Api(p) => p,
        }
    }

    /// A `skiff run` pod whose skiff died before it finished; the daemon's pods never are.
    fn stale(&self) -> bool {
        match self {
            Listed::Stored(p) => p.stale(),
            Listed::Api(_) => false,
        }
    }

    /// The whole pod, for `-o json|yaml|jsonpath`.
    fn full_pod(&self) -> anyhow::Result<Pod> {
        match self {
            Listed::Stored(p) => p
                .full_pod()
                .map_err(|e| anyhow::anyhow!("reading {}: {e}", p.dir.display())),
            Listed::Api(p) => Ok((**p).clone()),
        }
    }
}

/// The pods of the namespace (or all): the daemon's when one runs on the data dir, else the
/// newest of each name `skiff run` kept. The error is the message to print.
fn listed(args: &Args, data_dir: &std::path::Path) -> Result<Vec<Listed>, String> {
    match super::client::DaemonClient::connect(data_dir) {
        Ok(Some(client)) => {
            let path = if args.all_namespaces {
                "/api/v1/pods".to_string()
            } else {
                format!(
                    "/api/v1/namespaces/{}/pods",
                    super::client::encode(&args.namespace)
                )
            };
            #[derive(serde::Deserialize)]
            struct PodList {
                #[serde(default)]
                items: Vec<Pod>,
            }
            let list: PodList = client.get_json(&path).map_err(|e| match e {
                e @ super::client::ClientError::Status { .. } => e.to_string(),
                e => format!("error: {e}"),
            })?;
            Ok(list
                .items
                .into_iter()
                .map(|p| Listed::Api(Box::new(p)))
                .collect())
        }
        Ok(None) => {
            let all = store::list(data_dir)
                .map_err(|e| format!("error: reading {}: {e}", data_dir.display()))?;
            Ok(store::newest_per_name(
                all.into_iter()
                    .filter(|p| args.all_namespaces || p.namespace() == args.namespace)
                    .collect(),
            )
            .into_iter()
            .map(|p| Listed::Stored(Box::new(p)))
            .collect())
        }
        Err(e) => Err(format!("error: {e}")),
    }
}

/// The pod names asked for: `pods NAME…` or `pod/NAME…`.
fn requested_names(args: &Args) -> Result<Vec<String>, String> {
    let unknown = |t: &str| format!("the server doesn't have a resource type \"{t}\"");
    if args.resource.contains('/') {
        let mut names = Vec::new();
        for a in std::iter::once(&args.resource).chain(&args.names) {
            let Some((t, n)) = a.split_once('/') else {
                return Err("there is no need to specify a resource type as a separate argument when passing arguments in resource/name form (e.g. 'skiff get resource/<resource_name>' instead of 'skiff get resource resource/<resource_name>'".to_string());
            };
            if !is_pod_resource(t) {
                return Err(unknown(t));
            }
            names.push(n.to_string());
        }
        return Ok(names);
    }
    if !is_pod_resource(&args.resource) {
        return Err(unknown(&args.resource));
    }
    Ok(args.names.clone())
}

/// `-o json|yaml`: the full Pods; one Pod asked by name is printed alone, anything else as a
/// `List` (kubectl's printGeneric).
fn structured(pods: &[Listed], single: bool, f: &OutputFormat) -> anyhow::Result<String> {
    let mut items = Vec::with_capacity(pods.len());
    for p in pods {
        let pod = p.full_pod()?;
        items.push(serde_json::to_value(&pod)?);
    }
    f.render_as(&items, !single)
}

/// The table, laid out as kubectl's tabwriter does.
fn table(pods: &[Listed], namespaces: bool, wide: bool, now: Timestamp) -> String {
    let mut rows: Vec<Vec<String>> = Vec::with_capacity(pods.len() + 1);
    let mut header: Vec<&str> = Vec::new();
    if namespaces {
        header.push("NAMESPACE");
    }
    header.extend(["NAME", "READY", "STATUS", "RESTARTS", "AGE"]);
    if wide {
        header.extend(["IP", "NODE", "NOMINATED NODE", "READINESS GATES"]);
    }
    rows.push(header.iter().map(|s| s.to_string()).collect());
    for p in pods {
        let mut cells = Vec::new();
        if namespaces {
            cells.push(p.namespace().to_string());
        }
        let mut row = print_pod(p.table_pod(), wide, now);
        if p.stale() {
            row[2] = "Unknown".to_string();
        }
        cells.extend(row);
        rows.push(cells);
    }
    tabwrite(&rows)
}

/// Go's text/tabwriter as kubectl sets it up (minwidth 6, padding 3, padchar ' '): every
/// column but the last is as wide as its widest cell plus 3, at least 6.
pub fn tabwrite(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![6usize; cols];
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count() + 3);
        }
    }
    let mut out = String::new();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            out.push_str(c);
            if i + 1 < r.len() {
                let pad = widths[i] - c.chars().count();
                out.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push('\n');
    }
    out
}

/// kubectl's printPod (pkg/printers/internalversion/printers.go): NAME, READY, STATUS,
/// RESTARTS, AGE (and with `wide` IP, NODE, NOMINATED NODE, READINESS GATES).
pub fn print_pod(pod: &Pod, wide: bool, now: Timestamp) -> Vec<String> {
    let spec = pod.spec.clone().unwrap_or_default();
    let status = pod.status.clone().unwrap_or_default();
    let conditions: &[PodCondition] = status.conditions.as_deref().unwrap_or(&[]);
    // kubectl's printPod STATUS, READY and RESTARTS: the engine's, shared with `skiff run`.
    let skiff_engine::DisplayStatus {
        status: reason,
        ready,
        restarts,
        last_restart,
    } = skiff_engine::display_status(pod);
    let last_restart = last_restart.map(|t| t.0);
    let restarts_str = match last_restart {
        Some(t) if restarts != 0 => format!("{restarts} ({} ago)", since(now, Some(t))),
        _ => restarts.to_string(),
    };
    let mut cells = vec![
        pod.metadata.name.clone().unwrap_or_default(),
        ready,
        reason,
        restarts_str,
        since(now, pod.metadata.creation_timestamp.as_ref().map(|t| t.0)),
    ];
    if wide {
        let none = |s: Option<String>| s.filter(|s| !s.is_empty()).unwrap_or("<none>".into());
        let ip = status
            .pod_ips
            .as_ref()
            .and_then(|ips| ips.first())
            .map(|i| i.ip.clone());
        let gates = spec.readiness_gates.as_deref().unwrap_or(&[]);
        let gates = if gates.is_empty() {
            "<none>".to_string()
        } else {
            let true_count = gates
                .iter()
                .filter(|g| {
                    conditions
                        .iter()
                        .find(|c| c.type_ == g.condition_type)
                        .is_some_and(|c| c.status == "True")
                })
                .count();
            format!("{true_count}/{}", gates.len())
        };
        cells.extend([
            none(ip),
            none(spec.node_name.clone()),
            none(status.nominated_node_name.clone()),
            gates,
        ]);
    }
    cells
}

/// kubectl's translateTimestampSince: `<unknown>` for no time, else the age.
fn since(now: Timestamp, t: Option<Timestamp>) -> String {
    match t {
        None => "<unknown>".to_string(),
        Some(t) => {
            let nanos = now.as_nanosecond() - t.as_nanosecond();
            human_duration(nanos)
        }
    }
}

/// apimachinery's duration.HumanDuration (kubectl's AGE), shared with the API server's Tables.
pub use skiff_model::display::human_duration;

#[cfg(test)]
mod tests {
    use super::*;

    const S: i128 = 1_000_000_000;

    #[test]
    fn human_duration_like_apimachinery() {
        let cases: &[(i128, &str)] = &[
            (-2 * S, "<invalid>"),
            (-S, "0s"),
            (0, "0s"),
            (S / 2, "0s"),
            (119 * S, "119s"),
            (120 * S, "2m"),
            (121 * S, "2m1s"),
            (599 * S, "9m59s"),
            (600 * S, "10m"),
            (179 * 60 * S, "179m"),
            (180 * 60 * S, "3h"),
            (181 * 60 * S, "3h1m"),
            (8 * 3600 * S, "8h"),
            (47 * 3600 * S, "47h"),
            (48 * 3600 * S, "2d"),
            (49 * 3600 * S, "2d1h"),
            (8 * 24 * 3600 * S, "8d"),
            (729 * 24 * 3600 * S, "729d"),
            (730 * 24 * 3600 * S, "2y"),
            (731 * 24 * 3600 * S, "2y1d"),
            (8 * 365 * 24 * 3600 * S, "8y"),
        ];
        for (n, want) in cases {
            assert_eq!(human_duration(*n), *want, "{n}");
        }
    }

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).unwrap()
    }

    fn now() -> Timestamp {
        "2024-01-01T01:00:00Z".parse().unwrap()
    }

    fn row(v: serde_json::Value) -> Vec<String> {
        print_pod(&pod(v), false, now())
    }

    #[test]
    fn print_pod_statuses() {
        let base = |status: serde_json::Value| {
            serde_json::json!({
                "metadata": {"name": "p", "creationTimestamp": "2024-01-01T00:00:00Z"},
                "spec": {"containers": [{"name": "a"}, {"name": "b"}],
                         "initContainers": [{"name": "i"}, {"name": "s", "restartPolicy": "Always"}]},
                "status": status,
            })
        };
        // Completed: both app containers exited 0.
        let done = |name: &str, code: i32, reason: &str| {
            serde_json::json!({"name": name, "ready": false, "restartCount": 0, "image": "", "imageID": "",
                "state": {"terminated": {"exitCode": code, "reason": reason}}})
        };
        let r = row(base(serde_json::json!({
            "phase": "Succeeded",
            "conditions": [{"type": "Initialized", "status": "True"}],
            "initContainerStatuses": [done("i", 0, "Completed"), done("s", 0, "Completed")],
            "containerStatuses": [done("a", 0, "Completed"), done("b", 0, "Completed")],
        })));
        assert_eq!(r, vec!["p", "0/3", "Completed", "0", "60m"]);
        // Error wins as the first (kubectl walks backwards, so the first container's).
        let r = row(base(serde_json::json!({
            "phase": "Failed",
            "conditions": [{"type": "Initialized", "status": "True"}],
            "containerStatuses": [done("a", 1, "Error"), done("b", 0, "Completed")],
        })));
        assert_eq!(r[2], "Error");
        // Init containers running: Init:0/2; a failed one: Init:Error; back-off.
        let r = row(base(serde_json::json!({
            "phase": "Pending",
            "initContainerStatuses": [{"name": "i", "ready": false, "restartCount": 0, "image": "", "imageID": "",
                "state": {"running": {}}}],
        })));
        assert_eq!(r[2], "Init:0/2");
        let r = row(base(serde_json::json!({
            "phase": "Pending",
            "initContainerStatuses": [{"name": "i", "ready": false, "restartCount": 3, "image": "", "imageID": "",
                "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                "lastState": {"terminated": {"exitCode": 1, "finishedAt": "2024-01-01T00:55:00Z"}}}],
        })));
        assert_eq!(r[2], "Init:CrashLoopBackOff");
        assert_eq!(r[3], "3 (5m ago)");
        let r = row(base(serde_json::json!({
            "phase": "Failed",
            "initContainerStatuses": [done("i", 2, "")],
        })));
        assert_eq!(r[2], "Init:ExitCode:2");
        // Running with a ready sidecar and app containers: READY counts the sidecar; restarts
        // of regular init containers no longer count once initialized.
        let running = |name: &str, ready: bool, restarts: i32| {
            serde_json::json!({"name": name, "ready": ready, "started": true, "restartCount": restarts,
                "image": "", "imageID": "", "state": {"running": {}},
                "lastState": if restarts > 0 {
                    serde_json::json!({"terminated": {"exitCode": 1, "finishedAt": "2024-01-01T00:59:30Z"}})
                } else { serde_json::json!({}) }})
        };
        let r = row(base(serde_json::json!({
            "phase": "Running",
            "conditions": [{"type": "Initialized", "status": "True"}, {"type": "Ready", "status": "False"}],
            "initContainerStatuses": [done("i", 0, "Completed"), running("s", true, 0)],
            "containerStatuses": [running("a", true, 2), running("b", false, 0)],
        })));
        assert_eq!(r, vec!["p", "2/3", "Running", "2 (30s ago)", "60m"]);
        // A completed container beside a running one: NotReady without the Ready condition.
        let r = row(base(serde_json::json!({
            "phase": "Running",
            "conditions": [{"type": "Initialized", "status": "True"}],
            "containerStatuses": [running("a", true, 0), done("b", 0, "Completed")],
        })));
        assert_eq!(r[2], "NotReady");
        // Waiting reason of an app container.
        let r = row(base(serde_json::json!({
            "phase": "Running",
            "conditions": [{"type": "Initialized", "status": "True"}],
            "containerStatuses": [{"name": "a", "ready": false, "restartCount": 5, "image": "", "imageID": "",
                "state": {"waiting": {"reason": "CrashLoopBackOff"}}}],
        })));
        assert_eq!(r[2], "CrashLoopBackOff");
        assert_eq!(r[3], "5");
        // Status reason (rejected at admission), no creation time.
        let r = print_pod(
            &pod(serde_json::json!({
                "metadata": {"name": "q"},
                "spec": {"containers": [{"name": "a"}], "readinessGates": [{"conditionType": "x"}]},
                "status": {"phase": "Failed", "reason": "OutOfcpu"},
            })),
            true,
            now(),
        );
        assert_eq!(
            r,
            vec![
                "q",
                "0/1",
                "OutOfcpu",
                "0",
                "<unknown>",
                "<none>",
                "<none>",
                "<none>",
                "0/1"
            ]
        );
    }

    #[test]
    fn tabwriter_layout() {
        let rows = vec![
            vec!["NAME".to_string(), "READY".into(), "AGE".into()],
            vec!["a-long-name".to_string(), "1/1".into(), "5s".into()],
        ];
        assert_eq!(
            tabwrite(&rows),
            "NAME          READY   AGE\na-long-name   1/1     5s\n"
        );
    }
}
