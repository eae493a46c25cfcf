//! `jtp portal`: the portal in a cluster. It reads the operator's SQL mirror, writes ScheduledJob
//! resources, and authenticates every request with the user's own Kubernetes token (TokenReview)
//! and rights (SubjectAccessReview), so it may listen beyond loopback.

use clap::Args;
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
    let store = Store::connect(&args.database_url).await?;
    let client = kube::Client::try_default().await?;
    let config = PortalConfig {
        secure_cookies: args.secure_cookies,
        retention,
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
