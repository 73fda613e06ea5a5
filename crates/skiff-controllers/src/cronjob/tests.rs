//! Rules of pkg/controller/cronjob/cronjob_controllerv2.go and utils.go (and robfig/cron v3's
//! standard parser), on a simulated clock.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use k8s_openapi::api::batch::v1::{JobCondition, JobStatus};

/// 2026-01-01T00:00:00Z, a Thursday.
fn at(rfc3339: &str) -> Timestamp {
    rfc3339.parse().unwrap()
}

fn cron_job(schedule: &str) -> CronJob {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": "tick", "namespace": "default", "uid": "cj-uid",
                     "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {
            "schedule": schedule,
            "concurrencyPolicy": "Allow",
            "successfulJobsHistoryLimit": 3,
            "failedJobsHistoryLimit": 1,
            "jobTemplate": {
                "metadata": {"labels": {"team": "a"}, "annotations": {"note": "x"}},
                "spec": {"template": {"spec": {"restartPolicy": "Never",
                    "containers": [{"name": "c", "image": "busybox"}]}}},
            },
        }
    }))
    .unwrap()
}

fn created_jobs(d: &Decision) -> Vec<Job> {
    d.actions
        .iter()
        .filter_map(|a| match a {
            Action::Create(Object::Job(j)) => Some((**j).clone()),
            _ => None,
        })
        .collect()
}

fn new_status(d: &Decision) -> Option<CronJobStatus> {
    d.actions.iter().find_map(|a| match a {
        Action::UpdateStatus(Object::CronJob(c)) => c.status.clone(),
        _ => None,
    })
}

fn events(d: &Decision) -> Vec<String> {
    d.events
        .iter()
        .map(|e| format!("{} {} {}", e.type_, e.reason, e.message))
        .collect()
}

/// A Job the API server stored from a decision (UID given), optionally finished.
fn stored(mut job: Job, uid: &str, finished: Option<(&str, &str)>) -> Job {
    job.metadata.uid = Some(uid.into());
    if let Some((cond, when)) = finished {
        job.status = Some(JobStatus {
            start_time: Some(Time(at(when))),
            completion_time: (cond == "Complete").then(|| Time(at(when))),
            conditions: Some(vec![JobCondition {
                type_: cond.into(),
                status: "True".into(),
                ..JobCondition::default()
            }]),
            ..JobStatus::default()
        });
    }
    job
}

fn with_status(mut cj: CronJob, status: Option<CronJobStatus>) -> CronJob {
    cj.status = status;
    cj
}

#[test]
fn parses_standard_fields_ranges_steps_and_names() {
    let s = Schedule::parse("*/15 9-17 * JAN-mar mon-fri").unwrap();
    // Thu 2026-01-01 08:59 → 09:00.
    assert_eq!(
        s.next(at("2026-01-01T08:59:00Z")),
        Some(at("2026-01-01T09:00:00Z"))
    );
    assert_eq!(
        s.next(at("2026-01-01T09:00:00Z")),
        Some(at("2026-01-01T09:15:00Z"))
    );
    // Fri 17:45 → Mon 09:00.
    assert_eq!(
        s.next(at("2026-01-02T17:45:00Z")),
        Some(at("2026-01-05T09:00:00Z"))
    );
    // March ends the range: April → next January.
    assert_eq!(
        s.next(at("2026-03-31T17:45:00Z")),
        Some(at("2027-01-01T09:00:00Z"))
    );
    // `a/step` runs from a to the maximum.
    let s = Schedule::parse("5/20 * * * *").unwrap();
    assert_eq!(
        s.next(at("2026-01-01T00:26:00Z")),
        Some(at("2026-01-01T00:45:00Z"))
    );
}

#[test]
fn day_of_month_and_week_are_or_unless_one_is_a_star() {
    // The 13th or any Friday.
    let s = Schedule::parse("0 0 13 * 5").unwrap();
    assert_eq!(
        s.next(at("2026-01-01T00:00:00Z")),
        Some(at("2026-01-02T00:00:00Z"))
    );
    assert_eq!(
        s.next(at("2026-01-09T00:00:00Z")),
        Some(at("2026-01-13T00:00:00Z"))
    );
    // `*` day of month: Fridays only.
    let s = Schedule::parse("0 0 * * 5").unwrap();
    assert_eq!(
        s.next(at("2026-01-02T00:00:00Z")),
        Some(at("2026-01-09T00:00:00Z"))
    );
    // `*/2` is not a star: odd days or Fridays.
    let s = Schedule::parse("0 0 */2 * 5").unwrap();
    assert_eq!(
        s.next(at("2026-01-01T00:00:00Z")),
        Some(at("2026-01-02T00:00:00Z"))
    );
    assert_eq!(
        s.next(at("2026-01-02T00:00:00Z")),
        Some(at("2026-01-03T00:00:00Z"))
    );
}

#[test]
fn descriptors_and_every() {
    let next = |spec: &str, from: &str| Schedule::parse(spec).unwrap().next(at(from));
    assert_eq!(
        next("@hourly", "2026-01-01T10:30:00Z"),
        Some(at("2026-01-01T11:00:00Z"))
    );
    assert_eq!(
        next("@daily", "2026-01-01T10:30:00Z"),
        Some(at("2026-01-02T00:00:00Z"))
    );
    assert_eq!(
        next("@midnight", "2026-01-01T10:30:00Z"),
        Some(at("2026-01-02T00:00:00Z"))
    );
    assert_eq!(
        next("@weekly", "2026-01-01T10:30:00Z"),
        Some(at("2026-01-04T00:00:00Z"))
    );
    assert_eq!(
        next("@monthly", "2026-01-01T10:30:00Z"),
        Some(at("2026-02-01T00:00:00Z"))
    );
    assert_eq!(
        next("@yearly", "2026-01-01T10:30:00Z"),
        Some(at("2027-01-01T00:00:00Z"))
    );
    assert_eq!(
        next("@every 1h30m", "2026-01-01T10:30:00Z"),
        Some(at("2026-01-01T12:00:00Z"))
    );
}

#[test]
fn bad_schedules_are_rejected_with_robfig_texts() {
    let err = |spec: &str| Schedule::parse(spec).unwrap_err();
    assert_eq!(
        err("* * * *"),
        "expected exactly 5 fields, found 4: [* * * *]"
    );
    assert_eq!(
        err("60 * * * *"),
        "end of range (60) above maximum (59): 60"
    );
    assert_eq!(err("* * * * 7"), "end of range (7) above maximum (6): 7");
    assert_eq!(err("@fortnightly"), "unrecognized descriptor: @fortnightly");
    assert_eq!(
        err("5-1 * * * *"),
        "beginning of range (5) beyond end of range (1): 5-1"
    );
    assert_eq!(
        err("*/0 * * * *"),
        "step of range should be a positive number: */0"
    );
    assert_eq!(err(""), "empty spec string");
    // Parsable, but never: February 31st.
    assert_eq!(
        Schedule::parse("0 0 31 2 *")
            .unwrap()
            .next(at("2026-01-01T00:00:00Z")),
        None
    );
}

#[test]
fn time_zone_shifts_the_schedule_and_the_annotation() {
    let s = Schedule::parse("CRON_TZ=Europe/Berlin 0 9 * * *").unwrap();
    assert_eq!(
        s.next(at("2026-01-01T00:00:00Z")),
        Some(at("2026-01-01T08:00:00Z"))
    );
    // Summer time: 07:00 UTC.
    assert_eq!(
        s.next(at("2026-07-01T00:00:00Z")),
        Some(at("2026-07-01T07:00:00Z"))
    );

    let mut cj = cron_job("0 9 * * *");
    cj.spec.time_zone = Some("Europe/Berlin".into());
    let d = sync(&cj, &[], at("2026-01-01T08:00:30Z"));
    let job = &created_jobs(&d)[0];
    assert_eq!(
        job.metadata.annotations.as_ref().unwrap()[SCHEDULED_TIMESTAMP],
        "2026-01-01T09:00:00+01:00"
    );
    cj.spec.time_zone = Some("Mars/Olympus".into());
    let d = sync(&cj, &[], at("2026-01-01T08:00:30Z"));
    assert!(created_jobs(&d).is_empty());
    assert_eq!(d.events[0].reason, "UnknownTimeZone");
}

#[test]
fn nothing_before_the_first_schedule_time_and_requeue_until_it() {
    let d = sync(&cron_job("*/5 * * * *"), &[], at("2026-01-01T00:03:00Z"));
    assert!(d.actions.is_empty());
    assert_eq!(d.requeue_after, Some(Duration::from_millis(120_100)));
}

#[test]
fn due_job_is_created_with_name_owner_labels_annotation_and_status() {
    let cj = cron_job("*/5 * * * *");
    let now = at("2026-01-01T00:05:10Z");
    let d = sync(&cj, &[], now);
    let jobs = created_jobs(&d);
    assert_eq!(jobs.len(), 1);
    let job = &jobs[0];
    let minutes = at("2026-01-01T00:05:00Z").as_second() / 60;
    assert_eq!(
        job.metadata.name.as_deref(),
        Some(format!("tick-{minutes}").as_str())
    );
    let a = job.metadata.annotations.as_ref().unwrap();
    assert_eq!(
        (a["note"].as_str(), a[SCHEDULED_TIMESTAMP].as_str()),
        ("x", "2026-01-01T00:05:00Z")
    );
    assert_eq!(job.metadata.labels.as_ref().unwrap()["team"], "a");
    let owner = controller_of(&job.metadata).unwrap();
    assert_eq!(
        (
            owner.kind.as_str(),
            owner.uid.as_str(),
            owner.block_owner_deletion
        ),
        ("CronJob", "cj-uid", Some(true))
    );
    assert!(job.spec.is_some());
    assert_eq!(
        events(&d),
        vec![format!(
            "Normal SuccessfulCreate Created job tick-{minutes}"
        )]
    );
    let st = new_status(&d).unwrap();
    assert_eq!(
        st.last_schedule_time,
        Some(Time(at("2026-01-01T00:05:00Z")))
    );
    let active = st.active.unwrap();
    assert_eq!(
        active[0].name.as_deref(),
        Some(format!("tick-{minutes}").as_str())
    );
    assert_eq!(active[0].kind.as_deref(), Some("Job"));
    // Next at 00:10:00: 4 min 50 s, +100 ms.
    assert_eq!(d.requeue_after, Some(Duration::from_millis(290_100)));
}

#[test]
fn a_scheduled_time_is_processed_once_and_the_active_uid_filled_in() {
    let cj = cron_job("*/5 * * * *");
    let first = sync(&cj, &[], at("2026-01-01T00:05:10Z"));
    let job = stored(created_jobs(&first)[0].clone(), "job-uid", None);
    let cj = with_status(cj, new_status(&first));
    let again = sync(&cj, std::slice::from_ref(&job), at("2026-01-01T00:06:00Z"));
    assert!(created_jobs(&again).is_empty());
    let st = new_status(&again).unwrap();
    assert_eq!(st.active.unwrap()[0].uid.as_deref(), Some("job-uid"));
    assert!(events(&again).is_empty(), "{:?}", events(&again));
}

#[test]
fn completed_job_leaves_the_active_list_and_sets_last_successful_time() {
    let cj = cron_job("*/5 * * * *");
    let first = sync(&cj, &[], at("2026-01-01T00:05:10Z"));
    let name = created_jobs(&first)[0].metadata.name.clone().unwrap();
    let job = stored(
        created_jobs(&first)[0].clone(),
        "job-uid",
        Some(("Complete", "2026-01-01T00:06:00Z")),
    );
    let cj = with_status(cj, new_status(&first));
    let d = sync(&cj, &[job], at("2026-01-01T00:07:00Z"));
    assert_eq!(
        events(&d),
        vec![format!(
            "Normal SawCompletedJob Saw completed job: {name}, condition: Complete"
        )]
    );
    let st = new_status(&d).unwrap();
    assert!(st.active.is_none());
    assert_eq!(
        st.last_successful_time,
        Some(Time(at("2026-01-01T00:06:00Z")))
    );
}

#[test]
fn an_active_job_that_went_missing_is_dropped() {
    let cj = cron_job("*/5 * * * *");
    let first = sync(&cj, &[], at("2026-01-01T00:05:10Z"));
    let cj = with_status(cj, new_status(&first));
    let d = sync(&cj, &[], at("2026-01-01T00:06:00Z"));
    assert!(events(&d)[0].starts_with("Normal MissingJob Active job went missing: tick-"));
    assert!(new_status(&d).unwrap().active.is_none());
}

#[test]
fn starting_deadline_skips_a_start_missed_by_too_long() {
    let mut cj = cron_job("0 * * * *");
    cj.spec.starting_deadline_seconds = Some(60);
    // Due at 01:00, seen at 01:02: too late.
    let d = sync(&cj, &[], at("2026-01-01T01:02:00Z"));
    assert!(created_jobs(&d).is_empty());
    // Within the deadline: started.
    let d = sync(&cj, &[], at("2026-01-01T01:00:50Z"));
    assert_eq!(created_jobs(&d).len(), 1);
    // upstream never looks before now - startingDeadlineSeconds, so a start that late is
    // simply not found (its MissSchedule event cannot fire in v2): nothing, no event.
    let d = sync(&cj, &[], at("2026-01-01T01:01:10Z"));
    assert!(created_jobs(&d).is_empty() && d.events.is_empty());
    cj.spec.starting_deadline_seconds = Some(100);
    let d = sync(&cj, &[], at("2026-01-01T01:01:30Z"));
    assert_eq!(created_jobs(&d).len(), 1);
    // The MissSchedule text's time format (Go's RFC1123Z, UTC).
    assert_eq!(
        rfc1123z(at("2026-01-01T01:00:00Z")),
        "Thu, 01 Jan 2026 01:00:00 +0000"
    );
}

#[test]
fn too_many_missed_start_times_warns_and_starts_the_most_recent() {
    let cj = cron_job("* * * * *");
    let d = sync(&cj, &[], at("2026-01-01T03:00:30Z"));
    let e = events(&d);
    assert!(
        e.contains(&"Warning TooManyMissedTimes too many missed start times: 180. Set or decrease .spec.startingDeadlineSeconds or check clock skew".to_string()),
        "{e:?}"
    );
    let jobs = created_jobs(&d);
    assert_eq!(jobs.len(), 1);
    assert_eq!(
        jobs[0].metadata.annotations.as_ref().unwrap()[SCHEDULED_TIMESTAMP],
        "2026-01-01T03:00:00Z"
    );
}

#[test]
fn forbid_skips_while_a_job_is_active() {
    let mut cj = cron_job("*/5 * * * *");
    cj.spec.concurrency_policy = Some("Forbid".into());
    let first = sync(&cj, &[], at("2026-01-01T00:05:10Z"));
    let job = stored(created_jobs(&first)[0].clone(), "job-uid", None);
    let cj = with_status(cj, new_status(&first));
    let d = sync(&cj, &[job], at("2026-01-01T00:10:05Z"));
    assert!(created_jobs(&d).is_empty());
    assert!(events(&d).contains(&"Normal JobAlreadyActive Not starting job because prior execution is running and concurrency policy is Forbid".to_string()));
}

#[test]
fn replace_deletes_the_active_job_then_starts_the_new_one() {
    let mut cj = cron_job("*/5 * * * *");
    cj.spec.concurrency_policy = Some("Replace".into());
    let first = sync(&cj, &[], at("2026-01-01T00:05:10Z"));
    let old = stored(created_jobs(&first)[0].clone(), "job-uid", None);
    let old_name = old.metadata.name.clone().unwrap();
    let cj = with_status(cj, new_status(&first));
    // The sync that fills the UID first.
    let fill = sync(&cj, std::slice::from_ref(&old), at("2026-01-01T00:06:00Z"));
    let cj = with_status(cj, new_status(&fill));
    let d = sync(&cj, &[old], at("2026-01-01T00:10:05Z"));
    assert!(d.actions.contains(&Action::Delete {
        kind: Kind::Job,
        namespace: "default".into(),
        name: old_name.clone(),
        uid: Some("job-uid".into()),
        propagation: Some(Propagation::Background),
    }));
    assert_eq!(created_jobs(&d).len(), 1);
    let st = new_status(&d).unwrap();
    let active = st.active.unwrap();
    assert_eq!(active.len(), 1);
    assert_ne!(active[0].name.as_deref(), Some(old_name.as_str()));
    assert!(events(&d).contains(&format!("Normal SuccessfulDelete Deleted job {old_name}")));
}

#[test]
fn suspended_cron_job_starts_nothing() {
    let mut cj = cron_job("*/5 * * * *");
    cj.spec.suspend = Some(true);
    let d = sync(&cj, &[], at("2026-01-01T00:05:10Z"));
    assert!(d.actions.is_empty());
    assert_eq!(d.requeue_after, None);
}

#[test]
fn history_limits_delete_the_oldest_finished_jobs_in_background() {
    let cj = cron_job("0 0 1 1 *");
    let job = |i: u32, cond: &str| {
        let base = Job {
            metadata: ObjectMeta {
                name: Some(format!("tick-{i}")),
                namespace: Some("default".into()),
                owner_references: Some(vec![controller_ref("batch/v1", "CronJob", &cj.metadata)]),
                ..ObjectMeta::default()
            },
            ..Job::default()
        };
        stored(
            base,
            &format!("u{i}"),
            Some((cond, &format!("2026-01-01T00:0{i}:00Z"))),
        )
    };
    let jobs = vec![
        job(5, "Complete"),
        job(1, "Complete"),
        job(2, "Failed"),
        job(3, "Complete"),
        job(4, "Failed"),
        job(6, "Complete"),
    ];
    let d = sync(&cj, &jobs, at("2026-01-01T00:09:00Z"));
    let deleted: Vec<(String, Option<Propagation>)> = d
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::Delete {
                kind: Kind::Job,
                name,
                propagation,
                ..
            } => Some((name.clone(), *propagation)),
            _ => None,
        })
        .collect();
    let bg = Some(Propagation::Background);
    assert_eq!(deleted, vec![("tick-1".into(), bg), ("tick-2".into(), bg)]);
    assert!(events(&d).contains(&"Normal SuccessfulDelete Deleted job tick-1".to_string()));
}

#[test]
fn over_a_simulated_hour_jobs_start_on_every_schedule_time() {
    let mut cj = cron_job("*/10 * * * *");
    let mut jobs: Vec<Job> = Vec::new();
    let mut now = at("2026-01-01T00:00:00Z");
    let end = at("2026-01-01T01:00:30Z");
    let mut n = 0;
    while now < end {
        let d = sync(&cj, &jobs, now);
        if let Some(st) = new_status(&d) {
            cj.status = Some(st);
        }
        for j in created_jobs(&d) {
            n += 1;
            // Each finishes at once; history keeps three.
            jobs.push(stored(
                j,
                &format!("u{n}"),
                Some(("Complete", &now.to_string())),
            ));
        }
        for a in &d.actions {
            if let Action::Delete { name, .. } = a {
                jobs.retain(|j| j.metadata.name.as_ref() != Some(name));
            }
        }
        let wait = d.requeue_after.expect("a schedule always requeues");
        now = Timestamp::from_second(now.as_second() + i64::try_from(wait.as_secs()).unwrap() + 1)
            .unwrap();
    }
    // The sync after the last start trims the history.
    let d = sync(&cj, &jobs, now);
    for a in &d.actions {
        if let Action::Delete { name, .. } = a {
            jobs.retain(|j| j.metadata.name.as_ref() != Some(name));
        }
    }
    // 00:10 … 01:00: six starts, three kept.
    assert_eq!(n, 6);
    let names: Vec<_> = jobs
        .iter()
        .map(|j| j.metadata.name.clone().unwrap())
        .collect();
    let minute = |hhmm: &str| at(&format!("2026-01-01T{hhmm}:00Z")).as_second() / 60;
    assert_eq!(
        names,
        vec![
            format!("tick-{}", minute("00:40")),
            format!("tick-{}", minute("00:50")),
            format!("tick-{}", minute("01:00")),
        ]
    );
}
