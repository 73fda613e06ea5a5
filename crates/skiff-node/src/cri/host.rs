//! The `host` runtime class behind the seam: a thin adapter over [`HostRuntime`] (containers
//! as host processes under their monitors), [`PodSandbox`] and [`HostProber`].
//!
//! It holds the instances it started until they are removed ([`RuntimeService::list_pod`]
//! reports them), and finds the others of a pod from their records on disk
//! (`state::scan_pod`): an instance another skiff started is reachable through its records'
//! process references (signals through a pidfd of its main process, its end through a pidfd
//! of its monitor and the monitor's exit record), not through the tracking group, the exec
//! setup or the log stream, which only the skiff that started it holds. Its sandbox cannot be
//! handed over either (the namespace holder and volume descriptors lived in that skiff), so a
//! listing never has one.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use k8s_openapi::api::core::v1::Container;
use tokio::sync::mpsc;

use super::{
    ContainerStatus, FoundContainer, FoundState, HookRequest, Listed, PodListing, ProbeRequest,
    ProbeService, ReadySandbox, RuntimeService, SandboxConfig, SandboxFailure, Warning,
};
use crate::isolation::ContainerSetup;
use crate::launch::{ContainerLaunch, StartError};
use crate::logs::LogLine;
use crate::probe::{
    exec_in, hook_with_deadline, probe_with_deadline, ExecOutput, HostProber, ProbeOutcome,
    ProbeResult,
};
use crate::reaper::ExitStatus;
use crate::runtime::{ContainerExit, HostContainer, HostRuntime, NodeError, StopSignal};
use crate::sandbox::{PodSandbox, SandboxError};
use crate::state::InstanceRecord;

/// The `host` runtime class (see the module docs).
#[derive(Clone)]
pub struct HostCri {
    runtime: HostRuntime,
    /// Instances started here and not removed yet, by runtime ID.
    held: Arc<Mutex<HashMap<String, Held>>>,
}

struct Held {
    pod_uid: String,
    found: FoundContainer,
    container: HostContainer,
}

impl HostCri {
    /// The process-wide reaper, the best tracker available, and the monitor executable.
    pub fn new() -> std::io::Result<Self> {
        Ok(HostCri::with_runtime(HostRuntime::new()?))
    }

    pub fn with_runtime(runtime: HostRuntime) -> Self {
        HostCri {
            runtime,
            held: Arc::default(),
        }
    }

    pub fn runtime(&self) -> &HostRuntime {
        &self.runtime
    }

    fn held(&self) -> std::sync::MutexGuard<'_, HashMap<String, Held>> {
        // A panic while holding the map leaves it usable: it is only ever inserted into and
        // removed from.
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A container that [`HostCri::create_container`] planned.
pub struct HostCreated {
    launch: ContainerLaunch,
    setup: ContainerSetup,
}

/// A host container: one this process started, or one found on disk.
#[derive(Clone, Debug)]
pub enum HostInstance {
    Started(HostContainer),
    Found(Arc<FoundProcess>),
}

/// An instance another skiff started, as its records describe it.
#[derive(Debug)]
pub struct FoundProcess {
    found: FoundContainer,
    record: InstanceRecord,
    /// Probes and hooks run in it through this, when its sandbox was adopted too.
    exec: Option<crate::runtime::ExecContext>,
    /// Its terminationMessagePolicy, when its spec is known (ST4 message at its exit).
    message_policy: Option<crate::launch::TerminationMessagePolicy>,
}

impl FoundProcess {
    /// Its main process's PID.
    pub fn pid(&self) -> i32 {
        self.record.main.pid
    }

    /// Its monitor's PID.
    pub fn monitor_pid(&self) -> i32 {
        self.record.monitor.pid
    }
}

impl HostInstance {
    /// The container's main process.
    pub fn pid(&self) -> i32 {
        match self {
            HostInstance::Started(c) => c.pid(),
            HostInstance::Found(f) => f.pid(),
        }
    }

    /// What probes and hooks run through, if they can.
    fn exec_context(&self) -> Option<&crate::runtime::ExecContext> {
        match self {
            HostInstance::Started(c) => Some(c.exec_context()),
            HostInstance::Found(f) => f.exec.as_ref(),
        }
    }
}

impl RuntimeService for HostCri {
    type Sandbox = PodSandbox;
    type Created = HostCreated;
    type Container = HostInstance;

    fn run_pod_sandbox(
        &self,
        config: &SandboxConfig,
    ) -> impl Future<Output = Result<ReadySandbox<PodSandbox>, SandboxError>> + Send + 'static {
        let config = config.clone();
        async move {
            let sandbox =
                PodSandbox::create(&config.pod, &config.identity, &config.options).await?;
            let warnings = sandbox
                .volumes()
                .warnings()
                .iter()
                .map(|(reason, message)| Warning {
                    reason: reason.clone(),
                    message: message.clone(),
                })
                .collect();
            Ok(ReadySandbox { sandbox, warnings })
        }
    }

    fn watch_pod_sandbox(
        &self,
        sandbox: &PodSandbox,
    ) -> impl Future<Output = SandboxFailure> + Send + 'static {
        // The sizeLimit watch of disk emptyDirs (volumes module).
        let watch = sandbox.volumes().size_watch();
        async move {
            let Some(watch) = watch else {
                return std::future::pending().await;
            };
            loop {
                tokio::time::sleep(crate::volumes::SizeWatch::PERIOD).await;
                let w = watch.clone();
                if let Ok(Some(message)) = tokio::task::spawn_blocking(move || w.exceeded()).await {
                    return SandboxFailure::Evicted { message };
                }
            }
        }
    }

    fn stop_pod_sandbox(&self, sandbox: PodSandbox) -> impl Future<Output = ()> + Send + 'static {
        sandbox.destroy()
    }

    fn create_container(
        &self,
        sandbox: &PodSandbox,
        spec: &Container,
        launch: ContainerLaunch,
    ) -> Result<HostCreated, StartError> {
        let setup = sandbox.container_setup(spec, &launch)?;
        Ok(HostCreated { launch, setup })
    }

    fn start_container(
        &self,
        created: HostCreated,
        logs: Option<mpsc::Sender<LogLine>>,
    ) -> impl Future<Output = Result<HostInstance, StartError>> + Send + 'static {
        let this = self.clone();
        async move {
            let HostCreated { launch, setup } = created;
            let (pod_uid, name, instance, attempt) = (
                launch.pod.uid.clone(),
                launch.name.clone(),
                launch.instance,
                launch.restart_count,
            );
            let c = this.runtime.start(launch, setup, logs).await?;
            let found = FoundContainer {
                name,
                instance,
                attempt,
                runtime_id: c.id().to_string(),
                started_at: c.started_at(),
                state: FoundState::Running,
            };
            this.held().insert(
                c.id().to_string(),
                Held {
                    pod_uid,
                    found,
                    container: c.clone(),
                },
            );
            Ok(HostInstance::Started(c))
        }
    }

    fn signal(&self, container: &HostInstance, signal: StopSignal) -> Result<(), NodeError> {
        match container {
            HostInstance::Started(c) => c.signal(signal),
            HostInstance::Found(f) => {
                // Only the main process is reachable; what it left behind goes with its
                // cgroup when the node recovers the pod's resources.
                let sig = match signal {
                    StopSignal::Term => rustix::process::Signal::TERM,
                    StopSignal::Kill => rustix::process::Signal::KILL,
                };
                match f.record.main.pidfd() {
                    Some(fd) => match rustix::process::pidfd_send_signal(&fd, sig) {
                        Ok(()) | Err(rustix::io::Errno::SRCH) => Ok(()),
                        Err(e) => Err(NodeError::Signal {
                            id: f.found.runtime_id.clone(),
                            source: e.into(),
                        }),
                    },
                    None => Ok(()),
                }
            }
        }
    }

    fn wait(
        &self,
        container: &HostInstance,
    ) -> impl Future<Output = ContainerExit> + Send + 'static {
        let container = container.clone();
        async move {
            match container {
                HostInstance::Started(c) => c.wait().await,
                HostInstance::Found(f) => wait_found(&f).await,
            }
        }
    }

    fn exec_sync(
        &self,
        container: &HostInstance,
        argv: Vec<String>,
        timeout: Duration,
    ) -> impl Future<Output = ExecOutput> + Send + 'static {
        let reaper = self.runtime.reaper().clone();
        let container = container.clone();
        async move {
            match container.exec_context() {
                Some(ctx) => exec_in(&reaper, ctx, &argv, timeout).await,
                None => ExecOutput {
                    status: None,
                    timed_out: false,
                    output: NOT_OURS.into(),
                },
            }
        }
    }

    fn exec_target(&self, container: &HostInstance) -> Option<crate::exec::ExecTarget> {
        container.exec_context().map(|ctx| {
            crate::exec::ExecTarget::new(
                ctx.clone(),
                self.runtime.reaper().clone(),
                Some(container.pid()).filter(|p| *p > 0),
            )
        })
    }

    fn status(&self, container: &HostInstance) -> ContainerStatus {
        match container {
            HostInstance::Started(c) => ContainerStatus {
                id: c.id().to_string(),
                started_at: c.started_at(),
                running: !c.main_exited(),
                exit: c.try_exit(),
            },
            HostInstance::Found(f) => {
                let exit = read_exit(&f.record).map(|(status, finished_at)| {
                    found_exit(&f.found, &f.record, Some((status, finished_at)))
                });
                ContainerStatus {
                    id: f.found.runtime_id.clone(),
                    started_at: f.found.started_at,
                    running: exit.is_none() && f.record.monitor.alive(),
                    exit,
                }
            }
        }
    }

    fn list_pod(&self, config: &SandboxConfig) -> PodListing<PodSandbox, HostInstance> {
        self.list_pod_with(config, false)
    }

    fn remove_container(
        &self,
        container: HostInstance,
    ) -> impl Future<Output = ()> + Send + 'static {
        if let HostInstance::Started(c) = &container {
            self.held().remove(c.id());
        }
        async move {
            match container {
                HostInstance::Started(c) => c.cleaned_up().await,
                // Its cgroup and mounts are in the pod's record; the node's recovery removes
                // them (`node`), or the pod cgroup's removal with its sandbox.
                HostInstance::Found(_) => {}
            }
        }
    }
}

impl HostCri {
    /// [`RuntimeService::list_pod`]; `image`: the instances are image containers (their exec
    /// contexts are the OCI class's to make).
    pub(crate) fn list_pod_with(
        &self,
        config: &SandboxConfig,
        image: bool,
    ) -> PodListing<PodSandbox, HostInstance> {
        // A persistent sandbox an earlier process made (`skiff serve` after a restart).
        let sandbox = if config.options.persistent {
            PodSandbox::adopt(&config.pod, &config.identity, &config.options)
        } else {
            None
        };
        let mut containers: Vec<Listed<HostInstance>> = self
            .held()
            .values()
            .filter(|h| h.pod_uid == config.identity.uid)
            .map(|h| Listed {
                found: h.found.clone().with_exit(h.container.try_exit()),
                handle: Some(HostInstance::Started(h.container.clone())),
            })
            .collect();
        let (on_disk, errors) = crate::state::scan_pod(&config.pod_dir());
        for e in errors {
            tracing::warn!("skipping an instance record: {e}");
        }
        for f in on_disk {
            if containers
                .iter()
                .any(|l| l.found.runtime_id == f.record.runtime_id)
            {
                continue;
            }
            if f.record.interrupted() && f.observed == crate::state::Observed::Unknown {
                // Its start was cut short by the death of the process making it: whatever of
                // it runs is in its cgroup, and goes (R3/S7: killed first, then started again
                // with the next restart count).
                if let Some(cg) = &f.record.cgroup {
                    if let Err(e) = crate::node::NodeResources::global()
                        .kill_interrupted_start(&config.identity.uid, cg)
                    {
                        tracing::warn!(container = %f.record.container, "killing an interrupted start: {e}");
                    }
                }
            }
            let found = FoundContainer::from(&f);
            // An exited one needs nothing more; an unknown one may have left its main process
            // (the engine kills it first).
            let handle = match found.state {
                // An image container's bundle (mounts, runtime state) outlives its exit: the
                // worker removes it with a handle.
                FoundState::Exited { .. } if !image => None,
                FoundState::Exited { .. } => Some(HostInstance::Found(Arc::new(FoundProcess {
                    found: found.clone(),
                    record: f.record,
                    exec: None,
                    message_policy: None,
                }))),
                FoundState::Running | FoundState::Unknown => {
                    let exec = match (&sandbox, &found.state, image) {
                        (Some(sb), FoundState::Running, false) => {
                            adopted_exec(sb, config, &f.record)
                        }
                        _ => None,
                    };
                    let message_policy = sandbox.as_ref().and_then(|_| {
                        let spec = container_spec(&config.pod, &f.record.container)?;
                        Some(match spec.termination_message_policy.as_deref() {
                            Some("FallbackToLogsOnError") => {
                                crate::launch::TerminationMessagePolicy::FallbackToLogsOnError
                            }
                            _ => crate::launch::TerminationMessagePolicy::File,
                        })
                    });
                    Some(HostInstance::Found(Arc::new(FoundProcess {
                        found: found.clone(),
                        record: f.record,
                        exec,
                        message_policy,
                    })))
                }
            };
            containers.push(Listed { found, handle });
        }
        containers.sort_by_key(|l| (l.found.started_at, l.found.instance));
        PodListing {
            sandbox,
            containers,
        }
    }

    /// An adopted instance with its exec context, for the OCI class (which makes the context).
    pub(crate) fn with_exec(
        instance: &HostInstance,
        exec: Option<crate::runtime::ExecContext>,
    ) -> HostInstance {
        match instance {
            HostInstance::Found(f) if f.exec.is_none() && exec.is_some() => {
                HostInstance::Found(Arc::new(FoundProcess {
                    found: f.found.clone(),
                    record: f.record.clone(),
                    exec,
                    message_policy: f.message_policy,
                }))
            }
            other => other.clone(),
        }
    }
}

/// The spec of container `name` of `pod` (init or regular).
fn container_spec<'a>(
    pod: &'a k8s_openapi::api::core::v1::Pod,
    name: &str,
) -> Option<&'a Container> {
    pod.spec.as_ref().and_then(|s| {
        s.init_containers
            .iter()
            .flatten()
            .chain(s.containers.iter())
            .find(|c| c.name == name)
    })
}

/// The exec context of a running instance found on disk whose sandbox was adopted.
fn adopted_exec(
    sandbox: &PodSandbox,
    config: &SandboxConfig,
    record: &InstanceRecord,
) -> Option<crate::runtime::ExecContext> {
    let spec = container_spec(&config.pod, &record.container)?;
    let launch = ContainerLaunch::from_container(
        spec,
        &config.identity,
        &config.options.data_dir,
        record.attempt,
        &crate::launch::EnvSources {
            objects: &config.options.objects,
            pod: Some(&config.pod),
        },
    )
    .ok()?;
    let setup = sandbox.exec_setup(spec, &launch, false).ok()?;
    Some(crate::runtime::adopted_exec_context(
        &record.runtime_id,
        &launch,
        setup,
        record.main.pid,
        None,
    ))
}

const NOT_OURS: &str = "the container was started by an earlier skiff; it cannot be entered";

fn read_exit(record: &InstanceRecord) -> Option<(ExitStatus, SystemTime)> {
    match skiff_monitor::ExitRecord::read(&record.exit_path) {
        Ok(Some(r)) if r.pid == record.main.pid => Some((r.status, r.finished_at)),
        _ => None,
    }
}

fn found_exit(
    found: &FoundContainer,
    record: &InstanceRecord,
    exit: Option<(ExitStatus, SystemTime)>,
) -> ContainerExit {
    let (status, finished_at, unknown) = match exit {
        Some((status, at)) => (status, at, false),
        None => (ExitStatus::Signaled(9), SystemTime::now(), true),
    };
    ContainerExit {
        id: found.runtime_id.clone(),
        pid: record.main.pid,
        status,
        exit_code: status.code(),
        started_at: found.started_at,
        finished_at,
        // The termination-message file was read through a descriptor of the skiff that
        // started it; not read again here.
        message: String::new(),
        oom_killed: false,
        status_unknown: unknown,
    }
}

/// Waits for the monitor of a found instance to end (its pidfd turns readable), then reads
/// its exit record; without one the state is unknown and the main process is killed, as the
/// runtime does for its own instances.
async fn wait_found(f: &FoundProcess) -> ContainerExit {
    if let Some(fd) = f.record.monitor.pidfd() {
        match crate::sys::fd::Pollable::new(fd, tokio::io::Interest::READABLE) {
            Ok(afd) => {
                let _ = afd.readable().await;
            }
            Err(_) => {
                while f.record.monitor.alive() {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }
    let record = f.record.clone();
    let exit = tokio::task::spawn_blocking(move || read_exit(&record))
        .await
        .ok()
        .flatten();
    if exit.is_none() {
        if let Some(fd) = f.record.main.pidfd() {
            let _ = rustix::process::pidfd_send_signal(&fd, rustix::process::Signal::KILL);
        }
    }
    let mut e = found_exit(&f.found, &f.record, exit);
    // ST4: its termination message, when its spec is known (an adopted sandbox's instance).
    if let (Some(policy), false) = (f.message_policy, e.status_unknown) {
        let record = f.record.clone();
        let code = e.exit_code;
        e.message = tokio::task::spawn_blocking(move || {
            let dir = record
                .log_path
                .parent()
                .map(std::path::Path::to_path_buf)
                .unwrap_or_default();
            crate::termination::collect_found(&dir, record.attempt, policy, code, &record.log_path)
        })
        .await
        .unwrap_or_default();
    }
    e
}

/// Probes and hooks for host containers: [`HostProber`] in the container's namespaces,
/// under the worker's hard deadline (`probe::deadline`).
#[derive(Clone)]
pub struct HostProbes {
    prober: HostProber,
}

impl HostProbes {
    pub fn new() -> std::io::Result<Self> {
        Ok(HostProbes {
            prober: HostProber::new()?,
        })
    }
}

impl ProbeService<HostInstance> for HostProbes {
    fn probe(
        &self,
        container: &HostInstance,
        req: ProbeRequest,
    ) -> impl Future<Output = ProbeResult> + Send + 'static {
        let prober = self.prober.clone();
        let container = container.clone();
        async move {
            match container.exec_context() {
                Some(ctx) => {
                    let ctx = ctx.clone();
                    probe_with_deadline(&prober, req.probe, ctx, req.limit).await
                }
                None => ProbeResult {
                    outcome: ProbeOutcome::Unknown,
                    output: NOT_OURS.into(),
                },
            }
        }
    }

    fn run_hook(
        &self,
        container: &HostInstance,
        req: HookRequest,
    ) -> impl Future<Output = Result<(), String>> + Send + 'static {
        let prober = self.prober.clone();
        let container = container.clone();
        async move {
            match container.exec_context() {
                Some(ctx) => {
                    let ctx = ctx.clone();
                    hook_with_deadline(&prober, req.handler, ctx, req.limit).await
                }
                None => Err(NOT_OURS.into()),
            }
        }
    }
}
