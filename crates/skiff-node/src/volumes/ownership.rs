//! fsGroup volume ownership, as `pkg/volume/volume_linux.go` SetVolumeOwnership does it: every
//! entry's group becomes the fsGroup (lchown), files get `rw-rw----` (read-only volumes
//! `r--r-----`) added to their mode, directories additionally the setgid bit and `x` for
//! owner and group, so that new files inherit the group. Symlinks are chowned, never chmodded
//! (chmod would go through to the target and undo the volume's modes).

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

const RW_MASK: u32 = 0o660;
const RO_MASK: u32 = 0o440;
const EXEC_MASK: u32 = 0o110;
const SETGID: u32 = 0o2000;

/// `fsGroupChangePolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangePolicy {
    Always,
    OnRootMismatch,
}

/// Applies `fs_group` to the tree under `dir` (not crossing into other filesystems).
pub fn set_volume_ownership(
    dir: &Path,
    fs_group: u32,
    read_only: bool,
    policy: ChangePolicy,
) -> Result<(), String> {
    if policy == ChangePolicy::OnRootMismatch && !root_mismatch(dir, fs_group, read_only) {
        return Ok(());
    }
    let root_dev = std::fs::symlink_metadata(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .dev();
    walk(dir, root_dev, fs_group, read_only)
}

/// `skipPermissionChange` for OnRootMismatch: the root already has the group, the setgid bit
/// and the mask's permissions.
fn root_mismatch(dir: &Path, fs_group: u32, read_only: bool) -> bool {
    let Ok(m) = std::fs::metadata(dir) else {
        return true;
    };
    let mask = if read_only { RO_MASK } else { RW_MASK } | EXEC_MASK;
    m.gid() != fs_group || m.mode() & SETGID == 0 || m.mode() & mask != mask
}

fn walk(path: &Path, root_dev: u64, gid: u32, read_only: bool) -> Result<(), String> {
    let m = std::fs::symlink_metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    change(path, &m, gid, read_only);
    if m.is_dir() && m.dev() == root_dev {
        let entries = std::fs::read_dir(path).map_err(|e| format!("{}: {e}", path.display()))?;
        for e in entries.flatten() {
            walk(&e.path(), root_dev, gid, read_only)?;
        }
    }
    Ok(())
}

/// `changeFilePermission`: failures are logged, not fatal, as upstream.
fn change(path: &Path, m: &std::fs::Metadata, gid: u32, read_only: bool) {
    if let Err(e) = std::os::unix::fs::lchown(path, None, Some(gid)) {
        tracing::warn!(path = %path.display(), "fsGroup: lchown failed: {e}");
    }
    if m.file_type().is_symlink() {
        return;
    }
    let mut mask = if read_only { RO_MASK } else { RW_MASK };
    if m.is_dir() {
        mask |= SETGID | EXEC_MASK;
    }
    let mode = (m.mode() & 0o7777) | mask;
    if let Err(e) = std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)) {
        tracing::warn!(path = %path.display(), "fsGroup: chmod failed: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fs_group_sets_group_and_setgid() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: fs_group_sets_group_and_setgid needs root (chown)");
            return;
        }
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("vol");
        std::fs::create_dir_all(d.join("sub")).unwrap();
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o777)).unwrap();
        std::fs::write(d.join("sub/f"), "x").unwrap();
        std::fs::set_permissions(d.join("sub/f"), std::fs::Permissions::from_mode(0o400)).unwrap();
        std::os::unix::fs::symlink("sub/f", d.join("link")).unwrap();
        set_volume_ownership(&d, 4321, false, ChangePolicy::Always).unwrap();
        let md = |p: &Path| std::fs::symlink_metadata(p).unwrap();
        assert_eq!(md(&d).gid(), 4321);
        assert_eq!(md(&d).mode() & 0o7777, 0o2777);
        assert_eq!(md(&d.join("sub")).mode() & 0o7777, 0o2775);
        assert_eq!(md(&d.join("sub/f")).mode() & 0o7777, 0o660);
        assert_eq!(md(&d.join("sub/f")).gid(), 4321);
        assert_eq!(md(&d.join("link")).gid(), 4321);

        // Read-only volumes (configMap, secret, …): r--r----- added.
        let r = t.path().join("ro");
        std::fs::create_dir(&r).unwrap();
        std::fs::write(r.join("s"), "x").unwrap();
        std::fs::set_permissions(r.join("s"), std::fs::Permissions::from_mode(0o400)).unwrap();
        set_volume_ownership(&r, 4321, true, ChangePolicy::Always).unwrap();
        assert_eq!(md(&r.join("s")).mode() & 0o7777, 0o440);
        assert_eq!(md(&r).mode() & 0o2000, 0o2000);
    }
}
