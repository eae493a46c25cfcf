//! `jtp status` through the built binary, on the database a real `jtp standalone` recorded into:
//! the counts, the queue soonest first and the newest failure with its exit code and first line.

use serde_json::json;
use std::time::Duration;

mod common;
use common::{Standalone, jtp, wait_until};

#[test]
fn status_prints_the_counts_the_queue_and_the_newest_failure() {
    let data = tempfile::tempdir().expect("temp dir");
    let jtp_server = Standalone::new(data.path())
        .arg("--jobs-dir=")
        .log(&data.path().join("jtp.log"))
        .start();
    jtp_server.create(
        "nightly",
        json!({ "schedule": { "daily": { "at": "02:00" } }, "script": { "inline": "true" } }),
    );
    jtp_server.create(
        "broken",
        json!({ "schedule": { "manual": {} },
                "script": { "inline": "echo 'disk quota exceeded' >&2\nexit 3" } }),
    );
    jtp_server.run_now("broken");
    wait_until(Duration::from_secs(30), "the failed run", || {
        jtp_server
            .runs("broken")
            .first()
            .is_some_and(|r| r["status"] == "FAILURE")
    });

    let out = jtp()
        .arg("status")
        .arg("--data-dir")
        .arg(data.path())
        .output()
        .expect("run jtp status");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "jtp status failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines[0], "2 jobs, 2 active, 1 queued, 0 runs in flight",
        "{stdout}"
    );
    let queued = stdout.split("Recent failures").next().unwrap_or("");
    assert!(queued.contains("default/nightly  daily"), "{stdout}");
    assert!(
        !queued.contains("default/broken"),
        "a manual job has no next run: {stdout}"
    );
    let failures = stdout
        .split("Recent failures (newest first):")
        .nth(1)
        .unwrap_or("");
    assert!(
        failures.contains("default/broken  FAILURE exit 3  disk quota exceeded"),
        "{stdout}"
    );
}

#[test]
fn status_without_a_database_says_where_it_looked_and_what_to_pass() {
    let data = tempfile::tempdir().expect("temp dir");
    let out = jtp()
        .arg("status")
        .arg("--data-dir")
        .arg(data.path())
        .env_remove("JTP_DATABASE_URL")
        .output()
        .expect("run jtp status");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("no database at")
            && stderr.contains("--data-dir")
            && stderr.contains("--database-url"),
        "{stderr}"
    );
    assert!(
        !data.path().join("jtp.db").exists(),
        "status must not create a database"
    );
}
