//! The daemon's `/metrics` and health endpoints end to end (issue 12 item 6): a pod with a
//! readiness probe run by `skiff serve`, then the scrape (over TLS with the token, parsed by a
//! Prometheus text parser) has its probe results and durations, its start latency, the running
//! pod and container, and the API requests; the health endpoints answer without a token as
//! kube's do, `/metrics` and the API do not. Root only (pods run in sandboxes).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod serve;

use std::process::Command;
use std::time::Duration;

use common::{container, pod, with, SERVE};
use prometheus_parse::{Scrape, Value};
use serde_json::json;
use serve::{kubectl_bin, Daemon};

fn value(s: &Scrape, metric: &str, labels: &[(&str, &str)]) -> Option<f64> {
    s.samples
        .iter()
        .filter(|x| x.metric == metric)
        .find(|x| labels.iter().all(|(k, v)| x.labels.get(k) == Some(*v)))
        .map(|x| match &x.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
            Value::Histogram(b) => b
                .iter()
                .find(|h| h.less_than.is_infinite())
                .map(|h| h.count)
                .unwrap_or(0.0),
            Value::Summary(_) => f64::NAN,
        })
}

#[test]
fn metrics_and_health_of_a_running_daemon() {
    if !common::is_root() || kubectl_bin("1.33").is_none() {
        eprintln!("skipped: needs root and kubectl.1.33");
        return;
    }
    let d = Daemon::start("serve-metrics");
    let app = with(
        container("app", SERVE),
        "readinessProbe",
        json!({"exec": {"command": ["/bin/true"]}, "periodSeconds": 1}),
    );
    let path = d.dir.manifest(pod("web", "Always", vec![], vec![app]));
    d.ok("1.33", &["apply", "-f", path.to_str().unwrap()]);
    d.ok(
        "1.33",
        &["wait", "--for=condition=Ready", "pod/web", "--timeout=60s"],
    );
    let uid = d.get_json(&["pod", "web"])["metadata"]["uid"]
        .as_str()
        .unwrap()
        .to_string();
    let probe = [
        ("probe_type", "Readiness"),
        ("result", "successful"),
        ("container", "app"),
        ("pod", "web"),
        ("namespace", "default"),
        ("pod_uid", uid.as_str()),
    ];
    let scrape = || {
        let out = d.ok("1.33", &["get", "--raw", "/metrics"]);
        Scrape::parse(out.lines().map(|l| Ok(l.to_string()))).unwrap()
    };
    let mut s = scrape();
    // Probes run every second: wait for a second one.
    common::wait_until(Duration::from_secs(10), || {
        s = scrape();
        value(&s, "prober_probe_total", &probe).is_some_and(|v| v >= 2.0)
    });
    assert!(
        value(&s, "prober_probe_total", &probe).is_some_and(|v| v >= 2.0),
        "{:?}",
        s.samples
            .iter()
            .filter(|x| x.metric.starts_with("prober"))
            .collect::<Vec<_>>()
    );
    let dur = [
        ("probe_type", "Readiness"),
        ("container", "app"),
        ("pod", "web"),
        ("namespace", "default"),
    ];
    assert!(value(&s, "prober_probe_duration_seconds", &dur).is_some_and(|v| v >= 1.0));
    assert_eq!(
        value(&s, "kubelet_pod_start_duration_seconds", &[]),
        Some(1.0)
    );
    assert_eq!(
        value(&s, "kubelet_pod_start_total_duration_seconds", &[]),
        Some(1.0)
    );
    assert_eq!(value(&s, "kubelet_running_pods", &[]), Some(1.0));
    assert_eq!(
        value(
            &s,
            "kubelet_running_containers",
            &[("container_state", "running")]
        ),
        Some(1.0)
    );
    assert_eq!(value(&s, "skiff_pods", &[("phase", "Running")]), Some(1.0));
    assert_eq!(
        value(
            &s,
            "apiserver_request_total",
            &[("verb", "PATCH"), ("resource", "pods"), ("code", "201")]
        )
        .or(value(
            &s,
            "apiserver_request_total",
            &[("verb", "POST"), ("resource", "pods"), ("code", "201")]
        )),
        Some(1.0)
    );
    assert!(value(&s, "skiff_store_commit_duration_seconds", &[]).is_some_and(|v| v >= 1.0));

    // Without a token over TLS (kubectl would prompt for a password: curl): health and
    // version yes, metrics and the API no.
    if !std::path::Path::new("/usr/bin/curl").exists() {
        eprintln!("curl not installed: the anonymous checks are skipped");
        return;
    }
    let endpoint: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.data.join("serve/endpoint.json")).unwrap())
            .unwrap();
    let server = endpoint["server"].as_str().unwrap().to_string();
    let ca = d.data.join("serve/ca.crt");
    let curl = |path: &str| {
        let out = Command::new("curl")
            .args(["-sS", "--max-time", "20", "--cacert"])
            .arg(&ca)
            .args(["-w", "\n%{http_code}"])
            .arg(format!("{server}{path}"))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(
        curl("/readyz?verbose"),
        "[+]ping ok\n[+]log ok\n[+]etcd ok\n[+]etcd-readiness ok\n[+]shutdown ok\nreadyz check passed\n\n200"
    );
    assert_eq!(curl("/livez/ping"), "ok\n200");
    assert_eq!(curl("/healthz"), "ok\n200");
    assert!(curl("/version").ends_with("\n200"));
    for path in ["/metrics", "/api/v1/pods"] {
        let out = curl(path);
        assert!(
            out.ends_with("\n401") && out.contains("Unauthorized"),
            "{path}: {out}"
        );
    }
}
