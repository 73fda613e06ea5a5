//! Streaming exec and port-forward (`kubectl exec`, `port-forward`; issue 12) on real
//! processes, through the daemon's path: a host-runtime pod run by the [`PodManager`], an
//! exec target asked of its worker, the command run in the container. Checked: stdin, stdout
//! and stderr apart and the exit code; the exec'd process in the container's cgroup; a tty
//! (`tty`, the size set); the process killed when the container stops and when the exec's
//! future is dropped; a connection dialled inside the pod's network namespace, and a closed
//! port refused. Its own test binary: it uses the node's reaper, which takes every child of
//! the process. Needs root and the `skiff-monitor` binary beside the test executables.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use skiff_node::exec::{ExecIo, ExecTarget};
use skiff_node::manager::{ExecTargetError, ManagerConfig, PodManager, PodReport};
use skiff_node::sandbox::PodObjects;
use skiff_node::worker::ExecRefusal;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn root() -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    eprintln!("skipping: needs root (pod sandbox)");
    false
}

/// A running pod: its manager, uid and data dir (removed at the end).
struct Running {
    manager: PodManager,
    reports: tokio::sync::mpsc::UnboundedReceiver<PodReport>,
    uid: String,
    _data: tempfile::TempDir,
    stopped: bool,
}

impl Drop for Running {
    /// A failed test still stops its (persistent) pod: SIGKILL, then a moment for the worker
    /// (on the runtime's other thread) to remove it.
    fn drop(&mut self) {
        if !self.stopped {
            self.manager.kill_now(&self.uid);
            std::thread::sleep(Duration::from_secs(2));
        }
    }
}

impl Running {
    async fn start(name: &str, script: &str) -> Running {
        let data = tempfile::tempdir().unwrap();
        let uid = format!(
            "ex{:06x}-0000-4000-8000-{:012x}",
            std::process::id() & 0xff_ffff,
            name.len() as u64 * 7919 + name.bytes().map(u64::from).sum::<u64>()
        );
        let yaml = format!(
            r#"
apiVersion: v1
kind: Pod
metadata: {{name: {name}, namespace: default}}
spec:
  runtimeClassName: host
  restartPolicy: Never
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: host
    command: [/bin/sh, -c, {script:?}]
    env: [{{name: GREETING, value: hello}}]
"#
        );
        let pod: Pod = serde_yaml_ng::from_str(&yaml).unwrap();
        let mut pod = skiff_model::prepare_pod(pod).unwrap();
        pod.metadata.uid = Some(uid.clone());
        let (manager, reports) = PodManager::new(ManagerConfig {
            data_dir: data.path().to_path_buf(),
            engine: Default::default(),
            image_pulls: skiff_node::worker::PullQueue::node(),
        });
        manager.sync(pod, PodObjects::default());
        let r = Running {
            manager,
            reports,
            uid,
            _data: data,
            stopped: false,
        };

        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match r.manager.exec_target(&r.uid, Some("app")) {
                Ok(_) => break,
                Err(e) if Instant::now() > deadline => panic!("container never ran: {e}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
        r
    }

    async fn target(&self) -> ExecTarget {
        self.manager.exec_target(&self.uid, Some("app")).unwrap()
    }

    /// Stops the pod and waits for its worker's end (nothing of it left).
    async fn stop(mut self) {
        self.manager.stop(&self.uid, Some(0));
        let end = tokio::time::timeout(Duration::from_secs(15), async {
            while let Some(r) = self.reports.recv().await {
                if matches!(r, PodReport::Finished { .. } | PodReport::Failed { .. }) {
                    return;
                }
            }
        });
        end.await.expect("the pod never finished");
        self.stopped = true;
    }
}

/// Output collected from an exec: (exit code, stdout, stderr).
async fn run(
    target: &ExecTarget,
    argv: &[&str],
    tty: bool,
    stdin: Option<&'static [u8]>,
    size: Option<(u16, u16)>,
) -> (i32, String, String) {
    let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
    let (out_w, mut out_r) = tokio::io::duplex(1 << 16);
    let (err_w, mut err_r) = tokio::io::duplex(1 << 16);
    let resize = size.map(|s| {
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tx.try_send(s).unwrap();
        // Kept open as a client's resize stream is while the session lasts.
        std::mem::forget(tx);
        rx
    });
    let io = ExecIo {
        stdin: stdin.map(|b| Box::pin(b) as std::pin::Pin<Box<dyn tokio::io::AsyncRead + Send>>),
        stdout: Some(Box::pin(out_w)),
        stderr: Some(Box::pin(err_w)),
        resize,
    };
    let (code, out, err) = tokio::join!(
        target.run(&argv, tty, io),
        async {
            let mut s = Vec::new();
            out_r.read_to_end(&mut s).await.unwrap();
            s
        },
        async {
            let mut s = Vec::new();
            err_r.read_to_end(&mut s).await.unwrap();
            s
        }
    );
    (
        code.unwrap(),
        String::from_utf8_lossy(&out).into_owned(),
        String::from_utf8_lossy(&err).into_owned(),
    )
}

fn cgroup_of(pid: i32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_streams_exit_codes_cgroup_and_tty() {
    if !root() {
        return;
    }
    let pod = Running::start("exec-a", "exec sleep 601").await;
    let target = pod.target().await;
    assert_eq!(
        pod.manager.exec_target(&pod.uid, Some("nope")).unwrap_err(),
        ExecTargetError::Refused(ExecRefusal::NotRunning("nope".into()))
    );

    // stdin in, stdout and stderr apart, the exit code; the container's environment.
    let (code, out, err) = run(
        &target,
        &[
            "/bin/sh",
            "-c",
            "read x; echo out:$x:$GREETING; echo err >&2; exit 7",
        ],
        false,
        Some(b"hello\n"),
        None,
    )
    .await;
    assert_eq!(
        (code, out.as_str(), err.as_str()),
        (7, "out:hello:hello\n", "err\n")
    );
    // No stdin asked for: /dev/null (EOF at once).
    let (code, out, _) = run(&target, &["/bin/cat"], false, None, None).await;
    assert_eq!((code, out.as_str()), (0, ""));
    // A signal: 128 + its number.
    let (code, _, _) = run(&target, &["/bin/sh", "-c", "kill -9 $$"], false, None, None).await;
    assert_eq!(code, 137);
    // Not found: a start error, nothing run.
    let argv = vec!["/no/such/binary".to_string()];
    assert!(target.run(&argv, false, ExecIo::default()).await.is_err());

    // The exec'd process is in the container's cgroup: the same as its main process's, as
    // the host sees both (the container may have PID and cgroup namespaces of its own).
    let (pid, task) = sleeping_exec(target.clone(), "602").await;
    let main_pid = host_pid_of("sleep 601").expect("the container's sleep");
    assert_eq!(cgroup_of(pid), cgroup_of(main_pid));
    assert_ne!(cgroup_of(pid), cgroup_of(std::process::id() as i32));
    task.abort();

    // A tty: the command's stdin is a pty, its controlling terminal, sized as asked.
    let (code, out, err) = run(
        &target,
        &[
            "/bin/sh",
            "-c",
            "tty; stty size; [ -t 1 ] && echo isatty; ps -o tty= -p $$",
        ],
        true,
        None,
        Some((100, 30)),
    )
    .await;
    assert_eq!(code, 0, "{out} {err}");
    assert!(out.contains("/dev/pts/"), "{out:?}");
    assert!(out.contains("30 100"), "{out:?}");
    assert!(out.contains("isatty"), "{out:?}");
    // The controlling terminal (ps prints `?` without one).
    assert!(
        out.lines().last().unwrap().trim().starts_with("pts/"),
        "{out:?}"
    );
    // Stdin through the pty (echoed by the line discipline, then read).
    let (code, out, _) = run(
        &target,
        &["/bin/sh", "-c", "read x; echo got:$x"],
        true,
        Some(b"typed\n"),
        None,
    )
    .await;
    assert_eq!(code, 0);
    assert!(out.contains("got:typed"), "{out:?}");

    // The round trip of `true` (no streams but stdout/stderr), as `kubectl exec POD -- true`
    // costs it on the node.
    let mut times = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        let (code, _, _) = run(&target, &["true"], false, None, None).await;
        assert_eq!(code, 0);
        times.push(t.elapsed());
    }
    times.sort();
    eprintln!(
        "exec `true` round trip: median {:?}, min {:?}, max {:?}",
        times[times.len() / 2],
        times[0],
        times[times.len() - 1]
    );
    pod.stop().await;
}

/// The host PID of the process whose command line is `cmdline` (arguments joined by spaces).
fn host_pid_of(cmdline: &str) -> Option<i32> {
    let want = format!("{}\0", cmdline.replace(' ', "\0"));
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: i32 = e.file_name().to_str()?.parse().ok()?;
        let c = std::fs::read(e.path().join("cmdline")).ok()?;
        (c == want.as_bytes()).then_some(pid)
    })
}

/// An exec of `sleep <secs>` (a duration unique to the caller), its host PID (once it runs)
/// and its still running exec.
async fn sleeping_exec(
    target: ExecTarget,
    secs: &str,
) -> (
    i32,
    tokio::task::JoinHandle<Result<i32, skiff_node::exec::ExecError>>,
) {
    let (out_w, out_r) = tokio::io::duplex(1 << 16);
    let io = ExecIo {
        stdout: Some(Box::pin(out_w)),
        ..Default::default()
    };
    let script = format!("echo started; exec sleep {secs}");
    let task = tokio::spawn(async move {
        let argv: Vec<String> = ["/bin/sh", "-c", &script]
            .iter()
            .map(|s| s.to_string())
            .collect();
        target.run(&argv, false, io).await
    });
    let mut lines = tokio::io::BufReader::new(out_r);
    let mut line = String::new();
    tokio::io::AsyncBufReadExt::read_line(&mut lines, &mut line)
        .await
        .unwrap();
    // Keep reading so the exec never blocks on output.
    tokio::spawn(async move {
        let mut sink = Vec::new();
        let _ = lines.read_to_end(&mut sink).await;
    });
    assert_eq!(line, "started\n");
    let mut pid = None;
    for _ in 0..200 {
        pid = host_pid_of(&format!("sleep {secs}"));
        if pid.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    (pid.expect("the exec'd sleep"), task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_never_outlives_the_container_or_its_client() {
    if !root() {
        return;
    }
    let pod = Running::start("exec-b", "exec sleep 600").await;
    let target = pod.target().await;

    // The client goes away: dropping the exec's future kills its process group.
    let (pid, task) = sleeping_exec(target.clone(), "603").await;
    assert!(common::alive(pid));
    task.abort();
    common::eventually("the exec'd process killed with its future", || {
        !common::alive(pid)
    })
    .await;

    // The container stops: the exec'd process goes with it (its cgroup is killed).
    let (pid, task) = sleeping_exec(target.clone(), "604").await;
    assert!(common::alive(pid));
    let uid = pod.uid.clone();
    let manager = pod.manager.clone();
    pod.stop().await;
    assert!(!common::alive(pid));
    let code = tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("the exec ended with its container")
        .unwrap()
        .unwrap();
    assert_eq!(code, 137);
    // And the pod is no longer an exec target.
    assert_eq!(
        manager.exec_target(&uid, Some("app")).unwrap_err(),
        ExecTargetError::NoPod
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_target_refusals() {
    if !root() {
        return;
    }
    // The container has exited (restartPolicy Never): not running, the kubelet's refusal.
    let pod = Running::start("exec-c", "sleep 0.3").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let err = loop {
        match pod.manager.exec_target(&pod.uid, Some("app")) {
            Ok(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Ok(_) => panic!("the container never ended"),
            Err(e) => break e,
        }
    };
    // The worker returns once the pod is terminal; before that, the container is refused.
    assert!(
        err == ExecTargetError::Refused(ExecRefusal::NotRunning("app".into()))
            || err == ExecTargetError::NoPod,
        "{err:?}"
    );
    assert_eq!(
        pod.manager
            .exec_target("no-such-uid", Some("app"))
            .unwrap_err(),
        ExecTargetError::NoPod
    );
}

/// A one-shot TCP server in the pod: greets each connection with `hello <n>`, echoes a line.
const SERVER: &str = r#"
import socket
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", PORT))
s.listen(8)
print("listening", flush=True)
n = 0
while True:
    c, _ = s.accept()
    n += 1
    c.sendall(b"hello %d\n" % n)
    data = c.recv(100)
    c.sendall(data)
    c.close()
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn port_forward_dials_inside_the_pod_network_namespace() {
    if !root() || !Path::new("/usr/bin/python3").exists() {
        return;
    }
    // A port nothing on the host listens on.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let script = SERVER.replace("PORT", &port.to_string());
    let cmd = format!("exec /usr/bin/python3 -c '{script}'");
    let pod = Running::start("pf-a", &cmd).await;
    // Through any running container of the pod, as port-forward asks.
    let target = pod.manager.exec_target(&pod.uid, None).unwrap();
    let mut conn = None;
    for _ in 0..200 {
        match target.connect_local(port).await {
            Ok(c) => {
                conn = Some(c);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(25)).await,
        }
    }
    let mut conn = conn.expect("the pod's server never listened");
    // Two connections at once (the server answers them in turn).
    let mut second = target.connect_local(port).await.unwrap();
    let mut buf = vec![0u8; 64];
    let n = conn.read(&mut buf).await.unwrap();
    assert_eq!(&buf[..n], b"hello 1\n");
    conn.write_all(b"ping\n").await.unwrap();
    let n = conn.read(&mut buf).await.unwrap();
    assert_eq!(&buf[..n], b"ping\n");
    let n = second.read(&mut buf).await.unwrap();
    assert_eq!(&buf[..n], b"hello 2\n");
    // The listener is in the pod's namespace, not the host's.
    assert!(tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err());
    // A closed port in the pod: refused.
    let closed = target.connect_local(1).await.unwrap_err();
    assert_eq!(closed.kind(), std::io::ErrorKind::ConnectionRefused);
    drop((conn, second));
    pod.stop().await;
}
