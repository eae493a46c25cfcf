//! The Kubernetes API client of the operator and the portal: kube's own layers (base URI,
//! authentication, extra headers, retry of 429/503/504) over a connection that speaks HTTP/2.
//!
//! kube's default client speaks HTTP/1.1 only, so each request in flight needs a connection of its
//! own: when a thousand ScheduledJobs fall due in the same second, a thousand Job creates open a
//! thousand TLS connections, and the handshakes cost the API server and the operator more CPU than
//! the creates. Over HTTP/2 (what client-go uses) every request, watches included, is a stream on
//! one connection; the server's stream limit queues the rest. Servers without HTTP/2 still get
//! HTTP/1.1 through ALPN.

use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use kube::client::ConfigExt;
use kube::client::retry::RetryPolicy;
use std::time::Duration;
use tower::ServiceBuilder;
use tower::retry::RetryLayer;

/// Ping an idle connection this often, and drop it when a ping goes unanswered for
/// [`PING_TIMEOUT`], so requests never wait on a dead connection (client-go: 30 s and 15 s).
const PING_INTERVAL: Duration = Duration::from_secs(30);
const PING_TIMEOUT: Duration = Duration::from_secs(15);

/// Connects with the in-cluster configuration or the local kubeconfig.
pub async fn infer() -> Result<kube::Client, kube::Error> {
    from_config(kube::Config::infer().await.map_err(kube::Error::InferConfig)?)
}

/// Builds a client from `config`, as [`kube::Client::try_from`] does but with HTTP/2.
pub fn from_config(config: kube::Config) -> Result<kube::Client, kube::Error> {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(config.connect_timeout);
    http.set_nodelay(true);
    let tls = config.rustls_client_config()?;
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http();
    let https = match config.tls_server_name.as_deref() {
        Some(name) => {
            let name = rustls::pki_types::ServerName::try_from(name.to_owned())
                .map_err(|e| kube::Error::RustlsTls(kube::client::RustlsTlsError::InvalidServerName(e)))?;
            https.with_server_name_resolver(hyper_rustls::FixedServerNameResolver::new(name))
        }
        None => https,
    };
    let https = https.enable_http1().enable_http2().wrap_connector(http);
    let hyper = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        .http2_keep_alive_interval(PING_INTERVAL)
        .http2_keep_alive_timeout(PING_TIMEOUT)
        .http2_keep_alive_while_idle(true)
        .http2_adaptive_window(true)
        .build(https);
    let service = ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .option_layer(
            config
                .default_retry
                .then(|| RetryLayer::new(RetryPolicy::server_retry())),
        )
        .option_layer(config.auth_layer()?)
        .layer(config.extra_headers_layer()?)
        .map_err(tower::BoxError::from)
        .service(hyper);
    Ok(kube::Client::new(service, config.default_namespace))
}
