//! The plain data that crosses the node's modules: who a pod is, why a container or a sandbox
//! could not be made, the mounts a container gets, the group its processes are tracked in,
//! and where mounts are journaled. A leaf: it imports no other module of this crate, so every
//! module may import it and none has to import the module that composes it for a type.

use std::fs::File;
use std::future::Future;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::Signal;

/// The pod a container belongs to, as far as a container needs to know.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodIdentity {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub pod_ip: Option<String>,
    pub host_ip: Option<String>,
    pub node_name: Option<String>,
    pub service_account_name: Option<String>,
}

impl PodIdentity {
    /// `<namespace>_<name>_<uid>`, the kubelet's pod log directory name.
    pub fn dir_name(&self) -> String {
        format!("{}_{}_{}", self.namespace, self.name, self.uid)
    }
}

/// `terminationMessagePolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TerminationMessagePolicy {
    #[default]
    File,
    FallbackToLogsOnError,
}

/// Why a container could not be started. Every variant maps to a terminated
/// state with reason [`StartError::reason`] and exit code 128, as the kubelet
/// reports a failed `StartContainer`.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// `command[0]` has no `/` and is not in the container's `PATH`.
    #[error("exec: {name:?}: executable file not found in $PATH")]
    ExecutableNotFound { name: String },
    /// `command[0]` is a path that does not exist.
    #[error("exec: {path:?}: stat {path}: no such file or directory")]
    NoSuchFile { path: String },
    /// `command[0]` exists but cannot be executed.
    #[error("exec: {path:?}: permission denied")]
    PermissionDenied { path: String },
    /// A NUL byte in command/args, an env value, workingDir or terminationMessagePath: the
    /// runtime's exec/mount cannot take it (runc fails with EINVAL when it starts the
    /// container), so the start fails with StartError and exit code 128.
    #[error("exec: {path:?}: invalid argument ({what} contains a NUL byte)")]
    InvalidArgument { path: String, what: &'static str },
    /// The host runtime has no image config to take an entrypoint from.
    #[error("container {container:?} has no command; runtime class \"host\" needs spec.containers[].command (the image {image:?} is not pulled)")]
    NoCommand { container: String, image: String },
    /// `workingDir` does not exist.
    #[error("chdir to cwd ({dir:?}) set in config.json failed: no such file or directory")]
    WorkingDir { dir: String },
    /// Env references that cannot be resolved (kubelet: CreateContainerConfigError).
    #[error("{0}")]
    Config(String),
    /// Anything else from the OS (creating log files, cgroups, fork).
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

impl StartError {
    /// The failure as the engine takes it: [`StartError::Config`] is the container config that
    /// cannot be made (`CreateContainerConfigError`, nothing created); every other error means
    /// the process could not be started (`RunContainerError`, the runtime keeps a
    /// `StartError` record).
    pub fn failure(&self) -> skiff_engine::StartFailure {
        let message = self.to_string();
        match self {
            StartError::Config(_) => skiff_engine::StartFailure::Config { message },
            StartError::ExecutableNotFound { .. }
            | StartError::NoSuchFile { .. }
            | StartError::PermissionDenied { .. }
            | StartError::InvalidArgument { .. }
            | StartError::NoCommand { .. }
            | StartError::WorkingDir { .. }
            | StartError::Io { .. } => skiff_engine::StartFailure::Run { message },
        }
    }

    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        StartError::Io {
            what: what.into(),
            source,
        }
    }
}

/// Why a sandbox could not be made. `reason` is the event reason the kubelet uses
/// (`FailedCreatePodSandBox`, `FailedMount`, …).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SandboxError {
    pub reason: String,
    pub message: String,
}

/// A bind or filesystem mount inside the container's own mount namespace (volumes,
/// termination-message file, /etc/hosts, …).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MountSpec {
    /// Host path of what is mounted (a volume's directory or file, possibly a subPath of it);
    /// with `source_fd`, only for messages and checks (the fd is what gets mounted).
    pub source: PathBuf,
    /// Absolute path inside the container (`volumeMounts[].mountPath`).
    pub target: PathBuf,
    pub read_only: bool,
    pub propagation: Propagation,
    /// The source, held open (`O_PATH`) since it was checked (issue 7 item 1): the mount is
    /// made from this descriptor, never from `source` resolved again later, so a container
    /// swapping a checked directory for a symlink cannot redirect it.
    pub source_fd: Option<HeldFd>,
    /// `recursiveReadOnly: Enabled` (or `IfPossible`): every mount below `source` read-only
    /// too (`mount_setattr` with `AT_RECURSIVE`).
    pub recursive_read_only: bool,
}

/// A shared open descriptor (kept open until every child that mounts it has done so).
#[derive(Debug, Clone)]
pub struct HeldFd(pub Arc<std::os::fd::OwnedFd>);

impl PartialEq for HeldFd {
    fn eq(&self, other: &Self) -> bool {
        use std::os::fd::AsRawFd;
        self.0.as_raw_fd() == other.0.as_raw_fd()
    }
}

impl Eq for HeldFd {}

/// The host path that will be at `path` inside a container with `mounts` (the mount with the
/// longest matching target wins), for checks made in the parent before the mounts exist.
pub fn host_view(mounts: &[MountSpec], path: &Path) -> PathBuf {
    mounts
        .iter()
        .filter_map(|m| path.strip_prefix(&m.target).ok().map(|rest| (m, rest)))
        .max_by_key(|(m, _)| m.target.components().count())
        .map(|(m, rest)| {
            if rest.as_os_str().is_empty() {
                m.source.clone()
            } else {
                m.source.join(rest)
            }
        })
        .unwrap_or_else(|| path.to_path_buf())
}

/// `volumeMounts[].mountPropagation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Propagation {
    /// `None` (the default): private.
    #[default]
    Private,
    /// `HostToContainer`: rslave.
    HostToContainer,
    /// `Bidirectional`: rshared (privileged containers only).
    Bidirectional,
}

/// Where skiff notes the mounts it makes on the host for a pod (the pod's crash record, see
/// `node`): written **before** the mount and cleared only **after** the unmount, so that the
/// next start of skiff unmounts whatever a killed or panicking skiff left (issue 7 item 6).
pub trait MountJournal: Send + Sync + std::fmt::Debug {
    /// Records `path`; an error means the mount is not made.
    fn before_mount(&self, path: &Path) -> Result<(), String>;
    /// `path` is no longer mounted.
    fn after_unmount(&self, path: &Path);
}

/// Boxed future returned by [`TrackedGroup::remove`].
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The processes of one container instance.
pub trait TrackedGroup: Send + Sync + std::fmt::Debug + 'static {
    fn id(&self) -> &str;
    /// A file the child writes `0` into before `exec` to join the group
    /// (`cgroup.procs`), if this tracker works that way.
    fn join_file(&self) -> Option<Arc<File>>;
    /// Every file the child writes `0` into before `exec` (cgroup v1: one `cgroup.procs`
    /// per hierarchy). Defaults to [`join_file`](Self::join_file).
    fn join_files(&self) -> Vec<Arc<File>> {
        self.join_file().into_iter().collect()
    }
    /// An open cgroup2 directory the child can be created in (`clone3` with
    /// `CLONE_INTO_CGROUP`), which is much cheaper than joining through
    /// [`join_file`](Self::join_file) (see the `spawn` module). `None` when
    /// the tracker has none; `join_file` is then used.
    fn cgroup_dir(&self) -> Option<Arc<OwnedFd>> {
        None
    }
    /// The group's cgroup path relative to skiff's own cgroup in every hierarchy (what an OCI
    /// runtime's relative `cgroupsPath` names: runc nests it under its caller's cgroup in
    /// each hierarchy). `None` for trackers that are no cgroup.
    fn cgroups_path(&self) -> Option<PathBuf> {
        None
    }
    /// Records the container's first process (leader of its own session).
    fn set_leader(&self, pid: i32);
    /// Whether the kernel OOM killer killed a process of the group (its memory cgroup's own
    /// OOM events; ST4). `false` for trackers without a memory cgroup.
    fn oom_killed(&self) -> bool {
        false
    }
    /// Sends `sig` to every process of the group. Not an error when empty.
    fn signal_all(&self, sig: Signal) -> io::Result<()>;
    /// Live processes of the group.
    fn pids(&self) -> Vec<i32>;
    /// Kills whatever is left, waits (at most `timeout`) for the group to be
    /// empty and releases it.
    fn remove(&self, timeout: Duration) -> BoxFuture<'_, io::Result<()>>;
}

/// What an image says about the process it runs (Entrypoint, Cmd, Env, WorkingDir, User,
/// StopSignal): the image store's own type.
pub use skiff_image::RootfsConfig as ImageProcessConfig;

/// An image unpacked and ready to be a container's root filesystem: what the image store
/// hands the OCI runtime (containerd's snapshot mounts + image config).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRootfs {
    /// The image's ID as the container status shows it (`sha256:<config digest>`).
    pub image_id: String,
    pub config: ImageProcessConfig,
    /// The unpacked layer directories, **top-most first** (overlayfs `lowerdir` order). Each
    /// is owned by the image store, read-only to runtimes, and stays until no container uses it.
    pub lower_dirs: Vec<PathBuf>,
}
