//! What the operator asks of the store about Kubernetes Jobs, on SQLite and on PostgreSQL.

mod common;

use chrono::{DateTime, TimeZone, Utc};
use jtp_crds::{RunStatus, ScheduledJobSpec, Trigger};
use jtp_store::*;

fn at(h: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 30, h, 0, 0)
        .single()
        .expect("valid time")
}

on_both_backends!(finished_k8s_jobs_names_only_finished_runs);

async fn finished_k8s_jobs_names_only_finished_runs(db: &common::TestDb) {
    let store = &db.store;
    let spec = ScheduledJobSpec::daily("09:00");
    let job = store
        .upsert_job(&JobInput {
            name: "backup",
            namespace: "team-a",
            uid: Some("uid-1"),
            spec: &spec,
            next_run: None,
        })
        .await
        .expect("upsert");
    let start = |name: &str, hour: u32| RunStart {
        job_id: job.id,
        trigger: Trigger::Schedule,
        scheduled_for: at(hour),
        started_at: at(hour),
        k8s_job_name: Some(name.into()),
        runner: Some("operator".into()),
        requester: None,
        parameters: Default::default(),
    };
    let done = store
        .record_attempt_start(&start("team-a/backup-1", 1), 1)
        .await
        .expect("start");
    store
        .record_attempt_finish(
            done,
            &RunFinish {
                status: RunStatus::Failure,
                exit_code: Some(2),
                output: b"no",
                finished_at: at(1),
            },
            FinishEffects::default(),
        )
        .await
        .expect("finish");
    store
        .record_attempt_start(&start("team-a/backup-2", 2), 1)
        .await
        .expect("start");

    let asked: Vec<String> = ["team-a/backup-1", "team-a/backup-2", "team-a/backup-3"]
        .map(String::from)
        .into();
    let found = store.finished_k8s_jobs(&asked).await.expect("query");
    assert_eq!(
        found,
        vec!["team-a/backup-1".to_owned()],
        "running and unknown Jobs are not finished"
    );
    assert!(store.finished_k8s_jobs(&[]).await.expect("empty").is_empty());
}
