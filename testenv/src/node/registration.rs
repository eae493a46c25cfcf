//! Registers the Node object, keeps its status Ready and renews its Lease.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::json;

use super::{FIELD_MANAGER, NodeConfig, Result};

/// The namespace kubelets keep their heartbeat Leases in.
const NODE_LEASE_NAMESPACE: &str = "kube-node-lease";
const LEASE_DURATION_SECONDS: i32 = 40;
const LEASE_RENEW_INTERVAL: Duration = Duration::from_secs(10);
const STATUS_REPORT_INTERVAL: Duration = Duration::from_secs(60);

/// Creates or updates the Node, posts a Ready status and the first Lease.
pub async fn register(client: &kube::Client, config: &NodeConfig) -> Result<()> {
    let nodes: Api<Node> = Api::all(client.clone());
    let name = &config.node_name;
    let node = json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": std::env::consts::ARCH.replace("x86_64", "amd64").replace("aarch64", "arm64"),
                "jobtrigger.io/testenv-node": "true",
            },
        },
    });
    let params = PatchParams::apply(FIELD_MANAGER).force();
    nodes.patch(name, &params, &Patch::Apply(&node)).await?;
    post_status(&nodes, config, ready_since()).await?;
    renew_lease(client, config).await?;
    tracing::info!(node = %name, "node registered and Ready");
    Ok(())
}

/// Renews the Lease every few seconds and re-posts the status now and then, forever.
pub async fn heartbeat(client: kube::Client, config: Arc<NodeConfig>) {
    let nodes: Api<Node> = Api::all(client.clone());
    let mut since_status = Duration::ZERO;
    loop {
        tokio::time::sleep(LEASE_RENEW_INTERVAL).await;
        if let Err(error) = renew_lease(&client, &config).await {
            tracing::warn!(%error, "renewing the node lease failed");
        }
        since_status += LEASE_RENEW_INTERVAL;
        if since_status >= STATUS_REPORT_INTERVAL {
            since_status = Duration::ZERO;
            if let Err(error) = post_status(&nodes, &config, ready_since()).await {
                tracing::warn!(%error, "posting node status failed");
            }
        }
    }
}

/// When this node process became Ready: the conditions' lastTransitionTime.
fn ready_since() -> Timestamp {
    static SINCE: std::sync::OnceLock<Timestamp> = std::sync::OnceLock::new();
    *SINCE.get_or_init(Timestamp::now)
}

async fn post_status(nodes: &Api<Node>, config: &NodeConfig, since: Timestamp) -> Result<()> {
    let now = Timestamp::now().to_string();
    let since = since.to_string();
    let condition = |kind: &str, status: &str, reason: &str, message: &str| {
        json!({
            "type": kind, "status": status, "reason": reason, "message": message,
            "lastHeartbeatTime": now, "lastTransitionTime": since,
        })
    };
    let capacity = json!({
        "cpu": "16", "memory": "64Gi", "pods": config.max_pods.to_string(),
        "ephemeral-storage": "100Gi",
    });
    let status = json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": { "name": config.node_name },
        "status": {
            "capacity": capacity,
            "allocatable": capacity,
            "addresses": [
                { "type": "InternalIP", "address": "127.0.0.1" },
                { "type": "Hostname", "address": config.node_name },
            ],
            "daemonEndpoints": { "kubeletEndpoint": { "Port": config.port } },
            "conditions": [
                condition("MemoryPressure", "False", "KubeletHasSufficientMemory", "jtp-node has sufficient memory available"),
                condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "jtp-node has no disk pressure"),
                condition("PIDPressure", "False", "KubeletHasSufficientPID", "jtp-node has sufficient PID available"),
                condition("Ready", "True", "KubeletReady", "jtp-node is posting ready status (test stand-in for kubelet)"),
            ],
            "nodeInfo": {
                "machineID": "jtp-testenv", "systemUUID": "jtp-testenv", "bootID": "jtp-testenv",
                "kernelVersion": "host", "osImage": "host processes (jtp-node)",
                "containerRuntimeVersion": concat!("jtp-node://", env!("CARGO_PKG_VERSION")),
                "kubeletVersion": "v1.37.2", "kubeProxyVersion": "",
                "operatingSystem": "linux",
                "architecture": std::env::consts::ARCH.replace("x86_64", "amd64").replace("aarch64", "arm64"),
            },
        },
    });
    nodes
        .patch_status(
            &config.node_name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&status),
        )
        .await?;
    Ok(())
}

async fn renew_lease(client: &kube::Client, config: &NodeConfig) -> Result<()> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), NODE_LEASE_NAMESPACE);
    let lease = json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": { "name": config.node_name },
        "spec": {
            "holderIdentity": config.node_name,
            "leaseDurationSeconds": LEASE_DURATION_SECONDS,
            "renewTime": k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(Timestamp::now()),
        },
    });
    leases
        .patch(
            &config.node_name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&lease),
        )
        .await?;
    Ok(())
}
