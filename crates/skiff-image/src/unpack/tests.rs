//! Hostile layers (images-serve-facts §2.5): each case is built with the tar crate and the
//! tests prove nothing lands outside the layer dir. The layer dir sits beside a sentinel
//! dir `outside/` whose absolute path the hostile entries aim at.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::*;
use crate::digest::sha256_of;

/// One tar entry of a test layer.
enum E<'a> {
    File(&'a str, &'a [u8]),
    FileMode(&'a str, u32, u32, u32),
    Dir(&'a str),
    Symlink(&'a str, &'a str),
    Link(&'a str, &'a str),
    Char(&'a str, u32, u32),
    Fifo(&'a str),
    /// A file with PAX records (path override, xattrs).
    Pax(&'a str, Vec<(&'a str, &'a [u8])>),
}

/// Raw name bytes in the header (the builder's own setters refuse `..` and absolute names,
/// which is exactly what hostile layers contain).
fn header(kind: tar::EntryType, name: &str, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1_700_000_000);
    let n = name.as_bytes();
    assert!(n.len() < 100, "test names stay short");
    h.as_mut_bytes()[..100].fill(0);
    h.as_mut_bytes()[..n.len()].copy_from_slice(n);
    h
}

fn set_link(h: &mut tar::Header, target: &str) {
    let t = target.as_bytes();
    assert!(t.len() < 100);
    h.as_mut_bytes()[157..257].fill(0);
    h.as_mut_bytes()[157..157 + t.len()].copy_from_slice(t);
}

fn build(entries: &[E<'_>]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        match e {
            E::File(name, data) => {
                let mut h = header(tar::EntryType::Regular, name, data.len() as u64);
                h.set_cksum();
                b.append(&h, *data).unwrap();
            }
            E::FileMode(name, mode, uid, gid) => {
                let mut h = header(tar::EntryType::Regular, name, 1);
                h.set_mode(*mode);
                h.set_uid(u64::from(*uid));
                h.set_gid(u64::from(*gid));
                h.set_cksum();
                b.append(&h, &b"x"[..]).unwrap();
            }
            E::Dir(name) => {
                let mut h = header(tar::EntryType::Directory, name, 0);
                h.set_mode(0o755);
                h.set_cksum();
                b.append(&h, std::io::empty()).unwrap();
            }
            E::Symlink(name, target) | E::Link(name, target) => {
                let kind = if matches!(e, E::Symlink(..)) {
                    tar::EntryType::Symlink
                } else {
                    tar::EntryType::Link
                };
                let mut h = header(kind, name, 0);
                set_link(&mut h, target);
                h.set_cksum();
                b.append(&h, std::io::empty()).unwrap();
            }
            E::Char(name, major, minor) => {
                let mut h = header(tar::EntryType::Char, name, 0);
                h.set_device_major(*major).unwrap();
                h.set_device_minor(*minor).unwrap();
                h.set_cksum();
                b.append(&h, std::io::empty()).unwrap();
            }
            E::Fifo(name) => {
                let mut h = header(tar::EntryType::Fifo, name, 0);
                h.set_cksum();
                b.append(&h, std::io::empty()).unwrap();
            }
            E::Pax(name, records) => {
                b.append_pax_extensions(records.iter().map(|(k, v)| (*k, *v)))
                    .unwrap();
                let mut h = header(tar::EntryType::Regular, name, 1);
                h.set_cksum();
                b.append(&h, &b"p"[..]).unwrap();
            }
        }
    }
    b.into_inner().unwrap()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// A temp dir with `layer/` (the unpack target) and `outside/` (must stay empty).
struct Fixture {
    _tmp: tempfile::TempDir,
    base: PathBuf,
    layer: PathBuf,
    outside: PathBuf,
}

impl Fixture {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().to_path_buf();
        let layer = base.join("layer");
        let outside = base.join("outside");
        fs::create_dir(&layer).unwrap();
        fs::create_dir(&outside).unwrap();
        Self {
            _tmp: tmp,
            base,
            layer,
            outside,
        }
    }

    fn unpack(&self, blob: &[u8], diff_id: &str) -> Result<Stats, UnpackError> {
        unpack_into(&self.layer, blob, diff_id, &Limits::default())
    }

    fn unpack_tar(&self, tar: &[u8]) -> Result<Stats, UnpackError> {
        self.unpack(tar, &sha256_of(tar))
    }

    /// Nothing but `layer/` and `outside/` in the base, and `outside/` empty.
    fn assert_contained(&self) {
        let mut names: Vec<String> = fs::read_dir(&self.base)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["layer", "outside"]);
        assert_eq!(
            fs::read_dir(&self.outside).unwrap().count(),
            0,
            "outside/ was written"
        );
    }

    /// `outside`'s absolute path without the leading `/` (where it lands inside the layer).
    fn outside_rel(&self) -> String {
        self.outside
            .to_str()
            .unwrap()
            .trim_start_matches('/')
            .to_string()
    }
}

fn refused_kind(r: Result<Stats, UnpackError>) -> String {
    match r {
        Ok(s) => panic!("unpacked a hostile layer: {s:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn plain_layer_unpacks_with_metadata() {
    let f = Fixture::new();
    let t = build(&[
        E::Dir("etc/"),
        E::File("etc/hostname", b"box\n"),
        E::FileMode("bin/su", 0o4755, 1000, 1001),
        E::Symlink("lib64", "/usr/lib64"),
        E::Link("etc/hostname2", "etc/hostname"),
        E::Fifo("run/fifo"),
    ]);
    let stats = f.unpack_tar(&t).unwrap();
    assert_eq!(stats.entries, 6);
    assert_eq!(stats.bytes, t.len() as u64);
    assert_eq!(fs::read(f.layer.join("etc/hostname")).unwrap(), b"box\n");
    let su = fs::metadata(f.layer.join("bin/su")).unwrap();
    // setuid survives the chown (chmod after chown).
    assert_eq!(su.mode() & 0o7777, 0o4755);
    assert_eq!((su.uid(), su.gid()), (1000, 1001));
    assert_eq!(
        fs::read_link(f.layer.join("lib64")).unwrap(),
        Path::new("/usr/lib64")
    );
    let a = fs::metadata(f.layer.join("etc/hostname")).unwrap();
    let b = fs::metadata(f.layer.join("etc/hostname2")).unwrap();
    assert_eq!(a.ino(), b.ino());
    assert!(fs::symlink_metadata(f.layer.join("run/fifo"))
        .unwrap()
        .file_type()
        .is_fifo_like());
    assert_eq!(
        fs::metadata(f.layer.join("etc")).unwrap().mtime(),
        1_700_000_000
    );
    f.assert_contained();
}

trait FifoLike {
    fn is_fifo_like(&self) -> bool;
}
impl FifoLike for fs::FileType {
    fn is_fifo_like(&self) -> bool {
        use std::os::unix::fs::FileTypeExt;
        self.is_fifo()
    }
}

#[test]
fn symlink_to_root_then_a_file_through_it_stays_inside() {
    let f = Fixture::new();
    let out = f.outside.to_str().unwrap().to_string();
    let t = build(&[
        E::Symlink("a", "/"),
        E::File(&format!("a/{}/x", f.outside_rel()), b"1"),
        E::Symlink("o", &out),
        E::File("o/y", b"2"),
    ]);
    f.unpack_tar(&t).unwrap();
    assert_eq!(
        fs::read(f.layer.join(f.outside_rel()).join("x")).unwrap(),
        b"1"
    );
    assert_eq!(
        fs::read(f.layer.join(f.outside_rel()).join("y")).unwrap(),
        b"2"
    );
    f.assert_contained();
}

#[test]
fn dotdot_and_absolute_names_are_clamped_inside() {
    let f = Fixture::new();
    let abs = format!("{}/abs", f.outside.display());
    let t = build(&[
        E::File("../../outside/dd", b"1"),
        E::File("../x", b"2"),
        E::File(&abs, b"3"),
        E::Dir("../../../"),
    ]);
    f.unpack_tar(&t).unwrap();
    assert_eq!(fs::read(f.layer.join("outside/dd")).unwrap(), b"1");
    assert_eq!(fs::read(f.layer.join("x")).unwrap(), b"2");
    assert_eq!(
        fs::read(f.layer.join(f.outside_rel()).join("abs")).unwrap(),
        b"3"
    );
    f.assert_contained();
}

#[test]
fn symlink_chains_resolve_inside_the_root() {
    let f = Fixture::new();
    let t = build(&[
        E::Symlink("b", "../../../.."),
        E::Symlink("c", "b"),
        E::Symlink("d", "c/outside"),
        E::File("c/outside/z", b"1"),
        E::File("d/w", b"2"),
    ]);
    f.unpack_tar(&t).unwrap();
    assert_eq!(fs::read(f.layer.join("outside/z")).unwrap(), b"1");
    assert_eq!(fs::read(f.layer.join("outside/w")).unwrap(), b"2");
    f.assert_contained();
}

#[test]
fn symlink_loop_is_an_error_not_a_hang() {
    let f = Fixture::new();
    let t = build(&[
        E::Symlink("l1", "l2"),
        E::Symlink("l2", "l1"),
        E::File("l1/x", b""),
    ]);
    assert!(refused_kind(f.unpack_tar(&t)).contains("l1/x"));
    f.assert_contained();
}

#[test]
fn hard_links_to_host_files_fail() {
    let f = Fixture::new();
    // A file outside that a hostile hard link aims at.
    let secret_dir = f.base.join("outside");
    let t = build(&[E::Link("shadow", "/etc/shadow")]);
    let e = refused_kind(f.unpack_tar(&t));
    assert!(e.contains("hard link"), "{e}");
    let target = format!("{}/s", secret_dir.display());
    let t = build(&[E::Link("s2", &target), E::Link("s3", "../../outside/s")]);
    // Create the host file only now (the sentinel must be empty for assert_contained).
    fs::write(secret_dir.join("s"), b"secret").unwrap();
    assert!(f.unpack_tar(&t).is_err());
    assert_eq!(fs::metadata(secret_dir.join("s")).unwrap().nlink(), 1);
    fs::remove_file(secret_dir.join("s")).unwrap();
    // Through a symlink to a host dir: the link resolves inside the layer too.
    let f = Fixture::new();
    fs::write(f.base.join("hostfile"), b"h").unwrap();
    let t = build(&[
        E::Symlink("up", f.base.to_str().unwrap()),
        E::Link("h", "up/hostfile"),
    ]);
    assert!(f.unpack_tar(&t).is_err());
    assert_eq!(fs::metadata(f.base.join("hostfile")).unwrap().nlink(), 1);
}

#[test]
fn hard_link_to_a_symlink_links_the_symlink() {
    let f = Fixture::new();
    let t = build(&[E::Symlink("ls", "/etc/passwd"), E::Link("ls2", "ls")]);
    f.unpack_tar(&t).unwrap();
    assert_eq!(
        fs::read_link(f.layer.join("ls2")).unwrap(),
        Path::new("/etc/passwd")
    );
    f.assert_contained();
}

#[test]
fn device_nodes_are_refused_but_overlay_whiteouts_pass() {
    let f = Fixture::new();
    let e = refused_kind(f.unpack_tar(&build(&[E::Char("dev/mem", 1, 1)])));
    assert!(e.contains("device nodes"), "{e}");
    let f = Fixture::new();
    f.unpack_tar(&build(&[E::Char("gone", 0, 0)])).unwrap();
    assert_whiteout(&f.layer.join("gone"));
}

fn assert_whiteout(p: &Path) {
    use std::os::unix::fs::FileTypeExt;
    let md = fs::symlink_metadata(p).unwrap();
    assert!(md.file_type().is_char_device(), "{p:?}");
    assert_eq!(md.rdev(), 0);
}

#[test]
fn whiteouts_become_overlay_form() {
    let f = Fixture::new();
    let t = build(&[
        E::Dir("etc/"),
        E::File("etc/.wh.motd", b""),
        E::File("var/.wh..wh..opq", b""),
        E::File("var/keep", b"k"),
        E::File(".wh..wh.plnk", b""),
    ]);
    f.unpack_tar(&t).unwrap();
    assert_whiteout(&f.layer.join("etc/motd"));
    let v =
        rustix::fs::getxattr(f.layer.join("var").as_path(), OPAQUE_XATTR, &mut [0u8; 8]).unwrap();
    assert_eq!(v, 1);
    assert_eq!(fs::read(f.layer.join("var/keep")).unwrap(), b"k");
    assert!(fs::symlink_metadata(f.layer.join(".wh..wh.plnk")).is_err());
    f.assert_contained();
}

#[test]
fn whiteouts_that_escape_their_directory_are_refused() {
    for name in ["etc/.wh..", "etc/.wh.."] {
        let f = Fixture::new();
        let e = refused_kind(f.unpack_tar(&build(&[E::File(name, b"")])));
        assert!(e.contains("whiteout"), "{name}: {e}");
    }
    // `.wh...` names `..`'s whiteout? No: `.` after the prefix is refused; a whiteout dir
    // or link is refused too.
    let f = Fixture::new();
    let e = refused_kind(f.unpack_tar(&build(&[E::Dir("x/.wh.y/")])));
    assert!(e.contains("whiteout"), "{e}");
    let f = Fixture::new();
    let e = refused_kind(f.unpack_tar(&build(&[E::Symlink(".wh..wh..opq", "/")])));
    assert!(e.contains("whiteout"), "{e}");
    f.assert_contained();
}

#[test]
fn overlay_xattrs_from_the_layer_are_dropped_and_user_ones_kept() {
    let f = Fixture::new();
    let t = build(&[E::Pax(
        "f",
        vec![
            ("SCHILY.xattr.trusted.overlay.opaque", b"y"),
            ("SCHILY.xattr.user.overlay.redirect", b"/x"),
            ("SCHILY.xattr.user.note", b"hi"),
        ],
    )]);
    f.unpack_tar(&t).unwrap();
    let p = f.layer.join("f");
    let mut buf = [0u8; 16];
    assert!(rustix::fs::getxattr(p.as_path(), "trusted.overlay.opaque", &mut buf).is_err());
    assert!(rustix::fs::getxattr(p.as_path(), "user.overlay.redirect", &mut buf).is_err());
    // user.* xattrs need a filesystem that takes them (tmpfs does since 6.6, ext4 does).
    if let Ok(n) = rustix::fs::getxattr(p.as_path(), "user.note", &mut buf) {
        assert_eq!(&buf[..n], b"hi");
    }
}

#[test]
fn pax_path_with_nul_or_overlong_names_are_refused() {
    let f = Fixture::new();
    let e = refused_kind(f.unpack_tar(&build(&[E::Pax("ok", vec![("path", b"a\0b")])])));
    assert!(e.contains("NUL"), "{e}");
    let long = "x".repeat(300);
    let f = Fixture::new();
    let e = refused_kind(f.unpack_tar(&build(&[E::Pax("ok", vec![("path", long.as_bytes())])])));
    assert!(e.contains("255"), "{e}");
    let deep = "d/".repeat(2100);
    let f = Fixture::new();
    let e = refused_kind(f.unpack_tar(&build(&[E::Pax("ok", vec![("path", deep.as_bytes())])])));
    assert!(e.contains("longer than 4096"), "{e}");
    f.assert_contained();
}

#[test]
fn limits_stop_bombs_and_entry_floods() {
    let f = Fixture::new();
    let big = vec![0u8; 1 << 20];
    let t = build(&[E::File("big", &big)]);
    let gz = gzip(&t);
    let limits = Limits {
        max_bytes: 64 << 10,
        ..Limits::default()
    };
    match unpack_into(&f.layer, &gz[..], &sha256_of(&t), &limits) {
        Err(UnpackError::TooLarge(n)) => assert_eq!(n, 64 << 10),
        other => panic!("{other:?}"),
    }
    let f = Fixture::new();
    let many: Vec<String> = (0..50).map(|i| format!("f{i}")).collect();
    let es: Vec<E<'_>> = many.iter().map(|n| E::File(n, b"")).collect();
    let t = build(&es);
    let limits = Limits {
        max_entries: 10,
        ..Limits::default()
    };
    assert!(matches!(
        unpack_into(&f.layer, &t[..], &sha256_of(&t), &limits),
        Err(UnpackError::TooManyEntries(10))
    ));
}

#[test]
fn wrong_diff_id_fails_even_when_the_difference_is_after_the_end_marker() {
    let f = Fixture::new();
    let t = build(&[E::File("a", b"1")]);
    let e = refused_kind(f.unpack(&t, &sha256_of(b"other")));
    assert!(e.contains("wrong diff ID"), "{e}");
    // Trailing bytes after the tar end marker are part of the diff ID.
    let mut padded = t.clone();
    padded.extend_from_slice(&[0u8; 1024]);
    let f = Fixture::new();
    assert!(f.unpack(&padded, &sha256_of(&t)).is_err());
    let f = Fixture::new();
    f.unpack(&padded, &sha256_of(&padded)).unwrap();
}

#[test]
fn truncated_gzip_fails() {
    let f = Fixture::new();
    let t = build(&[E::File("a", &vec![7u8; 100_000])]);
    let gz = gzip(&t);
    let e = refused_kind(f.unpack(&gz[..gz.len() / 2], &sha256_of(&t)));
    assert!(
        e.contains("reading the layer") || e.contains("diff ID"),
        "{e}"
    );
}

#[test]
fn multi_member_gzip_and_zstd_unpack() {
    let f = Fixture::new();
    let t = build(&[E::File("a", b"hello"), E::File("b", b"world")]);
    // Two gzip members: the tar split at a block boundary.
    let mut two = gzip(&t[..512]);
    two.extend(gzip(&t[512..]));
    f.unpack(&two, &sha256_of(&t)).unwrap();
    assert_eq!(fs::read(f.layer.join("b")).unwrap(), b"world");
    let f = Fixture::new();
    let z = zstd::encode_all(&t[..], 3).unwrap();
    f.unpack(&z, &sha256_of(&t)).unwrap();
    assert_eq!(fs::read(f.layer.join("a")).unwrap(), b"hello");
}

#[test]
fn replacing_entries_and_dir_merges() {
    let f = Fixture::new();
    let t = build(&[
        E::Dir("d/"),
        E::File("d/inner", b"i"),
        E::File("d", b"now a file"),
        E::File("e", b"file"),
        E::Dir("e/"),
        E::Dir("m/"),
        E::File("m/x", b"x"),
        E::Dir("m/"),
        E::Symlink("s", "/"),
        E::File("s", b"plain"),
    ]);
    f.unpack_tar(&t).unwrap();
    assert_eq!(fs::read(f.layer.join("d")).unwrap(), b"now a file");
    assert!(fs::metadata(f.layer.join("e")).unwrap().is_dir());
    assert_eq!(fs::read(f.layer.join("m/x")).unwrap(), b"x");
    assert_eq!(fs::read(f.layer.join("s")).unwrap(), b"plain");
    assert_eq!(
        fs::metadata(f.layer.join("d"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o644
    );
    f.assert_contained();
}

#[test]
fn a_symlinked_parent_replaced_midway_cannot_redirect_writes() {
    // `p` is a dir, then becomes a symlink to the host sentinel, then `p/x` is written.
    let f = Fixture::new();
    let out = f.outside.to_str().unwrap().to_string();
    let t = build(&[
        E::Dir("p/"),
        E::File("p/a", b"a"),
        E::Symlink("p", &out),
        E::File("p/x", b"x"),
    ]);
    f.unpack_tar(&t).unwrap();
    assert_eq!(
        fs::read(f.layer.join(f.outside_rel()).join("x")).unwrap(),
        b"x"
    );
    f.assert_contained();
}

#[test]
fn sweep_removes_only_unlocked_old_tmp_dirs() {
    let tmp = tempfile::tempdir().unwrap();
    let held = tmp.path().join("tmp-held");
    let stale = tmp.path().join("tmp-stale");
    let keep = tmp.path().join("l");
    for d in [&held, &stale, &keep] {
        fs::create_dir(d).unwrap();
    }
    fs::write(stale.join("f"), b"").unwrap();
    let _lock = lock_dir(&held, true).unwrap();
    sweep_tmp_dirs(tmp.path(), Duration::ZERO);
    assert!(held.exists());
    assert!(!stale.exists());
    assert!(keep.exists());
}
