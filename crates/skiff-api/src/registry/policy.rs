//! Namespace policy at pod create (SEMANTICS A2–A4) and ResourceQuota status: the registry
//! side of `skiff_model::policy`. The namespace's LimitRanges and ResourceQuotas are read
//! from the store (`limitranges`, `resourcequotas`); kube-apiserver's order is kept: LimitRanger
//! defaults (mutating admission) before validation, then LimitRanger's checks and
//! ResourceQuota (validating admission), each refusal a 403 with the plugin's text.
//!
//! Quota charging is race-free: pod creates in a namespace are serialised (a per-namespace
//! lock held from the quota check to the commit), and usage is computed from the stored pods
//! under that lock rather than from a possibly stale `status.used`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::{LimitRange, Pod, ResourceQuota};
use serde_json::Value;
use skiff_model::policy::{limit_range, quota};

use super::{strategy, Api, ApiError, Resource, RESOURCES};
use crate::store::{Mutation, StoreError};
use skiff_model::quantity::{Format, Quantity};
use skiff_model::resources::ResourceList;

/// Store resource of LimitRanges.
pub(crate) const LIMIT_RANGES: &str = "limitranges";
/// Store resource of ResourceQuotas.
pub(crate) const RESOURCE_QUOTAS: &str = "resourcequotas";

/// One async lock per namespace, for pod creates (see the module comment).
#[derive(Clone, Default)]
pub(crate) struct NamespaceLocks(Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>);

impl NamespaceLocks {
    pub(crate) async fn lock(&self, ns: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let m = {
            // The map holds no invariant a panic could break.
            let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
            // Forget locks nobody holds or waits for, so the map stays as small as the
            // namespaces with creates in flight.
            map.retain(|_, l| Arc::strong_count(l) > 1);
            map.entry(ns.to_string()).or_default().clone()
        };
        m.lock_owned().await
    }
}

fn typed<T: serde::de::DeserializeOwned>(v: &Value) -> Option<T> {
    serde_json::from_value(v.clone()).ok()
}

impl Api {
    /// The namespace's LimitRanges in name order (unreadable ones skipped).
    fn limit_ranges(&self, ns: &str) -> Vec<LimitRange> {
        let (items, _) = self.store.list(LIMIT_RANGES, Some(ns));
        items.iter().filter_map(|s| typed(&s.object)).collect()
    }

    fn quotas(&self, ns: &str) -> Vec<ResourceQuota> {
        let (items, _) = self.store.list(RESOURCE_QUOTAS, Some(ns));
        items.iter().filter_map(|s| typed(&s.object)).collect()
    }

    fn pods_in(&self, ns: &str) -> Vec<Pod> {
        let (items, _) = self.store.list("pods", Some(ns));
        items.iter().filter_map(|s| typed(&s.object)).collect()
    }

    /// A2: LimitRanger's mutating phase (after API defaulting, before validation).
    pub(crate) fn limit_ranger_defaults(&self, ns: &str, pod: &mut Pod) {
        let ranges = self.limit_ranges(ns);
        if !ranges.is_empty() {
            limit_range::mutate(&ranges, pod);
        }
    }

    /// A3 then A4: LimitRanger's and ResourceQuota's validating phases for a pod being
    /// created (the caller holds the namespace's create lock).
    pub(crate) fn admit_pod_policy(
        &self,
        r: &Resource,
        ns: &str,
        name: &str,
        pod: &Pod,
    ) -> Result<(), ApiError> {
        let Some(spec) = pod.spec.as_ref() else {
            return Ok(());
        };
        let ranges = self.limit_ranges(ns);
        limit_range::validate(&ranges, spec)
            .map_err(|why: String| ApiError::forbidden(r, name, &why))?;
        let quotas = self.quotas(ns);
        if quotas.is_empty() {
            return Ok(());
        }
        let now = strategy::unix_now();
        let pods = self.pods_in(ns);
        let views: Vec<(quota::QuotaView, skiff_model::resources::ResourceList)> = quotas
            .iter()
            .map(|q| {
                let v = quota::QuotaView::from_api(q);
                let used = quota::used(&v, &pods, now);
                (v, used)
            })
            .collect();
        quota::admit(&views, pod, now).map_err(|why: String| ApiError::forbidden(r, name, &why))
    }

    /// The object count evaluator (`generic.NewObjectCountEvaluator`) at the create of any
    /// namespaced object but a pod: a quota without scopes that names `count/<resource>`
    /// (or the legacy `configmaps`, `secrets`, … alias) is charged one.
    pub(crate) fn admit_object_count(
        &self,
        r: &Resource,
        ns: &str,
        name: &str,
    ) -> Result<(), ApiError> {
        let names = object_count_names(r);
        let mut count = None;
        for q in self.quotas(ns) {
            let view = quota::QuotaView::from_api(&q);
            if !view.selectors.is_empty() {
                continue;
            }
            let tracked: Vec<&String> = names
                .iter()
                .filter(|n| view.hard.contains_key(*n))
                .collect();
            if tracked.is_empty() {
                continue;
            }
            let n = *count.get_or_insert_with(|| {
                i64::try_from(self.store.list(&r.store_key(), Some(ns)).0.len()).unwrap_or(i64::MAX)
            });
            let mut requested = ResourceList::new();
            let mut used = ResourceList::new();
            let mut hard = ResourceList::new();
            for t in tracked {
                let Some(h) = view.hard.get(t) else {
                    continue;
                };
                if Quantity::new(n.saturating_add(1), 0, Format::DecimalSI) > *h {
                    requested.insert(t.clone(), Quantity::new(1, 0, Format::DecimalSI));
                    used.insert(t.clone(), Quantity::new(n, 0, Format::DecimalSI));
                    hard.insert(t.clone(), h.clone());
                }
            }
            if !requested.is_empty() {
                return Err(ApiError::forbidden(
                    r,
                    name,
                    &format!(
                        "exceeded quota: {}, requested: {}, used: {}, limited: {}",
                        view.name,
                        quota::pretty(&requested),
                        quota::pretty(&used),
                        quota::pretty(&hard)
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Whether `ns` has ResourceQuotas (then creates there are serialised).
    pub(crate) fn has_quotas(&self, ns: &str) -> bool {
        !self.store.list(RESOURCE_QUOTAS, Some(ns)).0.is_empty()
    }

    /// The ResourceQuota controller's sync for one namespace: each quota's `status.hard` :=
    /// `spec.hard` and `status.used` := the usage of the namespace's pods (terminal pods and
    /// pods stuck terminating not charged). Writes only what changed.
    pub async fn recompute_quotas(&self, ns: &str) -> Result<(), ApiError> {
        for _ in 0..super::RETRIES {
            let (items, _) = self.store.list(RESOURCE_QUOTAS, Some(ns));
            if items.is_empty() {
                return Ok(());
            }
            let now = strategy::unix_now();
            let pods = self.pods_in(ns);
            let mut muts = Vec::new();
            for s in items {
                let Some(q) = typed::<ResourceQuota>(&s.object) else {
                    continue;
                };
                // status.hard follows spec.hard; the view reads spec.hard when status has none.
                let mut spec_only = q.clone();
                spec_only.status = None;
                let view = quota::QuotaView::from_api(&spec_only);
                let used = quota::used(&view, &pods, now);
                let mut used_api = quota::to_api(&used);
                // Object counts of other kinds; a name nothing here tracks keeps its stored
                // value.
                let old_used = &s.object["status"]["used"];
                for k in view.hard.keys() {
                    if used_api.contains_key(k) {
                        continue;
                    }
                    if let Some(r) = counted_resource(k) {
                        let n = self.store.list(&r.store_key(), Some(ns)).0.len();
                        used_api.insert(
                            k.clone(),
                            k8s_openapi::apimachinery::pkg::api::resource::Quantity(n.to_string()),
                        );
                    } else {
                        if let Some(v) = old_used.get(k).and_then(Value::as_str) {
                            used_api.insert(
                                k.clone(),
                                k8s_openapi::apimachinery::pkg::api::resource::Quantity(
                                    v.to_string(),
                                ),
                            );
                        }
                    }
                }
                let status = serde_json::json!({
                    "hard": quota::to_api(&view.hard),
                    "used": used_api,
                });
                if s.object.get("status") == Some(&status) {
                    continue;
                }
                let mut obj = (*s.object).clone();
                obj["status"] = status;
                muts.push(Mutation::Update {
                    key: s.key.clone(),
                    object: obj,
                    expect_rev: Some(s.mod_rev),
                });
            }
            if muts.is_empty() {
                return Ok(());
            }
            let mut conflict = false;
            for res in self.store.commit_many(muts).await {
                match res {
                    Ok(_) | Err(StoreError::NotFound(_)) => {}
                    Err(StoreError::Conflict { .. }) => conflict = true,
                    Err(e) => return Err(ApiError::internal(e.to_string())),
                }
            }
            if !conflict {
                return Ok(());
            }
        }
        Ok(())
    }

    /// Recomputes every namespace's quotas (the daemon's housekeeping may call it; the
    /// registry also recomputes on quota writes and on pod create, delete and terminal
    /// phase, so this only catches pods that became stuck terminating).
    pub async fn reconcile_quotas(&self) -> Result<(), ApiError> {
        let (items, _) = self.store.list(RESOURCE_QUOTAS, None);
        let namespaces: std::collections::BTreeSet<String> =
            items.into_iter().map(|s| s.key.namespace).collect();
        for ns in namespaces {
            self.recompute_quotas(&ns).await?;
        }
        Ok(())
    }

    /// Recomputes `ns`'s quotas after a change that moves its usage; failures are logged (the
    /// next change or housekeeping repairs them).
    pub(crate) async fn quota_usage_changed(&self, ns: &str) {
        if let Err(e) = self.recompute_quotas(ns).await {
            tracing::warn!("updating resource quota status in {ns}: {e}");
        }
    }
}

/// Core kinds whose object count also has the legacy quota name (the plural itself).
const LEGACY_COUNT_NAMES: &[&str] = &[
    "configmaps",
    "secrets",
    "resourcequotas",
    "replicationcontrollers",
    "services",
    "persistentvolumeclaims",
];

/// The quota names charged one per object of `r` (`ObjectCountQuotaResourceNameFor`:
/// `count/<plural>` for the core group, `count/<plural>.<group>` otherwise).
fn object_count_names(r: &Resource) -> Vec<String> {
    let mut v = vec![if r.group.is_empty() {
        format!("count/{}", r.plural)
    } else {
        format!("count/{}.{}", r.plural, r.group)
    }];
    if r.group.is_empty() && LEGACY_COUNT_NAMES.contains(&r.plural) {
        v.push(r.plural.to_string());
    }
    v
}

/// The served namespaced resource an object-count quota name counts (pods are the pod
/// evaluator's).
fn counted_resource(name: &str) -> Option<&'static Resource> {
    RESOURCES
        .iter()
        .filter(|r| r.namespaced && r.kind != "Pod")
        .find(|r| object_count_names(r).iter().any(|n| n == name))
}
