//! cgroup v2 driver: one directory per cgroup on the unified hierarchy,
//! below skiff's own cgroup, with `cpu`, `memory` (and `pids`) enabled in
//! every ancestor's `cgroup.subtree_control`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;

use super::fsutil::{self, under};
use super::layout::{read_set, UnifiedHierarchy};
use super::{CgroupDriver, CgroupError, CgroupLimits, CgroupSettings, CgroupVersion, OomWatcher};
use super::{KUBEPODS, MIN_SHARES_LIMITS};

/// Leaf skiff moves itself into when its own cgroup must stay process-free.
pub const SUPERVISOR_LEAF: &str = "skiff.supervisor";

/// The cgroup v2 driver.
#[derive(Debug)]
pub struct V2Driver {
    settings: CgroupSettings,
    /// skiff's own cgroup directory.
    own: PathBuf,
    /// `own/<parent>`: where `kubepods` lives.
    base: PathBuf,
    /// Controllers enabled for children on the way down (available ∩ {cpu, memory, pids}).
    wanted: BTreeSet<String>,
}

impl V2Driver {
    /// `cpu` and `memory` must be in our cgroup's `cgroup.controllers`;
    /// `pids` only when a pod pids limit is configured.
    pub fn new(u: &UnifiedHierarchy, settings: CgroupSettings) -> Result<Self, CgroupError> {
        settings.validate()?;
        let fresh = read_set(&u.base.join("cgroup.controllers"));
        let available = if fresh.is_empty() {
            u.available.clone()
        } else {
            fresh
        };
        let mut wanted = BTreeSet::new();
        for (controller, required) in [
            ("cpu", true),
            ("memory", true),
            ("pids", settings.pod_pids_limit.is_some()),
        ] {
            if available.contains(controller) {
                wanted.insert(controller.to_string());
            } else if required {
                return Err(CgroupError::MissingController {
                    controller,
                    detail: format!(
                        "{} lists {:?}",
                        u.base.join("cgroup.controllers").display(),
                        available
                    ),
                });
            } else {
                tracing::warn!("cgroup v2 pids controller not available: pod pids.max not set");
            }
        }
        Ok(V2Driver {
            base: under(&u.base, &settings.parent),
            own: u.base.clone(),
            settings,
            wanted,
        })
    }

    /// Controllers this driver enables and writes.
    pub fn controllers(&self) -> &BTreeSet<String> {
        &self.wanted
    }

    /// Enables the wanted controllers for the children of `dir`.
    fn enable(&self, dir: &Path) -> Result<(), CgroupError> {
        let file = dir.join("cgroup.subtree_control");
        let current = read_set(&file);
        if self.wanted.iter().all(|c| current.contains(c)) {
            return Ok(());
        }
        // All of them in one write: idempotent on the kernel, and a fixture
        // file ends up listing the full set.
        let line = self
            .wanted
            .iter()
            .map(|c| format!("+{c}"))
            .collect::<Vec<_>>()
            .join(" ");
        match fsutil::write(&file, &line) {
            Ok(()) => Ok(()),
            Err(CgroupError::Io { source, .. })
                if source.raw_os_error() == Some(Errno::EBUSY as i32) =>
            {
                if dir == self.own && self.settings.move_self_to_leaf {
                    self.move_self_to_leaf()?;
                    fsutil::write(&file, &line).map_err(|e| match e {
                        CgroupError::Io { ref source, .. }
                            if source.raw_os_error() == Some(Errno::EBUSY as i32) =>
                        {
                            CgroupError::InternalProcesses {
                                path: dir.to_path_buf(),
                            }
                        }
                        other => other,
                    })
                } else {
                    Err(CgroupError::InternalProcesses {
                        path: dir.to_path_buf(),
                    })
                }
            }
            Err(e) => Err(e),
        }
    }

    fn move_self_to_leaf(&self) -> Result<(), CgroupError> {
        let leaf = self.own.join(SUPERVISOR_LEAF);
        fsutil::mkdir(&leaf)?;
        fsutil::write(&leaf.join("cgroup.procs"), &std::process::id().to_string())?;
        tracing::info!(leaf = %leaf.display(), "moved skiff into a leaf cgroup to enable controllers below its own cgroup");
        Ok(())
    }

    fn apply(&self, dir: &Path, l: &CgroupLimits) -> Result<(), CgroupError> {
        if self.wanted.contains("cpu") {
            if let Some(w) = l.cpu_weight {
                fsutil::write(&dir.join("cpu.weight"), &w.to_string())?;
            }
            if let Some(max) = l.cpu_max() {
                fsutil::write(&dir.join("cpu.max"), &max)?;
            }
        }
        if self.wanted.contains("memory") {
            if let Some(b) = l.memory_limit_bytes {
                fsutil::write(&dir.join("memory.max"), &b.to_string())?;
            }
            if l.oom_group {
                fsutil::write(&dir.join("memory.oom.group"), "1")?;
            }
        }
        if let (true, Some(max)) = (self.wanted.contains("pids"), l.pids_max) {
            let v = max.map_or_else(|| "max".to_string(), |n| n.to_string());
            fsutil::write(&dir.join("pids.max"), &v)?;
        }
        if let Some(rules) = l.devices {
            attach_device_filter(dir, rules);
        }
        Ok(())
    }
}

impl CgroupDriver for V2Driver {
    fn version(&self) -> CgroupVersion {
        CgroupVersion::V2
    }

    fn settings(&self) -> &CgroupSettings {
        &self.settings
    }

    fn dirs(&self, rel: &Path) -> Vec<PathBuf> {
        vec![under(&self.base, rel)]
    }

    fn own_dirs(&self) -> Vec<PathBuf> {
        vec![self.own.clone()]
    }

    fn ensure_qos(&self) -> Result<(), CgroupError> {
        let mut dir = self.own.clone();
        self.enable(&dir)?;
        for c in self.settings.parent.components() {
            dir.push(c);
            fsutil::mkdir(&dir)?;
            self.enable(&dir)?;
        }
        let kubepods = PathBuf::from(KUBEPODS);
        self.create(&kubepods, &CgroupLimits::default())?;
        self.create(&kubepods.join("burstable"), &CgroupLimits::default())?;
        self.create(&kubepods.join("besteffort"), &MIN_SHARES_LIMITS)?;
        Ok(())
    }

    fn create(&self, rel: &Path, limits: &CgroupLimits) -> Result<(), CgroupError> {
        let dir = under(&self.base, rel);
        if let Some(parent) = dir.parent() {
            self.enable(parent)?;
        }
        let made = fsutil::mkdir(&dir)?;
        let result = self.apply(&dir, limits);
        if result.is_err() && made {
            let _ = fsutil::rmdir(&dir, Instant::now() + Duration::from_millis(100));
        }
        result
    }

    fn kill(&self, rel: &Path) -> Result<(), CgroupError> {
        let dir = under(&self.base, rel);
        if self.pids(rel).is_empty() {
            return Ok(());
        }
        let kill_file = dir.join("cgroup.kill");
        if kill_file.exists() {
            return fsutil::write(&kill_file, "1");
        }
        // Kernels before 5.14: freeze, kill, thaw.
        let freeze = dir.join("cgroup.freeze");
        let frozen = freeze.exists() && fsutil::write(&freeze, "1").is_ok();
        fsutil::kill_pids(&self.pids(rel));
        if frozen {
            fsutil::write(&freeze, "0")?;
        }
        Ok(())
    }

    fn oom_watcher(&self, rel: &Path) -> Result<OomWatcher, CgroupError> {
        OomWatcher::v2(&under(&self.base, rel))
    }
}

/// The container's device rules as a BPF program on its cgroup (`devices::bpf`). Only on a
/// real cgroup2 filesystem (test fixtures are plain directories); where the kernel refuses
/// (no `CONFIG_CGROUP_BPF`), skiff says so once and goes on without the filter.
fn attach_device_filter(dir: &Path, rules: &[super::devices::DeviceRule]) {
    use std::os::fd::AsFd;
    let Ok(fd) = std::fs::File::open(dir) else {
        return;
    };
    let cgroup2 = nix::sys::statfs::fstatfs(&fd)
        .is_ok_and(|st| st.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC);
    if !cgroup2 {
        return;
    }
    if let Err(e) = super::devices::bpf::attach(fd.as_fd(), rules) {
        static SAID: std::sync::Once = std::sync::Once::new();
        SAID.call_once(|| {
            tracing::warn!(error = %e, "cannot attach the device filter to container cgroups; device access is not restricted (said once)")
        });
    }
}
