//! The pod worker: one task per pod that feeds observations to the lifecycle engine and
//! carries out its decisions. It owns the pod's container handles; all policy (what to start,
//! probe, kill, restart, and the resulting status) is the engine's. Woken only by events —
//! container exits, probe and hook results, commands, and the engine's next due time.
//!
//! It runs on four seams: a [`RuntimeService`] (sandboxes and containers), a [`ProbeService`]
//! (probes and hooks in those containers), an [`ImageService`] (the images containers start
//! from) and a [`Clock`]. [`run_pod`] picks the runtime by the pod's `runtimeClassName` and
//! runs on the wall clock; [`run_pod_with`] takes all four (the worker tests: a recording fake
//! runtime and tokio's paused time).
//!
//! Before a container is created, its image step runs as the kubelet's `EnsureImageExists`
//! does: look the image up, and per the engine's [`skiff_engine::ImagePlan`] use it, pull it
//! (in a task: the pod's probes, exits and other work go on meanwhile; the node's pulls take
//! turns in its [`PullQueue`]) or fail the start; what happened goes to the engine, which
//! makes the events, statuses and back-off. An image service that answers "present, no ID"
//! ([`NoImages`], the `host` class) means there is no image step.
//!
//! A worker adopts what the runtime already has of its pod ([`RuntimeService::list_pod`]): the
//! engine is rebuilt from the instances found (`adopt`), running ones are watched, unknown ones
//! killed first (R3/S7), and restart counts continue.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use k8s_openapi::api::core::v1::{Container, Pod, PodStatus};
use skiff_engine::images::{self as image_policy, ImageStep};
use skiff_engine::{
    Action, ContainerKind, EngineConfig, EngineError, Event, ImagePlan, Input, InstanceId,
    NodeFailure, PodEngine, PostStart, ProbeKind, PullStats, ResolvedImage, Signal, StartFailure,
    Time,
};
use skiff_timeline::{Recorder, Why};
use tokio::sync::{mpsc, oneshot};

use crate::clock::{Clock, WallClock};
use crate::cri::host::{HostCri, HostProbes};
use crate::cri::{
    FoundContainer, FoundState, HookRequest, ImageError, ImageInfo, ImageService, ProbeRequest,
    ProbeService, ReadySandbox, RuntimeClass, RuntimeClassError, RuntimeClasses, RuntimeService,
    SandboxConfig, SandboxFailure, StopSignal,
};
use crate::expand::expand_command_only_static;
pub use crate::images::{NoImages, PullQueue};
use crate::launch::{ContainerLaunch, EnvSources, PodIdentity, StartError};
use crate::logs::LogLine;
use crate::probe::ProbeOutcome;
use crate::sandbox::{PodObjects, SandboxOptions};
pub use crate::state::container_id_key;
use crate::timeline::TimelineHandle;

/// Live log lines one container instance may have queued for the notice stream (held until
/// its `Started` event, or waiting for a slow reader); past this, lines are dropped from the
/// live stream (the CRI log file keeps them all), so a container never blocks on its output.
const LIVE_LINES_PER_INSTANCE: usize = 1024;

/// How stale `timeline.json` of a running pod may be (the daemon serves the live record).
const TIMELINE_WRITE_EVERY_MS: i64 = 2_000;

/// The wall clock in engine time (the production [`Clock`]).
pub fn now() -> Time {
    WallClock.now()
}

fn to_time(t: SystemTime) -> Time {
    crate::clock::system_time(t)
}

/// Requests from outside the pod (CLI signals, `--timeout`, API deletions and updates).
#[derive(Debug)]
pub enum Command {
    /// Graceful termination (T1); `grace` overrides terminationGracePeriodSeconds. `why`
    /// (deletion, `--timeout`, a signal to skiff) is what the pod's timeline shows.
    Stop { grace: Option<i64>, why: Why },
    /// Stop at once: SIGKILL every container now, then finish termination.
    KillNow,
    /// The pod's spec changed (an API update): the engine's `update_spec` takes what the API
    /// server allows on a running pod (an image change restarts only that container, S10);
    /// a refusal changes nothing and is reported as a Warning event (`UpdateRejected`).
    Update(Box<Pod>),
    /// Keep `table` current with the pod's container instances (what `kubectl exec` and
    /// `port-forward` run through; the streaming itself runs outside the worker). The pod
    /// manager sends it first.
    ExecTable(crate::exec::ExecTable),
    /// Record the pod's timeline into `handle` (whoever holds it reads the pod's life so
    /// far); the worker moves what it recorded until now into it.
    Timeline(TimelineHandle),
}

/// Why the worker has no exec target (defined beside the exec table, which answers it).
pub use crate::exec::ExecRefusal;

/// A container instance as an exec source (see [`crate::exec::ExecTable`]).
struct ExecSourceOf<R: RuntimeService> {
    runtime: Arc<R>,
    container: R::Container,
}

impl<R: RuntimeService> crate::exec::ExecSource for ExecSourceOf<R> {
    fn target(&self) -> Option<crate::exec::ExecTarget> {
        if !self.runtime.status(&self.container).running {
            return None;
        }
        self.runtime.exec_target(&self.container)
    }
}

/// What the worker reports while the pod runs. A container instance's `Log` lines come after
/// its `Started` event, never before.
#[derive(Debug, Clone)]
pub enum Notice {
    /// A Kubernetes event (Started, Killing, Unhealthy, BackOff, …) at a time.
    Event(Event, Time),
    /// A line a container wrote.
    Log(LogLine),
    /// The pod's status changed (sent on every change, never twice the same in a row).
    Status(Box<PodStatus>),
    /// A probe ran (for the daemon's `prober_probe_total` and `prober_probe_duration_seconds`).
    Probe(ProbeRun),
}

/// One probe run: which, its outcome, how long it took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeRun {
    pub container: String,
    pub kind: ProbeKind,
    pub outcome: ProbeOutcome,
    pub took: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("pod cannot be run: {0}")]
    Engine(#[from] EngineError),
    #[error("starting the host runtime: {0}")]
    Runtime(#[from] std::io::Error),
    #[error("{0}")]
    RuntimeClass(#[from] RuntimeClassError),
    #[error("opening the image store: {0}")]
    Images(#[from] skiff_image::StoreError),
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
    /// The node's pull queue ([`PullQueue::node`]: one pull at a time for every pod of the
    /// process, the kubelet's `serializeImagePulls` default).
    pub image_pulls: PullQueue,
    /// The pod outlives this process (`skiff serve`): its sandbox is not tied to the process
    /// (the namespace holder stays when it dies, the node's crash recovery leaves the pod
    /// alone) so that the next one adopts it whole. `skiff run`: false (its keeper stops
    /// the pod instead).
    pub persistent: bool,
}

/// Messages the worker's own tasks send back to it.
enum Msg<R: RuntimeService> {
    Input(Input),
    SandboxReady(ReadySandbox<R::Sandbox>),
    /// The node fails the pod: a sandbox that cannot be built (`FailedMount`, …), or a disk
    /// emptyDir over its sizeLimit (eviction, volumes module).
    FailPod(NodeFailure),
    Started {
        name: String,
        instance: InstanceId,
        container: R::Container,
    },
    /// The instance's monitor ended without an exit record (R3/S7 "Unknown").
    Unknown {
        name: String,
        instance: InstanceId,
    },
    /// A pull the image step started has ended; the start goes on (or fails) from here.
    Pulled {
        start: PendingStart,
        result: Result<(ImageInfo, PullStats), ImageError>,
    },
}

/// A start waiting for its image: what creating and starting it needs afterwards.
#[derive(Debug, Clone)]
struct PendingStart {
    name: String,
    instance: InstanceId,
    attempt: i32,
    post_start: Option<PostStart>,
    image: String,
}

/// Runs `pod` (defaulted, validated, with uid and namespace set) on the runtime its
/// `runtimeClassName` names, on the wall clock, until it is terminal and every process of it
/// is gone; returns the final status.
pub async fn run_pod(
    pod: Pod,
    cfg: WorkerConfig,
    commands: mpsc::Receiver<Command>,
    notices: mpsc::UnboundedSender<Notice>,
) -> Result<PodStatus, WorkerError> {
    // `host` pods use no images: no store is opened for them.
    if pod
        .spec
        .as_ref()
        .and_then(|s| s.runtime_class_name.as_deref())
        == Some(RuntimeClasses::HOST)
    {
        return run_pod_on(
            Arc::new(crate::oci::cri::NoImageStore),
            pod,
            cfg,
            commands,
            notices,
        )
        .await;
    }
    let images = crate::cri::images::StoreImages::open(&cfg.data_dir)?;
    run_pod_on(Arc::new(images), pod, cfg, commands, notices).await
}

/// [`run_pod`] with `images` as the node's image store (OCI runtime classes take their
/// containers' root filesystems from it).
pub async fn run_pod_on<I: crate::cri::ImageService>(
    images: Arc<I>,
    pod: Pod,
    cfg: WorkerConfig,
    commands: mpsc::Receiver<Command>,
    notices: mpsc::UnboundedSender<Notice>,
) -> Result<PodStatus, WorkerError> {
    let name = pod.spec.as_ref().and_then(|s| s.runtime_class_name.clone());
    // `host` needs no OCI runtime: no detection (a check container per installed runtime).
    let class = if name.as_deref() == Some(RuntimeClasses::HOST) {
        RuntimeClass::Host
    } else {
        tokio::task::spawn_blocking(RuntimeClasses::detect)
            .await
            .unwrap_or_else(|_| RuntimeClasses::host_only())
            .select(name.as_deref())?
    };
    match class {
        RuntimeClass::Host => {
            let runtime = HostCri::new()?;
            let probes = HostProbes::new()?;
            run_pod_with(
                runtime, probes, NoImages, WallClock, pod, cfg, commands, notices,
            )
            .await
        }
        RuntimeClass::Oci(rt) => {
            let runtime = crate::oci::cri::OciCri::new(rt, images.clone())?;
            let probes = crate::oci::cri::OciProbes::new()?;
            run_pod_with(
                runtime, probes, images, WallClock, pod, cfg, commands, notices,
            )
            .await
        }
    }
}

/// [`run_pod`] on the given runtime, prober, image service and clock.
#[allow(clippy::too_many_arguments)] // the four seams, the pod and its channels
pub async fn run_pod_with<R, P, I, C>(
    runtime: R,
    probes: P,
    images: I,
    clock: C,
    pod: Pod,
    cfg: WorkerConfig,
    mut commands: mpsc::Receiver<Command>,
    notices: mpsc::UnboundedSender<Notice>,
) -> Result<PodStatus, WorkerError>
where
    R: RuntimeService,
    P: ProbeService<R::Container>,
    I: ImageService,
    C: Clock,
{
    let runtime = Arc::new(runtime);
    let mut engine_cfg = cfg.engine.clone();
    if engine_cfg.container_id_key == 0 {
        engine_cfg.container_id_key = container_id_key(&pod);
    }
    let id_key = engine_cfg.container_id_key;
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

    let (tx, mut rx) = mpsc::unbounded_channel::<Msg<R>>();

    let identity_namespace = identity.namespace.clone();
    let cfg_keeper = cfg.keeper.clone();
    let sandbox_options = Arc::new(SandboxOptions {
        data_dir: cfg.data_dir.clone(),
        objects: cfg
            .objects
            .with_cluster_identity(&cfg.data_dir, &identity_namespace),
        persistent: cfg.persistent,
    });
    let pod_arc = Arc::new(pod.clone());
    // What the runtime already has of this pod (a worker taking over from an earlier one).
    let listing = runtime.list_pod(&SandboxConfig {
        pod: pod_arc.clone(),
        identity: identity.clone(),
        options: sandbox_options.clone(),
    });
    let mut found: Vec<FoundContainer> = Vec::with_capacity(listing.containers.len());
    let mut handles = Vec::with_capacity(listing.containers.len());
    for l in listing.containers {
        let mut f = l.found;
        // A running instance the runtime cannot reach reports no exit: its state is unknown.
        if f.state == FoundState::Running && l.handle.is_none() {
            f.state = FoundState::Unknown;
        }
        found.push(f);
        handles.push(l.handle);
    }
    let engine_cfg = crate::adopt::engine_config(engine_cfg, &found);
    let clock_start = clock.now();
    // A pod taken over from an earlier worker (a daemon restart) goes on with its record.
    let prior_timeline = (!found.is_empty())
        .then(|| {
            crate::store::read_timeline(
                &crate::store::pods_dir(&cfg.data_dir).join(identity.dir_name()),
            )
            .ok()
        })
        .flatten();
    let mut engine = PodEngine::new(&pod, engine_cfg, clock_start)?;
    crate::adopt::replay(&mut engine, &found, clock.now());
    // Adopted running instances keep the readiness (and startedness) last persisted until
    // their probes say otherwise (images-serve-facts §4.3: the kubelet's flip is a bug).
    crate::adopt::restore_probes(
        &mut engine,
        &found,
        pod.status.as_ref(),
        id_key,
        clock.now(),
    );

    let mut ctx = Ctx {
        runtime,
        probes: Arc::new(probes),
        images: Arc::new(images),
        image_pulls: cfg.image_pulls.clone(),
        pulls: HashMap::new(),
        clock,
        pod: pod_arc,
        identity,
        specs,
        sandbox_options,
        sandbox: None,
        sandbox_watch: None,
        retired_sandboxes: Vec::new(),
        adopted_sandbox: None,
        sandbox_gone: false,
        replayed: found.iter().map(|f| f.name.clone()).collect(),
        data_dir: cfg.data_dir,
        tx,
        notices,
        log_gates: HashMap::new(),
        awaiting_started: HashMap::new(),
        log_forwarders: Vec::new(),
        containers: HashMap::new(),
        all_containers: Vec::new(),
        unknown: HashMap::new(),
        names: HashMap::new(),
        exec_table: None,
        timeline: TimelineHandle::new(prior_timeline.map_or_else(
            || Recorder::new(&pod, clock_start),
            |tl| Recorder::resume(&pod, tl, clock_start),
        )),
        timeline_dirty: false,
        timeline_written: clock_start,
    };
    ctx.adopt(listing.sandbox, &found, handles);
    let mut commands_open = true;
    let mut first_plan = true;
    // The last status sent as a notice (and written to the recorder).
    let mut last_status: Option<PodStatus> = None;
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
    if let Some(r) = record.as_mut() {
        for f in &found {
            r.instance(
                InstanceId(f.instance).container_id(id_key),
                i32::try_from(f.attempt).unwrap_or(i32::MAX),
            );
        }
    }
    // Started beside the pod, not before it: spawning it waits for the exec of the skiff
    // binary, which the pod's own start need not wait for.
    let keeper = match (&cfg_keeper, &record) {
        (Some(program), Some(r)) => {
            let (program, dir) = (program.clone(), r.dir().to_path_buf());
            Some(tokio::task::spawn_blocking(move || {
                crate::reaper::Reaper::global()
                    .and_then(|reaper| crate::keeper::KeeperHandle::start(&program, &dir, &reaper))
            }))
        }
        _ => None,
    };

    // Commands sent before the worker ran (a daemon stopping an orphan it just handed over,
    // a deletion already under way) count before the first plan: a pod that is being stopped
    // starts nothing new.
    while let Ok(cmd) = commands.try_recv() {
        ctx.command(&mut engine, &mut record, last_status.as_ref(), cmd);
    }

    loop {
        let t = ctx.now();
        let history = std::mem::take(&mut ctx.replayed);
        for action in engine.plan(t) {
            // The adopted instances' Created/Started events are history, not news.
            if let Action::Event(e) = &action {
                if matches!(e.reason.as_str(), "Created" | "Started")
                    && e.container.as_ref().is_some_and(|c| history.contains(c))
                {
                    continue;
                }
            }
            if let (
                Some(r),
                Action::StartContainer {
                    instance, attempt, ..
                },
            ) = (record.as_mut(), &action)
            {
                r.instance(instance.container_id(id_key), *attempt);
            }
            ctx.timeline.with(|r| r.action(&action, t));
            ctx.timeline_dirty = true;
            ctx.execute(action, t);
        }
        if std::mem::take(&mut first_plan) {
            // An adopted sandbox is handed over at once: its readiness (and what follows from
            // it) is part of the first status, so an adopted pod's conditions do not flicker.
            let mut took = false;
            while let Ok(msg) = rx.try_recv() {
                ctx.receive(&mut engine, msg);
                took = true;
            }
            if took {
                continue;
            }
        }
        if engine.is_terminating() {
            // The kubelet cancels a terminating pod's sync, and with it the pull it waits for.
            ctx.cancel_pulls();
        }
        {
            let mut st = engine.status(ctx.now());
            st.qos_class.clone_from(&qos);
            if last_status.as_ref() != Some(&st) {
                let now = ctx.now();
                ctx.timeline.with(|r| r.status(&st, now));
                ctx.timeline_dirty = true;
                let _ = ctx.notices.send(Notice::Status(Box::new(st.clone())));
                if let Some(r) = record.as_mut() {
                    r.update(&st);
                }
                last_status = Some(st);
            }
        }
        ctx.save_timeline(&mut record, TIMELINE_WRITE_EVERY_MS);
        if engine.is_terminal()
            && ctx
                .containers
                .values()
                .all(|c| !ctx.runtime.status(c).running)
        {
            break;
        }
        let wake = engine.wake_at().map(|w| ctx.clock.sleep_until(w));
        // A record change not yet on disk is written when its turn comes, even if nothing
        // else happens by then (a reader of a quiet running pod sees it).
        let save = (ctx.timeline_dirty && record.is_some()).then(|| {
            ctx.clock
                .sleep_until(ctx.timeline_written.add_millis(TIMELINE_WRITE_EVERY_MS))
        });
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
                Some(cmd) => ctx.command(&mut engine, &mut record, last_status.as_ref(), cmd),
                None => commands_open = false,
            },
            _ = sleep_opt(wake) => ctx.feed(&mut engine, Input::Tick),
            _ = sleep_opt(save) => ctx.save_timeline(&mut record, TIMELINE_WRITE_EVERY_MS),
        }
    }

    // Nothing is left behind: every container is removed (its processes gone, its tracking
    // group emptied and removed), then the sandboxes.
    ctx.containers.clear();
    if let Some(t) = &ctx.exec_table {
        t.clear();
    }
    for c in std::mem::take(&mut ctx.all_containers) {
        ctx.runtime.remove_container(c).await;
    }
    if let Some(w) = ctx.sandbox_watch.take() {
        w.abort();
    }
    let sandboxes = std::mem::take(&mut ctx.retired_sandboxes)
        .into_iter()
        .chain(ctx.sandbox.take())
        .chain(ctx.adopted_sandbox.take());
    for sandbox in sandboxes {
        ctx.runtime.stop_pod_sandbox(sandbox).await;
    }
    let mut status = engine.status(ctx.now());
    // ST4: the pod's 12 KiB of termination messages (status manager, termination module).
    let spec_containers = ctx.pod.spec.as_ref().map_or(0, |s| {
        s.containers.len()
            + s.init_containers.as_ref().map_or(0, Vec::len)
            + s.ephemeral_containers.as_ref().map_or(0, Vec::len)
    });
    crate::termination::cap_pod_messages(&mut status, spec_containers);
    // The engine leaves the QoS class to its owner, the model (RES4).
    status.qos_class = qos;
    let end = ctx.now();
    ctx.timeline.with(|r| r.status(&status, end));
    let final_timeline = ctx.timeline.with(|r| r.finish(end).clone());
    if let Some(mut r) = record.take() {
        if let Some(tl) = &final_timeline {
            r.write_timeline(tl);
        }
        r.finish(&status);
    }
    if let Some(k) = keeper {
        match k.await {
            Ok(Ok(k)) => k.release(),
            Ok(Err(e)) => tracing::warn!(
                "starting the pod's keeper (nobody would have stopped the pod if skiff had been killed): {e}"
            ),
            Err(_) => {}
        }
    }
    // Dropping the gates releases lines of an instance whose Started event never came.
    let forwarders = std::mem::take(&mut ctx.log_forwarders);
    drop(ctx);
    for f in forwarders {
        let _ = f.await;
    }
    Ok(status)
}

/// Publishes an instance for exec (see [`crate::exec::ExecTable`]).
fn publish<R: RuntimeService>(
    table: &crate::exec::ExecTable,
    runtime: &Arc<R>,
    name: &str,
    instance: InstanceId,
    container: &R::Container,
) {
    let source = ExecSourceOf {
        runtime: runtime.clone(),
        container: container.clone(),
    };
    table.publish(name, instance.0, Arc::new(source));
}

async fn sleep_opt<F: std::future::Future<Output = ()>>(wake: Option<F>) {
    match wake {
        Some(f) => f.await,
        None => std::future::pending().await,
    }
}

struct Ctx<R: RuntimeService, P, I, C> {
    runtime: Arc<R>,
    probes: Arc<P>,
    images: Arc<I>,
    image_pulls: PullQueue,
    /// Pulls in progress, by the instance waiting for them.
    pulls: HashMap<InstanceId, (String, tokio::task::JoinHandle<()>)>,
    clock: C,
    pod: Arc<Pod>,
    identity: PodIdentity,
    sandbox_options: Arc<SandboxOptions>,
    sandbox: Option<R::Sandbox>,
    /// Reports the sandbox's node failures (eviction) while it is in use.
    sandbox_watch: Option<tokio::task::JoinHandle<()>>,
    /// Sandboxes the engine stopped (S9); removed at the end, once their containers are.
    retired_sandboxes: Vec<R::Sandbox>,
    /// The sandbox the runtime handed over with the pod's instances, until the engine asks.
    adopted_sandbox: Option<R::Sandbox>,
    /// Instances were found but not their sandbox: it is gone (S9).
    sandbox_gone: bool,
    /// Containers whose adopted instances' start events the first plan repeats.
    replayed: HashSet<String>,
    specs: HashMap<String, Container>,
    data_dir: PathBuf,
    tx: mpsc::UnboundedSender<Msg<R>>,
    notices: mpsc::UnboundedSender<Notice>,
    /// Per instance: opening it lets the instance's live log lines through (see
    /// [`Ctx::release_logs`]).
    log_gates: HashMap<InstanceId, oneshot::Sender<()>>,
    /// The instance whose `Started` event the engine is about to emit, by container name.
    awaiting_started: HashMap<String, InstanceId>,
    /// One task per instance forwarding its live lines to `notices`.
    log_forwarders: Vec<tokio::task::JoinHandle<()>>,
    /// Live instances by id.
    containers: HashMap<InstanceId, R::Container>,
    /// The container name of each instance in `containers`.
    names: HashMap<InstanceId, String>,
    /// Where the pod's instances are published for exec (see [`Command::ExecTable`]).
    exec_table: Option<crate::exec::ExecTable>,
    /// Every instance ever started or adopted, to remove them at the end.
    all_containers: Vec<R::Container>,
    /// Instances whose monitor ended without a record, until the engine's kill is answered.
    unknown: HashMap<InstanceId, String>,
    /// The pod's lifecycle record (see [`Command::Timeline`]).
    timeline: TimelineHandle,
    /// Something was recorded since `timeline.json` was last written, and when that was.
    timeline_dirty: bool,
    timeline_written: Time,
}

impl<R, P, I, C> Ctx<R, P, I, C>
where
    R: RuntimeService,
    P: ProbeService<R::Container>,
    I: ImageService,
    C: Clock,
{
    /// A command from outside the pod (see [`Command`]).
    fn command(
        &mut self,
        engine: &mut PodEngine,
        record: &mut Option<crate::store::PodRecorder>,
        last_status: Option<&PodStatus>,
        cmd: Command,
    ) {
        match cmd {
            Command::Stop { grace, why } => {
                let now = self.now();
                self.timeline.with(|r| r.stop_requested(why, grace, now));
                self.feed(engine, Input::StopRequested { grace });
            }
            Command::KillNow => self.feed(engine, Input::KillNow),
            Command::Timeline(handle) => {
                handle.take_over(&self.timeline);
                self.timeline = handle;
            }
            Command::ExecTable(table) => {
                for (instance, c) in &self.containers {
                    if let Some(name) = self.names.get(instance) {
                        publish(&table, &self.runtime, name, *instance, c);
                    }
                }
                self.exec_table = Some(table);
            }
            Command::Update(new) => {
                if self.update(engine, *new) {
                    if let Some(r) = record.as_mut() {
                        r.set_spec(self.pod.spec.clone());
                        if let Some(st) = last_status {
                            r.update(st);
                        }
                    }
                }
            }
        }
    }

    fn now(&self) -> Time {
        self.clock.now()
    }

    /// Hands `input` to the engine now, recording it in the timeline.
    fn feed(&mut self, engine: &mut PodEngine, input: Input) {
        let now = self.now();
        if !matches!(input, Input::Tick) {
            self.timeline.with(|r| r.input(&input, now));
            self.timeline_dirty = true;
        }
        engine.handle(input, now);
    }

    /// Writes `timeline.json` when something new was recorded and `every_ms` has passed since
    /// the last write (a reader of a running pod's directory sees it at most that late).
    fn save_timeline(&mut self, record: &mut Option<crate::store::PodRecorder>, every_ms: i64) {
        let now = self.now();
        if !self.timeline_dirty || now.millis_since(self.timeline_written) < every_ms {
            return;
        }
        let Some(r) = record.as_mut() else { return };
        if let Some(tl) = self.timeline.snapshot(now) {
            r.write_timeline(&tl);
        }
        self.timeline_dirty = false;
        self.timeline_written = now;
    }

    /// Takes over what the runtime listed (already replayed into the engine): running
    /// instances are watched, unknown ones wait for the engine's kill (R3/S7).
    fn adopt(
        &mut self,
        sandbox: Option<R::Sandbox>,
        found: &[FoundContainer],
        handles: Vec<Option<R::Container>>,
    ) {
        if found.is_empty() {
            // Nothing of the pod ran yet: a sandbox left over (a persistent one whose process
            // died before the first start) is the one the engine will ask for.
            self.adopted_sandbox = sandbox;
            return;
        }
        match sandbox {
            Some(s) => self.adopted_sandbox = Some(s),
            None => self.sandbox_gone = true,
        }
        for (f, handle) in found.iter().zip(handles) {
            let instance = InstanceId(f.instance);
            if f.state == FoundState::Unknown {
                self.unknown.insert(instance, f.name.clone());
            }
            let Some(c) = handle else { continue };
            match f.state {
                FoundState::Running => {
                    spawn_exit_watch(&*self.runtime, &self.tx, f.name.clone(), instance, &c);
                    self.containers.insert(instance, c.clone());
                    self.names.insert(instance, f.name.clone());
                    if let Some(t) = &self.exec_table {
                        publish(t, &self.runtime, &f.name, instance, &c);
                    }
                }
                FoundState::Unknown => {
                    self.containers.insert(instance, c.clone());
                    self.names.insert(instance, f.name.clone());
                }
                FoundState::Exited { .. } => {}
            }
            self.all_containers.push(c);
        }
    }

    fn receive(&mut self, engine: &mut PodEngine, msg: Msg<R>) {
        match msg {
            Msg::Input(input) => self.feed(engine, input),
            Msg::Started {
                name,
                instance,
                container,
            } => {
                let at = to_time(self.runtime.status(&container).started_at);
                self.awaiting_started.insert(name.clone(), instance);
                self.containers.insert(instance, container.clone());
                self.names.insert(instance, name.clone());
                if let Some(t) = &self.exec_table {
                    publish(t, &self.runtime, &name, instance, &container);
                }
                self.all_containers.push(container);
                self.feed(engine, Input::ContainerStarted { name, instance, at });
            }
            Msg::Unknown { name, instance } => {
                self.unknown.insert(instance, name.clone());
                self.feed(
                    engine,
                    Input::ContainerObserved {
                        name,
                        instance,
                        state: skiff_engine::ObservedState::Unknown,
                        attempt: None,
                    },
                );
            }
            Msg::SandboxReady(ready) => {
                // Volumes: setup warnings, and the node's watch (emptyDir sizeLimit).
                for w in &ready.warnings {
                    self.warn(&w.reason, &w.message, None);
                }
                let watch = self.runtime.watch_pod_sandbox(&ready.sandbox);
                let tx = self.tx.clone();
                if let Some(old) = self.sandbox_watch.replace(tokio::spawn(async move {
                    match watch.await {
                        SandboxFailure::Evicted { message } => {
                            let _ = tx.send(Msg::FailPod(NodeFailure::Evicted { message }));
                        }
                    }
                })) {
                    old.abort();
                }
                self.retired_sandboxes
                    .extend(self.sandbox.replace(ready.sandbox));
                self.feed(engine, Input::SandboxReady);
            }
            // The engine decides the event, the pod's reason and the grace per cause.
            Msg::FailPod(failure) => self.feed(engine, Input::FailPod { failure }),
            Msg::Pulled { start, result } => {
                if self.pulls.remove(&start.instance).is_none() {
                    // Cancelled meanwhile; its failure was reported then.
                    return;
                }
                match result {
                    Ok((info, stats)) => {
                        let image = ResolvedImage {
                            image_id: ResolvedImage::image_id(
                                &info.id,
                                info.repo_digest.as_deref(),
                            ),
                            pulled: Some(stats),
                        };
                        self.feed(
                            engine,
                            Input::ImageReady {
                                name: start.name.clone(),
                                instance: start.instance,
                                image,
                            },
                        );
                        self.create_and_start(start);
                    }
                    Err(e) => {
                        let failure = match e {
                            ImageError::InvalidName(m) => StartFailure::InvalidImageName {
                                message: image_policy::invalid_name_message(&start.image, &m),
                            },
                            ImageError::Pull(m) | ImageError::Store(m) => {
                                StartFailure::ImagePull { message: m }
                            }
                        };
                        self.feed(
                            engine,
                            Input::StartFailed {
                                name: start.name,
                                instance: start.instance,
                                failure,
                            },
                        );
                    }
                }
            }
        }
    }

    /// Applies an update of the pod's spec (see [`Command::Update`]); true if it was taken.
    fn update(&mut self, engine: &mut PodEngine, new: Pod) -> bool {
        if let Err(e) = engine.update_spec(&new, self.now()) {
            tracing::warn!(pod = %self.identity.name, "pod update refused: {e}");
            self.warn("UpdateRejected", &format!("pod update refused: {e}"), None);
            return false;
        }
        // What the engine took is the whole of what may change; the spec the worker creates
        // containers from follows it (images), as does the pod that env and secrets read.
        let mut pod = (*self.pod).clone();
        pod.spec.clone_from(&new.spec);
        if let Some(g) = new.metadata.generation {
            pod.metadata.generation = Some(g);
        }
        if let Some(spec) = pod.spec.as_ref() {
            for c in spec
                .init_containers
                .iter()
                .flatten()
                .chain(spec.containers.iter())
            {
                self.specs.insert(c.name.clone(), c.clone());
            }
        }
        self.pod = Arc::new(pod);
        true
    }

    /// A Warning event now.
    fn warn(&self, reason: &str, message: &str, container: Option<&str>) {
        let event = Event {
            type_: skiff_engine::EventType::Warning,
            reason: reason.to_string(),
            message: message.to_string(),
            container: container.map(str::to_string),
        };
        let _ = self.notices.send(Notice::Event(event, self.now()));
    }

    fn send(&self, input: Input) {
        let _ = self.tx.send(Msg::Input(input));
    }

    fn execute(&mut self, action: Action, at: Time) {
        match action {
            Action::CreateSandbox => self.create_sandbox(),
            // The sandbox is removed once every container process is gone (end of `run_pod`).
            Action::StopSandbox => {
                if let Some(w) = self.sandbox_watch.take() {
                    w.abort();
                }
                self.retired_sandboxes.extend(self.sandbox.take());
            }
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
                image,
            } => self.start(name, kind, instance, attempt, post_start, image),
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
                ..
            } => self.pre_stop(name, instance, timeout_ms),
            Action::Signal {
                instance, signal, ..
            } => {
                if let Some(name) = self.unknown.remove(&instance) {
                    // Already killed by the runtime when its monitor was found gone; an adopted
                    // one may have left its main process, which goes now.
                    if let Some(c) = self.containers.get(&instance) {
                        if let Err(e) = self.runtime.signal(c, StopSignal::Kill) {
                            tracing::warn!("{e}");
                        }
                    }
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
                    if let Err(e) = self.runtime.signal(c, sig) {
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

    fn create_sandbox(&mut self) {
        if let Some(sandbox) = self.adopted_sandbox.take() {
            // The pod's sandbox exists: the runtime handed it over with its instances.
            let _ = self.tx.send(Msg::SandboxReady(ReadySandbox {
                sandbox,
                warnings: Vec::new(),
            }));
            return;
        }
        if std::mem::take(&mut self.sandbox_gone) {
            // Instances were found without their sandbox: as the kubelet does for a sandbox
            // that is not ready, the engine kills them and makes a new one (S9).
            self.send(Input::SandboxReady);
            self.send(Input::SandboxLost);
            return;
        }
        let create = self.runtime.run_pod_sandbox(&SandboxConfig {
            pod: self.pod.clone(),
            identity: self.identity.clone(),
            options: self.sandbox_options.clone(),
        });
        let tx = self.tx.clone();
        tokio::spawn(async move {
            let msg = match create.await {
                Ok(s) => Msg::SandboxReady(s),
                Err(e) => Msg::FailPod(NodeFailure::SandboxFailed {
                    reason: e.reason,
                    message: e.message,
                }),
            };
            let _ = tx.send(msg);
        });
    }

    /// Carries out a start: the image step (image_manager.go `EnsureImageExists`), then
    /// [`Ctx::create_and_start`], at once or when the pull has ended.
    fn start(
        &mut self,
        name: String,
        _kind: ContainerKind,
        instance: InstanceId,
        attempt: i32,
        post_start: Option<PostStart>,
        plan: ImagePlan,
    ) {
        let start = PendingStart {
            name,
            instance,
            attempt,
            post_start,
            image: plan.image.clone(),
        };
        let fail = |this: &Self, start: PendingStart, failure: StartFailure| {
            this.send(Input::StartFailed {
                name: start.name,
                instance: start.instance,
                failure,
            });
        };
        let image = plan.image.as_str();
        let present = match self.images.image_status(image) {
            Ok(Some(info)) if crate::images::runs_without_images(&info) => {
                // No image step: the runtime runs no images (`host`).
                return self.create_and_start(start);
            }
            Ok(present) => present,
            Err(ImageError::InvalidName(m)) => {
                let message = image_policy::invalid_name_message(image, &m);
                return fail(self, start, StartFailure::InvalidImageName { message });
            }
            Err(ImageError::Pull(m) | ImageError::Store(m)) => {
                let message = image_policy::inspect_failed_message(image, &m);
                return fail(self, start, StartFailure::ImageInspect { message });
            }
        };
        match (
            image_policy::image_step(plan.policy, present.is_some()),
            present,
        ) {
            (ImageStep::NeverPull, _) => {
                let message = image_policy::never_pull_message(image);
                fail(self, start, StartFailure::ImageNeverPull { message });
            }
            (ImageStep::UsePresent, Some(info)) => {
                self.send(Input::ImageReady {
                    name: start.name.clone(),
                    instance: start.instance,
                    image: ResolvedImage {
                        image_id: ResolvedImage::image_id(&info.id, info.repo_digest.as_deref()),
                        pulled: None,
                    },
                });
                self.create_and_start(start);
            }
            (ImageStep::Pull, _) if plan.pull_backoff => {
                fail(self, start, StartFailure::ImagePullBackOff);
            }
            // (UsePresent is only chosen for a present image.)
            (ImageStep::Pull | ImageStep::UsePresent, _) => self.pull(start),
        }
    }

    /// Pulls the image of `start` in a task, in the node's pull queue, with the pod's pull
    /// secrets; [`Msg::Pulled`] reports the end.
    fn pull(&mut self, start: PendingStart) {
        let (secrets, missing) =
            crate::images::pull_secrets(&self.pod, &self.sandbox_options.objects);
        if !missing.is_empty() {
            self.warn(
                "FailedToRetrieveImagePullSecret",
                &crate::images::missing_secrets_message(&missing),
                None,
            );
        }
        self.send(Input::ImagePulling {
            name: start.name.clone(),
            instance: start.instance,
        });
        let images = self.images.clone();
        let queue = self.image_pulls.clone();
        let clock = self.clock.clone();
        let tx = self.tx.clone();
        let (instance, name) = (start.instance, start.name.clone());
        let task = tokio::spawn(async move {
            let requested = clock.now();
            let turn = queue.turn().await;
            let began = clock.now();
            let result = images.pull_image(&start.image, &secrets).await;
            let ended = clock.now();
            drop(turn);
            let result = result.map(|info| {
                let stats = PullStats {
                    pull_ms: ended.millis_since(began),
                    total_ms: ended.millis_since(requested),
                    size: info.size,
                };
                (info, stats)
            });
            let _ = tx.send(Msg::Pulled { start, result });
        });
        self.pulls.insert(instance, (name, task));
    }

    /// Ends every pull in progress: its start fails (ErrImagePull) and the pod's termination
    /// need not wait for it.
    fn cancel_pulls(&mut self) {
        for (instance, (name, task)) in std::mem::take(&mut self.pulls) {
            task.abort();
            self.send(Input::StartFailed {
                name,
                instance,
                failure: StartFailure::ImagePull {
                    message: "pull cancelled: the pod is stopping".into(),
                },
            });
        }
    }

    /// Creates and starts the container of `start` (its image, if any, is on the node).
    fn create_and_start(&mut self, start: PendingStart) {
        let PendingStart {
            name,
            instance,
            attempt,
            post_start,
            ..
        } = start;
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
        let build = if self.runtime.runs_images() {
            ContainerLaunch::from_container_for_image
        } else {
            ContainerLaunch::from_container
        };
        let launch = match build(
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
        let created = match &self.sandbox {
            Some(sandbox) => self.runtime.create_container(sandbox, &spec, launch),
            None => Err(StartError::Config("the pod sandbox is not ready".into())),
        };
        let created = match created {
            Ok(c) => c,
            Err(e) => {
                self.send(start_failed(name, instance, &e));
                return;
            }
        };
        let runtime = self.runtime.clone();
        let probes = self.probes.clone();
        let tx = self.tx.clone();
        let log_tx = self.live_logs(instance);
        let start = self.runtime.start_container(created, Some(log_tx));
        tokio::spawn(async move {
            let container = match start.await {
                Ok(c) => c,
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
            spawn_exit_watch(&*runtime, &tx, name.clone(), instance, &container);
            if let Some(PostStart { timeout_ms }) = post_start {
                let handler = spec.lifecycle.as_ref().and_then(|l| l.post_start.clone());
                let limit = Duration::from_millis(u64::try_from(timeout_ms).unwrap_or(0));
                let (ok, message) = match handler {
                    Some(h) => match probes
                        .run_hook(
                            &container,
                            HookRequest {
                                container_name: name.clone(),
                                handler: h,
                                limit,
                            },
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
        let Some(container) = self.containers.get(&instance) else {
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
        let tx = self.tx.clone();
        let limit = Duration::from_millis(u64::try_from(timeout_ms).unwrap_or(1000));
        // The prober honours timeoutSeconds itself; the hard deadline holds even if it blocks.
        let run = self.probes.probe(
            container,
            ProbeRequest {
                container_name: name.clone(),
                kind,
                probe,
                limit,
            },
        );
        let notices = self.notices.clone();
        let began = std::time::Instant::now();
        tokio::spawn(async move {
            let r = run.await;
            let _ = notices.send(Notice::Probe(ProbeRun {
                container: name.clone(),
                kind,
                outcome: r.outcome,
                took: began.elapsed(),
            }));
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
        let (Some(handler), Some(container)) = (handler, self.containers.get(&instance)) else {
            self.send(Input::PreStopDone {
                name,
                instance,
                ok: true,
            });
            return;
        };
        let tx = self.tx.clone();
        let limit = Duration::from_millis(u64::try_from(timeout_ms).unwrap_or(0));
        let run = self.probes.run_hook(
            container,
            HookRequest {
                container_name: name.clone(),
                handler,
                limit,
            },
        );
        tokio::spawn(async move {
            let ok = match run.await {
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

/// Reports `container`'s end to the worker: its exit, or that its state became unknown.
fn spawn_exit_watch<R: RuntimeService>(
    runtime: &R,
    tx: &mpsc::UnboundedSender<Msg<R>>,
    name: String,
    instance: InstanceId,
    container: &R::Container,
) {
    let wait = runtime.wait(container);
    let exit_tx = tx.clone();
    tokio::spawn(async move {
        let exit = wait.await;
        if exit.status_unknown {
            // R3/S7: the monitor was killed, so how the container ended is unknown;
            // the runtime has killed everything of it. The engine kills an Unknown
            // instance first; its Signal is answered with the exit (`Ctx::execute`).
            let _ = exit_tx.send(Msg::Unknown { name, instance });
            return;
        }
        let _ = exit_tx.send(Msg::Input(Input::ContainerExited {
            name,
            instance,
            exit_code: exit.exit_code,
            // ST4: from the cgroup's OOM events (runtime `ContainerExit::oom_killed`).
            reason: exit.oom_killed.then(|| "OOMKilled".to_string()),
            message: (!exit.message.is_empty()).then_some(exit.message),
            at: to_time(exit.finished_at),
        }));
    });
}

fn start_failed(name: String, instance: InstanceId, e: &StartError) -> Input {
    Input::StartFailed {
        name,
        instance,
        failure: e.failure(),
    }
}
