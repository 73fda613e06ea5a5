//! The `RuntimeDefault` seccomp profile: containerd's default profile
//! (`contrib/seccomp/seccomp_default.go`, `DefaultProfile`), as data and as a classic BPF
//! program built in the parent.
//!
//! The profile is an allow-list: the system calls it names are allowed (some only with a
//! capability, some only with given argument values), everything else fails with `EPERM`
//! (containerd's `SCMP_ACT_ERRNO` default action; runc's default errno is `EPERM`). As runc
//! does (`libcontainer/seccomp/patchbpf`), a system call number above the largest one the
//! profile names fails with `ENOSYS` instead, so a program probing a system call newer than the
//! profile falls back as it would on an older kernel. Without `CAP_SYS_ADMIN`, `clone3`
//! fails with `ENOSYS` (the C library then uses `clone`, whose flags seccomp can read) and
//! `clone` is allowed only without `CLONE_NEW*` flags.
//!
//! [`RULES`] is the profile as containerd writes it (rule by rule, with the capability each
//! extra rule depends on); [`Profile`] is its instance for one container's capabilities, with
//! [`Profile::to_oci`] (the OCI `LinuxSeccomp` JSON an OCI runtime would take) and
//! [`Profile::compile`] (the filter skiff installs).
//!
//! Differences from containerd + runc, all stricter:
//! * Only the native ABI is allowed. containerd also lists `SCMP_ARCH_X86` and
//!   `SCMP_ARCH_X32` (`SCMP_ARCH_ARM` on aarch64), whose system calls libseccomp resolves by
//!   name per ABI; here every i386, x32 and arm32 system call fails with `EPERM` (32-bit
//!   programs do not run under `RuntimeDefault`).
//! * Argument conditions compare the low 32 bits, which is what the kernel reads for each
//!   argument the profile tests (`socket`'s `int family`, `personality`'s `unsigned int`,
//!   `clone`'s flags through `lower_32_bits`); libseccomp compares all 64, so
//!   `socket(AF_VSOCK | 1 << 32, …)` passes its `> AF_VSOCK` test.
//! * `ptrace`, `process_vm_readv` and `process_vm_writev` are allowed unconditionally:
//!   containerd adds them on kernels ≥ 4.8, and skiff needs newer ones anyway (`clone3`,
//!   pidfds).
//!
//! The BPF program is `seccompiler`'s (rust-vmm) for the allow rules, behind a short prefix
//! written here for what seccompiler does not do: one filter has a single match action
//! (the `clone3` → `ENOSYS` rule needs a second), the ENOSYS range above the profile, the
//! x32 bit, and the architecture check (seccompiler kills the process on a foreign
//! architecture; containerd answers `EPERM`).

mod numbers;

use std::collections::BTreeMap;

use nix::libc;
use seccompiler::{
    SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter, SeccompRule,
    TargetArch,
};

use super::caps;

/// `AUDIT_ARCH_*` (linux/audit.h) of the architecture skiff is built for.
#[cfg(target_arch = "x86_64")]
const NATIVE_ARCH: u32 = 0xC000_003E;
#[cfg(target_arch = "aarch64")]
const NATIVE_ARCH: u32 = 0xC000_00B7;

#[cfg(target_arch = "x86_64")]
const TARGET_ARCH: TargetArch = TargetArch::x86_64;
#[cfg(target_arch = "aarch64")]
const TARGET_ARCH: TargetArch = TargetArch::aarch64;

/// The OCI architectures containerd lists for this build (`arches()`).
#[cfg(target_arch = "x86_64")]
const OCI_ARCHES: &[&str] = &["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"];
#[cfg(target_arch = "aarch64")]
const OCI_ARCHES: &[&str] = &["SCMP_ARCH_ARM", "SCMP_ARCH_AARCH64"];

/// `__X32_SYSCALL_BIT`: x32 system calls share the x86_64 audit arch.
#[cfg(target_arch = "x86_64")]
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// Offsets in `struct seccomp_data`.
const DATA_NR: u32 = 0;
const DATA_ARCH: u32 = 4;

/// The namespace flags `clone` may not carry without `CAP_SYS_ADMIN`.
const CLONE_NS_FLAGS: u64 = (libc::CLONE_NEWNS
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWCGROUP) as u64;

/// What a rule does when it matches (OCI `action`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// `SCMP_ACT_ALLOW`.
    Allow,
    /// `SCMP_ACT_ERRNO` with `errnoRet`.
    Errno(u32),
}

/// An argument comparison (OCI `op`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `SCMP_CMP_EQ`: `arg == value`.
    EqualTo,
    /// `SCMP_CMP_LT`: `arg < value`.
    LessThan,
    /// `SCMP_CMP_GT`: `arg > value`.
    GreaterThan,
    /// `SCMP_CMP_MASKED_EQ`: `arg & value == value_two`.
    MaskedEqual,
}

/// One argument condition (OCI `LinuxSeccompArg`); a rule's conditions must all hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arg {
    pub index: u8,
    pub value: u64,
    pub value_two: u64,
    pub op: Op,
}

/// Which containers a rule is part of the profile for (containerd adds rules per capability
/// of the container's set, and the `clone` / `clone3` rules only without `CAP_SYS_ADMIN`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    Always,
    WithCap(u32),
    WithoutCap(u32),
}

/// One rule (OCI `LinuxSyscall`) and when containerd includes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub names: &'static [&'static str],
    pub action: Action,
    pub args: &'static [Arg],
    pub when: When,
}

const fn allow(names: &'static [&'static str]) -> Rule {
    Rule {
        names,
        action: Action::Allow,
        args: &[],
        when: When::Always,
    }
}

const fn allow_with(cap: u32, names: &'static [&'static str]) -> Rule {
    Rule {
        names,
        action: Action::Allow,
        args: &[],
        when: When::WithCap(cap),
    }
}

const fn arg0(op: Op, value: u64) -> Arg {
    Arg {
        index: 0,
        value,
        value_two: 0,
        op,
    }
}

const fn allow_if(name: &'static [&'static str], args: &'static [Arg]) -> Rule {
    Rule {
        names: name,
        action: Action::Allow,
        args,
        when: When::Always,
    }
}

/// containerd's base allow-list (every architecture; names a given architecture lacks are
/// skipped). Kept as containerd writes it, several names a line.
#[rustfmt::skip]
const BASE: &[&str] = &[
    "accept", "accept4", "access", "adjtimex", "alarm", "bind", "brk", "cachestat",
    "capget", "capset", "chdir", "chmod", "chown", "chown32", "clock_adjtime",
    "clock_adjtime64", "clock_getres", "clock_getres_time64", "clock_gettime",
    "clock_gettime64", "clock_nanosleep", "clock_nanosleep_time64", "close", "close_range",
    "connect", "copy_file_range", "creat", "dup", "dup2", "dup3", "epoll_create",
    "epoll_create1", "epoll_ctl", "epoll_ctl_old", "epoll_pwait", "epoll_pwait2",
    "epoll_wait", "epoll_wait_old", "eventfd", "eventfd2", "execve", "execveat", "exit",
    "exit_group", "faccessat", "faccessat2", "fadvise64", "fadvise64_64", "fallocate",
    "fanotify_mark", "fchdir", "fchmod", "fchmodat", "fchmodat2", "fchown", "fchown32",
    "fchownat", "fcntl", "fcntl64", "fdatasync", "fgetxattr", "flistxattr", "flock", "fork",
    "fremovexattr", "fsetxattr", "fstat", "fstat64", "fstatat64", "fstatfs", "fstatfs64",
    "fsync", "ftruncate", "ftruncate64", "futex", "futex_requeue", "futex_time64",
    "futex_wait", "futex_waitv", "futex_wake", "futimesat", "getcpu", "getcwd", "getdents",
    "getdents64", "getegid", "getegid32", "geteuid", "geteuid32", "getgid", "getgid32",
    "getgroups", "getgroups32", "getitimer", "getpeername", "getpgid", "getpgrp", "getpid",
    "getppid", "getpriority", "getrandom", "getresgid", "getresgid32", "getresuid",
    "getresuid32", "getrlimit", "get_robust_list", "getrusage", "getsid", "getsockname",
    "getsockopt", "get_thread_area", "gettid", "gettimeofday", "getuid", "getuid32",
    "getxattr", "getxattrat", "inotify_add_watch", "inotify_init", "inotify_init1",
    "inotify_rm_watch", "io_cancel", "ioctl", "io_destroy", "io_getevents", "io_pgetevents",
    "io_pgetevents_time64", "ioprio_get", "ioprio_set", "io_setup", "io_submit", "ipc",
    "kill", "landlock_add_rule", "landlock_create_ruleset", "landlock_restrict_self",
    "lchown", "lchown32", "lgetxattr", "link", "linkat", "listen", "listmount", "listxattr",
    "listxattrat", "llistxattr", "_llseek", "lremovexattr", "lseek", "lsetxattr",
    "lsm_get_self_attr", "lsm_list_modules", "lsm_set_self_attr", "lstat", "lstat64",
    "madvise", "membarrier", "memfd_create", "memfd_secret", "mincore", "mkdir", "mkdirat",
    "mknod", "mknodat", "mlock", "mlock2", "mlockall", "map_shadow_stack", "mmap", "mmap2",
    "mprotect", "mq_getsetattr", "mq_notify", "mq_open", "mq_timedreceive",
    "mq_timedreceive_time64", "mq_timedsend", "mq_timedsend_time64", "mq_unlink", "mremap",
    "mseal", "msgctl", "msgget", "msgrcv", "msgsnd", "msync", "munlock", "munlockall",
    "munmap", "name_to_handle_at", "nanosleep", "newfstatat", "_newselect", "open", "openat",
    "openat2", "pause", "pidfd_open", "pidfd_send_signal", "pipe", "pipe2", "pkey_alloc",
    "pkey_free", "pkey_mprotect", "poll", "ppoll", "ppoll_time64", "prctl", "pread64",
    "preadv", "preadv2", "prlimit64", "process_mrelease", "pselect6", "pselect6_time64",
    "pwrite64", "pwritev", "pwritev2", "read", "readahead", "readlink", "readlinkat", "readv",
    "recv", "recvfrom", "recvmmsg", "recvmmsg_time64", "recvmsg", "remap_file_pages",
    "removexattr", "removexattrat", "rename", "renameat", "renameat2", "restart_syscall",
    "rmdir", "rseq", "rt_sigaction", "rt_sigpending", "rt_sigprocmask", "rt_sigqueueinfo",
    "rt_sigreturn", "rt_sigsuspend", "rt_sigtimedwait", "rt_sigtimedwait_time64",
    "rt_tgsigqueueinfo", "sched_getaffinity", "sched_getattr", "sched_getparam",
    "sched_get_priority_max", "sched_get_priority_min", "sched_getscheduler",
    "sched_rr_get_interval", "sched_rr_get_interval_time64", "sched_setaffinity",
    "sched_setattr", "sched_setparam", "sched_setscheduler", "sched_yield", "seccomp",
    "select", "semctl", "semget", "semop", "semtimedop", "semtimedop_time64", "send",
    "sendfile", "sendfile64", "sendmmsg", "sendmsg", "sendto", "setfsgid", "setfsgid32",
    "setfsuid", "setfsuid32", "setgid", "setgid32", "setgroups", "setgroups32", "setitimer",
    "setpgid", "setpriority", "setregid", "setregid32", "setresgid", "setresgid32",
    "setresuid", "setresuid32", "setreuid", "setreuid32", "setrlimit", "set_robust_list",
    "setsid", "setsockopt", "set_thread_area", "set_tid_address", "setuid", "setuid32",
    "setxattr", "setxattrat", "shmat", "shmctl", "shmdt", "shmget", "shutdown", "sigaltstack",
    "signalfd", "signalfd4", "sigprocmask", "sigreturn", "socketcall", "socketpair",
    "splice", "stat", "stat64", "statfs", "statfs64", "statmount", "statx", "symlink",
    "symlinkat", "sync", "sync_file_range", "syncfs", "sysinfo", "tee", "tgkill", "time",
    "timer_create", "timer_delete", "timer_getoverrun", "timer_gettime", "timer_gettime64",
    "timer_settime", "timer_settime64", "timerfd_create", "timerfd_gettime",
    "timerfd_gettime64", "timerfd_settime", "timerfd_settime64", "times", "tkill",
    "truncate", "truncate64", "ugetrlimit", "umask", "uname", "unlink", "unlinkat",
    "uretprobe", "utime", "utimensat", "utimensat_time64", "utimes", "vfork", "vmsplice",
    "wait4", "waitid", "waitpid", "write", "writev",
];

/// The profile, rule by rule, in containerd's order.
pub const RULES: &[Rule] = &[
    allow(BASE),
    // socket(2) for every family but AF_ALG (38) and AF_VSOCK (40): three ranges, as
    // containerd writes them.
    allow_if(&["socket"], &[arg0(Op::LessThan, libc::AF_ALG as u64)]),
    allow_if(&["socket"], &[arg0(Op::EqualTo, libc::AF_ALG as u64 + 1)]),
    allow_if(&["socket"], &[arg0(Op::GreaterThan, libc::AF_VSOCK as u64)]),
    // personality(2): PER_LINUX, PER_LINUX32, UNAME26 and both, and the query.
    allow_if(&["personality"], &[arg0(Op::EqualTo, 0x0)]),
    allow_if(&["personality"], &[arg0(Op::EqualTo, 0x0008)]),
    allow_if(&["personality"], &[arg0(Op::EqualTo, 0x20000)]),
    allow_if(&["personality"], &[arg0(Op::EqualTo, 0x20008)]),
    allow_if(&["personality"], &[arg0(Op::EqualTo, 0xffff_ffff)]),
    // Kernel ≥ 4.8 (seccomp runs after ptrace): always here.
    allow(&["process_vm_readv", "process_vm_writev", "ptrace"]),
    // Per architecture (containerd's `runtime.GOARCH` switch).
    #[cfg(target_arch = "x86_64")]
    allow(&["arch_prctl", "modify_ldt"]),
    #[cfg(target_arch = "aarch64")]
    allow(&[
        "arm_fadvise64_64",
        "arm_sync_file_range",
        "sync_file_range2",
        "breakpoint",
        "cacheflush",
        "set_tls",
    ]),
    // Per capability of the container's set.
    allow_with(caps::DAC_READ_SEARCH, &["open_by_handle_at"]),
    allow_with(
        caps::SYS_ADMIN,
        &[
            "bpf",
            "clone",
            "clone3",
            "fanotify_init",
            "fsconfig",
            "fsmount",
            "fsopen",
            "fspick",
            "lookup_dcookie",
            "mount",
            "mount_setattr",
            "move_mount",
            "open_tree",
            "perf_event_open",
            "quotactl",
            "quotactl_fd",
            "setdomainname",
            "sethostname",
            "setns",
            "syslog",
            "umount",
            "umount2",
            "unshare",
        ],
    ),
    allow_with(caps::SYS_BOOT, &["reboot"]),
    allow_with(caps::SYS_CHROOT, &["chroot"]),
    allow_with(
        caps::SYS_MODULE,
        &["delete_module", "init_module", "finit_module"],
    ),
    allow_with(caps::SYS_PACCT, &["acct"]),
    allow_with(
        caps::SYS_PTRACE,
        &[
            "kcmp",
            "pidfd_getfd",
            "process_madvise",
            "process_vm_readv",
            "process_vm_writev",
            "ptrace",
        ],
    ),
    allow_with(caps::SYS_RAWIO, &["iopl", "ioperm"]),
    allow_with(
        caps::SYS_TIME,
        &["settimeofday", "stime", "clock_settime", "clock_settime64"],
    ),
    allow_with(caps::SYS_TTY_CONFIG, &["vhangup"]),
    allow_with(
        caps::SYS_NICE,
        &[
            "get_mempolicy",
            "mbind",
            "set_mempolicy",
            "set_mempolicy_home_node",
        ],
    ),
    allow_with(caps::SYSLOG, &["syslog"]),
    allow_with(caps::BPF, &["bpf"]),
    allow_with(caps::PERFMON, &["perf_event_open"]),
    // Without CAP_SYS_ADMIN: clone without namespace flags, and clone3 answered ENOSYS.
    Rule {
        names: &["clone"],
        action: Action::Allow,
        args: &[Arg {
            index: 0,
            value: CLONE_NS_FLAGS,
            value_two: 0,
            op: Op::MaskedEqual,
        }],
        when: When::WithoutCap(caps::SYS_ADMIN),
    },
    Rule {
        names: &["clone3"],
        action: Action::Errno(libc::ENOSYS as u32),
        args: &[],
        when: When::WithoutCap(caps::SYS_ADMIN),
    },
];

/// The default action's errno (`SCMP_ACT_ERRNO` without `defaultErrnoRet`: runc's `EPERM`).
pub const DEFAULT_ERRNO: u32 = libc::EPERM as u32;

/// Why a profile could not be compiled (a bug in the table, not a user error).
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("seccomp: {0}")]
    Compile(#[from] seccompiler::BackendError),
    #[error("seccomp: system call {0} has both an errno rule and other rules")]
    Conflict(String),
    #[error("seccomp: errno rules with argument conditions are not supported ({0})")]
    ConditionalErrno(String),
    #[error("seccomp: the filter has {0} instructions, more than the kernel's 4096")]
    TooLong(usize),
}

/// containerd's profile for one container: the rules of [`RULES`] that apply to a container
/// whose capability set is `caps`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    pub rules: Vec<Rule>,
}

/// `RuntimeDefault` for a container whose capabilities (bounding = effective, after the
/// security context's add/drop) are `caps`.
pub fn runtime_default(caps: u64) -> Profile {
    let has = |c: u32| caps & (1u64 << c) != 0;
    Profile {
        rules: RULES
            .iter()
            .filter(|r| match r.when {
                When::Always => true,
                When::WithCap(c) => has(c),
                When::WithoutCap(c) => !has(c),
            })
            .copied()
            .collect(),
    }
}

fn oci_op(op: Op) -> &'static str {
    match op {
        Op::EqualTo => "SCMP_CMP_EQ",
        Op::LessThan => "SCMP_CMP_LT",
        Op::GreaterThan => "SCMP_CMP_GT",
        Op::MaskedEqual => "SCMP_CMP_MASKED_EQ",
    }
}

impl Profile {
    /// The OCI runtime spec's `linux.seccomp` (runtime-spec `config-linux.md`), with the
    /// field names and omissions of its Go types.
    pub fn to_oci(&self) -> serde_json::Value {
        use serde_json::{json, Map, Value};
        let syscalls: Vec<Value> = self
            .rules
            .iter()
            .map(|r| {
                let mut s = Map::new();
                s.insert("names".into(), json!(r.names));
                match r.action {
                    Action::Allow => {
                        s.insert("action".into(), json!("SCMP_ACT_ALLOW"));
                    }
                    Action::Errno(e) => {
                        s.insert("action".into(), json!("SCMP_ACT_ERRNO"));
                        s.insert("errnoRet".into(), json!(e));
                    }
                }
                if !r.args.is_empty() {
                    let args: Vec<Value> = r
                        .args
                        .iter()
                        .map(|a| {
                            let mut m = Map::new();
                            m.insert("index".into(), json!(a.index));
                            m.insert("value".into(), json!(a.value));
                            if a.value_two != 0 {
                                m.insert("valueTwo".into(), json!(a.value_two));
                            }
                            m.insert("op".into(), json!(oci_op(a.op)));
                            Value::Object(m)
                        })
                        .collect();
                    s.insert("args".into(), Value::Array(args));
                }
                Value::Object(s)
            })
            .collect();
        json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "architectures": OCI_ARCHES,
            "syscalls": syscalls,
        })
    }

    /// The filter for this architecture (native ABI only, see the module comment).
    pub fn compile(&self) -> Result<Vec<libc::sock_filter>, SeccompError> {
        // Allow rules per system call number: `None` = unconditionally, `Some(alternatives)`.
        let mut allowed: BTreeMap<i64, Option<Vec<SeccompRule>>> = BTreeMap::new();
        let mut errno: BTreeMap<i64, u32> = BTreeMap::new();
        // runc's ENOSYS stub: above the largest number any rule names.
        let mut largest = 0i64;
        for rule in &self.rules {
            for name in rule.names {
                let Some(nr) = numbers::native(name) else {
                    continue;
                };
                largest = largest.max(nr);
                match rule.action {
                    Action::Errno(e) => {
                        if !rule.args.is_empty() {
                            return Err(SeccompError::ConditionalErrno(name.to_string()));
                        }
                        errno.insert(nr, e);
                    }
                    Action::Allow if rule.args.is_empty() => {
                        allowed.insert(nr, None);
                    }
                    Action::Allow => {
                        let conditions = rule
                            .args
                            .iter()
                            .map(|a| {
                                let (op, value) = match a.op {
                                    Op::EqualTo => (SeccompCmpOp::Eq, a.value),
                                    Op::LessThan => (SeccompCmpOp::Lt, a.value),
                                    Op::GreaterThan => (SeccompCmpOp::Gt, a.value),
                                    Op::MaskedEqual => {
                                        (SeccompCmpOp::MaskedEq(a.value), a.value_two)
                                    }
                                };
                                // Low 32 bits: see the module comment.
                                SeccompCondition::new(a.index, SeccompCmpArgLen::Dword, op, value)
                            })
                            .collect::<Result<Vec<_>, _>>()?;
                        let alternative = SeccompRule::new(conditions)?;
                        // `None`: already allowed unconditionally.
                        if let Some(alternatives) =
                            allowed.entry(nr).or_insert_with(|| Some(Vec::new()))
                        {
                            alternatives.push(alternative);
                        }
                    }
                }
            }
        }
        if let Some(nr) = errno.keys().find(|nr| allowed.contains_key(nr)) {
            return Err(SeccompError::Conflict(nr.to_string()));
        }

        let eperm = libc::SECCOMP_RET_ERRNO | DEFAULT_ERRNO;
        let ret_errno = |e: u32| libc::SECCOMP_RET_ERRNO | (e & libc::SECCOMP_RET_DATA);
        let mut p = vec![
            load(DATA_ARCH),
            // Native: skip the next instruction, which answers every foreign ABI.
            jump(libc::BPF_JEQ, NATIVE_ARCH, 1, 0),
            ret(eperm),
            load(DATA_NR),
        ];
        #[cfg(target_arch = "x86_64")]
        {
            p.push(jump(libc::BPF_JSET, X32_SYSCALL_BIT, 0, 1));
            p.push(ret(eperm));
        }
        p.push(jump(libc::BPF_JGT, largest as u32, 0, 1));
        p.push(ret(ret_errno(libc::ENOSYS as u32)));
        for (nr, e) in &errno {
            p.push(jump(libc::BPF_JEQ, *nr as u32, 0, 1));
            p.push(ret(ret_errno(*e)));
        }
        let rules = allowed
            .into_iter()
            .map(|(nr, alternatives)| (nr, alternatives.unwrap_or_default()))
            .collect();
        let filter = SeccompFilter::new(
            rules,
            SeccompAction::Errno(DEFAULT_ERRNO),
            SeccompAction::Allow,
            TARGET_ARCH,
        )?;
        let program: seccompiler::BpfProgram = filter.try_into()?;
        p.extend(program.into_iter().map(|i| libc::sock_filter {
            code: i.code,
            jt: i.jt,
            jf: i.jf,
            k: i.k,
        }));
        // BPF_MAXINSNS.
        if p.len() > 4096 {
            return Err(SeccompError::TooLong(p.len()));
        }
        Ok(p)
    }
}

fn load(offset: u32) -> libc::sock_filter {
    libc::sock_filter {
        code: (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16,
        jt: 0,
        jf: 0,
        k: offset,
    }
}

fn ret(action: u32) -> libc::sock_filter {
    libc::sock_filter {
        code: (libc::BPF_RET | libc::BPF_K) as u16,
        jt: 0,
        jf: 0,
        k: action,
    }
}

/// A conditional jump on the accumulator against `k`.
fn jump(op: u32, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter {
        code: (libc::BPF_JMP | op | libc::BPF_K) as u16,
        jt,
        jf,
        k,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A classic-BPF interpreter for the instructions the filter uses, to check the
    /// program's decisions without installing it.
    fn run(p: &[libc::sock_filter], arch: u32, nr: u32, args: [u64; 6]) -> u32 {
        let word = |off: u32| -> u32 {
            match off {
                DATA_NR => nr,
                DATA_ARCH => arch,
                o if (16..64).contains(&o) => {
                    let a = args[((o - 16) / 8) as usize];
                    if (o - 16) % 8 == 0 {
                        a as u32
                    } else {
                        (a >> 32) as u32
                    }
                }
                o => panic!("load of {o}"),
            }
        };
        let (mut acc, mut pc) = (0u32, 0usize);
        loop {
            let i = p[pc];
            let code = u32::from(i.code);
            pc += 1;
            match code & 0x07 {
                c if c == libc::BPF_LD => acc = word(i.k),
                c if c == libc::BPF_RET => return i.k,
                c if c == libc::BPF_ALU => {
                    assert_eq!(code & 0xf0, libc::BPF_AND, "alu op {code:#x}");
                    acc &= i.k;
                }
                c if c == libc::BPF_JMP => {
                    let taken = match code & 0xf0 {
                        x if x == libc::BPF_JA => {
                            pc += i.k as usize;
                            continue;
                        }
                        x if x == libc::BPF_JEQ => acc == i.k,
                        x if x == libc::BPF_JGT => acc > i.k,
                        x if x == libc::BPF_JGE => acc >= i.k,
                        x if x == libc::BPF_JSET => acc & i.k != 0,
                        x => panic!("jump op {x:#x}"),
                    };
                    pc += usize::from(if taken { i.jt } else { i.jf });
                }
                c => panic!("class {c:#x}"),
            }
        }
    }

    const ALLOW: u32 = libc::SECCOMP_RET_ALLOW;

    fn errno(e: i32) -> u32 {
        libc::SECCOMP_RET_ERRNO | e as u32
    }

    /// The decision of the profile for a container with `caps`, as a closure over
    /// (system call, args).
    fn decide(caps: u64) -> impl Fn(&str, [u64; 6]) -> u32 {
        let p = runtime_default(caps).compile().unwrap();
        move |name, args| run(&p, NATIVE_ARCH, numbers::native(name).unwrap() as u32, args)
    }

    const NO_ARGS: [u64; 6] = [0; 6];

    #[test]
    fn issue7_item3_runtime_default_is_containerds_allow_list() {
        let sys = decide(caps::DEFAULT);
        for n in [
            "read",
            "write",
            "openat",
            "execve",
            "exit_group",
            "clone",
            "wait4",
            "ptrace",
            "chroot",
            "setresuid",
            "setgroups",
            "capset",
            "prctl",
            "dup2",
            "chdir",
            "futex",
            "rseq",
            "arch_prctl",
            "statx",
            "io_setup",
            "name_to_handle_at",
        ]
        .into_iter()
        .filter(|n| numbers::native(n).is_some())
        {
            assert_eq!(sys(n, NO_ARGS), ALLOW, "{n}");
        }
        // Not in the list at all: the default action, EPERM.
        let p = runtime_default(caps::DEFAULT).compile().unwrap();
        let mut denied = vec![
            libc::SYS_kexec_load,
            libc::SYS_kexec_file_load,
            libc::SYS_swapon,
            libc::SYS_pivot_root,
            libc::SYS_userfaultfd,
            libc::SYS_keyctl,
            libc::SYS_add_key,
            libc::SYS_request_key,
            libc::SYS_io_uring_setup,
            libc::SYS_bpf,
            libc::SYS_perf_event_open,
            libc::SYS_syslog,
            libc::SYS_reboot,
            libc::SYS_init_module,
            libc::SYS_settimeofday,
            libc::SYS_clock_settime,
            libc::SYS_mbind,
            libc::SYS_open_by_handle_at,
            libc::SYS_vhangup,
            libc::SYS_kcmp,
        ];
        #[cfg(target_arch = "x86_64")]
        denied.extend([
            libc::SYS_uselib,
            libc::SYS__sysctl,
            libc::SYS_ustat,
            libc::SYS_sysfs,
            libc::SYS_iopl,
        ]);
        for n in denied {
            assert_eq!(
                run(&p, NATIVE_ARCH, n as u32, NO_ARGS),
                errno(libc::EPERM),
                "{n}"
            );
        }
    }

    #[test]
    fn issue7_item3_unknown_and_newer_syscalls_are_denied() {
        let p = runtime_default(caps::DEFAULT).compile().unwrap();
        // Above every number the profile names: ENOSYS, as runc's stub answers.
        assert_eq!(run(&p, NATIVE_ARCH, 1000, NO_ARGS), errno(libc::ENOSYS));
        assert_eq!(run(&p, NATIVE_ARCH, 100_000, NO_ARGS), errno(libc::ENOSYS));
        // A hole below it (x86_64 leaves 387–423 unused; 400 is unused on aarch64 too).
        assert_eq!(run(&p, NATIVE_ARCH, 400, NO_ARGS), errno(libc::EPERM));
        // Foreign ABIs (i386: AUDIT_ARCH_I386) and x32 numbers.
        assert_eq!(run(&p, 0x4000_0003, 3, NO_ARGS), errno(libc::EPERM));
        #[cfg(target_arch = "x86_64")]
        assert_eq!(
            run(&p, NATIVE_ARCH, X32_SYSCALL_BIT | 1, NO_ARGS),
            errno(libc::EPERM)
        );
    }

    #[test]
    fn issue7_item3_ptrace_family_needs_cap_sys_ptrace() {
        let without = decide(caps::DEFAULT);
        let with = decide(caps::DEFAULT | 1 << caps::SYS_PTRACE);
        for n in ["kcmp", "pidfd_getfd", "process_madvise"] {
            assert_eq!(without(n, NO_ARGS), errno(libc::EPERM), "{n}");
            assert_eq!(with(n, NO_ARGS), ALLOW, "{n}");
        }
    }

    #[test]
    fn issue7_item3_namespaces_and_mounts_need_cap_sys_admin() {
        let without = decide(caps::DEFAULT);
        let with = decide(caps::DEFAULT | 1 << caps::SYS_ADMIN);
        for n in [
            "unshare",
            "setns",
            "mount",
            "umount2",
            "fsopen",
            "fsmount",
            "move_mount",
            "open_tree",
            "mount_setattr",
            "sethostname",
            "bpf",
            "syslog",
            "quotactl",
        ] {
            assert_eq!(without(n, NO_ARGS), errno(libc::EPERM), "{n}");
            assert_eq!(with(n, NO_ARGS), ALLOW, "{n}");
        }
        // clone3: ENOSYS without (the C library falls back to clone), allowed with.
        assert_eq!(without("clone3", NO_ARGS), errno(libc::ENOSYS));
        assert_eq!(with("clone3", NO_ARGS), ALLOW);
        // clone: namespace flags only with CAP_SYS_ADMIN; the upper half is not looked at
        // (the kernel reads the low 32 bits).
        let flags = |f: i32| [f as u32 as u64, 0, 0, 0, 0, 0];
        let thread = libc::CLONE_VM | libc::CLONE_THREAD | libc::CLONE_SIGHAND;
        assert_eq!(without("clone", flags(thread)), ALLOW);
        assert_eq!(without("clone", [1 << 40 | 17, 0, 0, 0, 0, 0]), ALLOW);
        for ns in [libc::CLONE_NEWNET, libc::CLONE_NEWUSER, libc::CLONE_NEWNS] {
            assert_eq!(
                without("clone", flags(libc::SIGCHLD | ns)),
                errno(libc::EPERM)
            );
            assert_eq!(with("clone", flags(libc::SIGCHLD | ns)), ALLOW);
        }
    }

    #[test]
    fn issue7_item3_other_capabilities_add_their_calls() {
        for (cap, name) in [
            (caps::SYS_BOOT, "reboot"),
            (caps::SYS_MODULE, "finit_module"),
            (caps::SYS_PACCT, "acct"),
            (caps::SYS_TIME, "clock_settime"),
            (caps::SYS_NICE, "mbind"),
            (caps::SYS_TTY_CONFIG, "vhangup"),
            (caps::DAC_READ_SEARCH, "open_by_handle_at"),
            (caps::SYSLOG, "syslog"),
            (caps::BPF, "bpf"),
            (caps::PERFMON, "perf_event_open"),
            #[cfg(target_arch = "x86_64")]
            (caps::SYS_RAWIO, "iopl"),
        ] {
            assert_eq!(decide(0)(name, NO_ARGS), errno(libc::EPERM), "{name}");
            assert_eq!(decide(1 << cap)(name, NO_ARGS), ALLOW, "{name}");
        }
        // chroot follows CAP_SYS_CHROOT, which the default set has.
        assert_eq!(decide(0)("chroot", NO_ARGS), errno(libc::EPERM));
        assert_eq!(decide(caps::DEFAULT)("chroot", NO_ARGS), ALLOW);
    }

    #[test]
    fn issue7_item3_argument_conditions() {
        let sys = decide(caps::DEFAULT);
        let a0 = |v: u64| [v, 0, 0, 0, 0, 0];
        for family in [
            libc::AF_UNIX,
            libc::AF_INET,
            libc::AF_INET6,
            libc::AF_NETLINK,
            39,
            41,
        ] {
            assert_eq!(sys("socket", a0(family as u64)), ALLOW, "family {family}");
        }
        for family in [libc::AF_ALG, libc::AF_VSOCK] {
            assert_eq!(sys("socket", a0(family as u64)), errno(libc::EPERM));
            // The kernel reads an int: high bits do not smuggle the family through.
            assert_eq!(
                sys("socket", a0(1 << 32 | family as u64)),
                errno(libc::EPERM)
            );
        }
        for v in [0x0, 0x8, 0x20000, 0x20008, 0xffff_ffff] {
            assert_eq!(sys("personality", a0(v)), ALLOW, "{v:#x}");
        }
        // ADDR_NO_RANDOMIZE, READ_IMPLIES_EXEC.
        for v in [0x0040_0000, 0x0400_0000] {
            assert_eq!(sys("personality", a0(v)), errno(libc::EPERM), "{v:#x}");
        }
    }

    #[test]
    fn issue7_item3_profile_as_oci_json() {
        let oci = runtime_default(caps::DEFAULT).to_oci();
        assert_eq!(oci["defaultAction"], "SCMP_ACT_ERRNO");
        assert!(oci.get("defaultErrnoRet").is_none());
        #[cfg(target_arch = "x86_64")]
        assert_eq!(
            oci["architectures"],
            serde_json::json!(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"])
        );
        let syscalls = oci["syscalls"].as_array().unwrap();
        let base = &syscalls[0];
        assert_eq!(base["action"], "SCMP_ACT_ALLOW");
        assert!(base.get("args").is_none());
        let names: Vec<&str> = base["names"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n.as_str().unwrap())
            .collect();
        assert_eq!(names.len(), 363);
        assert!(names.contains(&"execve") && !names.contains(&"kcmp"));
        assert_eq!(
            syscalls[3],
            serde_json::json!({"names": ["socket"], "action": "SCMP_ACT_ALLOW",
                "args": [{"index": 0, "value": 40, "op": "SCMP_CMP_GT"}]})
        );
        assert_eq!(
            syscalls[4],
            serde_json::json!({"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}]})
        );
        let n = syscalls.len();
        assert_eq!(
            syscalls[n - 2],
            serde_json::json!({"names": ["clone"], "action": "SCMP_ACT_ALLOW",
                "args": [{"index": 0, "value": 0x7e02_0000u64, "op": "SCMP_CMP_MASKED_EQ"}]})
        );
        assert_eq!(
            syscalls[n - 1],
            serde_json::json!({"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38})
        );
        // With CAP_SYS_PTRACE its rule is there; with CAP_SYS_ADMIN the clone rules are not.
        let oci =
            runtime_default(caps::DEFAULT | 1 << caps::SYS_PTRACE | 1 << caps::SYS_ADMIN).to_oci();
        let rules = oci["syscalls"].as_array().unwrap();
        assert!(rules.iter().any(|r| r["names"][0] == "kcmp"));
        assert!(!rules.iter().any(|r| r["action"] == "SCMP_ACT_ERRNO"));
    }

    #[test]
    fn issue7_item3_filter_fits_the_kernel_limit() {
        let all = runtime_default(u64::MAX).compile().unwrap();
        assert!(all.len() <= 4096, "{}", all.len());
        assert!(!runtime_default(0).compile().unwrap().is_empty());
    }
}
