//! Container log files and the kubelet's `GET /containerLogs/{ns}/{pod}/{container}`
//! endpoint, served over TLS to the API server (client certificates from the testenv CA).

use std::collections::HashMap;
use std::convert::Infallible;
use std::io::SeekFrom;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::Frame;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::{Error, NodeConfig, Result};

const CURRENT_LOG: &str = "current.log";
const PREVIOUS_LOG: &str = "previous.log";
const FOLLOW_POLL: Duration = Duration::from_millis(100);
const READ_CHUNK: usize = 64 * 1024;

type Body = BoxBody<Bytes, std::io::Error>;
type Key = (String, String, String);

struct Entry {
    uid: String,
    dir: PathBuf,
    running: watch::Sender<bool>,
}

/// Where each container's output goes, and whether it is still being written.
#[derive(Clone, Default)]
pub struct LogRegistry {
    entries: Arc<Mutex<HashMap<Key, Entry>>>,
}

/// One container's log as the HTTP handler sees it.
pub struct ContainerLog {
    pub current: PathBuf,
    pub previous: PathBuf,
    pub running: watch::Receiver<bool>,
}

fn key(ns: &str, pod: &str, container: &str) -> Key {
    (ns.to_string(), pod.to_string(), container.to_string())
}

impl LogRegistry {
    /// Registers a container that is starting and returns the file its output goes to.
    pub fn start(&self, ns: &str, pod: &str, uid: &str, container: &str, dir: &Path) -> PathBuf {
        let _ = std::fs::create_dir_all(dir);
        if let Ok(mut entries) = self.entries.lock() {
            let entry = entries.entry(key(ns, pod, container)).or_insert_with(|| Entry {
                uid: uid.to_string(),
                dir: dir.to_path_buf(),
                running: watch::channel(true).0,
            });
            entry.uid = uid.to_string();
            entry.dir = dir.to_path_buf();
            entry.running.send_replace(true);
        }
        dir.join(CURRENT_LOG)
    }

    /// Marks a container's output as complete (or not).
    pub fn set_running(&self, ns: &str, pod: &str, container: &str, running: bool) {
        if let Ok(entries) = self.entries.lock()
            && let Some(entry) = entries.get(&key(ns, pod, container))
        {
            entry.running.send_replace(running);
        }
    }

    /// Keeps the last run's log as the `previous=true` log before a restart.
    pub fn rotate(&self, ns: &str, pod: &str, container: &str) {
        if let Ok(entries) = self.entries.lock()
            && let Some(entry) = entries.get(&key(ns, pod, container))
        {
            let _ = std::fs::rename(entry.dir.join(CURRENT_LOG), entry.dir.join(PREVIOUS_LOG));
        }
    }

    /// Forgets every container of a pod.
    pub fn remove_pod(&self, ns: &str, pod: &str, uid: &str) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.retain(|(n, p, _), e| !(n == ns && p == pod && e.uid == uid));
        }
    }

    fn get(&self, ns: &str, pod: &str, container: &str) -> Option<ContainerLog> {
        let entries = self.entries.lock().ok()?;
        let entry = entries.get(&key(ns, pod, container))?;
        Some(ContainerLog {
            current: entry.dir.join(CURRENT_LOG),
            previous: entry.dir.join(PREVIOUS_LOG),
            running: entry.running.subscribe(),
        })
    }
}

fn tls_config(config: &NodeConfig) -> Result<rustls::ServerConfig> {
    let tls = |e: &dyn std::fmt::Display| Error::Tls(e.to_string());
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&config.tls_cert)
        .map_err(|e| tls(&format!("{}: {e}", config.tls_cert.display())))?
        .collect::<Result<_, _>>()
        .map_err(|e| tls(&e))?;
    let key = PrivateKeyDer::from_pem_file(&config.tls_key)
        .map_err(|e| tls(&format!("{}: {e}", config.tls_key.display())))?;
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_file_iter(&config.client_ca)
        .map_err(|e| tls(&format!("{}: {e}", config.client_ca.display())))?
    {
        roots.add(ca.map_err(|e| tls(&e))?).map_err(|e| tls(&e))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .map_err(|e| tls(&e))?;
    let mut server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls(&e))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .map_err(|e| tls(&e))?;
    server.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(server)
}

/// Serves the kubelet API subset on 127.0.0.1 until the listener fails.
pub async fn serve(config: Arc<NodeConfig>, logs: LogRegistry) -> Result<()> {
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls_config(&config)?));
    let listener = TcpListener::bind(("127.0.0.1", config.port))
        .await
        .map_err(Error::Serve)?;
    tracing::info!(
        port = config.port,
        "serving the kubelet API (containerLogs) over TLS"
    );
    loop {
        let (tcp, _) = listener.accept().await.map_err(Error::Serve)?;
        let acceptor = acceptor.clone();
        let logs = logs.clone();
        tokio::spawn(async move {
            let tls = match acceptor.accept(tcp).await {
                Ok(tls) => tls,
                Err(error) => {
                    tracing::debug!(%error, "TLS handshake failed");
                    return;
                }
            };
            let service = hyper::service::service_fn(move |req| {
                let logs = logs.clone();
                async move { Ok::<_, Infallible>(handle(&logs, req).await) }
            });
            if let Err(error) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tls), service)
                .await
            {
                tracing::debug!(%error, "kubelet API connection ended");
            }
        });
    }
}

fn text(status: StatusCode, body: impl Into<String>) -> Response<Body> {
    let body = Full::new(Bytes::from(body.into()))
        .map_err(|never| match never {})
        .boxed();
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    resp
}

/// The query parameters `kubectl logs` sends that we honour.
#[derive(Debug, Default, PartialEq)]
struct LogQuery {
    follow: bool,
    previous: bool,
    tail_lines: Option<usize>,
    limit_bytes: Option<u64>,
}

fn parse_query(query: Option<&str>) -> LogQuery {
    let mut q = LogQuery::default();
    for pair in query.unwrap_or("").split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "follow" => q.follow = v == "true" || v == "1",
            "previous" => q.previous = v == "true" || v == "1",
            "tailLines" => q.tail_lines = v.parse().ok(),
            "limitBytes" => q.limit_bytes = v.parse().ok(),
            _ => {}
        }
    }
    q
}

async fn handle(logs: &LogRegistry, req: Request<hyper::body::Incoming>) -> Response<Body> {
    let path = req.uri().path().to_string();
    if path == "/healthz" {
        return text(StatusCode::OK, "ok");
    }
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let ["containerLogs", ns, pod, container] = parts[..] else {
        return text(
            StatusCode::NOT_FOUND,
            format!("jtp-node serves only /containerLogs, not {path}"),
        );
    };
    let query = parse_query(req.uri().query());
    let Some(log) = logs.get(ns, pod, container) else {
        return text(
            StatusCode::NOT_FOUND,
            format!("container \"{container}\" in pod \"{pod}\" (namespace {ns}) has no log on this node"),
        );
    };
    let file = if query.previous {
        log.previous.clone()
    } else {
        log.current.clone()
    };
    let start = match query.tail_lines {
        Some(n) => tail_offset(&file, n).await,
        None => 0,
    };
    let follow = query.follow && !query.previous;
    let stream = log_stream(file, start, query.limit_bytes, follow.then_some(log.running));
    let mut resp = Response::new(BodyExt::boxed(StreamBody::new(
        stream.map(|r| r.map(Frame::data)),
    )));
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain"),
    );
    resp
}

/// The byte offset where the last `n` lines of the file start.
async fn tail_offset(file: &Path, n: usize) -> u64 {
    let Ok(data) = tokio::fs::read(file).await else {
        return 0;
    };
    if n == 0 {
        return data.len() as u64;
    }
    let body = data.strip_suffix(b"\n").unwrap_or(&data);
    let mut seen = 0;
    for (i, b) in body.iter().enumerate().rev() {
        if *b == b'\n' {
            seen += 1;
            if seen == n {
                return (i + 1) as u64;
            }
        }
    }
    0
}

/// Reads the file from `start`; with `running`, keeps reading until the container ends.
fn log_stream(
    file: PathBuf,
    start: u64,
    limit: Option<u64>,
    running: Option<watch::Receiver<bool>>,
) -> impl futures::Stream<Item = std::io::Result<Bytes>> {
    struct State {
        file: PathBuf,
        offset: u64,
        remaining: Option<u64>,
        running: Option<watch::Receiver<bool>>,
    }
    let state = State {
        file,
        offset: start,
        remaining: limit,
        running,
    };
    futures::stream::unfold(Some(state), |state| async move {
        let mut st = state?;
        loop {
            if st.remaining == Some(0) {
                return None;
            }
            let want = st.remaining.map_or(READ_CHUNK, |r| (r as usize).min(READ_CHUNK));
            let mut buf = vec![0u8; want];
            let read = match tokio::fs::File::open(&st.file).await {
                Ok(mut f) => match f.seek(SeekFrom::Start(st.offset)).await {
                    Ok(_) => f.read(&mut buf).await,
                    Err(e) => Err(e),
                },
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
                Err(e) => Err(e),
            };
            match read {
                Ok(0) => {
                    let still_running = st.running.as_ref().is_some_and(|r| *r.borrow());
                    if !still_running {
                        return None;
                    }
                    if let Some(r) = st.running.as_mut() {
                        let _ = tokio::time::timeout(FOLLOW_POLL, r.changed()).await;
                    }
                }
                Ok(n) => {
                    buf.truncate(n);
                    st.offset += n as u64;
                    st.remaining = st.remaining.map(|r| r - n as u64);
                    return Some((Ok(Bytes::from(buf)), Some(st)));
                }
                Err(e) => return Some((Err(e), None)),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kubectl_query() {
        let q = parse_query(Some("follow=true&tailLines=2&limitBytes=10&timestamps=false"));
        assert_eq!(
            q,
            LogQuery {
                follow: true,
                previous: false,
                tail_lines: Some(2),
                limit_bytes: Some(10)
            }
        );
    }

    #[tokio::test]
    async fn tail_finds_last_lines() {
        let dir = std::env::temp_dir().join(format!("jtp-tail-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let f = dir.join("log");
        std::fs::write(&f, "a\nb\nc\n").expect("write");
        assert_eq!(tail_offset(&f, 2).await, 2);
        assert_eq!(tail_offset(&f, 5).await, 0);
        let _ = std::fs::remove_dir_all(dir);
    }
}
