//! Standalone mode end to end, through the built `jtp` binary on a temporary folder: jobs created
//! through the portal's JSON API run on time, Run Now, every status, big output, restarts, and two
//! runners on one PostgreSQL database.

use chrono::{DateTime, Duration as Span, Utc};
use jtp_crds::{RunStatus, Trigger};
use jtp_store::{Job, RunSummary, Store};
use serde_json::{Value, json};
use std::path::Path;
use std::time::Duration;

mod common;
use common::{Jtp, Standalone, wait_until};

/// `jtp standalone` on `data` with its jobs folder `data/jobs` (and `data/jobs/scripts`), a 2 s
/// shutdown grace and its log in `data/jtp-<n>.log`.
fn start(data: &Path, database_url: Option<&str>, extra: &[&str]) -> Jtp {
    let jobs = data.join("jobs");
    std::fs::create_dir_all(jobs.join("scripts")).expect("jobs dir");
    let logs = std::fs::read_dir(data).map(|d| d.count()).unwrap_or_default();
    let mut jtp = Standalone::new(data)
        .arg("--jobs-dir")
        .arg(&jobs)
        .args(["--shutdown-grace", "2"])
        .log(&data.join(format!("jtp-{logs}.log")));
    if let Some(url) = database_url {
        jtp = jtp.arg("--database-url").arg(url);
    }
    if extra.contains(&"--no-portal") {
        jtp = jtp.no_portal();
    }
    jtp.args(extra.iter().filter(|a| **a != "--no-portal")).start()
}

/// The slots of an interval of `every` seconds for the standalone job `name`.
fn interval_of(every: u64, name: &str) -> jtp_crds::CompiledSchedule {
    let spec = jtp_crds::ScheduledJobSpec::interval(every, jtp_crds::IntervalUnit::Seconds);
    let id = jtp_crds::JobId {
        namespace: "default",
        name,
    };
    jtp_crds::validate(id, &spec).expect("valid")
}

fn sqlite_url(data: &Path) -> String {
    format!("sqlite://{}", data.join("jtp.db").display())
}

struct Db {
    store: Store,
    runtime: tokio::runtime::Runtime,
}

impl Db {
    fn open(url: &str) -> Self {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let store = runtime.block_on(Store::connect(url)).expect("open the store");
        Self { store, runtime }
    }

    fn job(&self, name: &str) -> Job {
        self.runtime
            .block_on(self.store.get_job_by_name("default", name))
            .expect("job exists")
    }

    fn runs(&self, name: &str) -> Vec<RunSummary> {
        let job = self.job(name);
        self.runtime
            .block_on(self.store.list_runs(job.id, 1000, 0))
            .expect("list runs")
            .items
    }

    fn finished_runs(&self, name: &str) -> Vec<RunSummary> {
        self.runs(name)
            .into_iter()
            .filter(|r| r.status != RunStatus::Running)
            .collect()
    }

    fn output(&self, run_id: i64) -> String {
        self.runtime
            .block_on(self.store.get_run(run_id))
            .expect("run")
            .log_output
    }

    fn wait_finished(&self, name: &str, count: usize, limit: Duration) -> Vec<RunSummary> {
        wait_until(limit, &format!("{count} finished run(s) of {name}"), || {
            self.finished_runs(name).len() >= count
        });
        self.finished_runs(name)
    }
}

fn inline(script: &str) -> Value {
    json!({ "inline": script })
}

#[test]
fn a_job_created_through_the_api_runs_on_time_and_its_output_is_stored() {
    let dir = tempfile::tempdir().expect("temp dir");
    let jtp = start(dir.path(), None, &[]);
    jtp.create("tick",
        json!({ "schedule": { "interval": { "every": 10, "unit": "seconds" } }, "script": inline("echo tick from $JTP_JOB_NAME; echo to-stderr >&2") }),
    );
    let db = Db::open(&sqlite_url(dir.path()));
    let job = db.job("tick");
    let first_slot = job.next_run.expect("an interval job has a next run");
    assert_eq!(
        Some(first_slot),
        interval_of(10, "tick").next_after(first_slot - Span::seconds(10)),
        "interval slots are the engine's slots for default/tick"
    );
    let runs = db.wait_finished("tick", 1, Duration::from_secs(30));
    let run = runs.last().expect("one run");
    assert_eq!(run.status, RunStatus::Success);
    assert_eq!(run.trigger, Trigger::Schedule);
    assert_eq!(run.scheduled_for, first_slot);
    let skew = run.run_time - run.scheduled_for;
    assert!(
        skew >= Span::zero() && skew < Span::seconds(1),
        "started {skew} after its slot"
    );
    assert_eq!(db.output(run.id), "tick from tick\nto-stderr\n");
    let job = db.job("tick");
    assert_eq!(job.last_status, Some(RunStatus::Success));
    assert!(job.next_run.is_some_and(|next| next > first_slot));
}

/// The runner claims a slot ahead of time; the script must still start at the slot, never before,
/// and the run's `run_time` must say when its process started, not when it was claimed (before
/// the slot).
#[test]
fn a_slot_claimed_ahead_starts_at_its_instant_not_before() {
    let dir = tempfile::tempdir().expect("temp dir");
    let jtp = start(dir.path(), None, &[]);
    jtp.create("clock",
        json!({ "schedule": { "interval": { "every": 10, "unit": "seconds" } }, "script": inline("date +%s%N") }),
    );
    let db = Db::open(&sqlite_url(dir.path()));
    let runs = db.wait_finished("clock", 2, Duration::from_secs(40));
    for run in runs {
        assert_eq!(run.status, RunStatus::Success);
        let nanos: i64 = db
            .output(run.id)
            .trim()
            .parse()
            .expect("the script prints its clock");
        let script_started = DateTime::from_timestamp_nanos(nanos);
        // The runner reads its clock after the spawn returns, the script may read its own first.
        assert!(
            run.scheduled_for <= run.run_time && run.scheduled_for <= script_started,
            "slot {}, process started {}, script's first command {script_started}",
            run.scheduled_for,
            run.run_time
        );
        assert!(
            script_started - run.scheduled_for < Span::seconds(1),
            "script started {} after its slot",
            script_started - run.scheduled_for
        );
    }
}

#[test]
fn run_now_runs_a_manual_job_once_and_it_goes_back_to_no_next_run() {
    let dir = tempfile::tempdir().expect("temp dir");
    let jtp = start(dir.path(), None, &[]);
    jtp.create(
        "on-demand",
        json!({ "schedule": { "manual": {} }, "script": inline("echo manual run") }),
    );
    let db = Db::open(&sqlite_url(dir.path()));
    assert_eq!(db.job("on-demand").next_run, None);
    let (status, body) = jtp.api(reqwest::Method::POST, "/jobs/default/on-demand/run", None);
    assert_eq!(status, 202, "{body}");
    let runs = db.wait_finished("on-demand", 1, Duration::from_secs(15));
    assert_eq!(runs.len(), 1);
    assert_eq!(
        (runs[0].status, runs[0].trigger),
        (RunStatus::Success, Trigger::Manual)
    );
    assert_eq!(db.output(runs[0].id), "manual run\n");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(db.runs("on-demand").len(), 1, "Run Now ran more than once");
    let job = db.job("on-demand");
    assert_eq!((job.next_run, job.run_now_requested_at), (None, None));
}

/// Run Now ignores the concurrency policy: a second request while the first run is in flight
/// starts a second run under Forbid (it used to be answered 202 and dropped), and under Replace it
/// runs alongside instead of stopping the first.
#[test]
fn a_second_run_now_while_the_first_runs_starts_a_second_run_under_forbid_and_replace() {
    let dir = tempfile::tempdir().expect("temp dir");
    let jtp = start(dir.path(), None, &[]);
    let db = Db::open(&sqlite_url(dir.path()));
    for (name, policy) in [("forbid", "Forbid"), ("replace", "Replace")] {
        jtp.create(name,
            json!({ "schedule": { "manual": {} }, "concurrencyPolicy": policy, "script": inline("echo running; sleep 4") }),
        );
        let run_now = format!("/jobs/default/{name}/run");
        let (status, body) = jtp.api(reqwest::Method::POST, &run_now, None);
        assert_eq!(status, 202, "{body}");
        wait_until(Duration::from_secs(15), "the first run to start", || {
            db.runs(name).iter().any(|r| r.status == RunStatus::Running)
        });
        let (status, body) = jtp.api(reqwest::Method::POST, &run_now, None);
        assert_eq!(status, 202, "{body}");
        let runs = db.wait_finished(name, 2, Duration::from_secs(20));
        assert_eq!(runs.len(), 2, "{name}: {runs:?}");
        for run in &runs {
            assert_eq!(
                (run.status, run.trigger),
                (RunStatus::Success, Trigger::Manual),
                "{name}: neither run is skipped or stopped: {runs:?}"
            );
        }
        let (first, second) = if runs[0].run_time < runs[1].run_time {
            (&runs[0], &runs[1])
        } else {
            (&runs[1], &runs[0])
        };
        assert!(
            first.finished_at.is_some_and(|end| second.run_time < end),
            "{name}: the second run started while the first ran: {runs:?}"
        );
        let job = db.job(name);
        assert_eq!((job.next_run, job.run_now_requested_at), (None, None), "{name}");
    }
}

#[test]
fn failure_error_timeout_and_big_output_are_recorded_as_the_original_did() {
    let dir = tempfile::tempdir().expect("temp dir");
    let scripts = dir.path().join("jobs").join("scripts");
    std::fs::create_dir_all(&scripts).expect("scripts dir");
    std::fs::write(scripts.join("not-executable.sh"), "#!/bin/sh\necho hi\n").expect("write script");
    let jtp = start(dir.path(), None, &["--output-cap-bytes", "65536"]);
    let manual = |script: Value| json!({ "schedule": { "manual": {} }, "script": script });
    jtp.create("fails", manual(inline("echo about to fail; exit 3")));
    jtp.create("missing-script", manual(json!({ "file": "no-such-script.sh" })));
    jtp.create("not-executable", manual(json!({ "file": "not-executable.sh" })));
    jtp.create("escapes", manual(json!({ "file": "../../etc/passwd" })));
    let mut slow = manual(inline("echo started; sleep 30"));
    slow["activeDeadlineSeconds"] = json!(1);
    jtp.create("too-slow", slow);
    jtp.create(
        "chatty",
        manual(inline(
            "head -c 5242880 /dev/zero | tr '\\0' 'y'; echo; printf 'bad \\377 byte\\n'; echo THE-END",
        )),
    );
    for name in [
        "fails",
        "missing-script",
        "not-executable",
        "escapes",
        "too-slow",
        "chatty",
    ] {
        let (status, body) = jtp.api(reqwest::Method::POST, &format!("/jobs/default/{name}/run"), None);
        assert_eq!(status, 202, "{name}: {body}");
    }
    let db = Db::open(&sqlite_url(dir.path()));
    let only = |name: &str| {
        let runs = db.wait_finished(name, 1, Duration::from_secs(30));
        assert_eq!(runs.len(), 1, "{name}");
        let output = db.output(runs[0].id);
        (runs[0].clone(), output)
    };

    let (run, output) = only("fails");
    assert_eq!((run.status, run.exit_code), (RunStatus::Failure, Some(3)));
    assert_eq!(output, "about to fail\n");

    let (run, output) = only("missing-script");
    assert_eq!((run.status, run.exit_code), (RunStatus::Error, None));
    assert!(output.contains("No such file or directory"), "{output}");

    let (run, output) = only("not-executable");
    assert_eq!(run.status, RunStatus::Error);
    assert!(output.contains("Permission denied"), "{output}");

    let (run, output) = only("escapes");
    assert_eq!(run.status, RunStatus::Error);
    assert!(
        output.contains("refused") && output.contains("outside the scripts folder"),
        "{output}"
    );

    let (run, output) = only("too-slow");
    assert_eq!(run.status, RunStatus::Failure);
    assert!(
        output.starts_with("started\n") && output.contains("timed out after 1 s"),
        "{output}"
    );

    let (run, output) = only("chatty");
    assert_eq!(run.status, RunStatus::Success);
    assert_eq!(run.output_bytes, 5_242_880 + 1 + 11 + 8);
    assert_eq!(run.output_truncated, run.output_bytes - 65_536);
    assert!(
        output.starts_with("yyyy") && output.ends_with("bad \u{fffd} byte\nTHE-END\n"),
        "tail kept"
    );
    assert_eq!(output.matches("bytes of output cut here").count(), 1);
    assert!(output.len() < 65_536 + 200);
}

#[test]
fn a_restart_runs_a_slot_missed_during_downtime_once_and_closes_interrupted_runs() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = sqlite_url(dir.path());
    let jtp = start(dir.path(), None, &[]);
    let every_ten_minutes = json!({ "interval": { "every": 10, "unit": "minutes" } });
    jtp.create(
        "catch-up",
        json!({ "schedule": every_ten_minutes, "script": inline("echo caught up") }),
    );
    jtp.create("deadline",
        json!({ "schedule": every_ten_minutes, "startingDeadlineSeconds": 10, "script": inline("echo too late") }),
    );
    jtp.create(
        "long",
        json!({ "schedule": { "manual": {} }, "script": inline("echo working; sleep 60") }),
    );
    let (status, _) = jtp.api(reqwest::Method::POST, "/jobs/default/long/run", None);
    assert_eq!(status, 202);
    let db = Db::open(&url);
    wait_until(Duration::from_secs(15), "the long run to start", || {
        !db.runs("long").is_empty()
    });
    // A crash: no chance to record anything.
    drop(jtp);

    // While it was down, two or three slots of each interval job fell due.
    let schedules = ["catch-up", "deadline"].map(|name| (name, interval_of(600, name)));
    for (name, schedule) in &schedules {
        let job = db.job(name);
        let slot = schedule
            .next_after(Utc::now() - Span::minutes(25))
            .expect("a slot");
        db.runtime
            .block_on(
                db.store
                    .skip_slot(job.id, job.next_run.expect("next run"), Some(slot)),
            )
            .expect("move next_run into the past");
    }

    // Keep clear of each job's slots, whatever the time of day: its latest missed slot must be
    // older than the 10 s deadline, and no new slot may fall due while the test looks.
    let clear = |schedule: &jtp_crds::CompiledSchedule| {
        let now = Utc::now();
        let next = schedule.next_after(now).expect("a slot");
        next - now > Span::seconds(20) && now - (next - Span::minutes(10)) > Span::seconds(15)
    };
    while !schedules.iter().all(|(_, schedule)| clear(schedule)) {
        std::thread::sleep(Duration::from_secs(1));
    }
    let _jtp = start(dir.path(), None, &[]);
    let runs = db.wait_finished("catch-up", 1, Duration::from_secs(15));
    let runs_long = db.wait_finished("long", 1, Duration::from_secs(15));
    std::thread::sleep(Duration::from_secs(2));
    let runs_after = db.runs("catch-up");
    assert_eq!(
        runs_after.len(),
        1,
        "a catch-up must be one run, never a burst: {runs_after:?}"
    );
    assert_eq!(runs[0].status, RunStatus::Success);
    let latest_missed = schedules[0]
        .1
        .missed(Utc::now() - Span::minutes(11), Utc::now(), 1)
        .latest()
        .expect("a slot in the last 10 minutes");
    assert_eq!(
        runs[0].scheduled_for, latest_missed,
        "the catch-up runs the latest missed slot"
    );
    assert!(db.job("catch-up").next_run.is_some_and(|next| next > Utc::now()));

    assert!(
        db.runs("deadline").is_empty(),
        "a slot missed past its starting deadline is skipped"
    );
    assert!(db.job("deadline").next_run.is_some_and(|next| next > Utc::now()));

    assert_eq!(runs_long.len(), 1);
    assert_eq!(runs_long[0].status, RunStatus::Failure);
    assert!(
        db.output(runs_long[0].id).contains("interrupted"),
        "{}",
        db.output(runs_long[0].id)
    );
}

#[test]
fn shutdown_gives_running_scripts_a_grace_period_then_records_them() {
    let dir = tempfile::tempdir().expect("temp dir");
    let jtp = start(dir.path(), None, &[]);
    jtp.create(
        "quick",
        json!({ "schedule": { "manual": {} }, "script": inline("sleep 1; echo finished in grace") }),
    );
    jtp.create(
        "stubborn",
        json!({ "schedule": { "manual": {} }, "script": inline("echo still going; sleep 60") }),
    );
    for name in ["quick", "stubborn"] {
        assert_eq!(
            jtp.api(reqwest::Method::POST, &format!("/jobs/default/{name}/run"), None)
                .0,
            202
        );
    }
    let db = Db::open(&sqlite_url(dir.path()));
    wait_until(Duration::from_secs(15), "both runs to start", || {
        !db.runs("quick").is_empty() && !db.runs("stubborn").is_empty()
    });
    // Well within the stubborn script's 60 s: the runner stops it once the 2 s grace is over.
    jtp.stop(Duration::from_secs(20));
    let quick = db.finished_runs("quick");
    let stubborn = db.finished_runs("stubborn");
    assert_eq!(quick.len(), 1);
    assert_eq!(quick[0].status, RunStatus::Success);
    assert_eq!(stubborn.len(), 1);
    assert_eq!(stubborn[0].status, RunStatus::Failure);
    assert!(
        db.output(stubborn[0].id)
            .contains("stopped: the runner shut down")
    );
}

#[test]
fn jobs_folder_files_are_loaded_updated_and_removed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let jobs = dir.path().join("jobs");
    std::fs::create_dir_all(&jobs).expect("jobs dir");
    let manifest = |at: &str| {
        format!(
            "apiVersion: jobtrigger.io/v1alpha1\nkind: ScheduledJob\nmetadata: {{ name: from-file }}\nspec:\n  schedule: {{ daily: {{ at: \"{at}\" }} }}\n  script: {{ inline: echo hi }}\n"
        )
    };
    std::fs::write(jobs.join("job.yaml"), manifest("09:00")).expect("write");
    let _jtp = start(dir.path(), None, &[]);
    let db = Db::open(&sqlite_url(dir.path()));
    let first = db.job("from-file");
    assert_eq!(first.at_time.as_deref(), Some("09:00"));
    assert_eq!(
        first.next_run.map(|t| t.format("%H:%M").to_string()),
        Some("01:00".into()),
        "09:00 HKT"
    );

    std::fs::write(jobs.join("job.yaml"), manifest("10:30")).expect("rewrite");
    wait_until(Duration::from_secs(15), "the edit to load", || {
        db.job("from-file").at_time.as_deref() == Some("10:30")
    });
    assert_eq!(
        db.job("from-file")
            .next_run
            .map(|t| t.format("%H:%M").to_string()),
        Some("02:30".into())
    );

    std::fs::write(jobs.join("job.yaml"), manifest("25:00")).expect("break it");
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(
        db.job("from-file").at_time.as_deref(),
        Some("10:30"),
        "an invalid file changes nothing"
    );

    std::fs::remove_file(jobs.join("job.yaml")).expect("remove");
    wait_until(Duration::from_secs(15), "the job to be deleted", || {
        db.runtime
            .block_on(db.store.get_job_by_name("default", "from-file"))
            .is_err()
    });
}

#[test]
fn two_runners_on_one_postgres_database_never_run_a_slot_twice() {
    let url = postgres_database();
    let dir = tempfile::tempdir().expect("temp dir");
    let ledger = dir.path().join("ledger");
    std::fs::create_dir_all(&ledger).expect("ledger dir");
    let a_dir = dir.path().join("a");
    let a = start(&a_dir, Some(&url), &["--runner-id", "runner-a"]);
    let _b = start(
        &dir.path().join("b"),
        Some(&url),
        &["--runner-id", "runner-b", "--no-portal"],
    );
    for i in 0..4 {
        let script = format!("echo \"$JTP_RUN_ID\" >> {}/job-{i}.log", ledger.display());
        a.create(&format!("shared-{i}"),
            json!({ "schedule": { "interval": { "every": 10, "unit": "seconds" } }, "concurrencyPolicy": "Allow", "script": inline(&script) }),
        );
    }
    let db = Db::open(&url);
    wait_until(Duration::from_secs(45), "three slots of every job", || {
        (0..4).all(|i| db.finished_runs(&format!("shared-{i}")).len() >= 3)
    });
    let mut runners = std::collections::BTreeSet::new();
    for i in 0..4 {
        let runs = db.finished_runs(&format!("shared-{i}"));
        let slots: std::collections::BTreeSet<_> = runs.iter().map(|r| r.scheduled_for).collect();
        assert_eq!(slots.len(), runs.len(), "a slot was recorded twice");
        let executed = std::fs::read_to_string(ledger.join(format!("job-{i}.log"))).unwrap_or_default();
        let mut ids: Vec<&str> = executed.lines().collect();
        let total = ids.len();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), total, "a run executed twice");
        assert!(total >= runs.len(), "every recorded run executed");
        assert!(
            total <= runs.len() + 1,
            "executions without a record: {total} vs {}",
            runs.len()
        );
        runners.extend(runs.iter().filter_map(|r| r.runner.clone()));
    }
    assert!(!runners.is_empty());
}

/// A fresh database on the test PostgreSQL server (`JTP_TEST_POSTGRES_URL`, else `scripts/postgres-up`).
fn postgres_database() -> String {
    let server = jtp_store::testing::postgres_server_url();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime
        .block_on(jtp_store::testing::create_database(&server, "jtp_e2e"))
        .1
}

/// The same spec as in a cluster, from the jobs folder: a Secret and a ConfigMap feed the run
/// container's `valueFrom` and `envFrom`, and its Secret, ConfigMap and emptyDir volumes are
/// written into the run's folder with their modes, as are the Secret and ConfigMap sources of a
/// projected volume (its service account token is reported as ignored); no value reaches the log, the folder is gone
/// after the run, and the pod-only `nodeSelector` is reported as ignored.
#[test]
fn secrets_and_config_maps_of_the_jobs_folder_feed_env_env_from_and_volumes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let jobs = dir.path().join("jobs");
    std::fs::create_dir_all(&jobs).expect("jobs dir");
    let objects = "apiVersion: v1\nkind: Secret\nmetadata: { name: db }\n\
        data: { user: YXBw }\nstringData: { password: s3cr3t-pw }\n---\n\
        apiVersion: v1\nkind: ConfigMap\nmetadata: { name: settings }\n\
        data: { mode: fast, app.conf: \"level=debug\\n\" }\n";
    std::fs::write(jobs.join("objects.yaml"), objects).expect("write");
    let job = r#"apiVersion: jobtrigger.io/v1alpha1
kind: ScheduledJob
metadata: { name: uses-secrets }
spec:
  schedule: { manual: {} }
  script:
    inline: |
      echo "user=$DB_USER mode=$MODE from=$CFG_mode gone=${GONE:-unset}"
      test "$DB_PASSWORD" = s3cr3t-pw && echo password-ok
      cd "$JTP_RUN_DIR"
      stat -c '%a %n' etc/db/password etc/db/user etc/conf/app.conf
      cat etc/conf/app.conf
      stat -c '%a %n' etc/bundle/creds/user etc/bundle/mode && echo "$(cat etc/bundle/mode)"
      test -d scratch && touch scratch/x && echo scratch-ok
  podTemplate:
    spec:
      nodeSelector: { disk: ssd }
      containers:
        - name: run
          env:
            - { name: DB_USER, valueFrom: { secretKeyRef: { name: db, key: user } } }
            - { name: DB_PASSWORD, valueFrom: { secretKeyRef: { name: db, key: password } } }
            - { name: MODE, valueFrom: { configMapKeyRef: { name: settings, key: mode } } }
            - { name: GONE, valueFrom: { secretKeyRef: { name: absent, key: x, optional: true } } }
          envFrom:
            - { configMapRef: { name: settings }, prefix: CFG_ }
          volumeMounts:
            - { name: db, mountPath: /etc/db, readOnly: true }
            - { name: conf, mountPath: /etc/conf }
            - { name: scratch, mountPath: /scratch }
            - { name: bundle, mountPath: /etc/bundle }
      volumes:
        - { name: db, secret: { secretName: db, defaultMode: 384 } }
        - { name: conf, configMap: { name: settings, items: [{ key: app.conf, path: app.conf, mode: 416 }] } }
        - { name: scratch, emptyDir: {} }
        - name: bundle
          projected:
            defaultMode: 288
            sources:
              - { secret: { name: db, items: [{ key: user, path: creds/user }] } }
              - { configMap: { name: settings, items: [{ key: mode, path: mode }] } }
              - { serviceAccountToken: { path: token } }
---
apiVersion: jobtrigger.io/v1alpha1
kind: ScheduledJob
metadata: { name: missing-secret }
spec:
  schedule: { manual: {} }
  script: { inline: echo never }
  podTemplate:
    spec:
      containers:
        - name: run
          env:
            - { name: TOKEN, valueFrom: { secretKeyRef: { name: absent, key: token } } }
"#;
    std::fs::write(jobs.join("jobs.yaml"), job).expect("write");
    let data = dir.path().join("data");
    let log = dir.path().join("jtp.log");
    let jtp = Standalone::new(&data)
        .arg("--jobs-dir")
        .arg(&jobs)
        .log(&log)
        .start();
    for name in ["uses-secrets", "missing-secret"] {
        wait_until(Duration::from_secs(15), "the job from the folder", || {
            jtp.api(reqwest::Method::GET, &format!("/jobs/default/{name}"), None)
                .0
                == 200
        });
        jtp.run_now(name);
    }
    let finished = |name: &str| {
        let mut run = Value::Null;
        wait_until(Duration::from_secs(20), "the run to finish", || {
            run = jtp.runs(name).first().cloned().unwrap_or_default();
            !run.is_null() && run["status"] != "RUNNING"
        });
        let id = run["id"].as_i64().expect("id");
        (run["status"].clone(), jtp.output(id), id)
    };
    let (status, output, id) = finished("uses-secrets");
    assert_eq!(status, "SUCCESS", "{output}");
    assert_eq!(
        output,
        "user=app mode=fast from=fast gone=unset\npassword-ok\n\
         400 etc/db/password\n400 etc/db/user\n640 etc/conf/app.conf\nlevel=debug\n\
         440 etc/bundle/creds/user\n440 etc/bundle/mode\nfast\nscratch-ok\n"
    );
    assert!(
        !data.join("run").join(id.to_string()).exists(),
        "the run's folder (with the Secret's files) is removed after the run"
    );
    let (status, output, _) = finished("missing-secret");
    assert_eq!(status, "ERROR", "{output}");
    assert!(
        output.contains("Secret default/absent is not in the jobs folder"),
        "{output}"
    );
    let logged = std::fs::read_to_string(&log).expect("log");
    assert!(
        !logged.contains("s3cr3t-pw"),
        "a Secret's value was logged:\n{logged}"
    );
    let ignored: Vec<&str> = logged
        .lines()
        .filter(|l| l.contains("ignored in standalone mode"))
        .collect();
    assert_eq!(ignored.len(), 1, "{logged}");
    assert!(
        ignored[0].contains("default/uses-secrets: podTemplate.spec.nodeSelector")
            && ignored[0]
                .contains("podTemplate.spec.volumes[bundle].projected.sources[2].serviceAccountToken")
            && !ignored[0].contains("containers")
            && !ignored[0].contains("sources[0]"),
        "{}",
        ignored[0]
    );
}

/// Old runs of a job that follows the global policy, of a job with its own `spec.retention` and of
/// a deleted job, loaded before start; the runner's first retention pass prunes each by its
/// policy, and the API shows which policy applies.
#[test]
fn retention_flags_prune_old_runs_at_start_and_the_api_shows_the_policy() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path();
    let db = Db::open(&sqlite_url(data));
    let daily = jtp_crds::ScheduledJobSpec::daily("09:00");
    let own = jtp_crds::ScheduledJobSpec::daily("09:00").retain(None, Some(1));
    let old = Utc::now() - Span::days(10);
    let mut ids = Vec::new();
    for (name, spec) in [("global", &daily), ("own", &own), ("gone", &own)] {
        let input = jtp_store::JobInput {
            name,
            namespace: "default",
            uid: None,
            spec,
            next_run: None,
        };
        let job = db.runtime.block_on(db.store.create_job(&input)).expect("create");
        let runs: Vec<jtp_store::ImportedRun> = (0..5)
            .map(|k| jtp_store::ImportedRun {
                job_id: job.id,
                run_time: old + Span::hours(k),
                scheduled_for: old + Span::hours(k),
                finished_at: Some(old + Span::hours(k)),
                status: RunStatus::Success,
                exit_code: Some(0),
                trigger: Trigger::Schedule,
                output: format!("old {k}"),
                k8s_job_name: None,
                runner: None,
            })
            .collect();
        db.runtime.block_on(db.store.import_runs(&runs)).expect("import");
        ids.push(job.id);
    }
    db.runtime.block_on(db.store.delete_job(ids[2])).expect("delete");

    let refused = common::jtp()
        .args([
            "standalone",
            "--no-portal",
            "--jobs-dir",
            "",
            "--retention-max-age",
            "90 days",
        ])
        .arg("--data-dir")
        .arg(data)
        .output()
        .expect("run jtp");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(
        stderr.contains("--retention-max-age (JTP_RETENTION_MAX_AGE): \"90 days\" is not a duration"),
        "{stderr}"
    );

    let jtp = start(
        data,
        None,
        &["--retention-max-age", "1d", "--retention-keep-last", "2"],
    );
    let count = |id: i64| {
        db.runtime
            .block_on(db.store.list_runs(id, 100, 0))
            .expect("runs")
            .total
    };
    wait_until(Duration::from_secs(20), "the first retention pass", || {
        (count(ids[0]), count(ids[1]), count(ids[2])) == (2, 1, 2)
    });

    let (status, global) = jtp.api(reqwest::Method::GET, "/jobs/default/global", None);
    assert_eq!(status, 200, "{global}");
    assert_eq!(
        global["retention"],
        json!({ "maxAge": "1d", "keepLast": 2, "source": "global",
                "summary": "runs of the last 1 day, and at least the last 2 runs" })
    );
    let (_, own) = jtp.api(reqwest::Method::GET, "/jobs/default/own", None);
    assert_eq!(
        own["retention"],
        json!({ "keepLast": 1, "source": "job", "summary": "the last 1 run" })
    );
    let page = reqwest::blocking::get(format!("{}/jobs/default/own", jtp.base))
        .expect("panel")
        .text()
        .expect("panel text");
    assert!(
        page.contains("Keeps the last 1 run (this job's retention)"),
        "the panel shows the policy: {page}"
    );
}
