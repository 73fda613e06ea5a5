//! The runtime seam, shaped like the CRI `RuntimeService`: what the pod worker asks of a
//! container runtime, and nothing about how it is done.
//!
//! * [`RuntimeService`]: pod sandboxes (`RunPodSandbox`, `StopPodSandbox` + `RemovePodSandbox`),
//!   containers (`CreateContainer`, `StartContainer`, a signal where CRI has `StopContainer`
//!   with a timeout — the engine times the kill itself —, the wait for the exit, `ExecSync`,
//!   `ContainerStatus`, `ListContainers`, `RemoveContainer`). Plain data goes in (the pod, its
//!   [`ContainerLaunch`], a container spec), handles come out; the worker never looks inside a
//!   handle.
//! * [`ProbeService`]: probes and lifecycle hooks against a container handle (the kubelet's
//!   prober runs exec probes through `ExecSync` and network probes from the node; for skiff
//!   both need the runtime's view of the container, so the prober is the runtime's too).
//! * [`RuntimeClasses`]: which implementation runs a pod, by `runtimeClassName` (`host` today;
//!   the OCI runtime will be the second).
//!
//! Implementations: [`host::HostCri`] (containers as host processes under their monitors,
//! `runtime`), and the recording fake of the worker tests (`tests/fake_runtime`).
//!
//! # What is not plain data yet
//! The host implementation's created container ([`host::HostCreated`]) carries the sandbox's
//! `ContainerSetup`, which holds descriptors: volume sources opened `O_PATH` when they were
//! checked (so a container cannot swap a checked directory for a symlink), the pod's namespace
//! descriptors and its cgroup handle. They stay inside the host implementation's types, never
//! in this trait's signatures. To make the container plan pure data (so that it could cross a
//! process boundary to a shim, as containerd's does): subPath and volume sources bind-mounted
//! by the runtime to trusted paths under the pod's directory first (the kubelet's subPath bind
//! mounts under `volume-subpaths/`), then named by path; namespaces pinned by bind mounts
//! (`/run/netns/<name>`, as CNI and `ip netns` do) and named by path; the cgroup named by its
//! path under the pod's.

pub mod host;
pub mod images;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use k8s_openapi::api::core::v1::{Container, LifecycleHandler, Pod, Probe};
use skiff_engine::ProbeKind;
use tokio::sync::mpsc;

use crate::launch::{ContainerLaunch, PodIdentity, StartError};
use crate::logs::LogLine;
use crate::probe::{ExecOutput, ProbeResult};
pub use crate::runtime::{ContainerExit, NodeError, StopSignal};
use crate::sandbox::{SandboxError, SandboxOptions};

/// What a pod sandbox is made from (CRI `PodSandboxConfig`).
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    pub pod: Arc<Pod>,
    pub identity: PodIdentity,
    pub options: Arc<SandboxOptions>,
}

impl SandboxConfig {
    /// The pod's directory under the data dir (logs, records, volumes).
    pub fn pod_dir(&self) -> PathBuf {
        self.options
            .data_dir
            .join("pods")
            .join(self.identity.dir_name())
    }
}

/// A Warning event (reason, message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub reason: String,
    pub message: String,
}

/// A sandbox that is ready, and what its setup had to say (volume warnings).
#[derive(Debug)]
pub struct ReadySandbox<S> {
    pub sandbox: S,
    pub warnings: Vec<Warning>,
}

/// Why the node fails a pod whose sandbox runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SandboxFailure {
    /// The eviction manager's verdict (an emptyDir over its sizeLimit); `message` is the
    /// eviction message.
    Evicted { message: String },
}

/// A container handle's state (CRI `ContainerStatus`, what the worker needs of it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerStatus {
    /// The runtime's own ID of the container.
    pub id: String,
    pub started_at: SystemTime,
    /// Its main process runs (or is still being logged to its end).
    pub running: bool,
    /// How it ended, once that is known.
    pub exit: Option<ContainerExit>,
}

/// What became of a container instance the runtime found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FoundState {
    Running,
    Exited {
        exit_code: i32,
        finished_at: SystemTime,
    },
    /// Neither running nor with a known end (R3/S7: killed first, then started again).
    Unknown,
}

/// One container instance of a pod, as the runtime knows it (CRI `ListContainers` entry,
/// with the labels the kubelet reads back: container name and restart count).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundContainer {
    pub name: String,
    /// The engine's instance number the instance was started as.
    pub instance: u64,
    /// Its restart count (`attempt`).
    pub attempt: u32,
    pub runtime_id: String,
    pub started_at: SystemTime,
    pub state: FoundState,
}

impl FoundContainer {
    /// The instance as found, with the exit its handle has seen since (if any).
    pub fn with_exit(mut self, exit: Option<ContainerExit>) -> Self {
        if let Some(e) = exit {
            self.state = if e.status_unknown {
                FoundState::Unknown
            } else {
                FoundState::Exited {
                    exit_code: e.exit_code,
                    finished_at: e.finished_at,
                }
            };
        }
        self
    }
}

impl From<&crate::state::FoundInstance> for FoundContainer {
    fn from(f: &crate::state::FoundInstance) -> Self {
        let r = &f.record;
        FoundContainer {
            name: r.container.clone(),
            instance: r.instance,
            attempt: r.attempt,
            runtime_id: r.runtime_id.clone(),
            started_at: crate::clock::to_system_time(skiff_engine::Time::from_millis(
                r.started_unix_ms,
            )),
            state: match &f.observed {
                crate::state::Observed::Running => FoundState::Running,
                crate::state::Observed::Exited(e) => FoundState::Exited {
                    exit_code: e.status.code(),
                    finished_at: e.finished_at,
                },
                crate::state::Observed::Unknown => FoundState::Unknown,
            },
        }
    }
}

/// A found instance and, when the runtime can still reach it, its handle.
#[derive(Debug)]
pub struct Listed<C> {
    pub found: FoundContainer,
    pub handle: Option<C>,
}

/// Everything the runtime has of one pod (CRI `ListPodSandbox` + `ListContainers`).
#[derive(Debug)]
pub struct PodListing<S, C> {
    /// The pod's sandbox, if the runtime can hand it over; `None` with containers listed means
    /// it is gone or cannot be re-attached (the engine then treats it as changed, S9).
    pub sandbox: Option<S>,
    pub containers: Vec<Listed<C>>,
}

impl<S, C> Default for PodListing<S, C> {
    fn default() -> Self {
        PodListing {
            sandbox: None,
            containers: Vec::new(),
        }
    }
}

/// A container runtime, CRI-shaped (see the module docs). Decides nothing: restarts, kills
/// and their timing are the engine's; this does what it is asked and reports what happened.
pub trait RuntimeService: Send + Sync + 'static {
    /// A pod sandbox (its namespaces, cgroup, volumes).
    type Sandbox: Send + Sync + 'static;
    /// A container created from its plan but not started yet.
    type Created: Send + 'static;
    /// A started container instance.
    type Container: Clone + Send + Sync + 'static;

    /// `RunPodSandbox`. On error nothing of the sandbox is left; `reason` is the kubelet's
    /// event reason (`FailedCreatePodSandBox`, `FailedMount`, …).
    fn run_pod_sandbox(
        &self,
        config: &SandboxConfig,
    ) -> impl Future<Output = Result<ReadySandbox<Self::Sandbox>, SandboxError>> + Send + 'static;

    /// Resolves when the node must fail the pod of this sandbox (eviction); never otherwise.
    fn watch_pod_sandbox(
        &self,
        sandbox: &Self::Sandbox,
    ) -> impl Future<Output = SandboxFailure> + Send + 'static;

    /// `StopPodSandbox` + `RemovePodSandbox`, once every container of it has been removed.
    fn stop_pod_sandbox(&self, sandbox: Self::Sandbox)
        -> impl Future<Output = ()> + Send + 'static;

    /// Whether containers run from their images (an OCI runtime class): `command` may then be
    /// empty (the image's Entrypoint/Cmd apply), so the worker builds the launch with
    /// `ContainerLaunch::from_container_for_image`.
    fn runs_images(&self) -> bool {
        false
    }

    /// `CreateContainer`: the container's plan in `sandbox` (its mounts, namespaces, cgroup,
    /// security). Errors are configuration errors (`CreateContainerConfigError`, …).
    fn create_container(
        &self,
        sandbox: &Self::Sandbox,
        spec: &Container,
        launch: ContainerLaunch,
    ) -> Result<Self::Created, StartError>;

    /// `StartContainer`: resolves once its process runs. `logs` gets a live copy of its lines.
    fn start_container(
        &self,
        created: Self::Created,
        logs: Option<mpsc::Sender<LogLine>>,
    ) -> impl Future<Output = Result<Self::Container, StartError>> + Send + 'static;

    /// Delivers a signal: `Term` to the main process, `Kill` to all of the container. Not an
    /// error if it has already exited.
    fn signal(&self, container: &Self::Container, signal: StopSignal) -> Result<(), NodeError>;

    /// Resolves when the container has exited (its logs flushed, its termination message read),
    /// or its state became unknown (`ContainerExit::status_unknown`).
    fn wait(
        &self,
        container: &Self::Container,
    ) -> impl Future<Output = ContainerExit> + Send + 'static;

    /// `ExecSync`: runs `argv` in the container for at most `timeout`.
    fn exec_sync(
        &self,
        container: &Self::Container,
        argv: Vec<String>,
        timeout: Duration,
    ) -> impl Future<Output = ExecOutput> + Send + 'static;

    /// What a streaming exec (`kubectl exec`) of the container runs through; `None` when
    /// this runtime cannot exec into it.
    fn exec_target(&self, container: &Self::Container) -> Option<crate::exec::ExecTarget> {
        let _ = container;
        None
    }

    /// `ContainerStatus`.
    fn status(&self, container: &Self::Container) -> ContainerStatus;

    /// Every instance of the pod this runtime holds or can find, and its sandbox if it can
    /// hand it over (what a restarted worker adopts).
    fn list_pod(&self, config: &SandboxConfig) -> PodListing<Self::Sandbox, Self::Container>;

    /// `RemoveContainer`: resolves once nothing of the exited container is left (processes,
    /// tracking group).
    fn remove_container(
        &self,
        container: Self::Container,
    ) -> impl Future<Output = ()> + Send + 'static;
}

/// One probe run the worker asks for.
#[derive(Debug, Clone)]
pub struct ProbeRequest {
    pub container_name: String,
    pub kind: ProbeKind,
    /// The probe, exec commands already expanded.
    pub probe: Probe,
    /// The worker's hard limit on the run (the probe's timeout).
    pub limit: Duration,
}

/// One lifecycle hook run the worker asks for.
#[derive(Debug, Clone)]
pub struct HookRequest {
    pub container_name: String,
    pub handler: LifecycleHandler,
    /// How long the hook may take.
    pub limit: Duration,
}

/// Probes and lifecycle hooks against containers of runtime handle type `C`. Mechanism only:
/// what a result means is the engine's.
pub trait ProbeService<C>: Send + Sync + 'static {
    /// One probe run; a run past `limit` is a failure with its kind's timeout text.
    fn probe(
        &self,
        container: &C,
        req: ProbeRequest,
    ) -> impl Future<Output = ProbeResult> + Send + 'static;
    /// One hook run; `Err` is the failure message.
    fn run_hook(
        &self,
        container: &C,
        req: HookRequest,
    ) -> impl Future<Output = Result<(), String>> + Send + 'static;
}

/// An image present on the node (CRI `Image`, what the kubelet's image manager needs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageInfo {
    /// `sha256:<config digest>`: the container status's `imageID` is built from it.
    pub id: String,
    /// `<repository>@sha256:<manifest digest>` (the kubelet shows this as `imageID`).
    pub repo_digest: Option<String>,
    /// Bytes the image takes (compressed layers + config + manifest), for the `Pulled` event.
    pub size: u64,
}

/// Why an image could not be looked up or pulled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageError {
    /// The reference does not parse (waiting `InvalidImageName`).
    #[error("{0}")]
    InvalidName(String),
    /// The pull failed (waiting `ErrImagePull`, then `ImagePullBackOff`); the message names
    /// the image and what the registry or the store said.
    #[error("{0}")]
    Pull(String),
    /// The image is not present and cannot be used otherwise (store errors on lookup).
    #[error("{0}")]
    Store(String),
}

/// The contents of the pod's `imagePullSecrets` (`kubernetes.io/dockerconfigjson` Secrets'
/// `.dockerconfigjson` values, or `kubernetes.io/dockercfg`'s `.dockercfg`), in spec order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PullSecrets(pub Vec<PullSecret>);

/// One pull secret's payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PullSecret {
    /// `.dockerconfigjson`: `{"auths": {host: {...}}}`.
    DockerConfigJson(Vec<u8>),
    /// `.dockercfg`: `{host: {...}}` (the legacy form).
    DockerCfg(Vec<u8>),
}

/// The node's image service (CRI `ImageService` + the snapshotter's view the OCI runtime
/// mounts). The pull policy, events and back-off are the kubelet's (engine + worker); this
/// only does what it is asked.
pub trait ImageService: Send + Sync + 'static {
    /// `ImageStatus`: the image if it is present (by tag or digest), `None` if not.
    fn image_status(&self, image: &str) -> Result<Option<ImageInfo>, ImageError>;

    /// `PullImage`: fetches `image` (verified, stored, unpacked) with the pod's secrets and
    /// the node's own credentials; concurrent pulls of one image share the work.
    fn pull_image(
        &self,
        image: &str,
        secrets: &PullSecrets,
    ) -> impl Future<Output = Result<ImageInfo, ImageError>> + Send + 'static;

    /// The unpacked root filesystem layers and process config of a present image, held in
    /// use (not garbage-collected) until [`ImageService::release`] with the same `holder`.
    fn rootfs(&self, image: &str, holder: &str) -> Result<crate::spec::ImageRootfs, ImageError>;

    /// Drops `holder`'s use of its images (a removed container).
    fn release(&self, holder: &str);
}

impl<I: ImageService> ImageService for Arc<I> {
    fn image_status(&self, image: &str) -> Result<Option<ImageInfo>, ImageError> {
        (**self).image_status(image)
    }

    fn pull_image(
        &self,
        image: &str,
        secrets: &PullSecrets,
    ) -> impl Future<Output = Result<ImageInfo, ImageError>> + Send + 'static {
        (**self).pull_image(image, secrets)
    }

    fn rootfs(&self, image: &str, holder: &str) -> Result<crate::spec::ImageRootfs, ImageError> {
        (**self).rootfs(image, holder)
    }

    fn release(&self, holder: &str) {
        (**self).release(holder)
    }
}

/// A `runtimeClassName` this node cannot run (the apiserver's `Unsupported value` style).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuntimeClassError {
    /// No `runtimeClassName` and no working OCI runtime on this node.
    #[error("the pod has no runtimeClassName, and this node has no working OCI runtime to run its images ({why}): install runc, or set `runtimeClassName: host` (its containers then run as processes on this machine)")]
    NoOciRuntime { why: String },
    #[error("spec.runtimeClassName: Unsupported value: {name:?}: supported values: {}", quoted(.supported))]
    Unsupported {
        name: String,
        supported: Vec<String>,
    },
}

fn quoted(v: &[String]) -> String {
    v.iter()
        .map(|s| format!("{s:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The runtime classes of this node, a table from `runtimeClassName` to the implementation
/// that runs the pod: `host` → the host runtime; no name → the detected OCI runtime (the
/// first of runc, crun, youki installed here that works, `oci::runc::detected`);
/// `runc`/`crun`/`youki` → that runtime when it works here. The caller matches on
/// [`RuntimeClass`] (the worker is generic, so each class is its own monomorphic worker).
#[derive(Debug, Clone)]
pub struct RuntimeClasses {
    /// The OCI runtimes that work here, the default first.
    oci: Vec<crate::oci::runc::OciRuntime>,
    /// Why there is no default (for the error), when `oci` is empty.
    none_why: String,
}

/// The runtime classes a pod can name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuntimeClass {
    /// `host`: containers run as processes on this machine, from its own filesystem.
    Host,
    /// Containers run from their images by this OCI runtime.
    Oci(crate::oci::runc::OciRuntime),
}

impl RuntimeClasses {
    /// The name the host class answers to.
    pub const HOST: &'static str = "host";

    /// This node's classes (runs the OCI runtime detection once per process: blocking, ≈30 ms
    /// per installed runtime).
    pub fn detect() -> RuntimeClasses {
        Self::from_detected(crate::oci::runc::detected())
    }

    pub fn from_detected(d: &crate::oci::runc::Detected) -> RuntimeClasses {
        let oci: Vec<_> = d
            .verdicts
            .iter()
            .filter_map(|(_, v)| match v {
                crate::oci::runc::Verdict::Works(r) => Some(r.clone()),
                _ => None,
            })
            .collect();
        RuntimeClasses {
            none_why: if oci.is_empty() {
                d.describe()
            } else {
                String::new()
            },
            oci,
        }
    }

    /// Only the host class (no OCI runtime).
    pub fn host_only() -> RuntimeClasses {
        RuntimeClasses {
            oci: Vec::new(),
            none_why: "none detected".into(),
        }
    }

    /// The names a pod may use, `host` first.
    pub fn names(&self) -> Vec<String> {
        std::iter::once(Self::HOST.to_string())
            .chain(self.oci.iter().map(|r| r.handler.name().to_string()))
            .collect()
    }

    /// The OCI runtime a pod without `runtimeClassName` gets.
    pub fn default_oci(&self) -> Option<&crate::oci::runc::OciRuntime> {
        self.oci.first()
    }

    /// The class that runs pods with `runtimeClassName` `name`.
    pub fn select(&self, name: Option<&str>) -> Result<RuntimeClass, RuntimeClassError> {
        match name {
            Some(Self::HOST) => Ok(RuntimeClass::Host),
            None | Some("") => match self.oci.first() {
                Some(r) => Ok(RuntimeClass::Oci(r.clone())),
                None => Err(RuntimeClassError::NoOciRuntime {
                    why: self.none_why.clone(),
                }),
            },
            Some(other) => match self.oci.iter().find(|r| r.handler.name() == other) {
                Some(r) => Ok(RuntimeClass::Oci(r.clone())),
                None => Err(RuntimeClassError::Unsupported {
                    name: other.to_string(),
                    supported: self.names(),
                }),
            },
        }
    }

    /// The class of `pod` (its `spec.runtimeClassName`).
    pub fn for_pod(&self, pod: &Pod) -> Result<RuntimeClass, RuntimeClassError> {
        self.select(
            pod.spec
                .as_ref()
                .and_then(|s| s.runtime_class_name.as_deref()),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::runc::{Detected, Handler, OciRuntime, Verdict};

    fn runc() -> OciRuntime {
        OciRuntime {
            handler: Handler::Runc,
            path: "/usr/sbin/runc".into(),
            version: "runc version 1.1.5".into(),
        }
    }

    #[test]
    fn runtime_classes_select_host_the_default_oci_runtime_and_named_handlers() {
        let d = Detected {
            verdicts: vec![
                (Handler::Runc, Verdict::Works(runc())),
                (
                    Handler::Crun,
                    Verdict::Fails {
                        path: "/usr/bin/crun".into(),
                        why: "cgroups in hybrid mode not supported".into(),
                    },
                ),
                (Handler::Youki, Verdict::NotInstalled),
            ],
        };
        let c = RuntimeClasses::from_detected(&d);
        assert_eq!(c.select(Some("host")), Ok(RuntimeClass::Host));
        assert_eq!(c.select(None), Ok(RuntimeClass::Oci(runc())));
        assert_eq!(c.select(Some("")), Ok(RuntimeClass::Oci(runc())));
        assert_eq!(c.select(Some("runc")), Ok(RuntimeClass::Oci(runc())));
        let e = c.select(Some("crun")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "spec.runtimeClassName: Unsupported value: \"crun\": supported values: \"host\", \"runc\""
        );
        let e = c.select(Some("gvisor")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "spec.runtimeClassName: Unsupported value: \"gvisor\": supported values: \"host\", \"runc\""
        );
        assert!(
            d.describe()
                .contains("crun does not work here: cgroups in hybrid mode not supported"),
            "{}",
            d.describe()
        );
    }

    #[test]
    fn without_an_oci_runtime_only_host_runs() {
        let c = RuntimeClasses::host_only();
        assert_eq!(c.select(Some("host")), Ok(RuntimeClass::Host));
        let e = c.select(None).unwrap_err();
        assert!(
            e.to_string().starts_with(
                "the pod has no runtimeClassName, and this node has no working OCI runtime"
            ),
            "{e}"
        );
        assert_eq!(
            c.select(Some("runc")).unwrap_err().to_string(),
            "spec.runtimeClassName: Unsupported value: \"runc\": supported values: \"host\""
        );
    }
}
