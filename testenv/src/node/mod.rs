//! `jtp-node`: a stand-in for kubelet plus a container runtime, for tests only.
//!
//! It registers a Ready [`Node`](k8s_openapi::api::core::v1::Node), renews its Lease, runs
//! the containers of the pods bound to it as host processes (no images, no isolation
//! beyond an optional private mount namespace) and reports their status the way a kubelet
//! does. It also serves the kubelet's `containerLogs` endpoint over TLS so `kubectl logs`
//! goes through the real API server.

mod error;
mod logs;
mod pods;
mod registration;
mod runtime;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use error::{Error, Result};

/// Field manager for every write the node makes.
pub const FIELD_MANAGER: &str = "jtp-node";
/// Image prefix that is never "pulled": such containers stay in ErrImagePull/ImagePullBackOff.
pub const DEFAULT_UNPULLABLE_PREFIX: &str = "unpullable.invalid/";

/// How containers see their volumes at the `mountPath` the pod asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum MountMode {
    /// Each container runs in a private mount namespace (`unshare --mount`) with its
    /// volumes bind-mounted at their mount paths. Needs root.
    Namespace,
    /// No mounts: mount path prefixes in command, args, env values and workingDir are
    /// rewritten to the volume's directory on the host.
    Rewrite,
}

/// Everything the node needs to run.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub node_name: String,
    pub kubeconfig: PathBuf,
    pub state_dir: PathBuf,
    pub port: u16,
    pub tls_cert: PathBuf,
    pub tls_key: PathBuf,
    pub client_ca: PathBuf,
    pub unpullable_prefix: String,
    pub max_pods: u32,
    pub api_concurrency: usize,
    pub mount_mode: MountMode,
    pub restart_backoff: Duration,
}

/// Runs the node until SIGTERM/SIGINT, then kills every container it started.
pub async fn run(config: NodeConfig) -> Result<()> {
    let kubeconfig = kube::config::Kubeconfig::read_from(&config.kubeconfig)?;
    let client_config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &kube::config::KubeConfigOptions::default()).await?;
    let apiserver_port = client_config.cluster_url.port_u16().unwrap_or(443);
    let client = kube::Client::try_from(client_config)?;
    let config = Arc::new(config);
    std::fs::create_dir_all(config.state_dir.join("pods"))
        .map_err(Error::io("creating", config.state_dir.join("pods")))?;

    registration::register(&client, &config).await?;
    let logs = logs::LogRegistry::default();
    let runtime = Arc::new(runtime::Runtime::new(
        client.clone(),
        config.clone(),
        logs.clone(),
        apiserver_port,
    ));

    let heartbeat = tokio::spawn(registration::heartbeat(client.clone(), config.clone()));
    let server = tokio::spawn(logs::serve(config.clone(), logs));
    let pods = tokio::spawn(pods::run(client.clone(), config.clone(), runtime.clone()));

    let mut term =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).map_err(Error::Serve)?;
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: stopping"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: stopping"),
        r = server => { tracing::error!(result = ?r, "kubelet API server stopped"); }
        r = pods => { tracing::error!(result = ?r, "pod watch stopped"); }
    }
    heartbeat.abort();
    runtime.kill_all().await;
    Ok(())
}
