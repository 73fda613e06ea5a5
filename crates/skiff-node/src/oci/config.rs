//! The OCI runtime spec (a bundle's `config.json`) of an image container, as the kubelet and
//! containerd's CRI plugin together build it. Pure: [`build_spec`] does no I/O; what needs the
//! file system (the image's user database, a Localhost seccomp profile, the sandbox's files,
//! host devices) is resolved by the caller and handed in as plain data.
//!
//! Built from scratch: every field is written here, nothing comes from runc's or oci-spec's
//! defaults (`Spec::default()` and the builders of `Spec`, `Process`, `Linux`, `Root` and
//! `LinuxCapabilities` fill unset fields with runc-spec values: a 1024 `RLIMIT_NOFILE`,
//! `noNewPrivileges: true`, three capabilities, hostname "youki"). The spec is therefore
//! written as JSON and read into [`Spec`], whose fields default to "absent".
//!
//! The recipe is containerd's `buildLinuxSpec` (`internal/cri/server/container_create.go`),
//! `platformSpecOpts` + `containerSpecOpts` (`container_create_linux.go`), the options in
//! `internal/cri/opts/spec_opts.go` and `spec_linux_opts.go`, and `pkg/oci/spec.go` /
//! `mounts.go` / `spec_opts.go`; the kubelet's side is `kuberuntime_container.go`,
//! `security_context.go` and `pkg/securitycontext/util.go`. Each rule below names its source.

use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Container, Pod, SecurityContext};
use oci_spec::runtime::Spec;
use serde_json::{json, Map, Value};
use skiff_model::resources::ContainerCgroupValues;

use super::user::ResolvedUser;
use crate::launch::{ContainerLaunch, DEFAULT_PATH};
use crate::security::{caps, seccomp};
use crate::spec::ImageProcessConfig;
pub use crate::spec::Propagation;

/// The runtime-spec version written (runc 1.1 reads 1.0.x and later).
pub const OCI_VERSION: &str = "1.0.2";

/// The kubelet's masked and read-only paths for `procMount: Default`
/// (`pkg/securitycontext/util.go`): the same lists the host runtime's container view applies.
pub use crate::container_view::{
    MASKED_PATHS as DEFAULT_MASKED_PATHS, READONLY_PATHS as DEFAULT_READONLY_PATHS,
};

/// containerd's CRI annotations (`internal/cri/annotations/annotations.go`).
pub mod annotations {
    pub const CONTAINER_TYPE: &str = "io.kubernetes.cri.container-type";
    pub const SANDBOX_ID: &str = "io.kubernetes.cri.sandbox-id";
    pub const SANDBOX_NAMESPACE: &str = "io.kubernetes.cri.sandbox-namespace";
    pub const SANDBOX_UID: &str = "io.kubernetes.cri.sandbox-uid";
    pub const SANDBOX_NAME: &str = "io.kubernetes.cri.sandbox-name";
    pub const CONTAINER_NAME: &str = "io.kubernetes.cri.container-name";
    pub const IMAGE_NAME: &str = "io.kubernetes.cri.image-name";
}

/// Everything [`build_spec`] needs for one container instance.
#[derive(Debug, Clone)]
pub struct ContainerConfigInput<'a> {
    pub pod: &'a Pod,
    pub container: &'a Container,
    /// Env resolved and command/args expanded (`ContainerLaunch::from_container_for_image`).
    pub launch: &'a ContainerLaunch,
    /// The image's Entrypoint/Cmd/Env/WorkingDir (User is resolved into [`Self::user`]).
    pub image: &'a ImageProcessConfig,
    /// The image as the pod names it (`io.kubernetes.cri.image-name`).
    pub image_name: &'a str,
    /// The pod sandbox's id (`io.kubernetes.cri.sandbox-id`).
    pub sandbox_id: &'a str,
    /// `root.path`: the container's root filesystem (absolute, or relative to the bundle).
    pub rootfs: &'a Path,
    /// The pod's hostname (the `HOSTNAME` variable; the UTS namespace is the sandbox's).
    pub hostname: &'a str,
    pub namespaces: SandboxNamespaces,
    /// The kubelet's mounts, in spec order: volume mounts, its `/etc/hosts`, the
    /// termination-message file. Sources are host paths the caller checked and prepared.
    pub mounts: Vec<ContainerMount>,
    /// The runtime's own sandbox files (containerd's `linuxContainerMounts`): `/etc/hostname`,
    /// `/etc/hosts` when the kubelet sends none, `/etc/resolv.conf`, `/dev/shm`. Dropped where
    /// [`Self::mounts`] has the same destination.
    pub sandbox_mounts: Vec<ContainerMount>,
    /// From [`super::user::resolve_user`].
    pub user: ResolvedUser,
    /// `linux.cgroupsPath`.
    pub cgroups_path: String,
    /// The container's cgroup values (`skiff_model::resources::container_cgroup_values`).
    pub resources: ContainerCgroupValues,
    /// The kubelet's `oom_score_adj` for the container (clamped to [`RuntimeHost`]'s floor).
    pub oom_score_adj: i32,
    pub seccomp: SeccompChoice,
    /// Privileged containers only: the host's device nodes (containerd `WithHostDevices`).
    pub host_devices: Vec<HostDevice>,
    pub host: RuntimeHost,
}

/// What the node and the OCI runtime can do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuntimeHost {
    /// The capabilities the runtime holds (containerd's `allCaps`, `cap.Current()`): what
    /// `add: [ALL]` and privileged mean; a container never asks for more.
    pub capabilities: u64,
    /// Pure cgroup v2 (unified) host: a cgroup namespace for unprivileged containers.
    pub cgroup_v2: bool,
    /// The memory controller limits swap (v1 `memory.memsw.*`, v2 `memory.swap.max`): swap
    /// limit = memory limit (containerd `WithResources`).
    pub swap_limit: bool,
    /// The lowest `oom_score_adj` the runtime may set (containerd `RestrictOOMScoreAdj`: its
    /// own value; 0 on a host that refuses negative values to a process without
    /// `CAP_SYS_RESOURCE`).
    pub oom_score_adj_floor: i32,
}

/// How the container joins the sandbox's namespaces (containerd `WithPodNamespaces`). `None`
/// means the host's (hostNetwork, hostIPC): no entry, the runtime's own namespace.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SandboxNamespaces {
    pub network: Option<PathBuf>,
    pub ipc: Option<PathBuf>,
    pub uts: Option<PathBuf>,
    pub pid: PidNamespace,
}

/// The container's PID namespace.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum PidNamespace {
    /// Its own (the default).
    #[default]
    Container,
    /// The pod's, by path (`shareProcessNamespace: true`).
    Pod(PathBuf),
    /// The host's (`hostPID: true`).
    Host,
}

/// A bind mount into the container (a CRI `Mount`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerMount {
    /// Host path, already resolved and checked by the caller.
    pub source: PathBuf,
    /// Absolute path inside the container.
    pub destination: String,
    pub read_only: bool,
    /// `recursiveReadOnly: Enabled` (needs `read_only` and private propagation).
    pub recursive_read_only: bool,
    pub propagation: Propagation,
}

impl ContainerMount {
    pub fn bind(source: impl Into<PathBuf>, destination: impl Into<String>, ro: bool) -> Self {
        ContainerMount {
            source: source.into(),
            destination: destination.into(),
            read_only: ro,
            recursive_read_only: false,
            propagation: Propagation::Private,
        }
    }
}

/// A host device node given to a privileged container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostDevice {
    pub path: String,
    /// `c`, `b`, `p`.
    pub kind: char,
    pub major: i64,
    pub minor: i64,
    pub file_mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// The seccomp profile to hand the runtime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SeccompChoice {
    Unconfined,
    /// containerd's default profile (the one skiff's host runtime applies).
    RuntimeDefault,
    /// A profile from the node's seccomp directory: its name (for messages) and JSON text,
    /// read by the caller (see [`seccomp_request`]).
    Localhost {
        name: String,
        profile: String,
    },
}

/// What the pod asks for, before the caller reads a Localhost profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SeccompRequest {
    Unconfined,
    RuntimeDefault,
    /// `localhostProfile`, relative to the node's seccomp directory.
    Localhost(String),
}

/// Why no spec could be built.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// containerd `WithProcessArgs` (kubelet: `CreateContainerError`).
    #[error("no command specified")]
    NoCommand,
    #[error("failed to generate seccomp spec opts: {0}")]
    Seccomp(String),
    #[error("{0}")]
    Mount(String),
    /// A spec skiff built that oci-spec does not take: a bug here.
    #[error("building the OCI runtime spec: {0}")]
    Spec(String),
}

/// The effective security settings that decide more than [`build_spec`] (the caller mounts
/// the sandbox files read-only with `read_only_root_filesystem`, containerd
/// `linuxContainerMounts`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EffectiveSecurity {
    pub privileged: bool,
    pub read_only_root_filesystem: bool,
    /// `procMount: Unmasked`.
    pub unmasked_proc: bool,
    /// `allowPrivilegeEscalation: false` (kubelet `AddNoNewPrivileges`: unset is false).
    pub no_new_privileges: bool,
}

/// The container's own security context fields (no pod-level counterparts).
pub fn effective_security(container: &Container) -> EffectiveSecurity {
    let sc: Option<&SecurityContext> = container.security_context.as_ref();
    EffectiveSecurity {
        privileged: sc.and_then(|s| s.privileged) == Some(true),
        read_only_root_filesystem: sc.and_then(|s| s.read_only_root_filesystem) == Some(true),
        unmasked_proc: sc.and_then(|s| s.proc_mount.as_deref()) == Some("Unmasked"),
        no_new_privileges: sc.and_then(|s| s.allow_privilege_escalation) == Some(false),
    }
}

/// The seccomp profile the pod asks for (the container's `seccompProfile` over the pod's;
/// unset = Unconfined, the kubelet's default without `--seccomp-default`).
pub fn seccomp_request(pod: &Pod, container: &Container) -> Result<SeccompRequest, ConfigError> {
    let pod_sc = pod.spec.as_ref().and_then(|s| s.security_context.as_ref());
    let profile = container
        .security_context
        .as_ref()
        .and_then(|c| c.seccomp_profile.as_ref())
        .or(pod_sc.and_then(|p| p.seccomp_profile.as_ref()));
    let Some(p) = profile else {
        return Ok(SeccompRequest::Unconfined);
    };
    match p.type_.as_str() {
        "Unconfined" => Ok(SeccompRequest::Unconfined),
        "RuntimeDefault" => Ok(SeccompRequest::RuntimeDefault),
        "Localhost" => {
            let name = p.localhost_profile.clone().unwrap_or_default();
            // The API server validates this too; the caller opens it under its directory.
            let path = Path::new(&name);
            if name.is_empty()
                || path.is_absolute()
                || path
                    .components()
                    .any(|c| !matches!(c, std::path::Component::Normal(_)))
            {
                return Err(ConfigError::Seccomp(format!(
                    "invalid localhostProfile {name:?}: must be a relative path without \"..\""
                )));
            }
            Ok(SeccompRequest::Localhost(name))
        }
        other => Err(ConfigError::Seccomp(format!(
            "unknown seccomp profile type {other:?}"
        ))),
    }
}

/// containerd's `WithProcessArgs` (from moby): without `command`, Entrypoint (unless it is
/// exactly `[""]`) plus `args`, or Cmd when `args` is empty; with `command`, Entrypoint and
/// Cmd are ignored.
pub fn process_args(
    command: &[String],
    args: &[String],
    image: &ImageProcessConfig,
) -> Result<Vec<String>, ConfigError> {
    let mut command = command.to_vec();
    let mut args = args.to_vec();
    if command.is_empty() {
        if args.is_empty() {
            args = image.cmd.clone().unwrap_or_default();
        }
        let entrypoint = image.entrypoint.clone().unwrap_or_default();
        if !(entrypoint.len() == 1 && entrypoint[0].is_empty()) {
            command = entrypoint;
        }
    }
    if command.is_empty() && args.is_empty() {
        return Err(ConfigError::NoCommand);
    }
    command.extend(args);
    Ok(command)
}

/// containerd's `replaceOrAppendEnvValues`: each override replaces the value of its key in
/// place, or is appended; an entry without `=` removes its key.
pub fn merge_env(base: &mut Vec<String>, overrides: impl IntoIterator<Item = String>) {
    // An unset is deferred, as containerd blanks the slot and filters at the end: a later
    // set of the same key refills the slot. Unlike containerd, a key set twice in one batch
    // keeps one entry (runc 1.1 passes duplicates on, and the C library's getenv returns the
    // first, so the image's value would win over the pod's).
    let key = |e: &str| e.split_once('=').map_or(e, |(k, _)| k).to_string();
    let mut unset = vec![false; base.len()];
    for o in overrides {
        let k = key(&o);
        let is_set = o.contains('=');
        match base.iter().position(|e| key(e) == k) {
            Some(i) => {
                if let Some(u) = unset.get_mut(i) {
                    *u = !is_set;
                }
                if is_set {
                    base[i] = o;
                }
            }
            None if is_set => {
                base.push(o);
                unset.push(false);
            }
            None => {}
        }
    }
    let mut flags = unset.into_iter();
    base.retain(|_| !flags.next().unwrap_or(false));
}

/// `process.env`: `PATH` (containerd `WithDefaultPathEnv`), `HOSTNAME`, the image's `Env`,
/// then the container's env (`buildLinuxSpec`), merged with [`merge_env`] in that order.
pub fn process_env(
    hostname: &str,
    image: &ImageProcessConfig,
    container_env: &[(String, String)],
) -> Vec<String> {
    let mut env = vec![format!("PATH={DEFAULT_PATH}")];
    merge_env(&mut env, [format!("HOSTNAME={hostname}")]);
    merge_env(&mut env, image.env.iter().cloned());
    merge_env(
        &mut env,
        container_env.iter().map(|(k, v)| format!("{k}={v}")),
    );
    env
}

fn mount_json(dest: &str, typ: &str, source: &str, options: &[&str]) -> Value {
    json!({"destination": dest, "type": typ, "source": source, "options": options})
}

/// The number of path parts of a mount destination (containerd's `orderedMounts`: the count
/// of `/` in the cleaned path).
fn depth(dest: &str) -> usize {
    let clean: Vec<&str> = dest
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    clean.len()
}

fn clean(dest: &str) -> String {
    let parts: Vec<&str> = dest
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    format!("/{}", parts.join("/"))
}

/// `mounts` of config.json: containerd's defaults without `/run` (`WithoutRunMount`) plus the
/// read-only cgroup mount, minus those a CRI mount replaces (every default under `/dev/` when
/// `/dev` itself is mounted), then the CRI mounts sorted by depth (`withMounts`).
fn mounts(
    input: &ContainerConfigInput<'_>,
    privileged: bool,
) -> Result<(Vec<Value>, Option<&'static str>), ConfigError> {
    // The kubelet's mounts win over the runtime's sandbox files for one destination.
    let mut cri: Vec<&ContainerMount> = input.mounts.iter().collect();
    for extra in &input.sandbox_mounts {
        if !input
            .mounts
            .iter()
            .any(|m| clean(&m.destination) == clean(&extra.destination))
        {
            cri.push(extra);
        }
    }
    // Stable: equal depths keep their order.
    cri.sort_by_key(|m| depth(&m.destination));

    // WithWriteableSysfs / WithWriteableCgroupfs for privileged containers.
    let sys_mode = if privileged { "rw" } else { "ro" };
    let defaults = [
        mount_json("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"]),
        mount_json(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        ),
        mount_json(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        ),
        mount_json(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        ),
        mount_json(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        ),
        mount_json(
            "/sys",
            "sysfs",
            "sysfs",
            &["nosuid", "noexec", "nodev", sys_mode],
        ),
        mount_json(
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            &["nosuid", "noexec", "nodev", "relatime", sys_mode],
        ),
    ];
    let cri_dests: Vec<String> = cri.iter().map(|m| clean(&m.destination)).collect();
    let dev_mounted = cri_dests.iter().any(|d| d == "/dev");
    let mut out: Vec<Value> = defaults
        .into_iter()
        .filter(|m| {
            let dest = m["destination"].as_str().unwrap_or_default();
            let replaced = cri_dests.iter().any(|d| d == dest);
            !(replaced || (dev_mounted && dest.starts_with("/dev/")))
        })
        .collect();

    let mut rootfs_propagation: Option<&'static str> = None;
    for m in cri {
        if !m.destination.starts_with('/') {
            return Err(ConfigError::Mount(format!(
                "mount destination {:?} is not an absolute path",
                m.destination
            )));
        }
        let mut options = vec!["rbind"];
        match m.propagation {
            Propagation::Private => options.push("rprivate"),
            Propagation::Bidirectional => {
                options.push("rshared");
                rootfs_propagation = Some("rshared");
            }
            Propagation::HostToContainer => {
                options.push("rslave");
                if rootfs_propagation != Some("rshared") {
                    rootfs_propagation = Some("rslave");
                }
            }
        }
        match (m.read_only, m.recursive_read_only) {
            (true, true) => {
                if m.propagation != Propagation::Private {
                    return Err(ConfigError::Mount(format!(
                        "recursive read-only mount needs private propagation, got {:?} (hostPath={:?})",
                        m.propagation, m.source
                    )));
                }
                options.push("rro");
            }
            (true, false) => options.push("ro"),
            (false, true) => {
                return Err(ConfigError::Mount(format!(
                    "recursive read-only mount conflicts with RW mount (hostPath={:?})",
                    m.source
                )))
            }
            (false, false) => options.push("rw"),
        }
        out.push(json!({
            "destination": m.destination,
            "type": "bind",
            "source": m.source,
            "options": options,
        }));
    }
    Ok((out, rootfs_propagation))
}

/// Capability names (`CAP_X`) of `set`, in number order.
fn cap_names(set: u64) -> Vec<String> {
    (0..64u32)
        .filter(|c| set & (1u64 << c) != 0)
        .filter_map(|c| caps::NAMES.get(c as usize).map(|n| format!("CAP_{n}")))
        .collect()
}

/// The container's capability set: containerd's 14 defaults with `add`/`drop` (`ALL` first,
/// `WithCapabilities`), or everything the runtime has when privileged
/// (`WithAllCurrentCapabilities`); never more than the runtime holds.
pub fn capability_set(container: &Container, host: &RuntimeHost) -> u64 {
    let sc = container.security_context.as_ref();
    if sc.and_then(|s| s.privileged) == Some(true) {
        return host.capabilities;
    }
    crate::security::requested_caps(sc.and_then(|s| s.capabilities.as_ref()), host.capabilities)
        & host.capabilities
}

/// `linux.resources` (containerd `WithResources` over the kubelet's
/// `calculateLinuxResources`, plus the device rules of `populateDefaultUnixSpec` or
/// `WithAllDevicesAllowed`).
fn resources(v: &ContainerCgroupValues, host: &RuntimeHost, privileged: bool) -> Value {
    let mut cpu = Map::new();
    cpu.insert("shares".into(), json!(v.cpu_shares));
    if let Some(q) = v.cpu_quota_us.filter(|q| *q != 0) {
        cpu.insert("quota".into(), json!(q));
    }
    if v.cpu_period_us != 0 {
        cpu.insert("period".into(), json!(v.cpu_period_us));
    }
    let mut out = Map::new();
    out.insert(
        "devices".into(),
        json!([{"allow": privileged, "access": "rwm"}]),
    );
    out.insert("cpu".into(), Value::Object(cpu));
    if let Some(limit) = v.memory_limit_bytes.filter(|l| *l != 0) {
        let mut mem = Map::new();
        mem.insert("limit".into(), json!(limit));
        if host.swap_limit {
            mem.insert("swap".into(), json!(limit));
        }
        out.insert("memory".into(), Value::Object(mem));
    }
    Value::Object(out)
}

/// Builds the container's runtime spec. No I/O.
pub fn build_spec(input: &ContainerConfigInput<'_>) -> Result<Spec, ConfigError> {
    let c = input.container;
    let sec = effective_security(c);
    let privileged = sec.privileged;

    // process
    let args = process_args(&input.launch.command, &input.launch.args, input.image)?;
    let env = process_env(input.hostname, input.image, &input.launch.env);
    let cwd = input
        .launch
        .working_dir
        .as_ref()
        .map(|w| w.to_string_lossy().into_owned())
        .filter(|w| !w.is_empty())
        .or_else(|| input.image.working_dir.clone().filter(|w| !w.is_empty()))
        .unwrap_or_else(|| "/".to_string());
    let cap_set = capability_set(c, &input.host);
    let cap_list = cap_names(cap_set);
    let mut process = Map::new();
    process.insert("terminal".into(), json!(c.tty == Some(true)));
    process.insert(
        "user".into(),
        json!({
            "uid": input.user.uid,
            "gid": input.user.gid,
            "additionalGids": input.user.additional_gids,
        }),
    );
    process.insert("args".into(), json!(args));
    process.insert("env".into(), json!(env));
    process.insert("cwd".into(), json!(cwd));
    // Ambient (and inheritable) stay empty: containerd `WithoutAmbientCaps` (k/k #56374).
    process.insert(
        "capabilities".into(),
        json!({"bounding": cap_list, "effective": cap_list, "permitted": cap_list}),
    );
    // No rlimits: the runtime's own apply (containerd `WithoutDefaultSecuritySettings`).
    if sec.no_new_privileges {
        process.insert("noNewPrivileges".into(), json!(true));
    }
    process.insert(
        "oomScoreAdj".into(),
        json!(input.oom_score_adj.max(input.host.oom_score_adj_floor)),
    );

    // linux
    let mut linux = Map::new();
    linux.insert(
        "resources".into(),
        resources(&input.resources, &input.host, privileged),
    );
    linux.insert("cgroupsPath".into(), json!(input.cgroups_path));
    linux.insert(
        "namespaces".into(),
        namespaces(&input.namespaces, input.host.cgroup_v2 && !privileged),
    );
    if privileged && !input.host_devices.is_empty() {
        let devices: Vec<Value> = input
            .host_devices
            .iter()
            .map(|d| {
                json!({
                    "path": d.path, "type": d.kind.to_string(), "major": d.major, "minor": d.minor,
                    "fileMode": d.file_mode, "uid": d.uid, "gid": d.gid,
                })
            })
            .collect();
        linux.insert("devices".into(), Value::Array(devices));
    }
    if let Some(profile) = seccomp_json(&input.seccomp, privileged, cap_set)? {
        linux.insert("seccomp".into(), profile);
    }
    // The kubelet's paths per procMount (containerd takes them as sent); privileged: none
    // (`WithPrivileged`).
    if !privileged && !sec.unmasked_proc {
        linux.insert("maskedPaths".into(), json!(DEFAULT_MASKED_PATHS));
        linux.insert("readonlyPaths".into(), json!(DEFAULT_READONLY_PATHS));
    }

    let (mounts, rootfs_propagation) = mounts(input, privileged)?;
    if let Some(p) = rootfs_propagation {
        linux.insert("rootfsPropagation".into(), json!(p));
    }

    let pod_meta = &input.pod.metadata;
    let annotations = json!({
        annotations::SANDBOX_ID: input.sandbox_id,
        annotations::SANDBOX_NAMESPACE: pod_meta.namespace.as_deref().unwrap_or("default"),
        annotations::SANDBOX_UID: pod_meta.uid.as_deref().unwrap_or_default(),
        annotations::SANDBOX_NAME: pod_meta.name.as_deref().unwrap_or_default(),
        annotations::CONTAINER_NAME: c.name,
        annotations::IMAGE_NAME: input.image_name,
        annotations::CONTAINER_TYPE: "container",
    });

    let mut root = Map::new();
    root.insert("path".into(), json!(input.rootfs));
    if sec.read_only_root_filesystem {
        root.insert("readonly".into(), json!(true));
    }

    let spec = json!({
        "ociVersion": OCI_VERSION,
        "root": Value::Object(root),
        "process": Value::Object(process),
        "mounts": mounts,
        "annotations": annotations,
        "linux": Value::Object(linux),
    });
    serde_json::from_value(spec).map_err(|e| ConfigError::Spec(e.to_string()))
}

/// `linux.namespaces`: containerd's default list (pid, ipc, uts, mount, network) with the
/// sandbox's paths, a host namespace left out, and a cgroup namespace on cgroup v2 for
/// unprivileged containers (`buildLinuxSpec`).
fn namespaces(ns: &SandboxNamespaces, cgroupns: bool) -> Value {
    let mut out = Vec::new();
    let entry = |typ: &str, path: Option<&PathBuf>| match path {
        Some(p) => json!({"type": typ, "path": p}),
        None => json!({"type": typ}),
    };
    match &ns.pid {
        PidNamespace::Container => out.push(entry("pid", None)),
        PidNamespace::Pod(p) => out.push(entry("pid", Some(p))),
        PidNamespace::Host => {}
    }
    if let Some(p) = &ns.ipc {
        out.push(entry("ipc", Some(p)));
    }
    if let Some(p) = &ns.uts {
        out.push(entry("uts", Some(p)));
    }
    out.push(entry("mount", None));
    if let Some(p) = &ns.network {
        out.push(entry("network", Some(p)));
    }
    if cgroupns {
        out.push(entry("cgroup", None));
    }
    Value::Array(out)
}

/// `linux.seccomp`: none for privileged containers and Unconfined (containerd
/// `GenerateSeccompSpecOpts`); RuntimeDefault is the profile table skiff's host runtime
/// compiles ([`seccomp::RULES`]) in its OCI form, for the container's capabilities.
fn seccomp_json(
    choice: &SeccompChoice,
    privileged: bool,
    caps: u64,
) -> Result<Option<Value>, ConfigError> {
    if privileged {
        return Ok(None);
    }
    match choice {
        SeccompChoice::Unconfined => Ok(None),
        SeccompChoice::RuntimeDefault => Ok(Some(seccomp::runtime_default(caps).to_oci())),
        SeccompChoice::Localhost { name, profile } => {
            let v: Value = serde_json::from_str(profile).map_err(|e| {
                ConfigError::Seccomp(format!("decoding seccomp profile {name:?}: {e}"))
            })?;
            // Type-check it as oci-spec's LinuxSeccomp (the same shape as the runtime's).
            serde_json::from_value::<oci_spec::runtime::LinuxSeccomp>(v.clone()).map_err(|e| {
                ConfigError::Seccomp(format!("seccomp profile {name:?} is not valid: {e}"))
            })?;
            Ok(Some(v))
        }
    }
}

/// config.json text: keys sorted, capability lists in number order (oci-spec keeps them in a
/// `HashSet` and annotations in a `HashMap`, whose order would change from run to run).
pub fn to_json(spec: &Spec) -> Result<String, ConfigError> {
    let mut v = serde_json::to_value(spec).map_err(|e| ConfigError::Spec(e.to_string()))?;
    if let Some(caps_obj) = v
        .get_mut("process")
        .and_then(|p| p.get_mut("capabilities"))
        .and_then(Value::as_object_mut)
    {
        for list in caps_obj.values_mut() {
            if let Some(arr) = list.as_array_mut() {
                arr.sort_by_key(|c| c.as_str().and_then(caps::by_name).map_or(u32::MAX, |n| n));
            }
        }
    }
    serde_json::to_string_pretty(&v).map_err(|e| ConfigError::Spec(e.to_string()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn image(ep: Option<&[&str]>, cmd: Option<&[&str]>) -> ImageProcessConfig {
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        ImageProcessConfig {
            entrypoint: ep.map(v),
            cmd: cmd.map(v),
            ..Default::default()
        }
    }

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    // containerd internal/cri/opts/spec_opts.go WithProcessArgs.
    #[test]
    fn process_args_follow_with_process_args() {
        let img = image(Some(&["/ep"]), Some(&["c1", "c2"]));
        assert_eq!(
            process_args(&[], &[], &img).unwrap(),
            s(&["/ep", "c1", "c2"])
        );
        assert_eq!(
            process_args(&[], &s(&["a"]), &img).unwrap(),
            s(&["/ep", "a"])
        );
        assert_eq!(process_args(&s(&["/x"]), &[], &img).unwrap(), s(&["/x"]));
        assert_eq!(
            process_args(&s(&["/x"]), &s(&["a"]), &img).unwrap(),
            s(&["/x", "a"])
        );
        // `[""]` is no entrypoint; args alone are then the whole command line.
        let img = image(Some(&[""]), Some(&["/cmd"]));
        assert_eq!(process_args(&[], &[], &img).unwrap(), s(&["/cmd"]));
        assert_eq!(process_args(&[], &s(&["/a"]), &img).unwrap(), s(&["/a"]));
        // `["", "x"]` is an entrypoint like any other.
        let img = image(Some(&["", "x"]), None);
        assert_eq!(process_args(&[], &[], &img).unwrap(), s(&["", "x"]));
        let img = image(Some(&[""]), None);
        assert!(matches!(
            process_args(&[], &[], &img),
            Err(ConfigError::NoCommand)
        ));
        assert!(matches!(
            process_args(&[], &[], &image(None, None)),
            Err(ConfigError::NoCommand)
        ));
    }

    // containerd pkg/oci/spec_opts.go replaceOrAppendEnvValues, with one entry per key.
    #[test]
    fn env_replaces_in_place_appends_and_unsets() {
        let mut env = s(&["PATH=/bin", "A=1", "B=2"]);
        merge_env(&mut env, s(&["A=10", "C=3", "B", "C=30", "D"]));
        assert_eq!(env, s(&["PATH=/bin", "A=10", "C=30"]));
        // An unset followed by a set of the same key keeps the slot.
        let mut env = s(&["A=1", "B=2"]);
        merge_env(&mut env, s(&["A", "A=5"]));
        assert_eq!(env, s(&["A=5", "B=2"]));
        let img = ImageProcessConfig {
            env: s(&["PATH=/img", "X=img", "Y"]),
            ..Default::default()
        };
        let env = process_env(
            "h",
            &img,
            &[("X".into(), "pod".into()), ("Z".into(), "z".into())],
        );
        assert_eq!(env, s(&["PATH=/img", "HOSTNAME=h", "X=pod", "Z=z"]));
    }

    fn container(sc: serde_json::Value) -> Container {
        serde_json::from_value(serde_json::json!({"name": "c", "securityContext": sc})).unwrap()
    }

    fn host(capabilities: u64) -> RuntimeHost {
        RuntimeHost {
            capabilities,
            cgroup_v2: false,
            swap_limit: false,
            oom_score_adj_floor: 0,
        }
    }

    // containerd WithCapabilities (ALL first, then the individual names) and
    // WithAllCurrentCapabilities for privileged; never more than the runtime holds.
    #[test]
    fn capabilities() {
        let all = (1u64 << 41) - 1;
        let no_sys_resource = all & !(1 << caps::SYS_RESOURCE);
        assert_eq!(
            capability_set(&container(serde_json::json!({})), &host(all)),
            caps::DEFAULT
        );
        assert_eq!(caps::DEFAULT.count_ones(), 14);
        let c = container(serde_json::json!({"capabilities": {"add": ["ALL"], "drop": ["CHOWN"]}}));
        assert_eq!(capability_set(&c, &host(all)), all & !(1 << caps::CHOWN));
        let c = container(
            serde_json::json!({"capabilities": {"drop": ["ALL"], "add": ["SYS_RESOURCE"]}}),
        );
        assert_eq!(capability_set(&c, &host(no_sys_resource)), 0);
        let c = container(serde_json::json!({"privileged": true}));
        assert_eq!(capability_set(&c, &host(no_sys_resource)), no_sys_resource);
    }

    #[test]
    fn seccomp_requests() {
        let pod = |sc: serde_json::Value, csc: serde_json::Value| -> (Pod, Container) {
            let p: Pod = serde_json::from_value(serde_json::json!({
                "spec": {"securityContext": sc, "containers": [{"name": "c", "securityContext": csc}]}
            }))
            .unwrap();
            let c = p.spec.as_ref().unwrap().containers[0].clone();
            (p, c)
        };
        let (p, c) = pod(serde_json::json!({}), serde_json::json!({}));
        assert_eq!(seccomp_request(&p, &c).unwrap(), SeccompRequest::Unconfined);
        let (p, c) = pod(
            serde_json::json!({"seccompProfile": {"type": "RuntimeDefault"}}),
            serde_json::json!({}),
        );
        assert_eq!(
            seccomp_request(&p, &c).unwrap(),
            SeccompRequest::RuntimeDefault
        );
        let (p, c) = pod(
            serde_json::json!({"seccompProfile": {"type": "RuntimeDefault"}}),
            serde_json::json!({"seccompProfile": {"type": "Localhost", "localhostProfile": "prof/a.json"}}),
        );
        assert_eq!(
            seccomp_request(&p, &c).unwrap(),
            SeccompRequest::Localhost("prof/a.json".into())
        );
        for bad in ["../x.json", "/etc/x.json", ""] {
            let (p, c) = pod(
                serde_json::json!({}),
                serde_json::json!({"seccompProfile": {"type": "Localhost", "localhostProfile": bad}}),
            );
            assert!(seccomp_request(&p, &c).is_err(), "{bad}");
        }
    }

    // RuntimeDefault is the host runtime's table in its OCI form, through oci-spec unchanged.
    #[test]
    fn runtime_default_is_the_host_runtime_profile() {
        let caps = caps::DEFAULT;
        let want = seccomp::runtime_default(caps).to_oci();
        let got = seccomp_json(&SeccompChoice::RuntimeDefault, false, caps)
            .unwrap()
            .unwrap();
        assert_eq!(got, want);
        let typed: oci_spec::runtime::LinuxSeccomp = serde_json::from_value(want.clone()).unwrap();
        assert_eq!(serde_json::to_value(typed).unwrap(), want);
        assert!(seccomp_json(&SeccompChoice::RuntimeDefault, true, caps)
            .unwrap()
            .is_none());
        let bad = SeccompChoice::Localhost {
            name: "x".into(),
            profile: "{\"defaultAction\": 5}".into(),
        };
        assert!(matches!(
            seccomp_json(&bad, false, caps),
            Err(ConfigError::Seccomp(_))
        ));
    }

    #[test]
    fn mount_order_is_by_depth_and_stable() {
        assert_eq!(depth("/"), 0);
        assert_eq!(depth("/a/b/"), 2);
        assert_eq!(clean("/a//b/./"), "/a/b");
    }
}
