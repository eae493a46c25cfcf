//! `jtp-node`: the test node (kubelet + container runtime stand-in). See `jtp_testenv::node`.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use jtp_testenv::node::{DEFAULT_UNPULLABLE_PREFIX, MountMode, NodeConfig};

#[derive(Debug, Parser)]
#[command(about = "Test stand-in for kubelet + container runtime: runs pod containers as host processes")]
struct Args {
    /// Kubeconfig with the node's identity (system:node:<name>).
    #[arg(long, env = "JTP_NODE_KUBECONFIG")]
    kubeconfig: PathBuf,
    #[arg(long, env = "JTP_NODE_NAME", default_value = "jtp-node")]
    node_name: String,
    /// Where pod volumes, logs and scratch dirs live.
    #[arg(long, env = "JTP_NODE_STATE_DIR")]
    state_dir: PathBuf,
    /// Port of the kubelet API (TLS) on 127.0.0.1.
    #[arg(long, env = "JTP_NODE_PORT", default_value_t = 26250)]
    port: u16,
    #[arg(long)]
    tls_cert: PathBuf,
    #[arg(long)]
    tls_key: PathBuf,
    /// CA that signs the API server's kubelet client certificate.
    #[arg(long)]
    client_ca: PathBuf,
    #[arg(long, env = "JTP_UNPULLABLE_PREFIX", default_value = DEFAULT_UNPULLABLE_PREFIX)]
    unpullable_prefix: String,
    #[arg(long, env = "JTP_NODE_MAX_PODS", default_value_t = 110)]
    max_pods: u32,
    /// At most this many API requests from pod workers at once.
    #[arg(long, env = "JTP_NODE_API_CONCURRENCY", default_value_t = 32)]
    api_concurrency: usize,
    /// namespace (default when root) or rewrite.
    #[arg(long, env = "JTP_NODE_MOUNT_MODE", value_enum)]
    mount_mode: Option<MountMode>,
    /// First restart back-off for restartPolicy OnFailure/Always (doubles, capped at 300 s).
    #[arg(long, env = "JTP_NODE_RESTART_BACKOFF_SECONDS", default_value_t = 10)]
    restart_backoff_seconds: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,kube=warn,hyper=warn,rustls=warn".into()),
        )
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let args = Args::parse();
    let is_root = nix::unistd::geteuid().is_root();
    let mount_mode = args.mount_mode.unwrap_or(if is_root {
        MountMode::Namespace
    } else {
        MountMode::Rewrite
    });
    let config = NodeConfig {
        node_name: args.node_name,
        kubeconfig: args.kubeconfig,
        state_dir: args.state_dir,
        port: args.port,
        tls_cert: args.tls_cert,
        tls_key: args.tls_key,
        client_ca: args.client_ca,
        unpullable_prefix: args.unpullable_prefix,
        max_pods: args.max_pods,
        api_concurrency: args.api_concurrency,
        mount_mode,
        restart_backoff: Duration::from_secs(args.restart_backoff_seconds),
    };
    tracing::info!(?mount_mode, node = %config.node_name, "jtp-node starting");
    jtp_testenv::node::run(config).await?;
    Ok(())
}
