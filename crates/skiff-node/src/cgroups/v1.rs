//! cgroup v1 driver: one directory per hierarchy (memory, cpu, cpuacct,
//! pids, freezer), each nested under skiff's own cgroup in that hierarchy.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::fsutil::{self, under};
use super::layout::CgroupLayout;
use super::{CgroupDriver, CgroupError, CgroupLimits, CgroupSettings, CgroupVersion, OomWatcher};
use super::{KUBEPODS, MIN_SHARES_LIMITS};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Memory,
    Cpu,
    Cpuacct,
    Pids,
    Freezer,
    Devices,
}

#[derive(Debug, Clone)]
struct Hier {
    role: Role,
    /// skiff's own cgroup in this hierarchy.
    own: PathBuf,
    /// `own/<parent>`: where `kubepods` lives.
    base: PathBuf,
}

/// The cgroup v1 driver.
#[derive(Debug)]
pub struct V1Driver {
    settings: CgroupSettings,
    /// Memory first (the primary hierarchy), then cpu, cpuacct, pids, freezer.
    hier: Vec<Hier>,
    /// `memory.memsw.limit_in_bytes` exists (swap accounting on).
    memsw: bool,
}

impl V1Driver {
    /// Uses the v1 hierarchies of `layout`. `cpu` and `memory` are required;
    /// `pids` only when a pod pids limit is configured.
    pub fn new(layout: &CgroupLayout, settings: CgroupSettings) -> Result<Self, CgroupError> {
        settings.validate()?;
        let hybrid_note = if layout.unified().is_some() {
            " (the cgroup2 mount is not used for limits on a hybrid host)"
        } else {
            ""
        };
        let mut hier: Vec<Hier> = Vec::new();
        for (role, controller, required) in [
            (Role::Memory, "memory", true),
            (Role::Cpu, "cpu", true),
            (Role::Cpuacct, "cpuacct", false),
            (Role::Pids, "pids", settings.pod_pids_limit.is_some()),
            (Role::Freezer, "freezer", false),
            (Role::Devices, "devices", false),
        ] {
            match layout.v1_hierarchy(controller) {
                Some(h) => {
                    if hier.iter().any(|x| x.own == h.base) {
                        continue; // co-mounted (cpu,cpuacct)
                    }
                    hier.push(Hier {
                        role,
                        own: h.base.clone(),
                        base: under(&h.base, &settings.parent),
                    });
                }
                None if required => {
                    return Err(CgroupError::MissingController {
                        controller: static_name(controller),
                        detail: format!("no cgroup v1 hierarchy carries it{hybrid_note}"),
                    })
                }
                None if role == Role::Pids => {
                    tracing::warn!("cgroup v1 pids controller missing: pod pids.max not set")
                }
                None => tracing::debug!(controller, "cgroup v1 controller missing (optional)"),
            }
        }
        let memsw = hier
            .first()
            .is_some_and(|h| h.own.join("memory.memsw.limit_in_bytes").exists());
        Ok(V1Driver {
            settings,
            hier,
            memsw,
        })
    }

    fn dir(&self, role: Role, rel: &Path) -> Option<PathBuf> {
        self.hier
            .iter()
            .find(|h| h.role == role)
            .map(|h| under(&h.base, rel))
    }

    /// Whether swap accounting (`memory.memsw.*`) is written too.
    pub fn memsw(&self) -> bool {
        self.memsw
    }

    fn apply(&self, rel: &Path, l: &CgroupLimits) -> Result<(), CgroupError> {
        if let Some(cpu) = self.dir(Role::Cpu, rel) {
            if let Some(shares) = l.cpu_shares {
                fsutil::write(&cpu.join("cpu.shares"), &shares.to_string())?;
            }
            // Period before quota (runc's order).
            if let Some(period) = l.cpu_period_us {
                fsutil::write(&cpu.join("cpu.cfs_period_us"), &period.to_string())?;
            }
            if let Some(quota) = l.cpu_quota_us {
                fsutil::write(&cpu.join("cpu.cfs_quota_us"), &quota.to_string())?;
            }
        }
        if let (Some(mem), Some(bytes)) = (self.dir(Role::Memory, rel), l.memory_limit_bytes) {
            self.set_memory(&mem, bytes)?;
        }
        if let (Some(pids), Some(max)) = (self.dir(Role::Pids, rel), l.pids_max) {
            let v = max.map_or_else(|| "max".to_string(), |n| n.to_string());
            fsutil::write(&pids.join("pids.max"), &v)?;
        }
        if let (Some(dev), Some(rules)) = (self.dir(Role::Devices, rel), l.devices) {
            // Deny everything, then allow the list (runc's order for a v1 device cgroup).
            fsutil::write(&dev.join("devices.deny"), "a")?;
            for r in rules {
                fsutil::write(&dev.join("devices.allow"), &r.v1_line())?;
            }
        }
        Ok(())
    }

    /// The kernel keeps `memsw.limit ≥ limit`: when raising, memsw goes
    /// first; when lowering (a new cgroup starts unlimited), limit first.
    fn set_memory(&self, dir: &Path, bytes: i64) -> Result<(), CgroupError> {
        let limit = dir.join("memory.limit_in_bytes");
        let value = bytes.to_string();
        if !self.memsw {
            return fsutil::write(&limit, &value);
        }
        let memsw = dir.join("memory.memsw.limit_in_bytes");
        let current = std::fs::read_to_string(&limit)
            .ok()
            .and_then(|s| s.trim().parse::<i64>().ok())
            .unwrap_or(i64::MAX);
        if bytes > current {
            fsutil::write(&memsw, &value)?;
            fsutil::write(&limit, &value)
        } else {
            fsutil::write(&limit, &value)?;
            fsutil::write(&memsw, &value)
        }
    }
}

fn static_name(c: &str) -> &'static str {
    match c {
        "memory" => "memory",
        "cpu" => "cpu",
        "pids" => "pids",
        "cpuacct" => "cpuacct",
        _ => "freezer",
    }
}

impl CgroupDriver for V1Driver {
    fn version(&self) -> CgroupVersion {
        CgroupVersion::V1
    }

    fn settings(&self) -> &CgroupSettings {
        &self.settings
    }

    fn dirs(&self, rel: &Path) -> Vec<PathBuf> {
        self.hier.iter().map(|h| under(&h.base, rel)).collect()
    }

    fn own_dirs(&self) -> Vec<PathBuf> {
        self.hier.iter().map(|h| h.own.clone()).collect()
    }

    fn ensure_qos(&self) -> Result<(), CgroupError> {
        for h in &self.hier {
            fsutil::mkdir_all(&h.own, &self.settings.parent)?;
        }
        let kubepods = PathBuf::from(KUBEPODS);
        self.create(&kubepods, &CgroupLimits::default())?;
        self.create(&kubepods.join("burstable"), &CgroupLimits::default())?;
        self.create(&kubepods.join("besteffort"), &MIN_SHARES_LIMITS)?;
        Ok(())
    }

    fn create(&self, rel: &Path, limits: &CgroupLimits) -> Result<(), CgroupError> {
        let mut made = Vec::new();
        let result = (|| {
            for d in self.dirs(rel) {
                if fsutil::mkdir(&d)? {
                    made.push(d);
                }
            }
            self.apply(rel, limits)
        })();
        if result.is_err() {
            let deadline = Instant::now() + Duration::from_millis(100);
            for d in made.iter().rev() {
                let _ = fsutil::rmdir(d, deadline);
            }
        }
        result
    }

    fn kill(&self, rel: &Path) -> Result<(), CgroupError> {
        if self.pids(rel).is_empty() {
            return Ok(());
        }
        let freezer = self.dir(Role::Freezer, rel).filter(|d| d.is_dir());
        let Some(freezer) = freezer else {
            fsutil::kill_pids(&self.pids(rel));
            return Ok(());
        };
        let state = freezer.join("freezer.state");
        fsutil::write(&state, "FROZEN")?;
        // FREEZING → FROZEN; a frozen tree cannot fork away from the kill.
        let deadline = Instant::now() + Duration::from_millis(100);
        let frozen = fsutil::wait_until(deadline, || {
            std::fs::read_to_string(&state).is_ok_and(|s| s.trim() == "FROZEN")
        });
        if !frozen {
            tracing::debug!(dir = %freezer.display(), "freezer did not reach FROZEN; killing anyway");
        }
        fsutil::kill_pids(&self.pids(rel));
        // Thaw so the SIGKILLs are delivered.
        fsutil::write(&state, "THAWED")
    }

    fn oom_watcher(&self, rel: &Path) -> Result<OomWatcher, CgroupError> {
        match self.dir(Role::Memory, rel) {
            Some(d) => OomWatcher::v1(&d),
            None => Err(CgroupError::MissingController {
                controller: "memory",
                detail: "no v1 memory hierarchy".into(),
            }),
        }
    }
}
