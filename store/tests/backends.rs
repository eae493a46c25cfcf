//! What is particular to each backend: SQLite's file and format, PostgreSQL going away and coming
//! back, and passwords kept out of errors.

mod common;

use chrono::{TimeZone, Utc};
use jtp_crds::{RunStatus, ScheduledJobSpec, Trigger};
use jtp_store::*;
use std::time::Duration;

#[tokio::test]
async fn sqlite_file_is_created_in_wal_mode_with_sortable_text_times() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("a/b/jtp.db");
    let url = format!("sqlite://{}", path.display());
    let store = Store::connect(&url).await.expect("connect");
    assert!(path.exists(), "file and folders created");
    assert_eq!(store.backend_kind(), BackendKind::Sqlite);

    let spec = ScheduledJobSpec::daily("09:00");
    let next = Utc
        .with_ymd_and_hms(2026, 11, 30, 1, 0, 0)
        .single()
        .expect("time");
    let input = JobInput {
        name: "wal",
        namespace: "default",
        uid: None,
        spec: &spec,
        next_run: Some(next),
    };
    store.create_job(&input).await.expect("create");

    let raw = sqlx::SqlitePool::connect(&url).await.expect("raw");
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&raw)
        .await
        .expect("pragma");
    assert_eq!(mode, "wal");
    let (next_run, created_at, active): (String, String, i64) =
        sqlx::query_as("SELECT next_run, created_at, is_active FROM scheduled_jobs WHERE is_active = 1")
            .fetch_one(&raw)
            .await
            .expect("row");
    assert_eq!(next_run, "2026-11-30 01:00:00.000000Z");
    assert_eq!(
        (created_at.len(), created_at.as_bytes()[10], active),
        (next_run.len(), b' ', 1)
    );
    let parsed: Option<String> = sqlx::query_scalar("SELECT datetime(next_run) FROM scheduled_jobs")
        .fetch_one(&raw)
        .await
        .expect("datetime()");
    assert_eq!(
        parsed.as_deref(),
        Some("2026-11-30 01:00:00"),
        "SQLite's date functions read the format"
    );
    raw.close().await;
    store.close().await;

    // A second connect reuses the file and its migrations.
    let again = Store::connect(&format!("sqlite:{}", path.display()))
        .await
        .expect("reconnect");
    assert_eq!(
        again
            .get_job_by_name("default", "wal")
            .await
            .expect("job")
            .next_run,
        Some(next)
    );
    again.close().await;
}

#[tokio::test]
async fn bad_urls_are_refused_without_showing_passwords() {
    let err = Store::connect("mysql://root:hunter2@localhost/db")
        .await
        .expect_err("unsupported");
    assert_eq!(err.label(), "invalid");
    assert!(!err.to_string().contains("hunter2"), "{err}");

    let admin = common::postgres_admin_url();
    let mut wrong = url::Url::parse(&admin).expect("url");
    wrong
        .set_password(Some("not-the-password-xyzzy"))
        .expect("password");
    let err = Store::connect(wrong.as_str()).await.expect_err("wrong password");
    assert!(!format!("{err} {err:?}").contains("xyzzy"), "{err:?}");

    let options = StoreOptions {
        acquire_timeout: Duration::from_secs(1),
        ..StoreOptions::default()
    };
    let err = Store::connect_with("postgres://jtp:hunter2@127.0.0.1:1/jtp", options)
        .await
        .expect_err("nobody there");
    assert_eq!(err.label(), "unavailable", "{err}");
    assert!(!format!("{err} {err:?}").contains("hunter2"), "{err:?}");
    // The shared server's own database is not migrated here: other branches' tests use it too.
    let unmigrated = StoreOptions {
        migrate: false,
        ..StoreOptions::default()
    };
    let ok = Store::connect_with(&admin, unmigrated).await.expect("connect");
    assert!(!ok.url().to_string().contains(":jtp@") && ok.url().to_string().contains(REDACTED));
    assert!(!format!("{ok:?}").contains(":jtp@"));
    ok.close().await;
}

/// A dedicated server (its own port and data directory) is stopped under a live store and
/// started again: calls fail with `Unavailable` meanwhile, nothing is half-written, and the same
/// store works afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_outage_and_recovery() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
        listener.local_addr().expect("addr").port()
    };
    let data = std::env::temp_dir().join(format!("jtp-postgres-outage-{port}"));
    let env = [
        ("JTP_PG_PORT", port.to_string()),
        ("JTP_PG_DATA", data.display().to_string()),
    ];
    let url = jtp_store::testing::postgres_up(&env)
        .unwrap_or_else(|e| panic!("a dedicated PostgreSQL for this test: {e}"));
    /// Stops and removes the dedicated server however the test ends.
    struct Purge(Vec<(&'static str, String)>);
    impl Drop for Purge {
        fn drop(&mut self) {
            common::postgres_down(&self.0, &["--purge"]);
        }
    }
    let _purge = Purge(env.to_vec());

    let options = StoreOptions {
        acquire_timeout: Duration::from_secs(2),
        ..StoreOptions::default()
    };
    let store = Store::connect_with(&url, options).await.expect("connect");
    let spec = ScheduledJobSpec::daily("09:00");
    let slot = Utc
        .with_ymd_and_hms(2026, 11, 30, 1, 0, 0)
        .single()
        .expect("time");
    let input = JobInput {
        name: "survivor",
        namespace: "default",
        uid: None,
        spec: &spec,
        next_run: Some(slot),
    };
    let job = store.create_job(&input).await.expect("create");
    let start = RunStart {
        job_id: job.id,
        trigger: Trigger::Schedule,
        scheduled_for: slot,
        started_at: slot,
        k8s_job_name: None,
        runner: None,
        requester: None,
        parameters: Default::default(),
    };
    let run_id = store.record_attempt_start(&start, 1).await.expect("start");

    assert!(common::postgres_down(&env, &[]), "scripts/postgres-down failed");
    let done = RunFinish {
        status: RunStatus::Success,
        exit_code: Some(0),
        output: b"done",
        finished_at: slot,
    };
    let errors = [
        store
            .record_attempt_finish(run_id, &done, FinishEffects::default())
            .await
            .expect_err("finish while down"),
        store
            .list_jobs(&JobFilter {
                limit: 10,
                ..JobFilter::default()
            })
            .await
            .expect_err("list while down"),
        store
            .create_job(&JobInput { name: "new", ..input })
            .await
            .expect_err("create while down"),
        store.ping().await.expect_err("ping while down"),
    ];
    for err in &errors {
        assert!(err.is_transient(), "{err} ({})", err.label());
        assert!(!err.to_string().contains(":jtp@"), "{err}");
    }

    jtp_store::testing::postgres_up(&env).expect("restart");
    let mut back = store.ping().await;
    for _ in 0..20 {
        if back.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
        back = store.ping().await;
    }
    back.expect("the same store works again");
    let run = store.get_run(run_id).await.expect("run");
    assert_eq!(
        run.summary.status,
        RunStatus::Running,
        "the failed finish wrote nothing"
    );
    assert_eq!(store.get_job(job.id).await.expect("job").last_status, None);
    assert_eq!(
        store
            .list_jobs(&JobFilter {
                limit: 10,
                ..JobFilter::default()
            })
            .await
            .expect("list")
            .total,
        1
    );
    assert_eq!(
        store
            .record_attempt_finish(run_id, &done, FinishEffects::default())
            .await
            .expect("finish"),
        Finish::Recorded
    );
    assert_eq!(
        store.get_job(job.id).await.expect("job").last_status,
        Some(RunStatus::Success)
    );
    store.close().await;
}

#[tokio::test]
async fn sqlite_in_memory_works() {
    let store = Store::connect("sqlite::memory:").await.expect("connect");
    let spec = ScheduledJobSpec::manual();
    let input = JobInput {
        name: "mem",
        namespace: "default",
        uid: None,
        spec: &spec,
        next_run: None,
    };
    let job = store.create_job(&input).await.expect("create");
    assert_eq!(store.get_job(job.id).await.expect("read back").name, "mem");
    store.close().await;
}
