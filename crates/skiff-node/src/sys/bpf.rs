//! `bpf(2)` for cgroup device programs: load a program, attach it to a cgroup. Neither `nix`
//! nor `rustix` wraps `bpf`; the `union bpf_attr` is built as bytes (only its leading
//! fields are used, the rest zero), which avoids a binding crate for two commands.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use nix::libc;

const BPF_PROG_LOAD: libc::c_int = 5;
const BPF_PROG_ATTACH: libc::c_int = 8;
/// Bytes of one `struct bpf_insn`.
pub const INSN_BYTES: usize = 8;

/// `BPF_PROG_LOAD`: a program of `prog_type` from `insns` (encoded `struct bpf_insn`s,
/// [`INSN_BYTES`] each) under `license`; no log, no name.
pub fn prog_load(prog_type: u32, insns: &[u8], license: &CStr) -> io::Result<OwnedFd> {
    if !insns.len().is_multiple_of(INSN_BYTES) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a whole number of instructions",
        ));
    }
    let count = u32::try_from(insns.len() / INSN_BYTES)
        .map_err(|_| io::Error::other("program too long"))?;
    // `union bpf_attr` for BPF_PROG_LOAD: prog_type, insn_cnt, insns, license.
    let mut attr = [0u8; 128];
    attr[0..4].copy_from_slice(&prog_type.to_ne_bytes());
    attr[4..8].copy_from_slice(&count.to_ne_bytes());
    attr[8..16].copy_from_slice(&(insns.as_ptr() as u64).to_ne_bytes());
    attr[16..24].copy_from_slice(&(license.as_ptr() as u64).to_ne_bytes());
    // SAFETY: `attr` is a zeroed `bpf_attr` of the size passed, holding pointers to `insns`
    // (`count` instructions) and the NUL-terminated `license`, which outlive the call; the
    // kernel only reads them. The result is a new descriptor or -1.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_LOAD,
            attr.as_mut_ptr(),
            attr.len() as libc::c_uint,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = libc::c_int::try_from(fd).map_err(|_| io::Error::other("bpf: bad fd"))?;
    // SAFETY: the kernel returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `BPF_PROG_ATTACH`: attaches `prog` to `target` (a cgroup directory) as `attach_type`
/// with `flags` (`BPF_F_ALLOW_MULTI`, …). The attachment holds the program: `prog` may be
/// closed afterwards.
pub fn prog_attach(
    target: BorrowedFd<'_>,
    prog: BorrowedFd<'_>,
    attach_type: u32,
    flags: u32,
) -> io::Result<()> {
    // target_fd, attach_bpf_fd, attach_type, attach_flags.
    let mut attr = [0u8; 128];
    let target = u32::try_from(target.as_raw_fd()).unwrap_or(u32::MAX);
    let prog = u32::try_from(prog.as_raw_fd()).unwrap_or(u32::MAX);
    attr[0..4].copy_from_slice(&target.to_ne_bytes());
    attr[4..8].copy_from_slice(&prog.to_ne_bytes());
    attr[8..12].copy_from_slice(&attach_type.to_ne_bytes());
    attr[12..16].copy_from_slice(&flags.to_ne_bytes());
    // SAFETY: `attr` is a zeroed `bpf_attr` of the size passed naming two descriptors the
    // caller holds open; the kernel only reads it.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_ATTACH,
            attr.as_mut_ptr(),
            attr.len() as libc::c_uint,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
