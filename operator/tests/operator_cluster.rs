//! The operator against the real control plane of testenv/ (kube-apiserver, the Job controller,
//! the scheduler and jtp-node running the scripts). Each test has its own namespace and its own
//! in-process operator restricted to it, recording runs in a real SQL store of its own (a SQLite
//! file, or a database on the test PostgreSQL), which the test reads back as the portal does.

mod common;

use chrono::{DateTime, Utc};
use common::cluster::{
    Database, Operator, POLL, TIMEOUT, client, delete_all, finished, first_finished, runs_of, wait_runs,
};
use common::link::Link;
use jtp_crds::{RunStatus, SLOT_LABEL, ScheduledJob, ScheduledJobSpec, Trigger};
use jtp_operator::controller::OperatorArgs;
use jtp_store::Store;
use jtp_testenv::{TestNamespace, kubectl, wait_for};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::events::v1::Event;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::json;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

fn sj(name: &str, spec: ScheduledJobSpec) -> ScheduledJob {
    ScheduledJob::new(name, spec)
}

async fn create(ns: &TestNamespace, job: &ScheduledJob) -> ScheduledJob {
    let api: Api<ScheduledJob> = ns.api();
    api.create(&PostParams::default(), job)
        .await
        .expect("create ScheduledJob")
}

/// The name of the Kubernetes Job of a run of namespace `ns` (its row has `namespace/name`).
fn job_of(ns: &TestNamespace, run: &jtp_store::Run) -> Option<String> {
    let qualified = run.summary.k8s_job_name.as_deref()?;
    qualified
        .strip_prefix(&format!("{}/", ns.name()))
        .map(str::to_owned)
}

async fn jobs_of(ns: &TestNamespace, name: &str) -> Vec<Job> {
    let jobs: Api<Job> = ns.api();
    jobs.list(&ListParams::default().labels(&format!("{}={name}", jtp_crds::JOB_LABEL)))
        .await
        .expect("list Jobs")
        .items
}

async fn event_reasons(ns: &TestNamespace) -> Vec<String> {
    let events: Api<Event> = ns.api();
    events
        .list(&ListParams::default())
        .await
        .expect("list Events")
        .items
        .into_iter()
        .filter_map(|e| e.reason)
        .collect()
}

/// Waits until an Event with this reason is published (Events follow the status write).
async fn wait_events(ns: &TestNamespace, reason: &str) -> Vec<String> {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let reasons = event_reasons(ns).await;
        if reasons.iter().any(|r| r == reason) {
            return reasons;
        }
        assert!(Instant::now() < deadline, "no {reason} Event in {reasons:?}");
        tokio::time::sleep(POLL).await;
    }
}

fn now_rfc3339() -> String {
    Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The skipped-slot incidents SQL holds for the job (what alerts and the job's panel show).
async fn skipped_incidents(db: &Database, uid: &str) -> Vec<jtp_store::AlertEvent> {
    let job = db.store.get_job_by_uid(uid).await.expect("mirror row");
    db.store
        .job_alerts(job.id, 50)
        .await
        .expect("incidents")
        .into_iter()
        .map(|a| a.event)
        .filter(|e| e.kind == jtp_store::AlertKind::Skipped)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interval_job_fires_records_output_and_status_and_is_mirrored_until_deleted() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "op-interval").await;
    let db = Database::sqlite().await;
    let op = Operator::start(&client, &[ns.name()], &db.url, |_| {});
    let mut spec = ScheduledJobSpec::interval(10, jtp_crds::IntervalUnit::Seconds)
        .script("echo \"hello $GREETING\"; echo to-stderr >&2");
    spec.env = vec![jtp_crds::EnvVar {
        name: "GREETING".into(),
        value: "from-jtp".into(),
    }];
    let id = jtp_crds::JobId {
        namespace: ns.name(),
        name: "tick",
    };
    let slots = jtp_crds::validate(id, &spec).expect("valid");
    let created = create(&ns, &sj("tick", spec)).await;
    let uid = created.uid().expect("uid");

    let runs = wait_runs(&db.store, &uid, "one SUCCESS run", TIMEOUT, |r| {
        !finished(r).is_empty()
    })
    .await;
    let (run, output) = (&finished(&runs)[0].summary, &finished(&runs)[0].log_output);
    assert_eq!(run.status, RunStatus::Success, "{output}");
    assert_eq!(run.exit_code, Some(0));
    assert_eq!((run.trigger, run.attempt), (Trigger::Schedule, 1));
    assert_eq!(run.runner.as_deref(), Some("operator"));
    assert_eq!(run.requester, None, "nobody asked for a scheduled run");
    assert!(output.contains("hello from-jtp"), "{output}");
    assert!(output.contains("to-stderr"), "{output}");
    assert_eq!(
        slots.next_after(run.scheduled_for - chrono::Duration::seconds(10)),
        Some(run.scheduled_for),
        "runs start on the job's slots (10 s apart, on the phase of its namespace and name)"
    );

    let api: Api<ScheduledJob> = ns.api();
    let sj = wait_for(&api, "tick", TIMEOUT, "show the run in its status", |sj| {
        sj.status
            .as_ref()
            .is_some_and(|s| s.last_status == Some(RunStatus::Success))
    })
    .await;
    let status = sj.status.expect("status");
    assert!(status.next_run.is_some_and(|n| n > run.scheduled_for));
    assert_eq!(status.observed_generation, sj.metadata.generation);
    assert!(
        status
            .conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True")
    );
    assert!(status.schedule_description.is_some());
    assert!(
        sj.metadata
            .finalizers
            .unwrap_or_default()
            .iter()
            .any(|f| f == "jobtrigger.io/sql-mirror")
    );

    let jobs = jobs_of(&ns, "tick").await;
    let job = jobs
        .iter()
        .find(|j| {
            j.labels().get(SLOT_LABEL).map(String::as_str) == Some(&run.scheduled_for.timestamp().to_string())
        })
        .expect("the run's Job");
    assert!(job.labels().contains_key(jtp_crds::JOB_LABEL));
    assert_eq!(
        run.k8s_job_name.as_deref(),
        Some(format!("{}/{}", ns.name(), job.name_any()).as_str()),
        "the row names its Job (namespace/name)"
    );
    wait_events(&ns, "Succeeded").await;

    // A deleted ScheduledJob: the mirror row is marked deleted, the runs stay.
    api.delete("tick", &DeleteParams::default())
        .await
        .expect("delete");
    let deadline = Instant::now() + TIMEOUT;
    while api.get_opt("tick").await.expect("get").is_some() {
        assert!(Instant::now() < deadline, "the finalizer was never removed");
        tokio::time::sleep(POLL).await;
    }
    let row = db.store.get_job_by_uid(&uid).await.expect("mirror row");
    assert!(row.deleted_at.is_some(), "mirror row marked deleted: {row:?}");
    assert!(!runs_of(&db.store, &uid).await.is_empty(), "history kept");
    delete_all(&ns).await;
    op.stop().await;
}

/// Without a database URL the operator starts all the same, and says at once, as a warning, that
/// runs are not kept and how to give it a database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_without_a_database_url_warns_that_runs_are_not_kept() {
    use std::io::BufRead as _;
    use std::sync::mpsc::RecvTimeoutError;
    let client = client().await;
    let ns = TestNamespace::new(&client, "op-nodb").await;
    let mut child = common::jtp()
        .args([
            "operator",
            "--no-leader-election",
            "--metrics-addr",
            "127.0.0.1:0",
        ])
        .args(["--namespaces", ns.name()])
        .env("KUBECONFIG", jtp_testenv::kubeconfig_path())
        .env("RUST_LOG", "info")
        .env_remove("JTP_DATABASE_URL")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start jtp operator");
    let stderr = child.stderr.take().expect("its stderr");
    let _operator = common::Jtp::guard(child);
    let (lines, read) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + TIMEOUT;
    let mut before = Vec::new();
    let warning = loop {
        match read.recv_timeout(POLL) {
            Ok(line) if line.contains("--database-url") => break line,
            Ok(line) => before.push(line),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                panic!("jtp operator ended without the warning: {before:#?}")
            }
        }
        assert!(
            Instant::now() < deadline,
            "no word of the missing database URL: {before:#?}"
        );
    };
    assert!(warning.contains("WARN"), "{warning}");
    for words in [
        "runs are NOT kept",
        "lost at restart",
        "not shown by the portal",
        "JTP_DATABASE_URL",
        "postgres://",
        "sqlite://",
    ] {
        assert!(warning.contains(words), "{words:?} is not in {warning}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_now_via_kubectl_annotate_makes_exactly_one_run() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "op-runnow").await;
    let db = Database::sqlite().await;
    // A window longer than the run: the run costs one status write and one Event.
    let op = Operator::start(&client, &[ns.name()], &db.url, |a| {
        a.status_coalesce_seconds = 45;
    });
    let uid = create(
        &ns,
        &sj("adhoc", ScheduledJobSpec::manual().script("echo manual run")),
    )
    .await
    .uid()
    .expect("uid");
    let api: Api<ScheduledJob> = ns.api();
    wait_for(&api, "adhoc", TIMEOUT, "be reconciled", |sj| sj.status.is_some()).await;
    assert_eq!(
        api.get("adhoc")
            .await
            .expect("get")
            .status
            .and_then(|s| s.next_run),
        None
    );
    let writes_before = op.metrics.api_writes_total();

    let value = now_rfc3339();
    kubectl(&[
        "-n",
        ns.name(),
        "annotate",
        "sj",
        "adhoc",
        &format!("jobtrigger.io/run-now={value}"),
    ]);
    let runs = wait_runs(&db.store, &uid, "the manual run", TIMEOUT, |r| {
        !finished(r).is_empty()
    })
    .await;
    let run = finished(&runs)[0];
    assert_eq!(
        (run.summary.status, run.summary.trigger),
        (RunStatus::Success, Trigger::Manual)
    );
    assert_eq!(
        Some(run.summary.scheduled_for),
        DateTime::parse_from_rfc3339(&value).ok().map(|t| t.to_utc()),
        "a manual run is for the instant of its Run Now"
    );
    assert!(run.log_output.contains("manual run"), "{}", run.log_output);
    wait_for(&api, "adhoc", TIMEOUT, "record the handled run-now", |sj| {
        sj.status.as_ref().and_then(|s| s.last_run_now.as_deref()) == Some(value.as_str())
            && sj.status.as_ref().and_then(|s| s.last_status) == Some(RunStatus::Success)
    })
    .await;
    wait_events(&ns, "Succeeded").await;
    let events: Api<Event> = ns.api();
    let ours: Vec<(String, String)> = events
        .list(&ListParams::default())
        .await
        .expect("list Events")
        .items
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.kind.as_deref()) == Some("ScheduledJob"))
        .map(|e| (e.reason.unwrap_or_default(), e.note.unwrap_or_default()))
        .collect();
    assert_eq!(
        ours.iter().map(|(r, _)| r.as_str()).collect::<Vec<_>>(),
        ["Succeeded"],
        "a run that ends within the window has one Event: {ours:?}"
    );
    assert_eq!(
        op.metrics.api_writes_total() - writes_before,
        3,
        "the Job, one status write and one Event"
    );
    // Touching the object again (same value) starts nothing more.
    kubectl(&["-n", ns.name(), "label", "sj", "adhoc", "touched=yes"]);
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(runs_of(&db.store, &uid).await.len(), 1);
    assert_eq!(jobs_of(&ns, "adhoc").await.len(), 1);
    delete_all(&ns).await;
    op.stop().await;
}

/// Run Now ignores the concurrency policy: under Forbid, a second Run Now while the first run is
/// in flight starts a second run (the standalone runner once dropped it; both modes now agree).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_run_now_under_forbid_while_the_first_runs_starts_a_second_run() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "op-runnow-forbid").await;
    let db = Database::sqlite().await;
    let op = Operator::start(&client, &[ns.name()], &db.url, |_| {});
    let spec = ScheduledJobSpec::manual().script("echo running; sleep 8");
    assert_eq!(spec.concurrency_policy, jtp_crds::ConcurrencyPolicy::Forbid);
    let uid = create(&ns, &sj("twice", spec)).await.uid().expect("uid");
    let annotate = |value: &str| {
        kubectl(&[
            "-n",
            ns.name(),
            "annotate",
            "sj",
            "twice",
            "--overwrite",
            &format!("jobtrigger.io/run-now={value}"),
        ]);
    };
    annotate(&now_rfc3339());
    wait_runs(&db.store, &uid, "the first run to start", TIMEOUT, |r| {
        !r.is_empty()
    })
    .await;
    // Run Now values are whole seconds: the second one is a later second.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    annotate(&now_rfc3339());
    let runs = wait_runs(&db.store, &uid, "both runs to finish", TIMEOUT, |r| {
        finished(r).len() == 2
    })
    .await;
    let mut both: Vec<_> = finished(&runs).into_iter().map(|r| &r.summary).collect();
    both.sort_by_key(|r| r.scheduled_for);
    for run in &both {
        assert_eq!((run.status, run.trigger), (RunStatus::Success, Trigger::Manual));
    }
    assert!(
        both[0].finished_at.is_some_and(|end| both[1].scheduled_for < end),
        "the second Run Now came while the first ran"
    );
    assert_eq!(jobs_of(&ns, "twice").await.len(), 2);
    assert!(
        !event_reasons(&ns).await.iter().any(|r| r == "Skipped"),
        "Run Now is never skipped"
    );
    assert!(
        skipped_incidents(&db, &uid).await.is_empty(),
        "no skipped-slot incident in SQL either"
    );
    delete_all(&ns).await;
    op.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failure_and_error_are_classified_with_their_output() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "op-fail").await;
    let db = Database::sqlite().await;
    let op = Operator::start(&client, &[ns.name()], &db.url, |_| {});
    let value = now_rfc3339();
    let annotated = |mut job: ScheduledJob| {
        job.metadata.annotations = Some([("jobtrigger.io/run-now".to_owned(), value.clone())].into());
        job
    };
    let fails = create(
        &ns,
        &annotated(sj(
            "fails",
            ScheduledJobSpec::manual().script("echo about to fail; exit 3"),
        )),
    )
    .await;
    let mut pull = ScheduledJobSpec::manual();
    pull.image = Some("unpullable.invalid/x".into());
    let pull = create(&ns, &annotated(sj("pull", pull))).await;
    let mut missing = ScheduledJobSpec::manual();
    missing.script = jtp_crds::Script {
        command: Some(vec!["/no/such/program".into()]),
        ..jtp_crds::Script::default()
    };
    let missing = create(&ns, &annotated(sj("missing", missing))).await;
    let mut invalid = ScheduledJobSpec::daily("09:00").in_zone("Mars/Olympus");
    invalid.description = Some("bad zone".into());
    create(&ns, &sj("invalid", invalid)).await;

    let failed = first_finished(&db.store, &fails.uid().expect("uid")).await;
    let (run, output) = (&failed.summary, &failed.log_output);
    assert_eq!((run.status, run.exit_code), (RunStatus::Failure, Some(3)));
    assert!(output.contains("about to fail"), "{output}");

    let pulled = first_finished(&db.store, &pull.uid().expect("uid")).await;
    let (run, output) = (&pulled.summary, &pulled.log_output);
    assert_eq!(run.status, RunStatus::Error);
    assert!(
        output.contains("ErrImagePull") || output.contains("ImagePullBackOff"),
        "{output}"
    );
    wait_no_jobs(&ns, "pull").await;

    let not_found = first_finished(&db.store, &missing.uid().expect("uid")).await;
    let (run, output) = (&not_found.summary, &not_found.log_output);
    assert_eq!(run.status, RunStatus::Error, "{not_found:?}");
    assert!(
        output.to_lowercase().contains("no such program")
            || output.contains("not found")
            || output.contains("StartError"),
        "{output}"
    );

    let api: Api<ScheduledJob> = ns.api();
    let bad = wait_for(&api, "invalid", TIMEOUT, "get Valid=False", |sj| {
        sj.status.as_ref().is_some_and(|s| {
            s.conditions
                .iter()
                .any(|c| c.type_ == "Valid" && c.status == "False")
        })
    })
    .await;
    let valid = bad
        .status
        .expect("status")
        .conditions
        .into_iter()
        .find(|c| c.type_ == "Valid")
        .expect("Valid");
    assert!(valid.message.contains("Mars/Olympus"), "{}", valid.message);
    let reasons = event_reasons(&ns).await;
    for reason in ["InvalidSpec", "Failed", "Errored"] {
        assert!(
            reasons.iter().any(|r| r == reason),
            "no {reason} Event in {reasons:?}"
        );
    }
    delete_all(&ns).await;
    op.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forbid_skips_a_slot_while_a_run_is_active() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "op-forbid").await;
    let db = Database::sqlite().await;
    let op = Operator::start(&client, &[ns.name()], &db.url, |_| {});
    let uid = create(
        &ns,
        &sj(
            "slow",
            ScheduledJobSpec::interval(10, jtp_crds::IntervalUnit::Seconds).script("sleep 22"),
        ),
    )
    .await
    .uid()
    .expect("uid");
    let first = wait_runs(&db.store, &uid, "the first run to start", TIMEOUT, |r| {
        !r.is_empty()
    })
    .await;
    let first_slot = first.first().expect("run").summary.scheduled_for;
    // The next two slots fall while the first run sleeps: both are skipped.
    let until = first_slot + chrono::Duration::seconds(21);
    while Utc::now() < until {
        tokio::time::sleep(POLL).await;
    }
    let jobs = jobs_of(&ns, "slow").await;
    assert_eq!(
        jobs.len(),
        1,
        "Forbid started a second run: {:?}",
        jobs.iter().map(|j| j.name_any()).collect::<Vec<_>>()
    );
    assert_eq!(runs_of(&db.store, &uid).await.len(), 1);
    assert!(event_reasons(&ns).await.iter().any(|r| r == "Skipped"));
    let skipped = skipped_incidents(&db, &uid).await;
    assert_eq!(
        skipped.len(),
        1,
        "one incident for the streak of skipped slots: {skipped:#?}"
    );
    let api: Api<ScheduledJob> = ns.api();
    let status = api.get("slow").await.expect("get").status.expect("status");
    assert!(
        status
            .last_scheduled_time
            .is_some_and(|t| t >= first_slot + chrono::Duration::seconds(20))
    );
    assert_eq!(status.active.len(), 1);
    delete_all(&ns).await;
    op.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replace_stops_the_running_run_and_a_deleted_job_closes_its_active_run() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "op-replace").await;
    let db = Database::sqlite().await;
    let op = Operator::start(&client, &[ns.name()], &db.url, |_| {});
    let mut spec =
        ScheduledJobSpec::interval(10, jtp_crds::IntervalUnit::Seconds).script("echo begun; sleep 120");
    spec.concurrency_policy = jtp_crds::ConcurrencyPolicy::Replace;
    let uid = create(&ns, &sj("long", spec)).await.uid().expect("uid");
    // The second slot replaces the first run: it is recorded FAILURE with its output so far.
    let runs = wait_runs(
        &db.store,
        &uid,
        "a replaced run and its successor",
        TIMEOUT,
        |r| {
            let failed = r.iter().find(|r| r.summary.status == RunStatus::Failure);
            failed.is_some_and(|f| {
                r.iter().any(|r| {
                    r.summary.status == RunStatus::Running
                        && r.summary.scheduled_for > f.summary.scheduled_for
                })
            })
        },
    )
    .await;
    let replaced = &runs
        .iter()
        .find(|r| r.summary.status == RunStatus::Failure)
        .expect("replaced")
        .log_output;
    assert!(replaced.contains("begun"), "output so far kept: {replaced}");
    assert!(replaced.contains("replaced by a newer run"), "{replaced}");
    wait_events(&ns, "Replaced").await;

    // Deleted while a run is active: that run is closed, never left RUNNING.
    let api: Api<ScheduledJob> = ns.api();
    api.delete("long", &DeleteParams::default())
        .await
        .expect("delete");
    let runs = wait_runs(&db.store, &uid, "every run closed", TIMEOUT, |r| {
        r.iter().all(|r| r.summary.status.is_finished())
    })
    .await;
    assert!(
        runs.iter().any(|r| r
            .log_output
            .contains("the ScheduledJob was deleted while this run was active")),
        "{runs:#?}"
    );
    delete_all(&ns).await;
    op.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_operator_restarted_mid_run_makes_no_duplicate() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "op-restart").await;
    let db = Database::sqlite().await;
    let op = Operator::start(&client, &[ns.name()], &db.url, |_| {});
    let mut job = sj(
        "once",
        ScheduledJobSpec::manual().script("sleep 6; echo finished"),
    );
    job.metadata.annotations = Some([("jobtrigger.io/run-now".to_owned(), now_rfc3339())].into());
    let uid = create(&ns, &job).await.uid().expect("uid");
    wait_runs(&db.store, &uid, "the run to start", TIMEOUT, |r| !r.is_empty()).await;
    op.kill();
    // A new process: status may lag, the Job is found by its name.
    let op = Operator::start(&client, &[ns.name()], &db.url, |_| {});
    let runs = wait_runs(&db.store, &uid, "the run to finish", TIMEOUT, |r| {
        !finished(r).is_empty()
    })
    .await;
    assert_eq!(runs.len(), 1, "{runs:#?}");
    assert!(runs[0].log_output.contains("finished"), "{}", runs[0].log_output);
    op.kill();
    let op = Operator::start(&client, &[ns.name()], &db.url, |_| {});
    tokio::time::sleep(Duration::from_secs(3)).await;
    let jobs = jobs_of(&ns, "once").await;
    assert_eq!(jobs.len(), 1);
    let after = runs_of(&db.store, &uid).await;
    assert_eq!(after.len(), 1, "{after:#?}");
    assert_eq!(
        job_of(&ns, &after[0]),
        Some(jobs[0].name_any()),
        "the one row is the one Job's"
    );
    delete_all(&ns).await;
    op.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_operators_elect_one_leader_and_a_standby_takes_over() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "op-ha").await;
    let db = Database::sqlite().await;
    let elect = |id: &'static str| {
        let ns = ns.name().to_owned();
        move |args: &mut OperatorArgs| {
            args.no_leader_election = false;
            args.lease_namespace = Some(ns);
            args.lease_name = "jtp-test-leader".into();
            args.lease_duration_seconds = 4;
            args.identity = Some(id.into());
        }
    };
    let a = Operator::start(&client, &[ns.name()], &db.url, elect("a"));
    let b = Operator::start(&client, &[ns.name()], &db.url, elect("b"));
    let uid = create(
        &ns,
        &sj(
            "ha",
            ScheduledJobSpec::interval(10, jtp_crds::IntervalUnit::Seconds),
        ),
    )
    .await
    .uid()
    .expect("uid");
    wait_runs(&db.store, &uid, "a run", TIMEOUT, |r| !finished(r).is_empty()).await;
    let leaders = [a.metrics.is_leader(), b.metrics.is_leader()];
    assert_eq!(
        leaders.iter().filter(|l| **l).count(),
        1,
        "exactly one leader: {leaders:?}"
    );
    let (leader, standby) = if leaders[0] { (a, b) } else { (b, a) };
    assert!(leader.metrics.runs_started_total() >= 1);
    assert_eq!(
        standby.metrics.runs_started_total(),
        0,
        "only the leader schedules"
    );

    // The leader dies without releasing the lease: the standby takes over after it expires.
    leader.kill();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !standby.metrics.is_leader() {
        assert!(Instant::now() < deadline, "the standby never took over");
        tokio::time::sleep(POLL).await;
    }
    let before = runs_of(&db.store, &uid).await.len();
    let runs = wait_runs(&db.store, &uid, "a run by the new leader", TIMEOUT, |r| {
        r.len() > before
    })
    .await;
    assert!(standby.metrics.runs_started_total() >= 1);
    let names: Vec<String> = jobs_of(&ns, "ha").await.iter().map(|j| j.name_any()).collect();
    let mut unique = names.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(names.len(), unique.len());
    // In SQL, each run of either leader is its own row for its own slot.
    let mut slots: Vec<_> = runs.iter().map(|r| r.summary.scheduled_for).collect();
    slots.sort();
    slots.dedup();
    assert_eq!(slots.len(), runs.len(), "a slot recorded twice: {runs:#?}");
    delete_all(&ns).await;
    standby.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resuming_or_editing_the_schedule_fires_nothing_retroactively() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "op-edit").await;
    let db = Database::sqlite().await;
    let op = Operator::start(&client, &[ns.name()], &db.url, |_| {});
    let mut spec = ScheduledJobSpec::interval(10, jtp_crds::IntervalUnit::Seconds);
    spec.suspend = true;
    let uid = create(&ns, &sj("paused", spec)).await.uid().expect("uid");
    let api: Api<ScheduledJob> = ns.api();
    wait_for(&api, "paused", TIMEOUT, "be reconciled", |sj| sj.status.is_some()).await;
    tokio::time::sleep(Duration::from_secs(12)).await; // at least one slot passes while suspended
    let resumed_at: DateTime<Utc> = Utc::now();
    api.patch(
        "paused",
        &PatchParams::default(),
        &Patch::Merge(json!({ "spec": { "suspend": false } })),
    )
    .await
    .expect("resume");
    let runs = wait_runs(&db.store, &uid, "the first run after resuming", TIMEOUT, |r| {
        !r.is_empty()
    })
    .await;
    for run in &runs {
        assert!(
            run.summary.scheduled_for > resumed_at,
            "retroactive run for {} (resumed at {resumed_at})",
            run.summary.scheduled_for
        );
    }
    let status = api.get("paused").await.expect("get").status.expect("status");
    assert!(status.next_run.is_some());
    delete_all(&ns).await;
    op.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_mib_of_output_lands_in_sqlite_within_the_cap() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "op-big").await;
    let db = Database::sqlite().await;
    // A second namespace with a job of the same name run at the same instant: the same Job name.
    let twin_ns = TestNamespace::new(&client, "op-big-twin").await;
    let op = Operator::start(&client, &[ns.name(), twin_ns.name()], &db.url, |_| {});
    let value = now_rfc3339();
    let mut twin = sj("big", ScheduledJobSpec::manual().script("echo twin"));
    twin.metadata.annotations = Some([("jobtrigger.io/run-now".to_owned(), value.clone())].into());
    let twin_uid = create(&twin_ns, &twin).await.uid().expect("uid");
    let mut job = sj(
        "big",
        ScheduledJobSpec::manual()
            .script("echo START; head -c 5242880 /dev/zero | tr '\\0' x; echo; echo END"),
    );
    job.metadata.annotations = Some([("jobtrigger.io/run-now".to_owned(), value)].into());
    let uid = create(&ns, &job).await.uid().expect("uid");
    let store = &db.store;
    let twin_runs = wait_runs(store, &twin_uid, "the twin's run", TIMEOUT, |r| {
        !finished(r).is_empty()
    })
    .await;
    assert_eq!(twin_runs.len(), 1);
    assert!(
        twin_runs[0].log_output.contains("twin"),
        "each namespace's run is its own row"
    );
    let runs = wait_runs(store, &uid, "the big run", TIMEOUT, |r| !finished(r).is_empty()).await;
    let run = &runs[0].summary;
    assert_eq!(run.status, RunStatus::Success);
    let qualified = format!("{}/big-m", ns.name());
    assert!(
        run.k8s_job_name
            .as_deref()
            .is_some_and(|n| n.starts_with(&qualified)),
        "k8s_job_name is namespace/name: {run:?}"
    );
    assert!(run.output_bytes > 5 * 1024 * 1024, "{run:?}");
    assert!(run.output_truncated > 0, "the store caps the output: {run:?}");
    let stored = &runs[0].log_output;
    assert!(
        stored.len() <= jtp_store::DEFAULT_OUTPUT_CAP + 1024,
        "stored {} bytes",
        stored.len()
    );
    assert!(stored.starts_with("START"), "head kept");
    assert!(stored.trim_end().ends_with("END"), "tail kept");
    let row = store.get_job_by_uid(&uid).await.expect("mirror row");
    assert_eq!(row.last_status, Some(RunStatus::Success));
    assert_eq!(row.next_run, None, "manual jobs have no next run");
    delete_all(&ns).await;
    delete_all(&twin_ns).await;
    op.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stopped_during_a_run_still_gets_the_run_when_back() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "op-pg").await;
    let scripts = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts");
    let pg = |script: &str| {
        let mut words = script.split_whitespace();
        let out = std::process::Command::new("bash")
            .arg(scripts.join(words.next().unwrap_or_default()))
            .args(words)
            .env("JTP_PG_PORT", "55447")
            .output()
            .expect("run the postgres script");
        assert!(
            out.status.success(),
            "{script}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .last()
            .unwrap_or_default()
            .trim()
            .to_owned()
    };
    // A fresh server: a data directory left by an older checkout may hold other migrations.
    pg("postgres-down --purge");
    let url = pg("postgres-up");
    assert!(url.starts_with("postgres://"), "{url}");
    // This server is the test's own: stop it however the test ends.
    struct StopServer(std::path::PathBuf);
    impl Drop for StopServer {
        fn drop(&mut self) {
            let _ = std::process::Command::new("bash")
                .arg(&self.0)
                .env("JTP_PG_PORT", "55447")
                .output();
        }
    }
    let _server = StopServer(scripts.join("postgres-down"));
    let op = Operator::start(&client, &[ns.name()], &url, |_| {});
    let mut job = sj(
        "pgjob",
        ScheduledJobSpec::manual().script("sleep 8; echo survived the outage"),
    );
    job.metadata.annotations = Some([("jobtrigger.io/run-now".to_owned(), now_rfc3339())].into());
    let uid = create(&ns, &job).await.uid().expect("uid");
    {
        let store = Store::connect(&url).await.expect("connect");
        let runs = wait_runs(&store, &uid, "the RUNNING row", TIMEOUT, |r| !r.is_empty()).await;
        assert_eq!(runs[0].summary.status, RunStatus::Running);
        store.close().await;
    }
    pg("postgres-down");
    let jobs: Api<Job> = ns.api();
    let name = jobs_of(&ns, "pgjob").await[0].name_any();
    wait_for(
        &jobs,
        &name,
        TIMEOUT,
        "complete while the database is down",
        |j| j.status.as_ref().and_then(|s| s.succeeded).unwrap_or(0) > 0,
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        jobs.get_opt(&name).await.expect("get").is_some(),
        "kept while unrecorded"
    );
    pg("postgres-up");
    let store = Store::connect(&url).await.expect("connect again");
    let runs = wait_runs(
        &store,
        &uid,
        "the run recorded after the outage",
        Duration::from_secs(45),
        |r| r.iter().any(|r| r.summary.status == RunStatus::Success),
    )
    .await;
    assert_eq!(runs.len(), 1, "one row for the run");
    let output = &runs[0].log_output;
    assert!(output.contains("survived the outage"), "{output}");
    delete_all(&ns).await;
    op.stop().await;
    store.close().await;
}

/// The operator's link to its database (a database of the test's own on the test PostgreSQL) is
/// cut while a run is in flight: the server stays up and the test keeps reading it, the operator
/// gets only failed connections.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_delays_recording_but_loses_no_run() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "op-dbdown").await;
    let db = Database::postgres("op_outage").await;
    let link = Link::to(&db.url).await;
    let op = Operator::start(&client, &[ns.name()], &link.url, |_| {});
    let mut spec = ScheduledJobSpec::manual().script("sleep 3; echo survived");
    spec.successful_jobs_history_limit = Some(0);
    let mut job = sj("outage", spec);
    job.metadata.annotations = Some([("jobtrigger.io/run-now".to_owned(), now_rfc3339())].into());
    let uid = create(&ns, &job).await.uid().expect("uid");
    wait_runs(&db.store, &uid, "the run to start", TIMEOUT, |r| !r.is_empty()).await;
    link.cut();
    // The Job finishes while the database is out of reach: it is kept and not marked recorded.
    let jobs: Api<Job> = ns.api();
    let name = jobs_of(&ns, "outage").await[0].name_any();
    wait_for(&jobs, &name, TIMEOUT, "complete", |j| {
        j.status.as_ref().and_then(|s| s.succeeded).unwrap_or(0) > 0
    })
    .await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    jobs.get(&name).await.expect("the Job is kept while unrecorded");
    let runs = runs_of(&db.store, &uid).await;
    assert!(finished(&runs).is_empty(), "{runs:#?}");

    link.restore();
    let runs = wait_runs(
        &db.store,
        &uid,
        "the run recorded after the outage",
        Duration::from_secs(40),
        |r| !finished(r).is_empty(),
    )
    .await;
    assert_eq!(runs.len(), 1, "one row for the run: {runs:#?}");
    assert_eq!(runs[0].summary.status, RunStatus::Success);
    assert!(runs[0].log_output.contains("survived"), "{}", runs[0].log_output);
    // Recorded now, so the history limit of 0 removes it.
    let deadline = Instant::now() + TIMEOUT;
    while jobs.get_opt(&name).await.expect("get").is_some() {
        assert!(Instant::now() < deadline, "the recorded Job was not pruned");
        tokio::time::sleep(POLL).await;
    }
    delete_all(&ns).await;
    op.stop().await;
    db.remove().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_map_script_is_mounted_and_executed() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "op-cm").await;
    let db = Database::sqlite().await;
    let op = Operator::start(&client, &[ns.name()], &db.url, |_| {});
    let cms: Api<k8s_openapi::api::core::v1::ConfigMap> = ns.api();
    let cm = serde_json::from_value(json!({
        "metadata": { "name": "scripts" },
        "data": { "report.sh": "#!/bin/sh\necho \"report from $0 in $(pwd)\"\n" }
    }))
    .expect("ConfigMap");
    cms.create(&PostParams::default(), &cm)
        .await
        .expect("create ConfigMap");
    let mut spec = ScheduledJobSpec::manual();
    spec.script = jtp_crds::Script {
        config_map: Some(jtp_crds::ConfigMapScript {
            name: "scripts".into(),
            key: "report.sh".into(),
        }),
        ..jtp_crds::Script::default()
    };
    spec.working_dir = Some("/tmp".into());
    let mut job = sj("cm", spec);
    job.metadata.annotations = Some([("jobtrigger.io/run-now".to_owned(), now_rfc3339())].into());
    let uid = create(&ns, &job).await.uid().expect("uid");
    let runs = wait_runs(&db.store, &uid, "the ConfigMap script run", TIMEOUT, |r| {
        !finished(r).is_empty()
    })
    .await;
    let run = finished(&runs)[0];
    assert_eq!(run.summary.status, RunStatus::Success, "{}", run.log_output);
    assert!(
        run.log_output
            .contains("report from /opt/jobtrigger/script in /tmp"),
        "{}",
        run.log_output
    );
    delete_all(&ns).await;
    op.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_reads_a_secret_through_value_from_and_a_mounted_volume() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "op-pod").await;
    let db = Database::sqlite().await;
    let op = Operator::start(&client, &[ns.name()], &db.url, |_| {});
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = ns.api();
    let secret = serde_json::from_value(json!({
        "metadata": { "name": "creds" },
        "stringData": { "token": "s3cr3t-token", "password": "hunter2" }
    }))
    .expect("Secret");
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .expect("create Secret");
    let cms: Api<k8s_openapi::api::core::v1::ConfigMap> = ns.api();
    let cm = serde_json::from_value(json!({
        "metadata": { "name": "settings" },
        "data": { "REGION": "eu-west" }
    }))
    .expect("ConfigMap");
    cms.create(&PostParams::default(), &cm)
        .await
        .expect("create ConfigMap");
    let mut spec = ScheduledJobSpec::manual()
        .script("echo \"token=$TOKEN region=$REGION\"; echo \"file=$(cat /etc/creds/password)\"");
    spec.pod_template = Some(
        serde_json::from_value(json!({
            "metadata": { "labels": { "team": "data" } },
            "spec": {
                "containers": [{
                    "name": "run",
                    "env": [{ "name": "TOKEN", "valueFrom": { "secretKeyRef": { "name": "creds", "key": "token" } } }],
                    "envFrom": [{ "configMapRef": { "name": "settings" } }],
                    "volumeMounts": [{ "name": "creds", "mountPath": "/etc/creds", "readOnly": true }]
                }],
                "volumes": [{ "name": "creds", "secret": { "secretName": "creds" } }]
            }
        }))
        .expect("a pod template"),
    );
    let mut job = sj("with-secret", spec);
    job.metadata.annotations = Some([("jobtrigger.io/run-now".to_owned(), now_rfc3339())].into());
    let uid = create(&ns, &job).await.uid().expect("uid");
    let runs = wait_runs(&db.store, &uid, "the run reading the Secret", TIMEOUT, |r| {
        !finished(r).is_empty()
    })
    .await;
    let run = finished(&runs)[0];
    assert_eq!(run.summary.status, RunStatus::Success, "{}", run.log_output);
    assert!(
        run.log_output.contains("token=s3cr3t-token region=eu-west"),
        "{}",
        run.log_output
    );
    assert!(run.log_output.contains("file=hunter2"), "{}", run.log_output);
    let jobs = jobs_of(&ns, "with-secret").await;
    let labels = jobs[0]
        .spec
        .as_ref()
        .and_then(|s| s.template.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    assert_eq!(labels.get("team").map(String::as_str), Some("data"));
    delete_all(&ns).await;
    op.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_documentation_cron_job_converted_applies_and_runs_with_the_same_output() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "op-convert").await;
    let db = Database::sqlite().await;
    let op = Operator::start(&client, &[ns.name()], &db.url, |_| {});
    let yaml = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cronjobs/hello.yaml"),
    )
    .expect("fixture");
    let converted = jtp_operator::convert::convert(&yaml).expect("readable");
    let mut job = converted.into_iter().find_map(|c| c.job).expect("hello converts");
    // The test node has one image, busybox:1.36 (built on this machine; nothing is pulled): the
    // documentation's busybox:1.28 is swapped for it, the rest runs as converted.
    assert_eq!(job.spec.image.as_deref(), Some("busybox:1.28"));
    job.spec.image = Some("busybox:1.36".into());
    job.metadata.annotations = Some([("jobtrigger.io/run-now".to_owned(), now_rfc3339())].into());
    let api: Api<ScheduledJob> = ns.api();
    let applied = api
        .patch(
            "hello",
            &PatchParams::apply("jtp-convert-test"),
            &Patch::Apply(serde_json::json!({
                "apiVersion": "jobtrigger.io/v1alpha1",
                "kind": "ScheduledJob",
                "metadata": job.metadata,
                "spec": job.spec,
            })),
        )
        .await
        .expect("the converted job applies server-side");
    let uid = applied.uid().expect("uid");
    let runs = wait_runs(&db.store, &uid, "the converted hello run", TIMEOUT, |r| {
        !finished(r).is_empty()
    })
    .await;
    let run = finished(&runs)[0];
    assert_eq!(run.summary.status, RunStatus::Success, "{}", run.log_output);
    assert!(
        run.log_output.contains("Hello from the Kubernetes cluster"),
        "{}",
        run.log_output
    );
    delete_all(&ns).await;
    op.stop().await;
}

/// A chart's CronJobs as `helm template` renders them (tests/fixtures/charts/maintenance, with a
/// value overridden on the command line) convert, apply server-side and, run now, print what the
/// CronJobs' own pods print when their job templates run here as plain Jobs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_helm_rendered_charts_cron_jobs_convert_apply_and_run_like_the_cron_jobs() {
    use k8s_openapi::api::batch::v1::CronJob;
    use k8s_openapi::api::core::v1::{ConfigMap, Secret};
    use serde::Deserialize as _;
    let client = client().await;
    let ns = TestNamespace::new(&client, "op-helm-convert").await;
    let db = Database::sqlite().await;
    let op = Operator::start(&client, &[ns.name()], &db.url, |_| {});
    let chart = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/charts/maintenance");
    let rendered = jtp_testenv::helm(&[
        "template",
        "nightly",
        chart.to_str().expect("utf-8 path"),
        "--set",
        "cronjobs.cleanup.env.APP_ENV=prod",
    ]);

    // What the chart installs beside its CronJobs, and the Secret its values name.
    let secrets: Api<Secret> = ns.api();
    let secret = serde_json::from_value(json!({
        "metadata": { "name": "report-credentials" },
        "stringData": { "REPORT_TOKEN": "t0k3n" },
    }))
    .expect("Secret");
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .expect("create the Secret");
    let mut cron_jobs = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(&rendered) {
        let value = serde_yaml::Value::deserialize(doc).expect("helm renders YAML");
        match value.get("kind").and_then(serde_yaml::Value::as_str) {
            Some("ConfigMap") => {
                let cm: ConfigMap = serde_yaml::from_value(value).expect("ConfigMap");
                let cms: Api<ConfigMap> = ns.api();
                cms.create(&PostParams::default(), &cm)
                    .await
                    .expect("create the ConfigMap");
            }
            Some("CronJob") => cron_jobs.push(serde_yaml::from_value::<CronJob>(value).expect("CronJob")),
            other => panic!("the chart renders only a ConfigMap and CronJobs, not {other:?}"),
        }
    }
    assert_eq!(cron_jobs.len(), 2, "{rendered}");

    let converted = jtp_operator::convert::convert(&rendered).expect("readable");
    let jobs: Vec<ScheduledJob> = converted.into_iter().filter_map(|c| c.job).collect();
    assert_eq!(jobs.len(), 2, "both CronJobs convert");
    let api: Api<ScheduledJob> = ns.api();
    let mut outputs = BTreeMap::new();
    for cron_job in &cron_jobs {
        let name = cron_job.metadata.name.clone().expect("name");
        let mut job = jobs
            .iter()
            .find(|j| j.metadata.name.as_deref() == Some(name.as_str()))
            .cloned()
            .unwrap_or_else(|| panic!("{name} converted"));
        job.metadata.annotations = Some([("jobtrigger.io/run-now".to_owned(), now_rfc3339())].into());
        let applied = api
            .patch(
                &name,
                &PatchParams::apply("jtp-convert-test"),
                &Patch::Apply(json!({
                    "apiVersion": "jobtrigger.io/v1alpha1",
                    "kind": "ScheduledJob",
                    "metadata": job.metadata,
                    "spec": job.spec,
                })),
            )
            .await
            .unwrap_or_else(|e| panic!("{name} applies server-side: {e}"));
        let uid = applied.uid().expect("uid");
        let runs = wait_runs(&db.store, &uid, &format!("the converted {name}"), TIMEOUT, |r| {
            !finished(r).is_empty()
        })
        .await;
        let run = finished(&runs)[0];
        assert_eq!(
            run.summary.status,
            RunStatus::Success,
            "{name}: {}",
            run.log_output
        );

        // The CronJob's own job template, run as `kubectl create job --from=cronjob/…` would.
        let template = cron_job.spec.job_template.clone();
        let original = Job {
            metadata: kube::api::ObjectMeta {
                name: Some(format!("{name}-original")),
                ..Default::default()
            },
            spec: template.spec,
            ..Default::default()
        };
        let batch: Api<Job> = ns.api();
        batch
            .create(&PostParams::default(), &original)
            .await
            .expect("create the CronJob's Job");
        wait_for(&batch, &format!("{name}-original"), TIMEOUT, "complete", |j| {
            j.status.as_ref().and_then(|s| s.succeeded).unwrap_or(0) >= 1
        })
        .await;
        let log = kubectl(&["-n", ns.name(), "logs", &format!("job/{name}-original")]);
        assert!(
            !log.trim().is_empty(),
            "{name}: the CronJob's pod printed nothing"
        );
        assert!(
            run.log_output.contains(log.trim()),
            "{name}: the converted run printed {:?}, the CronJob's pod {log:?}",
            run.log_output
        );
        outputs.insert(name, run.log_output.clone());
    }
    // The values reached the script: the override from the command line, the mounted ConfigMap.
    assert!(outputs["nightly-maintenance-cleanup"].contains("cleanup in prod removed 21 files"));
    assert!(outputs["nightly-maintenance-report"].contains("weekly report for ops@example.invalid"));
    delete_all(&ns).await;
    op.stop().await;
}

/// The message of the job's Valid condition once it is False.
async fn refusal_of(ns: &TestNamespace, name: &str) -> String {
    let api: Api<ScheduledJob> = ns.api();
    let refused = wait_for(&api, name, TIMEOUT, "get Valid=False", |sj| {
        sj.status.as_ref().is_some_and(|s| {
            s.conditions
                .iter()
                .any(|c| c.type_ == "Valid" && c.status == "False")
        })
    })
    .await;
    refused
        .status
        .expect("status")
        .conditions
        .into_iter()
        .find(|c| c.type_ == "Valid")
        .expect("Valid")
        .message
}

async fn create_service_account(ns: &TestNamespace, name: &str, opted_in: bool) {
    let sas: Api<k8s_openapi::api::core::v1::ServiceAccount> = ns.api();
    let annotations = if opted_in {
        json!({ jtp_operator::controller::trust::ALLOW_ANNOTATION: "true" })
    } else {
        json!({})
    };
    let sa = serde_json::from_value(json!({ "metadata": { "name": name, "annotations": annotations } }))
        .expect("ServiceAccount");
    sas.create(&PostParams::default(), &sa)
        .await
        .expect("create ServiceAccount");
}

fn run_now_as(name: &str, service_account: Option<&str>) -> ScheduledJob {
    let mut spec = ScheduledJobSpec::manual().script("echo ran as $(id -u)");
    spec.service_account_name = service_account.map(str::to_owned);
    let mut job = sj(name, spec);
    job.metadata.annotations = Some([("jobtrigger.io/run-now".to_owned(), now_rfc3339())].into());
    job
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_account_other_than_default_runs_a_pod_only_once_it_opts_in() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "op-sa").await;
    let protected = format!("{}/jtp-operator", ns.name());
    let db = Database::sqlite().await;
    let op = Operator::start(&client, &[ns.name()], &db.url, |a| {
        a.protected_service_accounts = vec![protected];
    });
    create_service_account(&ns, "runner", false).await;
    // Even opted in, the operator's own account is never lent to a run.
    create_service_account(&ns, "jtp-operator", true).await;
    let runner = create(&ns, &run_now_as("as-runner", Some("runner"))).await;
    create(&ns, &run_now_as("as-operator", Some("jtp-operator"))).await;
    create(&ns, &run_now_as("as-nobody", Some("nobody"))).await;

    let refused = refusal_of(&ns, "as-runner").await;
    assert!(
        refused.contains("spec.serviceAccountName")
            && refused.contains(jtp_operator::controller::trust::ALLOW_ANNOTATION),
        "{refused}"
    );
    let own = refusal_of(&ns, "as-operator").await;
    assert!(own.contains("never runs a ScheduledJob"), "{own}");
    let nobody = refusal_of(&ns, "as-nobody").await;
    assert!(nobody.contains("does not exist"), "{nobody}");
    let reasons = wait_events(&ns, "InvalidSpec").await;
    assert!(reasons.iter().any(|r| r == "RunNowRejected"), "{reasons:?}");
    for name in ["as-runner", "as-operator", "as-nobody"] {
        assert!(jobs_of(&ns, name).await.is_empty(), "{name} got a Job");
    }

    // The namespace's admin lets `runner` run jobs; the next Run Now runs as it.
    let sas: Api<k8s_openapi::api::core::v1::ServiceAccount> = ns.api();
    sas.patch(
        "runner",
        &PatchParams::default(),
        &Patch::Merge(json!({ "metadata": { "annotations": {
            jtp_operator::controller::trust::ALLOW_ANNOTATION: "true"
        } } })),
    )
    .await
    .expect("annotate the ServiceAccount");
    let api: Api<ScheduledJob> = ns.api();
    tokio::time::sleep(Duration::from_secs(1)).await;
    api.patch(
        "as-runner",
        &PatchParams::default(),
        &Patch::Merge(json!({ "metadata": { "annotations": { "jobtrigger.io/run-now": now_rfc3339() } } })),
    )
    .await
    .expect("Run Now again");
    let runs = wait_runs(
        &db.store,
        &runner.uid().expect("uid"),
        "the allowed run",
        TIMEOUT,
        |r| !finished(r).is_empty(),
    )
    .await;
    let run = finished(&runs)[0];
    assert_eq!(run.summary.status, RunStatus::Success, "{}", run.log_output);
    let pod_account = jobs_of(&ns, "as-runner").await[0]
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|p| p.service_account_name.clone());
    assert_eq!(pod_account.as_deref(), Some("runner"));
    wait_for(&api, "as-runner", TIMEOUT, "be Valid again", |sj| {
        sj.status.as_ref().is_some_and(|s| {
            s.conditions
                .iter()
                .any(|c| c.type_ == "Valid" && c.status == "True")
        })
    })
    .await;
    delete_all(&ns).await;
    op.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operators_own_namespace_runs_nothing_unless_allowed() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "op-own").await;
    let own = ns.name().to_owned();
    let db = Database::sqlite().await;
    let op = Operator::start(&client, &[ns.name()], &db.url, |a| {
        a.own_namespace = Some(own);
    });
    create(&ns, &run_now_as("here", None)).await;
    let refused = refusal_of(&ns, "here").await;
    assert!(
        refused.contains("metadata.namespace") && refused.contains(ns.name()),
        "{refused}"
    );
    assert!(jobs_of(&ns, "here").await.is_empty());
    delete_all(&ns).await;
    op.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_works_in_a_namespace_enforcing_the_restricted_pod_security_standard() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "op-pss").await;
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    namespaces
        .patch(
            ns.name(),
            &PatchParams::default(),
            &Patch::Merge(json!({ "metadata": { "labels": {
                "pod-security.kubernetes.io/enforce": "restricted",
                "pod-security.kubernetes.io/enforce-version": "latest"
            } } })),
        )
        .await
        .expect("label the namespace");
    let db = Database::sqlite().await;
    let op = Operator::start(&client, &[ns.name()], &db.url, |_| {});
    let mut spec = ScheduledJobSpec::interval(10, jtp_crds::IntervalUnit::Seconds)
        .script("echo uid=$(id -u) gid=$(id -g); grep CapEff /proc/self/status");
    spec.concurrency_policy = jtp_crds::ConcurrencyPolicy::Forbid;
    let uid = create(&ns, &sj("restricted", spec)).await.uid().expect("uid");
    let runs = wait_runs(&db.store, &uid, "a scheduled run", TIMEOUT, |r| {
        !finished(r).is_empty()
    })
    .await;
    let run = finished(&runs)[0];
    assert_eq!(run.summary.status, RunStatus::Success, "{}", run.log_output);
    assert_eq!(run.summary.trigger, Trigger::Schedule);
    assert!(
        run.log_output.contains("uid=65532 gid=65532"),
        "{}",
        run.log_output
    );
    assert!(
        run.log_output.contains("CapEff:\t0000000000000000"),
        "all capabilities dropped: {}",
        run.log_output
    );
    delete_all(&ns).await;
    op.stop().await;
}

async fn wait_no_jobs(ns: &TestNamespace, name: &str) {
    let deadline = Instant::now() + TIMEOUT;
    while !jobs_of(ns, name).await.is_empty() {
        assert!(
            Instant::now() < deadline,
            "the Job of {name} was not deleted after recording"
        );
        tokio::time::sleep(POLL).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_whose_pod_is_never_created_is_an_error_with_the_reason_and_is_cleaned_up() {
    let client = client().await;
    // A namespace whose ResourceQuota allows no pod, and one enforcing the restricted Pod
    // Security Standard (where a privileged run is refused).
    let quota_ns = TestNamespace::new(&client, "op-quota").await;
    let quotas: Api<k8s_openapi::api::core::v1::ResourceQuota> = quota_ns.api();
    let quota = serde_json::from_value(
        json!({ "metadata": { "name": "none" }, "spec": { "hard": { "pods": "0" } } }),
    )
    .expect("ResourceQuota");
    quotas
        .create(&PostParams::default(), &quota)
        .await
        .expect("create ResourceQuota");
    let pss_ns = TestNamespace::new(&client, "op-pss-refuse").await;
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    namespaces
        .patch(
            pss_ns.name(),
            &PatchParams::default(),
            &Patch::Merge(json!({ "metadata": { "labels": {
                "pod-security.kubernetes.io/enforce": "restricted"
            } } })),
        )
        .await
        .expect("label the namespace");
    let db = Database::sqlite().await;
    let op = Operator::start(&client, &[quota_ns.name(), pss_ns.name()], &db.url, |_| {});
    let quota_uid = create(&quota_ns, &run_now_as("no-room", None))
        .await
        .uid()
        .expect("uid");
    let mut privileged = run_now_as("privileged", None);
    privileged.spec.pod_template = Some(
        serde_json::from_value(json!({ "spec": { "containers": [{
            "name": "run", "securityContext": { "privileged": true }
        }] } }))
        .expect("a pod template"),
    );
    let pss_uid = create(&pss_ns, &privileged).await.uid().expect("uid");

    let run = first_finished(&db.store, &quota_uid).await;
    assert_eq!(run.summary.status, RunStatus::Error, "{run:?}");
    assert!(
        run.log_output.contains("FailedCreate") && run.log_output.contains("exceeded quota"),
        "{}",
        run.log_output
    );
    wait_no_jobs(&quota_ns, "no-room").await;
    let run = first_finished(&db.store, &pss_uid).await;
    assert_eq!(run.summary.status, RunStatus::Error, "{run:?}");
    assert!(
        run.log_output.contains("FailedCreate") && run.log_output.contains("violates PodSecurity"),
        "{}",
        run.log_output
    );
    wait_no_jobs(&pss_ns, "privileged").await;
    let api: Api<ScheduledJob> = quota_ns.api();
    wait_for(
        &api,
        "no-room",
        TIMEOUT,
        "show the ERROR with no active run",
        |sj| {
            sj.status
                .as_ref()
                .is_some_and(|s| s.last_status == Some(RunStatus::Error) && s.active.is_empty())
        },
    )
    .await;
    delete_all(&quota_ns).await;
    delete_all(&pss_ns).await;
    op.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_config_map_key_is_an_error_and_a_deadline_is_a_failure_with_the_reason() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "op-classify").await;
    let db = Database::sqlite().await;
    let op = Operator::start(&client, &[ns.name()], &db.url, |_| {});
    let cms: Api<k8s_openapi::api::core::v1::ConfigMap> = ns.api();
    let cm =
        serde_json::from_value(json!({ "metadata": { "name": "settings" }, "data": { "REGION": "eu" } }))
            .expect("ConfigMap");
    cms.create(&PostParams::default(), &cm)
        .await
        .expect("create ConfigMap");
    let mut missing_key = run_now_as("missing-key", None);
    missing_key.spec.pod_template = Some(
        serde_json::from_value(json!({ "spec": { "containers": [{
            "name": "run",
            "env": [{ "name": "ZONE", "valueFrom": { "configMapKeyRef": { "name": "settings", "key": "ZONE" } } }]
        }] } }))
        .expect("a pod template"),
    );
    let missing_uid = create(&ns, &missing_key).await.uid().expect("uid");
    let mut slow = run_now_as("too-slow", None);
    slow.spec.script = jtp_crds::Script {
        inline: Some("echo started; sleep 120".into()),
        ..jtp_crds::Script::default()
    };
    slow.spec.active_deadline_seconds = Some(5);
    let slow_uid = create(&ns, &slow).await.uid().expect("uid");

    let run = first_finished(&db.store, &missing_uid).await;
    assert_eq!(run.summary.status, RunStatus::Error, "{run:?}");
    assert!(
        run.log_output.contains("CreateContainerConfigError") && run.log_output.contains("ZONE"),
        "{}",
        run.log_output
    );
    wait_no_jobs(&ns, "missing-key").await;

    let run = wait_runs(
        &db.store,
        &slow_uid,
        "the deadline",
        Duration::from_secs(120),
        |r| !finished(r).is_empty(),
    )
    .await;
    let run = finished(&run)[0];
    assert_eq!(run.summary.status, RunStatus::Failure, "{run:?}");
    assert!(run.log_output.contains("DeadlineExceeded"), "{}", run.log_output);
    delete_all(&ns).await;
    op.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_with_a_byte_that_is_not_utf8_and_larger_than_the_cap_keeps_head_and_tail() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "op-log").await;
    let db = Database::sqlite().await;
    let cap = 64 * 1024;
    let op = Operator::start(&client, &[ns.name()], &db.url, |a| a.output_cap = cap);
    // 6 MiB, under the kubelet's 10 MiB log rotation, so the API server still has the whole log.
    let mut job = sj(
        "binary",
        ScheduledJobSpec::manual().script(
            "printf 'START \\377 byte\\n'; head -c 6291456 /dev/zero | tr '\\0' x; echo; printf 'END \\376\\n'",
        ),
    );
    job.metadata.annotations = Some([("jobtrigger.io/run-now".to_owned(), now_rfc3339())].into());
    let uid = create(&ns, &job).await.uid().expect("uid");
    let runs = wait_runs(&db.store, &uid, "the run", TIMEOUT, |r| !finished(r).is_empty()).await;
    let run = &runs[0].summary;
    assert_eq!(run.status, RunStatus::Success, "{run:?}");
    let written = "START \u{FFFD} byte\n".len() - 2 + 6 * 1024 * 1024 + 1 + "END x\n".len();
    assert_eq!(
        run.output_bytes as usize, written,
        "every byte of the log counted: {run:?}"
    );
    assert_eq!(run.output_truncated as usize, written - cap, "{run:?}");
    let stored = &runs[0].log_output;
    assert!(stored.starts_with("START \u{FFFD} byte\n"), "{:?}", &stored[..40]);
    assert!(
        stored.ends_with("END \u{FFFD}\n"),
        "{:?}",
        &stored[stored.len() - 40..]
    );
    assert!(
        stored.contains(&format!(
            "[jtp: {} bytes of output cut here (cap {cap} bytes)]",
            written - cap
        )),
        "one line says what was cut"
    );
    assert!(stored.len() < cap + 200, "stored {} bytes", stored.len());
    delete_all(&ns).await;
    op.stop().await;
}

/// `spec.retries` on the real node: a failed run gets its further attempt as a Job of its own for
/// the same slot, after the backoff, each attempt its own SQL row with its number; an operator
/// killed between the attempts loses and repeats nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_run_is_retried_after_its_backoff_once_across_an_operator_restart() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "op-retry").await;
    let db = Database::sqlite().await;
    let op = Operator::start(&client, &[ns.name()], &db.url, |_| {});
    let mut job = sj(
        "flaky",
        ScheduledJobSpec::manual()
            .script("echo attempt failing; exit 2")
            .retry(1, "10s"),
    );
    job.metadata.annotations = Some([("jobtrigger.io/run-now".to_owned(), now_rfc3339())].into());
    let uid = create(&ns, &job).await.uid().expect("uid");
    let store = &db.store;
    let first = wait_runs(store, &uid, "attempt 1 to fail", TIMEOUT, |r| {
        !finished(r).is_empty()
    })
    .await;
    let first = &first[0].summary;
    assert_eq!((first.attempt, first.status), (1, RunStatus::Failure));
    assert_eq!(
        store
            .get_job_by_uid(&uid)
            .await
            .expect("row")
            .consecutive_failures,
        0,
        "an attempt with a retry left does not count"
    );
    // Killed between the attempts; a new process takes over.
    op.kill();
    let op = Operator::start(&client, &[ns.name()], &db.url, |_| {});
    let runs = wait_runs(store, &uid, "attempt 2 to fail", TIMEOUT, |r| {
        finished(r).len() >= 2
    })
    .await;
    let runs: Vec<_> = runs.iter().map(|r| &r.summary).collect();
    let seen: Vec<(i32, RunStatus, Trigger)> =
        runs.iter().map(|r| (r.attempt, r.status, r.trigger)).collect();
    assert_eq!(
        seen,
        [
            (2, RunStatus::Failure, Trigger::Manual),
            (1, RunStatus::Failure, Trigger::Manual)
        ]
    );
    assert_eq!(
        runs[0].scheduled_for, runs[1].scheduled_for,
        "both attempts are for one slot"
    );
    let waited = runs[0].run_time - runs[1].finished_at.expect("finished");
    assert!(
        waited >= chrono::Duration::seconds(9),
        "attempt 2 started {waited} after attempt 1 ended; the backoff is 10 s"
    );
    assert!(
        runs[0]
            .k8s_job_name
            .as_deref()
            .is_some_and(|n| n.ends_with("-a2")),
        "{:?}",
        runs[0].k8s_job_name
    );
    let row = store.get_job_by_uid(&uid).await.expect("row");
    assert_eq!(
        (row.last_status, row.consecutive_failures),
        (Some(RunStatus::Failure), 1)
    );
    // Once more a restart: the retries are spent, nothing else starts.
    op.kill();
    let op = Operator::start(&client, &[ns.name()], &db.url, |_| {});
    tokio::time::sleep(Duration::from_secs(5)).await;
    let after = runs_of(store, &uid).await;
    assert_eq!(after.len(), 2, "no attempt lost or repeated: {after:#?}");
    assert!(
        jobs_of(&ns, "flaky")
            .await
            .iter()
            .all(|j| !j.name_any().ends_with("-a3"))
    );
    let events = event_reasons(&ns).await;
    assert!(events.iter().any(|r| r == "Retrying"), "{events:?}");
    delete_all(&ns).await;
    op.stop().await;
}

/// `spec.pauseAfterConsecutiveFailures` on the real node: the operator suspends the job itself,
/// with a Paused condition, an Event, and the note in the SQL row the portal shows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_in_a_row_pause_the_job_with_a_condition_an_event_and_a_note_for_the_portal() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "op-pause").await;
    let db = Database::sqlite().await;
    let op = Operator::start(&client, &[ns.name()], &db.url, |_| {});
    let mut job = sj(
        "doomed",
        ScheduledJobSpec::daily("09:00").script("exit 1").pause_after(1),
    );
    job.metadata.annotations = Some([("jobtrigger.io/run-now".to_owned(), now_rfc3339())].into());
    create(&ns, &job).await;
    let api: Api<ScheduledJob> = ns.api();
    let paused = wait_for(&api, "doomed", TIMEOUT, "be paused", |sj| {
        sj.spec.suspend
            && sj.status.as_ref().is_some_and(|s| {
                s.conditions
                    .iter()
                    .any(|c| c.type_ == "Paused" && c.status == "True")
            })
    })
    .await;
    let status = paused.status.clone().unwrap_or_default();
    let condition = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Paused")
        .expect("Paused condition");
    assert_eq!(condition.reason, "ConsecutiveFailures");
    assert!(
        condition.message.contains("1 failed run in a row"),
        "{condition:?}"
    );
    assert_eq!(status.next_run, None, "a paused job has no next run");
    wait_events(&ns, "ConsecutiveFailures").await;
    let store = &db.store;
    let uid = paused.uid().expect("uid");
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let row = store.get_job_by_uid(&uid).await.expect("mirror row");
        if row.pause_note.is_some() && !row.is_active {
            assert_eq!(row.pause_note.as_deref(), Some(condition.message.as_str()));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the mirror row has no pause note: {row:?}"
        );
        tokio::time::sleep(POLL).await;
    }
    // A resume (what the portal's button does) clears the note and the condition.
    api.patch(
        "doomed",
        &PatchParams::default(),
        &Patch::Merge(json!({ "spec": { "suspend": false } })),
    )
    .await
    .expect("resume");
    wait_for(&api, "doomed", TIMEOUT, "be resumed", |sj| {
        sj.status
            .as_ref()
            .is_some_and(|s| s.next_run.is_some() && s.conditions.iter().all(|c| c.type_ != "Paused"))
    })
    .await;
    let deadline = Instant::now() + TIMEOUT;
    while store
        .get_job_by_uid(&uid)
        .await
        .expect("row")
        .pause_note
        .is_some()
    {
        assert!(Instant::now() < deadline, "the note stays after a resume");
        tokio::time::sleep(POLL).await;
    }
    delete_all(&ns).await;
    op.stop().await;
}

/// A person stops a running run (what the portal's Stop writes: the annotation
/// `stop.jobtrigger.io/<Job name>: <who>`): the run is recorded once as FAILURE "stopped by
/// <who>" with its output so far, its Job and pod are deleted by the real control plane, the
/// request is removed; a request for a run that has ended changes nothing and is removed too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_stopped_on_request_is_recorded_failure_and_its_job_and_pod_are_gone() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "op-stop").await;
    let db = Database::sqlite().await;
    let op = Operator::start(&client, &[ns.name()], &db.url, |_| {});
    let mut spec = ScheduledJobSpec::manual().script("echo begun; sleep 300");
    // A stopped run is not retried.
    spec.retries = Some(jtp_crds::Retries {
        limit: 2,
        backoff: jtp_crds::Backoff {
            strategy: jtp_crds::BackoffStrategy::Fixed,
            delay: Some("1s".into()),
            max_delay: None,
        },
    });
    let uid = create(&ns, &sj("long", spec)).await.uid().expect("uid");
    let api: Api<ScheduledJob> = ns.api();
    wait_for(&api, "long", TIMEOUT, "be reconciled", |sj| sj.status.is_some()).await;
    let run_now = json!({ "metadata": { "annotations": { jtp_crds::RUN_NOW_ANNOTATION: now_rfc3339() } } });
    api.patch("long", &PatchParams::default(), &Patch::Merge(&run_now))
        .await
        .expect("run now");
    let pods: Api<k8s_openapi::api::core::v1::Pod> = ns.api();
    // Running in its container, with its first line written.
    let job_name = {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let runs = runs_of(&db.store, &uid).await;
            let running = runs.first().and_then(|r| job_of(&ns, r));
            let pod_up = match &running {
                Some(name) => pods
                    .list(&ListParams::default().labels(&format!("job-name={name}")))
                    .await
                    .expect("pods")
                    .items
                    .iter()
                    .any(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")),
                None => false,
            };
            if let Some(name) = running.filter(|_| pod_up) {
                break name;
            }
            assert!(Instant::now() < deadline, "no running pod; runs: {runs:#?}");
            tokio::time::sleep(POLL).await;
        }
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    let key = format!("{}{job_name}", jtp_crds::STOP_RUN_ANNOTATION_PREFIX);
    let stop = json!({ "metadata": { "annotations": { &key: "alice" } } });
    api.patch("long", &PatchParams::default(), &Patch::Merge(&stop))
        .await
        .expect("ask to stop");
    let runs = wait_runs(&db.store, &uid, "the stopped run recorded", TIMEOUT, |r| {
        !finished(r).is_empty()
    })
    .await;
    assert_eq!(runs.len(), 1, "one row: {runs:#?}");
    let run = &runs[0];
    assert_eq!(job_of(&ns, run).as_deref(), Some(job_name.as_str()));
    assert_eq!(run.summary.status, RunStatus::Failure, "{run:#?}");
    let output = &run.log_output;
    assert!(output.contains("begun"), "output so far kept: {output}");
    assert!(output.contains("stopped by alice"), "{output}");
    wait_no_jobs(&ns, "long").await;
    let deadline = Instant::now() + TIMEOUT;
    while !pods
        .list(&ListParams::default().labels(&format!("job-name={job_name}")))
        .await
        .expect("pods")
        .items
        .is_empty()
    {
        assert!(Instant::now() < deadline, "the stopped run's pod is still there");
        tokio::time::sleep(POLL).await;
    }
    wait_for(&api, "long", TIMEOUT, "drop the stop request", |sj| {
        !sj.annotations().contains_key(&key)
    })
    .await;
    wait_events(&ns, "StoppedOnRequest").await;

    // Asked again for the ended run: removed, and the row stays as it is; no retry came.
    api.patch("long", &PatchParams::default(), &Patch::Merge(&stop))
        .await
        .expect("ask to stop again");
    wait_for(&api, "long", TIMEOUT, "drop the late stop request", |sj| {
        !sj.annotations().contains_key(&key)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = runs_of(&db.store, &uid).await;
    assert_eq!(after.len(), 1, "no retry, no second row: {after:#?}");
    assert_eq!(&after[0], run, "the row is not written again");
    assert!(jobs_of(&ns, "long").await.is_empty(), "no new Job");
    delete_all(&ns).await;
    op.stop().await;
}
