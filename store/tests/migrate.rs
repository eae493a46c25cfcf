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
