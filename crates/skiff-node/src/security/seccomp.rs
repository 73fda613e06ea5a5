//! The `RuntimeDefault` seccomp filter, as a classic BPF program built in the parent.
//!
//! containerd's and Docker's default profile is an allow-list of ~350 system calls with
//! capability-dependent additions (`contrib/seccomp/seccomp_default.go` in containerd,
//! `profiles/seccomp/default.json` in moby). A faithful copy is out of scope; this filter is the
//! complement that matters: it denies, with `EPERM`, the system calls that profile leaves out,
//! under the same capability conditions, and allows everything else.
//!
//! Denied always: `kexec_load`, `kexec_file_load`, `swapon`, `swapoff`, `pivot_root`,
//! `userfaultfd`, `keyctl`, `add_key`, `request_key`, `io_uring_setup`, `io_uring_enter`,
//! `io_uring_register`, the obsolete `nfsservctl`, `uselib`, `_sysctl`, `ustat`, `sysfs`
//! (the last four on x86_64), and `personality` with anything
//! but the values the profile allows (`0`, `0x8`, `0x20000`, `0x20008`, `0xffffffff`).
//!
//! Denied unless the container has the capability:
//! * `CAP_SYS_ADMIN`: `mount`, `umount2`, `unshare`, `setns`, `fsopen`, `fsconfig`, `fsmount`,
//!   `fspick`, `move_mount`, `open_tree`, `mount_setattr`, `bpf`, `perf_event_open`,
//!   `fanotify_init`, `lookup_dcookie`, `name_to_handle_at`, `quotactl`, `quotactl_fd`,
//!   `sethostname`, `setdomainname`, `syslog`; `clone` with any `CLONE_NEW*` flag (`EPERM`);
//!   `clone3` fails with `ENOSYS` (its flags are behind a pointer seccomp cannot read, so
//!   the C library falls back to `clone`);
//! * `CAP_SYS_BOOT`: `reboot`; `CAP_SYS_MODULE`: `init_module`, `finit_module`,
//!   `delete_module`; `CAP_SYS_PACCT`: `acct`; `CAP_SYS_TIME`: `settimeofday`,
//!   `clock_settime`, `clock_adjtime`; `CAP_SYS_RAWIO`: `iopl`, `ioperm`;
//!   `CAP_SYS_TTY_CONFIG`: `vhangup`; `CAP_SYS_NICE`: `mbind`, `set_mempolicy`,
//!   `get_mempolicy`, `move_pages`, `migrate_pages`; `CAP_DAC_READ_SEARCH`:
//!   `open_by_handle_at`; `CAP_SYS_CHROOT`: `chroot`.
//!
//! `ptrace`, `process_vm_readv/writev` and `kcmp` are allowed, as the upstream profile does on
//! kernels ≥ 4.8 (where ptrace can no longer bypass seccomp).
//!
//! Foreign architectures (i386 and x32 system calls on x86_64, arm32 on aarch64) get `EPERM`
//! for every system call: the deny-list is per system-call number, and the upstream profile
//! allows them only through its own per-arch tables.

use nix::libc;

use super::caps;

/// `AUDIT_ARCH_*` (linux/audit.h) of the architecture skiff is built for.
#[cfg(target_arch = "x86_64")]
const NATIVE_ARCH: u32 = 0xC000_003E;
#[cfg(target_arch = "aarch64")]
const NATIVE_ARCH: u32 = 0xC000_00B7;

/// `__X32_SYSCALL_BIT`: x32 system calls share the x86_64 audit arch.
#[cfg(target_arch = "x86_64")]
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// Offsets in `struct seccomp_data`: `nr`, `arch`, the low 32 bits of `args[0]`
/// (little-endian).
const DATA_NR: u32 = 0;
const DATA_ARCH: u32 = 4;
const DATA_ARG0_LO: u32 = 16;

/// The namespace flags `clone` may not carry without `CAP_SYS_ADMIN` (as the profile's
/// masked-equal rule).
const CLONE_NS_FLAGS: u32 = (libc::CLONE_NEWNS
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWCGROUP) as u32;

/// `personality(2)` values the profile allows: PER_LINUX, PER_LINUX32, UNAME26 variants, query.
const PERSONALITY_ALLOWED: [u32; 5] = [0x0, 0x8, 0x20000, 0x20008, 0xffff_ffff];

/// A system call denied unless the container holds `cap` (`None`: always denied).
struct Denied {
    nr: libc::c_long,
    cap: Option<u32>,
}

const fn always(nr: libc::c_long) -> Denied {
    Denied { nr, cap: None }
}

const fn unless(nr: libc::c_long, cap: u32) -> Denied {
    Denied { nr, cap: Some(cap) }
}

fn deny_list() -> Vec<Denied> {
    use caps::*;
    let mut v = vec![
        always(libc::SYS_kexec_load),
        always(libc::SYS_kexec_file_load),
        always(libc::SYS_swapon),
        always(libc::SYS_swapoff),
        always(libc::SYS_pivot_root),
        always(libc::SYS_userfaultfd),
        always(libc::SYS_keyctl),
        always(libc::SYS_add_key),
        always(libc::SYS_request_key),
        always(libc::SYS_io_uring_setup),
        always(libc::SYS_io_uring_enter),
        always(libc::SYS_io_uring_register),
        always(libc::SYS_nfsservctl),
        unless(libc::SYS_mount, SYS_ADMIN),
        unless(libc::SYS_umount2, SYS_ADMIN),
        unless(libc::SYS_unshare, SYS_ADMIN),
        unless(libc::SYS_setns, SYS_ADMIN),
        unless(libc::SYS_fsopen, SYS_ADMIN),
        unless(libc::SYS_fsconfig, SYS_ADMIN),
        unless(libc::SYS_fsmount, SYS_ADMIN),
        unless(libc::SYS_fspick, SYS_ADMIN),
        unless(libc::SYS_move_mount, SYS_ADMIN),
        unless(libc::SYS_open_tree, SYS_ADMIN),
        unless(libc::SYS_mount_setattr, SYS_ADMIN),
        unless(libc::SYS_bpf, SYS_ADMIN),
        unless(libc::SYS_perf_event_open, SYS_ADMIN),
        unless(libc::SYS_fanotify_init, SYS_ADMIN),
        unless(libc::SYS_lookup_dcookie, SYS_ADMIN),
        unless(libc::SYS_name_to_handle_at, SYS_ADMIN),
        unless(libc::SYS_quotactl, SYS_ADMIN),
        unless(libc::SYS_quotactl_fd, SYS_ADMIN),
        unless(libc::SYS_sethostname, SYS_ADMIN),
        unless(libc::SYS_setdomainname, SYS_ADMIN),
        unless(libc::SYS_syslog, SYS_ADMIN),
        unless(libc::SYS_reboot, SYS_BOOT),
        unless(libc::SYS_init_module, SYS_MODULE),
        unless(libc::SYS_finit_module, SYS_MODULE),
        unless(libc::SYS_delete_module, SYS_MODULE),
        unless(libc::SYS_acct, SYS_PACCT),
        unless(libc::SYS_settimeofday, SYS_TIME),
        unless(libc::SYS_clock_settime, SYS_TIME),
        unless(libc::SYS_clock_adjtime, SYS_TIME),
        unless(libc::SYS_vhangup, SYS_TTY_CONFIG),
        unless(libc::SYS_mbind, SYS_NICE),
        unless(libc::SYS_set_mempolicy, SYS_NICE),
        unless(libc::SYS_get_mempolicy, SYS_NICE),
        unless(libc::SYS_move_pages, SYS_NICE),
        unless(libc::SYS_migrate_pages, SYS_NICE),
        unless(libc::SYS_open_by_handle_at, DAC_READ_SEARCH),
        unless(libc::SYS_chroot, SYS_CHROOT),
    ];
    #[cfg(target_arch = "x86_64")]
    v.extend([
        always(libc::SYS_uselib),
        always(libc::SYS__sysctl),
        always(libc::SYS_ustat),
        always(libc::SYS_sysfs),
        unless(libc::SYS_iopl, SYS_RAWIO),
        unless(libc::SYS_ioperm, SYS_RAWIO),
    ]);
    v
}

fn stmt(code: u32, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u32, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter {
        code: code as u16,
        jt,
        jf,
        k,
    }
}

fn load(offset: u32) -> libc::sock_filter {
    stmt(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, offset)
}

fn ret(action: u32) -> libc::sock_filter {
    stmt(libc::BPF_RET | libc::BPF_K, action)
}

fn errno(e: i32) -> u32 {
    libc::SECCOMP_RET_ERRNO | (e as u32 & libc::SECCOMP_RET_DATA)
}

/// "If the accumulator equals `k`, fall into the next instruction, else skip it."
fn if_eq(k: u32) -> libc::sock_filter {
    jump(libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K, k, 0, 1)
}

/// Builds the `RuntimeDefault` filter for a container whose bounding set is `caps`.
pub(crate) fn runtime_default(caps: u64) -> Vec<libc::sock_filter> {
    let has = |c: u32| caps & (1u64 << c) != 0;
    let eperm = errno(libc::EPERM);
    let nr = |n: libc::c_long| n as u32;
    let mut p = vec![
        load(DATA_ARCH),
        // Native: skip the next instruction, which denies everything foreign.
        jump(
            libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K,
            NATIVE_ARCH,
            1,
            0,
        ),
        ret(eperm),
        load(DATA_NR),
    ];
    #[cfg(target_arch = "x86_64")]
    {
        p.push(jump(
            libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K,
            X32_SYSCALL_BIT,
            0,
            1,
        ));
        p.push(ret(eperm));
    }
    for d in deny_list() {
        if d.cap.is_some_and(has) {
            continue;
        }
        p.push(if_eq(nr(d.nr)));
        p.push(ret(eperm));
    }
    if !has(caps::SYS_ADMIN) {
        p.push(if_eq(nr(libc::SYS_clone3)));
        p.push(ret(errno(libc::ENOSYS)));
    }
    // Argument checks come last: they replace the system call number in the accumulator, and
    // every path through them ends in a return.
    let allowed = PERSONALITY_ALLOWED.len() as u8;
    p.push(jump(
        libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K,
        nr(libc::SYS_personality),
        0,
        2 + 2 * allowed,
    ));
    p.push(load(DATA_ARG0_LO));
    for v in PERSONALITY_ALLOWED {
        p.push(if_eq(v));
        p.push(ret(libc::SECCOMP_RET_ALLOW));
    }
    p.push(ret(eperm));
    if !has(caps::SYS_ADMIN) {
        p.push(jump(
            libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K,
            nr(libc::SYS_clone),
            0,
            3,
        ));
        p.push(load(DATA_ARG0_LO));
        p.push(jump(
            libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K,
            CLONE_NS_FLAGS,
            0,
            1,
        ));
        p.push(ret(eperm));
    }
    p.push(ret(libc::SECCOMP_RET_ALLOW));
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny classic-BPF interpreter for the instructions the filter uses, to check the
    /// program's decisions without installing it.
    fn run(p: &[libc::sock_filter], arch: u32, nr: u32, arg0: u32) -> u32 {
        let mut acc = 0u32;
        let mut pc = 0usize;
        loop {
            let i = p[pc];
            let code = u32::from(i.code);
            match code {
                c if c == libc::BPF_LD | libc::BPF_W | libc::BPF_ABS => {
                    acc = match i.k {
                        DATA_NR => nr,
                        DATA_ARCH => arch,
                        DATA_ARG0_LO => arg0,
                        k => panic!("load of {k}"),
                    };
                    pc += 1;
                }
                c if c == libc::BPF_RET | libc::BPF_K => return i.k,
                c => {
                    let taken = match c & 0xf0 {
                        x if x == libc::BPF_JEQ => acc == i.k,
                        x if x == libc::BPF_JGE => acc >= i.k,
                        x if x == libc::BPF_JSET => acc & i.k != 0,
                        x => panic!("op {x:#x}"),
                    };
                    pc += 1 + usize::from(if taken { i.jt } else { i.jf });
                }
            }
        }
    }

    const ALLOW: u32 = libc::SECCOMP_RET_ALLOW;

    fn eperm() -> u32 {
        errno(libc::EPERM)
    }

    #[test]
    fn runtime_default_denies_the_dangerous_and_allows_the_rest() {
        let p = runtime_default(caps::DEFAULT);
        let sys = |n: libc::c_long| run(&p, NATIVE_ARCH, n as u32, 0);
        for n in [
            libc::SYS_mount,
            libc::SYS_umount2,
            libc::SYS_unshare,
            libc::SYS_setns,
            libc::SYS_kexec_load,
            libc::SYS_init_module,
            libc::SYS_bpf,
            libc::SYS_keyctl,
            libc::SYS_reboot,
            libc::SYS_pivot_root,
        ] {
            assert_eq!(sys(n), eperm(), "syscall {n}");
        }
        for n in [
            libc::SYS_read,
            libc::SYS_write,
            libc::SYS_execve,
            libc::SYS_openat,
            libc::SYS_ptrace,
            libc::SYS_chroot,
            libc::SYS_exit_group,
        ] {
            assert_eq!(sys(n), ALLOW, "syscall {n}");
        }
        assert_eq!(sys(libc::SYS_clone3), errno(libc::ENOSYS));
        let clone = |flags: i32| run(&p, NATIVE_ARCH, libc::SYS_clone as u32, flags as u32);
        assert_eq!(
            clone(libc::SIGCHLD | libc::CLONE_VM | libc::CLONE_VFORK),
            ALLOW
        );
        assert_eq!(clone(libc::SIGCHLD | libc::CLONE_NEWNET), eperm());
        let pers = |v: u32| run(&p, NATIVE_ARCH, libc::SYS_personality as u32, v);
        assert_eq!(pers(0xffff_ffff), ALLOW);
        assert_eq!(pers(0x0040_0000), eperm());
        assert_eq!(run(&p, 0x4000_0003, 1, 0), eperm(), "foreign arch");
        #[cfg(target_arch = "x86_64")]
        assert_eq!(run(&p, NATIVE_ARCH, X32_SYSCALL_BIT | 1, 0), eperm());
    }

    #[test]
    fn runtime_default_follows_the_capabilities() {
        let p = runtime_default(caps::DEFAULT | 1 << caps::SYS_ADMIN | 1 << caps::SYS_TIME);
        let sys = |n: libc::c_long, a: u32| run(&p, NATIVE_ARCH, n as u32, a);
        assert_eq!(sys(libc::SYS_mount, 0), ALLOW);
        assert_eq!(sys(libc::SYS_clone3, 0), ALLOW);
        assert_eq!(sys(libc::SYS_clone, libc::CLONE_NEWNET as u32), ALLOW);
        assert_eq!(sys(libc::SYS_clock_settime, 0), ALLOW);
        assert_eq!(sys(libc::SYS_kexec_load, 0), eperm());
        let none = runtime_default(0);
        assert_eq!(run(&none, NATIVE_ARCH, libc::SYS_chroot as u32, 0), eperm());
    }
}
