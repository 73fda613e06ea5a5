//! Garbage collection and the consistency check.
//!
//! - [`ContentStore::remove_image`]: `skiff image rm` (untag; refused while held).
//! - [`ContentStore::prune`]: mark-and-sweep. Roots: the tags of `index.json` and the
//!   holders' chain IDs; everything else in `blobs/` and `layers/` goes (blobs and layers
//!   newer than a live lease stay: a pull in progress has not tagged them yet).
//! - [`decide_threshold_gc`]: the kubelet's image GC (`image_gc_manager.go`) as a pure
//!   function: above the high threshold, free down to the low one, least recently used
//!   first, never an image in use or younger than the minimum age.
//! - [`ContentStore::check`]: verifies the store (tests run it after fault injection).

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::path::Path;
use std::time::{Duration, SystemTime};

use crate::digest::{self, HashingReader};
use crate::layers::chain_ids;
use crate::store::{io_err, ContentStore, StoreError, StoredImage, MAX_MANIFEST_SIZE};
use crate::unpack::remove_all_at;

/// What a prune removed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PruneReport {
    /// Names untagged (`prune --all`).
    pub untagged: Vec<String>,
    pub blobs: usize,
    pub layers: usize,
    /// Bytes of blobs removed.
    pub bytes: u64,
}

/// The kubelet's image GC policy (KubeletConfiguration `imageGCHighThresholdPercent`,
/// `imageGCLowThresholdPercent`, `imageMinimumGCAge`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GcPolicy {
    pub high_percent: u8,
    pub low_percent: u8,
    pub min_age: Duration,
}

impl Default for GcPolicy {
    fn default() -> Self {
        Self {
            high_percent: 85,
            low_percent: 80,
            min_age: Duration::from_secs(120),
        }
    }
}

/// One image as threshold GC sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GcCandidate {
    pub id: String,
    pub size: u64,
    /// When a container last used it (else when it was stored).
    pub last_used: SystemTime,
    /// When it was first seen (stored).
    pub first_seen: SystemTime,
    pub in_use: bool,
}

/// The images to remove, in order: nothing unless `used` bytes of `capacity` reach
/// `high_percent`; then least recently used first (ties: older first-seen first) until
/// usage is at or below `low_percent`, skipping images in use or younger than `min_age`.
pub fn decide_threshold_gc(
    policy: &GcPolicy,
    capacity: u64,
    used: u64,
    images: &[GcCandidate],
    now: SystemTime,
) -> Vec<String> {
    if capacity == 0 {
        return Vec::new();
    }
    let percent = |u: u64| (u as u128 * 100 / capacity as u128) as u64;
    if percent(used) < u64::from(policy.high_percent) {
        return Vec::new();
    }
    // The kubelet frees `used - capacity * low / 100` bytes.
    let target = capacity as u128 * u128::from(policy.low_percent) / 100;
    let mut to_free = (used as u128).saturating_sub(target);
    let mut order: Vec<&GcCandidate> = images.iter().collect();
    order.sort_by(|a, b| {
        a.last_used
            .cmp(&b.last_used)
            .then(a.first_seen.cmp(&b.first_seen))
    });
    let mut out = Vec::new();
    for img in order {
        if to_free == 0 {
            break;
        }
        if img.in_use {
            continue;
        }
        let age = now.duration_since(img.first_seen).unwrap_or_default();
        if age < policy.min_age {
            continue;
        }
        out.push(img.id.clone());
        to_free = to_free.saturating_sub(u128::from(img.size));
    }
    out
}

/// A problem [`ContentStore::check`] found.
pub type Problem = String;

impl ContentStore {
    /// Image IDs held by a container.
    pub fn images_in_use(&self) -> Result<BTreeSet<String>, StoreError> {
        Ok(self.holders()?.into_iter().map(|h| h.image_id).collect())
    }

    /// Removes the image `name` names: with a name, that name only (the image goes when
    /// its last name does); with an ID, every name of the image. Refused while a
    /// container uses the image, unless `force`. Returns the names removed.
    pub fn remove_image(&self, name: &str, force: bool) -> Result<Vec<String>, StoreError> {
        let img = self
            .resolve(name)?
            .ok_or_else(|| StoreError::NotFound(name.to_string()))?;
        let by_name: Vec<String> = crate::store::candidate_names(name)
            .into_iter()
            .filter(|c| img.names.contains(c))
            .take(1)
            .collect();
        let names = if by_name.is_empty() {
            img.names.clone()
        } else {
            by_name
        };
        let last_name = names.len() == img.names.len();
        if last_name && !force && self.images_in_use()?.contains(&img.id) {
            return Err(StoreError::Invalid(format!(
                "image {name} ({}) is in use by a container; use --force to remove it anyway",
                short_id(&img.id)
            )));
        }
        for n in &names {
            self.remove_tag(n)?;
        }
        Ok(names)
    }

    /// Mark-and-sweep: removes blobs and unpacked layers that no tag and no holder
    /// reaches. With `all`, first untags every image no container uses (`podman image
    /// prune -a`).
    pub fn prune(&self, all: bool) -> Result<PruneReport, StoreError> {
        let mut report = PruneReport::default();
        if all {
            let in_use = self.images_in_use()?;
            for img in self.list()? {
                if !in_use.contains(&img.id) {
                    for n in &img.names {
                        self.remove_tag(n)?;
                        report.untagged.push(n.clone());
                    }
                }
            }
        }
        let _layers_lock = self.lock_layers()?;
        let _index_lock = self.lock_index()?;
        let cutoff = self.oldest_lease();
        let young = |p: &Path| {
            cutoff.is_some_and(|c| {
                fs::symlink_metadata(p)
                    .and_then(|m| m.modified())
                    .is_ok_and(|t| t + Duration::from_secs(1) >= c)
            })
        };
        // Mark.
        let mut blobs: BTreeSet<String> = BTreeSet::new();
        let mut chains: BTreeSet<String> = BTreeSet::new();
        for d in self.index_entries()? {
            blobs.insert(d.digest().to_string());
            self.mark_target(&d, &mut blobs, 0);
        }
        for img in self.list()? {
            chains.extend(chain_ids(&img.diff_ids));
        }
        for h in self.holders()? {
            chains.extend(h.chain_ids);
        }
        // Sweep blobs.
        let dir = self.root().join("blobs/sha256");
        for e in fs::read_dir(&dir).map_err(io_err(&dir))?.flatten() {
            let digest = format!("sha256:{}", e.file_name().to_string_lossy());
            let p = e.path();
            if blobs.contains(&digest) || young(&p) {
                continue;
            }
            let size = e.metadata().map(|m| m.len()).unwrap_or(0);
            if fs::remove_file(&p).is_ok() {
                report.blobs += 1;
                report.bytes += size;
            }
        }
        // Sweep layers: records of unreached chains, then dirs no record names.
        let mut kept_dirs = BTreeSet::new();
        for (chain, n) in self.chain_records()? {
            let rec = self.chain_record_path(&chain)?;
            if chains.contains(&chain) || young(&rec) {
                kept_dirs.insert(n.to_string());
            } else {
                let _ = fs::remove_file(&rec);
            }
        }
        let ldir = self.layers_dir().join("l");
        if let Ok(rd) = fs::read_dir(&ldir) {
            let dirfd = rustix::fs::open(
                &ldir,
                rustix::fs::OFlags::RDONLY
                    | rustix::fs::OFlags::DIRECTORY
                    | rustix::fs::OFlags::CLOEXEC,
                rustix::fs::Mode::empty(),
            )
            .map_err(|e| io_err(&ldir)(e.into()))?;
            for e in rd.flatten() {
                let n = e.file_name();
                if kept_dirs.contains(&*n.to_string_lossy()) || young(&e.path()) {
                    continue;
                }
                remove_all_at(std::os::fd::AsFd::as_fd(&dirfd), &n, 0)
                    .map_err(io_err(&e.path()))?;
                report.layers += 1;
            }
        }
        // Usage marks of images gone.
        let ids: BTreeSet<String> = self.list()?.into_iter().map(|i| i.id).collect();
        let used = self.root().join("used");
        if let Ok(rd) = fs::read_dir(&used) {
            for e in rd.flatten() {
                let id = format!("sha256:{}", e.file_name().to_string_lossy());
                if !ids.contains(&id) {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
        Ok(report)
    }

    /// Marks what an `index.json` entry reaches (an index: every manifest present).
    fn mark_target(
        &self,
        d: &oci_spec::image::Descriptor,
        blobs: &mut BTreeSet<String>,
        depth: u32,
    ) {
        let digest = d.digest().to_string();
        let Ok(bytes) = self.read_blob(&digest, MAX_MANIFEST_SIZE) else {
            return;
        };
        #[derive(serde::Deserialize)]
        struct Doc {
            #[serde(default)]
            manifests: Vec<oci_spec::image::Descriptor>,
            config: Option<oci_spec::image::Descriptor>,
            #[serde(default)]
            layers: Vec<oci_spec::image::Descriptor>,
        }
        let Ok(doc) = serde_json::from_slice::<Doc>(&bytes) else {
            return;
        };
        for m in doc.manifests {
            blobs.insert(m.digest().to_string());
            if depth < 2 {
                self.mark_target(&m, blobs, depth + 1);
            }
        }
        if let Some(c) = doc.config {
            blobs.insert(c.digest().to_string());
        }
        for l in doc.layers {
            blobs.insert(l.digest().to_string());
        }
    }

    /// Threshold GC (the kubelet's): when the filesystem holding the store is at least
    /// `high_percent` full, removes unused images (least recently used first) until it is
    /// at `low_percent`, then prunes. Returns the image IDs removed.
    pub fn threshold_gc(&self, policy: &GcPolicy) -> Result<Vec<String>, StoreError> {
        let st = rustix::fs::statvfs(self.root()).map_err(|e| io_err(self.root())(e.into()))?;
        let capacity = st.f_blocks.saturating_mul(st.f_frsize);
        let used = st
            .f_blocks
            .saturating_sub(st.f_bfree)
            .saturating_mul(st.f_frsize);
        let in_use = self.images_in_use()?;
        let images = self.list()?;
        let now = SystemTime::now();
        let cands: Vec<GcCandidate> = images
            .iter()
            .map(|i| {
                let first_seen = self.stored_at(i).unwrap_or(now);
                GcCandidate {
                    id: i.id.clone(),
                    size: i.size,
                    last_used: self.last_used(&i.id).unwrap_or(first_seen),
                    first_seen,
                    in_use: in_use.contains(&i.id),
                }
            })
            .collect();
        let remove = decide_threshold_gc(policy, capacity, used, &cands, now);
        for id in &remove {
            if let Some(img) = images.iter().find(|i| &i.id == id) {
                for n in &img.names {
                    self.remove_tag(n)?;
                }
            }
        }
        if !remove.is_empty() {
            self.prune(false)?;
        }
        Ok(remove)
    }

    /// Verifies the store: every blob's content matches its name, every image of
    /// `index.json` loads (manifest, config present and valid) with all its layer blobs
    /// present, every unpacked layer record points at a dir, and no half-written file
    /// is in a published place. Returns the problems found (empty: consistent).
    pub fn check(&self) -> Result<Vec<Problem>, StoreError> {
        let mut problems = Vec::new();
        let dir = self.root().join("blobs/sha256");
        for e in fs::read_dir(&dir).map_err(io_err(&dir))?.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let digest = format!("sha256:{name}");
            if digest::sha256_hex(&digest).is_none() {
                problems.push(format!("blobs/sha256/{name}: not a digest name"));
                continue;
            }
            match verify_file(&e.path()) {
                Ok(actual) if actual == digest => {}
                Ok(actual) => problems.push(format!("blob {digest}: content is {actual}")),
                Err(err) => problems.push(format!("blob {digest}: {err}")),
            }
        }
        for d in self.index_entries()? {
            let what = d
                .annotations()
                .as_ref()
                .and_then(|a| a.get(crate::store::REF_NAME))
                .cloned()
                .unwrap_or_else(|| d.digest().to_string());
            match self.resolve(d.digest().as_ref()) {
                Ok(Some(img)) => check_image(self, &img, &what, &mut problems),
                Ok(None) => problems.push(format!("{what}: not resolvable")),
                Err(e) => problems.push(format!("{what}: {e}")),
            }
        }
        for (chain, n) in self.chain_records()? {
            let d = self.layers_dir().join("l").join(n.to_string());
            if !fs::symlink_metadata(&d).is_ok_and(|m| m.is_dir()) {
                problems.push(format!("layer {chain}: its dir l/{n} is missing"));
            }
        }
        Ok(problems)
    }
}

fn check_image(store: &ContentStore, img: &StoredImage, what: &str, problems: &mut Vec<Problem>) {
    for l in &img.layers {
        let p = match store.blob_path(l.digest().as_ref()) {
            Ok(p) => p,
            Err(e) => {
                problems.push(format!("{what}: {e}"));
                continue;
            }
        };
        match fs::symlink_metadata(&p) {
            Ok(m) if m.len() == l.size() => {}
            Ok(m) => problems.push(format!(
                "{what}: layer {} has {} bytes, its descriptor says {}",
                l.digest(),
                m.len(),
                l.size()
            )),
            Err(_) => problems.push(format!("{what}: layer {} is missing", l.digest())),
        }
    }
}

fn verify_file(p: &Path) -> io::Result<String> {
    let f = crate::store::open_regular(p)?;
    let (d, _) = HashingReader::new(io::BufReader::new(f), u64::MAX).drain()?;
    Ok(d)
}

/// The first 12 hex digits of an image ID (as `podman images` shows it).
pub fn short_id(id: &str) -> &str {
    let hex = id.trim_start_matches(digest::SHA256_PREFIX);
    hex.get(..12).unwrap_or(hex)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(s)
    }

    fn cand(id: &str, size: u64, last_used: u64, first_seen: u64, in_use: bool) -> GcCandidate {
        GcCandidate {
            id: id.into(),
            size,
            last_used: t(last_used),
            first_seen: t(first_seen),
            in_use,
        }
    }

    #[test]
    fn threshold_gc_frees_lru_down_to_low_skipping_used_and_young() {
        let p = GcPolicy::default();
        let now = t(10_000);
        let imgs = [
            cand("old-used", 50, 100, 100, true),
            cand("old", 30, 200, 100, false),
            cand("young", 100, 300, 9_950, false), // 50 s old: under 2m
            cand("mid", 10, 400, 100, false),
            cand("new", 40, 500, 100, false),
        ];
        // 84%: below high, nothing.
        assert!(decide_threshold_gc(&p, 1000, 849, &imgs, now).is_empty());
        // 90%: free down to 80% = 100 bytes, LRU first, skipping used and young.
        assert_eq!(
            decide_threshold_gc(&p, 1000, 900, &imgs, now),
            ["old", "mid", "new"]
        );
        // 86%: 60 bytes: old (30) + mid (10) + new (40).
        assert_eq!(
            decide_threshold_gc(&p, 1000, 860, &imgs, now),
            ["old", "mid", "new"]
        );
        // 85% exactly triggers; 50 bytes: old + mid + new (40 reaches it).
        assert_eq!(
            decide_threshold_gc(&p, 1000, 850, &imgs, now),
            ["old", "mid", "new"]
        );
        // 82% with a custom policy high 82/low 81: 10 bytes: just the LRU one.
        let p2 = GcPolicy {
            high_percent: 82,
            low_percent: 81,
            ..p
        };
        assert_eq!(decide_threshold_gc(&p2, 1000, 820, &imgs, now), ["old"]);
        assert!(decide_threshold_gc(&p, 0, 0, &imgs, now).is_empty());
    }
}
