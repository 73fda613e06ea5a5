//! An image container's files on the host: its bundle directory, its root filesystem
//! (overlayfs over the image's layers), the trusted staging binds of its volumes, and the
//! pod's `/etc/hosts`, `/etc/hostname` and `/etc/resolv.conf`.
//!
//! Layout, per container instance, under the pod's directory:
//! `oci/<id>/config.json` (the bundle), `oci/<id>/rootfs` (the overlay mount),
//! `oci/<id>/upper` + `oci/<id>/work` (its writable layer), `oci/<id>/vol/<n>` (volume
//! sources bound from the descriptors held since they were checked), `oci/<id>/pid`,
//! `oci/<id>/runtime.log`. Every mount is in the pod's crash record before it is made and
//! leaves it only after it is gone (`spec::MountJournal`), so a killed skiff's next start
//! unmounts it; [`Bundle::remove`] unmounts and deletes all of it.
//!
//! The overlay is made with the new mount API (`fsopen("overlay")`, one
//! `fsconfig("lowerdir+", dir)` per layer, `fsmount`, `move_mount`; Linux ≥ 6.8): no
//! `lowerdir=a:b:…` string, so no page-size limit on the mount options however many layers
//! there are, and no escaping of `:` or `,` in paths.
//!
//! Volume sources: runc resolves bind sources by path when it mounts them, later, in its own
//! process. A path inside a volume (a subPath, or a volume a container of the pod can write)
//! could by then be a symlink another container swapped in. So each source is first bound
//! here from its `O_PATH` descriptor (`open_tree(fd, "", OPEN_TREE_CLONE | AT_RECURSIVE)` +
//! `move_mount`) onto a staging path under `oci/<id>/vol/` — a directory only skiff writes —
//! and runc gets that path (as the kubelet does for subPaths under `volume-subpaths/`).

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use rustix::mount::{
    fsconfig_create, fsconfig_set_string, fsmount, fsopen, move_mount, open_tree, unmount,
    FsMountFlags, FsOpenFlags, MountAttrFlags, MoveMountFlags, OpenTreeFlags, UnmountFlags,
};

use crate::spec::{MountJournal, MountSpec, PodIdentity};

/// Why a bundle could not be made.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {source}")]
pub struct RootfsError {
    pub what: String,
    #[source]
    pub source: std::io::Error,
}

fn err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> RootfsError {
    let what = what.into();
    move |source| RootfsError { what, source }
}

/// One container instance's bundle and mounts (see the module docs).
#[derive(Debug)]
pub struct Bundle {
    dir: PathBuf,
    journal: Option<Arc<dyn MountJournal>>,
    /// Mounted paths, in mount order (unmounted in reverse).
    mounted: Vec<PathBuf>,
}

impl Bundle {
    /// Creates `dir` (0700; its parent 0700 too) for a new bundle.
    pub fn create(
        dir: PathBuf,
        journal: Option<Arc<dyn MountJournal>>,
    ) -> Result<Bundle, RootfsError> {
        let mut b = std::fs::DirBuilder::new();
        b.recursive(true);
        std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
        b.create(&dir)
            .map_err(err(format!("creating {}", dir.display())))?;
        Ok(Bundle {
            dir,
            journal,
            mounted: Vec::new(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
    pub fn rootfs(&self) -> PathBuf {
        self.dir.join("rootfs")
    }
    pub fn pid_file(&self) -> PathBuf {
        self.dir.join("pid")
    }
    pub fn log(&self) -> PathBuf {
        self.dir.join("runtime.log")
    }
    pub fn config(&self) -> PathBuf {
        self.dir.join("config.json")
    }

    fn journal_before(&self, p: &Path) -> Result<(), RootfsError> {
        if let Some(j) = &self.journal {
            j.before_mount(p).map_err(|e| RootfsError {
                what: format!("recording the mount {}", p.display()),
                source: std::io::Error::other(e),
            })?;
        }
        Ok(())
    }

    /// Mounts the overlay of `lower_dirs` (top-most first) with this instance's upper and work
    /// dirs at [`Bundle::rootfs`].
    pub fn mount_rootfs(&mut self, lower_dirs: &[PathBuf]) -> Result<(), RootfsError> {
        if lower_dirs.is_empty() {
            return Err(RootfsError {
                what: "mounting the root filesystem".into(),
                source: std::io::Error::other("the image has no layers"),
            });
        }
        let (upper, work, target) = (self.dir.join("upper"), self.dir.join("work"), self.rootfs());
        for d in [&upper, &work, &target] {
            std::fs::create_dir(d).map_err(err(format!("creating {}", d.display())))?;
        }
        let fs = fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC)
            .map_err(|e| err("fsopen(overlay)")(e.into()))?;
        let set = |k: &str, v: &Path| {
            fsconfig_set_string(&fs, k, v)
                .map_err(|e| err(format!("overlay option {k}={}", v.display()))(e.into()))
        };
        for l in lower_dirs {
            set("lowerdir+", l)?;
        }
        set("upperdir", &upper)?;
        set("workdir", &work)?;
        // containerd's snapshotter mounts with index=off (no hard-link index across layers).
        fsconfig_set_string(&fs, "index", "off")
            .map_err(|e| err("overlay option index=off")(e.into()))?;
        fsconfig_create(&fs).map_err(|e| err("creating the overlay")(e.into()))?;
        let mnt = fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, MountAttrFlags::empty())
            .map_err(|e| err("fsmount(overlay)")(e.into()))?;
        self.attach(&mnt, &target)
    }

    /// Moves the detached mount `mnt` onto `target`, journaled first.
    fn attach(&mut self, mnt: &OwnedFd, target: &Path) -> Result<(), RootfsError> {
        self.journal_before(target)?;
        let r = move_mount(
            mnt.as_fd(),
            "",
            rustix::fs::CWD,
            target,
            MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
        );
        match r {
            Ok(()) => {
                self.mounted.push(target.to_path_buf());
                Ok(())
            }
            Err(e) => {
                if let Some(j) = &self.journal {
                    j.after_unmount(target);
                }
                Err(err(format!("mounting at {}", target.display()))(e.into()))
            }
        }
    }

    /// A trusted path for `m`'s source: bound from its held descriptor onto
    /// `vol/<n>` (see the module docs), or the path itself when it was not held (skiff's own
    /// files).
    pub fn stage(&mut self, n: usize, m: &MountSpec) -> Result<PathBuf, RootfsError> {
        let Some(fd) = &m.source_fd else {
            return Ok(m.source.clone());
        };
        let vol = self.dir.join("vol");
        if !vol.exists() {
            std::fs::create_dir(&vol).map_err(err(format!("creating {}", vol.display())))?;
        }
        let target = vol.join(n.to_string());
        let st = rustix::fs::fstat(&*fd.0).map_err(|e| err("stat of a volume source")(e.into()))?;
        let is_dir =
            rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Directory;
        if is_dir {
            std::fs::create_dir(&target)
        } else {
            std::fs::File::create(&target).map(drop)
        }
        .map_err(err(format!("creating {}", target.display())))?;
        let tree = open_tree(
            &*fd.0,
            "",
            OpenTreeFlags::OPEN_TREE_CLONE
                | OpenTreeFlags::OPEN_TREE_CLOEXEC
                | OpenTreeFlags::AT_EMPTY_PATH
                | OpenTreeFlags::AT_RECURSIVE,
        )
        .map_err(|e| err(format!("binding the volume source {}", m.source.display()))(e.into()))?;
        self.attach(&tree, &target)?;
        Ok(target)
    }

    /// Unmounts everything (lazily: a process still inside cannot keep it) and deletes the
    /// bundle directory. Idempotent.
    pub fn remove(&mut self) {
        while let Some(p) = self.mounted.pop() {
            match unmount(&p, UnmountFlags::DETACH | UnmountFlags::NOFOLLOW) {
                Ok(()) | Err(rustix::io::Errno::INVAL) | Err(rustix::io::Errno::NOENT) => {
                    if let Some(j) = &self.journal {
                        j.after_unmount(&p);
                    }
                }
                Err(e) => {
                    tracing::warn!(path = %p.display(), error = %e, "unmounting");
                    // Kept in the journal: the node's recovery retries.
                }
            }
        }
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(path = %self.dir.display(), error = %e, "removing the bundle");
            }
        }
    }
}

impl Drop for Bundle {
    fn drop(&mut self) {
        self.remove();
    }
}

/// The kubelet's managed `/etc/hosts` (`managedHostsFileContent`), or with `hostNetwork` the
/// node's file, then the pod's `hostAliases`.
pub fn hosts_file(pod: &Pod, identity: &PodIdentity, hostname: &str) -> String {
    let spec = pod.spec.as_ref();
    let host_network = spec.and_then(|s| s.host_network).unwrap_or(false);
    let mut out = if host_network {
        let mut s = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
        if !s.is_empty() && !s.ends_with('\n') {
            s.push('\n');
        }
        s
    } else {
        let mut s = String::from(
            "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n",
        );
        let fqdn = match spec
            .and_then(|s| s.subdomain.as_deref())
            .filter(|d| !d.is_empty())
        {
            Some(sub) => format!(
                "{hostname}.{sub}.{}.svc.cluster.local\t{hostname}",
                identity.namespace
            ),
            None => hostname.to_string(),
        };
        if let Some(ip) = identity.pod_ip.as_deref().filter(|i| !i.is_empty()) {
            s.push_str(&format!("{ip}\t{fqdn}\n"));
        }
        s
    };
    let aliases = spec.and_then(|s| s.host_aliases.as_ref());
    if let Some(aliases) = aliases.filter(|a| !a.is_empty()) {
        out.push_str("\n# Entries added by HostAliases.\n");
        for a in aliases {
            let names = a.hostnames.clone().unwrap_or_default().join("\t");
            out.push_str(&format!("{}\t{names}\n", a.ip));
        }
    }
    out
}

/// The kubelet's resolv.conf for the pod (`pkg/kubelet/network/dns`): the node's file for
/// `Default` (and for `ClusterFirst`, which falls back to it without cluster DNS, as on a
/// kubelet with no `clusterDNS`), nothing for `None`; then `dnsConfig` merged in
/// (nameservers appended up to 3, searches appended without duplicates up to 32, options
/// replaced by name).
pub fn resolv_conf(pod: &Pod, host_resolv: &str) -> String {
    let spec = pod.spec.as_ref();
    let policy = spec
        .and_then(|s| s.dns_policy.as_deref())
        .unwrap_or("ClusterFirst");
    let (mut ns, mut search, mut opts) = (
        Vec::<String>::new(),
        Vec::<String>::new(),
        Vec::<String>::new(),
    );
    if policy != "None" {
        for line in host_resolv.lines() {
            let mut f = line.split_whitespace();
            match f.next() {
                Some("nameserver") => ns.extend(f.next().map(str::to_string)),
                Some("search") => search = f.map(str::to_string).collect(),
                Some("options") => opts.extend(f.map(str::to_string)),
                _ => {}
            }
        }
    }
    if let Some(c) = spec.and_then(|s| s.dns_config.as_ref()) {
        for n in c.nameservers.iter().flatten() {
            if !ns.contains(n) {
                ns.push(n.clone());
            }
        }
        for s in c.searches.iter().flatten() {
            if !search.contains(s) {
                search.push(s.clone());
            }
        }
        for o in c.options.iter().flatten() {
            let v = match &o.value {
                Some(v) => format!("{}:{v}", o.name.clone().unwrap_or_default()),
                None => o.name.clone().unwrap_or_default(),
            };
            let name = o.name.clone().unwrap_or_default();
            opts.retain(|e| e.split(':').next() != Some(name.as_str()));
            opts.push(v);
        }
    }
    ns.truncate(3);
    search.truncate(32);
    let mut out = String::new();
    for n in &ns {
        out.push_str(&format!("nameserver {n}\n"));
    }
    if !search.is_empty() {
        out.push_str(&format!("search {}\n", search.join(" ")));
    }
    if !opts.is_empty() {
        out.push_str(&format!("options {}\n", opts.join(" ")));
    }
    out
}

/// Writes the pod's `etc-hosts`, `hostname`, `resolv.conf` into `pod_dir` (0644; the
/// containers get them bound in). Returns their paths.
pub fn write_pod_files(
    pod_dir: &Path,
    pod: &Pod,
    identity: &PodIdentity,
    hostname: &str,
) -> std::io::Result<PodFiles> {
    use std::os::unix::fs::PermissionsExt;
    let files = PodFiles {
        hosts: pod_dir.join("etc-hosts"),
        hostname: pod_dir.join("hostname"),
        resolv: pod_dir.join("resolv.conf"),
    };
    let host_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    for (p, text) in [
        (&files.hosts, hosts_file(pod, identity, hostname)),
        (&files.hostname, format!("{hostname}\n")),
        (&files.resolv, resolv_conf(pod, &host_resolv)),
    ] {
        std::fs::write(p, text)?;
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o644))?;
    }
    Ok(files)
}

/// The pod's DNS and host files (see [`write_pod_files`]).
#[derive(Debug, Clone)]
pub struct PodFiles {
    pub hosts: PathBuf,
    pub hostname: PathBuf,
    pub resolv: PathBuf,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(spec: serde_json::Value) -> Pod {
        serde_json::from_value(serde_json::json!({"metadata": {"name": "p"}, "spec": spec}))
            .unwrap()
    }

    #[test]
    fn hosts_file_is_the_kubelets() {
        let p = pod(
            serde_json::json!({"containers": [], "hostAliases": [{"ip": "10.0.0.9", "hostnames": ["a", "b"]}]}),
        );
        let id = PodIdentity {
            namespace: "default".into(),
            pod_ip: Some("10.1.2.3".into()),
            ..Default::default()
        };
        assert_eq!(
            hosts_file(&p, &id, "web"),
            "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n10.1.2.3\tweb\n\n# Entries added by HostAliases.\n10.0.0.9\ta\tb\n"
        );
    }

    #[test]
    fn resolv_conf_merges_dns_config() {
        let host = "nameserver 1.1.1.1\nsearch example.com\noptions ndots:1\n";
        let p = pod(serde_json::json!({"containers": [], "dnsConfig": {
            "nameservers": ["9.9.9.9"], "searches": ["x.local"],
            "options": [{"name": "ndots", "value": "5"}, {"name": "edns0"}]}}));
        assert_eq!(
            resolv_conf(&p, host),
            "nameserver 1.1.1.1\nnameserver 9.9.9.9\nsearch example.com x.local\noptions ndots:5 edns0\n"
        );
        let none = pod(
            serde_json::json!({"containers": [], "dnsPolicy": "None", "dnsConfig": {"nameservers": ["8.8.8.8"]}}),
        );
        assert_eq!(resolv_conf(&none, host), "nameserver 8.8.8.8\n");
    }
}
