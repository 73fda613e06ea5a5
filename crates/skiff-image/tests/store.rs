//! The store, layers, import and GC through the public API, on images built here with the
//! tar crate (OCI layouts, docker archives, directories).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use oci_spec::image::{Descriptor, MediaType};
use skiff_image::digest::sha256_of;
use skiff_image::import::{self, DirImageConfig};
use skiff_image::{ContentStore, StoreError};

fn desc(mt: &str, data: &[u8]) -> Descriptor {
    Descriptor::new(
        MediaType::from(mt),
        data.len() as u64,
        sha256_of(data).parse::<oci_spec::image::Digest>().unwrap(),
    )
}

fn store() -> (tempfile::TempDir, ContentStore) {
    let t = tempfile::tempdir().unwrap();
    let s = ContentStore::open(&t.path().join("images")).unwrap();
    (t, s)
}

fn layer_tar(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o755);
        h.set_cksum();
        b.append_data(&mut h, name, *data).unwrap();
    }
    b.into_inner().unwrap()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn config_json(diff_ids: &[String], cmd: &[&str]) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "architecture": skiff_image::store::host_arch(),
        "os": "linux",
        "created": "2024-01-02T03:04:05Z",
        "config": {"Cmd": cmd, "Env": ["PATH=/bin", "A=1"], "WorkingDir": "/w", "User": "1000"},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .unwrap()
}

/// An OCI layout with one image of two gzip layers; `ref_name` on its index entry.
fn oci_layout(dir: &Path, ref_name: Option<&str>, with_index: bool) -> String {
    fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
    let put = |data: &[u8]| {
        let d = sha256_of(data);
        fs::write(dir.join("blobs/sha256").join(&d[7..]), data).unwrap();
    };
    let l1 = layer_tar(&[("bin/sh", b"#!sh"), ("etc/os-release", b"one")]);
    let l2 = layer_tar(&[("etc/os-release", b"two"), ("etc/.wh.gone", b"")]);
    let (g1, g2) = (gzip(&l1), gzip(&l2));
    put(&g1);
    put(&g2);
    let cfg = config_json(&[sha256_of(&l1), sha256_of(&l2)], &["/bin/sh"]);
    put(&cfg);
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": desc("application/vnd.oci.image.config.v1+json", &cfg),
        "layers": [desc("application/vnd.oci.image.layer.v1.tar+gzip", &g1),
                   desc("application/vnd.oci.image.layer.v1.tar+gzip", &g2)],
    }))
    .unwrap();
    put(&manifest);
    let mut top = serde_json::to_value(desc(
        "application/vnd.oci.image.manifest.v1+json",
        &manifest,
    ))
    .unwrap();
    if with_index {
        let mut other = top.clone();
        other["platform"] = serde_json::json!({"os": "linux", "architecture": "s390x"});
        other["digest"] = serde_json::json!(sha256_of(b"missing"));
        top["platform"] =
            serde_json::json!({"os": "linux", "architecture": skiff_image::store::host_arch()});
        let idx = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [other, top],
        }))
        .unwrap();
        put(&idx);
        top = serde_json::to_value(desc("application/vnd.oci.image.index.v1+json", &idx)).unwrap();
    }
    if let Some(r) = ref_name {
        top["annotations"] = serde_json::json!({"org.opencontainers.image.ref.name": r});
    }
    fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    fs::write(
        dir.join("index.json"),
        serde_json::to_vec(&serde_json::json!({"schemaVersion": 2, "manifests": [top]})).unwrap(),
    )
    .unwrap();
    sha256_of(&cfg)
}

#[test]
fn ingest_verifies_digest_and_size() {
    let (_t, s) = store();
    let data = b"hello blob";
    let d = desc("application/octet-stream", data);
    // Wrong content, right size.
    let mut ing = s.ingest(&d).unwrap();
    ing.write_all(b"hello BLOB").unwrap();
    assert!(matches!(
        ing.commit(),
        Err(StoreError::DigestMismatch { .. })
    ));
    assert!(!s.has_blob(d.digest().as_ref()));
    // Oversize: refused at the first byte beyond the descriptor.
    let mut ing = s.ingest(&d).unwrap();
    let e = ing.write_all(b"hello blob and more").unwrap_err();
    assert!(e.to_string().contains("more bytes"), "{e}");
    drop(ing);
    // Truncated.
    let mut ing = s.ingest(&d).unwrap();
    ing.write_all(b"hello").unwrap();
    assert!(matches!(
        ing.commit(),
        Err(StoreError::SizeMismatch { actual: 5, .. })
    ));
    assert!(!s.has_blob(d.digest().as_ref()));
    assert_eq!(
        fs::read_dir(s.root().join("ingest")).unwrap().count(),
        0,
        "partials left"
    );
    // Right.
    let mut ing = s.ingest(&d).unwrap();
    ing.write_all(data).unwrap();
    ing.commit().unwrap();
    assert!(s.has_blob(d.digest().as_ref()));
    assert_eq!(s.read_blob(d.digest().as_ref(), 100).unwrap(), data);
    assert!(matches!(
        s.read_blob(d.digest().as_ref(), 5),
        Err(StoreError::TooLarge { .. })
    ));
    // A bad digest never becomes a path.
    let bad = "sha256:../../etc/passwd";
    assert!(matches!(
        s.read_blob(bad, 10),
        Err(StoreError::BadDigest(_))
    ));
}

#[test]
fn concurrent_ingest_of_one_digest_waits_and_shares() {
    let (_t, s) = store();
    let data = vec![5u8; 100_000];
    let d = desc("application/octet-stream", &data);
    let mut first = s.ingest(&d).unwrap();
    first.write_all(&data[..50_000]).unwrap();
    let s2 = s.clone();
    let d2 = d.clone();
    let waiter = std::thread::spawn(move || {
        let ing = s2.ingest(&d2).unwrap();
        ing.is_present()
    });
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        !waiter.is_finished(),
        "the second writer must wait for the first"
    );
    first.write_all(&data[50_000..]).unwrap();
    first.commit().unwrap();
    assert!(waiter.join().unwrap(), "the waiter sees the published blob");
}

#[test]
fn crash_leftovers_are_swept_but_live_writers_kept() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("images");
    let s = ContentStore::open(&root).unwrap();
    let live = desc("x/y", b"live");
    let _held = s.ingest(&live).unwrap();
    fs::write(
        root.join(format!("ingest/{}.partial", "a".repeat(64))),
        b"junk",
    )
    .unwrap();
    fs::write(root.join("index.json.tmp-dead"), b"{").unwrap();
    let stale = root.join("layers/tmp-dead");
    fs::create_dir(&stale).unwrap();
    fs::write(stale.join("f"), b"").unwrap();
    let old = std::time::SystemTime::now() - Duration::from_secs(3600);
    fs::File::open(&stale).unwrap().set_modified(old).unwrap();
    let _s = ContentStore::open(&root).unwrap();
    let mut left: Vec<String> = fs::read_dir(root.join("ingest"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(
        left,
        [format!("{}.partial", &live.digest().to_string()[7..])]
    );
    assert!(!root.join("index.json.tmp-dead").exists());
    assert!(!stale.exists());
}

#[test]
fn oci_layout_import_resolve_unpack_and_check() {
    let (t, s) = store();
    let layout = t.path().join("layout");
    let id = oci_layout(&layout, Some("example.com/app:1"), true);
    let got = import::import_path(&s, &layout, None).unwrap();
    assert_eq!(got, [("example.com/app:1".to_string(), id.clone())]);
    let img = s.resolve("example.com/app:1").unwrap().unwrap();
    assert_eq!(img.id, id);
    assert_eq!(img.layers.len(), 2);
    // Short ID prefixes resolve too.
    assert_eq!(s.resolve(&id[7..19]).unwrap().unwrap().id, id);
    assert!(s.resolve("example.com/app:2").unwrap().is_none());
    let rootfs = s.rootfs("example.com/app:1", "pod-a/c1").unwrap();
    assert_eq!(rootfs.image_id, id);
    assert_eq!(
        rootfs.config.cmd.as_deref(),
        Some(&["/bin/sh".to_string()][..])
    );
    assert_eq!(rootfs.config.working_dir.as_deref(), Some("/w"));
    assert_eq!(rootfs.config.user.as_deref(), Some("1000"));
    assert_eq!(rootfs.config.env, ["PATH=/bin", "A=1"]);
    assert_eq!(rootfs.lower_dirs.len(), 2);
    // Top-most first: the upper layer's os-release and whiteout.
    assert_eq!(
        fs::read(rootfs.lower_dirs[0].join("etc/os-release")).unwrap(),
        b"two"
    );
    assert_eq!(
        fs::read(rootfs.lower_dirs[1].join("etc/os-release")).unwrap(),
        b"one"
    );
    // Short dirs: layers/l/<n>.
    for d in &rootfs.lower_dirs {
        assert_eq!(d.parent().unwrap(), s.root().join("layers/l"));
    }
    // Unpacked once: a second rootfs reuses the dirs.
    let again = s.rootfs(&id, "pod-b/c1").unwrap();
    assert_eq!(again.lower_dirs, rootfs.lower_dirs);
    assert_eq!(s.check().unwrap(), Vec::<String>::new());
    // In use: rm refused, prune keeps it.
    assert!(s.remove_image("example.com/app:1", false).is_err());
    let r = s.prune(true).unwrap();
    assert!(r.untagged.is_empty());
    assert!(s.resolve(&id).unwrap().is_some());
    // Released and removed: prune takes blobs and layers.
    s.release("pod-a/c1").unwrap();
    s.release("pod-b/c1").unwrap();
    assert_eq!(
        s.remove_image("example.com/app:1", false).unwrap(),
        ["example.com/app:1"]
    );
    let r = s.prune(false).unwrap();
    assert_eq!((r.blobs, r.layers), (5, 2), "{r:?}");
    assert_eq!(
        fs::read_dir(s.root().join("blobs/sha256")).unwrap().count(),
        0
    );
    assert_eq!(fs::read_dir(s.root().join("layers/l")).unwrap().count(), 0);
    assert_eq!(s.check().unwrap(), Vec::<String>::new());
}

#[test]
fn check_finds_a_tampered_blob_and_unpack_refuses_it() {
    let (t, s) = store();
    let layout = t.path().join("layout");
    oci_layout(&layout, None, false);
    import::import_path(&s, &layout, Some("tamper")).unwrap();
    let img = s.resolve("tamper").unwrap().unwrap();
    assert_eq!(img.names, ["docker.io/library/tamper:latest"]);
    let p = s.blob_path(img.layers[1].digest().as_ref()).unwrap();
    let mut perm = fs::metadata(&p).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o644);
    fs::set_permissions(&p, perm).unwrap();
    let mut bytes = fs::read(&p).unwrap();
    let n = bytes.len();
    bytes[n - 1] ^= 0xff;
    fs::write(&p, &bytes).unwrap();
    let problems = s.check().unwrap();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].contains(&img.layers[1].digest().to_string()));
    assert!(s.rootfs("tamper", "h").is_err());
    // Nothing half-unpacked was published.
    assert!(s
        .layer_dir(&skiff_image::layers::chain_ids(&img.diff_ids)[1])
        .is_none());
    assert_eq!(
        fs::read_dir(s.root().join("layers"))
            .unwrap()
            .filter(|e| e
                .as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("tmp-"))
            .count(),
        0
    );
}

#[test]
fn oci_layout_hostile_inputs_are_refused() {
    let (t, s) = store();
    // A blob that is a symlink to a host file.
    let layout = t.path().join("l1");
    oci_layout(&layout, Some("x.io/a:b"), false);
    let blobs = layout.join("blobs/sha256");
    let victim = fs::read_dir(&blobs)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    fs::remove_file(&victim).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", &victim).unwrap();
    let e = import::import_path(&s, &layout, None).unwrap_err();
    assert!(e.to_string().contains("symlink"), "{e}");
    // A bare tag with no --name.
    let layout = t.path().join("l2");
    oci_layout(&layout, Some("latest"), false);
    let e = import::import_path(&s, &layout, None).unwrap_err();
    assert!(e.to_string().contains("--name"), "{e}");
    // A blob whose content is not its digest (a fresh store: the first import copied
    // the same layers before it stopped, and present blobs are not copied again).
    let (t, s) = store();
    let layout = t.path().join("l3");
    oci_layout(&layout, Some("x.io/a:c"), false);
    for e in fs::read_dir(layout.join("blobs/sha256")).unwrap() {
        let p = e.unwrap().path();
        let b = fs::read(&p).unwrap();
        if b.starts_with(&[0x1f, 0x8b]) {
            let mut b2 = b.clone();
            b2.push(0);
            fs::write(&p, b2).unwrap();
        }
    }
    let e = import::import_path(&s, &layout, None).unwrap_err();
    assert!(matches!(e, StoreError::SizeMismatch { .. }), "{e}");
    assert!(s.resolve("x.io/a:c").unwrap().is_none());
}

fn docker_archive(path: &Path, repo_tags: Option<&[&str]>, bad_diff: bool) -> String {
    let layer = layer_tar(&[("hello", b"world")]);
    let diff = if bad_diff {
        sha256_of(b"nope")
    } else {
        sha256_of(&layer)
    };
    let cfg = config_json(&[diff], &["/hello"]);
    let cfg_name = format!("{}.json", &sha256_of(&cfg)[7..]);
    let manifest = serde_json::to_vec(&serde_json::json!([{
        "Config": cfg_name,
        "RepoTags": repo_tags,
        "Layers": ["dup/layer.tar"],
    }]))
    .unwrap();
    let mut b = tar::Builder::new(fs::File::create(path).unwrap());
    for (name, data) in [
        ("manifest.json", &manifest[..]),
        (cfg_name.as_str(), &cfg[..]),
        ("abc/layer.tar", &layer[..]),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, name, data).unwrap();
    }
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_size(0);
    h.set_mode(0o777);
    b.append_link(&mut h, "dup/layer.tar", "../abc/layer.tar")
        .unwrap();
    b.finish().unwrap();
    sha256_of(&cfg)
}

#[test]
fn docker_archive_import() {
    let (t, s) = store();
    let a = t.path().join("img.tar");
    let id = docker_archive(
        &a,
        Some(&["busybox:1.36", "example.com:5000/me/bb:v1"]),
        false,
    );
    let got = import::import_path(&s, &a, None).unwrap();
    assert_eq!(
        got,
        [
            ("docker.io/library/busybox:1.36".to_string(), id.clone()),
            ("example.com:5000/me/bb:v1".to_string(), id.clone())
        ]
    );
    let img = s.resolve("busybox:1.36").unwrap().unwrap();
    assert_eq!(img.names.len(), 2);
    let r = s.rootfs("busybox:1.36", "h").unwrap();
    assert_eq!(fs::read(r.lower_dirs[0].join("hello")).unwrap(), b"world");
    assert_eq!(s.check().unwrap(), Vec::<String>::new());
    // Wrong diff ID: refused at import, nothing tagged.
    let b = t.path().join("bad.tar");
    docker_archive(&b, Some(&["bad:1"]), true);
    assert!(import::import_path(&s, &b, None).is_err());
    assert!(s.resolve("bad:1").unwrap().is_none());
    // Untagged archive needs --name.
    let c = t.path().join("untagged.tar");
    docker_archive(&c, None, false);
    assert!(import::import_path(&s, &c, None)
        .unwrap_err()
        .to_string()
        .contains("--name"));
    assert_eq!(
        import::import_path(&s, &c, Some("named")).unwrap()[0].0,
        "docker.io/library/named:latest"
    );
    // Not an archive at all.
    let d = t.path().join("junk");
    fs::write(&d, b"not a tar").unwrap();
    assert!(import::import_path(&s, &d, None).is_err());
}

#[test]
fn a_directory_becomes_a_one_layer_image_deterministically() {
    let (t, s) = store();
    let dir = t.path().join("root");
    fs::create_dir_all(dir.join("bin")).unwrap();
    fs::write(dir.join("bin/busybox"), b"ELF").unwrap();
    std::os::unix::fs::symlink("busybox", dir.join("bin/sh")).unwrap();
    let cfg = DirImageConfig {
        cmd: vec!["sh".into()],
        env: vec!["X=1".into()],
        ..Default::default()
    };
    let (name, id) = import::import_dir(&s, &dir, "localhost/bb", &cfg).unwrap();
    assert_eq!(name, "localhost/bb:latest");
    let r = s.rootfs("localhost/bb", "h").unwrap();
    assert_eq!(r.image_id, id);
    assert_eq!(r.config.env[1], "X=1");
    assert!(r.config.env[0].starts_with("PATH="));
    assert_eq!(
        fs::read_link(r.lower_dirs[0].join("bin/sh")).unwrap(),
        PathBuf::from("busybox")
    );
    let img = s.resolve("localhost/bb").unwrap().unwrap();
    // Same tree, same layer digest.
    let (_, _) = import::import_dir(&s, &dir, "localhost/bb2", &cfg).unwrap();
    let img2 = s.resolve("localhost/bb2").unwrap().unwrap();
    assert_eq!(img.layers[0].digest(), img2.layers[0].digest());
}

#[test]
fn index_without_the_host_platform_is_refused() {
    let (_t, s) = store();
    let idx = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": sha256_of(b"m"), "size": 1,
            "platform": {"os": "linux", "architecture": "s390x"}}],
    }))
    .unwrap();
    let d = desc("application/vnd.oci.image.index.v1+json", &idx);
    s.write_blob(&d, &idx).unwrap();
    s.set_tag("x.io/multi:1", &d).unwrap();
    let e = s.resolve("x.io/multi:1").unwrap_err();
    assert!(e.to_string().contains("no manifest for linux/"), "{e}");
}

/// The unpacked layers work as overlayfs lower dirs: the upper layer's file wins, its
/// whiteout hides the lower file, its opaque dir hides the lower dir's contents (root only:
/// it mounts).
#[test]
fn unpacked_layers_mount_as_overlay_with_whiteouts_applied() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: needs root to mount overlayfs");
        return;
    }
    let (t, s) = store();
    let dir = t.path().join("layout");
    fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
    let put = |data: &[u8]| {
        fs::write(dir.join("blobs/sha256").join(&sha256_of(data)[7..]), data).unwrap()
    };
    let l1 = layer_tar(&[
        ("etc/os-release", b"one"),
        ("etc/gone", b"g"),
        ("var/old", b"o"),
    ]);
    let l2 = layer_tar(&[
        ("etc/os-release", b"two"),
        ("etc/.wh.gone", b""),
        ("var/.wh..wh..opq", b""),
        ("var/new", b"n"),
    ]);
    put(&l1);
    put(&l2);
    let cfg = config_json(&[sha256_of(&l1), sha256_of(&l2)], &["sh"]);
    put(&cfg);
    let m = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "config": desc("application/vnd.oci.image.config.v1+json", &cfg),
        "layers": [desc("application/vnd.oci.image.layer.v1.tar", &l1), desc("application/vnd.oci.image.layer.v1.tar", &l2)],
    }))
    .unwrap();
    put(&m);
    fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    fs::write(
        dir.join("index.json"),
        serde_json::to_vec(&serde_json::json!({"schemaVersion": 2, "manifests": [desc("application/vnd.oci.image.manifest.v1+json", &m)]})).unwrap(),
    )
    .unwrap();
    import::import_path(&s, &dir, Some("ovl")).unwrap();
    let r = s.rootfs("ovl", "h").unwrap();
    let lower: Vec<String> = r
        .lower_dirs
        .iter()
        .map(|d| d.display().to_string())
        .collect();
    let mnt = t.path().join("mnt");
    fs::create_dir(&mnt).unwrap();
    let st = std::process::Command::new("mount")
        .args(["-t", "overlay", "overlay", "-o"])
        .arg(format!("lowerdir={}", lower.join(":")))
        .arg(&mnt)
        .status()
        .unwrap();
    assert!(st.success());
    let seen = (
        fs::read(mnt.join("etc/os-release")).ok(),
        mnt.join("etc/gone").exists(),
        mnt.join("var/old").exists(),
        fs::read(mnt.join("var/new")).ok(),
    );
    let _ = std::process::Command::new("umount").arg(&mnt).status();
    assert_eq!(
        seen,
        (Some(b"two".to_vec()), false, false, Some(b"n".to_vec()))
    );
}
