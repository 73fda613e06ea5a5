//! The pod worker: one task per pod that feeds observations to the lifecycle engine and
//! carries out its decisions. It owns the pod's container handles; all policy (what to start,
//! probe, kill, restart, and the resulting status) is the engine's. Woken only by events —
//! container exits, probe and hook results, commands, and the engine's next due time.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use k8s_openapi::api::core::v1::{Container, Pod, PodStatus};
use skiff_engine::{
    Action, ContainerKind, EngineConfig, EngineError, Event, Input, InstanceId, NodeFailure,
    PodEngine, PostStart, ProbeKind, Signal, StartFailure, Time,
};
use tokio::sync::{mpsc, oneshot};

use crate::expand::expand_command_only_static;
use crate::launch::{ContainerLaunch, EnvSources, PodIdentity, StartError};
use crate::logs::LogLine;
use crate::probe::{hook_with_deadline, probe_with_deadline, HostProber, ProbeOutcome};
use crate::runtime::{HostContainer, HostRuntime, StopSignal};
use crate::sandbox::{PodObjects, PodSandbox, SandboxOptions};
pub use crate::state::container_id_key;

/// Live log lines one container instance may have queued for the notice stream (held until
/// its `Started` event, or waiting for a slow reader); past this, lines are dropped from the
/// live stream (the CRI log file keeps them all), so a container never blocks on its output.
const LIVE_LINES_PER_INSTANCE: usize = 1024;

/// The wall clock in engine time. The only clock read on the pod's path.
pub fn now() -> Time {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    Time::from_millis(i64::try_from(ms).unwrap_or(i64::MAX))
}

fn to_time(t: SystemTime) -> Time {
    let ms = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    Time::from_millis(i64::try_from(ms).unwrap_or(i64::MAX))
}

/// Requests from outside the pod (CLI signals, `--timeout`, API deletions).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Graceful termination (T1); `grace` overrides terminationGracePeriodSeconds.
    Stop { grace: Option<i64> },
    /// Stop at once: SIGKILL every container now, then finish termination.
    KillNow,
}

/// What the worker reports while the pod runs. A container instance's `Log` lines come after
/// its `Started` event, never before.
#[derive(Debug, Clone)]
pub enum Notice {
    /// A Kubernetes event (Started, Killing, Unhealthy, BackOff, …) at a time.
    Event(Event, Time),
    /// A line a container wrote.
    Log(LogLine),
}

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("pod cannot be run: {0}")]
    Engine(#[from] EngineError),
    #[error("starting the host runtime: {0}")]
    Runtime(#[from] std::io::Error),
}

/// Settings of one pod worker.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Logs and per-container files go under `<data_dir>/pods/…`.
    pub data_dir: PathBuf,
    pub engine: EngineConfig,
    /// ConfigMaps and Secrets the pod may use.
    pub objects: PodObjects,
    /// The `skiff` executable to start the pod's keeper with (`keeper` module: it stops the
    /// pod in order if this process dies); `None`: no keeper (tests, a daemon that adopts).
    pub keeper: Option<PathBuf>,
}

/// Messages the worker's own tasks send back to it.
enum Msg {
    Input(Input),
    SandboxReady(Arc<PodSandbox>),
    /// The node fails the pod: a sandbox that cannot be built (`FailedMount`, …), or a disk
    /// emptyDir over its sizeLimit (eviction, volumes module).
    FailPod(NodeFailure),
    Started {
        name: String,
        instance: InstanceId,
        container: Arc<HostContainer>,
    },
    /// The instance's monitor ended without an exit record (R3/S7 "Unknown").
    Unknown {
        name: String,
        instance: InstanceId,
    },
}

/// Runs `pod` (defaulted, validated, with uid and namespace set) on the host runtime until it
/// is terminal and every process of it is gone; returns the final status.
pub async fn run_pod(
    pod: Pod,
    cfg: WorkerConfig,
    mut commands: mpsc::Receiver<Command>,
    notices: mpsc::UnboundedSender<Notice>,
) -> Result<PodStatus, WorkerError> {
    let runtime = HostRuntime::new()?;
    let prober = HostProber::new()?;
    let mut engine_cfg = cfg.engine.clone();
    if engine_cfg.container_id_key == 0 {
        engine_cfg.container_id_key = container_id_key(&pod);
    }
    let id_key = engine_cfg.container_id_key;
    let mut engine = PodEngine::new(&pod, engine_cfg, now())?;
    let identity = PodIdentity {
        namespace: pod
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into()),
        name: pod.metadata.name.clone().unwrap_or_default(),
        uid: pod.metadata.uid.clone().unwrap_or_default(),
        pod_ip: Some("127.0.0.1".into()),
        host_ip: Some("127.0.0.1".into()),
        node_name: pod.spec.as_ref().and_then(|s| s.node_name.clone()),
        service_account_name: pod
            .spec
            .as_ref()
            .and_then(|s| s.service_account_name.clone()),
    };
    let specs: HashMap<String, Container> = pod
        .spec
        .iter()
        .flat_map(|s| {
            s.init_containers
                .iter()
                .flatten()
                .chain(s.containers.iter())
        })
        .map(|c| (c.name.clone(), c.clone()))
        .collect();

    let (tx, mut rx) = mpsc::unbounded_channel::<Msg>();

    let identity_namespace = identity.namespace.clone();
    let cfg_keeper = cfg.keeper.clone();
    let mut ctx = Ctx {
        runtime,
        prober,
        pod: Arc::new(pod.clone()),
        identity,
        specs,
        sandbox_options: Arc::new(SandboxOptions {
            data_dir: cfg.data_dir.clone(),
            objects: cfg
                .objects
                .with_cluster_identity(&cfg.data_dir, &identity_namespace),
        }),
        sandbox: None,
        data_dir: cfg.data_dir,
        tx,
        notices,
        log_gates: HashMap::new(),
        awaiting_started: HashMap::new(),
        log_forwarders: Vec::new(),
        containers: HashMap::new(),
        all_containers: Vec::new(),
        unknown: HashMap::new(),
    };
    let mut commands_open = true;
    // The pod's status on disk for `skiff get`/`skiff logs`, and the lock that says it runs
    // (store module). Without it the pod still runs.
    let qos = pod
        .spec
        .as_ref()
        .map(|s| skiff_model::resources::qos_class(s).as_str().to_string());
    let mut record =
        match crate::store::PodRecorder::create(&ctx.data_dir, &ctx.identity.dir_name(), &pod) {
            Ok(r) => Some(r),
            Err(e) => {
                tracing::warn!("recording the pod in the data dir: {e}");
                None
            }
        };
    let keeper = match (&cfg_keeper, &record) {
        (Some(program), Some(r)) => {
            match crate::keeper::KeeperHandle::start(program, r.dir(), ctx.runtime.reaper()) {
                Ok(k) => Some(k),
                Err(e) => {
                    tracing::warn!(
                        "starting the pod's keeper (nobody stops the pod if skiff is killed): {e}"
                    );
                    None
                }
            }
        }
        _ => None,
    };

    loop {
        let t = now();
        for action in engine.plan(t) {
            if let (
                Some(r),
                Action::StartContainer {
                    instance, attempt, ..
                },
            ) = (record.as_mut(), &action)
            {
                r.instance(instance.container_id(id_key), *attempt);
            }
            ctx.execute(action, t);
        }
        if let Some(r) = record.as_mut() {
            let mut st = engine.status(now());
            st.qos_class.clone_from(&qos);
            r.update(&st);
        }
        if engine.is_terminal() && ctx.containers.values().all(|c| c.main_exited()) {
            break;
        }
        let sleep_for = engine
            .wake_at()
            .map(|w| Duration::from_millis(u64::try_from(w.millis_since(now())).unwrap_or(0)));
        tokio::select! {
            msg = rx.recv() => {
                let Some(msg) = msg else { break };
                ctx.receive(&mut engine, msg);
                // Take everything already queued before planning again.
                while let Ok(msg) = rx.try_recv() {
                    ctx.receive(&mut engine, msg);
                }
            }
            cmd = commands.recv(), if commands_open => match cmd {
                Some(Command::Stop { grace }) => engine.handle(Input::StopRequested { grace }, now()),
                Some(Command::KillNow) => engine.handle(Input::KillNow, now()),
                None => commands_open = false,
            },
            _ = sleep_opt(sleep_for) => engine.handle(Input::Tick, now()),
        }
    }

    // Nothing is left behind: every tracking group is emptied and removed, then the sandbox.
    for c in &ctx.all_containers {
        c.cleaned_up().await;
    }
    ctx.containers.clear();
    ctx.all_containers.clear();
    if let Some(sandbox) = ctx.sandbox.take() {
        match Arc::try_unwrap(sandbox) {
            Ok(sandbox) => sandbox.destroy().await,
            Err(_) => {
                tracing::warn!("pod sandbox still in use at the end of the pod; not destroyed")
            }
        }
    }
    let mut status = engine.status(now());
    // ST4: the pod's 12 KiB of termination messages (status manager, termination module).
    let spec_containers = ctx.pod.spec.as_ref().map_or(0, |s| {
        s.containers.len()
            + s.init_containers.as_ref().map_or(0, Vec::len)
            + s.ephemeral_containers.as_ref().map_or(0, Vec::len)
    });
    crate::termination::cap_pod_messages(&mut status, spec_containers);
    // The engine leaves the QoS class to its owner, the model (RES4).
    status.qos_class = qos;
    if let Some(r) = record.take() {
        r.finish(&status);
    }
    if let Some(k) = keeper {
        k.release();
    }
    // Dropping the gates releases lines of an instance whose Started event never came.
    let forwarders = std::mem::take(&mut ctx.log_forwarders);
    drop(ctx);
    for f in forwarders {
        let _ = f.await;
    }
    Ok(status)
}

async fn sleep_opt(d: Option<Duration>) {
    match d {
        Some(d) => tokio::time::sleep(d).await,
        None => std::future::pending().await,
    }
}

struct Ctx {
    runtime: HostRuntime,
    prober: HostProber,
    pod: Arc<Pod>,
    identity: PodIdentity,
    sandbox_options: Arc<SandboxOptions>,
    sandbox: Option<Arc<PodSandbox>>,
    specs: HashMap<String, Container>,
    data_dir: PathBuf,
    tx: mpsc::UnboundedSender<Msg>,
    notices: mpsc::UnboundedSender<Notice>,
    /// Per instance: opening it lets the instance's live log lines through (see
    /// [`Ctx::release_logs`]).
    log_gates: HashMap<InstanceId, oneshot::Sender<()>>,
    /// The instance whose `Started` event the engine is about to emit, by container name.
    awaiting_started: HashMap<String, InstanceId>,
    /// One task per instance forwarding its live lines to `notices`.
    log_forwarders: Vec<tokio::task::JoinHandle<()>>,
    /// Live instances by id.
    containers: HashMap<InstanceId, Arc<HostContainer>>,
    /// Every instance ever started, to await their cleanup at the end.
    all_containers: Vec<Arc<HostContainer>>,
    /// Instances whose monitor ended without a record, until the engine's kill is answered.
    unknown: HashMap<InstanceId, String>,
}

impl Ctx {
    fn receive(&mut self, engine: &mut PodEngine, msg: Msg) {
        match msg {
            Msg::Input(input) => engine.handle(input, now()),
            Msg::Started {
                name,
                instance,
                container,
            } => {
                let at = to_time(container.started_at());
                self.awaiting_started.insert(name.clone(), instance);
                self.containers.insert(instance, container.clone());
                self.all_containers.push(container);
                engine.handle(Input::ContainerStarted { name, instance, at }, now());
            }
            Msg::Unknown { name, instance } => {
                self.unknown.insert(instance, name.clone());
                engine.handle(
                    Input::ContainerObserved {
                        name,
                        instance,
                        state: skiff_engine::ObservedState::Unknown,
                        attempt: None,
                    },
                    now(),
                );
            }
            Msg::SandboxReady(sandbox) => {
                // Volumes: setup warnings, and the sizeLimit watch (volumes module).
                for (reason, message) in sandbox.volumes().warnings() {
                    self.warn(reason, message, None);
                }
                if let Some(watch) = sandbox.volumes().size_watch() {
                    let tx = self.tx.clone();
                    tokio::spawn(async move {
                        loop {
                            tokio::time::sleep(crate::volumes::SizeWatch::PERIOD).await;
                            if tx.is_closed() {
                                return;
                            }
                            let w = watch.clone();
                            if let Ok(Some(msg)) =
                                tokio::task::spawn_blocking(move || w.exceeded()).await
                            {
                                let _ =
                                    tx.send(Msg::FailPod(NodeFailure::Evicted { message: msg }));
                                return;
                            }
                        }
                    });
                }
                self.sandbox = Some(sandbox);
                engine.handle(Input::SandboxReady, now());
            }
            // The engine decides the event, the pod's reason and the grace per cause.
            Msg::FailPod(failure) => engine.handle(Input::FailPod { failure }, now()),
        }
    }

    /// A Warning event now.
    fn warn(&self, reason: &str, message: &str, container: Option<&str>) {
        let event = Event {
            type_: skiff_engine::EventType::Warning,
            reason: reason.to_string(),
            message: message.to_string(),
            container: container.map(str::to_string),
        };
        let _ = self.notices.send(Notice::Event(event, now()));
    }

    fn send(&self, input: Input) {
        let _ = self.tx.send(Msg::Input(input));
    }

    fn execute(&mut self, action: Action, at: Time) {
        match action {
            Action::CreateSandbox => self.create_sandbox(),
            // The sandbox is destroyed once every container process is gone (end of `run_pod`).
            Action::StopSandbox => {}
            Action::Event(e) => {
                let started = (e.reason == "Started")
                    .then(|| e.container.clone())
                    .flatten();
                let _ = self.notices.send(Notice::Event(e, at));
                if let Some(name) = started {
                    self.release_logs(&name);
                }
            }
            Action::StartContainer {
                name,
                kind,
                instance,
                attempt,
                post_start,
            } => self.start(name, kind, instance, attempt, post_start),
            Action::RunProbe {
                name,
                instance,
                kind,
                timeout_ms,
            } => self.probe(name, instance, kind, timeout_ms),
            Action::RunPreStop {
                name,
                instance,
                timeout_ms,
            } => self.pre_stop(name, instance, timeout_ms),
            Action::Signal {
                instance, signal, ..
            } => {
                if let Some(name) = self.unknown.remove(&instance) {
                    // Already killed by the runtime when its monitor was found gone.
                    self.send(Input::ContainerExited {
                        name,
                        instance,
                        exit_code: 137,
                        reason: Some("ContainerStatusUnknown".into()),
                        message: Some(
                            "the container's monitor was killed; how the container ended is unknown"
                                .into(),
                        ),
                        at,
                    });
                    return;
                }
                if let Some(c) = self.containers.get(&instance) {
                    let sig = match signal {
                        Signal::Term => StopSignal::Term,
                        Signal::Kill => StopSignal::Kill,
                    };
                    if let Err(e) = c.signal(sig) {
                        tracing::warn!("{e}");
                    }
                }
            }
        }
    }

    /// Lets the live log lines of `name`'s just-started instance through, now that its
    /// `Started` event is in the notice stream: the runtime pumps output from the moment the
    /// process exists, before the engine has even heard of the start, so without this gate
    /// a fast container's first lines would come before its Started event.
    fn release_logs(&mut self, name: &str) {
        if let Some(instance) = self.awaiting_started.remove(name) {
            if let Some(gate) = self.log_gates.remove(&instance) {
                let _ = gate.send(());
            }
        }
    }

    /// The live log channel of a new instance, and its forwarder held at the gate.
    fn live_logs(&mut self, instance: InstanceId) -> mpsc::Sender<LogLine> {
        let (line_tx, mut line_rx) = mpsc::channel::<LogLine>(LIVE_LINES_PER_INSTANCE);
        let (gate_tx, gate_rx) = oneshot::channel::<()>();
        self.log_gates.insert(instance, gate_tx);
        let notices = self.notices.clone();
        self.log_forwarders.push(tokio::spawn(async move {
            // An instance that never started closes its channel without a line: done.
            let Some(first) = line_rx.recv().await else {
                return;
            };
            // Opened, or dropped (the pod ended first): either way, forward from here on.
            let _ = gate_rx.await;
            let _ = notices.send(Notice::Log(first));
            while let Some(line) = line_rx.recv().await {
                let _ = notices.send(Notice::Log(line));
            }
        }));
        // What finished instances left is dropped as they come and go (restart loops).
        self.log_forwarders.retain(|f| !f.is_finished());
        self.log_gates.retain(|_, g| !g.is_closed());
        line_tx
    }

    fn create_sandbox(&self) {
        let pod = self.pod.clone();
        let identity = self.identity.clone();
        let opts = self.sandbox_options.clone();
        let tx = self.tx.clone();
        tokio::spawn(async move {
            let msg = match PodSandbox::create(&pod, &identity, &opts).await {
                Ok(s) => Msg::SandboxReady(Arc::new(s)),
                Err(e) => Msg::FailPod(NodeFailure::SandboxFailed {
                    reason: e.reason,
                    message: e.message,
                }),
            };
            let _ = tx.send(msg);
        });
    }

    fn start(
        &mut self,
        name: String,
        _kind: ContainerKind,
        instance: InstanceId,
        attempt: i32,
        post_start: Option<PostStart>,
    ) {
        let Some(spec) = self.specs.get(&name).cloned() else {
            self.send(Input::StartFailed {
                name,
                instance,
                failure: StartFailure::Create {
                    message: "container not in the pod spec".into(),
                },
            });
            return;
        };
        let restart_count = u32::try_from(attempt).unwrap_or(0);
        let launch = match ContainerLaunch::from_container(
            &spec,
            &self.identity,
            &self.data_dir,
            restart_count,
            &EnvSources {
                objects: &self.sandbox_options.objects,
                pod: Some(&self.pod),
            },
        ) {
            Ok(mut l) => {
                l.instance = instance.0;
                for (reason, message) in &l.warnings {
                    self.warn(reason, message, Some(&name));
                }
                l
            }
            Err(e) => {
                self.send(start_failed(name, instance, &e));
                return;
            }
        };
        let setup = match &self.sandbox {
            Some(sandbox) => sandbox.container_setup(&spec, &launch),
            None => Err(StartError::Config("the pod sandbox is not ready".into())),
        };
        let setup = match setup {
            Ok(s) => s,
            Err(e) => {
                self.send(start_failed(name, instance, &e));
                return;
            }
        };
        let runtime = self.runtime.clone();
        let prober = self.prober.clone();
        let tx = self.tx.clone();
        let log_tx = self.live_logs(instance);
        tokio::spawn(async move {
            let container = match runtime.start(launch, setup, Some(log_tx)).await {
                Ok(c) => Arc::new(c),
                Err(e) => {
                    let _ = tx.send(Msg::Input(start_failed(name, instance, &e)));
                    return;
                }
            };
            let _ = tx.send(Msg::Started {
                name: name.clone(),
                instance,
                container: container.clone(),
            });
            // The exit watcher is spawned after `Started` was queued, so the engine always sees
            // the start first.
            let waiter = container.clone();
            let exit_tx = tx.clone();
            let exit_name = name.clone();
            tokio::spawn(async move {
                let exit = waiter.wait().await;
                if exit.status_unknown {
                    // R3/S7: the monitor was killed, so how the container ended is unknown;
                    // the runtime has killed everything of it. The engine kills an Unknown
                    // instance first; its Signal is answered with the exit (`Ctx::execute`).
                    let _ = exit_tx.send(Msg::Unknown {
                        name: exit_name,
                        instance,
                    });
                    return;
                }
                let _ = exit_tx.send(Msg::Input(Input::ContainerExited {
                    name: exit_name,
                    instance,
                    exit_code: exit.exit_code,
                    // ST4: from the cgroup's OOM events (runtime `ContainerExit::oom_killed`).
                    reason: exit.oom_killed.then(|| "OOMKilled".to_string()),
                    message: (!exit.message.is_empty()).then_some(exit.message),
                    at: to_time(exit.finished_at),
                }));
            });
            if let Some(PostStart { timeout_ms }) = post_start {
                let handler = spec.lifecycle.as_ref().and_then(|l| l.post_start.clone());
                let limit = Duration::from_millis(u64::try_from(timeout_ms).unwrap_or(0));
                let (ok, message) = match handler {
                    Some(h) => match hook_with_deadline(
                        &prober,
                        h,
                        container.exec_context().clone(),
                        limit,
                    )
                    .await
                    {
                        Ok(()) => (true, String::new()),
                        Err(m) => (false, m),
                    },
                    None => (true, String::new()),
                };
                let _ = tx.send(Msg::Input(Input::PostStartDone {
                    name,
                    instance,
                    ok,
                    message,
                }));
            }
        });
    }

    fn probe(&self, name: String, instance: InstanceId, kind: ProbeKind, timeout_ms: i64) {
        let Some(container) = self.containers.get(&instance).cloned() else {
            // The instance is gone: the engine decides what that means (P12).
            self.send(Input::ProbeTargetGone {
                name,
                instance,
                kind,
            });
            return;
        };
        let Some(spec) = self.specs.get(&name) else {
            return;
        };
        let probe = match kind {
            ProbeKind::Liveness => spec.liveness_probe.clone(),
            ProbeKind::Readiness => spec.readiness_probe.clone(),
            ProbeKind::Startup => spec.startup_probe.clone(),
        };
        let Some(mut probe) = probe else { return };
        // The kubelet expands exec probe commands with the container's static env (prober.go
        // runProbe); hooks stay unexpanded.
        if let Some(exec) = probe.exec.as_mut() {
            exec.command = exec.command.as_deref().map(|argv| {
                expand_command_only_static(argv, spec.env.as_deref().unwrap_or_default())
            });
        }
        let prober = self.prober.clone();
        let tx = self.tx.clone();
        let limit = Duration::from_millis(u64::try_from(timeout_ms).unwrap_or(1000));
        let exec_ctx = container.exec_context().clone();
        tokio::spawn(async move {
            // The prober honours timeoutSeconds itself; the hard deadline holds even if it
            // blocks (the attempt runs on a thread of its own).
            let r = probe_with_deadline(&prober, probe, exec_ctx, limit).await;
            let (ok, output) = (r.outcome == ProbeOutcome::Success, r.output);
            let _ = tx.send(Msg::Input(Input::ProbeResult {
                name,
                instance,
                kind,
                ok,
                output,
            }));
        });
    }

    fn pre_stop(&self, name: String, instance: InstanceId, timeout_ms: i64) {
        let handler = self
            .specs
            .get(&name)
            .and_then(|c| c.lifecycle.as_ref())
            .and_then(|l| l.pre_stop.clone());
        let (Some(handler), Some(container)) = (handler, self.containers.get(&instance).cloned())
        else {
            self.send(Input::PreStopDone {
                name,
                instance,
                ok: true,
            });
            return;
        };
        let prober = self.prober.clone();
        let tx = self.tx.clone();
        let limit = Duration::from_millis(u64::try_from(timeout_ms).unwrap_or(0));
        tokio::spawn(async move {
            let exec_ctx = container.exec_context().clone();
            let ok = match hook_with_deadline(&prober, handler, exec_ctx, limit).await {
                Ok(()) => true,
                Err(e) => {
                    tracing::info!(container = %name, "preStop hook failed: {e}");
                    false
                }
            };
            let _ = tx.send(Msg::Input(Input::PreStopDone { name, instance, ok }));
        });
    }
}

fn start_failed(name: String, instance: InstanceId, e: &StartError) -> Input {
    Input::StartFailed {
        name,
        instance,
        failure: e.failure(),
    }
}
