//! Every case of `shared/spec/resource-vectors.yaml` (RES1–RES6, CG2–CG5, CG9), read where it
//! lies: `<repo>/../shared/spec`, or `$SKIFF_SPEC_DIR` when set.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use k8s_openapi::api::core::v1::{Pod, PodSpec};
use serde::Deserialize;
use serde_yaml_ng::Value;
use skiff_model::defaults::default_pod;
use skiff_model::resources::{
    canonical, cpu_weight_linear, cpu_weight_quadratic, limits_declared, pod_cgroup_values,
    pod_limits, pod_requests, qos_class, CgroupConfig, LimitsDeclared, Overhead, ResourceList,
    WeightFormula,
};

const EXPECTED_CASES: usize = 46;
const VERSION_DEPENDENT: &str = "VERSION_DEPENDENT";

fn vectors_path() -> PathBuf {
    match std::env::var_os("SKIFF_SPEC_DIR") {
        Some(dir) => PathBuf::from(dir).join("resource-vectors.yaml"),
        None => PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/spec/resource-vectors.yaml"
        )),
    }
}

#[derive(Deserialize)]
struct Vectors {
    schema: u32,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    pod: Value,
    expected: Expected,
    #[serde(default)]
    expected_function_without_defaulting: Option<Expected>,
    #[serde(default)]
    expected_excluding_overhead: Option<Expected>,
    #[serde(rename = "podCgroup")]
    pod_cgroup: PodCgroup,
}

#[derive(Deserialize)]
struct Expected {
    requests: BTreeMap<String, String>,
    limits: BTreeMap<String, String>,
    #[serde(rename = "qosClass", default)]
    qos_class: Option<String>,
    #[serde(default)]
    numeric: Option<Numeric>,
}

#[derive(Deserialize)]
struct Numeric {
    requests: BTreeMap<String, i64>,
    limits: BTreeMap<String, i64>,
}

#[derive(Deserialize)]
struct PodCgroup {
    cpu_shares: u64,
    cpu_quota_us: Value,
    memory_limit_bytes: Value,
    cpu_period_us: u64,
    cpu_weight_v2_linear: u64,
    cpu_weight_v2_quadratic: u64,
}

fn load() -> Vectors {
    let path = vectors_path();
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "resource vectors not found at {} ({e}); clone the spec beside the repo or set SKIFF_SPEC_DIR",
            path.display()
        )
    });
    serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn spec_of(case: &Case) -> PodSpec {
    serde_yaml_ng::from_value(case.pod.clone())
        .unwrap_or_else(|e| panic!("{}: pod does not decode: {e}", case.name))
}

fn defaulted(spec: &PodSpec) -> PodSpec {
    let mut pod = Pod {
        spec: Some(spec.clone()),
        ..Pod::default()
    };
    default_pod(&mut pod);
    pod.spec.unwrap_or_default()
}

/// Collects mismatches of one case.
struct Check<'a> {
    case: &'a str,
    failures: Vec<String>,
}

impl Check<'_> {
    fn eq<T: PartialEq + std::fmt::Debug>(&mut self, what: &str, got: T, want: T) {
        if got != want {
            self.failures.push(format!(
                "[{}] {what}:\n      want {want:?}\n       got {got:?}",
                self.case
            ));
        }
    }
}

/// `cpu_millis` → (`cpu`, milli), `ephemeral_storage_bytes` → (`ephemeral-storage`, units).
fn numeric_key(key: &str) -> (String, bool) {
    if let Some(name) = key.strip_suffix("_millis") {
        (name.replace('_', "-"), true)
    } else if let Some(name) = key.strip_suffix("_bytes") {
        (name.replace('_', "-"), false)
    } else {
        panic!("unknown numeric key {key}")
    }
}

fn check_numeric(
    check: &mut Check<'_>,
    what: &str,
    got: &ResourceList,
    want: &BTreeMap<String, i64>,
) {
    let mut got_numeric = BTreeMap::new();
    for key in want.keys() {
        let (name, milli) = numeric_key(key);
        let value = got
            .get(&name)
            .map(|q| if milli { q.milli_value() } else { q.value() });
        got_numeric.insert(key.clone(), value);
    }
    let want_numeric: BTreeMap<String, Option<i64>> =
        want.iter().map(|(k, v)| (k.clone(), Some(*v))).collect();
    check.eq(what, got_numeric, want_numeric);
    check.eq(&format!("{what} (resource count)"), got.len(), want.len());
}

/// `null` → None, integer → Some, `VERSION_DEPENDENT` → skip.
fn optional(value: &Value) -> Option<Option<i64>> {
    match value {
        Value::Null => Some(None),
        Value::String(s) if s == VERSION_DEPENDENT => None,
        other => Some(Some(
            other
                .as_i64()
                .unwrap_or_else(|| panic!("bad cgroup value {other:?}")),
        )),
    }
}

fn run_case(case: &Case) -> Vec<String> {
    let mut check = Check {
        case: &case.name,
        failures: Vec::new(),
    };
    let raw = spec_of(case);
    let spec = defaulted(&raw);

    let requests = pod_requests(&spec, Overhead::Include);
    let limits = pod_limits(&spec, Overhead::Include);
    check.eq(
        "requests",
        canonical(&requests),
        case.expected.requests.clone(),
    );
    check.eq("limits", canonical(&limits), case.expected.limits.clone());
    check.eq(
        "qosClass",
        Some(qos_class(&spec).as_str().to_string()),
        case.expected.qos_class.clone(),
    );
    match &case.expected.numeric {
        Some(n) => {
            check_numeric(&mut check, "numeric requests", &requests, &n.requests);
            check_numeric(&mut check, "numeric limits", &limits, &n.limits);
        }
        None => check
            .failures
            .push(format!("[{}] vector has no numeric values", case.name)),
    }

    if let Some(ex) = &case.expected_excluding_overhead {
        check.eq(
            "requests excluding overhead",
            canonical(&pod_requests(&spec, Overhead::Exclude)),
            ex.requests.clone(),
        );
        check.eq(
            "limits excluding overhead",
            canonical(&pod_limits(&spec, Overhead::Exclude)),
            ex.limits.clone(),
        );
    }
    if let Some(raw_expected) = &case.expected_function_without_defaulting {
        check.eq(
            "requests without defaulting",
            canonical(&pod_requests(&raw, Overhead::Include)),
            raw_expected.requests.clone(),
        );
        check.eq(
            "limits without defaulting",
            canonical(&pod_limits(&raw, Overhead::Include)),
            raw_expected.limits.clone(),
        );
        if let Some(q) = &raw_expected.qos_class {
            check.eq(
                "qosClass without defaulting",
                qos_class(&raw).as_str().to_string(),
                q.clone(),
            );
        }
    }

    let want = &case.pod_cgroup;
    for formula in [WeightFormula::Linear, WeightFormula::Quadratic] {
        let cfg = CgroupConfig {
            weight_formula: formula,
            ..CgroupConfig::default()
        };
        let got = pod_cgroup_values(&spec, &cfg);
        check.eq("podCgroup.cpu_shares", got.cpu_shares, want.cpu_shares);
        check.eq(
            "podCgroup.cpu_period_us",
            got.cpu_period_us,
            want.cpu_period_us,
        );
        if let Some(quota) = optional(&want.cpu_quota_us) {
            check.eq("podCgroup.cpu_quota_us", got.cpu_quota_us, quota);
        }
        if let Some(memory) = optional(&want.memory_limit_bytes) {
            check.eq(
                "podCgroup.memory_limit_bytes",
                got.memory_limit_bytes,
                memory,
            );
        }
        let want_weight = match formula {
            WeightFormula::Linear => want.cpu_weight_v2_linear,
            WeightFormula::Quadratic => want.cpu_weight_v2_quadratic,
        };
        check.eq(
            &format!("podCgroup.cpu_weight ({formula:?})"),
            got.cpu_weight,
            want_weight,
        );
    }
    check.eq(
        "cpu_weight_v2_linear",
        cpu_weight_linear(want.cpu_shares),
        want.cpu_weight_v2_linear,
    );
    check.eq(
        "cpu_weight_v2_quadratic",
        cpu_weight_quadratic(want.cpu_shares),
        want.cpu_weight_v2_quadratic,
    );
    check.failures
}

#[test]
fn all_resource_vectors() {
    let vectors = load();
    assert_eq!(vectors.schema, 1, "unknown vector schema");
    let mut failures = Vec::new();
    let mut run = 0;
    for case in &vectors.cases {
        failures.extend(run_case(case));
        run += 1;
    }
    let mut report = String::new();
    for f in &failures {
        let _ = writeln!(report, "  {f}");
    }
    assert!(
        failures.is_empty(),
        "{} mismatches in resource vectors:\n{report}",
        failures.len()
    );
    assert_eq!(
        run, EXPECTED_CASES,
        "expected {EXPECTED_CASES} resource vectors, ran {run}"
    );
}

fn case_spec(name: &str) -> PodSpec {
    let vectors = load();
    let case = vectors
        .cases
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no vector named {name}"));
    defaulted(&spec_of(case))
}

/// CG9, 1.28+ rule, for cases the vectors mark VERSION_DEPENDENT: a sidecar (or regular init)
/// without limits makes the cumulative init limit zero, so nothing is declared and the
/// Burstable pod cgroup gets neither a quota nor a memory limit.
#[test]
fn cg9_version_dependent_cases_follow_1_28_rule() {
    let cfg = CgroupConfig::default();
    for name in [
        "sidecar-without-limits-makes-burstable",
        "sidecar-with-no-resources-in-guaranteed-pod",
        "regular-init-without-limits-makes-burstable",
        "init-without-limit-pod-limit-below-request",
        "up-one-limited-one-unlimited-init",
    ] {
        let spec = case_spec(name);
        assert_eq!(
            limits_declared(&spec),
            LimitsDeclared {
                cpu: false,
                memory: false
            },
            "{name}"
        );
        let v = pod_cgroup_values(&spec, &cfg);
        assert_eq!(v.cpu_quota_us, None, "{name}");
        assert_eq!(v.memory_limit_bytes, None, "{name}");
        assert_eq!(v.cpu_max(), "max 100000", "{name}");
        assert_eq!(v.memory_max(), "max", "{name}");
    }
}

/// The worked example: `logs` has no limits, but the cumulative sidecar limit (istio's) is
/// non-zero, so limits stay declared on 1.28+.
#[test]
fn cg9_worked_example_cumulative_sidecar_limit_counts() {
    let spec = case_spec("worked-example-spec");
    assert_eq!(
        limits_declared(&spec),
        LimitsDeclared {
            cpu: true,
            memory: true
        }
    );
    let v = pod_cgroup_values(&spec, &CgroupConfig::default());
    assert_eq!(v.cpu_max(), "221000 100000");
    assert_eq!(v.memory_max(), "1895825408");
}
