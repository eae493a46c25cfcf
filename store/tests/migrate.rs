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
        if name.as_str() < "0008" {
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
        .expect("migrate to 0007");
    sqlx::query(
        "INSERT INTO scheduled_jobs (name, schedule_type, timezone, script, spec) \
         VALUES ('old', 'manual', 'UTC', 'true', '{}')",
    )
    .execute(&pool)
    .await
    .expect("a job");
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
        .record_start(&jtp_store::RunStart {
            job_id: 1,
            trigger: jtp_crds::Trigger::Schedule,
            scheduled_for: chrono::Utc::now(),
            started_at: chrono::Utc::now(),
            k8s_job_name: None,
            runner: None,
            requester: None,
        })
        .await
        .expect("a new run");
    assert_eq!(next, 4, "id 3 was used before the migration and is not reused");
}
