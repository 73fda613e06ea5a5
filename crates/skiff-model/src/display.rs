//! kubectl's STATUS / READY / RESTARTS columns (ST9), from pkg/printers/internalversion/printers.go
//! printPod. Pure over the Pod object, so the CLI and the API Table printer can share it.

use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time as MetaTime;

/// The three columns `kubectl get pods` derives from a pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DisplayStatus {
    pub status: String,
    /// `ready/total`, total = app containers + sidecars.
    pub ready: String,
    pub restarts: i32,
    /// When the last counted restart's previous instance ended (kubectl prints
    /// `RESTARTS` as `3 (5m ago)` from it).
    pub last_restart: Option<MetaTime>,
}

/// The later of `cur` and the end of `c`'s previous instance (`lastState.terminated`).
fn later_restart(cur: &mut Option<MetaTime>, c: &ContainerStatus) {
    let t = c
        .last_state
        .as_ref()
        .and_then(|s| s.terminated.as_ref())
        .and_then(|t| t.finished_at.clone());
    if let Some(t) = t {
        if cur.as_ref().is_none_or(|c| c.0 < t.0) {
            *cur = Some(t);
        }
    }
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
    let mut last_restart = None;
    let mut last_sidecar_restart = None;
    let mut ready = 0;
    let mut initializing = false;
    for (i, c) in status.init_container_statuses.iter().flatten().enumerate() {
        restarts += c.restart_count;
        later_restart(&mut last_restart, c);
        let sidecar = is_sidecar(pod, &c.name);
        if sidecar {
            sidecar_restarts += c.restart_count;
            later_restart(&mut last_sidecar_restart, c);
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
        last_restart = last_sidecar_restart;
        let mut has_running = false;
        for c in status.container_statuses.iter().flatten().rev() {
            restarts += c.restart_count;
            later_restart(&mut last_restart, c);
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
        last_restart,
    }
}

/// The role of a container in its pod (the KIND column of `skiff run`'s summary).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContainerKindWord {
    /// A regular init container.
    Init,
    /// An init container with `restartPolicy: Always` (native sidecar).
    Sidecar,
    /// An app container (`spec.containers`).
    App,
}

impl ContainerKindWord {
    pub fn as_str(self) -> &'static str {
        match self {
            ContainerKindWord::Init => "init",
            ContainerKindWord::Sidecar => "sidecar",
            ContainerKindWord::App => "app",
        }
    }
}

/// One container of a pod as `skiff run`'s summary shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerRow {
    pub name: String,
    pub kind: ContainerKindWord,
    /// The state as one word, kubectl's way: a terminated container's reason (`Completed`,
    /// `Error`, `OOMKilled`, `StartError`, …, or `Signal:N` / `ExitCode:N` when the runtime
    /// gave none), a waiting container's reason (`CrashLoopBackOff`, `PodInitializing`,
    /// `CreateContainerConfigError`, …, or `Waiting`), `Running`; `Unknown` without a status.
    pub status: String,
    /// The exit code of a terminated state.
    pub exit_code: Option<i32>,
    pub restarts: i32,
    /// The current state's message, then (after a restart) the previous termination:
    /// `last: Error (exit 1)` and its message. Possibly multi-line (termination messages).
    pub detail: String,
}

fn state_word(s: &ContainerStatus) -> String {
    let Some(state) = s.state.as_ref() else {
        return "Unknown".into();
    };
    if state.terminated.is_some() {
        return terminated_reason("", s).unwrap_or_default();
    }
    if let Some(w) = &state.waiting {
        return match w.reason.as_deref() {
            Some(r) if !r.is_empty() => r.to_string(),
            _ => "Waiting".into(),
        };
    }
    if state.running.is_some() {
        return "Running".into();
    }
    "Unknown".into()
}

fn state_detail(s: &ContainerStatus) -> String {
    let state = s.state.as_ref();
    let message = state
        .and_then(|st| {
            st.terminated
                .as_ref()
                .and_then(|t| t.message.clone())
                .or_else(|| st.waiting.as_ref().and_then(|w| w.message.clone()))
        })
        .filter(|m| !m.trim().is_empty());
    let last = s
        .last_state
        .as_ref()
        .and_then(|l| l.terminated.as_ref())
        .map(|t| {
            let reason = match t.reason.as_deref() {
                Some(r) if !r.is_empty() => r,
                _ => "Terminated",
            };
            let mut out = format!("last: {reason} (exit {})", t.exit_code);
            if let Some(m) = t.message.as_deref().filter(|m| !m.trim().is_empty()) {
                out.push_str(": ");
                out.push_str(m);
            }
            out
        });
    match (message, last) {
        (Some(m), Some(l)) => format!("{m}; {l}"),
        (Some(m), None) => m,
        (None, Some(l)) => l,
        (None, None) => String::new(),
    }
}

/// Every container of `pod` in spec order (init containers, then apps) with its state as
/// `skiff run`'s summary prints it. A container without a status gets `Unknown`.
pub fn container_rows(pod: &Pod) -> Vec<ContainerRow> {
    let Some(spec) = pod.spec.as_ref() else {
        return Vec::new();
    };
    let empty = Default::default();
    let status = pod.status.as_ref().unwrap_or(&empty);
    let find = |list: &Option<Vec<ContainerStatus>>, name: &str| -> Option<ContainerStatus> {
        list.iter().flatten().find(|s| s.name == name).cloned()
    };
    let row = |name: &str, kind: ContainerKindWord, s: Option<ContainerStatus>| match s {
        Some(s) => ContainerRow {
            name: name.to_string(),
            kind,
            status: state_word(&s),
            exit_code: s
                .state
                .as_ref()
                .and_then(|st| st.terminated.as_ref())
                .map(|t| t.exit_code),
            restarts: s.restart_count,
            detail: state_detail(&s),
        },
        None => ContainerRow {
            name: name.to_string(),
            kind,
            status: "Unknown".into(),
            exit_code: None,
            restarts: 0,
            detail: String::new(),
        },
    };
    let mut rows = Vec::new();
    for c in spec.init_containers.iter().flatten() {
        let kind = if c.restart_policy.as_deref() == Some("Always") {
            ContainerKindWord::Sidecar
        } else {
            ContainerKindWord::Init
        };
        rows.push(row(
            &c.name,
            kind,
            find(&status.init_container_statuses, &c.name),
        ));
    }
    for c in &spec.containers {
        rows.push(row(
            &c.name,
            ContainerKindWord::App,
            find(&status.container_statuses, &c.name),
        ));
    }
    rows
}

/// apimachinery's `duration.HumanDuration` (kubectl's AGE and `3 (2m ago)`), from a signed
/// count of nanoseconds.
pub fn human_duration(nanos: i128) -> String {
    const S: i128 = 1_000_000_000;
    // Go's int(d.Seconds()) truncates towards zero.
    let seconds = nanos / S;
    if seconds < -1 {
        return "<invalid>".into();
    } else if seconds < 0 {
        return "0s".into();
    } else if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = nanos / (60 * S);
    if minutes < 10 {
        let s = seconds % 60;
        if s == 0 {
            return format!("{minutes}m");
        }
        return format!("{minutes}m{s}s");
    } else if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = nanos / (3600 * S);
    if hours < 8 {
        let m = minutes % 60;
        if m == 0 {
            return format!("{hours}h");
        }
        return format!("{hours}h{m}m");
    } else if hours < 48 {
        return format!("{hours}h");
    } else if hours < 24 * 8 {
        let h = hours % 24;
        if h == 0 {
            return format!("{}d", hours / 24);
        }
        return format!("{}d{h}h", hours / 24);
    } else if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    } else if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        if dy == 0 {
            return format!("{}y", hours / 24 / 365);
        }
        return format!("{}y{dy}d", hours / 24 / 365);
    }
    format!("{}y", hours / 24 / 365)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn rows_follow_the_spec_and_name_states_as_kubectl() {
        let p = pod(json!({
            "spec": {
                "initContainers": [
                    {"name": "setup"},
                    {"name": "side", "restartPolicy": "Always"},
                ],
                "containers": [{"name": "web"}, {"name": "b-job"}, {"name": "never"}],
            },
            "status": {
                "initContainerStatuses": [
                    {"name": "setup", "ready": true, "restartCount": 0, "image": "", "imageID": "",
                     "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
                    {"name": "side", "ready": false, "restartCount": 2, "image": "", "imageID": "",
                     "state": {"terminated": {"exitCode": 0, "reason": "Completed"}},
                     "lastState": {"terminated": {"exitCode": 1, "reason": "Error",
                                                  "message": "boom"}}},
                ],
                "containerStatuses": [
                    {"name": "b-job", "ready": false, "restartCount": 0, "image": "", "imageID": "",
                     "state": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}},
                    {"name": "never", "ready": false, "restartCount": 0, "image": "", "imageID": "",
                     "state": {"waiting": {"reason": "CreateContainerConfigError",
                                           "message": "configmap \"x\" not found"}}},
                    {"name": "web", "ready": false, "restartCount": 3, "image": "", "imageID": "",
                     "state": {"terminated": {"exitCode": 2, "signal": 0}}},
                ],
            },
        }));
        let rows = container_rows(&p);
        let names: Vec<&str> = rows.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["setup", "side", "web", "b-job", "never"]);
        let kinds: Vec<&str> = rows.iter().map(|r| r.kind.as_str()).collect();
        assert_eq!(kinds, ["init", "sidecar", "app", "app", "app"]);
        let words: Vec<&str> = rows.iter().map(|r| r.status.as_str()).collect();
        assert_eq!(
            words,
            [
                "Completed",
                "Completed",
                "ExitCode:2",
                "OOMKilled",
                "CreateContainerConfigError"
            ]
        );
        assert_eq!(rows[1].detail, "last: Error (exit 1): boom");
        assert_eq!(rows[1].restarts, 2);
        assert_eq!(rows[2].exit_code, Some(2));
        assert_eq!(rows[4].exit_code, None);
        assert_eq!(rows[4].detail, "configmap \"x\" not found");
        assert_eq!(rows[0].detail, "");
    }

    #[test]
    fn signal_running_waiting_and_missing_statuses() {
        let p = pod(json!({
            "spec": {"containers": [{"name": "a"}, {"name": "b"}, {"name": "c"}, {"name": "d"}]},
            "status": {"containerStatuses": [
                {"name": "a", "ready": true, "restartCount": 0, "image": "", "imageID": "",
                 "state": {"terminated": {"exitCode": 0, "signal": 9}}},
                {"name": "b", "ready": true, "restartCount": 0, "image": "", "imageID": "",
                 "state": {"running": {}}},
                {"name": "c", "ready": false, "restartCount": 4, "image": "", "imageID": "",
                 "state": {"waiting": {"reason": "CrashLoopBackOff",
                    "message": "back-off 40s restarting failed container=c pod=p_default(u)"}},
                 "lastState": {"terminated": {"exitCode": 128, "reason": "StartError"}}},
            ]},
        }));
        let rows = container_rows(&p);
        let words: Vec<&str> = rows.iter().map(|r| r.status.as_str()).collect();
        assert_eq!(
            words,
            ["Signal:9", "Running", "CrashLoopBackOff", "Unknown"]
        );
        assert_eq!(
            rows[2].detail,
            "back-off 40s restarting failed container=c pod=p_default(u); last: StartError (exit 128)"
        );
        assert_eq!(rows[3].restarts, 0);
    }
}
