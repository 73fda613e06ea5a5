//! `/proc/<pid>/mountinfo`, the one parser of it in this crate (proc(5)):
//!
//! ```text
//! 36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
//! (1)(2) (3)   (4)   (5)      (6)      (7)   (8) (9)    (10)         (11)
//! ```
//!
//! mount ID, parent ID, major:minor, root, mount point, mount options, zero or more optional
//! fields (`shared:N`, `master:N`, `propagate_from:N`, `unbindable`), the `-` separator,
//! filesystem type, mount source, super options. Fields are separated by one space; the
//! kernel escapes space, tab, newline and backslash in paths and the source as `\ooo`
//! (`mangle` in `fs/proc_namespace.c`), so no field contains a space — but the source may be
//! empty, so fields are split on single spaces, never on runs of whitespace.
//!
//! A mount table can hold paths a container chose (a Bidirectional mount, a volume's
//! subdirectory), so nothing here panics on odd input: a line that does not parse is skipped.

use std::ffi::OsString;
use std::io;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

/// One mount of a mountinfo table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountInfo {
    pub mount_id: u64,
    pub parent_id: u64,
    /// `major:minor` of the filesystem's device.
    pub device: String,
    /// The root of the mount within its filesystem (escapes decoded).
    pub root: PathBuf,
    /// Where it is mounted (escapes decoded).
    pub mount_point: PathBuf,
    /// Per-mount options (`rw,nosuid,relatime`).
    pub mount_options: String,
    /// Propagation and other optional fields, in order (`shared:1`, `master:2`, …).
    pub optional_fields: Vec<String>,
    /// Filesystem type (`ext4`, `cgroup2`, `fuse.sshfs`).
    pub fstype: String,
    /// Mount source (escapes decoded); may be empty.
    pub source: String,
    /// Per-superblock options (for cgroup v1: the controllers).
    pub super_options: String,
}

impl MountInfo {
    /// Parses one line; `None` when it is not a mountinfo line.
    pub fn parse_line(line: &str) -> Option<MountInfo> {
        let mut f = line.split(' ');
        let mount_id = f.next()?.parse().ok()?;
        let parent_id = f.next()?.parse().ok()?;
        let device = f.next()?.to_string();
        let root = unescape(f.next()?);
        let mount_point = unescape(f.next()?);
        let mount_options = f.next()?.to_string();
        let mut optional_fields = Vec::new();
        loop {
            match f.next()? {
                "-" => break,
                "" => {}
                o => optional_fields.push(o.to_string()),
            }
        }
        let fstype = f.next()?.to_string();
        if fstype.is_empty() {
            return None;
        }
        let source = unescape(f.next().unwrap_or(""))
            .to_string_lossy()
            .into_owned();
        let super_options = f.next().unwrap_or("").to_string();
        Some(MountInfo {
            mount_id,
            parent_id,
            device,
            root,
            mount_point,
            mount_options,
            optional_fields,
            fstype,
            source,
            super_options,
        })
    }

    /// The value of optional field `tag` (`shared`, `master`, `propagate_from`), or
    /// `Some("")` for a tag without one (`unbindable`).
    pub fn optional(&self, tag: &str) -> Option<&str> {
        self.optional_fields
            .iter()
            .find_map(|o| match o.split_once(':') {
                Some((t, v)) if t == tag => Some(v),
                None if o == tag => Some(""),
                _ => None,
            })
    }
}

/// Every mount of `text`, in order; lines that do not parse are skipped.
pub fn parse(text: &str) -> Vec<MountInfo> {
    text.lines().filter_map(MountInfo::parse_line).collect()
}

/// This process's mount table (`/proc/self/mountinfo`).
pub fn read_self() -> io::Result<Vec<MountInfo>> {
    Ok(parse(&std::fs::read_to_string("/proc/self/mountinfo")?))
}

/// The mount points of this process's mount namespace (empty when unreadable).
pub fn mount_points() -> Vec<PathBuf> {
    read_self()
        .unwrap_or_default()
        .into_iter()
        .map(|m| m.mount_point)
        .collect()
}

/// Whether `path` is a mount point in this process's mount namespace.
pub fn is_mount_point(path: &Path) -> bool {
    mount_points().iter().any(|m| m == path)
}

/// Decodes the kernel's `\ooo` escapes (three octal digits, at most `\377`); anything else,
/// a lone or short backslash included, is kept as it is. Paths are bytes: the result is not
/// required to be UTF-8.
pub fn unescape(s: &str) -> PathBuf {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = |j: usize| {
            b.get(j)
                .filter(|c| (b'0'..=b'7').contains(c))
                .map(|c| c - b'0')
        };
        if b[i] == b'\\' {
            if let (Some(h), Some(m), Some(l)) = (octal(i + 1), octal(i + 2), octal(i + 3)) {
                if let Ok(v) = u8::try_from(u16::from(h) * 64 + u16::from(m) * 8 + u16::from(l)) {
                    out.push(v);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(b[i]);
        i += 1;
    }
    PathBuf::from(OsString::from_vec(out))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_proc5_example_line() {
        let m = MountInfo::parse_line(
            "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue",
        )
        .unwrap();
        assert_eq!(m.mount_id, 36);
        assert_eq!(m.parent_id, 35);
        assert_eq!(m.device, "98:0");
        assert_eq!(m.root, PathBuf::from("/mnt1"));
        assert_eq!(m.mount_point, PathBuf::from("/mnt2"));
        assert_eq!(m.mount_options, "rw,noatime");
        assert_eq!(m.optional_fields, vec!["master:1".to_string()]);
        assert_eq!(m.optional("master"), Some("1"));
        assert_eq!(m.optional("shared"), None);
        assert_eq!(m.fstype, "ext3");
        assert_eq!(m.source, "/dev/root");
        assert_eq!(m.super_options, "rw,errors=continue");
    }

    #[test]
    fn zero_or_several_optional_fields() {
        let none = MountInfo::parse_line("25 1 0:22 / /sys rw - sysfs sysfs rw").unwrap();
        assert!(none.optional_fields.is_empty());
        assert_eq!(none.fstype, "sysfs");
        let many = MountInfo::parse_line(
            "30 25 0:26 / /sys/fs/cgroup rw shared:4 master:2 propagate_from:1 unbindable - cgroup2 cgroup2 rw,nsdelegate",
        )
        .unwrap();
        assert_eq!(
            many.optional_fields,
            ["shared:4", "master:2", "propagate_from:1", "unbindable"]
        );
        assert_eq!(many.optional("propagate_from"), Some("1"));
        assert_eq!(many.optional("unbindable"), Some(""));
        assert_eq!(many.fstype, "cgroup2");
        assert_eq!(many.super_options, "rw,nsdelegate");
    }

    #[test]
    fn octal_escapes_are_decoded_in_paths_and_source() {
        let m = MountInfo::parse_line(
            r"40 30 0:50 /a\040dir /mnt/my\040vol\011tab\012nl\134bs rw shared:9 - tmpfs my\040src rw",
        )
        .unwrap();
        assert_eq!(m.root, PathBuf::from("/a dir"));
        assert_eq!(m.mount_point, PathBuf::from("/mnt/my vol\ttab\nnl\\bs"));
        assert_eq!(m.source, "my src");
        assert_eq!(m.optional("shared"), Some("9"));
    }

    #[test]
    fn a_path_that_looks_like_the_separator_is_not_one() {
        // A directory named "-" (and one named " - ", escaped) before the real separator.
        let m = MountInfo::parse_line(r"41 30 0:51 / /x/\040-\040 rw - tmpfs tmpfs rw").unwrap();
        assert_eq!(m.mount_point, PathBuf::from("/x/ - "));
        assert_eq!(m.fstype, "tmpfs");
        let m = MountInfo::parse_line("42 30 0:52 / /- rw - tmpfs tmpfs rw").unwrap();
        assert_eq!(m.mount_point, PathBuf::from("/-"));
    }

    #[test]
    fn an_empty_source_keeps_the_fields_in_place() {
        let m = MountInfo::parse_line("43 30 0:53 / /e rw - tmpfs  rw,size=4k").unwrap();
        assert_eq!(m.source, "");
        assert_eq!(m.super_options, "rw,size=4k");
    }

    #[test]
    fn unescape_keeps_what_is_not_an_escape() {
        assert_eq!(unescape(r"/a\040b\134c"), PathBuf::from("/a b\\c"));
        assert_eq!(unescape("/plain"), PathBuf::from("/plain"));
        assert_eq!(unescape(r"/x\"), PathBuf::from(r"/x\"));
        assert_eq!(unescape(r"/x\04"), PathBuf::from(r"/x\04"));
        // Not octal, or past a byte: kept, never a panic.
        assert_eq!(unescape(r"/x\089"), PathBuf::from(r"/x\089"));
        assert_eq!(unescape(r"/x\777"), PathBuf::from(r"/x\777"));
        // A non-UTF-8 byte comes back as that byte.
        use std::os::unix::ffi::OsStrExt;
        assert_eq!(unescape(r"/\377").as_os_str().as_bytes(), b"/\xff");
    }

    #[test]
    fn malformed_lines_are_skipped() {
        let text = "garbage\n\n1 2 3\n25 1 0:22 / /sys rw - sysfs sysfs rw\nx y 0:1 / /z rw - t s o\n26 1 0:23 / /no-sep rw\n";
        let all = parse(text);
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].mount_point, PathBuf::from("/sys"));
    }

    #[test]
    fn this_process_has_a_root_mount() {
        assert!(read_self()
            .unwrap()
            .iter()
            .any(|m| m.mount_point == Path::new("/")));
        assert!(is_mount_point(Path::new("/")));
    }
}
