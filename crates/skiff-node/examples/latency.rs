//! Measures the host runtime's own latencies (run as root for the cgroup2
//! tracker, or as any user for the process-group fallback):
//!
//!   cargo run --release -p skiff-node --example latency [-- ITERATIONS]
//!
//! * start → running: from `HostRuntime::start` being called to its return
//!   (std's spawn returns only after `execve` succeeded, so the container's
//!   program is running), and to the container's first log line arriving.
//! * exit → notification: from SIGKILL sent to a running container to the
//!   reaper's notification (`main_exit`), and to `wait()` resolving (logs
//!   drained, termination message read), and to `cleaned_up()` (tracking
//!   group emptied and removed).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Container;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use skiff_node::launch::{ContainerLaunch, PodIdentity};
use skiff_node::runtime::HostRuntime;
use tokio::sync::mpsc;

fn container(script: &str) -> Container {
    Container {
        name: "bench".into(),
        image: Some("host".into()),
        command: Some(vec!["/bin/sh".into(), "-c".into(), script.into()]),
        ..Default::default()
    }
}

fn report(name: &str, mut v: Vec<Duration>) {
    v.sort();
    let p = |q: f64| v[((v.len() as f64 - 1.0) * q).round() as usize];
    println!(
        "{name:<40} n={:<4} p50={:>8.3} ms  p90={:>8.3} ms  max={:>8.3} ms",
        v.len(),
        p(0.5).as_secs_f64() * 1e3,
        p(0.9).as_secs_f64() * 1e3,
        p(1.0).as_secs_f64() * 1e3
    );
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200);
    // SKIFF_TRACKER=process-group forces the fallback tracker.
    let rt = if std::env::var("SKIFF_TRACKER").as_deref() == Ok("process-group") {
        HostRuntime::with_tracker(std::sync::Arc::new(
            skiff_node::tracker::ProcessGroupTracker,
        ))
        .unwrap()
    } else {
        HostRuntime::new().unwrap()
    };
    println!("tracker: {}", rt.tracker_kind());
    let data = tempfile::tempdir().unwrap();
    let pod = PodIdentity {
        namespace: "bench".into(),
        name: "bench".into(),
        uid: "bench-uid".into(),
        ..Default::default()
    };
    let (mut start_ret, mut first_line, mut reaped, mut waited, mut cleaned) =
        (vec![], vec![], vec![], vec![], vec![]);
    for i in 0..n + 5 {
        let launch = ContainerLaunch::from_container(
            &container("echo up; exec sleep 1000"),
            &pod,
            data.path(),
            i as u32,
            &skiff_node::launch::EnvSources::NONE,
        )
        .unwrap();
        let (tx, mut rx) = mpsc::channel(4);
        let t0 = Instant::now();
        let ct = rt
            .start(launch, Default::default(), Some(tx))
            .await
            .unwrap();
        let t_start = t0.elapsed();
        rx.recv().await.unwrap();
        let t_line = t0.elapsed();
        // Wait until `exec sleep` has happened so the kill hits a settled process.
        while std::fs::read_to_string(format!("/proc/{}/comm", ct.pid()))
            .map(|s| s.trim() != "sleep")
            .unwrap_or(true)
        {
            tokio::task::yield_now().await;
        }
        let t1 = Instant::now();
        kill(Pid::from_raw(ct.pid()), Signal::SIGKILL).unwrap();
        ct.main_exit().wait().await;
        let t_reaped = t1.elapsed();
        ct.wait().await;
        let t_waited = t1.elapsed();
        ct.cleaned_up().await;
        let t_clean = t1.elapsed();
        if i >= 5 {
            start_ret.push(t_start);
            first_line.push(t_line);
            reaped.push(t_reaped);
            waited.push(t_waited);
            cleaned.push(t_clean);
        }
    }
    report("start() call -> process running (return)", start_ret);
    report("start() call -> first log line", first_line);
    report("SIGKILL -> reaper notification", reaped);
    report("SIGKILL -> wait() resolved (exit+logs+msg)", waited);
    report("SIGKILL -> cleaned_up() (group removed)", cleaned);
}
