//! batch/v1 Job: `SetDefaults_Job` and `ValidateJob`/`ValidateJobUpdate`/status updates.

use k8s_openapi::api::batch::v1::Job;

use crate::field::ErrorList;

/// Defaults a Job on create (completions, parallelism, backoffLimit, completionMode, suspend,
/// podReplacementPolicy, the generated selector and template labels, the template's pod spec).
pub fn default_job(job: &mut Job) {
    let _ = job;
}

/// `ValidateJob` (create).
pub fn validate_job(job: &Job) -> ErrorList {
    let _ = job;
    ErrorList::new()
}

/// `ValidateJobUpdate`: the create rules plus what may not change.
pub fn validate_job_update(new: &Job, old: &Job) -> ErrorList {
    let _ = (new, old);
    ErrorList::new()
}
