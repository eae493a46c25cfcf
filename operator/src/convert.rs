//! `jtp convert`: Kubernetes CronJobs in, equivalent ScheduledJobs out.
//!
//! Reads what `kubectl get cronjob -o yaml` prints (a `List`, or single objects, several documents
//! per file) and maps each CronJob: schedule and zone, suspend, concurrency policy, starting
//! deadline, history limits, the Job's backoff limit and deadline, and the whole pod template (the
//! first container becomes the script's `run` container, its command the script). Whatever cannot
//! be carried over is listed per CronJob, with the reason, for stderr. Every ScheduledJob written
//! passes [`jtp_crds::validate`].

use jtp_crds::pod::RUN_CONTAINER;
use jtp_crds::{
    ConcurrencyPolicy, IntervalSchedule, IntervalUnit, JobId, Schedule, ScheduledJob, ScheduledJobSpec,
    Script,
};
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Deserialize;
use std::collections::BTreeMap;

/// The `backoffLimit` of a Job that names none (Kubernetes' default).
const KUBERNETES_BACKOFF_LIMIT: i32 = 6;
/// The largest `backoffLimit` a ScheduledJob takes.
const MAX_BACKOFF_LIMIT: i32 = 10;
/// Annotations that describe the old object, not the job.
const DROPPED_ANNOTATIONS: [&str; 2] = [
    "kubectl.kubernetes.io/last-applied-configuration",
    "deprecated.daemonset.template.generation",
];

/// One CronJob's result.
#[derive(Debug)]
pub struct Converted {
    /// `namespace/name` (or `name`) of the CronJob.
    pub source: String,
    /// The ScheduledJob, when one could be made.
    pub job: Option<ScheduledJob>,
    /// What was not carried over, or changed, and why; or why nothing could be made.
    pub notes: Vec<String>,
    /// Not a CronJob: passed over, which is no failure.
    pub skipped: bool,
}

/// A document that is not a readable manifest.
#[derive(Debug, thiserror::Error)]
#[error("document {index}: {message}")]
pub struct ConvertError {
    pub index: usize,
    pub message: String,
}

/// Converts every CronJob in `yaml` (other kinds are noted and skipped).
pub fn convert(yaml: &str) -> Result<Vec<Converted>, ConvertError> {
    let mut out = Vec::new();
    for (index, doc) in serde_yaml::Deserializer::from_str(yaml).enumerate() {
        let index = index + 1;
        let value = serde_yaml::Value::deserialize(doc).map_err(|e| ConvertError {
            index,
            message: format!("not YAML: {e}"),
        })?;
        if value.is_null() {
            continue;
        }
        let items = match value.get("kind").and_then(serde_yaml::Value::as_str) {
            Some("List" | "CronJobList") => value
                .get("items")
                .and_then(serde_yaml::Value::as_sequence)
                .cloned()
                .unwrap_or_default(),
            _ => vec![value],
        };
        for item in items {
            out.push(convert_object(index, item));
        }
    }
    Ok(out)
}

fn convert_object(index: usize, item: serde_yaml::Value) -> Converted {
    let kind = item
        .get("kind")
        .and_then(serde_yaml::Value::as_str)
        .unwrap_or("")
        .to_owned();
    let name = item
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(serde_yaml::Value::as_str)
        .unwrap_or("")
        .to_owned();
    if kind != "CronJob" {
        return Converted {
            source: format!("document {index}: {kind} {name}"),
            job: None,
            notes: vec![format!("not a CronJob (kind {kind:?}): skipped")],
            skipped: true,
        };
    }
    match serde_yaml::from_value::<CronJob>(item) {
        Ok(cron_job) => convert_cron_job(&cron_job),
        Err(e) => Converted {
            source: format!("document {index}: CronJob {name}"),
            job: None,
            notes: vec![format!("not a readable CronJob: {e}")],
            skipped: false,
        },
    }
}

/// Maps one CronJob.
pub fn convert_cron_job(cron_job: &CronJob) -> Converted {
    let meta = &cron_job.metadata;
    let name = meta.name.clone().unwrap_or_default();
    let source = match &meta.namespace {
        Some(ns) => format!("{ns}/{name}"),
        None => name.clone(),
    };
    let mut notes = Vec::new();
    let result = build(cron_job, &mut notes);
    let job = match result {
        Ok(job) => {
            let id = JobId {
                namespace: job.metadata.namespace.as_deref().unwrap_or("default"),
                name: &name,
            };
            match jtp_crds::validate(id, &job.spec) {
                Ok(_) => Some(job),
                Err(invalid) => {
                    notes.push(format!("not converted: {invalid}"));
                    None
                }
            }
        }
        Err(why) => {
            notes.push(format!("not converted: {why}"));
            None
        }
    };
    Converted {
        source,
        job,
        notes,
        skipped: false,
    }
}

fn build(cron_job: &CronJob, notes: &mut Vec<String>) -> Result<ScheduledJob, String> {
    let spec = &cron_job.spec;
    let (schedule, zone_in_schedule) = convert_schedule(&spec.schedule, notes)?;
    let time_zone = match (spec.time_zone.clone(), zone_in_schedule) {
        (Some(zone), _) => zone,
        (None, Some(zone)) => zone,
        (None, None) => {
            notes.push(
                "no timeZone: a CronJob without one runs in kube-controller-manager's zone (UTC \
                 unless it was started otherwise); set timeZone: UTC, check it"
                    .to_owned(),
            );
            "UTC".to_owned()
        }
    };
    let job_spec = spec.job_template.spec.clone().unwrap_or_default();
    if let Some(meta) = &spec.job_template.metadata
        && (meta.labels.as_ref().is_some_and(|l| !l.is_empty())
            || meta.annotations.as_ref().is_some_and(|a| !a.is_empty()))
    {
        notes.push(
            "jobTemplate.metadata labels/annotations: not carried over (the operator labels each run's \
             Job itself); pod labels and annotations are"
                .to_owned(),
        );
    }
    for (field, set) in [
        ("parallelism", job_spec.parallelism.is_some_and(|p| p != 1)),
        ("completions", job_spec.completions.is_some_and(|c| c != 1)),
        ("completionMode", job_spec.completion_mode.is_some()),
        (
            "ttlSecondsAfterFinished",
            job_spec.ttl_seconds_after_finished.is_some(),
        ),
        ("podFailurePolicy", job_spec.pod_failure_policy.is_some()),
        ("backoffLimitPerIndex", job_spec.backoff_limit_per_index.is_some()),
        ("maxFailedIndexes", job_spec.max_failed_indexes.is_some()),
        ("successPolicy", job_spec.success_policy.is_some()),
        ("podReplacementPolicy", job_spec.pod_replacement_policy.is_some()),
        ("manualSelector", job_spec.manual_selector.is_some()),
        ("selector", job_spec.selector.is_some()),
    ] {
        if set {
            let why = if field == "ttlSecondsAfterFinished" {
                "finished Jobs are kept by successfulJobsHistoryLimit/failedJobsHistoryLimit, and every run stays in SQL"
            } else {
                "a run is one pod (with backoffLimit retries)"
            };
            notes.push(format!("jobTemplate.spec.{field}: not carried over: {why}"));
        }
    }
    let backoff_limit = match job_spec.backoff_limit {
        None => {
            notes.push(format!(
                "backoffLimit: Kubernetes' default of {KUBERNETES_BACKOFF_LIMIT} retries written out (a ScheduledJob's default is 0)"
            ));
            KUBERNETES_BACKOFF_LIMIT
        }
        Some(n) if n > MAX_BACKOFF_LIMIT => {
            notes.push(format!(
                "backoffLimit: {n} lowered to {MAX_BACKOFF_LIMIT}, the most a ScheduledJob takes"
            ));
            MAX_BACKOFF_LIMIT
        }
        Some(n) => n,
    };
    let concurrency_policy = match spec.concurrency_policy.as_deref() {
        None | Some("Allow") => ConcurrencyPolicy::Allow,
        Some("Forbid") => ConcurrencyPolicy::Forbid,
        Some("Replace") => ConcurrencyPolicy::Replace,
        Some(other) => return Err(format!("unknown concurrencyPolicy {other:?}")),
    };
    let (script, image, template, service_account) = convert_template(&job_spec.template, notes)?;

    let mut out_spec = ScheduledJobSpec::with_schedule(schedule);
    out_spec.time_zone = time_zone;
    out_spec.suspend = spec.suspend.unwrap_or(false);
    out_spec.script = script;
    out_spec.image = image;
    out_spec.pod_template = template.as_ref().map(jtp_crds::PodTemplate::from_spec);
    out_spec.service_account_name = service_account;
    out_spec.concurrency_policy = concurrency_policy;
    out_spec.starting_deadline_seconds = spec.starting_deadline_seconds;
    out_spec.active_deadline_seconds = job_spec.active_deadline_seconds;
    out_spec.backoff_limit = Some(backoff_limit);
    out_spec.successful_jobs_history_limit = Some(spec.successful_jobs_history_limit.unwrap_or(3));
    out_spec.failed_jobs_history_limit = Some(spec.failed_jobs_history_limit.unwrap_or(1));

    let source = &cron_job.metadata;
    let mut job = ScheduledJob::new(source.name.as_deref().unwrap_or_default(), out_spec);
    job.metadata = ObjectMeta {
        name: source.name.clone(),
        namespace: source.namespace.clone(),
        labels: source.labels.clone().filter(|l| !l.is_empty()),
        annotations: source
            .annotations
            .clone()
            .map(|a: BTreeMap<String, String>| {
                a.into_iter()
                    .filter(|(k, _)| !DROPPED_ANNOTATIONS.contains(&k.as_str()))
                    .collect::<BTreeMap<_, _>>()
            })
            .filter(|a| !a.is_empty()),
        ..ObjectMeta::default()
    };
    Ok(job)
}

/// The schedule, and a zone named by a `TZ=`/`CRON_TZ=` prefix.
fn convert_schedule(text: &str, notes: &mut Vec<String>) -> Result<(Schedule, Option<String>), String> {
    let mut rest = text.trim();
    let mut zone = None;
    for prefix in ["CRON_TZ=", "TZ="] {
        if let Some(after) = rest.strip_prefix(prefix) {
            let (tz, cron) = after.split_once(char::is_whitespace).unwrap_or((after, ""));
            notes.push(format!("schedule: the {prefix}{tz} prefix became timeZone: {tz}"));
            zone = Some(tz.to_owned());
            rest = cron.trim();
        }
    }
    if let Some(duration) = rest.strip_prefix("@every") {
        let secs = go_duration_secs(duration.trim())
            .ok_or_else(|| format!("schedule {text:?}: cannot read the @every duration"))?;
        let (every, unit) = [
            (86_400, IntervalUnit::Days),
            (3_600, IntervalUnit::Hours),
            (60, IntervalUnit::Minutes),
        ]
        .into_iter()
        .find(|(n, _)| secs % n == 0)
        .map_or((secs, IntervalUnit::Seconds), |(n, unit)| (secs / n, unit));
        notes.push(format!(
            "schedule {text:?}: became interval every {every} {}; its slots are on the job's own phase, \
             not every {secs} s after the controller started",
            unit.as_str()
        ));
        return Ok((
            Schedule {
                interval: Some(IntervalSchedule { every, unit }),
                ..Schedule::default()
            },
            zone,
        ));
    }
    let cron = keep_kubernetes_day_rule(rest, notes);
    Ok((
        Schedule {
            cron: Some(cron),
            ..Schedule::default()
        },
        zone,
    ))
}

/// Kubernetes reads a day field as unrestricted when one of its terms is `*` or `?` without a step
/// (or with step 1); this dialect, as Vixie cron, when the field *starts* with `*` or `?`. Where
/// the two disagree on whether the day fields combine with AND or OR, the day fields are rewritten
/// so the ScheduledJob runs on the CronJob's days.
fn keep_kubernetes_day_rule(cron: &str, notes: &mut Vec<String>) -> String {
    let fields: Vec<&str> = cron.split_whitespace().collect();
    let [minute, hour, dom, month, dow] = fields.as_slice() else {
        return cron.to_owned();
    };
    let kube_star = |f: &str| f.split(',').any(|t| matches!(t, "*" | "?" | "*/1" | "?/1"));
    let our_star = |f: &str| f.starts_with(['*', '?']);
    let kube_and = kube_star(dom) || kube_star(dow);
    let our_and = our_star(dom) || our_star(dow);
    if kube_and == our_and {
        return cron.to_owned();
    }
    let rewrite = |f: &str, range: &str| -> String {
        if kube_and {
            // Kubernetes: unrestricted. A field with a bare `*` term covers every value.
            if kube_star(f) {
                "*".to_owned()
            } else {
                f.to_owned()
            }
        } else {
            // Kubernetes: restricted. Spell a leading `*`/`?` as the field's range.
            f.split(',')
                .map(|t| match t.strip_prefix(['*', '?']) {
                    Some(step) => format!("{range}{step}"),
                    None => t.to_owned(),
                })
                .collect::<Vec<_>>()
                .join(",")
        }
    };
    let (new_dom, new_dow) = (rewrite(dom, "1-31"), rewrite(dow, "0-6"));
    let out = format!("{minute} {hour} {new_dom} {month} {new_dow}");
    let how = if kube_and { "AND" } else { "OR" };
    notes.push(format!(
        "schedule {cron:?} became {out:?}: Kubernetes combines these day fields with {how}, and a day \
         field starting with * means the other rule here (Vixie cron's)"
    ));
    out
}

/// Seconds in a Go duration such as `1h30m`, `90s`, `2h` (whole seconds only).
fn go_duration_secs(text: &str) -> Option<u64> {
    let mut total = 0u64;
    let mut number = String::new();
    let mut chars = text.chars().peekable();
    let mut any = false;
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit = match c {
            'h' => 3_600,
            'm' if chars.peek() != Some(&'s') => 60,
            's' => 1,
            _ => return None,
        };
        total = total.checked_add(number.parse::<u64>().ok()?.checked_mul(unit)?)?;
        number.clear();
        any = true;
    }
    (any && number.is_empty() && total > 0).then_some(total)
}

type TemplateParts = (Script, Option<String>, Option<PodTemplateSpec>, Option<String>);

/// The script, image, pod template and service account from the CronJob's pod template.
fn convert_template(template: &PodTemplateSpec, notes: &mut Vec<String>) -> Result<TemplateParts, String> {
    let mut pod = template.spec.clone().ok_or("the pod template has no spec")?;
    if pod.containers.is_empty() {
        return Err("the pod template has no container".to_owned());
    }
    let mut main = pod.containers.remove(0);
    if !pod.containers.is_empty() {
        notes.push(format!(
            "container {:?} runs the script; {} other container(s) are kept beside it",
            main.name,
            pod.containers.len()
        ));
    }
    let mut argv: Vec<String> = main.command.take().unwrap_or_default();
    let args = main.args.take().unwrap_or_default();
    if argv.is_empty() {
        return Err(format!(
            "container {:?} has no command (it runs its image's entrypoint{}): a ScheduledJob's script \
             names the program; add the entrypoint as command",
            main.name,
            if args.is_empty() { "" } else { " with args" }
        ));
    }
    argv.extend(args);
    let script = match argv.as_slice() {
        [sh, flag, body] if matches!(sh.as_str(), "sh" | "/bin/sh") && flag == "-c" => Script {
            inline: Some(body.clone()),
            ..Script::default()
        },
        _ => Script {
            command: Some(argv),
            ..Script::default()
        },
    };
    if main.name != RUN_CONTAINER {
        notes.push(format!(
            "container {:?} is named {RUN_CONTAINER:?} (the script's container; `kubectl logs -c` changes)",
            main.name
        ));
    }
    main.name = RUN_CONTAINER.to_owned();
    let image = main.image.take();
    let service_account = pod.service_account_name.take().or(pod.service_account.take());
    pod.service_account = None;
    if let Some(policy) = pod.restart_policy.as_deref()
        && policy == "OnFailure"
    {
        notes.push(
            "restartPolicy OnFailure: kept (failed containers restart in the same pod; a run's output is \
             the last attempt's)"
                .to_owned(),
        );
    }
    let main_is_bare = main
        == k8s_openapi::api::core::v1::Container {
            name: RUN_CONTAINER.to_owned(),
            ..Default::default()
        };
    if !main_is_bare {
        pod.containers.insert(0, main);
    }
    let metadata = template.metadata.as_ref().map(|m| ObjectMeta {
        labels: m.labels.clone().filter(|l| !l.is_empty()),
        annotations: m.annotations.clone().filter(|a| !a.is_empty()),
        ..ObjectMeta::default()
    });
    if template
        .metadata
        .as_ref()
        .is_some_and(|m| m.name.is_some() || m.namespace.is_some() || m.finalizers.is_some())
    {
        notes.push("pod template metadata other than labels and annotations: not carried over".to_owned());
    }
    let metadata = metadata.filter(|m| m.labels.is_some() || m.annotations.is_some());
    let pod_is_empty = pod == k8s_openapi::api::core::v1::PodSpec::default();
    let template = (!pod_is_empty || metadata.is_some()).then(|| PodTemplateSpec {
        metadata,
        spec: (!pod_is_empty).then_some(pod),
    });
    Ok((script, image, template, service_account))
}

/// The ScheduledJobs as YAML documents, ready for `kubectl apply -f -`.
pub fn to_yaml(jobs: &[&ScheduledJob]) -> Result<String, serde_yaml::Error> {
    let mut out = String::new();
    for job in jobs {
        let doc = serde_json::json!({
            "apiVersion": format!("{}/v1alpha1", jtp_crds::GROUP),
            "kind": "ScheduledJob",
            "metadata": job.metadata,
            "spec": job.spec,
        });
        out.push_str("---\n");
        out.push_str(&serde_yaml::to_string(&doc)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_read_as_seconds() {
        assert_eq!(go_duration_secs("1h30m"), Some(5_400));
        assert_eq!(go_duration_secs("90s"), Some(90));
        assert_eq!(go_duration_secs("2h"), Some(7_200));
        assert_eq!(go_duration_secs("5m0s"), Some(300));
        assert_eq!(go_duration_secs("1.5h"), None);
        assert_eq!(go_duration_secs("10ms"), None);
        assert_eq!(go_duration_secs(""), None);
    }

    #[test]
    fn day_fields_keep_their_kubernetes_meaning() {
        let mut notes = Vec::new();
        // Kubernetes: odd dates OR Mondays (`*/2` is restricted there).
        assert_eq!(
            keep_kubernetes_day_rule("0 0 */2 * 1", &mut notes),
            "0 0 1-31/2 * 1"
        );
        assert_eq!(
            keep_kubernetes_day_rule("0 0 1 * */2", &mut notes),
            "0 0 1 * 0-6/2"
        );
        // Kubernetes: `5,*` is unrestricted, so only the weekday counts.
        assert_eq!(keep_kubernetes_day_rule("0 0 5,* * 1", &mut notes), "0 0 * * 1");
        assert_eq!(notes.len(), 3, "{notes:?}");
        // Where both read the same, nothing changes and nothing is said.
        let mut quiet = Vec::new();
        for same in [
            "0 0 * * 1",
            "0 0 1,15 * fri",
            "*/5 * * * *",
            "0 0 */2 * *",
            "0 0 ? * mon",
        ] {
            assert_eq!(keep_kubernetes_day_rule(same, &mut quiet), same);
        }
        assert!(quiet.is_empty(), "{quiet:?}");
    }
}
