//! The SQL store of Job Trigger Portal, shared by the operator (Kubernetes mode), the standalone
//! runner and the portal: the original system's `scheduled_jobs` and `job_execution_logs` tables on
//! PostgreSQL or SQLite, picked from the URL scheme.
//!
//! Both backends run the same SQL text (numbered `$1` parameters, `RETURNING`, `ON CONFLICT`, partial
//! indexes and `TRUE`/`FALSE` work on both); what differs lives in the migrations, in how instants
//! are bound ([`time`]), and in the `Dialect` trait. Queries are checked at run time
//! (`query_as().bind()`), so building needs no database.

mod alerts;
mod capture;
mod error;
mod jobs;
mod model;
mod output;
mod retention;
mod row;
mod runner;
mod runs;
mod search;
mod sources;
#[cfg(feature = "testing")]
pub mod testing;
pub mod time;
pub mod troubleshooting;
mod url;

pub use alerts::{
    ALERTS_KEPT, AlertEvent, AlertKind, AlertRecord, Attempt, AttemptOutcome, Delivery, DeliveryPlan,
    DeliveryState, DueDelivery, JobHealth,
};
pub use capture::{CapturedOutput, SharedOutput};
pub use error::{Error, Result};
pub use jobs::script_summary;
pub use model::*;
pub use output::{CappedOutput, DEFAULT_OUTPUT_CAP, NOTE_PREFIX, cap_output, cap_output_parts, with_note};
pub use retention::{PruneOptions, PruneReport};
pub use runner::{INTERRUPTED_MESSAGE, INTERRUPTED_STATUS};
pub use runs::{ImportedRun, MAX_HISTORY};
pub use search::{FEW_HITS, MAX_SEARCH_CHARS, MIN_SEARCH_CHARS, SCAN_BUDGET};
pub use sources::SourcedJob;
pub use url::{BackendKind, REDACTED, RedactedUrl, redact_url};

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

/// How many characters of output a [`RunSummary`] previews.
pub const PREVIEW_CHARS: usize = 200;

static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("../migrations/postgres");
static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("../migrations/sqlite");
/// How often opening or migrating a SQLite file is tried while another process does the same.
const SQLITE_ATTEMPTS: u32 = 5;
/// SQLite: how often the search indexer looks for outputs to index when nothing woke it.
const INDEX_POLL: Duration = Duration::from_secs(5);
/// SQLite: how long the search indexer waits after a finish before indexing, so that runs
/// finishing together go into one batch.
const INDEX_GATHER: Duration = Duration::from_millis(200);
/// SQLite's result code for "database is locked".
const SQLITE_BUSY: &str = "5";

/// Connection settings; `Default` suits the operator, the runner and the portal.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// Pool size (an in-memory SQLite database always uses one connection).
    pub max_connections: u32,
    /// How long an operation waits for a connection before failing with `Unavailable`.
    pub acquire_timeout: Duration,
    /// SQLite: how long a writer waits for another writer's lock.
    pub busy_timeout: Duration,
    /// Cap on a run's stored output, in bytes of the original output ([`cap_output`]).
    pub output_cap: usize,
    /// Apply pending migrations on connect.
    pub migrate: bool,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            max_connections: 10,
            acquire_timeout: Duration::from_secs(5),
            busy_timeout: Duration::from_secs(5),
            output_cap: DEFAULT_OUTPUT_CAP,
            migrate: true,
        }
    }
}

/// The store: a connection pool to one database. Cheap to clone; clones share the pool.
#[derive(Clone)]
pub struct Store {
    backend: Backend,
    url: Arc<RedactedUrl>,
    output_cap: usize,
    /// SQLite: wakes the task that moves finished runs' outputs into the search index.
    indexer: Option<Arc<tokio::sync::Notify>>,
}

#[derive(Clone)]
enum Backend {
    Postgres(PgPool),
    Sqlite(SqlitePool),
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// Runs `$body` with `$pool` bound to the backend's pool: one text of code, compiled for each
/// backend. The body must evaluate to the same type in both arms.
macro_rules! with_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match &$store.backend {
            $crate::Backend::Postgres($pool) => $body,
            $crate::Backend::Sqlite($pool) => $body,
        }
    };
}
pub(crate) use with_pool;

/// The most a SQLite database's WAL file keeps between bursts of writes, in bytes.
pub(crate) const SQLITE_WAL_LIMIT: u64 = 64 * 1024 * 1024;

/// What differs between the backends beyond the migrations.
pub(crate) trait Dialect: sqlx::Database {
    /// Starts a transaction that will write. SQLite takes the write lock up front, so two writers
    /// queue on `busy_timeout` instead of one failing when it upgrades a read lock.
    const BEGIN_WRITE: &'static str;
    /// Run after a bulk load so the planner and (PostgreSQL) index-only scans see the new rows.
    const AFTER_BULK_LOAD: &'static [&'static str];
}

impl Dialect for sqlx::Postgres {
    const BEGIN_WRITE: &'static str = "BEGIN";
    const AFTER_BULK_LOAD: &'static [&'static str] = &[
        "VACUUM (ANALYZE) scheduled_jobs",
        "VACUUM (ANALYZE) job_execution_logs",
    ];
}

impl Dialect for sqlx::Sqlite {
    const BEGIN_WRITE: &'static str = "BEGIN IMMEDIATE";
    /// No statistics: a standalone database is never `ANALYZE`d, and its queries are written for
    /// the planner without them (`INDEXED BY`, `CROSS JOIN` where it matters), so an imported one
    /// is planned the same way. Measured at 1,000,000 runs: with `sqlite_stat1` the planner takes a
    /// status for a weak filter and reads the newest runs until it finds 50 failures (0.35 → 7.3
    /// ms); with STAT4 samples it also recompiles a statement whenever a newly bound value could
    /// change its plan (14.5 % of the jobs page's CPU). Statistics an older version left are
    /// dropped; that changes the schema, so every pooled connection forgets them.
    const AFTER_BULK_LOAD: &'static [&'static str] = &[
        "DROP TABLE IF EXISTS sqlite_stat1",
        "DROP TABLE IF EXISTS sqlite_stat4",
    ];
}

/// Refreshes statistics after a bulk load ([`Dialect::AFTER_BULK_LOAD`]).
pub(crate) async fn after_bulk_load<DB: Dialect>(pool: &sqlx::Pool<DB>) -> Result<()>
where
    for<'c> &'c sqlx::Pool<DB>: sqlx::Executor<'c, Database = DB>,
{
    for statement in DB::AFTER_BULK_LOAD {
        sqlx::raw_sql(*statement).execute(pool).await?;
    }
    Ok(())
}

/// Whether a connection handed back may go to the pool again: not while the driver still counts
/// a transaction on it. When a write fails on a full disk or an I/O error, SQLite rolls the
/// transaction back by itself; the driver's own ROLLBACK then fails and leaves its count at 1, and
/// every later `BEGIN` on that connection would fail ("attempted to call begin_with at non-zero
/// transaction depth") until a restart. Such a connection is closed and a fresh one opened.
async fn release_if_clean<DB: sqlx::Database>(conn: &mut DB::Connection) -> Result<bool, sqlx::Error> {
    use sqlx::Connection as _;
    // A dropped transaction's ROLLBACK is queued on the connection: let it run first.
    conn.ping().await?;
    let stuck = conn.is_in_transaction();
    if stuck {
        tracing::warn!("closing a database connection left inside a failed transaction");
    }
    Ok(!stuck)
}

pub(crate) async fn begin_write<DB: Dialect>(
    pool: &sqlx::Pool<DB>,
) -> Result<sqlx::Transaction<'static, DB>> {
    Ok(pool.begin_with(DB::BEGIN_WRITE).await?)
}

impl Store {
    /// Connects with default options and applies pending migrations.
    pub async fn connect(url: &str) -> Result<Self> {
        Self::connect_with(url, StoreOptions::default()).await
    }

    /// Connects to `postgres://…`/`postgresql://…` or `sqlite://…`/`sqlite:…` (a SQLite file and its
    /// folder are created if missing; WAL mode). Errors never show the URL's password.
    pub async fn connect_with(url: &str, options: StoreOptions) -> Result<Self> {
        let shown = RedactedUrl::new(url);
        let kind = BackendKind::from_url(url).ok_or_else(|| {
            Error::invalid(format!(
                "unsupported database URL {shown}: use postgres://USER:PASSWORD@HOST:PORT/DB or sqlite://PATH"
            ))
        })?;
        let scrubbed = |e: sqlx::Error| -> Error {
            let message = url::scrub(&e.to_string(), url);
            match Error::from(e) {
                Error::Unavailable { .. } => Error::Unavailable {
                    message: format!("{shown}: {message}"),
                    source: None,
                },
                _ => Error::invalid(format!("{shown}: {message}")),
            }
        };
        let backend = match kind {
            BackendKind::Postgres => {
                let connect = PgConnectOptions::from_str(url).map_err(scrubbed)?;
                let pool = PgPoolOptions::new()
                    .after_release(|conn, _| Box::pin(release_if_clean::<sqlx::Postgres>(conn)))
                    .max_connections(options.max_connections)
                    .acquire_timeout(options.acquire_timeout)
                    .connect_with(connect)
                    .await
                    .map_err(scrubbed)?;
                Backend::Postgres(pool)
            }
            BackendKind::Sqlite => {
                let connect = SqliteConnectOptions::from_str(url)
                    .map_err(scrubbed)?
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
                    .busy_timeout(options.busy_timeout)
                    .foreign_keys(true)
                    // SQLite never shrinks its WAL by itself: one long read during a burst of
                    // writes (100,000 jobs created one by one) left a 7 GB file behind. Once the
                    // WAL is written from its start again, it is cut back to this size.
                    .pragma("journal_size_limit", SQLITE_WAL_LIMIT.to_string());
                let path = connect.get_filename();
                let in_memory = path.as_os_str().is_empty() || path.to_string_lossy().contains(":memory:");
                if let Some(dir) = path.parent().filter(|d| !in_memory && !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(|e| {
                        Error::invalid(format!(
                            "cannot create the folder {} for {shown}: {e}",
                            dir.display()
                        ))
                    })?;
                }
                let pool_options = SqlitePoolOptions::new()
                    .after_release(|conn, _| Box::pin(release_if_clean::<sqlx::Sqlite>(conn)))
                    .max_connections(if in_memory { 1 } else { options.max_connections })
                    .acquire_timeout(options.acquire_timeout);
                // Switching a new file to WAL needs it to itself for a moment: another process
                // opening it at the same time answers "database is locked"; look again.
                let mut attempt = 1;
                let pool = loop {
                    match pool_options.clone().connect_with(connect.clone()).await {
                        Ok(pool) => break pool,
                        Err(sqlx::Error::Database(e))
                            if e.code().as_deref() == Some(SQLITE_BUSY) && attempt < SQLITE_ATTEMPTS =>
                        {
                            tokio::time::sleep(std::time::Duration::from_millis(50 * u64::from(attempt)))
                                .await;
                            attempt += 1;
                        }
                        Err(e) => return Err(scrubbed(e)),
                    }
                };
                Backend::Sqlite(pool)
            }
        };
        let store = Self {
            backend,
            url: Arc::new(shown),
            output_cap: options.output_cap,
            indexer: None,
        };
        if options.migrate {
            store.migrate().await?;
        }
        let mut store = store;
        if store.backend_kind() == BackendKind::Sqlite {
            store.indexer = Some(store.spawn_indexer());
        }
        tracing::debug!(url = %store.url, "store connected");
        Ok(store)
    }

    /// Applies pending migrations (idempotent). Concurrent callers on PostgreSQL take turns on
    /// an advisory lock; SQLite has no such lock, so two processes opening one new file at once
    /// can both try the same migration: the loser's transaction rolls back and it looks again.
    pub async fn migrate(&self) -> Result<()> {
        match &self.backend {
            Backend::Postgres(pool) => POSTGRES_MIGRATIONS.run(pool).await?,
            Backend::Sqlite(pool) => {
                let mut attempt = 1;
                loop {
                    match SQLITE_MIGRATIONS.run(pool).await {
                        Ok(()) => break,
                        Err(e) if attempt < SQLITE_ATTEMPTS => {
                            tracing::debug!(error = %e, attempt, "SQLite migration raced another process; looking again");
                            tokio::time::sleep(std::time::Duration::from_millis(50 * u64::from(attempt)))
                                .await;
                            attempt += 1;
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
            }
        }
        Ok(())
    }

    /// Which backend this store talks to.
    pub fn backend_kind(&self) -> BackendKind {
        match self.backend {
            Backend::Postgres(_) => BackendKind::Postgres,
            Backend::Sqlite(_) => BackendKind::Sqlite,
        }
    }

    /// The database URL without its password, for logs.
    pub fn url(&self) -> &RedactedUrl {
        &self.url
    }

    /// The output cap this store applies ([`StoreOptions::output_cap`]).
    pub fn output_cap(&self) -> usize {
        self.output_cap
    }

    /// One round trip to the database (readiness checks).
    pub async fn ping(&self) -> Result<()> {
        with_pool!(self, pool => sqlx::query("SELECT 1").execute(pool).await.map(|_| ()))?;
        Ok(())
    }

    /// SQLite: starts the task that moves the outputs of finished runs into the search index in
    /// batches (migration 0012), a moment after a finish (so that runs finishing together share a
    /// batch) and every few seconds (for runs another process recorded, or one before a
    /// restart). It ends when the pool is closed; a pass that fails is tried again later, and
    /// the runs it left are found by search all the same.
    fn spawn_indexer(&self) -> Arc<tokio::sync::Notify> {
        let wake = Arc::new(tokio::sync::Notify::new());
        let (store, woken) = (self.clone(), wake.clone());
        tokio::spawn(async move {
            loop {
                let _ = tokio::time::timeout(INDEX_POLL, woken.notified()).await;
                tokio::time::sleep(INDEX_GATHER).await;
                let closed = with_pool!(store, pool => pool.is_closed());
                if closed {
                    break;
                }
                loop {
                    match store.index_pending_outputs().await {
                        Ok(n) if n >= search::INDEX_BATCH as u64 => tokio::task::yield_now().await,
                        Ok(_) => break,
                        Err(e) => {
                            if !with_pool!(store, pool => pool.is_closed()) {
                                tracing::warn!(error = %e, "indexing finished runs' outputs for search failed; trying again later");
                            }
                            break;
                        }
                    }
                }
            }
        });
        wake
    }

    /// Tells the search indexer that a run finished (SQLite; nothing on PostgreSQL).
    pub(crate) fn wake_indexer(&self) {
        if let Some(wake) = &self.indexer {
            wake.notify_one();
        }
    }

    /// Closes the pool; later operations fail with `Unavailable`.
    pub async fn close(&self) {
        with_pool!(self, pool => pool.close().await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// After an import a SQLite database has no planner statistics, as a standalone one never
    /// has, even when an `ANALYZE` (an older version's import) left some.
    #[tokio::test]
    async fn sqlite_keeps_no_statistics_after_an_import() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::connect(&format!("sqlite://{}/jtp.db", dir.path().display()))
            .await
            .expect("store");
        let Backend::Sqlite(pool) = &store.backend else {
            unreachable!("a sqlite:// URL")
        };
        let spec = jtp_crds::ScheduledJobSpec::daily("09:00");
        let job = store
            .create_job(&JobInput {
                name: "imported",
                namespace: "default",
                uid: None,
                spec: &spec,
                next_run: None,
            })
            .await
            .expect("job");
        let at = chrono::Utc::now() - chrono::Duration::days(1);
        let runs: Vec<ImportedRun> = (0..100)
            .map(|k| ImportedRun {
                job_id: job.id,
                run_time: at + chrono::Duration::minutes(k),
                scheduled_for: at + chrono::Duration::minutes(k),
                finished_at: Some(at + chrono::Duration::minutes(k) + chrono::Duration::seconds(1)),
                status: jtp_crds::RunStatus::Success,
                exit_code: Some(0),
                trigger: jtp_crds::Trigger::Schedule,
                output: format!("run {k}\n"),
                k8s_job_name: None,
                runner: None,
            })
            .collect();
        let statistics = || async {
            sqlx::query_scalar::<_, String>(
                "SELECT name FROM sqlite_schema WHERE name LIKE 'sqlite_stat%' ORDER BY name",
            )
            .fetch_all(pool)
            .await
            .expect("tables")
        };
        sqlx::raw_sql("ANALYZE").execute(pool).await.expect("analyze");
        assert!(!statistics().await.is_empty(), "ANALYZE wrote statistics");
        assert_eq!(store.import_runs(&runs).await.expect("import"), 100);
        assert_eq!(statistics().await, Vec::<String>::new());
    }

    /// A WAL grown past the limit while a read held it (so it could not start again from its
    /// beginning) is cut back to the limit once the read ends and the writes go on.
    #[tokio::test]
    async fn sqlite_cuts_its_wal_back_after_a_long_read() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::connect(&format!("sqlite://{}/jtp.db", dir.path().display()))
            .await
            .expect("store");
        let Backend::Sqlite(pool) = &store.backend else {
            unreachable!("a sqlite:// URL")
        };
        let wal = dir.path().join("jtp.db-wal");
        let wal_size = || std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
        sqlx::raw_sql("CREATE TABLE filler (b BLOB)")
            .execute(pool)
            .await
            .expect("table");
        let mut reader = pool.acquire().await.expect("reader");
        sqlx::raw_sql("BEGIN; SELECT count(*) FROM scheduled_jobs;")
            .execute(&mut *reader)
            .await
            .expect("read");
        let megabytes = SQLITE_WAL_LIMIT / (1024 * 1024) + 16;
        for _ in 0..megabytes {
            sqlx::query("INSERT INTO filler VALUES (randomblob(1048576))")
                .execute(pool)
                .await
                .expect("write");
        }
        assert!(
            wal_size() > SQLITE_WAL_LIMIT,
            "the WAL grew while read: {}",
            wal_size()
        );
        sqlx::raw_sql("COMMIT")
            .execute(&mut *reader)
            .await
            .expect("end the read");
        drop(reader);
        // The first write after the read checkpoints the WAL, the next starts it again.
        for _ in 0..3 {
            sqlx::query("DELETE FROM filler WHERE rowid = (SELECT min(rowid) FROM filler)")
                .execute(pool)
                .await
                .expect("write");
        }
        assert!(wal_size() <= SQLITE_WAL_LIMIT, "cut back: {}", wal_size());
    }
}
