//! Cost of creating and removing a pod cgroup with one container cgroup on
//! this host's real hierarchy (root only):
//!
//! ```text
//! cargo run --release -p skiff-node --example cgroups_bench [-- ITERATIONS]
//! ```
//!
//! Everything lives under `<own cgroup>/skiff-bench-<pid>` and is removed at the end.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use skiff_model::resources::{ContainerCgroupValues, PodCgroupValues, QosClass};
use skiff_node::cgroups::{detect, CgroupDriver, CgroupSettings, PodCgroup};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    let settings = CgroupSettings {
        parent: PathBuf::from(format!("skiff-bench-{}", std::process::id())),
        ..CgroupSettings::default()
    };
    let driver: Arc<dyn CgroupDriver> = detect(settings)?;
    println!(
        "driver: {:?}, {} hierarchies",
        driver.version(),
        driver.dirs("x".as_ref()).len()
    );
    // Worked example (RES8): Burstable, 1136 shares, 221000/100000, 1808Mi.
    let pod_values = PodCgroupValues {
        cpu_shares: 1136,
        cpu_quota_us: Some(221_000),
        cpu_period_us: 100_000,
        memory_limit_bytes: Some(1_895_825_408),
        cpu_weight: 109,
    };
    let container_values = ContainerCgroupValues {
        cpu_shares: 512,
        cpu_quota_us: Some(100_000),
        cpu_period_us: 100_000,
        memory_limit_bytes: Some(1 << 30),
        cpu_weight: 59,
    };
    // QoS cgroups once, as at skiff start.
    driver.ensure_qos()?;

    let (mut create_pod, mut create_ctr, mut remove, mut total) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for i in 0..n {
        let t0 = Instant::now();
        let pod = PodCgroup::create_with(
            &driver,
            &format!("bench-{i}"),
            QosClass::Burstable,
            &pod_values,
        )?;
        let t1 = Instant::now();
        let c = pod.create_container_with("app", &container_values)?;
        let t2 = Instant::now();
        drop(c);
        pod.remove_blocking(Duration::from_secs(5))?;
        let t3 = Instant::now();
        create_pod.push(t1 - t0);
        create_ctr.push(t2 - t1);
        remove.push(t3 - t2);
        total.push(t3 - t0);
    }
    driver.teardown()?;
    for (name, v) in [
        ("create pod (ensure QoS + mkdir + values)", &mut create_pod),
        (
            "create container (+ join files, OOM eventfd)",
            &mut create_ctr,
        ),
        ("remove pod (bottom-up rmdir)", &mut remove),
        ("total per pod", &mut total),
    ] {
        v.sort();
        let mean = v.iter().sum::<Duration>() / v.len().max(1) as u32;
        let pct = |p: usize| v[(v.len() * p / 100).min(v.len() - 1)];
        println!(
            "{name:46} mean {mean:>10.1?}  p50 {:>10.1?}  p99 {:>10.1?}",
            pct(50),
            pct(99)
        );
    }
    Ok(())
}
