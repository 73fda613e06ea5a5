//! The CronJob controller (pkg/controller/cronjob/cronjob_controllerv2.go and utils.go), as
//! pure decision code.
//!
//! [`sync`] takes one CronJob, the Jobs of its namespace and the time, and decides, as
//! upstream's `sync` does:
//! - history cleanup: finished Jobs beyond `successfulJobsHistoryLimit` /
//!   `failedJobsHistoryLimit` are deleted (Background propagation), oldest start first;
//! - the active list: finished Jobs leave it (`SawCompletedJob`), missing ones too
//!   (`MissingJob`), `lastSuccessfulTime` follows the latest completion;
//! - whether a Job is due: the most recent unmet schedule time since `lastScheduleTime` (or
//!   creation), skipped when older than `startingDeadlineSeconds` (`MissSchedule`), with the
//!   `TooManyMissedTimes` warning past 100 missed times; `suspend`; concurrencyPolicy Allow,
//!   Forbid (`JobAlreadyActive`) or Replace (the active Jobs are deleted first);
//! - the Job: `<cronjob>-<scheduled time in unix minutes>`, the template's labels,
//!   annotations and spec, the controller ownerReference and the
//!   `batch.kubernetes.io/cronjob-scheduled-timestamp` annotation (RFC 3339, in the timeZone);
//! - `requeue_after`: until the next schedule time (+100 ms, as upstream).
//!
//! The active list's reference to a Job just created has no UID yet (the decision is made
//! before the API server answers); the next sync fills it in from the Job of that name.
//!
//! Schedules without `timeZone` (or `CRON_TZ=`/`TZ=`) are read in UTC, the zone
//! kube-controller-manager runs in inside its usual container.

use std::time::Duration;

use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};
use k8s_openapi::api::batch::v1::{CronJob, CronJobStatus, Job};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

use crate::replicaset::{controller_of, controller_ref, event};
use crate::{Action, Decision, Kind, Now, Object, Propagation};

/// The annotation with the Job's nominal start time.
pub const SCHEDULED_TIMESTAMP: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";

/// upstream's `nextScheduleDelta`: requeues aim 100 ms past the schedule time.
const NEXT_SCHEDULE_DELTA: Duration = Duration::from_millis(100);

/// Decides what the CronJob controller does for `cj` at `now`. `jobs` are the Jobs of the
/// CronJob's namespace (those it controls are picked by ownerReference).
pub fn sync(cj: &CronJob, jobs: &[Job], now: Now) -> Decision {
    let mut decision = Decision::default();
    let mut cj_new = cj.clone();
    let uid = cj.metadata.uid.clone().unwrap_or_default();
    let mine: Vec<&Job> = jobs
        .iter()
        .filter(|j| controller_of(&j.metadata).is_some_and(|r| r.uid == uid))
        .collect();
    let mut update_status = cleanup_finished_jobs(&mut cj_new, &mine, &mut decision);
    let (requeue, changed) = sync_cron_job(&mut cj_new, &mine, now, &mut decision);
    update_status |= changed;
    if update_status && cj_new.status != cj.status {
        decision
            .actions
            .push(Action::UpdateStatus(Object::CronJob(Box::new(cj_new))));
    }
    decision.requeue_after = requeue;
    decision
}

/// `syncCronJob`: the active list, then whether (and which) Job to start. Returns the requeue
/// and whether the status changed.
fn sync_cron_job(
    cj: &mut CronJob,
    jobs: &[&Job],
    now: Now,
    decision: &mut Decision,
) -> (Option<Duration>, bool) {
    let mut update = false;
    let status = cj.status.get_or_insert_with(CronJobStatus::default);
    for j in jobs {
        let name = j.metadata.name.clone().unwrap_or_default();
        let job_uid = j.metadata.uid.clone().unwrap_or_default();
        let found = active_position(status, j);
        let finished = finished_condition(j);
        match (found, finished) {
            (None, None) => decision.events.push(event(
                Kind::CronJob,
                &cj.metadata,
                "Warning",
                "UnexpectedJob",
                format!("Saw a job that the controller did not create or forgot: {name}"),
            )),
            (Some(i), Some(cond)) => {
                status.active.get_or_insert_with(Vec::new).remove(i);
                decision.events.push(event(
                    Kind::CronJob,
                    &cj.metadata,
                    "Normal",
                    "SawCompletedJob",
                    format!("Saw completed job: {name}, condition: {cond}"),
                ));
                update = true;
            }
            (Some(i), None) => {
                // A reference made before the Job had its UID: complete it.
                if let Some(r) = status.active.as_mut().and_then(|a| a.get_mut(i)) {
                    if r.uid.is_none() {
                        r.uid = Some(job_uid);
                        update = true;
                    }
                }
            }
            (None, Some(_)) => {}
        }
        if finished == Some("Complete") {
            if let Some(done) = j.status.as_ref().and_then(|s| s.completion_time.clone()) {
                if status
                    .last_successful_time
                    .as_ref()
                    .is_none_or(|t| done.0 > t.0)
                {
                    status.last_successful_time = Some(done);
                    update = true;
                }
            }
        }
    }
    // Active references whose Job is gone.
    if let Some(active) = status.active.as_mut() {
        let before = active.len();
        active.retain(|r| {
            let exists = jobs.iter().any(|j| ref_matches(r, j));
            if !exists {
                decision.events.push(event(
                    Kind::CronJob,
                    &cj.metadata,
                    "Normal",
                    "MissingJob",
                    format!(
                        "Active job went missing: {}",
                        r.name.as_deref().unwrap_or("")
                    ),
                ));
            }
            exists
        });
        update |= active.len() != before;
    }
    if status.active.as_ref().is_some_and(Vec::is_empty) {
        status.active = None;
    }

    if cj.metadata.deletion_timestamp.is_some() {
        return (None, update);
    }
    if let Some(tz) = cj.spec.time_zone.as_deref() {
        if let Err(e) = load_zone(tz) {
            decision.events.push(event(
                Kind::CronJob,
                &cj.metadata,
                "Warning",
                "UnknownTimeZone",
                format!(
                    "invalid timeZone: {}: {e}",
                    skiff_model::field::go_quote(tz)
                ),
            ));
            return (None, update);
        }
    }
    if cj.spec.suspend == Some(true) {
        return (None, update);
    }
    let spec_text = format_schedule(cj, decision);
    let schedule = match Schedule::parse(&spec_text) {
        Ok(s) => s,
        Err(e) => {
            decision.events.push(event(
                Kind::CronJob,
                &cj.metadata,
                "Warning",
                "UnparseableSchedule",
                format!(
                    "unparseable schedule: {} : {e}",
                    skiff_model::field::go_quote(&cj.spec.schedule)
                ),
            ));
            return (None, update);
        }
    };
    let scheduled = match next_schedule_time(cj, now, &schedule, decision) {
        Ok(Some(t)) => t,
        Ok(None) => return (next_schedule_duration(cj, now, &schedule), update),
        Err(e) => {
            decision.events.push(event(
                Kind::CronJob,
                &cj.metadata,
                "Warning",
                "InvalidSchedule",
                format!("invalid schedule: {} : {e}", cj.spec.schedule),
            ));
            return (None, update);
        }
    };
    if let Some(deadline) = cj.spec.starting_deadline_seconds {
        if scheduled.as_second().saturating_add(deadline) < now.as_second() {
            decision.events.push(event(
                Kind::CronJob,
                &cj.metadata,
                "Warning",
                "MissSchedule",
                format!(
                    "Missed scheduled time to start a job: {}",
                    rfc1123z(scheduled)
                ),
            ));
            return (next_schedule_duration(cj, now, &schedule), update);
        }
    }
    let name = job_name(cj, scheduled);
    let status = cj.status.get_or_insert_with(CronJobStatus::default);
    let already = status
        .active
        .iter()
        .flatten()
        .any(|r| r.name.as_deref() == Some(name.as_str()))
        || status
            .last_schedule_time
            .as_ref()
            .is_some_and(|t| t.0 == scheduled);
    if already {
        return (next_schedule_duration(cj, now, &schedule), update);
    }
    let policy = cj.spec.concurrency_policy.as_deref().unwrap_or("Allow");
    let active_count = status.active.as_ref().map_or(0, Vec::len);
    if policy == "Forbid" && active_count > 0 {
        decision.events.push(event(
            Kind::CronJob,
            &cj.metadata,
            "Normal",
            "JobAlreadyActive",
            "Not starting job because prior execution is running and concurrency policy is Forbid"
                .into(),
        ));
        return (next_schedule_duration(cj, now, &schedule), update);
    }
    if policy == "Replace" {
        for r in status.active.take().unwrap_or_default() {
            let job_name = r.name.clone().unwrap_or_default();
            decision.actions.push(Action::Delete {
                kind: Kind::Job,
                namespace: cj.metadata.namespace.clone().unwrap_or_default(),
                name: job_name.clone(),
                uid: r.uid.clone(),
                propagation: Some(Propagation::Background),
            });
            decision.events.push(event(
                Kind::CronJob,
                &cj.metadata,
                "Normal",
                "SuccessfulDelete",
                format!("Deleted job {job_name}"),
            ));
        }
    }
    // A Job of that name may exist already (created before the status was written).
    if let Some(existing) = jobs
        .iter()
        .find(|j| j.metadata.name.as_deref() == Some(name.as_str()))
    {
        let status = cj.status.get_or_insert_with(CronJobStatus::default);
        if active_position(status, existing).is_none() {
            status
                .active
                .get_or_insert_with(Vec::new)
                .push(job_ref(cj.metadata.namespace.as_deref(), existing));
        }
        status.last_schedule_time = Some(Time(scheduled));
        return (next_schedule_duration(cj, now, &schedule), true);
    }
    let job = job_from_template(cj, scheduled, &schedule.tz);
    decision.events.push(event(
        Kind::CronJob,
        &cj.metadata,
        "Normal",
        "SuccessfulCreate",
        format!("Created job {name}"),
    ));
    let status = cj.status.get_or_insert_with(CronJobStatus::default);
    status
        .active
        .get_or_insert_with(Vec::new)
        .push(job_ref(cj.metadata.namespace.as_deref(), &job));
    status.last_schedule_time = Some(Time(scheduled));
    decision
        .actions
        .push(Action::Create(Object::Job(Box::new(job))));
    (next_schedule_duration(cj, now, &schedule), true)
}

/// `cleanupFinishedJobs`: deletes finished Jobs beyond the history limits.
fn cleanup_finished_jobs(cj: &mut CronJob, jobs: &[&Job], decision: &mut Decision) -> bool {
    let limits = (
        cj.spec.successful_jobs_history_limit,
        cj.spec.failed_jobs_history_limit,
    );
    let mut update = false;
    for (limit, kind) in [(limits.0, "Complete"), (limits.1, "Failed")] {
        let Some(limit) = limit else { continue };
        let mut finished: Vec<&Job> = jobs
            .iter()
            .copied()
            .filter(|j| finished_condition(j) == Some(kind))
            .collect();
        let excess = finished
            .len()
            .saturating_sub(usize::try_from(limit).unwrap_or(0));
        if excess == 0 {
            continue;
        }
        // byJobStartTime: earlier start first, Jobs without a start time last, then by name.
        finished.sort_by(|a, b| {
            let start = |j: &Job| j.status.as_ref().and_then(|s| s.start_time.clone());
            let name = |j: &Job| j.metadata.name.clone();
            match (start(a), start(b)) {
                (Some(x), Some(y)) => x.cmp(&y).then(name(a).cmp(&name(b))),
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (None, None) => name(a).cmp(&name(b)),
            }
        });
        for j in finished.into_iter().take(excess) {
            let name = j.metadata.name.clone().unwrap_or_default();
            decision.actions.push(Action::Delete {
                kind: Kind::Job,
                namespace: j.metadata.namespace.clone().unwrap_or_default(),
                name: name.clone(),
                uid: j.metadata.uid.clone(),
                propagation: Some(Propagation::Background),
            });
            if let Some(status) = cj.status.as_mut() {
                if let Some(pos) = active_position(status, j) {
                    status.active.get_or_insert_with(Vec::new).remove(pos);
                }
            }
            decision.events.push(event(
                Kind::CronJob,
                &cj.metadata,
                "Normal",
                "SuccessfulDelete",
                format!("Deleted job {name}"),
            ));
            update = true;
        }
    }
    update
}

/// `jobutil.FinishedCondition`: `Complete` or `Failed` when the Job has finished.
fn finished_condition(job: &Job) -> Option<&'static str> {
    let conds = job.status.as_ref()?.conditions.as_ref()?;
    conds
        .iter()
        .find_map(|c| match (c.type_.as_str(), c.status.as_str()) {
            ("Complete", "True") => Some("Complete"),
            ("Failed", "True") => Some("Failed"),
            _ => None,
        })
}

/// Whether an active reference names this Job (by UID; by name while the UID is unknown).
fn ref_matches(r: &ObjectReference, job: &Job) -> bool {
    match &r.uid {
        Some(uid) => Some(uid) == job.metadata.uid.as_ref(),
        None => r.name.is_some() && r.name == job.metadata.name,
    }
}

fn active_position(status: &CronJobStatus, job: &Job) -> Option<usize> {
    status
        .active
        .as_ref()?
        .iter()
        .position(|r| ref_matches(r, job))
}

/// `getRef`.
fn job_ref(namespace: Option<&str>, job: &Job) -> ObjectReference {
    ObjectReference {
        api_version: Some("batch/v1".into()),
        kind: Some("Job".into()),
        name: job.metadata.name.clone(),
        namespace: job
            .metadata
            .namespace
            .clone()
            .or_else(|| namespace.map(str::to_string)),
        uid: job.metadata.uid.clone(),
        resource_version: job.metadata.resource_version.clone(),
        field_path: None,
    }
}

/// `getJobName`: `<cronjob>-<scheduled time in minutes since the epoch>`.
pub fn job_name(cj: &CronJob, scheduled: Timestamp) -> String {
    format!(
        "{}-{}",
        cj.metadata.name.as_deref().unwrap_or(""),
        scheduled.as_second().div_euclid(60)
    )
}

/// `getJobFromTemplate2`.
fn job_from_template(cj: &CronJob, scheduled: Timestamp, tz: &TimeZone) -> Job {
    let template = &cj.spec.job_template;
    let tmeta = template.metadata.clone().unwrap_or_default();
    let mut annotations = tmeta.annotations.unwrap_or_default();
    annotations.insert(SCHEDULED_TIMESTAMP.into(), rfc3339_in(scheduled, tz));
    Job {
        metadata: ObjectMeta {
            name: Some(job_name(cj, scheduled)),
            namespace: cj.metadata.namespace.clone(),
            labels: tmeta.labels,
            annotations: Some(annotations),
            owner_references: Some(vec![controller_ref("batch/v1", "CronJob", &cj.metadata)]),
            ..ObjectMeta::default()
        },
        spec: template.spec.clone(),
        status: None,
    }
}

/// Go's `time.RFC3339` of `t` in `tz` (`Z` for UTC, else the offset).
fn rfc3339_in(t: Timestamp, tz: &TimeZone) -> String {
    let z = t.to_zoned(tz.clone());
    let offset = z.offset();
    let dt = z.datetime();
    let base = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        dt.year(),
        dt.month(),
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second()
    );
    let secs = offset.seconds();
    if secs == 0 {
        format!("{base}Z")
    } else {
        let sign = if secs < 0 { '-' } else { '+' };
        let a = secs.unsigned_abs();
        format!("{base}{sign}{:02}:{:02}", a / 3600, (a % 3600) / 60)
    }
}

/// Go's `time.RFC1123Z` in UTC: `Mon, 02 Jan 2006 15:04:05 -0700`.
fn rfc1123z(t: Timestamp) -> String {
    t.strftime("%a, %d %b %Y %H:%M:%S +0000").to_string()
}

/// `formatSchedule`: the schedule with the timeZone prefixed (a schedule naming `TZ` itself
/// is used as written, with upstream's warning).
fn format_schedule(cj: &CronJob, decision: &mut Decision) -> String {
    let schedule = &cj.spec.schedule;
    if schedule.contains("TZ") {
        decision.events.push(event(
            Kind::CronJob,
            &cj.metadata,
            "Warning",
            "UnsupportedSchedule",
            format!(
                "CRON_TZ or TZ used in schedule {} is not officially supported, see https://kubernetes.io/docs/concepts/workloads/controllers/cron-jobs/ for more details",
                skiff_model::field::go_quote(schedule)
            ),
        ));
        return schedule.clone();
    }
    match cj.spec.time_zone.as_deref() {
        Some(tz) if load_zone(tz).is_ok() => format!("TZ={tz} {schedule}"),
        _ => schedule.clone(),
    }
}

/// `time.LoadLocation`: `""` and `UTC` are UTC; `Local` is taken as UTC too (see the module
/// docs); other names come from the system tz database.
fn load_zone(name: &str) -> Result<TimeZone, String> {
    match name {
        "" | "UTC" | "Local" => Ok(TimeZone::UTC),
        _ => TimeZone::get(name).map_err(|_| format!("unknown time zone {name}")),
    }
}

/// `mostRecentScheduleTime`: (earliest time considered, the most recent unmet schedule time
/// if any, the number of missed schedules).
fn most_recent_schedule_time(
    cj: &CronJob,
    now: Now,
    schedule: &Schedule,
    with_deadline: bool,
) -> Result<(Timestamp, Option<Timestamp>, i64), String> {
    let mut earliest = cj.metadata.creation_timestamp.as_ref().map_or(now, |t| t.0);
    if let Some(t) = cj
        .status
        .as_ref()
        .and_then(|s| s.last_schedule_time.as_ref())
    {
        earliest = t.0;
    }
    if with_deadline {
        if let Some(deadline) = cj.spec.starting_deadline_seconds {
            let cutoff =
                Timestamp::from_second(now.as_second().saturating_sub(deadline)).unwrap_or(now);
            if cutoff > earliest {
                earliest = cutoff;
            }
        }
    }
    let Some(t1) = schedule.next(earliest) else {
        return Ok((earliest, None, 0));
    };
    if now < t1 {
        return Ok((earliest, None, 0));
    }
    let Some(t2) = schedule.next(t1) else {
        return Ok((earliest, Some(t1), 1));
    };
    if now < t2 {
        return Ok((earliest, Some(t1), 1));
    }
    let between = t2.as_second() - t1.as_second();
    if between < 1 {
        return Err("time difference between two schedules is less than 1 second".into());
    }
    // Upstream's approximation: how many intervals fit between t1 and now, then walk the
    // schedule from just before the last of them.
    let elapsed = now.as_second() - t1.as_second();
    let missed = elapsed / between + 1;
    let potential = Timestamp::from_second(t1.as_second() + (missed - 2) * between).unwrap_or(t1);
    let mut most_recent = None;
    let mut t = schedule.next(potential);
    while let Some(x) = t.filter(|x| *x <= now) {
        most_recent = Some(x);
        t = schedule.next(x);
    }
    Ok((earliest, most_recent, missed))
}

/// `nextScheduleTime`, with the `TooManyMissedTimes` warning.
fn next_schedule_time(
    cj: &CronJob,
    now: Now,
    schedule: &Schedule,
    decision: &mut Decision,
) -> Result<Option<Timestamp>, String> {
    let (_, recent, missed) = most_recent_schedule_time(cj, now, schedule, true)?;
    let Some(recent) = recent.filter(|t| *t <= now) else {
        return Ok(None);
    };
    if missed > 100 {
        decision.events.push(event(
            Kind::CronJob,
            &cj.metadata,
            "Warning",
            "TooManyMissedTimes",
            format!("too many missed start times: {missed}. Set or decrease .spec.startingDeadlineSeconds or check clock skew"),
        ));
    }
    Ok(Some(recent))
}

/// `nextScheduleTimeDuration`: until the schedule time after the most recent one, +100 ms.
fn next_schedule_duration(cj: &CronJob, now: Now, schedule: &Schedule) -> Option<Duration> {
    let from = match most_recent_schedule_time(cj, now, schedule, false) {
        Err(_) => now,
        Ok((earliest, None, _)) => earliest,
        Ok((_, Some(recent), _)) => recent,
    };
    let next = schedule.next(from)?;
    let wait = next.duration_since(now);
    let wait = Duration::try_from(wait).unwrap_or(Duration::ZERO);
    Some(wait + NEXT_SCHEDULE_DELTA)
}

/// A parsed schedule (robfig/cron v3's `ParseStandard`: five fields or a descriptor, with an
/// optional `CRON_TZ=`/`TZ=` prefix). Written here: the `cron` crate wants six or seven
/// fields (seconds first) and `croner` brings chrono beside the workspace's jiff; upstream's
/// grammar and day rule fit in a page.
#[derive(Clone, Debug)]
pub struct Schedule {
    kind: ScheduleKind,
    tz: TimeZone,
}

#[derive(Clone, Debug)]
enum ScheduleKind {
    Fields(Fields),
    /// `@every <duration>`: whole seconds.
    Every(i64),
}

/// Bit sets per field; `*_star` when the day fields were `*` or `?` (robfig's `starBit`).
#[derive(Clone, Debug)]
struct Fields {
    minute: u64,
    hour: u64,
    dom: u64,
    month: u64,
    dow: u64,
    dom_star: bool,
    dow_star: bool,
}

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const DAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

impl Schedule {
    /// Parses a schedule as `cron.ParseStandard` does.
    pub fn parse(spec: &str) -> Result<Schedule, String> {
        if spec.is_empty() {
            return Err("empty spec string".into());
        }
        let mut spec = spec;
        let mut tz = TimeZone::UTC;
        if spec.starts_with("TZ=") || spec.starts_with("CRON_TZ=") {
            let space = spec.find(' ').unwrap_or(spec.len());
            let eq = spec.find('=').unwrap_or(0);
            let name = spec.get(eq + 1..space).unwrap_or("");
            tz = load_zone(name).map_err(|e| format!("provided bad location {name}: {e}"))?;
            spec = spec.get(space..).unwrap_or("").trim();
        }
        if let Some(descriptor) = spec.strip_prefix('@') {
            let fields = match descriptor {
                "yearly" | "annually" => "0 0 1 1 *",
                "monthly" => "0 0 1 * *",
                "weekly" => "0 0 * * 0",
                "daily" | "midnight" => "0 0 * * *",
                "hourly" => "0 * * * *",
                _ => {
                    if let Some(d) = descriptor.strip_prefix("every ") {
                        let secs = parse_go_duration(d.trim())
                            .ok_or_else(|| format!("failed to parse duration {spec}"))?;
                        return Ok(Schedule {
                            kind: ScheduleKind::Every(secs.max(1)),
                            tz,
                        });
                    }
                    return Err(format!("unrecognized descriptor: {spec}"));
                }
            };
            return Ok(Schedule {
                kind: ScheduleKind::Fields(parse_fields(fields)?),
                tz,
            });
        }
        Ok(Schedule {
            kind: ScheduleKind::Fields(parse_fields(spec)?),
            tz,
        })
    }

    /// `Schedule.Next`: the first schedule time strictly after `after` (`None` when there
    /// is none within five years, e.g. February 31st).
    pub fn next(&self, after: Timestamp) -> Option<Timestamp> {
        let f = match &self.kind {
            ScheduleKind::Every(secs) => {
                return Timestamp::from_second(after.as_second().checked_add(*secs)?).ok();
            }
            ScheduleKind::Fields(f) => f,
        };
        let start = after.to_zoned(self.tz.clone()).datetime();
        let limit = start.year().saturating_add(5);
        let mut dt = start
            .with()
            .second(0)
            .subsec_nanosecond(0)
            .build()
            .ok()?
            .checked_add(1.minute())
            .ok()?;
        let bit = |set: u64, v: i8| set & (1u64 << u32::try_from(v).unwrap_or(63)) != 0;
        // Bounded: months, days, hours and minutes of five years are far fewer.
        for _ in 0..200_000 {
            if dt.year() > limit {
                return None;
            }
            if !bit(f.month, dt.month()) {
                dt = dt
                    .date()
                    .first_of_month()
                    .checked_add(1.month())
                    .ok()?
                    .to_datetime(jiff::civil::Time::midnight());
                continue;
            }
            let dom = bit(f.dom, dt.day());
            let dow = bit(f.dow, dt.weekday().to_sunday_zero_offset());
            let day_ok = if f.dom_star || f.dow_star {
                dom && dow
            } else {
                dom || dow
            };
            if !day_ok {
                dt = dt
                    .date()
                    .tomorrow()
                    .ok()?
                    .to_datetime(jiff::civil::Time::midnight());
                continue;
            }
            if !bit(f.hour, dt.hour()) {
                dt = dt
                    .with()
                    .minute(0)
                    .build()
                    .ok()?
                    .checked_add(1.hour())
                    .ok()?;
                continue;
            }
            if !bit(f.minute, dt.minute()) {
                dt = dt.checked_add(1.minute()).ok()?;
                continue;
            }
            let ts = civil_to_timestamp(&self.tz, dt)?;
            if ts <= after {
                // A repeated civil time (DST fold) already passed.
                dt = dt.checked_add(1.minute()).ok()?;
                continue;
            }
            return Some(ts);
        }
        None
    }
}

fn civil_to_timestamp(tz: &TimeZone, dt: DateTime) -> Option<Timestamp> {
    tz.to_ambiguous_zoned(dt)
        .compatible()
        .ok()
        .map(|z| z.timestamp())
}

fn parse_fields(spec: &str) -> Result<Fields, String> {
    let fields: Vec<&str> = spec.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(format!(
            "expected exactly 5 fields, found {}: [{}]",
            fields.len(),
            fields.join(" ")
        ));
    }
    let (minute, _) = parse_field(fields[0], 0, 59, &[])?;
    let (hour, _) = parse_field(fields[1], 0, 23, &[])?;
    let (dom, dom_star) = parse_field(fields[2], 1, 31, &[])?;
    let (month, _) = parse_field(fields[3], 1, 12, &MONTHS)?;
    let (dow, dow_star) = parse_field(fields[4], 0, 6, &DAYS)?;
    Ok(Fields {
        minute,
        hour,
        dom,
        month,
        dow,
        dom_star,
        dow_star,
    })
}

/// One field: comma-separated ranges (`getField`); whether it carried the star bit.
fn parse_field(field: &str, min: u32, max: u32, names: &[&str]) -> Result<(u64, bool), String> {
    let mut bits = 0u64;
    let mut star = false;
    for expr in field.split(',') {
        let (b, s) = parse_range(expr, min, max, names)?;
        bits |= b;
        star |= s;
    }
    Ok((bits, star))
}

/// `getRange`: `*`, `?`, `a`, `a-b`, with `/step`; `a/step` means `a-max/step`.
fn parse_range(expr: &str, min: u32, max: u32, names: &[&str]) -> Result<(u64, bool), String> {
    let mut parts = expr.split('/');
    let range = parts.next().unwrap_or("");
    let step_text = parts.next();
    if parts.next().is_some() {
        return Err(format!("too many slashes: {expr}"));
    }
    let lo_hi: Vec<&str> = range.split('-').collect();
    let single = lo_hi.len() == 1;
    let (start, mut end, mut star) = if range == "*" || range == "?" {
        (min, max, true)
    } else {
        let start = int_or_name(lo_hi[0], min, names)?;
        let end = match lo_hi.len() {
            1 => start,
            2 => int_or_name(lo_hi[1], min, names)?,
            _ => return Err(format!("too many hyphens: {expr}")),
        };
        (start, end, false)
    };
    let step = match step_text {
        None => 1,
        Some(s) => {
            let step: u32 = s
                .parse()
                .map_err(|_| format!("failed to parse int from {s}: invalid syntax"))?;
            if single {
                end = max;
            }
            if step > 1 {
                star = false;
            }
            step
        }
    };
    if start < min {
        return Err(format!(
            "beginning of range ({start}) below minimum ({min}): {expr}"
        ));
    }
    if end > max {
        return Err(format!(
            "end of range ({end}) above maximum ({max}): {expr}"
        ));
    }
    if start > end {
        return Err(format!(
            "beginning of range ({start}) beyond end of range ({end}): {expr}"
        ));
    }
    if step == 0 {
        return Err(format!("step of range should be a positive number: {expr}"));
    }
    let mut bits = 0u64;
    let mut v = start;
    while v <= end {
        bits |= 1u64 << v;
        v += step;
    }
    Ok((bits, star))
}

fn int_or_name(text: &str, min: u32, names: &[&str]) -> Result<u32, String> {
    let lower = text.to_ascii_lowercase();
    if let Some(i) = names.iter().position(|n| *n == lower) {
        // Month names count from 1, day names from 0 (the field's minimum).
        return Ok(u32::try_from(i).unwrap_or(0) + min);
    }
    text.parse::<u32>()
        .map_err(|_| format!("failed to parse int from {text}: invalid syntax"))
}

/// A Go duration (`1h30m`, `90s`, `5m`) in whole seconds.
fn parse_go_duration(text: &str) -> Option<i64> {
    let mut total: i64 = 0;
    let mut rest = text;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let n: i64 = rest.get(..digits)?.parse().ok()?;
        rest = rest.get(digits..)?;
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = rest.get(..unit_len)?;
        rest = rest.get(unit_len..)?;
        let secs = match unit {
            "h" => n.checked_mul(3600)?,
            "m" => n.checked_mul(60)?,
            "s" => n,
            "ms" | "us" | "µs" | "ns" => 0,
            _ => return None,
        };
        total = total.checked_add(secs)?;
    }
    Some(total)
}

#[cfg(test)]
mod tests;
