//! `skiff run`: run one pod to completion on this machine, the way a kubelet would, streaming
//! its containers' output (stdout) and events (stderr), and saying at the end how it ended.
//!
//! Exit codes: 0 the pod Succeeded, 1 it Failed, 2 bad input (nothing started), 124 `--timeout`
//! stopped it, 130 SIGINT stopped it, 143 SIGTERM stopped it (128 + the signal, as a shell
//! reports a process the signal ended: the stop was asked for, so it is neither success nor
//! the pod's failure). `--exit-code-from C` makes a pod that ended by itself exit with C's code.

use skiff_node::cri::RuntimeClasses;
use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time as MetaTime;
use skiff_engine::{EngineConfig, Event, EventType, Time};
use skiff_model::manifest::Object;
use skiff_node::logs::LogLine;
use skiff_node::sandbox::PodObjects;
use skiff_node::worker::{self, Command, Notice, WorkerConfig};
use skiff_timeline::Why;
use tokio::sync::mpsc;

use crate::events::{Correlator, Line};
use crate::exit;
use crate::input;
use crate::output::{self, OutputFormat};
use crate::style::{sgr, Style};

mod job;

/// Exit code when `--timeout` ended the pod (as coreutils `timeout`).
const TIMED_OUT: u8 = 124;
/// Exit code when SIGINT (Ctrl-C) stopped the pod: 128 + 2.
const INTERRUPTED: u8 = 130;
/// Exit code when SIGTERM stopped the pod: 128 + 15.
const TERMINATED: u8 = 143;
/// `--timeout N` bounds the whole run: from N on, the pod's graceful stop gets at most
/// max(N, this) of grace (a larger terminationGracePeriodSeconds is overridden, as
/// `kubectl delete --grace-period` does), and whatever still runs twice that (+2 s) after N is
/// killed at once (sidecar floors, stuck hooks). The floor keeps short timeouts from cutting a
/// modest grace period.
const TIMEOUT_STOP_BUDGET: Duration = Duration::from_secs(5);
/// The REASON/MESSAGE column of the summary shows at most this many characters.
const DETAIL_WIDTH: usize = 120;

#[derive(clap::Args, Debug)]
pub struct Args {
    // The manifests: exactly one Pod among them, or one workload (Deployment, Job, …) whose
    // pod template runs as one pod; ConfigMaps and Secrets beside it are kept, other kinds
    // skipped with a line each.
    #[command(flatten)]
    manifests: input::Manifests,
    /// Terminate the pod gracefully after this long and exit 124: a Go duration (`90s`, `2m`,
    /// `1h30m`) or whole seconds; 0 means no timeout. Bounds the whole run: the graceful stop
    /// then gets at most max(DURATION, 5s) of grace, and what still runs 2×max(DURATION, 5s)+2s
    /// after the timeout is killed.
    #[arg(long, value_name = "DURATION", value_parser = crate::duration::parse_flag)]
    timeout: Option<Duration>,
    /// Exit with this container's exit code (its last termination) when the pod ends by itself,
    /// as `docker compose up --exit-code-from`; a stop (signal, `--timeout`) still exits
    /// 130/143/124.
    #[arg(long, value_name = "CONTAINER")]
    exit_code_from: Option<String>,
    /// Print the final Pod (spec after defaulting, status) to stdout at exit: json, yaml, name,
    /// jsonpath=TEMPLATE or jsonpath-file=FILE; container output then goes to stderr.
    #[arg(short = 'o', long = "output", value_parser = OutputFormat::parse)]
    output: Option<OutputFormat>,
    /// At the end, draw the pod's timeline (as `skiff timeline POD`) on stderr.
    #[arg(long)]
    timeline: bool,
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
    /// Image garbage collection (kubelet `--image-gc-high-threshold`): after an image pod's
    /// run, when the filesystem holding the image store is at least this full (percent),
    /// unused images are removed, least recently used first (none younger than 2 minutes),
    /// until it is at `--image-gc-low-threshold`. 100 turns it off.
    #[arg(long, value_name = "PERCENT", default_value_t = 85, value_parser = clap::value_parser!(u8).range(0..=100))]
    image_gc_high_threshold: u8,
    /// Where image garbage collection stops (kubelet `--image-gc-low-threshold`, percent).
    #[arg(long, value_name = "PERCENT", default_value_t = 80, value_parser = clap::value_parser!(u8).range(0..=100))]
    image_gc_low_threshold: u8,
}

pub fn run(args: &Args) -> u8 {
    // The kubelet refuses the same (`imageGCLowThresholdPercent` must be below the high one).
    if args.image_gc_high_threshold < 100
        && args.image_gc_low_threshold >= args.image_gc_high_threshold
    {
        eprintln!(
            "error: --image-gc-low-threshold ({}) must be less than --image-gc-high-threshold ({})",
            args.image_gc_low_threshold, args.image_gc_high_threshold
        );
        return exit::BAD_INPUT;
    }
    if let Some(Err(e)) = args
        .output
        .as_ref()
        .map(|f| f.ensure(&["json", "yaml", "name", "jsonpath"]))
    {
        eprintln!("error: {e}");
        return exit::BAD_INPUT;
    }
    if let Some(n) = args.pod_max_pids {
        let settings = skiff_node::cgroups::CgroupSettings {
            pod_pids_limit: Some(n),
            ..Default::default()
        };
        // The first and only initialisation in this process: it cannot fail here.
        let _ = skiff_node::node::NodeResources::init_global(settings);
    }
    let Some(prepared) = args.manifests.load_prepared() else {
        return exit::BAD_INPUT;
    };
    // A Job runs through the Job controller (run/job.rs), not as its template's one pod.
    if let [(index, _)] = prepared.pods.as_slice() {
        let index = *index;
        if job::is_job(&prepared.items[index].object) {
            for item in &prepared.items {
                if let Object::Skipped(_) = item.object {
                    if let Some(note) = input::run_note(&item.object) {
                        eprintln!("{note}");
                    }
                }
            }
            let source = prepared.items[index].source.clone();
            let objects: Vec<Object> = prepared.items.into_iter().map(|i| i.object).collect();
            return job::run(args, &source, objects, index);
        }
    }
    for item in &prepared.items {
        if let Some(note) = input::run_note(&item.object) {
            eprintln!("{note}");
        }
    }
    let input::Prepared { items, pods, .. } = prepared;
    let (index, mut pod) = match args.manifests.one_pod(&items, pods) {
        Ok(one) => one,
        Err(message) => {
            eprintln!("error: {message}");
            return exit::BAD_INPUT;
        }
    };
    let source = items[index].source.clone();
    let objects: Vec<Object> = items.into_iter().map(|i| i.object).collect();
    if let Err(message) = runnable(&pod, RuntimeClasses::detect) {
        eprintln!("error: {source}: {message}");
        return exit::BAD_INPUT;
    }
    if let Some(name) = &args.exit_code_from {
        if let Err(message) = names_a_container(&pod, name) {
            eprintln!("error: --exit-code-from: {message}");
            return exit::BAD_INPUT;
        }
    }
    // Valid in 1.37 but beyond this node (gates on by default that skiff cannot carry out).
    let unsupported = pod.spec.as_ref().map(skiff_model::gates::unsupported);
    for u in unsupported.iter().flatten() {
        eprintln!("error: {u}");
    }
    if unsupported.is_some_and(|u| !u.is_empty()) {
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

/// Whether this node can run `pod` with the runtime `classes` found here: its runtime class
/// exists (`host`; no name or an OCI runtime's name → images, which need root; `classes` is
/// asked only then: detection runs a check container per runtime), and under
/// `host` every container has a command; else the message (`pod "x" …`, naming the fix), every
/// offending container at once. `skiff run` and the daemon's admission both ask it.
pub(crate) fn runnable(pod: &Pod, classes: impl FnOnce() -> RuntimeClasses) -> Result<(), String> {
    let name = pod.metadata.name.as_deref().unwrap_or("");
    let Some(spec) = pod.spec.as_ref() else {
        return Ok(());
    };
    if spec.runtime_class_name.as_deref() != Some(RuntimeClasses::HOST) {
        // Detection runs a check container per installed runtime: only for image pods.
        if let Err(e) = classes().for_pod(pod) {
            return Err(format!("pod {name:?}: {e}"));
        }
        if !skiff_node::machine::is_root() {
            return Err(format!(
                "pod {name:?} runs container images, which needs root in this build (rootless image pods are not supported yet): run skiff as root, or set `runtimeClassName: host` and give every container a `command`"
            ));
        }
        return Ok(());
    }
    let missing: Vec<String> = [
        ("initContainers", spec.init_containers.as_deref().unwrap_or_default()),
        ("containers", spec.containers.as_slice()),
    ]
    .into_iter()
    .flat_map(|(list, cs)| {
        cs.iter()
            .enumerate()
            .filter(|(_, c)| c.command.as_ref().is_none_or(Vec::is_empty))
            .map(move |(i, c)| {
                format!(
                    "  spec.{list}[{i}].command: Required value: container {:?} (image {:?}) has no command",
                    c.name,
                    c.image.as_deref().unwrap_or("")
                )
            })
    })
    .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(format!(
        "pod {name:?} cannot run: runtimeClassName \"host\" runs each container's `command` as a process on this machine and pulls no image, so every container needs one:\n{}",
        missing.join("\n")
    ))
}

/// Whether `name` is one of the pod's containers (init, sidecar or app).
fn names_a_container(pod: &Pod, name: &str) -> Result<(), String> {
    let names: Vec<&str> = pod
        .spec
        .iter()
        .flat_map(|s| {
            s.init_containers
                .iter()
                .flatten()
                .chain(s.containers.iter())
        })
        .map(|c| c.name.as_str())
        .collect();
    if names.contains(&name) {
        Ok(())
    } else {
        Err(format!(
            "pod {:?} has no container {name:?} (its containers: {})",
            pod.metadata.name.as_deref().unwrap_or(""),
            names.join(", ")
        ))
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
    let mut printer = Printer::new(args.output.is_none());
    printer.print(&Notice::Event(event, now));
    printer.finish();
    pod.status = Some(rejection.pod_status(pod.spec.as_ref(), now.to_meta()));
    args.store.record_rejected(&pod);
    if let Some(format) = &args.output {
        match output::render_object(&pod, format) {
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

/// The timeline the pod's worker left in its directory (`--timeline`).
fn pod_timeline(
    data_dir: &std::path::Path,
    pod: &Pod,
) -> std::io::Result<skiff_timeline::Timeline> {
    let m = &pod.metadata;
    let dir = skiff_node::store::pods_dir(data_dir).join(format!(
        "{}_{}_{}",
        m.namespace.as_deref().unwrap_or("default"),
        m.name.as_deref().unwrap_or_default(),
        m.uid.as_deref().unwrap_or_default()
    ));
    skiff_node::store::read_timeline(&dir)
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
    let timeout = args.timeout.filter(|t| !t.is_zero());
    let printer = Printer::new(args.output.is_none());
    let (status, ending) = rt.block_on(drive(
        pod.clone(),
        objects,
        data_dir.clone(),
        timeout,
        printer,
    ))?;
    rt.shutdown_timeout(std::time::Duration::from_secs(1));
    // Read before `--rm` removes the pod's directory.
    let timeline = args.timeline.then(|| pod_timeline(&data_dir, &pod));
    args.store.finish(&data_dir, &pod);
    image_gc(&pod, &data_dir, args);

    pod.status = Some(status);
    if let Some(format) = &args.output {
        let text = output::render_object(&pod, format)?;
        print!("{text}");
        std::io::stdout().flush().ok();
    }
    let summary = Summary::of(&pod, ending, args.exit_code_from.as_deref());
    summary.print(Style::stderr());
    match timeline {
        Some(Ok(tl)) => super::timeline::draw_on_stderr(&tl),
        Some(Err(e)) => eprintln!("skiff: no timeline of the pod: {e}"),
        None => {}
    }
    Ok(summary.code)
}

/// The kubelet's threshold image GC, once after an image pod's run (it runs every 5 minutes
/// on a node; a one-pod `skiff run` has no such loop). Never fails the run.
fn image_gc(pod: &Pod, data_dir: &std::path::Path, args: &Args) {
    let host = pod
        .spec
        .as_ref()
        .and_then(|s| s.runtime_class_name.as_deref())
        == Some(RuntimeClasses::HOST);
    if host || args.image_gc_high_threshold >= 100 {
        return;
    }
    let policy = skiff_image::gc::GcPolicy {
        high_percent: args.image_gc_high_threshold,
        low_percent: args.image_gc_low_threshold,
        ..Default::default()
    };
    match skiff_image::ContentStore::open(&data_dir.join("images"))
        .and_then(|store| store.threshold_gc(&policy))
    {
        Ok(removed) if !removed.is_empty() => eprintln!(
            "skiff: image GC removed {} unused image{} (disk above {}%)",
            removed.len(),
            if removed.len() == 1 { "" } else { "s" },
            args.image_gc_high_threshold
        ),
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "image garbage collection"),
    }
}

/// How the run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ending {
    /// The pod reached Succeeded or Failed by itself.
    Finished,
    /// SIGINT (Ctrl-C) stopped it.
    Interrupted,
    /// SIGTERM stopped it.
    Terminated,
    /// `--timeout` stopped it (the duration).
    TimedOut(Duration),
}

/// What skiff says and returns at the end of a run.
struct Summary {
    code: u8,
    /// The first line (`skiff: pod web Succeeded (…)`), without the `skiff: ` prefix.
    headline: String,
    /// Whether the headline is good news (colour).
    ok: bool,
    /// The per-container table, for every ending but a success.
    rows: Vec<skiff_engine::ContainerRow>,
}

impl Summary {
    fn of(pod: &Pod, ending: Ending, exit_code_from: Option<&str>) -> Summary {
        let name = pod.metadata.name.as_deref().unwrap_or("");
        let status = pod.status.as_ref();
        let phase = status.and_then(|s| s.phase.as_deref()).unwrap_or("");
        let rows = skiff_engine::container_rows(pod);
        let restarts: i32 = rows.iter().map(|r| r.restarts).sum();
        let (mut code, mut headline) = match ending {
            Ending::Interrupted => (INTERRUPTED, format!("pod {name} stopped (SIGINT)")),
            Ending::Terminated => (TERMINATED, format!("pod {name} stopped (SIGTERM)")),
            Ending::TimedOut(d) => (
                TIMED_OUT,
                format!(
                    "pod {name} stopped after --timeout {}",
                    crate::duration::format_go(d)
                ),
            ),
            Ending::Finished if phase == "Succeeded" => (
                0,
                format!(
                    "pod {name} Succeeded ({}, {})",
                    plural(rows.len(), "container"),
                    plural(usize::try_from(restarts).unwrap_or(0), "restart")
                ),
            ),
            Ending::Finished => {
                // The pod's own reason (DeadlineExceeded, Evicted, …), else kubectl's STATUS.
                let shown = status
                    .and_then(|s| s.reason.clone())
                    .filter(|r| !r.is_empty())
                    .unwrap_or_else(|| skiff_engine::display_status(pod).status);
                let mut h = format!("pod {name} {phase}");
                if !shown.is_empty() && shown != phase {
                    h.push_str(&format!(" ({shown})"));
                }
                if let Some(m) = status
                    .and_then(|s| s.message.as_deref())
                    .filter(|m| !m.is_empty())
                {
                    h.push_str(": ");
                    h.push_str(&one_line(m, DETAIL_WIDTH));
                }
                (exit::FAILURE, h)
            }
        };
        if let (Some(from), Ending::Finished) = (exit_code_from, ending) {
            match rows
                .iter()
                .find(|r| r.name == from)
                .and_then(|r| r.exit_code)
            {
                Some(c) => {
                    code = u8::try_from(c).unwrap_or(exit::FAILURE);
                    headline.push_str(&format!("; exit code {c} from container {from}"));
                }
                None => {
                    code = exit::FAILURE;
                    headline.push_str(&format!("; container {from} never terminated, exit 1"));
                }
            }
        }
        Summary {
            ok: code == 0,
            code,
            headline,
            rows,
        }
    }

    fn print(&self, style: Style) {
        let word = if self.ok { sgr::GREEN } else { sgr::RED };
        eprintln!("skiff: {}", style.paint(word, &self.headline));
        if self.ok {
            return;
        }
        let header = [
            "CONTAINER",
            "KIND",
            "STATUS",
            "EXIT",
            "RESTARTS",
            "REASON/MESSAGE",
        ];
        let cells: Vec<[String; 6]> = self
            .rows
            .iter()
            .map(|r| {
                [
                    r.name.clone(),
                    r.kind.as_str().to_string(),
                    r.status.clone(),
                    r.exit_code.map_or("-".into(), |c| c.to_string()),
                    r.restarts.to_string(),
                    one_line(&r.detail, DETAIL_WIDTH),
                ]
            })
            .collect();
        let mut widths = header.map(str::len);
        for row in &cells {
            for (w, c) in widths.iter_mut().zip(row) {
                *w = (*w).max(c.chars().count());
            }
        }
        // kubectl's tabwriter: three spaces between columns, the last one unpadded.
        let render = |row: [&str; 6], status_code: Option<&str>| {
            let mut line = String::new();
            for (i, (cell, w)) in row.iter().zip(widths).enumerate() {
                if i == 5 {
                    line.push_str(cell);
                    break;
                }
                let pad = " ".repeat(w - cell.chars().count() + 3);
                match (i, status_code) {
                    (2, Some(code)) => line.push_str(&style.paint(code, cell)),
                    _ => line.push_str(cell),
                }
                line.push_str(&pad);
            }
            line.trim_end().to_string()
        };
        eprintln!("{}", render(header, None));
        for row in &cells {
            let good = matches!(row[2].as_str(), "Completed" | "Running");
            let code = if good { sgr::GREEN } else { sgr::RED };
            eprintln!(
                "{}",
                render(
                    [&row[0], &row[1], &row[2], &row[3], &row[4], &row[5]],
                    Some(code)
                )
            );
        }
    }
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

/// `text` as one printable line of at most `max` characters: the first non-empty line,
/// control characters escaped (a container's message must not drive the terminal), `…` when
/// cut.
fn one_line(text: &str, max: usize) -> String {
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    let first = lines.next().unwrap_or("");
    let more = lines.next().is_some();
    let mut out = String::new();
    let mut cut = more;
    for (n, c) in first.chars().enumerate() {
        if n >= max {
            cut = true;
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    if cut {
        out.push('…');
    }
    out
}

/// Escapes control characters of an event message (probe output is the container's).
fn printable(text: &str) -> String {
    if !text.chars().any(char::is_control) {
        return text.to_string();
    }
    text.chars()
        .flat_map(|c| {
            let escaped: Vec<char> = if c.is_control() {
                c.escape_default().collect()
            } else {
                vec![c]
            };
            escaped
        })
        .collect()
}

async fn drive(
    pod: Pod,
    objects: PodObjects,
    data_dir: PathBuf,
    timeout: Option<Duration>,
    mut printer: Printer,
) -> anyhow::Result<(k8s_openapi::api::core::v1::PodStatus, Ending)> {
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
        // The pod belongs to this command: if skiff is killed, the keeper stops it in order.
        keeper: std::env::current_exe().ok(),
        image_pulls: worker::PullQueue::node(),
        persistent: false,
    };
    let mut worker = tokio::spawn(worker::run_pod(pod, cfg, cmd_rx, notice_tx));

    let mut sigint = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let mut sigterm = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let deadline = async {
        match timeout {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(deadline);
    let stop_budget = timeout.unwrap_or_default().max(TIMEOUT_STOP_BUDGET);
    // Set once the deadline passed: when to kill whatever is left (see TIMEOUT_STOP_BUDGET).
    let mut kill_at: Option<tokio::time::Instant> = None;
    let mut deadline_passed = false;
    let mut ending = Ending::Finished;

    let result = loop {
        let held_due = printer.next_due();
        tokio::select! {
            res = &mut worker => break res,
            Some(n) = notice_rx.recv() => printer.print(&n),
            _ = sleep_until_time(held_due), if held_due.is_some() => printer.tick(),
            _ = sigint.recv() => {
                if ending != Ending::Finished {
                    printer.notice("killing the pod now");
                    let _ = cmd_tx.send(Command::KillNow).await;
                } else {
                    ending = Ending::Interrupted;
                    printer.notice("interrupted; stopping the pod gracefully (Ctrl-C again kills it)");
                    let _ = cmd_tx.send(Command::Stop { grace: None, why: Why::Interrupt }).await;
                }
            }
            _ = sigterm.recv() => {
                if ending == Ending::Finished {
                    ending = Ending::Terminated;
                    printer.notice("SIGTERM; stopping the pod gracefully");
                }
                let _ = cmd_tx.send(Command::Stop { grace: None, why: Why::Terminate }).await;
            }
            // Also after a signal: the timeout bounds a graceful stop already under way.
            _ = &mut deadline, if !deadline_passed => {
                deadline_passed = true;
                if let (Ending::Finished, Some(d)) = (ending, timeout) {
                    ending = Ending::TimedOut(d);
                    printer.notice(&format!(
                        "--timeout {} reached; stopping the pod",
                        crate::duration::format_go(d)
                    ));
                }
                let budget = i64::try_from(stop_budget.as_secs_f64().ceil() as u64).unwrap_or(i64::MAX);
                let grace = (tgps > budget).then_some(budget);
                let _ = cmd_tx.send(Command::Stop { grace, why: Why::Timeout }).await;
                kill_at = tokio::time::Instant::now()
                    .checked_add(stop_budget.saturating_mul(2).saturating_add(Duration::from_secs(2)));
            }
            _ = sleep_until_opt(kill_at), if kill_at.is_some() => {
                kill_at = None;
                printer.notice("the pod did not stop within the --timeout bound; killing it");
                let _ = cmd_tx.send(Command::KillNow).await;
            }
        }
    };
    // Whatever the worker said last, then the repeats still held.
    while let Ok(n) = notice_rx.try_recv() {
        printer.print(&n);
    }
    printer.finish();
    let status = result.context("pod worker panicked")??;
    Ok((status, ending))
}

async fn sleep_until_opt(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Sleeps until wall-clock time `at` (engine time).
async fn sleep_until_time(at: Option<Time>) {
    match at {
        Some(at) => {
            let ms = u64::try_from(at.millis_since(worker::now())).unwrap_or(0);
            tokio::time::sleep(Duration::from_millis(ms)).await
        }
        None => std::future::pending().await,
    }
}

/// Prints container output as `[name] line` (stdout, or stderr when `-o` keeps stdout for the
/// object), events and skiff's notices (stderr), each coloured per its stream's policy
/// ([`crate::style`]); repeated events go through the [`Correlator`].
struct Printer {
    /// Container lines go to stdout (else stderr).
    lines_to_stdout: bool,
    line_style: Style,
    err_style: Style,
    palette: HashMap<String, &'static str>,
    correlator: Correlator,
    /// The pod's name when several pods print (a Job's): lines are tagged `[pod/container]`
    /// and events name the pod.
    pod: Option<String>,
}

impl Printer {
    fn new(lines_to_stdout: bool) -> Self {
        Printer {
            lines_to_stdout,
            line_style: if lines_to_stdout {
                Style::stdout()
            } else {
                Style::stderr()
            },
            err_style: Style::stderr(),
            palette: HashMap::new(),
            correlator: Correlator::new(),
            pod: None,
        }
    }

    fn tag(&mut self, name: &str) -> String {
        if !self.line_style.color() {
            return format!("[{name}]");
        }
        let next = Style::palette(self.palette.len());
        let c = *self.palette.entry(name.to_string()).or_insert(next);
        self.line_style.paint(c, &format!("[{name}]"))
    }

    fn print(&mut self, n: &Notice) {
        match n {
            Notice::Log(LogLine {
                container, content, ..
            }) => {
                // Held repeats of this container's events (a restart's Started) come first.
                let held = self.correlator.flush_container(container, worker::now());
                self.events(&held);
                let tag = match &self.pod {
                    Some(pod) => self.tag(&format!("{pod}/{container}")),
                    None => self.tag(container),
                };
                if self.lines_to_stdout {
                    println!("{tag} {content}");
                } else {
                    eprintln!("{tag} {content}");
                }
            }
            Notice::Event(e, at) => {
                let lines = self.correlator.observe(e.clone(), *at);
                self.events(&lines);
            }
            // `run` prints events and lines; the status goes to the pod's files.
            Notice::Status(_) | Notice::Probe(_) => {}
        }
    }

    fn next_due(&self) -> Option<Time> {
        self.correlator.next_due()
    }

    /// Held repeats whose time came.
    fn tick(&mut self) {
        let lines = self.correlator.tick(worker::now());
        self.events(&lines);
    }

    /// Every repeat still held.
    fn finish(&mut self) {
        let lines = self.correlator.flush_all(worker::now());
        self.events(&lines);
    }

    fn events(&self, lines: &[Line]) {
        let mut err = std::io::stderr().lock();
        for l in lines {
            match &self.pod {
                // The pod named like kubectl names it, after the rest of the line.
                Some(pod) => {
                    let text = format_event(l, Style::with_color(false));
                    let text = format!("{text} (pod/{pod})");
                    let code = if l.event.type_ == EventType::Warning {
                        sgr::YELLOW
                    } else {
                        sgr::DIM
                    };
                    let _ = writeln!(err, "{}", self.err_style.paint(code, &text));
                }
                None => {
                    let _ = writeln!(err, "{}", format_event(l, self.err_style));
                }
            }
        }
    }

    /// One of skiff's own notices (`skiff: …`).
    fn notice(&self, text: &str) {
        eprintln!("skiff: {text}");
    }
}

/// `[event] <time> <Type> <Reason>: <message>`, then in parentheses the container when the
/// message does not name it, and the count of a repeated event (`x5 over 7s`).
fn format_event(l: &Line, style: Style) -> String {
    let e = &l.event;
    let kind = match e.type_ {
        EventType::Normal => "Normal",
        EventType::Warning => "Warning",
    };
    let time: MetaTime = l.at.to_meta();
    let stamp = serde_json::to_value(&time)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    let mut notes = Vec::new();
    if let Some(c) = e.container.as_deref() {
        if !names(&e.message, c) {
            notes.push(c.to_string());
        }
    }
    notes.extend(l.repeats());
    let mut line = format!(
        "[event] {stamp} {kind} {}: {}",
        e.reason,
        printable(&e.message)
    );
    if !notes.is_empty() {
        line.push_str(&format!(" ({})", notes.join(", ")));
    }
    if e.type_ == EventType::Warning {
        style.paint(sgr::YELLOW, &line)
    } else {
        style.paint(sgr::DIM, &line)
    }
}

/// Whether `message` names container `name` as a word (container names are DNS labels).
fn names(message: &str, name: &str) -> bool {
    message
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .any(|w| w == name)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn failed_pod() -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "web"},
            "spec": {"containers": [{"name": "a"}, {"name": "b"}]},
            "status": {"phase": "Failed", "containerStatuses": [
                {"name": "a", "ready": false, "restartCount": 1, "image": "", "imageID": "",
                 "state": {"terminated": {"exitCode": 300, "reason": "Error"}}},
                {"name": "b", "ready": false, "restartCount": 0, "image": "", "imageID": "",
                 "state": {"waiting": {"reason": "PodInitializing"}}},
            ]},
        }))
        .unwrap()
    }

    #[test]
    fn a_stop_is_never_called_a_failure() {
        let pod = failed_pod();
        for (ending, code, headline) in [
            (Ending::Interrupted, 130, "pod web stopped (SIGINT)"),
            (Ending::Terminated, 143, "pod web stopped (SIGTERM)"),
            (
                Ending::TimedOut(Duration::from_secs(90)),
                124,
                "pod web stopped after --timeout 1m30s",
            ),
            (Ending::Finished, 1, "pod web Failed (Error)"),
        ] {
            // --exit-code-from does not override a stop.
            let s = Summary::of(&pod, ending, Some("a"));
            if ending == Ending::Finished {
                assert_eq!(s.code, 1, "300 is no exit code: 1");
                assert_eq!(
                    s.headline,
                    format!("{headline}; exit code 300 from container a")
                );
            } else {
                assert_eq!(s.code, code);
                assert_eq!(s.headline, headline);
            }
            assert_eq!(s.rows.len(), 2);
        }
        let s = Summary::of(&pod, Ending::Finished, Some("b"));
        assert_eq!(s.code, 1);
        assert!(s
            .headline
            .ends_with("; container b never terminated, exit 1"));
    }

    #[test]
    fn success_counts_containers_and_restarts() {
        let mut pod = failed_pod();
        pod.status.as_mut().unwrap().phase = Some("Succeeded".into());
        let s = Summary::of(&pod, Ending::Finished, None);
        assert_eq!((s.code, s.ok), (0, true));
        assert_eq!(s.headline, "pod web Succeeded (2 containers, 1 restart)");
    }

    #[test]
    fn messages_are_one_printable_line() {
        assert_eq!(one_line("boom", 10), "boom");
        assert_eq!(one_line("\n  first\nsecond", 10), "first…");
        assert_eq!(one_line("0123456789abc", 10), "0123456789…");
        assert_eq!(one_line("a\u{1b}[2Jb", 10), "a\\u{1b}[2Jb");
        assert_eq!(
            printable("x\u{1b}]0;pwned\u{7}y"),
            "x\\u{1b}]0;pwned\\u{7}y"
        );
        assert_eq!(printable("plain"), "plain");
    }

    #[test]
    fn events_name_their_container_unless_the_message_does() {
        assert!(names("Started container web-1", "web-1"));
        assert!(names("Created container: web", "web"));
        assert!(!names("Created container: web-1", "web"));
        assert!(!names("Readiness probe failed: ", "app"));
        let line = Line {
            event: Event {
                type_: EventType::Warning,
                reason: "Unhealthy".into(),
                message: "Readiness probe failed: no".into(),
                container: Some("app".into()),
            },
            at: Time::from_secs(7),
            count: 5,
            first: Time::from_secs(0),
        };
        assert_eq!(
            format_event(&line, Style::with_color(false)),
            "[event] 1970-01-01T00:00:07Z Warning Unhealthy: Readiness probe failed: no (app, x5 over 7s)"
        );
    }
}
