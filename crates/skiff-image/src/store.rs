//! The content store: an OCI image layout (`oci-layout`, `index.json`, `blobs/sha256/<hex>`)
//! under `<data dir>/images`, plus skiff's own working dirs beside it:
//!
//! ```text
//! images/
//!   oci-layout, index.json      the layout; index.json names every tagged image
//!   blobs/sha256/<hex>          verified content (manifests, indexes, configs, layers)
//!   ingest/<hex>.partial        blobs being written (flock'd by their writer)
//!   layers/                     unpacked layers (see crate::layers)
//!   used/<image id hex>         mtime = when a container last used the image (GC's LRU)
//!   index.lock                  serialises index.json rewrites
//! ```
//!
//! Every byte is checked against its descriptor before it is published: an ingest writes to
//! a partial file while hashing, fails as soon as more bytes than the descriptor's size come,
//! and publishes by rename only when size and digest match. A crash leaves only partial and
//! `*.tmp-*` files, which [`ContentStore::open`] sweeps (unless a live writer holds them).

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use oci_spec::image::{Descriptor, ImageConfiguration, ImageIndex, MediaType};
use rustix::fs::FlockOperation;

use crate::digest::{self, Hasher};

/// containerd's cap on a manifest (`MaxManifestSize`, 4 * 1048 * 1048 bytes, sic); skiff
/// applies it to indexes and configs too.
pub const MAX_MANIFEST_SIZE: u64 = 4 * 1048 * 1048;
/// The annotation that names an image in `index.json` (value: the full reference,
/// `docker.io/library/busybox:latest`).
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
/// Media types of Docker's distribution formats (schema2), accepted beside OCI's.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
pub const DOCKER_LAYER_TAR: &str = "application/vnd.docker.image.rootfs.diff.tar";

/// How old a stray `*.tmp-*` item must be before a sweep removes it (a writer that just
/// created it has not locked it yet).
const SWEEP_MIN_AGE: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("invalid digest {0:?} (expected sha256:<64 lowercase hex digits>)")]
    BadDigest(String),
    #[error("digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch { expected: String, actual: String },
    #[error("size mismatch for {digest}: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        digest: String,
        expected: u64,
        actual: u64,
    },
    #[error("{what} is larger than {max} bytes")]
    TooLarge { what: String, max: u64 },
    #[error("{0}: not found in the image store")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Unsupported(String),
    #[error("layer {diff_id}: {source}")]
    Unpack {
        diff_id: String,
        source: crate::unpack::UnpackError,
    },
}

pub(crate) fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The content store rooted at `<data dir>/images`.
#[derive(Debug, Clone)]
pub struct ContentStore {
    root: PathBuf,
}

/// One image of the store: a tagged (or digest-named) entry of `index.json`, resolved to the
/// host platform's manifest and its config.
#[derive(Debug, Clone)]
pub struct StoredImage {
    /// The names (`index.json` ref.name annotations) pointing at [`Self::target`].
    pub names: Vec<String>,
    /// The `index.json` entry: a manifest, or an index the platform manifest came from. Its
    /// digest is the repo digest (`name@<digest>`).
    pub target: Descriptor,
    /// The host platform's manifest.
    pub manifest: Descriptor,
    /// The image ID, `sha256:<config digest>`.
    pub id: String,
    /// The config descriptor.
    pub config_descriptor: Descriptor,
    /// The parsed image config.
    pub config: ImageConfiguration,
    /// The layers, bottom-most first (manifest order).
    pub layers: Vec<Descriptor>,
    /// `config.rootfs.diff_ids`, one per layer.
    pub diff_ids: Vec<String>,
    /// Bytes the image takes in the store: the target (and manifest), config and compressed
    /// layers (what `podman images` and the kubelet's `Pulled` event show).
    pub size: u64,
}

impl StoredImage {
    /// `<repository>@<target digest>` for each name (the kubelet's `imageID` form).
    pub fn repo_digests(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .names
            .iter()
            .map(|n| format!("{}@{}", split_name(n).0, self.target.digest()))
            .collect();
        v.dedup();
        v
    }

    /// The config's creation time (RFC 3339), if it says.
    pub fn created(&self) -> Option<&str> {
        self.config.created().as_deref()
    }
}

/// `(repository, tag or digest)` of a full reference: `docker.io/library/busybox:latest` →
/// (`docker.io/library/busybox`, `latest`); `repo@sha256:…` → (`repo`, `sha256:…`); a name
/// with neither → (`name`, ``).
pub fn split_name(name: &str) -> (&str, &str) {
    if let Some((repo, d)) = name.split_once('@') {
        return (repo, d);
    }
    // The tag is after the last ':' that comes after the last '/' (a registry port is not
    // a tag).
    let slash = name.rfind('/').map_or(0, |i| i + 1);
    match name[slash..].rfind(':') {
        Some(i) => (&name[..slash + i], &name[slash + i + 1..]),
        None => (name, ""),
    }
}

/// The names a user may type for `name` (as `docker`/`podman` accept them): the name itself,
/// then Docker Hub's defaults (`busybox` → `docker.io/library/busybox:latest`).
///
/// A small local normaliser so that the store's CLI works on its own; the full Kubernetes
/// reference rules (InvalidImageName) live in `crate::reference`.
pub fn candidate_names(name: &str) -> Vec<String> {
    let mut out = vec![name.to_string()];
    let (repo, tag) = split_name(name);
    let with_tag = if tag.is_empty() {
        format!("{repo}:latest")
    } else {
        name.to_string()
    };
    let first = repo.split('/').next().unwrap_or("");
    let has_registry =
        repo.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    let full = if has_registry {
        with_tag
    } else if repo.contains('/') {
        format!("docker.io/{with_tag}")
    } else {
        format!("docker.io/library/{with_tag}")
    };
    for c in [
        if tag.is_empty() {
            format!("{repo}:latest")
        } else {
            name.to_string()
        },
        full,
    ] {
        if !out.contains(&c) {
            out.push(c);
        }
    }
    out
}

/// The host's platform as OCI names it (Go's GOARCH).
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

fn is_index_type(mt: &str) -> bool {
    mt == MediaType::ImageIndex.to_string() || mt == DOCKER_MANIFEST_LIST
}

fn is_manifest_type(mt: &str) -> bool {
    mt == MediaType::ImageManifest.to_string() || mt == DOCKER_MANIFEST
}

/// Whether a layer media type is one skiff unpacks (plain, gzip or zstd tar; OCI or
/// Docker; non-distributable variants included).
pub fn is_layer_type(mt: &str) -> bool {
    mt.starts_with("application/vnd.oci.image.layer.v1.tar")
        || mt.starts_with("application/vnd.oci.image.layer.nondistributable.v1.tar")
        || mt == DOCKER_LAYER_GZIP
        || mt == DOCKER_LAYER_TAR
}

impl ContentStore {
    /// Opens (creating as needed) the store at `root`, and sweeps what a crash left: partial
    /// ingests no writer holds, `*.tmp-*` files and unpack dirs no unpacker holds.
    pub fn open(root: &Path) -> Result<Self, StoreError> {
        for d in [
            root.to_path_buf(),
            root.join("blobs"),
            root.join("blobs/sha256"),
            root.join("ingest"),
            root.join("layers"),
            root.join("used"),
        ] {
            match fs::DirBuilder::new().mode_0711().create(&d) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    let md = fs::symlink_metadata(&d).map_err(io_err(&d))?;
                    if !md.is_dir() {
                        return Err(StoreError::Invalid(format!(
                            "{}: not a directory",
                            d.display()
                        )));
                    }
                }
                Err(e) => return Err(io_err(&d)(e)),
            }
        }
        let store = ContentStore {
            root: root.to_path_buf(),
        };
        let layout = root.join("oci-layout");
        if fs::symlink_metadata(&layout).is_err() {
            write_atomic(&layout, br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        }
        let index = root.join("index.json");
        if fs::symlink_metadata(&index).is_err() {
            let _lock = store.lock_index()?;
            if fs::symlink_metadata(&index).is_err() {
                store.write_index(&empty_index())?;
            }
        }
        store.sweep()?;
        Ok(store)
    }

    /// The store's root dir.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `blobs/sha256/<hex>` of `digest`.
    pub fn blob_path(&self, digest: &str) -> Result<PathBuf, StoreError> {
        let hex =
            digest::sha256_hex(digest).ok_or_else(|| StoreError::BadDigest(digest.to_string()))?;
        Ok(self.root.join("blobs/sha256").join(hex))
    }

    /// Whether the blob is present (published blobs are complete and verified).
    pub fn has_blob(&self, digest: &str) -> bool {
        self.blob_path(digest)
            .ok()
            .and_then(|p| fs::symlink_metadata(p).ok())
            .is_some_and(|m| m.is_file())
    }

    /// Starts writing the blob `expected` describes. Another writer of the same digest (this
    /// process or another) makes this wait until it is done; if it published the blob, the
    /// returned ingest is [`Ingest::is_present`] (the caller may skip the download; writing
    /// and committing anyway only verifies).
    pub fn ingest(&self, expected: &Descriptor) -> Result<Ingest, StoreError> {
        let digest = expected.digest().to_string();
        let hex = digest::sha256_hex(&digest)
            .ok_or_else(|| StoreError::BadDigest(digest.clone()))?
            .to_string();
        let path = self.root.join("ingest").join(format!("{hex}.partial"));
        // The partial file is the lock: open, lock, then check it is still the file at that
        // path (a finished writer renames or removes it; a sweep removes unlocked ones).
        for _ in 0..1000 {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .mode(0o600)
                .custom_flags(libc_flags::O_NOFOLLOW | libc_flags::O_CLOEXEC)
                .open(&path)
                .map_err(io_err(&path))?;
            rustix::fs::flock(&file, FlockOperation::LockExclusive)
                .map_err(|e| io_err(&path)(e.into()))?;
            let held = file.metadata().map_err(io_err(&path))?;
            match fs::symlink_metadata(&path) {
                Ok(now) if now.ino() == held.ino() && now.dev() == held.dev() => {}
                _ => continue,
            }
            file.set_len(0).map_err(io_err(&path))?;
            return Ok(Ingest {
                file,
                present: self.has_blob(&digest),
                blob_path: self.root.join("blobs/sha256").join(&hex),
                path,
                digest,
                expected_size: expected.size(),
                written: 0,
                hasher: Hasher::default(),
                done: false,
            });
        }
        Err(StoreError::Invalid(format!(
            "{}: could not lock the ingest file",
            path.display()
        )))
    }

    /// Stores `data` as the blob `digest` (verified), returning its descriptor's size.
    pub fn write_blob(&self, expected: &Descriptor, data: &[u8]) -> Result<(), StoreError> {
        let mut ing = self.ingest(expected)?;
        if ing.is_present() {
            // Verify the caller's bytes anyway (it may rely on them matching).
            let actual = digest::sha256_of(data);
            if actual != expected.digest().to_string() {
                return Err(StoreError::DigestMismatch {
                    expected: expected.digest().to_string(),
                    actual,
                });
            }
            return Ok(());
        }
        ing.write_all(data)
            .map_err(|e| ingest_write_err(e, expected))?;
        ing.commit()
    }

    /// A blob's bytes, at most `max_size` of them, verified against the digest (manifests,
    /// indexes and configs are read whole; a tampered store is caught here).
    pub fn read_blob(&self, digest: &str, max_size: u64) -> Result<Vec<u8>, StoreError> {
        let path = self.blob_path(digest)?;
        let f = open_regular(&path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => StoreError::NotFound(digest.to_string()),
            _ => io_err(&path)(e),
        })?;
        let len = f.metadata().map_err(io_err(&path))?.len();
        if len > max_size {
            return Err(StoreError::TooLarge {
                what: format!("blob {digest}"),
                max: max_size,
            });
        }
        let mut buf = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
        f.take(max_size + 1)
            .read_to_end(&mut buf)
            .map_err(io_err(&path))?;
        if buf.len() as u64 > max_size {
            return Err(StoreError::TooLarge {
                what: format!("blob {digest}"),
                max: max_size,
            });
        }
        let actual = digest::sha256_of(&buf);
        if actual != digest {
            return Err(StoreError::DigestMismatch {
                expected: digest.to_string(),
                actual,
            });
        }
        Ok(buf)
    }

    /// Opens a blob for reading (layers: streamed, verified by their consumer).
    pub fn open_blob(&self, digest: &str) -> Result<File, StoreError> {
        let path = self.blob_path(digest)?;
        open_regular(&path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => StoreError::NotFound(digest.to_string()),
            _ => io_err(&path)(e),
        })
    }

    /// Points `name` (a full reference) at `manifest` (a manifest or an index already in the
    /// store), replacing what it pointed at; `index.json` is rewritten atomically.
    pub fn set_tag(&self, name: &str, manifest: &Descriptor) -> Result<(), StoreError> {
        check_name(name)?;
        let mt = manifest.media_type().to_string();
        if !is_index_type(&mt) && !is_manifest_type(&mt) {
            return Err(StoreError::Unsupported(format!(
                "{name}: media type {mt:?} is neither an image manifest nor an index"
            )));
        }
        let _lock = self.lock_index()?;
        let mut index = self.read_index()?;
        let mut entries: Vec<Descriptor> = index
            .manifests()
            .iter()
            .filter(|d| ref_name(d) != Some(name))
            .cloned()
            .collect();
        let mut d = manifest.clone();
        let mut ann = d.annotations().clone().unwrap_or_default();
        ann.insert(REF_NAME.to_string(), name.to_string());
        d.set_annotations(Some(ann));
        d.set_platform(None);
        entries.push(d);
        index.set_manifests(entries);
        self.write_index(&index)
    }

    /// Removes the name `name` from `index.json`; `false` if no entry had it.
    pub fn remove_tag(&self, name: &str) -> Result<bool, StoreError> {
        let _lock = self.lock_index()?;
        let mut index = self.read_index()?;
        let before = index.manifests().len();
        let entries: Vec<Descriptor> = index
            .manifests()
            .iter()
            .filter(|d| ref_name(d) != Some(name))
            .cloned()
            .collect();
        if entries.len() == before {
            return Ok(false);
        }
        index.set_manifests(entries);
        self.write_index(&index)?;
        Ok(true)
    }

    /// The image `name_or_digest` names: a full name (`docker.io/library/busybox:latest`),
    /// a short one as docker accepts (`busybox`, `busybox:1.36`), the image ID or a unique
    /// prefix of it (at least 3 hex digits, with or without `sha256:`), or a target digest.
    pub fn resolve(&self, name_or_digest: &str) -> Result<Option<StoredImage>, StoreError> {
        let index = self.read_index()?;
        let entries = index.manifests();
        for cand in candidate_names(name_or_digest) {
            if let Some(d) = entries.iter().find(|d| ref_name(d) == Some(cand.as_str())) {
                return self.load(d, &names_of(entries, d)).map(Some);
            }
        }
        // `repo@sha256:…` not stored under that exact name: the target digest decides.
        let (_, maybe_digest) = split_name(name_or_digest);
        let key = if digest::sha256_hex(maybe_digest).is_some() {
            maybe_digest
        } else {
            name_or_digest
        };
        let hex = key.strip_prefix(digest::SHA256_PREFIX).unwrap_or(key);
        if hex.len() < 3 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(None);
        }
        let hex = hex.to_ascii_lowercase();
        let mut found: Vec<StoredImage> = Vec::new();
        for img in self.list()? {
            let id_hex = img.id.trim_start_matches(digest::SHA256_PREFIX);
            let target_hex = img
                .target
                .digest()
                .to_string()
                .trim_start_matches(digest::SHA256_PREFIX)
                .to_string();
            if (id_hex.starts_with(&hex) || target_hex.starts_with(&hex))
                && !found.iter().any(|f| f.id == img.id)
            {
                found.push(img);
            }
        }
        match found.len() {
            0 => Ok(None),
            1 => Ok(found.pop()),
            _ => Err(StoreError::Invalid(format!(
                "{name_or_digest}: ambiguous: matches {} images",
                found.len()
            ))),
        }
    }

    /// Every image of `index.json` (one per target; its names gathered), in index order.
    pub fn list(&self) -> Result<Vec<StoredImage>, StoreError> {
        let index = self.read_index()?;
        let entries = index.manifests();
        let mut seen = std::collections::BTreeSet::new();
        let mut out = Vec::new();
        for d in entries {
            if !seen.insert(d.digest().to_string()) {
                continue;
            }
            out.push(self.load(d, &names_of(entries, d))?);
        }
        Ok(out)
    }

    /// The raw `index.json` entries.
    pub fn index_entries(&self) -> Result<Vec<Descriptor>, StoreError> {
        Ok(self.read_index()?.manifests().clone())
    }

    /// Loads the image an `index.json` entry names.
    fn load(&self, target: &Descriptor, names: &[String]) -> Result<StoredImage, StoreError> {
        let (manifest_desc, manifest_bytes, mut size) = self.platform_manifest(target, 0)?;
        let m: ManifestDoc = parse_json(&manifest_bytes, manifest_desc.digest().as_ref())?;
        if m.schema_version != 2 {
            return Err(StoreError::Unsupported(format!(
                "manifest {}: schemaVersion {} (only 2 is supported)",
                manifest_desc.digest(),
                m.schema_version
            )));
        }
        let config_mt = m.config.media_type().to_string();
        if config_mt != MediaType::ImageConfig.to_string() && config_mt != DOCKER_CONFIG {
            return Err(StoreError::Unsupported(format!(
                "manifest {}: config media type {config_mt:?} is not an image config",
                manifest_desc.digest()
            )));
        }
        let id = m.config.digest().to_string();
        let config_bytes = self.read_blob(&id, MAX_MANIFEST_SIZE)?;
        let config: ImageConfiguration = parse_json(&config_bytes, &id)?;
        if config.os().to_string() != "linux" {
            return Err(StoreError::Unsupported(format!(
                "image {id}: os {:?}, not linux",
                config.os().to_string()
            )));
        }
        let diff_ids = config.rootfs().diff_ids().clone();
        if diff_ids.len() != m.layers.len() {
            return Err(StoreError::Invalid(format!(
                "image {id}: the manifest has {} layers, the config {} diff_ids",
                m.layers.len(),
                diff_ids.len()
            )));
        }
        for (l, diff) in m.layers.iter().zip(&diff_ids) {
            let mt = l.media_type().to_string();
            if !is_layer_type(&mt) {
                return Err(StoreError::Unsupported(format!(
                    "image {id}: layer {} has media type {mt:?}",
                    l.digest()
                )));
            }
            digest::sha256_hex(diff).ok_or_else(|| StoreError::BadDigest(diff.clone()))?;
        }
        size = size
            .saturating_add(m.config.size())
            .saturating_add(m.layers.iter().map(|l| l.size()).sum::<u64>());
        Ok(StoredImage {
            names: names.to_vec(),
            target: target.clone(),
            manifest: manifest_desc,
            id,
            config_descriptor: m.config,
            config,
            layers: m.layers,
            diff_ids,
            size,
        })
    }

    /// The host platform's manifest under `d` (itself, or chosen from an index), with its
    /// bytes and the bytes of the indexes on the way.
    fn platform_manifest(
        &self,
        d: &Descriptor,
        depth: u32,
    ) -> Result<(Descriptor, Vec<u8>, u64), StoreError> {
        let digest = d.digest().to_string();
        if d.size() > MAX_MANIFEST_SIZE {
            return Err(StoreError::TooLarge {
                what: format!("manifest {digest}"),
                max: MAX_MANIFEST_SIZE,
            });
        }
        let bytes = self.read_blob(&digest, MAX_MANIFEST_SIZE)?;
        let mt = d.media_type().to_string();
        let kind = if is_index_type(&mt) || is_manifest_type(&mt) {
            mt
        } else {
            // Some layouts omit or misstate the type; the body says.
            sniff_media_type(&bytes)
        };
        if is_manifest_type(&kind) {
            let size = bytes.len() as u64;
            return Ok((d.clone(), bytes, size));
        }
        if !is_index_type(&kind) || depth > 1 {
            return Err(StoreError::Unsupported(format!(
                "{digest}: media type {kind:?} is not an image manifest or index"
            )));
        }
        let index: ImageIndex = parse_json(&bytes, &digest)?;
        let chosen = choose_platform(index.manifests()).ok_or_else(|| {
            StoreError::Unsupported(format!(
                "{digest}: the image index has no manifest for linux/{}",
                host_arch()
            ))
        })?;
        let (m, mb, size) = self.platform_manifest(chosen, depth + 1)?;
        Ok((m, mb, size + bytes.len() as u64))
    }

    fn read_index(&self) -> Result<ImageIndex, StoreError> {
        let path = self.root.join("index.json");
        let bytes = read_bounded(&path, 64 << 20).map_err(io_err(&path))?;
        serde_json::from_slice(&bytes)
            .map_err(|e| StoreError::Invalid(format!("{}: {e}", path.display())))
    }

    fn write_index(&self, index: &ImageIndex) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(index)
            .map_err(|e| StoreError::Invalid(format!("index.json: {e}")))?;
        write_atomic(&self.root.join("index.json"), &bytes)
    }

    /// Holds `index.lock` (exclusive) until dropped.
    pub(crate) fn lock_index(&self) -> Result<File, StoreError> {
        lock_file(&self.root.join("index.lock"))
    }

    /// Records that a container used the image now (GC's least-recently-used order).
    pub fn touch_used(&self, image_id: &str) -> Result<(), StoreError> {
        let hex =
            digest::sha256_hex(image_id).ok_or_else(|| StoreError::BadDigest(image_id.into()))?;
        let path = self.root.join("used").join(hex);
        let f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc_flags::O_NOFOLLOW | libc_flags::O_CLOEXEC)
            .open(&path)
            .map_err(io_err(&path))?;
        f.set_modified(SystemTime::now()).map_err(io_err(&path))
    }

    /// When the image was last used by a container, if ever.
    pub fn last_used(&self, image_id: &str) -> Option<SystemTime> {
        let hex = digest::sha256_hex(image_id)?;
        fs::symlink_metadata(self.root.join("used").join(hex))
            .ok()?
            .modified()
            .ok()
    }

    /// When the image's target blob was stored (first pulled or imported).
    pub fn stored_at(&self, img: &StoredImage) -> Option<SystemTime> {
        fs::symlink_metadata(self.blob_path(img.target.digest().as_ref()).ok()?)
            .ok()?
            .modified()
            .ok()
    }

    /// Removes what a crash left: unlocked partial ingests, `*.tmp-*` files of the root, and
    /// unpack dirs (`layers/tmp-*`) no unpacker holds.
    fn sweep(&self) -> Result<(), StoreError> {
        let ingest = self.root.join("ingest");
        for e in fs::read_dir(&ingest).map_err(io_err(&ingest))?.flatten() {
            let p = e.path();
            let Ok(f) = OpenOptions::new()
                .read(true)
                .custom_flags(libc_flags::O_NOFOLLOW | libc_flags::O_CLOEXEC)
                .open(&p)
            else {
                // Not a regular file we can open (a symlink someone planted): remove it.
                let _ = fs::remove_file(&p);
                continue;
            };
            if rustix::fs::flock(&f, FlockOperation::NonBlockingLockExclusive).is_ok() {
                tracing::debug!(path = %p.display(), "removing a stale partial ingest");
                let _ = fs::remove_file(&p);
            }
        }
        let _lock = self.lock_index()?;
        for e in fs::read_dir(&self.root)
            .map_err(io_err(&self.root))?
            .flatten()
        {
            if e.file_name().to_string_lossy().contains(".tmp-") {
                let _ = fs::remove_file(e.path());
            }
        }
        crate::unpack::sweep_tmp_dirs(&self.root.join("layers"), SWEEP_MIN_AGE);
        Ok(())
    }
}

/// A blob being written: hashes as it writes, refuses bytes beyond the expected size, and
/// publishes on [`Ingest::commit`] only if size and digest match. Dropped without a commit,
/// it removes its partial file.
#[derive(Debug)]
pub struct Ingest {
    file: File,
    path: PathBuf,
    blob_path: PathBuf,
    digest: String,
    expected_size: u64,
    written: u64,
    hasher: Hasher,
    present: bool,
    done: bool,
}

/// The error inside the `io::Error` an [`Ingest`] returns for bytes beyond the descriptor.
#[derive(Debug, thiserror::Error)]
#[error("more bytes than the descriptor's size {0}")]
pub struct Oversize(pub u64);

/// The store error for an ingest write failure (an oversize stream keeps its meaning).
pub fn ingest_write_err(e: io::Error, expected: &Descriptor) -> StoreError {
    if e.get_ref().is_some_and(|i| i.is::<Oversize>()) {
        StoreError::SizeMismatch {
            digest: expected.digest().to_string(),
            expected: expected.size(),
            actual: expected.size().saturating_add(1),
        }
    } else {
        StoreError::Io {
            path: PathBuf::from(format!("ingest of {}", expected.digest())),
            source: e,
        }
    }
}

impl Ingest {
    /// The blob was published (by another writer) while this one waited.
    pub fn is_present(&self) -> bool {
        self.present
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Verifies size and digest, syncs, and publishes the blob (rename + dir sync). On a
    /// mismatch the partial file is removed and nothing is published.
    pub fn commit(mut self) -> Result<(), StoreError> {
        if self.written != self.expected_size {
            return Err(StoreError::SizeMismatch {
                digest: self.digest.clone(),
                expected: self.expected_size,
                actual: self.written,
            });
        }
        let actual = std::mem::take(&mut self.hasher).finish();
        if actual != self.digest {
            return Err(StoreError::DigestMismatch {
                expected: self.digest.clone(),
                actual,
            });
        }
        if self.present {
            return Ok(()); // dropped: the partial file goes
        }
        self.file.sync_all().map_err(io_err(&self.path))?;
        // Read-only once published.
        let _ = rustix::fs::fchmod(&self.file, rustix::fs::Mode::from_raw_mode(0o444));
        fs::rename(&self.path, &self.blob_path).map_err(io_err(&self.path))?;
        self.done = true;
        if let Some(dir) = self.blob_path.parent() {
            sync_dir(dir)?;
        }
        Ok(())
    }
}

impl Write for Ingest {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let new = self.written.saturating_add(buf.len() as u64);
        if new > self.expected_size {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                Oversize(self.expected_size),
            ));
        }
        let n = self.file.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl Drop for Ingest {
    fn drop(&mut self) {
        if !self.done {
            // Still holding the lock: a waiter then sees the path gone and starts afresh.
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// The raw flag values skiff passes to `open` (std re-exports none of them).
pub(crate) mod libc_flags {
    pub const O_NOFOLLOW: i32 = rustix::fs::OFlags::NOFOLLOW.bits() as i32;
    pub const O_CLOEXEC: i32 = rustix::fs::OFlags::CLOEXEC.bits() as i32;
    pub const O_NONBLOCK: i32 = rustix::fs::OFlags::NONBLOCK.bits() as i32;
}

trait DirBuilderExt2 {
    fn mode_0711(&mut self) -> &mut Self;
}
impl DirBuilderExt2 for fs::DirBuilder {
    fn mode_0711(&mut self) -> &mut Self {
        use std::os::unix::fs::DirBuilderExt;
        self.mode(0o711)
    }
}

/// The manifest fields skiff reads (OCI and Docker schema2 share them).
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct ManifestDoc {
    schema_version: u32,
    config: Descriptor,
    #[serde(default)]
    layers: Vec<Descriptor>,
}

fn parse_json<T: serde::de::DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Invalid(format!("{what}: {e}")))
}

/// The media type a manifest-like body declares, or guesses from its fields.
pub fn sniff_media_type(bytes: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Probe {
        media_type: Option<String>,
        manifests: Option<serde_json::Value>,
        layers: Option<serde_json::Value>,
    }
    match serde_json::from_slice::<Probe>(bytes) {
        Ok(Probe {
            media_type: Some(mt),
            ..
        }) => mt,
        Ok(Probe {
            manifests: Some(_), ..
        }) => MediaType::ImageIndex.to_string(),
        Ok(Probe {
            layers: Some(_), ..
        }) => MediaType::ImageManifest.to_string(),
        _ => String::new(),
    }
}

/// The index entry for linux on this host's architecture; an index of exactly one entry
/// with no platform (some layouts) is taken as is.
pub fn choose_platform(entries: &[Descriptor]) -> Option<&Descriptor> {
    let arch = host_arch();
    let hit = entries.iter().find(|d| {
        d.platform()
            .as_ref()
            .is_some_and(|p| p.os().to_string() == "linux" && p.architecture().to_string() == arch)
            && (is_manifest_type(d.media_type().as_ref()) || is_index_type(d.media_type().as_ref()))
    });
    match hit {
        Some(d) => Some(d),
        None if entries.len() == 1 && entries[0].platform().is_none() => entries.first(),
        None => None,
    }
}

fn ref_name(d: &Descriptor) -> Option<&str> {
    d.annotations()
        .as_ref()
        .and_then(|a| a.get(REF_NAME))
        .map(String::as_str)
}

fn names_of(entries: &[Descriptor], target: &Descriptor) -> Vec<String> {
    entries
        .iter()
        .filter(|d| d.digest() == target.digest())
        .filter_map(|d| ref_name(d).map(str::to_string))
        .collect()
}

fn check_name(name: &str) -> Result<(), StoreError> {
    if name.is_empty() || name.len() > 4096 || name.chars().any(|c| c.is_control() || c == ' ') {
        return Err(StoreError::Invalid(format!("invalid image name {name:?}")));
    }
    Ok(())
}

fn empty_index() -> ImageIndex {
    // schemaVersion 2, no manifests.
    let mut i = ImageIndex::default();
    i.set_manifests(Vec::new());
    i
}

/// Opens a regular file, never through a symlink.
pub(crate) fn open_regular(path: &Path) -> io::Result<File> {
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(libc_flags::O_NOFOLLOW | libc_flags::O_CLOEXEC | libc_flags::O_NONBLOCK)
        .open(path)?;
    if !f.metadata()?.is_file() {
        return Err(io::Error::other("not a regular file"));
    }
    Ok(f)
}

/// Reads a regular file (not through a symlink) of at most `max` bytes.
pub(crate) fn read_bounded(path: &Path, max: u64) -> io::Result<Vec<u8>> {
    let f = open_regular(path)?;
    let mut buf = Vec::new();
    f.take(max + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > max {
        return Err(io::Error::other(format!("larger than {max} bytes")));
    }
    Ok(buf)
}

/// Writes `path` atomically: a `.tmp-<uuid>` sibling, fsync, rename, dir fsync.
pub(crate) fn write_atomic(path: &Path, data: &[u8]) -> Result<(), StoreError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!("{name}.tmp-{}", uuid::Uuid::new_v4().simple()));
    let res = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .custom_flags(libc_flags::O_NOFOLLOW | libc_flags::O_CLOEXEC)
            .open(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if let Err(e) = res {
        let _ = fs::remove_file(&tmp);
        return Err(io_err(path)(e));
    }
    if let Some(dir) = path.parent() {
        sync_dir(dir)?;
    }
    Ok(())
}

pub(crate) fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

/// Opens (creating) `path` and holds an exclusive flock on it until the file is dropped.
pub(crate) fn lock_file(path: &Path) -> Result<File, StoreError> {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc_flags::O_NOFOLLOW | libc_flags::O_CLOEXEC)
        .open(path)
        .map_err(io_err(path))?;
    rustix::fs::flock(&f, FlockOperation::LockExclusive).map_err(|e| io_err(path)(e.into()))?;
    Ok(f)
}

/// `name → digests` of an index (for callers that want the raw mapping).
pub fn tags(entries: &[Descriptor]) -> BTreeMap<String, String> {
    entries
        .iter()
        .filter_map(|d| ref_name(d).map(|n| (n.to_string(), d.digest().to_string())))
        .collect()
}
