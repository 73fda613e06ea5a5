//! The container security context: credentials, capabilities, no_new_privs and seccomp.
//!
//! [`plan`] merges the pod's and the container's `securityContext` as the kubelet does
//! (`DetermineEffectiveSecurityContext` in pkg/securitycontext/util.go, and
//! `determineEffectiveSecurityContext` / `verifyRunAsNonRoot` in pkg/kubelet/kuberuntime),
//! then turns it into what a CRI runtime (containerd + runc) would apply: a [`SecurityPlan`].
//! [`SecurityPlan::prepare`] makes the fork-safe form and [`apply_in_child`] applies it in the
//! child as the last isolation step, with raw system calls only.
//!
//! What the host runtime does with each field:
//! * `runAsUser` / `runAsGroup` / `supplementalGroups` / `fsGroup`: the process's uid, gid and
//!   groups. Without `runAsUser` the process runs as the user skiff runs as (the host runtime
//!   has no image user). Without `runAsGroup` the gid is the user's primary group from
//!   `/etc/passwd`, or 0 (containerd's `WithUserID`). The groups are the primary gid, the
//!   user's groups from `/etc/group` (unless `supplementalGroupsPolicy: Strict`), then
//!   `fsGroup`, then `supplementalGroups` (containerd's `WithAdditionalGIDs` +
//!   `WithSupplementalGroups`, kubelet's order).
//! * `runAsNonRoot`: checked before start; the kubelet's messages, as
//!   `CreateContainerConfigError`.
//! * `capabilities` / `privileged`: containerd's default set, then `add: [ALL]`, `drop: [ALL]`,
//!   the individual adds, the individual drops (containerd's `WithCapabilities`); privileged =
//!   every capability the kernel knows. Applied to the bounding, permitted and effective sets
//!   (inheritable and ambient empty, as containerd since CVE-2022-24769), so a root process
//!   keeps them across `exec` and a non-root one loses them there, as in any CRI runtime. A
//!   container never gets a capability skiff lacks itself (this machine's root has no
//!   `CAP_SYS_RESOURCE`): the set is intersected, and skiff says so once.
//! * `allowPrivilegeEscalation: false` → `PR_SET_NO_NEW_PRIVS` (kubelet's
//!   `AddNoNewPrivileges`); unset leaves it off.
//! * `seccompProfile`: `RuntimeDefault` → containerd's default profile ([`seccomp`]: its
//!   allow-list, with the additions of the container's capabilities);
//!   `Unconfined` or unset (the kubelet's default without `--seccomp-default`) → none;
//!   `Localhost` → `CreateContainerConfigError` (no profile store); privileged containers get
//!   none, as in containerd.
//! * `readOnlyRootFilesystem`, `procMount`, `seLinuxOptions`, `appArmorProfile`,
//!   `windowsOptions`: accepted and ignored: runtime class `host` runs on the host's root
//!   filesystem and `/proc`, and this node has no SELinux or AppArmor.

pub mod seccomp;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use k8s_openapi::api::core::v1::{Container, Pod, PodSecurityContext, SecurityContext};
use nix::errno::Errno;
use nix::libc;

use rustix::process::{Gid, Uid};
use rustix::thread::CapabilitySet;

use crate::spec::StartError;

/// Capability numbers (linux/capability.h) and the runtimes' default set.
pub mod caps {
    pub const CHOWN: u32 = 0;
    pub const DAC_OVERRIDE: u32 = 1;
    pub const DAC_READ_SEARCH: u32 = 2;
    pub const FOWNER: u32 = 3;
    pub const FSETID: u32 = 4;
    pub const KILL: u32 = 5;
    pub const SETGID: u32 = 6;
    pub const SETUID: u32 = 7;
    pub const SETPCAP: u32 = 8;
    pub const NET_BIND_SERVICE: u32 = 10;
    pub const NET_ADMIN: u32 = 12;
    pub const NET_RAW: u32 = 13;
    pub const SYS_MODULE: u32 = 16;
    pub const SYS_RAWIO: u32 = 17;
    pub const SYS_CHROOT: u32 = 18;
    pub const SYS_PTRACE: u32 = 19;
    pub const SYS_PACCT: u32 = 20;
    pub const SYS_ADMIN: u32 = 21;
    pub const SYS_BOOT: u32 = 22;
    pub const SYS_NICE: u32 = 23;
    pub const SYS_RESOURCE: u32 = 24;
    pub const SYS_TIME: u32 = 25;
    pub const SYS_TTY_CONFIG: u32 = 26;
    pub const MKNOD: u32 = 27;
    pub const AUDIT_WRITE: u32 = 29;
    pub const SETFCAP: u32 = 31;
    pub const SYSLOG: u32 = 34;
    pub const PERFMON: u32 = 38;
    pub const BPF: u32 = 39;

    /// Names without `CAP_`, indexed by number.
    pub const NAMES: [&str; 41] = [
        "CHOWN",
        "DAC_OVERRIDE",
        "DAC_READ_SEARCH",
        "FOWNER",
        "FSETID",
        "KILL",
        "SETGID",
        "SETUID",
        "SETPCAP",
        "LINUX_IMMUTABLE",
        "NET_BIND_SERVICE",
        "NET_BROADCAST",
        "NET_ADMIN",
        "NET_RAW",
        "IPC_LOCK",
        "IPC_OWNER",
        "SYS_MODULE",
        "SYS_RAWIO",
        "SYS_CHROOT",
        "SYS_PTRACE",
        "SYS_PACCT",
        "SYS_ADMIN",
        "SYS_BOOT",
        "SYS_NICE",
        "SYS_RESOURCE",
        "SYS_TIME",
        "SYS_TTY_CONFIG",
        "MKNOD",
        "LEASE",
        "AUDIT_WRITE",
        "AUDIT_CONTROL",
        "SETFCAP",
        "MAC_OVERRIDE",
        "MAC_ADMIN",
        "SYSLOG",
        "WAKE_ALARM",
        "BLOCK_SUSPEND",
        "AUDIT_READ",
        "PERFMON",
        "BPF",
        "CHECKPOINT_RESTORE",
    ];

    /// containerd's (and Docker's) default capabilities for a non-privileged container
    /// (`oci.populateDefaultUnixSpec`).
    pub const DEFAULT: u64 = 1 << CHOWN
        | 1 << DAC_OVERRIDE
        | 1 << FSETID
        | 1 << FOWNER
        | 1 << MKNOD
        | 1 << NET_RAW
        | 1 << SETGID
        | 1 << SETUID
        | 1 << SETFCAP
        | 1 << SETPCAP
        | 1 << NET_BIND_SERVICE
        | 1 << SYS_CHROOT
        | 1 << KILL
        | 1 << AUDIT_WRITE;

    /// The number of `name` (`NET_ADMIN`, `CAP_NET_ADMIN`, any case).
    pub fn by_name(name: &str) -> Option<u32> {
        let upper = name.to_ascii_uppercase();
        let bare = upper.strip_prefix("CAP_").unwrap_or(&upper);
        NAMES.iter().position(|n| *n == bare).map(|i| i as u32)
    }

    /// `CAP_A,CAP_B` for messages.
    pub fn names(set: u64) -> String {
        (0..64u32)
            .filter(|c| set & (1u64 << c) != 0)
            .map(|c| match NAMES.get(c as usize) {
                Some(n) => format!("CAP_{n}"),
                None => format!("CAP_{c}"),
            })
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// What skiff itself is and has: the ceiling for every container, and the host runtime's
/// "image user".
/// A capability set of this process from `/proc/self/status` (`CapEff:`, `CapBnd:`, …);
/// `None` when it cannot be read.
pub fn own_capabilities(field: &str) -> Option<u64> {
    std::fs::read_to_string("/proc/self/status")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
}

/// Whether capability number `cap` is in this process's effective set.
pub fn has_capability(cap: u32) -> bool {
    own_capabilities("CapEff:").is_some_and(|caps| caps & (1u64 << cap) != 0)
}

#[derive(Debug, Clone)]
pub struct HostSecurity {
    pub euid: u32,
    pub egid: u32,
    /// skiff's effective capabilities (`CapEff`).
    pub effective: u64,
    /// skiff's bounding set (`CapBnd`).
    pub bounding: u64,
    /// `/proc/sys/kernel/cap_last_cap`.
    pub last_cap: u32,
    /// The user database the host runtime's containers see (the host's).
    pub passwd: PathBuf,
    pub group: PathBuf,
    /// Rootless: containers run in a user namespace mapping only these host ids (skiff's
    /// uid, gid) to 0; `euid`/`egid` and the capabilities are then the ones inside it.
    pub user_namespace: Option<(u32, u32)>,
}

impl HostSecurity {
    /// Reads skiff's own credentials and capabilities.
    pub fn detect() -> HostSecurity {
        let field = |name: &str| own_capabilities(name).unwrap_or(0);
        let last_cap = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(40);
        HostSecurity {
            euid: nix::unistd::geteuid().as_raw(),
            egid: nix::unistd::getegid().as_raw(),
            effective: field("CapEff:"),
            bounding: field("CapBnd:"),
            last_cap,
            passwd: PathBuf::from("/etc/passwd"),
            group: PathBuf::from("/etc/group"),
            user_namespace: None,
        }
    }

    /// What a container of a rootless pod is once it joined the pod's user namespace
    /// (`namespaces` module): uid and gid 0, every capability of skiff's bounding set (the
    /// kernel gives a process entering a user namespace all of them), only skiff's ids mapped.
    pub fn in_user_namespace(outer: &HostSecurity) -> HostSecurity {
        HostSecurity {
            euid: 0,
            egid: 0,
            effective: outer.bounding,
            user_namespace: Some((outer.euid, outer.egid)),
            ..outer.clone()
        }
    }

    fn has(&self, cap: u32) -> bool {
        self.effective & (1u64 << cap) != 0
    }

    fn all_caps(&self) -> u64 {
        if self.last_cap >= 63 {
            u64::MAX
        } else {
            (1u64 << (self.last_cap + 1)) - 1
        }
    }
}

/// The process's identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups, in order, without duplicates.
    pub groups: Vec<u32>,
}

/// Capability sets after the credential switch (inheritable and ambient are empty).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CapabilitySets {
    pub bounding: u64,
    pub permitted: u64,
    pub effective: u64,
    /// Highest capability number the kernel knows (bounding drops go up to it).
    pub last_cap: u32,
}

/// A compiled seccomp filter.
#[derive(Clone)]
pub struct SeccompFilter(Vec<libc::sock_filter>);

impl SeccompFilter {
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for SeccompFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SeccompFilter({} instructions)", self.0.len())
    }
}

/// What [`apply_in_child`] does for one container. `Default` = nothing (stay as skiff is).
#[derive(Debug, Clone, Default)]
pub struct SecurityPlan {
    /// `None`: keep skiff's (rootless skiff without a `runAsUser` request).
    pub credentials: Option<Credentials>,
    /// `None`: leave the sets alone (skiff cannot change its bounding set).
    pub capabilities: Option<CapabilitySets>,
    pub no_new_privs: bool,
    pub seccomp: Option<SeccompFilter>,
}

/// What the pod sandbox keeps to plan each container's security: the pod's identity and
/// `securityContext`, and skiff's own credentials (read once per pod).
#[derive(Debug, Clone)]
pub struct PodSecurity {
    pod: Pod,
    host: HostSecurity,
}

impl PodSecurity {
    pub fn new(pod: &Pod) -> PodSecurity {
        Self::with_host(pod, HostSecurity::detect())
    }

    /// Rootless: planned for a container inside the pod's user namespace.
    pub fn in_user_namespace(pod: &Pod) -> PodSecurity {
        Self::with_host(
            pod,
            HostSecurity::in_user_namespace(&HostSecurity::detect()),
        )
    }

    pub fn with_host(pod: &Pod, host: HostSecurity) -> PodSecurity {
        let meta = &pod.metadata;
        let pod = Pod {
            metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                name: meta.name.clone(),
                namespace: meta.namespace.clone(),
                uid: meta.uid.clone(),
                ..Default::default()
            },
            spec: Some(k8s_openapi::api::core::v1::PodSpec {
                security_context: pod.spec.as_ref().and_then(|s| s.security_context.clone()),
                ..Default::default()
            }),
            status: None,
        };
        PodSecurity { pod, host }
    }

    /// [`plan`] for one of the pod's containers.
    pub fn plan(&self, container: &Container) -> Result<SecurityPlan, StartError> {
        plan(&self.pod, container, &self.host)
    }
}

/// The kubelet's effective security context: the container's fields over the pod's.
#[derive(Debug, Default)]
struct Effective<'a> {
    run_as_user: Option<i64>,
    run_as_group: Option<i64>,
    run_as_non_root: Option<bool>,
    seccomp: Option<&'a k8s_openapi::api::core::v1::SeccompProfile>,
    privileged: bool,
    allow_privilege_escalation: Option<bool>,
    capabilities: Option<&'a k8s_openapi::api::core::v1::Capabilities>,
}

fn effective<'a>(
    pod: Option<&'a PodSecurityContext>,
    c: Option<&'a SecurityContext>,
) -> Effective<'a> {
    Effective {
        run_as_user: c
            .and_then(|c| c.run_as_user)
            .or(pod.and_then(|p| p.run_as_user)),
        run_as_group: c
            .and_then(|c| c.run_as_group)
            .or(pod.and_then(|p| p.run_as_group)),
        run_as_non_root: c
            .and_then(|c| c.run_as_non_root)
            .or(pod.and_then(|p| p.run_as_non_root)),
        seccomp: c
            .and_then(|c| c.seccomp_profile.as_ref())
            .or(pod.and_then(|p| p.seccomp_profile.as_ref())),
        privileged: c.and_then(|c| c.privileged) == Some(true),
        allow_privilege_escalation: c.and_then(|c| c.allow_privilege_escalation),
        capabilities: c.and_then(|c| c.capabilities.as_ref()),
    }
}

/// The kubelet's `format.Pod`: `name_namespace(uid)`.
fn pod_desc(pod: &Pod) -> String {
    format!(
        "{}_{}({})",
        pod.metadata.name.as_deref().unwrap_or_default(),
        pod.metadata.namespace.as_deref().unwrap_or("default"),
        pod.metadata.uid.as_deref().unwrap_or_default()
    )
}

fn id(v: i64, what: &str) -> Result<u32, StartError> {
    u32::try_from(v).map_err(|_| StartError::Config(format!("{what} {v} is out of range")))
}

/// Builds the security plan of `container` in `pod`. Errors are `CreateContainerConfigError`s.
pub fn plan(
    pod: &Pod,
    container: &Container,
    host: &HostSecurity,
) -> Result<SecurityPlan, StartError> {
    let pod_sc = pod.spec.as_ref().and_then(|s| s.security_context.as_ref());
    let sc = effective(pod_sc, container.security_context.as_ref());

    // verifyRunAsNonRoot (security_context_others.go); the host runtime's "image user" is
    // the user skiff runs as.
    if sc.run_as_non_root == Some(true) {
        let who = format!("(pod: {:?}, container: {})", pod_desc(pod), container.name);
        match sc.run_as_user {
            Some(0) => {
                return Err(StartError::Config(format!(
                    "container's runAsUser breaks non-root policy {who}"
                )))
            }
            Some(_) => {}
            None if host.euid == 0 => {
                return Err(StartError::Config(format!(
                    "container has runAsNonRoot and image will run as root {who}"
                )))
            }
            None => {}
        }
    }

    let no_new_privs = sc.allow_privilege_escalation == Some(false);
    let credentials = credentials(&sc, pod_sc, host)?;
    let wanted = if sc.privileged {
        host.all_caps()
    } else {
        requested_caps(sc.capabilities, host.all_caps())
    };
    let granted = wanted & host.bounding & host.effective;
    if granted != wanted {
        warn_missing_caps(wanted & !granted);
    }
    // Changing the bounding set needs CAP_SETPCAP (a rootless skiff has nothing to give).
    let capabilities = host.has(caps::SETPCAP).then_some(CapabilitySets {
        bounding: granted,
        permitted: granted,
        effective: granted,
        last_cap: host.last_cap,
    });
    let seccomp = match sc.seccomp {
        _ if sc.privileged => None,
        None => None,
        Some(p) => match p.type_.as_str() {
            "RuntimeDefault" => Some(SeccompFilter(
                seccomp::runtime_default(granted)
                    .compile()
                    .map_err(|e| StartError::Io {
                        what: "building the RuntimeDefault seccomp filter".into(),
                        source: std::io::Error::other(e),
                    })?,
            )),
            "Unconfined" => None,
            "Localhost" => {
                return Err(StartError::Config(format!(
                    "seccomp profile type Localhost ({:?}) is not supported by runtime class \"host\": it has no profile directory; use RuntimeDefault or Unconfined",
                    p.localhost_profile.as_deref().unwrap_or_default()
                )))
            }
            other => {
                return Err(StartError::Config(format!(
                    "unknown seccomp profile type {other:?}"
                )))
            }
        },
    };
    // Without CAP_SYS_ADMIN the kernel accepts a filter only under no_new_privs.
    let no_new_privs = no_new_privs || (seccomp.is_some() && !host.has(caps::SYS_ADMIN));
    Ok(SecurityPlan {
        credentials,
        capabilities,
        no_new_privs,
        seccomp,
    })
}

/// containerd's `WithCapabilities`: `add: [ALL]` → all, `drop: [ALL]` → none, then the
/// individual adds and drops. Unknown names are skipped with a warning (as runc does).
pub(crate) fn requested_caps(
    c: Option<&k8s_openapi::api::core::v1::Capabilities>,
    all: u64,
) -> u64 {
    let Some(c) = c else {
        return caps::DEFAULT & all;
    };
    let add = c.add.as_deref().unwrap_or_default();
    let drop = c.drop.as_deref().unwrap_or_default();
    let is_all = |n: &String| n.eq_ignore_ascii_case("ALL");
    let mut set = caps::DEFAULT;
    if add.iter().any(is_all) {
        set = all;
    }
    if drop.iter().any(is_all) {
        set = 0;
    }
    let bit = |n: &String| match caps::by_name(n) {
        Some(c) => 1u64 << c,
        None => {
            tracing::warn!(capability = %n, "ignoring unknown capability");
            0
        }
    };
    for n in add.iter().filter(|n| !is_all(n)) {
        set |= bit(n);
    }
    for n in drop.iter().filter(|n| !is_all(n)) {
        set &= !bit(n);
    }
    set & all
}

static MISSING_CAPS_SAID: AtomicBool = AtomicBool::new(false);

fn warn_missing_caps(missing: u64) {
    if !MISSING_CAPS_SAID.swap(true, Ordering::Relaxed) {
        tracing::warn!(
            missing = %caps::names(missing),
            "a container asks for capabilities skiff itself does not have; it runs without them (said once)"
        );
    }
}

fn credentials(
    sc: &Effective<'_>,
    pod_sc: Option<&PodSecurityContext>,
    host: &HostSecurity,
) -> Result<Option<Credentials>, StartError> {
    let extra_groups = pod_sc.is_some_and(|p| {
        p.fs_group.is_some()
            || p.supplemental_groups
                .as_ref()
                .is_some_and(|g| !g.is_empty())
    });
    if let Some((uid, gid)) = host.user_namespace {
        // Rootless in a user namespace: only 0 (= skiff's ids on the host) exists in it, and
        // setgroups is denied there; naming skiff's own host ids means the same process.
        let uid_ok = sc.run_as_user.is_none_or(|u| u == 0 || u == i64::from(uid));
        let gid_ok = sc
            .run_as_group
            .is_none_or(|g| g == 0 || g == i64::from(gid));
        if uid_ok && gid_ok && !extra_groups {
            return Ok(None);
        }
        return Err(StartError::Config(format!(
            "rootless skiff runs containers in a user namespace that maps only uid {uid} and gid {gid} (0 inside): runAsUser and runAsGroup other than 0 or these, fsGroup and supplementalGroups need skiff to run as root"
        )));
    }
    let can_switch = host.has(caps::SETUID) && host.has(caps::SETGID);
    if !can_switch {
        // A rootless skiff can only run containers as itself.
        let groups = pod_sc.is_some_and(|p| {
            p.fs_group.is_some()
                || p.supplemental_groups
                    .as_ref()
                    .is_some_and(|g| !g.is_empty())
        });
        let as_self = sc.run_as_user.is_none_or(|u| u == i64::from(host.euid))
            && sc.run_as_group.is_none_or(|g| g == i64::from(host.egid));
        if as_self && !groups {
            return Ok(None);
        }
        return Err(StartError::Config(
            "runAsUser, runAsGroup, fsGroup and supplementalGroups need skiff to run as root (CAP_SETUID and CAP_SETGID)".into(),
        ));
    }
    let passwd = read_db(&host.passwd);
    let uid = match sc.run_as_user {
        Some(u) => id(u, "runAsUser")?,
        None => host.euid,
    };
    let user = passwd_entry(&passwd, uid);
    let gid = match (sc.run_as_group, sc.run_as_user) {
        (Some(g), _) => id(g, "runAsGroup")?,
        // containerd's WithUserID: the user's primary group, else 0.
        (None, Some(_)) => user.as_ref().map_or(0, |u| u.1),
        (None, None) => host.egid,
    };
    let mut groups = vec![gid];
    let strict = pod_sc.and_then(|p| p.supplemental_groups_policy.as_deref()) == Some("Strict");
    if let (Some((name, _)), false) = (&user, strict) {
        groups.extend(member_groups(&read_db(&host.group), name));
    }
    if let Some(p) = pod_sc {
        if let Some(fs) = p.fs_group {
            groups.push(id(fs, "fsGroup")?);
        }
        for g in p.supplemental_groups.iter().flatten() {
            groups.push(id(*g, "supplementalGroups")?);
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    groups.retain(|g| seen.insert(*g));
    Ok(Some(Credentials { uid, gid, groups }))
}

fn read_db(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// `(name, primary gid)` of `uid` in an `/etc/passwd`-format file.
fn passwd_entry(db: &str, uid: u32) -> Option<(String, u32)> {
    db.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        match (f.first(), f.get(2), f.get(3)) {
            (Some(name), Some(u), Some(g)) if u.parse() == Ok(uid) => {
                Some((name.to_string(), g.parse().ok()?))
            }
            _ => None,
        }
    })
}

/// Groups of an `/etc/group`-format file that list `user` as a member (containerd's
/// `WithAdditionalGIDs`: a group named like the user is not counted).
fn member_groups(db: &str, user: &str) -> Vec<u32> {
    db.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            let (name, gid, members) = (f.first()?, f.get(2)?, f.get(3)?);
            (*name != user && members.split(',').any(|m| m.trim() == user))
                .then(|| gid.parse().ok())
                .flatten()
        })
        .collect()
}

/// [`SecurityPlan`] in fork-safe form.
#[derive(Debug, Default)]
pub(crate) struct PreparedSecurity {
    creds: Option<(Uid, Gid)>,
    groups: Vec<Gid>,
    /// (bounding, last cap, effective, permitted).
    caps: Option<(u64, u32, CapabilitySet, CapabilitySet)>,
    no_new_privs: bool,
    filter: Vec<libc::sock_filter>,
}

impl SecurityPlan {
    /// The fork-safe form (everything allocated here, in the parent).
    pub(crate) fn prepare(&self) -> PreparedSecurity {
        let caps = self.capabilities.map(|c| {
            (
                c.bounding,
                c.last_cap,
                CapabilitySet::from_bits_retain(c.effective),
                CapabilitySet::from_bits_retain(c.permitted),
            )
        });
        PreparedSecurity {
            creds: self
                .credentials
                .as_ref()
                .map(|c| (Uid::from_raw(c.uid), Gid::from_raw(c.gid))),
            groups: self
                .credentials
                .as_ref()
                .map(|c| c.groups.iter().map(|g| Gid::from_raw(*g)).collect())
                .unwrap_or_default(),
            caps,
            no_new_privs: self.no_new_privs,
            filter: self
                .seccomp
                .as_ref()
                .map(|f| f.0.clone())
                .unwrap_or_default(),
        }
    }
}

/// A rustix error as the errno the child reports.
fn errno(e: rustix::io::Errno) -> Errno {
    Errno::from_raw(e.raw_os_error())
}

/// Applies `p` in the forked child: no_new_privs, bounding set, groups/gid/uid (keeping the
/// permitted set across the uid change), then the permitted and effective sets (runc's
/// `finalizeNamespace` order), and the seccomp filter where runc puts it
/// (`standard_init_linux.go`): with no_new_privs as late as possible, after everything else
/// here (the child then only does `dup2`, `chdir` and `execve`, which the profile allows);
/// without it first, while skiff's `CAP_SYS_ADMIN` still allows installing a filter (the
/// profile allows the `prctl`, `setgroups`, `setres[ug]id` and `capset` that follow).
///
/// Fork-safe (see `sys`): `rustix`'s per-thread calls are raw system calls — after a raw
/// `clone3` the C library's thread list is the parent's, so its set*id wrappers (which
/// signal every thread) must not run here — and the filter is `sys::seccomp`'s.
pub(crate) fn apply_in_child(p: &PreparedSecurity) -> Result<(), Errno> {
    use rustix::thread;
    if p.no_new_privs {
        thread::set_no_new_privs(true).map_err(errno)?;
    } else {
        crate::sys::seccomp::install_filter(&p.filter)?;
    }
    if let Some((bounding, last_cap, _, _)) = &p.caps {
        for cap in 0..=*last_cap {
            if bounding & (1u64 << cap) == 0 {
                thread::remove_capability_from_bounding_set(CapabilitySet::from_bits_retain(
                    1u64 << cap,
                ))
                .map_err(errno)?;
            }
        }
    }
    if let Some((uid, gid)) = p.creds {
        thread::set_keep_capabilities(true).map_err(errno)?;
        thread::set_thread_groups(&p.groups).map_err(errno)?;
        thread::set_thread_res_gid(gid, gid, gid).map_err(errno)?;
        thread::set_thread_res_uid(uid, uid, uid).map_err(errno)?;
    }
    if let Some((_, _, effective, permitted)) = &p.caps {
        thread::set_capabilities(
            None,
            thread::CapabilitySets {
                effective: *effective,
                permitted: *permitted,
                inheritable: CapabilitySet::empty(),
            },
        )
        .map_err(errno)?;
        // Ambient capabilities do not survive in an unprivileged container (EINVAL: the
        // kernel predates them).
        match thread::clear_ambient_capability_set().map_err(errno) {
            Err(Errno::EINVAL) | Ok(()) => {}
            Err(e) => return Err(e),
        }
    }
    if p.no_new_privs {
        crate::sys::seccomp::install_filter(&p.filter)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn host() -> HostSecurity {
        HostSecurity {
            euid: 0,
            egid: 0,
            effective: 0x1ff_feff_ffff,
            bounding: 0x1ff_feff_ffff,
            last_cap: 40,
            passwd: PathBuf::from("/nonexistent"),
            group: PathBuf::from("/nonexistent"),
            user_namespace: None,
        }
    }

    fn pod(v: serde_json::Value) -> (Pod, Container) {
        let pod: Pod = serde_json::from_value(v).unwrap();
        let c = pod.spec.as_ref().unwrap().containers[0].clone();
        (pod, c)
    }

    fn pod_with(pod_sc: serde_json::Value, c_sc: serde_json::Value) -> (Pod, Container) {
        pod(json!({
            "metadata": {"name": "p", "namespace": "ns", "uid": "u-1"},
            "spec": {"securityContext": pod_sc,
                     "containers": [{"name": "c", "securityContext": c_sc}]}
        }))
    }

    fn err(p: &(Pod, Container)) -> String {
        plan(&p.0, &p.1, &host()).unwrap_err().to_string()
    }

    #[test]
    fn run_as_non_root_messages_are_the_kubelets() {
        let p = pod_with(json!({"runAsNonRoot": true}), json!({}));
        assert_eq!(
            err(&p),
            "container has runAsNonRoot and image will run as root (pod: \"p_ns(u-1)\", container: c)"
        );
        let p = pod_with(json!({"runAsNonRoot": true}), json!({"runAsUser": 0}));
        assert_eq!(
            err(&p),
            "container's runAsUser breaks non-root policy (pod: \"p_ns(u-1)\", container: c)"
        );
        let p = pod_with(json!({"runAsNonRoot": true, "runAsUser": 1000}), json!({}));
        assert!(plan(&p.0, &p.1, &host()).is_ok());
        // The container's runAsNonRoot overrides the pod's.
        let p = pod_with(
            json!({"runAsNonRoot": true}),
            json!({"runAsNonRoot": false}),
        );
        assert!(plan(&p.0, &p.1, &host()).is_ok());
    }

    #[test]
    fn container_fields_override_pod_fields_and_groups_follow_kubelet_order() {
        let p = pod_with(
            json!({"runAsUser": 1000, "runAsGroup": 3000, "fsGroup": 2000,
                   "supplementalGroups": [4000, 3000]}),
            json!({"runAsUser": 1001}),
        );
        let plan = plan(&p.0, &p.1, &host()).unwrap();
        assert_eq!(
            plan.credentials,
            Some(Credentials {
                uid: 1001,
                gid: 3000,
                groups: vec![3000, 2000, 4000]
            })
        );
    }

    #[test]
    fn gid_defaults_to_the_users_primary_group_and_image_groups_merge() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("passwd"),
            "root:x:0:0::/root:/bin/sh\nu:x:1000:1500::/:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("group"),
            "u:x:1500:\nextra:x:1600:a,u\nother:x:1700:a\n",
        )
        .unwrap();
        let mut h = host();
        h.passwd = dir.path().join("passwd");
        h.group = dir.path().join("group");
        let p = pod_with(
            json!({"runAsUser": 1000, "supplementalGroups": [9]}),
            json!({}),
        );
        let c = plan(&p.0, &p.1, &h).unwrap().credentials.unwrap();
        assert_eq!((c.uid, c.gid, c.groups), (1000, 1500, vec![1500, 1600, 9]));
        let p = pod_with(
            json!({"runAsUser": 1000, "supplementalGroupsPolicy": "Strict"}),
            json!({}),
        );
        assert_eq!(
            plan(&p.0, &p.1, &h).unwrap().credentials.unwrap().groups,
            vec![1500]
        );
        // An unknown uid: gid 0.
        let p = pod_with(json!({"runAsUser": 4242}), json!({}));
        assert_eq!(plan(&p.0, &p.1, &h).unwrap().credentials.unwrap().gid, 0);
    }

    #[test]
    fn capabilities_follow_containerd_with_capabilities() {
        let caps_of = |c: serde_json::Value| {
            let p = pod_with(json!({}), json!({"capabilities": c}));
            plan(&p.0, &p.1, &host())
                .unwrap()
                .capabilities
                .unwrap()
                .effective
        };
        assert_eq!(caps_of(json!({})), caps::DEFAULT);
        assert_eq!(caps_of(json!({"drop": ["ALL"]})), 0);
        assert_eq!(
            caps_of(json!({"drop": ["ALL"], "add": ["NET_ADMIN"]})),
            1 << caps::NET_ADMIN
        );
        assert_eq!(
            caps_of(json!({"add": ["CAP_NET_ADMIN"], "drop": ["chown", "BOGUS"]})),
            (caps::DEFAULT | 1 << caps::NET_ADMIN) & !(1 << caps::CHOWN)
        );
        // add ALL, minus what skiff lacks (CAP_SYS_RESOURCE here), minus the drop.
        assert_eq!(
            caps_of(json!({"add": ["ALL"], "drop": ["KILL"]})),
            host().bounding & !(1 << caps::KILL)
        );
        let p = pod_with(json!({}), json!({"privileged": true}));
        let plan = plan(&p.0, &p.1, &host()).unwrap();
        assert_eq!(plan.capabilities.unwrap().bounding, host().bounding);
    }

    #[test]
    fn seccomp_profiles_and_no_new_privs() {
        let plan_of = |pod_sc: serde_json::Value, c_sc: serde_json::Value| {
            let p = pod_with(pod_sc, c_sc);
            plan(&p.0, &p.1, &host())
        };
        let p = plan_of(
            json!({"seccompProfile": {"type": "RuntimeDefault"}}),
            json!({}),
        )
        .unwrap();
        assert!(p.seccomp.is_some() && !p.no_new_privs);
        let p = plan_of(
            json!({"seccompProfile": {"type": "RuntimeDefault"}}),
            json!({"seccompProfile": {"type": "Unconfined"}, "allowPrivilegeEscalation": false}),
        )
        .unwrap();
        assert!(p.seccomp.is_none() && p.no_new_privs);
        let p = plan_of(
            json!({"seccompProfile": {"type": "RuntimeDefault"}}),
            json!({"privileged": true}),
        )
        .unwrap();
        assert!(p.seccomp.is_none(), "privileged containers are unconfined");
        assert!(plan_of(json!({}), json!({})).unwrap().seccomp.is_none());
        let e = plan_of(
            json!({}),
            json!({"seccompProfile": {"type": "Localhost", "localhostProfile": "x.json"}}),
        )
        .unwrap_err();
        assert!(matches!(
            e.failure(),
            skiff_engine::StartFailure::Config { .. }
        ));
        assert!(e.to_string().contains("not supported"), "{e}");
    }

    #[test]
    fn rootless_skiff_keeps_its_identity_unless_asked() {
        let h = HostSecurity {
            euid: 1000,
            egid: 1000,
            effective: 0,
            bounding: host().bounding,
            ..host()
        };
        let p = pod_with(json!({"runAsNonRoot": true}), json!({}));
        let plan = plan(&p.0, &p.1, &h).unwrap();
        assert!(plan.credentials.is_none() && plan.capabilities.is_none());
        let p = pod_with(json!({"runAsUser": 5}), json!({}));
        assert!(super::plan(&p.0, &p.1, &h).is_err());
        let p = pod_with(json!({"runAsUser": 1000, "runAsNonRoot": true}), json!({}));
        assert!(super::plan(&p.0, &p.1, &h).unwrap().credentials.is_none());
    }

    // Issue 4 item 9 (rootless): inside the pod's user namespace a container is uid 0 with the
    // runtimes' default capabilities; only 0 or skiff's own host ids may be asked for.
    #[test]
    fn rootless_user_namespace_runs_as_mapped_root_with_default_caps() {
        let outer = HostSecurity {
            euid: 65534,
            egid: 65534,
            effective: 0,
            ..host()
        };
        let h = HostSecurity::in_user_namespace(&outer);
        let p = pod_with(json!({}), json!({}));
        let pl = plan(&p.0, &p.1, &h).unwrap();
        assert!(pl.credentials.is_none());
        let c = pl.capabilities.unwrap();
        assert_eq!(c.effective, caps::DEFAULT & outer.bounding);
        for ok in [
            json!({"runAsUser": 0}),
            json!({"runAsUser": 65534, "runAsGroup": 65534}),
        ] {
            let p = pod_with(ok, json!({}));
            assert!(plan(&p.0, &p.1, &h).unwrap().credentials.is_none());
        }
        for bad in [
            json!({"runAsUser": 5}),
            json!({"runAsGroup": 5}),
            json!({"fsGroup": 0}),
            json!({"supplementalGroups": [1]}),
        ] {
            let p = pod_with(bad, json!({}));
            let e = plan(&p.0, &p.1, &h).unwrap_err();
            assert!(matches!(
                e.failure(),
                skiff_engine::StartFailure::Config { .. }
            ));
            assert!(e.to_string().contains("user namespace"), "{e}");
        }
        // uid 0 inside: runAsNonRoot without a runAsUser refuses, as for root.
        let p = pod_with(json!({"runAsNonRoot": true}), json!({}));
        assert!(plan(&p.0, &p.1, &h).is_err());
    }
}
