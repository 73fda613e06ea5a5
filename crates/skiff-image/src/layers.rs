//! Layers unpacked once per chain ID, shared by every image and container that uses them
//! (containerd's overlay snapshotter model), and the holders that keep them from GC.
//!
//! ```text
//! layers/
//!   l/<n>                 an unpacked layer (short names: an overlay mount of many layers
//!                         fits its options in one page)
//!   chains/<chain hex>    {"n": <n>, "diff_id": "sha256:…"}: the chain ID's dir
//!   next                  the next <n> (under `lock`)
//!   tmp-<uuid>            an unpack in progress (flock'd by its unpacker; renamed to l/<n>)
//!   lock                  serialises publication and GC
//! holders/<sha256 of holder>.json   {"holder", "image_id", "chain_ids"}: in use
//! leases/<uuid>           an operation in progress (a pull); GC keeps what is newer
//! ```

use std::fs;
use std::io;
use std::path::PathBuf;
use std::sync::Mutex;

use oci_spec::image::Descriptor;

use crate::digest::{self, HashingReader};
use crate::store::{
    io_err, lock_file, read_bounded, write_atomic, ContentStore, StoreError, StoredImage,
};
use crate::unpack::{self, Limits};

/// The process config of an image, as the OCI runtime needs it (skiff-node uses it as
/// `spec::ImageProcessConfig`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RootfsConfig {
    /// `Entrypoint`; `Some(vec![""])` means "none" (moby's rule; the caller applies it).
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    /// `Env`, `KEY=value`, image order.
    pub env: Vec<String>,
    pub working_dir: Option<String>,
    pub user: Option<String>,
    pub stop_signal: Option<String>,
}

/// An image ready to be a container's root filesystem (`skiff_node::spec::ImageRootfs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rootfs {
    /// `sha256:<config digest>`.
    pub image_id: String,
    /// `<repository>@<digest>` of the name used, when it has one.
    pub repo_digest: Option<String>,
    pub config: RootfsConfig,
    /// Unpacked layer dirs, **top-most first** (overlayfs `lowerdir` order).
    pub lower_dirs: Vec<PathBuf>,
}

/// How many layers unpack at once (this machine has 2 cores).
const PARALLEL_UNPACKS: usize = 2;

/// Chain IDs of a layer stack (image-spec config.md): `chain(L0) = diffID(L0)`,
/// `chain(Ln) = sha256(chain(Ln-1) + " " + diffID(Ln))`.
pub fn chain_ids(diff_ids: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(diff_ids.len());
    for d in diff_ids {
        let next = match out.last() {
            None => d.clone(),
            Some(prev) => digest::sha256_of(format!("{prev} {d}").as_bytes()),
        };
        out.push(next);
    }
    out
}

#[derive(serde::Serialize, serde::Deserialize)]
struct ChainRecord {
    n: u64,
    diff_id: String,
}

/// One holder's use of an image.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct Holder {
    pub holder: String,
    pub image_id: String,
    pub chain_ids: Vec<String>,
}

/// An operation in progress (a pull): while held, GC leaves alone everything created after
/// it started. Dropped, it ends.
#[derive(Debug)]
pub struct Lease {
    path: PathBuf,
    _file: fs::File,
}

impl Drop for Lease {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

impl ContentStore {
    pub(crate) fn layers_dir(&self) -> PathBuf {
        self.root().join("layers")
    }

    pub(crate) fn holders_dir(&self) -> PathBuf {
        self.root().join("holders")
    }

    pub(crate) fn chain_record_path(&self, chain_id: &str) -> Result<PathBuf, StoreError> {
        let hex = digest::sha256_hex(chain_id)
            .ok_or_else(|| StoreError::BadDigest(chain_id.to_string()))?;
        Ok(self.layers_dir().join("chains").join(hex))
    }

    /// Holds `layers/lock` until dropped.
    pub(crate) fn lock_layers(&self) -> Result<fs::File, StoreError> {
        lock_file(&self.layers_dir().join("lock"))
    }

    /// The unpacked dir of `chain_id`, if it is unpacked.
    pub fn layer_dir(&self, chain_id: &str) -> Option<PathBuf> {
        let rec = self.chain_record(chain_id).ok()??;
        let dir = self.layers_dir().join("l").join(rec.n.to_string());
        fs::symlink_metadata(&dir)
            .ok()
            .filter(|m| m.is_dir())
            .map(|_| dir)
    }

    fn chain_record(&self, chain_id: &str) -> Result<Option<ChainRecord>, StoreError> {
        let p = self.chain_record_path(chain_id)?;
        match read_bounded(&p, 4096) {
            Ok(b) => Ok(serde_json::from_slice(&b).ok()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err(&p)(e)),
        }
    }

    /// Every chain ID with a record, and its dir number.
    pub(crate) fn chain_records(&self) -> Result<Vec<(String, u64)>, StoreError> {
        let dir = self.layers_dir().join("chains");
        let mut out = Vec::new();
        let rd = match fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(io_err(&dir)(e)),
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let chain = format!("{}{name}", digest::SHA256_PREFIX);
            if digest::sha256_hex(&chain).is_none() {
                continue;
            }
            if let Ok(Some(rec)) = self.chain_record(&chain) {
                out.push((chain, rec.n));
            }
        }
        Ok(out)
    }

    /// Unpacks the image's layers that are not unpacked yet (two at a time), each verified
    /// (the compressed blob against its digest, the tar against the config's diff ID) and
    /// published atomically. Returns the dirs bottom-most first.
    pub fn unpack_image(
        &self,
        img: &StoredImage,
        limits: &Limits,
    ) -> Result<Vec<PathBuf>, StoreError> {
        let chains = chain_ids(&img.diff_ids);
        let todo: Vec<usize> = (0..chains.len())
            .filter(|&i| self.layer_dir(&chains[i]).is_none())
            .collect();
        let next = Mutex::new(0usize);
        let first_err: Mutex<Option<StoreError>> = Mutex::new(None);
        std::thread::scope(|s| {
            for _ in 0..PARALLEL_UNPACKS.min(todo.len()) {
                s.spawn(|| loop {
                    let k = {
                        let Ok(mut n) = next.lock() else { return };
                        let k = *n;
                        *n += 1;
                        k
                    };
                    let Some(&i) = todo.get(k) else { return };
                    if first_err.lock().map(|e| e.is_some()).unwrap_or(true) {
                        return;
                    }
                    if let Err(e) =
                        self.unpack_layer(&img.layers[i], &img.diff_ids[i], &chains[i], limits)
                    {
                        if let Ok(mut slot) = first_err.lock() {
                            slot.get_or_insert(e);
                        }
                        return;
                    }
                });
            }
        });
        if let Some(e) = first_err.into_inner().ok().flatten() {
            return Err(e);
        }
        chains
            .iter()
            .map(|c| {
                self.layer_dir(c)
                    .ok_or_else(|| StoreError::NotFound(format!("unpacked layer {c}")))
            })
            .collect()
    }

    /// Unpacks one layer into `layers/tmp-<uuid>` and publishes it as the chain's dir.
    fn unpack_layer(
        &self,
        layer: &Descriptor,
        diff_id: &str,
        chain_id: &str,
        limits: &Limits,
    ) -> Result<(), StoreError> {
        let layers = self.layers_dir();
        for d in [layers.join("l"), layers.join("chains")] {
            match fs::create_dir(&d) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io_err(&d)(e)),
            }
        }
        let tmp = layers.join(format!("tmp-{}", uuid::Uuid::new_v4().simple()));
        fs::create_dir(&tmp).map_err(io_err(&tmp))?;
        let res = (|| {
            let held = unpack::lock_dir(&tmp, true)
                .map_err(io_err(&tmp))?
                .ok_or_else(|| StoreError::Invalid(format!("{}: lock", tmp.display())))?;
            let blob_digest = layer.digest().to_string();
            let file = self.open_blob(&blob_digest)?;
            // The blob is re-verified as it streams (a store tampered with on disk).
            let mut compressed = HashingReader::new(io::BufReader::new(file), layer.size());
            unpack::unpack_into(&tmp, &mut compressed, diff_id, limits).map_err(|source| {
                StoreError::Unpack {
                    diff_id: diff_id.to_string(),
                    source,
                }
            })?;
            let (actual, n) = compressed.drain().map_err(|e| StoreError::Unpack {
                diff_id: diff_id.to_string(),
                source: unpack::UnpackError::Read(e),
            })?;
            if actual != blob_digest || n != layer.size() {
                return Err(StoreError::DigestMismatch {
                    expected: blob_digest,
                    actual,
                });
            }
            rustix::fs::syncfs(&held).map_err(|e| io_err(&tmp)(e.into()))?;
            let _lock = self.lock_layers()?;
            if self.layer_dir(chain_id).is_some() {
                // Another unpacker won; ours goes.
                return Ok(false);
            }
            let counter = layers.join("next");
            let n: u64 = read_bounded(&counter, 64)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(0);
            let mut n = n;
            while fs::symlink_metadata(layers.join("l").join(n.to_string())).is_ok() {
                n += 1;
            }
            write_atomic(&counter, (n + 1).to_string().as_bytes())?;
            let dest = layers.join("l").join(n.to_string());
            fs::rename(&tmp, &dest).map_err(io_err(&dest))?;
            let rec = serde_json::to_vec(&ChainRecord {
                n,
                diff_id: diff_id.to_string(),
            })
            .map_err(|e| StoreError::Invalid(e.to_string()))?;
            write_atomic(&self.chain_record_path(chain_id)?, &rec)?;
            drop(held);
            Ok(true)
        })();
        match res {
            Ok(true) => Ok(()),
            Ok(false) => {
                let _ = fs::remove_dir_all(&tmp);
                Ok(())
            }
            Err(e) => {
                let _ = fs::remove_dir_all(&tmp);
                Err(e)
            }
        }
    }

    /// The image's unpacked layer dirs, **top-most first** (overlayfs `lowerdir` order),
    /// unpacking what is missing.
    pub fn rootfs_layers(&self, img: &StoredImage) -> Result<Vec<PathBuf>, StoreError> {
        let mut dirs = self.unpack_image(img, &Limits::default())?;
        dirs.reverse();
        Ok(dirs)
    }

    /// Everything the OCI runtime needs to make a container's root filesystem from `name`
    /// (any form [`ContentStore::resolve`] accepts): layers unpacked, held for `holder`
    /// until [`ContentStore::release`], and the image marked used now (GC's LRU).
    pub fn rootfs(&self, name: &str, holder: &str) -> Result<Rootfs, StoreError> {
        let img = self
            .resolve(name)?
            .ok_or_else(|| StoreError::NotFound(name.to_string()))?;
        // Hold first: a GC between unpack and hold must not take the layers.
        self.hold(holder, &img)?;
        let lower_dirs = match self.rootfs_layers(&img) {
            Ok(d) => d,
            Err(e) => {
                let _ = self.release(holder);
                return Err(e);
            }
        };
        let _ = self.touch_used(&img.id);
        let c = img.config.config().clone().unwrap_or_default();
        Ok(Rootfs {
            image_id: img.id.clone(),
            repo_digest: img.repo_digests().into_iter().next(),
            config: RootfsConfig {
                entrypoint: c.entrypoint().clone(),
                cmd: c.cmd().clone(),
                env: c.env().clone().unwrap_or_default(),
                working_dir: c.working_dir().clone().filter(|w| !w.is_empty()),
                user: c.user().clone().filter(|u| !u.is_empty()),
                stop_signal: c.stop_signal().clone(),
            },
            lower_dirs,
        })
    }

    fn holder_path(&self, holder: &str) -> PathBuf {
        let h = digest::sha256_of(holder.as_bytes());
        self.holders_dir().join(format!(
            "{}.json",
            h.trim_start_matches(digest::SHA256_PREFIX)
        ))
    }

    /// Records that `holder` (a container, named as the caller likes) uses `img`: GC keeps
    /// its layers and the image until [`ContentStore::release`].
    pub fn hold(&self, holder: &str, img: &StoredImage) -> Result<(), StoreError> {
        let dir = self.holders_dir();
        match fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io_err(&dir)(e)),
        }
        let rec = Holder {
            holder: holder.to_string(),
            image_id: img.id.clone(),
            chain_ids: chain_ids(&img.diff_ids),
        };
        let bytes = serde_json::to_vec(&rec).map_err(|e| StoreError::Invalid(e.to_string()))?;
        write_atomic(&self.holder_path(holder), &bytes)
    }

    /// Drops `holder`'s use (idempotent).
    pub fn release(&self, holder: &str) -> Result<(), StoreError> {
        let p = self.holder_path(holder);
        match fs::remove_file(&p) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err(&p)(e)),
        }
    }

    /// Every holder.
    pub fn holders(&self) -> Result<Vec<Holder>, StoreError> {
        let dir = self.holders_dir();
        let mut out = Vec::new();
        let rd = match fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(io_err(&dir)(e)),
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.extension().is_none_or(|x| x != "json") {
                continue;
            }
            if let Ok(b) = read_bounded(&p, 1 << 20) {
                if let Ok(h) = serde_json::from_slice::<Holder>(&b) {
                    out.push(h);
                }
            }
        }
        Ok(out)
    }

    /// Starts an operation GC must not undercut (a pull): see [`Lease`].
    pub fn lease(&self) -> Result<Lease, StoreError> {
        let dir = self.root().join("leases");
        match fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io_err(&dir)(e)),
        }
        let path = dir.join(uuid::Uuid::new_v4().simple().to_string());
        let file = lock_file(&path)?;
        Ok(Lease { path, _file: file })
    }

    /// The start of the oldest live lease (stale ones, whose holder died, are removed).
    pub(crate) fn oldest_lease(&self) -> Option<std::time::SystemTime> {
        let dir = self.root().join("leases");
        let mut oldest = None;
        for e in fs::read_dir(&dir).ok()?.flatten() {
            let p = e.path();
            let Ok(f) = fs::File::open(&p) else { continue };
            match rustix::fs::flock(&f, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
                Ok(()) => {
                    let _ = fs::remove_file(&p);
                }
                Err(_) => {
                    if let Ok(t) = f.metadata().and_then(|m| m.modified()) {
                        oldest = Some(oldest.map_or(t, |o: std::time::SystemTime| o.min(t)));
                    }
                }
            }
        }
        oldest
    }
}
