//! Alerting's state in SQL and the dead-man's switch's columns, the same on SQLite and on a real
//! PostgreSQL server: incidents are written once, where their fact is recorded.

mod common;

use chrono::{DateTime, Duration, TimeZone, Utc};
use common::TestDb;
use jtp_crds::{RunStatus, ScheduledJobSpec, Trigger};
use jtp_store::*;

fn at(day: u32, h: u32, m: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, day, h, m, 0)
        .single()
        .expect("valid time")
}

fn input<'a>(name: &'a str, spec: &'a ScheduledJobSpec) -> JobInput<'a> {
    JobInput {
        name,
        namespace: "default",
        uid: None,
        spec,
        next_run: None,
    }
}

/// Starts and finishes one run of `job_id` in `slot` (finished a minute later).
async fn run(store: &Store, job_id: i64, slot: DateTime<Utc>, status: RunStatus) -> i64 {
    let id = store
        .record_attempt_start(
            &RunStart {
                job_id,
                trigger: Trigger::Schedule,
                scheduled_for: slot,
                started_at: slot,
                k8s_job_name: None,
                runner: Some("test".into()),
                requester: None,
                parameters: Default::default(),
            },
            1,
        )
        .await
        .expect("start");
    store
        .record_attempt_finish(
            id,
            &RunFinish {
                status,
                exit_code: (status == RunStatus::Failure).then_some(1),
                output: b"",
                finished_at: slot + Duration::minutes(1),
            },
            FinishEffects::default(),
        )
        .await
        .expect("finish");
    id
}

async fn incidents(store: &Store, job_id: i64) -> Vec<(AlertKind, i64, Option<RunStatus>)> {
    let mut records = store.job_alerts(job_id, 100).await.expect("alerts");
    records.reverse();
    records
        .into_iter()
        .map(|r| (r.event.kind, r.event.failures, r.event.run_status))
        .collect()
}

on_both_backends!(
    the_switch_counts_from_when_it_was_set_and_from_each_success,
    ten_failures_are_one_incident_and_the_recovery_counts_them,
    skipped_slots_alert_once_until_a_run_starts,
    overdue_is_one_incident_per_deadline_and_a_success_recovers_it,
    deliveries_are_claimed_once_and_every_attempt_is_kept,
    job_health_holds_the_last_success_and_failure_and_leaves_deleted_jobs_out,
);

async fn job_health_holds_the_last_success_and_failure_and_leaves_deleted_jobs_out(db: &TestDb) {
    let store = &db.store;
    let spec = ScheduledJobSpec::daily("09:00");
    let a = store.create_job(&input("a", &spec)).await.expect("create");
    store.create_job(&input("b", &spec)).await.expect("create");
    let gone = store.create_job(&input("gone", &spec)).await.expect("create");
    run(store, a.id, at(1, 1, 0), RunStatus::Success).await;
    run(store, a.id, at(2, 1, 0), RunStatus::Failure).await;
    run(store, a.id, at(3, 1, 0), RunStatus::Error).await;
    // A late finish of an older failure does not move the last failure back.
    let late = store
        .record_attempt_start(
            &RunStart {
                job_id: a.id,
                trigger: Trigger::Manual,
                scheduled_for: at(1, 2, 0),
                started_at: at(1, 2, 0),
                k8s_job_name: None,
                runner: Some("test".into()),
                requester: None,
                parameters: Default::default(),
            },
            1,
        )
        .await
        .expect("start");
    store
        .record_attempt_finish(
            late,
            &RunFinish {
                status: RunStatus::Failure,
                exit_code: Some(1),
                output: b"",
                finished_at: at(1, 3, 0),
            },
            FinishEffects::default(),
        )
        .await
        .expect("finish");
    run(store, gone.id, at(1, 1, 0), RunStatus::Failure).await;
    store.delete_job(gone.id).await.expect("delete");
    let health = store.job_health().await.expect("health");
    let names: Vec<&str> = health.iter().map(|h| h.name.as_str()).collect();
    assert_eq!(names, ["a", "b"], "a deleted job is left out");
    assert_eq!(health[0].last_success_at, Some(at(1, 1, 1)));
    assert_eq!(health[0].last_failure_at, Some(at(3, 1, 1)));
    assert_eq!(
        health[0].consecutive_failures, 2,
        "the late finish is not the last run"
    );
    assert_eq!(
        health[1],
        JobHealth {
            namespace: "default".into(),
            name: "b".into(),
            last_success_at: None,
            last_failure_at: None,
            consecutive_failures: 0,
        }
    );
    run(store, a.id, at(4, 1, 0), RunStatus::Success).await;
    let health = store.job_health().await.expect("health");
    assert_eq!(health[0].consecutive_failures, 0);
    assert_eq!(health[0].last_success_at, Some(at(4, 1, 1)));
    assert_eq!(health[0].last_failure_at, Some(at(3, 1, 1)));
}

async fn the_switch_counts_from_when_it_was_set_and_from_each_success(db: &TestDb) {
    let store = &db.store;
    let plain = ScheduledJobSpec::daily("09:00");
    let watched = ScheduledJobSpec::daily("09:00").expect_success_within("26h");
    let job = store.create_job(&input("w", &watched)).await.expect("create");
    let since = job.expect_since.expect("set when written");
    assert_eq!(job.expect_success_within_seconds, Some(26 * 3600));
    assert_eq!(
        job.expectation().map(|e| e.deadline()),
        Some(since + Duration::hours(26))
    );
    assert_eq!(store.watched_jobs().await.expect("watched").len(), 1);

    // An edit of anything else keeps the clock; so does a new value.
    let edited = ScheduledJobSpec::monthly(1, "09:00").expect_success_within("2d");
    let job = store
        .update_job(job.id, &input("w", &edited))
        .await
        .expect("edit");
    assert_eq!(job.expect_since, Some(since));
    // A success moves the deadline.
    let success = at(20, 1, 0);
    run(store, job.id, success, RunStatus::Success).await;
    run(store, job.id, success - Duration::hours(5), RunStatus::Success).await;
    let job = store.get_job(job.id).await.expect("job");
    assert_eq!(
        job.last_success_at,
        Some(success + Duration::minutes(1)),
        "only forward"
    );
    // A success older than the switch does not count; the switch's own start does.
    assert_eq!(
        job.expectation().map(|e| e.deadline()),
        Some(since + Duration::days(2))
    );
    let recent = Utc::now() + Duration::hours(1);
    run(store, job.id, recent, RunStatus::Success).await;
    let job = store.get_job(job.id).await.expect("job");
    let finished = job.last_success_at.expect("a success");
    assert!(finished > since);
    assert_eq!(
        job.expectation().map(|e| e.deadline()),
        Some(finished + Duration::days(2))
    );
    // Turned off: not watched; turned on again: counted from then.
    let job = store.update_job(job.id, &input("w", &plain)).await.expect("off");
    assert_eq!((job.expect_since, job.expectation()), (None, None));
    assert!(store.watched_jobs().await.expect("watched").is_empty());
    let job = store.update_job(job.id, &input("w", &watched)).await.expect("on");
    assert!(job.expect_since.is_some_and(|s| s > since));
    store.delete_job(job.id).await.expect("delete");
    assert!(
        store.watched_jobs().await.expect("watched").is_empty(),
        "deleted jobs are not watched"
    );
    assert_eq!(store.get_job(job.id).await.expect("job").expectation(), None);
}

async fn ten_failures_are_one_incident_and_the_recovery_counts_them(db: &TestDb) {
    let store = &db.store;
    let spec = ScheduledJobSpec::daily("09:00");
    let job = store.create_job(&input("flaky", &spec)).await.expect("create");
    run(store, job.id, at(1, 1, 0), RunStatus::Success).await;
    assert!(
        incidents(store, job.id).await.is_empty(),
        "a success after nothing is no recovery"
    );
    let first = run(store, job.id, at(2, 1, 0), RunStatus::Error).await;
    for day in 3..12 {
        run(store, job.id, at(day, 1, 0), RunStatus::Failure).await;
    }
    assert_eq!(
        incidents(store, job.id).await,
        [(AlertKind::Failure, 1, Some(RunStatus::Error))],
        "ten failed runs in a row: one incident, opened by the first"
    );
    let records = store.job_alerts(job.id, 10).await.expect("alerts");
    assert_eq!(records[0].event.run_id, Some(first));
    let recovered = run(store, job.id, at(12, 1, 0), RunStatus::Success).await;
    run(store, job.id, at(13, 1, 0), RunStatus::Success).await;
    assert_eq!(
        incidents(store, job.id).await,
        [
            (AlertKind::Failure, 1, Some(RunStatus::Error)),
            (AlertKind::Recovery, 10, Some(RunStatus::Success)),
        ]
    );
    assert_eq!(
        store.job_alerts(job.id, 1).await.expect("alerts")[0].event.run_id,
        Some(recovered)
    );
    // A finish recorded twice opens nothing twice.
    store
        .record_attempt_finish(
            recovered,
            &RunFinish {
                status: RunStatus::Success,
                exit_code: Some(0),
                output: b"",
                finished_at: at(12, 1, 1),
            },
            FinishEffects::default(),
        )
        .await
        .expect("again");
    run(store, job.id, at(14, 1, 0), RunStatus::Failure).await;
    assert_eq!(
        incidents(store, job.id).await.len(),
        3,
        "a new streak is a new incident"
    );
}

async fn skipped_slots_alert_once_until_a_run_starts(db: &TestDb) {
    let store = &db.store;
    let spec = ScheduledJobSpec::daily("09:00");
    let job = store.create_job(&input("late", &spec)).await.expect("create");
    let now = Utc::now();
    assert!(
        store
            .record_skipped(job.id, at(1, 1, 0), "slot skipped", now)
            .await
            .expect("skip")
    );
    assert!(
        !store
            .record_skipped(job.id, at(2, 1, 0), "slot skipped", now)
            .await
            .expect("skip")
    );
    run(store, job.id, now + Duration::seconds(1), RunStatus::Success).await;
    let later = now + Duration::minutes(5);
    assert!(
        store
            .record_skipped(job.id, at(3, 1, 0), "slot skipped", later)
            .await
            .expect("skip")
    );
    let kinds: Vec<AlertKind> = incidents(store, job.id).await.into_iter().map(|i| i.0).collect();
    assert_eq!(kinds, [AlertKind::Skipped, AlertKind::Skipped]);
}

async fn overdue_is_one_incident_per_deadline_and_a_success_recovers_it(db: &TestDb) {
    let store = &db.store;
    let spec = ScheduledJobSpec::manual().expect_success_within("1h");
    let job = store.create_job(&input("quiet", &spec)).await.expect("create");
    let later = Utc::now() + Duration::hours(2);
    let overdue = job.overdue(later).expect("overdue after an hour without success");
    assert!(
        store
            .record_overdue(job.id, &overdue, later)
            .await
            .expect("overdue")
    );
    assert!(
        !store
            .record_overdue(job.id, &overdue, later)
            .await
            .expect("again")
    );
    run(store, job.id, later, RunStatus::Success).await;
    let seen = incidents(store, job.id).await;
    assert_eq!(
        seen,
        [
            (AlertKind::Overdue, 0, None),
            (AlertKind::Recovery, 0, Some(RunStatus::Success)),
        ]
    );
    let records = store.job_alerts(job.id, 10).await.expect("alerts");
    assert_eq!(records[0].event.detail, "succeeded again after being overdue");
    assert!(
        records[1].event.detail.starts_with("no success within 1h"),
        "{}",
        records[1].event.detail
    );
}

async fn deliveries_are_claimed_once_and_every_attempt_is_kept(db: &TestDb) {
    let store = &db.store;
    let spec = ScheduledJobSpec::daily("09:00");
    let job = store.create_job(&input("sent", &spec)).await.expect("create");
    run(store, job.id, at(1, 1, 0), RunStatus::Failure).await;
    let events = store.undispatched_alerts(10).await.expect("undispatched");
    assert_eq!(events.len(), 1);
    let now = Utc::now();
    let plans = [
        DeliveryPlan {
            receiver: "ops".into(),
            format: "json".into(),
            refused: None,
        },
        DeliveryPlan {
            receiver: "nobody".into(),
            format: "json".into(),
            refused: Some("no receiver named \"nobody\" is defined".into()),
        },
    ];
    store
        .dispatch_alert(events[0].id, &plans, now)
        .await
        .expect("dispatch");
    store
        .dispatch_alert(events[0].id, &plans, now)
        .await
        .expect("dispatch again");
    assert!(
        store
            .undispatched_alerts(10)
            .await
            .expect("undispatched")
            .is_empty()
    );
    let lease = Duration::seconds(30);
    let claimed = store.claim_due_deliveries(now, lease, 10).await.expect("claim");
    assert_eq!(claimed.len(), 1, "the refused one is not sent");
    assert_eq!(
        (
            claimed[0].delivery.receiver.as_str(),
            claimed[0].job.name.as_str()
        ),
        ("ops", "sent")
    );
    assert!(
        store
            .claim_due_deliveries(now, lease, 10)
            .await
            .expect("claim")
            .is_empty(),
        "taken"
    );
    let delivery = claimed[0].delivery.id;
    let retry_at = now + Duration::seconds(2);
    store
        .record_attempt(
            &Attempt {
                delivery_id: delivery,
                attempt: 1,
                started_at: now,
                duration_ms: 12,
                http_status: Some(500),
                error: Some("the receiver answered 500".into()),
            },
            AttemptOutcome::RetryAt(retry_at),
        )
        .await
        .expect("attempt 1");
    assert!(
        store
            .claim_due_deliveries(now + Duration::seconds(1), lease, 10)
            .await
            .expect("claim")
            .is_empty()
    );
    let again = store
        .claim_due_deliveries(retry_at, lease, 10)
        .await
        .expect("claim");
    assert_eq!(again.len(), 1);
    store
        .record_attempt(
            &Attempt {
                delivery_id: delivery,
                attempt: 2,
                started_at: retry_at,
                duration_ms: 8,
                http_status: Some(200),
                error: None,
            },
            AttemptOutcome::Delivered,
        )
        .await
        .expect("attempt 2");
    let record = &store.job_alerts(job.id, 10).await.expect("alerts")[0];
    let states: Vec<(&str, DeliveryState, i64, Vec<Option<i64>>)> = record
        .deliveries
        .iter()
        .map(|(d, tries)| {
            (
                d.receiver.as_str(),
                d.state,
                d.attempts,
                tries.iter().map(|a| a.http_status).collect(),
            )
        })
        .collect();
    assert_eq!(
        states,
        [
            ("ops", DeliveryState::Delivered, 2, vec![Some(500), Some(200)]),
            ("nobody", DeliveryState::Failed, 1, vec![None]),
        ]
    );
    assert_eq!(store.prune_alerts(at(1, 1, 0)).await.expect("prune"), 0);
    // The retention pass (both modes run it) deletes incidents older than ALERTS_KEPT.
    let keep_all = jtp_crds::Retention::default();
    let soon = store
        .prune_runs(
            &keep_all,
            at(1, 0, 0) + Duration::days(80),
            &PruneOptions::default(),
        )
        .await
        .expect("prune");
    assert_eq!(soon.incidents, 0, "younger than {ALERTS_KEPT:?}");
    let later = store
        .prune_runs(
            &keep_all,
            Utc::now() + Duration::days(400),
            &PruneOptions::default(),
        )
        .await
        .expect("prune");
    assert_eq!(later.incidents, 1);
    assert!(store.job_alerts(job.id, 10).await.expect("alerts").is_empty());
}
