//! The portal of the built `jtp standalone` on a PostgreSQL database that is briefly unreachable
//! (its connection cut at a TCP link, the server itself up): the jobs API, the jobs page, a job's
//! page and Run Now answer 503 with `Retry-After: 5` and a message without internal detail; once
//! the link is back, the same requests succeed without a restart, and the Run Now refused during
//! the outage leaves nothing behind (the run asked for after it is recorded exactly once).
//!
//! Needs the test PostgreSQL (`JTP_TEST_POSTGRES_URL`, else `scripts/postgres-up` starts one); without
//! one it fails saying how to get it.

mod common;

use common::link::Link;
use common::{Jtp, Standalone, wait_until};
use reqwest::Method;
use reqwest::blocking::Client;
use serde_json::{Value, json};
use std::time::Duration;

/// What the portal tells a client while the job store is unreachable.
const UNAVAILABLE: &str = "the job store is unavailable right now; try again in 5 s";

/// An answer of the portal: its status, `Retry-After` and body.
struct Answer {
    status: u16,
    retry_after: Option<String>,
    body: String,
}

fn send(jtp: &Jtp, method: Method, path: &str) -> Answer {
    let response = Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client")
        .request(method, format!("{}{path}", jtp.base))
        .send()
        .unwrap_or_else(|e| panic!("{path}: {e}"));
    Answer {
        status: response.status().as_u16(),
        retry_after: response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        body: response.text().unwrap_or_default(),
    }
}

/// The 503 of an unreachable store: `Retry-After: 5`, the public message, and nothing of the
/// database: no SQL, no driver or pool error, no host, port or database name (`secrets`).
fn assert_unavailable(what: &str, answer: &Answer, secrets: &[&str]) {
    assert_eq!(answer.status, 503, "{what}: {}", answer.body);
    assert_eq!(answer.retry_after.as_deref(), Some("5"), "{what}: Retry-After");
    assert!(answer.body.contains(UNAVAILABLE), "{what}: {}", answer.body);
    let internals = [
        "SELECT",
        "INSERT",
        "UPDATE ",
        "sqlx",
        "postgres",
        "pool",
        "communicating",
        "EOF",
        "127.0.0.1",
    ];
    for internal in internals.iter().chain(secrets) {
        assert!(
            !answer.body.contains(internal),
            "{what} shows {internal:?}: {}",
            answer.body
        );
    }
}

fn runs_of(jtp: &Jtp, name: &str) -> Vec<Value> {
    let (status, runs) = jtp.api(Method::GET, &format!("/jobs/default/{name}/runs"), None);
    assert_eq!(status, 200, "runs of {name}: {runs}");
    runs["items"].as_array().cloned().unwrap_or_default()
}

#[test]
fn the_portal_answers_503_with_retry_after_while_its_postgresql_is_unreachable_and_recovers() {
    let server = jtp_store::testing::postgres_server_url();
    // The link relays on this runtime's threads while the test's requests block this one.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (database, url) = runtime.block_on(jtp_store::testing::create_database(&server, "jtp_outage"));
    let link = runtime.block_on(Link::to(&url));
    let link_port = url::Url::parse(&link.url)
        .ok()
        .and_then(|u| u.port())
        .expect("the link's port")
        .to_string();
    let server_port = url::Url::parse(&server)
        .ok()
        .and_then(|u| u.port())
        .unwrap_or(5432)
        .to_string();
    let (link_port, server_port) = (format!(":{link_port}"), format!(":{server_port}"));
    let secrets = [database.as_str(), link_port.as_str(), server_port.as_str()];

    let dir = tempfile::tempdir().expect("temp dir");
    let jtp = Standalone::new(dir.path())
        .args(["--jobs-dir", ""])
        .arg("--database-url")
        .arg(&link.url)
        .log(&dir.path().join("jtp.log"))
        .start();
    jtp.create(
        "report",
        json!({ "schedule": { "manual": {} }, "script": { "inline": "echo report-ran" } }),
    );
    assert_eq!(send(&jtp, Method::GET, "/api/v1/jobs").status, 200);

    link.cut();
    let jobs = send(&jtp, Method::GET, "/api/v1/jobs");
    assert_unavailable("GET /api/v1/jobs", &jobs, &secrets);
    let body: Value = serde_json::from_str(&jobs.body).expect("a JSON error");
    assert_eq!(body, json!({ "error": UNAVAILABLE, "kind": "store" }));
    assert_unavailable("the jobs page", &send(&jtp, Method::GET, "/"), &secrets);
    assert_unavailable(
        "the job's page",
        &send(&jtp, Method::GET, "/jobs/default/report/details"),
        &secrets,
    );
    assert_unavailable(
        "Run Now",
        &send(&jtp, Method::POST, "/api/v1/jobs/default/report/run"),
        &secrets,
    );
    assert_eq!(
        send(&jtp, Method::GET, "/healthz").status,
        503,
        "the health check says the store is down"
    );

    link.restore();
    wait_until(Duration::from_secs(30), "the jobs API to answer again", || {
        send(&jtp, Method::GET, "/api/v1/jobs").status == 200
    });
    let (status, jobs) = jtp.api(Method::GET, "/jobs", None);
    assert_eq!(status, 200);
    assert_eq!(jobs["total"], 1, "{jobs}");
    assert_eq!(send(&jtp, Method::GET, "/").status, 200, "the jobs page");
    assert_eq!(
        send(&jtp, Method::GET, "/jobs/default/report/details").status,
        200,
        "the job's page"
    );
    assert!(
        runs_of(&jtp, "report").is_empty(),
        "the refused Run Now left nothing behind"
    );
    jtp.run_now("report");
    wait_until(Duration::from_secs(30), "the run to finish", || {
        runs_of(&jtp, "report")
            .first()
            .is_some_and(|r| r["status"] == "SUCCESS")
    });
    // Long enough for a second run, had the refused Run Now been kept somewhere, to be recorded.
    std::thread::sleep(Duration::from_secs(3));
    let runs = runs_of(&jtp, "report");
    assert_eq!(runs.len(), 1, "exactly one run: {runs:?}");
    assert_eq!(runs[0]["trigger"], "manual", "{:?}", runs[0]);
    assert_eq!(
        jtp.output(runs[0]["id"].as_i64().expect("run id")).trim(),
        "report-ran"
    );

    drop(jtp);
    drop(link);
    runtime.block_on(jtp_store::testing::drop_database(&server, &database));
}
