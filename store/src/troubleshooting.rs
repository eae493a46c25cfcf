//! The original system's troubleshooting queries (its README, section 5), translated to
//! PostgreSQL and SQLite. The README shows these very texts and the tests run them, so they stay
//! true. Only the queue query differs (`is_active` is BOOLEAN on PostgreSQL, 0/1 on SQLite).
//! [`Queries::log_output`] takes the run id as `$1`: bind it from code, or type the id in its place
//! in psql or sqlite3.

/// The three queries for one backend.
#[derive(Clone, Copy, Debug)]
pub struct Queries {
    /// The five most recent FAILURE runs: job name, run time, output.
    pub recent_failures: &'static str,
    /// Active jobs with a next run, soonest first.
    pub queued: &'static str,
    /// One run's whole output, by its id (`$1`).
    pub log_output: &'static str,
}

pub const POSTGRES: Queries = Queries {
    recent_failures: include_str!("../sql/recent_failures.sql"),
    queued: include_str!("../sql/postgres/queued.sql"),
    log_output: include_str!("../sql/log_output.sql"),
};

pub const SQLITE: Queries = Queries {
    recent_failures: include_str!("../sql/recent_failures.sql"),
    queued: include_str!("../sql/sqlite/queued.sql"),
    log_output: include_str!("../sql/log_output.sql"),
};

/// The queries for a backend.
pub fn queries(kind: crate::BackendKind) -> Queries {
    match kind {
        crate::BackendKind::Postgres => POSTGRES,
        crate::BackendKind::Sqlite => SQLITE,
    }
}
