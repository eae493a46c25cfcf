//! `jtp convert` through the built binary, on CronJob manifests as users have them: the
//! Kubernetes documentation's example, `kubectl get cronjob -o yaml` output, a Helm chart's
//! rendered CronJob (fixtures under tests/fixtures/cronjobs/).

mod common;

use jtp_crds::manifest::{Manifest, parse_documents};
use jtp_crds::{ConcurrencyPolicy, IntervalUnit, JobId, ScheduledJob, validate};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/cronjobs")
        .join(name)
}

struct Output {
    ok: bool,
    jobs: Vec<ScheduledJob>,
    stdout: String,
    stderr: String,
}

fn run(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = common::jtp()
        .arg("convert")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run jtp");
    let mut pipe = child.stdin.take().expect("stdin");
    pipe.write_all(stdin.unwrap_or("").as_bytes())
        .expect("write stdin");
    drop(pipe);
    let out = child.wait_with_output().expect("jtp ends");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let jobs = parse_documents(&stdout)
        .unwrap_or_else(|e| panic!("the output reads as manifests: {e}\n{stdout}"))
        .into_iter()
        .filter_map(|m| match m {
            Manifest::ScheduledJob(job) => Some(*job),
            _ => None,
        })
        .collect();
    Output {
        ok: out.status.success(),
        jobs,
        stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn convert_file(name: &str) -> Output {
    run(&[fixture(name).to_str().expect("utf-8 path")], None)
}

/// Every converted job passes the validation that the operator, the portal and preview apply.
fn assert_valid(jobs: &[ScheduledJob]) {
    for job in jobs {
        let name = job.metadata.name.as_deref().expect("a name");
        let namespace = job.metadata.namespace.as_deref().unwrap_or("default");
        validate(JobId { namespace, name }, &job.spec)
            .unwrap_or_else(|e| panic!("{namespace}/{name} converted to an invalid job: {e}"));
    }
}

#[test]
fn the_kubernetes_documentation_example_converts_to_an_inline_script_every_minute() {
    let out = convert_file("hello.yaml");
    assert!(out.ok, "{}", out.stderr);
    assert_valid(&out.jobs);
    let [job] = out.jobs.as_slice() else {
        panic!("one job: {}", out.stdout)
    };
    let spec = &job.spec;
    assert_eq!(job.metadata.name.as_deref(), Some("hello"));
    assert_eq!(spec.schedule.cron.as_deref(), Some("* * * * *"));
    assert_eq!(spec.time_zone, "UTC");
    assert_eq!(
        spec.script.inline.as_deref(),
        Some("date; echo Hello from the Kubernetes cluster")
    );
    assert_eq!(spec.image.as_deref(), Some("busybox:1.28"));
    assert_eq!(
        spec.concurrency_policy,
        ConcurrencyPolicy::Allow,
        "CronJob's default"
    );
    assert_eq!(spec.backoff_limit, Some(6), "a Job's default");
    assert_eq!(
        (spec.successful_jobs_history_limit, spec.failed_jobs_history_limit),
        (Some(3), Some(1))
    );
    let template = spec
        .pod_template
        .as_ref()
        .expect("a pod template")
        .parse()
        .expect("reads");
    let pod = template.spec.as_ref().expect("a pod spec");
    assert_eq!(pod.restart_policy.as_deref(), Some("OnFailure"));
    assert_eq!(pod.containers[0].name, "run");
    assert_eq!(
        pod.containers[0].image_pull_policy.as_deref(),
        Some("IfNotPresent")
    );
    for words in [
        "hello: no timeZone",
        "hello: backoffLimit: Kubernetes' default of 6",
        "hello: container \"hello\" is named \"run\"",
        "hello: restartPolicy OnFailure: kept",
    ] {
        assert!(
            out.stderr.contains(words),
            "stderr lacks {words:?}:\n{}",
            out.stderr
        );
    }
}

#[test]
fn kubectl_get_output_converts_every_item_and_says_what_it_left_out() {
    let out = convert_file("kubectl-get-list.yaml");
    assert!(out.ok, "{}", out.stderr);
    assert_valid(&out.jobs);
    let names: Vec<&str> = out
        .jobs
        .iter()
        .filter_map(|j| j.metadata.name.as_deref())
        .collect();
    assert_eq!(
        names,
        ["nightly-report", "odd-days-or-mondays", "every-ninety-minutes"]
    );

    let report = &out.jobs[0];
    assert_eq!(report.metadata.namespace.as_deref(), Some("ops"));
    let annotations = report.metadata.annotations.clone().unwrap_or_default();
    assert_eq!(
        annotations.get("team.example/owner").map(String::as_str),
        Some("data")
    );
    assert!(!annotations.contains_key("kubectl.kubernetes.io/last-applied-configuration"));
    assert!(report.metadata.uid.is_none() && report.metadata.resource_version.is_none());
    assert!(
        !out.stdout.contains("lastScheduleTime"),
        "status is not carried: {}",
        out.stdout
    );
    let spec = &report.spec;
    assert_eq!(spec.schedule.cron.as_deref(), Some("30 2 * * *"));
    assert_eq!(spec.time_zone, "America/New_York");
    assert_eq!(spec.concurrency_policy, ConcurrencyPolicy::Forbid);
    assert_eq!(spec.starting_deadline_seconds, Some(300));
    assert_eq!(spec.active_deadline_seconds, Some(1800));
    assert_eq!(spec.backoff_limit, Some(2));
    assert_eq!(
        (spec.successful_jobs_history_limit, spec.failed_jobs_history_limit),
        (Some(5), Some(2))
    );
    assert_eq!(spec.service_account_name.as_deref(), Some("reporter"));
    assert_eq!(
        spec.script.command.clone().unwrap_or_default(),
        ["python3", "-m", "reports.nightly", "--since", "24h"]
    );
    assert_eq!(spec.image.as_deref(), Some("python:3.12-slim"));
    let template = spec
        .pod_template
        .as_ref()
        .expect("a pod template")
        .parse()
        .expect("reads");
    let labels = template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    assert_eq!(labels.get("app").map(String::as_str), Some("reports"));
    let pod = template.spec.as_ref().expect("a pod spec");
    assert!(
        pod.service_account_name.is_none(),
        "moved to spec.serviceAccountName"
    );
    assert_eq!(pod.node_selector.clone().unwrap_or_default()["disk"], "ssd");
    assert_eq!(pod.tolerations.as_ref().map(Vec::len), Some(1));
    assert_eq!(
        pod.image_pull_secrets.as_ref().map(|s| s[0].name.as_str()),
        Some("registry-pull")
    );
    let run = &pod.containers[0];
    let env = run.env.clone().unwrap_or_default();
    assert!(
        env[0]
            .value_from
            .as_ref()
            .is_some_and(|f| f.secret_key_ref.is_some())
    );
    assert_eq!(env[1].value.as_deref(), Some("nightly"));
    assert!(run.env_from.is_some() && run.volume_mounts.is_some() && run.resources.is_some());
    let volume = &pod.volumes.as_ref().expect("volumes")[0];
    assert_eq!(volume.secret.as_ref().and_then(|s| s.default_mode), Some(0o400));
    assert!(
        out.stderr
            .contains("ops/nightly-report: jobTemplate.spec.ttlSecondsAfterFinished: not carried over"),
        "{}",
        out.stderr
    );

    // CRON_TZ= becomes the zone; `*/2` in the day of month keeps Kubernetes' OR with the weekday.
    let odd = &out.jobs[1].spec;
    assert_eq!(odd.time_zone, "Europe/London");
    assert_eq!(odd.schedule.cron.as_deref(), Some("0 6 1-31/2 * 1"));
    assert!(odd.suspend);
    for words in [
        "ops/odd-days-or-mondays: schedule: the CRON_TZ=Europe/London prefix became timeZone: Europe/London",
        "ops/odd-days-or-mondays: schedule \"0 6 */2 * 1\" became \"0 6 1-31/2 * 1\"",
        "ops/odd-days-or-mondays: jobTemplate.spec.parallelism: not carried over",
    ] {
        assert!(
            out.stderr.contains(words),
            "stderr lacks {words:?}:\n{}",
            out.stderr
        );
    }

    // @every becomes an interval.
    let every = &out.jobs[2].spec;
    let interval = every.schedule.interval.as_ref().expect("an interval");
    assert_eq!((interval.every, interval.unit), (90, IntervalUnit::Minutes));
    assert_eq!(every.script.inline.as_deref(), Some("echo tick"));
    assert!(
        out.stderr.contains(
            "ops/every-ninety-minutes: schedule \"@every 1h30m\": became interval every 90 minutes"
        )
    );
}

#[test]
fn a_helm_rendered_cron_job_keeps_its_whole_pod() {
    let out = convert_file("helm-backup.yaml");
    assert!(out.ok, "{}", out.stderr);
    assert_valid(&out.jobs);
    let [job] = out.jobs.as_slice() else {
        panic!("one job (the ServiceAccount is skipped): {}", out.stdout)
    };
    let spec = &job.spec;
    assert_eq!(spec.schedule.cron.as_deref(), Some("@daily"));
    assert_eq!(spec.time_zone, "Asia/Hong_Kong");
    assert_eq!(spec.concurrency_policy, ConcurrencyPolicy::Replace);
    assert_eq!(spec.backoff_limit, Some(10));
    assert_eq!(
        spec.script.inline.as_deref(),
        Some("pg_dump --format=custom --file=/backup/db.dump \"$DATABASE_URL\"")
    );
    assert_eq!(spec.service_account_name.as_deref(), Some("release-backup"));
    let labels = job.metadata.labels.clone().unwrap_or_default();
    assert_eq!(labels["app.kubernetes.io/managed-by"], "Helm");
    let template = spec
        .pod_template
        .as_ref()
        .expect("a pod template")
        .parse()
        .expect("reads");
    let pod = template.spec.as_ref().expect("pod");
    assert_eq!(pod.priority_class_name.as_deref(), Some("low-priority"));
    assert!(pod.affinity.is_some());
    assert_eq!(
        pod.security_context.as_ref().and_then(|c| c.run_as_user),
        Some(10001)
    );
    assert_eq!(
        pod.init_containers.as_ref().map(|c| c[0].name.as_str()),
        Some("wait-for-db")
    );
    let names: Vec<&str> = pod.containers.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["run", "uploader"]);
    let run = &pod.containers[0];
    assert_eq!(
        run.security_context
            .as_ref()
            .and_then(|c| c.read_only_root_filesystem),
        Some(true)
    );
    let env = run.env.clone().unwrap_or_default();
    assert!(env[1].value_from.as_ref().is_some_and(|f| f.field_ref.is_some()));
    let volumes: Vec<&str> = pod.volumes.iter().flatten().map(|v| v.name.as_str()).collect();
    assert_eq!(volumes, ["backup", "scratch"]);
    assert!(
        pod.volumes.as_ref().expect("volumes")[0]
            .persistent_volume_claim
            .is_some()
    );
    for words in [
        "document 1: ServiceAccount release-backup: not a CronJob",
        "release-backup: backoffLimit: 12 lowered to 10",
        "release-backup: container \"backup\" runs the script; 1 other container(s) are kept beside it",
    ] {
        assert!(
            out.stderr.contains(words),
            "stderr lacks {words:?}:\n{}",
            out.stderr
        );
    }
}

#[test]
fn stdin_is_read_and_a_cron_job_that_cannot_be_converted_fails_with_the_reason() {
    let yaml = std::fs::read_to_string(fixture("hello.yaml")).expect("fixture");
    let out = run(&[], Some(&yaml));
    assert!(out.ok, "{}", out.stderr);
    assert_eq!(out.jobs.len(), 1);
    let out = run(&["-"], Some(&yaml));
    assert_eq!(out.jobs.len(), 1, "{}", out.stderr);

    let entrypoint = yaml.replace(
        "            command:\n            - /bin/sh\n            - -c\n            - date; echo Hello from the Kubernetes cluster\n",
        "",
    );
    let bad_schedule = yaml
        .replace("\"* * * * *\"", "\"0 0 30 2 *\"")
        .replace("name: hello", "name: never");
    let out = run(&[], Some(&format!("{entrypoint}---\n{bad_schedule}")));
    assert!(!out.ok);
    assert!(
        out.stderr.contains(
            "hello: not converted: container \"hello\" has no command (it runs its image's entrypoint)"
        ),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains(
            "never: not converted: invalid ScheduledJob: spec.schedule.cron: cron \"0 0 30 2 *\" is invalid"
        ) && out.stderr.contains("never fires"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("2 object(s) not converted"), "{}", out.stderr);
}
