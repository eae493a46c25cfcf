//! Run Now with parameters through the portal in Kubernetes mode, against the real control plane:
//! the values are checked against the live ScheduledJob (422 for each bad one, nothing written),
//! and a good request is one merge patch of the run-now, requester and parameters annotations
//! (the defaults filled in), as the `trigger` right allows. (What the operator does with the
//! annotation is `operator/tests/parameters_cluster.rs`.)
#![allow(clippy::unwrap_used)]

mod common;

use axum::http::StatusCode;
use common::kube_env::{KubeEnv, bearer};
use common::*;
use jtp_crds::{
    RUN_NOW_ANNOTATION, RUN_NOW_PARAMETERS_ANNOTATION, RUN_NOW_REQUESTER_ANNOTATION, ScheduledJobSpec,
};
use jtp_dashboard::{AppState, PortalConfig};
use serde_json::json;

#[tokio::test]
async fn a_run_now_with_parameters_is_checked_against_the_resource_and_written_in_its_annotation() {
    let env = KubeEnv::new("dash-params").await;
    let ns = env.ns.name().to_owned();
    let dir = tempfile::tempdir().unwrap();
    let store = store_in(&dir, None).await;
    let state = AppState::kubernetes(store.clone(), env.client.clone(), PortalConfig::default());
    let spec = ScheduledJobSpec::manual()
        .parameter_one_of("REGION", Some("eu-west"), &["eu-west", "us-east"])
        .parameter_matching("TICKET", "[A-Z]+-[0-9]+");
    env.create_job("export", spec).await;
    let run = |body: serde_json::Value, token: &str| {
        bearer(
            json_request("POST", &format!("/api/v1/jobs/{ns}/export/run"), Some(body)),
            token,
        )
    };
    let annotations = || async {
        let live = env.jobs().get("export").await.unwrap();
        live.metadata.annotations.unwrap_or_default()
    };

    // Bad values: 422 with each field, and nothing is asked.
    let reply = send(
        &state,
        run(json!({"parameters": {"REGION": "mars"}}), &env.runner),
    )
    .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", reply.body);
    let fields: Vec<String> = reply.json()["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(fields, ["parameters.REGION", "parameters.TICKET"]);
    assert!(!annotations().await.contains_key(RUN_NOW_ANNOTATION));

    // A reader may not Run Now at all.
    let reply = send(
        &state,
        run(json!({"parameters": {"TICKET": "OPS-1"}}), &env.reader),
    )
    .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.body);

    // The runner (trigger only) may: the annotation holds every value, defaults included.
    let reply = send(
        &state,
        run(json!({"parameters": {"TICKET": "OPS-42"}}), &env.runner),
    )
    .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.body);
    assert_eq!(
        reply.json()["parameters"],
        json!({"REGION": "eu-west", "TICKET": "OPS-42"})
    );
    let written = annotations().await;
    assert_eq!(
        written.get(RUN_NOW_PARAMETERS_ANNOTATION).map(String::as_str),
        Some(r#"{"REGION":"eu-west","TICKET":"OPS-42"}"#)
    );
    assert_eq!(
        written.get(RUN_NOW_REQUESTER_ANNOTATION).cloned(),
        Some(format!("system:serviceaccount:{ns}:runner"))
    );
    assert_eq!(
        written.get(RUN_NOW_ANNOTATION).cloned(),
        reply.json()["requestedAt"].as_str().map(str::to_owned)
    );
}

#[tokio::test]
async fn a_run_now_of_a_job_without_parameters_clears_an_earlier_requests_values() {
    let env = KubeEnv::new("dash-params-none").await;
    let ns = env.ns.name().to_owned();
    let dir = tempfile::tempdir().unwrap();
    let store = store_in(&dir, None).await;
    let state = AppState::kubernetes(store.clone(), env.client.clone(), PortalConfig::default());
    env.create_job("plain", ScheduledJobSpec::manual()).await;
    // Values left by an earlier request (or a kubectl user) must not ride along with this one.
    env.jobs()
        .patch(
            "plain",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({ "metadata": { "annotations": {
                RUN_NOW_PARAMETERS_ANNOTATION: "{\"OLD\":\"1\"}"
            } } })),
        )
        .await
        .unwrap();
    let reply = send(
        &state,
        bearer(
            json_request("POST", &format!("/api/v1/jobs/{ns}/plain/run"), None),
            &env.runner,
        ),
    )
    .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.body);
    let live = env.jobs().get("plain").await.unwrap();
    let annotations = live.metadata.annotations.unwrap_or_default();
    assert!(annotations.contains_key(RUN_NOW_ANNOTATION));
    assert!(
        !annotations.contains_key(RUN_NOW_PARAMETERS_ANNOTATION),
        "{annotations:?}"
    );
}
