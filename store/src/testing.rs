//! Test support (feature `testing`, never in the shipped binary): the test PostgreSQL server and a
//! fresh database on it, for this crate's tests and benchmark and the operator's end-to-end tests.
//!
//! The server's URL comes from `JTP_TEST_POSTGRES_URL`; when that is unset, `scripts/postgres-up`
//! starts one on port 55433 (as root it installs PostgreSQL if missing). Without a server, callers fail with a
//! message that says how to get one; they never skip.

use sqlx::Connection;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// The variable naming an already running server (a role that may `CREATE DATABASE`).
pub const POSTGRES_URL_ENV: &str = "JTP_TEST_POSTGRES_URL";

/// Claims one slot: [`crate::Store::claim_slots`] of a single claim, answering the run won or `None`
/// (tests claim one slot at a time; the runner claims a burst at once).
pub async fn claim_one(
    store: &crate::Store,
    claim: crate::SlotClaim<'_>,
) -> crate::Result<Option<crate::Claim>> {
    Ok(store.claim_slots(&[claim]).await?.pop().flatten())
}

/// A script of the repository's `scripts/` folder.
pub fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../scripts")
        .join(name)
}

/// Runs `scripts/postgres-up` with extra environment and returns the URL it prints last.
pub fn postgres_up(env: &[(&str, String)]) -> Result<String, String> {
    let script = script("postgres-up");
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

/// Port of the server [`postgres_server_url`] starts when `JTP_TEST_POSTGRES_URL` is unset.
pub const AUTO_PORT: &str = "55433";

/// The test server's URL: `JTP_TEST_POSTGRES_URL`, else the server `scripts/postgres-up` starts
/// on [`AUTO_PORT`] (once per process). Panics, saying how to get a server, when there is none.
pub fn postgres_server_url() -> String {
    static URL: OnceLock<Result<String, String>> = OnceLock::new();
    let url = URL.get_or_init(|| match std::env::var(POSTGRES_URL_ENV) {
        Ok(url) if !url.is_empty() => Ok(url),
        // A port of its own: never the server scripts/test starts inside testenv's network
        // namespace (55432), which a test run outside it would otherwise restart out of there.
        _ => postgres_up(&[("JTP_PG_PORT", AUTO_PORT.to_owned())]),
    });
    match url {
        Ok(url) => url.clone(),
        Err(e) => panic!(
            "these tests need PostgreSQL: set {POSTGRES_URL_ENV}=postgres://USER:PASSWORD@127.0.0.1:PORT/DB \
             (a role that may CREATE DATABASE), or let scripts/postgres-up start one (as root it installs \
             Debian's postgresql package if missing; else `apt-get install postgresql`). It said: {e}"
        ),
    }
}

/// A new, empty database on the server at `server_url`, named `<prefix>_<unique>`; returns its
/// name and URL. Drop it with [`drop_database`].
pub async fn create_database(server_url: &str, prefix: &str) -> (String, String) {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let name = format!(
        "{prefix}_{}_{}_{nanos}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let mut conn = sqlx::PgConnection::connect(server_url)
        .await
        .unwrap_or_else(|e| panic!("connecting to the test PostgreSQL server {server_url}: {e}"));
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e}"));
    conn.close().await.ok();
    let mut url = url::Url::parse(server_url).expect("the server URL parses");
    url.set_path(&name);
    (name, url.to_string())
}

/// Drops a database made by [`create_database`], closing what is still connected to it.
pub async fn drop_database(server_url: &str, name: &str) {
    let mut conn = sqlx::PgConnection::connect(server_url)
        .await
        .unwrap_or_else(|e| panic!("connecting to the test PostgreSQL server {server_url}: {e}"));
    // FORCE cannot end a backend of another role that is briefly on the database (the server
    // refuses with "must be a member of the role whose process is being terminated"): such a
    // visitor leaves within moments, so the drop is tried again a few times.
    let mut attempt = 0;
    loop {
        let dropped = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
        )))
        .execute(&mut conn)
        .await;
        match dropped {
            Ok(_) => break,
            Err(e) if attempt < 10 && e.to_string().contains("must be a member of the role") => {
                attempt += 1;
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            Err(e) => panic!("DROP DATABASE {name}: {e}"),
        }
    }
    conn.close().await.ok();
}
