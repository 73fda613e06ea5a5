//! This machine as the API's node ([`NodeBackend`]): its Node object (what `kubectl get
//! nodes` and `describe node` show), admission of pods (SEMANTICS A1 node fit, the runtime
//! class, the feature gates `skiff run` checks too) and container logs from the CRI files;
//! exec and port-forward into the pods the daemon's [`PodManager`] runs (skiff-node's
//! [`skiff_node::exec`]: in the container's namespaces, cgroup and credentials; a connection
//! dialled in the pod's network namespace).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use k8s_openapi::api::core::v1::{
    Node, NodeAddress, NodeCondition, NodeStatus, NodeSystemInfo, Pod,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time as MetaTime};
use skiff_api::node::{
    ExecOptions, LogError, LogOptions, LogStream, NodeBackend, NodeFuture, PodConnection,
    StreamError, StreamIo, TermSize,
};
use skiff_model::resources::ResourceList;
use skiff_node::cri::RuntimeClasses;
use skiff_node::exec::{ExecIo, ExecTarget};
use skiff_node::manager::{ExecTargetError, PodManager};
use skiff_node::node::NodeResources;
use skiff_node::worker::ExecRefusal;

/// The version the Node reports as its kubelet's (`kubectl get nodes` VERSION): the API
/// version skiff serves (`/version` minor 33, which the kubectl dispatcher keys on).
pub const KUBELET_VERSION: &str = "v1.33.0-skiff";

/// This machine as a node.
pub struct LocalNode {
    name: String,
    data_dir: PathBuf,
    reserved: ResourceList,
    classes: RuntimeClasses,
    started: MetaTime,
    resources: Arc<NodeResources>,
    /// The pods running here (exec, port-forward); set once the manager exists.
    pods: OnceLock<PodManager>,
}

fn read_trimmed(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// The machine's host name as a node name (lower case; a name the API would refuse becomes
/// `skiff`).
pub fn default_node_name() -> String {
    let h = read_trimmed("/proc/sys/kernel/hostname").to_lowercase();
    let ok = !h.is_empty()
        && h.len() <= 253
        && h.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        });
    if ok {
        h
    } else {
        "skiff".into()
    }
}

fn pretty_os() -> String {
    let text = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim_matches('"').to_string())
        .unwrap_or_else(|| "Linux".into())
}

fn arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

impl LocalNode {
    pub fn new(
        name: String,
        data_dir: PathBuf,
        reserved: ResourceList,
        classes: RuntimeClasses,
    ) -> LocalNode {
        LocalNode {
            name,
            data_dir,
            reserved,
            classes,
            started: skiff_node::worker::now().to_meta(),
            resources: NodeResources::global().clone(),
            pods: OnceLock::new(),
        }
    }

    /// The pod manager that exec and port-forward reach the pods through.
    pub fn set_pods(&self, pods: PodManager) {
        let _ = self.pods.set(pods);
    }

    fn quantities(&self) -> (BTreeMap<String, Quantity>, BTreeMap<String, Quantity>) {
        let cap = self.resources.capacity(&self.data_dir);
        let alloc = skiff_model::admission::NodeAllocatable::from_capacity(&cap, &self.reserved);
        let q = |s: String| Quantity(s);
        let capacity = BTreeMap::from([
            ("cpu".to_string(), q(format!("{}m", cap.milli_cpu))),
            ("memory".to_string(), q(format!("{}", cap.memory_bytes))),
            (
                "ephemeral-storage".to_string(),
                q(format!("{}", cap.ephemeral_storage_bytes)),
            ),
            ("pods".to_string(), q(format!("{}", cap.pods))),
        ]);
        let allocatable = BTreeMap::from([
            ("cpu".to_string(), q(format!("{}m", alloc.milli_cpu))),
            ("memory".to_string(), q(format!("{}", alloc.memory_bytes))),
            (
                "ephemeral-storage".to_string(),
                q(format!("{}", alloc.ephemeral_storage_bytes)),
            ),
            ("pods".to_string(), q(format!("{}", alloc.pods))),
        ]);
        (capacity, allocatable)
    }

    /// The stdin FIFO of the running instance of `container` (see
    /// `skiff_node::runtime::stdin_fifo_path`), if it reads one.
    fn stdin_fifo(&self, pod: &Pod, container: &str) -> Option<PathBuf> {
        let m = &pod.metadata;
        let dir = skiff_node::store::pods_dir(&self.data_dir).join(format!(
            "{}_{}_{}",
            m.namespace.as_deref().unwrap_or(""),
            m.name.as_deref().unwrap_or(""),
            m.uid.as_deref().unwrap_or("")
        ));
        let instances = skiff_node::store::read_pod_dir(&dir)
            .ok()
            .map(|s| s.summary.instances)
            .unwrap_or_default();
        let instance = skiff_node::store::log_instance(pod, &instances, container, false).ok()?;
        let attempt = u32::try_from(instance.attempt).ok()?;
        let path = skiff_node::runtime::stdin_fifo_path(&dir.join(container), attempt);
        let meta = std::fs::symlink_metadata(&path).ok()?;
        use std::os::unix::fs::FileTypeExt;
        meta.file_type().is_fifo().then_some(path)
    }

    /// The exec target of `container` (any running one when `None`) of `pod`, or the
    /// kubelet's refusal. Answered at once: the refusal is the answer to the upgrade request.
    fn target(&self, pod: &Pod, container: Option<&str>) -> Result<ExecTarget, StreamError> {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        let err = |code: u16, message: String| StreamError { code, message };
        let valid = container.is_none_or(|c| {
            pod.spec.as_ref().is_some_and(|s| {
                s.containers
                    .iter()
                    .chain(s.init_containers.iter().flatten())
                    .any(|x| x.name == c)
                    || s.ephemeral_containers.iter().flatten().any(|x| x.name == c)
            })
        });
        if !valid {
            return Err(err(
                400,
                format!(
                    "container {} is not valid for pod {name}",
                    container.unwrap_or_default()
                ),
            ));
        }
        let Some(pods) = self.pods.get() else {
            return Err(err(404, "pod does not exist".into()));
        };
        match pods.exec_target(&uid, container) {
            Ok(t) => Ok(t),
            // The kubelet's answers: no such pod here; no running instance of the container
            // (the API server prefixes "unable to upgrade connection").
            Err(ExecTargetError::NoPod) => Err(err(404, "pod does not exist".into())),
            Err(ExecTargetError::Refused(ExecRefusal::NotRunning(c))) if c.is_empty() => Err(err(
                400,
                format!("unable to upgrade connection: pod {name} has no running container"),
            )),
            Err(ExecTargetError::Refused(ExecRefusal::NotRunning(c))) => Err(err(
                400,
                format!("unable to upgrade connection: container not found (\"{c}\")"),
            )),
        }
    }
}

impl NodeBackend for LocalNode {
    fn node_name(&self) -> &str {
        &self.name
    }

    fn node_object(&self) -> Node {
        let now = skiff_node::worker::now().to_meta();
        let (capacity, allocatable) = self.quantities();
        let condition = |type_: &str, status: &str, reason: &str, message: &str| NodeCondition {
            type_: type_.into(),
            status: status.into(),
            reason: Some(reason.into()),
            message: Some(message.into()),
            last_heartbeat_time: Some(now.clone()),
            last_transition_time: Some(self.started.clone()),
        };
        let labels = BTreeMap::from([
            ("kubernetes.io/hostname".to_string(), self.name.clone()),
            ("kubernetes.io/os".to_string(), "linux".to_string()),
            ("kubernetes.io/arch".to_string(), arch().to_string()),
            ("beta.kubernetes.io/os".to_string(), "linux".to_string()),
            ("beta.kubernetes.io/arch".to_string(), arch().to_string()),
            (
                "node-role.kubernetes.io/control-plane".to_string(),
                String::new(),
            ),
        ]);
        Node {
            metadata: ObjectMeta {
                name: Some(self.name.clone()),
                labels: Some(labels),
                ..Default::default()
            },
            spec: None,
            status: Some(NodeStatus {
                capacity: Some(capacity),
                allocatable: Some(allocatable),
                conditions: Some(vec![
                    condition(
                        "MemoryPressure",
                        "False",
                        "KubeletHasSufficientMemory",
                        "kubelet has sufficient memory available",
                    ),
                    condition(
                        "DiskPressure",
                        "False",
                        "KubeletHasNoDiskPressure",
                        "kubelet has no disk pressure",
                    ),
                    condition(
                        "PIDPressure",
                        "False",
                        "KubeletHasSufficientPID",
                        "kubelet has sufficient PID available",
                    ),
                    condition(
                        "Ready",
                        "True",
                        "KubeletReady",
                        "kubelet is posting ready status",
                    ),
                ]),
                addresses: Some(vec![
                    NodeAddress {
                        type_: "InternalIP".into(),
                        address: "127.0.0.1".into(),
                    },
                    NodeAddress {
                        type_: "Hostname".into(),
                        address: self.name.clone(),
                    },
                ]),
                node_info: Some(NodeSystemInfo {
                    architecture: arch().into(),
                    boot_id: read_trimmed("/proc/sys/kernel/random/boot_id"),
                    container_runtime_version: format!("skiff://{}", env!("CARGO_PKG_VERSION")),
                    kernel_version: read_trimmed("/proc/sys/kernel/osrelease"),
                    kube_proxy_version: String::new(),
                    kubelet_version: KUBELET_VERSION.into(),
                    machine_id: read_trimmed("/etc/machine-id"),
                    operating_system: "linux".into(),
                    os_image: pretty_os(),
                    system_uuid: String::new(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
        }
    }

    fn admit(&self, pod: &Pod, bound: &[Pod]) -> Result<(), String> {
        let Some(spec) = pod.spec.as_ref() else {
            return Ok(());
        };
        let unsupported = skiff_model::gates::unsupported(spec);
        if !unsupported.is_empty() {
            let all: Vec<String> = unsupported.iter().map(|u| u.to_string()).collect();
            return Err(all.join(", "));
        }
        crate::commands::run::runnable(pod, || self.classes.clone())?;
        let admitted: Vec<_> = bound.iter().filter_map(|p| p.spec.as_ref()).collect();
        self.resources
            .admit(spec, &admitted, &self.reserved, &self.data_dir)
            .map_err(|r| format!("{}: {}", r.reason(), r.pod_message()))
    }

    fn logs(&self, pod: &Pod, options: &LogOptions) -> Result<LogStream, LogError> {
        super::logs::stream(&self.data_dir, pod, options)
    }

    fn timeline(&self, pod: &Pod) -> Option<serde_json::Value> {
        let m = &pod.metadata;
        let tl = self.pods.get()?.timeline(
            m.uid.as_deref()?,
            m.namespace.as_deref().unwrap_or("default"),
            m.name.as_deref()?,
        )?;
        serde_json::to_value(tl).ok()
    }

    fn exec(
        &self,
        pod: &Pod,
        options: ExecOptions,
        io: StreamIo,
    ) -> NodeFuture<Result<i32, StreamError>> {
        let target = self.target(pod, Some(&options.container));
        Box::pin(async move {
            let target = target?;
            if options.command.is_empty() {
                return Err(StreamError {
                    code: 400,
                    message: "you must specify at least one command for the container".into(),
                });
            }
            let StreamIo {
                stdin,
                stdout,
                stderr,
                resize,
            } = io;
            let (size_tx, size_rx) = tokio::sync::mpsc::channel(4);
            let node_io = ExecIo {
                stdin: stdin.filter(|_| options.stdin),
                stdout: stdout.filter(|_| options.stdout),
                stderr: stderr.filter(|_| options.stderr),
                resize: Some(size_rx),
            };
            // Sizes pass through in this future (no task to outlive the exec).
            let sizes = forward_sizes(resize, size_tx);
            let run = target.run(&options.command, options.tty, node_io);
            tokio::pin!(sizes, run);
            let code = tokio::select! {
                r = &mut run => r,
                () = &mut sizes => run.await,
            };
            code.map_err(|e| StreamError {
                code: 500,
                message: format!("error executing command in container: {e}"),
            })
        })
    }

    /// Attach: the container's output from now on, from its CRI log file (both streams, to
    /// the client's stdout), and with `-i` the client's input written to the FIFO a
    /// `stdin: true` container reads (host runtime class). A container's terminal (`tty:
    /// true`, which the monitor would have to hold) is not done yet: refused.
    fn attach(
        &self,
        pod: &Pod,
        options: ExecOptions,
        io: StreamIo,
    ) -> NodeFuture<Result<(), StreamError>> {
        let refuse = |message: String| StreamError { code: 400, message };
        let checked = self.target(pod, Some(&options.container)).and_then(|_| {
            if options.tty {
                return Err(refuse(
                    "attaching to a container's terminal is not supported by skiff yet".into(),
                ));
            }
            let fifo = if options.stdin {
                Some(self.stdin_fifo(pod, &options.container).ok_or_else(|| {
                    refuse(format!(
                        "container {} of pod {} does not read stdin (stdin: true)",
                        options.container,
                        pod.metadata.name.as_deref().unwrap_or_default()
                    ))
                })?)
            } else {
                None
            };
            let logs = LogOptions {
                container: options.container.clone(),
                follow: true,
                tail_lines: Some(0),
                ..Default::default()
            };
            let lines =
                super::logs::stream(&self.data_dir, pod, &logs).map_err(|e| StreamError {
                    code: e.code,
                    message: e.message,
                })?;
            Ok((lines, fifo))
        });
        Box::pin(async move {
            use futures_util::StreamExt;
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let (mut lines, fifo) = checked?;
            let mut out = io.stdout.filter(|_| options.stdout);
            let output = async {
                while let Some(chunk) = lines.next().await {
                    let Ok(chunk) = chunk else { break };
                    if let Some(w) = out.as_mut() {
                        if w.write_all(&chunk).await.is_err() || w.flush().await.is_err() {
                            break;
                        }
                    }
                }
            };
            let input = async {
                if let (Some(path), Some(mut src)) = (fifo, io.stdin) {
                    // The container holds the FIFO open for reading: opening it to write
                    // does not block.
                    let tx = tokio::net::unix::pipe::OpenOptions::new().open_sender(&path);
                    if let Ok(mut tx) = tx {
                        let mut buf = vec![0u8; 32 * 1024];
                        loop {
                            let n = match src.read(&mut buf).await {
                                Ok(0) | Err(_) => break,
                                Ok(n) => n,
                            };
                            if tx.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                    }
                }
                std::future::pending::<()>().await
            };
            tokio::select! {
                () = output => {}
                () = input => {}
            }
            Ok(())
        })
    }

    fn port_forward(
        &self,
        pod: &Pod,
        port: u16,
    ) -> NodeFuture<Result<Box<dyn PodConnection>, StreamError>> {
        let target = self.target(pod, None);
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        Box::pin(async move {
            let target = target?;
            match target.connect_local(port).await {
                Ok(conn) => {
                    let _ = conn.set_nodelay(true);
                    Ok(Box::new(conn) as Box<dyn PodConnection>)
                }
                Err(e) => Err(StreamError {
                    code: 500,
                    message: format!(
                        "failed to connect to localhost:{port} inside namespace \"{uid}\", IPv4: dial tcp4 127.0.0.1:{port}: connect: {}",
                        dial_error(&e)
                    ),
                }),
            }
        })
    }
}

/// Passes terminal sizes from the API's stream to the exec; never resolves once `from` ends
/// (so a `select!` keeps waiting for the exec).
async fn forward_sizes(
    from: Option<tokio::sync::mpsc::Receiver<TermSize>>,
    to: tokio::sync::mpsc::Sender<(u16, u16)>,
) {
    if let Some(mut from) = from {
        while let Some(size) = from.recv().await {
            if to.send((size.width, size.height)).await.is_err() {
                break;
            }
        }
    }
    drop(to);
    std::future::pending::<()>().await
}

/// Go's wording of a dial error (`connection refused`, …): the OS text, lower case.
fn dial_error(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => "connection refused".into(),
        std::io::ErrorKind::TimedOut => "connection timed out".into(),
        _ => {
            let s = e.to_string();
            // "Connection refused (os error 111)" → "connection refused".
            let s = s.split(" (os error").next().unwrap_or_default();
            s.to_lowercase()
        }
    }
}
