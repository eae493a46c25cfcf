//! Several processes opening one new SQLite file at the same moment (the operator and the portal
//! starting together) each migrate it; every one of them must succeed.

use jtp_store::Store;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_first_opens_of_one_sqlite_file_all_succeed() {
    for round in 0..5 {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("jtp.db").display());
        let opens: Vec<_> = (0..6)
            .map(|_| {
                let url = url.clone();
                tokio::spawn(async move { Store::connect(&url).await.map(|_| ()) })
            })
            .collect();
        for (i, open) in opens.into_iter().enumerate() {
            let result = open.await.expect("the task ran");
            assert!(result.is_ok(), "round {round}, open {i}: {result:?}");
        }
    }
}

/// Migration 0008 rebuilds `job_execution_logs` on SQLite (to make a slot's runs unique per
/// attempt): every row, id and the id sequence survive, so a deleted id is never reused.
#[tokio::test]
async fn the_attempts_migration_keeps_every_run_and_the_id_sequence_on_sqlite() {
    let (_dir, file, pool) = sqlite_before("0008").await;
    for (slot, status) in [("09", "SUCCESS"), ("10", "FAILURE"), ("11", "SUCCESS")] {
        sqlx::query(
            "INSERT INTO job_execution_logs (job_id, run_time, scheduled_for, status, trigger, log_output) \
             VALUES (1, $1, $1, $2, 'schedule', 'out')",
        )
        .bind(format!("2026-11-30 {slot}:00:00.000000Z"))
        .bind(status)
        .execute(&pool)
        .await
        .expect("a run");
    }
    sqlx::query("DELETE FROM job_execution_logs WHERE id = 3")
        .execute(&pool)
        .await
        .expect("delete");
    pool.close().await;

    let store = jtp_store::Store::connect(&format!("sqlite://{}", file.display()))
        .await
        .expect("migrate to the latest");
    let runs = store.list_runs(1, 10, 0).await.expect("runs").items;
    let kept: Vec<(i64, i32, jtp_crds::RunStatus)> =
        runs.iter().map(|r| (r.id, r.attempt, r.status)).collect();
    assert_eq!(
        kept,
        [
            (2, 1, jtp_crds::RunStatus::Failure),
            (1, 1, jtp_crds::RunStatus::Success)
        ]
    );
    let next = store
        .record_attempt_start(
            &jtp_store::RunStart {
                job_id: 1,
                trigger: jtp_crds::Trigger::Schedule,
                scheduled_for: chrono::Utc::now(),
                started_at: chrono::Utc::now(),
                k8s_job_name: None,
                runner: None,
                requester: None,
                parameters: Default::default(),
            },
            1,
        )
        .await
        .expect("a new run");
    assert_eq!(next, 4, "id 3 was used before the migration and is not reused");
}

/// Migration 0012 (SQLite: a finish notes the run for indexing in the background instead of
/// indexing it in its own transaction) upgrades a database at 0011 in place: runs indexed before
/// it are found, and a run whose output was indexed by the old triggers can be replaced and
/// deleted (the index drops the old text); a run finished after it is found at once and after
/// indexing.
#[tokio::test]
async fn the_deferred_search_index_migration_keeps_what_was_indexed_on_sqlite() {
    let (_dir, file, pool) = sqlite_before("0012").await;
    // Written as 0011's store wrote them: started with no output, finished with one (the
    // update trigger of 0010 indexes it).
    for (slot, output) in [
        ("09", "old-alpha text"),
        ("10", "old-beta text"),
        ("11", "old-gamma text"),
    ] {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO job_execution_logs (job_id, run_time, scheduled_for, status, trigger) \
             VALUES (1, $1, $1, 'RUNNING', 'schedule') RETURNING id",
        )
        .bind(format!("2026-11-30 {slot}:00:00.000000Z"))
        .fetch_one(&pool)
        .await
        .expect("a run");
        sqlx::query("UPDATE job_execution_logs SET status = 'SUCCESS', log_output = $2 WHERE id = $1")
            .bind(id)
            .bind(output)
            .execute(&pool)
            .await
            .expect("its finish");
    }
    pool.close().await;

    let url = format!("sqlite://{}", file.display());
    let store = jtp_store::Store::connect(&url)
        .await
        .expect("migrate to the latest");
    let found = |text: &'static str| {
        let store = store.clone();
        async move {
            let filter = jtp_store::RunFilter {
                text: Some(text.into()),
                limit: 50,
                ..jtp_store::RunFilter::default()
            };
            let page = store.list_all_runs(&filter).await.expect("search");
            page.items.iter().map(|r| r.run.id).collect::<Vec<i64>>()
        }
    };
    assert_eq!(found("old-").await, [3, 2, 1], "indexed before the upgrade");
    assert_eq!(found("old-beta").await, [2]);

    // An indexed output replaced (as the store replaces an "interrupted" one) and one deleted.
    let mut conn =
        sqlx::SqliteConnection::connect_with(&sqlx::sqlite::SqliteConnectOptions::new().filename(&file))
            .await
            .expect("open");
    use sqlx::Connection as _;
    sqlx::query("UPDATE job_execution_logs SET log_output = 'new-beta text' WHERE id = 2")
        .execute(&mut conn)
        .await
        .expect("replace");
    sqlx::query("DELETE FROM job_execution_logs WHERE id = 1")
        .execute(&mut conn)
        .await
        .expect("delete");
    conn.close().await.expect("close");
    assert_eq!(found("old-").await, [3]);
    assert_eq!(found("new-beta").await, [2], "noted, found before indexing");

    let now = chrono::Utc::now();
    let id = store
        .record_attempt_start(
            &jtp_store::RunStart {
                job_id: 1,
                trigger: jtp_crds::Trigger::Schedule,
                scheduled_for: now,
                started_at: now,
                k8s_job_name: None,
                runner: None,
                requester: None,
                parameters: Default::default(),
            },
            1,
        )
        .await
        .expect("a new run");
    store
        .record_attempt_finish(
            id,
            &jtp_store::RunFinish {
                status: jtp_crds::RunStatus::Success,
                exit_code: Some(0),
                output: b"fresh-delta text\n",
                finished_at: now,
            },
            jtp_store::FinishEffects::default(),
        )
        .await
        .expect("its finish");
    assert_eq!(found("fresh-delta").await, [id], "found before indexing");
    while store.index_pending_outputs().await.expect("index") > 0 {}
    assert_eq!(found("fresh-delta").await, [id], "found after indexing");
    assert_eq!(found("new-beta").await, [2]);
    assert_eq!(found(" text").await, [id, 3, 2]);
    // The index agrees with the rows: FTS5's own check.
    let mut conn =
        sqlx::SqliteConnection::connect_with(&sqlx::sqlite::SqliteConnectOptions::new().filename(&file))
            .await
            .expect("open");
    sqlx::query("INSERT INTO run_output_search (run_output_search, rank) VALUES ('integrity-check', 1)")
        .execute(&mut conn)
        .await
        .expect("the search index matches the outputs");
    let pending: i64 = sqlx::query_scalar("SELECT count(*) FROM run_output_pending")
        .fetch_one(&mut conn)
        .await
        .expect("count");
    assert_eq!(pending, 0);
}

/// A SQLite database migrated with the migrations before `version` only (as an older release left
/// it), holding one job (id 1): its folder (kept alive by the caller), its file and a pool on it.
async fn sqlite_before(version: &str) -> (tempfile::TempDir, std::path::PathBuf, sqlx::SqlitePool) {
    use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
    let dir = tempfile::tempdir().expect("temp dir");
    let before = dir.path().join("before");
    std::fs::create_dir_all(&before).expect("dir");
    let all = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations/sqlite");
    for entry in std::fs::read_dir(&all).expect("migrations") {
        let path = entry.expect("entry").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        if name.as_str() < version {
            std::fs::copy(&path, before.join(&name)).expect("copy");
        }
    }
    let file = dir.path().join("jtp.db");
    let options = SqliteConnectOptions::new()
        .filename(&file)
        .create_if_missing(true);
    let pool = SqlitePoolOptions::new()
        .connect_with(options)
        .await
        .expect("open");
    sqlx::migrate::Migrator::new(before.as_path())
        .await
        .expect("read the older migrations")
        .run(&pool)
        .await
        .unwrap_or_else(|e| panic!("migrate to just before {version}: {e}"));
    sqlx::query(
        "INSERT INTO scheduled_jobs (name, schedule_type, timezone, script, spec) \
         VALUES ('old', 'manual', 'UTC', 'true', '{}')",
    )
    .execute(&pool)
    .await
    .expect("a job");
    (dir, file, pool)
}
