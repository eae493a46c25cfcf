//! Builds the `batch/v1` Job of one run from a ScheduledJob: pure, no client, no clock.
//!
//! The Job's name is a function of the ScheduledJob's name, the trigger and the instant, so a
//! restarted operator (or a second replica) applies the same object instead of a second run.

use chrono::{DateTime, Utc};
use jtp_crds::{
    ATTEMPT_ANNOTATION, FieldError, InvalidParameters, JOB_LABEL, MAX_REQUESTER_CHARS, PARAMETERS_ANNOTATION,
    ParameterValues, REQUESTER_ANNOTATION, RUN_NOW_ANNOTATION, RUN_NOW_PARAMETERS_ANNOTATION,
    RUN_NOW_REQUESTER_ANNOTATION, SCHEDULED_AT_ANNOTATION, SLOT_LABEL, ScheduledJob, TRIGGER_ANNOTATION,
    Trigger,
};
use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMapVolumeSource, Container, EnvVar, KeyToPath, PodSecurityContext, PodSpec,
    PodTemplateSpec, SeccompProfile, SecurityContext, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use std::collections::BTreeMap;

use super::{Error, Result};

/// Longest name a Job may have so that the `job-name` label its pods get stays valid.
pub const MAX_JOB_NAME: usize = 63;
/// Name of the container of a run's pod that runs the script (its logs are the run's output).
pub const CONTAINER_NAME: &str = jtp_crds::pod::RUN_CONTAINER;
/// Where a ConfigMap script is mounted.
pub const SCRIPT_MOUNT_DIR: &str = "/opt/jobtrigger";
/// File name of a mounted ConfigMap script inside [`SCRIPT_MOUNT_DIR`].
pub const SCRIPT_FILE_NAME: &str = "script";
/// Label on a Job holding its trigger (`schedule` or `manual`), for selectors.
pub const TRIGGER_LABEL: &str = "jobtrigger.io/trigger";
/// `backoffLimit` when the spec names none: a run is one attempt, as in the original system.
pub const DEFAULT_BACKOFF_LIMIT: i32 = 0;
/// User, group and fsGroup of a run whose template says nothing about who it runs as: not root,
/// so that the default image (busybox, whose user is root) passes `runAsNonRoot`. The same id as
/// the project's own image (distroless' `nonroot`).
pub const DEFAULT_RUN_AS_USER: i64 = 65532;

/// Operator-wide defaults that a spec may leave out.
#[derive(Clone, Debug)]
pub struct JobDefaults {
    /// Image of runs whose spec names none.
    pub image: String,
}

/// One run to start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Launch {
    pub job_name: String,
    pub scheduled_at: DateTime<Utc>,
    pub trigger: Trigger,
    /// 1 for a slot's first run, more for its retries (`spec.retries`).
    pub attempt: u32,
}

impl Launch {
    pub fn new(sj_name: &str, trigger: Trigger, scheduled_at: DateTime<Utc>) -> Self {
        Self::attempt(sj_name, trigger, scheduled_at, 1)
    }

    /// Attempt `attempt` of a slot.
    pub fn attempt(sj_name: &str, trigger: Trigger, scheduled_at: DateTime<Utc>, attempt: u32) -> Self {
        Self {
            job_name: attempt_job_name(sj_name, trigger, scheduled_at, attempt),
            scheduled_at,
            trigger,
            attempt,
        }
    }
}

/// Who asked for a manual launch: the ScheduledJob's requester annotation, when its run-now
/// annotation is the instant of this launch (so the name belongs to this request), trimmed and cut
/// to [`MAX_REQUESTER_CHARS`]. `None` for scheduled launches and when nobody said.
pub fn requester(sj: &ScheduledJob, launch: &Launch) -> Option<String> {
    if launch.trigger != Trigger::Manual {
        return None;
    }
    let annotations = sj.metadata.annotations.as_ref()?;
    let asked_at = DateTime::parse_from_rfc3339(annotations.get(RUN_NOW_ANNOTATION)?).ok()?;
    if asked_at.with_timezone(&Utc) != launch.scheduled_at {
        return None;
    }
    let name = annotations.get(RUN_NOW_REQUESTER_ANNOTATION)?.trim();
    (!name.is_empty()).then(|| name.chars().take(MAX_REQUESTER_CHARS).collect())
}

/// The values of a launch's parameters (`spec.parameters`), checked with
/// [`jtp_crds::parameters::resolve`]: a further attempt's are those of the attempt before it (its
/// Job's parameters annotation, `previous`), a manual launch's those of the ScheduledJob's
/// run-now-parameters annotation when its run-now annotation is this launch's instant (like the
/// requester), the rest take the defaults. Refused when the values do not fit the declarations
/// (or the annotation is not a JSON object of strings): that run is not started.
pub fn parameters(
    sj: &ScheduledJob,
    launch: &Launch,
    previous: Option<&ParameterValues>,
) -> Result<ParameterValues, InvalidParameters> {
    let supplied = match previous {
        Some(values) if launch.attempt > 1 => values.clone(),
        _ => requested_parameters(sj, launch)?,
    };
    jtp_crds::parameters::resolve(&sj.spec.parameters, &supplied)
}

/// The values the ScheduledJob's run-now-parameters annotation gives a manual launch.
fn requested_parameters(sj: &ScheduledJob, launch: &Launch) -> Result<ParameterValues, InvalidParameters> {
    let annotations = sj.metadata.annotations.as_ref();
    let asked_at = annotations
        .and_then(|a| a.get(RUN_NOW_ANNOTATION))
        .and_then(|v| DateTime::parse_from_rfc3339(v).ok())
        .map(|t| t.with_timezone(&Utc));
    let text = annotations.and_then(|a| a.get(RUN_NOW_PARAMETERS_ANNOTATION));
    match text {
        Some(text) if launch.trigger == Trigger::Manual && asked_at == Some(launch.scheduled_at) => {
            serde_json::from_str(text).map_err(|e| InvalidParameters {
                errors: vec![FieldError::new(
                    format!("metadata.annotations[{RUN_NOW_PARAMETERS_ANNOTATION}]"),
                    format!("not a JSON object of strings: {e}"),
                )],
            })
        }
        _ => Ok(ParameterValues::new()),
    }
}

/// Gives a run's Job its parameter values: each an environment variable of the script's
/// container (after the template's and `spec.env`'s), and all of them in the parameters
/// annotation of the Job and its pod (the ledger records them from there, a retry reads them).
pub fn with_parameters(job: &mut Job, values: &ParameterValues) {
    if values.is_empty() {
        return;
    }
    let text = serde_json::to_string(values).unwrap_or_default();
    job.metadata
        .annotations
        .get_or_insert_default()
        .insert(PARAMETERS_ANNOTATION.to_owned(), text.clone());
    let Some(template) = job.spec.as_mut().map(|s| &mut s.template) else {
        return;
    };
    template
        .metadata
        .get_or_insert_default()
        .annotations
        .get_or_insert_default()
        .insert(PARAMETERS_ANNOTATION.to_owned(), text);
    let run = template
        .spec
        .as_mut()
        .and_then(|pod| pod.containers.iter_mut().find(|c| c.name == CONTAINER_NAME));
    if let Some(run) = run {
        run.env
            .get_or_insert_default()
            .extend(values.iter().map(|(name, value)| EnvVar {
                name: name.clone(),
                value: Some(value.clone()),
                value_from: None,
            }));
    }
}

/// The values in a launched Job's parameters annotation (empty when it has none or it does not read).
pub fn job_parameters(job: &Job) -> ParameterValues {
    job.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(PARAMETERS_ANNOTATION))
        .and_then(|text| serde_json::from_str(text).ok())
        .unwrap_or_default()
}

/// The Job of attempt `attempt` of a slot: [`job_name`], with `-a<attempt>` from the second on.
/// Deterministic like the first, so a restarted operator finds a retry it already started.
pub fn attempt_job_name(sj_name: &str, trigger: Trigger, at: DateTime<Utc>, attempt: u32) -> String {
    if attempt <= 1 {
        return job_name(sj_name, trigger, at);
    }
    let marker = match trigger {
        Trigger::Schedule => "",
        Trigger::Manual => "m",
    };
    let suffix = format!("-{marker}{}-a{attempt}", at.timestamp());
    format!("{}{suffix}", fit(sj_name, MAX_JOB_NAME - suffix.len()))
}

/// `<name>-<unix secs>` for a scheduled slot, `<name>-m<unix secs>` for Run Now; the name part is
/// cut and given a short hash of the full name when the result would pass 63 characters.
pub fn job_name(sj_name: &str, trigger: Trigger, at: DateTime<Utc>) -> String {
    let marker = match trigger {
        Trigger::Schedule => "",
        Trigger::Manual => "m",
    };
    let suffix = format!("-{marker}{}", at.timestamp());
    format!("{}{suffix}", fit(sj_name, MAX_JOB_NAME - suffix.len()))
}

/// A label value (≤ 63 characters) naming a ScheduledJob, cut and hashed like [`job_name`].
pub fn label_value(sj_name: &str) -> String {
    fit(sj_name, MAX_JOB_NAME)
}

/// `name` if it fits in `max`, else a prefix plus `-` and 8 hex digits of a hash of `name`.
fn fit(name: &str, max: usize) -> String {
    if name.len() <= max {
        return name.to_owned();
    }
    let hash = format!("{:08x}", fnv1a(name) as u32);
    let keep = max.saturating_sub(hash.len() + 1);
    let prefix = name[..keep.min(name.len())].trim_end_matches(['-', '.']);
    format!("{prefix}-{hash}")
}

/// FNV-1a (64 bit), the hash the interval phases use too: stable across builds and platforms
/// (std's hasher is not), which names need.
fn fnv1a(name: &str) -> u64 {
    use std::hash::Hasher as _;
    let mut hash = fnv::FnvHasher::default();
    hash.write(name.as_bytes());
    hash.finish()
}

/// The command of the run's container for each script form.
fn command(sj: &ScheduledJob) -> Result<(Vec<String>, Vec<Volume>, Vec<VolumeMount>)> {
    let script = &sj.spec.script;
    if let Some(inline) = &script.inline {
        return Ok((vec!["sh".into(), "-c".into(), inline.clone()], vec![], vec![]));
    }
    if let Some(cm) = &script.config_map {
        let volume = Volume {
            name: "script".into(),
            config_map: Some(ConfigMapVolumeSource {
                name: cm.name.clone(),
                default_mode: Some(0o755),
                items: Some(vec![KeyToPath {
                    key: cm.key.clone(),
                    path: SCRIPT_FILE_NAME.into(),
                    mode: Some(0o755),
                    ..KeyToPath::default()
                }]),
                ..ConfigMapVolumeSource::default()
            }),
            ..Volume::default()
        };
        let mount = VolumeMount {
            name: "script".into(),
            mount_path: SCRIPT_MOUNT_DIR.into(),
            read_only: Some(true),
            ..VolumeMount::default()
        };
        let path = format!("{SCRIPT_MOUNT_DIR}/{SCRIPT_FILE_NAME}");
        return Ok((vec![path], vec![volume], vec![mount]));
    }
    if let Some(cmd) = &script.command {
        return Ok((cmd.clone(), vec![], vec![]));
    }
    if let Some(file) = &script.file {
        return Ok((vec![file.clone()], vec![], vec![]));
    }
    Err(Error::Build("the spec names no script"))
}

/// The Job of one run, ready for server-side apply: owned by `sj` (controller), labelled with the
/// job and the slot, annotated with the scheduled instant and the trigger.
pub fn build_job(sj: &ScheduledJob, launch: &Launch, defaults: &JobDefaults) -> Result<Job> {
    let owner = sj
        .controller_owner_ref(&())
        .ok_or(Error::Build("the ScheduledJob has no name or uid yet"))?;
    let sj_name = sj.metadata.name.clone().unwrap_or_default();
    let spec = &sj.spec;
    let (command, volumes, mounts) = command(sj)?;
    let labels = BTreeMap::from([
        (JOB_LABEL.to_owned(), label_value(&sj_name)),
        (SLOT_LABEL.to_owned(), launch.scheduled_at.timestamp().to_string()),
        (TRIGGER_LABEL.to_owned(), launch.trigger.as_str().to_owned()),
    ]);
    let mut annotations = BTreeMap::from([
        (
            SCHEDULED_AT_ANNOTATION.to_owned(),
            launch
                .scheduled_at
                .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
        ),
        (TRIGGER_ANNOTATION.to_owned(), launch.trigger.as_str().to_owned()),
        (ATTEMPT_ANNOTATION.to_owned(), launch.attempt.to_string()),
    ]);
    if let Some(requester) = requester(sj, launch) {
        annotations.insert(REQUESTER_ANNOTATION.to_owned(), requester);
    }
    let template = match &spec.pod_template {
        Some(template) => template
            .parse()
            .map_err(|_| Error::Build("the pod template is not a PodTemplateSpec"))?,
        None => PodTemplateSpec::default(),
    };
    let mut pod = template.spec.unwrap_or_default();
    // The script's container: the template's `run` container (its env, envFrom, mounts, security
    // context… kept), given the script's command and the spec's overrides; added first when absent.
    let mut container = match pod.containers.iter().position(|c| c.name == CONTAINER_NAME) {
        Some(i) => pod.containers.remove(i),
        None => Container::default(),
    };
    let mut env = container.env.take().unwrap_or_default();
    env.extend(spec.env.iter().map(|v| EnvVar {
        name: v.name.clone(),
        value: Some(v.value.clone()),
        value_from: None,
    }));
    let mut all_mounts = container.volume_mounts.take().unwrap_or_default();
    all_mounts.extend(mounts);
    let container = Container {
        name: CONTAINER_NAME.into(),
        image: spec
            .image
            .clone()
            .or(container.image.take())
            .or_else(|| Some(defaults.image.clone())),
        command: Some(command),
        args: None,
        env: (!env.is_empty()).then_some(env),
        working_dir: spec.working_dir.clone().or(container.working_dir.take()),
        resources: spec.resources.clone().or(container.resources.take()),
        volume_mounts: (!all_mounts.is_empty()).then_some(all_mounts),
        ..container
    };
    pod.containers.insert(0, container);
    let mut all_volumes = pod.volumes.take().unwrap_or_default();
    all_volumes.extend(volumes);
    pod.volumes = (!all_volumes.is_empty()).then_some(all_volumes);
    pod.restart_policy = pod.restart_policy.or_else(|| Some("Never".into()));
    restrict(&mut pod);
    pod.service_account_name = spec.service_account_name.clone();
    pod.service_account = None;
    // The template's pod labels and annotations, with ours (which find and place the run) on top.
    let template_meta = template.metadata.unwrap_or_default();
    let mut pod_labels = template_meta.labels.unwrap_or_default();
    pod_labels.extend(labels.clone());
    let mut pod_annotations = template_meta.annotations.unwrap_or_default();
    pod_annotations.extend(annotations.clone());
    Ok(Job {
        metadata: ObjectMeta {
            name: Some(launch.job_name.clone()),
            namespace: sj.metadata.namespace.clone(),
            labels: Some(labels.clone()),
            annotations: Some(annotations.clone()),
            owner_references: Some(vec![owner]),
            ..ObjectMeta::default()
        },
        spec: Some(JobSpec {
            backoff_limit: Some(spec.backoff_limit.unwrap_or(DEFAULT_BACKOFF_LIMIT)),
            active_deadline_seconds: spec.active_deadline_seconds,
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    annotations: Some(pod_annotations),
                    ..ObjectMeta::default()
                }),
                spec: Some(pod),
            },
            ..JobSpec::default()
        }),
        status: None,
    })
}

/// Fills in the `restricted` Pod Security Standard where the template leaves a field unset, so a
/// run works in a namespace enforcing it and elsewhere runs with the least it needs:
/// - who it runs as: when neither the pod nor any container names a user or `runAsNonRoot`, the
///   pod runs as [`DEFAULT_RUN_AS_USER`] (user, group, fsGroup) with `runAsNonRoot: true`; a
///   template that names any of them decides alone (`runAsUser: 0` runs as root);
/// - seccomp: `RuntimeDefault` for the pod unless the pod or a container names a profile;
/// - every container (init ones too): `allowPrivilegeEscalation: false` unless set (or the container is
///   privileged, which the API refuses together with it) and all capabilities dropped unless the
///   container names its own `capabilities`.
fn restrict(pod: &mut PodSpec) {
    let containers = || pod.containers.iter().chain(pod.init_containers.iter().flatten());
    let container_names_user = containers().any(|c| {
        c.security_context
            .as_ref()
            .is_some_and(|s| s.run_as_user.is_some() || s.run_as_non_root.is_some())
    });
    let container_names_seccomp = containers().any(|c| {
        c.security_context
            .as_ref()
            .is_some_and(|s| s.seccomp_profile.is_some())
    });
    let context = pod
        .security_context
        .get_or_insert_with(PodSecurityContext::default);
    if !container_names_user && context.run_as_user.is_none() && context.run_as_non_root.is_none() {
        context.run_as_user = Some(DEFAULT_RUN_AS_USER);
        context.run_as_group = context.run_as_group.or(Some(DEFAULT_RUN_AS_USER));
        context.fs_group = context.fs_group.or(Some(DEFAULT_RUN_AS_USER));
        context.run_as_non_root = Some(true);
    }
    if !container_names_seccomp && context.seccomp_profile.is_none() {
        context.seccomp_profile = Some(SeccompProfile {
            type_: "RuntimeDefault".into(),
            localhost_profile: None,
        });
    }
    for container in pod
        .containers
        .iter_mut()
        .chain(pod.init_containers.iter_mut().flatten())
    {
        let context = container
            .security_context
            .get_or_insert_with(SecurityContext::default);
        if context.privileged != Some(true) {
            context.allow_privilege_escalation = context.allow_privilege_escalation.or(Some(false));
        }
        if context.capabilities.is_none() {
            context.capabilities = Some(Capabilities {
                add: None,
                drop: Some(vec!["ALL".into()]),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jtp_crds::{ConfigMapScript, JobId, ScheduledJobSpec, Script};

    const JOB: JobId<'static> = JobId {
        namespace: "ops",
        name: "report",
    };

    fn sj(name: &str, spec: ScheduledJobSpec) -> ScheduledJob {
        let mut sj = ScheduledJob::new(name, spec);
        sj.metadata.namespace = Some("ops".into());
        sj.metadata.uid = Some("uid-1".into());
        sj
    }

    fn defaults() -> JobDefaults {
        JobDefaults {
            image: "busybox:1.36".into(),
        }
    }

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(secs, 0).expect("valid instant")
    }

    #[test]
    fn names_are_deterministic_and_short() {
        assert_eq!(
            job_name("report", Trigger::Schedule, at(1_800_000_000)),
            "report-1800000000"
        );
        assert_eq!(
            job_name("report", Trigger::Manual, at(1_800_000_000)),
            "report-m1800000000"
        );
        let long = "a".repeat(80);
        let one = job_name(&long, Trigger::Schedule, at(1_800_000_000));
        // Pinned: an upgraded operator must find the Jobs an older one named.
        assert_eq!(
            one,
            format!("{}-8c57aa35-1800000000", "a".repeat(43)),
            "FNV-1a of the name, its low 32 bits"
        );
        assert!(one.len() <= MAX_JOB_NAME, "{one}");
        assert!(one.ends_with("-1800000000"));
        let other = job_name(&format!("{long}b"), Trigger::Schedule, at(1_800_000_000));
        assert_ne!(one, other, "different long names get different hashes");
        assert!(label_value(&long).len() <= MAX_JOB_NAME);
    }

    #[test]
    fn inline_script_runs_with_sh_and_defaults_apply() {
        let sj = sj("report", ScheduledJobSpec::daily("09:00").script("echo hi"));
        let launch = Launch::new("report", Trigger::Schedule, at(1_800_000_000));
        let job = build_job(&sj, &launch, &defaults()).expect("builds");
        let spec = job.spec.expect("spec");
        assert_eq!(spec.backoff_limit, Some(0));
        let pod = spec.template.spec.expect("pod");
        assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
        let c = &pod.containers[0];
        assert_eq!(c.image.as_deref(), Some("busybox:1.36"));
        assert_eq!(
            c.command.clone().unwrap_or_default(),
            vec!["sh".to_string(), "-c".into(), "echo hi".into()]
        );
        let owner = &job.metadata.owner_references.expect("owner")[0];
        assert_eq!(owner.controller, Some(true));
        assert_eq!(owner.uid, "uid-1");
        let labels = job.metadata.labels.expect("labels");
        assert_eq!(labels[SLOT_LABEL], "1800000000");
        assert_eq!(labels[JOB_LABEL], "report");
        let ann = job.metadata.annotations.expect("annotations");
        assert_eq!(ann[SCHEDULED_AT_ANNOTATION], "2027-01-15T08:00:00Z");
        assert_eq!(ann[TRIGGER_ANNOTATION], "schedule");
    }

    #[test]
    fn a_manual_job_names_who_asked_only_for_the_run_now_it_belongs_to() {
        let mut sj = sj("backup", ScheduledJobSpec::manual());
        let asked = Launch::new("backup", Trigger::Manual, at(5));
        sj.metadata.annotations = Some(BTreeMap::from([
            (RUN_NOW_ANNOTATION.to_owned(), at(5).to_rfc3339()),
            (
                RUN_NOW_REQUESTER_ANNOTATION.to_owned(),
                "  alice@example.com ".to_owned(),
            ),
        ]));
        let job = build_job(&sj, &asked, &defaults()).expect("builds");
        assert_eq!(
            job.metadata.annotations.expect("annotations")[REQUESTER_ANNOTATION],
            "alice@example.com"
        );
        // The annotation of an earlier request does not name the requester of a later one.
        assert_eq!(
            requester(&sj, &Launch::new("backup", Trigger::Manual, at(6))),
            None
        );
        assert_eq!(
            requester(&sj, &Launch::new("backup", Trigger::Schedule, at(5))),
            None
        );
        let long = "x".repeat(MAX_REQUESTER_CHARS + 10);
        sj.metadata
            .annotations
            .as_mut()
            .expect("set")
            .insert(RUN_NOW_REQUESTER_ANNOTATION.to_owned(), long);
        assert_eq!(
            requester(&sj, &asked).map(|r| r.chars().count()),
            Some(MAX_REQUESTER_CHARS)
        );
    }

    fn region_job() -> ScheduledJob {
        let mut spec = ScheduledJobSpec::manual();
        spec.env = vec![jtp_crds::EnvVar {
            name: "REPORT".into(),
            value: "nightly".into(),
        }];
        spec.parameters = vec![
            jtp_crds::Parameter {
                name: "REGION".into(),
                description: None,
                default: Some("eu".into()),
                allowed: vec!["eu".into(), "us".into()],
                pattern: None,
            },
            jtp_crds::Parameter {
                name: "TICKET".into(),
                description: None,
                default: None,
                allowed: Vec::new(),
                pattern: Some("[A-Z]+-[0-9]+".into()),
            },
        ];
        sj("report", spec)
    }

    fn values(pairs: &[(&str, &str)]) -> ParameterValues {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn a_run_now_takes_the_values_of_its_own_request_checked_and_as_environment() {
        let mut sj = region_job();
        sj.metadata.annotations = Some(BTreeMap::from([
            (RUN_NOW_ANNOTATION.to_owned(), at(5).to_rfc3339()),
            (
                RUN_NOW_PARAMETERS_ANNOTATION.to_owned(),
                r#"{"TICKET":"OPS-12"}"#.to_owned(),
            ),
        ]));
        let asked = Launch::new("report", Trigger::Manual, at(5));
        let got = parameters(&sj, &asked, None).expect("valid");
        assert_eq!(got, values(&[("REGION", "eu"), ("TICKET", "OPS-12")]));

        let mut job = build_job(&sj, &asked, &defaults()).expect("builds");
        with_parameters(&mut job, &got);
        assert_eq!(job_parameters(&job), got);
        let pod = job.spec.as_ref().expect("spec").template.clone();
        let env: Vec<(String, String)> = pod.spec.expect("pod").containers[0]
            .env
            .clone()
            .unwrap_or_default()
            .into_iter()
            .map(|e| (e.name, e.value.unwrap_or_default()))
            .collect();
        assert_eq!(
            env,
            [("REPORT", "nightly"), ("REGION", "eu"), ("TICKET", "OPS-12")]
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
        );
        assert_eq!(
            pod.metadata.expect("meta").annotations.expect("annotations")[PARAMETERS_ANNOTATION],
            r#"{"REGION":"eu","TICKET":"OPS-12"}"#
        );

        // A later run-now that brings no values of its own does not get these.
        let later = Launch::new("report", Trigger::Manual, at(6));
        let refused = parameters(&sj, &later, None).expect_err("TICKET has no default");
        assert_eq!(refused.errors[0].field, "parameters.TICKET");
        // A retry runs with the values of the attempt before it.
        let retry = Launch::attempt("report", Trigger::Manual, at(6), 2);
        let before = values(&[("TICKET", "OPS-9")]);
        assert_eq!(
            parameters(&sj, &retry, Some(&before)),
            Ok(values(&[("REGION", "eu"), ("TICKET", "OPS-9")]))
        );
    }

    #[test]
    fn values_that_do_not_fit_refuse_the_run_with_their_field() {
        let mut sj = region_job();
        sj.metadata.annotations = Some(BTreeMap::from([
            (RUN_NOW_ANNOTATION.to_owned(), at(5).to_rfc3339()),
            (
                RUN_NOW_PARAMETERS_ANNOTATION.to_owned(),
                r#"{"REGION":"mars","TICKET":"x"}"#.to_owned(),
            ),
        ]));
        let asked = Launch::new("report", Trigger::Manual, at(5));
        let refused = parameters(&sj, &asked, None).expect_err("refused");
        let fields: Vec<&str> = refused.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["parameters.REGION", "parameters.TICKET"]);
        sj.metadata
            .annotations
            .as_mut()
            .expect("set")
            .insert(RUN_NOW_PARAMETERS_ANNOTATION.to_owned(), "[1]".to_owned());
        let unreadable = parameters(&sj, &asked, None).expect_err("not an object");
        assert_eq!(
            unreadable.errors[0].field,
            "metadata.annotations[jobtrigger.io/run-now-parameters]"
        );
    }

    #[test]
    fn config_map_script_is_mounted_executable() {
        let mut spec = ScheduledJobSpec::daily("09:00");
        spec.script = Script {
            config_map: Some(ConfigMapScript {
                name: "scripts".into(),
                key: "backup.sh".into(),
            }),
            ..Script::default()
        };
        spec.image = Some("alpine:3".into());
        let sj = sj("backup", spec);
        let job =
            build_job(&sj, &Launch::new("backup", Trigger::Manual, at(5)), &defaults()).expect("builds");
        let pod = job.spec.expect("spec").template.spec.expect("pod");
        let volume = &pod.volumes.expect("volumes")[0];
        let cm = volume.config_map.as_ref().expect("configMap volume");
        assert_eq!(cm.default_mode, Some(0o755));
        assert_eq!(cm.items.as_ref().expect("items")[0].key, "backup.sh");
        let c = &pod.containers[0];
        assert_eq!(c.image.as_deref(), Some("alpine:3"));
        assert_eq!(
            c.command.clone().unwrap_or_default(),
            vec![format!("{SCRIPT_MOUNT_DIR}/{SCRIPT_FILE_NAME}")]
        );
    }

    #[test]
    fn command_and_file_run_as_given() {
        let mut spec = ScheduledJobSpec::daily("09:00");
        spec.script = Script {
            command: Some(vec!["python3".into(), "-V".into()]),
            ..Script::default()
        };
        spec.active_deadline_seconds = Some(60);
        spec.backoff_limit = Some(2);
        let job = build_job(
            &sj("a", spec.clone()),
            &Launch::new("a", Trigger::Schedule, at(10)),
            &defaults(),
        )
        .expect("builds");
        let js = job.spec.expect("spec");
        assert_eq!(js.active_deadline_seconds, Some(60));
        assert_eq!(js.backoff_limit, Some(2));
        assert_eq!(
            js.template.spec.expect("pod").containers[0]
                .command
                .clone()
                .unwrap_or_default(),
            vec!["python3".to_string(), "-V".into()]
        );
        spec.script = Script {
            file: Some("/usr/local/bin/run.sh".into()),
            ..Script::default()
        };
        let job = build_job(
            &sj("a", spec),
            &Launch::new("a", Trigger::Schedule, at(10)),
            &defaults(),
        )
        .expect("builds");
        assert_eq!(
            job.spec.expect("spec").template.spec.expect("pod").containers[0]
                .command
                .clone()
                .unwrap_or_default(),
            vec!["/usr/local/bin/run.sh".to_string()]
        );
    }

    #[test]
    fn a_pod_template_shapes_the_run_pod_and_the_script_keeps_its_container() {
        let mut spec = ScheduledJobSpec::daily("09:00").script("echo $TOKEN");
        spec.env = vec![jtp_crds::EnvVar {
            name: "PLAIN".into(),
            value: "1".into(),
        }];
        spec.image = Some("alpine:3".into());
        spec.service_account_name = Some("runner".into());
        spec.pod_template = Some(
            serde_json::from_value(serde_json::json!({
                "metadata": {
                    "labels": { "team": "data", "jobtrigger.io/slot": "spoofed" },
                    "annotations": { "note": "kept" }
                },
                "spec": {
                    "nodeSelector": { "disk": "ssd" },
                    "tolerations": [{ "key": "batch", "operator": "Exists", "effect": "NoSchedule" }],
                    "priorityClassName": "low",
                    "imagePullSecrets": [{ "name": "pull" }],
                    "affinity": { "nodeAffinity": { "requiredDuringSchedulingIgnoredDuringExecution": {
                        "nodeSelectorTerms": [{ "matchExpressions": [{ "key": "zone", "operator": "In", "values": ["a"] }] }]
                    } } },
                    "initContainers": [{ "name": "fetch", "image": "busybox:1.36", "command": ["true"] }],
                    "containers": [
                        { "name": "sidecar", "image": "envoy:1" },
                        {
                            "name": "run",
                            "image": "ignored:1",
                            "env": [{ "name": "TOKEN", "valueFrom": { "secretKeyRef": { "name": "creds", "key": "token" } } }],
                            "envFrom": [{ "configMapRef": { "name": "settings" } }],
                            "volumeMounts": [{ "name": "creds", "mountPath": "/etc/creds", "readOnly": true }],
                            "securityContext": { "runAsNonRoot": true, "allowPrivilegeEscalation": false },
                            "resources": { "limits": { "memory": "64Mi" } }
                        }
                    ],
                    "volumes": [{ "name": "creds", "secret": { "secretName": "creds", "defaultMode": 256 } }]
                }
            }))
            .expect("a pod template"),
        );
        assert!(jtp_crds::validate(JOB, &spec).is_ok());
        let job = build_job(
            &sj("report", spec),
            &Launch::new("report", Trigger::Schedule, at(1_800_000_000)),
            &defaults(),
        )
        .expect("builds");
        let template = job.spec.expect("spec").template;
        let meta = template.metadata.expect("pod metadata");
        let labels = meta.labels.expect("labels");
        assert_eq!(labels["team"], "data");
        assert_eq!(labels[SLOT_LABEL], "1800000000", "our labels win");
        assert_eq!(meta.annotations.expect("annotations")["note"], "kept");
        let pod = template.spec.expect("pod");
        assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
        assert_eq!(pod.service_account_name.as_deref(), Some("runner"));
        assert_eq!(pod.priority_class_name.as_deref(), Some("low"));
        assert_eq!(pod.node_selector.expect("nodeSelector")["disk"], "ssd");
        assert_eq!(
            pod.tolerations.expect("tolerations")[0].key.as_deref(),
            Some("batch")
        );
        assert!(pod.affinity.is_some());
        assert_eq!(pod.image_pull_secrets.expect("pull secrets")[0].name, "pull");
        assert_eq!(pod.init_containers.expect("init")[0].name, "fetch");
        let names: Vec<&str> = pod.containers.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["run", "sidecar"], "the script's container first");
        let run = &pod.containers[0];
        assert_eq!(run.image.as_deref(), Some("alpine:3"), "spec.image wins");
        assert_eq!(
            run.command.clone().unwrap_or_default(),
            vec!["sh".to_string(), "-c".into(), "echo $TOKEN".into()]
        );
        let env = run.env.clone().unwrap_or_default();
        assert_eq!(env[0].name, "TOKEN");
        assert!(
            env[0]
                .value_from
                .as_ref()
                .is_some_and(|f| f.secret_key_ref.is_some())
        );
        assert_eq!(
            (env[1].name.as_str(), env[1].value.as_deref()),
            ("PLAIN", Some("1"))
        );
        assert!(run.env_from.is_some());
        assert_eq!(
            run.volume_mounts.clone().unwrap_or_default()[0].mount_path,
            "/etc/creds"
        );
        assert_eq!(
            run.security_context.as_ref().and_then(|c| c.run_as_non_root),
            Some(true)
        );
        assert!(run.resources.is_some());
        let volumes = pod.volumes.expect("volumes");
        assert_eq!(volumes[0].secret.as_ref().and_then(|s| s.default_mode), Some(256));
    }

    #[test]
    fn without_a_run_container_the_template_gets_one() {
        let mut spec = ScheduledJobSpec::daily("09:00");
        spec.pod_template = Some(
            serde_json::from_value(serde_json::json!({ "spec": { "nodeSelector": { "disk": "ssd" } } }))
                .expect("a pod template"),
        );
        let job = build_job(
            &sj("a", spec),
            &Launch::new("a", Trigger::Schedule, at(10)),
            &defaults(),
        )
        .expect("builds");
        let pod = job.spec.expect("spec").template.spec.expect("pod");
        assert_eq!(pod.containers.len(), 1);
        assert_eq!(pod.containers[0].name, CONTAINER_NAME);
        assert_eq!(pod.containers[0].image.as_deref(), Some("busybox:1.36"));
        assert!(pod.node_selector.is_some());
    }

    fn pod_of(spec: ScheduledJobSpec) -> PodSpec {
        build_job(
            &sj("a", spec),
            &Launch::new("a", Trigger::Schedule, at(10)),
            &defaults(),
        )
        .expect("builds")
        .spec
        .expect("spec")
        .template
        .spec
        .expect("pod")
    }

    fn with_template(template: serde_json::Value) -> ScheduledJobSpec {
        let mut spec = ScheduledJobSpec::daily("09:00").script("id");
        spec.pod_template = Some(serde_json::from_value(template).expect("a pod template"));
        assert!(jtp_crds::validate(JOB, &spec).is_ok());
        spec
    }

    #[test]
    fn a_run_is_restricted_by_default_and_not_root() {
        let pod = pod_of(with_template(serde_json::json!({ "spec": {
            "initContainers": [{ "name": "fetch", "image": "busybox:1.36", "command": ["true"] }]
        } })));
        let context = pod.security_context.expect("pod securityContext");
        assert_eq!(context.run_as_non_root, Some(true));
        assert_eq!(context.run_as_user, Some(DEFAULT_RUN_AS_USER));
        assert_eq!(context.run_as_group, Some(DEFAULT_RUN_AS_USER));
        assert_eq!(context.fs_group, Some(DEFAULT_RUN_AS_USER));
        assert_eq!(
            context.seccomp_profile.map(|p| p.type_).as_deref(),
            Some("RuntimeDefault")
        );
        let containers = pod.containers.iter().chain(pod.init_containers.iter().flatten());
        for c in containers {
            let sc = c.security_context.as_ref().expect("container securityContext");
            assert_eq!(sc.allow_privilege_escalation, Some(false), "{}", c.name);
            assert_eq!(
                sc.capabilities.as_ref().and_then(|c| c.drop.clone()),
                Some(vec!["ALL".to_string()]),
                "{}",
                c.name
            );
        }
    }

    #[test]
    fn a_template_that_says_who_the_run_is_decides_it() {
        // Root, asked for in the run container: no user, no runAsNonRoot, the capabilities it names.
        let pod = pod_of(with_template(serde_json::json!({ "spec": { "containers": [{
            "name": "run",
            "securityContext": { "runAsUser": 0, "capabilities": { "add": ["NET_BIND_SERVICE"] } }
        }] } })));
        let context = pod.security_context.expect("pod securityContext");
        assert_eq!((context.run_as_user, context.run_as_non_root), (None, None));
        assert_eq!(
            context.seccomp_profile.map(|p| p.type_).as_deref(),
            Some("RuntimeDefault"),
            "what the template leaves out is still filled in"
        );
        let run = pod.containers[0].security_context.clone().expect("kept");
        assert_eq!(run.run_as_user, Some(0));
        assert_eq!(
            run.capabilities.and_then(|c| c.add),
            Some(vec!["NET_BIND_SERVICE".to_string()])
        );
        assert_eq!(run.allow_privilege_escalation, Some(false));

        // The image's own non-root user: runAsNonRoot without a user.
        let pod = pod_of(with_template(serde_json::json!({ "spec": {
            "securityContext": { "runAsNonRoot": true, "seccompProfile": { "type": "Unconfined" } }
        } })));
        let context = pod.security_context.expect("pod securityContext");
        assert_eq!((context.run_as_user, context.run_as_non_root), (None, Some(true)));
        assert_eq!(
            context.seccomp_profile.map(|p| p.type_).as_deref(),
            Some("Unconfined")
        );

        // A privileged container keeps what the API allows with it.
        let pod = pod_of(with_template(serde_json::json!({ "spec": { "containers": [{
            "name": "run", "securityContext": { "privileged": true }
        }] } })));
        let run = pod.containers[0].security_context.clone().expect("kept");
        assert_eq!(
            (run.privileged, run.allow_privilege_escalation),
            (Some(true), None)
        );
    }
}
