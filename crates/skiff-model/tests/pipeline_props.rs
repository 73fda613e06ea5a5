//! Property tests over the whole model pipeline — load → default → validate → resources:
//! arbitrary bytes and arbitrary structurally valid pods never panic, and the pipeline is
//! deterministic and idempotent.

use proptest::prelude::*;
use serde_json::{json, Value};
use skiff_model::manifest::{self, Object};
use skiff_model::resources::{self, CgroupConfig};

/// Runs everything a CLI invocation would on `bytes`.
fn pipeline(bytes: &[u8]) -> Result<usize, usize> {
    match manifest::load("prop.yaml", bytes) {
        Err(errs) => {
            // Every error renders to a non-empty message.
            for e in &errs {
                assert!(!e.to_string().is_empty());
            }
            Err(errs.len())
        }
        Ok(objects) => {
            let mut valid = 0;
            for obj in objects {
                if let Object::Pod(pod) = obj {
                    match skiff_model::prepare_pod(*pod) {
                        Ok(p) => {
                            let spec = p.spec.clone().unwrap_or_default();
                            let _ = resources::summary_wide(&spec, &CgroupConfig::default());
                            for c in &spec.containers {
                                let _ = resources::oom_score_adj(&spec, &c.name, 16 << 30);
                            }
                            // Defaulting is idempotent: a prepared pod prepares to itself.
                            let again = skiff_model::prepare_pod(p.clone());
                            assert_eq!(again.as_ref().ok(), Some(&p));
                            valid += 1;
                        }
                        Err(invalid) => {
                            assert!(!invalid.errors.is_empty() && !invalid.to_string().is_empty())
                        }
                    }
                }
            }
            Ok(valid)
        }
    }
}

fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z]{1,8}",
        "[a-z0-9-]{0,12}",
        "[A-Za-z0-9_.-]{0,70}",
        Just(String::new()),
    ]
}

fn quantity() -> impl Strategy<Value = Value> {
    prop_oneof![
        "[0-9]{1,4}(m|Mi|Gi|Ki|k|M|G)?".prop_map(Value::from),
        "-?[0-9]{0,3}\\.?[0-9]{0,3}(e-?[0-9])?".prop_map(Value::from),
        (0u32..5000).prop_map(Value::from),
        Just(Value::from("abc")),
    ]
}

fn resources() -> impl Strategy<Value = Value> {
    let list = || {
        prop::collection::btree_map(
            prop::sample::select(vec![
                "cpu",
                "memory",
                "ephemeral-storage",
                "example.com/gpu",
                "hugepages-2Mi",
                "bogus",
            ]),
            quantity(),
            0..3,
        )
    };
    (prop::option::of(list()), prop::option::of(list())).prop_map(|(req, lim)| {
        let mut r = serde_json::Map::new();
        if let Some(req) = req {
            r.insert("requests".into(), json!(req));
        }
        if let Some(lim) = lim {
            r.insert("limits".into(), json!(lim));
        }
        Value::Object(r)
    })
}

fn probe() -> impl Strategy<Value = Value> {
    let handler = prop_oneof![
        Just(json!({"exec": {"command": ["true"]}})),
        Just(json!({"exec": {"command": []}})),
        (0i64..70000).prop_map(|p| json!({"tcpSocket": {"port": p}})),
        Just(json!({"httpGet": {"port": "http", "path": "/healthz"}})),
        Just(json!({"grpc": {"port": 9090}})),
        Just(json!({})),
        Just(json!({"exec": {"command": ["x"]}, "tcpSocket": {"port": 1}})),
    ];
    (
        handler,
        -2i32..5,
        -2i32..5,
        -2i32..40,
        prop::option::of(-1i64..40),
    )
        .prop_map(|(h, s, f, p, tg)| {
            let mut v = h;
            if let Value::Object(m) = &mut v {
                m.insert("successThreshold".into(), json!(s));
                m.insert("failureThreshold".into(), json!(f));
                m.insert("periodSeconds".into(), json!(p));
                if let Some(tg) = tg {
                    m.insert("terminationGracePeriodSeconds".into(), json!(tg));
                }
            }
            v
        })
}

fn container(init: bool) -> impl Strategy<Value = Value> {
    (
        name(),
        prop::option::of(prop_oneof![
            Just("busybox"),
            Just(" x"),
            Just("nginx:1.27"),
            Just("")
        ]),
        resources(),
        prop::option::of(prop_oneof![
            Just("Always"),
            Just("Never"),
            Just("OnFailure"),
            Just("")
        ]),
        prop::option::of(probe()),
        prop::option::of(probe()),
        prop::option::of(prop::collection::vec(
            (0i32..70000, prop::option::of(0i32..70000)),
            0..3,
        )),
    )
        .prop_map(move |(name, image, res, rp, startup, liveness, ports)| {
            let mut c = json!({"name": name, "resources": res});
            if let Some(i) = image {
                c["image"] = json!(i);
            }
            if let Some(rp) = rp {
                // Mostly sidecars for init containers, mostly nothing for apps.
                if init || rp.is_empty() {
                    c["restartPolicy"] = json!(rp);
                }
            }
            if let Some(p) = startup {
                c["startupProbe"] = p;
            }
            if let Some(p) = liveness {
                c["livenessProbe"] = p;
            }
            if let Some(ports) = ports {
                c["ports"] = Value::Array(
                    ports
                        .into_iter()
                        .map(|(cp, hp)| match hp {
                            Some(hp) => json!({"containerPort": cp, "hostPort": hp}),
                            None => json!({"containerPort": cp}),
                        })
                        .collect(),
                );
            }
            c
        })
}

fn pod() -> impl Strategy<Value = Value> {
    (
        name(),
        prop::collection::vec(container(true), 0..4),
        prop::collection::vec(container(false), 0..4),
        prop::option::of(prop_oneof![Just("Always"), Just("Never"), Just("OnFailure"), Just("Sometimes")]),
        prop::option::of(-5i64..100),
        prop::option::of(resources()),
        any::<bool>(),
    )
        .prop_map(|(name, inits, apps, rp, deadline, overhead, host_network)| {
            let mut spec = json!({"containers": apps, "initContainers": inits, "hostNetwork": host_network});
            if let Some(rp) = rp {
                spec["restartPolicy"] = json!(rp);
            }
            if let Some(d) = deadline {
                spec["activeDeadlineSeconds"] = json!(d);
            }
            if let Some(Value::Object(o)) = overhead {
                if let Some(r) = o.get("requests") {
                    spec["overhead"] = r.clone();
                }
            }
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec})
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, .. ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        let _ = pipeline(&bytes);
    }

    #[test]
    fn arbitrary_yaml_like_text_never_panics(
        text in prop::collection::vec(prop_oneof![
            Just("apiVersion: v1\n"), Just("kind: Pod\n"), Just("---\n"), Just("metadata:\n  name: x\n"),
            Just("spec:\n"), Just("  containers:\n"), Just("  - name: c\n"), Just("    image: i\n"),
            Just("    resources: {limits: {cpu: 1}}\n"), Just("  initContainers: []\n"), Just(": :\n"),
            Just("[{\n"), Just("\t"), Just("key: &a [*a]\n"), Just("!!binary x\n"), Just("? [a]\n: b\n"),
        ], 0..30)
    ) {
        let _ = pipeline(text.concat().as_bytes());
    }

    #[test]
    fn arbitrary_structurally_valid_pods_never_panic(pod in pod()) {
        let json = serde_json::to_vec(&pod).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let as_json = pipeline(&json);
        // The same pod written as YAML (by skiff's YAML 1.1-safe writer) gives the same outcome.
        let yaml = skiff_model::manifest::emit::to_yaml(&pod);
        prop_assert_eq!(pipeline(yaml.as_bytes()), as_json);
    }
}
