//! The portal in real Chromium (Debian's chromium + chromium-driver): standalone form errors keep
//! what was typed; in a cluster a job created through the form shows its next run at 09:00 HKT, Run
//! Now makes a run appear without a reload, its output shows script tags as text, and a user without
//! rights is refused. Standalone create / Run Now / output runs against the real `jtp standalone`
//! binary in `operator/tests/standalone_browser.rs`.
#![allow(clippy::unwrap_used)]

mod common;

use common::kube_env::{KubeEnv, Mirror};
use common::*;
use jtp_crds::ScheduledJobSpec;
use jtp_dashboard::testing::Browser;
use jtp_dashboard::{AppState, PortalConfig};
use std::time::Duration;

const XSS: &str = "<script>alert(1)</script>";
const WAIT: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standalone_form_errors_keep_what_was_typed() {
    let t = standalone().await;
    let (base, stop, server) = serve_portal(t.state.clone()).await;
    let b = Browser::start().await;
    b.goto(&format!("{base}/jobs/new")).await;
    b.fill("#name", "typo").await;
    b.fill("#daily_at", "9 o'clock").await;
    b.fill("#time_zone", "Asia/HongKong").await;
    b.fill("#description", XSS).await;
    b.click("#save-job").await;
    let error = b.text("#error-daily_at").await;
    assert!(error.contains("is not a time"), "{error}");
    assert!(
        b.text("#error-time_zone")
            .await
            .contains("did you mean Asia/Hong_Kong?")
    );
    assert_eq!(
        b.find("#daily_at").await.prop("value").await.unwrap().unwrap(),
        "9 o'clock"
    );
    assert_eq!(
        b.find("#description").await.prop("value").await.unwrap().unwrap(),
        XSS
    );
    assert!(!b.alert_open().await);
    b.screenshot("standalone-form-errors").await;
    b.close().await;
    let _ = stop.send(());
    server.await.unwrap();
}

/// The form's daylight-saving choices and pod template, folded away until wanted: a misspelt
/// template field is shown next to the template with its path, the section stays open and the
/// choices made stay chosen; fixed, the job is created with both. At 1280 px and on a 390 px
/// phone the fields fit the page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_form_takes_a_dst_policy_and_a_pod_template() {
    let t = standalone().await;
    let (base, stop, server) = serve_portal(t.state.clone()).await;
    let b = Browser::start().await;
    b.set_viewport(1280, 900).await;
    b.goto(&format!("{base}/jobs/new")).await;
    assert!(!b.is_visible("#repeated_time").await);
    b.fill("#name", "dst-form").await;
    b.fill("#time_zone", "America/New_York").await;
    b.eval(
        "for (const d of document.querySelectorAll('details')) d.open = true;\
         document.querySelector('#repeated_time').value = 'Both';\
         document.querySelector('#skipped_time').value = 'Skip'; return true;",
    )
    .await;
    b.fill("#script_inline", "echo hi").await;
    b.fill(
        "#pod_template",
        "spec:\n  containers:\n    - name: run\n      imagee: x\n",
    )
    .await;
    b.click("#save-job").await;
    let error = b.text("#error-pod_template").await;
    assert!(
        error.contains("spec.podTemplate.spec.containers[0].imagee"),
        "{error}"
    );
    assert_eq!(b.prop("#repeated_time", "value").await.as_deref(), Some("Both"));
    assert!(b.is_visible("#pod_template").await);
    b.screenshot("form-dst-pod-template-1280").await;
    let [_, _, width, _] = b.rect("#pod_template").await;
    assert!(width <= 1280.0, "{width}");
    b.set_viewport(390, 844).await;
    b.assert_fits_width(390).await;
    b.screenshot("form-dst-pod-template-390").await;

    b.fill(
        "#pod_template",
        "spec:\n  containers:\n    - name: run\n      env: [{ name: A, value: b }]\n",
    )
    .await;
    b.click("#save-job").await;
    b.wait_text("#flash", WAIT, |text| text.contains("Created job dst-form"))
        .await;
    let job = t.store.get_job_by_name("default", "dst-form").await.unwrap();
    let dst = job.spec.daylight_saving.expect("a DST policy");
    assert_eq!(dst.repeated_time, Some(jtp_crds::RepeatedTime::Both));
    assert_eq!(dst.skipped_time, Some(jtp_crds::SkippedTime::Skip));
    assert_eq!(
        job.spec.pod_template.expect("a template").0["spec"]["containers"][0]["env"][0]["value"],
        "b"
    );
    b.close().await;
    let _ = stop.send(());
    server.await.unwrap();
}

/// The form's Run Now parameters, folded away until wanted: a misspelt key is shown next to the
/// field with its path and nearest known key, the section stays open with what was typed; fixed,
/// the job is created with them, its Run Now form offers them with their defaults, and its edit
/// form shows them back. At 1280 px and on a 390 px phone the field fits the page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_form_declares_run_now_parameters() {
    let t = standalone().await;
    let (base, stop, server) = serve_portal(t.state.clone()).await;
    let b = Browser::start().await;
    b.set_viewport(1280, 900).await;
    b.goto(&format!("{base}/jobs/new")).await;
    assert!(
        !b.is_visible("#parameters").await,
        "the parameters are folded away on a new job"
    );
    b.fill("#name", "with-parameters").await;
    b.eval(
        "document.querySelector('#schedule_type').value = 'manual';\
         document.querySelector('#schedule_type').dispatchEvent(new Event('change'));\
         for (const d of document.querySelectorAll('details')) d.open = true; return true;",
    )
    .await;
    b.fill("#script_inline", "echo \"region=$REGION\"").await;
    let typo = "- name: REGION\n  description: Which region to rebuild\n  defualt: eu\n  allowed: [eu, us]\n";
    b.fill("#parameters", typo).await;
    b.click("#save-job").await;
    let error = b.text("#error-parameters").await;
    assert!(
        error.contains("spec.parameters[0].defualt: unknown field, did you mean default?"),
        "{error}"
    );
    assert_eq!(b.prop("#parameters", "value").await.as_deref(), Some(typo));
    assert!(
        b.is_visible("#parameters").await,
        "the section stays open on an error"
    );
    let show_error =
        "document.querySelector('#error-parameters').scrollIntoView({block: 'center'}); return true;";
    b.eval(show_error).await;
    b.screenshot("form-parameters-1280").await;
    let [_, _, width, _] = b.rect("#parameters").await;
    assert!(width <= 1280.0, "{width}");
    b.set_viewport(390, 844).await;
    b.assert_fits_width(390).await;
    b.eval(show_error).await;
    b.screenshot("form-parameters-390").await;
    b.set_viewport(1280, 900).await;

    b.fill("#parameters", &typo.replace("defualt", "default")).await;
    b.click("#save-job").await;
    b.wait_text("#flash", WAIT, |text| {
        text.contains("Created job with-parameters")
    })
    .await;
    let job = t
        .store
        .get_job_by_name("default", "with-parameters")
        .await
        .unwrap();
    assert_eq!(job.spec.parameters.len(), 1, "{:?}", job.spec.parameters);
    let region = &job.spec.parameters[0];
    assert_eq!(
        (
            region.name.as_str(),
            region.default.as_deref(),
            region.allowed.clone()
        ),
        ("REGION", Some("eu"), vec!["eu".to_owned(), "us".to_owned()])
    );

    b.goto(&format!("{base}/jobs/default/with-parameters/run")).await;
    b.wait_text("h1", WAIT, |t| t.contains("Run with-parameters now"))
        .await;
    assert_eq!(b.prop("#param-REGION", "value").await.as_deref(), Some("eu"));
    assert!(
        b.text("#help-param-REGION")
            .await
            .contains("Which region to rebuild")
    );
    b.goto(&format!("{base}/jobs/default/with-parameters/edit")).await;
    let shown = b.prop("#parameters", "value").await.unwrap_or_default();
    assert!(
        shown.contains("name: REGION") && shown.contains("default: eu"),
        "{shown}"
    );
    assert!(
        b.is_visible("#parameters").await,
        "a job's own parameters are shown open"
    );
    b.close().await;
    let _ = stop.send(());
    server.await.unwrap();
}

/// Who asked for the newest run of [`busy_portal`]'s failing job, as a Kubernetes portal records a
/// service account's Run Now: the longest requester there is, with no space to wrap at.
const CLUSTER_REQUESTER: &str = "system:serviceaccount:jtp-e2e-7f3k2:runner";

/// The panel's newest run, asked for by [`CLUSTER_REQUESTER`], names it in a few short lines of the
/// Trigger column (at most four of its 12.8 px font), not the seven or eight its whole name wrapped onto.
async fn assert_requester_is_short(b: &Browser, width: u32) {
    let [_, top, _, bottom] = b.rect("#runs-table td.trigger .requester").await;
    assert!(
        bottom - top <= 70.0,
        "{width} px: the requester is {} px tall",
        bottom - top
    );
}

/// Jobs and runs as a new user sees them after a while: long names and descriptions, an interval
/// job, a suspended one, a failing one with coloured output, runs seconds apart.
async fn busy_portal(t: &Standalone) -> i64 {
    use jtp_crds::{IntervalUnit, RunStatus};
    let specs = [
        (
            "nightly-report-for-the-finance-team",
            ScheduledJobSpec::daily("09:00"),
        ),
        ("heartbeat", ScheduledJobSpec::interval(15, IntervalUnit::Minutes)),
        (
            "london-close",
            ScheduledJobSpec::daily("16:30").in_zone("Europe/London"),
        ),
        (
            "weekly-cleanup",
            ScheduledJobSpec::weekly(&[jtp_crds::Weekday::Monday, jtp_crds::Weekday::Friday], "08:30"),
        ),
        ("every-five", ScheduledJobSpec::cron("*/5 * * * *")),
        ("on-demand", ScheduledJobSpec::manual()),
    ];
    let mut ids = Vec::new();
    for (name, mut spec) in specs {
        spec.description = Some(format!(
            "{name}: a description long enough to wrap in a narrow column"
        ));
        ids.push(add_job(&t.store, "default", name, &spec).await);
    }
    let now = chrono::Utc::now();
    let failing = ids[0];
    let mut last = 0;
    for i in 0..6i64 {
        let status = if i % 3 == 2 {
            RunStatus::Failure
        } else {
            RunStatus::Success
        };
        let output = if status == RunStatus::Failure {
            "\x1b[1;31mERROR\x1b[0m the ledger did not balance\n"
        } else {
            "\x1b[32mok\x1b[0m\n"
        };
        let at = now - chrono::Duration::seconds(300 - i * 9);
        last = add_run_by(
            &t.store,
            failing,
            at,
            status,
            Some(i32::from(status != RunStatus::Success)),
            output,
            (i == 5).then_some(CLUSTER_REQUESTER),
        )
        .await;
    }
    last
}

/// The runs view's search box: typed and submitted, the failing runs whose output says "ledger"
/// are listed with the match marked (the output's colour codes are not part of the snippet's
/// text), nothing covered at 1280 px or on a 390 px phone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_runs_view_searches_outputs_and_marks_the_match() {
    let t = standalone().await;
    busy_portal(&t).await;
    let (base, stop, server) = serve_portal(t.state.clone()).await;
    let b = Browser::start().await;
    b.set_viewport(1280, 900).await;
    b.goto(&format!("{base}/runs")).await;
    b.fill("#filter-q", "LEDGER did").await;
    b.click("#runs-filters button[type=submit]").await;
    b.wait_text("#all-runs-table", WAIT, |text| {
        text.contains("the ledger did not balance")
    })
    .await;
    let marks = b
        .eval("return [...document.querySelectorAll('.snippet mark')].map(m => m.textContent);")
        .await;
    assert_eq!(
        marks,
        serde_json::json!(["ledger did", "ledger did"]),
        "two failing runs, each marked"
    );
    let rows = b
        .eval("return document.querySelectorAll('#all-runs-table tr.run-row').length;")
        .await;
    assert_eq!(rows, 2);
    b.assert_nothing_covered("#all-runs-table", "runs-search-1280")
        .await;
    b.set_viewport(390, 844).await;
    b.goto(&format!("{base}/runs?q=ledger")).await;
    b.find(".snippet mark").await;
    b.assert_fits_width(390).await;
    b.assert_nothing_covered("#all-runs-table", "runs-search-390")
        .await;
    b.close().await;
    let _ = stop.send(());
    server.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standalone_layout_clickable_rows_live_table_and_colours() {
    let t = standalone().await;
    let last_run = busy_portal(&t).await;
    let (base, stop, server) = serve_portal(t.state.clone()).await;
    let b = Browser::start().await;
    let job = "default/nightly-report-for-the-finance-team";
    let panel_url = format!("{base}/jobs/{job}");

    // With the panel open, at 1280 and 1400 px, no column of the jobs table is under it.
    for width in [1280, 1400] {
        b.set_viewport(width, 900).await;
        b.goto(&panel_url).await;
        b.find("#panel-job").await;
        b.assert_nothing_covered("#jobs-table", &format!("standalone-panel-{width}"))
            .await;
        b.assert_nothing_covered("#runs-table", &format!("standalone-panel-{width}-runs"))
            .await;
        assert_requester_is_short(&b, width).await;
        let headers = b.visible_headers("#jobs-table").await;
        // "Last run" holds the status sort's link too.
        for wanted in ["Name", "Next run", "Last run status", "State"] {
            assert!(headers.iter().any(|h| h == wanted), "{width}: {headers:?}");
        }
    }
    // Without the panel every column shows, none covered.
    b.goto(&base).await;
    b.find("#jobs-table").await;
    b.assert_nothing_covered("#jobs-table", "standalone-jobs-1400")
        .await;
    assert_eq!(
        b.visible_headers("#jobs-table").await,
        [
            "Name",
            "Schedule",
            "Next run",
            "Last run status",
            "Recent runs",
            "State"
        ]
    );

    // On a 390 px phone the panel comes first, above the list, and nothing runs off the screen.
    b.set_viewport(390, 844).await;
    b.goto(&panel_url).await;
    b.find("#panel-job").await;
    let panel = b.rect("#panel").await;
    let table = b.rect("#jobs-table").await;
    assert!(
        panel[3] <= table[1],
        "the panel ({panel:?}) is above the table ({table:?})"
    );
    assert!(panel[1] < 300.0, "the panel starts near the top: {panel:?}");
    b.assert_nothing_covered("#jobs-table", "standalone-panel-390")
        .await;
    b.assert_nothing_covered("#runs-table", "standalone-panel-390-runs")
        .await;
    // The Trigger cell shows a service account as NS/NAME and carries the whole name as its title.
    assert_requester_is_short(&b, 390).await;
    let trigger = b.text("#runs-table td.trigger").await;
    assert!(
        trigger.contains("by jtp-e2e-7f3k2/runner") && trigger.contains("service account"),
        "{trigger}"
    );
    assert_eq!(
        b.attr("#runs-table td.trigger", "title").await,
        Some(format!("manual by {CLUSTER_REQUESTER}"))
    );
    b.goto(&format!("{base}/runs")).await;
    b.assert_nothing_covered("#all-runs-table", "standalone-runs-390")
        .await;

    // Rows are clickable: a click on a job row's schedule cell opens its panel, one on a run's
    // duration cell opens that run's output.
    b.set_viewport(1280, 900).await;
    b.goto(&base).await;
    b.click("tr[data-job='default/heartbeat'] td.next-run").await;
    b.wait_text("#panel-job", WAIT, |t| t == "heartbeat").await;
    assert!(b.url().await.ends_with("/jobs/default/heartbeat"));
    b.goto(&panel_url).await;
    b.click(&format!("#runs-table tr[data-run='{last_run}'] td:nth-child(3)"))
        .await;
    b.wait_text("#output-text", WAIT, |t| t.contains("ledger did not balance"))
        .await;
    // The colour codes are colours, not text.
    let output = b.text("#output-text").await;
    assert!(
        !output.contains("[1;31m") && output.starts_with("ERROR"),
        "{output:?}"
    );
    let red = b.css_value("#output-text .ansi-fg-1", "color").await;
    assert_eq!(red, "rgba(255, 123, 114, 1)");
    assert_eq!(b.css_value("#output-text .ansi-fg-1", "font-weight").await, "700");
    b.screenshot("standalone-output-colours").await;

    // Accessibility: a labelled close button and a live region for the refreshing panel.
    assert_eq!(
        b.attr("#panel .close", "aria-label").await.as_deref(),
        Some("Close the panel of nightly-report-for-the-finance-team")
    );
    assert_eq!(
        b.attr("#panel-status", "aria-live").await.as_deref(),
        Some("polite")
    );

    // The jobs table follows new runs without a reload.
    b.goto(&format!("{base}/jobs/default/on-demand")).await;
    let last = "tr[data-job='default/on-demand'] td.last-run";
    assert!(b.text(last).await.contains("never"));
    add_run(
        &t.store,
        t.store.get_job_by_name("default", "on-demand").await.unwrap().id,
        jtp_crds::RunStatus::Success,
        Some(0),
        "done",
    )
    .await;
    b.wait_text(last, WAIT, |t| t.contains("SUCCESS")).await;
    b.wait_text("#panel-status", WAIT, |t| t.contains("SUCCESS"))
        .await;

    b.close().await;
    let _ = stop.send(());
    server.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubernetes_create_run_now_refusal_and_output() {
    let env = KubeEnv::new("dash-browser").await;
    let ns = env.ns.name().to_owned();
    let dir = tempfile::tempdir().unwrap();
    let store = store_in(&dir, None).await;
    let state = AppState::kubernetes(store.clone(), env.client.clone(), PortalConfig::default());
    // The operator's mirror and Run Now handling, against the same API server and store.
    let mirror = {
        let (api, store) = (env.jobs(), store.clone());
        tokio::spawn(async move {
            let mut mirror = Mirror::new(&format!("run by the operator\n{XSS}\n"));
            loop {
                mirror.sync(&api, &store).await;
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        })
    };
    let (base, stop, server) = serve_portal(state).await;
    let b = Browser::start().await;

    // Without a token: the login page; a bad token is refused.
    b.goto(&base).await;
    b.find("#token").await;
    b.fill("#token", "not-a-token").await;
    b.click("#login-submit").await;
    assert!(b.text("#login-error").await.contains("not accepted"));

    // The owner creates a daily 09:00 job through the form.
    b.log_in(&base, &env.owner).await;
    b.goto(&format!("{base}/jobs/new")).await;
    b.fill("#name", "cluster-daily").await;
    b.fill("#namespace", &ns).await;
    b.fill("#daily_at", "09:00").await;
    b.fill("#script_inline", "echo hi").await;
    b.click("#save-job").await;
    assert!(b.text("#flash").await.contains("Created job cluster-daily"));
    let created = env.jobs().get("cluster-daily").await.unwrap();
    assert_eq!(created.spec.schedule.daily.unwrap().at, "09:00");

    // Once mirrored, its next run shows at 09:00 HKT.
    let selector = format!("tr[data-job='{ns}/cluster-daily'] td.next-run time");
    let deadline = std::time::Instant::now() + WAIT;
    let cell = loop {
        b.goto(&format!("{base}/?namespace={ns}")).await;
        if let Ok(cell) = b.client.find(fantoccini::Locator::Css(&selector)).await {
            break cell;
        }
        assert!(std::time::Instant::now() < deadline, "the job never appeared");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert!(cell.text().await.unwrap().ends_with("09:00 HKT"));
    assert!(
        cell.attr("title")
            .await
            .unwrap()
            .unwrap()
            .ends_with("01:00:00 UTC")
    );
    b.screenshot("kubernetes-jobs").await;
    // With the namespace column and the panel open, no column is covered at 1280 or 390 px.
    for (width, height) in [(1280, 900), (390, 844)] {
        b.set_viewport(width, height).await;
        b.goto(&format!("{base}/jobs/{ns}/cluster-daily")).await;
        b.find("#panel-job").await;
        b.assert_nothing_covered("#jobs-table", &format!("kubernetes-panel-{width}"))
            .await;
        let headers = b.visible_headers("#jobs-table").await;
        if width > 700 {
            assert!(headers.iter().any(|h| h == "Namespace"), "{headers:?}");
        }
    }
    b.set_viewport(1440, 900).await;

    // The reader may look but not Run Now: a clear refusal.
    b.click("button.link").await; // log out
    b.log_in(&base, &env.reader).await;
    b.goto(&format!("{base}/jobs/{ns}/cluster-daily")).await;
    b.click("#run-now").await;
    let refusal = b.text("#error-message").await;
    assert!(
        refusal.contains(&format!(
            "system:serviceaccount:{ns}:reader may not run this job now"
        )),
        "{refusal}"
    );
    assert!(refusal.contains("\"trigger\""), "{refusal}");
    b.screenshot("kubernetes-refusal").await;
    let live = env.jobs().get("cluster-daily").await.unwrap();
    assert!(
        !live
            .metadata
            .annotations
            .unwrap_or_default()
            .contains_key(jtp_crds::RUN_NOW_ANNOTATION)
    );

    // The runner (trigger, no patch) may: the annotation appears, the run shows up in the panel
    // without a reload.
    b.goto(&format!("{base}/")).await;
    b.click("button.link").await;
    b.log_in(&base, &env.runner).await;
    b.goto(&format!("{base}/jobs/{ns}/cluster-daily")).await;
    b.click("#run-now").await;
    assert!(
        b.text("#flash")
            .await
            .contains("Run Now requested for cluster-daily")
    );
    let live = env.jobs().get("cluster-daily").await.unwrap();
    assert!(
        live.metadata
            .annotations
            .unwrap()
            .contains_key(jtp_crds::RUN_NOW_ANNOTATION)
    );
    b.wait_text("#runs-table tbody tr.run-row", WAIT, |t| t.contains("SUCCESS"))
        .await;
    let row = b.text("#runs-table tbody tr.run-row").await;
    assert!(
        row.contains("manual") && row.contains(&format!("by {ns}/runner")) && row.contains("service account"),
        "{row}"
    );
    assert_eq!(
        b.attr("#runs-table tbody tr.run-row td.trigger", "title").await,
        Some(format!("manual by system:serviceaccount:{ns}:runner"))
    );
    b.click("#runs-table tbody tr.run-row a").await;
    let output = b.text("#output-text").await;
    assert!(output.contains(XSS), "{output}");
    assert!(!b.alert_open().await);
    b.screenshot("kubernetes-output").await;

    b.close().await;
    mirror.abort();
    let _ = stop.send(());
    server.await.unwrap();
    env.ns.cleanup().await;
}
