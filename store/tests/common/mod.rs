//! Test harness: a fresh database per test, on SQLite (a temp file) or on a real PostgreSQL
//! server. The server's URL comes from `JTP_TEST_POSTGRES_URL`; when that is unset the harness
//! runs `scripts/postgres-up` once per test binary. Without PostgreSQL the tests fail, never skip.
#![allow(dead_code)]

use jtp_store::{Store, StoreOptions};
use std::process::Command;

/// Runs `scripts/postgres-down` with extra environment and arguments; true when it worked.
pub fn postgres_down(env: &[(&str, String)], args: &[&str]) -> bool {
    let script = jtp_store::testing::script("postgres-down");
    let status = Command::new(&script)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .args(args)
        .status();
    status.is_ok_and(|s| s.success())
}

/// The shared server for this test binary.
pub fn postgres_admin_url() -> String {
    jtp_store::testing::postgres_server_url()
}

/// One test's database; call [`TestDb::finish`] at the end to drop it.
pub struct TestDb {
    pub store: Store,
    pub url: String,
    dropper: Option<(String, String)>,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    pub async fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}/nested/jtp.db", dir.path().display());
        let store = Store::connect(&url).await.expect("connect sqlite");
        Self {
            store,
            url,
            dropper: None,
            _dir: Some(dir),
        }
    }

    pub async fn postgres() -> Self {
        Self::postgres_with(StoreOptions::default()).await
    }

    pub async fn postgres_with(options: StoreOptions) -> Self {
        let admin = postgres_admin_url();
        let (name, url) = jtp_store::testing::create_database(&admin, "jtp_test").await;
        let store = Store::connect_with(&url, options)
            .await
            .expect("connect postgres");
        Self {
            store,
            url,
            dropper: Some((admin, name)),
            _dir: None,
        }
    }

    /// Another store on the same database (its own pool), as a second runner would have.
    pub async fn second_store(&self) -> Store {
        Store::connect(&self.url).await.expect("second store")
    }

    pub async fn finish(self) {
        self.store.close().await;
        if let Some((admin, name)) = self.dropper {
            jtp_store::testing::drop_database(&admin, &name).await;
        }
    }
}

/// `async fn NAME(db: &TestDb)` run as `NAME::sqlite` and `NAME::postgres`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let db = common::TestDb::sqlite().await;
                super::$name(&db).await;
                db.finish().await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let db = common::TestDb::postgres().await;
                super::$name(&db).await;
                db.finish().await;
            }
        }
    )*};
}
