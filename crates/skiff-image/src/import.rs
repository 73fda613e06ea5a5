//! Getting images into the store without a registry: an OCI layout directory, a
//! docker-archive tar (`docker save`), or a plain directory packed as a one-layer image.
//! Every blob is verified (digest and size) as it is copied; the inputs are hostile: sizes
//! are capped and the layout's files are opened without following any symlink.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::OwnedFd;
use std::path::Path;

use oci_spec::image::{Descriptor, ImageIndex, MediaType};
use rustix::fs::{Mode, OFlags, ResolveFlags};

use crate::digest::{self, HashingReader};
use crate::store::{
    self, candidate_names, choose_platform, io_err, ContentStore, StoreError, MAX_MANIFEST_SIZE,
};

/// The most entries a docker archive may have (files of the archive, not of its layers).
const MAX_ARCHIVE_ENTRIES: u64 = 100_000;
/// The most images one import names.
const MAX_IMPORT_IMAGES: usize = 1000;

/// What was imported: `(name, image id)` per name.
pub type Imported = Vec<(String, String)>;

/// Imports `path`: an OCI layout directory (it has `oci-layout`) or a docker-archive tar.
/// `name` names the image (required when the input does not name it, and only for a
/// single image).
pub fn import_path(
    store: &ContentStore,
    path: &Path,
    name: Option<&str>,
) -> Result<Imported, StoreError> {
    let md = std::fs::metadata(path).map_err(io_err(path))?;
    if md.is_dir() {
        import_oci_layout(store, path, name)
    } else {
        import_docker_archive(store, path, name)
    }
}

/// The full name a user's `name` stands for (`busybox` → `docker.io/library/busybox:latest`).
pub fn full_name(name: &str) -> String {
    candidate_names(name)
        .pop()
        .unwrap_or_else(|| name.to_string())
}

// ------------------------------------------------------------------------------------
// OCI layout

struct Layout {
    dir: OwnedFd,
}

impl Layout {
    fn open(path: &Path) -> Result<Self, StoreError> {
        let dir = rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| io_err(path)(e.into()))?;
        Ok(Self { dir })
    }

    /// A regular file of the layout, never through a symlink, never outside the dir.
    fn file(&self, rel: &str) -> Result<File, StoreError> {
        let fd = rustix::fs::openat2(
            &self.dir,
            rel,
            OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NONBLOCK,
            Mode::empty(),
            ResolveFlags::NO_SYMLINKS | ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS,
        )
        .map_err(|e| match e {
            rustix::io::Errno::NOENT => StoreError::NotFound(format!("{rel} in the OCI layout")),
            rustix::io::Errno::LOOP | rustix::io::Errno::XDEV => {
                StoreError::Invalid(format!("{rel}: symlinks are not allowed in an OCI layout"))
            }
            e => io_err(Path::new(rel))(e.into()),
        })?;
        let f = File::from(fd);
        let md = f.metadata().map_err(io_err(Path::new(rel)))?;
        if !md.is_file() {
            return Err(StoreError::Invalid(format!("{rel}: not a regular file")));
        }
        Ok(f)
    }

    fn blob(&self, digest: &str) -> Result<File, StoreError> {
        let hex = digest::sha256_hex(digest).ok_or_else(|| StoreError::BadDigest(digest.into()))?;
        self.file(&format!("blobs/sha256/{hex}"))
    }
}

fn read_capped(mut f: impl Read, max: u64, what: &str) -> Result<Vec<u8>, StoreError> {
    let mut buf = Vec::new();
    (&mut f)
        .take(max + 1)
        .read_to_end(&mut buf)
        .map_err(io_err(Path::new(what)))?;
    if buf.len() as u64 > max {
        return Err(StoreError::TooLarge {
            what: what.to_string(),
            max,
        });
    }
    Ok(buf)
}

/// Copies a blob from `src` into the store, verified against `desc`.
fn copy_blob(
    store: &ContentStore,
    mut src: impl Read,
    desc: &Descriptor,
) -> Result<(), StoreError> {
    if store.has_blob(desc.digest().as_ref()) {
        return Ok(());
    }
    let mut ing = store.ingest(desc)?;
    if ing.is_present() {
        return Ok(());
    }
    // One byte more than the descriptor says: the ingest refuses it (an oversize blob).
    io::copy(&mut (&mut src).take(desc.size() + 1), &mut ing)
        .map_err(|e| store::ingest_write_err(e, desc))?;
    ing.commit()
}

/// Imports the images an OCI layout's `index.json` lists.
pub fn import_oci_layout(
    store: &ContentStore,
    path: &Path,
    name: Option<&str>,
) -> Result<Imported, StoreError> {
    let layout = Layout::open(path)?;
    let marker = read_capped(layout.file("oci-layout")?, 4096, "oci-layout")?;
    let marker: serde_json::Value = serde_json::from_slice(&marker)
        .map_err(|e| StoreError::Invalid(format!("oci-layout: {e}")))?;
    if marker
        .get("imageLayoutVersion")
        .and_then(|v| v.as_str())
        .is_none()
    {
        return Err(StoreError::Invalid(
            "oci-layout: no imageLayoutVersion".into(),
        ));
    }
    let index = read_capped(layout.file("index.json")?, MAX_MANIFEST_SIZE, "index.json")?;
    let index: ImageIndex = serde_json::from_slice(&index)
        .map_err(|e| StoreError::Invalid(format!("index.json: {e}")))?;
    let entries = index.manifests();
    if entries.is_empty() {
        return Err(StoreError::Invalid(format!(
            "{}: index.json lists no image",
            path.display()
        )));
    }
    if entries.len() > MAX_IMPORT_IMAGES {
        return Err(StoreError::Invalid(
            "index.json lists too many images".into(),
        ));
    }
    if name.is_some() && entries.len() > 1 {
        return Err(StoreError::Invalid(format!(
            "{}: the layout has {} images; --name names only one",
            path.display(),
            entries.len()
        )));
    }
    let _lease = store.lease()?;
    let mut out = Vec::new();
    for d in entries {
        copy_tree(store, &layout, d, 0)?;
        let ref_name = d
            .annotations()
            .as_ref()
            .and_then(|a| a.get(store::REF_NAME))
            .cloned();
        let n = match (name, ref_name) {
            (Some(n), _) => full_name(n),
            (None, Some(r)) if r.contains('/') || r.contains(':') => full_name(&r),
            (None, r) => {
                return Err(StoreError::Invalid(format!(
                    "{}: the layout names the image {}; give it a full name with --name",
                    path.display(),
                    r.map_or("by digest only".to_string(), |r| format!(
                        "only by the tag {r:?}"
                    ))
                )))
            }
        };
        let mut target = d.clone();
        target.set_annotations(None);
        store.set_tag(&n, &target)?;
        let img = store
            .resolve(&n)?
            .ok_or_else(|| StoreError::NotFound(n.clone()))?;
        out.push((n, img.id));
    }
    Ok(out)
}

/// Copies a manifest or index and what it references (for an index: the host platform's
/// manifest only).
fn copy_tree(
    store: &ContentStore,
    layout: &Layout,
    d: &Descriptor,
    depth: u32,
) -> Result<(), StoreError> {
    let digest = d.digest().to_string();
    if d.size() > MAX_MANIFEST_SIZE {
        return Err(StoreError::TooLarge {
            what: format!("manifest {digest}"),
            max: MAX_MANIFEST_SIZE,
        });
    }
    let bytes = read_capped(layout.blob(&digest)?, MAX_MANIFEST_SIZE, &digest)?;
    let actual = digest::sha256_of(&bytes);
    if actual != digest || bytes.len() as u64 != d.size() {
        return Err(StoreError::DigestMismatch {
            expected: digest,
            actual,
        });
    }
    let mt = store::sniff_media_type(&bytes);
    let is_index = mt == MediaType::ImageIndex.to_string() || mt == store::DOCKER_MANIFEST_LIST;
    if is_index {
        if depth > 1 {
            return Err(StoreError::Unsupported(format!("{digest}: nested indexes")));
        }
        let idx: ImageIndex = serde_json::from_slice(&bytes)
            .map_err(|e| StoreError::Invalid(format!("{digest}: {e}")))?;
        let chosen = choose_platform(idx.manifests()).ok_or_else(|| {
            StoreError::Unsupported(format!(
                "{digest}: no manifest for linux/{}",
                store::host_arch()
            ))
        })?;
        copy_tree(store, layout, chosen, depth + 1)?;
    } else {
        #[derive(serde::Deserialize)]
        struct M {
            config: Descriptor,
            #[serde(default)]
            layers: Vec<Descriptor>,
        }
        let m: M = serde_json::from_slice(&bytes)
            .map_err(|e| StoreError::Invalid(format!("manifest {digest}: {e}")))?;
        if m.config.size() > MAX_MANIFEST_SIZE {
            return Err(StoreError::TooLarge {
                what: format!("config {}", m.config.digest()),
                max: MAX_MANIFEST_SIZE,
            });
        }
        copy_blob(store, layout.blob(m.config.digest().as_ref())?, &m.config)?;
        for l in &m.layers {
            copy_blob(store, layout.blob(l.digest().as_ref())?, l)?;
        }
    }
    store.write_blob(d, &bytes)
}

// ------------------------------------------------------------------------------------
// docker-archive

#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ArchiveManifest {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

/// Where each regular file of the archive is (offset, size), and its symlinks.
struct ArchiveIndex {
    files: BTreeMap<String, (u64, u64)>,
    links: BTreeMap<String, String>,
}

fn clean(p: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    out.join("/")
}

impl ArchiveIndex {
    fn scan(file: &mut File) -> Result<Self, StoreError> {
        let mut files = BTreeMap::new();
        let mut links = BTreeMap::new();
        let mut archive = tar::Archive::new(&mut *file);
        let bad = |e: io::Error| StoreError::Invalid(format!("reading the archive: {e}"));
        for (n, entry) in archive.entries().map_err(bad)?.enumerate() {
            if n as u64 >= MAX_ARCHIVE_ENTRIES {
                return Err(StoreError::Invalid(
                    "the archive has too many entries".into(),
                ));
            }
            let entry = entry.map_err(bad)?;
            let path = clean(&String::from_utf8_lossy(&entry.path_bytes()));
            match entry.header().entry_type() {
                tar::EntryType::Regular | tar::EntryType::Continuous => {
                    files.insert(path, (entry.raw_file_position(), entry.size()));
                }
                tar::EntryType::Symlink => {
                    if let Some(t) = entry.link_name_bytes() {
                        let t = String::from_utf8_lossy(&t).into_owned();
                        let base = path.rsplit_once('/').map_or("", |(d, _)| d);
                        let target = clean(&format!("{base}/{t}"));
                        links.insert(path, target);
                    }
                }
                tar::EntryType::Link => {
                    if let Some(t) = entry.link_name_bytes() {
                        links.insert(path, clean(&String::from_utf8_lossy(&t)));
                    }
                }
                _ => {}
            }
        }
        Ok(Self { files, links })
    }

    fn locate(&self, name: &str) -> Result<(u64, u64), StoreError> {
        let mut p = clean(name);
        for _ in 0..16 {
            if let Some(f) = self.files.get(&p) {
                return Ok(*f);
            }
            match self.links.get(&p) {
                Some(t) => p = t.clone(),
                None => break,
            }
        }
        Err(StoreError::NotFound(format!("{name} in the archive")))
    }
}

/// A bounded window of the archive file.
fn section(file: &File, (off, size): (u64, u64)) -> Result<io::Take<File>, StoreError> {
    let mut f = file.try_clone().map_err(io_err(Path::new("archive")))?;
    f.seek(SeekFrom::Start(off))
        .map_err(io_err(Path::new("archive")))?;
    Ok(f.take(size))
}

/// Imports the images of a `docker save` archive.
pub fn import_docker_archive(
    store: &ContentStore,
    path: &Path,
    name: Option<&str>,
) -> Result<Imported, StoreError> {
    let mut file = store::open_regular(path).map_err(io_err(path))?;
    let idx = ArchiveIndex::scan(&mut file)?;
    let mf = idx.locate("manifest.json").map_err(|_| {
        StoreError::Invalid(format!(
            "{}: neither an OCI layout directory nor a docker archive (no manifest.json)",
            path.display()
        ))
    })?;
    let mf = read_capped(section(&file, mf)?, MAX_MANIFEST_SIZE, "manifest.json")?;
    let items: Vec<ArchiveManifest> = serde_json::from_slice(&mf)
        .map_err(|e| StoreError::Invalid(format!("manifest.json: {e}")))?;
    if items.is_empty() || items.len() > MAX_IMPORT_IMAGES {
        return Err(StoreError::Invalid(format!(
            "manifest.json lists {} images",
            items.len()
        )));
    }
    if name.is_some() && items.len() > 1 {
        return Err(StoreError::Invalid(format!(
            "{}: the archive has {} images; --name names only one",
            path.display(),
            items.len()
        )));
    }
    let _lease = store.lease()?;
    let mut out = Vec::new();
    for item in items {
        let cfg_bytes = read_capped(
            section(&file, idx.locate(&item.config)?)?,
            MAX_MANIFEST_SIZE,
            &item.config,
        )?;
        let config: oci_spec::image::ImageConfiguration = serde_json::from_slice(&cfg_bytes)
            .map_err(|e| StoreError::Invalid(format!("{}: {e}", item.config)))?;
        let diff_ids = config.rootfs().diff_ids();
        if diff_ids.len() != item.layers.len() {
            return Err(StoreError::Invalid(format!(
                "{}: {} layers but {} diff_ids",
                item.config,
                item.layers.len(),
                diff_ids.len()
            )));
        }
        let config_desc = descriptor(
            store::DOCKER_CONFIG,
            &digest::sha256_of(&cfg_bytes),
            cfg_bytes.len() as u64,
        )?;
        store.write_blob(&config_desc, &cfg_bytes)?;
        let mut layers = Vec::new();
        for (l, diff_id) in item.layers.iter().zip(diff_ids) {
            let loc = idx.locate(l)?;
            // Pass 1: the blob's digest, and the diff ID of its uncompressed content.
            let mut raw = HashingReader::new(section(&file, loc)?, loc.1);
            let compression = {
                let (c, mut tar_stream) = crate::unpack::decompress(&mut raw)
                    .map_err(|e| StoreError::Invalid(format!("{l}: {e}")))?;
                let mut h = HashingReader::new(&mut tar_stream, u64::MAX);
                io::copy(&mut h, &mut io::sink())
                    .map_err(|e| StoreError::Invalid(format!("{l}: {e}")))?;
                let (got, _) = h
                    .drain()
                    .map_err(|e| StoreError::Invalid(format!("{l}: {e}")))?;
                if &got != diff_id {
                    return Err(StoreError::DigestMismatch {
                        expected: diff_id.clone(),
                        actual: got,
                    });
                }
                c
            };
            let (blob_digest, size) = raw
                .drain()
                .map_err(|e| StoreError::Invalid(format!("{l}: {e}")))?;
            let mt = match compression {
                crate::unpack::Compression::None => store::DOCKER_LAYER_TAR,
                crate::unpack::Compression::Gzip => store::DOCKER_LAYER_GZIP,
                crate::unpack::Compression::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
            };
            let desc = descriptor(mt, &blob_digest, size)?;
            // Pass 2: the copy, verified again by the ingest.
            copy_blob(store, section(&file, loc)?, &desc)?;
            layers.push(desc);
        }
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": store::DOCKER_MANIFEST,
            "config": config_desc,
            "layers": layers,
        });
        let mbytes =
            serde_json::to_vec(&manifest).map_err(|e| StoreError::Invalid(e.to_string()))?;
        let mdesc = descriptor(
            store::DOCKER_MANIFEST,
            &digest::sha256_of(&mbytes),
            mbytes.len() as u64,
        )?;
        store.write_blob(&mdesc, &mbytes)?;
        let names: Vec<String> = match (name, item.repo_tags.filter(|t| !t.is_empty())) {
            (Some(n), _) => vec![full_name(n)],
            (None, Some(tags)) => tags.iter().map(|t| full_name(t)).collect(),
            (None, None) => {
                return Err(StoreError::Invalid(format!(
                    "{}: the archive does not name the image {}; give it a name with --name",
                    path.display(),
                    config_desc.digest()
                )))
            }
        };
        for n in names {
            store.set_tag(&n, &mdesc)?;
            out.push((n, config_desc.digest().to_string()));
        }
    }
    Ok(out)
}

fn descriptor(media_type: &str, digest: &str, size: u64) -> Result<Descriptor, StoreError> {
    let d: oci_spec::image::Digest = digest
        .parse()
        .map_err(|_| StoreError::BadDigest(digest.to_string()))?;
    Ok(Descriptor::new(MediaType::from(media_type), size, d))
}

// ------------------------------------------------------------------------------------
// A directory as a one-layer image

/// The process config of an image made from a directory.
#[derive(Debug, Clone, Default)]
pub struct DirImageConfig {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    /// `K=V`; `PATH` defaults to the usual one when not given.
    pub env: Vec<String>,
    pub working_dir: Option<String>,
    pub user: Option<String>,
}

/// Packs `dir` (its contents become `/`; symlinks kept as symlinks; owners 0, mtimes
/// fixed, so the same tree gives the same image ID) into a one-layer image named `name`.
pub fn import_dir(
    store: &ContentStore,
    dir: &Path,
    name: &str,
    cfg: &DirImageConfig,
) -> Result<(String, String), StoreError> {
    let md = std::fs::symlink_metadata(dir).map_err(io_err(dir))?;
    if !md.is_dir() {
        return Err(StoreError::Invalid(format!(
            "{}: not a directory",
            dir.display()
        )));
    }
    let _lease = store.lease()?;
    // The layer is written to a temp file in the store (same filesystem), hashed, then
    // ingested: its digest is unknown until the end.
    let tmp_path = store
        .root()
        .join("ingest")
        .join(format!("dir.tmp-{}", uuid::Uuid::new_v4().simple()));
    let res = (|| {
        let tmp = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&tmp_path)
            .map_err(io_err(&tmp_path))?;
        let mut hashing = HashWriter {
            inner: io::BufWriter::new(tmp.try_clone().map_err(io_err(&tmp_path))?),
            hasher: digest::Hasher::default(),
            count: 0,
        };
        {
            let mut b = tar::Builder::new(&mut hashing);
            b.mode(tar::HeaderMode::Deterministic);
            b.follow_symlinks(false);
            b.append_dir_all(".", dir)
                .map_err(|e| StoreError::Invalid(format!("packing {}: {e}", dir.display())))?;
            b.finish().map_err(io_err(&tmp_path))?;
        }
        hashing.inner.flush().map_err(io_err(&tmp_path))?;
        let size = hashing.count;
        let layer_digest = hashing.hasher.finish();
        let layer = descriptor(MediaType::ImageLayer.as_ref(), &layer_digest, size)?;
        let mut src = tmp;
        src.seek(SeekFrom::Start(0)).map_err(io_err(&tmp_path))?;
        copy_blob(store, src, &layer)?;
        let mut env = cfg.env.clone();
        if !env.iter().any(|e| e.starts_with("PATH=")) {
            env.insert(
                0,
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
            );
        }
        let mut c = serde_json::Map::new();
        c.insert("Env".into(), env.into());
        if !cfg.entrypoint.is_empty() {
            c.insert("Entrypoint".into(), cfg.entrypoint.clone().into());
        }
        if !cfg.cmd.is_empty() {
            c.insert("Cmd".into(), cfg.cmd.clone().into());
        }
        if let Some(w) = &cfg.working_dir {
            c.insert("WorkingDir".into(), w.clone().into());
        }
        if let Some(u) = &cfg.user {
            c.insert("User".into(), u.clone().into());
        }
        let config = serde_json::json!({
            "created": rfc3339_now(),
            "architecture": store::host_arch(),
            "os": "linux",
            "config": c,
            "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
            "history": [{"created_by": format!("skiff image import --from-dir {}", dir.display())}],
        });
        let cbytes = serde_json::to_vec(&config).map_err(|e| StoreError::Invalid(e.to_string()))?;
        let cdesc = descriptor(
            MediaType::ImageConfig.as_ref(),
            &digest::sha256_of(&cbytes),
            cbytes.len() as u64,
        )?;
        store.write_blob(&cdesc, &cbytes)?;
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": MediaType::ImageManifest.to_string(),
            "config": cdesc,
            "layers": [layer],
        });
        let mbytes =
            serde_json::to_vec(&manifest).map_err(|e| StoreError::Invalid(e.to_string()))?;
        let mdesc = descriptor(
            MediaType::ImageManifest.as_ref(),
            &digest::sha256_of(&mbytes),
            mbytes.len() as u64,
        )?;
        store.write_blob(&mdesc, &mbytes)?;
        let n = full_name(name);
        store.set_tag(&n, &mdesc)?;
        Ok((n, cdesc.digest().to_string()))
    })();
    let _ = std::fs::remove_file(&tmp_path);
    res
}

struct HashWriter<W> {
    inner: W,
    hasher: digest::Hasher,
    count: u64,
}

impl<W: Write> Write for HashWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Now as RFC 3339 UTC (`2026-12-04T10:11:12Z`); a few lines rather than a date crate.
pub fn rfc3339_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    rfc3339(secs)
}

/// Seconds since the epoch as RFC 3339 UTC (Howard Hinnant's civil-from-days algorithm).
pub fn rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}
