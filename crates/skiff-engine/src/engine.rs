//! The pod lifecycle state machine: the kubelet's SyncPod / computePodActions /
//! computeInitContainerActions, the probe workers, the crash-loop back-off and killContainer with
//! termination ordering, all driven by explicit inputs and explicit time.

use k8s_openapi::api::core::v1::{Pod, PodSpec, PodStatus};

use crate::spec::{ContainerKind, CtrSpec, PodInfo, ProbeKind, RestartPolicy};
use crate::time::{go_duration, Time};
use crate::update::validate_update;
use crate::{
    Action, EngineConfig, EngineError, Event, EventType, Input, InstanceId, ObservedState, Signal,
};

/// Minimum stop window (kuberuntime_container.go minimumGracePeriodInSeconds).
const MIN_GRACE_S: i64 = 2;
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
    /// activeDeadlineSeconds (T10) or eviction: the node fails the pod.
    Deadline,
    /// Every app container exited for good (T6, P6 exception).
    Completed,
    /// A regular init container failed under `Never` (S7).
    InitFailed,
    /// The sandbox was lost and must not be re-created (S9).
    SandboxLost,
}

#[derive(Clone, Copy, Debug)]
struct Termination {
    #[allow(dead_code)] // kept for debugging and future reporting
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

/// The lifecycle core for one pod.
#[derive(Clone, Debug)]
pub struct PodEngine {
    pub(crate) pod: PodInfo,
    /// The spec as last accepted (for update validation).
    api_spec: PodSpec,
    cfg: EngineConfig,
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
        match input {
            Input::Tick => {}
            Input::SandboxReady => {
                if self.sandbox == Sandbox::Creating {
                    self.sandbox = Sandbox::Ready;
                }
            }
            Input::StopRequested { grace } => self.stop_requested(grace, now),
            Input::Evicted { message, grace } => self.evicted(message, grace, now),
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
                    self.container_started(i, instance, at);
                }
            }
            Input::StartFailed {
                name,
                instance,
                reason,
                message,
                exit_code,
            } => {
                if let Some(i) = self.idx(&name) {
                    self.start_failed(i, instance, reason, message, exit_code, now);
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
        let image = if pending {
            self.ctrs[i].start_image.clone()
        } else {
            self.pod.containers[i].image.clone()
        };
        self.push_instance(
            i,
            Inst {
                id: instance,
                sandbox: 0,
                started_at: None,
                exit: None,
                image,
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

    fn container_started(&mut self, i: usize, instance: InstanceId, at: Time) {
        if let Some(inst) = self.ctrs[i].instances.iter_mut().find(|x| x.id == instance) {
            // A record seen in Created/Unknown state turned out to run after all.
            if inst.exit.is_none() {
                inst.observed = None;
            }
            return;
        }
        let (post_start, image) = match self.ctrs[i].start {
            Some(p) if p.instance == instance => (p.post_start, self.ctrs[i].start_image.clone()),
            // An instance we did not ask for: adopt it (a re-adopted runtime record).
            _ => (false, self.pod.containers[i].image.clone()),
        };
        self.push_instance(
            i,
            Inst {
                id: instance,
                sandbox: 0,
                started_at: Some(at),
                exit: None,
                image,
                observed: None,
            },
        );
        let name = self.pod.containers[i].name.clone();
        let c = &mut self.ctrs[i];
        c.reason_cache = None;
        c.retry_at = None;
        c.start = if post_start {
            Some(PendingStart {
                instance,
                phase: StartPhase::PostStart,
                post_start,
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

    fn start_failed(
        &mut self,
        i: usize,
        instance: InstanceId,
        reason: String,
        message: String,
        exit_code: Option<i32>,
        now: Time,
    ) {
        match self.ctrs[i].start {
            Some(p) if p.instance == instance => {}
            _ => return,
        }
        let name = self.pod.containers[i].name.clone();
        self.ctrs[i].start = None;
        if let Some(code) = exit_code {
            // The runtime kept a record: `terminated{reason: StartError, exitCode: 128}` (ST4).
            let image = self.ctrs[i].start_image.clone();
            self.push_instance(
                i,
                Inst {
                    id: instance,
                    sandbox: 0,
                    started_at: None,
                    exit: Some(Exit {
                        code,
                        reason: "StartError".into(),
                        message: Some(message.clone()),
                        at: now,
                    }),
                    image,
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
            // No record: nothing to back off from; retry after the pod worker's error re-queue.
            self.ctrs[i].retry_at = Some(now.add_millis(self.cfg.error_requeue_ms));
        }
        self.event(
            EventType::Warning,
            "Failed",
            format!("Error: {message}"),
            Some(&name),
        );
        self.ctrs[i].reason_cache = Some((reason, message));
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
        if ok {
            return;
        }
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
            self.begin_kill(i, grace, false, Some("FailedPostStartHook".into()), now);
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

    // ------------------------------------------------------------------------------------------
    // Decisions
    // ------------------------------------------------------------------------------------------

    /// Computes what to do now. Idempotent: a second call with nothing new returns nothing.
    pub fn plan(&mut self, now: Time) -> Vec<Action> {
        if self.final_status.is_none() {
            self.check_deadline(now);
            self.advance_kills(now);
            if self.term.is_some() {
                self.sync_terminating(now);
            } else {
                self.sync(now);
            }
            self.advance_kills(now);
            self.plan_probes(now);
            if self.term.is_some() && self.final_status.is_none() {
                // Probe results or exits handled above may have completed termination.
                self.sync_terminating(now);
            }
            self.observe(now);
        }
        std::mem::take(&mut self.pending)
    }

    /// The earliest time at which [`plan`](Self::plan) has something new to do without new input.
    pub fn wake_at(&self) -> Option<Time> {
        if self.final_status.is_some() {
            return None;
        }
        let mut best: Option<Time> = None;
        let mut consider = |t: Time| {
            best = Some(best.map_or(t, |b| b.min(t)));
        };
        if let (Some(ads), None) = (self.pod.active_deadline_s, &self.pod_failure) {
            consider(self.start_time.add_secs(ads));
        }
        for (i, c) in self.ctrs.iter().enumerate() {
            if self.term.is_none() {
                if let Some(t) = c.backoff_until {
                    consider(t);
                }
                if let Some(t) = c.retry_at {
                    consider(t);
                }
            }
            if let Some(k) = c.kill {
                match k.phase {
                    KillPhase::PreStop { deadline, .. } | KillPhase::WaitTurn { deadline, .. } => {
                        consider(deadline)
                    }
                    KillPhase::Signalled {
                        kill_at,
                        killed: false,
                    } => consider(kill_at),
                    KillPhase::Signalled { .. } => {}
                }
            }
            if c.running().is_some() {
                for (k, w) in ProbeKind::ALL.iter().zip(c.workers.iter()) {
                    let Some(w) = w else { continue };
                    if w.stopped || w.in_flight.is_some() || !self.worker_may_probe(i, *k) {
                        continue;
                    }
                    consider(w.next_tick_after(w.last_eval));
                }
            }
        }
        best
    }

    fn check_deadline(&mut self, now: Time) {
        let Some(ads) = self.pod.active_deadline_s else {
            return;
        };
        if self.pod_failure.is_some() || now < self.start_time.add_secs(ads) {
            return;
        }
        // T10 (active_deadline.go ShouldEvict: duration >= allowed).
        let message = "Pod was active on the node longer than the specified deadline";
        self.pod_failure = Some(("DeadlineExceeded".into(), message.into()));
        self.event(EventType::Normal, "DeadlineExceeded", message.into(), None);
        self.begin_termination(TermCause::Deadline, None, now);
    }

    /// The node evicts the pod (eviction manager: e.g. an emptyDir over its sizeLimit): phase
    /// Failed, reason `Evicted`, the given message, containers killed with `grace` (the
    /// eviction's grace override; hard evictions use 0, i.e. the 1 s/2 s floors). The caller
    /// emits the Warning `Evicted` event. [pkg/kubelet/eviction/eviction_manager.go evictPod]
    fn evicted(&mut self, message: String, grace: Option<i64>, now: Time) {
        if self.pod_failure.is_some() || self.final_status.is_some() {
            return;
        }
        self.pod_failure = Some(("Evicted".into(), message));
        // calculateEffectiveGracePeriod: never below 1 s.
        self.begin_termination(TermCause::Deadline, grace.map(|g| g.max(1)), now);
    }

    /// kuberuntime_manager.go computePodActions + SyncPod, one step at a time: the kubelet's sync
    /// blocks on each start (postStart included) and each kill, so the engine issues nothing new
    /// while one is in flight and recomputes when it finishes.
    fn sync(&mut self, now: Time) {
        if self
            .ctrs
            .iter()
            .any(|c| c.start.is_some() || c.kill.is_some())
        {
            return;
        }
        if let Some(stage) = self.recreate {
            self.sync_sandbox_changed(stage, now);
            return;
        }
        match self.sandbox {
            Sandbox::None => {
                self.pending.push(Action::CreateSandbox);
                self.sandbox = Sandbox::Creating;
                return;
            }
            Sandbox::Creating | Sandbox::Stopped | Sandbox::Lost => return,
            Sandbox::Ready => {}
        }
        let mut kills: Vec<KillReq> = Vec::new();
        let mut starts: Vec<usize> = Vec::new();
        let (initialized, kill_pod) = self.compute_init_actions(&mut kills, &mut starts);
        if kill_pod {
            // S7: regular init failed (or is Unknown) under Never.
            self.begin_termination(TermCause::InitFailed, None, now);
            self.sync_terminating(now);
            return;
        }
        if initialized {
            self.initialized = true;
            let mut keep = 0usize;
            let mut app_starts = Vec::new();
            let restart_on_kill = self.pod.restart_policy != RestartPolicy::Never;
            for i in self.pod.apps() {
                let c = &self.ctrs[i];
                let spec = &self.pod.containers[i];
                let name = &spec.name;
                let Some(cur) = c.running() else {
                    if c.force_restart.is_some() || self.should_restart(i) {
                        // R3: an Unknown record may still run; kill it before the restart.
                        if c.current().is_some_and(Inst::unknown) {
                            kills.push((
                                i,
                                "Container is in \"unknown\" state, try killing it before restart"
                                    .into(),
                                KillCause::Unknown,
                                true,
                            ));
                        }
                        app_starts.push(i);
                    }
                    continue;
                };
                let (msg, cause, restart) = if cur.image != spec.image {
                    // S10 (containerChanged): restart regardless of the restart policy.
                    (
                        format!("Container {name} definition changed"),
                        KillCause::SpecChanged,
                        true,
                    )
                } else if c.probe_result(ProbeKind::Liveness) == Some(false) {
                    (
                        format!("Container {name} failed liveness probe"),
                        KillCause::Liveness,
                        restart_on_kill,
                    )
                } else if c.probe_result(ProbeKind::Startup) == Some(false) {
                    (
                        format!("Container {name} failed startup probe"),
                        KillCause::Startup,
                        restart_on_kill,
                    )
                } else {
                    keep += 1;
                    continue;
                };
                if restart {
                    kills.push((i, format!("{msg}, will be restarted"), cause, true));
                    app_starts.push(i);
                } else {
                    kills.push((i, msg, cause, false));
                }
            }
            if keep == 0 && app_starts.is_empty() {
                // T6 / P6 exception: nothing left to run — kill the pod (generic message, TGPS).
                // Ephemeral containers never count (keepCount covers spec.containers only).
                self.begin_termination(TermCause::Completed, None, now);
                self.sync_terminating(now);
                return;
            }
            starts.extend(app_starts);
        }
        let mut killed_any = false;
        for (i, msg, cause, restart) in kills {
            let Some(inst) = self.ctrs[i].killable().map(|x| x.id) else {
                continue;
            };
            let grace = self.single_kill_grace(i, cause);
            self.begin_kill(i, grace, false, Some(msg), now);
            if restart || self.pod.containers[i].kind == ContainerKind::Sidecar {
                self.ctrs[i].force_restart = Some(inst);
            }
            killed_any = true;
        }
        if killed_any {
            return;
        }
        // S12 (SyncPod step 5): ephemeral containers start before init containers, whether or not
        // initialization is done, and only if they have no record at all (never restarted).
        let ephemeral = (self.pod.n_main..self.pod.containers.len())
            .filter(|&i| self.ctrs[i].current().is_none());
        let mut seen = Vec::new();
        for i in ephemeral.collect::<Vec<_>>().into_iter().chain(starts) {
            if seen.contains(&i) || self.ctrs[i].running().is_some() {
                continue;
            }
            seen.push(i);
            match self.try_start(i, now) {
                StartOutcome::Started => return,
                StartOutcome::Waiting => {
                    // S11: a regular init container that cannot start ends the pass.
                    if self.pod.containers[i].kind == ContainerKind::RegularInit {
                        return;
                    }
                }
            }
        }
    }

    /// S9: computePodActions with `createPodSandbox` set, then SyncPod's KillPod, purge of the
    /// init containers and CreateSandbox. Runs once no start or kill is in flight.
    fn sync_sandbox_changed(&mut self, stage: Recreate, now: Time) {
        if stage == Recreate::Due {
            let policy = self.pod.restart_policy;
            let any_record = self.ctrs.iter().any(|c| !c.instances.is_empty());
            if policy == RestartPolicy::Never && any_record {
                // Should not restart the pod: no new sandbox, just kill it.
                self.recreate = None;
                self.begin_termination(TermCause::SandboxLost, None, now);
                self.sync_terminating(now);
                return;
            }
            // OnFailure: app containers that already succeeded are not started again.
            let to_start = self.pod.apps().filter(|&i| {
                let succeeded = self.ctrs[i]
                    .current()
                    .and_then(|x| x.exit.as_ref())
                    .is_some_and(|e| e.code == 0);
                !(policy == RestartPolicy::OnFailure && succeeded)
            });
            // hasAnyRegularContainerCreated: a Created, running or exited app record.
            let initialized = self.pod.apps().any(|i| {
                self.ctrs[i]
                    .current()
                    .is_some_and(|x| x.exit.is_some() || x.running() || x.created())
            });
            if to_start.count() == 0 && initialized {
                self.recreate = None;
                self.begin_termination(TermCause::SandboxLost, None, now);
                self.sync_terminating(now);
                return;
            }
            self.event(
                EventType::Normal,
                "SandboxChanged",
                "Pod sandbox changed, it will be killed and re-created.".into(),
                None,
            );
            // killPodWithSyncResult(nil): every running container, ordered when there are
            // sidecars, grace TGPS, generic message.
            let ordered = self.pod.has_sidecars();
            for i in 0..self.ctrs.len() {
                self.cancel_post_start(i);
                if self.ctrs[i].running().is_some() && self.ctrs[i].kill.is_none() {
                    self.begin_kill(i, self.pod.tgps, ordered, None, now);
                }
            }
            self.recreate = Some(Recreate::Killing);
            self.advance_kills(now);
            if self.ctrs.iter().any(|c| c.kill.is_some()) {
                return;
            }
        }
        // Everything is stopped: stop the old sandbox, purge the init containers (a new sandbox
        // generation makes every old init record invisible to decisions and back-off) and create
        // the new sandbox.
        self.pending.push(Action::StopSandbox);
        self.recreate = None;
        self.sandbox_seq = self.sandbox_seq.saturating_add(1);
        self.initialized = false;
        for c in &mut self.ctrs {
            c.force_restart = None;
            c.backoff_until = None;
        }
        self.pending.push(Action::CreateSandbox);
        self.sandbox = Sandbox::Creating;
    }

    /// T1 for a single-container kill: deletion grace (not reachable here) → probe grace for
    /// liveness/startup kills → TGPS (kuberuntime_container.go setTerminationGracePeriod).
    fn single_kill_grace(&self, i: usize, cause: KillCause) -> i64 {
        let spec = &self.pod.containers[i];
        let probe = match cause {
            KillCause::Liveness => spec.probe(ProbeKind::Liveness),
            KillCause::Startup => spec.probe(ProbeKind::Startup),
            KillCause::PostStart | KillCause::Unknown | KillCause::SpecChanged => None,
        };
        probe
            .and_then(|p| p.termination_grace_s)
            .unwrap_or(self.pod.tgps)
    }

    /// kuberuntime_container.go computeInitContainerActions. Returns (pod initialized, kill pod).
    fn compute_init_actions(
        &self,
        kills: &mut Vec<KillReq>,
        starts: &mut Vec<usize>,
    ) -> (bool, bool) {
        let n = self.pod.n_init;
        if n == 0 {
            return (true, false);
        }
        // Any app container record in this sandbox (any state) proves initialization; exited ones
        // count too (the k8s PR #136969 fix), and the result is latched per sandbox.
        let seq = self.sandbox_seq;
        let mut initialized = self.initialized
            || self
                .pod
                .apps()
                .any(|i| self.ctrs[i].current().is_some_and(|x| x.sandbox == seq));
        let mut prev_initialized = initialized;
        let mut to_start = Vec::new();
        for i in (0..n).rev() {
            let spec = &self.pod.containers[i];
            let c = &self.ctrs[i];
            let Some(cur) = c.current().filter(|x| x.sandbox == seq) else {
                if prev_initialized && spec.kind == ContainerKind::Sidecar {
                    to_start.push(i);
                }
                continue;
            };
            if prev_initialized && spec.kind == ContainerKind::RegularInit {
                continue;
            }
            let unknown_msg = || {
                "Init container is in \"unknown\" state, try killing it before restart".to_string()
            };
            if cur.created() {
                // R3: created but never started (the runtime likely failed to start it).
                to_start.push(i);
            } else if cur.unknown() {
                // R3/S7: kill it first, then restart — a regular init under Never kills the pod.
                if spec.kind == ContainerKind::RegularInit
                    && self.pod.restart_policy == RestartPolicy::Never
                {
                    return (false, true);
                }
                kills.push((i, unknown_msg(), KillCause::Unknown, true));
                to_start.push(i);
            } else if cur.running() {
                if spec.kind == ContainerKind::Sidecar {
                    let startup = if spec.probe(ProbeKind::Startup).is_some() {
                        c.probe_result(ProbeKind::Startup)
                    } else {
                        Some(true)
                    };
                    match startup {
                        // S5: not run yet → wait.
                        None => {}
                        Some(false) => {
                            kills.push((
                                i,
                                format!("Init container {} failed startup probe", spec.name),
                                KillCause::Startup,
                                true,
                            ));
                            to_start.push(i);
                        }
                        Some(true) => {
                            if i == n - 1 {
                                initialized = true;
                            } else if !prev_initialized {
                                to_start.push(i + 1);
                            }
                            if cur.image != spec.image {
                                // S10: a started sidecar whose definition changed is restarted
                                // (the kubelet's message has no ", will be restarted").
                                kills.push((
                                    i,
                                    format!("Init container {} definition changed", spec.name),
                                    KillCause::SpecChanged,
                                    true,
                                ));
                                to_start.push(i);
                            } else if c.probe_result(ProbeKind::Liveness) == Some(false) {
                                kills.push((
                                    i,
                                    format!("Init container {} failed liveness probe", spec.name),
                                    KillCause::Liveness,
                                    true,
                                ));
                                to_start.push(i);
                            }
                        }
                    }
                }
            } else if spec.kind == ContainerKind::Sidecar || c.force_restart == Some(cur.id) {
                // S6: a sidecar is restarted after any exit. A regular init container killed for
                // a restart (R3) is restarted whatever its exit code: the kubelet starts it in
                // the same sync as the kill.
                to_start.push(i);
            } else if cur.exit.as_ref().is_some_and(|e| e.code != 0) {
                if self.pod.restart_policy == RestartPolicy::Never {
                    return (false, true);
                }
                to_start.push(i);
            } else if i == n - 1 {
                initialized = true;
            } else {
                to_start.push(i + 1);
            }
            prev_initialized = true;
        }
        if !prev_initialized {
            to_start.push(0);
        }
        to_start.reverse();
        starts.extend(to_start);
        (initialized, false)
    }

    /// container/helpers.go ShouldContainerBeRestarted (sidecars always, until termination).
    pub(crate) fn should_restart(&self, i: usize) -> bool {
        if self.term.is_some() && self.deleted {
            return false;
        }
        let c = &self.ctrs[i];
        let Some(cur) = c.current() else { return true };
        if self.pod.containers[i].kind == ContainerKind::Ephemeral {
            // S12: started only while it has no record at all.
            return false;
        }
        if cur.observed.is_some() && cur.exit.is_none() {
            // R3: Created or Unknown is always restarted, whatever the restart policy.
            return self.term.is_none();
        }
        let Some(exit) = &cur.exit else { return false };
        if self.pod.containers[i].kind == ContainerKind::Sidecar {
            return self.term.is_none();
        }
        match self.pod.restart_policy {
            RestartPolicy::Never => false,
            RestartPolicy::OnFailure => exit.code != 0,
            RestartPolicy::Always => true,
        }
    }

    /// SyncPod's `start` with doBackOff (kuberuntime_manager.go).
    fn try_start(&mut self, i: usize, now: Time) -> StartOutcome {
        let name = self.pod.containers[i].name.clone();
        if self.ctrs[i].retry_at.is_some_and(|t| now < t) {
            return StartOutcome::Waiting;
        }
        let cfg = &self.cfg;
        let fmt_pod = self.pod.format_pod();
        let seq = self.sandbox_seq;
        let spec = &self.pod.containers[i];
        let image = spec.image.clone();
        // Init container records of an earlier sandbox were purged (S9).
        let purged = spec.kind.is_init();
        let c = &mut self.ctrs[i];
        let skip = c.force_restart;
        // The newest exited record, ignoring the instance killed in "the same sync" (R9).
        let last_exit = c
            .instances
            .iter()
            .rev()
            .filter(|x| Some(x.id) != skip && !(purged && x.sandbox != seq))
            .find_map(|x| x.exit.as_ref().map(|e| e.at));
        if let Some(ts) = last_exit {
            // R4: the key includes hash(name, image); a changed image has its own entry.
            let slot = c.backoff.iter().position(|(k, _)| *k == image);
            let live_entry = slot
                .map(|k| c.backoff[k].1)
                .filter(|e| ts.millis_since(e.last_update) <= cfg.backoff_reset_ms);
            if let Some(e) = live_entry {
                if now.millis_since(ts) < e.dur_ms {
                    let until = ts.add_millis(e.dur_ms);
                    let msg = format!(
                        "back-off {} restarting failed container={} pod={}",
                        go_duration(e.dur_ms),
                        name,
                        fmt_pod
                    );
                    c.reason_cache = Some(("CrashLoopBackOff".into(), msg));
                    if c.backoff_until != Some(until) {
                        c.backoff_until = Some(until);
                        self.event(
                            EventType::Warning,
                            "BackOff",
                            format!("Back-off restarting failed container {name} in pod {fmt_pod}"),
                            Some(&name),
                        );
                    }
                    return StartOutcome::Waiting;
                }
            }
            // flowcontrol.Backoff.Next
            let next = match live_entry {
                Some(e) => BackoffEntry {
                    dur_ms: (e.dur_ms.saturating_mul(2)).min(cfg.backoff_max_ms),
                    last_update: now,
                },
                None => BackoffEntry {
                    dur_ms: cfg.backoff_initial_ms,
                    last_update: now,
                },
            };
            match slot {
                Some(k) => c.backoff[k].1 = next,
                None => c.backoff.push((image.clone(), next)),
            }
        }
        c.backoff_until = None;
        c.force_restart = None;
        c.retry_at = None;
        let id = InstanceId(self.next_id);
        self.next_id += 1;
        let spec = &self.pod.containers[i];
        let post_start = spec.post_start;
        let c = &mut self.ctrs[i];
        c.start = Some(PendingStart {
            instance: id,
            phase: StartPhase::Starting,
            post_start,
        });
        c.start_image = image;
        self.pending.push(Action::StartContainer {
            name,
            kind: spec.kind,
            instance: id,
            attempt: c.records,
            post_start,
        });
        StartOutcome::Started
    }

    // ------------------------------------------------------------------------------------------
    // Termination
    // ------------------------------------------------------------------------------------------

    fn begin_termination(&mut self, cause: TermCause, override_s: Option<i64>, now: Time) {
        if let Some(t) = self.term.as_mut() {
            // Already terminating: the grace can only shrink (pod_workers.go calculateEffectiveGracePeriod).
            if let Some(g) = override_s {
                if t.override_s.is_none_or(|o| g < o) {
                    t.override_s = Some(g);
                    self.shrink_kills(g, now);
                }
            }
            return;
        }
        self.term = Some(Termination { cause, override_s });
        // A pending sandbox re-creation (S9) is moot once the pod is torn down.
        self.recreate = None;
        // P11: app liveness/startup workers stop; readiness and sidecar workers keep running.
        for (spec, c) in self.pod.containers.iter().zip(self.ctrs.iter_mut()) {
            if spec.kind == ContainerKind::App {
                for k in [ProbeKind::Liveness, ProbeKind::Startup] {
                    if let Some(w) = c.workers[k.index()].as_mut() {
                        w.stopped = true;
                    }
                }
            }
            c.backoff_until = None;
            c.retry_at = None;
            c.force_restart = None;
        }
        if let Some(g) = override_s {
            self.shrink_kills(g, now);
        }
    }

    /// pod_workers.go UpdatePod: a pod that becomes terminating cancels the sync in progress,
    /// so a postStart hook still running in it fails with the cancelled context (T9's event and
    /// PostStartHookError) and the container is then killed by the pod termination like any
    /// running one — termination never waits for the hook. A late `PostStartDone` is ignored.
    fn cancel_post_start(&mut self, i: usize) {
        let c = &self.ctrs[i];
        let Some(p) = c.start else { return };
        if p.phase != StartPhase::PostStart || c.running().is_none_or(|x| x.id != p.instance) {
            return;
        }
        self.ctrs[i].start = None;
        self.ctrs[i].reason_cache = Some(("PostStartHookError".into(), "context canceled".into()));
        let name = self.pod.containers[i].name.clone();
        self.event(
            EventType::Warning,
            "FailedPostStartHook",
            "PostStartHook failed".into(),
            Some(&name),
        );
    }

    /// A smaller pod-level grace applies to kills already under way (measured from now).
    fn shrink_kills(&mut self, g: i64, now: Time) {
        let limit = now.add_secs(g);
        for c in &mut self.ctrs {
            let Some(k) = c.kill.as_mut() else { continue };
            let elapsed = now.whole_secs_since(k.began);
            k.grace_s = k.grace_s.min(elapsed + g);
            k.phase = match k.phase {
                KillPhase::PreStop { since, deadline } => KillPhase::PreStop {
                    since,
                    deadline: deadline.min(limit),
                },
                KillPhase::WaitTurn { since, deadline } => KillPhase::WaitTurn {
                    since,
                    deadline: deadline.min(limit),
                },
                KillPhase::Signalled { kill_at, killed } => KillPhase::Signalled {
                    kill_at: kill_at.min(limit),
                    killed,
                },
            };
        }
    }

    /// kuberuntime_manager.go killPodWithSyncResult / killContainersWithSyncResult: every running
    /// container is killed at once; with sidecars, ordering applies (T3, T4).
    fn sync_terminating(&mut self, now: Time) {
        let Some(term) = self.term else { return };
        let ordered = self.pod.has_sidecars();
        for i in 0..self.ctrs.len() {
            self.cancel_post_start(i);
        }
        for i in 0..self.ctrs.len() {
            let c = &self.ctrs[i];
            if c.running().is_some() && c.kill.is_none() && c.start.is_none() {
                let grace = term.override_s.unwrap_or(self.pod.tgps);
                self.begin_kill(i, grace, ordered, None, now);
            }
        }
        self.advance_kills(now);
        let busy = self.ctrs.iter().any(|c| c.alive() || c.kill.is_some());
        if busy {
            return;
        }
        if matches!(
            self.sandbox,
            Sandbox::Creating | Sandbox::Ready | Sandbox::Lost
        ) {
            self.pending.push(Action::StopSandbox);
        }
        self.sandbox = Sandbox::Stopped;
        for c in &mut self.ctrs {
            for w in c.workers.iter_mut().flatten() {
                w.stopped = true;
            }
        }
        self.finalize(now);
    }

    /// kuberuntime_container.go killContainer: Killing event, preStop, turn wait, stop.
    fn begin_kill(
        &mut self,
        i: usize,
        grace_s: i64,
        ordered: bool,
        message: Option<String>,
        now: Time,
    ) {
        let Some(inst) = self.ctrs[i].killable().map(|x| x.id) else {
            return;
        };
        let spec = &self.pod.containers[i];
        let name = spec.name.clone();
        let pre_stop = spec.pre_stop;
        let msg = message.unwrap_or_else(|| format!("Stopping container {name}"));
        self.event(EventType::Normal, "Killing", msg, Some(&name));
        let mut kill = Kill {
            instance: inst,
            grace_s,
            ordered,
            began: now,
            phase: KillPhase::Signalled {
                kill_at: now,
                killed: false,
            },
        };
        if pre_stop && grace_s > 0 {
            kill.phase = KillPhase::PreStop {
                since: now,
                deadline: now.add_secs(grace_s),
            };
            self.ctrs[i].kill = Some(kill);
            self.pending.push(Action::RunPreStop {
                name,
                instance: inst,
                timeout_ms: grace_s.saturating_mul(1000),
            });
        } else {
            self.ctrs[i].kill = Some(kill);
            self.after_pre_stop(i, now);
        }
    }

    fn finish_pre_stop(&mut self, i: usize, since: Time, now: Time) {
        if let Some(k) = self.ctrs[i].kill.as_mut() {
            // executePreStopHook returns whole seconds elapsed.
            k.grace_s -= now.whole_secs_since(since);
        }
        self.after_pre_stop(i, now);
    }

    fn after_pre_stop(&mut self, i: usize, now: Time) {
        let Some(k) = self.ctrs[i].kill.as_mut() else {
            return;
        };
        if k.ordered && k.grace_s > 0 {
            k.phase = KillPhase::WaitTurn {
                since: now,
                deadline: now.add_secs(k.grace_s),
            };
            if self.turn_ready(i) {
                self.signal_term(i, now);
            }
        } else {
            self.signal_term(i, now);
        }
    }

    /// kuberuntime_termination_order.go: a sidecar waits for every app container and for the
    /// nearest sidecar declared after it; containers that are not running count as terminated.
    fn turn_ready(&self, i: usize) -> bool {
        if self.pod.containers[i].kind != ContainerKind::Sidecar {
            return true;
        }
        let apps_gone = self.pod.apps().all(|j| !self.ctrs[j].alive());
        let next_sidecar = (i + 1..self.pod.n_init)
            .find(|&j| self.pod.containers[j].kind == ContainerKind::Sidecar);
        apps_gone && next_sidecar.is_none_or(|j| !self.ctrs[j].alive())
    }

    fn signal_term(&mut self, i: usize, now: Time) {
        let name = self.pod.containers[i].name.clone();
        let Some(k) = self.ctrs[i].kill.as_mut() else {
            return;
        };
        if let KillPhase::WaitTurn { since, .. } = k.phase {
            k.grace_s -= now.whole_secs_since(since);
        }
        k.grace_s = k.grace_s.max(MIN_GRACE_S);
        k.phase = KillPhase::Signalled {
            kill_at: now.add_secs(k.grace_s),
            killed: false,
        };
        let instance = k.instance;
        self.pending.push(Action::Signal {
            name,
            instance,
            signal: Signal::Term,
        });
    }

    fn advance_kills(&mut self, now: Time) {
        // Each signal can release a waiter only after an exit, so one pass per call suffices.
        for i in 0..self.ctrs.len() {
            let Some(k) = self.ctrs[i].kill else { continue };
            match k.phase {
                KillPhase::PreStop { since, deadline } if now >= deadline => {
                    self.finish_pre_stop(i, since, now)
                }
                KillPhase::WaitTurn { deadline, .. } if now >= deadline || self.turn_ready(i) => {
                    self.signal_term(i, now)
                }
                KillPhase::Signalled {
                    kill_at,
                    killed: false,
                } if now >= kill_at => {
                    let name = self.pod.containers[i].name.clone();
                    if let Some(k) = self.ctrs[i].kill.as_mut() {
                        k.phase = KillPhase::Signalled {
                            kill_at,
                            killed: true,
                        };
                    }
                    self.pending.push(Action::Signal {
                        name,
                        instance: k.instance,
                        signal: Signal::Kill,
                    });
                }
                _ => {}
            }
        }
    }

    // ------------------------------------------------------------------------------------------
    // Probes
    // ------------------------------------------------------------------------------------------

    /// Whether a tick of this worker could lead to a probe (used to avoid pointless wake-ups).
    fn worker_may_probe(&self, i: usize, kind: ProbeKind) -> bool {
        let c = &self.ctrs[i];
        let Some(cur) = c.running() else { return false };
        let Some(w) = c.worker(kind) else {
            return false;
        };
        if w.instance == Some(cur.id) && w.on_hold {
            return false;
        }
        let started = self.started(i);
        match kind {
            ProbeKind::Startup => !started,
            _ => started,
        }
    }

    /// S3: running and (no startup probe or its published result is Success).
    pub(crate) fn started(&self, i: usize) -> bool {
        let c = &self.ctrs[i];
        if c.running().is_none() {
            return false;
        }
        if self.pod.containers[i].probe(ProbeKind::Startup).is_none() {
            return true;
        }
        c.probe_result(ProbeKind::Startup) == Some(true)
    }

    /// prober/worker.go run/doProbe, one tick at a time.
    fn plan_probes(&mut self, now: Time) {
        for i in 0..self.ctrs.len() {
            let running = self.ctrs[i]
                .running()
                .and_then(|x| x.started_at.map(|s| (x.id, s)));
            for kind in ProbeKind::ALL {
                let started = self.started(i);
                let spec: &CtrSpec = &self.pod.containers[i];
                let Some(pspec) = spec.probe(kind) else {
                    continue;
                };
                let initial_delay = pspec.initial_delay_s;
                let timeout_ms = pspec.timeout_ms;
                let name = spec.name.clone();
                let Some(w) = self.ctrs[i].workers[kind.index()].as_mut() else {
                    continue;
                };
                if w.stopped {
                    continue;
                }
                // Ticks count only while the container runs (doProbe returns early otherwise).
                if let Some((_, started_at)) = running {
                    let from = w.last_eval.max(started_at);
                    if w.next_tick_after(from) <= now {
                        w.pending = true;
                    }
                } else {
                    w.pending = false;
                }
                w.last_eval = now;
                if !w.pending || w.in_flight.is_some() {
                    continue;
                }
                w.pending = false;
                let Some((id, started_at)) = running else {
                    continue;
                };
                if w.instance != Some(id) {
                    // A new container ID: reset to the initial value and resume probing (P8).
                    w.instance = Some(id);
                    w.result = initial_result(kind);
                    w.on_hold = false;
                }
                if w.on_hold {
                    continue;
                }
                // P3: whole seconds since startedAt, truncated.
                if now.whole_secs_since(started_at) < initial_delay {
                    continue;
                }
                // P4: startup gates the others; startup stops once the instance has started.
                if started == (kind == ProbeKind::Startup) {
                    continue;
                }
                w.in_flight = Some(id);
                self.pending.push(Action::RunProbe {
                    name,
                    instance: id,
                    kind,
                    timeout_ms,
                });
            }
        }
    }

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
