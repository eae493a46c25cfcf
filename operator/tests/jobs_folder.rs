//! The jobs folder read and applied to a real SQLite store: each document on its own, broken
//! files kept, jobs coming back to their rows, and portal edits that last until the job's own
//! document changes.

use chrono::Utc;
use jtp_crds::ScheduledJobSpec;
use jtp_operator::standalone::{folder, loader};
use jtp_store::{JobInput, Store};
use std::path::Path;

fn job_doc(name: &str, at: &str) -> String {
    format!(
        "apiVersion: jobtrigger.io/v1alpha1\nkind: ScheduledJob\nmetadata: {{ name: {name} }}\nspec:\n  schedule: {{ daily: {{ at: \"{at}\" }} }}\n  script: {{ inline: echo {name} }}\n"
    )
}

async fn store(dir: &Path) -> Store {
    Store::connect(&format!("sqlite://{}", dir.join("jtp.db").display()))
        .await
        .expect("open the store")
}

async fn sync(store: &Store, jobs: &Path) -> loader::SyncReport {
    let scan = folder::scan(jobs).expect("the folder is readable");
    loader::sync(store, jobs, &scan, Utc::now()).await.expect("sync")
}

fn folder_in(dir: &Path) -> std::path::PathBuf {
    let jobs = dir.join("jobs");
    std::fs::create_dir_all(&jobs).expect("jobs dir");
    jobs
}

#[tokio::test]
async fn one_bad_document_is_reported_with_its_file_and_the_rest_is_applied() {
    let dir = tempfile::tempdir().expect("temp dir");
    let jobs = folder_in(dir.path());
    let store = store(dir.path()).await;
    let nameless = "apiVersion: jobtrigger.io/v1alpha1\nkind: ScheduledJob\nmetadata: { name: \"\" }\nspec:\n  schedule: { daily: { at: \"09:00\" } }\n  script: { inline: echo }\n";
    std::fs::write(
        jobs.join("a.yaml"),
        format!("{}---\n{nameless}", job_doc("good-in-a", "09:00")),
    )
    .expect("write");
    std::fs::write(jobs.join("b.yaml"), job_doc("in-b", "10:00")).expect("write");
    let typo = job_doc("typo", "11:00").replace("  script:", "  timezone: Europe/London\n  script:");
    std::fs::write(jobs.join("c.yaml"), typo).expect("write");
    let report = sync(&store, &jobs).await;
    assert_eq!(report.created, ["default/good-in-a", "default/in-b"]);
    assert_eq!(report.problems.len(), 2, "{:?}", report.problems);
    assert!(
        report.problems[0].contains("a.yaml") && report.problems[0].contains("metadata.name"),
        "{:?}",
        report.problems
    );
    assert!(
        report.problems[1].contains("c.yaml")
            && report.problems[1].contains("spec.timezone: unknown field, did you mean timeZone?"),
        "{:?}",
        report.problems
    );

    // Unrelated edits and deletions go through while a.yaml stays broken.
    std::fs::write(jobs.join("b.yaml"), job_doc("in-b", "10:30")).expect("edit");
    let report = sync(&store, &jobs).await;
    assert_eq!(report.updated, ["default/in-b"]);
    std::fs::remove_file(jobs.join("b.yaml")).expect("remove");
    let report = sync(&store, &jobs).await;
    assert_eq!(report.deleted, ["default/in-b"]);
    assert!(store.get_job_by_name("default", "good-in-a").await.is_ok());
}

#[tokio::test]
async fn jobs_of_a_file_that_became_unreadable_are_kept() {
    let dir = tempfile::tempdir().expect("temp dir");
    let jobs = folder_in(dir.path());
    let store = store(dir.path()).await;
    std::fs::write(
        jobs.join("a.yaml"),
        format!("{}---\n{}", job_doc("one", "09:00"), job_doc("two", "09:00")),
    )
    .expect("write");
    sync(&store, &jobs).await;
    // The second document breaks: "two" is no longer read, but it is not deleted either.
    std::fs::write(
        jobs.join("a.yaml"),
        format!("{}---\n{}", job_doc("one", "09:00"), job_doc("two", "9am")),
    )
    .expect("break");
    let report = sync(&store, &jobs).await;
    assert!(report.deleted.is_empty(), "{report:?}");
    assert!(store.get_job_by_name("default", "two").await.is_ok());
}

#[tokio::test]
async fn a_folder_that_cannot_be_read_is_an_error_not_an_empty_folder() {
    let dir = tempfile::tempdir().expect("temp dir");
    let jobs = folder_in(dir.path());
    std::fs::write(jobs.join("a.yaml"), job_doc("one", "09:00")).expect("write");
    std::fs::rename(&jobs, dir.path().join("moved")).expect("move away");
    let err = folder::scan(&jobs).expect_err("a missing folder is not an empty one");
    assert!(err.contains("cannot read the jobs folder"), "{err}");
    assert!(folder::fingerprint(&jobs).is_err());
}

#[tokio::test]
async fn a_job_defined_again_gets_its_old_row_and_history_back() {
    let dir = tempfile::tempdir().expect("temp dir");
    let jobs = folder_in(dir.path());
    let store = store(dir.path()).await;
    std::fs::write(jobs.join("a.yaml"), job_doc("comes-back", "09:00")).expect("write");
    sync(&store, &jobs).await;
    let first = store
        .get_job_by_name("default", "comes-back")
        .await
        .expect("created");
    std::fs::rename(jobs.join("a.yaml"), dir.path().join("a.yaml")).expect("take the file away");
    assert_eq!(sync(&store, &jobs).await.deleted, ["default/comes-back"]);
    std::fs::rename(dir.path().join("a.yaml"), jobs.join("a.yaml")).expect("bring it back");
    let report = sync(&store, &jobs).await;
    assert_eq!(report.restored, ["default/comes-back"], "{report:?}");
    let again = store
        .get_job_by_name("default", "comes-back")
        .await
        .expect("back");
    assert_eq!(again.id, first.id, "the same row, with its runs");
}

#[tokio::test]
async fn a_portal_edit_or_delete_lasts_until_that_jobs_own_document_changes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let jobs = folder_in(dir.path());
    let store = store(dir.path()).await;
    std::fs::write(jobs.join("a.yaml"), job_doc("edited", "09:00")).expect("write");
    std::fs::write(jobs.join("b.yaml"), job_doc("deleted", "09:00")).expect("write");
    sync(&store, &jobs).await;
    let edited = store.get_job_by_name("default", "edited").await.expect("job");
    assert_eq!(
        edited.source.as_deref(),
        Some("file:a.yaml"),
        "the row says where it came from"
    );
    let portal_spec = ScheduledJobSpec::daily("18:00");
    let input = JobInput {
        name: "edited",
        namespace: "default",
        uid: None,
        spec: &portal_spec,
        next_run: None,
    };
    store.update_job(edited.id, &input).await.expect("portal edit");
    let deleted = store.get_job_by_name("default", "deleted").await.expect("job");
    store.delete_job(deleted.id).await.expect("portal delete");

    // Another file changes, and the runner restarts: both portal changes stand.
    std::fs::write(jobs.join("c.yaml"), job_doc("other", "09:00")).expect("write");
    let report = sync(&store, &jobs).await;
    assert_eq!(report.created, ["default/other"], "{report:?}");
    assert!(
        report.updated.is_empty() && report.restored.is_empty(),
        "{report:?}"
    );
    let report = sync(&store, &jobs).await;
    assert!(
        report.updated.is_empty() && report.restored.is_empty(),
        "{report:?}"
    );
    assert_eq!(
        store
            .get_job_by_name("default", "edited")
            .await
            .expect("job")
            .spec,
        portal_spec
    );
    assert!(store.get_job_by_name("default", "deleted").await.is_err());

    // The job's own document changes: the file wins again.
    std::fs::write(jobs.join("a.yaml"), job_doc("edited", "07:00")).expect("edit");
    std::fs::write(jobs.join("b.yaml"), job_doc("deleted", "07:00")).expect("edit");
    let report = sync(&store, &jobs).await;
    assert_eq!(report.updated, ["default/edited"], "{report:?}");
    assert_eq!(report.restored, ["default/deleted"], "{report:?}");
    let back = store.get_job_by_name("default", "deleted").await.expect("back");
    assert_eq!((back.id, back.at_time.as_deref()), (deleted.id, Some("07:00")));
}

#[tokio::test]
async fn config_map_keys_that_are_paths_are_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let jobs = folder_in(dir.path());
    std::fs::write(
        jobs.join("cm.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata: { name: scripts }\ndata:\n  ../../x.sh: \"echo escaped\"\n",
    )
    .expect("write");
    let scan = folder::scan(&jobs).expect("readable");
    assert!(scan.config_maps.is_empty());
    assert!(
        scan.broken[0]
            .1
            .contains("\"../../x.sh\" is not a valid ConfigMap key"),
        "{:?}",
        scan.broken
    );
}

#[tokio::test]
async fn pod_only_fields_are_reported_once_as_ignored_in_standalone_mode() {
    let dir = tempfile::tempdir().expect("temp dir");
    let jobs = folder_in(dir.path());
    let store = store(dir.path()).await;
    let doc = job_doc("with-pod", "09:00").replace(
        "  script:",
        "  image: alpine:3\n  podTemplate:\n    metadata: { labels: { team: data } }\n    spec:\n      nodeSelector: { disk: ssd }\n      tolerations: [{ key: batch, operator: Exists }]\n  script:",
    );
    std::fs::write(jobs.join("a.yaml"), &doc).expect("write");
    std::fs::write(jobs.join("b.yaml"), job_doc("plain", "10:00")).expect("write");
    let report = sync(&store, &jobs).await;
    assert_eq!(report.problems, Vec::<String>::new());
    assert_eq!(
        report.ignored,
        [
            "default/with-pod: image, podTemplate.metadata.labels, podTemplate.spec.nodeSelector, podTemplate.spec.tolerations"
        ]
    );
    // Once: an unchanged folder says nothing again; a change of the document says it again.
    assert!(sync(&store, &jobs).await.ignored.is_empty());
    std::fs::write(jobs.join("a.yaml"), doc.replace("09:00", "09:30")).expect("write");
    assert_eq!(sync(&store, &jobs).await.ignored.len(), 1);
}

#[tokio::test]
async fn of_a_pod_template_only_what_a_local_run_cannot_use_is_reported_as_ignored() {
    let dir = tempfile::tempdir().expect("temp dir");
    let jobs = folder_in(dir.path());
    let store = store(dir.path()).await;
    let doc = job_doc("full-pod", "09:00").replace(
        "  script:",
        "  podTemplate:\n    spec:\n      containers:\n\
         \x20       - name: run\n          securityContext: { runAsUser: 1000 }\n          env:\n\
         \x20           - { name: A, value: x }\n            - { name: POD, valueFrom: { fieldRef: { fieldPath: metadata.name } } }\n\
         \x20         envFrom: [{ secretRef: { name: s } }]\n          volumeMounts: [{ name: claim, mountPath: /data }, { name: tmp, mountPath: /tmp/x }]\n\
         \x20       - { name: sidecar, image: busybox:1.36 }\n      volumes:\n\
         \x20       - { name: claim, persistentVolumeClaim: { claimName: data } }\n        - { name: tmp, emptyDir: { medium: Memory } }\n  script:",
    );
    std::fs::write(jobs.join("a.yaml"), &doc).expect("write");
    let report = sync(&store, &jobs).await;
    assert_eq!(report.problems, Vec::<String>::new());
    assert_eq!(
        report.ignored,
        [
            "default/full-pod: podTemplate.spec.containers[run].env[POD].valueFrom.fieldRef, \
             podTemplate.spec.containers[run].securityContext, podTemplate.spec.containers[sidecar], \
             podTemplate.spec.volumes[claim].persistentVolumeClaim, podTemplate.spec.volumes[tmp].emptyDir.medium"
        ]
    );
}

#[test]
fn a_secret_is_read_from_data_and_string_data_and_a_bad_value_is_named_by_its_key_only() {
    let dir = tempfile::tempdir().expect("temp dir");
    let jobs = folder_in(dir.path());
    std::fs::write(
        jobs.join("s.yaml"),
        "apiVersion: v1\nkind: Secret\nmetadata: { name: good, namespace: team }\ndata: { a: aGk= }\nstringData: { b: plain }\n---\n\
         apiVersion: v1\nkind: Secret\nmetadata: { name: bad }\ndata: { token: \"not base64 top-secret!\" }\n",
    )
    .expect("write");
    let scan = folder::scan(&jobs).expect("readable");
    let good = &scan.secrets[&("team".to_owned(), "good".to_owned())];
    assert_eq!(good.0["a"], b"hi");
    assert_eq!(good.0["b"], b"plain");
    assert_eq!(
        format!("{good:?}"),
        "{\"a\", \"b\"}",
        "Debug shows keys, never values"
    );
    assert_eq!(scan.broken.len(), 1, "{:?}", scan.broken);
    let why = &scan.broken[0].1;
    assert!(why.contains("data.token") && !why.contains("top-secret"), "{why}");
}
