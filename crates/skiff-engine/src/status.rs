//! PodStatus generation: kubelet_pods.go convertToAPIContainerStatuses and getPhase,
//! prober_manager.go UpdatePodStatus (started/ready), status/generate.go (conditions),
//! status_manager.go TerminatePod (T11).

use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
    ContainerStatus, PodCondition, PodStatus,
};

use crate::engine::{Inst, PodEngine};
use crate::spec::{ContainerKind, ProbeKind, RestartPolicy};
use crate::time::Time;

const UNKNOWN_MSG: &str = "The container could not be located when the pod was terminated";

fn terminated(inst: &Inst, key: u64) -> Option<ContainerState> {
    let e = inst.exit.as_ref()?;
    Some(ContainerState {
        terminated: Some(ContainerStateTerminated {
            container_id: Some(inst.id.container_id(key)),
            exit_code: e.code,
            finished_at: Some(e.at.to_meta()),
            message: e.message.clone().filter(|m| !m.is_empty()),
            reason: Some(e.reason.clone()),
            signal: None,
            // A record that never ran reports the zero time, as containerd does for StartError.
            started_at: Some(inst.started_at.unwrap_or(Time::from_millis(0)).to_meta()),
        }),
        ..Default::default()
    })
}

fn waiting(reason: &str, message: Option<String>) -> ContainerState {
    ContainerState {
        waiting: Some(ContainerStateWaiting {
            reason: Some(reason.to_string()),
            message,
        }),
        ..Default::default()
    }
}

/// `containers with unknown status: [a b], containers with <what> status: [c]` (generate.go),
/// or `None` when both lists are empty.
fn status_lists_message(unknown: &[String], what: &str, others: &[String]) -> Option<String> {
    let mut msgs = Vec::new();
    if !unknown.is_empty() {
        msgs.push(format!(
            "containers with unknown status: {}",
            go_list(unknown)
        ));
    }
    if !others.is_empty() {
        msgs.push(format!(
            "containers with {what} status: {}",
            go_list(others)
        ));
    }
    (!msgs.is_empty()).then(|| msgs.join(", "))
}

fn go_list(names: &[String]) -> String {
    format!("[{}]", names.join(" "))
}

fn cond(type_: &str, status: bool, reason: Option<&str>, message: Option<String>) -> PodCondition {
    PodCondition {
        type_: type_.to_string(),
        status: if status { "True" } else { "False" }.to_string(),
        reason: reason.map(str::to_string),
        message,
        ..Default::default()
    }
}

fn is_running(s: &ContainerStatus) -> bool {
    s.state.as_ref().is_some_and(|st| st.running.is_some())
}

fn term_of(s: &ContainerStatus) -> Option<&ContainerStateTerminated> {
    s.state.as_ref().and_then(|st| st.terminated.as_ref())
}

fn waiting_of(s: &ContainerStatus) -> Option<&ContainerStateWaiting> {
    s.state.as_ref().and_then(|st| st.waiting.as_ref())
}

fn last_term(s: &ContainerStatus) -> Option<&ContainerStateTerminated> {
    s.last_state.as_ref().and_then(|st| st.terminated.as_ref())
}

impl PodEngine {
    /// convertToAPIContainerStatuses for one container, plus started/ready from UpdatePodStatus.
    fn container_status(&self, i: usize) -> ContainerStatus {
        let key = self.cfg.container_id_key;
        let spec = &self.pod.containers[i];
        let c = &self.ctrs[i];
        let cur = c.current();
        let mut state = match cur {
            None => waiting(
                if self.pod.n_init > 0 {
                    "PodInitializing"
                } else {
                    "ContainerCreating"
                },
                None,
            ),
            // ST3 / convertContainerStatus: Created (and an Unknown record with no earlier
            // running status to go by) is `waiting{}` with no reason.
            Some(inst) if inst.exit.is_none() && inst.observed.is_some() => ContainerState {
                waiting: Some(ContainerStateWaiting::default()),
                ..Default::default()
            },
            Some(inst) => match &inst.exit {
                None => ContainerState {
                    running: Some(ContainerStateRunning {
                        started_at: inst.started_at.map(Time::to_meta),
                    }),
                    ..Default::default()
                },
                Some(_) => terminated(inst, key).unwrap_or_default(),
            },
        };
        // S9: init container records of an earlier sandbox were purged, so they are no
        // lastState of the new sandbox's instance.
        let mut last_state = c
            .previous()
            .filter(|p| !spec.kind.is_init() || cur.is_none_or(|x| x.sandbox == p.sandbox))
            .and_then(|p| terminated(p, key));
        // A container due for restart shows the last start failure as waiting (ST3); an init
        // container whose latest instance exited 0 keeps `terminated`.
        let init_done = spec.kind.is_init()
            && cur
                .and_then(|x| x.exit.as_ref())
                .is_some_and(|e| e.code == 0);
        if !init_done && self.should_restart(i) {
            if let Some((reason, message)) = &c.reason_cache {
                if state.terminated.is_some() {
                    last_state = Some(state);
                }
                state = waiting(reason, Some(message.clone()).filter(|m| !m.is_empty()));
            }
        }
        let running = state.running.is_some();
        let started = running && self.started(i);
        let ready = match spec.kind {
            ContainerKind::RegularInit => {
                state.terminated.as_ref().is_some_and(|t| t.exit_code == 0)
            }
            _ => {
                started
                    && (spec.probe(ProbeKind::Readiness).is_none()
                        || c.probe_result(ProbeKind::Readiness) == Some(true))
            }
        };
        // Ephemeral containers are left out of UpdatePodStatus: no started, never ready (S12).
        let (started, ready) = if spec.kind == ContainerKind::Ephemeral {
            (None, false)
        } else {
            (Some(started), ready)
        };
        ContainerStatus {
            name: spec.name.clone(),
            // The runtime's image of the current record (it differs from the spec between an
            // image update and the restart, S10).
            // With an image the node resolved: containerd's name for it and its `imageID`
            // (ST3); a runtime without images (host) shows the spec's text and no ID.
            image: match cur {
                None => spec.image.clone(),
                Some(x) if x.image_id.is_some() => {
                    crate::images::normalized_name(&x.image).unwrap_or_else(|| x.image.clone())
                }
                Some(x) => x.image.clone(),
            },
            image_id: cur.and_then(|x| x.image_id.clone()).unwrap_or_default(),
            container_id: cur.map(|x| x.id.container_id(key)),
            state: Some(state),
            last_state: Some(last_state.unwrap_or_default()),
            restart_count: c.restart_count(),
            started,
            ready,
            ..Default::default()
        }
    }

    fn container_statuses(&self) -> (Vec<ContainerStatus>, Vec<ContainerStatus>) {
        let n = self.pod.n_init;
        let init = (0..n).map(|i| self.container_status(i)).collect();
        let mut apps: Vec<ContainerStatus> =
            self.pod.apps().map(|i| self.container_status(i)).collect();
        // ST5: sorted by name.
        apps.sort_by(|a, b| a.name.cmp(&b.name));
        (init, apps)
    }

    /// `status.ephemeralContainerStatuses`, sorted by name like app containers (S12).
    fn ephemeral_statuses(&self) -> Option<Vec<ContainerStatus>> {
        let mut eph: Vec<ContainerStatus> = (self.pod.n_main..self.pod.containers.len())
            .map(|i| self.container_status(i))
            .collect();
        eph.sort_by(|a, b| a.name.cmp(&b.name));
        (!eph.is_empty()).then_some(eph)
    }

    /// kubelet_pods.go getPhase (ST1).
    fn phase(
        &self,
        init: &[ContainerStatus],
        apps: &[ContainerStatus],
        finalizing: bool,
    ) -> &'static str {
        let (mut pending_init, mut failed_init, mut pending_sidecar) = (0, 0, 0);
        let (mut running, mut waiting_n, mut stopped, mut succeeded, mut unknown) = (0, 0, 0, 0, 0);
        for (spec, s) in self.pod.containers[..self.pod.n_init].iter().zip(init) {
            let has_last = last_term(s).is_some();
            if spec.kind == ContainerKind::Sidecar {
                if is_running(s) {
                    running += 1;
                    if s.started != Some(true) {
                        pending_sidecar += 1;
                    }
                } else if term_of(s).is_some() || (waiting_of(s).is_some() && has_last) {
                    // ignored (T7)
                } else if waiting_of(s).is_some() {
                    pending_sidecar += 1;
                    waiting_n += 1;
                } else {
                    pending_sidecar += 1;
                    unknown += 1;
                }
                continue;
            }
            match (term_of(s), waiting_of(s)) {
                (Some(t), _) if t.exit_code != 0 => failed_init += 1,
                (Some(_), _) => {}
                (None, Some(_)) if last_term(s).is_some_and(|t| t.exit_code != 0) => {
                    failed_init += 1
                }
                _ => pending_init += 1,
            }
        }
        for s in apps {
            // A container killed for a restart regardless of the restart policy (S10, R3) is
            // started again in the same kubelet sync, so no status ever shows it stopped.
            if is_running(s) || self.restarting(&s.name) {
                running += 1;
            } else if let Some(t) = term_of(s) {
                stopped += 1;
                if t.exit_code == 0 {
                    succeeded += 1;
                }
            } else if waiting_of(s).is_some() {
                if last_term(s).is_some() {
                    stopped += 1;
                } else {
                    waiting_n += 1;
                }
            } else {
                unknown += 1;
            }
        }
        let policy = self.pod.restart_policy;
        if failed_init > 0 && policy == RestartPolicy::Never {
            return "Failed";
        }
        if pending_init > 0
            || (pending_sidecar > 0 && !self.app_created_in_sandbox())
            || waiting_n > 0
        {
            return "Pending";
        }
        if running > 0 && unknown == 0 {
            return "Running";
        }
        if running == 0 && stopped > 0 && unknown == 0 {
            if finalizing {
                return if stopped == succeeded {
                    "Succeeded"
                } else {
                    "Failed"
                };
            }
            if policy == RestartPolicy::Always {
                return "Running";
            }
            if stopped == succeeded {
                return "Succeeded";
            }
            if policy == RestartPolicy::Never {
                return "Failed";
            }
            return "Running";
        }
        "Pending"
    }

    /// status/generate.go, in the kubelet's order (ST6).
    fn conditions(
        &self,
        init: &[ContainerStatus],
        apps: &[ContainerStatus],
        phase: &str,
        now: Time,
    ) -> Vec<PodCondition> {
        let init_specs = &self.pod.containers[..self.pod.n_init];
        let find =
            |list: &[ContainerStatus], name: &str| list.iter().find(|s| s.name == name).cloned();

        // PodInitialized
        let initialized = {
            let mut unknown = Vec::new();
            let mut incomplete = Vec::new();
            for spec in init_specs {
                match find(init, &spec.name) {
                    None => unknown.push(spec.name.clone()),
                    Some(s) if spec.kind == ContainerKind::Sidecar => {
                        if s.started != Some(true) {
                            incomplete.push(spec.name.clone());
                        }
                    }
                    Some(s) => {
                        if !s.ready {
                            incomplete.push(spec.name.clone());
                        }
                    }
                }
            }
            if phase == "Succeeded" && unknown.is_empty() {
                cond("Initialized", true, Some("PodCompleted"), None)
            } else if apps.iter().any(|s| is_running(s) || term_of(s).is_some()) {
                cond("Initialized", true, None, None)
            } else {
                match status_lists_message(&unknown, "incomplete", &incomplete) {
                    None => cond("Initialized", true, None, None),
                    Some(msg) => cond(
                        "Initialized",
                        false,
                        Some("ContainersNotInitialized"),
                        Some(msg),
                    ),
                }
            }
        };

        // ContainersReady: sidecars (spec order) then app containers (spec order).
        let containers_ready = {
            let mut unknown = Vec::new();
            let mut unready = Vec::new();
            for spec in init_specs
                .iter()
                .filter(|s| s.kind == ContainerKind::Sidecar)
            {
                match find(init, &spec.name) {
                    Some(s) if s.ready => {}
                    Some(_) => unready.push(spec.name.clone()),
                    None => unknown.push(spec.name.clone()),
                }
            }
            for spec in &self.pod.containers[self.pod.apps()] {
                match find(apps, &spec.name) {
                    Some(s) if s.ready => {}
                    Some(_) => unready.push(spec.name.clone()),
                    None => unknown.push(spec.name.clone()),
                }
            }
            if phase == "Succeeded" && unknown.is_empty() {
                cond("ContainersReady", false, Some("PodCompleted"), None)
            } else if phase == "Failed" {
                cond("ContainersReady", false, Some("PodFailed"), None)
            } else {
                match status_lists_message(&unknown, "unready", &unready) {
                    None => cond("ContainersReady", true, None, None),
                    Some(msg) => cond(
                        "ContainersReady",
                        false,
                        Some("ContainersNotReady"),
                        Some(msg),
                    ),
                }
            }
        };

        // Ready: copy ContainersReady unless True; then readiness gates (skiff sets none, so a
        // declared gate never exists).
        let ready = if containers_ready.status != "True" {
            PodCondition {
                type_: "Ready".into(),
                ..containers_ready.clone()
            }
        } else if let Some(gate) = self.pod.readiness_gates.first() {
            cond(
                "Ready",
                false,
                Some("ReadinessGatesNotReady"),
                Some(format!(
                    "corresponding condition of pod readiness gate \"{gate}\" does not exist."
                )),
            )
        } else {
            cond("Ready", true, None, None)
        };

        let mut out = vec![
            cond(
                "PodReadyToStartContainers",
                self.sandbox_ready(),
                None,
                None,
            ),
            initialized,
            ready,
            containers_ready,
            cond("PodScheduled", true, None, None),
        ];
        for c in &mut out {
            let since = if c.type_ == "PodScheduled" {
                self.start_time
            } else {
                match self.cond_since.iter().find(|(t, _, _)| *t == c.type_) {
                    Some((_, status, since)) if *status == c.status => *since,
                    _ => now,
                }
            };
            c.last_transition_time = Some(since.to_meta());
        }
        out
    }

    fn assemble(
        &self,
        init: Vec<ContainerStatus>,
        apps: Vec<ContainerStatus>,
        phase: &str,
        now: Time,
    ) -> PodStatus {
        let mut conditions = self.conditions(&init, &apps, phase, now);
        // ST (1.35+, PodObservedGenerationTracking GA): the kubelet stamps its status and every
        // condition it writes with the pod's metadata.generation (0 = unset, omitted).
        let generation = (self.pod.generation != 0).then_some(self.pod.generation);
        for c in &mut conditions {
            c.observed_generation = generation;
        }
        let (reason, message) = match &self.pod_failure {
            Some((r, m)) => (Some(r.clone()), Some(m.clone())),
            None => (None, None),
        };
        PodStatus {
            phase: Some(phase.to_string()),
            conditions: Some(conditions),
            start_time: Some(self.start_time.to_meta()),
            init_container_statuses: if init.is_empty() { None } else { Some(init) },
            container_statuses: Some(apps),
            ephemeral_container_statuses: self.ephemeral_statuses(),
            reason,
            message,
            observed_generation: generation,
            ..Default::default()
        }
    }

    pub(crate) fn build_status(&self, now: Time, finalizing: bool) -> PodStatus {
        let (init, apps) = self.container_statuses();
        let phase = if self.pod_failure.is_some() {
            "Failed"
        } else if let Some(p) = self.latched_phase.as_deref() {
            if p == "Succeeded" {
                "Succeeded"
            } else {
                "Failed"
            }
        } else {
            self.phase(&init, &apps, finalizing)
        };
        self.assemble(init, apps, phase, now)
    }

    /// status_manager.go TerminatePod (T11) on top of the final status.
    pub(crate) fn build_final_status(&self, now: Time, finalizing: bool) -> PodStatus {
        let (mut init, mut apps) = self.container_statuses();
        // The phase is computed before TerminatePod rewrites anything.
        let phase = if self.pod_failure.is_some() {
            "Failed"
        } else if let Some(p) = self.latched_phase.as_deref() {
            if p == "Succeeded" {
                "Succeeded"
            } else {
                "Failed"
            }
        } else {
            match self.phase(&init, &apps, finalizing) {
                // TerminatePod: a non-terminal phase becomes Failed.
                "Succeeded" => "Succeeded",
                _ => "Failed",
            }
        };
        let unknown = || ContainerState {
            terminated: Some(ContainerStateTerminated {
                exit_code: 137,
                reason: Some("ContainerStatusUnknown".into()),
                message: Some(UNKNOWN_MSG.into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        // hasPodInitialized: no init containers, or an app container left waiting once, or the
        // last init container completed/started.
        let pod_initialized = self.pod.n_init == 0
            || apps
                .iter()
                .any(|s| last_term(s).is_some() || waiting_of(s).is_none())
            || init
                .last()
                .is_some_and(|s| s.ready || s.started == Some(true));
        if pod_initialized {
            for s in apps.iter_mut().filter(|s| term_of(s).is_none()) {
                s.state = Some(unknown());
                s.ready = false;
                s.started = Some(false);
            }
        }
        // Init containers up to the last one with any evidence of a start.
        let evidence =
            |s: &ContainerStatus| term_of(s).is_some() || is_running(s) || last_term(s).is_some();
        if let Some(last) = init.iter().rposition(evidence) {
            for s in init[..=last].iter_mut().filter(|s| term_of(s).is_none()) {
                s.state = Some(unknown());
                s.ready = false;
                s.started = Some(false);
            }
        }
        self.assemble(init, apps, phase, now)
    }
}
