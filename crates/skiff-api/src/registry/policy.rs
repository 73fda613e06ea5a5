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

use super::{strategy, Api, ApiError, Resource};
use crate::store::{Mutation, StoreError};

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

    /// Whether `ns` has ResourceQuotas (then pod creates there are serialised).
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
                // Names no evaluator here tracks (object counts of other kinds) keep their
                // stored value; skiff counts pods only.
                let old_used = &s.object["status"]["used"];
                for k in view.hard.keys() {
                    if !used_api.contains_key(k) {
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
