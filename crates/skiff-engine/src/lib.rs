//! skiff-engine: the pure pod lifecycle core.
//!
//! A [`PodEngine`] holds everything the kubelet keeps per pod (runtime records, probe workers,
//! back-off entries, termination progress) and decides what to do next. It performs no I/O and
//! never reads a clock: the pod worker feeds [`Input`]s with the current [`Time`], asks
//! [`PodEngine::plan`] for [`Action`]s, sleeps until [`PodEngine::wake_at`], and reads the
//! resulting `PodStatus` with [`PodEngine::status`].
//!
//! Normative rules: `SEMANTICS.md` sections S, P, R, T and ST. Where a function mirrors a kubelet
//! function, its comment names it.

mod engine;
mod spec;
mod status;
mod time;

pub use engine::PodEngine;
/// kubectl's columns are computed in the model (the CLI and an API server's Tables share them);
/// re-exported for callers of the engine.
pub use skiff_model::display::{
    container_rows, display_status, ContainerKindWord, ContainerRow, DisplayStatus,
};
/// The update rules live in the model (an API server shares them); re-exported for callers of
/// the engine.
pub use skiff_model::validation::update::UPDATE_FORBIDDEN_DETAIL;
pub use spec::{ContainerKind, ProbeKind, RestartPolicy};
pub use time::{go_duration, Time};

use std::fmt;

use skiff_model::validation::update::UpdateError;

/// Errors building an engine from a pod that skipped defaulting/validation.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EngineError {
    #[error("pod has no spec")]
    MissingSpec,
    #[error("spec.containers: Required value")]
    NoContainers,
    #[error("unsupported pod restartPolicy {0:?}")]
    BadRestartPolicy(String),
    #[error("init container {0:?}: unsupported restartPolicy {1:?}")]
    BadContainerRestartPolicy(String, String),
    #[error("duplicate container name {0:?}")]
    DuplicateName(String),
    /// A pod update the API server would reject (ValidatePodUpdate /
    /// ValidatePodEphemeralContainersUpdate), rendered like V0: `<path>: Forbidden: <detail>`.
    #[error("{path}: Forbidden: {detail}")]
    UpdateForbidden { path: String, detail: String },
    /// `<path>: Invalid value: <value>: <detail>` (value already rendered per V0).
    #[error("{path}: Invalid value: {value}: {detail}")]
    UpdateInvalid {
        path: String,
        value: String,
        detail: String,
    },
    /// `<path>: Required value`.
    #[error("{path}: Required value")]
    UpdateRequired { path: String },
    /// `<path>: Duplicate value: "<name>"`.
    #[error("{path}: Duplicate value: {name:?}")]
    UpdateDuplicate { path: String, name: String },
}

/// The model's update check, in the engine's error type (same text).
impl From<UpdateError> for EngineError {
    fn from(e: UpdateError) -> Self {
        match e {
            UpdateError::Forbidden { path, detail } => {
                EngineError::UpdateForbidden { path, detail }
            }
            UpdateError::Invalid {
                path,
                value,
                detail,
            } => EngineError::UpdateInvalid {
                path,
                value,
                detail,
            },
            UpdateError::Required { path } => EngineError::UpdateRequired { path },
            UpdateError::Duplicate { path, name } => EngineError::UpdateDuplicate { path, name },
        }
    }
}

/// Identity of one container instance (one runtime record). Shown as
/// `containerID: skiff://<64 hex digits>` (see [`InstanceId::container_id`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct InstanceId(pub u64);

impl fmt::Display for InstanceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl InstanceId {
    /// The `containerID` the status reports: 64 hex digits like containerd's IDs, so tools that
    /// parse `<runtime>://<id>` (or cut 12 digits of it, as `crictl ps` shows) get the shape
    /// they expect. Derived from the instance number and the engine's `container_id_key`, which
    /// the node draws at random per pod: unique across pods, yet pure and repeatable in tests.
    pub fn container_id(self, key: u64) -> String {
        let mut out = String::with_capacity(8 + 64);
        out.push_str("skiff://");
        for lane in 0..4u64 {
            // splitmix64's finaliser: a bijection of (key, id, lane), so distinct instances of
            // one engine never share an ID.
            let mut z = key
                .wrapping_add(self.0.wrapping_mul(0x9E37_79B9_7F4A_7C15))
                .wrapping_add(lane.wrapping_mul(0xD1B5_4A32_D192_ED03));
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            out.push_str(&format!("{z:016x}"));
        }
        out
    }
}

/// Tunables, with kubelet defaults (R5, R7).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EngineConfig {
    /// First back-off duration (kubelet: 10 s).
    pub backoff_initial_ms: i64,
    /// Back-off cap (kubelet: 300 s; `crashLoopBackOff.maxContainerRestartPeriod`).
    pub backoff_max_ms: i64,
    /// A back-off entry older than this (finishedAt − lastUpdate) is reset (kubelet: fixed 600 s).
    pub backoff_reset_ms: i64,
    /// Retry delay after a start failure that left no runtime record (pod worker re-queue, 10 s).
    pub error_requeue_ms: i64,
    /// First instance id this engine hands out (lets a node keep ids unique across pods).
    pub first_instance_id: u64,
    /// Mixed into every `containerID` (see [`InstanceId::container_id`]); the node draws it at
    /// random per pod, tests leave it 0.
    pub container_id_key: u64,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            backoff_initial_ms: 10_000,
            backoff_max_ms: 300_000,
            backoff_reset_ms: 600_000,
            error_requeue_ms: 10_000,
            first_instance_id: 1,
            container_id_key: 0,
        }
    }
}

impl EngineConfig {
    /// R7: `KubeletCrashLoopBackOffMax` — a configured max below the initial also lowers the initial.
    pub fn with_backoff_max_ms(mut self, max_ms: i64) -> Self {
        self.backoff_max_ms = max_ms;
        if max_ms < self.backoff_initial_ms {
            self.backoff_initial_ms = max_ms;
        }
        self
    }
}

/// Signal to deliver to a container. `Term` means the container's stop signal (STOPSIGNAL or SIGTERM).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    Term,
    Kill,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    Normal,
    Warning,
}

/// A Kubernetes event about the pod (or one of its containers).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub type_: EventType,
    pub reason: String,
    pub message: String,
    /// The container the event is about (`involvedObject.fieldPath`), if any.
    pub container: Option<String>,
}

/// A runtime state other than running/exited, as the pod worker observes it for a record (for
/// instance when re-adopting containers after a daemon restart). R3, S7.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ObservedState {
    /// The container was created but never started (kubecontainer.ContainerStateCreated).
    /// The engine starts the container again (a new instance); the record itself is left alone.
    Created,
    /// The runtime lost track of the container (kubecontainer.ContainerStateUnknown). The engine
    /// kills it first (the worker must answer the `Signal` with `ContainerExited` once the
    /// instance is confirmed gone) and then starts a new instance.
    Unknown,
}

/// Observations the pod worker feeds in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// The sandbox asked for with [`Action::CreateSandbox`] exists.
    SandboxReady,
    /// The container process runs. For a container with `post_start`, the hook is now running.
    ContainerStarted {
        name: String,
        instance: InstanceId,
        at: Time,
    },
    /// The start failed. `reason` is the waiting reason (`RunContainerError`, `CreateContainerError`,
    /// `ErrImagePull`, ...); `exit_code` is `Some(128)` when the runtime kept a record of the failed
    /// container (it then shows `terminated{reason: StartError}`), `None` when nothing was created.
    StartFailed {
        name: String,
        instance: InstanceId,
        reason: String,
        message: String,
        exit_code: Option<i32>,
    },
    /// The postStart hook returned.
    PostStartDone {
        name: String,
        instance: InstanceId,
        ok: bool,
        message: String,
    },
    /// The container exited. `reason` defaults to `Completed`/`Error` by exit code; pass `OOMKilled`
    /// when the kernel killed it.
    ContainerExited {
        name: String,
        instance: InstanceId,
        exit_code: i32,
        reason: Option<String>,
        message: Option<String>,
        at: Time,
    },
    /// One probe run finished (a timeout is `ok: false`).
    ProbeResult {
        name: String,
        instance: InstanceId,
        kind: ProbeKind,
        ok: bool,
        output: String,
    },
    /// The preStop hook returned (or failed).
    PreStopDone {
        name: String,
        instance: InstanceId,
        ok: bool,
    },
    /// Graceful pod termination: deletion, SIGINT/SIGTERM to skiff, `--timeout`. `grace` overrides
    /// TGPS; the smallest value requested so far wins (T1).
    StopRequested { grace: Option<i64> },
    /// The node fails the pod itself: eviction (`reason: Evicted`, e.g. an emptyDir over its
    /// sizeLimit) or a sandbox that cannot be built (`FailedMount`, …). It ends Failed with
    /// `reason` and `message`; `grace` overrides the kill grace (hard evictions: 0).
    FailPod {
        reason: String,
        message: String,
        grace: Option<i64>,
    },
    /// The pod's sandbox is gone or changed (kubelet: `PodSandboxChanged` says it must be
    /// re-created). S9: everything is killed, the sandbox is stopped and (unless the restart
    /// policy says otherwise) a new one is created and initialization starts over.
    SandboxLost,
    /// A runtime record in state Created or Unknown (R3, S7). `attempt` is the record's
    /// restartCount when known (re-adoption), so restart counts continue.
    ContainerObserved {
        name: String,
        instance: InstanceId,
        state: ObservedState,
        attempt: Option<i32>,
    },
    /// Nothing happened; time passed.
    Tick,
}

/// Decisions for the pod worker to carry out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    CreateSandbox,
    /// Create and start the container; if `post_start`, run the postStart hook and report
    /// [`Input::PostStartDone`]. `attempt` is the instance's restartCount (log file `<attempt>.log`).
    StartContainer {
        name: String,
        kind: ContainerKind,
        instance: InstanceId,
        attempt: i32,
        post_start: bool,
    },
    RunProbe {
        name: String,
        instance: InstanceId,
        kind: ProbeKind,
        timeout_ms: i64,
    },
    /// Run the preStop hook; the engine stops waiting after `timeout_ms` on its own.
    RunPreStop {
        name: String,
        instance: InstanceId,
        timeout_ms: i64,
    },
    /// Deliver a signal to the container's whole process tree. The engine times SIGKILL itself.
    Signal {
        name: String,
        instance: InstanceId,
        signal: Signal,
    },
    StopSandbox,
    Event(Event),
}
