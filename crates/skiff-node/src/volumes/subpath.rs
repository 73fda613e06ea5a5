//! `volumeMounts[].subPath`: the kubelet's checks and creation (`makeMounts` in
//! `pkg/kubelet/kubelet_pods.go`, `pkg/volume/util/subpath/subpath_linux.go` SafeMakeDir and
//! doBindSubPath). A subPath is relative, has no `..` element, is created (with the volume
//! root's mode, never through a symlink) when missing, and after resolving symlinks must still
//! lie inside the volume. The detailed reason is logged; the user sees the kubelet's generic
//! text, which deliberately says nothing about the host filesystem.
//!
//! Difference from the kubelet: it pins the checked path with an fd and bind-mounts
//! `/proc/<pid>/fd/<n>`; skiff hands the resolved path to the child, so a container racing to
//! swap a checked directory for a symlink between the check and the mount is not prevented.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Resolves `sub` inside `volume` for volumeMount `mount` of container `container`.
pub fn prepare(volume: &Path, sub: &str, mount: &str, container: &str) -> Result<PathBuf, String> {
    if sub.starts_with('/') {
        return Err(format!(
            "error SubPath `{sub}` must not be an absolute path"
        ));
    }
    if sub.split('/').any(|p| p == "..") {
        return Err(format!(
            "unable to provision SubPath `{sub}`: must not contain '..'"
        ));
    }
    let host = volume.join(sub);
    if std::fs::metadata(&host).is_err() {
        if let Err(e) = safe_make_dir(volume, sub) {
            tracing::warn!(%container, %mount, "creating subPath {sub:?}: {e}");
            return Err(format!(
                "failed to create subPath directory for volumeMount {mount:?} of container {container:?}"
            ));
        }
    }
    let within = std::fs::canonicalize(volume).and_then(|root| {
        let real = std::fs::canonicalize(&host)?;
        Ok((real.starts_with(&root), real))
    });
    match within {
        Ok((true, real)) => Ok(real),
        Ok((false, real)) => {
            tracing::warn!(%container, %mount, "subpath {} not within volume path {}", real.display(), volume.display());
            Err(prepare_failed(mount, container))
        }
        Err(e) => {
            tracing::warn!(%container, %mount, "resolving subPath {sub:?}: {e}");
            Err(prepare_failed(mount, container))
        }
    }
}

fn prepare_failed(mount: &str, container: &str) -> String {
    format!("failed to prepare subPath for volumeMount {mount:?} of container {container:?}")
}

/// `SafeMakeDir`: creates the missing components of `sub` under `base` with the mode of
/// `base`, refusing to go through a symlink.
fn safe_make_dir(base: &Path, sub: &str) -> Result<(), String> {
    let mode = std::fs::metadata(base)
        .map_err(|e| e.to_string())?
        .permissions()
        .mode()
        & 0o7777;
    let mut cur = base.to_path_buf();
    for part in sub.split('/').filter(|p| !p.is_empty() && *p != ".") {
        cur.push(part);
        match std::fs::symlink_metadata(&cur) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(format!("{} is a symlink", cur.display()))
            }
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Err(format!("{} is not a directory", cur.display())),
            Err(_) => {
                std::fs::create_dir(&cur).map_err(|e| format!("{}: {e}", cur.display()))?;
                std::fs::set_permissions(&cur, std::fs::Permissions::from_mode(mode))
                    .map_err(|e| format!("{}: {e}", cur.display()))?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn subpath_is_created_with_the_volume_mode_and_resolved() {
        let t = tempfile::tempdir().unwrap();
        let vol = t.path().join("vol");
        std::fs::create_dir(&vol).unwrap();
        std::fs::set_permissions(&vol, std::fs::Permissions::from_mode(0o777)).unwrap();
        let p = prepare(&vol, "a/b", "m", "c").unwrap();
        assert_eq!(p, std::fs::canonicalize(vol.join("a/b")).unwrap());
        assert_eq!(
            std::fs::metadata(vol.join("a")).unwrap().mode() & 0o7777,
            0o777
        );
        // A symlink that stays inside the volume is fine (configMap keys are such links).
        std::os::unix::fs::symlink("a", vol.join("in")).unwrap();
        assert_eq!(
            prepare(&vol, "in/b", "m", "c").unwrap(),
            std::fs::canonicalize(vol.join("a/b")).unwrap()
        );
    }

    #[test]
    fn subpath_escapes_are_rejected() {
        let t = tempfile::tempdir().unwrap();
        let vol = t.path().join("vol");
        std::fs::create_dir(&vol).unwrap();
        assert_eq!(
            prepare(&vol, "../x", "m", "c").unwrap_err(),
            "unable to provision SubPath `../x`: must not contain '..'"
        );
        assert_eq!(
            prepare(&vol, "/etc", "m", "c").unwrap_err(),
            "error SubPath `/etc` must not be an absolute path"
        );
        std::os::unix::fs::symlink("/etc", vol.join("out")).unwrap();
        assert_eq!(
            prepare(&vol, "out", "m", "c").unwrap_err(),
            "failed to prepare subPath for volumeMount \"m\" of container \"c\""
        );
        // Never created through an escaping symlink.
        assert_eq!(
            prepare(&vol, "out/newdir", "m", "c").unwrap_err(),
            "failed to create subPath directory for volumeMount \"m\" of container \"c\""
        );
        assert!(!Path::new("/etc/newdir").exists());
    }
}
