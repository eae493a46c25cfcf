//! Test harness: a fresh database per test, on SQLite (a temp file) or on a real PostgreSQL
//! server. The server's URL comes from `JTP_TEST_POSTGRES_URL`; when that is unset the harness
//! runs `scripts/postgres-up` once per test binary. Without PostgreSQL the tests fail, never skip.
#![allow(dead_code)]

use jtp_store::{Store, StoreOptions};
use sqlx::Connection;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

pub const POSTGRES_URL_ENV: &str = "JTP_TEST_POSTGRES_URL";

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Runs `scripts/postgres-up` with extra environment and returns the URL it prints last.
pub fn postgres_up(env: &[(&str, String)]) -> Result<String, String> {
    let script = repo_root().join("scripts/postgres-up");
    let out = Command::new(&script)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    match stdout.lines().last() {
        Some(url) if out.status.success() && url.starts_with("postgres") => Ok(url.to_owned()),
        _ => Err(format!(
            "{} failed ({}): {}{}",
            script.display(),
            out.status,
            stdout,
            String::from_utf8_lossy(&out.stderr)
        )),
    }
}

/// Runs `scripts/postgres-down` with extra environment and arguments; true when it worked.
pub fn postgres_down(env: &[(&str, String)], args: &[&str]) -> bool {
    let script = repo_root().join("scripts/postgres-down");
    let status = Command::new(&script)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .args(args)
        .status();
    status.is_ok_and(|s| s.success())
}

/// The shared server for this test binary.
pub fn postgres_admin_url() -> String {
    static URL: OnceLock<Result<String, String>> = OnceLock::new();
    let url = URL.get_or_init(|| match std::env::var(POSTGRES_URL_ENV) {
        Ok(url) if !url.is_empty() => Ok(url),
        _ => postgres_up(&[]),
    });
    match url {
        Ok(url) => url.clone(),
        Err(e) => panic!(
            "the store tests need PostgreSQL: set {POSTGRES_URL_ENV}=postgres://USER:PASSWORD@127.0.0.1:PORT/DB \
             (a role that may CREATE DATABASE), or let scripts/postgres-up start one (as root it installs \
             Debian's postgresql package if missing). It said: {e}"
        ),
    }
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
        let name = format!("jtp_test_{:016x}", rand::random::<u64>());
        let mut conn = sqlx::PgConnection::connect(&admin)
            .await
            .expect("connect to the test server");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .expect("create db");
        conn.close().await.ok();
        let mut url = url::Url::parse(&admin).expect("admin url");
        url.set_path(&name);
        let url = url.to_string();
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
            let mut conn = sqlx::PgConnection::connect(&admin)
                .await
                .expect("connect to the test server");
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
            )))
            .execute(&mut conn)
            .await
            .expect("drop db");
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
