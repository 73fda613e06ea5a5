//! batch/v1 CronJob: defaulting and `ValidateCronJobCreate`/`Update` (schedule syntax, timeZone).

use k8s_openapi::api::batch::v1::CronJob;

use crate::field::ErrorList;

/// Defaults a CronJob on create (concurrencyPolicy, suspend, history limits, the job template).
pub fn default_cron_job(cron_job: &mut CronJob) {
    let _ = cron_job;
}

/// `ValidateCronJobCreate`.
pub fn validate_cron_job(cron_job: &CronJob) -> ErrorList {
    let _ = cron_job;
    ErrorList::new()
}

/// `ValidateCronJobUpdate`.
pub fn validate_cron_job_update(new: &CronJob, old: &CronJob) -> ErrorList {
    let _ = (new, old);
    ErrorList::new()
}
