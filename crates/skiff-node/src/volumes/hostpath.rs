//! hostPath `type` checks, as `pkg/volume/hostpath/host_path.go` (checkType,
//! typeMatchedOrError, makeDir, makeFile) does them, with its error texts.

use std::io;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// `hu.GetFileType`: the type of what `path` is (following symlinks, like `os.Stat`).
fn file_type(path: &Path) -> Result<&'static str, String> {
    let m = std::fs::metadata(path).map_err(|e| e.to_string())?;
    let t = m.file_type();
    Ok(if t.is_dir() {
        "Directory"
    } else if t.is_file() {
        "File"
    } else if t.is_socket() {
        "Socket"
    } else if t.is_char_device() {
        "CharDevice"
    } else if t.is_block_device() {
        "BlockDevice"
    } else {
        return Err(
            "only recognise file, directory, socket, block device and character devices".into(),
        );
    })
}

fn exists(path: &Path) -> bool {
    std::fs::metadata(path).is_ok()
}

/// Checks (and for the `…OrCreate` types, creates) `path` for `type_`. `""` checks nothing.
pub fn check_type(path: &Path, type_: &str) -> Result<(), String> {
    match type_ {
        "" => Ok(()),
        "DirectoryOrCreate" => {
            if !exists(path) {
                return make_dir(path);
            }
            matched_or_error(path, "Directory", "directory")
        }
        "Directory" => matched_or_error(path, "Directory", "directory"),
        "FileOrCreate" => {
            if !exists(path) {
                return make_file(path);
            }
            matched_or_error(path, "File", "file")
        }
        "File" => matched_or_error(path, "File", "file"),
        "Socket" => matched_or_error(path, "Socket", "socket file"),
        "CharDevice" => matched_or_error(path, "CharDevice", "character device"),
        "BlockDevice" => matched_or_error(path, "BlockDevice", "block device"),
        other => Err(format!("{other} is an invalid volume type")),
    }
}

fn matched_or_error(path: &Path, expected: &str, description: &str) -> Result<(), String> {
    let p = path.display();
    if !exists(path) {
        return Err(format!("hostPath {p} doesn't exist"));
    }
    let actual = file_type(path).map_err(|e| {
        format!(
            "hostPath type check failed, {p} is not a {description}, unable to determine its type: {e}"
        )
    })?;
    if actual != expected {
        return Err(format!(
            "hostPath type check failed: {p} is not a {description}, it's a {actual}"
        ));
    }
    Ok(())
}

/// `os.MkdirAll(path, 0755)` (under the kubelet's umask 022).
fn make_dir(path: &Path) -> Result<(), String> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o755);
    match b.create(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(format!("mkdir {}: {}", path.display(), e)),
    }
}

/// `os.OpenFile(path, O_CREATE, 0644)`: no parent directories are made.
fn make_file(path: &Path) -> Result<(), String> {
    match std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o644)
        .open(path)
    {
        Ok(f) => {
            // The umask may have narrowed it; the kubelet's is 022, so 0644 stands.
            let _ = f.set_permissions(std::fs::Permissions::from_mode(0o644));
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(format!("open {}: {}", path.display(), e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn host_path_type_checks_like_the_kubelet() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("d");
        let file = t.path().join("f");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(&file, "x").unwrap();
        let missing = t.path().join("missing");

        assert!(check_type(&dir, "Directory").is_ok());
        assert!(check_type(&file, "File").is_ok());
        assert!(check_type(&missing, "").is_ok());
        assert_eq!(
            check_type(&missing, "Directory").unwrap_err(),
            format!("hostPath {} doesn't exist", missing.display())
        );
        assert_eq!(
            check_type(&file, "Directory").unwrap_err(),
            format!(
                "hostPath type check failed: {} is not a directory, it's a File",
                file.display()
            )
        );
        assert_eq!(
            check_type(&dir, "Socket").unwrap_err(),
            format!(
                "hostPath type check failed: {} is not a socket file, it's a Directory",
                dir.display()
            )
        );
        assert!(check_type(Path::new("/dev/null"), "CharDevice").is_ok());
        assert!(check_type(&dir, "BlockDevice").is_err());
        assert_eq!(
            check_type(&dir, "Weird").unwrap_err(),
            "Weird is an invalid volume type"
        );
    }

    #[test]
    fn host_path_or_create_modes() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("a/b");
        check_type(&d, "DirectoryOrCreate").unwrap();
        assert_eq!(std::fs::metadata(&d).unwrap().mode() & 0o7777, 0o755);
        let f = t.path().join("file");
        check_type(&f, "FileOrCreate").unwrap();
        assert_eq!(std::fs::metadata(&f).unwrap().mode() & 0o7777, 0o644);
        // FileOrCreate makes no parents.
        assert!(check_type(&t.path().join("no/such"), "FileOrCreate").is_err());
        // An existing directory is not a file.
        assert!(check_type(&d, "FileOrCreate")
            .unwrap_err()
            .contains("is not a file, it's a Directory"));
    }
}
