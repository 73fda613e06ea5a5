//! Which device nodes a container may use: runc's default allow-list (the kubelet asks
//! containerd for no devices, so a non-privileged container gets exactly these), enforced by
//! the device cgroup — v1 `devices.deny`/`devices.allow` — so that a container keeping
//! `CAP_MKNOD` cannot make and open a node of a host disk anywhere it can write. Privileged
//! containers get every device (no rule written).

/// One rule: type (`c`, `b`, `a`), major and minor (`None` = `*`), access (`rwm` letters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceRule {
    pub kind: char,
    pub major: Option<u32>,
    pub minor: Option<u32>,
    pub access: &'static str,
}

const fn rule(
    kind: char,
    major: Option<u32>,
    minor: Option<u32>,
    access: &'static str,
) -> DeviceRule {
    DeviceRule {
        kind,
        major,
        minor,
        access,
    }
}

/// runc's `AllowedDevices` (`libcontainer/specconv/spec_linux.go`): `mknod` of any node (it
/// cannot be opened unless listed), and use of null, random, full, tty, zero, urandom, the
/// pty devices and tun.
pub const DEFAULT_DEVICES: &[DeviceRule] = &[
    rule('c', None, None, "m"),
    rule('b', None, None, "m"),
    rule('c', Some(1), Some(3), "rwm"),
    rule('c', Some(1), Some(8), "rwm"),
    rule('c', Some(1), Some(7), "rwm"),
    rule('c', Some(5), Some(0), "rwm"),
    rule('c', Some(1), Some(5), "rwm"),
    rule('c', Some(1), Some(9), "rwm"),
    rule('c', Some(136), None, "rwm"),
    rule('c', Some(5), Some(2), "rwm"),
    rule('c', Some(10), Some(200), "rwm"),
];

impl DeviceRule {
    /// The v1 `devices.allow` line: `c 1:3 rwm`, `c *:* m`.
    pub fn v1_line(&self) -> String {
        let n = |v: Option<u32>| v.map_or_else(|| "*".to_string(), |v| v.to_string());
        format!(
            "{} {}:{} {}",
            self.kind,
            n(self.major),
            n(self.minor),
            self.access
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_lines_are_runcs() {
        let lines: Vec<String> = DEFAULT_DEVICES.iter().map(DeviceRule::v1_line).collect();
        assert_eq!(lines[0], "c *:* m");
        assert_eq!(lines[2], "c 1:3 rwm");
        assert!(lines.contains(&"c 136:* rwm".to_string()));
        // No block device may be read or written.
        assert!(!DEFAULT_DEVICES
            .iter()
            .any(|r| r.kind != 'c' && r.access.contains('r')));
    }
}

/// cgroup v2 has no device files: the same rules as a `BPF_PROG_TYPE_CGROUP_DEVICE` program
/// attached to the container's cgroup (what runc's `devicefilter` builds). Hand-assembled:
/// a dozen comparisons do not justify an eBPF toolchain or crate.
pub mod bpf {
    use std::io;
    use std::os::fd::{AsFd, BorrowedFd};

    use super::DeviceRule;

    const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
    const BPF_CGROUP_DEVICE: u32 = 6;
    const BPF_F_ALLOW_MULTI: u32 = 2;
    /// `bpf_cgroup_dev_ctx.access_type` low half: the device type.
    const DEV_BLOCK: i32 = 1;
    const DEV_CHAR: i32 = 2;

    /// One eBPF instruction (`struct bpf_insn`).
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct Insn {
        pub code: u8,
        /// dst in the low nibble, src in the high one.
        pub regs: u8,
        pub off: i16,
        pub imm: i32,
    }

    const fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
        Insn {
            code,
            regs: (src << 4) | (dst & 0x0f),
            off,
            imm,
        }
    }
    const LDX_W: u8 = 0x61; // dst = *(u32 *)(src + off)
    const AND_K: u8 = 0x57; // dst &= imm (64-bit)
    const RSH_K: u8 = 0x77; // dst >>= imm
    const MOV_K: u8 = 0xb7; // dst = imm
    const MOV_X: u8 = 0xbf; // dst = src
    const JNE_K: u8 = 0x55; // if dst != imm goto +off
    const EXIT: u8 = 0x95;

    fn access_bits(access: &str) -> i32 {
        access.chars().fold(0, |a, c| {
            a | match c {
                'm' => 1,
                'r' => 2,
                'w' => 4,
                _ => 0,
            }
        })
    }

    /// The program: r2 = type, r3 = access, r4 = major, r5 = minor; one block per rule that
    /// returns 1 (allow) when everything it names matches; 0 (deny) after the last.
    pub fn program(rules: &[DeviceRule]) -> Vec<Insn> {
        let mut p = vec![
            insn(LDX_W, 2, 1, 0, 0),
            insn(AND_K, 2, 0, 0, 0xffff),
            insn(LDX_W, 3, 1, 0, 0),
            insn(RSH_K, 3, 0, 0, 16),
            insn(LDX_W, 4, 1, 4, 0),
            insn(LDX_W, 5, 1, 8, 0),
        ];
        for r in rules {
            // Conditions jump past the block (filled in once its length is known).
            let mut block: Vec<Insn> = Vec::new();
            let mut jumps = Vec::new();
            match r.kind {
                'b' | 'c' => {
                    jumps.push(block.len());
                    let t = if r.kind == 'b' { DEV_BLOCK } else { DEV_CHAR };
                    block.push(insn(JNE_K, 2, 0, 0, t));
                }
                _ => {}
            }
            let bits = access_bits(r.access);
            if bits != 7 {
                // Asked-for access must be within the rule's: (access & !bits) == 0.
                block.push(insn(MOV_X, 1, 3, 0, 0));
                block.push(insn(AND_K, 1, 0, 0, !bits & 7));
                jumps.push(block.len());
                block.push(insn(JNE_K, 1, 0, 0, 0));
            }
            for (reg, v) in [(4, r.major), (5, r.minor)] {
                if let Some(v) = v {
                    jumps.push(block.len());
                    block.push(insn(JNE_K, reg, 0, 0, v as i32));
                }
            }
            block.push(insn(MOV_K, 0, 0, 0, 1));
            block.push(insn(EXIT, 0, 0, 0, 0));
            let len = block.len();
            for j in jumps {
                block[j].off = (len - j - 1) as i16;
            }
            p.extend(block);
        }
        p.push(insn(MOV_K, 0, 0, 0, 0));
        p.push(insn(EXIT, 0, 0, 0, 0));
        p
    }

    /// Loads the program for `rules` and attaches it to the cgroup2 directory `cgroup`.
    pub fn attach(cgroup: BorrowedFd<'_>, rules: &[DeviceRule]) -> io::Result<()> {
        let prog = program(rules);
        let bytes: Vec<u8> = prog
            .iter()
            .flat_map(|i| {
                let mut b = [0u8; 8];
                b[0] = i.code;
                b[1] = i.regs;
                b[2..4].copy_from_slice(&i.off.to_ne_bytes());
                b[4..8].copy_from_slice(&i.imm.to_ne_bytes());
                b
            })
            .collect();
        let prog_fd =
            crate::sys::bpf::prog_load(BPF_PROG_TYPE_CGROUP_DEVICE, &bytes, c"Apache-2.0")?;
        // MULTI so that a program an ancestor (systemd, a container manager) attached still
        // applies too.
        crate::sys::bpf::prog_attach(
            cgroup,
            prog_fd.as_fd(),
            BPF_CGROUP_DEVICE,
            BPF_F_ALLOW_MULTI,
        )
        // The attachment holds the program; our descriptor closes here.
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn blocks_jump_to_the_next_rule_and_end_with_deny() {
            let rules = [
                DeviceRule {
                    kind: 'c',
                    major: Some(1),
                    minor: Some(3),
                    access: "rwm",
                },
                DeviceRule {
                    kind: 'b',
                    major: None,
                    minor: None,
                    access: "m",
                },
            ];
            let p = program(&rules);
            // 6 loads; rule 1: type, major, minor, mov, exit (5); rule 2: type, mov, and,
            // jne, mov, exit (6); final deny (2).
            assert_eq!(p.len(), 6 + 5 + 6 + 2);
            // Rule 1's type check skips its 4 following instructions.
            assert_eq!(p[6], insn(JNE_K, 2, 0, 4, DEV_CHAR));
            assert_eq!(p[9], insn(MOV_K, 0, 0, 0, 1));
            // Rule 2: block devices, mknod only: anything but bit 1 asked → next.
            assert_eq!(p[11], insn(JNE_K, 2, 0, 5, DEV_BLOCK));
            assert_eq!(p[13], insn(AND_K, 1, 0, 0, 6));
            assert_eq!(p[14], insn(JNE_K, 1, 0, 2, 0));
            assert_eq!(p[p.len() - 2], insn(MOV_K, 0, 0, 0, 0));
        }
    }
}
