//! Discovery: which cgroup hierarchies this host has, and where skiff itself
//! sits in each of them.
//!
//! Input is the text of `/proc/self/mountinfo` and `/proc/self/cgroup` plus a
//! root path prepended to every mount point (`/` for the real system, a temp
//! dir for fixtures), so everything here is testable without a kernel.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use super::CgroupError;

/// One cgroup v1 hierarchy (one mount of `cgroup` with its controllers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V1Hierarchy {
    /// Controllers bound to this hierarchy (`cpu`, `cpuacct`, …; `name=systemd`
    /// for named hierarchies).
    pub controllers: BTreeSet<String>,
    /// Mount point (with the root path prepended).
    pub mount: PathBuf,
    /// Our own cgroup in this hierarchy as `/proc/self/cgroup` shows it.
    pub own: String,
    /// The directory of our own cgroup: `mount` + `own` relative to the mount's root.
    pub base: PathBuf,
}

impl V1Hierarchy {
    pub fn has(&self, controller: &str) -> bool {
        self.controllers.contains(controller)
    }
}

/// The cgroup2 (unified) hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnifiedHierarchy {
    /// Mount point (with the root path prepended).
    pub mount: PathBuf,
    /// Our own cgroup (`0::<path>`).
    pub own: String,
    /// The directory of our own cgroup.
    pub base: PathBuf,
    /// `cgroup.controllers` of our own cgroup: what we may enable below it.
    pub available: BTreeSet<String>,
    /// `cgroup.subtree_control` of our own cgroup: what is enabled for children.
    pub enabled: BTreeSet<String>,
}

/// What the host offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CgroupLayout {
    /// Pure cgroup v2.
    V2(UnifiedHierarchy),
    /// Only v1 hierarchies.
    V1(Vec<V1Hierarchy>),
    /// v1 hierarchies for (some) controllers plus a cgroup2 mount (this
    /// machine: v2 at `/sys/fs/cgroup/unified` without controllers).
    Hybrid {
        v1: Vec<V1Hierarchy>,
        unified: UnifiedHierarchy,
    },
}

impl CgroupLayout {
    /// Reads `/proc/self/mountinfo` and `/proc/self/cgroup` of this process.
    pub fn from_proc() -> Result<Self, CgroupError> {
        let read = |p: &str| {
            fs::read_to_string(p).map_err(|source| CgroupError::Io {
                op: "reading",
                path: PathBuf::from(p),
                source,
            })
        };
        Self::discover(
            &read("/proc/self/mountinfo")?,
            &read("/proc/self/cgroup")?,
            Path::new("/"),
        )
    }

    /// Builds the layout from the two texts; `root` is prepended to every
    /// mount point (and the cgroup2 controller files are read below it).
    pub fn discover(mountinfo: &str, proc_cgroup: &str, root: &Path) -> Result<Self, CgroupError> {
        let own = parse_proc_cgroup(proc_cgroup);
        let mut v1 = Vec::new();
        let mut unified = None;
        for m in crate::mountinfo::parse(mountinfo) {
            let mount = rebase(root, &m.mount_point);
            let mount_root = m.root.to_string_lossy();
            match m.fstype.as_str() {
                "cgroup2" if unified.is_none() => {
                    let Some(own_path) = own
                        .iter()
                        .find(|(h, _)| h.is_empty())
                        .map(|(_, p)| p.clone())
                    else {
                        continue;
                    };
                    let base = base_dir(&mount, &mount_root, &own_path);
                    let available = read_set(&base.join("cgroup.controllers"));
                    let enabled = read_set(&base.join("cgroup.subtree_control"));
                    unified = Some(UnifiedHierarchy {
                        mount,
                        own: own_path,
                        base,
                        available,
                        enabled,
                    });
                }
                "cgroup" => {
                    let controllers: BTreeSet<String> = m
                        .super_options
                        .split(',')
                        .filter(|o| is_v1_controller_option(o))
                        .map(str::to_string)
                        .collect();
                    if controllers.is_empty() {
                        continue;
                    }
                    // The same hierarchy mounted twice (bind mounts): keep the first.
                    if v1
                        .iter()
                        .any(|h: &V1Hierarchy| h.controllers == controllers)
                    {
                        continue;
                    }
                    let Some(own_path) = own
                        .iter()
                        .find(|(h, _)| {
                            !h.is_empty()
                                && h.split(',').map(str::to_string).collect::<BTreeSet<_>>()
                                    == controllers
                        })
                        .map(|(_, p)| p.clone())
                    else {
                        tracing::debug!(mount = %mount.display(), "v1 hierarchy not in /proc/self/cgroup; skipped");
                        continue;
                    };
                    let base = base_dir(&mount, &mount_root, &own_path);
                    v1.push(V1Hierarchy {
                        controllers,
                        mount,
                        own: own_path,
                        base,
                    });
                }
                _ => {}
            }
        }
        let v1_has_controllers = v1
            .iter()
            .any(|h| h.controllers.iter().any(|c| !c.starts_with("name=")));
        match (v1_has_controllers, unified) {
            (true, Some(unified)) => Ok(CgroupLayout::Hybrid { v1, unified }),
            (true, None) => Ok(CgroupLayout::V1(v1)),
            (false, Some(unified)) => Ok(CgroupLayout::V2(unified)),
            (false, None) => Err(CgroupError::NoCgroups(
                "no cgroup or cgroup2 mount with controllers in /proc/self/mountinfo".into(),
            )),
        }
    }

    /// The v1 hierarchies (empty for pure v2).
    pub fn v1(&self) -> &[V1Hierarchy] {
        match self {
            CgroupLayout::V1(v1) | CgroupLayout::Hybrid { v1, .. } => v1,
            CgroupLayout::V2(_) => &[],
        }
    }

    /// The cgroup2 hierarchy, if mounted.
    pub fn unified(&self) -> Option<&UnifiedHierarchy> {
        match self {
            CgroupLayout::V2(u) | CgroupLayout::Hybrid { unified: u, .. } => Some(u),
            CgroupLayout::V1(_) => None,
        }
    }

    /// The v1 hierarchy that carries `controller`.
    pub fn v1_hierarchy(&self, controller: &str) -> Option<&V1Hierarchy> {
        self.v1().iter().find(|h| h.has(controller))
    }
}

/// v1 super options that name a controller (`rw`, `relatime`, … do not).
fn is_v1_controller_option(o: &str) -> bool {
    const KNOWN: &[&str] = &[
        "cpu",
        "cpuacct",
        "cpuset",
        "memory",
        "devices",
        "freezer",
        "net_cls",
        "net_prio",
        "blkio",
        "perf_event",
        "hugetlb",
        "pids",
        "rdma",
        "misc",
    ];
    KNOWN.contains(&o) || o.starts_with("name=")
}

/// `/proc/self/cgroup` as (controller list, path); the cgroup2 line has an
/// empty controller list.
pub fn parse_proc_cgroup(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| {
            let mut it = l.splitn(3, ':');
            let _id = it.next()?;
            let controllers = it.next()?.to_string();
            let path = it.next()?.to_string();
            Some((controllers, path))
        })
        .collect()
}

/// `root` + absolute `path`.
fn rebase(root: &Path, path: &Path) -> PathBuf {
    root.join(path.strip_prefix("/").unwrap_or(path))
}

/// The directory of `own` in a hierarchy mounted at `mount` whose mount root
/// is `mount_root`. If `own` is not below the mount's root (a foreign cgroup
/// namespace), the mount itself is used.
fn base_dir(mount: &Path, mount_root: &str, own: &str) -> PathBuf {
    let root = mount_root.trim_end_matches('/');
    let rel = match own.strip_prefix(root) {
        Some(rest) if rest.is_empty() || rest.starts_with('/') || root.is_empty() => rest,
        _ => {
            tracing::warn!(
                own,
                mount_root,
                "own cgroup outside the mount's root; using the mount"
            );
            ""
        }
    };
    let rel = rel.trim_start_matches('/');
    if rel.is_empty() {
        mount.to_path_buf()
    } else {
        mount.join(rel)
    }
}

/// A whitespace-separated controller list (`cgroup.controllers`,
/// `cgroup.subtree_control`; a leading `+` is ignored). Missing file → empty.
pub fn read_set(path: &Path) -> BTreeSet<String> {
    fs::read_to_string(path)
        .map(|s| parse_set(&s))
        .unwrap_or_default()
}

pub(crate) fn parse_set(s: &str) -> BTreeSet<String> {
    s.split_whitespace()
        .map(|w| w.trim_start_matches('+').to_string())
        .filter(|w| !w.is_empty() && !w.starts_with('-'))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_dir_strips_mount_root() {
        let m = Path::new("/sys/fs/cgroup/memory");
        assert_eq!(
            base_dir(m, "/", "/a/b"),
            PathBuf::from("/sys/fs/cgroup/memory/a/b")
        );
        assert_eq!(
            base_dir(m, "/", "/"),
            PathBuf::from("/sys/fs/cgroup/memory")
        );
        assert_eq!(
            base_dir(m, "/docker/x", "/docker/x/sub"),
            PathBuf::from("/sys/fs/cgroup/memory/sub")
        );
        assert_eq!(
            base_dir(m, "/docker/x", "/other"),
            PathBuf::from("/sys/fs/cgroup/memory")
        );
    }

    #[test]
    fn parses_sets() {
        let s = parse_set("+cpu memory  +pids\n");
        assert_eq!(
            s.into_iter().collect::<Vec<_>>(),
            vec!["cpu", "memory", "pids"]
        );
    }
}
