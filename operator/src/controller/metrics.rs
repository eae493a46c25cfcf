//! The scheduler's metrics (prometheus-client, OpenMetrics text) — the operator's, and the subset
//! the standalone runner exports — and their small HTTP surface: `/metrics`, `/healthz` and
//! `/readyz` as an axum router. Labels are static words (a status, a trigger, an error kind),
//! never messages; the per-job series carry only the job's namespace and name (a bounded set:
//! the live jobs), are read from the store by the scheduler's periodic check (so they are right
//! after a restart) and disappear with the job.

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use jtp_crds::{RunStatus, Trigger};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::{Error, Result};

/// Upper bounds of the trigger-skew histogram, in seconds: from 5 ms (a standalone start is a few
/// ms late) to a minute.
pub const SKEW_BUCKETS: [f64; 13] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];
/// Kinds of API writes counted.
pub const WRITE_KINDS: [&str; 5] = ["job_apply", "job_patch", "job_delete", "status_apply", "event"];
/// Kinds of reconcile errors whose series exist from the start (others appear when they happen),
/// so an alert on their rate has a series to read.
pub const ERROR_KINDS: [&str; 5] = ["kube", "ledger", "status_write", "finalizer", "build"];
/// The content type of the OpenMetrics text format.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabel {
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TriggerLabel {
    trigger: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobLabel {
    namespace: String,
    name: String,
}

/// Which process exports the metrics: the operator has them all, the standalone runner those that
/// mean something without Kubernetes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Operator,
    Standalone,
}

/// A gauge holding seconds since the Unix epoch.
type Timestamp = Gauge<f64, AtomicU64>;

/// The per-job series, replaced together by each check.
#[derive(Debug, Default)]
struct JobSeries {
    last_success: Family<JobLabel, Timestamp>,
    last_failure: Family<JobLabel, Timestamp>,
    failures: Family<JobLabel, Gauge>,
    overdue: Family<JobLabel, Gauge>,
}

/// What one check of the jobs found, for the per-job series.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct JobsCheck {
    /// Every live job.
    pub health: Vec<jtp_store::JobHealth>,
    /// The jobs with a dead-man's switch.
    pub watched: Vec<crate::alerts::Watched>,
}

/// The scheduler's metrics, registered once.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    runs: Family<StatusLabel, Counter>,
    started: Family<TriggerLabel, Counter>,
    reconciles: Counter,
    errors: Family<KindLabel, Counter>,
    writes: Family<KindLabel, Counter>,
    skew: Histogram,
    leader: Gauge,
    jobs: JobSeries,
    /// Held while the per-job series are replaced and while they are rendered, so a scrape sees
    /// one check's series whole, never half cleared.
    publish: Mutex<()>,
    ready: AtomicBool,
}

impl Metrics {
    /// The operator's metrics.
    pub fn new() -> Arc<Self> {
        Self::for_mode(Mode::Operator)
    }

    /// The metrics of `mode`.
    pub fn for_mode(mode: Mode) -> Arc<Self> {
        let operator = mode == Mode::Operator;
        let mut registry = Registry::default();
        let runs = Family::<StatusLabel, Counter>::default();
        registry.register("jtp_runs", "Finished runs recorded, by status", runs.clone());
        let started = Family::<TriggerLabel, Counter>::default();
        registry.register(
            "jtp_runs_started",
            if operator {
                "Jobs created, by trigger"
            } else {
                "Runs started, by trigger"
            },
            started.clone(),
        );
        let skew = Histogram::new(SKEW_BUCKETS);
        registry.register(
            "jtp_trigger_skew_seconds",
            if operator {
                "Job creation time minus scheduled time (scheduled runs)"
            } else {
                "Process start time minus scheduled time (scheduled runs)"
            },
            skew.clone(),
        );
        let jobs = JobSeries::default();
        registry.register(
            "jtp_job_last_success_timestamp_seconds",
            "When the job's newest successful run finished (Unix seconds); no series before its first success",
            jobs.last_success.clone(),
        );
        registry.register(
            "jtp_job_last_failure_timestamp_seconds",
            "When the job's newest FAILURE or ERROR run finished (Unix seconds); no series before its first failure",
            jobs.last_failure.clone(),
        );
        registry.register(
            "jtp_job_consecutive_failures",
            "Failed runs in a row (counted after their retries); 0 after a success",
            jobs.failures.clone(),
        );
        registry.register(
            "jtp_job_overdue",
            "1 while a job with spec.expectSuccessWithin has not succeeded within it, else 0",
            jobs.overdue.clone(),
        );
        let reconciles = Counter::default();
        let errors = Family::<KindLabel, Counter>::default();
        let writes = Family::<KindLabel, Counter>::default();
        let leader = Gauge::default();
        if operator {
            registry.register("jtp_reconciles", "Reconciles run", reconciles.clone());
            registry.register(
                "jtp_reconcile_errors",
                "Reconcile errors, by kind",
                errors.clone(),
            );
            registry.register(
                "jtp_api_writes",
                "Writes sent to the Kubernetes API, by kind",
                writes.clone(),
            );
            registry.register(
                "jtp_leader",
                "1 while this replica holds the leader lease (only the leader exports the jtp_job_* series)",
                leader.clone(),
            );
        }
        // Every series exists from the start, at zero, so a dashboard shows them before the first run.
        for status in [RunStatus::Success, RunStatus::Failure, RunStatus::Error] {
            let _ = runs.get_or_create(&StatusLabel {
                status: status.as_str(),
            });
        }
        for trigger in [Trigger::Schedule, Trigger::Manual] {
            let _ = started.get_or_create(&TriggerLabel {
                trigger: trigger.as_str(),
            });
        }
        if operator {
            for kind in WRITE_KINDS {
                let _ = writes.get_or_create(&KindLabel { kind });
            }
            for kind in ERROR_KINDS {
                let _ = errors.get_or_create(&KindLabel { kind });
            }
        }
        Arc::new(Self {
            registry,
            runs,
            started,
            reconciles,
            errors,
            writes,
            skew,
            leader,
            jobs,
            publish: Mutex::new(()),
            ready: AtomicBool::new(false),
        })
    }

    pub fn run_finished(&self, status: RunStatus) {
        self.runs
            .get_or_create(&StatusLabel {
                status: status.as_str(),
            })
            .inc();
    }

    pub fn run_started(&self, trigger: Trigger) {
        self.started
            .get_or_create(&TriggerLabel {
                trigger: trigger.as_str(),
            })
            .inc();
    }

    pub fn reconciled(&self) {
        self.reconciles.inc();
    }

    pub fn reconcile_error(&self, kind: &'static str) {
        self.errors.get_or_create(&KindLabel { kind }).inc();
    }

    /// Counts one API write of a kind from [`WRITE_KINDS`].
    pub fn api_write(&self, kind: &'static str) {
        self.writes.get_or_create(&KindLabel { kind }).inc();
    }

    /// Total API writes so far (benchmarks read it).
    pub fn api_writes_total(&self) -> u64 {
        WRITE_KINDS
            .iter()
            .map(|kind| self.writes.get_or_create(&KindLabel { kind }).get())
            .sum()
    }

    /// Jobs created so far, by any trigger.
    pub fn runs_started_total(&self) -> u64 {
        [Trigger::Schedule, Trigger::Manual]
            .iter()
            .map(|t| {
                self.started
                    .get_or_create(&TriggerLabel { trigger: t.as_str() })
                    .get()
            })
            .sum()
    }

    /// Records Job creation time minus scheduled time.
    pub fn trigger_skew(&self, seconds: f64) {
        self.skew.observe(seconds);
    }

    /// The per-job series as the last check found them: one set per live job (namespace and name:
    /// a bounded set), replaced whole, so a job deleted (or no longer watched) disappears.
    pub fn set_jobs(&self, check: &JobsCheck) {
        let _publishing = self
            .publish
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let JobSeries {
            last_success,
            last_failure,
            failures,
            overdue,
        } = &self.jobs;
        for family in [last_success, last_failure] {
            family.clear();
        }
        failures.clear();
        overdue.clear();
        let seconds = |at: chrono::DateTime<chrono::Utc>| at.timestamp_micros() as f64 / 1e6;
        for job in &check.health {
            let label = JobLabel {
                namespace: job.namespace.clone(),
                name: job.name.clone(),
            };
            if let Some(at) = job.last_success_at {
                last_success.get_or_create(&label).set(seconds(at));
            }
            if let Some(at) = job.last_failure_at {
                last_failure.get_or_create(&label).set(seconds(at));
            }
            failures
                .get_or_create(&label)
                .set(i64::from(job.consecutive_failures));
        }
        for job in &check.watched {
            let label = JobLabel {
                namespace: job.namespace.clone(),
                name: job.name.clone(),
            };
            overdue
                .get_or_create(&label)
                .set(i64::from(job.overdue.is_some()));
        }
    }

    pub fn set_leader(&self, leader: bool) {
        self.leader.set(i64::from(leader));
    }

    pub fn is_leader(&self) -> bool {
        self.leader.get() == 1
    }

    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }

    fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    /// The OpenMetrics text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _publishing = self
            .publish
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Writing to a String does not fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

/// `/metrics`, `/healthz` and `/readyz`.
pub fn router(metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route("/metrics", get(scrape))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .with_state(metrics)
}

async fn scrape(State(metrics): State<Arc<Metrics>>) -> Response {
    ([(header::CONTENT_TYPE, OPENMETRICS)], metrics.render()).into_response()
}

async fn ready(State(metrics): State<Arc<Metrics>>) -> Response {
    if metrics.is_ready() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n").into_response()
    }
}

/// Serves [`router`] on `addr` until the task is dropped, with the limits of every server
/// ([`jtp_dashboard::http`]).
pub async fn serve(addr: SocketAddr, metrics: Arc<Metrics>) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(Error::Serve)?;
    tracing::info!(%addr, "serving /metrics, /healthz and /readyz");
    let limits = jtp_dashboard::http::Limits::for_this_process();
    jtp_dashboard::http::serve(listener, router(metrics), limits, std::future::pending())
        .await
        .map_err(Error::Serve)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    #[test]
    fn renders_counters_and_a_histogram() {
        let m = Metrics::new();
        m.run_finished(RunStatus::Success);
        m.run_finished(RunStatus::Error);
        m.trigger_skew(0.3);
        m.trigger_skew(3.0);
        m.reconcile_error("kube");
        m.api_write("job_apply");
        m.set_leader(true);
        let text = m.render();
        assert!(text.contains("jtp_runs_total{status=\"SUCCESS\"} 1"), "{text}");
        assert!(text.contains("jtp_runs_total{status=\"ERROR\"} 1"));
        assert!(text.contains("jtp_runs_total{status=\"FAILURE\"} 0"));
        assert!(text.contains("jtp_trigger_skew_seconds_bucket{le=\"0.5\"} 1"));
        assert!(text.contains("jtp_trigger_skew_seconds_bucket{le=\"5.0\"} 2"));
        assert!(text.contains("jtp_trigger_skew_seconds_count 2"));
        assert!(text.contains("jtp_reconcile_errors_total{kind=\"kube\"} 1"));
        assert!(text.contains("jtp_api_writes_total{kind=\"job_apply\"} 1"));
        assert!(text.contains("jtp_leader 1"));
        assert!(text.ends_with("# EOF\n"));
        assert_eq!(m.api_writes_total(), 1);
        assert!(m.is_leader());
    }

    #[tokio::test]
    async fn the_router_serves_metrics_health_and_readiness() {
        let m = Metrics::new();
        let call = |path: &'static str| {
            let app = router(m.clone());
            async move {
                let response = app
                    .oneshot(Request::get(path).body(Body::empty()).expect("request"))
                    .await
                    .expect("response");
                let status = response.status();
                let content_type = response
                    .headers()
                    .get(header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                let body = axum::body::to_bytes(response.into_body(), usize::MAX)
                    .await
                    .expect("body");
                (status, content_type, String::from_utf8_lossy(&body).into_owned())
            }
        };
        let (status, content_type, body) = call("/metrics").await;
        assert_eq!((status, content_type.as_str()), (StatusCode::OK, OPENMETRICS));
        assert!(body.contains("jtp_reconciles_total 0"), "{body}");
        assert_eq!(call("/healthz").await.0, StatusCode::OK);
        assert_eq!(call("/readyz").await.0, StatusCode::SERVICE_UNAVAILABLE);
        m.set_ready(true);
        assert_eq!(call("/readyz").await.0, StatusCode::OK);
        assert_eq!(call("/nowhere").await.0, StatusCode::NOT_FOUND);
    }
}
