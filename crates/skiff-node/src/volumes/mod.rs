//! Pod volumes on the host: each volume of the pod is made real under the pod directory in
//! the kubelet's layout (`volumes/kubernetes.io~empty-dir/<name>`, `…~configmap/…`,
//! `…~secret/…`, `…~downward-api/…`, `…~projected/…`; hostPath volumes are the host path
//! itself) before the first container starts, and every container's `volumeMounts` become
//! [`MountSpec`]s that the child applies in its own mount namespace.
//!
//! Upstream: `pkg/volume/emptydir/empty_dir.go`, `pkg/volume/hostpath/host_path.go`,
//! `pkg/volume/configmap`, `pkg/volume/secret`, `pkg/volume/downwardapi`, `pkg/volume/projected`,
//! `pkg/volume/util/atomic_writer.go`, `pkg/volume/volume_linux.go` (fsGroup), and
//! `makeMounts` in `pkg/kubelet/kubelet_pods.go`.
//!
//! Like the kubelet, secret, downwardAPI and projected volumes live on a tmpfs (their
//! contents never touch the disk), as do `emptyDir.medium: Memory` volumes, sized
//! `min(node memory, pod memory limit, sizeLimit)`. Without the right to mount (not root)
//! they are plain directories and a warning says so.
//!
//! serviceAccountToken projections get a token from skiff's own signer, and the
//! `kube-root-ca.crt` ConfigMap every namespace has is skiff's CA ([`cluster_identity`]): a pod
//! exported from a cluster finds `token`, `ca.crt` and `namespace` where it expects them.
//!
//! A disk emptyDir over its `sizeLimit` is found by [`SizeWatch::exceeded`]
//! (`du`-style usage, as the kubelet's eviction manager measures it); the pod worker polls it
//! and evicts the pod (the engine's `NodeFailure::Evicted`: Warning `Evicted` with the kubelet's
//! message, the pod fails, its containers are killed with the eviction's 1 s grace).
//! The usage walk and the teardown go by file descriptor ([`crate::fdwalk`]): no depth of paths
//! escapes the count (`PATH_MAX` does not bound them) or survives the pod, and neither
//! follows a symlink.
//!
//! Each volume's root is held open from setup on, and every volumeMount carries a descriptor
//! of what it mounts ([`MountSpec::source_fd`]; subPaths in [`subpath`]).

pub mod atomic;
pub mod cluster_identity;
pub mod downward;
pub mod hostpath;
pub mod ownership;
mod payload;
pub mod subpath;

pub use payload::secret_data;

use std::collections::BTreeMap;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret, Volume};
use skiff_model::quantity::Quantity;

use crate::fdwalk;
pub use crate::spec::MountJournal;
use crate::spec::{HeldFd, MountSpec, Propagation, StartError};
use downward::NodeAllocatable;

pub const EMPTY_DIR_PLUGIN: &str = "kubernetes.io~empty-dir";
pub const CONFIG_MAP_PLUGIN: &str = "kubernetes.io~configmap";
pub const SECRET_PLUGIN: &str = "kubernetes.io~secret";
pub const DOWNWARD_API_PLUGIN: &str = "kubernetes.io~downward-api";
pub const PROJECTED_PLUGIN: &str = "kubernetes.io~projected";

/// ConfigMaps and Secrets a pod may refer to (for `skiff run`: the documents of the same
/// manifest), by name, and what issues its service-account tokens.
#[derive(Debug, Clone, Default)]
pub struct PodObjects {
    pub config_maps: BTreeMap<String, ConfigMap>,
    pub secrets: BTreeMap<String, Secret>,
    /// skiff's CA and token signer (`volumes::cluster_identity`); without it a projected
    /// serviceAccountToken cannot be written and the volume fails to mount.
    pub cluster: Option<std::sync::Arc<cluster_identity::ClusterIdentity>>,
}

impl PodObjects {
    /// Adds what every namespace of a cluster has: `kube-root-ca.crt` (unless the manifest
    /// brings its own) from skiff's CA of `data_dir`, which also signs the pod's tokens.
    /// Without the keys (an unwritable data dir) the pod runs without them; a volume that
    /// needs them fails to mount, naming the cause.
    pub fn with_cluster_identity(mut self, data_dir: &std::path::Path, namespace: &str) -> Self {
        use cluster_identity::{ClusterIdentity, ROOT_CA_CONFIG_MAP};
        match ClusterIdentity::load_or_create(data_dir) {
            Ok(id) => {
                self.config_maps
                    .entry(ROOT_CA_CONFIG_MAP.to_string())
                    .or_insert_with(|| id.root_ca_config_map(namespace));
                self.cluster = Some(std::sync::Arc::new(id));
            }
            Err(e) => tracing::warn!("skiff's CA and token signer are unavailable: {e}"),
        }
        self
    }
}

/// A volume that could not be set up: the kubelet's `FailedMount` event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("MountVolume.SetUp failed for volume {volume:?} : {message}")]
pub struct VolumeError {
    pub volume: String,
    pub message: String,
}

/// One materialised volume.
#[derive(Debug)]
struct PodVolume {
    /// What a volumeMount bind-mounts (a directory, or for hostPath whatever is there).
    path: PathBuf,
    /// configMap, secret, downwardAPI, projected: always mounted read-only
    /// (`Mounter.GetAttributes().ReadOnly`).
    must_mount_ro: bool,
    /// A disk emptyDir's `sizeLimit`: (bytes, as written).
    size_limit: Option<(i64, String)>,
    /// `path` held open (`O_PATH`) since setup; `None` for a hostPath that did not exist
    /// then (opened when mounted).
    fd: Option<Arc<OwnedFd>>,
}

/// The volumes of one pod (see the module docs).
#[derive(Debug, Default)]
pub struct PodVolumes {
    /// `<pod_dir>/volumes`; everything under it is skiff's and removed at teardown.
    dir: PathBuf,
    volumes: BTreeMap<String, PodVolume>,
    /// tmpfs mounts skiff made, unmounted at teardown.
    tmpfs: Vec<PathBuf>,
    /// Where mounts are recorded before they are made (the pod's record).
    journal: Option<std::sync::Arc<dyn MountJournal>>,
    /// Warning events (reason, message) for the pod.
    warnings: Vec<(String, String)>,
    /// tmpfs mounts an earlier process made for this pod (re-attached, not mounted again).
    adopt_mounts: Vec<PathBuf>,
    /// Set up over an earlier process's volumes ([`PodVolumes::setup_adopting`]).
    adopting: bool,
    /// A persistent sandbox's: dropped, nothing is torn down ([`PodVolumes::teardown`] does).
    kept: bool,
}

impl PodVolumes {
    /// Sets up every volume of `pod` under `pod_dir`. On error nothing of it is left.
    pub fn setup(
        pod: &Pod,
        pod_dir: &Path,
        objects: &PodObjects,
        node: &NodeAllocatable,
    ) -> Result<PodVolumes, VolumeError> {
        Self::setup_journaled(pod, pod_dir, objects, node, None)
    }

    /// [`PodVolumes::setup`], recording every tmpfs in `journal` before mounting it.
    pub fn setup_journaled(
        pod: &Pod,
        pod_dir: &Path,
        objects: &PodObjects,
        node: &NodeAllocatable,
        journal: Option<std::sync::Arc<dyn MountJournal>>,
    ) -> Result<PodVolumes, VolumeError> {
        Self::setup_with(pod, pod_dir, objects, node, journal, Vec::new(), false)
    }

    /// [`PodVolumes::setup_journaled`] over what an earlier process set up for the pod (a
    /// persistent sandbox): the tmpfs mounts in `mounted` (its record's, still mounted) are
    /// taken as they are, and so are the files of configMap, secret, downwardAPI and projected
    /// volumes found in place (made again only where missing); emptyDir directories are made
    /// if missing.
    pub fn setup_adopting(
        pod: &Pod,
        pod_dir: &Path,
        objects: &PodObjects,
        node: &NodeAllocatable,
        journal: Option<std::sync::Arc<dyn MountJournal>>,
        mounted: Vec<PathBuf>,
    ) -> Result<PodVolumes, VolumeError> {
        Self::setup_with(pod, pod_dir, objects, node, journal, mounted, true)
    }

    fn setup_with(
        pod: &Pod,
        pod_dir: &Path,
        objects: &PodObjects,
        node: &NodeAllocatable,
        journal: Option<std::sync::Arc<dyn MountJournal>>,
        mounted: Vec<PathBuf>,
        adopting: bool,
    ) -> Result<PodVolumes, VolumeError> {
        let mut out = PodVolumes {
            dir: pod_dir.join("volumes"),
            volumes: BTreeMap::new(),
            tmpfs: Vec::new(),
            journal,
            warnings: Vec::new(),
            adopt_mounts: mounted,
            adopting,
            kept: false,
        };
        let Some(spec) = pod.spec.as_ref() else {
            return Ok(out);
        };
        let vols = spec.volumes.as_deref().unwrap_or_default();
        if vols.is_empty() {
            return Ok(out);
        }
        let ctx = SetupCtx {
            pod,
            objects,
            node,
            pod_memory_limit: skiff_model::resources::pod_cgroup_values(
                spec,
                &skiff_model::resources::CgroupConfig::default(),
            )
            .memory_limit_bytes,
        };
        for v in vols {
            if let Err(message) = out.setup_one(v, &ctx) {
                out.teardown();
                return Err(VolumeError {
                    volume: v.name.clone(),
                    message,
                });
            }
        }
        Ok(out)
    }

    fn setup_one(&mut self, v: &Volume, ctx: &SetupCtx<'_>) -> Result<(), String> {
        let fs_group = ctx
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.security_context.as_ref())
            .and_then(|sc| sc.fs_group)
            .and_then(|g| u32::try_from(g).ok());
        let policy = match ctx
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.security_context.as_ref())
            .and_then(|sc| sc.fs_group_change_policy.as_deref())
        {
            Some("OnRootMismatch") => ownership::ChangePolicy::OnRootMismatch,
            _ => ownership::ChangePolicy::Always,
        };
        let own = |path: &Path, ro: bool| -> Result<(), String> {
            match fs_group {
                Some(g) => ownership::set_volume_ownership(path, g, ro, policy),
                None => Ok(()),
            }
        };

        if let Some(e) = &v.empty_dir {
            let path = self.plugin_dir(EMPTY_DIR_PLUGIN, &v.name)?;
            let limit = match &e.size_limit {
                Some(q) => Some((
                    Quantity::parse(&q.0).map_err(|e| e.to_string())?.value(),
                    q.0.clone(),
                )),
                None => None,
            };
            let mut size_limit = None;
            match e.medium.as_deref().unwrap_or("") {
                "" => size_limit = limit.filter(|(b, _)| *b > 0),
                "Memory" => self.mount_tmpfs(&path, ctx.tmpfs_size(limit.map(|l| l.0)))?,
                other => {
                    return Err(format!(
                    "unsupported emptyDir medium {other:?} (skiff supports \"\" and \"Memory\")"
                ))
                }
            }
            own(&path, false)?;
            self.insert(v, path, false, size_limit);
            return Ok(());
        }
        if let Some(h) = &v.host_path {
            let path = PathBuf::from(&h.path);
            hostpath::check_type(&path, h.type_.as_deref().unwrap_or(""))?;
            // hostPath does not support ownership management (SetVolumeOwnership is not called).
            self.insert(v, path, false, None);
            return Ok(());
        }
        if self.adopting {
            // An earlier process wrote this volume's files: they stay as they are (what the
            // containers have seen; the objects they came from need not be at hand).
            let plugin = if v.config_map.is_some() {
                Some((CONFIG_MAP_PLUGIN, false))
            } else if v.secret.is_some() {
                Some((SECRET_PLUGIN, true))
            } else if v.downward_api.is_some() {
                Some((DOWNWARD_API_PLUGIN, true))
            } else if v.projected.is_some() {
                Some((PROJECTED_PLUGIN, true))
            } else {
                None
            };
            if let Some((plugin, memory)) = plugin {
                let path = self.dir.join(plugin).join(&v.name);
                let mounted = crate::mountinfo::mount_points().contains(&path);
                if path.is_dir() && (!memory || mounted) {
                    if memory {
                        // Its tmpfs, unmounted at teardown.
                        self.tmpfs.push(path.clone());
                    }
                    self.insert(v, path, true, None);
                    return Ok(());
                }
            }
        }
        let (plugin, memory, payload) = if let Some(cm) = &v.config_map {
            (
                CONFIG_MAP_PLUGIN,
                false,
                payload::config_map_volume(cm, ctx)?,
            )
        } else if let Some(s) = &v.secret {
            (SECRET_PLUGIN, true, payload::secret_volume(s, ctx)?)
        } else if let Some(d) = &v.downward_api {
            (
                DOWNWARD_API_PLUGIN,
                true,
                payload::downward_api_volume(d, ctx)?,
            )
        } else if let Some(p) = &v.projected {
            let payload = payload::projected_volume(p, ctx)?;
            (PROJECTED_PLUGIN, true, payload)
        } else {
            return Err(format!(
                "volume type of {:?} is not supported by skiff (emptyDir, hostPath, configMap, secret, downwardAPI and projected are)",
                v.name
            ));
        };
        let path = self.plugin_dir(plugin, &v.name)?;
        if memory {
            self.mount_tmpfs(&path, ctx.tmpfs_size(None))?;
        }
        atomic::write(&path, &payload)?;
        own(&path, true)?;
        self.insert(v, path, true, None);
        Ok(())
    }

    fn insert(&mut self, v: &Volume, path: PathBuf, ro: bool, size_limit: Option<(i64, String)>) {
        // skiff's own directories are opened without following a last-component symlink; a
        // hostPath is the path the pod names, symlinks included (as the kubelet mounts it).
        let own = v.host_path.is_none();
        let fd = fdwalk::open_path(&path, own).ok().map(Arc::new);
        self.volumes.insert(
            v.name.clone(),
            PodVolume {
                path,
                must_mount_ro: ro,
                size_limit,
                fd,
            },
        );
    }

    /// `<pod>/volumes/<plugin>/<name>`, mode 0777 like emptyDir's setupDir (the plugin dirs
    /// 0750, like makePodDataDirs).
    fn plugin_dir(&self, plugin: &str, name: &str) -> Result<PathBuf, String> {
        let parent = self.dir.join(plugin);
        let mut b = std::fs::DirBuilder::new();
        b.recursive(true);
        std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o750);
        b.create(&parent)
            .map_err(|e| format!("mkdir {}: {e}", parent.display()))?;
        let path = parent.join(name);
        std::fs::create_dir_all(&path).map_err(|e| format!("mkdir {}: {e}", path.display()))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o777))
            .map_err(|e| format!("chmod {}: {e}", path.display()))?;
        Ok(path)
    }

    /// Mounts a tmpfs of `size` bytes on `path` (its root keeps tmpfs's 1777, as upstream),
    /// recorded in the journal first.
    fn mount_tmpfs(&mut self, path: &Path, size: i64) -> Result<(), String> {
        if self.adopt_mounts.iter().any(|m| m == path)
            && crate::mountinfo::mount_points().iter().any(|m| m == path)
        {
            self.tmpfs.push(path.to_path_buf());
            return Ok(());
        }
        if let Some(j) = &self.journal {
            j.before_mount(path)?;
        }
        let opts = format!("size={size}");
        let mounted = nix::mount::mount(
            Some("tmpfs"),
            path,
            Some("tmpfs"),
            nix::mount::MsFlags::MS_NOSUID | nix::mount::MsFlags::MS_NODEV,
            Some(opts.as_str()),
        );
        if mounted.is_err() {
            if let Some(j) = &self.journal {
                j.after_unmount(path);
            }
        }
        match mounted {
            Ok(()) => {
                self.tmpfs.push(path.to_path_buf());
                Ok(())
            }
            Err(nix::errno::Errno::EPERM) => {
                let msg = format!(
                    "cannot mount tmpfs on {} (not permitted): the volume is a plain directory on disk, without a size bound",
                    path.display()
                );
                tracing::warn!("{msg}");
                self.warnings.push(("TmpfsUnavailable".into(), msg));
                Ok(())
            }
            Err(e) => Err(format!("mount tmpfs on {}: {e}", path.display())),
        }
    }

    /// Warning events collected during setup (reason, message).
    pub fn warnings(&self) -> &[(String, String)] {
        &self.warnings
    }

    /// Host path of volume `name`.
    pub fn path(&self, name: &str) -> Option<&Path> {
        self.volumes.get(name).map(|v| v.path.as_path())
    }

    /// The container's `volumeMounts` as mount specs (kubelet `makeMounts`): subPath and
    /// subPathExpr (expanded with the container's env), readOnly, mountPropagation. Errors
    /// are `CreateContainerConfigError`s.
    pub fn mounts_for(
        &self,
        c: &Container,
        env: &[(String, String)],
    ) -> Result<Vec<MountSpec>, StartError> {
        let mut out = Vec::new();
        for m in c.volume_mounts.iter().flatten() {
            let vol = self.volumes.get(&m.name).ok_or_else(|| {
                StartError::Config(format!(
                    "cannot find volume {:?} to mount into container {:?}",
                    m.name, c.name
                ))
            })?;
            let mut sub = m.sub_path.clone().unwrap_or_default();
            if let Some(expr) = m.sub_path_expr.as_deref().filter(|e| !e.is_empty()) {
                sub = expand_sub_path_expr(expr, env).map_err(StartError::Config)?;
            }
            let root = match &vol.fd {
                Some(fd) => fd.clone(),
                None => Arc::new(fdwalk::open_path(&vol.path, false).map_err(|e| {
                    StartError::io(
                        format!("opening volume {:?} at {}", m.name, vol.path.display()),
                        e,
                    )
                })?),
            };
            let (source, source_fd) = if sub.is_empty() {
                (vol.path.clone(), root)
            } else {
                let (fd, path) = subpath::prepare(root.as_fd(), &vol.path, &sub, &m.name, &c.name)
                    .map_err(StartError::Config)?;
                (path, Arc::new(fd))
            };
            let propagation = match m.mount_propagation.as_deref() {
                Some("HostToContainer") => Propagation::HostToContainer,
                Some("Bidirectional") => Propagation::Bidirectional,
                _ => Propagation::Private,
            };
            let read_only = m.read_only.unwrap_or(false) || vol.must_mount_ro;
            out.push(MountSpec {
                source,
                target: PathBuf::from(&m.mount_path),
                read_only,
                propagation,
                source_fd: Some(HeldFd(source_fd)),
                recursive_read_only: recursive_read_only(m, &c.name)?,
            });
        }
        Ok(out)
    }

    /// What to watch for `sizeLimit` eviction, if any disk emptyDir has a limit. Independent
    /// of the sandbox's lifetime (after teardown the usage is simply 0).
    pub fn size_watch(&self) -> Option<SizeWatch> {
        let limits: Vec<_> = self
            .volumes
            .iter()
            .filter_map(|(name, v)| {
                let (bytes, text) = v.size_limit.clone()?;
                Some((name.clone(), v.path.clone(), bytes, text))
            })
            .collect();
        (!limits.is_empty()).then_some(SizeWatch { limits })
    }

    /// Unmounts one of skiff's tmpfs; once it is gone (EINVAL: not a mount point any more)
    /// the journal forgets it, else it stays recorded and the next start of skiff retries.
    fn unmount_tmpfs(&self, p: &Path) -> nix::Result<()> {
        match nix::mount::umount2(p, nix::mount::MntFlags::MNT_DETACH) {
            Ok(()) | Err(nix::errno::Errno::EINVAL) => {
                if let Some(j) = &self.journal {
                    j.after_unmount(p);
                }
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Unmounts skiff's tmpfs mounts and removes the pod's volume directories, never crossing
    /// into another filesystem (a hostPath is not under the pod dir; a mount left inside a
    /// volume is left alone and reported).
    /// Dropped, nothing is torn down (a persistent sandbox: the next process adopts it).
    pub fn keep(&mut self) {
        self.kept = true;
    }

    pub fn teardown(&mut self) {
        for p in std::mem::take(&mut self.tmpfs) {
            if let Err(e) = self.unmount_tmpfs(&p) {
                tracing::warn!("unmounting {}: {e}", p.display());
            }
        }
        if std::fs::symlink_metadata(&self.dir).is_ok() {
            if let Err(e) = fdwalk::remove_tree(&self.dir) {
                tracing::warn!("removing pod volumes {}: {e}", self.dir.display());
            }
        }
        self.volumes.clear();
    }
}

/// Dropped without [`PodVolumes::teardown`] (a panic unwinding through the pod worker, a
/// sandbox failing half-way): tear down now, so no tmpfs outlives its record.
impl Drop for PodVolumes {
    fn drop(&mut self) {
        if !self.kept && (!self.tmpfs.is_empty() || !self.volumes.is_empty()) {
            self.teardown();
        }
    }
}

#[cfg(test)]
mod journal_tests;

/// Disk emptyDirs with a `sizeLimit`: (name, path, bytes, limit as written).
#[derive(Debug, Clone)]
pub struct SizeWatch {
    limits: Vec<(String, PathBuf, i64, String)>,
}

impl SizeWatch {
    /// How often the kubelet's eviction manager looks is 10 s (`evictionMonitoringPeriod`);
    /// skiff looks more often, the walk being cheap for the volumes of one pod.
    pub const PERIOD: std::time::Duration = std::time::Duration::from_secs(2);

    /// The first volume whose usage exceeds its limit, as the kubelet's eviction message
    /// (`emptyDirLimitEviction` in `pkg/kubelet/eviction/eviction_manager.go`).
    pub fn exceeded(&self) -> Option<String> {
        self.limits.iter().find_map(|(name, path, limit, text)| {
            (fdwalk::disk_usage(path) > *limit)
                .then(|| format!("Usage of EmptyDir volume {name:?} exceeds the limit {text:?}. "))
        })
    }
}

/// What volume setup needs to know about the pod.
pub(crate) struct SetupCtx<'a> {
    pub pod: &'a Pod,
    pub objects: &'a PodObjects,
    pub node: &'a NodeAllocatable,
    pub pod_memory_limit: Option<i64>,
}

impl SetupCtx<'_> {
    /// `calculateEmptyDirMemorySize`: node memory, lowered to the pod's memory limit, lowered
    /// to the volume's sizeLimit.
    fn tmpfs_size(&self, size_limit: Option<i64>) -> i64 {
        let mut size = self.node.memory_bytes;
        if let Some(l) = self.pod_memory_limit.filter(|l| *l > 0 && *l <= size) {
            size = l;
        }
        if let Some(l) = size_limit.filter(|l| *l > 0 && *l <= size) {
            size = l;
        }
        size
    }
}

/// `ExpandContainerVolumeMounts`: `$(VAR)` from the container's env; a missing or empty
/// variable is an error.
pub fn expand_sub_path_expr(expr: &str, env: &[(String, String)]) -> Result<String, String> {
    let map: BTreeMap<&str, &str> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let missing = std::cell::RefCell::new(std::collections::BTreeSet::new());
    let out = crate::expand::expand(expr, |name| match map.get(name) {
        Some(v) if !v.is_empty() => Some(*v),
        _ => {
            missing.borrow_mut().insert(name.to_string());
            Some("")
        }
    });
    let missing = missing.into_inner();
    if !missing.is_empty() {
        return Err(format!(
            "missing value for {}",
            missing.into_iter().collect::<Vec<_>>().join(", ")
        ));
    }
    Ok(out)
}

/// `recursiveReadOnly` of a volumeMount, by the kubelet's rules (`makeMounts` in
/// `pkg/kubelet/kubelet_pods.go`): `Enabled` and `IfPossible` need `readOnly: true` and
/// propagation `None`; both mean a recursive read-only mount where the kernel has
/// `mount_setattr` (5.12+). Without it `Enabled` is refused with the kubelet's text (never a
/// silently writable sub-mount) and `IfPossible` falls back to a plain read-only mount.
fn recursive_read_only(
    m: &k8s_openapi::api::core::v1::VolumeMount,
    container: &str,
) -> Result<bool, StartError> {
    match m.recursive_read_only.as_deref() {
        None | Some("Disabled") => Ok(false),
        Some(v @ ("Enabled" | "IfPossible")) => {
            if m.read_only != Some(true) {
                return Err(StartError::Config(format!(
                    "mount {:?}: RRO is specified, but Mount is not read-only",
                    m.name
                )));
            }
            if let Some(p) = m.mount_propagation.as_deref().filter(|p| *p != "None") {
                return Err(StartError::Config(format!(
                    "mount {:?}: RRO is specified, but Mount propagation is not None ({p})",
                    m.name
                )));
            }
            if !crate::sys::mount::mount_setattr_supported() {
                if v == "Enabled" {
                    return Err(StartError::Config(format!(
                        "mount {:?}: RRO is specified, but the runtime does not support RRO",
                        m.name
                    )));
                }
                tracing::debug!(%container, mount = %m.name, "recursiveReadOnly IfPossible: not supported by the kernel");
                return Ok(false);
            }
            Ok(true)
        }
        Some(other) => Err(StartError::Config(format!(
            "mount {:?}: unknown recursiveReadOnly {other:?}",
            m.name
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sub_path_expr_expands_env_and_requires_values() {
        let env = vec![
            ("POD".to_string(), "web".to_string()),
            ("EMPTY".to_string(), String::new()),
        ];
        assert_eq!(
            expand_sub_path_expr("logs/$(POD)", &env).unwrap(),
            "logs/web"
        );
        assert_eq!(
            expand_sub_path_expr("$(NOPE)/$(EMPTY)/$(POD)", &env).unwrap_err(),
            "missing value for EMPTY, NOPE"
        );
    }

    #[test]
    fn recursive_read_only_follows_the_kubelet_rules() {
        let vm = |rro: &str, ro: Option<bool>, prop: Option<&str>| {
            k8s_openapi::api::core::v1::VolumeMount {
                name: "v".into(),
                mount_path: "/v".into(),
                read_only: ro,
                mount_propagation: prop.map(String::from),
                recursive_read_only: Some(rro.into()),
                ..Default::default()
            }
        };
        assert!(!recursive_read_only(&vm("Disabled", None, None), "c").unwrap());
        assert!(recursive_read_only(&vm("Enabled", Some(true), None), "c").unwrap());
        assert!(recursive_read_only(&vm("IfPossible", Some(true), Some("None")), "c").unwrap());
        assert!(recursive_read_only(&vm("Enabled", Some(false), None), "c").is_err());
        assert!(
            recursive_read_only(&vm("Enabled", Some(true), Some("HostToContainer")), "c").is_err()
        );
    }
}
