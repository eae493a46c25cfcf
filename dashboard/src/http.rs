//! The one HTTP server of every command (the portal in both modes, the operator's `/metrics`,
//! `/healthz` and `/readyz`): hyper's HTTP/1 connections with limits, so that a flood of
//! connections that never send a request cannot starve the requests that do, nor the process of
//! file descriptors.
//!
//! - a request's head must arrive within [`Limits::header_read_timeout`] of the connection's
//!   opening (or of the previous response, on a kept-alive connection), or the connection is
//!   closed;
//! - a request gets [`Limits::request_timeout`] to be answered (reading its body included), else
//!   `408 Request Timeout`;
//! - at most [`Limits::max_connections`] connections are open; one more evicts the connection idle
//!   the longest (one opened and never used, or kept alive between requests), so a new client is
//!   served while the oldest idle socket is closed; only when every connection is inside a request
//!   is the new one closed at once.

use axum::Router;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tower::ServiceExt as _;

/// The server's limits; [`Limits::for_this_process`] are those every command uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub header_read_timeout: Duration,
    pub request_timeout: Duration,
    pub max_connections: usize,
}

/// The fewest and the most connections [`Limits::for_this_process`] allows.
const CONNECTIONS: (usize, usize) = (64, 10_000);

impl Limits {
    /// 10 s for a request's head, 30 s to answer it, and connections up to a quarter of the
    /// open-file limit (64 to 10,000): the rest stays for scripts' pipes, the database and files.
    pub fn for_this_process() -> Self {
        let files = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
            .map(|(soft, _)| usize::try_from(soft).unwrap_or(usize::MAX))
            .unwrap_or(1024);
        Self {
            header_read_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_connections: (files / 4).clamp(CONNECTIONS.0, CONNECTIONS.1),
        }
    }
}

/// How long a graceful shutdown waits for the requests in flight.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(10);

/// Serves `router` on `listener` with `limits` until `shutdown` completes, then lets the
/// requests in flight finish (for at most 10 s).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let slots = Arc::new(Slots::new(limits.max_connections));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let (stream, peer) = match accepted {
            Ok((stream, peer)) => (stream, peer),
            Err(e) => {
                // Out of file descriptors (EMFILE/ENFILE) or a connection reset before accept:
                // wait a moment rather than spin, and go on.
                tracing::warn!(error = %e, "could not accept a connection");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some(slot) = slots.admit() else {
            drop(stream);
            continue;
        };
        let Slot {
            id,
            use_count,
            evicted,
        } = slot;
        let service = {
            let router = router.clone();
            hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
                let router = router.clone();
                let in_use = InUse::new(&use_count);
                async move {
                    let _in_use = in_use;
                    let mut request = request.map(axum::body::Body::new);
                    // Who is asking, for the portal's limit on failed logins per client.
                    request.extensions_mut().insert(axum::extract::ConnectInfo(peer));
                    let response =
                        match tokio::time::timeout(limits.request_timeout, router.oneshot(request)).await {
                            Ok(Ok(response)) => response,
                            Ok(Err(never)) => match never {},
                            Err(_) => {
                                (StatusCode::REQUEST_TIMEOUT, "the request took too long\n").into_response()
                            }
                        };
                    Ok::<_, std::convert::Infallible>(response)
                }
            })
        };
        let connection = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        let slots = Arc::clone(&slots);
        tokio::spawn(async move {
            tokio::select! {
                _ = connection => {}
                _ = evicted => {}
            }
            slots.release(id);
        });
    }
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_WAIT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(wait = ?SHUTDOWN_WAIT, "requests still in flight at shutdown were cut off");
    }
    Ok(())
}

/// The open connections, by the order they were accepted.
struct Slots {
    max: usize,
    started: Instant,
    open: Mutex<BTreeMap<u64, Open>>,
    next: AtomicU64,
}

struct Open {
    /// Requests in flight on the connection.
    use_count: Arc<AtomicUsize>,
    /// Milliseconds after `started` when it was last opened or used.
    last_used: Arc<AtomicU64>,
    evict: oneshot::Sender<()>,
}

/// An admitted connection: its id, its in-flight counter and the signal that evicts it.
struct Slot {
    id: u64,
    use_count: Arc<UseCount>,
    evicted: oneshot::Receiver<()>,
}

/// What a request in flight updates on its connection.
struct UseCount {
    requests: Arc<AtomicUsize>,
    last_used: Arc<AtomicU64>,
    started: Instant,
}

/// A request in flight: counted on its connection until dropped.
struct InUse(Arc<UseCount>);

impl InUse {
    fn new(use_count: &Arc<UseCount>) -> Self {
        use_count.requests.fetch_add(1, Ordering::SeqCst);
        use_count.touch();
        Self(Arc::clone(use_count))
    }
}

impl Drop for InUse {
    fn drop(&mut self) {
        self.0.touch();
        self.0.requests.fetch_sub(1, Ordering::SeqCst);
    }
}

impl UseCount {
    fn touch(&self) {
        self.last_used
            .store(millis_since(self.started), Ordering::Relaxed);
    }
}

fn millis_since(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
}

impl Slots {
    fn new(max: usize) -> Self {
        Self {
            max: max.max(1),
            started: Instant::now(),
            open: Mutex::new(BTreeMap::new()),
            next: AtomicU64::new(0),
        }
    }

    /// A slot for a new connection: free, or taken from the connection idle the longest; `None`
    /// when every open connection is inside a request.
    fn admit(&self) -> Option<Slot> {
        let Ok(mut open) = self.open.lock() else {
            return None;
        };
        if open.len() >= self.max {
            let victim = open
                .iter()
                .filter(|(_, c)| c.use_count.load(Ordering::SeqCst) == 0)
                .min_by_key(|(_, c)| c.last_used.load(Ordering::Relaxed))
                .map(|(id, _)| *id)?;
            if let Some(old) = open.remove(&victim) {
                let _ = old.evict.send(());
            }
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (evict, evicted) = oneshot::channel();
        let requests = Arc::new(AtomicUsize::new(0));
        let last_used = Arc::new(AtomicU64::new(millis_since(self.started)));
        open.insert(
            id,
            Open {
                use_count: Arc::clone(&requests),
                last_used: Arc::clone(&last_used),
                evict,
            },
        );
        Some(Slot {
            id,
            use_count: Arc::new(UseCount {
                requests,
                last_used,
                started: self.started,
            }),
            evicted,
        })
    }

    fn release(&self, id: u64) {
        if let Ok(mut open) = self.open.lock() {
            open.remove(&id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_house_evicts_the_connection_idle_longest_and_never_one_in_a_request() {
        let slots = Slots::new(2);
        let first = slots.admit().expect("free");
        let mut second = slots.admit().expect("free");
        let busy = InUse::new(&first.use_count);
        // The first connection is inside a request, the second idle: the second goes.
        let mut third = slots.admit().expect("evicts the idle one");
        assert!(
            second.evicted.try_recv().is_ok(),
            "the idle connection was evicted"
        );
        // Then the new idle one goes, never the busy first.
        let _fourth = slots.admit().expect("evicts the new idle one");
        assert!(third.evicted.try_recv().is_ok());
        drop(busy);
        // Once its request is done, the first is idle and evictable like any other.
        let mut first = first;
        let _fifth = slots.admit().expect("evicts an idle one");
        let _sixth = slots.admit().expect("evicts an idle one");
        assert!(first.evicted.try_recv().is_ok());
    }

    #[test]
    fn a_house_full_of_requests_refuses_the_next_connection() {
        let slots = Slots::new(1);
        let only = slots.admit().expect("free");
        let _busy = InUse::new(&only.use_count);
        assert!(slots.admit().is_none());
    }

    use axum::routing::get;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    const TINY: Limits = Limits {
        header_read_timeout: Duration::from_millis(300),
        request_timeout: Duration::from_millis(500),
        max_connections: 8,
    };

    /// A server with [`TINY`] limits: `/ok` answers at once, `/slow` after 5 s.
    async fn server() -> std::net::SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let router = Router::new().route("/ok", get(|| async { "ok" })).route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                "late"
            }),
        );
        tokio::spawn(serve(listener, router, TINY, std::future::pending()));
        addr
    }

    /// One request on a connection of its own: the status line, within 5 s.
    async fn status_line(addr: std::net::SocketAddr, path: &str) -> String {
        let exchange = async {
            let mut stream = TcpStream::connect(addr).await.expect("connect");
            let request = format!("GET {path} HTTP/1.1\r\nhost: test\r\nconnection: close\r\n\r\n");
            stream.write_all(request.as_bytes()).await.expect("write");
            let mut response = Vec::new();
            stream.read_to_end(&mut response).await.expect("read");
            String::from_utf8_lossy(&response)
                .lines()
                .next()
                .unwrap_or_default()
                .to_owned()
        };
        tokio::time::timeout(Duration::from_secs(5), exchange)
            .await
            .expect("answered within 5 s")
    }

    /// How long until the server closes `stream` (reads 0), at most 5 s.
    async fn closed_after(mut stream: TcpStream) -> Duration {
        let started = Instant::now();
        let mut buf = [0u8; 64];
        let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await;
        assert!(
            matches!(read, Ok(Ok(0) | Err(_))),
            "the server did not close the connection: {read:?}"
        );
        started.elapsed()
    }

    #[tokio::test]
    async fn a_connection_that_sends_no_request_or_half_a_head_is_closed_at_the_header_timeout() {
        let addr = server().await;
        let silent = TcpStream::connect(addr).await.expect("connect");
        let waited = closed_after(silent).await;
        assert!(
            waited >= Duration::from_millis(250) && waited < Duration::from_secs(2),
            "{waited:?}"
        );
        let mut slow = TcpStream::connect(addr).await.expect("connect");
        slow.write_all(b"GET /ok HTTP/1.1\r\nhost: te")
            .await
            .expect("write");
        let waited = closed_after(slow).await;
        assert!(waited < Duration::from_secs(2), "{waited:?}");
        // A kept-alive connection idle after its response is closed the same way.
        let mut kept = TcpStream::connect(addr).await.expect("connect");
        kept.write_all(b"GET /ok HTTP/1.1\r\nhost: test\r\n\r\n")
            .await
            .expect("write");
        let mut buf = [0u8; 512];
        let n = kept.read(&mut buf).await.expect("response");
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
        let waited = closed_after(kept).await;
        assert!(waited < Duration::from_secs(2), "{waited:?}");
    }

    #[tokio::test]
    async fn a_request_not_answered_in_time_gets_408() {
        let addr = server().await;
        assert_eq!(status_line(addr, "/slow").await, "HTTP/1.1 408 Request Timeout");
        assert_eq!(status_line(addr, "/ok").await, "HTTP/1.1 200 OK");
    }

    #[tokio::test]
    async fn a_flood_of_idle_connections_past_the_cap_never_keeps_a_request_out() {
        let addr = server().await;
        let mut flood = Vec::new();
        for _ in 0..200 {
            flood.push(TcpStream::connect(addr).await.expect("connect"));
        }
        for _ in 0..20 {
            let started = Instant::now();
            assert_eq!(status_line(addr, "/ok").await, "HTTP/1.1 200 OK");
            assert!(
                started.elapsed() < Duration::from_secs(1),
                "{:?}",
                started.elapsed()
            );
        }
        drop(flood);
    }

    #[test]
    fn the_connection_cap_follows_the_open_file_limit() {
        let limits = Limits::for_this_process();
        assert!((CONNECTIONS.0..=CONNECTIONS.1).contains(&limits.max_connections));
        assert!(limits.header_read_timeout < limits.request_timeout);
    }
}
