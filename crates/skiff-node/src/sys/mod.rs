//! Every `unsafe` of skiff-node: small wrappers around the system calls that neither `nix`
//! nor `rustix` offer as safe functions (`mount_setattr`, `seccomp`, `bpf`), the few
//! ownership claims on descriptors (`from_raw_fd`, tokio's `AsyncFd`), and the code that runs
//! between a `clone3`/`fork` and `exec` ([`process`]: container processes and their monitor;
//! [`holder`]: the pod's namespace holder, which never execs). Each `unsafe` block has its
//! `// SAFETY:` comment; each `unsafe fn` a `# Safety` section with its contract. No policy
//! lives here: callers decide what to call and when, and this module imports none of them
//! (the set-up step a child runs is passed in as a plain `fn`).
//!
//! Everything else uses the safe calls of `nix` and `rustix` directly (`setns`, `unshare`,
//! `mount`, `open_tree`, `move_mount`, `openat2`, per-thread credentials and capabilities,
//! `pidfd_open`, …).
//!
//! **Fork-safe** in a function's docs means: it makes only raw system calls on memory the
//! caller passes, allocates nothing and takes no lock, so it may run in the child of a
//! `clone3`/`fork` of this multi-threaded process before `exec` (the `apply_in_child`
//! functions of `isolation`, `namespaces`, `mountns`, `container_view` and `security`).
//! Errors there are `nix::errno::Errno` values, which the child reports to the parent.
#![allow(unsafe_code)]

pub mod bpf;
pub mod fd;
pub mod holder;
pub mod mount;
pub mod process;
pub mod seccomp;
