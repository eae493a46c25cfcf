//! The Stop button and `POST /api/v1/runs/{id}/stop` in standalone mode, in process: the button
//! shows on a run in flight only, the form needs its CSRF token, and a run that cannot be stopped
//! here answers 409 with why. (The real runner ending a run is `operator/tests/run_actions.rs`.)
#![allow(clippy::unwrap_used)]

mod common;

use axum::http::StatusCode;
use common::*;
use jtp_crds::{RunStatus, ScheduledJobSpec};

#[tokio::test]
async fn the_stop_button_shows_on_runs_in_flight_and_a_run_this_portal_cannot_stop_is_a_conflict() {
    let t = standalone().await;
    let job = add_job(&t.store, "default", "long", &ScheduledJobSpec::manual()).await;
    let running = add_run(&t.store, job, RunStatus::Running, None, "").await;
    let ended = add_run(&t.store, job, RunStatus::Failure, Some(1), "boom\n").await;

    let page = send(&t.state, get(&format!("/runs/{running}"))).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("id=\"stop-run\""), "{}", page.body);
    assert!(page.body.contains(&format!("action=\"/runs/{running}/stop\"")));
    let panel = send(&t.state, get(&format!("/jobs/default/long/runs/{running}"))).await;
    assert!(panel.body.contains("id=\"stop-run\"") && panel.body.contains("name=\"back\" value=\"panel\""));
    let page = send(&t.state, get(&format!("/runs/{ended}"))).await;
    assert!(!page.body.contains("id=\"stop-run\""), "no Stop on an ended run");

    // The form without its CSRF token is refused before anything else.
    let (cookie, csrf) = browser_session(&t.state).await;
    let reply = send(
        &t.state,
        post_form(&format!("/runs/{running}/stop"), &cookie, &[]),
    )
    .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.body);
    // An ended run: 409 saying so, as a page and in the API.
    let reply = send(
        &t.state,
        post_form(&format!("/runs/{ended}/stop"), &cookie, &[("csrf", &csrf)]),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CONFLICT, "{}", reply.body);
    assert!(
        reply.body.contains("has already ended (FAILURE)"),
        "{}",
        reply.body
    );
    let reply = send(
        &t.state,
        json_request("POST", &format!("/api/v1/runs/{ended}/stop"), None),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CONFLICT, "{}", reply.body);
    // RUNNING in the table, but no runner of this process has it (here: no runner at all).
    let reply = send(
        &t.state,
        json_request("POST", &format!("/api/v1/runs/{running}/stop"), None),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CONFLICT, "{}", reply.body);
    assert!(
        reply.json()["error"]
            .as_str()
            .unwrap()
            .contains("not in flight in this runner")
    );
    let run = send(&t.state, get(&format!("/api/v1/runs/{running}"))).await;
    assert_eq!(run.json()["status"], "RUNNING", "nothing was written");
    let reply = send(&t.state, json_request("POST", "/api/v1/runs/abc/stop", None)).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND, "{}", reply.body);
}
