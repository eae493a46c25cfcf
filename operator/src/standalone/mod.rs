//! Standalone mode: the original system rebuilt on one machine — a database-backed runner that
//! runs scripts as local processes and records their output, with the portal on top, the jobs of
//! a folder of manifests loaded and kept in step.

pub mod contain;
pub mod executor;
pub mod folder;
pub mod loader;
pub mod pod;
pub mod runner;

use crate::controller::metrics::{self, Metrics};
use clap::Args;
use jtp_dashboard::{AppState, LocalAuth, PortalConfig, check_listen_policy};
use jtp_store::{Store, StoreOptions};
use nix::fcntl::{Flock, FlockArg};
use runner::{Objects, Runner, RunnerConfig};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, watch};

/// `jtp standalone` flags; each also reads an environment variable.
#[derive(Args, Clone, Debug)]
pub struct StandaloneArgs {
    /// Address of the portal.
    #[arg(long, env = "JTP_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Folder for the SQLite database and the runner's scratch files.
    #[arg(long, env = "JTP_DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,
    /// Database URL (`sqlite://…` or `postgres://…`); default: SQLite in the data folder.
    #[arg(long, env = "JTP_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Folder of ScheduledJob manifests to load and keep in step (empty string: none). A folder
    /// that does not exist is an error at start.
    #[arg(
        long,
        env = "JTP_JOBS_DIR",
        default_value = "examples",
        value_parser = clap::builder::TypedValueParser::map(clap::builder::OsStringValueParser::new(), PathBuf::from)
    )]
    pub jobs_dir: PathBuf,
    /// Folder that `script.file` paths are relative to (default: `scripts` in the jobs folder).
    #[arg(long, env = "JTP_SCRIPTS_DIR")]
    pub scripts_dir: Option<PathBuf>,
    /// This runner's name in `job_execution_logs.runner` (default: `<hostname>-standalone`, or the
    /// next free `-2`, `-3`… when another runner on this data folder holds it); give each runner
    /// sharing a database from several machines its own. An id a live runner holds is refused.
    #[arg(long, env = "JTP_RUNNER_ID")]
    pub runner_id: Option<String>,
    /// Bytes of output kept per run (head and tail).
    #[arg(long = "output-cap-bytes", env = "JTP_OUTPUT_CAP_BYTES", default_value_t = jtp_store::DEFAULT_OUTPUT_CAP)]
    pub output_cap: usize,
    /// Seconds running scripts may go on after a shutdown request before they are killed.
    #[arg(
        long = "shutdown-grace",
        env = "JTP_SHUTDOWN_GRACE_SECONDS",
        default_value_t = 10
    )]
    pub shutdown_grace: u64,
    /// Allow the portal to listen on a non-loopback address (credentials are then required).
    #[arg(long, env = "JTP_ALLOW_NON_LOOPBACK")]
    pub allow_non_loopback: bool,
    /// Portal basic-auth user (with --portal-password).
    #[arg(long, env = "JTP_PORTAL_USER", requires = "portal_password")]
    pub portal_user: Option<String>,
    /// Portal basic-auth password.
    #[arg(long, env = "JTP_PORTAL_PASSWORD", hide_env_values = true)]
    pub portal_password: Option<String>,
    /// Portal bearer token (instead of a user and password).
    #[arg(
        long,
        env = "JTP_PORTAL_TOKEN",
        hide_env_values = true,
        conflicts_with = "portal_user"
    )]
    pub portal_token: Option<String>,
    /// Mark the session cookie Secure (serve the portal over HTTPS, e.g. behind a TLS proxy).
    #[arg(long, env = "JTP_SECURE_COOKIES")]
    pub secure_cookies: bool,
    /// Run the scheduler and executor without the portal.
    #[arg(long)]
    pub no_portal: bool,
    /// Also serve `/metrics`, `/healthz` and `/readyz` on this address, without the portal's
    /// login (the portal serves `/metrics` behind its own). Loopback unless --allow-non-loopback.
    #[arg(long, env = "JTP_METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,
    /// How each run's processes are kept together so that all of them end with the run: a cgroup
    /// per run (cgroup v2, as root or in a delegated cgroup), or tracking by a variable in their
    /// environment; `auto` takes the cgroup when it can.
    #[arg(long, env = "JTP_CONTAINMENT", value_enum, default_value_t = contain::Mode::Auto)]
    pub containment: contain::Mode,
    #[command(flatten)]
    pub retention: crate::retention::RetentionArgs,
    /// Webhook receivers of alerts.
    #[command(flatten)]
    pub alerts: crate::alerts::AlertArgs,
}

/// Why standalone mode could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Store(#[from] jtp_store::Error),
    #[error("portal on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

impl StandaloneArgs {
    /// The portal's settings; credentials given but empty (an unset variable in a deployment) are
    /// refused rather than taken as "no credentials".
    fn portal_config(&self) -> Result<PortalConfig, Error> {
        for (flag, value) in [
            ("--portal-user", &self.portal_user),
            ("--portal-password", &self.portal_password),
            ("--portal-token", &self.portal_token),
        ] {
            if value.as_deref().is_some_and(|v| v.trim().is_empty()) {
                return Err(Error::Config(format!(
                    "{flag} is empty: give it a value, or leave it out (the portal then stays on loopback)"
                )));
            }
        }
        if self.portal_password.is_some() && self.portal_user.is_none() {
            return Err(Error::Config(
                "--portal-password needs --portal-user (or use --portal-token)".to_owned(),
            ));
        }
        let local_auth = match (&self.portal_user, &self.portal_password, &self.portal_token) {
            (Some(user), Some(password), _) => LocalAuth::Basic {
                user: user.clone(),
                password: password.clone(),
            },
            (_, _, Some(token)) => LocalAuth::Token(token.clone()),
            _ => LocalAuth::Open,
        };
        Ok(PortalConfig {
            local_auth,
            allow_non_loopback: self.allow_non_loopback,
            secure_cookies: self.secure_cookies,
            retention: self.retention.policy().map_err(Error::Config)?,
            ..PortalConfig::default()
        })
    }

    fn database_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| sqlite_url(&database_file(&self.data_dir)))
    }
}

/// The SQLite file of a data folder, when no `--database-url` is given.
pub fn database_file(data_dir: &Path) -> PathBuf {
    data_dir.join("jtp.db")
}

/// The store's URL of a SQLite file.
pub fn sqlite_url(file: &Path) -> String {
    format!("sqlite://{}", file.display())
}

/// Runs standalone mode until Ctrl-C or SIGTERM.
pub async fn run(args: StandaloneArgs) -> Result<(), Error> {
    let (shutdown_tx, shutdown) = watch::channel(false);
    tokio::spawn(async move {
        crate::process::shutdown_signal().await;
        tracing::info!("shutting down");
        let _ = shutdown_tx.send(true);
    });
    run_until(args, shutdown).await
}

/// Runs standalone mode until `shutdown` turns true.
pub async fn run_until(args: StandaloneArgs, mut shutdown: watch::Receiver<bool>) -> Result<(), Error> {
    crate::process::raise_open_file_limit();
    let portal_config = args.portal_config()?;
    let alerts = Arc::new(args.alerts.config().map_err(Error::Config)?);
    if !args.no_portal {
        check_listen_policy(args.listen, &portal_config).map_err(Error::Config)?;
    }
    if let Some(addr) = args.metrics_addr
        && !addr.ip().is_loopback()
        && !args.allow_non_loopback
    {
        return Err(Error::Config(format!(
            "--metrics-addr {addr} is not a loopback address: the metrics name every job and need no login; \
             add --allow-non-loopback to serve them there"
        )));
    }
    if !args.jobs_dir.as_os_str().is_empty() && !args.jobs_dir.is_dir() {
        return Err(Error::Config(format!(
            "the jobs folder {} does not exist: create it, point --jobs-dir at the folder of \
             manifests, or pass --jobs-dir \"\" for none",
            args.jobs_dir.display()
        )));
    }
    std::fs::create_dir_all(&args.data_dir).map_err(|e| {
        Error::Config(format!(
            "cannot create the data folder {}: {e}",
            args.data_dir.display()
        ))
    })?;
    let options = StoreOptions {
        output_cap: args.output_cap,
        ..StoreOptions::default()
    };
    let store = Store::connect_with(&args.database_url(), options).await?;
    tracing::info!(database = %store.url(), "database ready");

    let wake = Arc::new(Notify::new());
    let objects = Objects::default();
    let jobs_dir = (!args.jobs_dir.as_os_str().is_empty()).then(|| args.jobs_dir.clone());
    let mut seen = None;
    if let Some(dir) = &jobs_dir {
        let fingerprint = folder::fingerprint(dir);
        if sync_folder(&store, dir, &objects).await {
            seen = Some(fingerprint);
        }
    }
    let (runner_id, _runner_lock, lock_path) = claim_runner_id(&args.data_dir, args.runner_id.as_deref())?;
    // Before anything runs: what a crashed runner with this id left running is ended first.
    let containment =
        contain::Containment::start(args.containment, &lock_path.with_extension("scope"), &runner_id)
            .map_err(Error::Config)?;
    let runner_config = RunnerConfig {
        id: runner_id,
        scripts_dir: args
            .scripts_dir
            .clone()
            .or_else(|| jobs_dir.as_ref().map(|d| d.join("scripts")))
            .unwrap_or_else(|| PathBuf::from("scripts")),
        work_dir: args.data_dir.join("run"),
        shutdown_grace: Duration::from_secs(args.shutdown_grace),
        containment: Arc::new(containment),
    };
    tracing::info!(
        runner = %runner_config.id,
        scripts = %runner_config.scripts_dir.display(),
        containment = %runner_config.containment.describe(),
        "runner starting"
    );
    let live = jtp_dashboard::live::LiveRuns::default();
    let metrics = Metrics::for_mode(metrics::Mode::Standalone);
    let runner = Runner::new(
        store.clone(),
        runner_config,
        objects.clone(),
        Arc::clone(&wake),
        live.clone(),
        Arc::clone(&metrics),
    );
    let runner_task = tokio::spawn(runner.run(shutdown.clone()));
    let pruner = tokio::spawn({
        let store = store.clone();
        let policy = portal_config.retention.clone();
        async move {
            store
                .prune_forever(
                    policy,
                    crate::retention::PRUNE_EVERY,
                    jtp_store::PruneOptions::default(),
                )
                .await
        }
    });
    let deadman = tokio::spawn({
        let (store, metrics) = (store.clone(), Arc::clone(&metrics));
        crate::alerts::watch_forever(
            move || {
                let store = store.clone();
                async move { Some(store) }
            },
            move |check| metrics.set_jobs(check),
        )
    });
    let metrics_server = match args.metrics_addr {
        None => None,
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| Error::Listen { addr, source })?;
            metrics.set_ready(true);
            let metrics = Arc::clone(&metrics);
            Some(tokio::spawn(async move {
                tracing::info!(%addr, "serving /metrics, /healthz and /readyz");
                let limits = jtp_dashboard::http::Limits::for_this_process();
                let served = jtp_dashboard::http::serve(
                    listener,
                    metrics::router(metrics),
                    limits,
                    std::future::pending(),
                )
                .await;
                if let Err(e) = served {
                    tracing::error!(error = %e, "metrics server stopped");
                }
            }))
        }
    };

    let sender = tokio::spawn({
        let store = store.clone();
        let urls = Arc::new(crate::alerts::UrlSource {
            secret: None,
            dir: alerts.url_dir.clone(),
        });
        crate::alerts::deliver_forever(
            move || {
                let store = store.clone();
                async move { Some(store) }
            },
            alerts,
            urls,
        )
    });

    let watcher = jobs_dir.map(|dir| {
        let (store, wake, objects, shutdown) = (store.clone(), Arc::clone(&wake), objects, shutdown.clone());
        tokio::spawn(watch_folder(store, dir, objects, wake, shutdown, seen))
    });

    if !args.no_portal {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .map_err(|source| Error::Listen {
                addr: args.listen,
                source,
            })?;
        let state = AppState::standalone(store.clone(), Arc::clone(&wake), live, portal_config);
        let mut stop = shutdown.clone();
        let signal = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        jtp_dashboard::serve_with(
            listener,
            state,
            Some(metrics::router(Arc::clone(&metrics))),
            signal,
        )
        .await
        .map_err(|source| Error::Listen {
            addr: args.listen,
            source,
        })?;
    } else {
        let _ = shutdown.wait_for(|s| *s).await;
    }
    let _ = runner_task.await;
    pruner.abort();
    deadman.abort();
    sender.abort();
    if let Some(server) = metrics_server {
        server.abort();
    }
    if let Some(watcher) = watcher {
        watcher.abort();
    }
    store.close().await;
    Ok(())
}

/// How often the jobs folder is checked for changes (file names, sizes and times: a cheap stat).
pub const FOLDER_POLL: Duration = Duration::from_secs(2);

async fn watch_folder(
    store: Store,
    dir: PathBuf,
    objects: Objects,
    wake: Arc<Notify>,
    mut shutdown: watch::Receiver<bool>,
    mut seen: Option<folder::Fingerprint>,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(FOLDER_POLL) => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
        let now = {
            let dir = dir.clone();
            tokio::task::spawn_blocking(move || folder::fingerprint(&dir))
                .await
                .ok()
        };
        if now.is_some() && now != seen {
            // A sync that failed is tried again at the next look, changed or not.
            seen = sync_folder(&store, &dir, &objects).await.then_some(now).flatten();
            wake.notify_one();
        }
    }
}

/// Loads the folder into the store; true when it was applied (problems in single files are
/// reported and do not count as failure). A folder that cannot be read keeps every job as it is.
async fn sync_folder(store: &Store, dir: &Path, objects: &Objects) -> bool {
    // Reading and parsing block, and a hostile file may take a while: off the runtime.
    let scanned = {
        let dir = dir.to_owned();
        tokio::task::spawn_blocking(move || folder::scan(&dir)).await
    };
    let scan = match scanned {
        Ok(Ok(scan)) => scan,
        Ok(Err(unreadable)) => {
            tracing::warn!(problem = %unreadable, "jobs folder: not read; its jobs are kept as they are");
            return false;
        }
        Err(e) => {
            tracing::error!(error = %e, "jobs folder: the scan failed");
            return false;
        }
    };
    if let Ok(mut objects) = objects.write() {
        objects.config_maps.clone_from(&scan.config_maps);
        objects.secrets.clone_from(&scan.secrets);
    }
    match loader::sync(store, dir, &scan, chrono::Utc::now()).await {
        Ok(report) => {
            for problem in &report.problems {
                tracing::error!(%problem, "jobs folder: not loaded");
            }
            for fields in &report.ignored {
                tracing::warn!(%fields, "jobs folder: ignored in standalone mode (Kubernetes pod only)");
            }
            tracing::info!(
                folder = %dir.display(),
                created = ?report.created,
                restored = ?report.restored,
                updated = ?report.updated,
                deleted = ?report.deleted,
                "jobs folder loaded"
            );
            true
        }
        Err(e) => {
            tracing::error!(error = %e, "jobs folder: could not update the database; will try again");
            false
        }
    }
}

/// How many default ids (`<host>-standalone`, `-2`, `-3`, …) are tried before giving up.
const DEFAULT_IDS: u32 = 64;

/// The runner id this process runs as, with the lock that proves it is alive: a lock file per id
/// in the data folder, held (`flock`) for the life of the process. An id given with
/// `--runner-id` that a live runner holds is refused; without one the first free default id is
/// taken, so a runner restarted alone gets its old id back (and closes what it left in flight),
/// while a second runner beside it gets its own and never closes the first one's runs.
fn claim_runner_id(
    data_dir: &Path,
    given: Option<&str>,
) -> Result<(String, Flock<std::fs::File>, PathBuf), Error> {
    let dir = data_dir.join("runners");
    std::fs::create_dir_all(&dir)
        .map_err(|e| Error::Config(format!("cannot create {}: {e}", dir.display())))?;
    let host = crate::process::hostname();
    let candidates: Vec<String> = match given {
        Some(id) => vec![id.to_owned()],
        None => (1..=DEFAULT_IDS)
            .map(|n| match n {
                1 => format!("{host}-standalone"),
                n => format!("{host}-standalone-{n}"),
            })
            .collect(),
    };
    for id in candidates {
        let file_name: String = id
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let path = dir.join(format!("{file_name}.lock"));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| Error::Config(format!("cannot open {}: {e}", path.display())))?;
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => return Ok((id, lock, path)),
            Err((_, nix::errno::Errno::EWOULDBLOCK)) if given.is_none() => continue,
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => {
                return Err(Error::Config(format!(
                    "runner id \"{id}\" is held by a live runner on this data folder ({}): give this one \
                     its own --runner-id",
                    path.display()
                )));
            }
            Err((_, e)) => return Err(Error::Config(format!("cannot lock {}: {e}", path.display()))),
        }
    }
    Err(Error::Config(format!(
        "{DEFAULT_IDS} runners already run on this data folder; give this one a --runner-id"
    )))
}
