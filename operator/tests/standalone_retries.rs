//! `spec.retries` and `spec.pauseAfterConsecutiveFailures` in standalone mode, through the built
//! `jtp` binary: each attempt its own row for its slot, the backoff honoured, a retry pending
//! across a restart run once, and a job paused after failures in a row with the portal saying why.

use chrono::Utc;
use jtp_crds::{RunStatus, Trigger};
use jtp_store::{Job, RunSummary, Store};
use serde_json::{Value, json};
use std::path::Path;
use std::time::Duration;

mod common;
use common::{Jtp, Standalone, wait_until};

fn start(data: &Path) -> Jtp {
    let jobs = data.join("jobs");
    std::fs::create_dir_all(&jobs).expect("jobs dir");
    Standalone::new(data)
        .arg("--jobs-dir")
        .arg(&jobs)
        .args(["--shutdown-grace", "2"])
        .log(&data.join(format!("jtp-{}.log", Utc::now().timestamp_micros())))
        .start()
}

struct Db {
    store: Store,
    runtime: tokio::runtime::Runtime,
}

impl Db {
    fn open(data: &Path) -> Self {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let url = format!("sqlite://{}", data.join("jtp.db").display());
        let store = runtime.block_on(Store::connect(&url)).expect("open the store");
        Self { store, runtime }
    }

    fn job(&self, name: &str) -> Job {
        self.runtime
            .block_on(self.store.get_job_by_name("default", name))
            .expect("job exists")
    }

    /// The job's runs, oldest first.
    fn runs(&self, name: &str) -> Vec<RunSummary> {
        let job = self.job(name);
        let mut runs = self
            .runtime
            .block_on(self.store.list_runs(job.id, 1000, 0))
            .expect("list runs")
            .items;
        runs.reverse();
        runs
    }

    fn wait_finished(&self, name: &str, count: usize, limit: Duration) -> Vec<RunSummary> {
        wait_until(limit, &format!("{count} finished run(s) of {name}"), || {
            self.runs(name).iter().filter(|r| r.status.is_finished()).count() >= count
        });
        self.runs(name)
    }
}

/// A script that fails until its `n`th run (counted in a file of the test's folder).
fn fails_until(counter: &Path, n: u32) -> String {
    format!(
        "c={}; n=$(cat \"$c\" 2>/dev/null || echo 0); n=$((n+1)); echo $n > \"$c\"; echo attempt $n; [ $n -ge {n} ]",
        counter.display()
    )
}

fn manual_job(script: &str, extra: Value) -> Value {
    let mut spec = json!({ "schedule": { "manual": {} }, "script": { "inline": script } });
    if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
        spec.extend(extra.clone());
    }
    spec
}

#[test]
fn a_failing_run_is_retried_each_attempt_its_own_row_and_the_slot_ends_as_its_last_attempt() {
    let dir = tempfile::tempdir().expect("temp dir");
    let jtp = start(dir.path());
    let script = fails_until(&dir.path().join("count"), 3);
    jtp.create(
        "flaky",
        manual_job(
            &script,
            json!({ "retries": { "limit": 3, "backoff": { "strategy": "Fixed", "delay": "2s" } } }),
        ),
    );
    jtp.run_now("flaky");
    let db = Db::open(dir.path());
    let runs = db.wait_finished("flaky", 3, Duration::from_secs(40));
    let seen: Vec<(i32, RunStatus)> = runs.iter().map(|r| (r.attempt, r.status)).collect();
    assert_eq!(
        seen,
        [
            (1, RunStatus::Failure),
            (2, RunStatus::Failure),
            (3, RunStatus::Success)
        ]
    );
    // One slot: the same trigger and instant on every attempt.
    assert!(
        runs.iter()
            .all(|r| r.trigger == Trigger::Manual && r.scheduled_for == runs[0].scheduled_for)
    );
    for pair in runs.windows(2) {
        let gap = pair[1].run_time - pair[0].finished_at.expect("finished");
        assert!(
            gap >= chrono::Duration::seconds(2) && gap < chrono::Duration::seconds(5),
            "attempt {} started {gap} after attempt {} ended; the backoff is 2 s",
            pair[1].attempt,
            pair[0].attempt
        );
    }
    let job = db.job("flaky");
    assert_eq!(
        job.last_status,
        Some(RunStatus::Success),
        "the slot's outcome is its last attempt's"
    );
    assert_eq!(job.consecutive_failures, 0);
    assert_eq!(job.pending_retry(), None);
    // The API and the panel show the attempts.
    let api = jtp.runs("flaky");
    let attempts: Vec<i64> = api.iter().filter_map(|r| r["attempt"].as_i64()).collect();
    assert_eq!(attempts, [3, 2, 1], "newest first: {api:?}");
    let panel = reqwest::blocking::get(format!("{}/jobs/default/flaky", jtp.base))
        .and_then(|r| r.text())
        .expect("the panel");
    assert!(
        panel.contains("attempt 3") && panel.contains("attempt 2"),
        "{panel}"
    );
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(db.runs("flaky").len(), 3, "no attempt after a success");
}

#[test]
fn a_retry_pending_when_the_runner_is_killed_runs_once_after_the_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let jtp = start(dir.path());
    jtp.create(
        "broken",
        manual_job(
            "echo failing; exit 3",
            json!({ "retries": { "limit": 1, "backoff": { "strategy": "Fixed", "delay": "8s" } } }),
        ),
    );
    jtp.run_now("broken");
    let db = Db::open(dir.path());
    let first = db.wait_finished("broken", 1, Duration::from_secs(20));
    let failed_at = first[0].finished_at.expect("finished");
    let retry = db
        .job("broken")
        .pending_retry()
        .expect("the retry is stored with the finish");
    assert_eq!(retry.attempt, 2);
    assert!(
        (retry.at - failed_at - chrono::Duration::seconds(8))
            .num_milliseconds()
            .abs()
            < 1000
    );
    // Killed (SIGKILL) between the attempts, then started again on the same database.
    drop(jtp);
    let jtp = start(dir.path());
    let runs = db.wait_finished("broken", 2, Duration::from_secs(30));
    assert_eq!(
        runs.iter().map(|r| (r.attempt, r.status)).collect::<Vec<_>>(),
        [(1, RunStatus::Failure), (2, RunStatus::Failure)]
    );
    assert!(
        runs[1].run_time >= retry.at,
        "the backoff is honoured after the restart"
    );
    // A restart once more: the retries are spent, nothing runs again.
    drop(jtp);
    let _jtp = start(dir.path());
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(db.runs("broken").len(), 2, "no attempt lost or repeated");
    let job = db.job("broken");
    assert_eq!(job.consecutive_failures, 1, "one slot failed, after two attempts");
    assert_eq!(job.pending_retry(), None);
}

#[test]
fn failures_in_a_row_pause_the_job_and_the_portal_says_why_until_it_is_resumed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let jtp = start(dir.path());
    jtp.create(
        "doomed",
        manual_job(
            "exit 1",
            json!({ "pauseAfterConsecutiveFailures": 2, "schedule": { "interval": { "every": 1, "unit": "days" } } }),
        ),
    );
    let db = Db::open(dir.path());
    assert!(db.job("doomed").is_active);
    jtp.run_now("doomed");
    db.wait_finished("doomed", 1, Duration::from_secs(20));
    assert!(db.job("doomed").is_active, "one failure is not enough");
    jtp.run_now("doomed");
    db.wait_finished("doomed", 2, Duration::from_secs(20));
    let job = db.job("doomed");
    assert!(
        !job.is_active && job.spec.suspend,
        "paused after 2 failures in a row"
    );
    assert_eq!(job.next_run, None);
    let (status, view) = jtp.api(reqwest::Method::GET, "/jobs/default/doomed", None);
    assert_eq!(status, 200, "{view}");
    let why = view["pausedBecause"].as_str().unwrap_or_default().to_owned();
    assert!(why.contains("2 failed runs in a row"), "{view}");
    let panel = reqwest::blocking::get(format!("{}/jobs/default/doomed", jtp.base))
        .and_then(|r| r.text())
        .expect("the panel");
    assert!(panel.contains("Paused automatically"), "{panel}");
    // Resumed: the note goes; it takes two more failures to pause it again.
    let (status, body) = jtp.api(
        reqwest::Method::PATCH,
        "/jobs/default/doomed",
        Some(json!({ "suspend": false })),
    );
    assert_eq!(status, 200, "{body}");
    let (_, view) = jtp.api(reqwest::Method::GET, "/jobs/default/doomed", None);
    assert!(view["pausedBecause"].is_null(), "{view}");
    jtp.run_now("doomed");
    db.wait_finished("doomed", 3, Duration::from_secs(20));
    assert!(
        db.job("doomed").is_active,
        "a resumed job gets as many failures again"
    );
    jtp.run_now("doomed");
    db.wait_finished("doomed", 4, Duration::from_secs(20));
    assert!(!db.job("doomed").is_active, "and then pauses again");
}
