//! Into a running pod under `skiff serve`, with the real kubectl (issue 12 "How it is
//! checked"): `exec` with stdin, separate stdout/stderr and the exit code kubectl exits with
//! (kubectl 1.33 over WebSocket v5, 1.27 over SPDY); `exec -it` under `script` for a TTY;
//! `attach` to a container with `stdin: true`; `cp` both ways; `port-forward` with two
//! connections at once and 10 MB echoed through each (1.33: SPDY tunnelled in WebSocket; 1.27:
//! SPDY); errors for a missing container and a closed port. Root only; skipped, saying so,
//! where kubectl is not installed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod serve;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{container, pod, with, SERVE};
use serde_json::json;
use serve::{kubectl_bin, Daemon};

fn skip() -> bool {
    if !common::is_root() {
        eprintln!("skipped: needs root");
        return true;
    }
    if kubectl_bin("1.33").is_none() || kubectl_bin("1.27").is_none() {
        eprintln!("skipped: kubectl.1.33 or kubectl.1.27 is not installed");
        return true;
    }
    false
}

/// Applies `p` and waits until it is Ready.
fn run_pod(d: &Daemon, p: serde_json::Value) {
    let path = d.dir.manifest(p.clone());
    d.ok("1.33", &["apply", "-f", path.to_str().unwrap()]);
    let name = p["metadata"]["name"].as_str().unwrap();
    d.ok(
        "1.33",
        &[
            "wait",
            "--for=condition=Ready",
            &format!("pod/{name}"),
            "--timeout=60s",
        ],
    );
}

#[test]
fn exec_carries_stdin_output_and_the_exit_code() {
    if skip() {
        return;
    }
    let d = Daemon::start("serve-exec");
    run_pod(
        &d,
        pod("web", "Always", vec![], vec![container("app", SERVE)]),
    );
    for v in ["1.33", "1.27"] {
        let (rc, out, err) = d.kubectl(
            v,
            &[
                "exec",
                "web",
                "--",
                "/bin/sh",
                "-c",
                "echo out; echo err >&2; exit 3",
            ],
        );
        // kubectl adds its own line for a non-zero exit (the Status's ExitCode cause).
        assert_eq!(
            (rc, out.as_str(), err.as_str()),
            (3, "out\n", "err\ncommand terminated with exit code 3\n"),
            "kubectl {v}"
        );
        let (rc, out, err) = d.kubectl_stdin(
            v,
            &["exec", "-i", "web", "-c", "app", "--", "/bin/cat"],
            "ping\n",
        );
        assert_eq!((rc, out.as_str()), (0, "ping\n"), "kubectl {v}: {err}");
        // The exec'd process is in the container's cgroup, as the container is.
        let (_, own, _) = d.kubectl(v, &["exec", "web", "--", "/bin/cat", "/proc/self/cgroup"]);
        let pid = std::fs::read_to_string(d.dir.path().join("pids"))
            .unwrap()
            .lines()
            .next()
            .unwrap()
            .trim()
            .to_string();
        let container_cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
        // The memory hierarchy on v1 hosts, the one line on v2.
        let memory = |text: &str| {
            text.lines()
                .find(|l| l.contains(":memory:") || l.starts_with("0::"))
                .map(str::to_string)
        };
        assert!(memory(&own).is_some(), "{own}");
        assert_eq!(memory(&own), memory(&container_cg), "kubectl {v}");
    }
    // A container that does not exist: kube's text, kubectl's exit code 1.
    let (rc, _, err) = d.kubectl("1.33", &["exec", "web", "-c", "nope", "--", "true"]);
    assert_eq!(rc, 1);
    assert!(err.contains("nope"), "{err}");
}

#[test]
fn exec_with_a_tty() {
    if skip() {
        return;
    }
    let d = Daemon::start("serve-exec-tty");
    let reader = with(
        container(
            "app",
            "while read line; do l \"got $line\"; echo \"echo $line\"; done; l Eof; exec sleep 1000",
        ),
        "stdin",
        json!(true),
    );
    run_pod(&d, pod("web", "Always", vec![], vec![reader]));
    for v in ["1.33", "1.27"] {
        let bin = kubectl_bin(v).unwrap();
        let home = d.dir.path().join(format!("home-{v}"));
        let line = format!(
            "{} --kubeconfig {} --cache-dir {} exec -it web -- /bin/sh -c 'tty; stty size; exit 4'",
            bin.display(),
            d.kubeconfig.display(),
            home.join("cache").display()
        );
        let o = Command::new("script")
            .args(["-qec", &line, "/dev/null"])
            .env("HOME", &home)
            .env("COLUMNS", "123")
            .env("LINES", "45")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let out = String::from_utf8_lossy(&o.stdout);
        assert_eq!(o.status.code(), Some(4), "kubectl {v}: {out}");
        assert!(out.contains("/dev/pts/"), "kubectl {v}: no TTY: {out}");
    }
}

#[test]
fn attach_feeds_stdin_and_streams_output() {
    if skip() {
        return;
    }
    let d = Daemon::start("serve-attach");
    let reader = with(
        container(
            "app",
            "while read line; do l \"got $line\"; echo \"echo $line\"; done; l Eof; exec sleep 1000",
        ),
        "stdin",
        json!(true),
    );
    run_pod(&d, pod("web", "Always", vec![], vec![reader]));
    // What kubectl sends reaches the container's stdin; its output comes back.
    let bin = kubectl_bin("1.33").unwrap();
    let home = d.dir.path().join("home-attach");
    let mut child = Command::new(bin)
        .args(["--kubeconfig"])
        .arg(&d.kubeconfig)
        .args(["--cache-dir"])
        .arg(home.join("cache"))
        .args(["attach", "-i", "web", "-c", "app"])
        .env("HOME", &home)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    stdin.write_all(b"hello\n").unwrap();
    stdin.flush().unwrap();
    let mut line = String::new();
    let got = std::thread::scope(|s| {
        let h = s.spawn(|| {
            let _ = stdout.read_line(&mut line);
            line.clone()
        });
        let ok = common::wait_until(Duration::from_secs(20), || h.is_finished());
        if !ok {
            let _ = child.kill();
        }
        h.join().unwrap()
    });
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(got, "echo hello\n");
    let log = std::fs::read_to_string(d.dir.path().join("log")).unwrap();
    assert!(log.contains("app got hello"), "{log}");
}

#[test]
fn cp_copies_both_ways() {
    if skip() {
        return;
    }
    let d = Daemon::start("serve-cp");
    run_pod(
        &d,
        pod("web", "Always", vec![], vec![container("app", SERVE)]),
    );
    let local = d.dir.path().join("local.bin");
    let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&local, &data).unwrap();
    let inside = d.dir.path().join("inside");
    std::fs::create_dir_all(&inside).unwrap();
    for v in ["1.33", "1.27"] {
        let target = format!("web:{}/in-{v}.bin", inside.display());
        d.ok(v, &["cp", local.to_str().unwrap(), &target]);
        assert_eq!(
            std::fs::read(inside.join(format!("in-{v}.bin"))).unwrap(),
            data
        );
        let back = d.dir.path().join(format!("back-{v}.bin"));
        d.ok(v, &["cp", &target, back.to_str().unwrap()]);
        assert_eq!(std::fs::read(&back).unwrap(), data, "kubectl {v}");
    }
}

/// Starts `kubectl port-forward pod/web :PORT` and returns it with the local port it chose.
fn port_forward(d: &Daemon, v: &str, port: u16) -> (std::process::Child, u16) {
    let mut child = d.spawn_kubectl(v, &["port-forward", "pod/web", &format!(":{port}")]);
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    // "Forwarding from 127.0.0.1:41234 -> 8080"
    let local = line
        .split("127.0.0.1:")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("kubectl {v} port-forward said: {line:?}"));
    std::thread::spawn(move || {
        let mut sink = String::new();
        let _ = out.read_to_string(&mut sink);
    });
    (child, local)
}

/// Sends `n` bytes through an echo connection and checks they all come back.
fn echo_through(local: u16, n: usize) {
    let mut s = TcpStream::connect(("127.0.0.1", local)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut w = s.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        let chunk: Vec<u8> = (0..65536u32).map(|i| (i % 253) as u8).collect();
        let mut left = n;
        while left > 0 {
            let k = left.min(chunk.len());
            w.write_all(&chunk[..k]).unwrap();
            left -= k;
        }
        w.shutdown(std::net::Shutdown::Write).unwrap();
    });
    let mut got = 0usize;
    let mut buf = vec![0u8; 65536];
    while got < n {
        let k = s.read(&mut buf).unwrap();
        assert!(k > 0, "connection closed after {got} of {n} bytes");
        for (i, b) in buf[..k].iter().enumerate() {
            assert_eq!(*b, ((got + i) % 65536 % 253) as u8, "byte {}", got + i);
        }
        got += k;
    }
    writer.join().unwrap();
}

#[test]
fn port_forward_two_connections_of_10_mb() {
    if skip() {
        return;
    }
    let d = Daemon::start("serve-port-forward");
    let port = 20000 + (std::process::id() % 20000) as u16;
    let echo = container("app", &format!("exec busybox nc -ll -p {port} -e /bin/cat"));
    run_pod(&d, pod("web", "Always", vec![], vec![echo]));
    for v in ["1.33", "1.27"] {
        let (mut child, local) = port_forward(&d, v, port);
        std::thread::scope(|s| {
            let a = s.spawn(|| echo_through(local, 10 << 20));
            let b = s.spawn(|| echo_through(local, 10 << 20));
            a.join().unwrap();
            b.join().unwrap();
        });
        let _ = child.kill();
        let _ = child.wait();
    }
    // A closed port: the connection is refused with the node's error; kubectl says so and the
    // session (and the daemon) go on.
    let (mut child, local) = port_forward(&d, "1.33", 1);
    let mut s = TcpStream::connect(("127.0.0.1", local)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = [0u8; 16];
    assert!(matches!(s.read(&mut buf), Ok(0) | Err(_)));
    let _ = child.kill();
    let _ = child.wait();
    d.ok("1.33", &["get", "pod", "web"]);
}
