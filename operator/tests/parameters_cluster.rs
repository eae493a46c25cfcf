//! Cluster mode's Run Now with parameters: an in-process operator (inside the test network
//! namespace: `testenv/exec`) against the real control plane and node, recording in a SQLite file
//! it shares with the test. The values of the run-now-parameters annotation are checked against
//! `spec.parameters`, become the env of the run's container on the node (the pod prints them),
//! are recorded with the run in SQL, and the annotation goes once the run has started; values that
//! do not fit start nothing and say why in a Warning Event.

use jtp_crds::{
    PARAMETERS_ANNOTATION, Parameter, RUN_NOW_ANNOTATION, RUN_NOW_PARAMETERS_ANNOTATION,
    RUN_NOW_REQUESTER_ANNOTATION, RunStatus, ScheduledJob, ScheduledJobSpec,
};
use jtp_operator::controller::{Metrics, OperatorArgs, SqlLedger, run_with};
use jtp_store::Store;
use jtp_testenv::{TestNamespace, wait_for};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Event;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, CustomResourceExt};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

const TIMEOUT: Duration = Duration::from_secs(90);
const POLL: Duration = Duration::from_millis(250);

async fn client() -> kube::Client {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("jtp_operator=debug"))
        .with_test_writer()
        .try_init();
    let client = jtp_testenv::cluster().await;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd = ScheduledJob::crd();
    let name = crd.metadata.name.clone().expect("CRD name");
    crds.patch(
        &name,
        &PatchParams::apply("jtp-tests").force(),
        &Patch::Apply(&crd),
    )
    .await
    .expect("apply the CRD");
    wait_for(&crds, &name, TIMEOUT, "be established", |crd| {
        crd.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Established" && c.status == "True"))
    })
    .await;
    client
}

async fn eventually<T>(what: &str, mut probe: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if let Some(found) = probe().await {
            return found;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(POLL).await;
    }
}

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

    let mut args = OperatorArgs::defaults();
    args.namespaces = vec![ns.name().to_owned()];
    args.no_leader_election = true;
    args.error_grace_seconds = 3;
    args.metrics_addr = SocketAddr::from(([127, 0, 0, 1], 0));
    let ledger = std::sync::Arc::new(SqlLedger::with_output_cap(&url, args.output_cap));
    let (stop, stopped) = oneshot::channel::<()>();
    let mut operator = tokio::spawn(run_with(
        client.clone(),
        args,
        ledger,
        Metrics::new(),
        async move {
            let _ = stopped.await;
        },
    ));

    let spec = ScheduledJobSpec::manual()
        .script("echo \"region=$REGION ticket=$TICKET\"")
        .parameter_with(Parameter {
            name: "REGION".into(),
            description: None,
            default: Some("eu-west".into()),
            allowed: vec!["eu-west".into(), "us-east".into()],
            pattern: None,
        })
        .parameter_with(Parameter {
            name: "TICKET".into(),
            description: None,
            default: None,
            allowed: Vec::new(),
            pattern: Some("[A-Z]+-[0-9]+".into()),
        });
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

    let _ = api
        .delete_collection(&DeleteParams::default(), &ListParams::default())
        .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline
        && api
            .list(&ListParams::default())
            .await
            .is_ok_and(|l| !l.items.is_empty())
    {
        tokio::time::sleep(POLL).await;
    }
    let _ = stop.send(());
    let _ = tokio::time::timeout(Duration::from_secs(10), &mut operator).await;
    operator.abort();
    ns.cleanup().await;
}
