//! The portal in real Chromium (Debian's chromium + chromium-driver): standalone form errors keep
//! what was typed; in a cluster a job created through the form shows its next run at 09:00 HKT, Run
//! Now makes a run appear without a reload, its output shows script tags as text, and a user without
//! rights is refused. Standalone create / Run Now / output runs against the real `jtp standalone`
//! binary in `operator/tests/standalone_browser.rs`.
#![allow(clippy::unwrap_used)]

mod common;

use common::kube_env::{KubeEnv, Mirror};
use common::*;
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

async fn log_in(b: &Browser, base: &str, token: &str) {
    b.goto(&format!("{base}/login")).await;
    b.fill("#token", token).await;
    b.click("#login-submit").await;
    b.find("#jobs-table").await;
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
    log_in(&b, &base, &env.owner).await;
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

    // The reader may look but not Run Now: a clear refusal.
    b.click("button.link").await; // log out
    log_in(&b, &base, &env.reader).await;
    b.goto(&format!("{base}/jobs/{ns}/cluster-daily")).await;
    b.click("#run-now").await;
    let refusal = b.text("#error-message").await;
    assert!(
        refusal.contains(&format!(
            "system:serviceaccount:{ns}:reader may not run this job now"
        )),
        "{refusal}"
    );
    assert!(refusal.contains("\"patch\""), "{refusal}");
    b.screenshot("kubernetes-refusal").await;
    let live = env.jobs().get("cluster-daily").await.unwrap();
    assert!(
        !live
            .metadata
            .annotations
            .unwrap_or_default()
            .contains_key(jtp_crds::RUN_NOW_ANNOTATION)
    );

    // The editor may: the annotation appears, the run shows up in the panel without a reload.
    b.goto(&format!("{base}/")).await;
    b.click("button.link").await;
    log_in(&b, &base, &env.editor).await;
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
