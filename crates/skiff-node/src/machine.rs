//! What this machine has: its CPUs, its memory and the size of a filesystem. Read by the
//! `node` module for admission (A1) and by the downward API for missing limits, which both
//! must see the same values; CPUs and memory are read once per process.

use std::fs;
use std::path::Path;
use std::sync::OnceLock;

/// The machine's CPUs in millicores (online CPUs × 1000), read once.
pub fn milli_cpus() -> i64 {
    static V: OnceLock<i64> = OnceLock::new();
    *V.get_or_init(|| online_cpus() * 1000)
}

/// `MemTotal` in bytes, read once (0 when unreadable).
pub fn memory_bytes() -> i64 {
    static V: OnceLock<i64> = OnceLock::new();
    *V.get_or_init(mem_total)
}

fn online_cpus() -> i64 {
    std::thread::available_parallelism()
        .ok()
        .and_then(|n| i64::try_from(n.get()).ok())
        .unwrap_or(1)
}

fn mem_total() -> i64 {
    fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                let kib: i64 = l
                    .strip_prefix("MemTotal:")?
                    .trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse()
                    .ok()?;
                Some(kib.saturating_mul(1024))
            })
        })
        .unwrap_or(0)
}

/// Size in bytes of the filesystem holding `p` (or its nearest existing ancestor); 0 if none.
pub fn fs_size(p: &Path) -> i64 {
    let mut dir = Some(p);
    while let Some(d) = dir {
        if let Ok(st) = nix::sys::statvfs::statvfs(d) {
            let blocks = i64::try_from(st.blocks()).unwrap_or(i64::MAX);
            let size = i64::try_from(st.fragment_size()).unwrap_or(1);
            return blocks.saturating_mul(size);
        }
        dir = d.parent();
    }
    0
}

/// Whether skiff runs as root (image pods, cgroups and namespaces of their own need it).
pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}
