#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, EnvVar};
use skiff_node::launch::{ContainerLaunch, PodIdentity};
use skiff_node::logs::LogLine;
use tokio::sync::mpsc;

pub fn pod() -> PodIdentity {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    PodIdentity {
        namespace: "default".into(),
        name: format!("p{n}"),
        uid: format!("{:08x}-{n}", std::process::id()),
        ..Default::default()
    }
}

pub fn sh(name: &str, script: &str) -> Container {
    Container {
        name: name.into(),
        image: Some("host".into()),
        command: Some(vec!["/bin/sh".into(), "-c".into(), script.into()]),
        ..Default::default()
    }
}

pub fn env(c: &mut Container, k: &str, v: &str) {
    c.env.get_or_insert_with(Vec::new).push(EnvVar {
        name: k.into(),
        value: Some(v.into()),
        value_from: None,
    });
}

pub fn launch(c: &Container, data: &Path) -> ContainerLaunch {
    ContainerLaunch::from_container(c, &pod(), data, 0, &skiff_node::launch::EnvSources::NONE)
        .unwrap()
}

/// Whether `pid` is a live (non-zombie) process.
pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => {
            let state = s.rsplit(')').next().and_then(|r| r.trim().chars().next());
            state != Some('Z')
        }
        Err(_) => false,
    }
}

/// Whether `/proc/<pid>` exists at all (zombie included).
pub fn exists(pid: i32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Waits (bounded) until `f` holds; used only for conditions no event reports
/// (a foreign pid disappearing).
pub async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !f() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Next line from the subscriber whose content satisfies `pred`.
pub async fn line_matching(
    rx: &mut mpsc::Receiver<LogLine>,
    pred: impl Fn(&str) -> bool,
) -> String {
    let fut = async {
        while let Some(l) = rx.recv().await {
            if pred(&l.content) {
                return l.content;
            }
        }
        panic!("log stream ended");
    };
    tokio::time::timeout(Duration::from_secs(10), fut)
        .await
        .expect("log line")
}

/// Kill a pid we know about (cleanup on test failure paths).
pub fn kill_pid(pid: i32) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    );
}
