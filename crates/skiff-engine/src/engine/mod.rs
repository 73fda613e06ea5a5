//! The pod lifecycle state machine: the kubelet's SyncPod / computePodActions /
//! computeInitContainerActions, the probe workers, the crash-loop back-off and killContainer with
//! termination ordering, all driven by explicit inputs and explicit time.

use k8s_openapi::api::core::v1::{Pod, PodSpec, PodStatus};

use crate::images::{self, ResolvedImage};
use crate::spec::{ContainerKind, CtrSpec, PodInfo, ProbeKind, RestartPolicy};
use crate::time::{go_duration, Time};
use crate::{
    Action, EngineConfig, EngineError, Event, EventType, ImagePlan, Input, InstanceId, NodeFailure,
    ObservedState, PostStart, Signal, StartFailure, StopReason,
};
use skiff_model::validation::update::validate_update;

mod decisions;
mod probes;
mod termination;

/// Minimum stop window (kuberuntime_container.go minimumGracePeriodInSeconds).
const MIN_GRACE_S: i64 = 2;
/// Exit code of the record a failed `StartContainer` leaves (containerd's convention, ST4).
const START_ERROR_EXIT_CODE: i32 = 128;
/// Pod-level grace of an eviction (eviction_manager.go immediateEvictionGracePeriodSeconds).
const EVICTION_GRACE_S: i64 = 1;
/// How many runtime records per container are kept (current, previous, and one before for R9).
const KEEP_INSTANCES: usize = 3;

#[derive(Clone, Debug)]
pub(crate) struct Exit {
    pub code: i32,
    pub reason: String,
    pub message: Option<String>,
    pub at: Time,
}

/// One runtime record of a container.
#[derive(Clone, Debug)]
pub(crate) struct Inst {
    pub id: InstanceId,
    pub sandbox: u32,
    /// None for a record that never ran (StartError, Created).
    pub started_at: Option<Time>,
    pub exit: Option<Exit>,
    /// The image the record was created from: the container hash's input (S10, R4).
    pub image: String,
    /// The `imageID` the node resolved the image to (None: a runtime without images).
    pub image_id: Option<String>,
    /// Created / Unknown as observed by the worker (R3); None = running or exited per `exit`.
    pub observed: Option<ObservedState>,
}

impl Inst {
    pub fn running(&self) -> bool {
        self.exit.is_none() && self.observed.is_none()
    }

    /// The runtime lost track of it: it may still run, so it is killed before a restart.
    pub fn unknown(&self) -> bool {
        self.exit.is_none() && self.observed == Some(ObservedState::Unknown)
    }

    pub fn created(&self) -> bool {
        self.exit.is_none() && self.observed == Some(ObservedState::Created)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum StartPhase {
    Starting,
    PostStart,
}

#[derive(Clone, Copy, Debug)]
struct PendingStart {
    instance: InstanceId,
    phase: StartPhase,
    post_start: bool,
    /// While in [`StartPhase::PostStart`]: when the hook counts as failed (skiff's own bound,
    /// [`EngineConfig::post_start_timeout_ms`]).
    post_start_deadline: Option<Time>,
}

/// Why `sync` wants a single container killed.
type KillReq = (usize, String, KillCause, bool);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum KillPhase {
    PreStop { since: Time, deadline: Time },
    WaitTurn { since: Time, deadline: Time },
    Signalled { kill_at: Time, killed: bool },
}

/// killContainer in progress for one instance.
#[derive(Clone, Copy, Debug)]
struct Kill {
    instance: InstanceId,
    why: StopReason,
    grace_s: i64,
    ordered: bool,
    began: Time,
    phase: KillPhase,
}

#[derive(Clone, Copy, Debug)]
struct BackoffEntry {
    dur_ms: i64,
    last_update: Time,
}

/// The image manager's back-off entry for one image of the pod (the kubelet keys it by pod
/// UID + image, so containers of the pod with the same image share it), and the error of the
/// last failed pull (`prevPullErrMsg`, shown in the `ImagePullBackOff` message).
#[derive(Clone, Debug)]
struct ImageBackoff {
    image: String,
    entry: BackoffEntry,
    last_error: Option<String>,
}

/// A probe worker (prober/worker.go). One per (container, probe kind), created at admission.
#[derive(Clone, Debug)]
pub(crate) struct Worker {
    created: Time,
    period_ms: i64,
    /// Ticks at or before this time have been consumed.
    last_eval: Time,
    /// A buffered tick or a manual trigger (both coalesce, like Go's 1-slot ticker channel).
    pending: bool,
    in_flight: Option<InstanceId>,
    /// The instance whose result `result` is (the worker's `containerID`).
    pub instance: Option<InstanceId>,
    /// Published result for `instance`; None = Unknown.
    pub result: Option<bool>,
    on_hold: bool,
    last_result: bool,
    run: u32,
    /// P11: stopped at pod termination (app liveness/startup).
    stopped: bool,
}

impl Worker {
    fn new(period_ms: i64, now: Time) -> Self {
        Worker {
            created: now,
            period_ms: period_ms.max(1),
            last_eval: now,
            pending: false,
            in_flight: None,
            instance: None,
            result: None,
            on_hold: false,
            // Go's zero value of results.Result is Success.
            last_result: true,
            run: 0,
            stopped: false,
        }
    }

    /// First tick strictly after `after`. Ticks fire at created + k·period, k ≥ 0.
    fn next_tick_after(&self, after: Time) -> Time {
        if after < self.created {
            return self.created;
        }
        let k = after.millis_since(self.created) / self.period_ms + 1;
        self.created.add_millis(k.saturating_mul(self.period_ms))
    }
}

fn initial_result(kind: ProbeKind) -> Option<bool> {
    match kind {
        ProbeKind::Readiness => Some(false),
        ProbeKind::Liveness => Some(true),
        ProbeKind::Startup => None,
    }
}

/// Everything the engine tracks for one container.
#[derive(Clone, Debug)]
pub(crate) struct Ctr {
    pub instances: Vec<Inst>,
    /// Number of runtime records ever created (restartCount of the next one).
    records: i32,
    start: Option<PendingStart>,
    /// The image the pending start was asked for (the spec may change before it is reported).
    start_image: String,
    /// The `imageID` the pending start's image step resolved.
    start_image_id: Option<String>,
    kill: Option<Kill>,
    /// kubelet reasonCache: the last start failure (reason, message).
    pub reason_cache: Option<(String, String)>,
    /// Back-off entries keyed by image: the kubelet's key is GetStableKey = pod + container name
    /// + HashContainer(name, image), so a new image starts from a fresh entry (R4, S10).
    backoff: Vec<(String, BackoffEntry)>,
    /// While in CrashLoopBackOff: when the back-off expires.
    backoff_until: Option<Time>,
    retry_at: Option<Time>,
    /// R9: killed instance that must be restarted regardless of restartPolicy; it is excluded from
    /// the back-off lookup (the kill and the restart happen in the same kubelet sync).
    pub(crate) force_restart: Option<InstanceId>,
    pub workers: [Option<Worker>; 3],
}

impl Ctr {
    fn new(spec: &CtrSpec, now: Time) -> Self {
        Ctr {
            instances: Vec::new(),
            records: 0,
            start: None,
            start_image: String::new(),
            start_image_id: None,
            kill: None,
            reason_cache: None,
            backoff: Vec::new(),
            backoff_until: None,
            retry_at: None,
            force_restart: None,
            // Workers are created at pod admission (prober_manager.go AddPod); their tickers
            // start now, not when the container starts (P3).
            workers: ProbeKind::ALL.map(|k| spec.probe(k).map(|p| Worker::new(p.period_ms, now))),
        }
    }

    pub fn current(&self) -> Option<&Inst> {
        self.instances.last()
    }

    pub fn previous(&self) -> Option<&Inst> {
        let n = self.instances.len();
        if n >= 2 {
            self.instances.get(n - 2)
        } else {
            None
        }
    }

    pub fn restart_count(&self) -> i32 {
        (self.records - 1).max(0)
    }

    fn running(&self) -> Option<&Inst> {
        self.current().filter(|i| i.running())
    }

    /// Running or about to run: what termination ordering must wait for.
    fn alive(&self) -> bool {
        self.running().is_some() || self.start.is_some()
    }

    /// What a single-container kill can target: a running record or one in Unknown state.
    fn killable(&self) -> Option<&Inst> {
        self.current().filter(|i| i.running() || i.unknown())
    }

    fn worker(&self, kind: ProbeKind) -> Option<&Worker> {
        self.workers[kind.index()].as_ref()
    }

    /// Published result of `kind` for the current running instance.
    pub fn probe_result(&self, kind: ProbeKind) -> Option<bool> {
        let cur = self.running()?;
        let w = self.worker(kind)?;
        if w.instance == Some(cur.id) {
            w.result
        } else {
            None
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sandbox {
    None,
    Creating,
    Ready,
    /// Reported lost/changed (S9) and not yet stopped.
    Lost,
    Stopped,
}

/// S9 progress.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Recreate {
    /// Reported; computePodActions has not looked at it yet.
    Due,
    /// The old sandbox's containers are being killed; then StopSandbox, purge, CreateSandbox.
    Killing,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TermCause {
    /// Deletion, SIGINT/SIGTERM, `--timeout`.
    Stop,
    /// activeDeadlineSeconds (T10).
    Deadline,
    /// The node fails the pod (eviction, sandbox failure).
    NodeFailure,
    /// Every app container exited for good (T6, P6 exception).
    Completed,
    /// A regular init container failed under `Never` (S7).
    InitFailed,
    /// The sandbox was lost and must not be re-created (S9).
    SandboxLost,
}

#[derive(Clone, Copy, Debug)]
struct Termination {
    cause: TermCause,
    /// Pod-level grace override (T1), only for deletion-like stops.
    override_s: Option<i64>,
}

/// Why a single container is being killed outside pod termination.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum KillCause {
    Liveness,
    Startup,
    PostStart,
    /// R3: runtime state Unknown (kubelet reasonUnknown).
    Unknown,
    /// S10: hashed fields changed (kubelet passes no reason).
    SpecChanged,
}

impl KillCause {
    fn stop_reason(self) -> StopReason {
        match self {
            KillCause::Liveness => StopReason::Liveness,
            KillCause::Startup => StopReason::Startup,
            KillCause::PostStart => StopReason::PostStartFailed,
            KillCause::Unknown => StopReason::Unknown,
            KillCause::SpecChanged => StopReason::SpecChanged,
        }
    }
}

impl TermCause {
    fn stop_reason(self) -> StopReason {
        match self {
            TermCause::Stop => StopReason::StopRequested,
            TermCause::Deadline => StopReason::DeadlineExceeded,
            TermCause::NodeFailure => StopReason::NodeFailure,
            TermCause::Completed => StopReason::PodCompleted,
            TermCause::InitFailed => StopReason::InitFailed,
            TermCause::SandboxLost => StopReason::SandboxChanged,
        }
    }
}

/// The lifecycle core for one pod.
#[derive(Clone, Debug)]
pub struct PodEngine {
    pub(crate) pod: PodInfo,
    /// The spec as last accepted (for update validation).
    api_spec: PodSpec,
    pub(crate) cfg: EngineConfig,
    pub(crate) ctrs: Vec<Ctr>,
    next_id: u64,
    sandbox: Sandbox,
    pub(crate) sandbox_seq: u32,
    /// The pod initialized in the current sandbox (latched; see k8s PR #136969).
    initialized: bool,
    /// S9: the sandbox was lost; kill everything, then re-create it.
    recreate: Option<Recreate>,
    pub(crate) start_time: Time,
    term: Option<Termination>,
    /// A deletion-like stop was requested (the pod has a deletionTimestamp).
    pub(crate) deleted: bool,
    /// [`Input::KillNow`]: every kill is a SIGKILL at once.
    kill_now: bool,
    /// The image manager's back-off entries of this pod, by image.
    image_backoff: Vec<ImageBackoff>,
    /// The kubelet failed the pod itself (activeDeadlineSeconds T10, eviction): status reason
    /// and message; the phase is Failed whatever the containers did.
    pub(crate) pod_failure: Option<(String, String)>,
    pending: Vec<Action>,
    /// Condition type → (status, lastTransitionTime).
    pub(crate) cond_since: Vec<(String, String, Time)>,
    pub(crate) final_status: Option<PodStatus>,
    /// A terminal phase once observed never changes back (ST2).
    pub(crate) latched_phase: Option<String>,
}

impl PodEngine {
    /// Builds the engine for a defaulted and validated pod admitted at `now` (status.startTime).
    pub fn new(pod: &Pod, cfg: EngineConfig, now: Time) -> Result<Self, EngineError> {
        let info = PodInfo::from_pod(pod)?;
        let ctrs = info.containers.iter().map(|c| Ctr::new(c, now)).collect();
        let first = cfg.first_instance_id;
        let mut engine = PodEngine {
            pod: info,
            api_spec: pod.spec.clone().unwrap_or_default(),
            cfg,
            ctrs,
            next_id: first,
            sandbox: Sandbox::None,
            sandbox_seq: 0,
            initialized: false,
            recreate: None,
            start_time: now,
            term: None,
            deleted: false,
            kill_now: false,
            image_backoff: Vec::new(),
            pod_failure: None,
            pending: Vec::new(),
            cond_since: Vec::new(),
            final_status: None,
            latched_phase: None,
        };
        engine.observe(now);
        Ok(engine)
    }

    /// True once the pod reached a terminal phase and everything (sandbox included) was stopped.
    pub fn is_terminal(&self) -> bool {
        self.final_status.is_some()
    }

    /// True while the pod is being torn down (deletion, deadline, completion).
    pub fn is_terminating(&self) -> bool {
        self.term.is_some()
    }

    /// Applies an update of the pod (S10, S12, T10), accepting only what the API server accepts
    /// on a running pod: container and init container images, activeDeadlineSeconds set or
    /// lowered, tolerations added, ephemeral containers added. Anything else is an error and
    /// changes nothing. Effects happen at the next [`plan`](Self::plan): a running app container
    /// or started sidecar whose image changed is killed and restarted (SyncPod's
    /// containerChanged), new ephemeral containers are started, a lowered deadline may expire.
    pub fn update_spec(&mut self, pod: &Pod, now: Time) -> Result<(), EngineError> {
        let new = pod.spec.as_ref().ok_or(EngineError::MissingSpec)?;
        validate_update(&self.api_spec, new)?;
        self.api_spec = new.clone();
        if let Some(g) = pod.metadata.generation {
            self.pod.generation = g;
        }
        if self.final_status.is_some() {
            return Ok(());
        }
        let n_main = self.pod.n_main;
        let new_main = new.init_containers.iter().flatten().chain(&new.containers);
        for (spec, c) in self.pod.containers[..n_main].iter_mut().zip(new_main) {
            spec.image = c.image.clone().unwrap_or_default();
        }
        self.pod.active_deadline_s = new.active_deadline_seconds;
        for e in new.ephemeral_containers.iter().flatten() {
            if self.idx(&e.name).is_none() {
                let spec = CtrSpec::from_ephemeral(e);
                self.ctrs.push(Ctr::new(&spec, now));
                self.pod.containers.push(spec);
            }
        }
        self.observe(now);
        Ok(())
    }

    /// The container names, init containers first, in spec order.
    pub fn container_names(&self) -> impl Iterator<Item = &str> {
        self.pod.containers.iter().map(|c| c.name.as_str())
    }

    fn idx(&self, name: &str) -> Option<usize> {
        self.pod.containers.iter().position(|c| c.name == name)
    }

    fn event(&mut self, type_: EventType, reason: &str, message: String, container: Option<&str>) {
        self.pending.push(Action::Event(Event {
            type_,
            reason: reason.to_string(),
            message,
            container: container.map(str::to_string),
        }));
    }

    // ------------------------------------------------------------------------------------------
    // Inputs
    // ------------------------------------------------------------------------------------------

    /// Feeds one observation. Unknown names and stale instances are ignored, never a panic.
    pub fn handle(&mut self, input: Input, now: Time) {
        if self.final_status.is_some() {
            return;
        }
        // A hook past its deadline has failed, whatever this input says (a `PostStartDone` that
        // arrives at or after the deadline is late).
        self.expire_post_starts(now);
        match input {
            Input::Tick => {}
            Input::SandboxReady => {
                if self.sandbox == Sandbox::Creating {
                    self.sandbox = Sandbox::Ready;
                }
            }
            Input::StopRequested { grace } => self.stop_requested(grace, now),
            Input::KillNow => self.kill_now(now),
            Input::FailPod { failure } => self.fail_pod(failure, now),
            Input::SandboxLost => self.sandbox_lost(),
            Input::ContainerObserved {
                name,
                instance,
                state,
                attempt,
            } => {
                if let Some(i) = self.idx(&name) {
                    self.container_observed(i, instance, state, attempt, now);
                }
            }
            Input::ContainerStarted { name, instance, at } => {
                if let Some(i) = self.idx(&name) {
                    self.container_started(i, instance, at, now);
                }
            }
            Input::ImagePulling { name, instance } => {
                if let Some(i) = self.idx(&name) {
                    self.image_pulling(i, instance);
                }
            }
            Input::ImageReady {
                name,
                instance,
                image,
            } => {
                if let Some(i) = self.idx(&name) {
                    self.image_ready(i, instance, image, now);
                }
            }
            Input::StartFailed {
                name,
                instance,
                failure,
            } => {
                if let Some(i) = self.idx(&name) {
                    self.start_failed(i, instance, failure, now);
                }
            }
            Input::PostStartDone {
                name,
                instance,
                ok,
                message,
            } => {
                if let Some(i) = self.idx(&name) {
                    self.post_start_done(i, instance, ok, message, now);
                }
            }
            Input::ContainerExited {
                name,
                instance,
                exit_code,
                reason,
                message,
                at,
            } => {
                if let Some(i) = self.idx(&name) {
                    self.container_exited(i, instance, exit_code, reason, message, at);
                }
            }
            Input::ProbeRestored {
                name,
                instance,
                kind,
                ok,
            } => {
                if let Some(i) = self.idx(&name) {
                    self.probe_restored(i, instance, kind, ok);
                }
            }
            Input::ProbeResult {
                name,
                instance,
                kind,
                ok,
                output,
            } => {
                if let Some(i) = self.idx(&name) {
                    self.probe_result(i, instance, kind, ok, output);
                }
            }
            Input::ProbeTargetGone {
                name,
                instance,
                kind,
            } => {
                if let Some(i) = self.idx(&name) {
                    self.probe_target_gone(i, instance, kind);
                }
            }
            Input::PreStopDone { name, instance, ok } => {
                if let Some(i) = self.idx(&name) {
                    self.pre_stop_done(i, instance, ok, now);
                }
            }
        }
        self.observe(now);
    }

    fn stop_requested(&mut self, grace: Option<i64>, now: Time) {
        self.deleted = true;
        // T1: effective grace = smallest requested so far, else TGPS; never below 1.
        let g = grace.unwrap_or(self.pod.tgps).max(1);
        self.begin_termination(TermCause::Stop, Some(g), now);
    }

    /// [`Input::KillNow`]: a stop with the smallest grace, and every kill — those under way
    /// too — turned into an immediate SIGKILL. Kills of containers still running are begun by
    /// the next [`plan`](Self::plan) (`sync_terminating`), already as SIGKILLs.
    fn kill_now(&mut self, now: Time) {
        self.deleted = true;
        self.kill_now = true;
        self.begin_termination(TermCause::Stop, Some(1), now);
        for i in 0..self.ctrs.len() {
            self.kill_at_once(i, now);
        }
    }

    /// S9 (kuberuntime_manager.go computePodActions, `createPodSandbox`): the decision is taken
    /// at the next sync; here the sandbox only stops counting as ready (PodReadyToStartContainers
    /// turns False). A sandbox still being created, or one being torn down anyway, is left alone.
    fn sandbox_lost(&mut self) {
        if self.term.is_none() && self.sandbox == Sandbox::Ready {
            self.sandbox = Sandbox::Lost;
            self.recreate = Some(Recreate::Due);
        }
    }

    /// R3: a record in Created or Unknown state. A known instance changes state (unless it has
    /// already exited); an unknown one is adopted. A Created report for the start in flight means
    /// the runtime created but could not start it: the sync ends in error and the pod worker
    /// re-queues (error back-off), as for a start failure without a record.
    fn container_observed(
        &mut self,
        i: usize,
        instance: InstanceId,
        state: ObservedState,
        attempt: Option<i32>,
        now: Time,
    ) {
        if let Some(inst) = self.ctrs[i].instances.iter_mut().find(|x| x.id == instance) {
            if inst.exit.is_none() {
                inst.observed = Some(state);
            }
            return;
        }
        let pending = self.ctrs[i].start.is_some_and(|p| p.instance == instance);
        let (image, image_id) = if pending {
            (
                self.ctrs[i].start_image.clone(),
                self.ctrs[i].start_image_id.take(),
            )
        } else {
            (self.pod.containers[i].image.clone(), None)
        };
        self.push_instance(
            i,
            Inst {
                id: instance,
                sandbox: 0,
                started_at: None,
                exit: None,
                image,
                image_id,
                observed: Some(state),
            },
        );
        let c = &mut self.ctrs[i];
        if let Some(a) = attempt {
            // restartCount comes from the record's annotation (startContainer).
            c.records = c.records.max(a.saturating_add(1));
        }
        if pending {
            c.start = None;
            c.retry_at = Some(now.add_millis(self.cfg.error_requeue_ms));
        }
        if instance.0 >= self.next_id {
            self.next_id = instance.0.saturating_add(1);
        }
    }

    fn push_instance(&mut self, i: usize, inst: Inst) {
        let seq = self.sandbox_seq;
        let c = &mut self.ctrs[i];
        c.records += 1;
        c.instances.push(Inst {
            sandbox: seq,
            ..inst
        });
        if c.instances.len() > KEEP_INSTANCES {
            c.instances.remove(0);
        }
    }

    fn container_started(&mut self, i: usize, instance: InstanceId, at: Time, now: Time) {
        if let Some(inst) = self.ctrs[i].instances.iter_mut().find(|x| x.id == instance) {
            // A record seen in Created/Unknown state turned out to run after all.
            if inst.exit.is_none() {
                inst.observed = None;
            }
            return;
        }
        let (post_start, image, image_id) = match self.ctrs[i].start {
            Some(p) if p.instance == instance => (
                p.post_start,
                self.ctrs[i].start_image.clone(),
                self.ctrs[i].start_image_id.take(),
            ),
            // An instance we did not ask for: adopt it (a re-adopted runtime record).
            _ => (false, self.pod.containers[i].image.clone(), None),
        };
        self.push_instance(
            i,
            Inst {
                id: instance,
                sandbox: 0,
                started_at: Some(at),
                exit: None,
                image,
                image_id,
                observed: None,
            },
        );
        let name = self.pod.containers[i].name.clone();
        let c = &mut self.ctrs[i];
        c.reason_cache = None;
        c.retry_at = None;
        // The hook runs from now on; its deadline counts from the moment the engine hears of
        // the start, which is never before the worker began it.
        c.start = if post_start {
            Some(PendingStart {
                instance,
                phase: StartPhase::PostStart,
                post_start,
                post_start_deadline: Some(now.add_millis(self.cfg.post_start_timeout_ms.max(0))),
            })
        } else {
            None
        };
        if instance.0 >= self.next_id {
            self.next_id = instance.0 + 1;
        }
        self.event(
            EventType::Normal,
            "Created",
            format!("Created container: {name}"),
            Some(&name),
        );
        self.event(
            EventType::Normal,
            "Started",
            format!("Started container {name}"),
            Some(&name),
        );
        if self.pod.containers[i].probe(ProbeKind::Startup).is_none() {
            self.became_started(i);
        }
    }

    /// prober_manager.go UpdatePodStatus: a started container whose readiness is not yet Success
    /// gets an immediate readiness run (P3).
    fn became_started(&mut self, i: usize) {
        if let Some(w) = self.ctrs[i].workers[ProbeKind::Readiness.index()].as_mut() {
            w.pending = true;
        }
    }

    /// kuberuntime_container.go startContainer: what each failing step leaves behind. Every
    /// failure ends the sync in error (`Failed` event "Error: …", reason cache); only a failed
    /// `StartContainer` leaves a runtime record, so only it is subject to the back-off — the
    /// others are tried again after the pod worker's error re-queue.
    fn start_failed(&mut self, i: usize, instance: InstanceId, failure: StartFailure, now: Time) {
        match self.ctrs[i].start {
            Some(p) if p.instance == instance => {}
            _ => return,
        }
        let name = self.pod.containers[i].name.clone();
        self.ctrs[i].start = None;
        self.ctrs[i].start_image_id = None;
        let reason = failure.reason();
        let mut message = failure.message().to_string();
        let image = self.ctrs[i].start_image.clone();
        // The image manager's own event comes first (image_manager.go EnsureImageExists), and
        // the sync's `Failed` event then shows the error value, not the message.
        let image_event = match &failure {
            StartFailure::InvalidImageName { .. } | StartFailure::ImageInspect { .. } => {
                Some((EventType::Warning, "InspectFailed", message.clone()))
            }
            StartFailure::ImageNeverPull { .. } => {
                Some((EventType::Warning, "ErrImageNeverPull", message.clone()))
            }
            StartFailure::ImagePull { .. } => Some((
                EventType::Warning,
                "Failed",
                images::pull_failed_message(&image, &message),
            )),
            StartFailure::ImagePullBackOff => Some((
                EventType::Normal,
                "BackOff",
                images::backoff_message(&image),
            )),
            StartFailure::Config { .. }
            | StartFailure::Create { .. }
            | StartFailure::Run { .. } => None,
        };
        if let Some((type_, event_reason, text)) = &image_event {
            self.event(*type_, event_reason, text.clone(), Some(&name));
        }
        let mut retry_at = None;
        match &failure {
            StartFailure::ImagePull { .. } => self.image_pull_failed(&image, &message, now),
            StartFailure::ImagePullBackOff => {
                // The waiting message carries the last pull's error (prevPullErrMsg); the
                // next attempt comes when the back-off ends.
                message = images::backoff_message(&image);
                if let Some(b) = self.image_backoff.iter().find(|b| b.image == image) {
                    if let Some(prev) = &b.last_error {
                        message = format!("{message}: {prev}");
                    }
                    retry_at = Some(b.entry.last_update.add_millis(b.entry.dur_ms));
                }
            }
            _ => {}
        }
        if let StartFailure::Run { .. } = failure {
            // The runtime kept a record: `terminated{reason: StartError, exitCode: 128}` (ST4);
            // it was created (the `Created` event precedes StartContainer).
            let image = self.ctrs[i].start_image.clone();
            self.push_instance(
                i,
                Inst {
                    id: instance,
                    sandbox: 0,
                    started_at: None,
                    exit: Some(Exit {
                        code: START_ERROR_EXIT_CODE,
                        reason: "StartError".into(),
                        message: Some(message.clone()),
                        at: now,
                    }),
                    image,
                    image_id: None,
                    observed: None,
                },
            );
            self.event(
                EventType::Normal,
                "Created",
                format!("Created container: {name}"),
                Some(&name),
            );
        } else {
            // No record: nothing to back off from; retry after the pod worker's error re-queue
            // (an image back-off: when it ends).
            let requeue = now.add_millis(self.cfg.error_requeue_ms);
            self.ctrs[i].retry_at = Some(retry_at.filter(|t| *t > now).unwrap_or(requeue));
        }
        let shown = if image_event.is_some() {
            reason
        } else {
            message.as_str()
        };
        self.event(
            EventType::Warning,
            "Failed",
            format!("Error: {shown}"),
            Some(&name),
        );
        self.ctrs[i].reason_cache = Some((reason.to_string(), message));
    }

    /// image_manager.go: `Pulling image "…"` for the start in flight.
    fn image_pulling(&mut self, i: usize, instance: InstanceId) {
        if self.ctrs[i].start.is_none_or(|p| p.instance != instance) {
            return;
        }
        let name = self.pod.containers[i].name.clone();
        let text = images::pulling_message(&self.ctrs[i].start_image);
        self.event(EventType::Normal, "Pulling", text, Some(&name));
    }

    /// image_manager.go: the image is there (`Pulled`); after a pull the back-off is
    /// garbage-collected (`backOff.GC()`: entries not updated for 2 × max are dropped — a
    /// success does not reset a younger entry).
    fn image_ready(&mut self, i: usize, instance: InstanceId, image: ResolvedImage, now: Time) {
        if self.ctrs[i].start.is_none_or(|p| p.instance != instance) {
            return;
        }
        let name = self.pod.containers[i].name.clone();
        let spec_image = self.ctrs[i].start_image.clone();
        let text = match &image.pulled {
            None => images::present_message(&spec_image),
            Some(stats) => {
                let expiry = self.cfg.image_backoff_max_ms.saturating_mul(2);
                self.image_backoff
                    .retain(|b| now.millis_since(b.entry.last_update) <= expiry);
                images::pulled_message(&spec_image, stats)
            }
        };
        self.ctrs[i].start_image_id = Some(image.image_id);
        self.event(EventType::Normal, "Pulled", text, Some(&name));
    }

    /// flowcontrol.Backoff `Next` for the pod's entry of `image` after a failed pull, and the
    /// error kept for the back-off's waiting message.
    fn image_pull_failed(&mut self, image: &str, message: &str, now: Time) {
        let (initial, max) = (
            self.cfg.image_backoff_initial_ms,
            self.cfg.image_backoff_max_ms,
        );
        let last_error = Some(format!("ErrImagePull: {message}"));
        match self.image_backoff.iter_mut().find(|b| b.image == image) {
            Some(b) => {
                let expired = now.millis_since(b.entry.last_update) > max.saturating_mul(2);
                b.entry.dur_ms = if expired {
                    initial
                } else {
                    b.entry.dur_ms.saturating_mul(2).min(max)
                };
                b.entry.last_update = now;
                b.last_error = last_error;
            }
            None => self.image_backoff.push(ImageBackoff {
                image: image.to_string(),
                entry: BackoffEntry {
                    dur_ms: initial,
                    last_update: now,
                },
                last_error,
            }),
        }
    }

    /// flowcontrol.Backoff `IsInBackOffSinceUpdate` for the pod's entry of `image`.
    pub(crate) fn image_in_backoff(&self, image: &str, now: Time) -> bool {
        let max2 = self.cfg.image_backoff_max_ms.saturating_mul(2);
        self.image_backoff.iter().any(|b| {
            let since = now.millis_since(b.entry.last_update);
            b.image == image && since <= max2 && since < b.entry.dur_ms
        })
    }

    fn post_start_done(
        &mut self,
        i: usize,
        instance: InstanceId,
        ok: bool,
        message: String,
        now: Time,
    ) {
        match self.ctrs[i].start {
            Some(p) if p.instance == instance && p.phase == StartPhase::PostStart => {}
            _ => return,
        }
        self.ctrs[i].start = None;
        if !ok {
            self.post_start_failed(i, instance, message, now);
        }
    }

    /// Fails every postStart hook whose deadline has come (skiff's own bound, see
    /// [`EngineConfig::post_start_timeout_ms`]) exactly as a hook that returned an error.
    pub(super) fn expire_post_starts(&mut self, now: Time) {
        for i in 0..self.ctrs.len() {
            let Some(p) = self.ctrs[i].start else {
                continue;
            };
            if p.phase != StartPhase::PostStart || p.post_start_deadline.is_none_or(|d| now < d) {
                continue;
            }
            self.ctrs[i].start = None;
            let limit = go_duration(self.cfg.post_start_timeout_ms.max(0));
            let message = format!("PostStartHook did not finish within {limit}");
            self.post_start_failed(i, p.instance, message, now);
        }
    }

    fn post_start_failed(&mut self, i: usize, instance: InstanceId, message: String, now: Time) {
        // T9 (kuberuntime_container.go startContainer): event, kill, PostStartHookError.
        let name = self.pod.containers[i].name.clone();
        self.event(
            EventType::Warning,
            "FailedPostStartHook",
            "PostStartHook failed".into(),
            Some(&name),
        );
        self.ctrs[i].reason_cache = Some(("PostStartHookError".into(), message));
        if self.ctrs[i].running().is_some_and(|x| x.id == instance) && self.ctrs[i].kill.is_none() {
            // killContainer with reasonFailedPostStartHook and no override: TGPS.
            let grace = self.single_kill_grace(i, KillCause::PostStart);
            self.begin_kill(
                i,
                grace,
                false,
                Some("FailedPostStartHook".into()),
                StopReason::PostStartFailed,
                now,
            );
        }
    }

    fn container_exited(
        &mut self,
        i: usize,
        instance: InstanceId,
        code: i32,
        reason: Option<String>,
        message: Option<String>,
        at: Time,
    ) {
        let c = &mut self.ctrs[i];
        let Some(inst) = c.instances.iter_mut().find(|x| x.id == instance) else {
            return;
        };
        if inst.exit.is_some() {
            return;
        }
        let reason = reason.unwrap_or_else(|| {
            if code == 0 {
                "Completed".into()
            } else {
                "Error".into()
            }
        });
        inst.exit = Some(Exit {
            code,
            reason,
            message,
            at,
        });
        inst.observed = None;
        if c.kill.is_some_and(|k| k.instance == instance) {
            c.kill = None;
        }
        if c.start.is_some_and(|p| p.instance == instance) {
            c.start = None;
        }
    }

    fn probe_result(
        &mut self,
        i: usize,
        instance: InstanceId,
        kind: ProbeKind,
        ok: bool,
        output: String,
    ) {
        let name = self.pod.containers[i].name.clone();
        let Some(spec) = self.pod.containers[i].probe(kind).cloned() else {
            return;
        };
        let Some(w) = self.ctrs[i].workers[kind.index()].as_mut() else {
            return;
        };
        // A result for another instance than the one probed is stale (k8s #120848).
        if w.in_flight != Some(instance) {
            return;
        }
        w.in_flight = None;
        if w.stopped || w.instance != Some(instance) {
            return;
        }
        // worker.go doProbe: threshold counting.
        if w.last_result == ok {
            w.run = w.run.saturating_add(1);
        } else {
            w.last_result = ok;
            w.run = 1;
        }
        let below = if ok {
            w.run < spec.success_threshold
        } else {
            w.run < spec.failure_threshold
        };
        let mut now_started = false;
        if !below {
            let prev = w.result;
            w.result = Some(ok);
            if !ok && kind != ProbeKind::Readiness {
                // P8: hold until a new container instance appears.
                w.on_hold = true;
                w.run = 0;
            }
            now_started = kind == ProbeKind::Startup && ok && prev != Some(true);
        }
        if !ok {
            // prober.go: every failed run is reported, thresholds or not.
            self.event(
                EventType::Warning,
                "Unhealthy",
                format!("{} probe failed: {}", kind.title(), output),
                Some(&name),
            );
        }
        if now_started {
            self.became_started(i);
        }
    }

    /// [`Input::ProbeRestored`]: the worker publishes `ok` for `instance` as if it had counted
    /// to its threshold (the next result of the other value starts a new run).
    fn probe_restored(&mut self, i: usize, instance: InstanceId, kind: ProbeKind, ok: bool) {
        if self.ctrs[i].running().map(|x| x.id) != Some(instance) {
            return;
        }
        let Some(w) = self.ctrs[i].workers[kind.index()].as_mut() else {
            return;
        };
        w.instance = Some(instance);
        w.result = Some(ok);
        w.last_result = ok;
        w.run = 0;
        if kind == ProbeKind::Startup && ok {
            self.became_started(i);
        }
    }

    /// P12: the kubelet's probe of a non-running container publishes Failure without counting
    /// it or making an event, and only once the runtime reports the container not running.
    /// Here the exit is reported on its own, so the engine only forgets the run.
    fn probe_target_gone(&mut self, i: usize, instance: InstanceId, kind: ProbeKind) {
        if let Some(w) = self.ctrs[i].workers[kind.index()].as_mut() {
            if w.in_flight == Some(instance) {
                w.in_flight = None;
            }
        }
    }

    fn pre_stop_done(&mut self, i: usize, instance: InstanceId, ok: bool, now: Time) {
        let Some(k) = self.ctrs[i].kill else { return };
        if k.instance != instance {
            return;
        }
        if !ok {
            let name = self.pod.containers[i].name.clone();
            self.event(
                EventType::Warning,
                "FailedPreStopHook",
                "PreStopHook failed".into(),
                Some(&name),
            );
        }
        if let KillPhase::PreStop { since, .. } = k.phase {
            self.finish_pre_stop(i, since, now);
        }
    }
}

impl PodEngine {
    // ------------------------------------------------------------------------------------------
    // Status bookkeeping
    // ------------------------------------------------------------------------------------------

    /// Records condition transitions and latches a terminal phase.
    fn observe(&mut self, now: Time) {
        if self.final_status.is_some() {
            return;
        }
        let st = self.build_status(now, false);
        if let Some(p) = st.phase.as_deref() {
            if (p == "Succeeded" || p == "Failed") && self.latched_phase.is_none() {
                self.latched_phase = Some(p.to_string());
            }
        }
        for cond in st.conditions.iter().flatten() {
            match self
                .cond_since
                .iter_mut()
                .find(|(t, _, _)| *t == cond.type_)
            {
                Some(entry) if entry.1 == cond.status => {}
                Some(entry) => {
                    entry.1 = cond.status.clone();
                    entry.2 = now;
                }
                None => self
                    .cond_since
                    .push((cond.type_.clone(), cond.status.clone(), now)),
            }
        }
    }

    fn finalize(&mut self, now: Time) {
        let finalizing = self.deleted || self.pod_failure.is_some();
        let st = self.build_final_status(now, finalizing);
        self.final_status = Some(st);
    }

    /// The pod's status as the kubelet would report it now (ST1–ST8).
    pub fn status(&self, now: Time) -> PodStatus {
        if let Some(st) = &self.final_status {
            return st.clone();
        }
        self.build_status(now, false)
    }

    /// An exited container being restarted right now: killed for a restart that the restart
    /// policy would not grant (`force_restart`), or its new instance's start in flight. The
    /// kubelet does both in one sync, so its status never shows the gap.
    pub(crate) fn restarting(&self, name: &str) -> bool {
        self.idx(name).is_some_and(|i| {
            let c = &self.ctrs[i];
            (c.force_restart.is_some() || c.start.is_some())
                && c.current().is_some_and(|x| x.exit.is_some())
        })
    }

    pub(crate) fn sandbox_ready(&self) -> bool {
        self.sandbox == Sandbox::Ready
    }

    pub(crate) fn app_created_in_sandbox(&self) -> bool {
        let seq = self.sandbox_seq;
        self.pod
            .apps()
            .any(|i| self.ctrs[i].instances.iter().any(|x| x.sandbox == seq))
    }
}

enum StartOutcome {
    Started,
    Waiting,
}
