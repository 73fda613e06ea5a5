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
pub mod images;
mod spec;
mod status;
mod time;

pub use engine::PodEngine;
pub use images::{ImagePlan, PullPolicy, PullStats, ResolvedImage};
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
    /// First image back-off duration (kubelet: `backOffPeriod`, 10 s).
    pub image_backoff_initial_ms: i64,
    /// Image back-off cap (kubelet: `MaxImageBackOff`, 300 s). An entry not updated for twice
    /// this long starts over (flowcontrol.Backoff `hasExpired`).
    pub image_backoff_max_ms: i64,
    /// How long a postStart hook may run (skiff: 600 s). The kubelet itself sets no deadline:
    /// its `startContainer` waits for the hook as long as the hook runs (T9). This is skiff's
    /// own bound, so that a hung hook cannot hold the pod's sync forever. The engine passes it
    /// in [`Action::StartContainer`] and treats a hook that has not answered by then as failed.
    pub post_start_timeout_ms: i64,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            backoff_initial_ms: 10_000,
            backoff_max_ms: 300_000,
            backoff_reset_ms: 600_000,
            error_requeue_ms: 10_000,
            image_backoff_initial_ms: 10_000,
            image_backoff_max_ms: 300_000,
            first_instance_id: 1,
            container_id_key: 0,
            post_start_timeout_ms: 600_000,
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

/// Why a container could not be started: the step of the kubelet's `startContainer`
/// (kuberuntime_container.go) or of the image manager's `EnsureImageExists`
/// (pkg/kubelet/images/image_manager.go) that failed, with the message that step reported (it
/// becomes the waiting message). Everything else is the engine's decision: the waiting reason
/// ([`StartFailure::reason`]), the events, whether the runtime keeps a record of the attempt,
/// and when the start is tried again (ST3, ST4).
///
/// Image failures that need state of their own (`ErrImagePull` with its `ImagePullBackOff`
/// back-off) are further variants of the same shape: the node says which step failed and why,
/// the engine decides what follows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StartFailure {
    /// The container's configuration cannot be made (`generateContainerConfig`: an env
    /// reference that does not resolve, a bad subPath, an unsupported securityContext, …).
    /// Waiting `CreateContainerConfigError`; nothing was created, so no record and no back-off:
    /// tried again after the pod worker's error re-queue.
    Config { message: String },
    /// The runtime's `CreateContainer` failed. Waiting `CreateContainerError`; no record, tried
    /// again after the error re-queue.
    Create { message: String },
    /// The container was created but its process could not be started (`StartContainer`).
    /// Waiting `RunContainerError`; the runtime keeps the record as `terminated{reason:
    /// StartError, exitCode: 128}` (ST4), so the next attempt is subject to the back-off (R5).
    Run { message: String },
    /// The image reference cannot be parsed (`applyDefaultImageTag`). Warning `InspectFailed`
    /// with the message, waiting `InvalidImageName`; no record, tried again after the re-queue.
    InvalidImageName { message: String },
    /// The image is not on the node and `imagePullPolicy` is `Never`. Warning
    /// `ErrImageNeverPull` with the message ([`images::never_pull_message`]), waiting
    /// `ErrImageNeverPull`; no record, tried again after the re-queue.
    ImageNeverPull { message: String },
    /// The node could not look the image up (`GetImageRef` failed). Warning `InspectFailed`,
    /// waiting `ImageInspectError`; no record, tried again after the re-queue.
    ImageInspect { message: String },
    /// The pull failed; `message` is the image service's error. Warning `Failed` ("Failed to
    /// pull image …"), waiting `ErrImagePull` with the message; the pod's image back-off for
    /// the image advances (10 s doubling to 300 s); no record, tried again after the re-queue.
    ImagePull { message: String },
    /// A pull was needed while the image back-off ran ([`ImagePlan::pull_backoff`]). Normal
    /// `BackOff` ("Back-off pulling image …"), waiting `ImagePullBackOff` with that text and
    /// the last pull error; tried again when the back-off ends.
    ImagePullBackOff,
}

impl StartFailure {
    /// The waiting reason the failure shows (the kubelet's error value: `ErrCreateContainerConfig`,
    /// `ErrCreateContainer`, `ErrRunContainer`, `ErrInvalidImageName`, `ErrImageNeverPull`).
    pub fn reason(&self) -> &'static str {
        match self {
            StartFailure::Config { .. } => "CreateContainerConfigError",
            StartFailure::Create { .. } => "CreateContainerError",
            StartFailure::Run { .. } => "RunContainerError",
            StartFailure::InvalidImageName { .. } => "InvalidImageName",
            StartFailure::ImageNeverPull { .. } => "ErrImageNeverPull",
            StartFailure::ImageInspect { .. } => "ImageInspectError",
            StartFailure::ImagePull { .. } => "ErrImagePull",
            StartFailure::ImagePullBackOff => "ImagePullBackOff",
        }
    }

    /// What the failing step reported (empty for [`StartFailure::ImagePullBackOff`], whose
    /// message the engine writes).
    pub fn message(&self) -> &str {
        match self {
            StartFailure::Config { message }
            | StartFailure::Create { message }
            | StartFailure::Run { message }
            | StartFailure::InvalidImageName { message }
            | StartFailure::ImageNeverPull { message }
            | StartFailure::ImageInspect { message }
            | StartFailure::ImagePull { message } => message,
            StartFailure::ImagePullBackOff => "",
        }
    }
}

/// Why the node fails a pod itself. The engine decides per cause the pod's `reason` and
/// `message`, the event, and the grace its containers are killed with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeFailure {
    /// The eviction manager evicts the pod (for skiff: a disk emptyDir over its `sizeLimit`,
    /// `emptyDirLimitEviction`; `message` is the eviction message). Warning `Evicted`, pod
    /// Failed with reason `Evicted`, containers killed with the pod-level grace 1
    /// (`immediateEvictionGracePeriodSeconds`; every container still gets the 2 s minimum of
    /// T2). [pkg/kubelet/eviction/eviction_manager.go evictPod]
    Evicted { message: String },
    /// The pod's sandbox cannot be built (`reason` is the kubelet's event reason:
    /// `FailedCreatePodSandBox`, `FailedMount`, …). The kubelet retries such a pod forever;
    /// `skiff run` has no way to supply what is missing later, so the pod fails instead:
    /// Warning `reason` with `message`, pod Failed with that reason and message. Nothing of the
    /// pod runs at that point (S9 kills everything before a new sandbox is made), so no grace
    /// override: anything left would get TGPS.
    SandboxFailed { reason: String, message: String },
}

/// The postStart hook to run after a start, and how long it may take
/// ([`EngineConfig::post_start_timeout_ms`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PostStart {
    pub timeout_ms: i64,
}

/// Why the engine stops a container: the decision behind a [`Action::RunPreStop`] and an
/// [`Action::Signal`] (for the pod's timeline; the kubelet carries the same as the Killing
/// event's message).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StopReason {
    /// Every app container is done (T6, the P6 exception): the pod ends, sidecars included.
    PodCompleted,
    /// A regular init container failed under `restartPolicy: Never` (S7).
    InitFailed,
    /// [`Input::StopRequested`]: deletion, `--timeout`, a signal to skiff — the node knows which.
    StopRequested,
    /// [`Input::KillNow`].
    KillNow,
    /// activeDeadlineSeconds passed (T10).
    DeadlineExceeded,
    /// [`Input::FailPod`]: eviction or a sandbox that cannot be built.
    NodeFailure,
    /// The liveness probe failed (P4).
    Liveness,
    /// The startup probe failed (P3).
    Startup,
    /// The postStart hook failed (T9).
    PostStartFailed,
    /// The runtime lost track of the instance (R3).
    Unknown,
    /// The container's spec (its image) changed (S10).
    SpecChanged,
    /// The pod's sandbox changed or was lost (S9).
    SandboxChanged,
}

impl StopReason {
    /// A short lower-case phrase for people ("liveness probe failed").
    pub fn describe(self) -> &'static str {
        match self {
            StopReason::PodCompleted => "pod completed",
            StopReason::InitFailed => "init container failed",
            StopReason::StopRequested => "stop requested",
            StopReason::KillNow => "killed at once",
            StopReason::DeadlineExceeded => "activeDeadlineSeconds exceeded",
            StopReason::NodeFailure => "node failed the pod",
            StopReason::Liveness => "liveness probe failed",
            StopReason::Startup => "startup probe failed",
            StopReason::PostStartFailed => "postStart hook failed",
            StopReason::Unknown => "container state unknown",
            StopReason::SpecChanged => "container spec changed",
            StopReason::SandboxChanged => "pod sandbox changed",
        }
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
    /// The image step of the start in flight is pulling its image (Normal `Pulling`).
    ImagePulling { name: String, instance: InstanceId },
    /// The image step of the start in flight is done: the image is on the node (Normal
    /// `Pulled`, the container status's `imageID` from now on). The start goes on; its outcome
    /// is reported as usual.
    ImageReady {
        name: String,
        instance: InstanceId,
        image: ResolvedImage,
    },
    /// The start failed; the engine decides what follows from the typed `failure`.
    StartFailed {
        name: String,
        instance: InstanceId,
        failure: StartFailure,
    },
    /// The postStart hook returned. An answer after the hook's deadline
    /// ([`PostStart::timeout_ms`] from the start) is ignored: the engine has failed the hook by then.
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
    /// A probe asked for with [`Action::RunProbe`] could not run: the pod worker no longer has
    /// the instance (it is gone; its exit is reported separately). Like the kubelet's probe of a
    /// non-running container (P12) this counts no failure towards the threshold and makes no
    /// `Unhealthy` event; the engine only forgets the run.
    ProbeTargetGone {
        name: String,
        instance: InstanceId,
        kind: ProbeKind,
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
    /// skiff's own "stop now" (the CLI's second Ctrl-C; the kubelet has no such thing): the pod
    /// terminates as for [`Input::StopRequested`], but every running instance gets
    /// [`Signal::Kill`] at once — no preStop hook, no stop signal, no grace, no sidecar order —
    /// and so does any instance whose start is reported later. Kills already under way are cut
    /// short the same way.
    KillNow,
    /// The node fails the pod itself; see [`NodeFailure`] for what each cause does.
    FailPod { failure: NodeFailure },
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
    /// The last published result of a probe of an adopted instance, as persisted before the
    /// node agent restarted (its `ready`/`started` status): it stands until the next result of
    /// that probe, so a restart does not flip a ready container to not ready and back (the
    /// kubelet does, k/k #100277; the pending KEP keeps it). Ignored unless `instance` is the
    /// container's running instance and the container has that probe.
    ProbeRestored {
        name: String,
        instance: InstanceId,
        kind: ProbeKind,
        ok: bool,
    },
    /// Nothing happened; time passed.
    Tick,
}

/// Decisions for the pod worker to carry out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    CreateSandbox,
    /// Make sure of the image per `image` (the kubelet's `EnsureImageExists`: report
    /// [`Input::ImagePulling`] / [`Input::ImageReady`] or fail the start with an image
    /// [`StartFailure`]; a runtime that runs no images skips it), then create and start the
    /// container; with `post_start`, then run the postStart hook for at most its `timeout_ms`
    /// and report [`Input::PostStartDone`]. `attempt` is the instance's restartCount (log file
    /// `<attempt>.log`).
    StartContainer {
        name: String,
        kind: ContainerKind,
        instance: InstanceId,
        attempt: i32,
        post_start: Option<PostStart>,
        image: ImagePlan,
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
        why: StopReason,
    },
    /// Deliver a signal to the container's whole process tree. The engine times SIGKILL itself.
    Signal {
        name: String,
        instance: InstanceId,
        signal: Signal,
        why: StopReason,
    },
    StopSandbox,
    Event(Event),
}
