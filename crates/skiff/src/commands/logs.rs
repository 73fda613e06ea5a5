//! `skiff logs POD [CONTAINER]`: a container's CRI logs from the data dir, for a running or a
//! finished pod, with kubectl's flags and messages: the container chosen as kubectl's
//! logsForObject does (the default-container annotation, else the first container, said on
//! stderr), the instance as the kubelet's validateContainerLogStatus does (`--previous`: the
//! last terminated one), the records as its ReadLogs writes them (skiff_node::logs).
//!
//! Differences, by design: rotated files are read too (oldest first, `.gz` ones
//! decompressed), where the kubelet serves the live file only; and the newest pod of a name
//! is the one read (names repeat across runs).
//!
//! When a `skiff serve` runs on the data dir, its API answers instead (over the unix socket,
//! [`super::client`]): the pod is read from it, the container chosen by the same code, and
//! each container's log streamed from `…/pods/NAME/log` as kubectl requests it.

use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use k8s_openapi::jiff::Timestamp;
use skiff_node::logs::{self, ReadEnd, ReadOptions};
use skiff_node::store::{self, StoredPod};

use crate::exit;
use crate::store::{parse_go_duration, DataDirArg};

/// How often a follower looks for new output and whether the container still runs (the
/// kubelet re-checks every second at the latest).
const FOLLOW_POLL: Duration = Duration::from_millis(200);

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The pod: NAME or pod/NAME.
    #[arg(value_name = "POD")]
    pod: String,
    /// The container (as -c).
    #[arg(value_name = "CONTAINER")]
    inline_container: Option<String>,
    /// Print the logs of this container.
    #[arg(short = 'c', long)]
    container: Option<String>,
    /// Namespace of the pod.
    #[arg(short = 'n', long, default_value = "default")]
    namespace: String,
    /// Print the logs of the previous instance of the container, if it exists.
    #[arg(short = 'p', long, num_args = 0..=1, require_equals = true, default_missing_value = "true", action = clap::ArgAction::Set, default_value_t = false)]
    previous: bool,
    /// Stream the logs until the container instance ends (at once for a finished pod).
    #[arg(short = 'f', long, num_args = 0..=1, require_equals = true, default_missing_value = "true", action = clap::ArgAction::Set, default_value_t = false)]
    follow: bool,
    /// Lines (log records) from the end to show; -1 for all.
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    tail: i64,
    /// Only logs newer than this (Go duration: 5s, 2m, 3h).
    #[arg(long, value_name = "DURATION", value_parser = parse_go_duration)]
    since: Option<Duration>,
    /// Only logs after this time (RFC 3339).
    #[arg(long, value_name = "TIME")]
    since_time: Option<String>,
    /// Put each line's time (RFC 3339, nanoseconds) before it.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", action = clap::ArgAction::Set, default_value_t = false)]
    timestamps: bool,
    /// The logs of every container of the pod (init, regular, ephemeral).
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", action = clap::ArgAction::Set, default_value_t = false)]
    all_containers: bool,
    /// Put `[pod/NAME/CONTAINER] ` before each line.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", action = clap::ArgAction::Set, default_value_t = false)]
    prefix: bool,
    /// Stop after this many bytes; 0 for no limit.
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    limit_bytes: i64,
    /// At most this many containers followed at once (kubectl's bound).
    #[arg(long, default_value_t = 5)]
    max_log_requests: usize,
    #[command(flatten)]
    data: DataDirArg,
}

/// A failure as kubectl reports it, with skiff's exit code.
struct Failure {
    message: String,
    code: u8,
}

fn usage(message: impl Into<String>) -> Failure {
    Failure {
        message: format!("error: {}", message.into()),
        code: exit::BAD_INPUT,
    }
}

/// What the kubelet answers (kubectl shows it as `Error from server (BadRequest): …`).
fn bad_request(message: impl Into<String>) -> Failure {
    Failure {
        message: format!("Error from server (BadRequest): {}", message.into()),
        code: exit::FAILURE,
    }
}

fn failure(message: impl Into<String>) -> Failure {
    Failure {
        message: format!("error: {}", message.into()),
        code: exit::FAILURE,
    }
}

pub fn run(args: &Args) -> u8 {
    match logs(args) {
        Ok(()) => 0,
        Err(f) => {
            eprintln!("{}", f.message);
            f.code
        }
    }
}

/// One container's log to print.
struct Job {
    container: String,
    path: PathBuf,
    container_id: String,
}

fn logs(args: &Args) -> Result<(), Failure> {
    // kubectl's Validate.
    if args.since.is_some() && args.since_time.is_some() {
        return Err(usage(
            "at most one of `sinceTime` or `sinceSeconds` may be specified",
        ));
    }
    if args.container.is_some() && args.inline_container.is_some() {
        return Err(usage(
            "only one of -c or an inline [CONTAINER] arg is allowed",
        ));
    }
    let container = args.container.clone().or(args.inline_container.clone());
    if let (true, Some(c)) = (args.all_containers, &container) {
        return Err(usage(format!(
            "--all-containers=true should not be specified with container name {c}"
        )));
    }
    if args.limit_bytes < 0 {
        return Err(usage("--limit-bytes must be greater than 0"));
    }
    if args.tail < -1 {
        return Err(usage("--tail must be greater than or equal to -1"));
    }
    let name = match args.pod.split_once('/') {
        None => args.pod.as_str(),
        Some((t, n)) if crate::commands::get::is_pod_resource(t) => n,
        Some(_) => {
            return Err(usage(format!(
                "skiff logs reads pods only: {:?} is not pod/NAME",
                args.pod
            )))
        }
    };
    let since_time = match &args.since_time {
        // kubectl's util.ParseRFC3339: RFC3339Nano or RFC3339.
        Some(s) => Some(
            s.parse::<Timestamp>()
                .map_err(|e| usage(format!("--since-time {s:?}: {e}")))?,
        ),
        None => None,
    };

    // kubectl's sinceSeconds (and the kubelet's NewLogOptions): --since rounded to seconds, the later of both bounds.
    let since_secs = args.since.map(|d| {
        let ms = d.as_millis();
        i64::try_from(ms / 1000 + u128::from(ms % 1000 >= 500)).unwrap_or(i64::MAX)
    });

    let data_dir = args.data.resolve().map_err(|e| failure(format!("{e:#}")))?;
    match super::client::DaemonClient::connect(&data_dir) {
        Ok(Some(client)) => {
            return daemon_logs(
                &client, &data_dir, args, name, container, since_secs, since_time,
            )
        }
        Ok(None) => {}
        Err(e) => return Err(failure(e.to_string())),
    }
    let pods = store::list(&data_dir)
        .map_err(|e| failure(format!("reading {}: {e}", data_dir.display())))?;
    let Some(pod) = store::newest_per_name(
        pods.into_iter()
            .filter(|p| p.namespace() == args.namespace && p.name() == name)
            .collect(),
    )
    .pop() else {
        return Err(Failure {
            message: format!("Error from server (NotFound): pods \"{name}\" not found"),
            code: exit::FAILURE,
        });
    };

    let containers = choose_containers(&pod.summary.pod, container, args.all_containers)?;
    let mut jobs = Vec::new();
    for c in containers {
        let (container_id, attempt) = instance(&pod, &c, args.previous)?;
        jobs.push(Job {
            path: pod.log_path(&c, attempt),
            container: c,
            container_id,
        });
    }
    if args.follow && jobs.len() > args.max_log_requests {
        return Err(failure(format!(
            "you are attempting to follow {} log streams, but maximum allowed concurrency is {}, use --max-log-requests to increase the limit",
            jobs.len(),
            args.max_log_requests
        )));
    }

    let since = match (since_secs, since_time) {
        (Some(s), _) => crate::store::now()
            .checked_sub(k8s_openapi::jiff::SignedDuration::from_secs(s))
            .ok(),
        (None, t) => t,
    };
    let opts = |c: &str| ReadOptions {
        tail: u64::try_from(args.tail).ok(),
        since,
        timestamps: args.timestamps,
        limit_bytes: u64::try_from(args.limit_bytes).ok().filter(|&n| n > 0),
        prefix: args.prefix.then(|| format!("[pod/{name}/{c}] ")),
    };

    if args.follow && jobs.len() > 1 {
        return follow_parallel(&pod, jobs, &opts);
    }
    let stdout = std::io::stdout();
    for job in jobs {
        let o = opts(&job.container);
        let mut out = std::io::BufWriter::new(stdout.lock());
        let res = if args.follow && !args.previous {
            let mut running = || instance_running(&pod, &job.container, &job.container_id);
            logs::follow_log(&job.path, &o, &mut out, &mut running, FOLLOW_POLL)
        } else {
            logs::read_log(&job.path, &o, &mut out)
        };
        let res = res.and_then(|end| out.flush().map(|()| end));
        match res {
            Ok(ReadEnd::Done) => {}
            Ok(ReadEnd::Limit) => break,
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
            Err(e) => return Err(read_failure(&job, e)),
        }
    }
    Ok(())
}

/// The daemon's answer as kubectl shows it: its Status (`Error from server (NotFound): …`).
fn api_failure(e: super::client::ClientError) -> Failure {
    match e {
        e @ super::client::ClientError::Status { .. } => Failure {
            message: e.to_string(),
            code: exit::FAILURE,
        },
        e => failure(e.to_string()),
    }
}

/// `skiff logs` against the daemon: kubectl's requests (GET the pod, then one `log` request
/// per container with its PodLogOptions), the container chosen and the lines prefixed here.
fn daemon_logs(
    client: &super::client::DaemonClient,
    data_dir: &std::path::Path,
    args: &Args,
    name: &str,
    container: Option<String>,
    since_secs: Option<i64>,
    since_time: Option<Timestamp>,
) -> Result<(), Failure> {
    use super::client::{encode, DaemonClient};
    let pod_path = format!(
        "/api/v1/namespaces/{}/pods/{}",
        encode(&args.namespace),
        encode(name)
    );
    let pod: Pod = client.get_json(&pod_path).map_err(api_failure)?;
    let containers = choose_containers(&pod, container, args.all_containers)?;
    if args.follow && containers.len() > args.max_log_requests {
        return Err(failure(format!(
            "you are attempting to follow {} log streams, but maximum allowed concurrency is {}, use --max-log-requests to increase the limit",
            containers.len(),
            args.max_log_requests
        )));
    }
    let log_path = |c: &str| {
        let mut q = format!("container={}", encode(c));
        let mut flag = |k: &str, on: bool| {
            if on {
                q.push_str(&format!("&{k}=true"));
            }
        };
        flag("follow", args.follow);
        flag("previous", args.previous);
        flag("timestamps", args.timestamps);
        if args.tail >= 0 {
            q.push_str(&format!("&tailLines={}", args.tail));
        }
        if let Some(s) = since_secs {
            q.push_str(&format!("&sinceSeconds={s}"));
        } else if let Some(t) = since_time {
            q.push_str(&format!("&sinceTime={}", encode(&t.to_string())));
        }
        if args.limit_bytes > 0 {
            q.push_str(&format!("&limitBytes={}", args.limit_bytes));
        }
        format!("{pod_path}/log?{q}")
    };
    let prefix = |c: &str| args.prefix.then(|| format!("[pod/{name}/{c}] "));
    if args.follow && containers.len() > 1 {
        // One stream each, whole lines interleaved (as the local followers).
        let out = Arc::new(Mutex::new(()));
        let failures: Mutex<Vec<Failure>> = Mutex::new(Vec::new());
        std::thread::scope(|scope| {
            for c in &containers {
                let (out, failures) = (out.clone(), &failures);
                let (path, prefix) = (log_path(c), prefix(c));
                scope.spawn(move || {
                    let res = DaemonClient::connect(data_dir)
                        .and_then(|cl| {
                            cl.ok_or_else(|| super::client::ClientError::Transport {
                                socket: skiff_api::transport::socket_path(data_dir),
                                what: "the daemon went away".into(),
                            })
                        })
                        .and_then(|cl| {
                            let mut sink = Prefixed::new(
                                LineSink {
                                    lock: out,
                                    buf: Vec::new(),
                                },
                                prefix,
                            );
                            let r = cl.stream(&path, &mut sink);
                            let _ = sink.inner.finish();
                            r
                        });
                    if let Err(e) = res {
                        if let Ok(mut f) = failures.lock() {
                            f.push(api_failure(e));
                        }
                    }
                });
            }
        });
        return match failures.into_inner().ok().and_then(|mut f| f.pop()) {
            None => Ok(()),
            Some(f) => Err(f),
        };
    }
    for c in &containers {
        let mut out = Prefixed::new(std::io::stdout().lock(), prefix(c));
        client.stream(&log_path(c), &mut out).map_err(api_failure)?;
    }
    Ok(())
}

/// Puts `prefix` before every line written through it (kubectl's `--prefix`, applied by the
/// client as kubectl does).
struct Prefixed<W: Write> {
    inner: W,
    prefix: Option<String>,
    at_line_start: bool,
}

impl<W: Write> Prefixed<W> {
    fn new(inner: W, prefix: Option<String>) -> Self {
        Self {
            inner,
            prefix,
            at_line_start: true,
        }
    }
}

impl<W: Write> Write for Prefixed<W> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let Some(prefix) = &self.prefix else {
            return self.inner.write(data);
        };
        let mut rest = data;
        while !rest.is_empty() {
            if self.at_line_start {
                self.inner.write_all(prefix.as_bytes())?;
                self.at_line_start = false;
            }
            let end = rest
                .iter()
                .position(|&b| b == b'\n')
                .map_or(rest.len(), |i| i + 1);
            self.inner.write_all(&rest[..end])?;
            self.at_line_start = rest[end - 1] == b'\n';
            rest = &rest[end..];
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn read_failure(job: &Job, e: std::io::Error) -> Failure {
    failure(format!(
        "unable to retrieve container logs for {}: reading {}: {e}",
        job.container_id,
        job.path.display()
    ))
}

/// kubectl's logsForObject: every container for `--all-containers` (init, regular,
/// ephemeral, in spec order), else the one named, else the default-container annotation's,
/// else the first container.
fn choose_containers(pod: &Pod, named: Option<String>, all: bool) -> Result<Vec<String>, Failure> {
    let spec = pod.spec.clone().unwrap_or_default();
    let pod_name = pod.metadata.name.as_deref().unwrap_or("");
    let inits: Vec<&str> = spec
        .init_containers
        .iter()
        .flatten()
        .map(|c| c.name.as_str())
        .collect();
    let apps: Vec<&str> = spec.containers.iter().map(|c| c.name.as_str()).collect();
    let ephemeral: Vec<&str> = spec
        .ephemeral_containers
        .iter()
        .flatten()
        .map(|c| c.name.as_str())
        .collect();
    if all {
        return Ok(inits
            .iter()
            .chain(&apps)
            .chain(&ephemeral)
            .map(|s| s.to_string())
            .collect());
    }
    let exists = |n: &str| apps.contains(&n) || inits.contains(&n) || ephemeral.contains(&n);
    // podcmd.AllContainerNames.
    let all_names = || {
        apps.iter()
            .map(|s| s.to_string())
            .chain(ephemeral.iter().map(|s| format!("{s} (ephem)")))
            .chain(inits.iter().map(|s| format!("{s} (init)")))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut chosen = named;
    if chosen.is_none() {
        let annotated = pod
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(store::DEFAULT_CONTAINER_ANNOTATION))
            .filter(|s| !s.is_empty());
        if let Some(d) = annotated {
            if exists(d) {
                chosen = Some(d.clone());
            } else {
                eprintln!("Default container name \"{d}\" not found in pod {pod_name}");
            }
        }
    }
    let chosen = match chosen {
        Some(c) => c,
        None => {
            let Some(first) = apps.first() else {
                return Err(failure(format!("pod {pod_name} has no containers")));
            };
            if apps.len() > 1 || !inits.is_empty() || !ephemeral.is_empty() {
                eprintln!("Defaulted container \"{first}\" out of: {}", all_names());
            }
            first.to_string()
        }
    };
    if !exists(&chosen) {
        return Err(failure(format!(
            "container {chosen} is not valid for pod {pod_name} out of: {}",
            all_names()
        )));
    }
    Ok(vec![chosen])
}

fn container_status<'a>(pod: &'a Pod, name: &str) -> Option<&'a ContainerStatus> {
    store::container_status(pod, name)
}

/// The kubelet's validateContainerLogStatus (`store::log_instance`): which instance's log to
/// read (its containerID and restart count, which names the file).
fn instance(pod: &StoredPod, container: &str, previous: bool) -> Result<(String, i32), Failure> {
    store::log_instance(
        &pod.summary.pod,
        &pod.summary.instances,
        container,
        previous,
    )
    .map(|i| (i.container_id, i.attempt))
    .map_err(bad_request)
}

/// Whether instance `id` of `container` still runs: its skiff holds the pod's lock and the
/// status shows that instance running (the kubelet's isContainerRunning).
fn instance_running(pod: &StoredPod, container: &str, id: &str) -> bool {
    let Ok(now) = pod.refresh() else {
        return false;
    };
    if !now.running() {
        return false;
    }
    container_status(&now.summary.pod, container).is_some_and(|cs| {
        cs.container_id.as_deref() == Some(id)
            && cs.state.as_ref().is_some_and(|s| s.running.is_some())
    })
}

/// `-f` for several containers: one follower each, whole lines interleaved (kubectl's
/// parallelConsumeRequest, which buffers up to each newline).
fn follow_parallel(
    pod: &StoredPod,
    jobs: Vec<Job>,
    opts: &dyn Fn(&str) -> ReadOptions,
) -> Result<(), Failure> {
    let out = Arc::new(Mutex::new(()));
    let failures: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(Vec::new()));
    std::thread::scope(|scope| {
        for job in &jobs {
            let o = opts(&job.container);
            let out = out.clone();
            let failures = failures.clone();
            scope.spawn(move || {
                let mut sink = LineSink {
                    lock: out,
                    buf: Vec::new(),
                };
                let mut running = || instance_running(pod, &job.container, &job.container_id);
                let res = logs::follow_log(&job.path, &o, &mut sink, &mut running, FOLLOW_POLL)
                    .and_then(|_| sink.finish());
                match res {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
                    Err(e) => {
                        if let Ok(mut f) = failures.lock() {
                            f.push(read_failure(job, e).message);
                        }
                    }
                }
            });
        }
    });
    let failures = failures.lock().map(|f| f.clone()).unwrap_or_default();
    match failures.first() {
        None => Ok(()),
        Some(first) => Err(Failure {
            message: first.clone(),
            code: exit::FAILURE,
        }),
    }
}

/// A writer that passes on whole lines only, each under one lock, so that followers of
/// several containers never interleave inside a line. An over-long unterminated line is
/// passed on in pieces (bounded memory).
struct LineSink {
    lock: Arc<Mutex<()>>,
    buf: Vec<u8>,
}

const MAX_PENDING: usize = 64 * 1024;

impl LineSink {
    fn emit(&mut self, upto: usize) -> std::io::Result<()> {
        let _g = self
            .lock
            .lock()
            .map_err(|_| std::io::Error::other("poisoned"))?;
        let mut so = std::io::stdout().lock();
        so.write_all(&self.buf[..upto])?;
        so.flush()?;
        self.buf.drain(..upto);
        Ok(())
    }

    fn finish(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let n = self.buf.len();
        self.emit(n)
    }
}

impl Write for LineSink {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if let Some(i) = self.buf.iter().rposition(|&b| b == b'\n') {
            self.emit(i + 1)?;
        } else if self.buf.len() > MAX_PENDING {
            let n = self.buf.len();
            self.emit(n)?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixed_marks_every_line_across_writes() {
        let mut w = Prefixed::new(Vec::new(), Some("[pod/p/c] ".into()));
        w.write_all(b"one\ntw").unwrap();
        w.write_all(b"o\n").unwrap();
        w.write_all(b"\nthree").unwrap();
        assert_eq!(
            String::from_utf8(w.inner).unwrap(),
            "[pod/p/c] one\n[pod/p/c] two\n[pod/p/c] \n[pod/p/c] three"
        );
        let mut w = Prefixed::new(Vec::new(), None);
        w.write_all(b"a\nb").unwrap();
        assert_eq!(w.inner, b"a\nb");
    }
}
