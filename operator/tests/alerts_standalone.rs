//! Standalone mode's dead-man's switch and alerts, end to end through the built `jtp` binary.

use serde_json::{Value, json};
use std::path::Path;
use std::time::Duration;

mod common;
use common::{Jtp, Standalone, wait_until};

/// `jtp standalone` on `data` (no jobs folder), with extra flags and environment.
fn start(data: &Path, extra: &[&str], env: &[(&str, &str)]) -> Jtp {
    let logs = std::fs::read_dir(data).map(|d| d.count()).unwrap_or_default();
    let mut jtp = Standalone::new(data)
        .args(["--jobs-dir", "", "--shutdown-grace", "2"])
        .args(extra)
        .log(&data.join(format!("jtp-{logs}.log")));
    for (name, value) in env {
        jtp = jtp.env(name, value);
    }
    jtp.start()
}

fn job(jtp: &Jtp, name: &str) -> Value {
    let (status, job) = jtp.api(reqwest::Method::GET, &format!("/jobs/default/{name}"), None);
    assert_eq!(status, 200, "{job}");
    job
}

fn page(jtp: &Jtp, path: &str) -> String {
    reqwest::blocking::get(format!("{}{path}", jtp.base))
        .expect("page")
        .text()
        .expect("page text")
}

#[test]
fn a_job_without_a_success_within_its_window_is_marked_overdue_until_it_succeeds() {
    let dir = tempfile::tempdir().expect("temp dir");
    let jtp = start(dir.path(), &[], &[]);
    jtp.create(
        "quiet",
        json!({ "schedule": { "manual": {} }, "expectSuccessWithin": "3s", "script": { "inline": "exit 0" } }),
    );
    assert_eq!(job(&jtp, "quiet")["overdue"], Value::Null, "not yet");
    wait_until(Duration::from_secs(20), "the job to be overdue", || {
        !job(&jtp, "quiet")["overdue"].is_null()
    });
    let overdue = &job(&jtp, "quiet")["overdue"];
    assert!(
        overdue["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("no success within 3s: one was due by ")),
        "{overdue}"
    );
    assert!(overdue["deadline"]["rfc3339"].is_string(), "{overdue}");
    let list = page(&jtp, "/");
    assert!(
        list.contains("<span class=\"badge overdue\""),
        "the jobs list marks it: {list}"
    );
    let panel = page(&jtp, "/jobs/default/quiet");
    assert!(
        panel.contains("id=\"overdue\""),
        "the job's view says why: {panel}"
    );

    jtp.run_now("quiet");
    wait_until(Duration::from_secs(20), "the success to clear it", || {
        job(&jtp, "quiet")["overdue"].is_null()
    });
    assert!(!page(&jtp, "/").contains("badge overdue"));
}
