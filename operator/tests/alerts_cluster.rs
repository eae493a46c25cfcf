//! Cluster mode's dead-man's switch and alerts: an in-process operator (run inside the test
//! network namespace: `testenv/exec`) against the real control plane, recording in a SQLite file
//! it shares with the test.

use jtp_crds::{ScheduledJob, ScheduledJobSpec};
use jtp_operator::controller::{Metrics, OperatorArgs, SqlLedger, run_with};
use jtp_store::{AlertKind, Store};
use jtp_testenv::{TestNamespace, wait_for};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, CustomResourceExt};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const TIMEOUT: Duration = Duration::from_secs(60);
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

/// An in-process operator on one namespace, recording in SQL at `url`.
struct Operator {
    metrics: Arc<Metrics>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<jtp_operator::controller::Result<()>>,
}

impl Operator {
    fn start(client: &kube::Client, ns: &str, url: &str, tweak: impl FnOnce(&mut OperatorArgs)) -> Self {
        let mut args = OperatorArgs::defaults();
        args.namespaces = vec![ns.to_owned()];
        args.no_leader_election = true;
        args.error_grace_seconds = 3;
        args.metrics_addr = SocketAddr::from(([127, 0, 0, 1], 0));
        tweak(&mut args);
        let ledger = Arc::new(SqlLedger::with_output_cap(url, args.output_cap));
        let metrics = Metrics::new();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(run_with(
            client.clone(),
            args,
            ledger,
            metrics.clone(),
            async move {
                let _ = stopped.await;
            },
        ));
        Self {
            metrics,
            stop: Some(stop),
            task,
        }
    }

    async fn stop(mut self, ns: &TestNamespace) {
        // Finalizers go while the operator still runs.
        let api: Api<ScheduledJob> = ns.api();
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
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = tokio::time::timeout(Duration::from_secs(10), &mut self.task).await;
        self.task.abort();
    }
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

#[tokio::test]
async fn a_suspended_job_goes_overdue_in_metrics_and_sql_and_a_success_clears_it() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "alert-overdue").await;
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("jtp.db").display());
    let store = Store::connect(&url).await.expect("store");
    let operator = Operator::start(&client, ns.name(), &url, |_| {});
    let api: Api<ScheduledJob> = ns.api();
    let mut spec = ScheduledJobSpec::daily("09:00")
        .expect_success_within("3s")
        .script("exit 0");
    spec.suspend = true;
    api.create(&PostParams::default(), &ScheduledJob::new("quiet", spec))
        .await
        .expect("create");
    let series = format!("jtp_job_overdue{{namespace=\"{}\",name=\"quiet\"}}", ns.name());
    eventually("the gauge to show the job overdue", async || {
        operator
            .metrics
            .render()
            .contains(&format!("{series} 1"))
            .then_some(())
    })
    .await;
    let job = store.get_job_by_name(ns.name(), "quiet").await.expect("mirrored");
    let alerts = store.job_alerts(job.id, 10).await.expect("alerts");
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0].event.kind, AlertKind::Overdue);
    assert!(
        alerts[0].event.detail.starts_with("no success within 3s"),
        "{:?}",
        alerts[0].event
    );

    // Run Now, a success: the gauge goes back to 0 and the incident recovers.
    api.patch(
        "quiet",
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({
            "metadata": { "annotations": { jtp_crds::RUN_NOW_ANNOTATION: chrono::Utc::now().to_rfc3339() } }
        })),
    )
    .await
    .expect("run now");
    eventually("the gauge to go back to 0", async || {
        operator
            .metrics
            .render()
            .contains(&format!("{series} 0"))
            .then_some(())
    })
    .await;
    let kinds: Vec<AlertKind> = store
        .job_alerts(job.id, 10)
        .await
        .expect("alerts")
        .into_iter()
        .map(|r| r.event.kind)
        .collect();
    assert_eq!(kinds, [AlertKind::Recovery, AlertKind::Overdue]);
    operator.stop(&ns).await;
}
