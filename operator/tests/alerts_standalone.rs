//! Standalone mode's dead-man's switch and alerts, end to end through the built `jtp` binary.

use serde_json::{Value, json};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

mod common;
use common::{Jtp, Standalone, wait_until};

/// `jtp standalone` on `data` (no jobs folder), with extra flags, environment and URL folder.
fn start(data: &Path, extra: &[&str], env: &[(&str, &str)], url_dir: Option<&Path>) -> Jtp {
    let logs = std::fs::read_dir(data).map(|d| d.count()).unwrap_or_default();
    let mut jtp = Standalone::new(data)
        .args(["--jobs-dir", "", "--shutdown-grace", "2"])
        .args(extra)
        .log(&data.join(format!("jtp-{logs}.log")));
    for (name, value) in env {
        jtp = jtp.env(name, value);
    }
    if let Some(dir) = url_dir {
        jtp = jtp.arg("--alert-url-dir").arg(dir);
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
    let jtp = start(dir.path(), &[], &[], None);
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

/// The bodies a [`Receiver`] got, with their paths.
type Seen = Arc<Mutex<Vec<(String, Value)>>>;

/// A webhook receiver on 127.0.0.1 (the only address the product is tested against): `/ok`
/// answers 200, `/flaky` 500 to its first request then 200, `/slow` after 60 s. Every request
/// body is kept with its path.
struct Receiver {
    base: String,
    seen: Seen,
    _runtime: tokio::runtime::Runtime,
}

impl Receiver {
    fn start() -> Self {
        use axum::extract::{Path as UrlPath, State};
        use axum::http::StatusCode;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let seen: Seen = Arc::default();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind 127.0.0.1");
        let base = format!("http://{}", listener.local_addr().expect("address"));
        let app = axum::Router::new()
            .route(
                "/{path}",
                axum::routing::post(
                    |State(seen): State<Seen>,
                     UrlPath(path): UrlPath<String>,
                     axum::Json(body): axum::Json<Value>| async move {
                        let earlier = {
                            let mut seen = seen.lock().expect("lock");
                            let earlier = seen.iter().filter(|(p, _)| *p == path).count();
                            seen.push((path.clone(), body));
                            earlier
                        };
                        match path.as_str() {
                            "flaky" if earlier == 0 => StatusCode::INTERNAL_SERVER_ERROR,
                            "slow" => {
                                tokio::time::sleep(Duration::from_secs(60)).await;
                                StatusCode::OK
                            }
                            _ => StatusCode::OK,
                        }
                    },
                ),
            )
            .with_state(Arc::clone(&seen));
        runtime.spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            base,
            seen,
            _runtime: runtime,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/{path}", self.base)
    }

    /// The bodies received on `path`, in order.
    fn bodies(&self, path: &str) -> Vec<Value> {
        self.seen
            .lock()
            .expect("lock")
            .iter()
            .filter(|(p, _)| p == path)
            .map(|(_, b)| b.clone())
            .collect()
    }
}

fn run_and_wait(jtp: &Jtp, name: &str, count: usize) {
    jtp.run_now(name);
    wait_until(Duration::from_secs(30), &format!("run {count} of {name}"), || {
        jtp.runs(name).iter().filter(|r| r["status"] != "RUNNING").count() >= count
    });
}

#[test]
fn ten_failures_alert_once_a_recovery_with_the_count_in_json_and_slack_and_a_500_is_retried() {
    let receiver = Receiver::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let urls = dir.path().join("urls");
    std::fs::create_dir_all(&urls).expect("urls dir");
    std::fs::write(urls.join("chat"), receiver.url("ok-slack")).expect("url file");
    let marker = dir.path().join("healthy");
    let ops_url = receiver.url("ok-json");
    let flaky_url = receiver.url("flaky");
    let jtp = start(
        dir.path(),
        &[
            "--alert-receiver",
            "ops=json",
            "--alert-receiver",
            "chat=slack",
            "--alert-receiver",
            "flaky=json",
        ],
        &[
            ("JTP_ALERT_URL_OPS", &ops_url),
            ("JTP_ALERT_URL_FLAKY", &flaky_url),
        ],
        Some(&urls),
    );
    let script = format!("env; [ -f {} ] || exit 3", marker.display());
    jtp.create(
        "flaky-job",
        json!({ "schedule": { "manual": {} }, "script": { "inline": script },
                "notifications": { "receivers": ["ops", "chat", "flaky"] } }),
    );
    for n in 1..=10 {
        run_and_wait(&jtp, "flaky-job", n);
    }
    wait_until(Duration::from_secs(20), "the failure alert", || {
        receiver.bodies("ok-json").len() == 1 && receiver.bodies("ok-slack").len() == 1
    });
    std::fs::write(&marker, "").expect("marker");
    run_and_wait(&jtp, "flaky-job", 11);
    wait_until(Duration::from_secs(20), "the recovery alert", || {
        receiver.bodies("ok-json").len() == 2 && receiver.bodies("ok-slack").len() == 2
    });
    let json_bodies = receiver.bodies("ok-json");
    let failure = &json_bodies[0];
    assert_eq!(failure["version"], 1);
    assert_eq!(failure["kind"], "failure");
    assert_eq!(
        failure["job"],
        json!({ "namespace": "default", "name": "flaky-job" })
    );
    assert_eq!(failure["failures"], 1);
    assert_eq!(failure["run"]["status"], "FAILURE");
    assert_eq!(failure["run"]["exitCode"], 3);
    assert!(
        failure["summary"]
            .as_str()
            .is_some_and(|s| s.starts_with("[jtp] default/flaky-job is failing: run ")),
        "{failure}"
    );
    let recovery = &json_bodies[1];
    assert_eq!(recovery["kind"], "recovery");
    assert_eq!(recovery["failures"], 10);
    assert_eq!(recovery["run"]["status"], "SUCCESS");
    assert_eq!(
        receiver.bodies("ok-slack")[1],
        json!({ "text": "[jtp] default/flaky-job recovered: it succeeded after 10 failed runs in a row" })
    );
    // The flaky receiver answered 500 first: the same alert came again, once it answered 200.
    wait_until(Duration::from_secs(20), "the retry after 500", || {
        receiver.bodies("flaky").len() >= 3
    });
    let flaky = receiver.bodies("flaky");
    let failures: Vec<&Value> = flaky.iter().filter(|b| b["kind"] == "failure").collect();
    assert_eq!(failures.len(), 2, "sent again after the 500: {flaky:?}");
    assert_eq!(failures[0], failures[1], "the retry sends the same body");
    assert_eq!(flaky.iter().filter(|b| b["kind"] == "recovery").count(), 1);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        receiver.bodies("ok-json").len(),
        2,
        "nothing more for ten failures and a recovery"
    );

    // Every attempt is recorded and shown; the URL never is, nor do scripts see it.
    let (status, alerts) = jtp.api(reqwest::Method::GET, "/jobs/default/flaky-job/alerts", None);
    assert_eq!(status, 200, "{alerts}");
    let items = alerts["items"].as_array().cloned().unwrap_or_default();
    assert_eq!(items.len(), 2, "{alerts}");
    let failure_deliveries = &items[1]["deliveries"];
    let flaky_delivery = failure_deliveries
        .as_array()
        .and_then(|d| d.iter().find(|d| d["receiver"] == "flaky"))
        .expect("flaky delivery");
    assert_eq!(flaky_delivery["state"], "delivered", "{flaky_delivery}");
    let codes: Vec<&Value> = flaky_delivery["attempts"]
        .as_array()
        .expect("attempts")
        .iter()
        .map(|a| &a["httpStatus"])
        .collect();
    assert_eq!(codes, [&json!(500), &json!(200)]);
    let panel = page(&jtp, "/jobs/default/flaky-job");
    assert!(
        panel.contains("id=\"alerts\""),
        "the job's view lists the alerts: {panel}"
    );
    let first_run = jtp
        .runs("flaky-job")
        .last()
        .and_then(|r| r["id"].as_i64())
        .expect("a run");
    let output = jtp.output(first_run);
    let log = std::fs::read_dir(dir.path())
        .expect("data dir")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".log"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
        .collect::<String>();
    for secret in [&ops_url, &flaky_url, &receiver.url("ok-slack")] {
        assert!(
            !output.contains(secret.as_str()) && !output.contains("JTP_ALERT_URL"),
            "the script saw it: {output}"
        );
        assert!(!panel.contains(secret.as_str()), "the portal showed it");
        assert!(!alerts.to_string().contains(secret.as_str()), "the API showed it");
        assert!(!log.contains(secret.as_str()), "the log has it");
    }
}

#[test]
fn an_overdue_job_alerts_once_per_deadline() {
    let receiver = Receiver::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let url = receiver.url("ok-json");
    let jtp = start(
        dir.path(),
        &["--alert-receiver", "ops=json", "--alert-default-receivers", "ops"],
        &[("JTP_ALERT_URL_OPS", &url)],
        None,
    );
    jtp.create(
        "quiet",
        json!({ "schedule": { "manual": {} }, "expectSuccessWithin": "2s", "script": { "inline": "exit 0" } }),
    );
    wait_until(Duration::from_secs(20), "the overdue alert", || {
        !receiver.bodies("ok-json").is_empty()
    });
    std::thread::sleep(Duration::from_secs(3));
    let bodies = receiver.bodies("ok-json");
    assert_eq!(bodies.len(), 1, "one alert per deadline: {bodies:?}");
    assert_eq!(bodies[0]["kind"], "overdue");
    assert!(
        bodies[0]["detail"]
            .as_str()
            .is_some_and(|d| d.starts_with("no success within 2s")),
        "{}",
        bodies[0]
    );
    assert_eq!(bodies[0]["run"], Value::Null);
}

#[test]
fn a_receiver_that_never_answers_does_not_delay_scheduled_runs() {
    let receiver = Receiver::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let url = receiver.url("slow");
    let jtp = start(
        dir.path(),
        &[
            "--alert-receiver",
            "slow=json",
            "--alert-default-receivers",
            "slow",
        ],
        &[("JTP_ALERT_URL_SLOW", &url)],
        None,
    );
    jtp.create(
        "failing",
        json!({ "schedule": { "interval": { "every": 10, "unit": "seconds" } }, "script": { "inline": "exit 1" } }),
    );
    wait_until(Duration::from_secs(40), "three scheduled runs", || {
        jtp.runs("failing")
            .iter()
            .filter(|r| r["status"] != "RUNNING")
            .count()
            >= 3
    });
    assert!(
        !receiver.bodies("slow").is_empty(),
        "the alert was sent and is still waiting"
    );
    for run in jtp.runs("failing") {
        let started =
            chrono::DateTime::parse_from_rfc3339(run["started"]["rfc3339"].as_str().unwrap_or_default());
        let slot =
            chrono::DateTime::parse_from_rfc3339(run["scheduledFor"]["rfc3339"].as_str().unwrap_or_default());
        let (started, slot) = (started.expect("started"), slot.expect("slot"));
        let skew = started - slot;
        assert!(
            skew < chrono::Duration::seconds(1),
            "run {} started {skew} after its slot",
            run["id"]
        );
    }
}

#[test]
fn slots_skipped_while_a_forbid_run_goes_on_alert_once_per_streak() {
    let receiver = Receiver::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let url = receiver.url("ok-json");
    let jtp = start(
        dir.path(),
        &["--alert-receiver", "ops=json", "--alert-default-receivers", "ops"],
        &[("JTP_ALERT_URL_OPS", &url)],
        None,
    );
    // The first run lasts past the next two slots: both are skipped under Forbid, one alert.
    let marker = dir.path().join("ran-once");
    let script = format!(
        "if [ -f {m} ]; then exit 0; fi; touch {m}; sleep 24",
        m = marker.display()
    );
    jtp.create(
        "long",
        json!({ "schedule": { "interval": { "every": 10, "unit": "seconds" } },
                "concurrencyPolicy": "Forbid", "script": { "inline": script },
                "notifications": { "events": ["Skipped"] } }),
    );
    wait_until(Duration::from_secs(60), "the run after the long one", || {
        jtp.runs("long")
            .iter()
            .filter(|r| r["status"] == "SUCCESS")
            .count()
            >= 2
    });
    std::thread::sleep(Duration::from_secs(2));
    let bodies = receiver.bodies("ok-json");
    assert_eq!(bodies.len(), 1, "one alert for the streak: {bodies:?}");
    let skipped = &bodies[0];
    assert_eq!(skipped["kind"], "skipped");
    assert_eq!(skipped["run"], Value::Null);
    let detail = skipped["detail"].as_str().unwrap_or_default();
    assert!(
        detail.starts_with("slot ")
            && detail.ends_with("skipped: the previous run is still running (concurrencyPolicy: Forbid)"),
        "{skipped}"
    );
    assert_eq!(
        skipped["summary"].as_str(),
        Some(format!("[jtp] default/long skipped a slot: {detail}").as_str())
    );
    let (_, alerts) = jtp.api(reqwest::Method::GET, "/jobs/default/long/alerts", None);
    let items = alerts["items"].as_array().cloned().unwrap_or_default();
    assert_eq!(items.len(), 1, "{alerts}");
    assert_eq!(items[0]["deliveries"][0]["state"], "delivered", "{alerts}");
}
