//! The kubelet's AtomicWriter (`pkg/volume/util/atomic_writer.go`) for configMap, secret,
//! downwardAPI and projected volumes: the payload goes into a fresh timestamped directory
//! `..<YYYY_MM_DD_hh_mm_ss>.<n>`, the `..data` symlink is switched to it with one rename, and
//! every top-level entry of the payload is a symlink `<name> -> ..data/<name>`. A reader
//! therefore sees either the old or the new set of files, never a mix.

use std::collections::BTreeMap;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// One file of a volume's payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileProjection {
    pub data: Vec<u8>,
    /// Permission bits (`defaultMode` or the item's `mode`).
    pub mode: u32,
}

/// Relative path (cleaned) → file.
pub type Payload = BTreeMap<String, FileProjection>;

const DATA_DIR: &str = "..data";
const DATA_DIR_TMP: &str = "..data_tmp";
const MAX_PATH_LENGTH: usize = 4096;
const MAX_FILE_NAME_LENGTH: usize = 255;

/// `validatePath`: relative, no `..` element, not starting with `..`, length limits.
pub fn validate_path(p: &str) -> Result<(), String> {
    if p.is_empty() {
        return Err(format!("invalid path: must not be empty: {p:?}"));
    }
    if p.starts_with('/') {
        return Err(format!("invalid path: must be relative path: {p}"));
    }
    if p.len() > MAX_PATH_LENGTH {
        return Err(format!(
            "invalid path: must be less than or equal to {MAX_PATH_LENGTH} characters"
        ));
    }
    let items: Vec<&str> = p.split('/').collect();
    for item in &items {
        if *item == ".." {
            return Err(format!("invalid path: must not contain '..': {p}"));
        }
        if item.len() > MAX_FILE_NAME_LENGTH {
            return Err(format!(
                "invalid path: filenames must be less than or equal to {MAX_FILE_NAME_LENGTH} characters"
            ));
        }
    }
    if items[0].starts_with("..") && items[0].len() > 2 {
        return Err(format!("invalid path: must not start with '..': {p}"));
    }
    Ok(())
}

/// Go's `path.Clean` for the relative payload paths (`a//b/./c` → `a/b/c`).
pub fn clean(p: &str) -> String {
    let parts: Vec<&str> = Path::new(p)
        .components()
        .filter_map(|c| match c {
            Component::Normal(s) => s.to_str(),
            _ => None,
        })
        .collect();
    parts.join("/")
}

/// Writes `payload` into `target` (which exists) the AtomicWriter way. Errors name the
/// failing path.
pub fn write(target: &Path, payload: &Payload) -> Result<(), String> {
    for p in payload.keys() {
        validate_path(p)?;
    }
    let old_ts = std::fs::read_link(target.join(DATA_DIR)).ok();
    let ts_dir = new_timestamp_dir(target).map_err(|e| format!("{}: {e}", target.display()))?;
    let ts_name = ts_dir.file_name().map(PathBuf::from).unwrap_or_default();
    let written = write_payload(&ts_dir, payload)
        .and_then(|()| {
            let tmp = target.join(DATA_DIR_TMP);
            let _ = std::fs::remove_file(&tmp);
            std::os::unix::fs::symlink(&ts_name, &tmp)?;
            std::fs::rename(&tmp, target.join(DATA_DIR))
        })
        .map_err(|e| format!("writing {}: {e}", ts_dir.display()));
    if let Err(e) = written {
        let _ = std::fs::remove_dir_all(&ts_dir);
        return Err(e);
    }
    // User-visible entries: one symlink per top-level name, into ..data.
    for top in payload.keys().filter_map(|p| p.split('/').next()) {
        let link = target.join(top);
        if std::fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(Path::new(DATA_DIR).join(top), &link)
                .map_err(|e| format!("creating {}: {e}", link.display()))?;
        }
    }
    if let Some(old) = old_ts.filter(|o| *o != ts_name) {
        let _ = std::fs::remove_dir_all(target.join(old));
    }
    Ok(())
}

fn write_payload(dir: &Path, payload: &Payload) -> io::Result<()> {
    for (rel, file) in payload {
        let full = dir.join(rel);
        if let Some(parent) = full.parent() {
            std::fs::create_dir_all(parent)?;
            // os.MkdirAll(dir, os.ModePerm) under the kubelet's umask 022.
            set_mode(parent, 0o755)?;
        }
        std::fs::write(&full, &file.data)?;
        set_mode(&full, file.mode & 0o7777)?;
    }
    Ok(())
}

fn set_mode(p: &Path, mode: u32) -> io::Result<()> {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))
}

/// `os.MkdirTemp(target, "..2006_01_02_15_04_05.")` + chmod 0755.
fn new_timestamp_dir(target: &Path) -> io::Result<PathBuf> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let prefix = format!("..{}.", utc_stamp(now.as_secs()));
    let mut seed = now.subsec_nanos() ^ std::process::id();
    for _ in 0..100 {
        seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        let dir = target.join(format!("{prefix}{seed}"));
        match std::fs::create_dir(&dir) {
            Ok(()) => {
                set_mode(&dir, 0o755)?;
                return Ok(dir);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        "no unique timestamped directory name",
    ))
}

/// `YYYY_MM_DD_hh_mm_ss` in UTC.
fn utc_stamp(secs: u64) -> String {
    crate::timefmt::underscore_stamp(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn f(data: &str, mode: u32) -> FileProjection {
        FileProjection {
            data: data.as_bytes().to_vec(),
            mode,
        }
    }

    #[test]
    fn atomic_writer_layout_symlinks_and_modes() {
        let t = tempfile::tempdir().unwrap();
        let mut p = Payload::new();
        p.insert("a".into(), f("1", 0o644));
        p.insert("dir/b".into(), f("2", 0o400));
        write(t.path(), &p).unwrap();
        let data = std::fs::read_link(t.path().join("..data")).unwrap();
        let ts = data.to_str().unwrap();
        assert!(ts.starts_with("..20") && ts.len() > 22, "{ts}");
        assert_eq!(
            std::fs::read_link(t.path().join("a")).unwrap(),
            Path::new("..data/a")
        );
        assert_eq!(
            std::fs::read_link(t.path().join("dir")).unwrap(),
            Path::new("..data/dir")
        );
        assert_eq!(
            std::fs::read_to_string(t.path().join("dir/b")).unwrap(),
            "2"
        );
        let mode = |p: &str| std::fs::metadata(t.path().join(p)).unwrap().mode() & 0o7777;
        assert_eq!(mode("a"), 0o644);
        assert_eq!(mode("dir/b"), 0o400);
        assert_eq!(mode("dir"), 0o755);
        assert_eq!(mode(ts), 0o755);

        // A second write switches ..data and removes the old directory.
        p.insert("a".into(), f("new", 0o600));
        write(t.path(), &p).unwrap();
        let data2 = std::fs::read_link(t.path().join("..data")).unwrap();
        assert_ne!(data, data2);
        assert!(!t.path().join(&data).exists());
        assert_eq!(std::fs::read_to_string(t.path().join("a")).unwrap(), "new");
    }

    #[test]
    fn atomic_writer_rejects_bad_paths() {
        for bad in ["", "/abs", "a/../b", "..", "..x/y"] {
            assert!(validate_path(bad).is_err(), "{bad:?}");
        }
        assert!(validate_path("..")
            .unwrap_err()
            .contains("must not contain '..'"));
        assert!(validate_path("a..b/c").is_ok());
        assert_eq!(clean("a//b/./c"), "a/b/c");
    }

    #[test]
    fn utc_stamp_format() {
        assert_eq!(utc_stamp(0), "1970_01_01_00_00_00");
        assert_eq!(utc_stamp(1_709_251_199), "2024_02_29_23_59_59");
    }
}
