//! Test control plane for Job Trigger Portal.
//!
//! [`cluster`] starts (or reuses) a real Kubernetes control plane built from the
//! Kubernetes Go modules plus `jtp-node`, a node that runs pod containers as host
//! processes; [`TestNamespace`] gives each test its own namespace; [`wait_for`] polls an
//! object until a condition holds. The [`node`] module is `jtp-node` itself.

pub mod node;
mod support;

pub use support::{
    DEFAULT_TESTENV_DIR, KEEP_NAMESPACES_ENV, TestNamespace, cluster, cluster_with_node, helm, helm_output,
    kubeconfig_path, kubectl, kubectl_output, testenv_dir, tool_path, wait_for,
};
