//! Run Now with parameters in real Chromium against the built `jtp standalone`: a job of the jobs
//! folder declares parameters; its Run Now opens the form (a list, a text box, the defaults
//! filled in), a missing value comes back marked next to its field, and the run the form starts
//! gets the values as environment variables (the script's echo of them is its output), with the
//! values shown on the run's page. Screenshots of the form at 1280 and 390 px.
#![allow(clippy::unwrap_used)]

mod common;

use jtp_dashboard::testing::Browser;
use std::time::Duration;

/// Long enough for a run of a few seconds on a busy two-core machine.
const WAIT: Duration = Duration::from_secs(30);

const EXPORT_JOB: &str = r#"apiVersion: jobtrigger.io/v1alpha1
kind: ScheduledJob
metadata:
  name: export
spec:
  description: Exports one region's data for a ticket.
  schedule:
    manual: {}
  parameters:
  - name: REGION
    description: Which region's data to export.
    default: eu-west
    allowed: [eu-west, us-east, ap-east]
  - name: TICKET
    description: The ticket asking for the export.
    pattern: "[A-Z]+-[0-9]+"
  - name: NOTE
    default: "<b>none</b>"
  script:
    inline: |
      echo "region=$REGION ticket=$TICKET note=$NOTE"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_now_with_parameters_fills_the_form_and_the_script_gets_the_values() {
    let data = tempfile::tempdir().unwrap();
    let jobs = data.path().join("jobs");
    std::fs::create_dir_all(jobs.join("scripts")).unwrap();
    std::fs::write(jobs.join("export.yaml"), EXPORT_JOB).unwrap();
    let log = data.path().join("jtp.log");
    let jtp = tokio::task::spawn_blocking({
        let data = data.path().to_owned();
        let log = log.clone();
        move || {
            common::Standalone::new(&data)
                .arg("--jobs-dir")
                .arg(data.join("jobs"))
                .args(["--runner-id", "parameters-browser"])
                .log(&log)
                .start()
        }
    })
    .await
    .unwrap();
    let base = jtp.base.clone();
    let b = Browser::start().await;
    b.set_viewport(1280, 900).await;

    // The job's panel: Run Now opens the form, whose fields hold the defaults.
    b.goto(&format!("{base}/jobs/default/export")).await;
    b.wait_text("#panel-job", WAIT, |t| t.contains("export")).await;
    assert_eq!(b.text("#run-now").await, "Run Now…");
    b.click("#run-now").await;
    b.wait_text("h1", WAIT, |t| t.contains("Run export now")).await;
    assert_eq!(b.prop("#param-REGION", "value").await.as_deref(), Some("eu-west"));
    assert_eq!(b.prop("#param-TICKET", "value").await.as_deref(), Some(""));
    assert_eq!(
        b.prop("#param-NOTE", "value").await.as_deref(),
        Some("<b>none</b>")
    );
    assert!(
        b.text("#help-param-TICKET")
            .await
            .contains("Must match [A-Z]+-[0-9]+. Required.")
    );
    let shot = b.screenshot("parameters-run-now-form-1280").await;
    eprintln!("screenshot: {}", shot.display());

    // Sent without the required ticket: the form comes back with the field marked and described.
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
    assert_eq!(
        b.attr("#param-TICKET", "aria-describedby").await.as_deref(),
        Some("help-param-TICKET error-param-TICKET")
    );
    assert_eq!(
        b.prop("#param-REGION", "value").await.as_deref(),
        Some("us-east"),
        "the choice made is kept"
    );
    b.set_viewport(390, 844).await;
    let shot = b.screenshot("parameters-run-now-form-error-390").await;
    eprintln!("screenshot: {}", shot.display());
    let [left, _, right, _] = b.rect("#param-TICKET").await;
    assert!(
        left >= 0.0 && right <= 390.0 && right - left > 200.0,
        "the field fits the phone: {left}..{right}"
    );
    b.set_viewport(1280, 900).await;
    let shot = b.screenshot("parameters-run-now-form-error-1280").await;
    eprintln!("screenshot: {}", shot.display());

    // With a ticket it runs: the flash names the values, the run ends, its output is the echo.
    b.fill("#param-TICKET", "OPS-42").await;
    b.click("#run-now-submit").await;
    let flash = b
        .wait_text("#flash", WAIT, |t| t.contains("Run Now requested for export"))
        .await;
    assert!(
        flash.contains("with NOTE=<b>none</b>, REGION=us-east, TICKET=OPS-42"),
        "{flash}"
    );
    let run = b
        .wait_text("#runs-table tbody tr.run-row", WAIT, |t| t.contains("SUCCESS"))
        .await;
    assert!(run.contains("manual") && run.contains("by local"), "{run}");
    b.click("#runs-table tbody tr.run-row a").await;
    let output = b.wait_text("#output-text", WAIT, |t| t.contains("region=")).await;
    assert_eq!(
        output.trim_end(),
        "region=us-east ticket=OPS-42 note=<b>none</b>",
        "the script got the values as environment variables"
    );
    assert!(!b.alert_open().await);
    let shown = b.text("#run-parameters").await;
    assert!(
        shown.contains("REGION") && shown.contains("us-east") && shown.contains("OPS-42"),
        "{shown}"
    );
    let shot = b.screenshot("parameters-run-output-1280").await;
    eprintln!("screenshot: {}", shot.display());

    // The run's own page: Run again opens the form with this run's values.
    let runs = tokio::task::spawn_blocking({
        let base = base.clone();
        move || {
            reqwest::blocking::get(format!("{base}/api/v1/jobs/default/export/runs"))
                .unwrap()
                .json::<serde_json::Value>()
                .unwrap()
        }
    })
    .await
    .unwrap();
    assert_eq!(runs["items"][0]["parameters"]["TICKET"], "OPS-42", "{runs}");
    let id = runs["items"][0]["id"].as_i64().unwrap();
    b.goto(&format!("{base}/runs/{id}")).await;
    b.click("#run-again").await;
    b.wait_text("h1", WAIT, |t| t.contains("Run export now")).await;
    assert_eq!(b.prop("#param-TICKET", "value").await.as_deref(), Some("OPS-42"));
    assert_eq!(b.prop("#param-REGION", "value").await.as_deref(), Some("us-east"));
    b.set_viewport(390, 844).await;
    let shot = b.screenshot("parameters-run-now-form-390").await;
    eprintln!("screenshot: {}", shot.display());

    b.close().await;
    if std::thread::panicking() {
        eprintln!("{}", std::fs::read_to_string(&log).unwrap_or_default());
    }
    drop(jtp);
}
