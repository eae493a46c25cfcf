//! The node's error type.

use std::path::PathBuf;

/// Everything that can go wrong inside `jtp-node`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("kubernetes API request failed: {0}")]
    Kube(#[from] kube::Error),
    #[error("reading kubeconfig failed: {0}")]
    Kubeconfig(#[from] kube::config::KubeconfigError),
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("TLS setup failed: {0}")]
    Tls(String),
    #[error("serving the kubelet API failed: {0}")]
    Serve(#[source] std::io::Error),
}

impl Error {
    /// A short static label, for logs and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Error::Kube(_) => "kube",
            Error::Kubeconfig(_) => "kubeconfig",
            Error::Io { .. } => "io",
            Error::Tls(_) => "tls",
            Error::Serve(_) => "serve",
        }
    }

    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { action, path, source }
    }
}

/// Result with the node's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
