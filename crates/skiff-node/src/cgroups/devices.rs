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
