//! Test cluster for Job Trigger Portal.
//!
//! [`cluster`] starts (or reuses) a real Kubernetes cluster built from Go modules: the
//! control plane plus a real node (kubelet, containerd, runc, a CNI bridge) in a network
//! namespace of its own; [`TestNamespace`] gives each test its own namespace; [`wait_for`]
//! polls an object until a condition holds.

mod support;

pub use support::{
    DEFAULT_TESTENV_DIR, KEEP_NAMESPACES_ENV, TestNamespace, cluster, helm, helm_output, import_image,
    kubeconfig_path, kubectl, kubectl_output, testenv_dir, tool_path, wait_for,
};
