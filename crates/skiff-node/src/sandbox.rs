//! The pod sandbox: everything a pod's containers share and that exists from before the first
//! container starts until after the last one stopped (SEMANTICS S1) — the pod's namespaces
//! (network, IPC, UTS, optionally PID), its cgroup, and its volumes. The pod worker creates it
//! when the engine asks for `CreateSandbox`, asks it for each container's [`ContainerSetup`],
//! and destroys it at the end, however the pod ended.

use std::path::PathBuf;

use k8s_openapi::api::core::v1::{Container, Pod};

use crate::isolation::ContainerSetup;
use crate::launch::ContainerLaunch;
pub use crate::spec::SandboxError;
use crate::spec::{PodIdentity, StartError};
use crate::volumes::downward::DetectNodeAllocatable as _;
pub use crate::volumes::PodObjects;

/// Node-wide settings the sandbox needs.
#[derive(Debug, Clone, Default)]
pub struct SandboxOptions {
    /// skiff's data directory; the pod's files live under `pods/<ns>_<name>_<uid>/`.
    pub data_dir: PathBuf,
    pub objects: PodObjects,
    /// The sandbox outlives this process, to be adopted by the next one (`skiff serve`; see
    /// `WorkerConfig::persistent`).
    pub persistent: bool,
}

/// A pod's shared environment. Dropping it without [`PodSandbox::destroy`] leaks nothing
/// the next start of skiff could not clean up, but `destroy` is the normal way out.
#[derive(Debug)]
pub struct PodSandbox {
    identity: PodIdentity,
    pod_dir: PathBuf,
    /// Network/IPC/UTS(/PID) namespaces and their holder (`namespaces` module).
    namespaces: crate::namespaces::PodNamespaces,
    /// Mount points created on the host for containers' mounts (`mountns` module).
    mountpoints: std::sync::Mutex<Vec<PathBuf>>,
    /// The pod's volumes on the host (`volumes` module).
    volumes: crate::volumes::PodVolumes,
    /// The pod's cgroup, its record for cleanup after a crash, oom_score_adj (`node` module).
    resources: crate::node::PodResources,
    /// The pod's securityContext and skiff's own credentials (`security` module).
    security: crate::security::PodSecurity,
    /// The containers' `HOSTNAME` (see [`ContainerSetup::hostname`]).
    hostname: String,
    /// The pod's `/dev/shm` when its containers get the default view (`container_view`).
    shm: Option<crate::container_view::PodShm>,
    /// Each container a PID namespace of its own (neither `hostPID` nor
    /// `shareProcessNamespace`).
    own_pid_namespaces: bool,
}

impl PodSandbox {
    /// Builds the sandbox for `pod`. On error nothing of it is left behind.
    pub async fn create(
        pod: &Pod,
        identity: &PodIdentity,
        opts: &SandboxOptions,
    ) -> Result<PodSandbox, SandboxError> {
        let pod_dir = opts.data_dir.join("pods").join(identity.dir_name());
        crate::node::create_pod_dir(&pod_dir).map_err(|e| SandboxError {
            reason: "FailedCreatePodSandBox".into(),
            message: format!("creating {}: {e}", pod_dir.display()),
        })?;
        // Pod cgroup and its record (node module); removed again if a later step fails.
        let resources = crate::node::PodResources::create(pod, identity, &opts.data_dir, &pod_dir)?;
        // Pod namespaces (namespaces module); dropped on a later error, the holder exits.
        // Persistent: the holder is the sandbox's anchor (recorded before anything else is
        // made that the node's recovery could otherwise take for a dead skiff's).
        let namespaces = crate::namespaces::for_sandbox(pod, opts.persistent)?;
        let anchor = if opts.persistent {
            namespaces.holder_ref()
        } else {
            None
        };
        let mut namespaces = Unwind {
            ns: Some(namespaces),
        };
        if let Some(a) = &anchor {
            let fail = |what: &str, e: std::io::Error| SandboxError {
                reason: "FailedCreatePodSandBox".into(),
                message: format!("Failed to create pod sandbox: {what}: {e}"),
            };
            resources
                .set_anchor(a)
                .map_err(|e| fail("recording the pod's anchor", e))?;
            // Recorded: from here on the holder outlives this process.
            if let Some(ns) = namespaces.ns.as_mut() {
                ns.detach()
                    .map_err(|e| fail("detaching the namespace holder", e))?;
            }
        }
        // The pod's /dev/shm (container_view module), under the recorded pod dir.
        let plan = crate::namespaces::NamespacePlan::for_pod(pod);
        let view = default_view_available();
        let shm = if !view {
            None
        } else if plan.ipc {
            Some(crate::container_view::PodShm::create(
                &pod_dir,
                resources.mount_journal(),
            ))
        } else {
            Some(crate::container_view::PodShm::host())
        }
        .transpose()
        .map_err(|e| SandboxError {
            reason: "FailedCreatePodSandBox".into(),
            message: format!("Failed to create pod sandbox: mounting the pod's /dev/shm: {e}"),
        })?;
        let spec = pod.spec.as_ref();
        let own_pid_namespaces = view
            && !spec.and_then(|s| s.host_pid).unwrap_or(false)
            && !spec
                .and_then(|s| s.share_process_namespace)
                .unwrap_or(false);
        // Volumes (volumes module): all set up before any container starts, or none.
        let node = crate::volumes::downward::NodeAllocatable::detect(&opts.data_dir);
        // Each tmpfs is recorded in the pod's record before it is mounted.
        let journal = resources.mount_journal();
        let mut volumes = crate::volumes::PodVolumes::setup_journaled(
            pod,
            &pod_dir,
            &opts.objects,
            &node,
            journal,
        )
        .map_err(|e| SandboxError {
            reason: "FailedMount".into(),
            message: e.to_string(),
        })?;
        let mut shm = shm;
        if let Some(a) = &anchor {
            // What the next process re-attaches (see [`PodSandbox::adopt`]); the sandbox is
            // complete only once this is written.
            let plan = crate::namespaces::NamespacePlan::for_pod(pod);
            let record = SandboxRecord {
                version: 1,
                pod_uid: identity.uid.clone(),
                boot_id: crate::state::boot_id(),
                holder: a.clone(),
                network: plan.network,
                ipc: plan.ipc,
                pid: plan.pid,
            };
            record.write(&pod_dir).map_err(|e| SandboxError {
                reason: "FailedCreatePodSandBox".into(),
                message: format!("Failed to create pod sandbox: writing {SANDBOX_FILE}: {e}"),
            })?;
            volumes.keep();
            if let Some(s) = shm.as_mut() {
                s.keep();
            }
        }
        Ok(PodSandbox {
            identity: identity.clone(),
            pod_dir,
            namespaces: namespaces.take(),
            mountpoints: Default::default(),
            volumes,
            resources,
            // Rootless: containers are uid 0 of the pod's user namespace (security module).
            security: if crate::namespaces::rootless() {
                crate::security::PodSecurity::in_user_namespace(pod)
            } else {
                crate::security::PodSecurity::new(pod)
            },
            hostname: container_hostname(pod),
            shm,
            own_pid_namespaces,
        })
    }

    /// Re-attaches the persistent sandbox an earlier process made for `pod` (see
    /// `WorkerConfig::persistent`): its record in the pod's directory (this boot's, this
    /// pod's), its namespace holder (pidfd, checked against its start time), its cgroup and
    /// node record, its /dev/shm and its volumes (tmpfs mounts taken as they are). `None` when
    /// there is none or any part of it is gone: the worker then treats the sandbox as lost
    /// (S9), and a new one's creation clears what is left of this one.
    pub fn adopt(pod: &Pod, identity: &PodIdentity, opts: &SandboxOptions) -> Option<PodSandbox> {
        let pod_dir = opts.data_dir.join("pods").join(identity.dir_name());
        let record = SandboxRecord::read(&pod_dir)?;
        if record.pod_uid != identity.uid || record.boot_id != crate::state::boot_id() {
            return None;
        }
        if !crate::namespaces::support().namespaces() || crate::namespaces::rootless() {
            return None;
        }
        let mut plan = crate::namespaces::NamespacePlan::for_pod(pod);
        (plan.network, plan.ipc, plan.pid) = (record.network, record.ipc, record.pid);
        let namespaces = crate::namespaces::PodNamespaces::adopt(&plan, &record.holder)?;
        let resources = crate::node::PodResources::adopt(pod, identity, &pod_dir, &record.holder)?;
        let view = default_view_available();
        let shm = if !view {
            None
        } else if plan.ipc {
            Some(crate::container_view::PodShm::adopt(
                &pod_dir,
                resources.mount_journal(),
            )?)
        } else {
            let mut s = crate::container_view::PodShm::host().ok()?;
            s.keep();
            Some(s)
        };
        let spec = pod.spec.as_ref();
        let own_pid_namespaces = view
            && !spec.and_then(|s| s.host_pid).unwrap_or(false)
            && !spec
                .and_then(|s| s.share_process_namespace)
                .unwrap_or(false);
        let node = crate::volumes::downward::NodeAllocatable::detect(&opts.data_dir);
        let mut volumes = match crate::volumes::PodVolumes::setup_adopting(
            pod,
            &pod_dir,
            &opts.objects,
            &node,
            resources.mount_journal(),
            resources.recorded_mounts(),
        ) {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(pod = %identity.name, "re-attaching the pod's volumes: {e}");
                return None;
            }
        };
        volumes.keep();
        let mountpoints = resources.recorded_mountpoints();
        Some(PodSandbox {
            identity: identity.clone(),
            pod_dir,
            namespaces,
            mountpoints: std::sync::Mutex::new(mountpoints),
            volumes,
            resources,
            security: crate::security::PodSecurity::new(pod),
            hostname: container_hostname(pod),
            shm,
            own_pid_namespaces,
        })
    }

    /// Whether the pod directory `pod_dir` has a persistent sandbox of this boot whose holder
    /// lives (what [`PodSandbox::adopt`] would re-attach).
    pub fn lives(pod_dir: &std::path::Path) -> bool {
        SandboxRecord::read(pod_dir)
            .is_some_and(|r| r.boot_id == crate::state::boot_id() && r.holder.alive())
    }

    /// The pod's directory under the data dir.
    pub fn pod_dir(&self) -> &std::path::Path {
        &self.pod_dir
    }

    pub fn identity(&self) -> &PodIdentity {
        &self.identity
    }

    /// What one container instance is put into (namespaces, mounts, cgroup, security).
    /// Errors are the container's start errors (`CreateContainerConfigError`, …).
    pub fn container_setup(
        &self,
        container: &Container,
        launch: &ContainerLaunch,
    ) -> Result<ContainerSetup, StartError> {
        let mut setup = ContainerSetup {
            // Security context first: its config errors (runAsNonRoot, …) must create nothing.
            security: Some(self.security.plan(container)?),
            hostname: Some(self.hostname.clone()),
            ..ContainerSetup::default()
        };
        // Namespaces: join the pod's, and an own mount namespace (filled with volumes below).
        if crate::namespaces::support().namespaces() {
            setup.namespaces = Some(self.namespaces.join().clone());
            setup.mounts = Some(Vec::new());
            setup.read_only_root = container
                .security_context
                .as_ref()
                .and_then(|sc| sc.read_only_root_filesystem)
                == Some(true);
            if default_view_available() {
                let sc = container.security_context.as_ref();
                setup.view = Some(crate::container_view::ViewPlan {
                    privileged: sc.and_then(|sc| sc.privileged) == Some(true),
                    unmasked: sc.and_then(|sc| sc.proc_mount.as_deref()) == Some("Unmasked"),
                    shm: self.shm.as_ref().map(|s| s.fd()),
                    dev_mountpoints: Vec::new(),
                });
                setup.own_pid_namespace = self.own_pid_namespaces;
            }
        }
        // Volumes: the container's volumeMounts (volumes module).
        let volume_mounts = self.volumes.mounts_for(container, &launch.env)?;
        if !volume_mounts.is_empty() {
            setup
                .mounts
                .get_or_insert_with(Vec::new)
                .extend(volume_mounts);
        }
        // cgroup and oom_score_adj (node module).
        self.resources
            .container_setup(container, launch, &mut setup)?;
        // The instance's termination-message file, bind-mounted at terminationMessagePath
        // (termination module; after the volumes, so it lands on top of them).
        setup.termination_message = crate::termination::plan(
            &launch.container_dir(),
            launch.restart_count,
            &launch.termination_message_path,
            setup.mounts.as_mut(),
            setup.view.is_some(),
        )?;
        // Mount points for the container's mounts (namespaces/mountns; keep last).
        // Each is in the pod's crash record before it exists (issue 7 item 1c).
        if let Some(mounts) = &setup.mounts {
            // Targets in a private /dev get their mount points in that tmpfs (child side).
            let private_dev = setup.view.is_some();
            let (in_dev, on_host): (Vec<_>, Vec<_>) = mounts
                .iter()
                .cloned()
                .partition(|m| private_dev && crate::container_view::in_dev(&m.target));
            if let Some(v) = setup.view.as_mut() {
                v.dev_mountpoints = in_dev
                    .iter()
                    .map(|m| {
                        // The type of what will be mounted, from the held descriptor when
                        // there is one (a path could be swapped by another container).
                        let dir = match &m.source_fd {
                            Some(fd) => nix::sys::stat::fstat(&*fd.0)
                                .map(|st| st.st_mode & nix::libc::S_IFMT == nix::libc::S_IFDIR)
                                .map_err(std::io::Error::from),
                            None => std::fs::metadata(&m.source).map(|md| md.is_dir()),
                        };
                        (m.target.clone(), dir.unwrap_or(true))
                    })
                    .collect();
            }
            let mut created = Vec::new();
            let r = crate::mountns::ensure_mountpoints(
                &on_host,
                &mut |p| self.resources.record_mountpoint(p),
                &mut created,
            );
            if let Ok(mut m) = self.mountpoints.lock() {
                m.extend(created);
            }
            r?;
        }
        Ok(setup)
    }

    /// What commands run "in" an instance of `container` that an earlier process started (an
    /// adopted sandbox's: exec probes, hooks) enter, before `ContainerSetup::for_exec` adds the
    /// instance's own namespaces: its security plan, the pod's namespaces, its volume mounts
    /// (where commands are looked up). Makes nothing (no cgroup, file or mount point).
    pub fn exec_setup(
        &self,
        container: &Container,
        launch: &ContainerLaunch,
        image: bool,
    ) -> Result<ContainerSetup, StartError> {
        let mut setup = ContainerSetup {
            security: Some(self.security.plan(container)?),
            hostname: Some(self.hostname.clone()),
            own_pid_namespace: self.own_pid_namespaces,
            ..ContainerSetup::default()
        };
        if crate::namespaces::support().namespaces() {
            setup.namespaces = Some(self.namespaces.join().clone());
            setup.mounts = Some(if image {
                Vec::new()
            } else {
                self.volumes.mounts_for(container, &launch.env)?
            });
        }
        Ok(setup)
    }

    /// What an image container (OCI runtime) takes from the sandbox: its security plan (for
    /// exec probes and hooks), the pod's namespaces, its cgroup (created here, with its limits),
    /// oom_score_adj and hostname. No mounts: the OCI runtime builds the container's mount
    /// namespace from its bundle (`oci` module), and nothing is made on the host's `/`.
    pub fn image_container_setup(
        &self,
        container: &Container,
        launch: &ContainerLaunch,
    ) -> Result<ContainerSetup, StartError> {
        let mut setup = ContainerSetup {
            security: Some(self.security.plan(container)?),
            hostname: Some(self.hostname.clone()),
            namespaces: Some(self.namespaces.join().clone()),
            own_pid_namespace: self.own_pid_namespaces,
            ..ContainerSetup::default()
        };
        self.resources
            .container_setup(container, launch, &mut setup)?;
        Ok(setup)
    }

    /// The container's cgroup values as the node computes them (`resources` of config.json).
    pub fn cgroup_values(
        &self,
        container: &Container,
    ) -> skiff_model::resources::ContainerCgroupValues {
        let cfg = self
            .resources
            .cgroup()
            .map(|c| c.driver().settings().values)
            .unwrap_or_default();
        skiff_model::resources::container_cgroup_values(container, &cfg)
    }

    /// The pod's `/dev/shm` on the host, when its containers get one.
    pub fn shm_dir(&self) -> Option<&std::path::Path> {
        self.shm.as_ref().map(|s| s.dir())
    }

    /// The pod's crash record, where mounts are journaled before they are made.
    pub fn mount_journal(&self) -> Option<std::sync::Arc<dyn crate::spec::MountJournal>> {
        self.resources.mount_journal()
    }

    /// The pod's volumes (host paths, warnings, sizeLimit checks).
    pub fn volumes(&self) -> &crate::volumes::PodVolumes {
        &self.volumes
    }

    /// The PID of the process holding the pod's namespaces, if it has one.
    pub fn holder_pid(&self) -> Option<i32> {
        self.namespaces.holder_pid()
    }

    /// Tears the sandbox down once every container of the pod has stopped.
    pub async fn destroy(self) {
        // Namespaces (namespaces module): kill the holder; mount points we created.
        self.namespaces.destroy().await;
        // The pod's /dev/shm (container_view module).
        if let Some(s) = self.shm {
            s.remove();
        }
        let _ = std::fs::remove_file(self.pod_dir.join(SANDBOX_FILE));
        if let Ok(m) = self.mountpoints.lock() {
            crate::mountns::remove_mountpoints(&m);
        }
        // Volumes (volumes module): unmount tmpfs, remove the pod's volume dirs.
        let mut volumes = self.volumes;
        volumes.teardown();
        // Pod cgroup (node module): kills anything left in it, removes it and the record.
        self.resources.destroy().await;
    }
}

/// A persistent sandbox's record in the pod's directory (see [`PodSandbox::adopt`]).
pub const SANDBOX_FILE: &str = "sandbox.json";

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct SandboxRecord {
    version: u32,
    pod_uid: String,
    boot_id: String,
    /// The namespace holder, the sandbox's anchor.
    holder: crate::state::ProcessRef,
    /// Which namespaces are the pod's own (the rest are the host's).
    network: bool,
    ipc: bool,
    pid: bool,
}

impl SandboxRecord {
    fn write(&self, pod_dir: &std::path::Path) -> std::io::Result<()> {
        let data = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        skiff_monitor::record::write_file_atomic(&pod_dir.join(SANDBOX_FILE), &data)
    }

    fn read(pod_dir: &std::path::Path) -> Option<SandboxRecord> {
        let path = pod_dir.join(SANDBOX_FILE);
        let data = skiff_monitor::record::read_file_bounded(&path, 64 * 1024).ok()?;
        let r: SandboxRecord = match serde_json::from_slice(&data) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(path = %path.display(), "not a sandbox record: {e}");
                return None;
            }
        };
        (r.version == 1).then_some(r)
    }
}

/// Takes the namespaces back on an error of a later step of [`PodSandbox::create`]: a
/// persistent holder has no lifeline, so it is killed here (a plain one exits by itself).
struct Unwind {
    ns: Option<crate::namespaces::PodNamespaces>,
}

impl Unwind {
    fn take(mut self) -> crate::namespaces::PodNamespaces {
        self.ns
            .take()
            .unwrap_or_else(crate::namespaces::PodNamespaces::host)
    }
}

impl Drop for Unwind {
    fn drop(&mut self) {
        if let Some(ns) = self.ns.take() {
            ns.kill_holder();
        }
    }
}

/// Whether containers get the default view (`container_view`): with namespaces as root.
/// Rootless pods keep the host's /proc, /sys and /dev (their processes hold no privilege
/// on the host); see the README.
fn default_view_available() -> bool {
    crate::namespaces::support().namespaces() && !crate::namespaces::rootless()
}

/// The containers' `HOSTNAME` env. The kubelet gives the sandbox a hostname only without
/// `hostNetwork` (`generatePodSandboxConfig` in `pkg/kubelet/kuberuntime/kuberuntime_sandbox.go`:
/// `spec.hostname`, else the pod name); containerd puts it in `HOSTNAME`, or the node's
/// hostname when there is none (`internal/cri/server/container_create.go`).
fn container_hostname(pod: &Pod) -> String {
    let host_network = pod
        .spec
        .as_ref()
        .and_then(|s| s.host_network)
        .unwrap_or(false);
    if host_network {
        if let Ok(h) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
            return h.trim_end().to_string();
        }
    }
    crate::namespaces::NamespacePlan::for_pod(pod).hostname
}
