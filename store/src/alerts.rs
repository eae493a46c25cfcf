//! Alerting's state in SQL: incidents (`alert_events`), where each goes (`alert_deliveries`) and
//! every attempt to send it (`alert_attempts`); and the dead-man's switch's reads.
//!
//! An incident is written where its fact is recorded — the finish of a run (in the same
//! transaction, [`crate::runs`]), a skipped slot, the scheduler's overdue check — under a key that
//! makes writing it twice a no-op, so a restart or a second replica neither loses nor repeats one.
//! Sending is a separate step that claims due deliveries with a lease: a sender that dies mid-send
//! leaves the delivery to be tried again once the lease ends (at least once, never lost).

use crate::model::Job;
use crate::row::job_columns;
use crate::time::{Ts, ts};
use crate::{Error, Result, Store, begin_write, with_pool};
use chrono::{DateTime, Duration, Utc};
use jtp_crds::{Overdue, RunStatus};
use std::fmt;

/// What an incident is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AlertKind {
    /// A run failed (FAILURE or ERROR) after a success, or as the job's first finished run.
    Failure,
    /// The first success after failed runs, or after the job was overdue.
    Recovery,
    /// A due slot was not run; one per streak of skipped slots (until the job starts a run again).
    Skipped,
    /// No success within `expectSuccessWithin`; one per deadline.
    Overdue,
}

impl AlertKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Failure => "failure",
            Self::Recovery => "recovery",
            Self::Skipped => "skipped",
            Self::Overdue => "overdue",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Failure, Self::Recovery, Self::Skipped, Self::Overdue]
            .into_iter()
            .find(|k| k.as_str() == text)
    }
}

impl fmt::Display for AlertKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One incident.
#[derive(Clone, Debug, PartialEq)]
pub struct AlertEvent {
    pub id: i64,
    pub job_id: i64,
    pub kind: AlertKind,
    /// The run it is about (failure: the first failed run; recovery: the success).
    pub run_id: Option<i64>,
    pub run_status: Option<RunStatus>,
    /// Failed runs in a row: 1 when a streak starts; for a recovery, how many there were.
    pub failures: i64,
    /// In words: the skipped slot and why, the overdue deadline.
    pub detail: String,
    pub occurred_at: DateTime<Utc>,
    pub dispatched_at: Option<DateTime<Utc>>,
}

/// Where one incident goes: a receiver and its body format.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeliveryPlan {
    pub receiver: String,
    /// `json` or `slack`.
    pub format: String,
    /// Set when it cannot be sent at all (a receiver nobody defined): recorded as failed at once.
    pub refused: Option<String>,
}

/// How far a delivery got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeliveryState {
    Pending,
    Delivered,
    Failed,
}

impl DeliveryState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
        }
    }

    pub(crate) fn parse(text: &str) -> Option<Self> {
        [Self::Pending, Self::Delivered, Self::Failed]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

/// One delivery with its attempts, newest attempt last.
#[derive(Clone, Debug, PartialEq)]
pub struct Delivery {
    pub id: i64,
    pub event_id: i64,
    pub receiver: String,
    pub format: String,
    pub state: DeliveryState,
    pub attempts: i64,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
}

/// One attempt to send, as it ended.
#[derive(Clone, Debug, PartialEq)]
pub struct Attempt {
    pub delivery_id: i64,
    pub attempt: i64,
    pub started_at: DateTime<Utc>,
    pub duration_ms: i64,
    /// The receiver's HTTP status; `None` when it did not answer.
    pub http_status: Option<i64>,
    /// What went wrong (never the URL).
    pub error: Option<String>,
}

/// What became of an attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttemptOutcome {
    Delivered,
    /// Try again, not before this instant.
    RetryAt(DateTime<Utc>),
    /// No more attempts.
    GaveUp,
}

/// A job's incident with where it went, for the portal and the API.
#[derive(Clone, Debug, PartialEq)]
pub struct AlertRecord {
    pub event: AlertEvent,
    pub deliveries: Vec<(Delivery, Vec<Attempt>)>,
}

/// A claimed delivery, ready to send: the delivery, its incident and the incident's job.
#[derive(Clone, Debug)]
pub struct DueDelivery {
    pub delivery: Delivery,
    pub event: AlertEvent,
    pub job: Job,
}

macro_rules! event_columns {
    () => {
        "id, job_id, kind, run_id, run_status, failures, detail, occurred_at, dispatched_at"
    };
}
macro_rules! delivery_columns {
    () => {
        "id, event_id, receiver, format, state, attempts, next_attempt_at, updated_at"
    };
}

const UNDISPATCHED: &str = concat!(
    "SELECT ",
    event_columns!(),
    " FROM alert_events WHERE dispatched_at IS NULL ORDER BY id LIMIT $1"
);
const GET_EVENT: &str = concat!("SELECT ", event_columns!(), " FROM alert_events WHERE id = $1");
const JOB_EVENTS: &str = concat!(
    "SELECT ",
    event_columns!(),
    " FROM alert_events WHERE job_id = $1 ORDER BY id DESC LIMIT $2"
);
const DUE_DELIVERIES: &str = concat!(
    "SELECT ",
    delivery_columns!(),
    " FROM alert_deliveries WHERE state = 'pending' AND next_attempt_at <= $1 \
     ORDER BY next_attempt_at, id LIMIT $2"
);
const JOB_DELIVERIES: &str = concat!(
    "SELECT ",
    delivery_columns!(),
    " FROM alert_deliveries WHERE event_id IN \
     (SELECT id FROM alert_events WHERE job_id = $1 AND id >= $2) ORDER BY id"
);
const JOB_ATTEMPTS: &str = "SELECT a.delivery_id, a.attempt, a.started_at, a.duration_ms, a.http_status, a.error \
     FROM alert_attempts a JOIN alert_deliveries d ON a.delivery_id = d.id \
     JOIN alert_events e ON d.event_id = e.id WHERE e.job_id = $1 AND e.id >= $2 ORDER BY a.attempt";

/// Old dispatched incidents ([`Store::prune_alerts`]), children first.
macro_rules! old_events {
    () => {
        "SELECT id FROM alert_events WHERE dispatched_at IS NOT NULL AND occurred_at < $1"
    };
}
const PRUNE_ATTEMPTS: &str = concat!(
    "DELETE FROM alert_attempts WHERE delivery_id IN (SELECT id FROM alert_deliveries WHERE event_id IN (",
    old_events!(),
    "))"
);
const PRUNE_DELIVERIES: &str = concat!(
    "DELETE FROM alert_deliveries WHERE event_id IN (",
    old_events!(),
    ")"
);
const PRUNE_EVENTS: &str = "DELETE FROM alert_events WHERE dispatched_at IS NOT NULL AND occurred_at < $1";

/// An incident, once per (job, kind, key).
pub(crate) const INSERT_EVENT: &str = "INSERT INTO alert_events \
     (job_id, kind, incident_key, run_id, run_status, failures, detail, occurred_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING";

/// The job's failing streak and last success before a finish changes them.
pub(crate) const BEFORE_FINISH: &str =
    "SELECT consecutive_failures, last_success_at FROM scheduled_jobs WHERE id = $1";

/// Was the job alerted as overdue since its last success (`$2`, NULL: ever)?
pub(crate) const OVERDUE_SINCE: &str = "SELECT COUNT(*) FROM alert_events \
     WHERE job_id = $1 AND kind = 'overdue' AND ($2 IS NULL OR occurred_at > $2)";

/// The newest success only moves forward.
pub(crate) const SET_LAST_SUCCESS: &str = "UPDATE scheduled_jobs SET last_success_at = $2 \
     WHERE id = $1 AND (last_success_at IS NULL OR last_success_at < $2)";

/// The newest failure only moves forward (every failed attempt counts, retried or not).
pub(crate) const SET_LAST_FAILURE: &str = "UPDATE scheduled_jobs SET last_failure_at = $2 \
     WHERE id = $1 AND (last_failure_at IS NULL OR last_failure_at < $2)";

/// What the per-job metrics read: every live job, one narrow row each.
const JOB_HEALTH: &str = "SELECT namespace, name, last_success_at, last_failure_at, consecutive_failures \
     FROM scheduled_jobs WHERE deleted_at IS NULL ORDER BY namespace, name, id";

/// A skipped slot opens an incident unless one is open: a skipped incident after which the job
/// started no run.
const INSERT_SKIPPED: &str = "INSERT INTO alert_events (job_id, kind, incident_key, detail, occurred_at) \
     SELECT $1, 'skipped', $2, $3, $4 WHERE NOT EXISTS (\
       SELECT 1 FROM alert_events e WHERE e.job_id = $1 AND e.kind = 'skipped' AND NOT EXISTS (\
         SELECT 1 FROM job_execution_logs l WHERE l.job_id = $1 AND l.run_time >= e.occurred_at)) \
     ON CONFLICT DO NOTHING";

const WATCHED_JOBS: &str = concat!(
    "SELECT ",
    job_columns!(),
    " FROM scheduled_jobs WHERE deleted_at IS NULL AND expect_success_within_seconds IS NOT NULL \
     ORDER BY namespace, name, id"
);

const INSERT_DELIVERY: &str = "INSERT INTO alert_deliveries \
     (event_id, receiver, format, state, attempts, next_attempt_at, updated_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING RETURNING id";

const INSERT_ATTEMPT: &str = "INSERT INTO alert_attempts \
     (delivery_id, attempt, started_at, duration_ms, http_status, error) VALUES ($1, $2, $3, $4, $5, $6) \
     ON CONFLICT DO NOTHING";

/// A due delivery is taken by moving its `next_attempt_at` past the send's time limit.
const CLAIM_DELIVERY: &str = "UPDATE alert_deliveries SET next_attempt_at = $3 \
     WHERE id = $1 AND state = 'pending' AND next_attempt_at <= $2";

/// A live job's alerting facts, as its row holds them (the per-job metrics).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobHealth {
    pub namespace: String,
    pub name: String,
    /// When its newest successful run finished.
    pub last_success_at: Option<DateTime<Utc>>,
    /// When its newest failed run (FAILURE or ERROR, any attempt) finished.
    pub last_failure_at: Option<DateTime<Utc>>,
    /// Failed runs in a row (after their retries), 0 after a success.
    pub consecutive_failures: i32,
}

/// Dispatched incidents are kept this long for the portal; older ones (and their deliveries and
/// attempts) are deleted by [`Store::prune_alerts`], which every retention pass ([`Store::prune_runs`]) runs.
pub const ALERTS_KEPT: Duration = Duration::days(90);

impl Store {
    /// Opens an incident for a skipped slot of job `job_id` (`slot` as its key, `detail` in
    /// words), unless the job has one open: slots skipped in a row alert once, until a run
    /// starts. True when it was written.
    pub async fn record_skipped(
        &self,
        job_id: i64,
        slot: DateTime<Utc>,
        detail: &str,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let key = slot.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        let written = with_pool!(self, pool => {
            sqlx::query(INSERT_SKIPPED)
                .bind(job_id)
                .bind(&key)
                .bind(detail)
                .bind(Ts(now))
                .execute(pool)
                .await
                .map(|r| r.rows_affected() > 0)
        })?;
        Ok(written)
    }

    /// Opens the overdue incident of job `job_id` for this deadline (once per deadline). True
    /// when it was written.
    pub async fn record_overdue(&self, job_id: i64, overdue: &Overdue, now: DateTime<Utc>) -> Result<bool> {
        let key = overdue
            .deadline
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        let written = with_pool!(self, pool => {
            sqlx::query(INSERT_EVENT)
                .bind(job_id)
                .bind(AlertKind::Overdue.as_str())
                .bind(&key)
                .bind(None::<i64>)
                .bind(None::<String>)
                .bind(0_i64)
                .bind(overdue.to_string())
                .bind(Ts(now))
                .execute(pool)
                .await
                .map(|r| r.rows_affected() > 0)
        })?;
        Ok(written)
    }

    /// Every live job's alerting facts (deleted jobs are left out), ordered by namespace and name.
    pub async fn job_health(&self) -> Result<Vec<JobHealth>> {
        Ok(with_pool!(self, pool => sqlx::query_as(JOB_HEALTH).fetch_all(pool).await)?)
    }

    /// Live jobs with a dead-man's switch (`spec.expectSuccessWithin`).
    pub async fn watched_jobs(&self) -> Result<Vec<Job>> {
        Ok(with_pool!(self, pool => sqlx::query_as(WATCHED_JOBS).fetch_all(pool).await)?)
    }

    /// Incidents whose deliveries are not created yet, oldest first.
    pub async fn undispatched_alerts(&self, limit: i64) -> Result<Vec<AlertEvent>> {
        Ok(with_pool!(self, pool => sqlx::query_as(UNDISPATCHED).bind(limit).fetch_all(pool).await)?)
    }

    /// Creates the deliveries of incident `event_id` (none: nobody is told) and marks it
    /// dispatched, in one transaction. A refused plan is recorded as failed with one attempt
    /// saying why.
    pub async fn dispatch_alert(
        &self,
        event_id: i64,
        plans: &[DeliveryPlan],
        now: DateTime<Utc>,
    ) -> Result<()> {
        with_pool!(self, pool => {
            let mut tx = begin_write(pool).await?;
            for plan in plans {
                let (state, attempts, next) = match plan.refused {
                    None => (DeliveryState::Pending, 0_i64, Some(Ts(now))),
                    Some(_) => (DeliveryState::Failed, 1, None),
                };
                let id: Option<i64> = sqlx::query_scalar(INSERT_DELIVERY)
                    .bind(event_id)
                    .bind(&plan.receiver)
                    .bind(&plan.format)
                    .bind(state.as_str())
                    .bind(attempts)
                    .bind(next)
                    .bind(Ts(now))
                    .fetch_optional(&mut *tx)
                    .await?;
                if let (Some(id), Some(reason)) = (id, &plan.refused) {
                    sqlx::query(INSERT_ATTEMPT)
                        .bind(id)
                        .bind(1_i64)
                        .bind(Ts(now))
                        .bind(0_i64)
                        .bind(None::<i64>)
                        .bind(reason)
                        .execute(&mut *tx)
                        .await?;
                }
            }
            sqlx::query("UPDATE alert_events SET dispatched_at = $2 WHERE id = $1 AND dispatched_at IS NULL")
                .bind(event_id)
                .bind(Ts(now))
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok::<_, Error>(())
        })
    }

    /// Takes up to `limit` deliveries due at `now`, each until `now + lease` (the send's time
    /// limit): another sender does not take them meanwhile, and one that died leaves them due
    /// again when the lease ends.
    pub async fn claim_due_deliveries(
        &self,
        now: DateTime<Utc>,
        lease: Duration,
        limit: i64,
    ) -> Result<Vec<DueDelivery>> {
        let candidates: Vec<Delivery> = with_pool!(self, pool => {
            sqlx::query_as(DUE_DELIVERIES).bind(Ts(now)).bind(limit).fetch_all(pool).await
        })?;
        let mut claimed = Vec::new();
        for mut delivery in candidates {
            let taken = with_pool!(self, pool => {
                sqlx::query(CLAIM_DELIVERY)
                    .bind(delivery.id)
                    .bind(Ts(now))
                    .bind(Ts(now + lease))
                    .execute(pool)
                    .await
                    .map(|r| r.rows_affected() == 1)
            })?;
            if !taken {
                continue;
            }
            delivery.next_attempt_at = Some(now + lease);
            let event = self.alert_event(delivery.event_id).await?;
            let job = self.get_job(event.job_id).await?;
            claimed.push(DueDelivery { delivery, event, job });
        }
        Ok(claimed)
    }

    async fn alert_event(&self, id: i64) -> Result<AlertEvent> {
        let event = with_pool!(self, pool => sqlx::query_as(GET_EVENT).bind(id).fetch_optional(pool).await)?;
        event.ok_or_else(|| Error::not_found(format!("alert {id}")))
    }

    /// Records attempt number `attempt.attempt` of a delivery and what became of it.
    pub async fn record_attempt(&self, attempt: &Attempt, outcome: AttemptOutcome) -> Result<()> {
        let (state, next) = match outcome {
            AttemptOutcome::Delivered => (DeliveryState::Delivered, None),
            AttemptOutcome::RetryAt(at) => (DeliveryState::Pending, Some(at)),
            AttemptOutcome::GaveUp => (DeliveryState::Failed, None),
        };
        let now = attempt.started_at + Duration::milliseconds(attempt.duration_ms);
        with_pool!(self, pool => {
            let mut tx = begin_write(pool).await?;
            sqlx::query(INSERT_ATTEMPT)
                .bind(attempt.delivery_id)
                .bind(attempt.attempt)
                .bind(Ts(attempt.started_at))
                .bind(attempt.duration_ms)
                .bind(attempt.http_status)
                .bind(&attempt.error)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "UPDATE alert_deliveries SET state = $2, attempts = $3, next_attempt_at = $4, updated_at = $5 \
                 WHERE id = $1 AND state = 'pending'",
            )
            .bind(attempt.delivery_id)
            .bind(state.as_str())
            .bind(attempt.attempt)
            .bind(ts(next))
            .bind(Ts(now))
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok::<_, Error>(())
        })
    }

    /// Job `job_id`'s newest incidents with their deliveries and attempts, newest first.
    pub async fn job_alerts(&self, job_id: i64, limit: i64) -> Result<Vec<AlertRecord>> {
        let events: Vec<AlertEvent> = with_pool!(self, pool => {
            sqlx::query_as(JOB_EVENTS).bind(job_id).bind(limit.clamp(1, 200)).fetch_all(pool).await
        })?;
        let Some(oldest) = events.last().map(|e| e.id) else {
            return Ok(Vec::new());
        };
        let (deliveries, attempts): (Vec<Delivery>, Vec<Attempt>) = with_pool!(self, pool => {
            let deliveries = sqlx::query_as(JOB_DELIVERIES).bind(job_id).bind(oldest).fetch_all(pool).await?;
            let attempts = sqlx::query_as(JOB_ATTEMPTS).bind(job_id).bind(oldest).fetch_all(pool).await?;
            Ok::<_, sqlx::Error>((deliveries, attempts))
        })?;
        Ok(events
            .into_iter()
            .map(|event| {
                let deliveries = deliveries
                    .iter()
                    .filter(|d| d.event_id == event.id)
                    .map(|d| {
                        let tries = attempts
                            .iter()
                            .filter(|a| a.delivery_id == d.id)
                            .cloned()
                            .collect();
                        (d.clone(), tries)
                    })
                    .collect();
                AlertRecord { event, deliveries }
            })
            .collect())
    }

    /// Deletes dispatched incidents older than `before`, with their deliveries and attempts.
    pub async fn prune_alerts(&self, before: DateTime<Utc>) -> Result<u64> {
        let deleted = with_pool!(self, pool => {
            let mut tx = begin_write(pool).await?;
            for prune in [PRUNE_ATTEMPTS, PRUNE_DELIVERIES] {
                sqlx::query(prune).bind(Ts(before)).execute(&mut *tx).await?;
            }
            let deleted = sqlx::query(PRUNE_EVENTS).bind(Ts(before)).execute(&mut *tx).await?.rows_affected();
            tx.commit().await?;
            Ok::<_, Error>(deleted)
        })?;
        Ok(deleted)
    }
}
