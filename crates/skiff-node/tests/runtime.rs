#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use skiff_node::launch::StartError;
use skiff_node::logs::{parse_record, rotated_files};
use skiff_node::runtime::{HostRuntime, StopSignal};
use skiff_node::tracker::{CgroupV2Tracker, ProcessGroupTracker};
use tokio::sync::mpsc;

fn rt() -> HostRuntime {
    HostRuntime::new().unwrap()
}

fn records(path: &std::path::Path) -> Vec<(String, String, String)> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| {
            let mut it = l.splitn(4, ' ');
            let ts = it.next().unwrap();
            assert!(ts.ends_with('Z') && ts.contains('T'), "{ts}");
            (
                it.next().unwrap().to_string(),
                it.next().unwrap().to_string(),
                it.next().unwrap_or("").to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn exit_zero_and_logs_in_cri_format() {
    let dir = tempfile::tempdir().unwrap();
    let c = sh("app", "echo out; echo err >&2; printf 'no newline'");
    let l = launch(&c, dir.path());
    let log_path = l.log_path();
    let ct = rt().start(l, Default::default(), None).await.unwrap();
    let exit = ct.wait().await;
    assert_eq!(exit.exit_code, 0);
    assert_eq!(exit.reason(), "Completed");
    assert!(exit.finished_at >= exit.started_at);
    assert_eq!(ct.log_path(), log_path);
    let mut recs = records(&log_path);
    recs.sort();
    assert_eq!(
        recs,
        vec![
            ("stderr".into(), "F".into(), "err".into()),
            ("stdout".into(), "F".into(), "no newline".into()),
            ("stdout".into(), "F".into(), "out".into()),
        ]
    );
}

#[tokio::test]
async fn exit_code_three_and_env_workdir_expansion() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = sh("app", "echo \"$GREETING $(pwd) $1 $2\"; exit 3");
    c.command.as_mut().unwrap().push("argv0".into());
    c.args = Some(vec!["$(WHO)".into(), "$$(WHO)".into()]);
    env(&mut c, "WHO", "world");
    env(&mut c, "GREETING", "hello-$(WHO)");
    c.working_dir = Some("/tmp".into());
    let l = launch(&c, dir.path());
    let ct = rt().start(l, Default::default(), None).await.unwrap();
    let exit = ct.wait().await;
    assert_eq!(exit.exit_code, 3);
    assert_eq!(exit.reason(), "Error");
    let recs = records(ct.log_path());
    assert_eq!(
        recs,
        vec![(
            "stdout".into(),
            "F".into(),
            "hello-world /tmp world $(WHO)".into()
        )]
    );
}

#[tokio::test]
async fn sigterm_gives_143_and_signal_after_exit_is_fine() {
    let dir = tempfile::tempdir().unwrap();
    let (tx, mut rx) = mpsc::channel(16);
    let c = sh("app", "echo ready; exec sleep 1000");
    let ct = rt()
        .start(launch(&c, dir.path()), Default::default(), Some(tx))
        .await
        .unwrap();
    line_matching(&mut rx, |l| l == "ready").await;
    // `exec sleep` replaced sh after "ready"; give exec a moment by waiting for
    // the process image to change.
    let pid = ct.pid();
    eventually("exec of sleep", || {
        std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .map(|s| s.trim() == "sleep")
            .unwrap_or(false)
    })
    .await;
    ct.signal(StopSignal::Term).unwrap();
    let exit = ct.wait().await;
    assert_eq!(exit.exit_code, 143);
    assert_eq!(exit.status.signal(), Some(15));
    ct.signal(StopSignal::Term).unwrap();
    ct.signal(StopSignal::Kill).unwrap();
}

#[tokio::test]
async fn sigterm_ignoring_process_is_killed_by_kill() {
    let dir = tempfile::tempdir().unwrap();
    let (tx, mut rx) = mpsc::channel(16);
    let c = sh(
        "stubborn",
        "trap '' TERM; echo ready; while :; do sleep 1; done",
    );
    let ct = rt()
        .start(launch(&c, dir.path()), Default::default(), Some(tx))
        .await
        .unwrap();
    line_matching(&mut rx, |l| l == "ready").await;
    ct.signal(StopSignal::Term).unwrap();
    assert!(tokio::time::timeout(Duration::from_millis(300), ct.wait())
        .await
        .is_err());
    ct.signal(StopSignal::Kill).unwrap();
    let exit = ct.wait().await;
    assert_eq!(exit.exit_code, 137);
    ct.cleaned_up().await;
    assert!(ct.pids().is_empty());
}

#[tokio::test]
async fn missing_binary_is_a_start_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = sh("app", "");
    c.command = Some(vec!["nope".into()]);
    let err = rt()
        .start(launch(&c, dir.path()), Default::default(), None)
        .await
        .unwrap_err();
    assert!(matches!(err, StartError::ExecutableNotFound { .. }));
    assert_eq!(
        err.to_string(),
        r#"exec: "nope": executable file not found in $PATH"#
    );
    assert_eq!(err.failure().reason(), "RunContainerError");

    c.command = Some(vec!["/no/such/bin".into()]);
    let err = rt()
        .start(launch(&c, dir.path()), Default::default(), None)
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"exec: "/no/such/bin": stat /no/such/bin: no such file or directory"#
    );

    let mut c = sh("app", "true");
    c.working_dir = Some("/no/such/dir".into());
    let err = rt()
        .start(launch(&c, dir.path()), Default::default(), None)
        .await
        .unwrap_err();
    assert!(matches!(err, StartError::WorkingDir { .. }));
}

#[tokio::test]
async fn daemonised_grandchild_dies_with_the_container() {
    let dir = tempfile::tempdir().unwrap();
    let (tx, mut rx) = mpsc::channel(16);
    let c = sh("app", "setsid sleep 1000 & echo \"daemon $!\"; sleep 1000");
    let ct = rt()
        .start(launch(&c, dir.path()), Default::default(), Some(tx))
        .await
        .unwrap();
    let line = line_matching(&mut rx, |l| l.starts_with("daemon ")).await;
    let daemon: i32 = line["daemon ".len()..].parse().unwrap();
    eventually("daemon running", || alive(daemon)).await;
    let main = ct.pid();
    ct.signal(StopSignal::Kill).unwrap();
    let exit = ct.wait().await;
    assert_eq!(exit.exit_code, 137);
    ct.cleaned_up().await;
    let left_alive = alive(daemon) || alive(main);
    if left_alive {
        kill_pid(daemon);
    }
    assert!(!left_alive, "process tree survived the kill");
    assert!(ct.pids().is_empty());
    // And its zombie is reaped by the subreaper.
    eventually("daemon reaped", || !exists(daemon)).await;
}

#[tokio::test]
async fn leftovers_die_when_the_main_process_exits() {
    let dir = tempfile::tempdir().unwrap();
    let (tx, mut rx) = mpsc::channel(16);
    let c = sh("app", "setsid sleep 1000 & echo \"daemon $!\"");
    let ct = rt()
        .start(launch(&c, dir.path()), Default::default(), Some(tx))
        .await
        .unwrap();
    let line = line_matching(&mut rx, |l| l.starts_with("daemon ")).await;
    let daemon: i32 = line["daemon ".len()..].parse().unwrap();
    let exit = ct.wait().await;
    assert_eq!(exit.exit_code, 0);
    ct.cleaned_up().await;
    let survived = alive(daemon);
    if survived {
        kill_pid(daemon);
    }
    assert!(!survived);
    eventually("daemon reaped", || !exists(daemon)).await;
}

#[tokio::test]
async fn orphaned_zombies_are_reaped() {
    let dir = tempfile::tempdir().unwrap();
    let (tx, mut rx) = mpsc::channel(16);
    // The inner shell exits at once, its short-lived child is reparented to
    // skiff (the subreaper) and must be reaped when it exits.
    let c = sh(
        "app",
        "sh -c 'sleep 0.05 & echo \"orphan $!\"'; echo ready; exec sleep 1000",
    );
    let ct = rt()
        .start(launch(&c, dir.path()), Default::default(), Some(tx))
        .await
        .unwrap();
    let line = line_matching(&mut rx, |l| l.starts_with("orphan ")).await;
    let orphan: i32 = line["orphan ".len()..].parse().unwrap();
    eventually("orphan reaped", || !exists(orphan)).await;
    assert!(alive(ct.pid()));
    ct.signal(StopSignal::Kill).unwrap();
    assert_eq!(ct.wait().await.exit_code, 137);
}

#[tokio::test]
async fn output_flood_does_not_block_and_rotates() {
    let dir = tempfile::tempdir().unwrap();
    // A subscriber that never reads: its channel fills at once.
    let (tx, _rx) = mpsc::channel(8);
    let line100 = "x".repeat(99);
    let c = sh(
        "flood",
        &format!("yes {line100} | head -c 50000000; echo end"),
    );
    let ct = rt()
        .start(launch(&c, dir.path()), Default::default(), Some(tx))
        .await
        .unwrap();
    let exit = tokio::time::timeout(Duration::from_secs(60), ct.wait())
        .await
        .expect("flood finished");
    assert_eq!(exit.exit_code, 0);
    let rotated = rotated_files(ct.log_path()).unwrap();
    assert_eq!(rotated.len(), 4, "{rotated:?}");
    for r in &rotated {
        let len = std::fs::metadata(r).unwrap().len();
        assert!(len <= 10 * 1024 * 1024, "{len}");
    }
    // The kubelet's rotation: all rotated files but the newest are gzip-compressed (in the
    // background: wait for it).
    eventually("older rotated logs compressed", || {
        let r = rotated_files(ct.log_path()).unwrap();
        r.len() == 4 && r[..3].iter().all(|p| p.to_string_lossy().ends_with(".gz"))
    })
    .await;
    // Read back through the log reader: whole records, > 3 files' worth.
    let mut content = Vec::new();
    skiff_node::logs::read_log(ct.log_path(), &Default::default(), &mut content).unwrap();
    assert!(content.len() > 25 * 1024 * 1024, "{}", content.len());
    assert!(content.ends_with(b"xx\nend\n"));
    let live = std::fs::read_to_string(ct.log_path()).unwrap();
    assert!(live.ends_with(" stdout F end\n"));
    assert!(live.lines().all(|l| parse_record(l.as_bytes()).is_some()));
}

#[tokio::test]
async fn long_line_is_split_into_partial_records() {
    let dir = tempfile::tempdir().unwrap();
    let c = sh("app", "head -c 40000 /dev/zero | tr '\\0' a; echo");
    let ct = rt()
        .start(launch(&c, dir.path()), Default::default(), None)
        .await
        .unwrap();
    assert_eq!(ct.wait().await.exit_code, 0);
    let recs = records(ct.log_path());
    let tags: Vec<&str> = recs.iter().map(|r| r.1.as_str()).collect();
    assert_eq!(tags, vec!["P", "P", "F"]);
    let joined: String = recs.iter().map(|r| r.2.as_str()).collect();
    assert_eq!(joined.len(), 40000);
}

#[tokio::test]
async fn termination_message_file_and_fallback() {
    let dir = tempfile::tempdir().unwrap();
    // The instance's own file, bind-mounted at terminationMessagePath in the container's mount
    // namespace (needs one: root, or a user namespace).
    if skiff_node::namespaces::support().namespaces() {
        let target = dir.path().join("msg-target");
        std::fs::write(&target, "stale").unwrap();
        let c = sh(
            "app",
            &format!("printf 'goodbye' > {}; exit 1", target.display()),
        );
        let l = launch(&c, dir.path());
        let mut setup = skiff_node::isolation::ContainerSetup {
            mounts: Some(Vec::new()),
            ..Default::default()
        };
        setup.termination_message = skiff_node::termination::plan(
            &l.container_dir(),
            0,
            target.to_str().unwrap(),
            setup.mounts.as_mut(),
            false,
        )
        .unwrap();
        let ct = rt().start(l, setup, None).await.unwrap();
        let exit = ct.wait().await;
        assert_eq!((exit.exit_code, exit.message.as_str()), (1, "goodbye"));
        // The host file at the path was only covered, in the container's namespace.
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "stale");
    }

    let mut c = sh("app", "echo one; echo two >&2; exit 2");
    c.termination_message_policy = Some("FallbackToLogsOnError".into());
    let ct = rt()
        .start(launch(&c, dir.path()), Default::default(), None)
        .await
        .unwrap();
    let exit = ct.wait().await;
    assert_eq!(exit.exit_code, 2);
    assert!(
        exit.message == "one\ntwo\n" || exit.message == "two\none\n",
        "{:?}",
        exit.message
    );

    // A custom path that no mount covers is never read by skiff on the host.
    let path = dir.path().join("custom-msg");
    let mut c = sh("app", &format!("echo custom > {}", path.display()));
    c.termination_message_path = Some(path.display().to_string());
    let ct = rt()
        .start(launch(&c, dir.path()), Default::default(), None)
        .await
        .unwrap();
    assert_eq!(ct.wait().await.message, "");
}

async fn tree_is_stopped_with(runtime: HostRuntime) {
    let dir = tempfile::tempdir().unwrap();
    let (tx, mut rx) = mpsc::channel(16);
    // A daemonised grandchild (own session) and a plain background child.
    let c = sh(
        "app",
        "setsid sh -c 'sleep 1000 & sleep 1000' & sleep 1000 & echo \"pids $! \"; trap '' TERM; echo ready; wait",
    );
    let ct = runtime
        .start(launch(&c, dir.path()), Default::default(), Some(tx))
        .await
        .unwrap();
    line_matching(&mut rx, |l| l == "ready").await;
    let pid_list = || ct.pids();
    eventually("five processes tracked", || pid_list().len() >= 5).await;
    let tree = ct.pids();
    ct.signal(StopSignal::Term).unwrap();
    assert!(tokio::time::timeout(Duration::from_millis(100), ct.wait())
        .await
        .is_err());
    ct.signal(StopSignal::Kill).unwrap();
    assert_eq!(ct.wait().await.exit_code, 137);
    ct.cleaned_up().await;
    let survivors: Vec<i32> = tree.iter().copied().filter(|&p| alive(p)).collect();
    for p in &survivors {
        kill_pid(*p);
    }
    assert!(survivors.is_empty(), "survivors {survivors:?} of {tree:?}");
    assert!(ct.pids().is_empty());
    for p in tree {
        eventually("zombie reaped", || !exists(p)).await;
    }
}

#[tokio::test]
async fn whole_tree_stopped_with_cgroup_or_default_tracker() {
    let runtime = rt();
    tree_is_stopped_with(runtime).await;
}

#[tokio::test]
async fn whole_tree_stopped_with_process_group_tracker() {
    let runtime = HostRuntime::with_tracker(Arc::new(ProcessGroupTracker)).unwrap();
    assert_eq!(runtime.tracker_kind(), "process-group");
    tree_is_stopped_with(runtime).await;
}

#[tokio::test]
async fn tracking_cgroup_is_created_and_removed() {
    let Ok(tracker) = CgroupV2Tracker::from_proc() else {
        eprintln!("no writable cgroup2 hierarchy: skipped");
        return;
    };
    let base = tracker.base().to_path_buf();
    let runtime = HostRuntime::with_tracker(Arc::new(tracker)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ct = runtime
        .start(
            launch(&sh("app", "exec sleep 1000"), dir.path()),
            Default::default(),
            None,
        )
        .await
        .unwrap();
    let cg = base.join(ct.id());
    let procs = std::fs::read_to_string(cg.join("cgroup.procs")).unwrap();
    assert_eq!(procs.trim(), ct.pid().to_string());
    ct.signal(StopSignal::Kill).unwrap();
    ct.wait().await;
    ct.cleaned_up().await;
    assert!(!cg.exists(), "{} left behind", cg.display());
}
