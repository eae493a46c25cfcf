//! Standalone mode's `/metrics`, end to end through the built `jtp` binary and real HTTP scrapes:
//! the per-job series (last success, last failure, failures in a row, overdue) read from the
//! store — so a restarted runner shows them before any new run — gone with a deleted job, and the
//! skew histogram's sub-second buckets; on the portal's listener and on `--metrics-addr`.

use jtp_dashboard::testing::free_port;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

mod common;
use common::{Jtp, Standalone, wait_until};

/// `jtp standalone` on `data` with the jobs folder `jobs` and `/metrics` also on `metrics_port`.
fn start(data: &Path, jobs: &Path, metrics_port: u16) -> Jtp {
    std::fs::create_dir_all(data).expect("data dir");
    let logs = std::fs::read_dir(data).map(|d| d.count()).unwrap_or_default();
    Standalone::new(data)
        .arg("--jobs-dir")
        .arg(jobs)
        .args(["--shutdown-grace", "2"])
        .arg("--metrics-addr")
        .arg(format!("127.0.0.1:{metrics_port}"))
        .log(&data.join(format!("jtp-{logs}.log")))
        .start()
}

fn manifest(name: &str, spec: &str) -> String {
    format!(
        "apiVersion: jobtrigger.io/v1alpha1\nkind: ScheduledJob\nmetadata: {{ name: {name} }}\nspec:\n{spec}"
    )
}

/// The samples of an exposition, by series (`name{labels}`).
fn scrape(url: &str) -> BTreeMap<String, f64> {
    let response = reqwest::blocking::get(url).expect("scrape");
    assert!(response.status().is_success(), "{url}: {}", response.status());
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    let text = response.text().expect("exposition");
    assert!(text.ends_with("# EOF\n"), "{text}");
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.rsplit_once(' '))
        .map(|(series, value)| (series.to_owned(), value.parse::<f64>().expect("a number")))
        .collect()
}

fn series(metric: &str, name: &str) -> String {
    format!("{metric}{{namespace=\"default\",name=\"{name}\"}}")
}

/// When the newest run of `name` finished, in Unix seconds.
fn finished(jtp: &Jtp, name: &str, status: &str) -> f64 {
    let run = jtp
        .runs(name)
        .into_iter()
        .find(|r| r["status"] == status)
        .unwrap_or_else(|| panic!("a {status} run of {name}"));
    let at = run["finished"]["rfc3339"].as_str().expect("finished");
    chrono::DateTime::parse_from_rfc3339(at)
        .expect("rfc3339")
        .timestamp_micros() as f64
        / 1e6
}

fn run_and_wait(jtp: &Jtp, name: &str, count: usize) {
    jtp.run_now(name);
    wait_until(Duration::from_secs(30), &format!("run {count} of {name}"), || {
        jtp.runs(name).iter().filter(|r| r["status"] != "RUNNING").count() >= count
    });
}

#[test]
fn per_job_series_come_from_the_store_survive_a_restart_and_go_with_the_job() {
    let dir = tempfile::tempdir().expect("temp dir");
    let jobs = dir.path().join("jobs");
    std::fs::create_dir_all(&jobs).expect("jobs dir");
    std::fs::write(
        jobs.join("good.yaml"),
        manifest(
            "good",
            "  schedule: { manual: {} }\n  expectSuccessWithin: 1h\n  script: { inline: exit 0 }\n",
        ),
    )
    .expect("good");
    std::fs::write(
        jobs.join("bad.yaml"),
        manifest(
            "bad",
            "  schedule: { manual: {} }\n  expectSuccessWithin: 2s\n  script: { inline: exit 3 }\n",
        ),
    )
    .expect("bad");
    std::fs::write(
        jobs.join("tick.yaml"),
        manifest(
            "tick",
            "  schedule: { interval: { every: 10, unit: seconds } }\n  script: { inline: exit 0 }\n",
        ),
    )
    .expect("tick");
    let data = dir.path().join("data");
    let port = free_port();
    let metrics_url = format!("http://127.0.0.1:{port}/metrics");
    let jtp = start(&data, &jobs, port);
    run_and_wait(&jtp, "good", 1);
    run_and_wait(&jtp, "bad", 1);
    run_and_wait(&jtp, "bad", 2);
    wait_until(Duration::from_secs(30), "a scheduled run of tick", || {
        jtp.runs("tick").iter().any(|r| r["status"] == "SUCCESS")
    });
    let good_at = finished(&jtp, "good", "SUCCESS");
    let bad_at = finished(&jtp, "bad", "FAILURE");
    let mut samples = BTreeMap::new();
    wait_until(Duration::from_secs(20), "the series of the runs", || {
        samples = scrape(&metrics_url);
        samples.get(&series("jtp_job_consecutive_failures", "bad")) == Some(&2.0)
            && samples.get(&series("jtp_job_overdue", "bad")) == Some(&1.0)
            && samples.contains_key(&series("jtp_job_last_success_timestamp_seconds", "tick"))
    });
    let close = |a: f64, b: f64| (a - b).abs() < 0.01;
    let value = |samples: &BTreeMap<String, f64>, metric: &str, name: &str| {
        samples.get(&series(metric, name)).copied()
    };
    assert!(
        value(&samples, "jtp_job_last_success_timestamp_seconds", "good").is_some_and(|v| close(v, good_at)),
        "{samples:?}"
    );
    assert!(
        value(&samples, "jtp_job_last_failure_timestamp_seconds", "bad").is_some_and(|v| close(v, bad_at)),
        "{samples:?}"
    );
    assert_eq!(
        value(&samples, "jtp_job_last_success_timestamp_seconds", "bad"),
        None,
        "no success yet: no series"
    );
    assert_eq!(
        value(&samples, "jtp_job_last_failure_timestamp_seconds", "good"),
        None
    );
    assert_eq!(value(&samples, "jtp_job_consecutive_failures", "good"), Some(0.0));
    assert_eq!(value(&samples, "jtp_job_overdue", "good"), Some(0.0));
    assert_eq!(
        value(&samples, "jtp_job_overdue", "tick"),
        None,
        "tick has no switch"
    );
    assert_eq!(samples.get("jtp_runs_total{status=\"FAILURE\"}"), Some(&2.0));
    assert!(
        samples
            .get("jtp_runs_total{status=\"SUCCESS\"}")
            .is_some_and(|n| *n >= 2.0)
    );
    assert_eq!(
        samples.get("jtp_runs_started_total{trigger=\"manual\"}"),
        Some(&3.0)
    );
    // The skew of scheduled runs, with buckets under a second; a standalone start is a few ms late.
    let count = samples["jtp_trigger_skew_seconds_count"];
    assert!(count >= 1.0, "{samples:?}");
    for le in ["0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5"] {
        assert!(
            samples.contains_key(&format!("jtp_trigger_skew_seconds_bucket{{le=\"{le}\"}}")),
            "bucket {le}: {samples:?}"
        );
    }
    assert_eq!(
        samples["jtp_trigger_skew_seconds_bucket{le=\"1.0\"}"], count,
        "every scheduled start within a second of its slot: {samples:?}"
    );
    for operator_only in ["jtp_leader", "jtp_reconciles_total"] {
        assert!(
            !samples.contains_key(operator_only),
            "{operator_only} is the operator's"
        );
    }
    // The portal's listener serves the same exposition.
    let portal = scrape(&format!("{}/metrics", jtp.base));
    assert_eq!(
        portal.get(&series("jtp_job_consecutive_failures", "bad")),
        Some(&2.0)
    );

    // A restart: the series are read from the store before any new run (counters start again).
    drop(jtp);
    std::fs::remove_file(jobs.join("tick.yaml")).expect("remove tick");
    let jtp = start(&data, &jobs, port);
    wait_until(
        Duration::from_secs(10),
        "the first check after the restart",
        || scrape(&metrics_url).contains_key(&series("jtp_job_consecutive_failures", "bad")),
    );
    let after_check = scrape(&metrics_url);
    assert_eq!(
        value(&after_check, "jtp_job_consecutive_failures", "bad"),
        Some(2.0)
    );
    assert!(
        value(&after_check, "jtp_job_last_success_timestamp_seconds", "good")
            .is_some_and(|v| close(v, good_at)),
        "{after_check:?}"
    );
    assert!(
        value(&after_check, "jtp_job_last_failure_timestamp_seconds", "bad")
            .is_some_and(|v| close(v, bad_at)),
        "{after_check:?}"
    );
    assert_eq!(value(&after_check, "jtp_job_overdue", "bad"), Some(1.0));
    assert_eq!(
        after_check.get("jtp_runs_total{status=\"FAILURE\"}"),
        Some(&0.0),
        "counters count this process's runs"
    );
    assert_eq!(jtp.runs("bad").len(), 2, "no new run was needed");
    assert_eq!(
        value(&after_check, "jtp_job_consecutive_failures", "tick"),
        None,
        "the job deleted while the runner was down is gone"
    );

    // A job deleted while it runs: its series disappear, the others stay.
    std::fs::remove_file(jobs.join("bad.yaml")).expect("remove bad");
    wait_until(Duration::from_secs(20), "the deleted job's series to go", || {
        let samples = scrape(&metrics_url);
        !samples.keys().any(|k| k.contains("name=\"bad\""))
            && samples.contains_key(&series("jtp_job_consecutive_failures", "good"))
    });
    drop(jtp);
}
