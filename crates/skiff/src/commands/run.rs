//! `skiff run`: run one pod to completion on this machine, the way a kubelet would, streaming
//! its containers' output and events; exit 0 if it Succeeded, 1 if it Failed, 124 when
//! `--timeout` ended it, 2 for bad input.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use anyhow::Context;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time as MetaTime;
use skiff_engine::{EngineConfig, Event, EventType, Time};
use skiff_model::manifest::Object;
use skiff_node::logs::{LogLine, Stream};
use skiff_node::sandbox::PodObjects;
use skiff_node::worker::{self, Command, Notice, WorkerConfig};
use tokio::sync::mpsc;

use crate::exit;
use crate::input;
use crate::output::{self, Format};

/// Exit code when `--timeout` ended the pod (as coreutils `timeout`).
const TIMED_OUT: u8 = 124;
/// `--timeout N` bounds the whole run: from N on, the pod's graceful stop gets at most
/// max(N, this) seconds of grace (a larger terminationGracePeriodSeconds is overridden, as
/// `kubectl delete --grace-period` does), and whatever still runs twice that (+2 s) after N is
/// killed at once (sidecar floors, stuck hooks). The floor keeps short timeouts from cutting a
/// modest grace period.
const TIMEOUT_STOP_BUDGET_S: u64 = 5;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Manifest with exactly one Pod (ConfigMaps and Secrets beside it are kept); `-` reads stdin.
    #[arg(short = 'f', long = "filename")]
    file: String,
    /// Terminate the pod gracefully after this many seconds and exit 124. Bounds the whole
    /// run: the graceful stop then gets at most max(SECONDS, 5) s of grace, and what still runs
    /// 2×max(SECONDS, 5)+2 s after the timeout is killed.
    #[arg(long, value_name = "SECONDS")]
    timeout: Option<u64>,
    /// Print the final Pod (spec after defaulting, status) to stdout at exit.
    #[arg(short = 'o', long = "output", value_enum)]
    output: Option<Format>,
    /// Where the pod's logs and status stay (`--data-dir`, `--rm`, `--keep-pods`, `--keep-for`).
    #[command(flatten)]
    store: crate::store::RunStoreArgs,
    /// Resources held back from pods when admitting them (kubelet `--system-reserved`), e.g.
    /// `cpu=100m,memory=256Mi`. Node allocatable = machine capacity − this − the kubelet's
    /// default hard eviction thresholds (memory 100Mi, 10% of the data dir's filesystem).
    #[arg(long, value_name = "LIST", default_value = "")]
    system_reserved: String,
    /// `pids.max` of the pod cgroup (kubelet `--pod-max-pids`); unlimited by default.
    #[arg(long, value_name = "N")]
    pod_max_pids: Option<u64>,
}

pub fn run(args: &Args) -> u8 {
    if let Some(n) = args.pod_max_pids {
        let settings = skiff_node::cgroups::CgroupSettings {
            pod_pids_limit: Some(n),
            ..Default::default()
        };
        // The first and only initialisation in this process: it cannot fail here.
        let _ = skiff_node::node::NodeResources::init_global(settings);
    }
    let Some(objects) = input::load_all(std::slice::from_ref(&args.file)) else {
        return exit::BAD_INPUT;
    };
    let Some(mut pods) = input::prepare_pods(&objects) else {
        return exit::BAD_INPUT;
    };
    let mut pod = match pods.len() {
        1 => pods.remove(0),
        n => {
            eprintln!(
                "error: skiff run runs exactly one Pod; {} has {n}",
                args.file
            );
            return exit::BAD_INPUT;
        }
    };
    let runtime_class = pod.spec.as_ref().and_then(|s| s.runtime_class_name.clone());
    if runtime_class.as_deref() != Some("host") {
        eprintln!(
            "error: spec.runtimeClassName: Unsupported value: {:?}: supported values: \"host\" (container images need the OCI runtime, not in this build)",
            runtime_class.unwrap_or_default()
        );
        return exit::BAD_INPUT;
    }
    admit(&mut pod);
    let reserved = match skiff_model::admission::parse_reserved(&args.system_reserved) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: --system-reserved: {e}");
            return exit::BAD_INPUT;
        }
    };
    // Node admission (A1): `skiff run` runs one pod, so nothing else counts as used.
    if let Some(spec) = &pod.spec {
        let data_dir = args.store.admission_dir();
        let node = skiff_node::node::NodeResources::global();
        if let Err(rejection) = node.admit(spec, &[], &reserved, &data_dir) {
            return reject(pod, &rejection, args);
        }
    }
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let pod_objects = objects_of(&objects, &namespace);

    match run_admitted(pod, pod_objects, args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            exit::FAILURE
        }
    }
}

/// What the API server sets on create: namespace, uid, creation time.
fn admit(pod: &mut Pod) {
    let meta = &mut pod.metadata;
    if meta.namespace.as_deref().unwrap_or("").is_empty() {
        meta.namespace = Some("default".into());
    }
    meta.uid = Some(uuid::Uuid::new_v4().to_string());
    meta.creation_timestamp = Some(worker::now().to_meta());
}

/// A pod rejected at admission (ST7): phase Failed with the reason and message, one Warning
/// event, nothing started; exit 1.
fn reject(mut pod: Pod, rejection: &skiff_model::admission::Rejection, args: &Args) -> u8 {
    let now = worker::now();
    let event = Event {
        type_: EventType::Warning,
        reason: rejection.reason(),
        message: rejection.to_string(),
        container: None,
    };
    Printer::new().print(&Notice::Event(event, now));
    pod.status = Some(rejection.pod_status(pod.spec.as_ref(), now.to_meta()));
    args.store.record_rejected(&pod);
    if let Some(format) = args.output {
        match output::render(&pod, format) {
            Ok(text) => {
                print!("{text}");
                std::io::stdout().flush().ok();
            }
            Err(e) => eprintln!("error: {e:#}"),
        }
    }
    eprintln!(
        "skiff: pod {} Failed: {}: {}",
        pod.metadata.name.as_deref().unwrap_or(""),
        rejection.reason(),
        rejection.pod_message()
    );
    exit::FAILURE
}

/// The ConfigMaps and Secrets of the manifest in the pod's namespace (a document without a
/// namespace is in the pod's).
fn objects_of(objects: &[Object], namespace: &str) -> PodObjects {
    let mut out = PodObjects::default();
    let in_ns = |meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| {
        meta.namespace.as_deref().is_none_or(|ns| ns == namespace)
    };
    for obj in objects {
        match obj {
            Object::ConfigMap(cm) if in_ns(&cm.metadata) => {
                out.config_maps
                    .insert(obj.name().to_string(), cm.as_ref().clone());
            }
            Object::Secret(s) if in_ns(&s.metadata) => {
                out.secrets
                    .insert(obj.name().to_string(), s.as_ref().clone());
            }
            _ => {}
        }
    }
    out
}

fn run_admitted(mut pod: Pod, objects: PodObjects, args: &Args) -> anyhow::Result<u8> {
    // The data dir (created, checked, pruned): the pod's logs and status stay there.
    let data_dir = args.store.prepare()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let (status, timed_out) =
        rt.block_on(drive(pod.clone(), objects, data_dir.clone(), args.timeout))?;
    rt.shutdown_timeout(std::time::Duration::from_secs(1));
    args.store.finish(&data_dir, &pod);

    let phase = status.phase.clone().unwrap_or_default();
    pod.status = Some(status);
    if let Some(format) = args.output {
        let text = output::render(&pod, format)?;
        print!("{text}");
        std::io::stdout().flush().ok();
    }
    eprintln!(
        "skiff: pod {} {}",
        pod.metadata.name.as_deref().unwrap_or(""),
        phase
    );
    Ok(if timed_out {
        TIMED_OUT
    } else if phase == "Succeeded" {
        0
    } else {
        exit::FAILURE
    })
}

async fn drive(
    pod: Pod,
    objects: PodObjects,
    data_dir: PathBuf,
    timeout: Option<u64>,
) -> anyhow::Result<(k8s_openapi::api::core::v1::PodStatus, bool)> {
    use tokio::signal::unix::{signal, SignalKind};

    let tgps = pod
        .spec
        .as_ref()
        .and_then(|s| s.termination_grace_period_seconds)
        .unwrap_or(30);
    let (cmd_tx, cmd_rx) = mpsc::channel(8);
    let (notice_tx, mut notice_rx) = mpsc::unbounded_channel();
    let cfg = WorkerConfig {
        data_dir,
        engine: EngineConfig::default(),
        objects,
    };
    let mut worker = tokio::spawn(worker::run_pod(pod, cfg, cmd_rx, notice_tx));

    let mut sigint = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let mut sigterm = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let deadline = async {
        match timeout {
            Some(s) => tokio::time::sleep(std::time::Duration::from_secs(s)).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(deadline);
    let stop_budget = timeout.unwrap_or(0).max(TIMEOUT_STOP_BUDGET_S);
    // Set once the deadline passed: when to kill whatever is left (see TIMEOUT_STOP_BUDGET_S).
    let mut kill_at: Option<tokio::time::Instant> = None;
    let mut deadline_passed = false;
    let mut printer = Printer::new();
    let mut stopping = false;
    let mut timed_out = false;

    let result = loop {
        tokio::select! {
            res = &mut worker => break res,
            Some(n) = notice_rx.recv() => printer.print(&n),
            _ = sigint.recv() => {
                if stopping {
                    eprintln!("skiff: killing the pod now");
                    let _ = cmd_tx.send(Command::KillNow).await;
                } else {
                    stopping = true;
                    eprintln!("skiff: interrupted; stopping the pod gracefully (Ctrl-C again kills it)");
                    let _ = cmd_tx.send(Command::Stop { grace: None }).await;
                }
            }
            _ = sigterm.recv() => {
                stopping = true;
                let _ = cmd_tx.send(Command::Stop { grace: None }).await;
            }
            // Also after a signal: the timeout bounds a graceful stop already under way.
            _ = &mut deadline, if !deadline_passed => {
                deadline_passed = true;
                if !stopping {
                    timed_out = true;
                    eprintln!("skiff: --timeout reached; stopping the pod");
                }
                stopping = true;
                let budget = i64::try_from(stop_budget).unwrap_or(i64::MAX);
                let grace = (tgps > budget).then_some(budget);
                let _ = cmd_tx.send(Command::Stop { grace }).await;
                kill_at = tokio::time::Instant::now().checked_add(std::time::Duration::from_secs(
                    stop_budget.saturating_mul(2).saturating_add(2),
                ));
            }
            _ = sleep_until_opt(kill_at), if kill_at.is_some() => {
                kill_at = None;
                eprintln!("skiff: the pod did not stop within the --timeout bound; killing it");
                let _ = cmd_tx.send(Command::KillNow).await;
            }
        }
    };
    // Whatever the worker said last.
    while let Ok(n) = notice_rx.try_recv() {
        printer.print(&n);
    }
    let status = result.context("pod worker panicked")??;
    Ok((status, timed_out))
}

async fn sleep_until_opt(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Prints container output as `[name] line` and events, coloured when stderr is a terminal.
struct Printer {
    color: bool,
    palette: HashMap<String, &'static str>,
}

const COLORS: [&str; 6] = [
    "\x1b[36m", "\x1b[33m", "\x1b[35m", "\x1b[32m", "\x1b[34m", "\x1b[96m",
];
const RESET: &str = "\x1b[0m";

impl Printer {
    fn new() -> Self {
        Printer {
            color: std::io::stderr().is_terminal(),
            palette: HashMap::new(),
        }
    }

    fn tag(&mut self, name: &str) -> String {
        if !self.color {
            return format!("[{name}]");
        }
        let next = COLORS[self.palette.len() % COLORS.len()];
        let c = *self.palette.entry(name.to_string()).or_insert(next);
        format!("{c}[{name}]{RESET}")
    }

    fn print(&mut self, n: &Notice) {
        let mut err = std::io::stderr().lock();
        match n {
            Notice::Log(LogLine {
                container,
                stream,
                content,
                ..
            }) => {
                let tag = self.tag(container);
                let _ = match stream {
                    Stream::Stdout => writeln!(err, "{tag} {content}"),
                    Stream::Stderr => writeln!(err, "{tag} {content}"),
                };
            }
            Notice::Event(e, at) => {
                let _ = writeln!(err, "{}", format_event(e, *at, self.color));
            }
        }
    }
}

fn format_event(e: &Event, at: Time, color: bool) -> String {
    let kind = match e.type_ {
        EventType::Normal => "Normal",
        EventType::Warning => "Warning",
    };
    let time: MetaTime = at.to_meta();
    let stamp = serde_json::to_value(&time)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    let line = format!("[event] {stamp} {kind} {}: {}", e.reason, e.message);
    if color && e.type_ == EventType::Warning {
        format!("\x1b[31m{line}{RESET}")
    } else {
        line
    }
}
