//! Run Now with parameters through `app(state)` on a real SQLite store: the form the button opens,
//! its field errors (every problem at once, next to its field, nothing typed lost), the API's body
//! and 422s, and the values shown with the run once the runner has claimed it.
#![allow(clippy::unwrap_used)]

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use chrono::Utc;
use common::*;
use jtp_crds::{Parameter, ParameterValues, ScheduledJobSpec};
use serde_json::json;

/// A manual job with a list, a pattern without default and a pattern with one.
fn export_spec() -> ScheduledJobSpec {
    ScheduledJobSpec::manual()
        .parameter_with(Parameter {
            name: "REGION".into(),
            description: Some("Which region's data <to export>.".into()),
            default: Some("eu-west".into()),
            allowed: vec!["eu-west".into(), "us-east".into()],
            pattern: None,
        })
        .parameter_with(Parameter {
            name: "TICKET".into(),
            description: Some("The ticket, like OPS-42.".into()),
            default: None,
            allowed: Vec::new(),
            pattern: Some("[A-Z]+-[0-9]+".into()),
        })
        .parameter("ROWS", Some("1000"))
}

/// What the runner does with a pending Run Now: claims it (the run is RUNNING, with its values).
async fn claim(t: &Standalone, id: i64) -> jtp_store::Claim {
    let job = t.store.get_job(id).await.unwrap();
    let claim = jtp_store::SlotClaim {
        job_id: id,
        expected_next_run: job.next_run.expect("due"),
        new_next_run: None,
        runner: "test",
        now: Utc::now(),
        drop_retry: false,
        parameters: &ParameterValues::new(),
    };
    jtp_store::testing::claim_one(&t.store, claim)
        .await
        .unwrap()
        .expect("claimed")
}

/// Posts the export job's Run Now form in a browser `session` (its cookie and CSRF token) with
/// `fields`, as the browser sends it.
async fn post_run_form(t: &Standalone, session: &(String, String), fields: &[(&str, &str)]) -> Reply {
    let (cookie, csrf) = session;
    let form: Vec<(&str, &str)> = [("csrf", csrf.as_str())]
        .into_iter()
        .chain(fields.iter().copied())
        .collect();
    send(&t.state, post_form("/jobs/default/export/run", cookie, &form)).await
}

#[tokio::test]
async fn run_now_of_a_job_with_parameters_opens_a_form_with_its_fields_and_defaults() {
    let t = standalone().await;
    add_job(&t.store, "default", "export", &export_spec()).await;
    add_job(&t.store, "default", "plain", &ScheduledJobSpec::manual()).await;

    // The panel's Run Now is a link to the form for a job with parameters, a button otherwise.
    let panel = send(&t.state, get("/jobs/default/export")).await;
    assert!(
        panel
            .body
            .contains("<a class=\"button primary\" href=\"/jobs/default/export/run\" id=\"run-now\""),
        "{}",
        panel.body
    );
    let plain = send(&t.state, get("/jobs/default/plain")).await;
    assert!(
        plain
            .body
            .contains("<button type=\"submit\" class=\"primary\" id=\"run-now\">Run Now</button>")
    );
    let details = send(&t.state, get("/jobs/default/export/details")).await;
    assert!(details.body.contains("id=\"parameters\""), "{}", details.body);
    assert!(
        details
            .body
            .contains("a value matching <code>[A-Z]+-[0-9]+</code>; required at Run Now")
    );

    let form = send(&t.state, get("/jobs/default/export/run")).await;
    assert_eq!(form.status, StatusCode::OK);
    let body = &form.body;
    assert!(
        body.contains("<select id=\"param-REGION\" name=\"parameters.REGION\""),
        "{body}"
    );
    assert!(
        body.contains("<option value=\"eu-west\" selected>eu-west</option>"),
        "{body}"
    );
    assert!(body.contains("<option value=\"us-east\">us-east</option>"));
    assert!(
        body.contains(
            "<input id=\"param-TICKET\" name=\"parameters.TICKET\" value=\"\" required aria-required=\"true\" aria-describedby=\"help-param-TICKET\""
        ),
        "{body}"
    );
    assert!(body.contains("<input id=\"param-ROWS\" name=\"parameters.ROWS\" value=\"1000\""));
    // The help text is escaped and says what the field takes.
    assert!(
        body.contains("Which region&#39;s data &#60;to export&#62;."),
        "{body}"
    );
    assert!(
        body.contains("Must match <code>[A-Z]+-[0-9]+</code>. Required."),
        "{body}"
    );
    // A link can prefill it ("Run again" with a run's values).
    let prefilled = send(
        &t.state,
        get("/jobs/default/export/run?parameters.TICKET=OPS-1&parameters.REGION=us-east"),
    )
    .await;
    assert!(
        prefilled
            .body
            .contains("name=\"parameters.TICKET\" value=\"OPS-1\"")
    );
    assert!(
        prefilled
            .body
            .contains("<option value=\"us-east\" selected>us-east</option>")
    );
    assert_eq!(
        send(&t.state, get("/jobs/default/nope/run")).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn the_form_reports_every_bad_value_next_to_its_field_and_keeps_what_was_typed() {
    let t = standalone().await;
    let id = add_job(&t.store, "default", "export", &export_spec()).await;
    let session = browser_session(&t.state).await;
    let reply = post_run_form(
        &t,
        &session,
        &[
            ("parameters.REGION", "mars"),
            ("parameters.TICKET", "ops 42"),
            ("parameters.ROWS", "<b>many</b>"),
        ],
    )
    .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    let body = &reply.body;
    assert!(body.contains("id=\"form-error-summary\""), "{body}");
    assert!(
        body.contains("aria-describedby=\"help-param-TICKET error-param-TICKET\" aria-invalid=\"true\""),
        "{body}"
    );
    assert!(
        body.contains("<p class=\"error\" id=\"error-param-TICKET\">&#34;ops 42&#34; does not match the pattern [A-Z]+-[0-9]+</p>"),
        "{body}"
    );
    assert!(
        body.contains("id=\"error-param-REGION\">&#34;mars&#34; is not allowed"),
        "{body}"
    );
    assert!(
        !body.contains("id=\"error-param-ROWS\""),
        "ROWS takes any value: {body}"
    );
    assert!(body.contains("value=\"ops 42\""), "what was typed stays");
    assert!(
        body.contains("value=\"&#60;b&#62;many&#60;/b&#62;\""),
        "and is escaped: {body}"
    );
    let job = t.store.get_job(id).await.unwrap();
    assert_eq!(job.run_now_requested_at, None, "nothing was asked");

    // A required value left out is refused the same way.
    let reply = post_run_form(&t, &session, &[]).await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        reply
            .body
            .contains("id=\"error-param-TICKET\">give a value: this parameter has no default</p>"),
        "{}",
        reply.body
    );
}

#[tokio::test]
async fn a_valid_run_now_is_recorded_with_its_values_and_shown_with_the_run() {
    let t = standalone().await;
    let id = add_job(&t.store, "default", "export", &export_spec()).await;
    let session = browser_session(&t.state).await;
    let reply = post_run_form(
        &t,
        &session,
        &[("parameters.REGION", "us-east"), ("parameters.TICKET", "OPS-42")],
    )
    .await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.body);
    assert_eq!(reply.header("location"), "/jobs/default/export");
    let cookie = reply.next_cookie(&session.0);
    let page = send(&t.state, get_with_cookie("/jobs/default/export", &cookie)).await;
    assert!(
        page.body
            .contains("with REGION=us-east, ROWS=1000, TICKET=OPS-42."),
        "the flash names the values: {}",
        page.body
    );
    let run = claim(&t, id).await;
    let expected: ParameterValues = [("REGION", "us-east"), ("ROWS", "1000"), ("TICKET", "OPS-42")]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    assert_eq!(run.parameters, expected);

    let api = send(&t.state, get(&format!("/api/v1/runs/{}", run.run_id)))
        .await
        .json();
    assert_eq!(
        api["parameters"],
        json!({"REGION": "us-east", "ROWS": "1000", "TICKET": "OPS-42"}),
        "{api}"
    );
    assert_eq!(api["requester"], "local");
    let own = send(&t.state, get(&format!("/runs/{}", run.run_id))).await;
    assert!(
        own.body
            .contains("<dt><code>TICKET</code></dt><dd><code>OPS-42</code></dd>"),
        "{}",
        own.body
    );
    assert!(
        own.body.contains(
            "href=\"/jobs/default/export/run?parameters.REGION=us-east&#38;parameters.ROWS=1000&#38;parameters.TICKET=OPS-42\" id=\"run-again\""
        ),
        "Run again opens the form with this run's values: {}",
        own.body
    );
    let panel = send(
        &t.state,
        get(&format!("/jobs/default/export/runs/{}", run.run_id)),
    )
    .await;
    assert!(panel.body.contains("id=\"run-parameters\""), "{}", panel.body);
    assert!(panel.body.contains("<span class=\"requester\">by local</span>"));
}

fn api_run(body: &str, content_type: &str) -> Request<Body> {
    Request::post("/api/v1/jobs/default/export/run")
        .header(header::HOST, "127.0.0.1:8080")
        .header(header::CONTENT_TYPE, content_type)
        .body(Body::from(body.to_owned()))
        .unwrap()
}

#[tokio::test]
async fn the_api_takes_values_as_strings_and_answers_422_with_each_field() {
    let t = standalone().await;
    let id = add_job(&t.store, "default", "export", &export_spec()).await;
    let bad = send(
        &t.state,
        json_request(
            "POST",
            "/api/v1/jobs/default/export/run",
            Some(json!({"parameters": {"REGION": "mars", "COLOUR": "red"}})),
        ),
    )
    .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    let fields: Vec<String> = bad.json()["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        fields,
        ["parameters.COLOUR", "parameters.REGION", "parameters.TICKET"],
        "{}",
        bad.body
    );
    let number = send(
        &t.state,
        json_request(
            "POST",
            "/api/v1/jobs/default/export/run",
            Some(json!({"parameters": {"TICKET": "OPS-1", "ROWS": 5}})),
        ),
    )
    .await;
    assert_eq!(number.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(number.json()["errors"][0]["field"], "parameters.ROWS");
    let unknown = send(&t.state, api_run(r#"{"params": {}}"#, "application/json")).await;
    assert_eq!(unknown.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(unknown.json()["errors"][0]["field"], "params");
    let form = send(
        &t.state,
        api_run("parameters.TICKET=OPS-1", "application/x-www-form-urlencoded"),
    )
    .await;
    assert_eq!(form.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{}", form.body);
    // No body: the defaults, and a required value is missing.
    let bare = send(
        &t.state,
        json_request("POST", "/api/v1/jobs/default/export/run", None),
    )
    .await;
    assert_eq!(bare.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bare.json()["errors"][0]["field"], "parameters.TICKET");
    assert_eq!(t.store.get_job(id).await.unwrap().run_now_requested_at, None);

    let good = send(
        &t.state,
        json_request(
            "POST",
            "/api/v1/jobs/default/export/run",
            Some(json!({"parameters": {"TICKET": "OPS-7"}})),
        ),
    )
    .await;
    assert_eq!(good.status, StatusCode::ACCEPTED, "{}", good.body);
    assert_eq!(
        good.json()["parameters"],
        json!({"REGION": "eu-west", "ROWS": "1000", "TICKET": "OPS-7"})
    );
    let run = claim(&t, id).await;
    let runs = send(&t.state, get("/api/v1/jobs/default/export/runs"))
        .await
        .json();
    assert_eq!(runs["items"][0]["id"], run.run_id);
    assert_eq!(runs["items"][0]["parameters"]["TICKET"], "OPS-7");

    // A job without parameters takes none, and still runs with no body at all.
    add_job(&t.store, "default", "plain", &ScheduledJobSpec::manual()).await;
    let refused = send(
        &t.state,
        json_request(
            "POST",
            "/api/v1/jobs/default/plain/run",
            Some(json!({"parameters": {"A": "1"}})),
        ),
    )
    .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        refused.json()["errors"][0]["message"],
        "the job declares no parameters"
    );
    let plain = send(
        &t.state,
        json_request("POST", "/api/v1/jobs/default/plain/run", None),
    )
    .await;
    assert_eq!(plain.status, StatusCode::ACCEPTED);
    assert_eq!(plain.json()["parameters"], json!({}));
}

#[tokio::test]
async fn the_openapi_document_describes_the_run_now_body_and_the_run_s_values() {
    let t = standalone().await;
    let doc = send(&t.state, get("/api/v1/openapi.json")).await.json();
    let run_now = &doc["paths"]["/jobs/{namespace}/{name}/run"]["post"];
    let body = &run_now["requestBody"]["content"]["application/json"]["schema"];
    assert_eq!(
        body["properties"]["parameters"]["additionalProperties"]["type"],
        "string"
    );
    assert!(run_now["responses"]["422"].is_object());
    assert!(doc["components"]["schemas"]["Run"]["properties"]["parameters"].is_object());
    let spec = &doc["components"]["schemas"]["ScheduledJobSpec"];
    assert!(
        spec.to_string().contains("\"parameters\""),
        "the spec's schema has parameters"
    );
}

#[tokio::test]
async fn a_job_whose_parameters_are_invalid_is_refused_with_their_paths() {
    let t = standalone().await;
    let spec = ScheduledJobSpec::daily("09:00").parameter("TICKET", None);
    let reply = send(
        &t.state,
        json_request(
            "POST",
            "/api/v1/jobs",
            Some(json!({"name": "sched", "spec": serde_json::to_value(&spec).unwrap()})),
        ),
    )
    .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        reply.json()["errors"][0]["field"],
        "spec.parameters[0].default",
        "{}",
        reply.body
    );
}
