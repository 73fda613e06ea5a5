//! `GET …/pods/{name}/log` on the daemon: the kubelet's log endpoint over the CRI log files
//! the monitors write. The instance is chosen as the kubelet's validateContainerLogStatus does
//! (skiff_node::store::log_instance, shared with `skiff logs`); the file is read or followed by
//! skiff_node::logs on a blocking thread that feeds a bounded channel, so a slow client holds
//! at most a few chunks in memory and a client that goes away ends the reader.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use k8s_openapi::api::core::v1::Pod;
use skiff_api::node::{LogError, LogOptions, LogStream};
use skiff_node::logs::{self, ReadOptions};
use skiff_node::store;
use tokio::sync::mpsc;

/// Chunks in flight between the reader thread and the client.
const QUEUE: usize = 16;
/// How often a follower looks for new output (as `skiff logs -f`).
const FOLLOW_POLL: Duration = Duration::from_millis(200);

fn bad_request(message: String) -> LogError {
    LogError { code: 400, message }
}

/// The container the request names, or the only one; else kube's 400.
fn container_name(pod: &Pod, asked: &str) -> Result<String, LogError> {
    if !asked.is_empty() {
        return Ok(asked.to_string());
    }
    let name = pod.metadata.name.as_deref().unwrap_or("");
    let spec = pod.spec.as_ref();
    let apps: Vec<&str> = spec
        .iter()
        .flat_map(|s| s.containers.iter())
        .map(|c| c.name.as_str())
        .collect();
    let inits: Vec<&str> = spec
        .iter()
        .flat_map(|s| s.init_containers.iter().flatten())
        .map(|c| c.name.as_str())
        .collect();
    if apps.len() == 1 && inits.is_empty() {
        return Ok(apps[0].to_string());
    }
    let mut message = format!(
        "a container name must be specified for pod {name}, choose one of: [{}]",
        apps.join(" ")
    );
    if !inits.is_empty() {
        message.push_str(&format!(
            " or one of the init containers: [{}]",
            inits.join(" ")
        ));
    }
    Err(bad_request(message))
}

/// A `Write` into the response channel: a gone client is a broken pipe.
struct ChannelWriter {
    tx: mpsc::Sender<std::io::Result<Bytes>>,
}

impl Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.tx
            .blocking_send(Ok(Bytes::copy_from_slice(buf)))
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe))?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The log stream of `options.container` of `pod` (as the API stores it) from `data_dir`.
pub fn stream(data_dir: &Path, pod: &Pod, options: &LogOptions) -> Result<LogStream, LogError> {
    let container = container_name(pod, &options.container)?;
    let m = &pod.metadata;
    let dir = store::pods_dir(data_dir).join(format!(
        "{}_{}_{}",
        m.namespace.as_deref().unwrap_or(""),
        m.name.as_deref().unwrap_or(""),
        m.uid.as_deref().unwrap_or("")
    ));
    let stored = store::read_pod_dir(&dir).ok();
    let instances = stored
        .as_ref()
        .map(|s| s.summary.instances.clone())
        .unwrap_or_default();
    let instance =
        store::log_instance(pod, &instances, &container, options.previous).map_err(bad_request)?;
    let (id, attempt) = (instance.container_id, instance.attempt);
    let path = dir.join(&container).join(format!("{attempt}.log"));
    let since = match (options.since_seconds, options.since_time_unix_nanos) {
        (Some(s), _) => crate::store::now()
            .checked_sub(k8s_openapi::jiff::SignedDuration::from_secs(s))
            .ok(),
        (None, Some(ns)) => k8s_openapi::jiff::Timestamp::from_nanosecond(ns).ok(),
        (None, None) => None,
    };
    let opts = ReadOptions {
        tail: options.tail_lines.and_then(|t| u64::try_from(t).ok()),
        since,
        timestamps: options.timestamps,
        limit_bytes: options
            .limit_bytes
            .and_then(|n| u64::try_from(n).ok())
            .filter(|&n| n > 0),
        prefix: None,
    };
    let follow = options.follow && !options.previous;
    let (tx, rx) = mpsc::channel(QUEUE);
    std::thread::Builder::new()
        .name("skiff-log".into())
        .spawn(move || {
            let mut out = ChannelWriter { tx: tx.clone() };
            let res = if follow {
                let mut running = || {
                    stored
                        .as_ref()
                        .and_then(|s| s.refresh().ok())
                        .is_some_and(|now| {
                            now.running()
                                && store::container_status(&now.summary.pod, &container)
                                    .is_some_and(|cs| {
                                        cs.container_id.as_deref() == Some(id.as_str())
                                            && cs
                                                .state
                                                .as_ref()
                                                .is_some_and(|s| s.running.is_some())
                                    })
                        })
                };
                logs::follow_log(&path, &opts, &mut out, &mut running, FOLLOW_POLL)
            } else {
                logs::read_log(&path, &opts, &mut out)
            };
            match res {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                }
            }
        })
        .map_err(|e| LogError {
            code: 500,
            message: format!("starting the log reader: {e}"),
        })?;
    Ok(Box::pin(tokio_stream_from(rx)))
}

/// The receiver as a `Stream`.
fn tokio_stream_from(
    mut rx: mpsc::Receiver<std::io::Result<Bytes>>,
) -> impl futures_util::Stream<Item = std::io::Result<Bytes>> + Send {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}
