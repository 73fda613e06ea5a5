//! The pod sandbox's namespaces: one network, IPC and UTS namespace per pod (and one PID
//! namespace with `shareProcessNamespace: true`), shared by all its containers.
//!
//! They are held by a small **holder** process — skiff's equivalent of the pause container
//! (kubelet `pkg/kubelet/kuberuntime/kuberuntime_sandbox.go`, containerd's sandbox). It is
//! born in the new namespaces with one `clone3(CLONE_NEWNET|CLONE_NEWIPC|CLONE_NEWUTS
//! [|CLONE_NEWPID])` through the [`Reaper`], sets the hostname, brings `lo` up, then waits:
//! it reaps orphans (it is PID 1 of a shared PID namespace, as pause is) and exits when skiff
//! closes its lifeline pipe — so a killed skiff leaves no holder behind — or when it is
//! SIGKILLed by PID at [`PodNamespaces::destroy`]. It never `exec`s, so it only makes raw
//! system calls and closes every descriptor it inherited from skiff first (its code is in
//! [`crate::sys::holder`]; this module prepares its arguments and talks to it).
//!
//! Which namespaces a pod gets follows the kubelet (`pkg/kubelet/kuberuntime/util/util.go`
//! `NamespacesForPod`): network = node's with `hostNetwork`, IPC = node's with `hostIPC`,
//! PID = node's with `hostPID`, the pod's with `shareProcessNamespace`, and otherwise the
//! container's own — skiff does not give each container a PID namespace of its own yet (it
//! stays in the host's). UTS follows the network (containerd: a host-network sandbox uses the
//! host's UTS namespace and hostname). Hostname: `spec.hostnameOverride`, else `spec.hostname`,
//! else the pod name cut to 63 characters (kubelet `GeneratePodHostNameAndDomain`).
//!
//! Containers join with `setns` in the forked child ([`apply_in_child`], isolation step 1)
//! on descriptors opened here. The PID namespace is different: `setns(CLONE_NEWPID)` only
//! changes where the caller's *children* are born, so [`with_pid_namespace`] switches the
//! spawning thread's `pid_for_children` around the fork and back; the container's process is
//! then born in the pod's PID namespace while skiff stays in its own (setns of a PID
//! namespace is per thread and allowed in a multi-threaded process, unlike the mount and
//! user namespaces).
//!
//! **Rootless** (issue 4 item 9): without CAP_SYS_ADMIN, where the kernel lets unprivileged
//! users create user namespaces, the holder is born in a new *user* namespace too
//! (`CLONE_NEWUSER` with the others, so it owns them) and maps skiff's uid and gid to 0 in it
//! itself: one line each in `uid_map`/`gid_map` after `setgroups` `deny` — what `unshare -r`
//! and rootless podman's single-id mode do, no `newuidmap` needed. Containers `setns` into that
//! user namespace first (gaining its capabilities), then into the others, then unshare their
//! own mount namespace as usual. A shared PID namespace is not offered rootless: entering it
//! from skiff's spawning thread needs CAP_SYS_ADMIN in skiff's own user namespace. Probes cannot
//! `setns` into a network namespace owned by another user namespace from a multi-threaded
//! process either, so the holder also serves as a **socket factory**: on request it creates a
//! TCP socket in the pod's network namespace and passes it back over a Unix socket
//! (`SCM_RIGHTS`); [`connect_tcp`] connects it. `SKIFF_NO_USERNS=1` turns rootless mode off
//! (tests of the fallback; hosts where user namespaces misbehave).

use std::ffi::CString;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::libc;
use nix::sched::CloneFlags;

use crate::reaper::{ExitWaiter, Reaper};
use crate::sys::holder::{self, HolderArgs, FACTORY_V4, FACTORY_V6};

/// How long destroy waits for the holder to be reaped after SIGKILL.
const HOLDER_EXIT_TIMEOUT: Duration = Duration::from_secs(5);

/// Errors creating a pod's namespaces.
#[derive(Debug, thiserror::Error)]
pub enum NamespaceError {
    #[error("{what}: {source}")]
    Io {
        what: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("setting up the pod's namespaces failed in the holder process: {0}")]
    Holder(Errno),
}

fn io_err(what: &'static str) -> impl FnOnce(io::Error) -> NamespaceError {
    move |source| NamespaceError::Io { what, source }
}

/// Whether skiff can make namespaces on this host (decided once per process).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Support {
    /// CAP_SYS_ADMIN in the initial user namespace: pod namespaces and mount namespaces.
    Full,
    /// Rootless: the same, inside an unprivileged user namespace per pod (see the module docs).
    UserNamespace,
    /// No namespaces: containers run as plain host processes. The reason is logged once.
    Unavailable(String),
}

impl Support {
    /// Whether pods get their own namespaces (and containers their own mount namespace).
    pub fn namespaces(&self) -> bool {
        !matches!(self, Support::Unavailable(_))
    }
}

/// Set to a non-empty value other than `0`: never use an unprivileged user namespace.
pub const NO_USERNS_ENV: &str = "SKIFF_NO_USERNS";

/// The host's namespace support; the first call logs once when it is missing.
pub fn support() -> &'static Support {
    static SUPPORT: OnceLock<Support> = OnceLock::new();
    SUPPORT.get_or_init(|| {
        let s = detect_support();
        match &s {
            // Issue 4 item 9: say it once, then run host containers without isolation.
            Support::Unavailable(why) => tracing::warn!(
                "namespaces and cgroups are unavailable ({why}); containers run as plain host \
                 processes: no pod network/IPC/UTS/PID namespace, no mount namespace, no volumes"
            ),
            Support::UserNamespace => tracing::warn!(
                "rootless: skiff runs as uid {} without CAP_SYS_ADMIN; each pod gets an \
                 unprivileged user namespace (this uid mapped to 0) with its network, IPC and \
                 UTS namespaces; no shared PID namespace, tmpfs volumes are plain directories",
                nix::unistd::geteuid()
            ),
            Support::Full => {}
        }
        s
    })
}

/// Whether skiff must use a user namespace for its pods (rootless mode).
pub(crate) fn rootless() -> bool {
    support() == &Support::UserNamespace
}

fn detect_support() -> Support {
    // CAP_SYS_ADMIN (bit 21) in the effective set is what setns/unshare/mount need.
    const CAP_SYS_ADMIN: u32 = 21;
    if !crate::security::has_capability(CAP_SYS_ADMIN) {
        let who = format!(
            "skiff runs as uid {} without CAP_SYS_ADMIN",
            nix::unistd::geteuid()
        );
        if std::env::var(NO_USERNS_ENV).is_ok_and(|v| !v.is_empty() && v != "0") {
            return Support::Unavailable(format!(
                "{who}, and user namespaces are disabled by {NO_USERNS_ENV}"
            ));
        }
        return match probe_user_namespace() {
            Ok(()) => Support::UserNamespace,
            Err(e) => Support::Unavailable(format!(
                "{who}, and unprivileged user namespaces are unavailable: {e}"
            )),
        };
    }
    if !std::path::Path::new("/proc/self/ns/net").exists() {
        return Support::Unavailable("the kernel has no namespaces (/proc/self/ns)".into());
    }
    Support::Full
}

/// Tries what a rootless pod needs, once: a holder in a new user + network namespace that maps
/// skiff's ids (it exits as soon as it is dropped). Fails where `user.max_user_namespaces` is
/// 0, `kernel.unprivileged_userns_clone` is 0, or a security module forbids it.
fn probe_user_namespace() -> Result<(), NamespaceError> {
    let reaper = Reaper::global().map_err(io_err("starting the reaper"))?;
    let plan = NamespacePlan {
        network: true,
        ipc: false,
        pid: false,
        user: true,
        hostname: "skiff-probe".into(),
    };
    spawn_holder(&plan, &reaper).map(drop)
}

/// What namespaces a pod gets (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespacePlan {
    /// Own network namespace (and with it its own UTS namespace and hostname).
    pub network: bool,
    pub ipc: bool,
    /// One PID namespace for the whole pod (`shareProcessNamespace`).
    pub pid: bool,
    /// A user namespace owning the others (rootless; see the module docs).
    pub user: bool,
    /// The hostname set in the pod's UTS namespace.
    pub hostname: String,
}

impl NamespacePlan {
    pub fn for_pod(pod: &Pod) -> NamespacePlan {
        let spec = pod.spec.as_ref();
        let flag = |f: fn(&k8s_openapi::api::core::v1::PodSpec) -> Option<bool>| {
            spec.and_then(f).unwrap_or(false)
        };
        // GeneratePodHostNameAndDomain: spec.hostnameOverride wins over everything
        // (HostnameOverride, GA in 1.37), then spec.hostname, then the pod name.
        let hostname = spec
            .and_then(|s| s.hostname_override.clone())
            .filter(|h| !h.is_empty())
            .or_else(|| spec.and_then(|s| s.hostname.clone()))
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| {
                // GeneratePodHostNameAndDomain: the pod name, truncated to 63 characters
                // (and trailing '-'/'.' trimmed).
                let name = pod.metadata.name.clone().unwrap_or_default();
                let cut: String = name.chars().take(63).collect();
                cut.trim_end_matches(['-', '.']).to_string()
            });
        NamespacePlan {
            network: !flag(|s| s.host_network),
            ipc: !flag(|s| s.host_ipc),
            pid: !flag(|s| s.host_pid) && flag(|s| s.share_process_namespace),
            user: false,
            hostname,
        }
    }

    /// Whether a holder is needed at all (rootless: always, for the user namespace the
    /// containers' mount namespaces need).
    pub fn any(&self) -> bool {
        self.network || self.ipc || self.pid || self.user
    }

    fn clone_flags(&self) -> u64 {
        let mut f = 0;
        if self.network {
            f |= (libc::CLONE_NEWNET | libc::CLONE_NEWUTS) as u64;
        }
        if self.ipc {
            f |= libc::CLONE_NEWIPC as u64;
        }
        if self.pid {
            f |= libc::CLONE_NEWPID as u64;
        }
        if self.user {
            f |= libc::CLONE_NEWUSER as u64;
        }
        f
    }
}

/// Namespaces a process enters: descriptors opened in the parent, `setns` in the child.
/// Cheap to clone; the namespaces live at least as long as any clone.
#[derive(Debug, Clone, Default)]
pub struct NamespaceJoin {
    /// In `setns` order (net, ipc, uts, and for exec processes the container's mnt last).
    entries: Vec<(Arc<OwnedFd>, CloneFlags)>,
    /// The pod's PID namespace, joined by the spawning thread (see [`with_pid_namespace`]).
    pid: Option<Arc<OwnedFd>>,
    /// Rootless: the holder's socket factory (see the module docs).
    socket_factory: Option<Arc<OwnedFd>>,
}

impl NamespaceJoin {
    /// What probes connect through, if the pod has its own network: the network namespace,
    /// or (rootless) the holder's socket factory; [`connect_tcp`] takes either.
    pub fn net(&self) -> Option<Arc<OwnedFd>> {
        self.socket_factory
            .clone()
            .or_else(|| self.get(CloneFlags::CLONE_NEWNET))
    }

    /// The pod's PID namespace, if shared.
    pub fn pid(&self) -> Option<&Arc<OwnedFd>> {
        self.pid.as_ref()
    }

    /// Whether a container should mount a fresh `/proc` (it lives in the pod's PID namespace).
    pub fn own_pid(&self) -> bool {
        self.pid.is_some()
    }

    fn get(&self, flag: CloneFlags) -> Option<Arc<OwnedFd>> {
        self.entries
            .iter()
            .find(|(_, f)| *f == flag)
            .map(|(fd, _)| fd.clone())
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.pid.is_none()
    }

    /// The same namespaces plus the mount and cgroup namespaces of process `pid` (a
    /// container's main process), and its PID namespace with `own_pid`: what exec probes and
    /// hooks enter so they see the container's volumes, `/proc` and cgroups.
    pub fn with_container_ns_of(&self, pid: i32, own_pid: bool) -> io::Result<NamespaceJoin> {
        let mnt = open_ns(pid, "mnt")?;
        let cgroup = open_ns(pid, "cgroup")?;
        let mut j = self.clone();
        j.entries
            .retain(|(_, f)| *f != CloneFlags::CLONE_NEWNS && *f != CloneFlags::CLONE_NEWCGROUP);
        j.entries
            .push((Arc::new(cgroup), CloneFlags::CLONE_NEWCGROUP));
        j.entries.push((Arc::new(mnt), CloneFlags::CLONE_NEWNS));
        if own_pid {
            j.pid = Some(Arc::new(open_ns(pid, "pid")?));
        }
        Ok(j)
    }
}

fn open_ns(pid: i32, kind: &str) -> io::Result<OwnedFd> {
    let f = File::open(format!("/proc/{pid}/ns/{kind}"))?;
    Ok(f.into())
}

/// In the forked child (isolation step 1): `setns` into every namespace of `j`, in order.
///
/// Fork-safe (see `sys`): one `setns(2)` per namespace on descriptors opened in the parent.
pub(crate) fn apply_in_child(j: &NamespaceJoin) -> Result<(), Errno> {
    for (fd, flag) in &j.entries {
        nix::sched::setns(fd, *flag)?;
    }
    Ok(())
}

/// Which PID namespace a new process is born in.
#[derive(Debug, Clone, Copy)]
pub(crate) enum PidNamespace<'a> {
    /// skiff's own (`hostPID`, or no namespaces at all).
    Inherit,
    /// An existing one: the pod's (`shareProcessNamespace`), or a container's for exec.
    Join(&'a OwnedFd),
    /// A new one, with the process as its PID 1 (each container's own, as Kubernetes does).
    New,
}

/// Runs `spawn` (a fork) with the calling thread's `pid_for_children` set per `ns`, so the
/// child is born in that PID namespace, then switches the thread back to skiff's own.
/// `unshare(CLONE_NEWPID)` and `setns` of a PID namespace only change where the caller's
/// next child is born, and are allowed in a multi-threaded process (unlike mount and user
/// namespaces); the first child born after `unshare` becomes PID 1 of the new namespace.
pub(crate) fn with_pid_namespace<T>(
    ns: PidNamespace<'_>,
    spawn: impl FnOnce() -> io::Result<T>,
) -> io::Result<T> {
    if matches!(ns, PidNamespace::Inherit) {
        return spawn();
    }
    static HOST_PID_NS: OnceLock<Result<OwnedFd, String>> = OnceLock::new();
    let host = HOST_PID_NS
        .get_or_init(|| {
            File::open("/proc/self/ns/pid")
                .map(OwnedFd::from)
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| io::Error::other(format!("opening skiff's PID namespace: {e}")))?;
    match ns {
        PidNamespace::Join(fd) => {
            nix::sched::setns(fd, CloneFlags::CLONE_NEWPID).map_err(io::Error::from)?
        }
        PidNamespace::New => {
            nix::sched::unshare(CloneFlags::CLONE_NEWPID).map_err(io::Error::from)?
        }
        PidNamespace::Inherit => {}
    }
    // Back to skiff's own on every way out of `spawn`, a panic included.
    struct Restore<'a>(&'a OwnedFd);
    impl Drop for Restore<'_> {
        fn drop(&mut self) {
            if let Err(e) = nix::sched::setns(self.0, CloneFlags::CLONE_NEWPID) {
                // Only possible if the host namespace vanished; later children of this
                // thread would land in the pod's namespace, so say it loudly.
                tracing::error!(error = %e, "could not switch back to skiff's PID namespace");
            }
        }
    }
    let _restore = Restore(host);
    spawn()
}

/// The namespaces of a pod sandbox: per [`NamespacePlan`] where the host supports them,
/// the host's otherwise (said once by [`support`]).
pub(crate) fn for_sandbox(
    pod: &Pod,
    persistent: bool,
) -> Result<PodNamespaces, crate::spec::SandboxError> {
    if !support().namespaces() {
        return Ok(PodNamespaces::host());
    }
    let fail = |message: String| crate::spec::SandboxError {
        reason: "FailedCreatePodSandBox".into(),
        message: format!("Failed to create pod sandbox: {message}"),
    };
    let reaper = Reaper::global().map_err(|e| fail(format!("starting the reaper: {e}")))?;
    let mut plan = NamespacePlan::for_pod(pod);
    if rootless() {
        plan.user = true;
        if plan.pid {
            plan.pid = false;
            tracing::warn!(
                pod = pod.metadata.name.as_deref().unwrap_or_default(),
                "shareProcessNamespace is not available rootless; the containers do not share a PID namespace"
            );
        }
    }
    PodNamespaces::create_with(&plan, &reaper, persistent).map_err(|e| fail(e.to_string()))
}

/// A pod's namespaces and the process holding them. Dropping it without
/// [`PodNamespaces::destroy`] closes the holder's lifeline, so the holder exits by itself.
#[derive(Debug)]
pub struct PodNamespaces {
    holder: Option<Holder>,
    join: NamespaceJoin,
}

#[derive(Debug)]
struct Holder {
    pid: i32,
    /// pidfd of the holder (kill without PID-reuse races); `None` on kernels without it.
    pidfd: Option<OwnedFd>,
    /// The reaper's notification, for a holder this process started (`None`: adopted).
    exit: Option<ExitWaiter>,
    /// Write end of the lifeline: the holder exits when this closes (skiff gone). `None`:
    /// a detached or adopted holder (it outlives skiff; only SIGKILL ends it).
    _lifeline: Option<OwnedFd>,
    /// Rootless: skiff's end of the socket factory.
    factory: Option<Arc<OwnedFd>>,
}

impl PodNamespaces {
    /// No namespaces of its own: everything is the host's.
    pub fn host() -> PodNamespaces {
        PodNamespaces {
            holder: None,
            join: NamespaceJoin::default(),
        }
    }

    /// Creates the pod's namespaces per `plan` (no holder when the pod uses only the
    /// host's). On error nothing is left behind.
    pub fn create(plan: &NamespacePlan, reaper: &Reaper) -> Result<PodNamespaces, NamespaceError> {
        Self::create_with(plan, reaper, false)
    }

    /// [`PodNamespaces::create`]; `persistent`: the holder can be [`detach`](Self::detach)ed
    /// (it outlives this process, for the next one to [`adopt`](PodNamespaces::adopt)), and
    /// there is one even when the pod uses only the host's namespaces: it is the sandbox's
    /// anchor, whose life is the sandbox's (the node's crash recovery leaves a pod alone while
    /// it lives).
    pub fn create_with(
        plan: &NamespacePlan,
        reaper: &Reaper,
        persistent: bool,
    ) -> Result<PodNamespaces, NamespaceError> {
        if !plan.any() && !persistent {
            return Ok(PodNamespaces::host());
        }
        let holder = spawn_holder(plan, reaper)?;
        let open = |kind: &'static str, flag: CloneFlags| -> Result<_, NamespaceError> {
            let fd = open_ns(holder.pid, kind).map_err(io_err("opening the holder's namespace"))?;
            Ok((Arc::new(fd), flag))
        };
        let opened = (|| {
            let mut entries = Vec::new();
            // The user namespace first: it gives the capabilities to enter the others.
            if plan.user {
                entries.push(open("user", CloneFlags::CLONE_NEWUSER)?);
            }
            if plan.network {
                entries.push(open("net", CloneFlags::CLONE_NEWNET)?);
            }
            if plan.ipc {
                entries.push(open("ipc", CloneFlags::CLONE_NEWIPC)?);
            }
            if plan.network {
                entries.push(open("uts", CloneFlags::CLONE_NEWUTS)?);
            }
            // The holder was born in the new PID namespace: its `ns/pid` is that namespace.
            let pid = if plan.pid {
                Some(open("pid", CloneFlags::CLONE_NEWPID)?.0)
            } else {
                None
            };
            Ok(NamespaceJoin {
                entries,
                pid,
                socket_factory: holder.factory.clone(),
            })
        })();
        match opened {
            Ok(join) => Ok(PodNamespaces {
                holder: Some(holder),
                join,
            }),
            Err(e) => {
                holder.kill();
                Err(e)
            }
        }
    }

    /// What each container joins.
    pub fn join(&self) -> &NamespaceJoin {
        &self.join
    }

    /// The holder's PID (host namespace), if there is one.
    pub fn holder_pid(&self) -> Option<i32> {
        self.holder.as_ref().map(|h| h.pid)
    }

    /// The holder as a process identity that survives PID reuse (what a persistent sandbox
    /// records for the next process to [`adopt`](PodNamespaces::adopt)).
    pub fn holder_ref(&self) -> Option<crate::state::ProcessRef> {
        self.holder
            .as_ref()
            .and_then(|h| crate::state::ProcessRef::of(h.pid))
    }

    /// Cuts the holder loose from this process (a persistent sandbox, once its anchor is
    /// recorded): it no longer exits when this process dies. Until then, a death of this
    /// process ends it, so no holder outlives a sandbox nobody recorded.
    pub fn detach(&mut self) -> std::io::Result<()> {
        let Some(h) = self.holder.as_mut() else {
            return Ok(());
        };
        let Some(life) = h._lifeline.take() else {
            return Ok(());
        };
        let mut f = File::from(life);
        std::io::Write::write_all(&mut f, &[holder::DETACH])
    }

    /// Kills the holder at once (SIGKILL, not waited for): a sandbox whose setup failed.
    pub(crate) fn kill_holder(self) {
        if let Some(h) = &self.holder {
            h.kill();
        }
    }

    /// Re-attaches the namespaces of a persistent sandbox whose holder `holder` an earlier
    /// process started per `plan`: a pidfd opened first and checked against the start time
    /// after (so it cannot name a successor with the same PID), then the namespaces opened
    /// from the holder. `None` when the holder is gone.
    pub fn adopt(plan: &NamespacePlan, holder: &crate::state::ProcessRef) -> Option<PodNamespaces> {
        let pidfd = holder.pidfd()?;
        let open = |kind: &str, flag: CloneFlags| -> Option<(Arc<OwnedFd>, CloneFlags)> {
            Some((Arc::new(open_ns(holder.pid, kind).ok()?), flag))
        };
        let mut entries = Vec::new();
        if plan.user {
            // The rootless socket factory cannot be re-attached: not adopted.
            return None;
        }
        if plan.network {
            entries.push(open("net", CloneFlags::CLONE_NEWNET)?);
        }
        if plan.ipc {
            entries.push(open("ipc", CloneFlags::CLONE_NEWIPC)?);
        }
        if plan.network {
            entries.push(open("uts", CloneFlags::CLONE_NEWUTS)?);
        }
        let pid = if plan.pid {
            Some(open("pid", CloneFlags::CLONE_NEWPID)?.0)
        } else {
            None
        };
        // Opened while it lived: the descriptors are its namespaces.
        if !holder.alive() {
            return None;
        }
        Some(PodNamespaces {
            holder: Some(Holder {
                pid: holder.pid,
                pidfd: Some(pidfd),
                exit: None,
                _lifeline: None,
                factory: None,
            }),
            join: NamespaceJoin {
                entries,
                pid,
                socket_factory: None,
            },
        })
    }

    /// Kills the holder by PID and waits until it is reaped (or, adopted, until it has
    /// exited). The namespaces themselves go away with the last descriptor (containers' exec
    /// contexts hold some until dropped).
    pub async fn destroy(self) {
        let Some(holder) = self.holder else { return };
        holder.kill();
        let gone = async {
            match (&holder.exit, &holder.pidfd) {
                (Some(exit), _) => {
                    exit.wait().await;
                }
                (None, Some(fd)) => {
                    // Not our child: its pidfd turns readable when it has exited.
                    if let Ok(dup) = fd.try_clone() {
                        if let Ok(p) =
                            crate::sys::fd::Pollable::new(dup, tokio::io::Interest::READABLE)
                        {
                            let _ = p.readable().await;
                        }
                    }
                }
                (None, None) => {}
            }
        };
        if tokio::time::timeout(HOLDER_EXIT_TIMEOUT, gone)
            .await
            .is_err()
        {
            tracing::warn!(
                pid = holder.pid,
                "pod namespace holder not reaped after SIGKILL"
            );
        }
    }
}

impl Holder {
    fn kill(&self) {
        if self.exit.as_ref().is_some_and(|e| e.try_get().is_some()) {
            return;
        }
        let r = match &self.pidfd {
            Some(fd) => rustix::process::pidfd_send_signal(fd, rustix::process::Signal::KILL)
                .map_err(|e| Errno::from_raw(e.raw_os_error())),
            // Our unreaped child: its PID cannot have been reused. (An adopted holder always
            // has a pidfd.)
            None if self.exit.is_none() => return,
            None => nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(self.pid),
                nix::sys::signal::Signal::SIGKILL,
            ),
        };
        match r {
            Ok(()) | Err(Errno::ESRCH) => {}
            Err(e) => tracing::warn!(pid = self.pid, error = %e, "killing the namespace holder"),
        }
    }
}

fn spawn_holder(plan: &NamespacePlan, reaper: &Reaper) -> Result<Holder, NamespaceError> {
    let (ready_r, ready_w) =
        nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| NamespaceError::Io {
            what: "creating a pipe",
            source: e.into(),
        })?;
    let (life_r, life_w) =
        nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| NamespaceError::Io {
            what: "creating a pipe",
            source: e.into(),
        })?;
    let devnull: OwnedFd = File::open("/dev/null")
        .map_err(io_err("opening /dev/null"))?
        .into();
    // Rootless with a network of its own: the socket factory's pair (datagram-like, so one
    // request is one message).
    let factory = if plan.user && plan.network {
        let (ours, theirs) = nix::sys::socket::socketpair(
            nix::sys::socket::AddressFamily::Unix,
            nix::sys::socket::SockType::SeqPacket,
            None,
            nix::sys::socket::SockFlag::SOCK_CLOEXEC,
        )
        .map_err(|e| NamespaceError::Io {
            what: "creating the socket factory's socket pair",
            source: e.into(),
        })?;
        Some((ours, theirs))
    } else {
        None
    };
    let hostname = if plan.network {
        Some(
            CString::new(plan.hostname.as_bytes()).map_err(|_| NamespaceError::Io {
                what: "hostname",
                source: io::Error::other("contains a NUL byte"),
            })?,
        )
    } else {
        None
    };
    // One id, skiff's own, mapped to 0 (the only mapping an unprivileged process may write).
    let id_maps = plan.user.then(|| {
        (
            format!("0 {} 1\n", nix::unistd::geteuid()).into_bytes(),
            format!("0 {} 1\n", nix::unistd::getegid()).into_bytes(),
        )
    });
    let args = HolderArgs {
        hostname: hostname.as_deref(),
        lo_up: plan.network,
        reap: plan.pid,
        lifeline: Some(life_r.as_fd()),
        ready: ready_w.as_fd(),
        devnull: devnull.as_fd(),
        id_maps: id_maps
            .as_ref()
            .map(|(uid, gid)| (uid.as_slice(), gid.as_slice())),
        factory: factory.as_ref().map(|(_, theirs)| theirs.as_fd()),
    };
    let flags = plan.clone_flags();
    let spawned = reaper
        .spawn_with("pod-sandbox", || {
            holder::clone_holder(flags, &args).map_err(io::Error::from)
        })
        .map_err(io_err("starting the pod namespace holder (clone3)"))?;
    drop((ready_w, life_r, devnull));
    let factory = factory.map(|(ours, _theirs)| Arc::new(ours));
    let pidfd = rustix::process::Pid::from_raw(spawned.pid).and_then(|pid| {
        rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()).ok()
    });
    let holder = Holder {
        pid: spawned.pid,
        pidfd,
        exit: Some(spawned.exit),
        _lifeline: Some(life_w),
        factory,
    };
    // The holder writes its setup errno (0 = ready), then keeps the pipe... closed: EOF
    // without 4 bytes means it died during setup.
    let mut buf = [0u8; 4];
    let mut got = 0;
    let mut ready = File::from(ready_r);
    while got < buf.len() {
        match ready.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                holder.kill();
                return Err(NamespaceError::Io {
                    what: "waiting for the namespace holder",
                    source: e,
                });
            }
        }
    }
    let code = i32::from_ne_bytes(buf);
    if got < buf.len() || code != 0 {
        holder.kill();
        return Err(NamespaceError::Holder(if got < buf.len() {
            Errno::EPIPE
        } else {
            Errno::from_raw(code)
        }));
    }
    Ok(holder)
}

/// Connects a TCP stream to `host:port` from inside the network namespace `netns` (probes:
/// the pod's 127.0.0.1 is only reachable from inside). The socket is created with the
/// calling thread switched into `netns` for the duration of one `socket(2)` call — a socket
/// keeps the namespace it was created in — then connected asynchronously. Rootless, `netns`
/// is the holder's socket factory instead ([`NamespaceJoin::net`]), which makes the socket.
pub async fn connect_tcp(
    netns: Option<&OwnedFd>,
    host: &str,
    port: u16,
) -> io::Result<tokio::net::TcpStream> {
    let Some(ns) = netns else {
        return tokio::net::TcpStream::connect((host, port)).await;
    };
    let mut last = None;
    for addr in tokio::net::lookup_host((host, port)).await? {
        let sock = socket_in(ns, &addr)?;
        match sock.connect(addr).await {
            Ok(s) => return Ok(s),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::other("could not resolve to any address")))
}

fn socket_in(ns: &OwnedFd, addr: &std::net::SocketAddr) -> io::Result<tokio::net::TcpSocket> {
    let st = nix::sys::stat::fstat(ns).map_err(io::Error::from)?;
    if st.st_mode & libc::S_IFMT == libc::S_IFSOCK {
        return socket_from_factory(ns, addr.is_ipv6());
    }
    static HOST_NET_NS: OnceLock<Result<OwnedFd, String>> = OnceLock::new();
    let host = HOST_NET_NS
        .get_or_init(|| {
            File::open("/proc/thread-self/ns/net")
                .map(OwnedFd::from)
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| io::Error::other(format!("opening /proc/thread-self/ns/net: {e}")))?;
    nix::sched::setns(ns, CloneFlags::CLONE_NEWNET).map_err(io::Error::from)?;
    let sock = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()
    } else {
        tokio::net::TcpSocket::new_v6()
    };
    if let Err(e) = nix::sched::setns(host, CloneFlags::CLONE_NEWNET) {
        tracing::error!(error = %e, "could not switch back to skiff's network namespace");
    }
    sock
}

/// Asks a rootless pod's holder for a TCP socket in the pod's network namespace (see
/// `sys::holder`). One request at a time per process, so answers cannot cross; the holder
/// answers at once, and a dead holder is an error (EOF or the 2 s timeout), not a hang.
fn socket_from_factory(factory: &OwnedFd, v6: bool) -> io::Result<tokio::net::TcpSocket> {
    use nix::sys::socket::{send, setsockopt, sockopt, MsgFlags};
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let timeout = nix::sys::time::TimeVal::new(2, 0);
    setsockopt(factory, sockopt::ReceiveTimeout, &timeout).map_err(io::Error::from)?;
    let req = [if v6 { FACTORY_V6 } else { FACTORY_V4 }];
    send(factory.as_raw_fd(), &req, MsgFlags::MSG_NOSIGNAL).map_err(io::Error::from)?;
    let mut errno = [0u8; 4];
    let (bytes, fds) = crate::sys::fd::recv_with_fds(factory.as_fd(), &mut errno)?;
    if bytes == 0 {
        return Err(io::Error::other("the pod's namespace holder is gone"));
    }
    let received = fds.into_iter().next();
    let code = i32::from_ne_bytes(errno);
    match received {
        Some(fd) => {
            let std_sock = std::net::TcpStream::from(fd);
            std_sock.set_nonblocking(true)?;
            Ok(tokio::net::TcpSocket::from_std_stream(std_sock))
        }
        None if code != 0 => Err(io::Error::from_raw_os_error(code)),
        None => Err(io::Error::other(
            "the pod's namespace holder sent no socket",
        )),
    }
}

#[cfg(test)]
mod hostname_tests {
    use super::*;

    fn pod(spec: serde_json::Value) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web-0"},
            "spec": spec,
        }))
        .unwrap_or_default()
    }

    // HostnameOverride (GA in 1.37): the override is the pod's hostname, over spec.hostname
    // and the pod name; 1.33 ignored the field (alpha, dropped on create).
    #[test]
    fn hostname_override_wins_then_hostname_then_pod_name() {
        let c = serde_json::json!([{"name": "c", "image": "i"}]);
        let plan = |extra: serde_json::Value| {
            let mut spec = serde_json::json!({"containers": c});
            if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
                s.extend(e.clone());
            }
            NamespacePlan::for_pod(&pod(spec)).hostname
        };
        assert_eq!(plan(serde_json::json!({})), "web-0");
        assert_eq!(plan(serde_json::json!({"hostname": "h"})), "h");
        assert_eq!(
            plan(serde_json::json!({"hostname": "h", "hostnameOverride": "kdc1.example.com"})),
            "kdc1.example.com"
        );
    }
}
