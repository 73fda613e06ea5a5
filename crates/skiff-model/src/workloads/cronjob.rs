//! batch/v1 CronJob: `SetDefaults_CronJob` and `ValidateCronJobCreate`/`Update`
//! (pkg/apis/batch/v1/defaults.go, pkg/apis/batch/validation/validation.go), with the schedule
//! parsed as `cron.ParseStandard` of github.com/robfig/cron/v3 parses it (its error texts are
//! what the API server returns).

use k8s_openapi::api::batch::v1::{CronJob, CronJobSpec, JobTemplateSpec};

use super::job::validate_job_spec_body;
use super::template::{default_pod_template, selector_json};
use crate::field::{BadValue, ErrorList, FieldError, Path};
use crate::validation;

/// Defaults a CronJob on create: concurrencyPolicy Allow, suspend false, history limits 3
/// successful and 1 failed, the job template's pod spec as a Pod's. (`SetDefaults_Job` does
/// not apply to a JobTemplateSpec: the Job created from it is defaulted then.)
pub fn default_cron_job(cron_job: &mut CronJob) {
    let spec = &mut cron_job.spec;
    if spec.concurrency_policy.as_deref().unwrap_or("").is_empty() {
        spec.concurrency_policy = Some("Allow".into());
    }
    if spec.suspend.is_none() {
        spec.suspend = Some(false);
    }
    if spec.successful_jobs_history_limit.is_none() {
        spec.successful_jobs_history_limit = Some(3);
    }
    if spec.failed_jobs_history_limit.is_none() {
        spec.failed_jobs_history_limit = Some(1);
    }
    if let Some(job_spec) = spec.job_template.spec.as_mut() {
        default_pod_template(&mut job_spec.template);
    }
}

/// `ValidateCronJobCreate`.
pub fn validate_cron_job(cron_job: &CronJob) -> ErrorList {
    let mut errs =
        validation::meta::validate_object_meta(&cron_job.metadata, &Path::new("metadata"));
    let spec = &cron_job.spec;
    errs.extend(validate_cron_job_spec(spec, None, &Path::new("spec")));
    let name = cron_job.metadata.name.as_deref().unwrap_or("");
    // The controller names its Jobs `<name>-<11 characters>`; a Job name is a DNS-1035 label.
    if name.len() > 63 - 11 {
        errs.push(FieldError::invalid(
            &Path::new("metadata").child("name"),
            name,
            "must be no more than 52 characters",
        ));
    }
    errs
}

/// `ValidateCronJobUpdate` (the 52-character name limit is not re-checked, so old CronJobs
/// stay editable; metadata update rules are the registry's).
pub fn validate_cron_job_update(new: &CronJob, old: &CronJob) -> ErrorList {
    let (spec, old_spec) = (&new.spec, &old.spec);
    validate_cron_job_spec(spec, Some(old_spec), &Path::new("spec"))
}

fn validate_cron_job_spec(spec: &CronJobSpec, old: Option<&CronJobSpec>, path: &Path) -> ErrorList {
    let mut errs = ErrorList::new();
    let sp = path.child("schedule");
    if spec.schedule.is_empty() {
        errs.push(FieldError::required(&sp, ""));
    } else {
        if let Err(e) = parse_schedule(&spec.schedule) {
            errs.push(FieldError::invalid(&sp, spec.schedule.as_str(), e));
        }
        let allow_tz = old.is_some_and(|o| o.schedule.contains("TZ"));
        let has_tz = spec.schedule.contains("TZ");
        if allow_tz && has_tz && spec.time_zone.is_some() {
            errs.push(FieldError::invalid(
                &sp,
                spec.schedule.as_str(),
                "cannot use both timeZone field and TZ or CRON_TZ in schedule",
            ));
        } else if !allow_tz && has_tz {
            errs.push(FieldError::invalid(
                &sp,
                spec.schedule.as_str(),
                "cannot use TZ or CRON_TZ in schedule, use timeZone field instead",
            ));
        }
    }
    if let Some(s) = spec.starting_deadline_seconds {
        errs.extend(validation::validate_nonnegative(
            s,
            &path.child("startingDeadlineSeconds"),
        ));
    }
    if old.is_none_or(|o| o.time_zone != spec.time_zone) {
        errs.extend(validate_time_zone(
            spec.time_zone.as_deref(),
            &path.child("timeZone"),
        ));
    }
    let cp = path.child("concurrencyPolicy");
    let policies = ["Allow", "Forbid", "Replace"];
    match spec.concurrency_policy.as_deref().unwrap_or("") {
        "" => errs.push(FieldError::required(&cp, "")),
        p if !policies.contains(&p) => errs.push(FieldError::not_supported(&cp, p, &policies)),
        _ => {}
    }
    errs.extend(validate_job_template_spec(
        &spec.job_template,
        &path.child("jobTemplate"),
    ));
    for (value, name) in [
        (
            spec.successful_jobs_history_limit,
            "successfulJobsHistoryLimit",
        ),
        (spec.failed_jobs_history_limit, "failedJobsHistoryLimit"),
    ] {
        if let Some(v) = value {
            errs.extend(validation::validate_nonnegative(
                i64::from(v),
                &path.child(name),
            ));
        }
    }
    errs
}

/// `ValidateJobTemplateSpec`: the Job spec rules; the selector is always generated.
fn validate_job_template_spec(t: &JobTemplateSpec, path: &Path) -> ErrorList {
    let default_spec = k8s_openapi::api::batch::v1::JobSpec::default();
    let spec = t.spec.as_ref().unwrap_or(&default_spec);
    let sp = path.child("spec");
    let mut errs = validate_job_spec_body(spec, &sp);
    if let Some(s) = &spec.selector {
        errs.push(FieldError::invalid(
            &sp.child("selector"),
            selector_json(s),
            "`selector` will be auto-generated",
        ));
    }
    if spec.manual_selector == Some(true) {
        errs.push(FieldError::not_supported(
            &sp.child("manualSelector"),
            BadValue::Bool(true),
            &["nil", "false"],
        ));
    }
    errs
}

/// `validateTimeZone`: IANA-style names (each `/`-separated part 1–14 of `A-Za-z.-_0-9+`, not
/// `.`/`..`, not starting with `-`), never `Local`. Upstream also loads the zone from the
/// server's tz database; skiff's model does no I/O, so a well-formed unknown name passes here.
fn validate_time_zone(tz: Option<&str>, path: &Path) -> ErrorList {
    let Some(tz) = tz else {
        return ErrorList::new();
    };
    if tz.is_empty() {
        return vec![FieldError::invalid(
            path,
            tz,
            "timeZone must be nil or non-empty string",
        )];
    }
    let part_ok = |p: &str| {
        p != "."
            && p != ".."
            && !p.starts_with('-')
            && (1..=14).contains(&p.len())
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || ".-_+".contains(c))
    };
    if !tz.split('/').all(part_ok) {
        return vec![FieldError::invalid(
            path,
            tz,
            format!("unknown time zone {tz}"),
        )];
    }
    if tz.eq_ignore_ascii_case("Local") {
        return vec![FieldError::invalid(
            path,
            tz,
            "timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones",
        )];
    }
    ErrorList::new()
}

/// A parsed cron schedule: bit `n` of each field set when the value `n` matches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schedule {
    /// `TZ=`/`CRON_TZ=` prefix, if any.
    pub location: Option<String>,
    /// `@every <duration>`: a fixed interval in seconds instead of the fields.
    pub every_seconds: Option<u64>,
    pub minute: u64,
    pub hour: u64,
    pub dom: u64,
    pub month: u64,
    pub dow: u64,
    /// robfig's `starBit`: the day-of-month / day-of-week field was `*` or `?` (when one of
    /// them is, a day matches if the other matches; else if either matches).
    pub dom_star: bool,
    pub dow_star: bool,
}

impl Schedule {
    /// Whether the minute given by its calendar fields matches (`dow` 0 = Sunday).
    pub fn matches(&self, minute: u32, hour: u32, dom: u32, month: u32, dow: u32) -> bool {
        let bit = |set: u64, v: u32| v < 64 && set & (1u64 << v) != 0;
        let dom_match = bit(self.dom, dom);
        let dow_match = bit(self.dow, dow);
        let day = if self.dom_star || self.dow_star {
            dom_match && dow_match
        } else {
            dom_match || dow_match
        };
        bit(self.minute, minute) && bit(self.hour, hour) && bit(self.month, month) && day
    }
}

impl Schedule {
    /// The first time strictly after `after` (Unix seconds) the schedule fires, in UTC (a
    /// `timeZone` is the caller's: shift by the zone's offset), or `None` when nothing matches
    /// within five years (robfig's bound; e.g. `0 0 30 2 *`). `@every d`: `after + d`.
    pub fn next_after(&self, after: i64) -> Option<i64> {
        if let Some(every) = self.every_seconds {
            return after.checked_add(i64::try_from(every).ok()?);
        }
        let mut t = after.div_euclid(60).checked_add(1)?.checked_mul(60)?;
        let limit = after.checked_add(5 * 366 * 86_400)?;
        let bit = |set: u64, v: i64| (0..64).contains(&v) && set & (1u64 << v) != 0;
        while t <= limit {
            let (y, mo, d, h, mi, dow) = civil(t);
            let day_start = t - (h * 3600 + mi * 60);
            if !bit(self.month, mo) {
                // The first day of the next month.
                let (ny, nm) = if mo == 12 { (y + 1, 1) } else { (y, mo + 1) };
                t = days_from_civil(ny, nm, 1) * 86_400;
                continue;
            }
            let dom_match = bit(self.dom, d);
            let dow_match = bit(self.dow, dow);
            let day_ok = if self.dom_star || self.dow_star {
                dom_match && dow_match
            } else {
                dom_match || dow_match
            };
            if !day_ok {
                t = day_start + 86_400;
                continue;
            }
            if !bit(self.hour, h) {
                t = day_start + (h + 1) * 3600;
                continue;
            }
            if !bit(self.minute, mi) {
                t += 60;
                continue;
            }
            return Some(t);
        }
        None
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// (year, month, day, hour, minute, weekday with 0 = Sunday) of Unix seconds, UTC.
fn civil(t: i64) -> (i64, i64, i64, i64, i64, i64) {
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let dow = (days + 4).rem_euclid(7);
    (y, m, d, secs / 3600, (secs % 3600) / 60, dow)
}

struct Bounds {
    min: u32,
    max: u32,
    names: &'static [(&'static str, u32)],
}

const MINUTES: Bounds = Bounds {
    min: 0,
    max: 59,
    names: &[],
};
const HOURS: Bounds = Bounds {
    min: 0,
    max: 23,
    names: &[],
};
const DOM: Bounds = Bounds {
    min: 1,
    max: 31,
    names: &[],
};
const MONTHS: Bounds = Bounds {
    min: 1,
    max: 12,
    names: &[
        ("jan", 1),
        ("feb", 2),
        ("mar", 3),
        ("apr", 4),
        ("may", 5),
        ("jun", 6),
        ("jul", 7),
        ("aug", 8),
        ("sep", 9),
        ("oct", 10),
        ("nov", 11),
        ("dec", 12),
    ],
};
const DOW: Bounds = Bounds {
    min: 0,
    max: 6,
    names: &[
        ("sun", 0),
        ("mon", 1),
        ("tue", 2),
        ("wed", 3),
        ("thu", 4),
        ("fri", 5),
        ("sat", 6),
    ],
};

fn all(b: &Bounds) -> u64 {
    (b.min..=b.max).fold(0, |acc, v| acc | (1u64 << v))
}

/// `cron.ParseStandard`: five fields (minute hour day-of-month month day-of-week) with `*`,
/// `?`, ranges, steps, lists and month/day names, or a descriptor (`@yearly`, `@annually`,
/// `@monthly`, `@weekly`, `@daily`, `@midnight`, `@hourly`, `@every <duration>`), optionally
/// after `TZ=<zone> `/`CRON_TZ=<zone> `. Errors are robfig/cron v3's texts. Written here
/// because the cron crates' syntax and messages differ from robfig's.
pub fn parse_schedule(spec: &str) -> Result<Schedule, String> {
    if spec.is_empty() {
        return Err("empty spec string".into());
    }
    let mut spec = spec;
    let mut location = None;
    if spec.starts_with("TZ=") || spec.starts_with("CRON_TZ=") {
        let Some(space) = spec.find(' ') else {
            // robfig slices to the first space; without one Go panics in the parser's
            // recover and reports the zone as bad.
            return Err(format!("provided bad location {spec}: unknown time zone"));
        };
        let eq = spec.find('=').unwrap_or(0);
        location = Some(spec[eq + 1..space].to_string());
        spec = spec[space..].trim();
    }
    if spec.starts_with('@') {
        return parse_descriptor(spec, location);
    }
    let fields: Vec<&str> = spec.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(format!(
            "expected exactly 5 fields, found {}: [{}]",
            fields.len(),
            fields.join(" ")
        ));
    }
    let (minute, _) = field(fields[0], &MINUTES)?;
    let (hour, _) = field(fields[1], &HOURS)?;
    let (dom, dom_star) = field(fields[2], &DOM)?;
    let (month, _) = field(fields[3], &MONTHS)?;
    let (dow, dow_star) = field(fields[4], &DOW)?;
    Ok(Schedule {
        location,
        every_seconds: None,
        minute,
        hour,
        dom,
        month,
        dow,
        dom_star,
        dow_star,
    })
}

fn parse_descriptor(spec: &str, location: Option<String>) -> Result<Schedule, String> {
    let at =
        |minute: u64, hour: u64, dom: u64, month: u64, dow: u64, dom_star, dow_star| Schedule {
            location: location.clone(),
            every_seconds: None,
            minute,
            hour,
            dom,
            month,
            dow,
            dom_star,
            dow_star,
        };
    let (h, d, mo, w) = (all(&HOURS), all(&DOM), all(&MONTHS), all(&DOW));
    match spec {
        "@yearly" | "@annually" => Ok(at(1, 1, 1 << 1, 1 << 1, w, false, true)),
        "@monthly" => Ok(at(1, 1, 1 << 1, mo, w, false, true)),
        "@weekly" => Ok(at(1, 1, d, mo, 1, true, false)),
        "@daily" | "@midnight" => Ok(at(1, 1, d, mo, w, true, true)),
        "@hourly" => Ok(at(1, h, d, mo, w, true, true)),
        _ => {
            if let Some(d) = spec.strip_prefix("@every ") {
                let secs = go_duration_seconds(d)
                    .map_err(|e| format!("failed to parse duration {spec}: {e}"))?;
                return Ok(Schedule {
                    every_seconds: Some(secs),
                    ..at(0, 0, 0, 0, 0, false, false)
                });
            }
            Err(format!("unrecognized descriptor: {spec}"))
        }
    }
}

/// Go's `time.ParseDuration`, whole seconds (robfig rounds `@every` below a second up to
/// one second). Units ns, us, µs, ms, s, m, h; a sign; fractions.
fn go_duration_seconds(s: &str) -> Result<u64, String> {
    let quoted = crate::field::go_quote(s);
    let invalid = || format!("time: invalid duration {quoted}");
    let mut rest = s;
    let negative = rest.starts_with('-');
    rest = rest.strip_prefix(['-', '+']).unwrap_or(rest);
    if rest == "0" {
        return Ok(1);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (num, tail) = rest.split_at(num_len);
        if num.is_empty() || num == "." {
            return Err(invalid());
        }
        let value: f64 = num.parse().map_err(|_| invalid())?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let scale = match unit {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "" => return Err(format!("time: missing unit in duration {quoted}")),
            u => {
                return Err(format!(
                    "time: unknown unit {} in duration {quoted}",
                    crate::field::go_quote(u)
                ))
            }
        };
        total += value * scale;
        rest = tail;
    }
    if negative {
        total = -total;
    }
    if total < 1.0 {
        return Ok(1);
    }
    // Bounded by the Go duration range (~292 years) in practice; saturate.
    Ok(total.min(u64::MAX as f64) as u64)
}

/// `getField`: a comma-separated list of ranges → the bits, and whether it was `*`/`?`.
fn field(text: &str, b: &Bounds) -> Result<(u64, bool), String> {
    let mut bits = 0u64;
    let mut star = false;
    for expr in text.split(',') {
        let (r, s) = range(expr, b)?;
        bits |= r;
        star |= s;
    }
    Ok((bits, star))
}

/// `getRange`: `*`, `?`, `n`, `n-m`, each optionally `/step`.
fn range(expr: &str, b: &Bounds) -> Result<(u64, bool), String> {
    let range_and_step: Vec<&str> = expr.split('/').collect();
    let low_high: Vec<&str> = range_and_step[0].split('-').collect();
    let single = low_high.len() == 1;
    let (start, mut end, mut star);
    if low_high[0] == "*" || low_high[0] == "?" {
        start = b.min;
        end = b.max;
        star = true;
    } else {
        start = int_or_name(low_high[0], b.names)?;
        end = match low_high.len() {
            1 => start,
            2 => int_or_name(low_high[1], b.names)?,
            _ => return Err(format!("too many hyphens: {expr}")),
        };
        star = false;
    }
    let step = match range_and_step.len() {
        1 => 1,
        2 => {
            let step = must_parse_int(range_and_step[1])?;
            if single {
                end = b.max;
            }
            if step > 1 {
                star = false;
            }
            step
        }
        _ => return Err(format!("too many slashes: {expr}")),
    };
    if start < b.min {
        return Err(format!(
            "beginning of range ({start}) below minimum ({}): {expr}",
            b.min
        ));
    }
    if end > b.max {
        return Err(format!(
            "end of range ({end}) above maximum ({}): {expr}",
            b.max
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
        v = v.saturating_add(step);
    }
    Ok((bits, star))
}

fn int_or_name(expr: &str, names: &[(&str, u32)]) -> Result<u32, String> {
    let lower = expr.to_lowercase();
    if let Some((_, v)) = names.iter().find(|(n, _)| *n == lower) {
        return Ok(*v);
    }
    must_parse_int(expr)
}

/// `mustParseInt` with Go's `strconv.Atoi` messages. Values beyond every field's range are
/// capped (the range checks then report them).
fn must_parse_int(expr: &str) -> Result<u32, String> {
    let quoted = crate::field::go_quote(expr);
    match expr.parse::<i64>() {
        Ok(n) if n < 0 => Err(format!("negative number ({n}) not allowed: {expr}")),
        Ok(n) => Ok(u32::try_from(n.min(1 << 20)).unwrap_or(1 << 20)),
        Err(e) => {
            let why = match e.kind() {
                std::num::IntErrorKind::PosOverflow | std::num::IntErrorKind::NegOverflow => {
                    "value out of range"
                }
                _ => "invalid syntax",
            };
            Err(format!(
                "failed to parse int from {expr}: strconv.Atoi: parsing {quoted}: {why}"
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn cron(v: serde_json::Value) -> CronJob {
        serde_json::from_value(v).unwrap()
    }

    fn minimal(schedule: &str) -> serde_json::Value {
        json!({"metadata": {"name": "tick"}, "spec": {"schedule": schedule, "jobTemplate": {"spec": {
            "template": {"spec": {"restartPolicy": "OnFailure",
                "containers": [{"name": "c", "image": "busybox"}]}}}}}})
    }

    fn errors(v: serde_json::Value) -> Vec<String> {
        let mut c = cron(v);
        default_cron_job(&mut c);
        validate_cron_job(&c)
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn defaults_are_allow_unsuspended_3_and_1() {
        let mut c = cron(minimal("*/5 * * * *"));
        default_cron_job(&mut c);
        let s = c.spec;
        assert_eq!(s.concurrency_policy.as_deref(), Some("Allow"));
        assert_eq!(s.suspend, Some(false));
        assert_eq!(
            (s.successful_jobs_history_limit, s.failed_jobs_history_limit),
            (Some(3), Some(1))
        );
    }

    #[test]
    fn schedules_parse_as_robfig_cron() {
        for ok in [
            "*/5 * * * *",
            "0 0 1 jan,jul *",
            "@hourly",
            "@every 1h30m",
            "15 3 * * mon-fri",
            "0 */2 1-15/3 * ?",
        ] {
            assert!(parse_schedule(ok).is_ok(), "{ok}");
        }
        for (bad, msg) in [
            ("* * *", "expected exactly 5 fields, found 3: [* * *]"),
            ("@often", "unrecognized descriptor: @often"),
            ("61 * * * *", "end of range (61) above maximum (59): 61"),
            (
                "x * * * *",
                "failed to parse int from x: strconv.Atoi: parsing \"x\": invalid syntax",
            ),
            ("* * 0 * *", "beginning of range (0) below minimum (1): 0"),
            (
                "5-1 * * * *",
                "beginning of range (5) beyond end of range (1): 5-1",
            ),
            (
                "*/0 * * * *",
                "step of range should be a positive number: */0",
            ),
            ("1-2-3 * * * *", "too many hyphens: 1-2-3"),
            (
                "@every 5x",
                "failed to parse duration @every 5x: time: unknown unit \"x\" in duration \"5x\"",
            ),
        ] {
            assert_eq!(parse_schedule(bad), Err(msg.to_string()), "{bad}");
        }
    }

    #[test]
    fn schedules_match_minutes_with_robfigs_day_rule() {
        let s = parse_schedule("30 9 * * mon").unwrap();
        assert!(s.matches(30, 9, 7, 12, 1));
        assert!(!s.matches(30, 9, 8, 12, 2));
        // Both day fields restricted: either matches.
        let s = parse_schedule("0 0 1 * mon").unwrap();
        assert!(s.matches(0, 0, 1, 3, 4) && s.matches(0, 0, 9, 3, 1));
        let h = parse_schedule("@hourly").unwrap();
        assert!(h.matches(0, 17, 4, 12, 5) && !h.matches(1, 17, 4, 12, 5));
    }

    #[test]
    fn next_fire_times_follow_the_fields() {
        // 2026-12-04T23:59:30Z is a Friday.
        let t = 1_796_428_770;
        let at = |s: &str| parse_schedule(s).unwrap().next_after(t).unwrap();
        assert_eq!(at("* * * * *"), 1_796_428_800); // 2026-12-05T00:00:00Z
        assert_eq!(at("@hourly"), 1_796_428_800);
        assert_eq!(
            at("30 9 * * mon"),
            1_796_428_800 + 2 * 86_400 + 9 * 3600 + 1800
        ); // Mon 7th
        assert_eq!(at("0 0 1 jan *"), 1_798_761_600); // 2027-01-01
        assert_eq!(at("@every 90s"), t + 90);
        assert_eq!(parse_schedule("0 0 30 feb *").unwrap().next_after(t), None);
        assert_eq!(civil(0), (1970, 1, 1, 0, 0, 4));
    }

    #[test]
    fn validation_reports_schedule_tz_name_and_template() {
        let mut v = minimal("TZ=UTC 0 * * * *");
        v["metadata"]["name"] = json!("x".repeat(53));
        v["spec"]["timeZone"] = json!("Local");
        v["spec"]["jobTemplate"]["spec"]["selector"] = json!({"matchLabels": {"a": "b"}});
        assert_eq!(
            errors(v),
            vec![
                "spec.schedule: Invalid value: \"TZ=UTC 0 * * * *\": cannot use TZ or CRON_TZ in schedule, use timeZone field instead".to_string(),
                "spec.timeZone: Invalid value: \"Local\": timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones".into(),
                "spec.jobTemplate.spec.selector: Invalid value: {\"matchLabels\":{\"a\":\"b\"}}: `selector` will be auto-generated".into(),
                format!("metadata.name: Invalid value: \"{}\": must be no more than 52 characters", "x".repeat(53)),
            ]
        );
        assert!(errors(minimal("@daily")).is_empty());
    }
}
