//! Probes (exec, httpGet, tcpSocket, grpc) and lifecycle hooks (exec,
//! httpGet, sleep). Mechanism only: one call runs one probe and reports what
//! happened; thresholds, periods and what a failure means are the engine's.

pub mod deadline;
pub mod grpc;
pub mod http;

use std::future::Future;
use std::os::fd::OwnedFd;
use std::time::Duration;

use k8s_openapi::api::core::v1::{HTTPGetAction, LifecycleHandler, Probe, TCPSocketAction};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::io::AsyncReadExt;
use tokio::net::unix::pipe;

use crate::reaper::{ExitStatus, Reaper};
use crate::runtime::ExecContext;
use deadline::AttemptError;

/// Output kept from exec probes (the kubelet's 10 KiB).
pub const MAX_OUTPUT: usize = 10 * 1024;

/// P1 outcome of one probe run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeOutcome {
    Success,
    Failure,
    /// The probe could not be run (bad spec, internal error).
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeResult {
    pub outcome: ProbeOutcome,
    /// Output or error text (for `Unhealthy` events).
    pub output: String,
}

impl ProbeResult {
    fn new(outcome: ProbeOutcome, output: impl Into<String>) -> Self {
        ProbeResult {
            outcome,
            output: output.into(),
        }
    }
}

/// Runs one probe against a container.
pub trait Prober: Send + Sync + 'static {
    fn probe(&self, probe: &Probe, ctx: &ExecContext) -> impl Future<Output = ProbeResult> + Send;
}

/// Runs one lifecycle hook; `Err` carries the failure message.
pub trait HookRunner: Send + Sync + 'static {
    fn run_hook(
        &self,
        handler: &LifecycleHandler,
        ctx: &ExecContext,
        timeout: Duration,
    ) -> impl Future<Output = Result<(), String>> + Send;
}

/// The real prober and hook runner for host-runtime containers.
#[derive(Clone)]
pub struct HostProber {
    reaper: Reaper,
}

impl HostProber {
    pub fn new() -> std::io::Result<Self> {
        Ok(HostProber {
            reaper: Reaper::global()?,
        })
    }
}

/// The result of running a command in a container.
#[derive(Debug, Clone)]
pub struct ExecOutput {
    /// `None` when the command could not be started or timed out.
    pub status: Option<ExitStatus>,
    pub timed_out: bool,
    /// Combined stdout+stderr, at most [`MAX_OUTPUT`] bytes; or the start error.
    pub output: String,
}

/// Runs `argv` in the container (env, working dir, tracking group), waits at
/// most `timeout`; on timeout its process group is killed.
pub async fn exec_in(
    reaper: &Reaper,
    ctx: &ExecContext,
    argv: &[String],
    timeout: Duration,
) -> ExecOutput {
    let fail = |msg: String| ExecOutput {
        status: None,
        timed_out: false,
        output: msg,
    };
    let (r, w) = match nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC) {
        Ok(p) => p,
        Err(e) => return fail(format!("pipe: {e}")),
    };
    let w2: OwnedFd = match w.try_clone() {
        Ok(w2) => w2,
        Err(e) => return fail(format!("pipe: {e}")),
    };
    let process = match ctx.command(argv, w, w2) {
        Ok(p) => p,
        Err(e) => return fail(e.to_string()),
    };
    // Consumes the process: the write ends now live in the child only.
    let spawned = process.spawn(reaper, &format!("exec:{}", ctx.container_id));
    let spawned = match spawned {
        Ok(s) => s,
        Err(e) => {
            return fail(format!(
                "exec: {:?}: {e}",
                argv.first().cloned().unwrap_or_default()
            ))
        }
    };
    // From here on, an attempt dropped before the command exited (the worker's deadline)
    // kills its process group.
    let _kill = KillOnDrop {
        pid: spawned.pid,
        exit: spawned.exit.clone(),
    };
    let mut rx = match pipe::Receiver::from_owned_fd(r) {
        Ok(rx) => rx,
        Err(e) => return fail(format!("pipe: {e}")),
    };
    let mut out = Vec::new();
    let read = async {
        let mut buf = [0u8; 4096];
        loop {
            match rx.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let take = (MAX_OUTPUT - out.len().min(MAX_OUTPUT)).min(n);
                    out.extend_from_slice(&buf[..take]);
                }
            }
        }
    };
    let exit = spawned.exit.clone();
    let run = async {
        // Output ends at EOF, but a background child may hold the pipe: stop
        // reading shortly after the command itself exits.
        tokio::pin!(read);
        tokio::select! {
            _ = &mut read => exit.wait().await,
            ev = exit.wait() => {
                let _ = tokio::time::timeout(Duration::from_millis(50), &mut read).await;
                ev
            }
        }
    };
    match tokio::time::timeout(timeout, run).await {
        Ok(ev) => ExecOutput {
            status: Some(ev.status),
            timed_out: false,
            output: lossy_prefix(&out, MAX_OUTPUT),
        },
        Err(_) => {
            let _ = killpg(Pid::from_raw(spawned.pid), Signal::SIGKILL);
            let _ = spawned.exit.wait().await;
            ExecOutput {
                status: None,
                timed_out: true,
                output: lossy_prefix(&out, MAX_OUTPUT),
            }
        }
    }
}

/// Kills a command's process group unless the command was seen to exit: the leader is not
/// reaped before then, so its pid (the group id) cannot have been reused.
pub(crate) struct KillOnDrop {
    pub(crate) pid: i32,
    pub(crate) exit: crate::reaper::ExitWaiter,
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if self.exit.try_get().is_none() {
            let _ = killpg(Pid::from_raw(self.pid), Signal::SIGKILL);
        }
    }
}

/// Text from at most `max` bytes a container sent, cut to at most `max` bytes again after the
/// lossy UTF-8 conversion (each invalid byte becomes a 3-byte U+FFFD), at a character
/// boundary: the output keeps its documented bound whatever the bytes.
pub fn lossy_prefix(bytes: &[u8], max: usize) -> String {
    let mut s = String::from_utf8_lossy(&bytes[..bytes.len().min(max)]).into_owned();
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

/// Resolves a probe/hook port: a number, or a name from the container's ports.
pub fn resolve_port(port: &IntOrString, ctx: &ExecContext) -> Result<u16, String> {
    let n = match port {
        IntOrString::Int(n) => *n,
        IntOrString::String(name) => match name.parse::<i32>() {
            Ok(n) => n,
            Err(_) => ctx
                .ports
                .iter()
                .find(|p| p.name.as_deref() == Some(name.as_str()))
                .map(|p| p.container_port)
                .ok_or_else(|| {
                    format!(
                        "couldn't find port: {name:?} in container {:?}",
                        ctx.container_name
                    )
                })?,
        },
    };
    u16::try_from(n)
        .ok()
        .filter(|&p| p > 0)
        .ok_or_else(|| format!("invalid port number: {n}"))
}

fn http_target(
    action: &HTTPGetAction,
    ctx: &ExecContext,
) -> Result<(http::Target, Vec<(String, String)>), String> {
    let port = resolve_port(&action.port, ctx)?;
    let scheme = match action.scheme.as_deref() {
        Some(s) if s.eq_ignore_ascii_case("https") => http::Scheme::Https,
        _ => http::Scheme::Http,
    };
    let host = action
        .host
        .clone()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| ctx.host.clone());
    let mut path = action.path.clone().unwrap_or_default();
    if !path.starts_with('/') {
        path.insert(0, '/');
    }
    let headers = action
        .http_headers
        .iter()
        .flatten()
        .map(|h| (h.name.clone(), h.value.clone()))
        .collect();
    Ok((
        http::Target {
            scheme,
            host,
            port,
            path,
        },
        headers,
    ))
}

// The texts each kind's own timeout gives (the kubelet's), shared with the deadline below.

fn exec_probe_timeout(argv: &[String]) -> String {
    format!("command {:?} timed out", argv.join(" "))
}

fn exec_hook_timeout(argv: &[String]) -> String {
    format!("command '{}' timed out", argv.join(" "))
}

fn http_probe_timeout(url: &str) -> String {
    format!(
        "Get \"{url}\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
    )
}

fn http_hook_timeout(url: &str) -> String {
    format!("Get \"{url}\": context deadline exceeded")
}

fn tcp_host(tcp: &TCPSocketAction, ctx: &ExecContext) -> String {
    tcp.host
        .clone()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| ctx.host.clone())
}

fn tcp_addr(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

fn tcp_timeout(addr: &str) -> String {
    format!("dial tcp {addr}: i/o timeout")
}

fn grpc_timeout(timeout: Duration) -> String {
    format!(
        "timeout: health rpc did not complete within {}s",
        timeout.as_secs()
    )
}

/// What a probe that overran the worker's deadline reports: its kind's own timeout text.
fn probe_overran(p: &Probe, ctx: &ExecContext, limit: Duration) -> String {
    if let Some(exec) = &p.exec {
        return exec_probe_timeout(exec.command.as_deref().unwrap_or_default());
    }
    if let Some(Ok((target, _))) = p.http_get.as_ref().map(|a| http_target(a, ctx)) {
        return http_probe_timeout(&target.url());
    }
    if let Some(tcp) = &p.tcp_socket {
        if let Ok(port) = resolve_port(&tcp.port, ctx) {
            return tcp_timeout(&tcp_addr(&tcp_host(tcp, ctx), port));
        }
    }
    if p.grpc.is_some() {
        return grpc_timeout(probe_timeout(p));
    }
    format!("probe timed out after {}ms", limit.as_millis())
}

/// What a hook that overran the worker's deadline returns: its kind's own timeout result.
fn hook_overran(h: &LifecycleHandler, ctx: &ExecContext, limit: Duration) -> Result<(), String> {
    if let Some(exec) = &h.exec {
        return Err(exec_hook_timeout(
            exec.command.as_deref().unwrap_or_default(),
        ));
    }
    if let Some(Ok((target, _))) = h.http_get.as_ref().map(|a| http_target(a, ctx)) {
        return Err(http_hook_timeout(&target.url()));
    }
    // A sleep hook cut short by its timeout succeeds, as the prober's own cut does.
    if h.sleep.is_some() {
        return Ok(());
    }
    Err(format!("hook timed out after {}ms", limit.as_millis()))
}

/// One probe attempt under the worker's hard deadline: the worker has its result by `limit`
/// (the probe's timeout) plus [`deadline::SLACK`], whatever the prober does ([`deadline`]).
/// An attempt that overran is a failure with its kind's timeout text.
pub async fn probe_with_deadline<P: Prober + Clone>(
    prober: &P,
    probe: Probe,
    ctx: ExecContext,
    limit: Duration,
) -> ProbeResult {
    let overran = probe_overran(&probe, &ctx, limit);
    let prober = prober.clone();
    let attempt = move || async move { prober.probe(&probe, &ctx).await };
    match deadline::run_attempt(limit.saturating_add(deadline::SLACK), attempt).await {
        Ok(r) => r,
        Err(AttemptError::Overran) => ProbeResult::new(ProbeOutcome::Failure, overran),
        Err(AttemptError::Failed(e)) => ProbeResult::new(ProbeOutcome::Unknown, e),
    }
}

/// One hook run under the worker's hard deadline, `timeout` plus [`deadline::SLACK`], as
/// [`probe_with_deadline`].
pub async fn hook_with_deadline<H: HookRunner + Clone>(
    runner: &H,
    handler: LifecycleHandler,
    ctx: ExecContext,
    timeout: Duration,
) -> Result<(), String> {
    let overran = hook_overran(&handler, &ctx, timeout);
    let runner = runner.clone();
    let attempt = move || async move { runner.run_hook(&handler, &ctx, timeout).await };
    match deadline::run_attempt(timeout.saturating_add(deadline::SLACK), attempt).await {
        Ok(r) => r,
        Err(AttemptError::Overran) => overran,
        Err(AttemptError::Failed(e)) => Err(e),
    }
}

fn probe_timeout(p: &Probe) -> Duration {
    Duration::from_secs(p.timeout_seconds.filter(|&t| t > 0).unwrap_or(1) as u64)
}

impl HostProber {
    async fn probe_impl(&self, p: &Probe, ctx: &ExecContext) -> ProbeResult {
        use ProbeOutcome::*;
        let timeout = probe_timeout(p);
        if let Some(exec) = &p.exec {
            let argv = exec.command.clone().unwrap_or_default();
            let out = exec_in(&self.reaper, ctx, &argv, timeout).await;
            return match (out.status, out.timed_out) {
                (Some(ExitStatus::Exited(0)), _) => ProbeResult::new(Success, out.output),
                (Some(_), _) => ProbeResult::new(Failure, out.output),
                (None, true) => ProbeResult::new(Failure, exec_probe_timeout(&argv)),
                (None, false) => ProbeResult::new(Failure, out.output),
            };
        }
        if let Some(action) = &p.http_get {
            let (target, headers) = match http_target(action, ctx) {
                Ok(t) => t,
                Err(e) => return ProbeResult::new(Unknown, e),
            };
            let url = target.url();
            let seen = std::sync::atomic::AtomicBool::new(false);
            return match tokio::time::timeout(timeout, http::get(&target, &headers, ctx.netns.as_deref(), &seen)).await {
                // The timeout covers the whole exchange, body included (Go's Client.Timeout):
                // a server trickling bytes cannot extend it.
                Err(_) if seen.load(std::sync::atomic::Ordering::Relaxed) => ProbeResult::new(
                    Failure,
                    "context deadline exceeded (Client.Timeout or context cancellation while reading body)",
                ),
                Err(_) => ProbeResult::new(Failure, http_probe_timeout(&url)),
                Ok(Err(e)) => ProbeResult::new(Failure, e),
                Ok(Ok(resp)) => {
                    let body = lossy_prefix(&resp.body, http::MAX_BODY);
                    if (200..400).contains(&resp.status) {
                        if resp.redirect_not_followed {
                            ProbeResult::new(Success, format!("Probe terminated redirects, Response body: {body}"))
                        } else {
                            ProbeResult::new(Success, body)
                        }
                    } else {
                        ProbeResult::new(Failure, format!("HTTP probe failed with statuscode: {}", resp.status))
                    }
                }
            };
        }
        if let Some(tcp) = &p.tcp_socket {
            let port = match resolve_port(&tcp.port, ctx) {
                Ok(p) => p,
                Err(e) => return ProbeResult::new(Unknown, e),
            };
            let host = tcp_host(tcp, ctx);
            let addr = tcp_addr(&host, port);
            return match tokio::time::timeout(
                timeout,
                crate::namespaces::connect_tcp(ctx.netns.as_deref(), host.as_str(), port),
            )
            .await
            {
                Ok(Ok(_)) => ProbeResult::new(Success, ""),
                Ok(Err(e)) => ProbeResult::new(
                    Failure,
                    format!("dial tcp {addr}: {}", http::describe_io(&e)),
                ),
                Err(_) => ProbeResult::new(Failure, tcp_timeout(&addr)),
            };
        }
        if let Some(g) = &p.grpc {
            let Some(port) = u16::try_from(g.port).ok().filter(|&p| p > 0) else {
                return ProbeResult::new(Unknown, format!("invalid port number: {}", g.port));
            };
            let service = g.service.clone().unwrap_or_default();
            return match tokio::time::timeout(
                timeout,
                grpc::check(&ctx.host, port, &service, ctx.netns.as_deref()),
            )
            .await
            {
                Err(_) => ProbeResult::new(Failure, grpc_timeout(timeout)),
                Ok(Err(e)) => ProbeResult::new(Failure, e),
                Ok(Ok(grpc::SERVING)) => ProbeResult::new(Success, ""),
                Ok(Ok(s)) => ProbeResult::new(
                    Failure,
                    format!(
                        "service unhealthy (responded with {:?})",
                        grpc::status_name(s)
                    ),
                ),
            };
        }
        ProbeResult::new(Unknown, "missing probe handler")
    }

    async fn hook_impl(
        &self,
        h: &LifecycleHandler,
        ctx: &ExecContext,
        timeout: Duration,
    ) -> Result<(), String> {
        if let Some(exec) = &h.exec {
            let argv = exec.command.clone().unwrap_or_default();
            let out = exec_in(&self.reaper, ctx, &argv, timeout).await;
            return match (out.status, out.timed_out) {
                (Some(ExitStatus::Exited(0)), _) => Ok(()),
                (Some(s), _) => Err(format!(
                    "command '{}' exited with {}: {}",
                    argv.join(" "),
                    s.code(),
                    out.output
                )),
                (None, true) => Err(exec_hook_timeout(&argv)),
                (None, false) => Err(out.output),
            };
        }
        if let Some(action) = &h.http_get {
            let (target, headers) = http_target(action, ctx)?;
            let url = target.url();
            // The kubelet only fails an httpGet hook on transport errors.
            let seen = std::sync::atomic::AtomicBool::new(false);
            return match tokio::time::timeout(
                timeout,
                http::get(&target, &headers, ctx.netns.as_deref(), &seen),
            )
            .await
            {
                Err(_) if seen.load(std::sync::atomic::Ordering::Relaxed) => Err(
                    "context deadline exceeded (Client.Timeout or context cancellation while reading body)".into(),
                ),
                Err(_) => Err(http_hook_timeout(&url)),
                Ok(Err(e)) => Err(e),
                Ok(Ok(_)) => Ok(()),
            };
        }
        if let Some(sleep) = &h.sleep {
            let secs = u64::try_from(sleep.seconds).unwrap_or(0);
            tokio::time::sleep(Duration::from_secs(secs).min(timeout)).await;
            return Ok(());
        }
        if h.tcp_socket.is_some() {
            return Err(
                "Cannot run handler: tcpSocket is not supported as a lifecycle handler".into(),
            );
        }
        Err("Cannot run handler: no handler specified".into())
    }
}

impl Prober for HostProber {
    fn probe(&self, probe: &Probe, ctx: &ExecContext) -> impl Future<Output = ProbeResult> + Send {
        self.probe_impl(probe, ctx)
    }
}

impl HookRunner for HostProber {
    fn run_hook(
        &self,
        handler: &LifecycleHandler,
        ctx: &ExecContext,
        timeout: Duration,
    ) -> impl Future<Output = Result<(), String>> + Send {
        self.hook_impl(handler, ctx, timeout)
    }
}
