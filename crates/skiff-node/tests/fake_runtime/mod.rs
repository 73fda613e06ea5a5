//! A recording fake of the runtime seam (`skiff_node::cri`) for worker tests: every call is
//! recorded with the clock's time; the test decides what happens — sandbox failures, start
//! failures (at create or at start), exits (a code, or an unknown state), what a stop signal
//! does, probe and hook results, evictions, and what the runtime already has of the pod
//! (adoption). SIGKILL ends a running container at once with 137, as on a real node.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use k8s_openapi::api::core::v1::Container;
use skiff_engine::{ProbeKind, Time};
use skiff_node::clock::{to_system_time, Clock, TokioClock};
use skiff_node::cri::{
    ContainerExit, ContainerStatus, FoundContainer, FoundState, HookRequest, ImageError, ImageInfo,
    ImageService, Listed, NodeError, PodListing, ProbeRequest, ProbeService, PullSecrets,
    ReadySandbox, RuntimeService, SandboxConfig, SandboxFailure, StopSignal, Warning,
};
use skiff_node::launch::{ContainerLaunch, StartError};
use skiff_node::logs::LogLine;
use skiff_node::probe::{ExecOutput, ProbeOutcome, ProbeResult};
use skiff_node::reaper::ExitStatus;
use skiff_node::sandbox::SandboxError;
use skiff_node::spec::ImageRootfs;
use tokio::sync::{mpsc, oneshot, watch, Notify};

/// One call the worker made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    ListPod,
    RunSandbox,
    StopSandbox {
        id: u32,
    },
    Create {
        name: String,
        attempt: u32,
    },
    Start {
        name: String,
        instance: u64,
        attempt: u32,
    },
    Signal {
        name: String,
        instance: u64,
        signal: StopSignal,
    },
    Remove {
        name: String,
        instance: u64,
    },
    Probe {
        name: String,
        kind: ProbeKind,
    },
    Hook {
        name: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub at: Time,
    pub op: Op,
}

/// A start failure the test asks for (a `StartError` is not `Clone`).
#[derive(Debug, Clone)]
pub enum Failure {
    /// `CreateContainerConfigError`.
    Config(String),
    /// The process could not be started (`RunContainerError`, record `StartError` 128).
    NoSuchFile(String),
}

impl Failure {
    fn error(&self) -> StartError {
        match self {
            Failure::Config(m) => StartError::Config(m.clone()),
            Failure::NoSuchFile(p) => StartError::NoSuchFile { path: p.clone() },
        }
    }
}

struct Ctr {
    name: String,
    instance: u64,
    exit: watch::Sender<Option<ContainerExit>>,
    started_at: SystemTime,
    id: String,
}

#[derive(Default)]
struct State {
    calls: Vec<Call>,
    sandbox_failures: VecDeque<SandboxError>,
    sandbox_warnings: Vec<Warning>,
    sandboxes: u32,
    evict: Option<oneshot::Sender<String>>,
    create_failures: HashMap<String, VecDeque<Failure>>,
    start_failures: HashMap<String, VecDeque<Failure>>,
    /// Exit code when the container gets its stop signal (default: it ignores it).
    on_term: HashMap<String, i32>,
    ctrs: Vec<Ctr>,
    probe_results: HashMap<(String, ProbeKind), VecDeque<bool>>,
    hook_results: HashMap<String, Result<(), String>>,
    listing: Option<(bool, Vec<FoundContainer>)>,
}

struct Shared {
    clock: TokioClock,
    state: Mutex<State>,
    changed: Notify,
}

/// The fake runtime, its prober, and the test's handle on both.
#[derive(Clone)]
pub struct FakeRuntime {
    shared: Arc<Shared>,
}

/// The fake's sandbox.
#[derive(Debug)]
pub struct FakeSandbox {
    id: u32,
    evicted: Mutex<Option<oneshot::Receiver<String>>>,
}

/// The fake's created container.
pub struct FakeCreated {
    launch: ContainerLaunch,
}

/// A fake container instance.
#[derive(Clone, Debug)]
pub struct FakeContainer {
    pub id: String,
    pub name: String,
    pub instance: u64,
    started_at: SystemTime,
    exit: watch::Receiver<Option<ContainerExit>>,
}

impl FakeRuntime {
    pub fn new(clock: TokioClock) -> Self {
        FakeRuntime {
            shared: Arc::new(Shared {
                clock,
                state: Mutex::default(),
                changed: Notify::new(),
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.shared.state.lock().unwrap()
    }

    fn now(&self) -> Time {
        self.shared.clock.now()
    }

    fn record(&self, op: Op) {
        let at = self.now();
        self.state().calls.push(Call { at, op });
        self.shared.changed.notify_waiters();
    }

    // --- what the test decides --------------------------------------------------------------

    pub fn fail_sandbox(&self, reason: &str, message: &str) {
        self.state().sandbox_failures.push_back(SandboxError {
            reason: reason.into(),
            message: message.into(),
        });
    }

    pub fn fail_create(&self, name: &str, f: Failure) {
        self.state()
            .create_failures
            .entry(name.into())
            .or_default()
            .push_back(f);
    }

    pub fn fail_start(&self, name: &str, f: Failure) {
        self.state()
            .start_failures
            .entry(name.into())
            .or_default()
            .push_back(f);
    }

    /// `name` exits with `code` when it gets its stop signal.
    pub fn exit_on_term(&self, name: &str, code: i32) {
        self.state().on_term.insert(name.into(), code);
    }

    /// The next results of `name`'s `kind` probe (then: success).
    pub fn probe_results(&self, name: &str, kind: ProbeKind, results: &[bool]) {
        self.state()
            .probe_results
            .entry((name.into(), kind))
            .or_default()
            .extend(results);
    }

    pub fn hook_result(&self, name: &str, r: Result<(), String>) {
        self.state().hook_results.insert(name.into(), r);
    }

    /// The node evicts the pod (its sandbox's watch fires).
    pub fn evict(&self, message: &str) {
        if let Some(tx) = self.state().evict.take() {
            let _ = tx.send(message.into());
        }
    }

    /// What `list_pod` returns: the pod's sandbox (if `sandbox`) and these instances; running
    /// and unknown ones get handles (unknown ones report no exit until killed).
    pub fn found(&self, sandbox: bool, containers: Vec<FoundContainer>) {
        self.state().listing = Some((sandbox, containers));
    }

    /// The running instance of `name` exits with `code` now.
    pub fn exit(&self, name: &str, code: i32) {
        self.end(name, Some(code));
    }

    /// The running instance of `name` ends in an unknown state (its monitor was killed).
    pub fn lose(&self, name: &str) {
        self.end(name, None);
    }

    fn end(&self, name: &str, code: Option<i32>) {
        let now = self.now();
        let st = self.state();
        let c = st
            .ctrs
            .iter()
            .rev()
            .find(|c| c.name == name && c.exit.borrow().is_none())
            .unwrap_or_else(|| panic!("no running instance of {name}"));
        c.exit.send_replace(Some(exit_of(c, code, now)));
        drop(st);
        self.shared.changed.notify_waiters();
    }

    // --- what the test reads -----------------------------------------------------------------

    pub fn calls(&self) -> Vec<Call> {
        self.state().calls.clone()
    }

    /// Waits until `pred` holds for the calls so far; returns them.
    pub async fn until(&self, what: &str, pred: impl Fn(&[Call]) -> bool) -> Vec<Call> {
        let wait = async {
            loop {
                let notified = self.shared.changed.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                let calls = self.calls();
                if pred(&calls) {
                    return calls;
                }
                notified.await;
            }
        };
        // Paused time: with nothing else due, tokio jumps straight to this deadline.
        match tokio::time::timeout(Duration::from_secs(24 * 3600), wait).await {
            Ok(calls) => calls,
            Err(_) => panic!("never happened: {what}; calls: {:#?}", self.calls()),
        }
    }

    /// Waits for the `n`th (1-based) start of `name`; returns its instance.
    pub async fn started(&self, name: &str, n: usize) -> u64 {
        let calls = self
            .until(&format!("start #{n} of {name}"), |c| {
                starts(c, name).len() >= n
            })
            .await;
        starts(&calls, name)[n - 1].1
    }
}

/// The (time, instance, attempt) of each start of `name`.
pub fn starts(calls: &[Call], name: &str) -> Vec<(Time, u64, u32)> {
    calls
        .iter()
        .filter_map(|c| match &c.op {
            Op::Start {
                name: n,
                instance,
                attempt,
            } if n == name => Some((c.at, *instance, *attempt)),
            _ => None,
        })
        .collect()
}

/// The (time, signal) of each signal to `instance`.
pub fn signals(calls: &[Call], instance: u64) -> Vec<(Time, StopSignal)> {
    calls
        .iter()
        .filter_map(|c| match &c.op {
            Op::Signal {
                instance: i,
                signal,
                ..
            } if *i == instance => Some((c.at, *signal)),
            _ => None,
        })
        .collect()
}

fn exit_of(c: &Ctr, code: Option<i32>, now: Time) -> ContainerExit {
    let status = match code {
        Some(code) if code > 128 => ExitStatus::Signaled(code - 128),
        Some(code) => ExitStatus::Exited(code),
        None => ExitStatus::Signaled(9),
    };
    ContainerExit {
        id: c.id.clone(),
        pid: 1000 + i32::try_from(c.instance).unwrap(),
        status,
        exit_code: status.code(),
        started_at: c.started_at,
        finished_at: to_system_time(now),
        message: String::new(),
        oom_killed: false,
        status_unknown: code.is_none(),
    }
}

impl FakeRuntime {
    fn add_ctr(&self, name: &str, instance: u64, started_at: SystemTime) -> FakeContainer {
        let (tx, rx) = watch::channel(None);
        let id = format!("fake-{name}-{instance}");
        self.state().ctrs.push(Ctr {
            name: name.into(),
            instance,
            exit: tx,
            started_at,
            id: id.clone(),
        });
        FakeContainer {
            id,
            name: name.into(),
            instance,
            started_at,
            exit: rx,
        }
    }
}

impl RuntimeService for FakeRuntime {
    type Sandbox = FakeSandbox;
    type Created = FakeCreated;
    type Container = FakeContainer;

    fn run_pod_sandbox(
        &self,
        _config: &SandboxConfig,
    ) -> impl Future<Output = Result<ReadySandbox<FakeSandbox>, SandboxError>> + Send + 'static
    {
        self.record(Op::RunSandbox);
        let mut st = self.state();
        let r = match st.sandbox_failures.pop_front() {
            Some(e) => Err(e),
            None => {
                st.sandboxes += 1;
                let (tx, rx) = oneshot::channel();
                st.evict = Some(tx);
                Ok(ReadySandbox {
                    sandbox: FakeSandbox {
                        id: st.sandboxes,
                        evicted: Mutex::new(Some(rx)),
                    },
                    warnings: st.sandbox_warnings.clone(),
                })
            }
        };
        std::future::ready(r)
    }

    fn watch_pod_sandbox(
        &self,
        sandbox: &FakeSandbox,
    ) -> impl Future<Output = SandboxFailure> + Send + 'static {
        let rx = sandbox.evicted.lock().unwrap().take();
        async move {
            match rx {
                Some(rx) => match rx.await {
                    Ok(message) => SandboxFailure::Evicted { message },
                    Err(_) => std::future::pending().await,
                },
                None => std::future::pending().await,
            }
        }
    }

    fn stop_pod_sandbox(&self, sandbox: FakeSandbox) -> impl Future<Output = ()> + Send + 'static {
        self.record(Op::StopSandbox { id: sandbox.id });
        std::future::ready(())
    }

    fn create_container(
        &self,
        _sandbox: &FakeSandbox,
        _spec: &Container,
        launch: ContainerLaunch,
    ) -> Result<FakeCreated, StartError> {
        self.record(Op::Create {
            name: launch.name.clone(),
            attempt: launch.restart_count,
        });
        let failure = self
            .state()
            .create_failures
            .get_mut(&launch.name)
            .and_then(VecDeque::pop_front);
        match failure {
            Some(f) => Err(f.error()),
            None => Ok(FakeCreated { launch }),
        }
    }

    fn start_container(
        &self,
        created: FakeCreated,
        _logs: Option<mpsc::Sender<LogLine>>,
    ) -> impl Future<Output = Result<FakeContainer, StartError>> + Send + 'static {
        let l = created.launch;
        self.record(Op::Start {
            name: l.name.clone(),
            instance: l.instance,
            attempt: l.restart_count,
        });
        let failure = self
            .state()
            .start_failures
            .get_mut(&l.name)
            .and_then(VecDeque::pop_front);
        let r = match failure {
            Some(f) => Err(f.error()),
            None => Ok(self.add_ctr(&l.name, l.instance, to_system_time(self.now()))),
        };
        std::future::ready(r)
    }

    fn signal(&self, c: &FakeContainer, signal: StopSignal) -> Result<(), NodeError> {
        self.record(Op::Signal {
            name: c.name.clone(),
            instance: c.instance,
            signal,
        });
        let now = self.now();
        let st = self.state();
        let code = match signal {
            StopSignal::Kill => Some(137),
            StopSignal::Term => st.on_term.get(&c.name).copied(),
        };
        if let (Some(code), Some(ctr)) = (code, st.ctrs.iter().find(|x| x.id == c.id)) {
            if ctr.exit.borrow().is_none() {
                ctr.exit.send_replace(Some(exit_of(ctr, Some(code), now)));
            }
        }
        Ok(())
    }

    fn wait(&self, c: &FakeContainer) -> impl Future<Output = ContainerExit> + Send + 'static {
        let mut rx = c.exit.clone();
        async move {
            let r = rx.wait_for(Option::is_some).await.map(|e| e.clone());
            r.ok().flatten().expect("the fake container was dropped")
        }
    }

    fn exec_sync(
        &self,
        _c: &FakeContainer,
        argv: Vec<String>,
        _timeout: Duration,
    ) -> impl Future<Output = ExecOutput> + Send + 'static {
        std::future::ready(ExecOutput {
            status: Some(ExitStatus::Exited(0)),
            timed_out: false,
            output: argv.join(" "),
        })
    }

    fn status(&self, c: &FakeContainer) -> ContainerStatus {
        let exit = c.exit.borrow().clone();
        ContainerStatus {
            id: c.id.clone(),
            started_at: c.started_at,
            running: exit.is_none(),
            exit,
        }
    }

    fn list_pod(&self, _config: &SandboxConfig) -> PodListing<FakeSandbox, FakeContainer> {
        self.record(Op::ListPod);
        let Some((sandbox, found)) = self.state().listing.take() else {
            return PodListing::default();
        };
        let sandbox = sandbox.then(|| {
            let mut st = self.state();
            st.sandboxes += 1;
            let (tx, rx) = oneshot::channel();
            st.evict = Some(tx);
            FakeSandbox {
                id: st.sandboxes,
                evicted: Mutex::new(Some(rx)),
            }
        });
        let containers = found
            .into_iter()
            .map(|f| {
                let handle = match f.state {
                    FoundState::Running | FoundState::Unknown => {
                        Some(self.add_ctr(&f.name, f.instance, f.started_at))
                    }
                    FoundState::Exited { .. } => None,
                };
                Listed { found: f, handle }
            })
            .collect();
        PodListing {
            sandbox,
            containers,
        }
    }

    fn remove_container(&self, c: FakeContainer) -> impl Future<Output = ()> + Send + 'static {
        self.record(Op::Remove {
            name: c.name.clone(),
            instance: c.instance,
        });
        std::future::ready(())
    }
}

impl ProbeService<FakeContainer> for FakeRuntime {
    fn probe(
        &self,
        c: &FakeContainer,
        req: ProbeRequest,
    ) -> impl Future<Output = ProbeResult> + Send + 'static {
        self.record(Op::Probe {
            name: c.name.clone(),
            kind: req.kind,
        });
        let ok = self
            .state()
            .probe_results
            .get_mut(&(c.name.clone(), req.kind))
            .and_then(VecDeque::pop_front)
            .unwrap_or(true);
        std::future::ready(ProbeResult {
            outcome: if ok {
                ProbeOutcome::Success
            } else {
                ProbeOutcome::Failure
            },
            output: if ok {
                String::new()
            } else {
                "probe failed".into()
            },
        })
    }

    fn run_hook(
        &self,
        c: &FakeContainer,
        _req: HookRequest,
    ) -> impl Future<Output = Result<(), String>> + Send + 'static {
        self.record(Op::Hook {
            name: c.name.clone(),
        });
        let r = self
            .state()
            .hook_results
            .get(&c.name)
            .cloned()
            .unwrap_or(Ok(()));
        std::future::ready(r)
    }
}

// --- images -------------------------------------------------------------------------------------

/// One call of the worker to the fake image service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageOp {
    Status(String),
    /// A pull began (its turn in the node's queue had come).
    PullBegin {
        image: String,
        secrets: PullSecrets,
    },
    PullEnd {
        image: String,
        ok: bool,
    },
}

/// How long a pull takes (ms) and how it ends (`Ok(size)` or the error).
type PullScript = (u64, Result<u64, String>);

#[derive(Default)]
struct ImageState {
    calls: Vec<(Time, ImageOp)>,
    present: HashMap<String, ImageInfo>,
    /// Per image, the next pulls: how long each takes and its outcome (then: 0 ms, success).
    pulls: HashMap<String, VecDeque<PullScript>>,
    invalid: HashMap<String, String>,
}

struct ImageShared {
    clock: TokioClock,
    state: Mutex<ImageState>,
}

/// A recording fake of `ImageService`: the test says which images are present and how each
/// pull goes (duration on the paused clock, outcome).
#[derive(Clone)]
pub struct FakeImages {
    shared: Arc<ImageShared>,
}

impl FakeImages {
    pub fn new(clock: TokioClock) -> Self {
        FakeImages {
            shared: Arc::new(ImageShared {
                clock,
                state: Mutex::default(),
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, ImageState> {
        self.shared.state.lock().unwrap()
    }

    /// What the fake reports for `image` once present.
    pub fn info(image: &str) -> ImageInfo {
        ImageInfo {
            id: format!("sha256:{:064x}", image.len() + 1),
            repo_digest: Some(format!(
                "docker.io/library/{}@sha256:{:064x}",
                image.split(':').next().unwrap(),
                image.len()
            )),
            size: 1000,
        }
    }

    pub fn present(&self, image: &str) {
        self.state()
            .present
            .insert(image.into(), FakeImages::info(image));
    }

    /// The next pull of `image` takes `ms` and ends with `outcome` (`Ok(size)` or the error).
    pub fn pull(&self, image: &str, ms: u64, outcome: Result<u64, String>) {
        self.state()
            .pulls
            .entry(image.into())
            .or_default()
            .push_back((ms, outcome));
    }

    pub fn invalid(&self, image: &str, detail: &str) {
        self.state().invalid.insert(image.into(), detail.into());
    }

    pub fn calls(&self) -> Vec<(Time, ImageOp)> {
        self.state().calls.clone()
    }

    fn record(&self, op: ImageOp) {
        let at = self.shared.clock.now();
        self.state().calls.push((at, op));
    }
}

impl ImageService for FakeImages {
    fn image_status(&self, image: &str) -> Result<Option<ImageInfo>, ImageError> {
        self.record(ImageOp::Status(image.into()));
        let st = self.state();
        if let Some(d) = st.invalid.get(image) {
            return Err(ImageError::InvalidName(d.clone()));
        }
        Ok(st.present.get(image).cloned())
    }

    fn pull_image(
        &self,
        image: &str,
        secrets: &PullSecrets,
    ) -> impl Future<Output = Result<ImageInfo, ImageError>> + Send + 'static {
        let this = self.clone();
        let image = image.to_string();
        let secrets = secrets.clone();
        async move {
            this.record(ImageOp::PullBegin {
                image: image.clone(),
                secrets,
            });
            let (ms, outcome) = this
                .state()
                .pulls
                .get_mut(&image)
                .and_then(VecDeque::pop_front)
                .unwrap_or((0, Ok(1000)));
            tokio::time::sleep(Duration::from_millis(ms)).await;
            this.record(ImageOp::PullEnd {
                image: image.clone(),
                ok: outcome.is_ok(),
            });
            match outcome {
                Ok(size) => {
                    let info = ImageInfo {
                        size,
                        ..FakeImages::info(&image)
                    };
                    this.state().present.insert(image, info.clone());
                    Ok(info)
                }
                Err(m) => Err(ImageError::Pull(m)),
            }
        }
    }

    fn rootfs(&self, image: &str, _holder: &str) -> Result<ImageRootfs, ImageError> {
        Err(ImageError::Store(format!(
            "no rootfs for {image} in the fake"
        )))
    }

    fn release(&self, _holder: &str) {}
}
