//! Cluster mode's Run Now with parameters: an in-process operator (inside the test network
//! namespace: `testenv/exec`) against the real control plane and node, recording in a SQLite file
//! it shares with the test. The values of the run-now-parameters annotation are checked against
//! `spec.parameters`, become the env of the run's container on the node (the pod prints them),
//! are recorded with the run in SQL, and the annotation goes once the run has started; values that
//! do not fit start nothing and say why in a Warning Event.

mod common;

use common::cluster::{Operator, client, delete_all, eventually};
use jtp_crds::{
    PARAMETERS_ANNOTATION, RUN_NOW_ANNOTATION, RUN_NOW_PARAMETERS_ANNOTATION, RUN_NOW_REQUESTER_ANNOTATION,
    RunStatus, ScheduledJob, ScheduledJobSpec,
};
use jtp_store::Store;
use jtp_testenv::TestNamespace;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Event;
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams, PostParams};

/// Asks for a run now with `values` (a JSON object, as the portal writes it) in one merge patch.
async fn run_now(api: &Api<ScheduledJob>, name: &str, values: &str) -> chrono::DateTime<chrono::Utc> {
    let at = chrono::Utc::now();
    api.patch(
        name,
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({ "metadata": { "annotations": {
            RUN_NOW_ANNOTATION: at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            RUN_NOW_REQUESTER_ANNOTATION: "alice",
            RUN_NOW_PARAMETERS_ANNOTATION: values,
        } } })),
    )
    .await
    .expect("run now");
    at
}

#[tokio::test]
async fn a_run_now_s_values_reach_the_pod_and_sql_and_values_that_do_not_fit_start_nothing() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "params").await;
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("jtp.db").display());
    let store = Store::connect(&url).await.expect("store");

    let operator = Operator::start(&client, &[ns.name()], &url, |_| {});

    let spec = ScheduledJobSpec::manual()
        .script("echo \"region=$REGION ticket=$TICKET\"")
        .parameter_one_of("REGION", Some("eu-west"), &["eu-west", "us-east"])
        .parameter_matching("TICKET", "[A-Z]+-[0-9]+");
    let api: Api<ScheduledJob> = ns.api();
    api.create(&PostParams::default(), &ScheduledJob::new("export", spec))
        .await
        .expect("create");
    let jobs: Api<Job> = ns.api();
    let events: Api<Event> = ns.api();

    // Values that do not fit: a Warning Event names each problem, and no Job is made.
    run_now(&api, "export", r#"{"REGION":"mars"}"#).await;
    let warning = eventually("the InvalidParameters Event", async || {
        let list = events.list(&ListParams::default()).await.ok()?;
        list.items
            .into_iter()
            .find(|e| e.reason.as_deref() == Some("InvalidParameters"))
            .and_then(|e| e.message)
    })
    .await;
    assert!(
        warning.contains("parameters.REGION: \"mars\" is not allowed")
            && warning.contains("parameters.TICKET: give a value"),
        "{warning}"
    );
    let made = jobs.list(&ListParams::default()).await.expect("jobs");
    assert!(
        made.items.is_empty(),
        "no Job for refused values: {:?}",
        made.items
    );

    // Values that fit: the Job's container gets them, the pod prints them, SQL records them.
    let asked = run_now(&api, "export", r#"{"REGION":"us-east","TICKET":"OPS-42"}"#).await;
    let job = eventually("the run's Job", async || {
        jobs.list(&ListParams::default())
            .await
            .ok()?
            .items
            .into_iter()
            .next()
    })
    .await;
    let ann = job.metadata.annotations.clone().unwrap_or_default();
    assert_eq!(
        ann.get(PARAMETERS_ANNOTATION).map(String::as_str),
        Some(r#"{"REGION":"us-east","TICKET":"OPS-42"}"#)
    );
    let run_container = &job
        .spec
        .as_ref()
        .expect("spec")
        .template
        .spec
        .as_ref()
        .expect("pod")
        .containers[0];
    let env: Vec<(String, Option<String>)> = run_container
        .env
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|e| (e.name, e.value))
        .collect();
    assert!(
        env.contains(&("TICKET".to_owned(), Some("OPS-42".to_owned()))),
        "{env:?}"
    );

    let row = store
        .get_job_by_name(ns.name(), "export")
        .await
        .expect("mirrored");
    let run = eventually("the run to end in SQL", async || {
        let runs = store.list_runs(row.id, 10, 0).await.ok()?;
        runs.items.into_iter().find(|r| r.status.is_finished())
    })
    .await;
    assert_eq!(run.status, RunStatus::Success, "{run:?}");
    assert_eq!(run.scheduled_for.timestamp_millis(), asked.timestamp_millis());
    assert_eq!(run.requester.as_deref(), Some("alice"));
    let recorded: Vec<(&str, &str)> = run
        .parameters
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(recorded, [("REGION", "us-east"), ("TICKET", "OPS-42")]);
    let output = store.get_run(run.id).await.expect("run").log_output;
    assert!(
        output.starts_with("region=us-east ticket=OPS-42\n"),
        "the pod printed the values: {output:?}"
    );

    // The request's values went with it: the annotations are gone from the ScheduledJob.
    let live = eventually("the request's annotations to go", async || {
        let sj = api.get("export").await.ok()?;
        let ann = sj.metadata.annotations.unwrap_or_default();
        (!ann.contains_key(RUN_NOW_PARAMETERS_ANNOTATION) && !ann.contains_key(RUN_NOW_REQUESTER_ANNOTATION))
            .then_some(ann)
    })
    .await;
    assert!(live.contains_key(RUN_NOW_ANNOTATION));

    delete_all(&ns).await;
    operator.stop().await;
    ns.cleanup().await;
}
