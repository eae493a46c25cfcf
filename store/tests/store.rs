//! The store's behaviour, the same on SQLite and on a real PostgreSQL server.

mod common;

use chrono::{DateTime, Duration, TimeZone, Utc};
use common::TestDb;
use jtp_crds::{IntervalUnit, RunStatus, ScheduledJobSpec, Trigger};
use jtp_store::*;

fn at(h: u32, m: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 30, h, m, 0)
        .single()
        .expect("valid time")
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

async fn job(store: &Store, name: &str, next_run: Option<DateTime<Utc>>) -> Job {
    let spec = ScheduledJobSpec::daily("09:00");
    store
        .create_job(&input(name, &spec, next_run))
        .await
        .expect("create job")
}

fn start(job_id: i64, slot: DateTime<Utc>) -> RunStart {
    RunStart {
        job_id,
        trigger: Trigger::Schedule,
        scheduled_for: slot,
        started_at: slot + Duration::seconds(1),
        k8s_job_name: None,
        runner: Some("test".into()),
        requester: None,
        parameters: Default::default(),
    }
}

fn finish(status: RunStatus, output: &[u8], finished_at: DateTime<Utc>) -> RunFinish<'_> {
    let exit_code = match status {
        RunStatus::Success => Some(0),
        RunStatus::Failure => Some(1),
        _ => None,
    };
    RunFinish {
        status,
        exit_code,
        output,
        finished_at,
    }
}

/// Starts and finishes one run of `job_id` in `slot`.
async fn run(store: &Store, job_id: i64, slot: DateTime<Utc>, status: RunStatus, output: &str) -> i64 {
    let id = store
        .record_attempt_start(&start(job_id, slot), 1)
        .await
        .expect("start");
    store
        .record_attempt_finish(
            id,
            &finish(status, output.as_bytes(), slot + Duration::seconds(5)),
            FinishEffects::default(),
        )
        .await
        .expect("finish");
    id
}

on_both_backends!(
    recording_is_idempotent,
    finishing_updates_the_job,
    claims_have_one_winner,
    run_now_is_consumed_as_manual,
    output_is_capped_and_cleaned,
    retention_by_age_count_and_both,
    retention_with_a_concurrent_writer,
    troubleshooting_queries,
    list_paging_filtering_order,
    every_order_pages_through_every_job,
    soft_delete_keeps_history,
    upsert_by_uid,
    interrupted_runs_are_closed,
    stats_count,
    runs_across_jobs_page_by_cursor,
    run_history_per_job,
    search_matches_text_literally,
    search_filters_and_pages,
    search_reads_cleaned_and_capped_output,
    search_follows_finishes_updates_and_deletes_around_indexing,
    search_with_many_hits_reads_runs_newest_first,
    search_with_a_selective_filter_reads_a_bounded_page,
    search_finds_runs_while_they_are_indexed,
    attempts_retries_and_the_automatic_pause,
);

async fn recording_is_idempotent(db: &TestDb) {
    let store = &db.store;
    let job = job(store, "idem", None).await;
    let first = store
        .record_attempt_start(&start(job.id, at(9, 0)), 1)
        .await
        .expect("start");
    let again = store
        .record_attempt_start(&start(job.id, at(9, 0)), 1)
        .await
        .expect("start again");
    assert_eq!(first, again, "the same slot is one row");

    // A Kubernetes Job name identifies a run too.
    let named = RunStart {
        k8s_job_name: Some("idem-1764493200".into()),
        ..start(job.id, at(10, 0))
    };
    let k8s = store.record_attempt_start(&named, 1).await.expect("start k8s");
    let other_slot = RunStart {
        scheduled_for: at(11, 0),
        ..named.clone()
    };
    assert_eq!(
        store
            .record_attempt_start(&other_slot, 1)
            .await
            .expect("same job name"),
        k8s
    );

    let done = finish(RunStatus::Success, b"ok\n", at(9, 1));
    assert_eq!(
        store
            .record_attempt_finish(first, &done, FinishEffects::default())
            .await
            .expect("finish"),
        Finish::Recorded
    );
    let late = finish(RunStatus::Failure, b"late\n", at(9, 2));
    assert_eq!(
        store
            .record_attempt_finish(first, &late, FinishEffects::default())
            .await
            .expect("finish again"),
        Finish::AlreadyFinished
    );

    let run = store.get_run(first).await.expect("run");
    assert_eq!(
        run.summary.status,
        RunStatus::Success,
        "a second finish never changes a finished run"
    );
    assert_eq!(run.log_output, "ok\n");
    assert_eq!(run.summary.finished_at, Some(at(9, 1)));
    assert_eq!(store.list_runs(job.id, 50, 0).await.expect("runs").total, 2);

    let running = finish(RunStatus::Running, b"", at(9, 3));
    assert_eq!(
        store
            .record_attempt_finish(k8s, &running, FinishEffects::default())
            .await
            .expect_err("RUNNING is no finish")
            .label(),
        "invalid"
    );
    assert_eq!(
        store
            .record_attempt_finish(999_999, &done, FinishEffects::default())
            .await
            .expect_err("no such run")
            .label(),
        "not_found"
    );
    let orphan = start(999_999, at(9, 0));
    assert_eq!(
        store
            .record_attempt_start(&orphan, 1)
            .await
            .expect_err("no such job")
            .label(),
        "not_found"
    );
}

async fn finishing_updates_the_job(db: &TestDb) {
    let store = &db.store;
    let job = job(store, "counted", None).await;
    run(store, job.id, at(9, 0), RunStatus::Failure, "boom").await;
    run(store, job.id, at(10, 0), RunStatus::Error, "not found").await;
    let after = store.get_job(job.id).await.expect("job");
    assert_eq!(after.last_status, Some(RunStatus::Error));
    assert_eq!(after.last_run, Some(at(10, 0) + Duration::seconds(1)));
    assert_eq!(after.consecutive_failures, 2);

    // An older run finishing late does not hide the newer one.
    let older = store
        .record_attempt_start(&start(job.id, at(8, 0)), 1)
        .await
        .expect("start");
    store
        .record_attempt_finish(
            older,
            &finish(RunStatus::Success, b"", at(11, 0)),
            FinishEffects::default(),
        )
        .await
        .expect("finish");
    let after = store.get_job(job.id).await.expect("job");
    assert_eq!(
        (after.last_status, after.consecutive_failures),
        (Some(RunStatus::Error), 2)
    );

    run(store, job.id, at(12, 0), RunStatus::Success, "fine").await;
    let after = store.get_job(job.id).await.expect("job");
    assert_eq!(
        (after.last_status, after.consecutive_failures),
        (Some(RunStatus::Success), 0)
    );
}

async fn claims_have_one_winner(db: &TestDb) {
    const SLOTS: i64 = 40;
    let spec = ScheduledJobSpec::interval(1, IntervalUnit::Minutes);
    let slot = |i: i64| at(0, 0) + Duration::minutes(i);
    let job = db
        .store
        .create_job(&input("raced", &spec, Some(slot(0))))
        .await
        .expect("create");
    let (a, b) = (db.store.clone(), db.second_store().await);
    let mut winners = Vec::new();
    for i in 0..SLOTS {
        let claim = |store: Store, runner: &'static str| {
            let job_id = job.id;
            tokio::spawn(async move {
                let claim = SlotClaim {
                    job_id,
                    expected_next_run: slot(i),
                    new_next_run: Some(slot(i + 1)),
                    runner,
                    now: slot(i),
                    drop_retry: false,
                    parameters: &Default::default(),
                };
                jtp_store::testing::claim_one(&store, claim).await
            })
        };
        let (ra, rb) = tokio::join!(claim(a.clone(), "a"), claim(b.clone(), "b"));
        let (ra, rb) = (
            ra.expect("task a").expect("claim a"),
            rb.expect("task b").expect("claim b"),
        );
        assert!(
            ra.is_some() != rb.is_some(),
            "slot {i}: exactly one winner, got {ra:?} and {rb:?}"
        );
        let won = ra.or(rb).expect("a winner");
        assert_eq!((won.trigger, won.scheduled_for), (Trigger::Schedule, slot(i)));
        winners.push(won.run_id);
    }
    let runs = db.store.list_runs(job.id, 1000, 0).await.expect("runs");
    assert_eq!(runs.total, SLOTS);
    assert!(runs.items.iter().all(|r| r.status == RunStatus::Running));
    assert_eq!(
        db.store.get_job(job.id).await.expect("job").next_run,
        Some(slot(SLOTS))
    );
    b.close().await;
}

async fn run_now_is_consumed_as_manual(db: &TestDb) {
    let store = &db.store;
    let spec = ScheduledJobSpec::manual();
    let manual = store
        .create_job(&input("by-hand", &spec, None))
        .await
        .expect("create");
    assert_eq!(manual.next_run, None);
    let scheduled = job(store, "daily", Some(at(23, 0))).await;
    assert_eq!(store.next_wakeup().await.expect("wakeup"), Some(at(23, 0)));
    assert!(store.due_jobs(at(12, 0), 10).await.expect("due").is_empty());

    store
        .request_run_now(manual.id, at(12, 0), "alice", &Default::default())
        .await
        .expect("run now");
    assert_eq!(store.next_wakeup().await.expect("wakeup"), Some(at(12, 0)));
    let due = store.due_jobs(at(12, 0), 10).await.expect("due");
    assert_eq!(due.iter().map(|j| j.id).collect::<Vec<_>>(), [manual.id]);

    let claim = SlotClaim {
        job_id: manual.id,
        expected_next_run: at(12, 0),
        new_next_run: None,
        runner: "r",
        now: at(12, 0),
        drop_retry: false,
        parameters: &Default::default(),
    };
    let won = jtp_store::testing::claim_one(store, claim)
        .await
        .expect("claim")
        .expect("won");
    assert_eq!((won.trigger, won.scheduled_for), (Trigger::Manual, at(12, 0)));
    assert!(
        jtp_store::testing::claim_one(store, claim)
            .await
            .expect("claim again")
            .is_none(),
        "a slot is claimed once"
    );
    let after = store.get_job(manual.id).await.expect("job");
    assert_eq!((after.next_run, after.run_now_requested_at), (None, None));
    let runs = store.list_runs(manual.id, 10, 0).await.expect("runs");
    assert_eq!(runs.items[0].trigger, Trigger::Manual);
    assert_eq!(
        runs.items[0].requester.as_deref(),
        Some("alice"),
        "the run names who asked"
    );

    // A suspended job runs once on request too, then goes back to no next_run.
    let mut paused = ScheduledJobSpec::daily("09:00");
    paused.suspend = true;
    let updated = store
        .update_job(scheduled.id, &input("daily", &paused, Some(at(23, 0))))
        .await
        .expect("suspend");
    assert_eq!((updated.is_active, updated.next_run), (false, None));
    store
        .request_run_now(scheduled.id, at(13, 0), "local", &Default::default())
        .await
        .expect("run now");
    let edited = store
        .update_job(scheduled.id, &input("daily", &paused, None))
        .await
        .expect("edit");
    assert_eq!(
        edited.next_run,
        Some(at(13, 0)),
        "an edit keeps a pending Run Now"
    );
    let claim = SlotClaim {
        job_id: scheduled.id,
        expected_next_run: at(13, 0),
        new_next_run: None,
        runner: "r",
        now: at(13, 0),
        drop_retry: false,
        parameters: &Default::default(),
    };
    assert_eq!(
        jtp_store::testing::claim_one(store, claim)
            .await
            .expect("claim")
            .expect("won")
            .trigger,
        Trigger::Manual
    );
    assert_eq!(store.next_wakeup().await.expect("wakeup"), None);
    assert_eq!(
        store
            .request_run_now(987_654, at(1, 0), "local", &Default::default())
            .await
            .expect_err("unknown")
            .label(),
        "not_found"
    );
}

async fn output_is_capped_and_cleaned(db: &TestDb) {
    let store = &db.store;
    assert_eq!(store.output_cap(), DEFAULT_OUTPUT_CAP);
    let job = job(store, "noisy", None).await;
    let mut big = b"HEAD \xff\xfe\0 line\n".to_vec();
    big.extend(std::iter::repeat_n(b'y', 5 * 1024 * 1024));
    big.extend_from_slice(b"\ntail \0 end\n");
    let id = store
        .record_attempt_start(&start(job.id, at(9, 0)), 1)
        .await
        .expect("start");
    store
        .record_attempt_finish(
            id,
            &finish(RunStatus::Failure, &big, at(9, 5)),
            FinishEffects::default(),
        )
        .await
        .expect("finish with 5 MiB");
    let run = store.get_run(id).await.expect("run");
    assert_eq!(run.summary.output_bytes, big.len() as i64);
    assert_eq!(
        run.summary.output_truncated,
        (big.len() - DEFAULT_OUTPUT_CAP) as i64
    );
    assert!(
        run.log_output.starts_with("HEAD \u{FFFD}\u{FFFD}\u{FFFD} line\n"),
        "{:?}",
        &run.log_output[..40]
    );
    assert!(run.log_output.ends_with("\ntail \u{FFFD} end\n"));
    assert_eq!(
        run.log_output.lines().filter(|l| l.starts_with("[jtp: ")).count(),
        1
    );
    assert!(run.log_output.len() < DEFAULT_OUTPUT_CAP + 100);
    assert_eq!(run.summary.preview.chars().count(), PREVIEW_CHARS);

    let small = store
        .record_attempt_start(&start(job.id, at(10, 0)), 1)
        .await
        .expect("start");
    store
        .record_attempt_finish(
            small,
            &finish(RunStatus::Success, b"a\0b\xc3(", at(10, 1)),
            FinishEffects::default(),
        )
        .await
        .expect("finish");
    let run = store.get_run(small).await.expect("run");
    assert_eq!(
        (run.log_output.as_str(), run.summary.output_truncated),
        ("a\u{FFFD}b\u{FFFD}(", 0)
    );
}

fn retention(max_age: Option<&str>, keep_last: Option<u32>) -> jtp_crds::Retention {
    jtp_crds::Retention {
        max_age: max_age.map(Into::into),
        keep_last,
    }
}

async fn job_with(store: &Store, name: &str, spec: &ScheduledJobSpec) -> Job {
    store
        .create_job(&input(name, spec, None))
        .await
        .expect("create job")
}

async fn slots(store: &Store, job_id: i64) -> Vec<DateTime<Utc>> {
    let runs = store.list_runs(job_id, 500, 0).await.expect("runs");
    runs.items.iter().map(|r| r.scheduled_for).collect()
}

async fn retention_by_age_count_and_both(db: &TestDb) {
    let store = &db.store;
    let global = job(store, "global", None).await;
    let counted = job_with(
        store,
        "counted",
        &ScheduledJobSpec::daily("09:00").retain(None, Some(2)),
    )
    .await;
    let both = job_with(
        store,
        "both",
        &ScheduledJobSpec::daily("09:00").retain(Some("3h"), Some(4)),
    )
    .await;
    let everything = job_with(
        store,
        "everything",
        &ScheduledJobSpec::daily("09:00").retain(None, None),
    )
    .await;
    let gone = job_with(
        store,
        "gone",
        &ScheduledJobSpec::daily("09:00").retain(None, None),
    )
    .await;
    for job in [&global, &counted, &both, &everything, &gone] {
        for h in 1..=6 {
            run(store, job.id, at(h, 0), RunStatus::Success, "x").await;
        }
    }
    store.delete_job(gone.id).await.expect("delete");
    let in_flight = store
        .record_attempt_start(&start(global.id, at(0, 10)), 1)
        .await
        .expect("running");

    // Global: older than 4 hours before 07:00 (runs before 03:00 go), no count floor.
    let now = at(7, 0);
    let options = PruneOptions {
        batch: 2,
        pause: std::time::Duration::ZERO,
    };
    let report = store
        .prune_runs(&retention(Some("4h"), None), now, &options)
        .await
        .expect("prune");
    assert_eq!(
        slots(store, global.id).await,
        [at(6, 0), at(5, 0), at(4, 0), at(3, 0), at(0, 10)]
    );
    assert!(
        store.get_run(in_flight).await.is_ok(),
        "a RUNNING row is never deleted"
    );
    assert_eq!(
        slots(store, counted.id).await,
        [at(6, 0), at(5, 0)],
        "keepLast alone keeps the newest 2"
    );
    assert_eq!(
        slots(store, both.id).await,
        [at(6, 0), at(5, 0), at(4, 0), at(3, 0)],
        "3h deletes before 04:00 but keepLast 4 keeps 03:00"
    );
    assert_eq!(
        slots(store, everything.id).await.len(),
        6,
        "retention: {{}} keeps every run"
    );
    assert_eq!(
        slots(store, gone.id).await,
        [at(6, 0), at(5, 0), at(4, 0), at(3, 0)],
        "a deleted job's runs follow the global policy, not its old spec"
    );
    assert_eq!(report.deleted, 2 + 4 + 2 + 2);
    assert_eq!(report.jobs, 4, "the job that keeps everything is not read");

    let again = store
        .prune_runs(&retention(Some("4h"), None), now, &options)
        .await
        .expect("prune again");
    assert_eq!(again.deleted, 0, "a second pass finds nothing");

    // A spec edit moves the job to its new policy; the global policy keeps everything.
    let spec = ScheduledJobSpec::daily("09:00").retain(None, Some(1));
    store
        .update_job(everything.id, &input("everything", &spec, None))
        .await
        .expect("edit");
    store
        .prune_runs(&jtp_crds::Retention::default(), now, &options)
        .await
        .expect("prune after edit");
    assert_eq!(slots(store, everything.id).await, [at(6, 0)]);
    assert_eq!(
        slots(store, global.id).await.len(),
        5,
        "no global limit: nothing else goes"
    );
}

/// A writer records runs while a pass deletes thousands in small batches: every run it
/// records stays, and the pass deletes exactly the old ones.
async fn retention_with_a_concurrent_writer(db: &TestDb) {
    let store = &db.store;
    let old = job(store, "old", None).await;
    let base = at(0, 0) - Duration::days(30);
    let imported: Vec<ImportedRun> = (0..3_000)
        .map(|k| {
            let slot = base + Duration::minutes(k);
            ImportedRun {
                job_id: old.id,
                run_time: slot,
                scheduled_for: slot,
                finished_at: Some(slot),
                status: RunStatus::Success,
                exit_code: Some(0),
                trigger: Trigger::Schedule,
                output: format!("old run {k}"),
                k8s_job_name: None,
                runner: None,
            }
        })
        .collect();
    store.import_runs(&imported).await.expect("import");
    let live = job(store, "live", None).await;
    let writer_store = db.second_store().await;
    let writer = tokio::spawn(async move {
        for k in 0..60 {
            run(
                &writer_store,
                live.id,
                at(1, 0) + Duration::seconds(k),
                RunStatus::Success,
                "new",
            )
            .await;
        }
        writer_store.close().await;
    });
    let report = store
        .prune_runs(
            &retention(Some("1d"), Some(10)),
            at(12, 0),
            &PruneOptions {
                batch: 100,
                pause: std::time::Duration::from_millis(1),
            },
        )
        .await
        .expect("prune");
    writer.await.expect("writer");
    assert_eq!(report.deleted, 3_000 - 10, "the old job keeps its newest 10");
    assert_eq!(store.list_runs(live.id, 100, 0).await.expect("runs").total, 60);
    assert_eq!(store.list_runs(old.id, 100, 0).await.expect("runs").total, 10);
}

async fn troubleshooting_queries(db: &TestDb) {
    let store = &db.store;
    let queued_a = job(store, "queued-a", Some(at(8, 0))).await;
    let queued_b = job(store, "queued-b", Some(at(7, 0))).await;
    let mut paused = ScheduledJobSpec::daily("09:00");
    paused.suspend = true;
    store
        .create_job(&input("paused", &paused, Some(at(6, 0))))
        .await
        .expect("paused");
    let gone = job(store, "gone", Some(at(5, 0))).await;
    store.delete_job(gone.id).await.expect("delete");

    let mut failures = Vec::new();
    for i in 0..7u32 {
        let id = run(
            store,
            queued_a.id,
            at(1, i),
            RunStatus::Failure,
            &format!("failure {i}"),
        )
        .await;
        failures.push((i, id));
    }
    run(store, queued_b.id, at(2, 0), RunStatus::Success, "fine").await;
    let log_id = failures[3].1;

    let queries = troubleshooting::queries(store.backend_kind());
    macro_rules! check {
        ($pool:expr) => {{
            let pool = $pool;
            let recent: Vec<(String, DateTime<Utc>, String)> = sqlx::query_as(queries.recent_failures)
                .fetch_all(&pool)
                .await
                .expect("recent failures");
            let expected: Vec<_> = (2..7u32)
                .rev()
                .map(|i| {
                    (
                        "queued-a".to_owned(),
                        at(1, i) + Duration::seconds(1),
                        format!("failure {i}"),
                    )
                })
                .collect();
            assert_eq!(recent, expected);
            let queued: Vec<(String, String, DateTime<Utc>)> = sqlx::query_as(queries.queued)
                .fetch_all(&pool)
                .await
                .expect("queued");
            assert_eq!(
                queued,
                [
                    ("queued-b".to_owned(), "daily".to_owned(), at(7, 0)),
                    ("queued-a".to_owned(), "daily".to_owned(), at(8, 0))
                ]
            );
            let output: String = sqlx::query_scalar(queries.log_output)
                .bind(log_id)
                .fetch_one(&pool)
                .await
                .expect("log output");
            assert_eq!(output, "failure 3");
            pool.close().await;
        }};
    }
    match store.backend_kind() {
        BackendKind::Postgres => check!(sqlx::PgPool::connect(&db.url).await.expect("pg")),
        BackendKind::Sqlite => check!(sqlx::SqlitePool::connect(&db.url).await.expect("sqlite")),
    }

    let recent = store.recent_failures(3).await.expect("recent failures");
    assert_eq!(
        recent.iter().map(|f| f.run.id).collect::<Vec<_>>(),
        [failures[6].1, failures[5].1, failures[4].1]
    );
    assert_eq!(recent[0].job_name, "queued-a");
    let queued: Vec<_> = store
        .queued_jobs(10)
        .await
        .expect("queued")
        .into_iter()
        .map(|j| j.name)
        .collect();
    assert_eq!(
        queued,
        ["queued-b", "queued-a"].map(String::from),
        "a suspended job has no next_run"
    );
}

/// Every order of the jobs list in both directions (each read from its own index on both backends,
/// migrations 0003, 0015 and 0017): pages read one after another are the whole list, each job once,
/// in the order [`JobOrder::compare`] gives — jobs without a value last in both directions, ties
/// by name, then namespace or id.
async fn every_order_pages_through_every_job(db: &TestDb) {
    let store = &db.store;
    let spec = ScheduledJobSpec::daily("09:00");
    let statuses = [
        Some(RunStatus::Success),
        Some(RunStatus::Failure),
        Some(RunStatus::Error),
        None,
    ];
    // 18 jobs: each name in two namespaces; next runs and last runs shared by several jobs or
    // missing; every status and none.
    for i in 0..18u32 {
        let name = format!("job-{}", i % 9);
        let next = (i % 4 != 0).then(|| at(20, 0) - Duration::minutes(i64::from(i % 5)));
        let job = store
            .create_job(&JobInput {
                name: &name,
                namespace: if i < 9 { "a" } else { "b" },
                uid: None,
                spec: &spec,
                next_run: next,
            })
            .await
            .expect("create");
        if let Some(status) = statuses[i as usize % statuses.len()] {
            run(store, job.id, at(1 + i % 3, 0), status, "x").await;
        }
    }
    let all = store
        .list_jobs(&JobFilter {
            limit: 100,
            ..JobFilter::default()
        })
        .await
        .expect("list")
        .items;
    assert_eq!(all.len(), 18);
    for by in [JobSort::NextRun, JobSort::Name, JobSort::LastRun, JobSort::Status] {
        for descending in [false, true] {
            let order = JobOrder { by, descending };
            let mut expected = all.clone();
            expected.sort_by(|a, b| order.compare(a, b));
            let mut paged = Vec::new();
            // Pages of 4; the last one asked for is past the end.
            for offset in (0..=20).step_by(4) {
                let page = store
                    .list_jobs(&JobFilter {
                        order,
                        limit: 4,
                        offset,
                        ..JobFilter::default()
                    })
                    .await
                    .expect("page");
                assert_eq!(page.total, 18, "{order:?} at {offset}");
                paged.extend(page.items.into_iter().map(|j| (j.namespace, j.name)));
            }
            let expected: Vec<_> = expected.into_iter().map(|j| (j.namespace, j.name)).collect();
            assert_eq!(paged, expected, "{order:?}");
        }
    }
}

async fn list_paging_filtering_order(db: &TestDb) {
    let store = &db.store;
    let spec = ScheduledJobSpec::daily("09:00");
    // 25 jobs: next_run descending with i (every 5th none), two namespaces.
    for i in 0..25u32 {
        let name = format!("Job_{i:02}");
        let next = (i % 5 != 0).then(|| at(20, 0) - Duration::minutes(i64::from(i)));
        let namespace = if i % 2 == 0 { "even" } else { "odd" };
        let job = store
            .create_job(&JobInput {
                name: &name,
                namespace,
                uid: None,
                spec: &spec,
                next_run: next,
            })
            .await
            .expect("create");
        if i % 3 == 0 {
            run(store, job.id, at(1, 0), RunStatus::Failure, "x").await;
        }
    }
    let all = store
        .list_jobs(&JobFilter {
            limit: 100,
            ..JobFilter::default()
        })
        .await
        .expect("list");
    assert_eq!(all.total, 25);
    let names: Vec<&str> = all.items.iter().map(|j| j.name.as_str()).collect();
    let mut expected: Vec<(Option<DateTime<Utc>>, String)> =
        all.items.iter().map(|j| (j.next_run, j.name.clone())).collect();
    expected.sort_by(|a, b| (a.0.is_none(), a.0, &a.1).cmp(&(b.0.is_none(), b.0, &b.1)));
    assert_eq!(names, expected.iter().map(|e| e.1.as_str()).collect::<Vec<_>>());
    assert_eq!(names[0], "Job_24");
    assert_eq!(
        &names[20..],
        ["Job_00", "Job_05", "Job_10", "Job_15", "Job_20"],
        "no next_run: last, by name"
    );

    let page = store
        .list_jobs(&JobFilter {
            limit: 10,
            offset: 20,
            ..JobFilter::default()
        })
        .await
        .expect("page");
    assert_eq!((page.items.len(), page.total), (5, 25));

    let filtered = |f: JobFilter| async move {
        store
            .list_jobs(&JobFilter { limit: 100, ..f })
            .await
            .expect("filter")
    };
    let by_name = filtered(JobFilter {
        name_contains: Some("job_1".into()),
        ..JobFilter::default()
    })
    .await;
    assert_eq!(by_name.total, 10, "case-insensitive substring, `_` literal");
    assert_eq!(
        filtered(JobFilter {
            name_contains: Some("%".into()),
            ..JobFilter::default()
        })
        .await
        .total,
        0
    );
    let odd = filtered(JobFilter {
        namespace: Some("odd".into()),
        ..JobFilter::default()
    })
    .await;
    assert_eq!(odd.total, 12);
    let failed = filtered(JobFilter {
        last_status: Some(RunStatus::Failure),
        namespace: Some("even".into()),
        ..JobFilter::default()
    })
    .await;
    let names: Vec<&str> = failed.items.iter().map(|j| j.name.as_str()).collect();
    assert_eq!(names, ["Job_24", "Job_18", "Job_12", "Job_06", "Job_00"]);
    assert_eq!(failed.total, 5, "0, 6, 12, 18, 24");
    assert!(
        failed
            .items
            .iter()
            .all(|j| j.last_status == Some(RunStatus::Failure) && j.last_run.is_some())
    );

    let mut paused = ScheduledJobSpec::daily("09:00");
    paused.suspend = true;
    store
        .create_job(&JobInput {
            name: "Job_paused",
            namespace: "odd",
            uid: None,
            spec: &paused,
            next_run: None,
        })
        .await
        .expect("create");
    let suspended = filtered(JobFilter {
        active: Some(false),
        ..JobFilter::default()
    })
    .await;
    let names: Vec<&str> = suspended.items.iter().map(|j| j.name.as_str()).collect();
    assert_eq!((names, suspended.total), (vec!["Job_paused"], 1));
    let active_odd = filtered(JobFilter {
        active: Some(true),
        namespace: Some("odd".into()),
        ..JobFilter::default()
    })
    .await;
    assert_eq!(active_odd.total, 12, "the suspended job is not listed");
    assert!(active_odd.items.iter().all(|j| j.is_active));
}

async fn runs_across_jobs_page_by_cursor(db: &TestDb) {
    let store = &db.store;
    let a = job(store, "alpha", None).await;
    let b = job(store, "beta", None).await;
    let spec = ScheduledJobSpec::daily("09:00");
    let other = store
        .create_job(&JobInput {
            name: "gamma",
            namespace: "other",
            uid: None,
            spec: &spec,
            next_run: None,
        })
        .await
        .expect("create");
    // Seven runs in one minute (two at the same instant), alternating jobs and outcomes.
    let mut ids = Vec::new();
    for i in 0..7i64 {
        let job_id = [a.id, b.id, other.id][usize::try_from(i % 3).expect("small")];
        let status = if i % 2 == 0 {
            RunStatus::Success
        } else {
            RunStatus::Failure
        };
        let slot = at(9, 0) + Duration::seconds(i.min(5) * 7);
        ids.push(run(store, job_id, slot, status, "out").await);
    }
    store.delete_job(b.id).await.expect("delete beta");
    let newest_first: Vec<i64> = ids.iter().rev().copied().collect();

    let list = |f: RunFilter| async move { store.list_all_runs(&f).await.expect("list") };
    let all = list(RunFilter {
        limit: 100,
        ..RunFilter::default()
    })
    .await;
    let got: Vec<i64> = all.items.iter().map(|r| r.run.id).collect();
    assert_eq!(got, newest_first, "newest first; equal instants by id");
    assert_eq!((all.older, all.newer), (None, None));
    let beta = all
        .items
        .iter()
        .find(|r| r.job_name == "beta")
        .expect("a run of beta");
    assert!(beta.job_deleted, "the runs of a deleted job are listed, marked");
    assert_eq!(beta.job_timezone, "Asia/Hong_Kong");

    // Pages of three: forward by `before`, back by `after`; a new run does not shift them.
    let first = list(RunFilter {
        limit: 3,
        ..RunFilter::default()
    })
    .await;
    assert_eq!(
        first.items.iter().map(|r| r.run.id).collect::<Vec<_>>(),
        newest_first[..3]
    );
    assert_eq!(first.newer, None);
    let later = run(store, a.id, at(10, 0), RunStatus::Success, "new").await;
    let second = list(RunFilter {
        limit: 3,
        before: first.older,
        ..RunFilter::default()
    })
    .await;
    assert_eq!(
        second.items.iter().map(|r| r.run.id).collect::<Vec<_>>(),
        newest_first[3..6]
    );
    let third = list(RunFilter {
        limit: 3,
        before: second.older,
        ..RunFilter::default()
    })
    .await;
    assert_eq!(
        third.items.iter().map(|r| r.run.id).collect::<Vec<_>>(),
        newest_first[6..]
    );
    assert_eq!(third.older, None, "the last page");
    let back = list(RunFilter {
        limit: 3,
        after: third.newer,
        ..RunFilter::default()
    })
    .await;
    assert_eq!(
        back.items.iter().map(|r| r.run.id).collect::<Vec<_>>(),
        newest_first[3..6]
    );
    let top = list(RunFilter {
        limit: 3,
        after: back.newer,
        ..RunFilter::default()
    })
    .await;
    assert_eq!(
        top.items.iter().map(|r| r.run.id).collect::<Vec<_>>(),
        newest_first[..3]
    );
    let newest = list(RunFilter {
        limit: 3,
        after: top.newer,
        ..RunFilter::default()
    })
    .await;
    assert_eq!(
        newest.items.iter().map(|r| r.run.id).collect::<Vec<_>>(),
        [later],
        "the run that started meanwhile is on a page of its own above"
    );
    assert_eq!(newest.newer, None);

    // Filters: status, trigger, job (deleted too), namespace and the user's namespaces, time range.
    let failures = list(RunFilter {
        status: Some(RunStatus::Failure),
        limit: 100,
        ..RunFilter::default()
    })
    .await;
    assert_eq!(failures.items.len(), 3);
    assert!(failures.items.iter().all(|r| r.run.status == RunStatus::Failure));
    let manual = list(RunFilter {
        trigger: Some(Trigger::Manual),
        limit: 100,
        ..RunFilter::default()
    })
    .await;
    assert!(manual.items.is_empty(), "every run here was scheduled");
    let of_beta = list(RunFilter {
        job_name: Some("beta".into()),
        limit: 100,
        ..RunFilter::default()
    })
    .await;
    assert_eq!(of_beta.items.len(), 2);
    let of_a = list(RunFilter {
        job_id: Some(a.id),
        limit: 100,
        ..RunFilter::default()
    })
    .await;
    assert_eq!(of_a.items.len(), 4);
    let in_other = list(RunFilter {
        namespace: Some("other".into()),
        limit: 100,
        ..RunFilter::default()
    })
    .await;
    assert_eq!(in_other.items.len(), 2);
    let allowed = list(RunFilter {
        namespaces: Some(vec!["default".into()]),
        limit: 100,
        ..RunFilter::default()
    })
    .await;
    assert_eq!(allowed.items.len(), 6);
    let none = list(RunFilter {
        namespaces: Some(Vec::new()),
        limit: 100,
        ..RunFilter::default()
    })
    .await;
    assert!(none.items.is_empty(), "no namespace allowed, no run shown");
    let window = list(RunFilter {
        since: Some(at(9, 0) + Duration::seconds(10)),
        until: Some(at(9, 1)),
        limit: 100,
        ..RunFilter::default()
    })
    .await;
    // Runs start one second after their slot: slots 14 s to 35 s (the last three share 35 s).
    assert_eq!(window.items.len(), 5);
}

async fn run_history_per_job(db: &TestDb) {
    let store = &db.store;
    let a = job(store, "history-a", None).await;
    let b = job(store, "history-b", None).await;
    let idle = job(store, "history-idle", None).await;
    for i in 0..6i64 {
        let status = if i == 4 {
            RunStatus::Failure
        } else {
            RunStatus::Success
        };
        run(store, a.id, at(9, 0) + Duration::minutes(i), status, "").await;
    }
    run(store, b.id, at(8, 0), RunStatus::Error, "").await;
    // A run in flight, started at a millisecond: it has no end yet, and the instant reads back exact.
    let mut running = start(b.id, at(8, 30));
    running.started_at += Duration::milliseconds(250);
    let running = store.record_attempt_start(&running, 1).await.expect("start");
    let points = store
        .run_history(&[a.id, b.id, idle.id], 4)
        .await
        .expect("history");
    let of_a: Vec<_> = points.iter().filter(|p| p.job_id == a.id).collect();
    assert_eq!(of_a.len(), 4, "the newest four of six");
    assert_eq!(of_a[0].run_time, at(9, 5) + Duration::seconds(1));
    assert_eq!(of_a[1].status, RunStatus::Failure);
    assert!(
        of_a.iter()
            .all(|p| p.finished_at == Some(p.run_time + Duration::seconds(4)))
    );
    let of_b: Vec<_> = points.iter().filter(|p| p.job_id == b.id).collect();
    assert_eq!(of_b.len(), 2);
    assert_eq!(
        (of_b[0].id, of_b[0].status, of_b[0].finished_at),
        (running, RunStatus::Running, None)
    );
    assert_eq!(of_b[0].run_time, at(8, 30) + Duration::milliseconds(1250));
    assert_eq!(of_b[1].status, RunStatus::Error);
    assert!(!points.iter().any(|p| p.job_id == idle.id));
    assert!(store.run_history(&[], 4).await.expect("empty").is_empty());
}

async fn soft_delete_keeps_history(db: &TestDb) {
    let store = &db.store;
    let old = job(store, "report", Some(at(9, 0))).await;
    let dup = store
        .create_job(&input("report", &ScheduledJobSpec::daily("10:00"), None))
        .await;
    let err = dup.expect_err("duplicate");
    assert_eq!(
        (err.label(), err.to_string().as_str()),
        ("already_exists", "job default/report already exists")
    );
    let run_id = run(store, old.id, at(8, 0), RunStatus::Failure, "kept").await;

    store.delete_job(old.id).await.expect("delete");
    store
        .delete_job(old.id)
        .await
        .expect("deleting twice is harmless");
    assert_eq!(
        store
            .get_job_by_name("default", "report")
            .await
            .expect_err("gone")
            .label(),
        "not_found"
    );
    assert!(
        store
            .get_job(old.id)
            .await
            .expect("still readable by id")
            .deleted_at
            .is_some()
    );
    assert_eq!(
        store
            .list_jobs(&JobFilter {
                limit: 10,
                ..JobFilter::default()
            })
            .await
            .expect("list")
            .total,
        0
    );
    assert!(store.due_jobs(at(23, 0), 10).await.expect("due").is_empty());
    assert_eq!(
        store.get_run(run_id).await.expect("history stays").log_output,
        "kept"
    );
    assert_eq!(store.recent_failures(5).await.expect("failures").len(), 1);

    let again = job(store, "report", None).await;
    assert_ne!(again.id, old.id, "the name is free again");
    let other = job(store, "other", None).await;
    let rename = store
        .update_job(
            other.id,
            &input("report", &ScheduledJobSpec::daily("09:00"), None),
        )
        .await;
    assert_eq!(rename.expect_err("taken").label(), "already_exists");
    assert_eq!(
        store.delete_job(424_242).await.expect_err("unknown").label(),
        "not_found"
    );
}

async fn upsert_by_uid(db: &TestDb) {
    let store = &db.store;
    let spec = ScheduledJobSpec::cron("*/5 * * * *");
    let mirror = |uid, next| JobInput {
        name: "sync",
        namespace: "ops",
        uid: Some(uid),
        spec: &spec,
        next_run: next,
    };
    let first = store
        .upsert_job(&mirror("uid-1", Some(at(9, 0))))
        .await
        .expect("insert");
    assert_eq!(
        (first.cron_expr.as_deref(), first.uid.as_deref()),
        (Some("*/5 * * * *"), Some("uid-1"))
    );
    let second = store
        .upsert_job(&mirror("uid-1", Some(at(9, 5))))
        .await
        .expect("update");
    assert_eq!((second.id, second.next_run), (first.id, Some(at(9, 5))));
    assert_eq!(store.get_job_by_uid("uid-1").await.expect("by uid").id, first.id);

    // The object was deleted and recreated while nobody watched: the new UID takes the name.
    let recreated = store.upsert_job(&mirror("uid-2", None)).await.expect("recreate");
    assert_ne!(recreated.id, first.id);
    assert!(store.get_job(first.id).await.expect("old").deleted_at.is_some());
    assert!(store.delete_job_by_uid("uid-2").await.expect("delete"));
    assert!(!store.delete_job_by_uid("uid-2").await.expect("again"));
    let no_uid = JobInput {
        uid: None,
        ..mirror("x", None)
    };
    assert_eq!(
        store.upsert_job(&no_uid).await.expect_err("needs uid").label(),
        "invalid"
    );
}

async fn interrupted_runs_are_closed(db: &TestDb) {
    let store = &db.store;
    let job = job(store, "crashy", None).await;
    let mine = store
        .record_attempt_start(
            &RunStart {
                runner: Some("host-a".into()),
                ..start(job.id, at(9, 0))
            },
            1,
        )
        .await
        .expect("a");
    let theirs = store
        .record_attempt_start(
            &RunStart {
                runner: Some("host-b".into()),
                ..start(job.id, at(10, 0))
            },
            1,
        )
        .await
        .expect("b");
    assert_eq!(
        store
            .interrupted_runs_cleanup("host-a", at(11, 0))
            .await
            .expect("cleanup"),
        1
    );
    assert_eq!(
        store
            .interrupted_runs_cleanup("host-a", at(11, 0))
            .await
            .expect("cleanup again"),
        0
    );
    let closed = store.get_run(mine).await.expect("run");
    assert_eq!(closed.summary.status, RunStatus::Failure);
    assert_eq!(
        closed.log_output,
        "interrupted: the runner stopped before the run finished"
    );
    assert_eq!(
        store.get_run(theirs).await.expect("run").summary.status,
        RunStatus::Running
    );
    assert_eq!(store.get_job(job.id).await.expect("job").consecutive_failures, 1);
}

async fn stats_count(db: &TestDb) {
    let store = &db.store;
    let a = job(store, "a", Some(at(9, 0))).await;
    job(store, "b", None).await;
    store
        .record_attempt_start(&start(a.id, at(9, 0)), 1)
        .await
        .expect("start");
    let stats = store.stats().await.expect("stats");
    assert_eq!(
        stats,
        Stats {
            jobs: 2,
            active_jobs: 2,
            queued_jobs: 1,
            running_runs: 1
        }
    );
}

/// The portal and the operator hold futures across threads (axum, kube-runtime): every call's
/// future must be `Send`. Compiling this is the test.
#[allow(dead_code)]
fn futures_are_send(store: &Store, input: &JobInput<'_>, finish: &RunFinish<'_>, claims: &[SlotClaim<'_>]) {
    fn send<T: Send>(_: T) {}
    send(store.create_job(input));
    send(store.upsert_job(input));
    send(store.update_job(1, input));
    send(store.list_jobs(&JobFilter::default()));
    send(store.record_attempt_start(&start(1, at(0, 0)), 1));
    send(store.record_attempt_finish(1, finish, FinishEffects::default()));
    send(store.claim_slots(claims));
    send(store.import_runs(&[]));
    send(store.interrupted_runs_cleanup("r", at(0, 0)));
    send(Store::connect("sqlite::memory:"));
}

fn search(text: &str) -> RunFilter {
    RunFilter {
        text: Some(text.to_owned()),
        limit: 50,
        ..RunFilter::default()
    }
}

async fn found(store: &Store, filter: &RunFilter) -> Vec<i64> {
    let page = store.list_all_runs(filter).await.expect("search");
    page.items.iter().map(|h| h.run.id).collect()
}

async fn snippet(store: &Store, id: i64, text: &str) -> jtp_store::RunSnippet {
    store
        .search_snippets(&[id], text)
        .await
        .expect("snippets")
        .remove(&id)
        .expect("a snippet")
}

/// Query syntax of either backend (FTS5 operators, quotes, LIKE wildcards, backslashes) is
/// matched as the text it is, case-insensitively, and a snippet shows where.
async fn search_matches_text_literally(db: &TestDb) {
    let store = &db.store;
    let job = job(store, "search", None).await;
    let outputs = [
        "connect: Connection refused\n",
        "100% done\n",
        "1000 done\n",
        "a_b and axb\n",
        "said \"hi\" OR NEAR(x*) col:val\n",
        "path C:\\temp\\x\n",
        "axb only\n",
    ];
    let mut ids = Vec::new();
    for (h, output) in outputs.iter().enumerate() {
        ids.push(run(store, job.id, at(h as u32, 0), RunStatus::Success, output).await);
    }
    assert_eq!(found(store, &search("connection REFUSED")).await, [ids[0]]);
    assert_eq!(found(store, &search("100%")).await, [ids[1]], "% is no wildcard");
    assert_eq!(found(store, &search("a_b")).await, [ids[3]], "_ is no wildcard");
    assert_eq!(
        found(store, &search("\"hi\" OR NEAR(x*)")).await,
        [ids[4]],
        "FTS5 syntax is text"
    );
    assert_eq!(found(store, &search("col:val")).await, [ids[4]]);
    assert_eq!(
        found(store, &search("C:\\temp\\")).await,
        [ids[5]],
        "backslashes are text"
    );
    assert_eq!(
        found(store, &search("axb")).await,
        [ids[6], ids[3]],
        "newest first"
    );
    assert_eq!(found(store, &search("nowhere")).await, Vec::<i64>::new());
    let err = store.list_all_runs(&search("ab")).await.expect_err("too short");
    assert_eq!(err.label(), "invalid");
    assert!(err.to_string().contains("at least 3 characters"), "{err}");

    let hit = snippet(store, ids[0], "refused").await;
    assert_eq!(hit.text, "connect: Connection refused\n");
    assert!(!hit.cut_before);
    assert_eq!(hit.match_at, Some("connect: Connection ".len()));
}

async fn search_filters_and_pages(db: &TestDb) {
    let store = &db.store;
    let (a, b) = (job(store, "alpha", None).await, job(store, "beta", None).await);
    let mut a_ids = Vec::new();
    for h in 0..6 {
        let status = if h % 2 == 0 {
            RunStatus::Failure
        } else {
            RunStatus::Success
        };
        a_ids.push(run(store, a.id, at(h, 0), status, "timeout talking to db").await);
        run(store, b.id, at(h, 30), status, "timeout talking to db").await;
    }
    let only_a = RunFilter {
        job_name: Some("alpha".into()),
        ..search("timeout")
    };
    assert_eq!(
        found(store, &only_a).await,
        a_ids.iter().rev().copied().collect::<Vec<_>>()
    );
    let failed_a = RunFilter {
        status: Some(RunStatus::Failure),
        ..only_a.clone()
    };
    assert_eq!(found(store, &failed_a).await, [a_ids[4], a_ids[2], a_ids[0]]);
    let window = RunFilter {
        since: Some(at(2, 0)),
        until: Some(at(4, 0)),
        ..only_a.clone()
    };
    assert_eq!(
        found(store, &window).await,
        [a_ids[3], a_ids[2]],
        "since inclusive, until exclusive"
    );
    let elsewhere = RunFilter {
        namespaces: Some(vec!["ops".into()]),
        ..search("timeout")
    };
    assert_eq!(found(store, &elsewhere).await, Vec::<i64>::new());

    let mut pages = Vec::new();
    let mut next = RunFilter {
        limit: 5,
        ..search("TIMEOUT")
    };
    loop {
        let page = store.list_all_runs(&next).await.expect("page");
        pages.push(page.items.len());
        match page.older {
            Some(cursor) => next.before = Some(cursor),
            None => break,
        }
    }
    assert_eq!(pages, [5, 5, 2]);

    // A deleted job's runs are still found; pruned ones are not.
    store.delete_job(a.id).await.expect("delete");
    assert_eq!(found(store, &only_a).await.len(), 6);
    store
        .prune_runs(
            &jtp_crds::Retention {
                max_age: None,
                keep_last: Some(1),
            },
            at(12, 0),
            &PruneOptions::default(),
        )
        .await
        .expect("prune");
    assert_eq!(
        found(store, &only_a).await,
        [a_ids[5]],
        "the index follows deletes"
    );
}

/// Bytes that are not UTF-8 are stored as U+FFFD and the text around them is found; of a capped
/// output the head and the tail are found, the cut middle is not.
async fn search_reads_cleaned_and_capped_output(db: &TestDb) {
    let store = &db.store;
    let job = job(store, "bytes", None).await;
    let id = store
        .record_attempt_start(&start(job.id, at(1, 0)), 1)
        .await
        .expect("start");
    let raw = b"before \xff\xfe\x00 after-bytes marker\n";
    store
        .record_attempt_finish(
            id,
            &finish(RunStatus::Failure, raw, at(1, 1)),
            FinishEffects::default(),
        )
        .await
        .expect("finish");
    assert_eq!(found(store, &search("after-bytes")).await, [id]);
    assert!(snippet(store, id, "after-bytes").await.text.contains('\u{FFFD}'));

    let big: String = format!(
        "HEADWORD {}MIDDLEWORD {}TAILWORD\n",
        "x".repeat(DEFAULT_OUTPUT_CAP),
        "y".repeat(DEFAULT_OUTPUT_CAP)
    );
    let capped = run(store, job.id, at(2, 0), RunStatus::Success, &big).await;
    assert_eq!(found(store, &search("headword")).await, [capped]);
    assert_eq!(found(store, &search("tailword")).await, [capped]);
    assert_eq!(
        found(store, &search("middleword")).await,
        Vec::<i64>::new(),
        "cut by the cap"
    );
    let tail = snippet(store, capped, "tailword").await;
    assert!(
        tail.cut_before && tail.text.contains("TAILWORD"),
        "{:?}",
        tail.text
    );
    assert_eq!(tail.match_at, Some(80));
}

/// Everything the store indexes in the background (SQLite; nothing on PostgreSQL).
async fn index_all(store: &Store) {
    while store.index_pending_outputs().await.expect("index") > 0 {}
}

/// A finished run is found before and after its output is indexed (SQLite indexes in the
/// background, migration 0012); an output replaced after indexing is found by its new text
/// only; a deleted run is not found, whether it was indexed or not. Case folds beyond ASCII
/// once indexed.
async fn search_follows_finishes_updates_and_deletes_around_indexing(db: &TestDb) {
    let store = &db.store;
    let job = job(store, "indexing", None).await;
    let first = run(
        store,
        job.id,
        at(1, 0),
        RunStatus::Success,
        "Größe ÄRGER first-text\n",
    )
    .await;
    assert_eq!(
        found(store, &search("first-text")).await,
        [first],
        "found before indexing"
    );
    index_all(store).await;
    assert_eq!(
        found(store, &search("FIRST-TEXT")).await,
        [first],
        "found after indexing"
    );
    if store.backend_kind() == BackendKind::Sqlite {
        // PostgreSQL's ILIKE folds as the database's ctype says.
        assert_eq!(
            found(store, &search("ärger")).await,
            [first],
            "folded beyond ASCII by the index"
        );
    }

    // Closed as interrupted, then its real end arrives: the message is replaced.
    let second = store
        .record_attempt_start(&start(job.id, at(2, 0)), 1)
        .await
        .expect("start");
    let closed = finish(RunStatus::Failure, INTERRUPTED_MESSAGE.as_bytes(), at(2, 1));
    let closed = RunFinish {
        exit_code: None,
        ..closed
    };
    store
        .record_attempt_finish(second, &closed, FinishEffects::default())
        .await
        .expect("close");
    index_all(store).await;
    let interrupted = &INTERRUPTED_MESSAGE[..INTERRUPTED_MESSAGE.len().min(20)];
    assert!(
        found(store, &search(interrupted)).await.contains(&second),
        "{interrupted}"
    );
    store
        .record_attempt_finish(
            second,
            &finish(RunStatus::Success, b"real-end text\n", at(2, 2)),
            FinishEffects::default(),
        )
        .await
        .expect("real end");
    assert_eq!(
        store.get_run(second).await.expect("run").log_output,
        "real-end text\n"
    );
    assert_eq!(
        found(store, &search("real-end")).await,
        [second],
        "new text, before indexing"
    );
    assert!(
        !found(store, &search(interrupted)).await.contains(&second),
        "old text gone"
    );
    index_all(store).await;
    assert_eq!(
        found(store, &search("real-end")).await,
        [second],
        "new text, after indexing"
    );
    assert!(
        !found(store, &search(interrupted)).await.contains(&second),
        "old text gone"
    );

    // Deleted by retention: one run indexed, one not yet.
    let third = run(store, job.id, at(3, 0), RunStatus::Success, "shared-word three\n").await;
    index_all(store).await;
    let fourth = run(store, job.id, at(4, 0), RunStatus::Success, "shared-word four\n").await;
    let fifth = run(store, job.id, at(5, 0), RunStatus::Success, "shared-word five\n").await;
    store
        .prune_runs(
            &jtp_crds::Retention {
                max_age: None,
                keep_last: Some(1),
            },
            at(12, 0),
            &PruneOptions::default(),
        )
        .await
        .expect("prune");
    assert_eq!(found(store, &search("shared-word")).await, [fifth]);
    index_all(store).await;
    assert_eq!(found(store, &search("shared-word")).await, [fifth]);
    assert_eq!(found(store, &search("first-text")).await, Vec::<i64>::new());
    let _ = (third, fourth);
}

/// More hits than [`FEW_HITS`]: SQLite reads runs newest first and tests each output instead
/// of sorting every hit; the answer is the same — literal text (`_` and `%` are no wildcards),
/// filters, order, and cursor pages that visit every hit once. A non-ASCII text with that many
/// hits is still found through the index.
/// A search while the indexer moves runs from the pending table into the index finds every run
/// on its way (on SQLite both probes read one snapshot; before, a run moved between them was in
/// neither). The store's own background indexer runs too.
async fn search_finds_runs_while_they_are_indexed(db: &TestDb) {
    let store = &db.store;
    let job = job(store, "in-flight", None).await;
    let mut ids = Vec::new();
    for round in 0..40_u32 {
        ids.push(
            run(
                store,
                job.id,
                at(round / 60, round % 60),
                RunStatus::Success,
                "needle-in-flight\n",
            )
            .await,
        );
        let indexer = tokio::spawn({
            let store = store.clone();
            async move { store.index_pending_outputs().await }
        });
        let mut seen = found(store, &search("needle-in-flight")).await;
        indexer.await.expect("indexer task").expect("index");
        seen.sort_unstable();
        assert_eq!(seen, ids, "round {round}: every run is found while indexing");
    }
}

async fn search_with_many_hits_reads_runs_newest_first(db: &TestDb) {
    let store = &db.store;
    let (a, b) = (job(store, "many-a", None).await, job(store, "many-b", None).await);
    let n = usize::try_from(FEW_HITS).expect("size") + 40;
    let base = at(0, 0) - Duration::days(30);
    let mut runs = Vec::with_capacity(n + 10);
    for k in 0..n {
        let failed = k % 10 == 0;
        runs.push(ImportedRun {
            job_id: if k % 2 == 0 { a.id } else { b.id },
            // Not in id order: every other run started an hour earlier than its id says.
            run_time: base + Duration::minutes(k as i64) - Duration::hours(if k % 3 == 0 { 1 } else { 0 }),
            scheduled_for: base + Duration::minutes(k as i64),
            finished_at: Some(base + Duration::minutes(k as i64) + Duration::seconds(5)),
            status: if failed {
                RunStatus::Failure
            } else {
                RunStatus::Success
            },
            exit_code: Some(i32::from(failed)),
            trigger: Trigger::Schedule,
            output: format!("step {k}: Copied x_y 100% ÄRGER\n"),
            k8s_job_name: None,
            runner: None,
        });
    }
    for k in 0..10 {
        runs.push(ImportedRun {
            job_id: a.id,
            run_time: base + Duration::days(20) + Duration::minutes(k),
            scheduled_for: base + Duration::days(20) + Duration::minutes(k),
            finished_at: None,
            status: RunStatus::Success,
            exit_code: Some(0),
            trigger: Trigger::Manual,
            output: "copied xay 1000 ärger\n".into(),
            k8s_job_name: None,
            runner: None,
        });
    }
    store.import_runs(&runs).await.expect("import");
    let page = store.list_all_runs(&search("x_y 100%")).await.expect("search");
    assert_eq!(page.items.len(), 50);
    assert!(
        page.items.iter().all(|r| r.run.preview.contains("x_y 100%")),
        "literal"
    );
    let order: Vec<_> = page.items.iter().map(|r| (r.run.run_time, r.run.id)).collect();
    let mut sorted = order.clone();
    sorted.sort_by(|x, y| y.cmp(x));
    assert_eq!(order, sorted, "newest start first");

    // Every hit once, in order, over cursor pages; with a filter too.
    for (filter, expected) in [
        (search("COPIED X_Y"), n),
        (
            RunFilter {
                status: Some(RunStatus::Failure),
                job_name: Some("many-a".into()),
                ..search("copied x_y")
            },
            n.div_ceil(10),
        ),
    ] {
        let mut next = RunFilter { limit: 700, ..filter };
        let mut seen = Vec::new();
        loop {
            let page = store.list_all_runs(&next).await.expect("page");
            seen.extend(page.items.iter().map(|r| (r.run.run_time, r.run.id)));
            match page.older {
                Some(cursor) => next.before = Some(cursor),
                None => break,
            }
        }
        assert_eq!(seen.len(), expected, "{:?}", next.status);
        let mut sorted = seen.clone();
        sorted.sort_by(|x, y| y.cmp(x));
        sorted.dedup();
        assert_eq!(seen, sorted, "each hit once, newest first");
    }
    if store.backend_kind() != BackendKind::Sqlite {
        return;
    }
    // Case beyond ASCII with many hits: the index (imports are indexed as they are written).
    let hits = store.list_all_runs(&search("ärger")).await.expect("search");
    assert_eq!(hits.items.len(), 50);
    assert!(
        hits.items[..10].iter().all(|r| r.run.preview.contains("ärger")),
        "newest first"
    );
    assert!(hits.items[10..].iter().all(|r| r.run.preview.contains("ÄRGER")));
}

/// A text most outputs contain, with a filter few of those runs pass: each page reads at most
/// [`SCAN_BUDGET`] filtered runs and says where it stopped, so the worst case is bounded; paging
/// on from there, in both directions, finds every hit once. SQLite knows the text is common from
/// its index, PostgreSQL from the planner's statistics (refreshed after the import).
async fn search_with_a_selective_filter_reads_a_bounded_page(db: &TestDb) {
    let store = &db.store;
    let (busy, quiet) = (job(store, "busy", None).await, job(store, "quiet", None).await);
    let budget = usize::try_from(SCAN_BUDGET).expect("size");
    let (common, filtered) = (usize::try_from(FEW_HITS).expect("size") + 10, budget * 2 + 100);
    let base = at(0, 0) - Duration::days(60);
    // The quiet job's hits: its newest run, one just inside the first page's reading, one just
    // beyond it, and its oldest run.
    let hit_at = [filtered - 1, filtered - budget, filtered - budget - 1, 0];
    let run = |job_id: i64, k: usize, output: String| ImportedRun {
        job_id,
        run_time: base + Duration::seconds(k as i64),
        scheduled_for: base + Duration::seconds(k as i64),
        finished_at: Some(base + Duration::seconds(k as i64 + 1)),
        status: RunStatus::Success,
        exit_code: Some(0),
        trigger: Trigger::Schedule,
        output,
        k8s_job_name: None,
        runner: None,
    };
    let mut runs: Vec<ImportedRun> = (0..common)
        .map(|k| run(busy.id, k * 3, format!("batch {k}: rows copied\n")))
        .collect();
    runs.extend((0..filtered).map(|k| {
        let text = if hit_at.contains(&k) {
            "rows copied"
        } else {
            "nothing to do"
        };
        run(quiet.id, k * 3 + 1, format!("check {k}: {text}\n"))
    }));
    store.import_runs(&runs).await.expect("import");
    let filter = RunFilter {
        job_id: Some(quiet.id),
        ..search("ROWS COPIED")
    };
    let first = store.list_all_runs(&filter).await.expect("search");
    let preview =
        |page: &RunPage| -> Vec<String> { page.items.iter().map(|r| r.run.preview.clone()).collect() };
    assert_eq!(
        preview(&first),
        [
            format!("check {}: rows copied\n", hit_at[0]),
            format!("check {}: rows copied\n", hit_at[1])
        ],
        "the hits among the newest {budget} runs read"
    );
    let to = first.searched_to.expect("the page stopped at its budget");
    assert_eq!(first.older, Some(to), "and searches on from where it stopped");
    let run_at = |k: usize| base + Duration::seconds((k * 3 + 1) as i64);
    assert_eq!(
        to.run_time,
        run_at(filtered - budget),
        "the last run read is the budget's"
    );
    let second = store
        .list_all_runs(&RunFilter {
            before: Some(to),
            ..filter.clone()
        })
        .await
        .expect("search on");
    assert_eq!(
        preview(&second),
        [format!("check {}: rows copied\n", hit_at[2])],
        "the next reading of {budget} runs"
    );
    // Back towards newer runs from there: the page reads from the cursor upwards.
    let back = store
        .list_all_runs(&RunFilter {
            after: second.newer.or(Some(to)),
            ..filter.clone()
        })
        .await
        .expect("search back");
    assert_eq!(
        preview(&back),
        [
            format!("check {}: rows copied\n", hit_at[0]),
            format!("check {}: rows copied\n", hit_at[1])
        ],
        "the {budget} runs above the cursor, shown newest first"
    );
    assert_eq!(back.newer.map(|c| c.run_time), Some(run_at(filtered - 1)));
    // Every hit once, newest first, however the pages fall.
    let mut next = filter.clone();
    let mut seen = Vec::new();
    loop {
        let page = store.list_all_runs(&next).await.expect("page");
        seen.extend(preview(&page));
        match page.older {
            Some(cursor) => next.before = Some(cursor),
            None => break,
        }
    }
    let expected: Vec<String> = hit_at
        .iter()
        .map(|k| format!("check {k}: rows copied\n"))
        .collect();
    assert_eq!(seen, expected);
    // A text few outputs contain, with the same filter: its hits through the index, all of them
    // on one page, which then did not stop early.
    let rare = store
        .list_all_runs(&RunFilter {
            job_id: Some(quiet.id),
            ..search("CHECK 7: NOTHING")
        })
        .await
        .expect("rare");
    assert_eq!(preview(&rare), ["check 7: nothing to do\n"]);
    assert_eq!((rare.searched_to, rare.older), (None, None));
}

/// Each attempt is its own row for its slot; a retried attempt does not count towards the
/// failures in a row; the retry is kept with the finish and claimed once; the pause suspends.
async fn attempts_retries_and_the_automatic_pause(db: &TestDb) {
    use jtp_crds::policy::PendingRetry;
    let store = &db.store;
    let spec = ScheduledJobSpec::daily("09:00").retry(1, "30s").pause_after(1);
    let job = store
        .create_job(&input("retried", &spec, Some(at(9, 0))))
        .await
        .expect("create");
    let first = store
        .record_attempt_start(&start(job.id, at(9, 0)), 1)
        .await
        .expect("start");
    let retry = PendingRetry {
        scheduled_time: at(9, 0),
        trigger: Trigger::Schedule,
        attempt: 2,
        at: at(9, 1),
    };
    let effects = FinishEffects {
        retry: Some(retry),
        standalone: true,
    };
    store
        .record_attempt_finish(
            first,
            &finish(RunStatus::Failure, b"no", at(9, 0) + Duration::seconds(5)),
            effects,
        )
        .await
        .expect("finish attempt 1");
    let row = store.get_job(job.id).await.expect("job");
    assert_eq!(row.pending_retry(), Some(retry));
    assert_eq!(row.consecutive_failures, 0, "a retried attempt does not count");
    assert!(row.is_active, "nor does it pause the job");
    assert_eq!(store.next_wakeup().await.expect("wakeup"), Some(at(9, 0)));
    assert!(store.due_retries(at(9, 0), 10).await.expect("due").is_empty());
    assert_eq!(store.due_retries(at(9, 1), 10).await.expect("due").len(), 1);

    // Two runners claim it: one wins, and the attempt is its own row for the same slot.
    let claim = RetryClaim {
        job_id: job.id,
        retry,
        runner: "r",
        now: at(9, 1),
    };
    let won = store.claim_retries(&[claim, claim]).await.expect("claim");
    let claimed = won[0].clone().expect("the first claim wins");
    assert_eq!(won[1], None, "a retry is claimed once");
    assert_eq!((claimed.attempt, claimed.scheduled_for), (2, at(9, 0)));
    assert_eq!(store.get_job(job.id).await.expect("job").pending_retry(), None);
    let again = store
        .record_attempt_start(&start(job.id, at(9, 0)), 2)
        .await
        .expect("start again");
    assert_eq!(again, claimed.run_id, "attempt 2 of the slot is one row");

    // The last attempt fails too: it counts, and the job pauses (pauseAfterConsecutiveFailures: 1).
    let last = FinishEffects {
        retry: None,
        standalone: true,
    };
    store
        .record_attempt_finish(claimed.run_id, &finish(RunStatus::Error, b"", at(9, 2)), last)
        .await
        .expect("finish attempt 2");
    let runs = store.list_runs(job.id, 10, 0).await.expect("runs").items;
    let attempts: Vec<(i32, RunStatus)> = runs.iter().map(|r| (r.attempt, r.status)).collect();
    assert_eq!(attempts, [(2, RunStatus::Error), (1, RunStatus::Failure)]);
    let paused = store.get_job(job.id).await.expect("job");
    assert_eq!(paused.consecutive_failures, 1);
    assert!(!paused.is_active && paused.spec.suspend && paused.next_run.is_none());
    assert!(
        paused
            .pause_note
            .as_deref()
            .is_some_and(|n| n.contains("1 failed run in a row")),
        "{:?}",
        paused.pause_note
    );
    assert_eq!(paused.paused_at_failures, Some(1));

    // A resume clears the note; a dropped retry is gone.
    let mut resumed = paused.spec.clone();
    resumed.suspend = false;
    let row = store
        .update_job(job.id, &input("retried", &resumed, Some(at(23, 0))))
        .await
        .expect("resume");
    assert_eq!((row.is_active, row.pause_note), (true, None));
    store.drop_retry(job.id).await.expect("drop");
}
