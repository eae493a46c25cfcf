//! Run Now with parameters (migration 0016): the values travel with a pending Run Now in the
//! job's row, are recorded with the run the claim starts (a scheduled run records the defaults
//! it was given), come back from every read of runs, and a further attempt runs with the values
//! of the attempt before it. On both backends.

mod common;

use chrono::{DateTime, Duration, TimeZone, Utc};
use common::TestDb;
use jtp_crds::policy::PendingRetry;
use jtp_crds::{ParameterValues, RunStatus, ScheduledJobSpec, Trigger};
use jtp_store::*;

fn at(h: u32, m: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 2, h, m, 0)
        .single()
        .expect("valid time")
}

fn values(pairs: &[(&str, &str)]) -> ParameterValues {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn input<'a>(name: &'a str, spec: &'a ScheduledJobSpec, next_run: Option<DateTime<Utc>>) -> JobInput<'a> {
    JobInput {
        name,
        namespace: "default",
        uid: None,
        spec,
        next_run,
    }
}

async fn a_run_now_s_values_are_recorded_with_its_run_and_read_back(db: &TestDb) {
    let store = &db.store;
    let job = store
        .create_job(&input(
            "report",
            &ScheduledJobSpec::daily("09:00"),
            Some(at(9, 0)),
        ))
        .await
        .expect("create");
    // Quotes, a newline and non-ASCII survive the JSON column.
    let asked = values(&[("REGION", "eu-west"), ("NOTE", "say \"hi\"\nzweite Zeile: ä")]);
    store
        .request_run_now(job.id, at(8, 0), "alice", &asked)
        .await
        .expect("run now");
    let defaults = values(&[("REGION", "default-region")]);
    let claim = SlotClaim {
        job_id: job.id,
        expected_next_run: at(8, 0),
        new_next_run: Some(at(9, 0)),
        runner: "r",
        now: at(8, 0),
        drop_retry: false,
        parameters: &defaults,
    };
    let won = jtp_store::testing::claim_one(store, claim)
        .await
        .expect("claim")
        .expect("won");
    assert_eq!(won.trigger, Trigger::Manual);
    assert_eq!(won.parameters, asked, "the request's values, not the defaults");

    // The scheduled slot after it gets the defaults the runner gave.
    let scheduled = SlotClaim {
        expected_next_run: at(9, 0),
        new_next_run: Some(at(9, 0) + Duration::days(1)),
        now: at(9, 0),
        ..claim
    };
    let slot = jtp_store::testing::claim_one(store, scheduled)
        .await
        .expect("claim")
        .expect("won");
    assert_eq!((slot.trigger, &slot.parameters), (Trigger::Schedule, &defaults));

    let runs = store.list_runs(job.id, 10, 0).await.expect("runs").items;
    let recorded: Vec<(Trigger, ParameterValues)> =
        runs.iter().map(|r| (r.trigger, r.parameters.clone())).collect();
    assert_eq!(
        recorded,
        [
            (Trigger::Schedule, defaults.clone()),
            (Trigger::Manual, asked.clone())
        ]
    );
    let run = store.get_run(won.run_id).await.expect("run");
    assert_eq!(run.summary.parameters, asked);
    assert_eq!(run.summary.requester.as_deref(), Some("alice"));
    let across = store
        .list_all_runs(&RunFilter {
            trigger: Some(Trigger::Manual),
            limit: 10,
            ..RunFilter::default()
        })
        .await
        .expect("runs view");
    assert_eq!(across.items[0].run.parameters, asked);

    // The request's values went with it: a later Run Now without any has none.
    store
        .request_run_now(job.id, at(10, 0), "bob", &ParameterValues::new())
        .await
        .expect("run now");
    let bare = SlotClaim {
        expected_next_run: at(10, 0),
        now: at(10, 0),
        parameters: &ParameterValues::new(),
        ..claim
    };
    let later = jtp_store::testing::claim_one(store, bare)
        .await
        .expect("claim")
        .expect("won");
    assert_eq!(
        (later.trigger, later.parameters),
        (Trigger::Manual, ParameterValues::new())
    );
}

async fn a_recorded_start_keeps_its_values_and_a_run_without_any_reads_empty(db: &TestDb) {
    let store = &db.store;
    let job = store
        .create_job(&input("k8s", &ScheduledJobSpec::manual(), None))
        .await
        .expect("create");
    let start = RunStart {
        job_id: job.id,
        trigger: Trigger::Manual,
        scheduled_for: at(11, 0),
        started_at: at(11, 0),
        k8s_job_name: Some("ops/k8s-m1".into()),
        runner: Some("operator".into()),
        requester: Some("alice".into()),
        parameters: values(&[("TICKET", "OPS-12")]),
    };
    let id = store.record_attempt_start(&start, 1).await.expect("start");
    let plain = RunStart {
        scheduled_for: at(12, 0),
        k8s_job_name: Some("ops/k8s-m2".into()),
        parameters: ParameterValues::new(),
        ..start.clone()
    };
    let other = store.record_attempt_start(&plain, 1).await.expect("start");
    let read = |id| async move { store.get_run(id).await.expect("run").summary.parameters };
    assert_eq!(read(id).await, values(&[("TICKET", "OPS-12")]));
    assert_eq!(
        read(other).await,
        ParameterValues::new(),
        "NULL reads as no values"
    );
}

async fn a_further_attempt_runs_with_the_values_of_the_attempt_before_it(db: &TestDb) {
    let store = &db.store;
    let spec = ScheduledJobSpec::manual().retry(1, "30s");
    let job = store
        .create_job(&input("retried", &spec, None))
        .await
        .expect("create");
    let asked = values(&[("TICKET", "OPS-7")]);
    store
        .request_run_now(job.id, at(9, 0), "alice", &asked)
        .await
        .expect("run now");
    let claim = SlotClaim {
        job_id: job.id,
        expected_next_run: at(9, 0),
        new_next_run: None,
        runner: "r",
        now: at(9, 0),
        drop_retry: false,
        parameters: &ParameterValues::new(),
    };
    let first = jtp_store::testing::claim_one(store, claim)
        .await
        .expect("claim")
        .expect("won");
    let retry = PendingRetry {
        scheduled_time: at(9, 0),
        trigger: Trigger::Manual,
        attempt: 2,
        at: at(9, 1),
    };
    let failed = RunFinish {
        status: RunStatus::Failure,
        exit_code: Some(1),
        output: b"no",
        finished_at: at(9, 0) + Duration::seconds(5),
    };
    let effects = FinishEffects {
        retry: Some(retry),
        standalone: true,
    };
    store
        .record_attempt_finish(first.run_id, &failed, effects)
        .await
        .expect("finish attempt 1");
    let claim = RetryClaim {
        job_id: job.id,
        retry,
        runner: "r",
        now: at(9, 1),
    };
    let won = store.claim_retries(&[claim]).await.expect("claim");
    let second = won[0].clone().expect("won");
    assert_eq!((second.attempt, &second.parameters), (2, &asked));
    let run = store.get_run(second.run_id).await.expect("run");
    assert_eq!(run.summary.parameters, asked);
}

on_both_backends!(
    a_run_now_s_values_are_recorded_with_its_run_and_read_back,
    a_recorded_start_keeps_its_values_and_a_run_without_any_reads_empty,
    a_further_attempt_runs_with_the_values_of_the_attempt_before_it,
);
