//! `skiff run -f job.yaml`: a batch/v1 Job run to its end on this machine without a daemon.
//! The Job controller of `skiff-controllers` (the one `skiff serve` runs) decides; this module
//! is its API: it keeps the Job and its pods in memory, starts each pod the controller creates
//! on the same pod workers `skiff run` uses (up to `parallelism` at once), feeds their status
//! back, and wakes the controller for back-off and deadlines on the real clock.
//!
//! Exit codes: 0 the Job is Complete; 1 it Failed (any reason: BackoffLimitExceeded,
//! DeadlineExceeded, PodFailurePolicy, FailedIndexes, MaxFailedIndexesExceeded — the last line
//! names it); 2 bad input; 124/130/143 as for a pod (`--timeout`, SIGINT, SIGTERM stopped it).

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Pod, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time as MetaTime;
use skiff_controllers::job as controller;
use skiff_controllers::{Action, EventNote, Kind, Object as CtlObject};
use skiff_engine::{EngineConfig, Event, EventType};
use skiff_model::manifest::Object;
use skiff_node::cri::RuntimeClasses;
use skiff_node::sandbox::PodObjects;
use skiff_node::worker::{self, Command, Notice, WorkerConfig};
use skiff_timeline::Why;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::{
    objects_of, runnable, sleep_until_opt, sleep_until_time, Args, Ending, Printer, Summary,
    INTERRUPTED, TERMINATED, TIMED_OUT, TIMEOUT_STOP_BUDGET,
};
use crate::events::Line;
use crate::exit;
use crate::output;
use crate::style::{sgr, Style};

/// Test-only: the controller's pod-failure back-off base in milliseconds (upstream's 10 s
/// makes every retry test slow). Not documented for users on purpose.
const BACKOFF_ENV: &str = "SKIFF_TEST_JOB_BACKOFF_MS";
/// Reconciles in a row without waiting (each applies the previous one's writes).
const MAX_RECONCILES_PER_WAKE: usize = 64;

/// Whether the runnable object of a manifest is a Job (the one workload `run` drives with its
/// controller instead of running its template as one pod).
pub(super) fn is_job(object: &Object) -> bool {
    matches!(object, Object::Workload(w) if w.kind == "Job" && w.api_version == "batch/v1")
}

/// Runs the Job of `objects[index]` (already loaded, its template validated).
pub(super) fn run(args: &Args, source: &str, objects: Vec<Object>, index: usize) -> u8 {
    let Some(Object::Workload(w)) = objects.get(index) else {
        return exit::BAD_INPUT;
    };
    let mut job: Job = match serde_json::from_value(w.object.clone()) {
        Ok(j) => j,
        Err(e) => {
            eprintln!("error: {source}: {e}");
            return exit::BAD_INPUT;
        }
    };
    if let Some(ns) = &w.namespace {
        job.metadata.namespace = Some(ns.clone());
    }
    // What the API server does on create: defaults, the strategy's preparation, uid and
    // creation time, the generated selector, validation.
    skiff_model::workloads::job::default_job(&mut job);
    skiff_model::workloads::job::prepare_for_create(&mut job);
    let meta = &mut job.metadata;
    if meta.namespace.as_deref().unwrap_or("").is_empty() {
        meta.namespace = Some("default".into());
    }
    meta.uid = Some(uuid::Uuid::new_v4().to_string());
    meta.creation_timestamp = Some(MetaTime(crate::store::now()));
    skiff_model::workloads::job::generate_selector(&mut job);
    let errors = skiff_model::workloads::job::validate_job(&job);
    let name = job.metadata.name.clone().unwrap_or_default();
    if !errors.is_empty() {
        let invalid = skiff_model::manifest::ObjectInvalid {
            kind: "Job".into(),
            name: name.clone(),
            errors,
        };
        eprintln!("{source}: {}", invalid.kubectl_message());
        return exit::BAD_INPUT;
    }
    let spec = job.spec.clone().unwrap_or_default();
    if spec.suspend == Some(true) {
        eprintln!("error: {source}: job {name:?} is suspended (spec.suspend: true): skiff run would start no pod and wait forever; set suspend: false");
        return exit::BAD_INPUT;
    }
    if args.exit_code_from.is_some() {
        eprintln!("error: --exit-code-from applies to a Pod; a Job's exit code is its result (0 Complete, 1 Failed)");
        return exit::BAD_INPUT;
    }
    // The template as the pod the controller will create: what this node can run.
    let template_pod = Pod {
        metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            name: Some(name.clone()),
            ..Default::default()
        },
        spec: spec.template.spec.clone(),
        status: None,
    };
    if let Err(message) = runnable(&template_pod, RuntimeClasses::detect) {
        eprintln!("error: {source}: {message}");
        return exit::BAD_INPUT;
    }
    let unsupported = template_pod
        .spec
        .as_ref()
        .map(skiff_model::gates::unsupported);
    for u in unsupported.iter().flatten() {
        eprintln!("error: {u}");
    }
    if unsupported.is_some_and(|u| !u.is_empty()) {
        return exit::BAD_INPUT;
    }
    let reserved = match skiff_model::admission::parse_reserved(&args.system_reserved) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: --system-reserved: {e}");
            return exit::BAD_INPUT;
        }
    };
    let namespace = job.metadata.namespace.clone().unwrap_or_default();
    let pod_objects = objects_of(&objects, &namespace);
    match run_admitted(job, pod_objects, reserved, args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            exit::FAILURE
        }
    }
}

fn controller_config() -> controller::Config {
    let mut cfg = controller::Config::default();
    if let Some(ms) = std::env::var(BACKOFF_ENV)
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        cfg.pod_failure_backoff = Duration::from_millis(ms);
    }
    cfg
}

fn run_admitted(
    job: Job,
    objects: PodObjects,
    reserved: skiff_model::resources::ResourceList,
    args: &Args,
) -> anyhow::Result<u8> {
    let data_dir = args.store.prepare()?;
    // Each pod worker loads skiff's CA and token signer, creating them on first use; create
    // them once here so that parallel pods do not race to make them.
    let _ = PodObjects::default().with_cluster_identity(&data_dir, "default");
    // Pod workers do blocking work (process spawns); with `parallelism` pods at once, more
    // threads than `skiff run`'s two keep one pod's spawn from holding up the others.
    let threads = std::thread::available_parallelism()
        .map_or(2, usize::from)
        .max(4);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let runner = Runner {
        job,
        pods: Vec::new(),
        data_dir: data_dir.clone(),
        objects,
        reserved,
        cfg: controller_config(),
        lines_to_stdout: args.output.is_none(),
        printers: HashMap::new(),
        commands: HashMap::new(),
        done: HashSet::new(),
        finished_pods: Vec::new(),
        style: Style::stderr(),
    };
    let timeout = args.timeout.filter(|t| !t.is_zero());
    let (runner, ending) = rt.block_on(runner.drive(timeout))?;
    rt.shutdown_timeout(Duration::from_secs(1));
    // Read before `--rm` removes the pods' directories.
    let timelines: Vec<_> = if args.timeline {
        runner
            .finished_pods
            .iter()
            .map(|p| super::pod_timeline(&data_dir, p))
            .collect()
    } else {
        Vec::new()
    };
    for pod in &runner.finished_pods {
        args.store.finish(&data_dir, pod);
    }
    if let Some(format) = &args.output {
        let text = output::render_object(&runner.job, format)?;
        print!("{text}");
        std::io::stdout().flush().ok();
    }
    let code = runner.summary(ending);
    for tl in timelines {
        match tl {
            Ok(tl) => crate::commands::timeline::draw_on_stderr(&tl),
            Err(e) => eprintln!("skiff: no timeline of a pod of the job: {e}"),
        }
    }
    Ok(code)
}

struct Runner {
    job: Job,
    /// The Job's pods as an API server would hold them.
    pods: Vec<Pod>,
    data_dir: PathBuf,
    objects: PodObjects,
    reserved: skiff_model::resources::ResourceList,
    cfg: controller::Config,
    lines_to_stdout: bool,
    /// Per pod (uid): its output and events printer, its worker's command channel.
    printers: HashMap<String, Printer>,
    commands: HashMap<String, mpsc::Sender<Command>>,
    /// Pods whose worker has ended (their status is final).
    done: HashSet<String>,
    /// Every pod that ran, final, for the store's `--rm`/retention at the end.
    finished_pods: Vec<Pod>,
    style: Style,
}

type WorkerResult = (String, anyhow::Result<PodStatus>);

impl Runner {
    async fn drive(mut self, timeout: Option<Duration>) -> anyhow::Result<(Runner, Ending)> {
        use tokio::signal::unix::{signal, SignalKind};
        let mut sigint =
            signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
        let mut sigterm =
            signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
        let (notice_tx, mut notice_rx) = mpsc::unbounded_channel::<(String, Notice)>();
        let mut workers: JoinSet<WorkerResult> = JoinSet::new();
        let deadline = async {
            match timeout {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(deadline);
        let stop_budget = timeout.unwrap_or_default().max(TIMEOUT_STOP_BUDGET);
        let mut kill_at: Option<tokio::time::Instant> = None;
        let mut deadline_passed = false;
        let mut ending = Ending::Finished;
        let mut requeue: Option<tokio::time::Instant> = None;
        loop {
            if ending == Ending::Finished {
                requeue = self.reconcile(&mut workers, &notice_tx);
                if controller::finished_condition(&self.job).is_some() && workers.is_empty() {
                    break;
                }
            } else if workers.is_empty() {
                break;
            }
            let held_due = self.printers.values().filter_map(Printer::next_due).min();
            tokio::select! {
                Some(res) = workers.join_next(), if !workers.is_empty() => {
                    match res {
                        Ok((uid, result)) => self.worker_done(&uid, result),
                        Err(e) => anyhow::bail!("a pod worker panicked: {e}"),
                    }
                }
                Some((uid, n)) = notice_rx.recv() => self.notice(&uid, n),
                _ = sleep_until_opt(requeue), if requeue.is_some() => {}
                _ = sleep_until_time(held_due), if held_due.is_some() => {
                    for p in self.printers.values_mut() {
                        p.tick();
                    }
                }
                _ = sigint.recv() => {
                    if ending != Ending::Finished {
                        self.notice_line("killing the job's pods now");
                        self.broadcast(|| Command::KillNow).await;
                    } else {
                        ending = Ending::Interrupted;
                        self.notice_line("interrupted; stopping the job's pods gracefully (Ctrl-C again kills them)");
                        self.broadcast(|| Command::Stop { grace: None, why: Why::Interrupt }).await;
                    }
                }
                _ = sigterm.recv() => {
                    if ending == Ending::Finished {
                        ending = Ending::Terminated;
                        self.notice_line("SIGTERM; stopping the job's pods gracefully");
                    }
                    self.broadcast(|| Command::Stop { grace: None, why: Why::Terminate }).await;
                }
                _ = &mut deadline, if !deadline_passed => {
                    deadline_passed = true;
                    if let (Ending::Finished, Some(d)) = (ending, timeout) {
                        ending = Ending::TimedOut(d);
                        self.notice_line(&format!(
                            "--timeout {} reached; stopping the job's pods",
                            crate::duration::format_go(d)
                        ));
                    }
                    let budget = i64::try_from(stop_budget.as_secs()).unwrap_or(i64::MAX).max(1);
                    self.broadcast(|| Command::Stop { grace: Some(budget), why: Why::Timeout }).await;
                    kill_at = tokio::time::Instant::now().checked_add(
                        stop_budget.saturating_mul(2).saturating_add(Duration::from_secs(2)),
                    );
                }
                _ = sleep_until_opt(kill_at), if kill_at.is_some() => {
                    kill_at = None;
                    self.notice_line("the job's pods did not stop within the --timeout bound; killing them");
                    self.broadcast(|| Command::KillNow).await;
                }
            }
        }
        while let Ok((uid, n)) = notice_rx.try_recv() {
            self.notice(&uid, n);
        }
        for p in self.printers.values_mut() {
            p.finish();
        }
        Ok((self, ending))
    }

    fn notice_line(&self, text: &str) {
        eprintln!("skiff: {text}");
    }

    async fn broadcast(&self, cmd: impl Fn() -> Command) {
        for (uid, tx) in &self.commands {
            if !self.done.contains(uid) {
                let _ = tx.send(cmd()).await;
            }
        }
    }

    /// Runs the controller until it asks for nothing more; when to wake it next.
    fn reconcile(
        &mut self,
        workers: &mut JoinSet<WorkerResult>,
        notices: &mpsc::UnboundedSender<(String, Notice)>,
    ) -> Option<tokio::time::Instant> {
        let mut requeue = None;
        for _ in 0..MAX_RECONCILES_PER_WAKE {
            let d =
                controller::reconcile_with(&self.job, &self.pods, crate::store::now(), &self.cfg);
            requeue = d
                .requeue_after
                .and_then(|r| tokio::time::Instant::now().checked_add(r));
            for e in &d.events {
                self.job_event(e);
            }
            if d.actions.is_empty() {
                break;
            }
            for a in d.actions {
                self.apply(a, workers, notices);
            }
            if controller::finished_condition(&self.job).is_some() {
                // Finished: no TTL in a one-shot run.
                break;
            }
        }
        requeue
    }

    fn job_event(&self, e: &EventNote) {
        let line = Line {
            event: Event {
                type_: if e.type_ == "Warning" {
                    EventType::Warning
                } else {
                    EventType::Normal
                },
                reason: e.reason.clone(),
                message: e.message.clone(),
                container: None,
            },
            at: worker::now(),
            count: 1,
            first: worker::now(),
        };
        let text = super::format_event(&line, Style::with_color(false));
        let text = format!("{text} (job/{})", e.name);
        let code = if e.type_ == "Warning" {
            sgr::YELLOW
        } else {
            sgr::DIM
        };
        eprintln!("{}", self.style.paint(code, &text));
    }

    fn apply(
        &mut self,
        action: Action,
        workers: &mut JoinSet<WorkerResult>,
        notices: &mpsc::UnboundedSender<(String, Notice)>,
    ) {
        match action {
            Action::Create(CtlObject::Pod(pod)) => self.create(*pod, workers, notices),
            Action::Update(CtlObject::Pod(pod)) => {
                let uid = pod.metadata.uid.clone().unwrap_or_default();
                if let Some(p) = self.pod_mut(&uid) {
                    p.metadata.finalizers = pod.metadata.finalizers;
                }
                self.collect(&uid);
            }
            Action::UpdateStatus(CtlObject::Job(job)) => self.job.status = job.status,
            Action::Delete {
                kind: Kind::Pod,
                uid: Some(uid),
                ..
            } => {
                let now = crate::store::now();
                if let Some(p) = self.pod_mut(&uid) {
                    if p.metadata.deletion_timestamp.is_none() {
                        let grace = p
                            .spec
                            .as_ref()
                            .and_then(|s| s.termination_grace_period_seconds)
                            .unwrap_or(30);
                        p.metadata.deletion_timestamp = Some(MetaTime(now));
                        p.metadata.deletion_grace_period_seconds = Some(grace);
                    }
                }
                if !self.done.contains(&uid) {
                    if let Some(tx) = self.commands.get(&uid) {
                        let _ = tx.try_send(Command::Stop {
                            grace: None,
                            why: Why::Deletion,
                        });
                    }
                }
                self.collect(&uid);
            }
            // A Job deletion (TTL) cannot happen before the run ends; others are not asked.
            other => tracing::debug!(?other, "action not applied in skiff run"),
        }
    }

    fn pod_mut(&mut self, uid: &str) -> Option<&mut Pod> {
        self.pods
            .iter_mut()
            .find(|p| p.metadata.uid.as_deref() == Some(uid))
    }

    /// Removes a pod that is deleted, ended and has no finalizer left (the API would).
    fn collect(&mut self, uid: &str) {
        let gone = |p: &Pod| {
            p.metadata.uid.as_deref() == Some(uid)
                && p.metadata.deletion_timestamp.is_some()
                && p.metadata.finalizers.as_ref().is_none_or(Vec::is_empty)
        };
        if self.done.contains(uid) {
            self.pods.retain(|p| !gone(p));
        }
    }

    /// What the API server does with the controller's pod (name from generateName, uid,
    /// defaults and validation), then node admission and a worker.
    fn create(
        &mut self,
        pod: Pod,
        workers: &mut JoinSet<WorkerResult>,
        notices: &mpsc::UnboundedSender<(String, Notice)>,
    ) {
        let mut pod = match skiff_model::prepare_pod(pod) {
            Ok(p) => p,
            Err(invalid) => {
                // The template was validated: not expected; the controller retries.
                eprintln!("skiff: creating a pod of the job failed: {invalid}");
                return;
            }
        };
        let prefix = pod.metadata.generate_name.clone().unwrap_or_default();
        let name = format!("{prefix}{}", name_suffix());
        let uid = uuid::Uuid::new_v4().to_string();
        pod.metadata.name = Some(name.clone());
        pod.metadata.uid = Some(uid.clone());
        pod.metadata.creation_timestamp = Some(MetaTime(crate::store::now()));
        self.job_event(&controller::created_event(&self.job, &name));
        let mut printer = Printer::new(self.lines_to_stdout);
        printer.pod = Some(name.clone());
        // Node admission (A1) against the pods running now.
        let running: Vec<_> = self
            .pods
            .iter()
            .filter(|p| !self.done.contains(p.metadata.uid.as_deref().unwrap_or("")))
            .filter_map(|p| p.spec.as_ref())
            .collect();
        let node = skiff_node::node::NodeResources::global();
        if let Some(spec) = &pod.spec {
            if let Err(rejection) = node.admit(spec, &running, &self.reserved, &self.data_dir) {
                let now = worker::now();
                let event = Event {
                    type_: EventType::Warning,
                    reason: rejection.reason(),
                    message: rejection.to_string(),
                    container: None,
                };
                printer.print(&Notice::Event(event, now));
                pod.status = Some(rejection.pod_status(pod.spec.as_ref(), now.to_meta()));
                self.done.insert(uid.clone());
                self.printers.insert(uid, printer);
                self.finished_pods.push(pod.clone());
                self.pods.push(pod);
                return;
            }
        }
        pod.status = Some(PodStatus {
            phase: Some("Pending".into()),
            ..Default::default()
        });
        let (cmd_tx, cmd_rx) = mpsc::channel(8);
        let (tx, mut rx) = mpsc::unbounded_channel();
        let forward = notices.clone();
        let tag = uid.clone();
        tokio::spawn(async move {
            while let Some(n) = rx.recv().await {
                if forward.send((tag.clone(), n)).is_err() {
                    break;
                }
            }
        });
        let cfg = WorkerConfig {
            data_dir: self.data_dir.clone(),
            engine: EngineConfig::default(),
            objects: self.objects.clone(),
            keeper: std::env::current_exe().ok(),
            image_pulls: worker::PullQueue::node(),
            persistent: false,
        };
        let run_pod = pod.clone();
        let wuid = uid.clone();
        workers.spawn(async move {
            let res = worker::run_pod(run_pod, cfg, cmd_rx, tx)
                .await
                .map_err(anyhow::Error::from);
            (wuid, res)
        });
        self.commands.insert(uid.clone(), cmd_tx);
        self.printers.insert(uid, printer);
        self.pods.push(pod);
    }

    fn notice(&mut self, uid: &str, n: Notice) {
        match n {
            Notice::Status(status) => {
                // A worker's last word is its result; an older status must not revive it.
                if !self.done.contains(uid) {
                    if let Some(p) = self.pod_mut(uid) {
                        p.status = Some(*status);
                    }
                }
            }
            other => {
                if let Some(p) = self.printers.get_mut(uid) {
                    p.print(&other);
                }
            }
        }
    }

    fn worker_done(&mut self, uid: &str, result: anyhow::Result<PodStatus>) {
        self.done.insert(uid.to_string());
        self.commands.remove(uid);
        let status = match result {
            Ok(s) => s,
            Err(e) => {
                eprintln!("skiff: pod worker: {e:#}");
                PodStatus {
                    phase: Some("Failed".into()),
                    reason: Some("Error".into()),
                    message: Some(format!("{e:#}")),
                    ..Default::default()
                }
            }
        };
        if let Some(p) = self.pod_mut(uid) {
            p.status = Some(status);
            let pod = p.clone();
            self.finished_pods.push(pod);
        }
        if let Some(p) = self.printers.get_mut(uid) {
            p.finish();
        }
        self.collect(uid);
    }

    /// The last lines and the exit code.
    fn summary(&self, ending: Ending) -> u8 {
        let name = self.job.metadata.name.as_deref().unwrap_or("");
        let status = self.job.status.clone().unwrap_or_default();
        let counts = format!(
            "{} succeeded, {} failed",
            status.succeeded.unwrap_or(0),
            status.failed.unwrap_or(0)
        );
        let style = Style::stderr();
        let (code, ok, headline) = match ending {
            Ending::Interrupted => (
                INTERRUPTED,
                false,
                format!("job {name} stopped (SIGINT; {counts})"),
            ),
            Ending::Terminated => (
                TERMINATED,
                false,
                format!("job {name} stopped (SIGTERM; {counts})"),
            ),
            Ending::TimedOut(d) => (
                TIMED_OUT,
                false,
                format!(
                    "job {name} stopped after --timeout {} ({counts})",
                    crate::duration::format_go(d)
                ),
            ),
            Ending::Finished => match controller::finished_condition(&self.job) {
                Some(c) if c.type_ == "Complete" => {
                    (0, true, format!("job {name} Complete ({counts})"))
                }
                Some(c) => (
                    exit::FAILURE,
                    false,
                    format!(
                        "job {name} Failed ({}): {} ({counts})",
                        c.reason.as_deref().unwrap_or(""),
                        c.message.as_deref().unwrap_or("")
                    ),
                ),
                None => (
                    exit::FAILURE,
                    false,
                    format!("job {name} did not finish ({counts})"),
                ),
            },
        };
        if !ok {
            // The last failed pod's containers, as `skiff run` shows a failed pod.
            if let Some(pod) = self
                .finished_pods
                .iter()
                .rev()
                .find(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Failed"))
            {
                Summary::of(pod, Ending::Finished, None).print(style);
            }
        }
        let word = if ok { sgr::GREEN } else { sgr::RED };
        eprintln!("skiff: {}", style.paint(word, &headline));
        code
    }
}

/// The API server's name generator: 5 characters of `bcdfghjklmnpqrstvwxz2456789`.
fn name_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let bytes = uuid::Uuid::new_v4().into_bytes();
    bytes
        .iter()
        .take(5)
        .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]))
        .collect()
}
