//! Cluster mode's dead-man's switch, alerts and per-job metrics: an in-process operator (run
//! inside the test network namespace: `testenv/exec`) against the real control plane and node,
//! recording in a SQLite file it shares with the test; webhooks go to a real receiver on
//! 127.0.0.1 of that namespace, with the URL in a real Secret read through the API.

mod common;

use common::cluster::{Operator, POLL, TIMEOUT, client, delete_all, eventually};
use jtp_crds::{ScheduledJob, ScheduledJobSpec};
use jtp_operator::controller::OperatorArgs;
use jtp_store::{AlertKind, Store};
use jtp_testenv::TestNamespace;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[tokio::test]
async fn a_suspended_job_goes_overdue_in_metrics_and_sql_and_a_success_clears_it() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "alert-overdue").await;
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("jtp.db").display());
    let store = Store::connect(&url).await.expect("store");
    let operator = Operator::start(&client, &[ns.name()], &url, |_| {});
    let api: Api<ScheduledJob> = ns.api();
    let mut spec = ScheduledJobSpec::daily("09:00")
        .expect_success_within("3s")
        .script("exit 0");
    spec.suspend = true;
    api.create(&PostParams::default(), &ScheduledJob::new("quiet", spec))
        .await
        .expect("create");
    let series = format!("jtp_job_overdue{{namespace=\"{}\",name=\"quiet\"}}", ns.name());
    eventually("the gauge to show the job overdue", async || {
        operator
            .metrics
            .render()
            .contains(&format!("{series} 1"))
            .then_some(())
    })
    .await;
    let job = store.get_job_by_name(ns.name(), "quiet").await.expect("mirrored");
    let alerts = store.job_alerts(job.id, 10).await.expect("alerts");
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0].event.kind, AlertKind::Overdue);
    assert!(
        alerts[0].event.detail.starts_with("no success within 3s"),
        "{:?}",
        alerts[0].event
    );

    // Run Now, a success: the gauge goes back to 0 and the incident recovers.
    api.patch(
        "quiet",
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({
            "metadata": { "annotations": { jtp_crds::RUN_NOW_ANNOTATION: chrono::Utc::now().to_rfc3339() } }
        })),
    )
    .await
    .expect("run now");
    eventually("the gauge to go back to 0", async || {
        operator
            .metrics
            .render()
            .contains(&format!("{series} 0"))
            .then_some(())
    })
    .await;
    let kinds: Vec<AlertKind> = store
        .job_alerts(job.id, 10)
        .await
        .expect("alerts")
        .into_iter()
        .map(|r| r.event.kind)
        .collect();
    assert_eq!(kinds, [AlertKind::Recovery, AlertKind::Overdue]);
    delete_all(&ns).await;
    operator.stop().await;
}

/// The samples of a real scrape of `url`, by series (`name{labels}`).
async fn scrape(url: &str) -> std::collections::BTreeMap<String, f64> {
    let response = reqwest::get(url).await.expect("scrape");
    assert!(response.status().is_success(), "{url}: {}", response.status());
    let text = response.text().await.expect("exposition");
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.rsplit_once(' '))
        .map(|(series, value)| (series.to_owned(), value.parse::<f64>().expect("a number")))
        .collect()
}

fn series(metric: &str, ns: &str, name: &str) -> String {
    format!("{metric}{{namespace=\"{ns}\",name=\"{name}\"}}")
}

fn run_now(api: &Api<ScheduledJob>, name: &str) -> impl std::future::Future<Output = ()> {
    let (api, name) = (api.clone(), name.to_owned());
    async move {
        api.patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({
                "metadata": { "annotations": {
                    jtp_crds::RUN_NOW_ANNOTATION: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
                } }
            })),
        )
        .await
        .expect("run now");
    }
}

/// Every `jtp_…` metric name the chart's example PrometheusRule uses, from `helm template`.
fn rule_metric_names() -> std::collections::BTreeSet<String> {
    use serde::Deserialize;
    let chart = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../charts/job-trigger-portal");
    let chart = chart.display().to_string();
    let rendered = jtp_testenv::helm(&[
        "template",
        "rules",
        &chart,
        "--set",
        "prometheusRule.enabled=true",
        "--set",
        "prometheusRule.noSuccessFor=93600",
    ]);
    let rule = serde_yaml::Deserializer::from_str(&rendered)
        .filter_map(|doc| serde_yaml::Value::deserialize(doc).ok())
        .find(|doc| doc["kind"].as_str() == Some("PrometheusRule"))
        .expect("the chart renders a PrometheusRule");
    assert_eq!(rule["metadata"]["name"].as_str(), Some("rules-alerts"));
    let rules = rule["spec"]["groups"][0]["rules"]
        .as_sequence()
        .expect("rules")
        .clone();
    let alerts: Vec<&str> = rules.iter().filter_map(|r| r["alert"].as_str()).collect();
    assert_eq!(
        alerts,
        [
            "JtpJobFailing",
            "JtpJobOverdue",
            "JtpJobNoRecentSuccess",
            "JtpNoLeader",
            "JtpTriggerSkewHigh",
            "JtpReconcileErrors"
        ]
    );
    let mut names = std::collections::BTreeSet::new();
    for rule in &rules {
        let expr = rule["expr"].as_str().expect("expr");
        let mut rest = expr;
        while let Some(at) = rest.find("jtp_") {
            let word: String = rest[at..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            rest = &rest[at + word.len()..];
            names.insert(word);
        }
    }
    assert!(names.len() >= 6, "{names:?}");
    names
}

#[tokio::test]
async fn per_job_series_are_read_from_sql_survive_a_restart_go_with_the_job_and_match_the_rules() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "job-metrics").await;
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("jtp.db").display());
    let port = jtp_dashboard::testing::free_port();
    let metrics_url = format!("http://127.0.0.1:{port}/metrics");
    let with_port = |port: u16| {
        move |args: &mut OperatorArgs| args.metrics_addr = SocketAddr::from(([127, 0, 0, 1], port))
    };
    let operator = Operator::start(&client, &[ns.name()], &url, with_port(port));
    let api: Api<ScheduledJob> = ns.api();
    api.create(
        &PostParams::default(),
        &ScheduledJob::new("fails", ScheduledJobSpec::manual().script("exit 3")),
    )
    .await
    .expect("create fails");
    api.create(
        &PostParams::default(),
        &ScheduledJob::new(
            "works",
            ScheduledJobSpec::manual()
                .expect_success_within("1h")
                .script("exit 0"),
        ),
    )
    .await
    .expect("create works");
    // Both exist (mirrored) before their Run Now.
    let store = Store::connect(&url).await.expect("store");
    eventually("both jobs mirrored", async || {
        let fails = store.get_job_by_name(ns.name(), "fails").await.ok();
        let works = store.get_job_by_name(ns.name(), "works").await.ok();
        (fails.is_some() && works.is_some()).then_some(())
    })
    .await;
    run_now(&api, "fails").await;
    run_now(&api, "works").await;
    let n = ns.name();
    let samples = {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let samples = scrape(&metrics_url).await;
            if samples.get(&series("jtp_job_consecutive_failures", n, "fails")) == Some(&1.0)
                && samples.contains_key(&series("jtp_job_last_success_timestamp_seconds", n, "works"))
            {
                break samples;
            }
            assert!(
                Instant::now() < deadline,
                "the runs' series never came: {samples:?}"
            );
            tokio::time::sleep(POLL).await;
        }
    };
    let fails = store.get_job_by_name(n, "fails").await.expect("fails");
    let runs = store.list_runs(fails.id, 10, 0).await.expect("runs").items;
    let failed_at = runs[0].finished_at.expect("finished");
    let seconds = |at: chrono::DateTime<chrono::Utc>| at.timestamp_micros() as f64 / 1e6;
    let near = |v: Option<&f64>, at: f64| v.is_some_and(|v| (v - at).abs() < 1e-3);
    assert!(
        near(
            samples.get(&series("jtp_job_last_failure_timestamp_seconds", n, "fails")),
            seconds(failed_at)
        ),
        "{samples:?}"
    );
    assert_eq!(samples.get(&series("jtp_job_overdue", n, "works")), Some(&0.0));
    assert_eq!(
        samples.get(&series("jtp_job_consecutive_failures", n, "works")),
        Some(&0.0)
    );
    assert_eq!(
        samples.get(&series("jtp_job_last_success_timestamp_seconds", n, "fails")),
        None
    );
    assert_eq!(samples.get("jtp_leader"), Some(&1.0));
    assert!(
        samples.contains_key("jtp_trigger_skew_seconds_bucket{le=\"0.005\"}"),
        "{samples:?}"
    );

    // Every metric the chart's example rules use is one the operator exports.
    let exported: std::collections::BTreeSet<String> = samples
        .keys()
        .map(|k| k.split('{').next().unwrap_or(k).to_owned())
        .collect();
    for name in rule_metric_names() {
        assert!(
            exported.contains(&name),
            "the rules use {name}, which the operator does not export: {exported:?}"
        );
    }

    // A restart: the new operator reads the series from SQL, with no run since.
    operator.stop().await;
    let port = jtp_dashboard::testing::free_port();
    let metrics_url = format!("http://127.0.0.1:{port}/metrics");
    let operator = Operator::start(&client, &[ns.name()], &url, with_port(port));
    let deadline = Instant::now() + TIMEOUT;
    let after = loop {
        if let Ok(response) = reqwest::get(&metrics_url).await
            && response.status().is_success()
        {
            let samples = scrape(&metrics_url).await;
            if samples.contains_key(&series("jtp_job_consecutive_failures", n, "fails")) {
                break samples;
            }
        }
        assert!(Instant::now() < deadline, "no series after the restart");
        tokio::time::sleep(POLL).await;
    };
    assert_eq!(
        after.get(&series("jtp_job_consecutive_failures", n, "fails")),
        Some(&1.0)
    );
    assert!(
        near(
            after.get(&series("jtp_job_last_failure_timestamp_seconds", n, "fails")),
            seconds(failed_at)
        ),
        "{after:?}"
    );
    assert_eq!(
        after.get(&series("jtp_job_last_success_timestamp_seconds", n, "works")),
        samples.get(&series("jtp_job_last_success_timestamp_seconds", n, "works"))
    );
    assert_eq!(
        store.list_runs(fails.id, 10, 0).await.expect("runs").items.len(),
        1,
        "no new run"
    );

    // A deleted ScheduledJob's series go; the other job's stay.
    api.delete("fails", &DeleteParams::default())
        .await
        .expect("delete");
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let samples = scrape(&metrics_url).await;
        if !samples.keys().any(|k| k.contains("name=\"fails\""))
            && samples.contains_key(&series("jtp_job_consecutive_failures", n, "works"))
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the deleted job's series stayed: {samples:?}"
        );
        tokio::time::sleep(POLL).await;
    }
    delete_all(&ns).await;
    operator.stop().await;
    store.close().await;
    ns.cleanup().await;
}

/// Bodies a receiver got.
type Seen = Arc<std::sync::Mutex<Vec<serde_json::Value>>>;

/// A webhook receiver on 127.0.0.1 inside the test network namespace, answering 200.
async fn receiver() -> (String, Seen) {
    let seen: Seen = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1");
    let base = format!("http://{}", listener.local_addr().expect("address"));
    let app = axum::Router::new()
        .route(
            "/hook",
            axum::routing::post(
                |axum::extract::State(seen): axum::extract::State<Seen>,
                 axum::Json(body): axum::Json<serde_json::Value>| async move {
                    seen.lock().expect("lock").push(body);
                    axum::http::StatusCode::OK
                },
            ),
        )
        .with_state(Arc::clone(&seen));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("{base}/hook"), seen)
}

#[tokio::test]
async fn a_failure_and_its_recovery_reach_a_receiver_whose_url_is_in_a_secret() {
    use k8s_openapi::api::core::v1::Secret;
    let client = client().await;
    let ns = TestNamespace::new(&client, "alert-deliver").await;
    let (hook, seen) = receiver().await;
    let secrets: Api<Secret> = ns.api();
    let mut secret = Secret::default();
    secret.metadata.name = Some("alert-urls".into());
    secret.string_data = Some([("ops".to_owned(), hook.clone())].into());
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .expect("create the Secret");
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("jtp.db").display());
    let secret_ref = format!("{}/alert-urls", ns.name());
    let operator = Operator::start(&client, &[ns.name()], &url, |args| {
        args.alerts.receivers = vec!["ops=json".into()];
        args.alerts.default_receivers = vec!["ops".into()];
        args.alert_url_secret = Some(secret_ref.clone());
    });
    let api: Api<ScheduledJob> = ns.api();
    api.create(
        &PostParams::default(),
        &ScheduledJob::new("flaky", ScheduledJobSpec::manual().script("exit 3")),
    )
    .await
    .expect("create");
    let store = Store::connect(&url).await.expect("store");
    eventually("the job mirrored", async || {
        store.get_job_by_name(ns.name(), "flaky").await.ok()
    })
    .await;
    run_now(&api, "flaky").await;
    let bodies = |seen: &Seen| seen.lock().expect("lock").clone();
    eventually("the failure alert", async || {
        (!bodies(&seen).is_empty()).then_some(())
    })
    .await;
    let failure = bodies(&seen)[0].clone();
    assert_eq!(failure["kind"], "failure", "{failure}");
    assert_eq!(
        failure["job"],
        serde_json::json!({ "namespace": ns.name(), "name": "flaky" })
    );
    assert_eq!(failure["run"]["status"], "FAILURE", "{failure}");
    assert_eq!(failure["run"]["exitCode"], 3, "{failure}");
    assert_eq!(failure["failures"], 1);

    // Fixed: the next run succeeds and the recovery follows, with the count.
    api.patch(
        "flaky",
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({ "spec": { "script": { "inline": "exit 0" } } })),
    )
    .await
    .expect("fix the script");
    // Run Now values must differ: wait a moment so the instant is new.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    run_now(&api, "flaky").await;
    eventually("the recovery alert", async || {
        (bodies(&seen).len() >= 2).then_some(())
    })
    .await;
    let recovery = bodies(&seen)[1].clone();
    assert_eq!(recovery["kind"], "recovery", "{recovery}");
    assert_eq!(recovery["failures"], 1, "{recovery}");
    assert_eq!(recovery["run"]["status"], "SUCCESS", "{recovery}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(bodies(&seen).len(), 2, "one alert per incident");

    // Each attempt is recorded (200), and the URL is nowhere in SQL or the resource.
    let job = store.get_job_by_name(ns.name(), "flaky").await.expect("job");
    let alerts = store.job_alerts(job.id, 10).await.expect("alerts");
    assert_eq!(alerts.len(), 2, "{alerts:?}");
    for record in &alerts {
        let (delivery, attempts) = &record.deliveries[0];
        assert_eq!(delivery.receiver, "ops");
        assert_eq!(
            attempts.last().and_then(|a| a.http_status),
            Some(200),
            "{attempts:?}"
        );
    }
    let sj = api.get("flaky").await.expect("get");
    assert!(!serde_json::to_string(&sj).expect("json").contains(&hook));
    let mut db = Vec::new();
    for entry in std::fs::read_dir(dir.path()).expect("db dir").flatten() {
        db.extend(std::fs::read(entry.path()).unwrap_or_default());
    }
    assert!(
        !String::from_utf8_lossy(&db).contains(&hook),
        "the URL is not stored in SQL"
    );
    delete_all(&ns).await;
    operator.stop().await;
    store.close().await;
    ns.cleanup().await;
}
