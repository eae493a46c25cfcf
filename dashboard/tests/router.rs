//! Every route of the portal and its error paths, through `app(state)` with a real SQLite store.
#![allow(clippy::unwrap_used)]

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use chrono::{TimeZone, Utc};
use common::*;
use jtp_crds::{RunStatus, ScheduledJobSpec};
use jtp_dashboard::{LocalAuth, PortalConfig};
use serde_json::json;
use std::time::Duration;

const XSS: &str = "<script>alert(1)</script>";
/// How askama escapes it.
const XSS_ESCAPED: &str = "&#60;script&#62;alert(1)&#60;/script&#62;";

#[tokio::test]
async fn jobs_page_shows_next_run_in_the_jobs_zone_with_utc_on_hover() {
    let t = standalone().await;
    add_job(&t.store, "default", "nightly", &ScheduledJobSpec::daily("09:00")).await;
    add_job(
        &t.store,
        "default",
        "london",
        &ScheduledJobSpec::daily("09:00").in_zone("Europe/London"),
    )
    .await;
    let reply = send(&t.state, get("/")).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.header("content-type").starts_with("text/html"));
    let body = &reply.body;
    assert!(body.contains("nightly"), "{body}");
    assert!(body.contains(" 09:00 HKT</time>"), "{body}");
    assert!(body.contains(" 01:00:00 UTC\">"), "UTC in the title: {body}");
    assert!(body.contains("Every day at 09:00 (Asia/Hong_Kong)"));
    assert!(
        body.contains(" 09:00 GMT</time>") || body.contains(" 09:00 BST</time>"),
        "{body}"
    );
    assert!(body.contains("badge active"));
}

#[tokio::test]
async fn security_headers_are_on_every_response() {
    let t = standalone().await;
    for uri in ["/", "/api/v1/jobs", "/static/app.js", "/jobs/default/missing"] {
        let reply = send(&t.state, get(uri)).await;
        let csp = reply.header("content-security-policy");
        assert!(
            csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
            "{uri}: {csp}"
        );
        assert!(csp.contains("frame-ancestors 'none'"), "{uri}");
        assert_eq!(reply.header("x-content-type-options"), "nosniff", "{uri}");
        assert_eq!(reply.header("x-frame-options"), "DENY", "{uri}");
        assert_eq!(reply.header("referrer-policy"), "same-origin", "{uri}");
    }
    let js = send(&t.state, get("/static/app.js")).await;
    assert!(js.header("content-type").starts_with("text/javascript"));
    assert_eq!(
        js.body,
        include_str!("../static/app.js"),
        "the script is served as written"
    );
    assert_eq!(
        send(&t.state, get("/static/app.css")).await.status,
        StatusCode::OK
    );
    assert_eq!(send(&t.state, get("/healthz")).await.body, "ok");
}

#[tokio::test]
async fn session_cookie_is_httponly_and_strict() {
    let t = standalone().await;
    let reply = send(&t.state, get("/")).await;
    let cookie = reply.header("set-cookie");
    assert!(cookie.starts_with("jtp_session="), "{cookie}");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
}

#[tokio::test]
async fn creating_a_job_through_the_form_writes_the_row_and_wakes_the_runner() {
    let t = standalone().await;
    let (cookie, csrf) = browser_session(&t.state).await;
    let reply = send(
        &t.state,
        post_form("/jobs", &cookie, &daily_form(&csrf, "report", "09:00")),
    )
    .await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.body);
    assert_eq!(reply.header("location"), "/jobs/default/report");
    let cookie = reply.next_cookie(&cookie);
    let job = t.store.get_job_by_name("default", "report").await.unwrap();
    assert_eq!(job.spec, ScheduledJobSpec::daily("09:00").script("echo hello"));
    tokio::time::timeout(Duration::from_secs(1), t.wake.notified())
        .await
        .expect("runner woken");

    let page = send(&t.state, get_with_cookie("/jobs/default/report", &cookie)).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("Created job report."), "flash: {}", page.body);
    assert!(page.body.contains(" 09:00 HKT</time>"));
    assert!(page.body.contains("id=\"panel\""));
    // The flash is shown once.
    let cookie = page.next_cookie(&cookie);
    assert!(
        !cookie.contains("jtp_flash="),
        "the shown message is removed: {cookie}"
    );
    let again = send(&t.state, get_with_cookie("/", &cookie)).await;
    assert!(!again.body.contains("Created job report."));
}

#[tokio::test]
async fn every_schedule_form_is_accepted_by_the_form() {
    let t = standalone().await;
    let (cookie, csrf) = browser_session(&t.state).await;
    let cases: [(&str, &[(&str, &str)]); 7] = [
        (
            "interval",
            &[("interval_every", "15"), ("interval_unit", "minutes")],
        ),
        ("hourly", &[("hourly_minute", "30")]),
        ("daily", &[("daily_at", "14:00")]),
        (
            "weekly",
            &[
                ("weekly_on", "monday"),
                ("weekly_on", "friday"),
                ("weekly_at", "09:00"),
            ],
        ),
        ("monthly", &[("monthly_day", "31"), ("monthly_at", "09:00")]),
        ("cron", &[("cron", "*/5 * * * *")]),
        ("manual", &[]),
    ];
    for (kind, extra) in cases {
        let name = format!("job-{kind}");
        let mut fields = vec![
            ("csrf", csrf.as_str()),
            ("name", name.as_str()),
            ("schedule_type", kind),
            ("time_zone", "Asia/Hong_Kong"),
            ("script_kind", "inline"),
            ("script_inline", "echo hi"),
        ];
        fields.extend_from_slice(extra);
        let reply = send(&t.state, post_form("/jobs", &cookie, &fields)).await;
        assert_eq!(reply.status, StatusCode::SEE_OTHER, "{kind}: {}", reply.body);
        let job = t.store.get_job_by_name("default", &name).await.unwrap();
        assert_eq!(job.spec.schedule.kind(), kind);
    }
    let weekly = t.store.get_job_by_name("default", "job-weekly").await.unwrap();
    assert_eq!(weekly.spec.schedule.weekly.unwrap().days.len(), 2);
    let manual = send(&t.state, get("/jobs/default/job-manual")).await;
    assert!(manual.body.contains("manual only"), "{}", manual.body);
}

#[tokio::test]
async fn bad_form_input_is_422_with_errors_by_field_and_every_value_kept() {
    let t = standalone().await;
    let (cookie, csrf) = browser_session(&t.state).await;
    let mut fields = daily_form(&csrf, "Bad Name!", "25:00");
    fields.retain(|(k, _)| *k != "time_zone" && *k != "description");
    fields.push(("time_zone", "Asia/Hong Kong"));
    fields.push(("description", XSS));
    let reply = send(&t.state, post_form("/jobs", &cookie, &fields)).await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    let body = &reply.body;
    assert!(body.contains("id=\"error-daily_at\""), "{body}");
    assert!(body.contains("&#34;25:00&#34; is not a time"), "{body}");
    assert!(body.contains("id=\"error-name\""));
    assert!(
        body.contains("id=\"error-time_zone\"") && body.contains("did you mean Asia/Hong_Kong?"),
        "{body}"
    );
    // What the user typed is all there, escaped.
    assert!(body.contains("value=\"25:00\""));
    assert!(body.contains("value=\"Bad Name!\""));
    assert!(body.contains("value=\"Asia/Hong Kong\""));
    assert!(body.contains(XSS_ESCAPED), "{body}");
    assert!(!body.contains(XSS));
    assert!(body.contains(">echo hello</textarea>"));
    assert!(
        t.store
            .list_jobs(&jtp_store::JobFilter {
                limit: 10,
                ..Default::default()
            })
            .await
            .unwrap()
            .items
            .is_empty()
    );

    // A non-number interval is a field error too.
    let fields = vec![
        ("csrf", csrf.as_str()),
        ("name", "x"),
        ("schedule_type", "interval"),
        ("interval_every", "often"),
        ("interval_unit", "minutes"),
        ("time_zone", "UTC"),
        ("script_kind", "inline"),
        ("script_inline", "echo"),
    ];
    let reply = send(&t.state, post_form("/jobs", &cookie, &fields)).await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(reply.body.contains("id=\"error-interval_every\""));
    assert!(reply.body.contains("value=\"often\""));
}

#[tokio::test]
async fn a_duplicate_name_is_shown_next_to_the_name() {
    let t = standalone().await;
    add_job(&t.store, "default", "dup", &ScheduledJobSpec::daily("09:00")).await;
    let (cookie, csrf) = browser_session(&t.state).await;
    let reply = send(
        &t.state,
        post_form("/jobs", &cookie, &daily_form(&csrf, "dup", "10:00")),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CONFLICT);
    assert!(reply.body.contains("id=\"error-name\""), "{}", reply.body);
    assert!(reply.body.contains("already exists"));
}

#[tokio::test]
async fn csrf_missing_wrong_or_cross_site_is_403() {
    let t = standalone().await;
    let id = add_job(&t.store, "default", "guarded", &ScheduledJobSpec::manual()).await;
    let (cookie, csrf) = browser_session(&t.state).await;

    let missing = send(&t.state, post_form("/jobs/default/guarded/run", &cookie, &[])).await;
    assert_eq!(missing.status, StatusCode::FORBIDDEN);
    assert!(missing.body.contains("no CSRF token"), "{}", missing.body);
    assert!(
        missing.header("content-type").starts_with("text/html"),
        "browsers get a page"
    );
    assert!(missing.body.contains("Not allowed"));

    let wrong = send(
        &t.state,
        post_form("/jobs/default/guarded/run", &cookie, &[("csrf", "forged")]),
    )
    .await;
    assert_eq!(wrong.status, StatusCode::FORBIDDEN);
    assert!(wrong.body.contains("does not match"));

    let no_cookie = send(
        &t.state,
        post_form("/jobs/default/guarded/run", "", &[("csrf", &csrf)]),
    )
    .await;
    assert_eq!(no_cookie.status, StatusCode::FORBIDDEN);

    let mut cross = post_form("/jobs/default/guarded/run", &cookie, &[("csrf", &csrf)]);
    cross
        .headers_mut()
        .insert("sec-fetch-site", "cross-site".parse().unwrap());
    let reply = send(&t.state, cross).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert!(reply.body.contains("another site"));

    let mut other_origin = post_form("/jobs/default/guarded/run", &cookie, &[("csrf", &csrf)]);
    other_origin
        .headers_mut()
        .insert(header::ORIGIN, "http://evil.example".parse().unwrap());
    assert_eq!(send(&t.state, other_origin).await.status, StatusCode::FORBIDDEN);

    // The API refuses a browser's cross-site call too, and a cookie-authenticated one without the header.
    let mut api = json_request("POST", "/api/v1/jobs/default/guarded/run", None);
    api.headers_mut()
        .insert("sec-fetch-site", "cross-site".parse().unwrap());
    assert_eq!(send(&t.state, api).await.status, StatusCode::FORBIDDEN);
    let mut api = json_request("POST", "/api/v1/jobs/default/guarded/run", None);
    api.headers_mut().insert(header::COOKIE, cookie.parse().unwrap());
    let reply = send(&t.state, api).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert!(reply.json()["error"].as_str().unwrap().contains("x-csrf-token"));

    // Nothing was requested.
    assert!(t.store.get_job(id).await.unwrap().run_now_requested_at.is_none());

    // With the right token it works.
    let ok = send(
        &t.state,
        post_form("/jobs/default/guarded/run", &cookie, &[("csrf", &csrf)]),
    )
    .await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn an_open_portal_answers_only_to_loopback_host_names() {
    let t = standalone().await;
    let request = Request::get("/")
        .header(header::HOST, "attacker.example:8080")
        .body(Body::empty())
        .unwrap();
    let reply = send(&t.state, request).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    for host in ["localhost:8080", "127.0.0.1:9", "[::1]:8080"] {
        let request = Request::get("/")
            .header(header::HOST, host)
            .body(Body::empty())
            .unwrap();
        assert_eq!(send(&t.state, request).await.status, StatusCode::OK, "{host}");
    }
}

#[tokio::test]
async fn run_now_makes_the_job_due_wakes_the_runner_and_says_so() {
    let t = standalone().await;
    let id = add_job(&t.store, "default", "adhoc", &ScheduledJobSpec::manual()).await;
    let (cookie, csrf) = browser_session(&t.state).await;
    let reply = send(
        &t.state,
        post_form("/jobs/default/adhoc/run", &cookie, &[("csrf", &csrf)]),
    )
    .await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
    assert_eq!(reply.header("location"), "/jobs/default/adhoc");
    let cookie = reply.next_cookie(&cookie);
    let job = t.store.get_job(id).await.unwrap();
    assert!(job.run_now_requested_at.is_some());
    assert!(job.next_run.is_some());
    tokio::time::timeout(Duration::from_secs(1), t.wake.notified())
        .await
        .expect("runner woken");
    let page = send(&t.state, get_with_cookie("/jobs/default/adhoc", &cookie)).await;
    assert!(
        page.body.contains("Run Now requested for adhoc at"),
        "{}",
        page.body
    );
    assert!(page.body.contains("HKT."));
    assert!(page.body.contains("waiting to start"));
    // The run the runner claims for it names who asked: "local" on an open portal.
    let claim = jtp_store::SlotClaim {
        job_id: id,
        expected_next_run: job.next_run.unwrap(),
        new_next_run: None,
        runner: "test",
        now: Utc::now(),
        drop_retry: false,
        parameters: &Default::default(),
    };
    jtp_store::testing::claim_one(&t.store, claim)
        .await
        .unwrap()
        .expect("claimed");
    let runs = send(&t.state, get("/api/v1/jobs/default/adhoc/runs"))
        .await
        .json();
    assert_eq!(runs["items"][0]["requester"], "local");
    let panel = send(&t.state, get_with_cookie("/jobs/default/adhoc", &cookie)).await;
    assert!(
        panel.body.contains("<span class=\"requester\">by local</span>"),
        "{}",
        panel.body
    );

    let missing = send(
        &t.state,
        post_form("/jobs/default/nope/run", &cookie, &[("csrf", &csrf)]),
    )
    .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert!(missing.body.contains("no job &#34;nope&#34;"), "{}", missing.body);
}

#[tokio::test]
async fn unknown_jobs_and_runs_are_404_pages_and_json() {
    let t = standalone().await;
    for uri in [
        "/jobs/default/nope",
        "/jobs/default/nope/edit",
        "/jobs/default/nope/panel",
        "/runs/999",
        "/runs/999/output.txt",
    ] {
        let reply = send(&t.state, get(uri)).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{uri}");
        assert!(reply.header("content-type").starts_with("text/html"), "{uri}");
        assert!(reply.body.contains("Not found"), "{uri}: {}", reply.body);
    }
    for uri in [
        "/api/v1/jobs/default/nope",
        "/api/v1/jobs/default/nope/runs",
        "/api/v1/runs/999",
        "/api/v1/runs/999/output",
        "/api/v1/nothing",
    ] {
        let reply = send(&t.state, get(uri)).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{uri}");
        assert!(reply.json()["error"].is_string(), "{uri}");
    }
    let reply = send(
        &t.state,
        json_request("POST", "/api/v1/jobs/default/nope/run", None),
    )
    .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    let reply = send(
        &t.state,
        json_request("DELETE", "/api/v1/jobs/default/nope", None),
    )
    .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_panel_lists_runs_newest_first_and_shows_escaped_output() {
    let t = standalone().await;
    let job = add_job(&t.store, "default", "noisy", &ScheduledJobSpec::daily("09:00")).await;
    let old_at = Utc.with_ymd_and_hms(2026, 11, 1, 1, 0, 0).unwrap();
    let old = add_run_at(&t.store, job, old_at, RunStatus::Failure, Some(2), "boom").await;
    let new = add_run(
        &t.store,
        job,
        RunStatus::Success,
        Some(0),
        &format!("line 1\n    indented {XSS}\n"),
    )
    .await;
    let running = add_run(&t.store, job, RunStatus::Running, None, "").await;

    let page = send(&t.state, get("/jobs/default/noisy")).await;
    assert_eq!(page.status, StatusCode::OK);
    let body = &page.body;
    let (p_running, p_new, p_old) = (
        body.find(&format!("data-run=\"{running}\"")).unwrap(),
        body.find(&format!("data-run=\"{new}\"")).unwrap(),
        body.find(&format!("data-run=\"{old}\"")).unwrap(),
    );
    assert!(p_running < p_new && p_new < p_old, "newest first");
    assert!(body.contains("RUNNING…"));
    assert!(
        body.contains("2026-11-01 09:00:00 HKT"),
        "runs read to the second: {body}"
    );
    assert!(body.contains("1.5 s"), "{body}");
    assert!(body.contains("data-refresh=\"/jobs/default/noisy/panel\""));

    let page = send(&t.state, get(&format!("/jobs/default/noisy/runs/{new}"))).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("<pre class=\"log\" id=\"output-text\" tabindex=\"0\">line 1\n    indented &#60;script&#62;alert(1)&#60;/script&#62;\n</pre>"), "{}", page.body);
    assert!(!page.body.contains(XSS));
    assert!(page.body.contains(&format!("/runs/{new}/output.txt")));
    assert!(!page.body.contains("id=\"output-capped\""));

    let fragment = send(&t.state, get(&format!("/jobs/default/noisy/panel?run={new}"))).await;
    assert_eq!(fragment.status, StatusCode::OK);
    assert!(
        fragment
            .body
            .trim_start()
            .starts_with("<div class=\"panel-inner\"")
    );
    assert!(fragment.body.contains(XSS_ESCAPED));
    assert!(!fragment.body.contains("<html"));

    // A run of another job is not shown under this one.
    let other = add_job(&t.store, "default", "other", &ScheduledJobSpec::manual()).await;
    let foreign = add_run(&t.store, other, RunStatus::Success, Some(0), "x").await;
    let reply = send(&t.state, get(&format!("/jobs/default/noisy/runs/{foreign}"))).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);

    // The run's own page: its output, and a link to its job.
    let own = send(&t.state, get(&format!("/runs/{new}"))).await;
    assert_eq!(own.status, StatusCode::OK);
    assert!(own.body.contains(XSS_ESCAPED));
    assert!(
        own.body.contains("href=\"/jobs/default/noisy\" id=\"run-job\""),
        "{}",
        own.body
    );
}

#[tokio::test]
async fn output_downloads_as_plain_text_attachment() {
    let t = standalone().await;
    let job = add_job(&t.store, "default", "dl", &ScheduledJobSpec::manual()).await;
    let run = add_run(
        &t.store,
        job,
        RunStatus::Failure,
        Some(1),
        &format!("{XSS}\nünïcode\n"),
    )
    .await;
    let reply = send(&t.state, get(&format!("/runs/{run}/output.txt"))).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header("content-type"), "text/plain; charset=utf-8");
    assert_eq!(
        reply.header("content-disposition"),
        format!("attachment; filename=\"dl-run-{run}.txt\"")
    );
    assert_eq!(reply.header("x-content-type-options"), "nosniff");
    assert_eq!(reply.body, format!("{XSS}\nünïcode\n"));
}

#[tokio::test]
async fn capped_output_carries_a_notice() {
    let t = standalone_with(PortalConfig::default(), Some(64)).await;
    let job = add_job(&t.store, "default", "big", &ScheduledJobSpec::manual()).await;
    let output = format!("HEAD\n{}\nTAIL\n", "x".repeat(1000));
    let run = add_run(&t.store, job, RunStatus::Success, Some(0), &output).await;
    let page = send(&t.state, get(&format!("/jobs/default/big/runs/{run}"))).await;
    assert!(page.body.contains("id=\"output-capped\""), "{}", page.body);
    assert!(page.body.contains("The output was capped"));
    assert!(page.body.contains("HEAD") && page.body.contains("TAIL"));
    let api = send(&t.state, get(&format!("/api/v1/runs/{run}"))).await.json();
    assert!(api["outputTruncatedBytes"].as_i64().unwrap() > 900);
}

#[tokio::test]
async fn job_descriptions_are_escaped() {
    let t = standalone().await;
    let mut spec = ScheduledJobSpec::daily("09:00");
    spec.description = Some(XSS.to_owned());
    add_job(&t.store, "default", "desc", &spec).await;
    for uri in ["/", "/jobs/default/desc", "/jobs/default/desc/edit"] {
        let page = send(&t.state, get(uri)).await;
        assert_eq!(page.status, StatusCode::OK, "{uri}");
        assert!(page.body.contains(XSS_ESCAPED), "{uri}");
        assert!(!page.body.contains(XSS), "{uri}");
    }
}

#[tokio::test]
async fn editing_keeps_values_and_recomputes_the_next_run() {
    let t = standalone().await;
    add_job(&t.store, "default", "edit-me", &ScheduledJobSpec::daily("09:00")).await;
    let page = send(&t.state, get("/jobs/default/edit-me/edit")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("value=\"09:00\""));
    assert!(page.body.contains("readonly"));
    let (cookie, csrf) = browser_session(&t.state).await;

    let mut fields = daily_form(&csrf, "ignored", "xx:yy");
    let reply = send(
        &t.state,
        post_form("/jobs/default/edit-me/edit", &cookie, &fields),
    )
    .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(reply.body.contains("value=\"xx:yy\"") && reply.body.contains("id=\"error-daily_at\""));
    assert!(
        reply.body.contains("value=\"edit-me\""),
        "the name comes from the path"
    );

    fields.retain(|(k, _)| *k != "schedule_type");
    fields.push(("schedule_type", "hourly"));
    fields.push(("hourly_minute", "15"));
    fields.retain(|(k, v)| !(*k == "hourly_minute" && *v == "0"));
    let reply = send(
        &t.state,
        post_form("/jobs/default/edit-me/edit", &cookie, &fields),
    )
    .await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.body);
    let job = t.store.get_job_by_name("default", "edit-me").await.unwrap();
    assert_eq!(job.spec.schedule.hourly.unwrap().minute, 15);
    assert!(job.spec.schedule.daily.is_none());
    assert!(job.next_run.unwrap() - Utc::now() <= chrono::Duration::hours(1));
}

#[tokio::test]
async fn deleting_removes_the_job_from_the_list() {
    let t = standalone().await;
    add_job(&t.store, "default", "doomed", &ScheduledJobSpec::daily("09:00")).await;
    let (cookie, csrf) = browser_session(&t.state).await;
    let reply = send(
        &t.state,
        post_form("/jobs/default/doomed/delete", &cookie, &[("csrf", &csrf)]),
    )
    .await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
    let cookie = reply.next_cookie(&cookie);
    let page = send(&t.state, get_with_cookie("/", &cookie)).await;
    assert!(page.body.contains("Deleted job doomed"));
    assert!(!page.body.contains("data-job=\"default/doomed\""));
    assert_eq!(
        send(&t.state, get("/jobs/default/doomed")).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn the_list_filters_by_name_and_status_orders_by_next_run_and_pages() {
    let t = standalone().await;
    // Daily times one hour from now onwards, a minute apart: next-run order is
    // job-00, job-01, … whatever the time of day the test runs.
    let start = Utc::now() + chrono::Duration::hours(1);
    for i in 0..60 {
        let at = (start + chrono::Duration::minutes(i)).format("%H:%M").to_string();
        add_job(
            &t.store,
            "default",
            &format!("job-{i:02}"),
            &ScheduledJobSpec::daily(&at).in_zone("UTC"),
        )
        .await;
    }
    let failing = add_job(
        &t.store,
        "default",
        "the-failing-one",
        &ScheduledJobSpec::manual(),
    )
    .await;
    add_run(&t.store, failing, RunStatus::Failure, Some(1), "no").await;

    let page = send(&t.state, get("/?per_page=25")).await;
    assert!(page.body.contains("61 jobs · page 1 of 3"), "{}", page.body);
    assert!(page.body.contains("rel=\"next\""));
    // Ordered by next run: the rows' data-job attributes are in next-run order.
    let rows: Vec<&str> = page
        .body
        .match_indices("data-job=\"")
        .map(|(i, _)| &page.body[i + 10..i + 24])
        .collect();
    assert_eq!(rows.len(), 25);
    let page3 = send(&t.state, get("/?per_page=25&page=3")).await;
    assert!(
        page3.body.contains("the-failing-one"),
        "manual jobs (no next run) come last"
    );
    assert!(page3.body.contains("rel=\"prev\""));

    let filtered = send(&t.state, get("/?name=FAILING")).await;
    assert!(filtered.body.contains("1 job · page 1 of 1"), "{}", filtered.body);
    let by_status = send(&t.state, get("/?status=FAILURE")).await;
    assert!(by_status.body.contains("the-failing-one") && by_status.body.contains("1 job "));
    assert!(by_status.body.contains("badge FAILURE"));
    let bad = send(&t.state, get("/?status=weird")).await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);

    let api = send(&t.state, get("/api/v1/jobs?per_page=10&page=2"))
        .await
        .json();
    assert_eq!(api["total"], 61);
    assert_eq!(api["items"].as_array().unwrap().len(), 10);
    assert_eq!(api["items"][0]["name"], "job-10");
    let api = send(&t.state, get("/api/v1/jobs?status=weird")).await;
    assert_eq!(api.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(api.json()["errors"][0]["field"], "status");
}

#[tokio::test]
async fn the_list_filters_active_and_suspended_jobs() {
    let t = standalone().await;
    for name in ["report-a", "report-b", "cleanup"] {
        add_job(&t.store, "default", name, &ScheduledJobSpec::daily("09:00")).await;
    }
    let mut paused = ScheduledJobSpec::daily("10:00");
    paused.suspend = true;
    add_job(&t.store, "default", "report-paused", &paused).await;

    let suspended = send(&t.state, get("/?state=suspended")).await;
    assert_eq!(suspended.status, StatusCode::OK);
    assert!(
        suspended.body.contains("1 job · page 1 of 1"),
        "{}",
        suspended.body
    );
    assert!(suspended.body.contains("report-paused") && suspended.body.contains("badge suspended"));
    assert!(!suspended.body.contains("badge active"));
    assert!(
        suspended.body.contains("<option value=\"suspended\" selected>"),
        "the form keeps the filter: {}",
        suspended.body
    );
    assert!(
        suspended
            .body
            .contains("/jobs/default/report-paused?state=suspended"),
        "links keep the filter"
    );

    let active = send(&t.state, get("/?state=active")).await;
    assert!(active.body.contains("3 jobs · page 1 of 1"), "{}", active.body);
    assert!(!active.body.contains("report-paused"));
    let active_reports = send(&t.state, get("/?state=active&name=report")).await;
    assert!(active_reports.body.contains("2 jobs "), "{}", active_reports.body);
    let none = send(&t.state, get("/?state=suspended&name=cleanup")).await;
    assert!(none.body.contains("No jobs match these filters"), "{}", none.body);
    let any = send(&t.state, get("/?state=")).await;
    assert!(any.body.contains("4 jobs "), "{}", any.body);

    let bad = send(&t.state, get("/?state=paused")).await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad.body.contains("is not a state filter"), "{}", bad.body);

    let api = send(&t.state, get("/api/v1/jobs?state=suspended")).await.json();
    assert_eq!(api["total"], 1);
    assert_eq!(api["items"][0]["name"], "report-paused");
    assert_eq!(api["items"][0]["active"], false);
    let api = send(&t.state, get("/api/v1/jobs?state=active")).await.json();
    assert_eq!(api["total"], 3);
    assert!(
        api["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|j| j["active"] == true)
    );
    let api = send(&t.state, get("/api/v1/jobs?state=paused")).await;
    assert_eq!(api.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(api.json()["errors"][0]["field"], "state");
}

#[tokio::test]
async fn the_json_api_does_what_the_pages_do() {
    let t = standalone().await;
    // Create.
    let spec = json!({ "schedule": { "daily": { "at": "09:00" } }, "script": { "inline": "echo api" } });
    let reply = send(
        &t.state,
        json_request(
            "POST",
            "/api/v1/jobs",
            Some(json!({ "name": "api-job", "spec": spec })),
        ),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    assert_eq!(reply.header("location"), "/api/v1/jobs/default/api-job");
    assert_eq!(reply.json()["spec"]["timeZone"], "Asia/Hong_Kong");
    // Duplicate.
    let reply = send(
        &t.state,
        json_request(
            "POST",
            "/api/v1/jobs",
            Some(json!({ "name": "api-job", "spec": spec })),
        ),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CONFLICT);
    // Invalid: every problem, by field.
    let bad = json!({ "schedule": { "daily": { "at": "9am" } }, "timeZone": "Nowhere/City", "script": { "inline": "echo" } });
    let reply = send(
        &t.state,
        json_request(
            "POST",
            "/api/v1/jobs",
            Some(json!({ "name": "Bad", "spec": bad })),
        ),
    )
    .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    let fields: Vec<String> = reply.json()["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        fields.contains(&"spec.schedule.daily.at".to_owned()),
        "{fields:?}"
    );
    assert!(fields.contains(&"spec.timeZone".to_owned()), "{fields:?}");
    assert!(fields.contains(&"metadata.name".to_owned()), "{fields:?}");
    // Not JSON, or not a spec.
    let reply = send(
        &t.state,
        json_request(
            "POST",
            "/api/v1/jobs",
            Some(json!({ "name": "x", "spec": { "schedule": 3 } })),
        ),
    )
    .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(reply.json()["errors"][0]["message"].is_string());
    let reply = send(
        &t.state,
        json_request(
            "POST",
            "/api/v1/jobs",
            Some(json!({ "name": "x", "namespace": "ops", "spec": spec })),
        ),
    )
    .await;
    assert_eq!(
        reply.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "standalone has one namespace"
    );

    // Read.
    let job = send(&t.state, get("/api/v1/jobs/default/api-job")).await.json();
    assert_eq!(job["name"], "api-job");
    assert_eq!(job["schedule"], "Every day at 09:00 (Asia/Hong_Kong)");
    assert!(job["nextRun"]["local"].as_str().unwrap().ends_with("09:00 HKT"));
    assert!(job["nextRun"]["utc"].as_str().unwrap().ends_with("01:00:00 UTC"));
    assert_eq!(job["active"], true);

    // Update.
    let hourly = json!({ "spec": { "schedule": { "hourly": { "minute": 5 } }, "script": { "inline": "echo api" }, "suspend": true } });
    let reply = send(
        &t.state,
        json_request("PUT", "/api/v1/jobs/default/api-job", Some(hourly)),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let job = send(&t.state, get("/api/v1/jobs/default/api-job")).await.json();
    assert_eq!(job["active"], false);
    assert!(job["nextRun"].is_null());
    let reply = send(
        &t.state,
        json_request(
            "PUT",
            "/api/v1/jobs/default/api-job",
            Some(json!({ "spec": { "schedule": {}, "script": { "inline": "x" } } })),
        ),
    )
    .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(reply.json()["errors"][0]["field"], "spec.schedule");

    // Run Now, runs, one run, its output.
    let reply = send(
        &t.state,
        json_request("POST", "/api/v1/jobs/default/api-job/run", None),
    )
    .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED);
    assert!(reply.json()["requestedAt"].as_str().unwrap().ends_with('Z'));
    let id = t.store.get_job_by_name("default", "api-job").await.unwrap().id;
    let run = add_run(&t.store, id, RunStatus::Success, Some(0), "hello from api\n").await;
    let runs = send(&t.state, get("/api/v1/jobs/default/api-job/runs"))
        .await
        .json();
    assert_eq!(runs["items"][0]["id"], run);
    assert_eq!(runs["items"][0]["status"], "SUCCESS");
    assert_eq!(runs["items"][0]["trigger"], "manual");
    let detail = send(&t.state, get(&format!("/api/v1/runs/{run}"))).await.json();
    assert_eq!(detail["output"], "hello from api\n");
    assert_eq!(detail["job"], "api-job");
    assert_eq!(detail["exitCode"], 0);
    let output = send(&t.state, get(&format!("/api/v1/runs/{run}/output"))).await;
    assert_eq!(output.header("content-type"), "text/plain; charset=utf-8");
    assert_eq!(output.body, "hello from api\n");

    // Delete.
    let reply = send(
        &t.state,
        json_request("DELETE", "/api/v1/jobs/default/api-job", None),
    )
    .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    assert_eq!(
        send(&t.state, get("/api/v1/jobs/default/api-job")).await.status,
        StatusCode::NOT_FOUND
    );
    // The run stays.
    assert_eq!(
        send(&t.state, get(&format!("/api/v1/runs/{run}"))).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn the_openapi_document_is_served() {
    let t = standalone().await;
    let doc = send(&t.state, get("/api/v1/openapi.json")).await.json();
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["paths"]["/jobs/{namespace}/{name}/run"]["post"].is_object());
    assert!(doc["components"]["schemas"]["ScheduledJobSpec"].is_object());
    let list_parameters = doc["paths"]["/jobs"]["get"]["parameters"].as_array().unwrap();
    let state = list_parameters
        .iter()
        .find(|p| p["name"] == "state")
        .expect("the state filter is documented");
    assert_eq!(state["schema"]["enum"], json!(["", "active", "suspended"]));
}

/// `request` as if it came from `ip` (the server puts the peer's address in every request).
fn from_ip(mut request: Request<Body>, ip: &str) -> Request<Body> {
    let addr: std::net::SocketAddr = format!("{ip}:40000").parse().unwrap();
    request.extensions_mut().insert(axum::extract::ConnectInfo(addr));
    request
}

#[tokio::test]
async fn failed_authentications_are_limited_per_client_with_a_clear_429() {
    let config = PortalConfig {
        local_auth: LocalAuth::Token("s3cret-token".into()),
        ..PortalConfig::default()
    };
    let t = standalone_with(config, None).await;
    let with_token = |token: &str, ip: &str| {
        let mut request = get("/api/v1/jobs");
        request
            .headers_mut()
            .insert(header::AUTHORIZATION, format!("Bearer {token}").parse().unwrap());
        from_ip(request, ip)
    };
    for i in 0..10 {
        let reply = send(&t.state, with_token(&format!("guess-{i}"), "10.1.1.1")).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "guess {i}");
    }
    // The 11th try within the minute is refused before it is checked, even with the right token.
    for token in ["guess-10", "s3cret-token"] {
        let reply = send(&t.state, with_token(token, "10.1.1.1")).await;
        assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS, "{}", reply.body);
        let retry: u64 = reply.header("retry-after").parse().unwrap();
        assert!((1..=60).contains(&retry), "Retry-After: {retry}");
        assert!(
            reply.json()["error"]
                .as_str()
                .unwrap()
                .contains("too many failed logins"),
            "{}",
            reply.body
        );
    }
    // The login form says so too; another client is not affected.
    let login = send(
        &t.state,
        from_ip(post_form("/login", "", &[("token", "s3cret-token")]), "10.1.1.1"),
    )
    .await;
    assert_eq!(login.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(login.body.contains("too many failed logins"), "{}", login.body);
    let other = send(&t.state, with_token("s3cret-token", "10.1.1.2")).await;
    assert_eq!(other.status, StatusCode::OK, "{}", other.body);
}

#[tokio::test]
async fn failed_basic_logins_are_limited_too() {
    let config = PortalConfig {
        local_auth: LocalAuth::Basic {
            user: "admin".into(),
            password: "pw".into(),
        },
        ..PortalConfig::default()
    };
    let t = standalone_with(config, None).await;
    let basic = |password: &str| {
        let mut request = get("/api/v1/jobs");
        let value = base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            format!("admin:{password}"),
        );
        request
            .headers_mut()
            .insert(header::AUTHORIZATION, format!("Basic {value}").parse().unwrap());
        from_ip(request, "10.2.2.2")
    };
    for i in 0..10 {
        assert_eq!(
            send(&t.state, basic(&format!("no-{i}"))).await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        send(&t.state, basic("pw")).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test]
async fn a_token_protected_portal_needs_the_token() {
    let config = PortalConfig {
        local_auth: LocalAuth::Token("s3cret-token".into()),
        ..PortalConfig::default()
    };
    let t = standalone_with(config, None).await;
    add_job(&t.store, "default", "secret-job", &ScheduledJobSpec::manual()).await;

    let reply = send(&t.state, get("/api/v1/jobs")).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert!(reply.header("www-authenticate").starts_with("Bearer"));
    assert!(reply.json()["error"].as_str().unwrap().contains("bearer token"));
    let mut wrong = get("/api/v1/jobs");
    wrong
        .headers_mut()
        .insert(header::AUTHORIZATION, "Bearer nope".parse().unwrap());
    assert_eq!(send(&t.state, wrong).await.status, StatusCode::UNAUTHORIZED);
    let mut right = get("/api/v1/jobs");
    right
        .headers_mut()
        .insert(header::AUTHORIZATION, "Bearer s3cret-token".parse().unwrap());
    let reply = send(&t.state, right).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json()["total"], 1);
    // A bearer API call needs no CSRF token.
    let mut run = json_request("POST", "/api/v1/jobs/default/secret-job/run", None);
    run.headers_mut()
        .insert(header::AUTHORIZATION, "Bearer s3cret-token".parse().unwrap());
    assert_eq!(send(&t.state, run).await.status, StatusCode::ACCEPTED);

    // Browsers are sent to the login page, and the login page takes the token.
    let page = send(&t.state, get("/")).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(page.header("location"), "/login");
    let login = send(&t.state, get("/login")).await;
    assert_eq!(login.status, StatusCode::OK);
    assert!(login.body.contains("Access token"));
    let refused = send(&t.state, post_form("/login", "", &[("token", "wrong")])).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert!(refused.body.contains("not accepted"));
    let accepted = send(&t.state, post_form("/login", "", &[("token", "s3cret-token")])).await;
    assert_eq!(accepted.status, StatusCode::SEE_OTHER);
    let cookie = accepted.session_cookie().unwrap();
    let page = send(&t.state, get_with_cookie("/", &cookie)).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("secret-job"));
    assert!(
        !page.body.contains("s3cret-token"),
        "the token never reaches the page"
    );
    // Cookie-authenticated API calls that change things need the CSRF header.
    let mut run = json_request("POST", "/api/v1/jobs/default/secret-job/run", None);
    run.headers_mut().insert(header::COOKIE, cookie.parse().unwrap());
    assert_eq!(send(&t.state, run).await.status, StatusCode::FORBIDDEN);
    let csrf = csrf_of(&page.body);
    let mut run = json_request("POST", "/api/v1/jobs/default/secret-job/run", None);
    run.headers_mut().insert(header::COOKIE, cookie.parse().unwrap());
    run.headers_mut().insert("x-csrf-token", csrf.parse().unwrap());
    assert_eq!(send(&t.state, run).await.status, StatusCode::ACCEPTED);
    // Logging out removes the session cookie from the browser.
    let out = send(&t.state, post_form("/logout", &cookie, &[("csrf", &csrf)])).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    let cookie = out.next_cookie(&cookie);
    assert!(!cookie.contains("jtp_session="), "{cookie}");
    let page = send(&t.state, get_with_cookie("/", &cookie)).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn a_basic_auth_portal_asks_the_browser() {
    let config = PortalConfig {
        local_auth: LocalAuth::Basic {
            user: "admin".into(),
            password: "pw".into(),
        },
        ..PortalConfig::default()
    };
    let t = standalone_with(config, None).await;
    let reply = send(&t.state, get("/")).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert!(reply.header("www-authenticate").starts_with("Basic"));
    use base64::Engine;
    let good = base64::engine::general_purpose::STANDARD.encode("admin:pw");
    let mut request = get("/");
    request
        .headers_mut()
        .insert(header::AUTHORIZATION, format!("Basic {good}").parse().unwrap());
    let reply = send(&t.state, request).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.body.contains(">admin<"));
    let bad = base64::engine::general_purpose::STANDARD.encode("admin:nope");
    let mut request = get("/api/v1/jobs");
    request
        .headers_mut()
        .insert(header::AUTHORIZATION, format!("Basic {bad}").parse().unwrap());
    assert_eq!(send(&t.state, request).await.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_listen_policy_keeps_an_open_portal_on_loopback() {
    use jtp_dashboard::check_listen_policy;
    let open = PortalConfig::default();
    assert!(check_listen_policy("127.0.0.1:8080".parse().unwrap(), &open).is_ok());
    let err = check_listen_policy("0.0.0.0:8080".parse().unwrap(), &open).unwrap_err();
    assert!(err.contains("refusing to listen on 0.0.0.0:8080"), "{err}");
    let guarded = PortalConfig {
        allow_non_loopback: true,
        local_auth: LocalAuth::Basic {
            user: "a".into(),
            password: "b".into(),
        },
        ..PortalConfig::default()
    };
    assert!(check_listen_policy("0.0.0.0:8080".parse().unwrap(), &guarded).is_ok());
}

#[tokio::test]
async fn serve_shuts_down_gracefully() {
    let t = standalone().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(jtp_dashboard::serve(listener, t.state.clone(), async move {
        let _ = stopped.await;
    }));
    let body = reqwest::get(format!("http://{addr}/healthz"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(body, "ok");
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn the_next_run_says_what_a_dst_change_does_to_it() {
    let t = standalone().await;
    // An hourly job in New York whose next run is the second pass of 01:30 on 2026-11-01.
    let spec = ScheduledJobSpec::hourly(30).in_zone("America/New_York");
    let next_run = "2026-11-01T06:30:00Z".parse().ok();
    let input = jtp_store::JobInput {
        name: "sync",
        namespace: "default",
        uid: None,
        spec: &spec,
        next_run,
    };
    t.store.create_job(&input).await.expect("create");
    let job = send(&t.state, get("/api/v1/jobs/default/sync")).await.json();
    assert_eq!(job["nextRunDst"], "second pass of the repeated 01:30");
    assert_eq!(
        job["schedule"],
        "Every hour at minute 30 (America/New_York; DST: a repeated time runs at both occurrences; \
         a skipped time does not run (defaults))"
    );
    let page = send(&t.state, get("/")).await.body;
    assert!(
        page.contains("<span class=\"dst-note\">(second pass of the repeated 01:30)</span>"),
        "{page}"
    );
    // An ordinary next run has no note.
    add_job(&t.store, "default", "nightly", &ScheduledJobSpec::daily("09:00")).await;
    let job = send(&t.state, get("/api/v1/jobs/default/nightly")).await.json();
    assert!(job["nextRunDst"].is_null(), "{job}");
}

#[tokio::test]
async fn the_json_api_refuses_what_the_crd_refuses_with_the_field_and_a_hint() {
    let t = standalone().await;
    let post = |body: serde_json::Value| json_request("POST", "/api/v1/jobs", Some(body));
    let spec = json!({
        "schedule": { "daily": { "at": "09:00" } },
        "timezone": "Europe/London",
        "script": { "inline": "echo hi" }
    });
    let reply = send(&t.state, post(json!({ "name": "typo", "spec": spec }))).await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", reply.body);
    assert_eq!(reply.json()["errors"][0]["field"], "spec.timezone");
    assert_eq!(
        reply.json()["errors"][0]["message"],
        "unknown field, did you mean timeZone?"
    );
    let good = json!({ "schedule": { "daily": { "at": "09:00" } }, "script": { "inline": "echo hi" } });
    let reply = send(&t.state, post(json!({ "name": "x", "nmae": "y", "spec": good }))).await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", reply.body);
    assert_eq!(reply.json()["errors"][0]["field"], "nmae");
    for name in ["a..b", "a/b", "-a"] {
        let reply = send(&t.state, post(json!({ "name": name, "spec": good }))).await;
        assert_eq!(
            reply.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{name}: {}",
            reply.body
        );
        assert_eq!(reply.json()["errors"][0]["field"], "metadata.name", "{name}");
    }
    let mut long = good.clone();
    long["description"] = json!("x".repeat(1025));
    let reply = send(&t.state, post(json!({ "name": "long", "spec": long }))).await;
    assert_eq!(
        reply.json()["errors"][0]["field"],
        "spec.description",
        "{}",
        reply.body
    );
    let mut huge = good.clone();
    huge["script"]["inline"] = json!("x".repeat(200 * 1024));
    let reply = send(&t.state, post(json!({ "name": "huge", "spec": huge }))).await;
    assert_eq!(
        reply.json()["errors"][0]["field"],
        "spec.script.inline",
        "{}",
        reply.body
    );
    let listed = send(&t.state, get("/api/v1/jobs")).await.json();
    assert_eq!(listed["total"], 0, "nothing refused was stored: {listed}");
}

#[tokio::test]
async fn the_json_api_reads_only_json_bodies() {
    let t = standalone().await;
    let body = json!({ "name": "plain", "spec": { "schedule": { "daily": { "at": "09:00" } }, "script": { "inline": "echo" } } });
    for content_type in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        None,
    ] {
        let mut request = Request::post("/api/v1/jobs").header(header::HOST, "127.0.0.1:8080");
        if let Some(content_type) = content_type {
            request = request.header(header::CONTENT_TYPE, content_type);
        }
        let reply = send(&t.state, request.body(Body::from(body.to_string())).unwrap()).await;
        assert_eq!(
            reply.status,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "{content_type:?}: {}",
            reply.body
        );
        assert!(
            reply.json()["error"]
                .as_str()
                .unwrap()
                .contains("application/json")
        );
    }
    let request = Request::post("/api/v1/jobs")
        .header(header::HOST, "127.0.0.1:8080")
        .header(header::CONTENT_TYPE, "application/json; charset=utf-8")
        .body(Body::from(body.to_string()))
        .unwrap();
    assert_eq!(send(&t.state, request).await.status, StatusCode::CREATED);
}

#[tokio::test]
async fn bad_and_too_large_page_numbers_get_clear_answers() {
    let t = standalone().await;
    add_job(&t.store, "default", "one", &ScheduledJobSpec::daily("09:00")).await;
    let page = send(&t.state, get("/?page=abc")).await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.header("content-type").starts_with("text/html"));
    assert!(
        page.body
            .contains("page: &#34;abc&#34; is not a page: use a whole number from 1 on"),
        "{}",
        page.body
    );
    let api = send(&t.state, get("/api/v1/jobs?page=abc&per_page=0")).await;
    assert_eq!(api.status, StatusCode::UNPROCESSABLE_ENTITY);
    let errors = api.json()["errors"].clone();
    let fields: Vec<&str> = errors
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["page", "per_page"], "every problem at once: {errors}");
    // Past the last page: the HTML list goes to the last page; the API answers an empty page.
    let past = send(&t.state, get("/?page=99&name=on")).await;
    assert_eq!(past.status, StatusCode::SEE_OTHER);
    assert_eq!(past.header("location"), "/?name=on");
    let api = send(&t.state, get("/api/v1/jobs?page=99")).await;
    assert_eq!(api.status, StatusCode::OK);
    let body = api.json();
    assert_eq!(
        (body["items"].as_array().unwrap().len(), body["pages"].as_i64()),
        (0, Some(1))
    );
}

#[tokio::test]
async fn the_api_answers_json_for_bad_ids_and_methods() {
    let t = standalone().await;
    for uri in ["/api/v1/runs/abc", "/api/v1/runs/abc/output", "/api/v1/runs/-3"] {
        let reply = send(&t.state, get(uri)).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{uri}");
        assert!(
            reply.header("content-type").starts_with("application/json"),
            "{uri}"
        );
        assert!(
            reply.json()["error"]
                .as_str()
                .unwrap()
                .contains("runs are numbered"),
            "{uri}"
        );
    }
    let html = send(&t.state, get("/runs/abc")).await;
    assert_eq!(html.status, StatusCode::NOT_FOUND);
    assert!(html.header("content-type").starts_with("text/html"));
    let reply = send(&t.state, json_request("PATCH", "/api/v1/openapi.json", None)).await;
    assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(reply.json()["kind"], "method_not_allowed");
}

#[tokio::test]
async fn runs_of_a_deleted_job_stay_openable_and_listed() {
    let t = standalone().await;
    let job = add_job(&t.store, "default", "gone", &ScheduledJobSpec::daily("09:00")).await;
    let run = add_run(&t.store, job, RunStatus::Failure, Some(3), "last words\n").await;
    t.store.delete_job(job).await.unwrap();
    let page = send(&t.state, get(&format!("/runs/{run}"))).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("id=\"job-deleted\""));
    assert!(page.body.contains("last words"));
    let list = send(&t.state, get("/runs")).await;
    assert_eq!(list.status, StatusCode::OK);
    assert!(
        list.body.contains(&format!("href=\"/runs/{run}\"")),
        "{}",
        list.body
    );
    assert!(list.body.contains("badge deleted"));
    let api = send(&t.state, get(&format!("/api/v1/runs/{run}"))).await.json();
    assert_eq!(api["jobDeleted"], true);
    let all = send(&t.state, get("/api/v1/runs?job=gone")).await.json();
    assert_eq!(all["items"][0]["id"].as_i64(), Some(run));
    assert_eq!(all["items"][0]["jobDeleted"], true);
}

#[tokio::test]
async fn the_runs_view_filters_and_pages_by_cursor() {
    let t = standalone().await;
    let a = add_job(&t.store, "default", "alpha", &ScheduledJobSpec::daily("09:00")).await;
    let b = add_job(&t.store, "default", "beta", &ScheduledJobSpec::daily("09:00")).await;
    let base = Utc.with_ymd_and_hms(2026, 11, 30, 1, 0, 0).unwrap();
    let mut ids = Vec::new();
    for i in 0..5i64 {
        let status = if i % 2 == 0 {
            RunStatus::Success
        } else {
            RunStatus::Failure
        };
        let job = if i < 3 { a } else { b };
        let at = base + chrono::Duration::seconds(i * 10);
        ids.push(add_run_at(&t.store, job, at, status, Some(0), "x").await);
    }
    // Two per page, newest first; the older cursor leads on, the newer one back.
    let first = send(&t.state, get("/api/v1/runs?limit=2")).await.json();
    let page_ids = |v: &serde_json::Value| -> Vec<i64> {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_i64().unwrap())
            .collect()
    };
    assert_eq!(page_ids(&first), [ids[4], ids[3]]);
    assert_eq!(first["items"][0]["job"], "beta");
    assert_eq!(first["newerCursor"], serde_json::Value::Null);
    let cursor = first["olderCursor"].as_str().unwrap().to_owned();
    let second = send(&t.state, get(&format!("/api/v1/runs?limit=2&before={cursor}")))
        .await
        .json();
    assert_eq!(page_ids(&second), [ids[2], ids[1]]);
    let back = second["newerCursor"].as_str().unwrap().to_owned();
    let again = send(&t.state, get(&format!("/api/v1/runs?limit=2&after={back}")))
        .await
        .json();
    assert_eq!(page_ids(&again), [ids[4], ids[3]]);
    // Filters: status, job, time range in the job's zone (01:00 UTC is 09:00 HKT).
    let failed = send(&t.state, get("/api/v1/runs?status=failure")).await.json();
    assert_eq!(page_ids(&failed), [ids[3], ids[1]]);
    let of_alpha = send(&t.state, get("/api/v1/runs?job=alpha&since=2026-11-30T09:00:10"))
        .await
        .json();
    assert_eq!(page_ids(&of_alpha), [ids[2], ids[1]]);
    let bad = send(&t.state, get("/api/v1/runs?status=done&since=yesterday&before=x")).await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    let fields: Vec<String> = bad.json()["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(fields, ["status", "since", "before"]);
    // The page: the same filters, and Older/Newer links that carry them.
    let html = send(&t.state, get("/runs?limit=2&status=FAILURE")).await;
    assert_eq!(html.status, StatusCode::OK);
    assert!(html.body.contains(&format!("data-run=\"{}\"", ids[3])));
    assert!(!html.body.contains(&format!("data-run=\"{}\"", ids[4])));
    assert!(
        !html.body.contains("id=\"runs-older\""),
        "two failures fit on one page"
    );
    let html = send(&t.state, get("/runs?limit=2")).await;
    assert!(
        html.body.contains("href=\"/runs?limit=2&#38;before="),
        "{}",
        html.body
    );
    // A job's own list pages the same way.
    let job_runs = send(&t.state, get("/api/v1/jobs/default/alpha/runs?limit=2"))
        .await
        .json();
    assert_eq!(page_ids(&job_runs), [ids[2], ids[1]]);
    assert!(job_runs["olderCursor"].is_string());
}

#[tokio::test]
async fn the_panel_pages_its_runs() {
    let t = PortalConfig {
        runs_in_panel: 2,
        ..PortalConfig::default()
    };
    let t = standalone_with(t, None).await;
    let job = add_job(&t.store, "default", "many", &ScheduledJobSpec::daily("09:00")).await;
    let base = Utc.with_ymd_and_hms(2026, 11, 30, 1, 0, 0).unwrap();
    let mut ids = Vec::new();
    for i in 0..3i64 {
        let at = base + chrono::Duration::seconds(i);
        ids.push(add_run_at(&t.store, job, at, RunStatus::Success, Some(0), "").await);
    }
    let page = send(&t.state, get("/jobs/default/many")).await;
    assert!(!page.body.contains(&format!("data-run=\"{}\"", ids[0])));
    let marker = "id=\"runs-older\"";
    assert!(page.body.contains(marker), "{}", page.body);
    let href_start = page.body.find("href=\"/jobs/default/many?before=").unwrap() + 6;
    let href_end = page.body[href_start..].find('"').unwrap() + href_start;
    let older = page.body[href_start..href_end].replace("&#38;", "&");
    let page = send(&t.state, get(&older)).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains(&format!("data-run=\"{}\"", ids[0])));
    assert!(page.body.contains("id=\"runs-newer\""));
    assert!(
        page.body
            .contains("data-refresh=\"/jobs/default/many/panel?before="),
        "a later page stays put"
    );
}

#[tokio::test]
async fn times_read_to_the_second_with_relative_times_and_the_phase_of_intervals() {
    let t = standalone().await;
    add_job(
        &t.store,
        "default",
        "heartbeat",
        &ScheduledJobSpec::interval(15, jtp_crds::IntervalUnit::Minutes),
    )
    .await;
    let page = send(&t.state, get("/")).await;
    // default/heartbeat's phase puts its runs at :10:14.529, :25:14.529, :40:14.529 and :55:14.529.
    assert!(
        page.body
            .contains("runs at :10:14.529, :25:14.529, :40:14.529, :55:14.529 past each hour"),
        "{}",
        page.body
    );
    let next = page.body.split("class=\"next-run\"").nth(1).unwrap();
    let shown = next.split("</time>").next().unwrap();
    assert!(shown.ends_with(":14 HKT"), "the seconds of the slot: {shown}");
    assert!(next.contains("<span class=\"rel\">in "), "{next}");
    // The display-zone cookie shows every time in UTC instead.
    let utc = send(&t.state, get_with_cookie("/", "jtp_zone=UTC")).await;
    let next = utc.body.split("class=\"next-run\"").nth(1).unwrap();
    assert!(
        next.split("</time>").next().unwrap().ends_with(":14 UTC"),
        "{next}"
    );
    assert!(utc.body.contains("<option value=\"UTC\" selected>"));
}

#[tokio::test]
async fn the_jobs_rows_refresh_from_a_fragment() {
    let t = standalone().await;
    let job = add_job(&t.store, "default", "fresh", &ScheduledJobSpec::daily("09:00")).await;
    let page = send(&t.state, get("/jobs/default/fresh")).await;
    assert!(
        page.body
            .contains("data-refresh=\"/fragments/jobs?selected=default%2Ffresh\""),
        "{}",
        page.body
    );
    let before = send(&t.state, get("/fragments/jobs?selected=default%2Ffresh")).await;
    assert!(before.body.contains("never"));
    add_run(&t.store, job, RunStatus::Success, Some(0), "").await;
    let after = send(&t.state, get("/fragments/jobs?selected=default%2Ffresh")).await;
    assert_eq!(after.status, StatusCode::OK);
    assert!(!after.body.contains("<html"));
    assert!(after.body.contains("job-row selected"));
    assert!(after.body.contains("badge SUCCESS"), "{}", after.body);
    assert!(
        after.body.contains("1 of 1 recent runs succeeded"),
        "the health column: {}",
        after.body
    );
    assert!(after.body.contains("<svg class=\"spark\""));
    // The health column's runs are kept between refreshes while the job row is unchanged, but a run
    // that starts (which leaves the row as it is) shows at the next refresh, and so does its end.
    let running = add_run(&t.store, job, RunStatus::Running, None, "").await;
    let started = send(&t.state, get("/fragments/jobs?selected=default%2Ffresh")).await;
    assert!(started.body.contains("class=\"bar RUNNING\""), "{}", started.body);
    t.store
        .record_attempt_finish(
            running,
            &jtp_store::RunFinish {
                status: RunStatus::Failure,
                exit_code: Some(1),
                output: b"",
                finished_at: chrono::Utc::now(),
            },
            jtp_store::FinishEffects::default(),
        )
        .await
        .unwrap();
    let ended = send(&t.state, get("/fragments/jobs?selected=default%2Ffresh")).await;
    assert!(!ended.body.contains("class=\"bar RUNNING\""), "{}", ended.body);
    assert!(
        ended.body.contains("1 of 2 recent runs succeeded"),
        "{}",
        ended.body
    );
}

#[tokio::test]
async fn colour_codes_in_output_become_classes_and_nothing_raw() {
    let t = standalone().await;
    let job = add_job(&t.store, "default", "colours", &ScheduledJobSpec::manual()).await;
    let run = add_run(
        &t.store,
        job,
        RunStatus::Failure,
        Some(1),
        "\x1b[1;31merror:\x1b[0m <b>bad</b>\x1b[2K\n",
    )
    .await;
    let page = send(&t.state, get(&format!("/runs/{run}"))).await;
    assert!(
        page.body
            .contains("<span class=\"ansi-fg-1 ansi-bold\">error:</span> &#60;b&#62;bad&#60;/b&#62;\n</pre>"),
        "{}",
        page.body
    );
    assert!(!page.body.contains('\x1b'));
    let raw = send(&t.state, get(&format!("/runs/{run}/output.txt"))).await;
    assert!(raw.body.contains('\x1b'), "the download is the output as stored");
}

#[tokio::test]
async fn the_form_reports_every_error_at_once_and_takes_a_single_digit_hour() {
    let t = standalone().await;
    let (cookie, csrf) = browser_session(&t.state).await;
    let mut fields = daily_form(&csrf, "Bad Name", "25:00");
    fields.retain(|(k, _)| *k != "time_zone");
    fields.push(("time_zone", "Mars/Base"));
    fields.push(("active_deadline_seconds", "soon"));
    let reply = send(&t.state, post_form("/jobs", &cookie, &fields)).await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    for field in ["name", "daily_at", "time_zone", "active_deadline_seconds"] {
        assert!(
            reply.body.contains(&format!("id=\"error-{field}\"")),
            "{field}: {}",
            reply.body
        );
        assert!(
            reply.body.contains(&format!(
                "aria-invalid=\"true\" aria-describedby=\"error-{field}\""
            )),
            "{field} is marked for screen readers"
        );
    }
    let ok = send(
        &t.state,
        post_form("/jobs", &cookie, &daily_form(&csrf, "early", "9:00")),
    )
    .await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER, "{}", ok.body);
    let job = t.store.get_job_by_name("default", "early").await.unwrap();
    assert_eq!(job.spec.schedule.daily.unwrap().at, "09:00");
}

#[tokio::test]
async fn pause_and_resume_in_one_click_and_by_patch() {
    let t = standalone().await;
    add_job(&t.store, "default", "pausable", &ScheduledJobSpec::daily("09:00")).await;
    let (cookie, csrf) = browser_session(&t.state).await;
    let list = send(&t.state, get_with_cookie("/", &cookie)).await;
    assert!(
        list.body.contains("action=\"/jobs/default/pausable/pause\""),
        "{}",
        list.body
    );
    let reply = send(
        &t.state,
        post_form(
            "/jobs/default/pausable/pause",
            &cookie,
            &[("csrf", &csrf), ("back", "list"), ("q", "?name=paus")],
        ),
    )
    .await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.body);
    assert_eq!(reply.header("location"), "/?name=paus");
    let cookie = reply.next_cookie(&cookie);
    let job = t.store.get_job_by_name("default", "pausable").await.unwrap();
    assert!(!job.is_active && job.spec.suspend && job.next_run.is_none());
    let list = send(&t.state, get_with_cookie("/", &cookie)).await;
    assert!(list.body.contains("action=\"/jobs/default/pausable/resume\""));
    assert!(
        list.body.contains("Paused pausable"),
        "the flash says what happened"
    );
    // The API: PATCH {"suspend": false} resumes; the next run is planned again.
    let reply = send(
        &t.state,
        json_request(
            "PATCH",
            "/api/v1/jobs/default/pausable",
            Some(json!({ "suspend": false })),
        ),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let job = t.store.get_job_by_name("default", "pausable").await.unwrap();
    assert!(job.is_active && job.next_run.is_some());
    let bad = send(
        &t.state,
        json_request(
            "PATCH",
            "/api/v1/jobs/default/pausable",
            Some(json!({ "suspended": true })),
        ),
    )
    .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad.json()["errors"][0]["field"], "suspended");
    let missing = send(
        &t.state,
        json_request(
            "PATCH",
            "/api/v1/jobs/default/nope",
            Some(json!({ "suspend": true })),
        ),
    )
    .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}

/// The form's daylight-saving choices and pod template reach the spec, show again on the edit
/// page, and a pod template with a misspelt field is refused next to its field with the path
/// inside it, what was typed kept.
#[tokio::test]
async fn the_form_sets_the_dst_policy_and_the_pod_template() {
    let t = standalone().await;
    let (cookie, csrf) = browser_session(&t.state).await;
    let template = "spec:\n  containers:\n    - name: run\n      envFrom: [{ secretRef: { name: db } }]\n";
    let mut fields = daily_form(&csrf, "dst-job", "01:30");
    fields.retain(|(k, _)| *k != "time_zone");
    fields.extend([
        ("time_zone", "America/New_York"),
        ("repeated_time", "Second"),
        ("skipped_time", "Skip"),
        ("pod_template", template),
    ]);
    let reply = send(&t.state, post_form("/jobs", &cookie, &fields)).await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.body);
    let job = t.store.get_job_by_name("default", "dst-job").await.unwrap();
    let dst = job.spec.daylight_saving.expect("a DST policy");
    assert_eq!(dst.repeated_time, Some(jtp_crds::RepeatedTime::Second));
    assert_eq!(dst.skipped_time, Some(jtp_crds::SkippedTime::Skip));
    let pod = job.spec.pod_template.expect("a pod template");
    assert_eq!(
        pod.0["spec"]["containers"][0]["envFrom"][0]["secretRef"]["name"],
        "db"
    );

    let edit = send(&t.state, get_with_cookie("/jobs/default/dst-job/edit", &cookie)).await;
    assert_eq!(edit.status, StatusCode::OK);
    assert!(
        edit.body.contains("<option value=\"Second\" selected>"),
        "{}",
        edit.body
    );
    assert!(
        edit.body.contains("<option value=\"Skip\" selected>"),
        "{}",
        edit.body
    );
    assert!(edit.body.contains("secretRef"), "{}", edit.body);

    let mut fields = daily_form(&csrf, "bad-pod", "09:00");
    fields.push((
        "pod_template",
        "spec:\n  containers:\n    - name: run\n      imagee: x\n",
    ));
    let reply = send(&t.state, post_form("/jobs", &cookie, &fields)).await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(reply.body.contains("id=\"error-pod_template\""), "{}", reply.body);
    assert!(
        reply.body.contains("spec.podTemplate.spec.containers[0].imagee"),
        "{}",
        reply.body
    );
    assert!(
        reply.body.contains("imagee: x"),
        "what was typed is kept: {}",
        reply.body
    );
    assert!(t.store.get_job_by_name("default", "bad-pod").await.is_err());
}

#[tokio::test]
async fn a_running_runs_page_follows_its_output_from_an_offset_until_it_ends() {
    let t = standalone_with(PortalConfig::default(), Some(64)).await;
    let job = add_job(&t.store, "default", "streaming", &ScheduledJobSpec::manual()).await;
    let run = add_run(&t.store, job, RunStatus::Running, None, "").await;
    let output = t.live.start(run);
    output.lock().unwrap().push(b"\x1b[32mstep 1 <b>ok</b>\n", 64);
    // The page shows the output so far, escaped and coloured, and where to follow it from.
    let page = send(&t.state, get(&format!("/runs/{run}"))).await;
    assert!(
        page.body.contains(&format!(
            "data-live=\"/api/v1/runs/{run}/live\" data-offset=\"22\""
        )),
        "{}",
        page.body
    );
    assert!(
        page.body
            .contains("<span class=\"ansi-fg-2\">step 1 &#60;b&#62;ok&#60;/b&#62;\n</span>"),
        "{}",
        page.body
    );
    assert!(page.body.contains("id=\"output-live\""));
    // What came after byte 22, in the colour still in effect.
    output.lock().unwrap().push(b"step 2\n", 64);
    let next = send(&t.state, get(&format!("/api/v1/runs/{run}/live?offset=22")))
        .await
        .json();
    assert_eq!(next["live"], true);
    assert_eq!(next["status"], "RUNNING");
    assert_eq!(next["offset"], 29);
    assert_eq!(
        next["segments"],
        serde_json::json!([{ "class": "ansi-fg-2", "text": "step 2\n" }])
    );
    // Past the cap: the head stays, the client that fell behind the tail is told what it missed.
    output.lock().unwrap().push(&[b'x'; 100], 64);
    let behind = send(&t.state, get(&format!("/api/v1/runs/{run}/live?offset=29")))
        .await
        .json();
    assert_eq!(behind["offset"], 129);
    assert_eq!(behind["skipped"], 129 - 32 - 32);
    let text: String = behind["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["text"].as_str().unwrap())
        .collect();
    assert!(text.contains("bytes of output skipped here"), "{text}");
    assert!(text.ends_with(&"x".repeat(32)), "{text}");
    let bad = send(&t.state, get(&format!("/api/v1/runs/{run}/live?offset=soon"))).await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad.body.contains("offset"), "{}", bad.body);
    // The end is recorded: the page shows the stored output, the endpoint says it is over.
    t.store
        .record_attempt_finish(
            run,
            &jtp_store::RunFinish {
                status: RunStatus::Success,
                exit_code: Some(0),
                output: b"stored output\n",
                finished_at: chrono::Utc::now(),
            },
            jtp_store::FinishEffects::default(),
        )
        .await
        .unwrap();
    t.live.end(run);
    let over = send(&t.state, get(&format!("/api/v1/runs/{run}/live?offset=129")))
        .await
        .json();
    assert_eq!(
        (over["live"].clone(), over["status"].clone()),
        (serde_json::json!(false), serde_json::json!("SUCCESS"))
    );
    let page = send(&t.state, get(&format!("/runs/{run}"))).await;
    assert!(page.body.contains("stored output"));
    assert!(!page.body.contains("data-live"));
}

/// `q` finds runs by their output, with the job/status filters and paging of the runs view; the
/// page shows where each output matched, the match marked and everything escaped; the API
/// carries the same snippet; a search too short to use the index is a 422 naming `q`.
#[tokio::test]
async fn the_runs_view_searches_outputs() {
    let t = standalone().await;
    let a = add_job(&t.store, "default", "alpha", &ScheduledJobSpec::daily("09:00")).await;
    let b = add_job(&t.store, "default", "beta", &ScheduledJobSpec::daily("09:00")).await;
    let base = Utc.with_ymd_and_hms(2026, 11, 30, 1, 0, 0).unwrap();
    let refused = format!(
        "{}\nconnect <script>x</script>: Connection REFUSED by db:5432\nretrying\n",
        "line of noise ".repeat(20)
    );
    let hit_a = add_run_at(&t.store, a, base, RunStatus::Failure, Some(1), &refused).await;
    add_run_at(
        &t.store,
        a,
        base + chrono::Duration::seconds(10),
        RunStatus::Success,
        Some(0),
        "all fine",
    )
    .await;
    let hit_b = add_run_at(
        &t.store,
        b,
        base + chrono::Duration::seconds(20),
        RunStatus::Failure,
        Some(1),
        "connection refused",
    )
    .await;

    let api = send(&t.state, get("/api/v1/runs?q=connection%20refused")).await;
    assert_eq!(api.status, StatusCode::OK, "{}", api.body);
    let json = api.json();
    let ids: Vec<i64> = json["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [hit_b, hit_a]);
    let snippet = &json["items"][1]["snippet"];
    assert_eq!(snippet["matched"], "Connection REFUSED");
    assert_eq!(snippet["cutBefore"], true);
    assert!(
        snippet["before"]
            .as_str()
            .unwrap()
            .ends_with("connect <script>x</script>: "),
        "{snippet}"
    );
    let only_a = send(&t.state, get("/api/v1/runs?q=refused&job=alpha"))
        .await
        .json();
    assert_eq!(only_a["items"].as_array().unwrap().len(), 1);

    let page = send(&t.state, get("/runs?q=refused&status=FAILURE")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("value=\"refused\""), "the box keeps the text");
    assert!(page.body.contains("<mark>REFUSED</mark>"), "{}", page.body);
    assert!(
        page.body.contains("&#60;script&#62;x&#60;/script&#62;"),
        "{}",
        page.body
    );
    assert!(!page.body.contains("<script>x</script>"));

    let short = send(&t.state, get("/api/v1/runs?q=ab")).await;
    assert_eq!(short.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", short.body);
    assert!(short.body.contains("\"q\""), "{}", short.body);
    assert!(short.body.contains("3 to 200 characters"), "{}", short.body);
}

/// A text in most outputs with a filter few of them pass: the page reads its limit of runs, says
/// so, and links on; the API says the same with `searchedPart`.
#[tokio::test]
async fn a_search_that_reads_its_limit_says_so_and_searches_on() {
    let t = standalone().await;
    let busy = add_job(&t.store, "default", "busy", &ScheduledJobSpec::daily("09:00")).await;
    let quiet = add_job(&t.store, "default", "quiet", &ScheduledJobSpec::daily("09:00")).await;
    let base = Utc.with_ymd_and_hms(2026, 10, 1, 0, 0, 0).unwrap();
    let budget = usize::try_from(jtp_store::SCAN_BUDGET).unwrap();
    let run = |job_id: i64, k: usize, output: &str| jtp_store::ImportedRun {
        job_id,
        run_time: base + chrono::Duration::seconds(k as i64),
        scheduled_for: base + chrono::Duration::seconds(k as i64),
        finished_at: Some(base + chrono::Duration::seconds(k as i64 + 1)),
        status: RunStatus::Success,
        exit_code: Some(0),
        trigger: jtp_crds::Trigger::Schedule,
        output: output.to_owned(),
        k8s_job_name: None,
        runner: None,
    };
    let common = usize::try_from(jtp_store::FEW_HITS).unwrap() + 10;
    let mut runs: Vec<_> = (0..common).map(|k| run(busy, 2 * k, "rows copied")).collect();
    // The quiet job's only hit is its oldest run, beyond the first page's reading.
    runs.extend((0..budget + 10).map(|k| run(quiet, 2 * k + 1, if k == 0 { "rows copied" } else { "idle" })));
    t.store.import_runs(&runs).await.unwrap();

    let page = send(&t.state, get("/runs?q=rows%20copied&job=quiet")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("id=\"searched-part\""), "{}", page.body);
    assert!(
        page.body.contains("No match among the 2000 runs this page read"),
        "{}",
        page.body
    );
    assert!(
        !page.body.contains("match these filters"),
        "not the empty page's wording"
    );
    let on = page.body.split("id=\"runs-older\"").next().unwrap();
    let href = on
        .rsplit("href=\"")
        .next()
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .replace("&#38;", "&");
    assert!(href.starts_with("/runs?") && href.contains("before="), "{href}");
    let next = send(&t.state, get(&href)).await;
    assert!(
        next.body.contains("<mark>rows copied</mark>"),
        "{href}: {}",
        next.body
    );
    assert!(
        !next.body.contains("id=\"searched-part\""),
        "the rest fits one reading"
    );

    let api = send(&t.state, get("/api/v1/runs?q=rows%20copied&job=quiet"))
        .await
        .json();
    assert_eq!(api["searchedPart"], true, "{api}");
    assert_eq!(api["items"].as_array().unwrap().len(), 0);
    assert!(api["olderCursor"].is_string(), "{api}");
    let all = send(&t.state, get("/api/v1/runs?q=rows%20copied&job=busy"))
        .await
        .json();
    assert_eq!(all["searchedPart"], false, "a page filled within its reading");
}
