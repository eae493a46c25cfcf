//! Standalone mode in real Chromium against the built `jtp standalone` binary: its own runner, its
//! local executor and its portal on a temporary folder. A daily 09:00 job created through the form
//! shows its next run at 09:00 HKT; Run Now makes the executor run the script, and the run appears
//! (RUNNING, then SUCCESS) without a reload; its output shows `<script>alert(1)</script>` as text.
//! A run in flight streams its output into its page as the script writes it, then shows the stored
//! output.
#![allow(clippy::unwrap_used)]

mod common;

use common::Jtp;
use jtp_dashboard::testing::Browser;
use std::path::Path;
use std::time::{Duration, Instant};

const XSS: &str = "<script>alert(1)</script>";
/// Long enough for a run of a few seconds on a busy two-core machine.
const WAIT: Duration = Duration::from_secs(30);
/// How long the process may take to exit after SIGTERM: its shutdown grace (2 s) and some margin.
const STOP: Duration = Duration::from_secs(15);
/// What the job runs: the environment only the real executor sets, the script tag with its
/// indentation, and a pause so the run is seen in flight.
const SCRIPT: &str = "echo \"job $JTP_JOB_NAME run $JTP_RUN_ID\"\n\
                      echo '    <script>alert(1)</script>'\n\
                      sleep 4\n\
                      echo done";

/// `jtp standalone` on the data folder `data` (its jobs in `data/jobs`), its log in `data/jtp.log`.
fn standalone(data: &Path) -> Jtp {
    std::fs::create_dir_all(data.join("jobs/scripts")).unwrap();
    common::Standalone::new(data)
        .arg("--jobs-dir")
        .arg(data.join("jobs"))
        .args(["--runner-id", "browser-test", "--shutdown-grace", "2"])
        .log(&data.join("jtp.log"))
        .start()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_a_daily_job_run_it_now_and_read_its_output() {
    let data = tempfile::tempdir().unwrap();
    let jtp = tokio::task::spawn_blocking({
        let data = data.path().to_owned();
        move || standalone(&data)
    })
    .await
    .unwrap();
    let base = jtp.base.clone();
    let b = Browser::start().await;

    // Create a daily 09:00 job through the form; the zone defaults to Hong Kong.
    b.goto(&format!("{base}/jobs/new")).await;
    b.fill("#name", "browser-daily").await;
    b.fill("#description", XSS).await;
    b.find("#schedule_type")
        .await
        .select_by_value("daily")
        .await
        .unwrap();
    b.fill("#daily_at", "09:00").await;
    assert_eq!(
        b.prop("#time_zone", "value").await.as_deref(),
        Some("Asia/Hong_Kong")
    );
    b.fill("#script_inline", SCRIPT).await;
    b.click("#save-job").await;

    // Its row: the next run at 09:00 HKT with UTC on hover; the description is text.
    b.wait_text("#flash", WAIT, |t| t.contains("Created job browser-daily"))
        .await;
    let row = "tr[data-job='default/browser-daily']";
    let next_run = format!("{row} td.next-run time");
    let local = b.text(&next_run).await;
    assert!(local.ends_with("09:00 HKT"), "{local}");
    let utc = b.attr(&next_run, "title").await.unwrap_or_default();
    assert!(utc.ends_with("01:00:00 UTC"), "{utc}");
    assert_eq!(b.text(&format!("{row} .description")).await, XSS);
    assert!(
        !b.alert_open().await,
        "an alert opened: the description was not escaped"
    );
    b.screenshot("standalone-binary-jobs").await;

    // Run Now: feedback at once; the runner runs the script, and the run shows in flight, then done.
    b.click("#run-now").await;
    let flash = b
        .wait_text("#flash", WAIT, |t| {
            t.contains("Run Now requested for browser-daily at")
        })
        .await;
    assert!(flash.contains("HKT"), "{flash}");
    b.wait_text("#runs-table tbody tr.run-row", WAIT, |t| t.contains("RUNNING"))
        .await;
    let run = b
        .wait_text("#runs-table tbody tr.run-row", WAIT, |t| t.contains("SUCCESS"))
        .await;
    assert!(run.contains("manual") && run.contains("HKT"), "{run}");
    // Once the run was taken, the scheduled slot is back (the table is as of the page's load).
    b.goto(&format!("{base}/jobs/default/browser-daily")).await;
    let local = b.text(&next_run).await;
    assert!(local.ends_with("09:00 HKT"), "{local}");

    // Its output, as the executor captured it: the script tag is text, whitespace kept, no alert.
    b.click("#runs-table tbody tr.run-row a").await;
    let output = b.text("#output-text").await;
    assert!(
        output.contains("job browser-daily run "),
        "run by the real executor: {output}"
    );
    assert!(
        output.contains(&format!("    {XSS}")),
        "whitespace kept: {output:?}"
    );
    assert!(output.trim_end().ends_with("done"), "{output}");
    assert!(
        !b.alert_open().await,
        "an alert opened: the output was not escaped"
    );
    let font = b.css_value("#output-text", "font-family").await;
    assert!(font.contains("monospace"), "{font}");
    let href = b.attr("#download-output", "href").await.unwrap_or_default();
    assert!(href.ends_with("/output.txt"), "{href}");
    let url = if href.starts_with("http") {
        href
    } else {
        format!("{base}{href}")
    };
    let download = reqwest::get(url).await.unwrap();
    assert_eq!(download.status(), 200);
    assert!(download.text().await.unwrap().contains(&format!("    {XSS}\n")));
    b.screenshot("standalone-binary-output").await;

    b.close().await;
    tokio::task::spawn_blocking(move || jtp.stop(STOP)).await.unwrap();
}

/// A manual job whose script writes a coloured line with markup, waits until the test lets it go
/// on (`GATE/go`), writes another, waits again (`GATE/end`) and ends; loaded from the jobs folder.
const STREAMING_JOB: &str = r#"apiVersion: jobtrigger.io/v1alpha1
kind: ScheduledJob
metadata:
  name: streaming
spec:
  schedule:
    manual: {}
  script:
    inline: |
      printf '\033[31mfirst <b>line</b>\033[0m\n'
      while [ ! -e GATE/go ]; do sleep 0.1; done
      echo second line
      while [ ! -e GATE/end ]; do sleep 0.1; done
      echo done
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_runs_output_streams_into_its_page_then_the_stored_output_shows() {
    let data = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(data.path().join("jobs/scripts")).unwrap();
    let gate = data.path().join("gate");
    std::fs::create_dir_all(&gate).unwrap();
    std::fs::write(
        data.path().join("jobs/streaming.yaml"),
        STREAMING_JOB.replace("GATE", gate.to_str().unwrap()),
    )
    .unwrap();
    let jtp = start_in(data.path()).await;
    let base = jtp.base.clone();
    let run = run_now_until_running(&base, "streaming").await;
    let b = Browser::start().await;
    b.goto(&format!("{base}/runs/{run}")).await;
    // The first line while the script sleeps: escaped, in its colour, the page marked live.
    let first = b
        .wait_text("#output-text", WAIT, |t| t.contains("first <b>line</b>"))
        .await;
    assert!(!first.contains("second"), "{first}");
    assert!(b.text("#output-live").await.contains("Live"));
    assert_eq!(b.text("#output-text span.ansi-fg-1").await, "first <b>line</b>");
    assert!(!b.alert_open().await);
    // The second line arrives into the same page (no reload: the marker set now stays).
    b.eval("window.jtpMarker = 'same page'; return null;").await;
    std::fs::write(gate.join("go"), "").unwrap();
    b.set_viewport(1280, 900).await;
    let both = b
        .wait_text("#output-text", WAIT, |t| t.contains("second line"))
        .await;
    assert!(both.starts_with("first <b>line</b>\nsecond line"), "{both:?}");
    assert_eq!(b.eval("return window.jtpMarker || null;").await, "same page");
    b.screenshot("standalone-live-output-1280").await;
    b.set_viewport(390, 844).await;
    b.screenshot("standalone-live-output-390").await;
    // The run ends: the stored output replaces the live one.
    std::fs::write(gate.join("end"), "").unwrap();
    b.wait_text("#output h3 .badge", WAIT, |t| t == "SUCCESS").await;
    let stored = b.text("#output-text").await;
    assert!(stored.trim_end().ends_with("done"), "{stored:?}");
    assert_eq!(stored.matches("second line").count(), 1, "{stored:?}");
    assert_eq!(
        b.eval("return document.getElementById('output-live') === null;")
            .await,
        true
    );
    b.close().await;
    tokio::task::spawn_blocking(move || jtp.stop(STOP)).await.unwrap();
}

/// The Stop button of a running run's page: it asks first, then the run ends, recorded as FAILURE
/// "stopped by local", and the page shows the stored output without the button.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stop_button_of_a_running_run_stops_it_and_the_page_shows_it_failed_stopped_by_the_user() {
    let data = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(data.path().join("jobs/scripts")).unwrap();
    std::fs::write(
        data.path().join("jobs/stoppable.yaml"),
        "apiVersion: jobtrigger.io/v1alpha1\nkind: ScheduledJob\nmetadata:\n  name: stoppable\nspec:\n  \
         schedule:\n    manual: {}\n  script:\n    inline: |\n      echo working\n      sleep 300 &\n      sleep 300\n",
    )
    .unwrap();
    let jtp = start_in(data.path()).await;
    let base = jtp.base.clone();
    let run = run_now_until_running(&base, "stoppable").await;
    let b = Browser::start().await;
    b.goto(&format!("{base}/runs/{run}")).await;
    b.wait_text("#output-text", WAIT, |t| t.contains("working")).await;
    assert_eq!(b.text("#stop-run").await, "Stop run");
    b.set_viewport(1280, 900).await;
    b.screenshot("standalone-stop-button-1280").await;
    b.set_viewport(390, 844).await;
    b.screenshot("standalone-stop-button-390").await;
    b.set_viewport(1280, 900).await;
    // The confirmation is answered yes (WebDriver cannot click a native dialog's button here).
    b.eval(
        "window.confirm = function (m) { sessionStorage.setItem('jtpAsked', m); return true; }; return null;",
    )
    .await;
    b.click("#stop-run").await;
    // (The flash message may be gone already: the page reloads once the run has ended.)
    b.wait_text("#output h3 .badge", WAIT, |t| t == "FAILURE").await;
    let stored = b.text("#output-text").await;
    assert!(stored.starts_with("working"), "{stored:?}");
    assert!(stored.contains("stopped by local"), "{stored:?}");
    assert_eq!(
        b.eval("return document.getElementById('stop-run') === null;")
            .await,
        true,
        "no Stop button on an ended run"
    );
    assert_eq!(
        b.eval("return sessionStorage.getItem('jtpAsked');").await,
        format!("Stop run #{run}? It is recorded as FAILURE, stopped by you.").as_str(),
        "asked before stopping"
    );
    b.screenshot("standalone-stopped-run-1280").await;
    b.close().await;
    tokio::task::spawn_blocking(move || jtp.stop(STOP)).await.unwrap();
}

/// `jtp standalone` on the data folder `data` (its jobs in `data/jobs`), on a free port.
async fn start_in(data: &Path) -> Jtp {
    let data = data.to_owned();
    tokio::task::spawn_blocking(move || standalone(&data))
        .await
        .unwrap()
}

/// Asks for a Run Now of `default/<job>` through the API and returns the run's id once the
/// runner has started it (RUNNING).
async fn run_now_until_running(base: &str, job: &str) -> i64 {
    let client = reqwest::Client::new();
    let started = client
        .post(format!("{base}/api/v1/jobs/default/{job}/run"))
        .send()
        .await
        .unwrap();
    assert!(started.status().is_success(), "{}", started.text().await.unwrap());
    let deadline = Instant::now() + WAIT;
    loop {
        let runs: serde_json::Value = client
            .get(format!("{base}/api/v1/jobs/default/{job}/runs"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if let Some(id) = runs["items"][0]["id"].as_i64()
            && runs["items"][0]["status"] == "RUNNING"
        {
            return id;
        }
        assert!(Instant::now() < deadline, "no run started: {runs}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
