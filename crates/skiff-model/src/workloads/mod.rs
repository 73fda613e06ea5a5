//! Workload kinds' API-server rules (issue 12): defaulting (pkg/apis/{batch,apps}/v1/defaults.go)
//! and validation (pkg/apis/{batch,apps}/validation) of Job, CronJob, ReplicaSet and Deployment,
//! shared by `skiff serve`'s registry and `skiff run -f job.yaml`. Pod templates are checked with
//! the Pod rules at their own paths (`spec.template.spec.containers[0].image`).

pub mod apps;
pub mod cronjob;
pub mod job;
pub mod template;
