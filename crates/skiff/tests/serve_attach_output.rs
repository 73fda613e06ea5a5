//! `kubectl attach` without stdin under `skiff serve` (issue 12): the container's output from
//! now on reaches kubectl; attaching stdin (`-i`) to a container without `stdin: true` is
//! refused with a clear error (`serve_exec` checks `-i` to one with it). Root and kubectl
//! 1.33 only; skipped, saying so, otherwise.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod serve;

use std::time::Duration;

use common::{container, pod};
use serve::{finish_kubectl, kubectl_bin, Daemon};

#[test]
fn attach_streams_output_and_refuses_stdin() {
    if !common::is_root() || kubectl_bin("1.33").is_none() {
        eprintln!("skipped: needs root and kubectl.1.33");
        return;
    }
    let d = Daemon::start("serve-attach-out");
    let ticker = container(
        "app",
        "i=0; while :; do i=$((i+1)); echo tick-$i; sleep 0.1; done",
    );
    let p = pod("ticker", "Always", vec![], vec![ticker]);
    let path = d.dir.manifest(p);
    d.ok("1.33", &["apply", "-f", path.to_str().unwrap()]);
    d.ok(
        "1.33",
        &[
            "wait",
            "--for=condition=Ready",
            "pod/ticker",
            "--timeout=30s",
        ],
    );
    let child = d.spawn_kubectl("1.33", &["attach", "ticker", "-c", "app"]);
    let out = finish_kubectl(child, Duration::from_millis(1500));
    assert!(out.contains("tick-"), "{out}");
    // From now on: not the log from the start.
    assert!(!out.contains("tick-1\n"), "{out}");
    // `-i` to a container without `stdin: true`: refused.
    let (code, _, err) = d.kubectl("1.33", &["attach", "-i", "ticker", "-c", "app"]);
    assert_ne!(code, 0);
    assert!(err.contains("does not read stdin"), "{err}");
}
