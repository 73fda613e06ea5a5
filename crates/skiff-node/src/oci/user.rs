//! Who an image container runs as: the kubelet's choice of user (`securityContext.runAsUser`
//! over the image's `User`, `runAsGroup`), resolved as containerd does in the **image's**
//! `/etc/passwd` and `/etc/group`, with the supplementary groups of the `Merge` policy.
//!
//! Rules (upstream files, read not copied):
//! * kubelet `kuberuntime/security_context.go` `determineEffectiveSecurityContext`: without a
//!   `runAsUser` the image's user is sent, as a uid when its user part is numeric and as a
//!   user name otherwise (containerd `images/image_status.go` `getUserFromImage` drops the
//!   image's `:group`); `fsGroup` and `supplementalGroups` become the CRI supplementary groups.
//! * kubelet `security_context_others.go` `verifyRunAsNonRoot`: the messages of
//!   [`verify_run_as_non_root`].
//! * containerd `internal/cri/util/util.go` `GenerateUserString` and `pkg/oci/spec_opts.go`
//!   `WithUser` / `WithUserID` / `WithUsername` / `WithAdditionalGIDs`: a numeric uid missing
//!   from passwd runs with gid 0; an unknown name is an error; ids above `i32::MAX` are refused
//!   (runc's limit); `runAsGroup` replaces the primary group.
//! * containerd `internal/cri/server/container_create_linux.go` `containerSpecOpts` and
//!   `internal/cri/opts/spec_opts.go` `mergeGids`: `additionalGids` is the sorted set of the
//!   primary gid, the groups listing the user in the image's `/etc/group` (policy `Merge`, not
//!   `Strict`), and the CRI supplementary groups.
//! * containerd `pkg/oci/spec_opts.go` `openUserFile`: the files are opened inside the image
//!   root (symlinks, `..` and absolute links resolved against it), must be regular files, and
//!   are read up to 10 MiB. Here `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)` from a
//!   descriptor of the rootfs, `O_NONBLOCK` so that a FIFO cannot hang the open.

use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use k8s_openapi::api::core::v1::{Container, Pod, PodSecurityContext, SecurityContext};
use rustix::fs::{Mode, OFlags, ResolveFlags};

/// containerd's `maxUserFileBytes`.
pub const MAX_USER_FILE_BYTES: u64 = 10 << 20;

/// runc's (and containerd's) upper bound for a uid or gid.
const MAX_ID: i64 = i32::MAX as i64;

/// The process identity of the container (`process.user` of config.json).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ResolvedUser {
    pub uid: u32,
    pub gid: u32,
    /// Sorted, without duplicates, the primary gid included (containerd's
    /// `ensureAdditionalGids` + `mergeGids`).
    pub additional_gids: Vec<u32>,
}

/// Why the user could not be determined.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    /// `runAsNonRoot` refused the container (kubelet: `CreateContainerConfigError`).
    #[error("{0}")]
    NonRoot(String),
    /// A user or group string the runtime cannot use (out of range, too many `:`).
    #[error("invalid USER value {value:?}: {why}")]
    Invalid { value: String, why: &'static str },
    /// A user name or group name not in the image's files.
    #[error("unable to find {what} {name:?} in the image's {file}: {why}")]
    NotFound {
        what: &'static str,
        name: String,
        file: &'static str,
        why: String,
    },
    /// A user file that exists but cannot be used (not a regular file, too large, unreadable).
    #[error("reading the image's {file}: {why}")]
    File { file: &'static str, why: String },
}

impl UserError {
    /// Whether the kubelet reports this as `CreateContainerConfigError` (its own checks)
    /// rather than the runtime's `CreateContainerError`.
    pub fn is_config_error(&self) -> bool {
        matches!(self, UserError::NonRoot(_))
    }
}

/// The kubelet's effective `runAsUser` / `runAsGroup` / `runAsNonRoot` (container over pod).
fn effective_ids(
    pod_sc: Option<&PodSecurityContext>,
    sc: Option<&SecurityContext>,
) -> (Option<i64>, Option<i64>, Option<bool>) {
    (
        sc.and_then(|c| c.run_as_user)
            .or(pod_sc.and_then(|p| p.run_as_user)),
        sc.and_then(|c| c.run_as_group)
            .or(pod_sc.and_then(|p| p.run_as_group)),
        sc.and_then(|c| c.run_as_non_root)
            .or(pod_sc.and_then(|p| p.run_as_non_root)),
    )
}

/// What the image says about its user, as the kubelet sees it through the CRI image status:
/// a uid when the user part of `User` is numeric, a name otherwise, nothing (= uid 0) when
/// `User` is empty. The image's `:group` is dropped (containerd `getUserFromImage`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageUser {
    Uid(i64),
    Name(String),
}

impl ImageUser {
    pub fn parse(user: Option<&str>) -> ImageUser {
        let user = user.unwrap_or_default();
        let part = user.split(':').next().unwrap_or_default();
        if part.is_empty() {
            return ImageUser::Uid(0);
        }
        match part.parse::<i64>() {
            Ok(uid) => ImageUser::Uid(uid),
            // Out of i64 range counts as a name for the kubelet too (ParseInt fails).
            Err(_) => ImageUser::Name(part.to_string()),
        }
    }
}

/// The kubelet's `format.Pod`: `name_namespace(uid)`.
fn pod_desc(pod: &Pod) -> String {
    format!(
        "{}_{}({})",
        pod.metadata.name.as_deref().unwrap_or_default(),
        pod.metadata.namespace.as_deref().unwrap_or("default"),
        pod.metadata.uid.as_deref().unwrap_or_default()
    )
}

/// `verifyRunAsNonRoot` with the kubelet's messages (and its `(pod: …, container: …)`
/// suffix, as skiff's host runtime writes them).
pub fn verify_run_as_non_root(
    pod: &Pod,
    container: &Container,
    image_user: Option<&str>,
) -> Result<(), UserError> {
    let pod_sc = pod.spec.as_ref().and_then(|s| s.security_context.as_ref());
    let (run_as_user, _, non_root) = effective_ids(pod_sc, container.security_context.as_ref());
    if non_root != Some(true) {
        return Ok(());
    }
    let who = format!("(pod: {:?}, container: {})", pod_desc(pod), container.name);
    if let Some(uid) = run_as_user {
        if uid == 0 {
            return Err(UserError::NonRoot(format!(
                "container's runAsUser breaks non-root policy {who}"
            )));
        }
        return Ok(());
    }
    match ImageUser::parse(image_user) {
        ImageUser::Uid(0) => Err(UserError::NonRoot(format!(
            "container has runAsNonRoot and image will run as root {who}"
        ))),
        ImageUser::Uid(_) => Ok(()),
        ImageUser::Name(name) => Err(UserError::NonRoot(format!(
            "container has runAsNonRoot and image has non-numeric user ({name}), cannot verify user is non-root {who}"
        ))),
    }
}

/// Opens `path` (a directory: the container's root filesystem) for [`resolve_user`].
pub fn open_rootfs(path: &Path) -> std::io::Result<OwnedFd> {
    rustix::fs::open(
        path,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(std::io::Error::from)
}

/// The user `container` runs as, resolved in the image root `rootfs` (a directory
/// descriptor, see [`open_rootfs`]). Checks `runAsNonRoot` first, as the kubelet does.
pub fn resolve_user(
    rootfs: impl AsFd,
    pod: &Pod,
    container: &Container,
    image_user: Option<&str>,
) -> Result<ResolvedUser, UserError> {
    verify_run_as_non_root(pod, container, image_user)?;
    let rootfs = rootfs.as_fd();
    let pod_sc = pod.spec.as_ref().and_then(|s| s.security_context.as_ref());
    let (run_as_user, run_as_group, _) = effective_ids(pod_sc, container.security_context.as_ref());
    // The kubelet's RunAsUser / RunAsUsername, then containerd's user string.
    let user = match run_as_user {
        Some(uid) => ImageUser::Uid(uid),
        None => ImageUser::parse(image_user),
    };
    let check = |v: i64, what: &str| -> Result<u32, UserError> {
        if (0..=MAX_ID).contains(&v) {
            Ok(v as u32)
        } else {
            Err(UserError::Invalid {
                value: v.to_string(),
                why: if what == "uid" {
                    "uid out of range"
                } else {
                    "gid out of range"
                },
            })
        }
    };
    let mut db = UserDb::new(rootfs);
    let (uid, primary, name) = match &user {
        ImageUser::Uid(v) => {
            let uid = check(*v, "uid")?;
            // WithUserID: the user's primary group, else 0.
            match db.passwd()?.iter().find(|e| e.uid == uid) {
                Some(e) => (uid, e.gid, Some(e.name.clone())),
                None => (uid, 0, None),
            }
        }
        ImageUser::Name(n) => {
            // WithUsername: must exist.
            let entry = db.passwd()?.iter().find(|e| &e.name == n).cloned();
            match entry {
                Some(e) => (e.uid, e.gid, Some(e.name)),
                None => {
                    return Err(UserError::NotFound {
                        what: "user",
                        name: n.clone(),
                        file: "/etc/passwd",
                        why: "no users found".into(),
                    })
                }
            }
        }
    };
    let gid = match run_as_group {
        Some(g) => check(g, "gid")?,
        None => primary,
    };
    let mut gids = vec![gid];
    let strict = pod_sc.and_then(|p| p.supplemental_groups_policy.as_deref()) == Some("Strict");
    if let (false, Some(name)) = (strict, &name) {
        // WithAdditionalGIDs: groups listing the user, not one named like the user.
        gids.extend(
            db.group()?
                .iter()
                .filter(|g| &g.name != name && g.members.iter().any(|m| m == name))
                .map(|g| g.gid),
        );
    }
    if let Some(p) = pod_sc {
        for g in p
            .fs_group
            .iter()
            .chain(p.supplemental_groups.iter().flatten())
        {
            gids.push(check(*g, "gid")?);
        }
    }
    gids.sort_unstable();
    gids.dedup();
    Ok(ResolvedUser {
        uid,
        gid,
        additional_gids: gids,
    })
}

#[derive(Debug, Clone)]
struct PasswdEntry {
    name: String,
    uid: u32,
    gid: u32,
}

#[derive(Debug, Clone)]
struct GroupEntry {
    name: String,
    gid: u32,
    members: Vec<String>,
}

/// The image's user database, each file read at most once.
struct UserDb<'a> {
    root: BorrowedFd<'a>,
    passwd: Option<Vec<PasswdEntry>>,
    group: Option<Vec<GroupEntry>>,
}

impl<'a> UserDb<'a> {
    fn new(root: BorrowedFd<'a>) -> Self {
        UserDb {
            root,
            passwd: None,
            group: None,
        }
    }

    fn passwd(&mut self) -> Result<&[PasswdEntry], UserError> {
        if self.passwd.is_none() {
            let text = read_user_file(self.root, "etc/passwd", "/etc/passwd")?;
            self.passwd = Some(parse_passwd(text.as_deref().unwrap_or_default()));
        }
        Ok(self.passwd.as_deref().unwrap_or_default())
    }

    fn group(&mut self) -> Result<&[GroupEntry], UserError> {
        if self.group.is_none() {
            let text = read_user_file(self.root, "etc/group", "/etc/group")?;
            self.group = Some(parse_group(text.as_deref().unwrap_or_default()));
        }
        Ok(self.group.as_deref().unwrap_or_default())
    }
}

/// Reads `rel` inside `root` as containerd's `openUserFile` does; `None` when it does not
/// exist (containerd then treats the database as empty).
fn read_user_file(
    root: BorrowedFd<'_>,
    rel: &str,
    file: &'static str,
) -> Result<Option<String>, UserError> {
    let err = |why: String| UserError::File { file, why };
    let fd = match rustix::fs::openat2(
        root,
        rel,
        // O_NONBLOCK: opening a FIFO must not wait for a writer; the type check follows.
        OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOCTTY | OFlags::NONBLOCK,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    ) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT) | Err(rustix::io::Errno::NOTDIR) => return Ok(None),
        Err(e) => return Err(err(std::io::Error::from(e).to_string())),
    };
    let st = rustix::fs::fstat(&fd).map_err(|e| err(std::io::Error::from(e).to_string()))?;
    if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::RegularFile {
        return Err(err(format!("{file} is not a regular file")));
    }
    let mut buf = Vec::new();
    std::fs::File::from(fd)
        .take(MAX_USER_FILE_BYTES + 1)
        .read_to_end(&mut buf)
        .map_err(|e| err(e.to_string()))?;
    if buf.len() as u64 > MAX_USER_FILE_BYTES {
        return Err(err(format!("{file} exceeds {MAX_USER_FILE_BYTES} bytes")));
    }
    Ok(Some(String::from_utf8_lossy(&buf).into_owned()))
}

/// `name:password:uid:gid:…` lines; malformed lines are skipped (as moby/sys/user does).
fn parse_passwd(text: &str) -> Vec<PasswdEntry> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| {
            let mut f = l.split(':');
            let name = f.next()?.trim();
            let _pw = f.next();
            let uid = f.next()?.trim().parse().ok()?;
            let gid = f.next()?.trim().parse().ok()?;
            (!name.is_empty()).then(|| PasswdEntry {
                name: name.to_string(),
                uid,
                gid,
            })
        })
        .collect()
}

/// `name:password:gid:member,member` lines.
fn parse_group(text: &str) -> Vec<GroupEntry> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| {
            let mut f = l.split(':');
            let name = f.next()?.trim();
            let _pw = f.next();
            let gid = f.next()?.trim().parse().ok()?;
            let members = f
                .next()
                .unwrap_or_default()
                .split(',')
                .map(str::trim)
                .filter(|m| !m.is_empty())
                .map(String::from)
                .collect();
            (!name.is_empty()).then(|| GroupEntry {
                name: name.to_string(),
                gid,
                members,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;
    use std::os::unix::fs::symlink;

    fn pod_with(pod_sc: serde_json::Value, c_sc: serde_json::Value) -> (Pod, Container) {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "ns", "uid": "u-1"},
            "spec": {"securityContext": pod_sc,
                     "containers": [{"name": "c", "securityContext": c_sc}]}
        }))
        .unwrap();
        let c = pod.spec.as_ref().unwrap().containers[0].clone();
        (pod, c)
    }

    fn root_with(passwd: &str, group: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("etc")).unwrap();
        std::fs::write(dir.path().join("etc/passwd"), passwd).unwrap();
        std::fs::write(dir.path().join("etc/group"), group).unwrap();
        dir
    }

    fn resolve(
        root: &Path,
        image_user: Option<&str>,
        pod_sc: serde_json::Value,
    ) -> Result<ResolvedUser, UserError> {
        let (pod, c) = pod_with(pod_sc, json!({}));
        resolve_user(open_rootfs(root).unwrap(), &pod, &c, image_user)
    }

    const PASSWD: &str = "root:x:0:0::/root:/bin/sh\napp:x:1000:1500::/home/app:/bin/sh\n";
    const GROUP: &str = "root:x:0:\nwheel:x:10:app\napp:x:1500:app\n";

    // containerd pkg/oci/spec_opts.go WithUserID: a uid missing from passwd runs with gid 0;
    // WithUsername: an unknown name is an error.
    #[test]
    fn numeric_and_named_users() {
        let root = root_with(PASSWD, GROUP);
        let u = resolve(root.path(), Some("1000"), json!({})).unwrap();
        assert_eq!(
            (u.uid, u.gid, u.additional_gids),
            (1000, 1500, vec![10, 1500])
        );
        let u = resolve(root.path(), Some("4242"), json!({})).unwrap();
        assert_eq!((u.uid, u.gid, u.additional_gids), (4242, 0, vec![0]));
        let u = resolve(root.path(), Some("app:staff"), json!({})).unwrap();
        // The image's group part is dropped (containerd getUserFromImage).
        assert_eq!((u.uid, u.gid), (1000, 1500));
        let e = resolve(root.path(), Some("ghost"), json!({})).unwrap_err();
        assert!(e.to_string().contains("\"ghost\""), "{e}");
        assert!(!e.is_config_error());
        // No User: uid 0 (the kubelet's getImageUser).
        let u = resolve(root.path(), None, json!({})).unwrap();
        assert_eq!((u.uid, u.gid), (0, 0));
        // runAsUser beats the image user; runAsGroup replaces the primary group.
        let u = resolve(
            root.path(),
            Some("ghost"),
            json!({"runAsUser": 1000, "runAsGroup": 7}),
        )
        .unwrap();
        assert_eq!((u.uid, u.gid, u.additional_gids), (1000, 7, vec![7, 10]));
        // ids above i32::MAX are refused (runc's limit, containerd WithUser).
        let e = resolve(root.path(), None, json!({"runAsUser": 2_147_483_648i64})).unwrap_err();
        assert!(e.to_string().contains("uid out of range"), "{e}");
    }

    // containerd container_create_linux.go containerSpecOpts: Merge adds the image's groups of
    // the user; Strict only the pod's.
    #[test]
    fn supplemental_groups_policy() {
        let root = root_with(PASSWD, GROUP);
        let u = resolve(
            root.path(),
            Some("app"),
            json!({"fsGroup": 2000, "supplementalGroups": [5, 10]}),
        )
        .unwrap();
        assert_eq!(u.additional_gids, vec![5, 10, 1500, 2000]);
        let u = resolve(
            root.path(),
            Some("app"),
            json!({"fsGroup": 2000, "supplementalGroupsPolicy": "Strict"}),
        )
        .unwrap();
        assert_eq!(u.additional_gids, vec![1500, 2000]);
    }

    // kubelet security_context_others.go verifyRunAsNonRoot.
    #[test]
    fn run_as_non_root_messages() {
        let root = root_with(PASSWD, GROUP);
        let e = resolve(root.path(), None, json!({"runAsNonRoot": true})).unwrap_err();
        assert!(e.is_config_error());
        assert_eq!(
            e.to_string(),
            "container has runAsNonRoot and image will run as root (pod: \"p_ns(u-1)\", container: c)"
        );
        let e = resolve(root.path(), Some("app"), json!({"runAsNonRoot": true})).unwrap_err();
        assert_eq!(
            e.to_string(),
            "container has runAsNonRoot and image has non-numeric user (app), cannot verify user is non-root (pod: \"p_ns(u-1)\", container: c)"
        );
        let e = resolve(
            root.path(),
            Some("1000"),
            json!({"runAsNonRoot": true, "runAsUser": 0}),
        )
        .unwrap_err();
        assert!(e
            .to_string()
            .starts_with("container's runAsUser breaks non-root policy"));
        assert!(resolve(root.path(), Some("1000:0"), json!({"runAsNonRoot": true})).is_ok());
        assert!(resolve(
            root.path(),
            Some("app"),
            json!({"runAsNonRoot": true, "runAsUser": 1000})
        )
        .is_ok());
    }

    // containerd pkg/oci/spec_opts.go openUserFile: symlinks resolve inside the image root.
    // An image whose /etc/passwd points at the host's /etc/shadow reads the image's own
    // /etc/shadow, never the host's.
    #[test]
    fn absolute_and_dotdot_symlinks_stay_in_the_root() {
        let root = root_with("", GROUP);
        let etc = root.path().join("etc");
        std::fs::remove_file(etc.join("passwd")).unwrap();
        symlink("/etc/shadow", etc.join("passwd")).unwrap();
        std::fs::write(etc.join("shadow"), "app:x:1234:1234::/:/bin/sh\n").unwrap();
        let u = resolve(root.path(), Some("app"), json!({})).unwrap();
        assert_eq!((u.uid, u.gid), (1234, 1234));
        // `..` past the root stays at the root.
        std::fs::remove_file(etc.join("passwd")).unwrap();
        symlink("../../../../../../etc/shadow", etc.join("passwd")).unwrap();
        assert_eq!(
            resolve(root.path(), Some("app"), json!({})).unwrap().uid,
            1234
        );
        // /etc itself a symlink to "/etc": inside the root that is itself, a loop, never
        // the host's /etc.
        let root2 = tempfile::tempdir().unwrap();
        symlink("/etc", root2.path().join("etc")).unwrap();
        let e = resolve(root2.path(), Some("root"), json!({})).unwrap_err();
        assert!(matches!(e, UserError::File { .. }), "{e}");
        // A magic link (/proc/self/root/...) is resolved in the root, where /proc is absent.
        std::fs::remove_file(etc.join("passwd")).unwrap();
        symlink("/proc/self/root/etc/passwd", etc.join("passwd")).unwrap();
        assert!(resolve(root.path(), Some("app"), json!({})).is_err());
    }

    #[test]
    fn symlink_loops_fail_without_hanging() {
        let root = root_with("", GROUP);
        let etc = root.path().join("etc");
        std::fs::remove_file(etc.join("passwd")).unwrap();
        symlink("/etc/passwd", etc.join("passwd")).unwrap();
        let e = resolve(root.path(), Some("1000"), json!({})).unwrap_err();
        assert!(matches!(e, UserError::File { .. }), "{e}");
        std::fs::remove_file(etc.join("passwd")).unwrap();
        symlink("/etc/a", etc.join("passwd")).unwrap();
        symlink("/etc/b", etc.join("a")).unwrap();
        symlink("/etc/a", etc.join("b")).unwrap();
        assert!(resolve(root.path(), Some("1000"), json!({})).is_err());
    }

    // Only regular files (openUserFile's wrapUserFile): a FIFO fails at once (O_NONBLOCK),
    // so does a directory.
    #[test]
    fn fifo_and_directory_are_refused() {
        let root = root_with("", GROUP);
        let passwd = root.path().join("etc/passwd");
        std::fs::remove_file(&passwd).unwrap();
        nix::unistd::mkfifo(&passwd, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
        let e = resolve(root.path(), Some("1000"), json!({})).unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
        std::fs::remove_file(&passwd).unwrap();
        std::fs::create_dir(&passwd).unwrap();
        let e = resolve(root.path(), Some("1000"), json!({})).unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
    }

    // containerd maxUserFileBytes: reads stop past 10 MiB with an error.
    #[test]
    fn oversized_file_is_refused() {
        let root = root_with("", GROUP);
        let f = std::fs::File::create(root.path().join("etc/passwd")).unwrap();
        f.set_len(20 << 20).unwrap();
        let e = resolve(root.path(), Some("1000"), json!({})).unwrap_err();
        assert!(e.to_string().contains("exceeds 10485760 bytes"), "{e}");
        // Exactly the cap is fine.
        f.set_len(MAX_USER_FILE_BYTES).unwrap();
        assert_eq!(
            resolve(root.path(), Some("1000"), json!({})).unwrap().gid,
            0
        );
    }

    // Missing files: a numeric uid runs with gid 0, a name fails (WithUserID / WithUsername).
    #[test]
    fn missing_user_database() {
        let root = tempfile::tempdir().unwrap();
        let u = resolve(
            root.path(),
            Some("1000"),
            json!({"supplementalGroups": [3]}),
        )
        .unwrap();
        assert_eq!((u.uid, u.gid, u.additional_gids), (1000, 0, vec![0, 3]));
        assert!(resolve(root.path(), Some("app"), json!({})).is_err());
    }

    #[test]
    fn image_user_parsing() {
        assert_eq!(ImageUser::parse(None), ImageUser::Uid(0));
        assert_eq!(ImageUser::parse(Some("")), ImageUser::Uid(0));
        assert_eq!(ImageUser::parse(Some("12:34")), ImageUser::Uid(12));
        assert_eq!(
            ImageUser::parse(Some("www:34")),
            ImageUser::Name("www".into())
        );
    }
}
