//! `jtp operator`: the Kubernetes controller for ScheduledJobs.
//!
//! Pipeline per ScheduledJob ([`reconcile`]): observe its Jobs → record finished runs in SQL →
//! [`decide`](decide::decide) (pure, on the run policy of [`jtp_crds::policy`]) → apply Jobs by
//! server-side apply → publish status, Events and the requeue at the next run. Only the replica
//! holding the leader Lease schedules.

pub mod builder;
pub mod decide;
pub mod expectations;
pub mod leader;
pub mod ledger;
pub mod metrics;
pub mod reconcile;
pub mod runs;
pub mod trust;
pub mod writer;

use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use builder::JobDefaults;
pub use ledger::{Ledger, LedgerError, MemoryLedger, SqlLedger};
pub use metrics::Metrics;

/// The one field manager of every server-side apply the operator makes.
pub const FIELD_MANAGER: &str = "jtp-operator";
/// Finalizer that keeps a deleted ScheduledJob until its SQL mirror row is marked deleted.
pub const FINALIZER: &str = "jobtrigger.io/sql-mirror";
/// Default image of runs whose spec names none.
pub const DEFAULT_IMAGE: &str = "busybox:1.36";

/// Everything that can go wrong, each with a static label for metrics and logs.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API error: {0}")]
    Kube(#[source] kube::Error),
    #[error(
        "the ScheduledJob CustomResourceDefinition (scheduledjobs.jobtrigger.io) is not installed: \
         apply it first (`jtp crd | kubectl apply -f -` or the Helm chart)"
    )]
    CrdMissing,
    #[error("cannot load the Kubernetes client configuration: {0}")]
    Config(#[source] kube::Error),
    #[error("SQL store error: {0}")]
    Ledger(#[source] LedgerError),
    #[error("cannot build the Job: {0}")]
    Build(&'static str),
    #[error("the object has no namespace")]
    MissingNamespace,
    #[error("finalizer error: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
    #[error("cannot serve metrics: {0}")]
    Serve(#[source] std::io::Error),
    #[error("lost the leader lease")]
    LeadershipLost,
    #[error("the cache of Jobs has not been listed yet")]
    CacheNotReady,
    #[error("--protected-service-accounts (JTP_PROTECTED_SERVICE_ACCOUNTS): {0:?} is not namespace/name")]
    Trust(String),
    #[error("{0}")]
    Flag(String),
}

impl Error {
    /// A short static label for metrics and Events.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Kube(_) => "kube",
            Self::CrdMissing => "crd_missing",
            Self::Config(_) => "config",
            Self::Ledger(_) => "ledger",
            Self::Build(_) => "build",
            Self::MissingNamespace => "missing_namespace",
            Self::Finalizer(e) => match e.as_ref() {
                kube::runtime::finalizer::Error::ApplyFailed(inner)
                | kube::runtime::finalizer::Error::CleanupFailed(inner) => inner.label(),
                _ => "finalizer",
            },
            Self::Serve(_) => "serve",
            Self::LeadershipLost => "leadership_lost",
            Self::CacheNotReady => "cache_not_ready",
            Self::Trust(_) => "trust",
            Self::Flag(_) => "flag",
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Command-line flags of `jtp operator`; each also reads an environment variable (Helm values).
#[derive(clap::Args, Clone, Debug)]
pub struct OperatorArgs {
    /// Namespaces to watch, comma-separated (default: all namespaces).
    #[arg(long, env = "JTP_NAMESPACES", value_delimiter = ',')]
    pub namespaces: Vec<String>,
    /// Image of runs whose spec names none.
    #[arg(long, env = "JTP_DEFAULT_IMAGE", default_value = DEFAULT_IMAGE)]
    pub default_image: String,
    /// Database URL (postgres://… or sqlite://…) where runs are recorded; without it runs are not
    /// kept (in memory only: lost at restart, not in the portal, no alerts), which a warning at
    /// start says.
    #[arg(long, env = "JTP_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Address of /metrics, /healthz and /readyz.
    #[arg(long, env = "JTP_METRICS_ADDR", default_value = "127.0.0.1:9090")]
    pub metrics_addr: SocketAddr,
    /// Bytes of a run's output kept (half from its head, half from its tail); the rest of the
    /// log is read and dropped, never held in memory.
    #[arg(long = "output-cap-bytes", env = "JTP_OUTPUT_CAP_BYTES", default_value_t = jtp_store::DEFAULT_OUTPUT_CAP)]
    pub output_cap: usize,
    /// Seconds a run may sit in an image pull failure (or unschedulable) before it is recorded as ERROR.
    #[arg(long, env = "JTP_ERROR_GRACE_SECONDS", default_value_t = 30)]
    pub error_grace_seconds: u64,
    /// Seconds after which a deleted ScheduledJob is let go even if SQL is unreachable.
    #[arg(long, env = "JTP_FINALIZER_TIMEOUT_SECONDS", default_value_t = 300)]
    pub finalizer_timeout_seconds: u64,
    /// Seconds a status change made by starting a run may wait, so that a run ending within
    /// them costs one status write and one Event instead of two each (0 writes at once).
    #[arg(long, env = "JTP_STATUS_COALESCE_SECONDS", default_value_t = 5)]
    pub status_coalesce_seconds: u64,
    /// Run without leader election (one replica only).
    #[arg(long, env = "JTP_NO_LEADER_ELECTION")]
    pub no_leader_election: bool,
    /// Name of the leader Lease.
    #[arg(long, env = "JTP_LEASE_NAME", default_value = "jtp-operator")]
    pub lease_name: String,
    /// Namespace of the leader Lease (default: $POD_NAMESPACE, else `default`).
    #[arg(long, env = "JTP_LEASE_NAMESPACE")]
    pub lease_namespace: Option<String>,
    /// Lease duration in seconds; a standby takes over this long after the leader stops renewing.
    #[arg(long, env = "JTP_LEASE_DURATION_SECONDS", default_value_t = 15)]
    pub lease_duration_seconds: u64,
    /// This replica's identity in the Lease (default: $POD_NAME, else host name and pid).
    #[arg(long, env = "JTP_IDENTITY")]
    pub identity: Option<String>,
    /// The namespace the operator is installed in; no ScheduledJob runs there unless
    /// --allow-own-namespace.
    #[arg(long, env = "POD_NAMESPACE")]
    pub own_namespace: Option<String>,
    /// Run ScheduledJobs in the operator's own namespace too.
    #[arg(long, env = "JTP_ALLOW_OWN_NAMESPACE")]
    pub allow_own_namespace: bool,
    /// Namespaces where no ScheduledJob runs, comma-separated.
    #[arg(
        long,
        env = "JTP_REFUSED_NAMESPACES",
        value_delimiter = ',',
        default_value = trust::DEFAULT_REFUSED_NAMESPACES
    )]
    pub refused_namespaces: Vec<String>,
    /// ServiceAccounts (namespace/name, comma-separated) no run may use, such as the operator's and
    /// the portal's own.
    #[arg(long, env = "JTP_PROTECTED_SERVICE_ACCOUNTS", value_delimiter = ',')]
    pub protected_service_accounts: Vec<String>,
    /// The global retention of runs in SQL; the leader prunes in the background.
    #[command(flatten)]
    pub retention: crate::retention::RetentionArgs,
    /// Webhook receivers of alerts; the leader sends them.
    #[command(flatten)]
    pub alerts: crate::alerts::AlertArgs,
    /// The Secret holding the receivers' URLs, one key per receiver (`NAME` in the operator's own
    /// namespace, or `NAMESPACE/NAME`), read through the API at each send; the chart's Role lets
    /// the operator get that one Secret and no other.
    #[arg(long, env = "JTP_ALERT_URL_SECRET")]
    pub alert_url_secret: Option<String>,
}

impl OperatorArgs {
    /// Flags as parsed from an empty command line (plus environment), for tests to adjust.
    pub fn defaults() -> Self {
        Self {
            namespaces: Vec::new(),
            default_image: DEFAULT_IMAGE.into(),
            database_url: None,
            output_cap: jtp_store::DEFAULT_OUTPUT_CAP,
            metrics_addr: SocketAddr::from(([127, 0, 0, 1], 9090)),
            error_grace_seconds: 30,
            finalizer_timeout_seconds: 300,
            status_coalesce_seconds: 5,
            no_leader_election: false,
            lease_name: "jtp-operator".into(),
            lease_namespace: None,
            lease_duration_seconds: 15,
            identity: None,
            own_namespace: None,
            allow_own_namespace: false,
            refused_namespaces: vec![trust::DEFAULT_REFUSED_NAMESPACES.into()],
            protected_service_accounts: Vec::new(),
            retention: crate::retention::RetentionArgs::default(),
            alerts: crate::alerts::AlertArgs::default(),
            alert_url_secret: None,
        }
    }

    /// Where the Secret of `--alert-url-secret` is: `(namespace, name)`; an empty value (an unset
    /// Helm value) is none.
    fn alert_url_secret(&self) -> Result<Option<(String, String)>> {
        let Some(value) = self
            .alert_url_secret
            .as_deref()
            .map(str::trim)
            .filter(|v| !v.is_empty())
        else {
            return Ok(None);
        };
        let (namespace, name) = match value.split_once('/') {
            Some((ns, name)) => (ns.to_owned(), name.to_owned()),
            None => (
                self.own_namespace.clone().unwrap_or_else(|| "default".to_owned()),
                value.to_owned(),
            ),
        };
        if namespace.is_empty() || name.is_empty() || name.contains('/') {
            return Err(Error::Flag(format!(
                "--alert-url-secret (JTP_ALERT_URL_SECRET): {value:?} is not NAME or NAMESPACE/NAME"
            )));
        }
        Ok(Some((namespace, name)))
    }

    pub(crate) fn identity(&self) -> String {
        self.identity
            .clone()
            .or_else(|| std::env::var("POD_NAME").ok())
            .unwrap_or_else(|| format!("{}-{}", crate::process::hostname(), std::process::id()))
    }
}

/// Entry point of `jtp operator`: connects, picks the SQL store, serves metrics and runs until
/// interrupted (or until leadership is lost, which ends the process so it restarts as a standby).
pub async fn run(args: OperatorArgs) -> Result<()> {
    let client = kube::Client::try_default().await.map_err(Error::Config)?;
    let ledger = open_ledger(args.database_url.as_deref(), args.output_cap).await?;
    let metrics = Metrics::new();
    run_with(client, args, ledger, metrics, crate::process::shutdown_signal()).await
}

/// What the operator says at start without a database URL.
const NO_DATABASE_WARNING: &str = "no --database-url (JTP_DATABASE_URL): runs are NOT kept: they live in \
    this process's memory only, are lost at restart, are not shown by the portal, and nothing alerts or is \
    pruned; to record them in SQL, set --database-url or JTP_DATABASE_URL to postgres://USER:PASSWORD@HOST/DB \
    or sqlite://PATH";

/// Opens the run store named by the URL; without one, runs are kept in memory only (warned).
async fn open_ledger(url: Option<&str>, output_cap: usize) -> Result<Arc<dyn Ledger>> {
    match url.map(str::trim).filter(|u| !u.is_empty()) {
        None => {
            tracing::warn!("{NO_DATABASE_WARNING}");
            Ok(Arc::new(MemoryLedger::new()))
        }
        Some(url) => {
            let ledger = ledger::SqlLedger::with_output_cap(url, output_cap);
            match ledger.store().await {
                Ok(store) => tracing::info!(url = %store.url(), "recording runs in SQL"),
                // Scheduling goes on; runs are recorded once the database is back.
                Err(e) => tracing::warn!(error = %e, "the database is unreachable for now"),
            }
            Ok(Arc::new(ledger))
        }
    }
}

/// Runs the operator with a given client and store until `shutdown` completes. Tests call this
/// in-process with a [`SqlLedger`] on a database of their own.
pub async fn run_with(
    client: kube::Client,
    mut args: OperatorArgs,
    ledger: Arc<dyn Ledger>,
    metrics: Arc<Metrics>,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<()> {
    // `JTP_NAMESPACES=""` (the chart's default) means all namespaces.
    args.namespaces.retain(|ns| !ns.trim().is_empty());
    let retention = args.retention.policy().map_err(Error::Flag)?;
    let alerts = Arc::new(args.alerts.config().map_err(Error::Flag)?);
    let url_secret = args.alert_url_secret()?;
    reconcile::check_crd(&client, &args.namespaces).await?;
    let _server = AbortOnDrop(tokio::spawn({
        let (addr, metrics) = (args.metrics_addr, metrics.clone());
        async move {
            if let Err(e) = metrics::serve(addr, metrics).await {
                tracing::error!(error = %e, "metrics server stopped");
            }
        }
    }));
    let result = lead_and_run(
        client,
        &args,
        ledger,
        metrics.clone(),
        (retention, alerts, url_secret),
        shutdown,
    )
    .await;
    metrics.set_leader(false);
    result
}

/// Aborts a spawned task when dropped, so nothing outlives the operator.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn lead_and_run(
    client: kube::Client,
    args: &OperatorArgs,
    ledger: Arc<dyn Ledger>,
    metrics: Arc<Metrics>,
    (retention, alerts, url_secret): (
        jtp_crds::Retention,
        Arc<crate::alerts::AlertConfig>,
        Option<(String, String)>,
    ),
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<()> {
    // Only the leader prunes, checks the dead-man's switches and sends alerts: each starts with
    // leadership and stops with it.
    let pruner = {
        let (ledger, metrics, client) = (ledger.clone(), metrics.clone(), client.clone());
        move || {
            let store = {
                let ledger = ledger.clone();
                move || {
                    let ledger = ledger.clone();
                    async move { ledger.sql_store().await.ok().flatten() }
                }
            };
            let metrics = metrics.clone();
            let urls = Arc::new(crate::alerts::UrlSource {
                secret: url_secret
                    .clone()
                    .map(|(namespace, name)| crate::alerts::SecretUrls {
                        api: Api::namespaced(client.clone(), &namespace),
                        namespace,
                        name,
                    }),
                dir: alerts.url_dir.clone(),
            });
            let send = crate::alerts::deliver_forever(store.clone(), Arc::clone(&alerts), urls);
            let watch = crate::alerts::watch_forever(store, move |check| metrics.set_jobs(check));
            (
                AbortOnDrop(tokio::spawn(prune_forever(ledger.clone(), retention.clone()))),
                AbortOnDrop(tokio::spawn(watch)),
                AbortOnDrop(tokio::spawn(send)),
            )
        }
    };
    let ctx = Arc::new(reconcile::Context::new(
        client.clone(),
        args,
        ledger,
        metrics.clone(),
    )?);
    let namespaces = args.namespaces.clone();
    let mut shutdown = std::pin::pin!(shutdown);
    if args.no_leader_election {
        metrics.set_ready(true);
        metrics.set_leader(true);
        let _pruner = pruner();
        tokio::select! {
            () = reconcile::run_controllers(ctx, namespaces) => {}
            () = &mut shutdown => tracing::info!("shutting down"),
        }
        return Ok(());
    }
    let lease_ns = args
        .lease_namespace
        .clone()
        .or_else(|| std::env::var("POD_NAMESPACE").ok())
        .unwrap_or_else(|| "default".into());
    let duration = Duration::from_secs(args.lease_duration_seconds.max(3));
    let renew_every = duration / 3;
    let mut elector = leader::LeaderElector::new(
        Api::<Lease>::namespaced(client, &lease_ns),
        &args.lease_name,
        &args.identity(),
        duration,
    );
    metrics.set_ready(true);
    tracing::info!(identity = elector.identity(), lease = %args.lease_name, namespace = %lease_ns, "waiting for the leader lease");
    loop {
        match elector.try_acquire_or_renew().await {
            Ok(true) => break,
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "leader election"),
        }
        tokio::select! {
            () = tokio::time::sleep(renew_every) => {}
            () = &mut shutdown => return Ok(()),
        }
    }
    tracing::info!(identity = elector.identity(), "became the leader");
    metrics.set_leader(true);
    let controllers = AbortOnDrop(tokio::spawn(reconcile::run_controllers(ctx, namespaces)));
    let pruner = pruner();
    let mut renewed = Instant::now();
    let outcome = loop {
        tokio::select! {
            () = tokio::time::sleep(renew_every) => {}
            () = &mut shutdown => {
                tracing::info!("shutting down");
                break Ok(());
            }
        }
        match elector.try_acquire_or_renew().await {
            Ok(true) => renewed = Instant::now(),
            Ok(false) => break Err(Error::LeadershipLost),
            Err(e) if renewed.elapsed() + renew_every >= duration => {
                tracing::error!(error = %e, "cannot renew the leader lease in time");
                break Err(Error::LeadershipLost);
            }
            Err(e) => tracing::warn!(error = %e, "renewing the leader lease"),
        }
        if controllers.0.is_finished() {
            break Ok(());
        }
    };
    drop(controllers);
    drop(pruner);
    metrics.set_leader(false);
    if outcome.is_ok() {
        elector.release().await;
    }
    outcome
}

/// The retention pass of the leader: at once, then every [`crate::retention::PRUNE_EVERY`]. A
/// pass that fails (the database is down) is logged and tried again at the next turn.
async fn prune_forever(ledger: Arc<dyn Ledger>, global: jtp_crds::Retention) {
    loop {
        match ledger.prune_runs(&global).await {
            Ok(0) => tracing::debug!("retention: nothing to delete"),
            Ok(deleted) => tracing::info!(deleted, "retention: deleted runs"),
            Err(e) => tracing::warn!(error = %e, "retention pass failed; will try again"),
        }
        tokio::time::sleep(crate::retention::PRUNE_EVERY).await;
    }
}
