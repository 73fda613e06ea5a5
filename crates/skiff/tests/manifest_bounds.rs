//! Issue 7 item 4: a hostile manifest costs bounded time and memory. The built binary reads
//! YAML alias bombs, deep nesting (YAML and JSON) and oversized documents, under a 1 GiB
//! address-space limit, and must refuse each with exit 2 and a clear message, quickly, with a
//! small peak RSS (sampled from /proc while it runs).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

struct Run {
    code: Option<i32>,
    stderr: String,
    elapsed: Duration,
    /// Highest VmHWM seen while the process ran, in KiB.
    peak_kib: u64,
}

fn validate(manifest: &str) -> Run {
    skiff(&["validate"], manifest)
}

/// Runs `skiff ARGS -f <manifest>` under a 1 GiB address-space limit, sampling its peak RSS.
fn skiff(args: &[&str], manifest: &str) -> Run {
    let dir = std::env::temp_dir().join(format!(
        "skiff-manifest-bounds-{}-{}-{}",
        std::process::id(),
        args.join("-").replace(' ', "_"),
        manifest.len()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("pod.yaml");
    std::fs::File::create(&file)
        .unwrap()
        .write_all(manifest.as_bytes())
        .unwrap();
    // The limit turns unbounded growth into an allocation failure (exit 134), never a
    // machine out of memory.
    let script = format!(
        "ulimit -v 1048576; exec {} {} -f {}",
        env!("CARGO_BIN_EXE_skiff"),
        args.join(" "),
        file.display()
    );
    let start = Instant::now();
    let mut child = Command::new("sh")
        .args(["-c", &script])
        // Pods `run` keeps go to the tests' data dir, not the machine's.
        .env("SKIFF_DATA_DIR", dir.join("data"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status_path = format!("/proc/{}/status", child.id());
    let mut peak_kib = 0;
    let status = loop {
        if let Ok(s) = std::fs::read_to_string(&status_path) {
            if let Some(kib) = s
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
            {
                peak_kib = peak_kib.max(kib);
            }
        }
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            break child.wait().unwrap();
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let elapsed = start.elapsed();
    let mut stderr = String::new();
    use std::io::Read;
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    Run {
        code: status.code(),
        stderr,
        elapsed,
        peak_kib,
    }
}

fn assert_refused(run: &Run, message: &str) {
    assert_eq!(run.code, Some(2), "stderr: {}", run.stderr);
    assert!(run.stderr.contains(message), "stderr: {}", run.stderr);
    // Debug build on a shared machine: generous, but far below the unbounded cost (minutes).
    assert!(run.elapsed < Duration::from_secs(3), "{:?}", run.elapsed);
    assert!(run.peak_kib < 200 * 1024, "peak RSS {} KiB", run.peak_kib);
}

const POD: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  containers:\n  - name: app\n    image: busybox\n";

#[test]
fn issue7_item4_a_plain_pod_still_validates_under_the_same_limits() {
    let run = validate(POD);
    assert_eq!(run.code, Some(0), "stderr: {}", run.stderr);
    // A pod that uses anchors and aliases moderately is fine.
    let anchors = format!(
        "{POD}    env: &env\n    - {{name: A, value: a}}\n    - {{name: B, value: b}}\n  - name: two\n    image: busybox\n    env: *env\n"
    );
    let run = validate(&anchors);
    assert_eq!(run.code, Some(0), "stderr: {}", run.stderr);
}

#[test]
fn issue7_item4_billion_laughs_is_refused_fast() {
    // Nine levels of nine aliases: 9^9 (387 million) strings from 0.5 KB.
    let mut doc = String::from(
        "a0: &a0 [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    for i in 1..10 {
        let refs = vec![format!("*a{}", i - 1); 9].join(",");
        doc.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
    }
    doc.push_str("apiVersion: v1\nkind: Pod\n");
    assert_refused(&validate(&doc), "document contains excessive aliasing");

    // One big node aliased many times (1 MiB, as in the report of 2 GB). Refusing it costs
    // no more than reading the big node once: compared with the manifest without the aliases.
    let big = format!("big: &big [{}]\n", vec!["1"; 512 * 1024].join(","));
    let plain = validate(&format!("{big}kind: Pod\n"));
    let doc = format!(
        "{big}copies: [{}]\napiVersion: v1\nkind: Pod\n",
        vec!["*big"; 1000].join(",")
    );
    let run = validate(&doc);
    assert_eq!(run.code, Some(2), "stderr: {}", run.stderr);
    assert!(
        run.stderr.contains("document contains excessive aliasing"),
        "{}",
        run.stderr
    );
    assert!(
        run.elapsed < plain.elapsed * 3 + Duration::from_secs(1),
        "{:?} against {:?} without aliases",
        run.elapsed,
        plain.elapsed
    );
    assert!(run.peak_kib < 200 * 1024, "peak RSS {} KiB", run.peak_kib);
}

// A big scalar aliased many times: few nodes (the node budget allows them), but every alias
// becomes a copy of the string in the decoder. Found by review: 2 MiB × 300 000 aliases in a
// document under 3 MiB asked for hundreds of GB. The scalar bytes are budgeted too.
#[test]
fn issue7_item4_aliases_of_a_big_string_are_refused_fast() {
    let big = "x".repeat(2 * 1024 * 1024);
    let filler = vec!["1"; 4096].join(",");
    let aliases = vec!["*s"; 200_000].join(",");
    let doc =
        format!("a: &s \"{big}\"\np: [{filler}]\nb: [{aliases}]\napiVersion: v1\nkind: Pod\n");
    assert!(doc.len() < 3 * 1024 * 1024);
    let run = validate(&doc);
    assert_eq!(run.code, Some(2), "stderr: {}", run.stderr);
    assert!(
        run.stderr
            .contains("document contains excessive aliasing: aliases repeat more text"),
        "{}",
        run.stderr
    );
    assert!(run.peak_kib < 200 * 1024, "peak RSS {} KiB", run.peak_kib);
}

#[test]
fn issue7_item4_deep_nesting_is_refused_fast() {
    // 400 KB chains: JSON objects, YAML flow sequences, inside a pod's field.
    let json = format!("{}1{}", "{\"a\":".repeat(80_000), "}".repeat(80_000));
    assert_refused(&validate(&json), "nesting deeper than 256 levels");
    let yaml = format!(
        "{POD}    args: {}{}\n",
        "[".repeat(200_000),
        "]".repeat(200_000)
    );
    assert_refused(&validate(&yaml), "nesting deeper than 256 levels");
    // Unclosed, as an attacker would not bother closing them.
    assert_refused(
        &validate(&"[".repeat(400_000)),
        "nesting deeper than 256 levels",
    );
    // Deep block nesting is the decoder's own limit (128), also quick.
    let block: String = (0..2000)
        .map(|i| format!("{}a:\n", " ".repeat(i)))
        .collect();
    assert_refused(&validate(&block), "recursion limit exceeded");
}

#[test]
fn issue7_item4_documents_over_the_api_servers_request_limit_are_refused() {
    let big = format!("{POD}    args: [\"{}\"]\n", "x".repeat(3 * 1024 * 1024));
    assert_refused(
        &validate(&big),
        "Request entity too large: limit is 3145728",
    );
    // The whole file is held to 16 MiB (read no further than one byte past it).
    let padded = format!("{POD}{}", "# padding padding padding\n".repeat(700_000));
    assert_refused(&validate(&padded), "more than the 16777216 bytes allowed");
    // Several documents under the limit each are read as usual.
    let small = format!("{POD}    args: [\"{}\"]\n", "x".repeat(1024 * 1024));
    let run = validate(&format!("{small}---\n{}", small.replace("web", "web2")));
    assert_eq!(run.code, Some(0), "stderr: {}", run.stderr);
}

#[test]
fn issue7_item4_env_expansion_doubling_is_bounded() {
    // E0 is 1 KiB; each next variable is the previous one twice: E39 would be 512 TiB.
    let mut env = String::from("    - {name: E0, value: \"");
    env.push_str(&"a".repeat(1024));
    env.push_str("\"}\n");
    for i in 1..40 {
        env.push_str(&format!(
            "    - {{name: E{i}, value: \"$(E{p})$(E{p})\"}}\n",
            p = i - 1
        ));
    }
    let pod = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: envbomb\nspec:\n  runtimeClassName: host\n  restartPolicy: Never\n  containers:\n  - name: app\n    image: busybox\n    command: [\"true\"]\n    env:\n{env}"
    );
    let run = skiff(&["run", "--rm", "--timeout", "3"], &pod);
    // The container cannot be created (as on a node, where it could not exec: E2BIG); the pod
    // waits until --timeout, in little memory.
    assert_eq!(run.code, Some(124), "stderr: {}", run.stderr);
    assert!(
        run.stderr.contains("argument list too long"),
        "stderr: {}",
        run.stderr
    );
    assert!(run.peak_kib < 200 * 1024, "peak RSS {} KiB", run.peak_kib);
}
