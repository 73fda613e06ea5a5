//! Cost of creating and tearing down a pod sandbox's namespaces (issue 4 "Speed": goal
//! ≤ 10 ms per pod). Root only:
//!
//! ```text
//! cargo run --release -p skiff-node --example sandbox_bench [-- ITERATIONS]
//! ```
//!
//! Per iteration: `PodSandbox::create` (holder process in new net+uts+ipc namespaces, lo up,
//! hostname, namespace descriptors opened), then `destroy` (holder SIGKILLed and reaped).
//! Also with `shareProcessNamespace: true` (adds a PID namespace) and, for comparison, one
//! container start in the sandbox (own mount namespace) until it has exited and been cleaned
//! up. Everything lives in a temp dir removed at the end.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Container, Pod};
use skiff_node::launch::{ContainerLaunch, EnvSources, PodIdentity};
use skiff_node::namespaces::{support, Support};
use skiff_node::runtime::HostRuntime;
use skiff_node::sandbox::{PodSandbox, SandboxOptions};

fn pod(name: &str, extra: &str) -> Result<Pod, serde_yaml_ng::Error> {
    serde_yaml_ng::from_str(&format!(
        "metadata:\n  name: {name}\n  namespace: default\n  uid: {name}-uid\nspec:\n{extra}  containers:\n  - name: app\n    image: host\n"
    ))
}

fn report(name: &str, v: &mut [Duration]) {
    v.sort();
    let pct = |p: usize| v[(v.len() * p / 100).min(v.len() - 1)].as_secs_f64() * 1e3;
    println!(
        "{name:<58} p50 {:>7.3} ms  p90 {:>7.3} ms  min {:>7.3}  max {:>7.3}",
        pct(50),
        pct(90),
        pct(0),
        pct(100)
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(200)
        .max(1);
    if let Support::Unavailable(why) = support() {
        println!("skipped: {why}");
        return Ok(());
    }
    let dir = tempfile::tempdir()?;
    let opts = SandboxOptions {
        data_dir: dir.path().to_path_buf(),
        ..Default::default()
    };
    let runtime = HostRuntime::new()?;
    for (label, extra, with_container) in [
        ("sandbox create+destroy (net, uts, ipc)", "", false),
        (
            "sandbox create+destroy (net, uts, ipc, shared pid)",
            "  shareProcessNamespace: true\n",
            false,
        ),
        (
            "sandbox + one /bin/true container (own mount ns), all cleaned",
            "",
            true,
        ),
    ] {
        let (mut create, mut destroy, mut total) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..n + 5 {
            let p = pod(&format!("bench-{i}"), extra)?;
            let identity = PodIdentity {
                namespace: "default".into(),
                name: format!("bench-{i}"),
                uid: format!("bench-{i}-uid"),
                ..Default::default()
            };
            let t0 = Instant::now();
            let sb = PodSandbox::create(&p, &identity, &opts).await?;
            let t1 = Instant::now();
            if with_container {
                let c = Container {
                    name: "app".into(),
                    command: Some(vec!["/bin/true".into()]),
                    ..Default::default()
                };
                let l = ContainerLaunch::from_container(
                    &c,
                    &identity,
                    dir.path(),
                    0,
                    &EnvSources::NONE,
                )?;
                let setup = sb.container_setup(&c, &l)?;
                let ct = runtime.start(l, setup, None).await?;
                ct.wait().await;
                ct.cleaned_up().await;
            }
            let t2 = Instant::now();
            sb.destroy().await;
            let t3 = Instant::now();
            if i >= 5 {
                create.push(t1 - t0);
                destroy.push(t3 - t2);
                total.push(t3 - t0);
            }
        }
        println!("{label} ({n} runs)");
        report("  create", &mut create);
        report("  destroy", &mut destroy);
        report("  total", &mut total);
    }
    Ok(())
}
