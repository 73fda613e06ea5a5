//! kubectl's STATUS / READY / RESTARTS columns (ST9), from pkg/printers/internalversion/printers.go
//! printPod. Pure over the Pod object, so the CLI and the API Table printer can share it.

use k8s_openapi::api::core::v1::{ContainerStatus, Pod};

/// The three columns `kubectl get pods` derives from a pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DisplayStatus {
    pub status: String,
    /// `ready/total`, total = app containers + sidecars.
    pub ready: String,
    pub restarts: i32,
}

fn is_sidecar(pod: &Pod, name: &str) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.init_containers.as_ref())
        .and_then(|ics| ics.iter().find(|c| c.name == name))
        .is_some_and(|c| c.restart_policy.as_deref() == Some("Always"))
}

fn terminated_reason(prefix: &str, s: &ContainerStatus) -> Option<String> {
    let t = s.state.as_ref()?.terminated.as_ref()?;
    Some(match t.reason.as_deref() {
        Some(r) if !r.is_empty() => format!("{prefix}{r}"),
        _ => match t.signal {
            Some(sig) if sig != 0 => format!("{prefix}Signal:{sig}"),
            _ => format!("{prefix}ExitCode:{}", t.exit_code),
        },
    })
}

/// printPod's STATUS, READY and RESTARTS.
pub fn display_status(pod: &Pod) -> DisplayStatus {
    let empty = Default::default();
    let status = pod.status.as_ref().unwrap_or(&empty);
    let spec_init = pod
        .spec
        .as_ref()
        .and_then(|s| s.init_containers.as_ref())
        .map_or(0, Vec::len);
    let n_apps = pod.spec.as_ref().map_or(0, |s| s.containers.len());
    let n_sidecars = pod
        .spec
        .as_ref()
        .and_then(|s| s.init_containers.as_ref())
        .map_or(0, |ics| {
            ics.iter()
                .filter(|c| c.restart_policy.as_deref() == Some("Always"))
                .count()
        });
    let phase = status.phase.clone().unwrap_or_default();
    let mut reason = match status.reason.as_deref() {
        Some(r) if !r.is_empty() => r.to_string(),
        _ => phase.clone(),
    };
    let conditions = status.conditions.as_deref().unwrap_or(&[]);
    if conditions
        .iter()
        .any(|c| c.type_ == "PodScheduled" && c.reason.as_deref() == Some("SchedulingGated"))
    {
        reason = "SchedulingGated".into();
    }
    let mut restarts = 0;
    let mut sidecar_restarts = 0;
    let mut ready = 0;
    let mut initializing = false;
    for (i, c) in status.init_container_statuses.iter().flatten().enumerate() {
        restarts += c.restart_count;
        let sidecar = is_sidecar(pod, &c.name);
        if sidecar {
            sidecar_restarts += c.restart_count;
        }
        let st = c.state.as_ref();
        let term = st.and_then(|s| s.terminated.as_ref());
        let wait_reason = st
            .and_then(|s| s.waiting.as_ref())
            .and_then(|w| w.reason.as_deref())
            .unwrap_or("");
        if term.is_some_and(|t| t.exit_code == 0) {
            continue;
        }
        if sidecar && c.started == Some(true) {
            if c.ready {
                ready += 1;
            }
            continue;
        }
        reason = if let Some(r) = terminated_reason("Init:", c) {
            r
        } else if !wait_reason.is_empty() && wait_reason != "PodInitializing" {
            format!("Init:{wait_reason}")
        } else {
            format!("Init:{i}/{spec_init}")
        };
        initializing = true;
        break;
    }
    let initialized_true = conditions
        .iter()
        .any(|c| c.type_ == "Initialized" && c.status == "True");
    if !initializing || initialized_true {
        restarts = sidecar_restarts;
        let mut has_running = false;
        for c in status.container_statuses.iter().flatten().rev() {
            restarts += c.restart_count;
            let st = c.state.as_ref();
            let wait_reason = st
                .and_then(|s| s.waiting.as_ref())
                .and_then(|w| w.reason.as_deref())
                .unwrap_or("");
            if !wait_reason.is_empty() {
                reason = wait_reason.to_string();
            } else if let Some(r) = terminated_reason("", c) {
                reason = r;
            } else if c.ready && st.is_some_and(|s| s.running.is_some()) {
                has_running = true;
                ready += 1;
            }
        }
        if reason == "Completed" && has_running {
            let pod_ready = conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True");
            reason = if pod_ready { "Running" } else { "NotReady" }.into();
        }
    }
    if pod.metadata.deletion_timestamp.is_some() {
        if status.reason.as_deref() == Some("NodeLost") {
            reason = "Unknown".into();
        } else if phase != "Succeeded" && phase != "Failed" {
            reason = "Terminating".into();
        }
    }
    DisplayStatus {
        status: reason,
        ready: format!("{ready}/{}", n_apps + n_sidecars),
        restarts,
    }
}
