//! The portal's job page, Run Now with parameters and live output in real Chromium in Kubernetes
//! mode, against the real control plane and node (the standalone Chromium tests of the same pages
//! are `job_page_browser.rs`, `operator/tests/parameters_browser.rs` and
//! `operator/tests/standalone_browser.rs`): the job page of a resource fits 1280 and 390 px, says
//! where the job comes from, exports and clones it as the user; the Run Now form of a job with
//! parameters marks a missing value at its field and writes the values into the resource's
//! annotation; a run's page shows its pod's output as the pod writes it, then the stored output.
#![allow(clippy::unwrap_used)]

mod common;

use common::kube_env::{KubeEnv, Mirror};
use common::*;
use jtp_crds::{RUN_NOW_PARAMETERS_ANNOTATION, RunStatus, ScheduledJobSpec};
use jtp_dashboard::testing::Browser;
use jtp_dashboard::{AppState, PortalConfig};
use std::time::Duration;

/// Long enough for a pod to start on a busy two-core node.
const WAIT: Duration = Duration::from_secs(90);

/// Mirrors the namespace's ScheduledJobs into the store every 300 ms, as the operator would.
fn mirror_in_background(env: &KubeEnv, store: &jtp_store::Store) -> tokio::task::JoinHandle<()> {
    let (api, store) = (env.jobs(), store.clone());
    tokio::spawn(async move {
        let mut mirror = Mirror::new("run by the operator\n");
        loop {
            mirror.sync(&api, &store).await;
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_job_page_of_a_resource_fits_exports_and_clones_as_the_user() {
    let env = KubeEnv::new("dash-jobpage-browser").await;
    let ns = env.ns.name().to_owned();
    let dir = tempfile::tempdir().unwrap();
    let store = store_in(&dir, None).await;
    let state = AppState::kubernetes(store.clone(), env.client.clone(), PortalConfig::default());
    env.create_job(
        "london-report",
        ScheduledJobSpec::cron("30 1 * 3 sun")
            .in_zone("Europe/London")
            .script("echo report")
            .retry(2, "30s"),
    )
    .await;
    Mirror::new("").sync(&env.jobs(), &store).await;
    let id = store.get_job_by_name(&ns, "london-report").await.unwrap().id;
    add_run(&store, id, RunStatus::Success, Some(0), "ok").await;
    add_run(&store, id, RunStatus::Failure, Some(1), "no").await;
    let mirror = mirror_in_background(&env, &store);
    let (base, stop, server) = serve_portal(state).await;
    let b = Browser::start().await;
    b.log_in(&base, &env.owner).await;

    for (width, height) in [(1280, 900), (390, 844)] {
        b.set_viewport(width, height).await;
        b.goto(&format!("{base}/?namespace={ns}")).await;
        b.click(&format!("a[href='/jobs/{ns}/london-report/details']"))
            .await;
        b.wait_text("#job-title", WAIT, |t| t.contains("london-report"))
            .await;
        let next = b.text("#next-runs").await;
        assert!(
            next.contains("for 01:30, which the DST change skips: at the end of the gap"),
            "{next}"
        );
        let body = b.text("body").await;
        assert!(
            body.contains(&format!("kubectl get sj london-report -n {ns}")),
            "{body}"
        );
        assert!(body.contains("Written by:"), "the resource's managers: {body}");
        assert!(
            b.covered_cells("#recent-runs").await.is_empty(),
            "{:?}",
            b.covered_cells("#recent-runs").await
        );
        b.assert_fits_width(width).await;
        b.screenshot(&format!("kubernetes-job-page-{width}")).await;
    }
    b.set_viewport(1280, 900).await;
    let yaml = b
        .eval(&format!(
            "return fetch('/jobs/{ns}/london-report/export.yaml').then(r => r.text());"
        ))
        .await;
    let yaml = yaml.as_str().unwrap();
    assert!(yaml.contains("kind: ScheduledJob"), "{yaml}");
    assert!(
        yaml.contains("cron: 30 1 * 3 sun") || yaml.contains("cron: '30 1 * 3 sun'"),
        "{yaml}"
    );

    // Clone: the form prefilled under a new name, its preview following what is typed; saved as
    // the owner, it is a new resource in the API server with the original's retries.
    b.click("#clone-job").await;
    b.wait_text("#copy-of", WAIT, |t| t.contains(&format!("{ns}/london-report")))
        .await;
    assert_eq!(
        b.prop("#name", "value").await.as_deref(),
        Some("london-report-copy")
    );
    b.eval("const s = document.querySelector('#schedule_type'); s.value = 'daily'; s.dispatchEvent(new Event('change', {bubbles: true})); return true;")
        .await;
    b.fill("#daily_at", "10:45").await;
    b.wait_text("#form-next-runs-body", WAIT, |t| t.matches("10:45").count() >= 5)
        .await;
    b.screenshot("kubernetes-clone-form-1280").await;
    b.click("#save-job").await;
    b.wait_text("#flash", WAIT, |t| t.contains("Created job london-report-copy"))
        .await;
    let copy = env.jobs().get("london-report-copy").await.unwrap();
    assert_eq!(
        copy.spec.retries.as_ref().map(|r| r.limit),
        Some(2),
        "retries copied"
    );
    assert_eq!(
        copy.spec.schedule.daily.as_ref().map(|d| d.at.as_str()),
        Some("10:45")
    );
    b.set_viewport(390, 844).await;
    b.goto(&format!("{base}/jobs/{ns}/london-report/clone")).await;
    b.assert_fits_width(390).await;

    b.close().await;
    mirror.abort();
    let _ = stop.send(());
    server.await.unwrap();
    env.ns.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_now_with_parameters_marks_the_missing_value_and_writes_the_annotation() {
    let env = KubeEnv::new("dash-params-browser").await;
    let ns = env.ns.name().to_owned();
    let dir = tempfile::tempdir().unwrap();
    let store = store_in(&dir, None).await;
    let state = AppState::kubernetes(store.clone(), env.client.clone(), PortalConfig::default());
    env.create_job(
        "export",
        ScheduledJobSpec::manual()
            .parameter_one_of("REGION", Some("eu-west"), &["eu-west", "us-east"])
            .parameter_matching("TICKET", "[A-Z]+-[0-9]+"),
    )
    .await;
    let mirror = mirror_in_background(&env, &store);
    let (base, stop, server) = serve_portal(state).await;
    let b = Browser::start().await;
    b.set_viewport(1280, 900).await;
    b.log_in(&base, &env.runner).await;

    b.goto(&format!("{base}/jobs/{ns}/export")).await;
    b.wait_text("#panel-job", WAIT, |t| t.contains("export")).await;
    assert_eq!(b.text("#run-now").await, "Run Now…");
    b.click("#run-now").await;
    b.wait_text("h1", WAIT, |t| t.contains("Run export now")).await;
    assert_eq!(b.prop("#param-REGION", "value").await.as_deref(), Some("eu-west"));
    assert_eq!(b.prop("#param-TICKET", "value").await.as_deref(), Some(""));

    // Without the required ticket: the field marked and described, the choice kept, nothing asked.
    b.find("#param-REGION")
        .await
        .select_by_value("us-east")
        .await
        .unwrap();
    b.click("#run-now-submit").await;
    let error = b.wait_text("#error-param-TICKET", WAIT, |t| !t.is_empty()).await;
    assert_eq!(error, "give a value: it must match the pattern [A-Z]+-[0-9]+");
    assert_eq!(
        b.attr("#param-TICKET", "aria-invalid").await.as_deref(),
        Some("true")
    );
    assert_eq!(b.prop("#param-REGION", "value").await.as_deref(), Some("us-east"));
    let annotations = || async {
        let live = env.jobs().get("export").await.unwrap();
        live.metadata.annotations.unwrap_or_default()
    };
    assert!(!annotations().await.contains_key(RUN_NOW_PARAMETERS_ANNOTATION));
    for (width, height) in [(1280, 900), (390, 844)] {
        b.set_viewport(width, height).await;
        b.assert_fits_width(width).await;
        b.screenshot(&format!("kubernetes-run-now-form-error-{width}"))
            .await;
    }
    b.set_viewport(1280, 900).await;

    // With a ticket: the flash names the values, the annotation holds them, the run appears.
    b.fill("#param-TICKET", "OPS-42").await;
    b.click("#run-now-submit").await;
    let flash = b
        .wait_text("#flash", WAIT, |t| t.contains("Run Now requested for export"))
        .await;
    assert!(flash.contains("with REGION=us-east, TICKET=OPS-42"), "{flash}");
    assert_eq!(
        annotations()
            .await
            .get(RUN_NOW_PARAMETERS_ANNOTATION)
            .map(String::as_str),
        Some(r#"{"REGION":"us-east","TICKET":"OPS-42"}"#)
    );
    let run = b
        .wait_text("#runs-table tbody tr.run-row", WAIT, |t| t.contains("SUCCESS"))
        .await;
    assert!(
        run.contains("manual") && run.contains(&format!("by {ns}/runner")),
        "{run}"
    );
    assert!(!b.alert_open().await);

    b.close().await;
    mirror.abort();
    let _ = stop.send(());
    server.await.unwrap();
    env.ns.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runs_page_shows_its_pods_output_as_it_is_written_then_the_stored_output() {
    use k8s_openapi::api::batch::v1::Job;
    use kube::api::PostParams;
    let env = KubeEnv::new("dash-live-browser").await;
    let ns = env.ns.name().to_owned();
    let dir = tempfile::tempdir().unwrap();
    let store = store_in(&dir, None).await;
    let state = AppState::kubernetes(store.clone(), env.client.clone(), PortalConfig::default());
    env.create_job("live", ScheduledJobSpec::manual()).await;
    Mirror::new("").sync(&env.jobs(), &store).await;
    let job_id = store.get_job_by_name(&ns, "live").await.unwrap().id;

    // The Job of a run in flight, as the operator makes it: a real pod on the node writes a line
    // in red, waits for a file the test writes into it, writes another.
    let jobs: kube::Api<Job> = kube::Api::namespaced(env.client.clone(), &ns);
    let job: Job = serde_json::from_value(serde_json::json!({
        "metadata": { "name": "live-manual-1" },
        "spec": { "backoffLimit": 0, "template": { "spec": {
            "restartPolicy": "Never",
            "containers": [{
                "name": jtp_crds::pod::RUN_CONTAINER, "image": "busybox:1.36",
                "command": ["sh", "-c",
                    "printf '\\033[31mfirst <b>line</b>\\033[0m\\n'; \
                     while [ ! -e /tmp/go ]; do sleep 0.2; done; echo second line; sleep 1"]
            }]
        }}}
    }))
    .unwrap();
    jobs.create(&PostParams::default(), &job).await.unwrap();
    let now = chrono::Utc::now();
    let run = store
        .record_attempt_start(
            &jtp_store::RunStart {
                job_id,
                trigger: jtp_crds::Trigger::Manual,
                scheduled_for: now,
                started_at: now,
                k8s_job_name: Some(format!("{ns}/live-manual-1")),
                runner: None,
                requester: None,
                parameters: Default::default(),
            },
            1,
        )
        .await
        .unwrap();
    let (base, stop, server) = serve_portal(state).await;
    let b = Browser::start().await;
    b.set_viewport(1280, 900).await;
    b.log_in(&base, &env.reader).await;
    b.goto(&format!("{base}/runs/{run}")).await;

    // The first line while the pod waits: escaped, in its colour, the page marked live.
    let first = b
        .wait_text("#output-text", WAIT, |t| t.contains("first <b>line</b>"))
        .await;
    assert!(!first.contains("second"), "{first}");
    assert!(b.text("#output-live").await.contains("Live"));
    assert_eq!(b.text("#output-text span.ansi-fg-1").await, "first <b>line</b>");
    assert!(!b.alert_open().await);

    // The second line arrives into the same page (no reload: the marker set now stays).
    b.eval("window.jtpMarker = 'same page'; return null;").await;
    let pod = {
        let pods: kube::Api<k8s_openapi::api::core::v1::Pod> = kube::Api::namespaced(env.client.clone(), &ns);
        let list = pods
            .list(&kube::api::ListParams::default().labels("job-name=live-manual-1"))
            .await
            .unwrap();
        list.items[0].metadata.name.clone().unwrap()
    };
    let ns_for_exec = ns.clone();
    tokio::task::spawn_blocking(move || {
        jtp_testenv::kubectl(&["exec", "-n", &ns_for_exec, &pod, "--", "touch", "/tmp/go"])
    })
    .await
    .unwrap();
    let both = b
        .wait_text("#output-text", WAIT, |t| t.contains("second line"))
        .await;
    assert!(both.starts_with("first <b>line</b>\nsecond line"), "{both:?}");
    assert_eq!(b.eval("return window.jtpMarker || null;").await, "same page");
    b.screenshot("kubernetes-live-output-1280").await;
    b.set_viewport(390, 844).await;
    b.assert_fits_width(390).await;
    b.screenshot("kubernetes-live-output-390").await;

    // Recorded as ended (as the operator does when the Job completes): the stored output
    // replaces the live one, each line once.
    store
        .record_attempt_finish(
            run,
            &jtp_store::RunFinish {
                status: RunStatus::Success,
                exit_code: Some(0),
                output: b"\x1b[31mfirst <b>line</b>\x1b[0m\nsecond line\nstored at the end\n",
                finished_at: chrono::Utc::now(),
            },
            jtp_store::FinishEffects::default(),
        )
        .await
        .unwrap();
    b.wait_text("#output h3 .badge", WAIT, |t| t == "SUCCESS").await;
    let stored = b.text("#output-text").await;
    assert!(stored.trim_end().ends_with("stored at the end"), "{stored:?}");
    assert_eq!(stored.matches("second line").count(), 1, "{stored:?}");
    assert_eq!(
        b.eval("return document.getElementById('output-live') === null;")
            .await,
        true
    );

    b.close().await;
    let _ = stop.send(());
    server.await.unwrap();
    env.ns.cleanup().await;
}
