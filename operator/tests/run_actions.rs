//! Acting on runs in standalone mode, through the built `jtp` binary and its real runner: a run in
//! flight stopped with `POST /api/v1/runs/{id}/stop` ends with its whole process tree (a child in
//! the background, a grandchild that left the group with `setsid`), is recorded once as FAILURE
//! "stopped by local" and is not retried; a stop of an ended run is a 409.

use serde_json::{Value, json};
use std::path::Path;
use std::time::Duration;

mod common;
use common::{Jtp, Standalone, alive, wait_until};

fn start(data: &Path) -> Jtp {
    let jobs = data.join("jobs");
    std::fs::create_dir_all(jobs.join("scripts")).expect("jobs dir");
    Standalone::new(data)
        .arg("--jobs-dir")
        .arg(&jobs)
        .args(["--shutdown-grace", "2"])
        .log(&data.join("jtp.log"))
        .start()
}

fn pids_in(file: &Path) -> Vec<i32> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

#[test]
fn a_stopped_run_ends_with_its_whole_process_tree_and_is_recorded_once_as_failure_stopped_by_the_user() {
    let dir = tempfile::tempdir().expect("temp dir");
    let jtp = start(dir.path());
    let pids = dir.path().join("pids");
    let script = format!(
        "echo started\n\
         sleep 300 & echo $! >> {p}\n\
         setsid sh -c 'echo $$ >> {p}; sleep 300' &\n\
         echo $$ >> {p}\n\
         sleep 300",
        p = pids.display()
    );
    // A retry would be a second row: a stopped run must not get one.
    jtp.create(
        "long",
        json!({ "schedule": { "manual": {} }, "script": { "inline": script },
                "retries": { "limit": 2, "backoff": { "strategy": "Fixed", "delay": "1s" } } }),
    );
    jtp.run_now("long");
    wait_until(Duration::from_secs(30), "the run and its 3 processes", || {
        jtp.runs("long").first().is_some_and(|r| r["status"] == "RUNNING") && pids_in(&pids).len() == 3
    });
    let pids = pids_in(&pids);
    assert!(
        pids.iter().all(|p| alive(*p)),
        "the run's processes are up: {pids:?}"
    );
    let id = jtp.runs("long")[0]["id"].as_i64().expect("run id");

    let (status, body) = jtp.api(reqwest::Method::POST, &format!("/runs/{id}/stop"), None);
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["stopRequestedBy"], "local", "{body}");
    wait_until(Duration::from_secs(20), "the stopped run to be recorded", || {
        jtp.runs("long").first().is_some_and(|r| r["status"] != "RUNNING")
    });
    let runs = jtp.runs("long");
    assert_eq!(runs.len(), 1, "one row, no retry: {runs:?}");
    assert_eq!(runs[0]["status"], "FAILURE", "{runs:?}");
    let output = jtp.output(id);
    assert!(output.starts_with("started\n"), "{output:?}");
    assert!(output.contains("stopped by local"), "{output:?}");
    wait_until(
        Duration::from_secs(10),
        "every process of the run to be gone",
        || pids.iter().all(|p| !alive(*p)),
    );

    // The stop asked again, of a run that has ended: 409, and the row stays as it is.
    let (status, body) = jtp.api(reqwest::Method::POST, &format!("/runs/{id}/stop"), None);
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("already ended (FAILURE)")),
        "{body}"
    );
    // No retry comes later either.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(jtp.runs("long").len(), 1, "a stopped run is not retried");
    let (status, body) = jtp.api(reqwest::Method::GET, &format!("/runs/{id}"), None);
    assert_eq!(
        (status, body["status"].clone()),
        (200, Value::from("FAILURE")),
        "{body}"
    );

    // A run that does not exist: 404; not a number: 404 as for every run route.
    let (status, body) = jtp.api(reqwest::Method::POST, "/runs/999999/stop", None);
    assert_eq!(status, 404, "{body}");
    let (status, _) = jtp.api(reqwest::Method::GET, "/runs/1/stop", None);
    assert_eq!(status, 405, "stop takes POST only");
}
