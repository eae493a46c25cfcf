//! Prometheus metrics in text format, plus `/healthz` and `/readyz`, on a small HTTP listener.
//! Labels are static words (a status, a trigger, an error kind), never names or messages.

use jtp_crds::{RunStatus, Trigger};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::{Error, Result};

/// Upper bounds of the trigger-skew histogram, in seconds.
pub const SKEW_BUCKETS: [f64; 10] = [0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0];
const STATUSES: [RunStatus; 3] = [RunStatus::Success, RunStatus::Failure, RunStatus::Error];
/// Kinds of API writes counted.
pub const WRITE_KINDS: [&str; 5] = ["job_apply", "job_patch", "job_delete", "status_apply", "event"];

#[derive(Debug, Default)]
struct Histogram {
    buckets: [u64; SKEW_BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// The operator's counters.
#[derive(Debug, Default)]
pub struct Metrics {
    runs: [AtomicU64; 3],
    started: [AtomicU64; 2],
    reconciles: AtomicU64,
    errors: Mutex<Vec<(&'static str, u64)>>,
    writes: [AtomicU64; WRITE_KINDS.len()],
    skew: Mutex<Histogram>,
    leader: AtomicBool,
    ready: AtomicBool,
}

impl Metrics {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    pub fn run_finished(&self, status: RunStatus) {
        if let Some(i) = STATUSES.iter().position(|s| *s == status) {
            self.runs[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn run_started(&self, trigger: Trigger) {
        let i = usize::from(trigger == Trigger::Manual);
        self.started[i].fetch_add(1, Ordering::Relaxed);
    }

    pub fn reconciled(&self) {
        self.reconciles.fetch_add(1, Ordering::Relaxed);
    }

    pub fn reconcile_error(&self, kind: &'static str) {
        if let Ok(mut errors) = self.errors.lock() {
            match errors.iter_mut().find(|(k, _)| *k == kind) {
                Some((_, n)) => *n += 1,
                None => errors.push((kind, 1)),
            }
        }
    }

    /// Counts one API write of a kind from [`WRITE_KINDS`].
    pub fn api_write(&self, kind: &'static str) {
        if let Some(i) = WRITE_KINDS.iter().position(|k| *k == kind) {
            self.writes[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Total API writes so far (benchmarks read it).
    pub fn api_writes_total(&self) -> u64 {
        self.writes.iter().map(|w| w.load(Ordering::Relaxed)).sum()
    }

    /// Jobs created so far, by any trigger.
    pub fn runs_started_total(&self) -> u64 {
        self.started.iter().map(|s| s.load(Ordering::Relaxed)).sum()
    }

    /// Records Job creation time minus scheduled time.
    pub fn trigger_skew(&self, seconds: f64) {
        if let Ok(mut h) = self.skew.lock() {
            for (i, bound) in SKEW_BUCKETS.iter().enumerate() {
                if seconds <= *bound {
                    h.buckets[i] += 1;
                }
            }
            h.count += 1;
            h.sum += seconds;
        }
    }

    pub fn set_leader(&self, leader: bool) {
        self.leader.store(leader, Ordering::Relaxed);
    }

    pub fn is_leader(&self) -> bool {
        self.leader.load(Ordering::Relaxed)
    }

    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "# HELP jtp_runs_total Finished runs recorded, by status.");
        let _ = writeln!(out, "# TYPE jtp_runs_total counter");
        for (i, s) in STATUSES.iter().enumerate() {
            let _ = writeln!(
                out,
                "jtp_runs_total{{status=\"{s}\"}} {}",
                self.runs[i].load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(out, "# HELP jtp_runs_started_total Jobs created, by trigger.");
        let _ = writeln!(out, "# TYPE jtp_runs_started_total counter");
        for (i, t) in [Trigger::Schedule, Trigger::Manual].iter().enumerate() {
            let _ = writeln!(
                out,
                "jtp_runs_started_total{{trigger=\"{t}\"}} {}",
                self.started[i].load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(out, "# HELP jtp_reconciles_total Reconciles run.");
        let _ = writeln!(out, "# TYPE jtp_reconciles_total counter");
        let _ = writeln!(
            out,
            "jtp_reconciles_total {}",
            self.reconciles.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP jtp_reconcile_errors_total Reconcile errors, by kind."
        );
        let _ = writeln!(out, "# TYPE jtp_reconcile_errors_total counter");
        if let Ok(errors) = self.errors.lock() {
            for (kind, n) in errors.iter() {
                let _ = writeln!(out, "jtp_reconcile_errors_total{{kind=\"{kind}\"}} {n}");
            }
        }
        let _ = writeln!(
            out,
            "# HELP jtp_api_writes_total Writes sent to the Kubernetes API, by kind."
        );
        let _ = writeln!(out, "# TYPE jtp_api_writes_total counter");
        for (i, kind) in WRITE_KINDS.iter().enumerate() {
            let _ = writeln!(
                out,
                "jtp_api_writes_total{{kind=\"{kind}\"}} {}",
                self.writes[i].load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# HELP jtp_trigger_skew_seconds Job creation time minus scheduled time (scheduled runs)."
        );
        let _ = writeln!(out, "# TYPE jtp_trigger_skew_seconds histogram");
        if let Ok(h) = self.skew.lock() {
            for (i, bound) in SKEW_BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "jtp_trigger_skew_seconds_bucket{{le=\"{bound}\"}} {}",
                    h.buckets[i]
                );
            }
            let _ = writeln!(out, "jtp_trigger_skew_seconds_bucket{{le=\"+Inf\"}} {}", h.count);
            let _ = writeln!(out, "jtp_trigger_skew_seconds_sum {}", h.sum);
            let _ = writeln!(out, "jtp_trigger_skew_seconds_count {}", h.count);
        }
        let _ = writeln!(
            out,
            "# HELP jtp_leader 1 while this replica holds the leader lease."
        );
        let _ = writeln!(out, "# TYPE jtp_leader gauge");
        let _ = writeln!(out, "jtp_leader {}", u8::from(self.is_leader()));
        out
    }
}

/// Serves `/metrics`, `/healthz` and `/readyz` until the task is dropped.
pub async fn serve(addr: SocketAddr, metrics: Arc<Metrics>) -> Result<()> {
    let listener = TcpListener::bind(addr).await.map_err(Error::Serve)?;
    tracing::info!(%addr, "serving /metrics, /healthz and /readyz");
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            continue;
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            let mut len = 0;
            while len < buf.len() {
                match stream.read(&mut buf[len..]).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => len += n,
                }
                if buf[..len].windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
            }
            let request = String::from_utf8_lossy(&buf[..len]);
            let path = request.split_whitespace().nth(1).unwrap_or("/");
            let (code, body) = match path {
                "/metrics" => ("200 OK", metrics.render()),
                "/healthz" => ("200 OK", "ok\n".to_owned()),
                "/readyz" if metrics.ready.load(Ordering::Relaxed) => ("200 OK", "ready\n".to_owned()),
                "/readyz" => ("503 Service Unavailable", "not ready\n".to_owned()),
                _ => ("404 Not Found", "not found\n".to_owned()),
            };
            let content_type = if path == "/metrics" {
                "text/plain; version=0.0.4; charset=utf-8"
            } else {
                "text/plain; charset=utf-8"
            };
            let response = format!(
                "HTTP/1.1 {code}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes()).await;
            let _ = stream.shutdown().await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_a_histogram() {
        let m = Metrics::default();
        m.run_finished(RunStatus::Success);
        m.run_finished(RunStatus::Error);
        m.trigger_skew(0.3);
        m.trigger_skew(3.0);
        m.reconcile_error("kube");
        m.api_write("job_apply");
        let text = m.render();
        assert!(text.contains("jtp_runs_total{status=\"SUCCESS\"} 1"), "{text}");
        assert!(text.contains("jtp_runs_total{status=\"ERROR\"} 1"));
        assert!(text.contains("jtp_trigger_skew_seconds_bucket{le=\"0.5\"} 1"));
        assert!(text.contains("jtp_trigger_skew_seconds_bucket{le=\"5\"} 2"));
        assert!(text.contains("jtp_trigger_skew_seconds_count 2"));
        assert!(text.contains("jtp_reconcile_errors_total{kind=\"kube\"} 1"));
        assert_eq!(m.api_writes_total(), 1);
    }
}
