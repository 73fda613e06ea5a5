//! The OCI runtime classes behind the seam: image containers run by an OCI runtime binary
//! (runc here; see [`super::runc`]) under skiff's per-container monitor, in the same pod
//! sandbox (namespaces holder, pod cgroup, volumes) the `host` class uses.
//!
//! Per container: `CreateContainer` takes the image's layers and config from the
//! [`ImageService`] (held for this container until it is removed), mounts its root filesystem
//! and stages its volume sources ([`super::rootfs`]), resolves its user in the image, builds
//! config.json ([`super::config`]) and writes the bundle. `StartContainer` has the monitor's
//! launcher run `<runtime> create` (the container's init becomes the monitor's child), then
//! runs `<runtime> start`. From there the container is a host-runtime container
//! ([`HostContainer`]): the same exit record, OOM verdict (its cgroup is the one skiff created
//! — config.json's `cgroupsPath` names it — so the OOM watcher counts its kills), termination
//! message, log stream, signals through a pidfd of its init, and exec probes and hooks that
//! enter the init's namespaces, cgroup and credentials (no `<runtime> exec`). `RemoveContainer`
//! runs `<runtime> delete --force`, unmounts and deletes the bundle, and releases the image.

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use k8s_openapi::api::core::v1::{Container, Pod};
use tokio::sync::mpsc;

use super::config::{
    build_spec, seccomp_request, to_json, ContainerConfigInput, ContainerMount, PidNamespace,
    RuntimeHost, SandboxNamespaces, SeccompChoice, SeccompRequest,
};
use super::rootfs::{self, Bundle, PodFiles};
use super::runc::{self, OciRuntime};
use crate::cri::host::{HostCri, HostInstance, HostProbes};
use crate::cri::{
    ContainerStatus, FoundContainer, FoundState, HookRequest, ImageService, Listed, PodListing,
    ProbeRequest, ProbeService, ReadySandbox, RuntimeService, SandboxConfig, SandboxFailure,
};
use crate::isolation::{ContainerSetup, MountSpec};
use crate::launch::{ContainerLaunch, StartError};
use crate::logs::LogLine;
use crate::probe::{ExecOutput, ProbeResult};
use crate::runtime::{ContainerExit, HostRuntime, NodeError, OciProcess, StopSignal};
use crate::sandbox::{PodSandbox, SandboxError};

/// An OCI runtime class (see the module docs), with `I` as its image store.
pub struct OciCri<I: ImageService> {
    host: HostCri,
    images: Arc<I>,
    runtime: OciRuntime,
    held: Arc<Mutex<HashMap<String, Held>>>,
}

impl<I: ImageService> Clone for OciCri<I> {
    fn clone(&self) -> Self {
        OciCri {
            host: self.host.clone(),
            images: self.images.clone(),
            runtime: self.runtime.clone(),
            held: self.held.clone(),
        }
    }
}

struct Held {
    pod_uid: String,
    found: FoundContainer,
    container: OciInstance,
}

impl<I: ImageService> OciCri<I> {
    /// The host runtime's reaper, tracker and monitor, with `runtime` and `images`.
    pub fn new(runtime: OciRuntime, images: Arc<I>) -> std::io::Result<Self> {
        Ok(OciCri {
            host: HostCri::new()?,
            images,
            runtime,
            held: Arc::default(),
        })
    }

    pub fn runtime(&self) -> &OciRuntime {
        &self.runtime
    }

    fn held(&self) -> std::sync::MutexGuard<'_, HashMap<String, Held>> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A pod sandbox of an OCI runtime class: the host one plus the pod's DNS and host files.
#[derive(Debug)]
pub struct OciSandbox {
    inner: PodSandbox,
    pod: Arc<Pod>,
    files: PodFiles,
    data_dir: PathBuf,
}

impl OciSandbox {
    pub fn host(&self) -> &PodSandbox {
        &self.inner
    }
}

/// A created image container (bundle written, not started).
pub struct OciCreated {
    launch: ContainerLaunch,
    setup: ContainerSetup,
    bundle: Bundle,
    process: OciProcess,
    root: PathBuf,
    image_holder: String,
}

/// An image container instance.
#[derive(Clone, Debug)]
pub struct OciInstance {
    host: HostInstance,
    extra: Arc<Extra>,
}

#[derive(Debug)]
struct Extra {
    id: String,
    root: PathBuf,
    log: PathBuf,
    /// `None` once removed, or for an instance found on disk (its mounts are in the pod's
    /// record; the bundle dir is `bundle_dir`).
    bundle: Mutex<Option<Bundle>>,
    bundle_dir: PathBuf,
    image_holder: String,
    /// Found on disk with its sandbox adopted: the pod's record, where its bundle's mounts are
    /// journaled (dropped from it as they are unmounted).
    journal: Option<Arc<dyn crate::spec::MountJournal>>,
}

impl OciInstance {
    /// The host-runtime view of it (pid, exec context, exit).
    pub fn host(&self) -> &HostInstance {
        &self.host
    }
}

/// Who holds an image: the container instance's ID.
fn image_holder(id: &str) -> String {
    format!("container:{id}")
}

fn new_id(launch: &ContainerLaunch) -> String {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let uid: String = launch.pod.uid.chars().take(8).collect();
    // runc takes `[\w+-\.]+` as an ID; container names are DNS labels.
    format!(
        "{uid}-{}-{}-{:x}{seq:x}{nanos:x}",
        launch.name,
        launch.restart_count,
        std::process::id()
    )
}

impl<I: ImageService> RuntimeService for OciCri<I> {
    type Sandbox = OciSandbox;
    type Created = OciCreated;
    type Container = OciInstance;

    fn run_pod_sandbox(
        &self,
        config: &SandboxConfig,
    ) -> impl Future<Output = Result<ReadySandbox<OciSandbox>, SandboxError>> + Send + 'static {
        let host = self.host.run_pod_sandbox(config);
        let config = config.clone();
        async move {
            let ready = host.await?;
            let hostname = crate::namespaces::NamespacePlan::for_pod(&config.pod).hostname;
            let files = match rootfs::write_pod_files(
                ready.sandbox.pod_dir(),
                &config.pod,
                &config.identity,
                &hostname,
            ) {
                Ok(f) => f,
                Err(e) => {
                    ready.sandbox.destroy().await;
                    return Err(SandboxError {
                        reason: "FailedCreatePodSandBox".into(),
                        message: format!("Failed to create pod sandbox: writing the pod's hosts and DNS files: {e}"),
                    });
                }
            };
            Ok(ReadySandbox {
                sandbox: OciSandbox {
                    inner: ready.sandbox,
                    pod: config.pod.clone(),
                    files,
                    data_dir: config.options.data_dir.clone(),
                },
                warnings: ready.warnings,
            })
        }
    }

    fn watch_pod_sandbox(
        &self,
        sandbox: &OciSandbox,
    ) -> impl Future<Output = SandboxFailure> + Send + 'static {
        self.host.watch_pod_sandbox(&sandbox.inner)
    }

    fn stop_pod_sandbox(&self, sandbox: OciSandbox) -> impl Future<Output = ()> + Send + 'static {
        let rel = sandbox.pod.spec.as_ref().map(|s| {
            crate::cgroups::pod_rel(
                skiff_model::resources::qos_class(s),
                sandbox.pod.metadata.uid.as_deref().unwrap_or_default(),
            )
        });
        let host = self.host.stop_pod_sandbox(sandbox.inner);
        async move {
            host.await;
            // The pod's directories the runtime made in the hierarchies skiff does not use.
            if let Some(rel) = rel.filter(|r| r.file_name().is_some()) {
                let _ = tokio::task::spawn_blocking(move || {
                    crate::cgroups::remove_empty_everywhere(&rel)
                })
                .await;
            }
        }
    }

    fn runs_images(&self) -> bool {
        true
    }

    fn create_container(
        &self,
        sandbox: &OciSandbox,
        spec: &Container,
        launch: ContainerLaunch,
    ) -> Result<OciCreated, StartError> {
        let id = new_id(&launch);
        let holder = image_holder(&id);
        let image = self
            .images
            .rootfs(&launch.image, &holder)
            .map_err(|e| StartError::Config(e.to_string()))?;
        let created = self.create_with(sandbox, spec, launch, &id, &holder, &image);
        if created.is_err() {
            self.images.release(&holder);
        }
        created
    }

    fn start_container(
        &self,
        created: OciCreated,
        logs: Option<mpsc::Sender<LogLine>>,
    ) -> impl Future<Output = Result<OciInstance, StartError>> + Send + 'static {
        let this = self.clone();
        async move {
            let OciCreated {
                launch,
                setup,
                mut bundle,
                process,
                root,
                image_holder,
            } = created;
            let (pod_uid, name, instance, attempt) = (
                launch.pod.uid.clone(),
                launch.name.clone(),
                launch.instance,
                launch.restart_count,
            );
            let id = process.id.clone();
            let log = process.log.clone();
            let started = this
                .host
                .runtime()
                .start_with(launch, setup, logs, Some(process))
                .await;
            let c = match started {
                Ok(c) => c,
                Err(e) => {
                    let _ =
                        runc::run(&this.runtime, &root, &log, &["delete", "--force", &id]).await;
                    bundle.remove();
                    this.images.release(&image_holder);
                    return Err(e);
                }
            };
            // The init waits in the runtime's exec FIFO until `start`.
            if let Err(msg) = runc::run(&this.runtime, &root, &log, &["start", &id]).await {
                let _ = c.signal(StopSignal::Kill);
                let _ = c.wait().await;
                c.cleaned_up().await;
                let _ = runc::run(&this.runtime, &root, &log, &["delete", "--force", &id]).await;
                bundle.remove();
                this.images.release(&image_holder);
                return Err(StartError::Io {
                    what: format!(
                        "OCI runtime start failed: {} start failed",
                        this.runtime.handler.name()
                    ),
                    source: std::io::Error::other(msg),
                });
            }
            let bundle_dir = bundle.dir().to_path_buf();
            let inst = OciInstance {
                host: HostInstance::Started(c.clone()),
                extra: Arc::new(Extra {
                    id: id.clone(),
                    root,
                    log,
                    bundle: Mutex::new(Some(bundle)),
                    bundle_dir,
                    image_holder,
                    journal: None,
                }),
            };
            let found = FoundContainer {
                name,
                instance,
                attempt,
                runtime_id: id.clone(),
                started_at: c.started_at(),
                state: FoundState::Running,
            };
            this.held().insert(
                id,
                Held {
                    pod_uid,
                    found,
                    container: inst.clone(),
                },
            );
            Ok(inst)
        }
    }

    fn signal(&self, container: &OciInstance, signal: StopSignal) -> Result<(), NodeError> {
        self.host.signal(&container.host, signal)
    }

    fn wait(
        &self,
        container: &OciInstance,
    ) -> impl Future<Output = ContainerExit> + Send + 'static {
        self.host.wait(&container.host)
    }

    fn exec_sync(
        &self,
        container: &OciInstance,
        argv: Vec<String>,
        timeout: Duration,
    ) -> impl Future<Output = ExecOutput> + Send + 'static {
        self.host.exec_sync(&container.host, argv, timeout)
    }

    fn exec_target(&self, container: &OciInstance) -> Option<crate::exec::ExecTarget> {
        // The OCI container's exec context enters its namespaces (mount namespace included:
        // its rootfs), cgroup and credentials, as its exec probes do; no `runc exec`.
        self.host.exec_target(&container.host)
    }

    fn status(&self, container: &OciInstance) -> ContainerStatus {
        self.host.status(&container.host)
    }

    fn list_pod(&self, config: &SandboxConfig) -> PodListing<OciSandbox, OciInstance> {
        let mut containers: Vec<Listed<OciInstance>> = self
            .held()
            .values()
            .filter(|h| h.pod_uid == config.identity.uid)
            .map(|h| {
                let exit = match &h.container.host {
                    HostInstance::Started(c) => c.try_exit(),
                    HostInstance::Found(_) => None,
                };
                Listed {
                    found: h.found.clone().with_exit(exit),
                    handle: Some(h.container.clone()),
                }
            })
            .collect();
        let on_disk = self.host.list_pod_with(config, true);
        let root = runc::state_root(&config.options.data_dir, self.runtime.handler);
        // An adopted sandbox (persistent): the pod's DNS and host files are written again (in
        // place: the containers' binds keep seeing them).
        let sandbox = on_disk.sandbox.and_then(|inner| {
            let hostname = crate::namespaces::NamespacePlan::for_pod(&config.pod).hostname;
            match rootfs::write_pod_files(
                inner.pod_dir(),
                &config.pod,
                &config.identity,
                &hostname,
            ) {
                Ok(files) => Some(OciSandbox {
                    inner,
                    pod: config.pod.clone(),
                    files,
                    data_dir: config.options.data_dir.clone(),
                }),
                Err(e) => {
                    tracing::warn!(pod = %config.identity.name, "re-attaching the sandbox: writing the pod's files: {e}");
                    None
                }
            }
        });
        for mut l in on_disk.containers {
            // Created but never started (the process starting it died between the runtime's
            // `create` and `start`): its init still waits in the runtime's exec FIFO. Not
            // started now — its state is unknown, so the engine kills it and starts it again.
            if l.found.state == FoundState::Running {
                if let Some(h) = &l.handle {
                    let comm = std::fs::read_to_string(format!("/proc/{}/comm", h.pid()))
                        .unwrap_or_default();
                    if comm.starts_with("runc:") {
                        l.found.state = FoundState::Unknown;
                    }
                }
            }
            if containers
                .iter()
                .any(|c| c.found.runtime_id == l.found.runtime_id)
            {
                continue;
            }
            let id = l.found.runtime_id.clone();
            let bundle_dir = config.pod_dir().join("oci").join(&id);
            let exec = match (&sandbox, &l.found.state, &l.handle) {
                (Some(sb), FoundState::Running, Some(h)) => {
                    adopted_exec(sb, config, &l.found, h.pid(), &bundle_dir)
                }
                _ => None,
            };
            let handle = l.handle.map(|host| OciInstance {
                host: HostCri::with_exec(&host, exec),
                extra: Arc::new(Extra {
                    log: bundle_dir.join("runtime.log"),
                    id: id.clone(),
                    root: root.clone(),
                    bundle: Mutex::new(None),
                    bundle_dir,
                    image_holder: image_holder(&id),
                    journal: sandbox.as_ref().and_then(|s| s.inner.mount_journal()),
                }),
            });
            containers.push(Listed {
                found: l.found,
                handle,
            });
        }
        containers.sort_by_key(|l| (l.found.started_at, l.found.instance));
        PodListing {
            sandbox,
            containers,
        }
    }

    fn remove_container(
        &self,
        container: OciInstance,
    ) -> impl Future<Output = ()> + Send + 'static {
        self.held().remove(&container.extra.id);
        let host = self.host.remove_container(container.host.clone());
        let this = self.clone();
        async move {
            host.await;
            let x = &container.extra;
            if let Err(e) = runc::run(
                &this.runtime,
                &x.root,
                &x.log,
                &["delete", "--force", &x.id],
            )
            .await
            {
                tracing::warn!(id = %x.id, "{} delete: {e}", this.runtime.handler.name());
            }
            let bundle = x.bundle.lock().unwrap_or_else(|e| e.into_inner()).take();
            match bundle {
                Some(mut b) => b.remove(),
                None => {
                    // Found on disk: its mounts (root filesystem, staged volumes) are under the
                    // bundle dir, journaled in the pod's record; unmount what is there, the
                    // deepest first.
                    let mut points: Vec<PathBuf> = crate::mountinfo::mount_points()
                        .into_iter()
                        .filter(|p| p.starts_with(&x.bundle_dir))
                        .collect();
                    points.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
                    for p in points {
                        if rustix::mount::unmount(&p, rustix::mount::UnmountFlags::DETACH).is_ok() {
                            if let Some(j) = &x.journal {
                                j.after_unmount(&p);
                            }
                        }
                    }
                    let _ = std::fs::remove_dir_all(&x.bundle_dir);
                }
            }
            this.images.release(&x.image_holder);
        }
    }
}

impl<I: ImageService> OciCri<I> {
    fn create_with(
        &self,
        sandbox: &OciSandbox,
        spec: &Container,
        launch: ContainerLaunch,
        id: &str,
        holder: &str,
        image: &crate::spec::ImageRootfs,
    ) -> Result<OciCreated, StartError> {
        let pod = &*sandbox.pod;
        let sb = &sandbox.inner;
        let mut setup = sb.image_container_setup(spec, &launch)?;
        let mut bundle = Bundle::create(sb.pod_dir().join("oci").join(id), sb.mount_journal())
            .map_err(|e| StartError::io(e.what.clone(), e.source))?;
        bundle
            .mount_rootfs(&image.lower_dirs)
            .map_err(|e| StartError::io(e.what.clone(), e.source))?;
        let user = {
            let root = super::user::open_rootfs(&bundle.rootfs())
                .map_err(|e| StartError::io("opening the container's root filesystem", e))?;
            super::user::resolve_user(&root, pod, spec, image.config.user.as_deref()).map_err(
                |e| {
                    if e.is_config_error() {
                        StartError::Config(e.to_string())
                    } else {
                        StartError::io(
                            "resolving the container's user",
                            std::io::Error::other(e.to_string()),
                        )
                    }
                },
            )?
        };
        // Exec probes and hooks run as the container does.
        if let Some(sec) = setup.security.as_mut() {
            sec.credentials = Some(crate::security::Credentials {
                uid: user.uid,
                gid: user.gid,
                groups: user.additional_gids.clone(),
            });
        }
        // The kubelet's mounts: volumes (staged from their held descriptors), /etc/hosts, the
        // termination-message file.
        let volume_mounts = sb.volumes().mounts_for(spec, &launch.env)?;
        let mut mounts = Vec::with_capacity(volume_mounts.len() + 2);
        let mut exec_view = vec![MountSpec {
            source: bundle.rootfs(),
            target: PathBuf::from("/"),
            ..Default::default()
        }];
        for (n, m) in volume_mounts.iter().enumerate() {
            let staged = bundle
                .stage(n, m)
                .map_err(|e| StartError::io(e.what.clone(), e.source))?;
            exec_view.push(MountSpec {
                source: staged.clone(),
                target: m.target.clone(),
                ..Default::default()
            });
            mounts.push(ContainerMount {
                source: staged,
                destination: m.target.display().to_string(),
                read_only: m.read_only,
                recursive_read_only: m.recursive_read_only,
                propagation: m.propagation,
            });
        }
        let mounts_path = |p: &str| mounts.iter().any(|m: &ContainerMount| m.destination == p);
        let host_network = pod
            .spec
            .as_ref()
            .and_then(|s| s.host_network)
            .unwrap_or(false);
        if !mounts_path("/etc/hosts") {
            mounts.push(ContainerMount::bind(
                &sandbox.files.hosts,
                "/etc/hosts",
                false,
            ));
        }
        let message =
            crate::termination::MessageFile::create(&launch.container_dir(), launch.restart_count)
                .map_err(|e| {
                    StartError::io(
                        format!(
                            "creating the termination-log file in {}",
                            launch.container_dir().display()
                        ),
                        e,
                    )
                })?;
        mounts.push(ContainerMount::bind(
            message.path(),
            launch.termination_message_path.clone(),
            false,
        ));
        setup.termination_message = Some(message);
        let ro = spec
            .security_context
            .as_ref()
            .and_then(|s| s.read_only_root_filesystem)
            == Some(true);
        let mut sandbox_mounts = vec![
            ContainerMount::bind(&sandbox.files.hostname, "/etc/hostname", ro),
            ContainerMount::bind(&sandbox.files.resolv, "/etc/resolv.conf", ro),
        ];
        if let Some(shm) = sb.shm_dir() {
            sandbox_mounts.push(ContainerMount::bind(shm, "/dev/shm", false));
        }
        // The pod's namespaces, by path through the holder (alive for the pod's lifetime).
        let plan = crate::namespaces::NamespacePlan::for_pod(pod);
        let holder_ns = |kind: &str| {
            sb.holder_pid()
                .map(|p| PathBuf::from(format!("/proc/{p}/ns/{kind}")))
        };
        let namespaces = SandboxNamespaces {
            network: plan.network.then(|| holder_ns("net")).flatten(),
            uts: plan.network.then(|| holder_ns("uts")).flatten(),
            ipc: plan.ipc.then(|| holder_ns("ipc")).flatten(),
            pid: if plan.pid {
                holder_ns("pid")
                    .map(PidNamespace::Pod)
                    .unwrap_or(PidNamespace::Host)
            } else if pod.spec.as_ref().and_then(|s| s.host_pid).unwrap_or(false) {
                PidNamespace::Host
            } else {
                PidNamespace::Container
            },
        };
        let cgroups_path = setup
            .group
            .as_ref()
            .and_then(|g| g.cgroups_path())
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        let seccomp = match seccomp_request(pod, spec).map_err(|e| StartError::Config(e.to_string()))? {
            SeccompRequest::Unconfined => SeccompChoice::Unconfined,
            SeccompRequest::RuntimeDefault => SeccompChoice::RuntimeDefault,
            SeccompRequest::Localhost(name) => {
                return Err(StartError::Config(format!(
                    "seccomp profile type Localhost ({name:?}) is not supported: this node has no profile directory; use RuntimeDefault or Unconfined"
                )))
            }
        };
        let host = runtime_host();
        let hostname = setup
            .hostname
            .clone()
            .unwrap_or_else(|| plan.hostname.clone());
        let rootfs_path = bundle.rootfs();
        let input = ContainerConfigInput {
            pod,
            container: spec,
            launch: &launch,
            image: &image.config,
            image_name: &launch.image,
            sandbox_id: &launch.pod.uid,
            rootfs: &rootfs_path,
            hostname: &hostname,
            namespaces,
            mounts,
            sandbox_mounts,
            user,
            cgroups_path,
            resources: sb.cgroup_values(spec),
            oom_score_adj: setup.oom_score_adj.unwrap_or(0),
            seccomp,
            host_devices: Vec::new(),
            host,
        };
        let oci_spec = build_spec(&input).map_err(|e| match e {
            super::config::ConfigError::NoCommand => StartError::Io {
                what: "failed to generate spec".into(),
                source: std::io::Error::other("no command specified"),
            },
            other => StartError::Config(other.to_string()),
        })?;
        let process = oci_spec.process().as_ref();
        let env: Vec<(String, String)> = process
            .and_then(|p| p.env().clone())
            .unwrap_or_default()
            .into_iter()
            .map(|kv| match kv.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (kv, String::new()),
            })
            .collect();
        let cwd = process
            .map(|p| p.cwd().clone())
            .unwrap_or_else(|| PathBuf::from("/"));
        let json = to_json(&oci_spec).map_err(|e| StartError::Config(e.to_string()))?;
        std::fs::write(bundle.config(), json)
            .map_err(|e| StartError::io(format!("writing {}", bundle.config().display()), e))?;
        let root = runc::state_root(&sandbox.data_dir, self.runtime.handler);
        let mut argv = runc::global_args(&self.runtime, &root, &bundle.log());
        argv.extend([
            "create".to_string(),
            "--bundle".into(),
            bundle.dir().display().to_string(),
            "--pid-file".into(),
            bundle.pid_file().display().to_string(),
            id.to_string(),
        ]);
        let process = OciProcess {
            id: id.to_string(),
            program: self.runtime.path.clone(),
            argv,
            bundle: bundle.dir().to_path_buf(),
            pid_file: bundle.pid_file(),
            log: bundle.log(),
            handler: self.runtime.handler.name(),
            env,
            cwd,
            own_pid_namespace: matches!(input.namespaces.pid, PidNamespace::Container),
            exec_view,
        };
        let _ = host_network;
        Ok(OciCreated {
            launch,
            setup,
            bundle,
            process,
            root,
            image_holder: holder.to_string(),
        })
    }
}

/// The exec context of a running image container found on disk whose sandbox was adopted:
/// its process's environment, working directory and user from its bundle's config.json, its
/// root filesystem and staged volumes as the exec view.
fn adopted_exec(
    sandbox: &OciSandbox,
    config: &SandboxConfig,
    found: &FoundContainer,
    pid: i32,
    bundle_dir: &std::path::Path,
) -> Option<crate::runtime::ExecContext> {
    let spec = config.pod.spec.as_ref().and_then(|s| {
        s.init_containers
            .iter()
            .flatten()
            .chain(s.containers.iter())
            .find(|c| c.name == found.name)
    })?;
    let launch = ContainerLaunch::from_container_for_image(
        spec,
        &config.identity,
        &config.options.data_dir,
        found.attempt,
        &crate::launch::EnvSources {
            objects: &config.options.objects,
            pod: Some(&config.pod),
        },
    )
    .ok()?;
    let oci = oci_spec::runtime::Spec::load(bundle_dir.join("config.json")).ok()?;
    let process = oci.process().as_ref()?;
    let env: Vec<(String, String)> = process
        .env()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (kv, String::new()),
        })
        .collect();
    let cwd = process.cwd().clone();
    let user = process.user();
    let mut setup = sandbox.inner.exec_setup(spec, &launch, true).ok()?;
    if let Some(sec) = setup.security.as_mut() {
        sec.credentials = Some(crate::security::Credentials {
            uid: user.uid(),
            gid: user.gid(),
            groups: user.additional_gids().clone().unwrap_or_default(),
        });
    }
    let staged = bundle_dir.join("vol");
    let mut view = vec![MountSpec {
        source: bundle_dir.join("rootfs"),
        target: PathBuf::from("/"),
        ..Default::default()
    }];
    for m in oci.mounts().iter().flatten() {
        if let Some(src) = m.source() {
            if src.starts_with(&staged) {
                view.push(MountSpec {
                    source: src.clone(),
                    target: m.destination().clone(),
                    ..Default::default()
                });
            }
        }
    }
    Some(crate::runtime::adopted_exec_context(
        &found.runtime_id,
        &launch,
        setup,
        pid,
        Some((env, cwd, view)),
    ))
}

/// What this node and its runtime can do (config.json's host-dependent parts).
fn runtime_host() -> RuntimeHost {
    let caps = crate::security::own_capabilities("CapBnd").unwrap_or(0);
    let layout = crate::cgroups::layout::CgroupLayout::from_proc().ok();
    let cgroup_v2 = matches!(layout, Some(crate::cgroups::layout::CgroupLayout::V2(_)));
    let swap_limit = match &layout {
        Some(crate::cgroups::layout::CgroupLayout::V2(u)) => u.available.contains("memory"),
        Some(l) => l
            .v1_hierarchy("memory")
            .is_some_and(|h| h.base.join("memory.memsw.limit_in_bytes").exists()),
        None => false,
    };
    RuntimeHost {
        capabilities: caps,
        cgroup_v2,
        swap_limit,
        // Without CAP_SYS_RESOURCE a negative value is refused (runc would fail the start).
        oom_score_adj_floor: if crate::security::has_capability(24) {
            -1000
        } else {
            0
        },
    }
}

/// Probes and hooks for image containers: the host prober in the container's namespaces
/// (entered from its init, no `<runtime> exec`).
#[derive(Clone)]
pub struct OciProbes {
    host: HostProbes,
}

impl OciProbes {
    pub fn new() -> std::io::Result<Self> {
        Ok(OciProbes {
            host: HostProbes::new()?,
        })
    }
}

impl ProbeService<OciInstance> for OciProbes {
    fn probe(
        &self,
        container: &OciInstance,
        req: ProbeRequest,
    ) -> impl Future<Output = ProbeResult> + Send + 'static {
        self.host.probe(&container.host, req)
    }

    fn run_hook(
        &self,
        container: &OciInstance,
        req: HookRequest,
    ) -> impl Future<Output = Result<(), String>> + Send + 'static {
        self.host.run_hook(&container.host, req)
    }
}

/// A host runtime for OCI classes built on a given [`HostRuntime`] (tests: explicit tracker).
impl<I: ImageService> OciCri<I> {
    pub fn with_runtime(host: HostRuntime, runtime: OciRuntime, images: Arc<I>) -> Self {
        OciCri {
            host: HostCri::with_runtime(host),
            images,
            runtime,
            held: Arc::default(),
        }
    }
}

/// The image store of a build without one: every image is missing (the real store is
/// `skiff-image`; the binary passes it to `worker::run_pod_on`).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoImageStore;

impl ImageService for NoImageStore {
    fn image_status(
        &self,
        _image: &str,
    ) -> Result<Option<crate::cri::ImageInfo>, crate::cri::ImageError> {
        Ok(None)
    }

    fn pull_image(
        &self,
        image: &str,
        _secrets: &crate::cri::PullSecrets,
    ) -> impl Future<Output = Result<crate::cri::ImageInfo, crate::cri::ImageError>> + Send + 'static
    {
        let msg = format!("pulling image {image:?}: this node has no image store");
        async move { Err(crate::cri::ImageError::Pull(msg)) }
    }

    fn rootfs(
        &self,
        image: &str,
        _holder: &str,
    ) -> Result<crate::spec::ImageRootfs, crate::cri::ImageError> {
        Err(crate::cri::ImageError::Store(format!(
            "image {image:?} is not present: this node has no image store"
        )))
    }

    fn release(&self, _holder: &str) {}
}
