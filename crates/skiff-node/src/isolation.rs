//! What a container process is put into between fork and exec, beyond its session and stdio:
//! the pod sandbox's namespaces, its own mount namespace with the pod's volumes, its cgroup,
//! its oom_score_adj, and its security context (credentials, capabilities, no_new_privs,
//! seccomp).
//!
//! Two halves: [`ContainerSetup`] is the plan, built in the parent from the pod sandbox and the
//! container spec (allocations and failures allowed; failures become start errors such as
//! `CreateContainerConfigError`). [`PreparedSetup`] is the same plan converted so that the
//! forked child can apply it with raw system calls only — no allocation, no locks — in
//! [`apply_in_child`], which both spawn paths (`clone3` and the `Command` pre-exec hook) call.
//!
//! Order in the child: oom_score_adj first, through skiff's own `/proc` (after the next steps
//! `/proc/self` would be the container's — for exec probes and hooks the container's mount
//! namespace, whose `/proc` a container can mount over) → join the sandbox namespaces → own
//! mount namespace and mounts → security context, last, because dropping privileges ends the
//! ability to do the rest.

use std::sync::Arc;

use nix::errno::Errno;

use crate::namespaces::NamespaceJoin;
use crate::security::{PreparedSecurity, SecurityPlan};
pub use crate::spec::{host_view, HeldFd, MountSpec, Propagation};
use crate::spec::{StartError, TrackedGroup};

/// The plan for one container process (see the module docs). Empty means "run it as a
/// plain host process", which is what a pod without namespaces, volumes, cgroups or a
/// security context gets.
#[derive(Debug, Default, Clone)]
pub struct ContainerSetup {
    /// Mounts in the container's own mount namespace; `None` = stay in skiff's mount
    /// namespace.
    pub mounts: Option<Vec<MountSpec>>,
    /// The cgroup (or other tracking group) the process is born into; `None` = the
    /// runtime's default tracker creates one.
    pub group: Option<Arc<dyn TrackedGroup>>,
    /// Value for `/proc/self/oom_score_adj` (RES9), already clamped to what the host allows.
    pub oom_score_adj: Option<i32>,
    /// Credentials, capabilities, no_new_privs, seccomp (step 4; `security` module).
    pub security: Option<SecurityPlan>,
    /// Pod sandbox namespaces to join (step 1; `namespaces` module); `None` = skiff's own.
    pub namespaces: Option<NamespaceJoin>,
    /// `readOnlyRootFilesystem`: `/` read-only in the container's own mount namespace (step
    /// 2; only with `mounts`, never the host's `/`).
    pub read_only_root: bool,
    /// The container's default view of the kernel (own /proc, read-only /sys and cgroupfs,
    /// private /dev and the pod's /dev/shm, masked paths; `container_view`), with `mounts`.
    pub view: Option<crate::container_view::ViewPlan>,
    /// Born as PID 1 of a PID namespace of its own (Kubernetes' default: neither `hostPID`
    /// nor `shareProcessNamespace`).
    pub own_pid_namespace: bool,
    /// The container's `HOSTNAME` env: the pod's hostname (`spec.hostname`, else the pod
    /// name) or, with `hostNetwork`, the node's; `None` = the pod name.
    pub hostname: Option<String>,
    /// This instance's termination-message file, bind-mounted (in `mounts`) at its
    /// `terminationMessagePath` (`termination` module).
    pub termination_message: Option<crate::termination::MessageFile>,
}

impl ContainerSetup {
    /// Converts the plan into its fork-safe form.
    pub(crate) fn prepare(&self) -> Result<PreparedSetup, StartError> {
        Ok(PreparedSetup {
            // Step 1 and 2 (namespaces, mountns modules).
            namespaces: self.namespaces.clone().filter(|j| !j.is_empty()),
            mounts: match &self.mounts {
                Some(m) if crate::namespaces::support().namespaces() => {
                    let own_pid = self.namespaces.as_ref().is_some_and(|j| j.own_pid());
                    Some(crate::mountns::prepare(
                        m,
                        own_pid,
                        self.view.as_ref(),
                        self.read_only_root,
                    )?)
                }
                Some(m) if !m.is_empty() => {
                    return Err(StartError::Config(
                        "volume mounts need a mount namespace, which is unavailable (not root)"
                            .into(),
                    ))
                }
                _ => None,
            },
            oom_score_adj: self.oom_score_adj.map(|v| format!("{v}").into_bytes()),
            security: self.security.as_ref().map(SecurityPlan::prepare),
            new_pid_namespace: self.own_pid_namespace && self.mounts.is_some(),
        })
    }
}

impl ContainerSetup {
    /// The setup of commands run "in" this container once its main process `pid` runs (exec
    /// probes, hooks): the same sandbox namespaces plus the container's own mount namespace
    /// instead of a new one.
    pub fn for_exec(&self, pid: i32) -> ContainerSetup {
        let mut s = self.clone();
        s.view = None;
        let own_pid = std::mem::take(&mut s.own_pid_namespace);
        if s.mounts.take().is_some() {
            let base = s.namespaces.clone().unwrap_or_default();
            // The container's mount and cgroup namespaces (its view), and its PID namespace
            // when it has one of its own, so /proc inside shows the container's processes.
            match base.with_container_ns_of(pid, own_pid) {
                Ok(j) => s.namespaces = Some(j),
                // Gone already (a container that exits at once): it gets no exec, so this is
                // no news for the user.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    tracing::debug!(
                        pid,
                        "container exited before its namespaces were opened for exec"
                    )
                }
                Err(e) => {
                    tracing::warn!(pid, error = %e, "opening the container's mount namespace for exec")
                }
            }
        }
        s
    }
}

impl PreparedSetup {
    /// The PID namespace the process must be born in (entered around the fork).
    pub(crate) fn pid_namespace(&self) -> crate::namespaces::PidNamespace<'_> {
        if self.new_pid_namespace {
            return crate::namespaces::PidNamespace::New;
        }
        match self.namespaces.as_ref().and_then(|j| j.pid()) {
            Some(fd) => crate::namespaces::PidNamespace::Join(fd),
            None => crate::namespaces::PidNamespace::Inherit,
        }
    }
}

/// [`ContainerSetup`] in fork-safe form: every string a C string, every buffer allocated.
#[derive(Debug, Default)]
pub struct PreparedSetup {
    namespaces: Option<NamespaceJoin>,
    mounts: Option<crate::mountns::PreparedMounts>,
    oom_score_adj: Option<Vec<u8>>,
    security: Option<PreparedSecurity>,
    new_pid_namespace: bool,
}

/// Applies `s` in the forked child, before `exec`. Returns the errno of the first step that
/// failed; the caller reports it to the parent as a start error.
///
/// Fork-safe (see `sys`): meant for the child of a fork-like clone (or a `pre_exec` hook),
/// with `s` in memory copied from the parent; it and every step it calls make raw system
/// calls only, allocate nothing and take no lock.
pub(crate) fn apply_in_child(s: &PreparedSetup) -> Result<(), Errno> {
    // 1. oom_score_adj, still in skiff's mount namespace: `/proc/self` is skiff's `/proc`, not
    //    a path inside the container (exec probes and hooks join its mount namespace in step 2).
    if let Some(v) = &s.oom_score_adj {
        match write_proc_file(c"/proc/self/oom_score_adj", v) {
            // Without CAP_SYS_RESOURCE a negative value is refused: take the nearest allowed
            // one (the parent says so once).
            Err(Errno::EACCES | Errno::EPERM) if v.first() == Some(&b'-') => {
                write_proc_file(c"/proc/self/oom_score_adj", b"0")?
            }
            r => r?,
        }
    }
    // 2. Sandbox namespaces (setns) — pod sandbox.
    if let Some(j) = &s.namespaces {
        crate::namespaces::apply_in_child(j)?;
    }
    // 3. Own mount namespace and mounts — volumes.
    if let Some(m) = &s.mounts {
        crate::mountns::apply_in_child(m)?;
    }
    // 4. Security context (credentials, capabilities, no_new_privs, seccomp) — last.
    if let Some(sec) = &s.security {
        crate::security::apply_in_child(sec)?;
    }
    Ok(())
}

/// `open(path, O_WRONLY|O_CLOEXEC)` + `write` + `close`. Fork-safe: a C string path (no
/// allocation in `nix`), three system calls.
fn write_proc_file(path: &std::ffi::CStr, value: &[u8]) -> Result<(), Errno> {
    use nix::fcntl::OFlag;
    let fd = nix::fcntl::open(
        path,
        OFlag::O_WRONLY | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )?;
    nix::unistd::write(&fd, value)?;
    Ok(())
}
