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
