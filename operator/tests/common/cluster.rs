//! What the tests of the in-process operator against testenv's control plane share: the client
//! with the CRD installed, an operator recording in a real SQL store (a SQLite file of the test,
//! or a database of its own on the test PostgreSQL), and reading the runs back from that store
//! through the same API the portal reads them with.

use jtp_crds::ScheduledJob;
use jtp_operator::controller::{Metrics, OperatorArgs, SqlLedger, run_with};
use jtp_store::{Run, Store};
use jtp_testenv::{TestNamespace, wait_for};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use kube::{Api, CustomResourceExt};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const TIMEOUT: Duration = Duration::from_secs(90);
pub const POLL: Duration = Duration::from_millis(250);

/// The test cluster's client, with the ScheduledJob CRD applied and established.
pub async fn client() -> kube::Client {
    init_logs();
    let client = jtp_testenv::cluster().await;
    install_crd(&client).await;
    client
}

/// The in-process operator's logs go to the test's captured output, shown when a test fails.
fn init_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("jtp_operator=trace,kube=info,kube_runtime=debug")
    });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
}

async fn install_crd(client: &kube::Client) {
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
}

/// The SQL store a test's operators record in and the test reads back.
pub struct Database {
    /// What the operators connect to.
    pub url: String,
    /// The test's own connection.
    pub store: Store,
    kind: Kind,
}

enum Kind {
    Sqlite { _dir: tempfile::TempDir },
    Postgres { server: String, name: String },
}

impl Database {
    /// A fresh SQLite file in a temporary folder (removed with it).
    pub async fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("jtp.db").display());
        // Migrated here, before any operator connects.
        let store = Store::connect(&url).await.expect("open the SQLite store");
        Self {
            url,
            store,
            kind: Kind::Sqlite { _dir: dir },
        }
    }

    /// A database of its own (`<prefix>_…`) on the test PostgreSQL (`JTP_TEST_POSTGRES_URL`);
    /// [`Database::remove`] removes it.
    pub async fn postgres(prefix: &str) -> Self {
        let server = jtp_store::testing::postgres_server_url();
        let (name, url) = jtp_store::testing::create_database(&server, prefix).await;
        let store = Store::connect(&url).await.expect("connect to the test database");
        Self {
            url,
            store,
            kind: Kind::Postgres { server, name },
        }
    }

    /// Closes the test's connection and removes the database.
    pub async fn remove(self) {
        self.store.close().await;
        if let Kind::Postgres { server, name } = &self.kind {
            jtp_store::testing::drop_database(server, name).await;
        }
    }
}

/// The runs of the ScheduledJob with this UID, newest first, each with its stored output (the
/// rows the portal shows); none while the job has no mirror row yet.
pub async fn runs_of(store: &Store, uid: &str) -> Vec<Run> {
    try_runs(store, uid)
        .await
        .unwrap_or_else(|e| panic!("reading the runs of {uid}: {e}"))
}

async fn try_runs(store: &Store, uid: &str) -> Result<Vec<Run>, jtp_store::Error> {
    let job = match store.get_job_by_uid(uid).await {
        Ok(job) => job,
        Err(jtp_store::Error::NotFound { .. }) => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut runs = Vec::new();
    for summary in store.list_runs(job.id, 100, 0).await?.items {
        runs.push(store.get_run(summary.id).await?);
    }
    Ok(runs)
}

/// Polls the store until `cond` holds for the runs of `uid` (as [`runs_of`] reads them).
pub async fn wait_runs(
    store: &Store,
    uid: &str,
    what: &str,
    timeout: Duration,
    cond: impl Fn(&[Run]) -> bool,
) -> Vec<Run> {
    let deadline = Instant::now() + timeout;
    loop {
        let last = match try_runs(store, uid).await {
            Ok(runs) if cond(&runs) => return runs,
            Ok(runs) => format!("{runs:#?}"),
            Err(e) => e.to_string(),
        };
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; last: {last}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// The first finished run of `uid`, once there is one.
pub async fn first_finished(store: &Store, uid: &str) -> Run {
    let runs = wait_runs(store, uid, "a finished run", TIMEOUT, |r| !finished(r).is_empty()).await;
    finished(&runs)[0].clone()
}

/// The finished runs among `runs`.
pub fn finished(runs: &[Run]) -> Vec<&Run> {
    runs.iter().filter(|r| r.summary.status.is_finished()).collect()
}

/// Polls `probe` every [`POLL`] until it gives a value; fails the test after [`TIMEOUT`].
pub async fn eventually<T>(what: &str, mut probe: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if let Some(found) = probe().await {
            return found;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(POLL).await;
    }
}

/// An in-process operator recording in SQL: leader election off, ERROR after 3 s of a stuck pod,
/// metrics on a free port; `tweak` changes the rest.
pub struct Operator {
    pub metrics: Arc<Metrics>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<jtp_operator::controller::Result<()>>,
}

impl Operator {
    pub fn start(
        client: &kube::Client,
        namespaces: &[&str],
        url: &str,
        tweak: impl FnOnce(&mut OperatorArgs),
    ) -> Self {
        let mut args = OperatorArgs::defaults();
        args.namespaces = namespaces.iter().map(|ns| (*ns).to_owned()).collect();
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

    /// Graceful stop (releases the lease).
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = tokio::time::timeout(Duration::from_secs(10), &mut self.task).await;
        self.task.abort();
    }

    /// As if the process were killed: nothing is released.
    pub fn kill(self) {
        self.task.abort();
    }
}

/// Deletes every ScheduledJob of the namespace while an operator still runs, so their finalizers
/// are removed and the namespace can go when the test ends.
pub async fn delete_all(ns: &TestNamespace) {
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
}
