//! Kinds beside Pod: workloads whose pod template skiff runs as one pod (as `podman kube
//! play` does), and the other kinds a cluster serves built in, which skiff decodes strictly
//! (a malformed Service is refused by a cluster too) and then skips.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::Resource;
use serde_json::Value;

use crate::field::{go_quote, BadValue, ErrorList, FieldError, Path};

/// A workload: its pod template is what skiff runs.
#[derive(Clone, Debug, PartialEq)]
pub struct Workload {
    /// `Deployment`, `Job`, …
    pub kind: &'static str,
    pub api_version: &'static str,
    pub name: String,
    pub namespace: Option<String>,
    /// How many pods a cluster would run when more than one (`replicas: 3`), for the line
    /// that says skiff runs one.
    pub scale: Option<String>,
    /// The object as decoded (k8s-openapi's rendering of it).
    pub object: Value,
    template: PodTemplateSpec,
    /// Where the template is: `spec.template`, `spec.jobTemplate.spec.template`.
    template_path: &'static [&'static str],
    rules: Rules,
}

/// What the API server checks of a workload beyond its pod template.
#[derive(Clone, Debug, PartialEq)]
enum Rules {
    /// apps/v1: a selector is required and must select the template's labels; the pod
    /// restarts Always; replicas (if any) non-negative.
    Apps {
        selector: Option<LabelSelector>,
        replicas: Option<i32>,
    },
    /// core/v1 ReplicationController: a selector map (defaulted from the labels), Always.
    Controller {
        selector: Option<BTreeMap<String, String>>,
        replicas: Option<i32>,
    },
    /// batch/v1: the pod restarts OnFailure or Never (the selector is generated).
    Batch,
}

impl Workload {
    /// `deployment/web`, as kubectl names objects.
    pub fn reference(&self) -> String {
        format!("{}/{}", self.kind.to_lowercase(), self.name)
    }

    /// The pod a cluster would make from the template, named after the workload (kubelet's
    /// pods are named `web-<hash>`; skiff runs one, so the workload's name is the pod's):
    /// the template's labels and annotations, the workload's namespace.
    pub fn pod(&self) -> Pod {
        let meta = self.template.metadata.clone().unwrap_or_default();
        Pod {
            metadata: ObjectMeta {
                name: Some(self.name.clone()),
                namespace: self.namespace.clone(),
                labels: meta.labels,
                annotations: meta.annotations,
                ..ObjectMeta::default()
            },
            spec: self.template.spec.clone(),
            status: None,
        }
    }

    /// Defaults and validates the pod as the API server validates the workload: the pod
    /// template's errors under the template's path (`spec.template.spec.containers[0]…`), plus
    /// the workload's own rules (selector, restartPolicy, replicas). The defaulted pod, or the
    /// errors as `The Deployment "web" is invalid` would list them.
    pub fn prepare(&self) -> Result<Pod, super::ObjectInvalid> {
        if self.kind == "Job" && self.api_version == "batch/v1" {
            return self.prepare_job();
        }
        let template = self
            .template_path
            .iter()
            .fold(Path::default(), |p, c| p.child(c));
        let mut errors = ErrorList::new();
        let (pod, pod_errors) = match crate::prepare_pod(self.pod()) {
            Ok(p) => (Some(p), Vec::new()),
            Err(invalid) => (None, invalid.errors),
        };
        // The pod's own metadata.name/namespace are the workload's: those stay unprefixed.
        let (meta, template_errors): (Vec<_>, Vec<_>) = pod_errors
            .into_iter()
            .partition(|e| e.field.starts_with("metadata.name"));
        errors.extend(meta);
        match &self.rules {
            Rules::Apps { selector, replicas } => {
                check_replicas(*replicas, &mut errors);
                match selector {
                    None => errors.push(FieldError::required(&Path::new("spec").child("selector"), "")),
                    Some(s) if s.match_labels.as_ref().is_none_or(BTreeMap::is_empty)
                        && s.match_expressions.as_ref().is_none_or(Vec::is_empty) =>
                    {
                        errors.push(FieldError::invalid(
                            &Path::new("spec").child("selector"),
                            BadValue::Raw(
                                "&v1.LabelSelector{MatchLabels:map[string]string(nil), MatchExpressions:[]v1.LabelSelectorRequirement(nil)}".into(),
                            ),
                            format!("empty selector is invalid for {}", self.kind.to_lowercase()),
                        ))
                    }
                    Some(s) => {
                        if !selects(s, self.labels()) {
                            errors.push(self.labels_mismatch(&template));
                        }
                    }
                }
            }
            Rules::Controller { selector, replicas } => {
                check_replicas(*replicas, &mut errors);
                // An RC's selector defaults to the template's labels.
                if let Some(sel) = selector.as_ref().filter(|s| !s.is_empty()) {
                    let labels = self.labels();
                    if !sel
                        .iter()
                        .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
                    {
                        errors.push(self.labels_mismatch(&template));
                    }
                }
            }
            Rules::Batch => {}
        }
        errors.extend(template_errors.into_iter().map(|mut e| {
            e.field = format!("{template}.{}", e.field);
            e
        }));
        // The template's restartPolicy after defaulting (empty becomes Always).
        let policy = pod
            .as_ref()
            .and_then(|p| p.spec.as_ref())
            .and_then(|s| s.restart_policy.clone())
            .or_else(|| {
                self.template
                    .spec
                    .as_ref()
                    .and_then(|s| s.restart_policy.clone())
            })
            .unwrap_or_else(|| "Always".into());
        let policy_path = template.child("spec").child("restartPolicy");
        match self.rules {
            Rules::Batch if policy != "OnFailure" && policy != "Never" => errors.push(
                FieldError::not_supported(&policy_path, policy.as_str(), &["OnFailure", "Never"]),
            ),
            Rules::Apps { .. } | Rules::Controller { .. } if policy != "Always" => errors.push(
                FieldError::not_supported(&policy_path, policy.as_str(), &["Always"]),
            ),
            _ => {}
        }
        match pod {
            Some(p) if errors.is_empty() => Ok(p),
            _ => Err(super::ObjectInvalid {
                kind: self.kind.to_string(),
                name: self.name.clone(),
                errors,
            }),
        }
    }

    /// A Job is checked as kube-apiserver checks it on create (`workloads::job`: defaults,
    /// the generated selector with a stand-in uid, `ValidateJob`); the pod is its defaulted
    /// template. `skiff run` runs the Job through its controller (the pods are made then).
    fn prepare_job(&self) -> Result<Pod, super::ObjectInvalid> {
        use crate::workloads::job;
        let invalid = |errors| super::ObjectInvalid {
            kind: self.kind.to_string(),
            name: self.name.clone(),
            errors,
        };
        let mut j: k8s_openapi::api::batch::v1::Job = serde_json::from_value(self.object.clone())
            .map_err(|e| {
            invalid(vec![FieldError::internal(
                &Path::new("spec"),
                e.to_string(),
            )])
        })?;
        job::default_job(&mut j);
        job::prepare_for_create(&mut j);
        // The API server assigns the uid before validating; any stand-in will do here.
        j.metadata.uid = Some("00000000-0000-0000-0000-000000000000".into());
        job::generate_selector(&mut j);
        let errors = job::validate_job(&j);
        if !errors.is_empty() {
            return Err(invalid(errors));
        }
        let template = j.spec.map(|s| s.template).unwrap_or_default();
        let meta = template.metadata.unwrap_or_default();
        Ok(Pod {
            metadata: ObjectMeta {
                name: Some(self.name.clone()),
                namespace: self.namespace.clone(),
                labels: meta.labels,
                annotations: meta.annotations,
                ..ObjectMeta::default()
            },
            spec: template.spec,
            status: None,
        })
    }

    /// The object with its pod template's spec replaced by `pod`'s (the defaulted one), as
    /// the API server stores the workload's template (workload-level fields are printed as
    /// given: skiff does not default Deployments).
    pub fn with_template(&self, pod: &Pod) -> Value {
        let mut object = self.object.clone();
        let mut at = &mut object;
        for key in self.template_path {
            at = child(at, key);
        }
        if let Ok(spec) = serde_json::to_value(&pod.spec) {
            *child(at, "spec") = spec;
        }
        object
    }

    fn labels(&self) -> Option<&BTreeMap<String, String>> {
        self.template
            .metadata
            .as_ref()
            .and_then(|m| m.labels.as_ref())
    }

    fn labels_mismatch(&self, template: &Path) -> FieldError {
        let labels: Vec<String> = self
            .labels()
            .into_iter()
            .flatten()
            .map(|(k, v)| format!("{}:{}", go_quote(k), go_quote(v)))
            .collect();
        let value = if self.labels().is_none() {
            "map[string]string(nil)".to_string()
        } else {
            format!("map[string]string{{{}}}", labels.join(", "))
        };
        FieldError::invalid(
            &template.child("metadata").child("labels"),
            BadValue::Raw(value),
            "`selector` does not match template `labels`",
        )
    }
}

/// `v[key]`, making `v` an object first if it is not one.
fn child<'v>(v: &'v mut Value, key: &str) -> &'v mut Value {
    if !v.is_object() {
        *v = Value::Object(serde_json::Map::new());
    }
    match v {
        Value::Object(m) => m.entry(key.to_string()).or_insert(Value::Null),
        other => other,
    }
}

fn check_replicas(replicas: Option<i32>, errors: &mut ErrorList) {
    if let Some(r) = replicas.filter(|r| *r < 0) {
        errors.push(FieldError::invalid(
            &Path::new("spec").child("replicas"),
            r,
            "must be greater than or equal to 0",
        ));
    }
}

/// Whether a label selector selects `labels` (`metav1.LabelSelectorAsSelector` + `Matches`).
fn selects(s: &LabelSelector, labels: Option<&BTreeMap<String, String>>) -> bool {
    let get = |k: &str| labels.and_then(|l| l.get(k));
    let by_labels = s
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| get(k) == Some(v));
    let by_expressions = s.match_expressions.iter().flatten().all(|e| {
        let values = e.values.as_deref().unwrap_or_default();
        match e.operator.as_str() {
            "In" => get(&e.key).is_some_and(|v| values.contains(v)),
            "NotIn" => get(&e.key).is_none_or(|v| !values.contains(v)),
            "Exists" => get(&e.key).is_some(),
            "DoesNotExist" => get(&e.key).is_none(),
            _ => false,
        }
    });
    by_labels && by_expressions
}

/// An object a cluster accepts that skiff does not run.
#[derive(Clone, Debug, PartialEq)]
pub struct Skipped {
    pub kind: &'static str,
    pub api_version: &'static str,
    pub name: String,
    pub namespace: Option<String>,
    /// Namespaced kind (a Service) or cluster-scoped (a Namespace, a ClusterRole): `-n` applies
    /// only to the former, as in kubectl.
    pub namespaced: bool,
    pub object: Value,
}

impl Skipped {
    /// `service/web`, as kubectl names objects.
    pub fn reference(&self) -> String {
        format!("{}/{}", self.kind.to_lowercase(), self.name)
    }
}

/// What a document of a known kind other than Pod, ConfigMap and Secret decoded into.
pub enum Decoded {
    Workload(Box<Workload>),
    Skipped(Box<Skipped>),
}

/// Strict decoding, provided by the loader (records errors, returns the object if clean).
pub trait Strict {
    fn decode<T: serde::de::DeserializeOwned>(&mut self, json: Value) -> Option<T>;
}

fn meta_of(m: &ObjectMeta) -> (String, Option<String>) {
    (m.name.clone().unwrap_or_default(), m.namespace.clone())
}

fn more_than_one(what: &str, n: Option<i32>) -> Option<String> {
    n.filter(|n| *n > 1).map(|n| format!("{what}: {n}"))
}

macro_rules! skipped_kinds {
    ($($t:ty),* $(,)?) => {
        /// The built-in kinds skiff skips, each decoded strictly with its k8s-openapi type.
        fn decode_skipped(api_version: &str, kind: &str, json: Value, strict: &mut impl Strict) -> Option<Option<Decoded>> {
            $(
                if api_version == <$t as Resource>::API_VERSION && kind == <$t as Resource>::KIND {
                    return Some(strict.decode::<$t>(json).map(|obj| {
                        let (name, namespace) = meta_of(&obj.metadata);
                        Decoded::Skipped(Box::new(Skipped {
                            kind: <$t as Resource>::KIND,
                            api_version: <$t as Resource>::API_VERSION,
                            name,
                            namespace,
                            namespaced: std::any::TypeId::of::<<$t as Resource>::Scope>()
                                == std::any::TypeId::of::<k8s_openapi::NamespaceResourceScope>(),
                            object: serde_json::to_value(&obj).unwrap_or(Value::Null),
                        }))
                    }));
                }
            )*
            None
        }
    };
}

// Kinds every cluster of this API version serves, stable (v1) API groups only.
skipped_kinds!(
    k8s_openapi::api::core::v1::Service,
    k8s_openapi::api::core::v1::ServiceAccount,
    k8s_openapi::api::core::v1::PersistentVolumeClaim,
    k8s_openapi::api::core::v1::PersistentVolume,
    k8s_openapi::api::core::v1::Namespace,
    k8s_openapi::api::core::v1::Endpoints,
    k8s_openapi::api::core::v1::LimitRange,
    k8s_openapi::api::core::v1::ResourceQuota,
    k8s_openapi::api::core::v1::PodTemplate,
    k8s_openapi::api::core::v1::Event,
    k8s_openapi::api::core::v1::Node,
    k8s_openapi::api::networking::v1::Ingress,
    k8s_openapi::api::networking::v1::IngressClass,
    k8s_openapi::api::networking::v1::NetworkPolicy,
    k8s_openapi::api::rbac::v1::Role,
    k8s_openapi::api::rbac::v1::RoleBinding,
    k8s_openapi::api::rbac::v1::ClusterRole,
    k8s_openapi::api::rbac::v1::ClusterRoleBinding,
    k8s_openapi::api::policy::v1::PodDisruptionBudget,
    k8s_openapi::api::autoscaling::v1::HorizontalPodAutoscaler,
    k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler,
    k8s_openapi::api::scheduling::v1::PriorityClass,
    k8s_openapi::api::storage::v1::StorageClass,
    k8s_openapi::api::storage::v1::CSIDriver,
    k8s_openapi::api::storage::v1::CSINode,
    k8s_openapi::api::storage::v1::VolumeAttachment,
    k8s_openapi::api::discovery::v1::EndpointSlice,
    k8s_openapi::api::coordination::v1::Lease,
    k8s_openapi::api::node::v1::RuntimeClass,
    k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration,
    k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration,
    k8s_openapi::api::admissionregistration::v1::ValidatingAdmissionPolicy,
    k8s_openapi::api::admissionregistration::v1::ValidatingAdmissionPolicyBinding,
    k8s_openapi::api::certificates::v1::CertificateSigningRequest,
    k8s_openapi::api::events::v1::Event,
    k8s_openapi::api::flowcontrol::v1::FlowSchema,
    k8s_openapi::api::flowcontrol::v1::PriorityLevelConfiguration,
    k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
    k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1::APIService,
);

// `Option::from(x.spec)`: whether a workload's `spec` is optional depends on the API version
// k8s-openapi is built for; the conversion is the identity for one of them.
#[allow(clippy::useless_conversion)]
/// Decodes a workload or skipped kind; `None` when skiff does not know the kind (an error
/// for the caller), `Some(None)` when decoding failed (errors recorded by `strict`).
pub fn decode(
    api_version: &str,
    kind: &str,
    json: Value,
    strict: &mut impl Strict,
) -> Option<Option<Decoded>> {
    use k8s_openapi::api::{apps::v1 as apps, batch::v1 as batch, core::v1 as core};
    const TEMPLATE: &[&str] = &["spec", "template"];
    let workload = |kind: &'static str,
                    api_version: &'static str,
                    meta: &ObjectMeta,
                    object: Value,
                    template: Option<PodTemplateSpec>,
                    template_path: &'static [&'static str],
                    scale: Option<String>,
                    rules: Rules| {
        let (name, namespace) = meta_of(meta);
        Decoded::Workload(Box::new(Workload {
            kind,
            api_version,
            name,
            namespace,
            scale,
            object,
            template: template.unwrap_or_default(),
            template_path,
            rules,
        }))
    };
    // Whether the JSON has `spec.selector` (k8s-openapi fills a missing selector with an
    // empty one; the API server tells the two apart).
    let has_selector = json
        .get("spec")
        .and_then(|s| s.get("selector"))
        .is_some_and(|s| !s.is_null());
    let is = |t_api: &str, t_kind: &str| api_version == t_api && kind == t_kind;
    macro_rules! decode_as {
        ($t:ty) => {{
            let obj: $t = match strict.decode::<$t>(json) {
                Some(o) => o,
                None => return Some(None),
            };
            let object = serde_json::to_value(&obj).unwrap_or(Value::Null);
            (obj, object)
        }};
    }
    macro_rules! kind_of {
        ($t:ty) => {
            (<$t as Resource>::API_VERSION, <$t as Resource>::KIND)
        };
    }
    // The apps/v1 kinds differ only in their types, whether the template is optional and
    // whether they scale by replicas.
    macro_rules! apps_workload {
        ($t:ty, $spec:ty, $s:ident => $template:expr, $replicas:expr) => {{
            let (av, k) = kind_of!($t);
            if is(av, k) {
                let (d, object) = decode_as!($t);
                let $s: $spec = Option::from(d.spec).unwrap_or_default();
                let replicas: Option<i32> = $replicas;
                let rules = Rules::Apps {
                    selector: has_selector.then_some($s.selector),
                    replicas,
                };
                return Some(Some(workload(
                    k,
                    av,
                    &d.metadata,
                    object,
                    $template,
                    TEMPLATE,
                    more_than_one("replicas", replicas),
                    rules,
                )));
            }
        }};
    }
    apps_workload!(apps::Deployment, apps::DeploymentSpec, spec => Some(spec.template), spec.replicas);
    apps_workload!(apps::ReplicaSet, apps::ReplicaSetSpec, spec => spec.template, spec.replicas);
    apps_workload!(apps::StatefulSet, apps::StatefulSetSpec, spec => Some(spec.template), spec.replicas);
    apps_workload!(apps::DaemonSet, apps::DaemonSetSpec, spec => Some(spec.template), None);
    let (av, k) = kind_of!(core::ReplicationController);
    if is(av, k) {
        let (d, object) = decode_as!(core::ReplicationController);
        let spec: core::ReplicationControllerSpec = Option::from(d.spec).unwrap_or_default();
        let rules = Rules::Controller {
            selector: spec.selector,
            replicas: spec.replicas,
        };
        return Some(Some(workload(
            k,
            av,
            &d.metadata,
            object,
            spec.template,
            TEMPLATE,
            more_than_one("replicas", spec.replicas),
            rules,
        )));
    }
    let (av, k) = kind_of!(batch::Job);
    if is(av, k) {
        let (d, object) = decode_as!(batch::Job);
        let spec: batch::JobSpec = Option::from(d.spec).unwrap_or_default();
        let scale = more_than_one("parallelism", spec.parallelism)
            .or_else(|| more_than_one("completions", spec.completions));
        return Some(Some(workload(
            k,
            av,
            &d.metadata,
            object,
            Some(spec.template),
            TEMPLATE,
            scale,
            Rules::Batch,
        )));
    }
    let (av, k) = kind_of!(batch::CronJob);
    if is(av, k) {
        let (d, object) = decode_as!(batch::CronJob);
        // `Option::from` whether the API version makes these fields optional or not.
        let cron: Option<batch::CronJobSpec> = Option::from(d.spec);
        let job: batch::JobSpec = cron
            .map(|s| s.job_template)
            .and_then(|t| Option::from(t.spec))
            .unwrap_or_default();
        let scale = more_than_one("parallelism", job.parallelism)
            .or_else(|| more_than_one("completions", job.completions));
        return Some(Some(workload(
            k,
            av,
            &d.metadata,
            object,
            Some(job.template),
            &["spec", "jobTemplate", "spec", "template"],
            scale,
            Rules::Batch,
        )));
    }
    decode_skipped(api_version, kind, json, strict)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_match_like_labels_selector_matches() {
        let labels: BTreeMap<String, String> = [("app".to_string(), "web".to_string())]
            .into_iter()
            .collect();
        let sel =
            |json: Value| -> LabelSelector { serde_json::from_value(json).unwrap_or_default() };
        assert!(selects(
            &sel(serde_json::json!({"matchLabels": {"app": "web"}})),
            Some(&labels)
        ));
        assert!(!selects(
            &sel(serde_json::json!({"matchLabels": {"app": "db"}})),
            Some(&labels)
        ));
        assert!(selects(
            &sel(
                serde_json::json!({"matchExpressions": [{"key": "app", "operator": "In", "values": ["web", "x"]}]})
            ),
            Some(&labels)
        ));
        assert!(!selects(
            &sel(serde_json::json!({"matchExpressions": [{"key": "tier", "operator": "Exists"}]})),
            Some(&labels)
        ));
        assert!(selects(
            &sel(
                serde_json::json!({"matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}]})
            ),
            None
        ));
    }
}
