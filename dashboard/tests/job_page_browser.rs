//! The job page, sortable columns and keyboard navigation in real Chromium (standalone): nothing
//! covered at 1280 px or on a 390 px phone, rows reached and opened from the keyboard with a
//! visible focus and no trap, headers that sort and say so (aria-sort), and the form's next runs
//! following what is typed.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use fantoccini::key::Key;
use jtp_crds::{RunStatus, ScheduledJobSpec};
use jtp_dashboard::testing::Browser;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);

async fn jobs(t: &Standalone) {
    for (name, spec) in [
        ("backup", ScheduledJobSpec::daily("02:00").script("echo backup")),
        (
            "london-report",
            ScheduledJobSpec::cron("30 1 * 3 sun")
                .in_zone("Europe/London")
                .script("echo report")
                .retry(2, "30s"),
        ),
        ("archive", ScheduledJobSpec::hourly(5).script("echo archive")),
        ("manual-fix", ScheduledJobSpec::manual().script("echo fix")),
    ] {
        let id = add_job(&t.store, "default", name, &spec).await;
        add_run(&t.store, id, RunStatus::Success, Some(0), "ok").await;
        if name == "archive" {
            add_run(&t.store, id, RunStatus::Failure, Some(1), "no").await;
        }
    }
}

/// The `data-job` of the focused element, if it is a row.
async fn focused_job(b: &Browser) -> String {
    b.eval("const e = document.activeElement; return e && e.getAttribute('data-job') || '';")
        .await
        .as_str()
        .unwrap_or("")
        .to_owned()
}

async fn press(b: &Browser, key: &str) {
    let active = b.client.active_element().await.unwrap();
    active.send_keys(key).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_sort_and_move_from_the_keyboard() {
    let t = standalone().await;
    jobs(&t).await;
    let (base, stop, server) = serve_portal(t.state.clone()).await;
    let b = Browser::start().await;
    b.set_viewport(1280, 900).await;
    b.goto(&format!("{base}/")).await;
    // Sorting by name from its header, then the other way.
    b.click("#sort-name").await;
    b.wait_text("th[aria-sort=ascending] #sort-name", WAIT, |t| t.contains("Name"))
        .await;
    assert!(b.url().await.ends_with("/?sort=name"), "{}", b.url().await);
    let order = b
        .eval("return Array.from(document.querySelectorAll('tr[data-job]')).map(r => r.getAttribute('data-job'));")
        .await;
    assert_eq!(
        order,
        serde_json::json!([
            "default/archive",
            "default/backup",
            "default/london-report",
            "default/manual-fix"
        ])
    );
    assert!(
        b.covered_cells("#jobs-table").await.is_empty(),
        "{:?}",
        b.covered_cells("#jobs-table").await
    );
    b.screenshot("sorted-by-name-1280").await;

    // Keyboard: focus the first row, j and ↓ move down, k and ↑ up; the focus is visible.
    b.eval("document.querySelector('tr[data-job]').focus(); return true;")
        .await;
    assert_eq!(focused_job(&b).await, "default/archive");
    press(&b, "j").await;
    assert_eq!(focused_job(&b).await, "default/backup");
    press(&b, &char::from(Key::Down).to_string()).await;
    assert_eq!(focused_job(&b).await, "default/london-report");
    press(&b, "k").await;
    press(&b, &char::from(Key::Up).to_string()).await;
    assert_eq!(focused_job(&b).await, "default/archive");
    press(&b, "k").await;
    assert_eq!(focused_job(&b).await, "default/archive", "the first row stays");
    let shadow = b
        .eval("return getComputedStyle(document.activeElement.querySelector('td')).boxShadow;")
        .await;
    assert_ne!(shadow.as_str().unwrap_or("none"), "none", "a visible focus ring");
    // Tab leaves the row for the next focusable thing: no trap.
    press(&b, &char::from(Key::Tab).to_string()).await;
    let tag = b
        .eval("return document.activeElement.tagName + ' ' + (document.activeElement.getAttribute('data-job') || '');")
        .await;
    assert_ne!(tag.as_str().unwrap(), "TR default/archive", "Tab moved on");
    // The row refresh (every 3 s) keeps a focused row focused.
    b.eval("document.querySelector('tr[data-job=\"default/backup\"]').focus(); return true;")
        .await;
    tokio::time::sleep(Duration::from_millis(3500)).await;
    assert_eq!(focused_job(&b).await, "default/backup");
    // Enter opens the row's job (its panel).
    press(&b, &char::from(Key::Enter).to_string()).await;
    b.wait_text("#panel-job", WAIT, |t| t.contains("backup")).await;
    assert!(
        b.url().await.contains("/jobs/default/backup"),
        "{}",
        b.url().await
    );
    assert!(b.covered_cells("#jobs-table").await.is_empty());
    b.screenshot("panel-from-keyboard-1280").await;

    b.set_viewport(390, 844).await;
    b.goto(&format!("{base}/?sort=status")).await;
    assert!(
        b.covered_cells("#jobs-table").await.is_empty(),
        "{:?}",
        b.covered_cells("#jobs-table").await
    );
    b.screenshot("sorted-by-status-390").await;
    b.close().await;
    let _ = stop.send(());
    server.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_job_page_fits_exports_and_clones_with_a_live_preview() {
    let t = standalone().await;
    jobs(&t).await;
    let (base, stop, server) = serve_portal(t.state.clone()).await;
    let b = Browser::start().await;
    for (width, height) in [(1280, 900), (390, 844)] {
        b.set_viewport(width, height).await;
        b.goto(&format!("{base}/")).await;
        b.click("a[href='/jobs/default/london-report/details']").await;
        b.wait_text("#job-title", WAIT, |t| t.contains("london-report"))
            .await;
        let text = b.text("#next-runs").await;
        assert!(
            text.contains("for 01:30, which the DST change skips: at the end of the gap"),
            "{text}"
        );
        assert!(
            b.covered_cells("#recent-runs").await.is_empty(),
            "{:?}",
            b.covered_cells("#recent-runs").await
        );
        b.assert_fits_width(width).await;
        b.screenshot(&format!("job-page-{width}")).await;
    }
    b.set_viewport(1280, 900).await;
    let yaml = b
        .eval("return fetch('/jobs/default/london-report/export.yaml').then(r => r.text());")
        .await;
    assert!(
        yaml.as_str().unwrap().contains("cron: 30 1 * 3 sun")
            || yaml.as_str().unwrap().contains("cron: '30 1 * 3 sun'"),
        "{yaml}"
    );
    // Clone: the form prefilled with a new name; its next runs follow what is typed.
    b.click("#clone-job").await;
    b.wait_text("#copy-of", WAIT, |t| t.contains("default/london-report"))
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
    b.fill("#daily_at", "27:00").await;
    b.wait_text("#form-next-runs-body", WAIT, |t| t.contains("No preview yet"))
        .await;
    b.screenshot("clone-form-preview-1280").await;
    b.fill("#daily_at", "10:45").await;
    b.click("#save-job").await;
    b.wait_text("#flash", WAIT, |t| t.contains("Created job london-report-copy"))
        .await;
    let copy = t
        .store
        .get_job_by_name("default", "london-report-copy")
        .await
        .unwrap();
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
    b.goto(&format!("{base}/jobs/default/london-report/clone")).await;
    b.assert_fits_width(390).await;
    b.screenshot("clone-form-390").await;
    b.close().await;
    let _ = stop.send(());
    server.await.unwrap();
}
