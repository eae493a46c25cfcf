//! `jtp portal`: the portal in a cluster. It reads the operator's SQL mirror, writes ScheduledJob
//! resources, and authenticates every request with the user's own Kubernetes token (TokenReview)
//! and rights (SubjectAccessReview), so it may listen beyond loopback.

use clap::Args;
use jtp_dashboard::session::SessionKeys;
use jtp_dashboard::{AppState, PortalConfig};
use jtp_store::Store;
use std::net::SocketAddr;

/// `jtp portal` flags; each also reads an environment variable.
#[derive(Args, Clone, Debug)]
pub struct PortalArgs {
    /// Address to listen on (the Helm chart sets 0.0.0.0:8080 inside the pod).
    #[arg(long, env = "JTP_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// The operator's database (`postgres://…` or `sqlite://…`).
    #[arg(long, env = "JTP_DATABASE_URL", hide_env_values = true)]
    pub database_url: String,
    /// Mark cookies Secure (serve the portal over HTTPS, e.g. behind an ingress).
    #[arg(long, env = "JTP_SECURE_COOKIES")]
    pub secure_cookies: bool,
    /// A file of session secrets, one per line, the current one first (the chart mounts a generated
    /// Secret). Every replica given the same file reads the others' browser sessions. Without it
    /// the portal makes a random key: sessions then work on this replica only, until it restarts.
    #[arg(long, env = "JTP_SESSION_SECRET_FILE")]
    pub session_secret_file: Option<std::path::PathBuf>,
    /// The operator's global retention policy, shown on job pages (set both from the same values).
    #[command(flatten)]
    pub retention: crate::retention::RetentionArgs,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] jtp_store::Error),
    #[error("no Kubernetes configuration (in-cluster or KUBECONFIG): {0}")]
    Kube(#[from] kube::Error),
    #[error("{0}")]
    Config(String),
    #[error("portal on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// Serves the portal until SIGTERM or Ctrl-C.
pub async fn run(args: PortalArgs) -> Result<(), Error> {
    let retention = args.retention.policy().map_err(Error::Config)?;
    let session_keys = match &args.session_secret_file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| Error::Config(format!("--session-secret-file {}: {e}", path.display())))?;
            SessionKeys::from_secrets(&text)
                .map_err(|e| Error::Config(format!("--session-secret-file {}: {e}", path.display())))?
        }
        None => {
            tracing::warn!(
                "no --session-secret-file: browser sessions are sealed with a random key and work on this replica only"
            );
            SessionKeys::random()
        }
    };
    let store = Store::connect(&args.database_url).await?;
    let client = kube::Client::try_default().await?;
    let config = PortalConfig {
        secure_cookies: args.secure_cookies,
        retention,
        session_keys,
        ..PortalConfig::default()
    };
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|source| Error::Listen {
            addr: args.listen,
            source,
        })?;
    let state = AppState::kubernetes(store, client, config);
    jtp_dashboard::serve(listener, state, crate::process::shutdown_signal())
        .await
        .map_err(|source| Error::Listen {
            addr: args.listen,
            source,
        })
}
