//! The slice of a (defaulted, validated) Pod that lifecycle decisions depend on.

use k8s_openapi::api::core::v1::{Container, EphemeralContainer, Pod, Probe};

use crate::{EngineError, PullPolicy};

/// What role a container plays in the pod's lifecycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ContainerKind {
    /// `spec.initContainers` entry without `restartPolicy`.
    RegularInit,
    /// `spec.initContainers` entry with `restartPolicy: Always` (native sidecar).
    Sidecar,
    /// `spec.containers` entry.
    App,
    /// `spec.ephemeralContainers` entry (S12): started once, never restarted, never probed.
    Ephemeral,
}

impl ContainerKind {
    pub fn is_init(self) -> bool {
        matches!(self, ContainerKind::RegularInit | ContainerKind::Sidecar)
    }
}

/// The three probe kinds (P1–P12).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ProbeKind {
    Liveness,
    Readiness,
    Startup,
}

impl ProbeKind {
    pub const ALL: [ProbeKind; 3] = [
        ProbeKind::Liveness,
        ProbeKind::Readiness,
        ProbeKind::Startup,
    ];

    pub(crate) fn index(self) -> usize {
        match self {
            ProbeKind::Liveness => 0,
            ProbeKind::Readiness => 1,
            ProbeKind::Startup => 2,
        }
    }

    /// The word the kubelet uses in `Unhealthy` events.
    pub fn title(self) -> &'static str {
        match self {
            ProbeKind::Liveness => "Liveness",
            ProbeKind::Readiness => "Readiness",
            ProbeKind::Startup => "Startup",
        }
    }
}

/// Pod `restartPolicy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RestartPolicy {
    Always,
    OnFailure,
    Never,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ProbeSpec {
    pub initial_delay_s: i64,
    pub period_ms: i64,
    pub timeout_ms: i64,
    pub success_threshold: u32,
    pub failure_threshold: u32,
    pub termination_grace_s: Option<i64>,
}

impl ProbeSpec {
    /// D4 defaults re-applied defensively (0/absent → default) so a non-defaulted pod cannot
    /// produce a zero period (which would make the ticker spin).
    fn from_api(p: &Probe) -> Self {
        let pos = |v: Option<i32>, d: i64| match v {
            Some(v) if v > 0 => i64::from(v),
            _ => d,
        };
        ProbeSpec {
            initial_delay_s: i64::from(p.initial_delay_seconds.unwrap_or(0).max(0)),
            period_ms: pos(p.period_seconds, 10) * 1000,
            timeout_ms: pos(p.timeout_seconds, 1) * 1000,
            success_threshold: u32::try_from(pos(p.success_threshold, 1)).unwrap_or(1),
            failure_threshold: u32::try_from(pos(p.failure_threshold, 3)).unwrap_or(3),
            termination_grace_s: p.termination_grace_period_seconds,
        }
    }
}

#[derive(Clone, Debug)]
pub(crate) struct CtrSpec {
    pub name: String,
    pub image: String,
    /// `imagePullPolicy` (D2 applied if the pod skipped defaulting).
    pub pull_policy: PullPolicy,
    pub kind: ContainerKind,
    pub post_start: bool,
    pub pre_stop: bool,
    pub probes: [Option<ProbeSpec>; 3],
}

impl CtrSpec {
    fn from_api(c: &Container, kind: ContainerKind) -> Self {
        let lifecycle = c.lifecycle.as_ref();
        CtrSpec {
            name: c.name.clone(),
            image: c.image.clone().unwrap_or_default(),
            pull_policy: PullPolicy::for_container(
                c.image_pull_policy.as_deref(),
                c.image.as_deref().unwrap_or_default(),
            ),
            kind,
            post_start: lifecycle.and_then(|l| l.post_start.as_ref()).is_some(),
            pre_stop: lifecycle.and_then(|l| l.pre_stop.as_ref()).is_some(),
            probes: [
                c.liveness_probe.as_ref().map(ProbeSpec::from_api),
                c.readiness_probe.as_ref().map(ProbeSpec::from_api),
                c.startup_probe.as_ref().map(ProbeSpec::from_api),
            ],
        }
    }

    /// Ephemeral containers carry no probes, lifecycle hooks or restart policy (the API server
    /// rejects them), so only name and image matter.
    pub(crate) fn from_ephemeral(c: &EphemeralContainer) -> Self {
        CtrSpec {
            name: c.name.clone(),
            image: c.image.clone().unwrap_or_default(),
            pull_policy: PullPolicy::for_container(
                c.image_pull_policy.as_deref(),
                c.image.as_deref().unwrap_or_default(),
            ),
            kind: ContainerKind::Ephemeral,
            post_start: false,
            pre_stop: false,
            probes: [None, None, None],
        }
    }

    pub fn probe(&self, kind: ProbeKind) -> Option<&ProbeSpec> {
        self.probes[kind.index()].as_ref()
    }
}

#[derive(Clone, Debug)]
pub(crate) struct PodInfo {
    pub name: String,
    pub namespace: String,
    pub uid: String,
    /// metadata.generation (1 on create; 0 when absent), echoed as observedGeneration.
    pub generation: i64,
    pub restart_policy: RestartPolicy,
    pub tgps: i64,
    pub active_deadline_s: Option<i64>,
    pub readiness_gates: Vec<String>,
    /// Init containers first (spec order), then app containers (spec order), then ephemeral
    /// containers (in the order they were added).
    pub containers: Vec<CtrSpec>,
    pub n_init: usize,
    /// End of the app containers in `containers` (ephemeral containers follow).
    pub n_main: usize,
}

impl PodInfo {
    pub fn from_pod(pod: &Pod) -> Result<Self, EngineError> {
        let spec = pod.spec.as_ref().ok_or(EngineError::MissingSpec)?;
        if spec.containers.is_empty() {
            return Err(EngineError::NoContainers);
        }
        let restart_policy = match spec.restart_policy.as_deref() {
            None | Some("") | Some("Always") => RestartPolicy::Always,
            Some("OnFailure") => RestartPolicy::OnFailure,
            Some("Never") => RestartPolicy::Never,
            Some(other) => return Err(EngineError::BadRestartPolicy(other.to_string())),
        };
        let mut containers = Vec::new();
        for c in spec.init_containers.iter().flatten() {
            let kind = match c.restart_policy.as_deref() {
                Some("Always") => ContainerKind::Sidecar,
                None | Some("") => ContainerKind::RegularInit,
                Some(other) => {
                    return Err(EngineError::BadContainerRestartPolicy(
                        c.name.clone(),
                        other.to_string(),
                    ))
                }
            };
            containers.push(CtrSpec::from_api(c, kind));
        }
        let n_init = containers.len();
        for c in &spec.containers {
            containers.push(CtrSpec::from_api(c, ContainerKind::App));
        }
        let n_main = containers.len();
        // A stored pod may already carry ephemeral containers (daemon re-adoption).
        for c in spec.ephemeral_containers.iter().flatten() {
            containers.push(CtrSpec::from_ephemeral(c));
        }
        for (i, c) in containers.iter().enumerate() {
            if containers[..i].iter().any(|o| o.name == c.name) {
                return Err(EngineError::DuplicateName(c.name.clone()));
            }
        }
        let meta = &pod.metadata;
        Ok(PodInfo {
            name: meta.name.clone().unwrap_or_default(),
            namespace: meta.namespace.clone().unwrap_or_else(|| "default".into()),
            uid: meta.uid.clone().unwrap_or_default(),
            generation: meta.generation.unwrap_or(0),
            restart_policy,
            tgps: spec.termination_grace_period_seconds.unwrap_or(30),
            active_deadline_s: spec.active_deadline_seconds,
            readiness_gates: spec
                .readiness_gates
                .iter()
                .flatten()
                .map(|g| g.condition_type.clone())
                .collect(),
            containers,
            n_init,
            n_main,
        })
    }

    /// `format.Pod`: `<name>_<namespace>(<uid>)`.
    pub fn format_pod(&self) -> String {
        format!("{}_{}({})", self.name, self.namespace, self.uid)
    }

    /// Indices of the app containers.
    pub fn apps(&self) -> std::ops::Range<usize> {
        self.n_init..self.n_main
    }

    pub fn has_sidecars(&self) -> bool {
        self.containers
            .iter()
            .any(|c| c.kind == ContainerKind::Sidecar)
    }
}
