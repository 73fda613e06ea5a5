//! Rule-by-rule tests of `skiff_model::resources` (SEMANTICS RES1–RES9, CG2–CG9).

use k8s_openapi::api::core::v1::{Pod, PodSpec};
use proptest::prelude::*;
use skiff_model::defaults::default_pod;
use skiff_model::quantity::Quantity;
use skiff_model::resources::*;

const GI: i64 = 1 << 30;

/// Decodes a PodSpec from YAML and applies API defaulting.
fn spec(yaml: &str) -> PodSpec {
    let raw: PodSpec =
        serde_yaml_ng::from_str(yaml).unwrap_or_else(|e| panic!("bad test pod: {e}\n{yaml}"));
    defaulted(raw)
}

fn defaulted(raw: PodSpec) -> PodSpec {
    let mut pod = Pod {
        spec: Some(raw),
        ..Pod::default()
    };
    default_pod(&mut pod);
    pod.spec.unwrap_or_default()
}

fn canon(list: &ResourceList) -> Vec<(String, String)> {
    canonical(list).into_iter().collect()
}

fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn requests(s: &PodSpec) -> Vec<(String, String)> {
    canon(&pod_requests(s, Overhead::Include))
}

fn limits(s: &PodSpec) -> Vec<(String, String)> {
    canon(&pod_limits(s, Overhead::Include))
}

const WORKED_EXAMPLE: &str = r#"
overhead: {cpu: 10m, memory: 16Mi}
initContainers:
  - name: istio
    restartPolicy: Always
    resources:
      requests: {cpu: 100m, memory: 128Mi}
      limits: {cpu: 200m, memory: 256Mi}
  - name: migrate
    resources:
      requests: {cpu: "1", memory: 512Mi}
      limits: {cpu: "2", memory: 1Gi}
  - name: logs
    restartPolicy: Always
    resources:
      requests: {cpu: 50m, memory: 64Mi}
containers:
  - name: app
    resources:
      requests: {cpu: 500m, memory: 1Gi}
      limits: {cpu: "1", memory: 1Gi}
  - name: worker
    resources:
      requests: {cpu: 250m, memory: 256Mi}
      limits: {cpu: 500m, memory: 512Mi}
"#;

// --- RES1 --------------------------------------------------------------------------------------

#[test]
fn res1_sidecar_counts_only_for_later_init_containers() {
    let s = spec(
        r#"
initContainers:
  - {name: s1, restartPolicy: Always, resources: {requests: {cpu: "1"}}}
  - {name: init, resources: {requests: {cpu: "3"}}}
  - {name: s2, restartPolicy: Always, resources: {requests: {cpu: "2"}}}
containers:
  - {name: app, resources: {requests: {cpu: 500m}}}
"#,
    );
    // steady 0.5+1+2 = 3.5; init peak 3+1 = 4 (s2 starts after init).
    assert_eq!(requests(&s), pairs(&[("cpu", "4")]));
}

#[test]
fn res1_result_is_per_resource_max_of_steady_and_init_peak() {
    let s = spec(
        r#"
initContainers:
  - {name: i, resources: {requests: {cpu: "4", memory: 128Mi}}}
containers:
  - {name: app, resources: {requests: {cpu: "1", memory: 2Gi}}}
"#,
    );
    assert_eq!(requests(&s), pairs(&[("cpu", "4"), ("memory", "2Gi")]));
}

#[test]
fn res1_overhead_is_added_creating_missing_keys() {
    let s = spec(
        r#"
overhead: {cpu: 100m, memory: 64Mi}
containers:
  - {name: app, resources: {requests: {cpu: "1"}}}
"#,
    );
    assert_eq!(requests(&s), pairs(&[("cpu", "1100m"), ("memory", "64Mi")]));
    assert_eq!(
        canon(&pod_requests(&s, Overhead::Exclude)),
        pairs(&[("cpu", "1")])
    );
}

#[test]
fn res1_first_operand_format_survives_the_sum() {
    // Binary first: 1Gi + 64Mi prints as 1088Mi.
    let s = spec(
        r#"
initContainers:
  - {name: s, restartPolicy: Always, resources: {requests: {memory: 64Mi}}}
containers:
  - {name: app, resources: {requests: {memory: 1Gi}}}
"#,
    );
    assert_eq!(requests(&s), pairs(&[("memory", "1088Mi")]));
    // Decimal first (app containers are summed before sidecars): plain bytes.
    let s = spec(
        r#"
initContainers:
  - {name: s, restartPolicy: Always, resources: {requests: {memory: 64Mi}}}
containers:
  - {name: app, resources: {requests: {memory: "1073741824"}}}
"#,
    );
    assert_eq!(requests(&s), pairs(&[("memory", "1140850688")]));
    // A zero receiver takes the other operand's format.
    let s = spec(
        r#"
initContainers:
  - {name: s, restartPolicy: Always, resources: {requests: {memory: 64Mi}}}
containers:
  - {name: app, resources: {requests: {memory: "0"}}}
"#,
    );
    assert_eq!(requests(&s), pairs(&[("memory", "64Mi")]));
}

#[test]
fn res1_defaulting_turns_limits_into_requests_first() {
    let raw: PodSpec = serde_yaml_ng::from_str(
        r#"
containers:
  - {name: app, resources: {limits: {cpu: "1", memory: 1Gi}}}
"#,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(pod_requests(&raw, Overhead::Include).is_empty());
    assert_eq!(qos_class(&raw), QosClass::Burstable);
    let s = defaulted(raw);
    assert_eq!(requests(&s), pairs(&[("cpu", "1"), ("memory", "1Gi")]));
    assert_eq!(qos_class(&s), QosClass::Guaranteed);
}

// --- RES2 --------------------------------------------------------------------------------------

#[test]
fn res2_container_without_limit_contributes_nothing() {
    let s = spec(
        r#"
initContainers:
  - {name: init, resources: {requests: {cpu: "2", memory: 1Gi}}}
containers:
  - {name: app, resources: {limits: {cpu: "1", memory: 512Mi}}}
"#,
    );
    assert_eq!(limits(&s), pairs(&[("cpu", "1"), ("memory", "512Mi")]));
    assert_eq!(requests(&s), pairs(&[("cpu", "2"), ("memory", "1Gi")]));
}

#[test]
fn res2_overhead_only_on_existing_nonzero_limits() {
    let s = spec(
        r#"
overhead: {cpu: 250m, memory: 120Mi, ephemeral-storage: 1Gi}
containers:
  - {name: app, resources: {limits: {cpu: "0", memory: 64Mi}}}
"#,
    );
    // cpu limit exists but is zero; ephemeral-storage has no limit.
    assert_eq!(limits(&s), pairs(&[("cpu", "0"), ("memory", "184Mi")]));
    assert_eq!(
        canon(&pod_limits(&s, Overhead::Exclude)),
        pairs(&[("cpu", "0"), ("memory", "64Mi")])
    );
}

#[test]
fn res2_sidecar_limits_accumulate_like_requests() {
    let s = spec(
        r#"
initContainers:
  - {name: s1, restartPolicy: Always, resources: {limits: {cpu: "1"}}}
  - {name: s2, restartPolicy: Always, resources: {limits: {cpu: "1"}}}
  - {name: i, resources: {limits: {cpu: "2"}}}
containers:
  - {name: app, resources: {limits: {cpu: 500m}}}
"#,
    );
    // steady 0.5+1+1 = 2.5; init peak 2+1+1 = 4.
    assert_eq!(limits(&s), pairs(&[("cpu", "4")]));
}

// --- RES3 --------------------------------------------------------------------------------------

#[test]
fn res3_other_resources_use_the_same_arithmetic() {
    let s = spec(
        r#"
overhead: {example.com/gpu: "1"}
initContainers:
  - {name: s, restartPolicy: Always, resources: {limits: {hugepages-2Mi: 4Mi, example.com/gpu: "1"}}}
  - {name: i, resources: {requests: {ephemeral-storage: 5Gi}}}
containers:
  - {name: app, resources: {requests: {ephemeral-storage: 1Gi}, limits: {hugepages-2Mi: 2Mi, example.com/gpu: "2"}}}
"#,
    );
    assert_eq!(
        requests(&s),
        pairs(&[
            ("ephemeral-storage", "5Gi"),
            ("example.com/gpu", "4"),
            ("hugepages-2Mi", "6Mi")
        ])
    );
    assert_eq!(
        limits(&s),
        pairs(&[("example.com/gpu", "4"), ("hugepages-2Mi", "6Mi")])
    );
}

// --- RES4 --------------------------------------------------------------------------------------

#[test]
fn res4_nothing_declared_is_best_effort() {
    let s = spec("containers: [{name: app}]\ninitContainers: [{name: i, resources: {}}]");
    assert_eq!(qos_class(&s), QosClass::BestEffort);
}

#[test]
fn res4_explicit_zero_requests_are_best_effort() {
    let s = spec(r#"containers: [{name: app, resources: {requests: {cpu: "0", memory: "0"}}}]"#);
    assert_eq!(qos_class(&s), QosClass::BestEffort);
}

#[test]
fn res4_guaranteed_needs_equal_nonzero_cpu_and_memory_everywhere() {
    let s = spec(
        r#"
initContainers:
  - {name: s, restartPolicy: Always, resources: {limits: {cpu: 100m, memory: 64Mi}}}
containers:
  - {name: app, resources: {limits: {cpu: "1", memory: 1Gi}, requests: {ephemeral-storage: 1Gi}}}
"#,
    );
    assert_eq!(qos_class(&s), QosClass::Guaranteed);
    let cpu_only = spec(r#"containers: [{name: app, resources: {limits: {cpu: "1"}}}]"#);
    assert_eq!(qos_class(&cpu_only), QosClass::Burstable);
    let unequal = spec(
        r#"containers: [{name: app, resources: {requests: {cpu: 500m, memory: 1Gi}, limits: {cpu: "1", memory: 1Gi}}}]"#,
    );
    assert_eq!(qos_class(&unequal), QosClass::Burstable);
}

#[test]
fn res4_best_effort_and_guaranteed_containers_mix_to_burstable() {
    let s = spec(
        r#"
initContainers:
  - {name: proxy, restartPolicy: Always}
containers:
  - {name: app, resources: {limits: {cpu: "1", memory: 1Gi}}}
"#,
    );
    assert_eq!(qos_class(&s), QosClass::Burstable);
    assert_eq!(requests(&s), limits(&s));
}

#[test]
fn res4_overhead_and_ephemeral_storage_never_matter() {
    let s = spec(
        r#"
overhead: {cpu: 100m, memory: 64Mi}
containers:
  - {name: app, resources: {requests: {ephemeral-storage: 1Gi}}}
"#,
    );
    assert_eq!(qos_class(&s), QosClass::BestEffort);
    assert_eq!(QosClass::BestEffort.as_str(), "BestEffort");
}

// --- RES5 --------------------------------------------------------------------------------------

#[test]
fn res5_pod_level_resources_replace_cpu_memory_and_decide_qos() {
    let s = spec(
        r#"
resources:
  requests: {cpu: "2", memory: 2Gi}
  limits: {cpu: "2", memory: 2Gi}
containers:
  - {name: a, resources: {requests: {cpu: 500m, ephemeral-storage: 1Gi}}}
  - {name: b}
"#,
    );
    assert!(pod_level_resources_set(&s));
    assert_eq!(qos_class(&s), QosClass::Guaranteed);
    assert_eq!(
        requests(&s),
        pairs(&[
            ("cpu", "2"),
            ("ephemeral-storage", "1Gi"),
            ("memory", "2Gi")
        ])
    );
    assert_eq!(limits(&s), pairs(&[("cpu", "2"), ("memory", "2Gi")]));
    let v = pod_cgroup_values(&s, &CgroupConfig::default());
    assert_eq!(v.cpu_quota_us, Some(200_000));
    assert_eq!(v.memory_limit_bytes, Some(2 * GI));
}

#[test]
fn res5_pod_level_memory_request_is_shared_for_oom_score() {
    // 4Gi pod request, containers claim 1Gi: 3Gi/2 = 1.5Gi extra each.
    let s = spec(
        r#"
resources:
  requests: {memory: 4Gi}
containers:
  - {name: a, resources: {requests: {memory: 1Gi}}}
  - {name: b}
"#,
    );
    assert_eq!(qos_class(&s), QosClass::Burstable);
    let cap = 16 * GI;
    assert_eq!(
        oom_score_adj(&s, "a", cap),
        1000 - (1000 * (GI + 3 * GI / 2) / cap) as i32
    );
    assert_eq!(
        oom_score_adj(&s, "b", cap),
        1000 - (1000 * (3 * GI / 2) / cap) as i32
    );
}

// --- RES6 --------------------------------------------------------------------------------------

#[test]
fn res6_summary_json_has_canonical_strings_and_sorted_keys() {
    let s = spec(
        r#"
initContainers:
  - {name: proxy, restartPolicy: Always, resources: {limits: {cpu: 100m, memory: 64Mi}}}
containers:
  - {name: app, resources: {limits: {memory: 1Gi, cpu: "1"}, requests: {ephemeral-storage: "0.5Gi"}}}
"#,
    );
    let json = serde_json::to_string(&summary(&s)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        json,
        r#"{"requests":{"cpu":"1100m","ephemeral-storage":"512Mi","memory":"1088Mi"},"limits":{"cpu":"1100m","memory":"1088Mi"},"qosClass":"Guaranteed"}"#
    );
    let wide = serde_json::to_value(summary_wide(&s, &CgroupConfig::default()))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(wide["qosClass"], "Guaranteed");
    assert_eq!(wide["podCgroup"]["cpuShares"], 1126);
    assert_eq!(wide["podCgroup"]["cpuQuotaUs"], 110_000);
    assert_eq!(wide["podCgroup"]["memoryLimitBytes"], 1_140_850_688i64);
    assert_eq!(wide["podCgroup"]["cpuWeight"], 108);
}

// --- RES8 --------------------------------------------------------------------------------------

#[test]
fn res8_worked_example() {
    let s = spec(WORKED_EXAMPLE);
    assert_eq!(
        requests(&s),
        pairs(&[("cpu", "1110m"), ("memory", "1488Mi")])
    );
    assert_eq!(limits(&s), pairs(&[("cpu", "2210m"), ("memory", "1808Mi")]));
    assert_eq!(qos_class(&s), QosClass::Burstable);
    let v = pod_cgroup_values(&s, &CgroupConfig::default());
    assert_eq!(v.cpu_shares, 1136);
    assert_eq!(v.cpu_quota_us, Some(221_000));
    assert_eq!(v.cpu_period_us, 100_000);
    assert_eq!(v.memory_limit_bytes, Some(1_895_825_408));
}

// --- RES9 --------------------------------------------------------------------------------------

#[test]
fn res9_guaranteed_is_minus_997_and_best_effort_1000() {
    let g = spec(r#"containers: [{name: app, resources: {limits: {cpu: "1", memory: 1Gi}}}]"#);
    assert_eq!(oom_score_adj(&g, "app", 16 * GI), -997);
    let b = spec("containers: [{name: app}]");
    assert_eq!(oom_score_adj(&b, "app", 16 * GI), 1000);
}

#[test]
fn res9_burstable_uses_share_of_capacity() {
    let s = spec(r#"containers: [{name: app, resources: {requests: {memory: 1Gi}}}]"#);
    assert_eq!(oom_score_adj(&s, "app", 16 * GI), 938);
}

#[test]
fn res9_sidecar_takes_min_with_smallest_app_request() {
    let s = spec(
        r#"
initContainers:
  - {name: proxy, restartPolicy: Always, resources: {requests: {memory: 128Mi}}}
  - {name: init, resources: {requests: {memory: 128Mi}}}
containers:
  - {name: app, resources: {requests: {memory: 1Gi}}}
  - {name: big, resources: {requests: {memory: 4Gi}}}
"#,
    );
    let cap = 16 * GI;
    assert_eq!(oom_score_adj(&s, "app", cap), 938);
    assert_eq!(oom_score_adj(&s, "big", cap), 750);
    // Own value 993, smallest app (1Gi) gives 938.
    assert_eq!(oom_score_adj(&s, "proxy", cap), 938);
    // Regular init containers get no such adjustment.
    assert_eq!(oom_score_adj(&s, "init", cap), 993);
}

#[test]
fn res9_sidecar_with_app_without_memory_request_keeps_own_value() {
    let s = spec(
        r#"
initContainers:
  - {name: proxy, restartPolicy: Always, resources: {requests: {memory: 1Gi}}}
containers:
  - {name: app, resources: {requests: {cpu: 100m}}}
"#,
    );
    // App has no memory request → 1000 → min(938, 1000) = 938.
    assert_eq!(oom_score_adj(&s, "proxy", 16 * GI), 938);
    assert_eq!(oom_score_adj(&s, "app", 16 * GI), 999);
}

#[test]
fn res9_clamped_to_3_and_999() {
    let s = spec(
        r#"
containers:
  - {name: huge, resources: {requests: {memory: 64Gi}}}
  - {name: none, resources: {requests: {cpu: 100m}}}
"#,
    );
    assert_eq!(oom_score_adj(&s, "huge", 16 * GI), 3);
    assert_eq!(oom_score_adj(&s, "none", 16 * GI), 999);
    // Degenerate capacities never panic.
    assert_eq!(oom_score_adj(&s, "huge", 0), 3);
    assert_eq!(oom_score_adj(&s, "unknown", 16 * GI), 999);
}

// --- CG2 ---------------------------------------------------------------------------------------

#[test]
fn cg2_shares_from_millicores() {
    assert_eq!(milli_cpu_to_shares(0), 2);
    assert_eq!(milli_cpu_to_shares(1), 2);
    assert_eq!(milli_cpu_to_shares(2), 2);
    assert_eq!(milli_cpu_to_shares(3), 3);
    assert_eq!(milli_cpu_to_shares(1000), 1024);
    assert_eq!(milli_cpu_to_shares(1110), 1136);
    assert_eq!(milli_cpu_to_shares(256_000), 262_144);
    assert_eq!(milli_cpu_to_shares(i64::MAX), 262_144);
    assert_eq!(milli_cpu_to_shares(-5), 2);
}

#[test]
fn cg2_best_effort_pod_gets_two_shares_despite_overhead() {
    let s = spec("overhead: {cpu: \"1\"}\ncontainers: [{name: app}]");
    assert_eq!(
        pod_cgroup_values(&s, &CgroupConfig::default()).cpu_shares,
        2
    );
}

// --- CG3 ---------------------------------------------------------------------------------------

#[test]
fn cg3_quota_from_millicores_with_minimum() {
    assert_eq!(milli_cpu_to_quota(0, 100_000), None);
    assert_eq!(milli_cpu_to_quota(5, 100_000), Some(1000));
    assert_eq!(milli_cpu_to_quota(10, 100_000), Some(1000));
    assert_eq!(milli_cpu_to_quota(250, 100_000), Some(25_000));
    assert_eq!(milli_cpu_to_quota(2210, 100_000), Some(221_000));
    assert_eq!(milli_cpu_to_quota(1000, 50_000), Some(50_000));
    assert_eq!(milli_cpu_to_quota(i64::MAX, u64::MAX), Some(i64::MAX));
}

#[test]
fn cg3_cfs_quota_disabled_writes_minus_one() {
    let g = spec(r#"containers: [{name: app, resources: {limits: {cpu: "1", memory: 1Gi}}}]"#);
    let cfg = CgroupConfig {
        cfs_quota_enabled: false,
        ..CgroupConfig::default()
    };
    let v = pod_cgroup_values(&g, &cfg);
    assert_eq!(v.cpu_quota_us, Some(-1));
    assert_eq!(v.cpu_max(), "max 100000");
    // Burstable without declared cpu limits stays unset; BestEffort never gets a quota.
    let b = spec(r#"containers: [{name: a, resources: {limits: {cpu: "1"}}}, {name: b}]"#);
    assert_eq!(pod_cgroup_values(&b, &cfg).cpu_quota_us, None);
    let be = spec("containers: [{name: app}]");
    assert_eq!(pod_cgroup_values(&be, &cfg).cpu_quota_us, None);
}

#[test]
fn cg3_custom_period_scales_quota() {
    let g = spec(r#"containers: [{name: app, resources: {limits: {cpu: 1500m, memory: 1Gi}}}]"#);
    let cfg = CgroupConfig {
        cpu_period_us: 50_000,
        ..CgroupConfig::default()
    };
    let v = pod_cgroup_values(&g, &cfg);
    assert_eq!(v.cpu_quota_us, Some(75_000));
    assert_eq!(v.cpu_max(), "75000 50000");
}

// --- CG4 ---------------------------------------------------------------------------------------

#[test]
fn cg4_memory_limit_includes_overhead_and_follows_qos() {
    let g = spec(
        r#"
overhead: {cpu: 100m, memory: 64Mi}
containers: [{name: app, resources: {limits: {cpu: "1", memory: 1Gi}}}]
"#,
    );
    let v = pod_cgroup_values(&g, &CgroupConfig::default());
    assert_eq!(v.memory_limit_bytes, Some(1_140_850_688));
    assert_eq!(v.memory_max(), "1140850688");
    let be = spec("containers: [{name: app}]");
    assert_eq!(
        pod_cgroup_values(&be, &CgroupConfig::default()).memory_limit_bytes,
        None
    );
}

// --- CG5 ---------------------------------------------------------------------------------------

#[test]
fn cg5_weight_formulas_fixed_points() {
    assert_eq!(cpu_weight_linear(2), 1);
    assert_eq!(cpu_weight_linear(1024), 39);
    assert_eq!(cpu_weight_linear(262_144), 10_000);
    assert_eq!(cpu_weight_quadratic(2), 1);
    assert_eq!(cpu_weight_quadratic(1024), 100);
    assert_eq!(cpu_weight_quadratic(262_144), 10_000);
    // Out-of-range shares are clamped.
    assert_eq!(cpu_weight_linear(0), 1);
    assert_eq!(cpu_weight_linear(u64::MAX), 10_000);
    assert_eq!(cpu_weight_quadratic(0), 1);
    assert_eq!(cpu_weight_quadratic(u64::MAX), 10_000);
    assert_eq!(WeightFormula::default(), WeightFormula::Quadratic);
}

#[test]
fn cg5_weight_formulas_are_monotone_and_in_range() {
    let (mut last_l, mut last_q) = (0, 0);
    for s in 2..=262_144u64 {
        let (l, q) = (cpu_weight_linear(s), cpu_weight_quadratic(s));
        assert!(
            (1..=10_000).contains(&l) && (1..=10_000).contains(&q),
            "shares {s}"
        );
        assert!(l >= last_l && q >= last_q, "shares {s}");
        (last_l, last_q) = (l, q);
    }
}

#[test]
fn cg5_cgroup_v2_file_contents() {
    let s = spec(WORKED_EXAMPLE);
    let v = pod_cgroup_values(
        &s,
        &CgroupConfig {
            weight_formula: WeightFormula::Linear,
            ..CgroupConfig::default()
        },
    );
    assert_eq!(v.cpu_weight, 44);
    assert_eq!(v.cpu_max(), "221000 100000");
    assert_eq!(v.memory_max(), "1895825408");
    assert_eq!(
        pod_cgroup_values(&s, &CgroupConfig::default()).cpu_weight,
        109
    );
}

// --- CG6 ---------------------------------------------------------------------------------------

#[test]
fn cg6_container_values() {
    let raw: PodSpec = serde_yaml_ng::from_str(
        r#"
containers:
  - {name: lim, resources: {limits: {cpu: 500m, memory: 256Mi}}}
  - {name: req, resources: {requests: {cpu: 250m}}}
  - {name: none}
"#,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let cfg = CgroupConfig::default();
    // Shares fall back to the limit when the request is absent (even without defaulting).
    let lim = container_cgroup_values(&raw.containers[0], &cfg);
    assert_eq!(
        (lim.cpu_shares, lim.cpu_quota_us, lim.memory_limit_bytes),
        (512, Some(50_000), Some(268_435_456))
    );
    assert_eq!(lim.cpu_weight, cpu_weight_quadratic(512));
    let req = container_cgroup_values(&raw.containers[1], &cfg);
    assert_eq!(
        (req.cpu_shares, req.cpu_quota_us, req.memory_limit_bytes),
        (256, None, None)
    );
    let none = container_cgroup_values(&raw.containers[2], &cfg);
    assert_eq!(
        (none.cpu_shares, none.cpu_max(), none.memory_max()),
        (2, "max 100000".to_string(), "max".to_string())
    );
}

// --- CG9 ---------------------------------------------------------------------------------------

#[test]
fn cg9_app_without_limit_undeclares() {
    let s = spec(
        r#"
containers:
  - {name: a, resources: {limits: {cpu: "1", memory: 1Gi}}}
  - {name: b, resources: {limits: {memory: 1Gi}}}
"#,
    );
    assert_eq!(
        limits_declared(&s),
        LimitsDeclared {
            cpu: false,
            memory: true
        }
    );
    let v = pod_cgroup_values(&s, &CgroupConfig::default());
    assert_eq!(v.cpu_quota_us, None);
    assert_eq!(v.memory_limit_bytes, Some(2 * GI));
}

#[test]
fn cg9_regular_init_without_limit_undeclares_unless_an_earlier_sidecar_has_one() {
    let without = spec(
        r#"
initContainers:
  - {name: i, resources: {requests: {cpu: 100m}}}
containers:
  - {name: a, resources: {limits: {cpu: "1", memory: 1Gi}}}
"#,
    );
    assert_eq!(
        limits_declared(&without),
        LimitsDeclared {
            cpu: false,
            memory: false
        }
    );
    let with_sidecar = spec(
        r#"
initContainers:
  - {name: s, restartPolicy: Always, resources: {limits: {cpu: 100m, memory: 64Mi}}}
  - {name: i, resources: {requests: {cpu: 100m}}}
containers:
  - {name: a, resources: {limits: {cpu: "1", memory: 1Gi}}}
"#,
    );
    assert_eq!(
        limits_declared(&with_sidecar),
        LimitsDeclared {
            cpu: true,
            memory: true
        }
    );
}

// --- Properties --------------------------------------------------------------------------------

fn quantity() -> impl Strategy<Value = String> {
    prop_oneof![
        (0u32..4000).prop_map(|n| format!("{n}m")),
        (0u32..64).prop_map(|n| n.to_string()),
        (0u32..4096).prop_map(|n| format!("{n}Mi")),
        (0u32..8).prop_map(|n| format!("{n}Gi")),
        (0u32..2000).prop_map(|n| format!("{n}k")),
        (0u32..100).prop_map(|n| format!("0.{n:02}")),
        Just("1e3".to_string()),
        Just("12345678901234567890".to_string()),
    ]
}

fn list() -> impl Strategy<Value = Option<String>> {
    proptest::option::of(
        (
            proptest::option::of(quantity()),
            proptest::option::of(quantity()),
            proptest::option::of(quantity()),
        )
            .prop_map(|(cpu, mem, eph)| {
                let mut parts = Vec::new();
                if let Some(c) = cpu {
                    parts.push(format!("cpu: \"{c}\""));
                }
                if let Some(m) = mem {
                    parts.push(format!("memory: \"{m}\""));
                }
                if let Some(e) = eph {
                    parts.push(format!("ephemeral-storage: \"{e}\""));
                }
                format!("{{{}}}", parts.join(", "))
            }),
    )
}

fn container(name: String, sidecar: bool) -> impl Strategy<Value = String> {
    (list(), list()).prop_map(move |(req, lim)| {
        let mut res = Vec::new();
        if let Some(r) = req {
            res.push(format!("requests: {r}"));
        }
        if let Some(l) = lim {
            res.push(format!("limits: {l}"));
        }
        let policy = if sidecar {
            ", restartPolicy: Always"
        } else {
            ""
        };
        format!(
            "  - {{name: {name}{policy}, resources: {{{}}}}}\n",
            res.join(", ")
        )
    })
}

fn pod_yaml() -> impl Strategy<Value = String> {
    let apps = (1usize..4).prop_flat_map(|n| {
        (0..n)
            .map(|i| container(format!("app{i}"), false))
            .collect::<Vec<_>>()
    });
    let inits = proptest::collection::vec(any::<bool>(), 0..4).prop_flat_map(|kinds| {
        kinds
            .into_iter()
            .enumerate()
            .map(|(i, sidecar)| container(format!("init{i}"), sidecar))
            .collect::<Vec<_>>()
    });
    (apps, inits, list()).prop_map(|(apps, inits, overhead)| {
        let mut y = String::new();
        if let Some(o) = overhead {
            y.push_str(&format!("overhead: {o}\n"));
        }
        if !inits.is_empty() {
            y.push_str("initContainers:\n");
            y.extend(inits);
        }
        y.push_str("containers:\n");
        y.extend(apps);
        y
    })
}

proptest! {
    #[test]
    fn prop_random_pods_never_panic_and_cover_every_app_request(yaml in pod_yaml()) {
        let s = spec(&yaml);
        let reqs = pod_requests(&s, Overhead::Include);
        let reqs_without = pod_requests(&s, Overhead::Exclude);
        let lims = pod_limits(&s, Overhead::Include);
        let _ = pod_limits(&s, Overhead::Exclude);
        let _ = qos_class(&s);
        let cfg = CgroupConfig::default();
        let v = pod_cgroup_values(&s, &cfg);
        prop_assert!((2..=262_144).contains(&v.cpu_shares));
        prop_assert!((1..=10_000).contains(&v.cpu_weight));
        let _ = pod_cgroup_values(&s, &CgroupConfig { cfs_quota_enabled: false, cpu_period_us: 0, weight_formula: WeightFormula::Linear });
        let _ = serde_json::to_string(&summary_wide(&s, &cfg));
        for c in s.containers.iter().chain(s.init_containers.iter().flatten()) {
            let adj = oom_score_adj(&s, &c.name, 8 * GI);
            prop_assert!(adj == -997 || adj == 1000 || (3..=999).contains(&adj), "{adj}");
            let _ = container_cgroup_values(c, &cfg);
            for (name, q) in c.resources.as_ref().and_then(|r| r.requests.as_ref()).into_iter().flatten() {
                let Ok(q) = Quantity::parse(&q.0) else { continue };
                let total = reqs_without.get(name);
                prop_assert!(total.is_some_and(|t| *t >= q), "{name}: {q} > {total:?}\n{yaml}");
            }
        }
        for (name, q) in &reqs_without {
            prop_assert!(reqs.get(name).is_some_and(|with| with >= q));
        }
        for (name, q) in &lims {
            prop_assert!(!q.is_negative(), "{name}");
        }
    }
}
