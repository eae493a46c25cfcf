//! The original system's troubleshooting queries (its README, section 5), translated to
//! PostgreSQL and SQLite. The README shows these very texts and the tests run them, so they stay
//! true. `:log_id` in [`Queries::log_output`] is a psql variable; bind it as `$1` from code.

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
    recent_failures: include_str!("../sql/postgres/recent_failures.sql"),
    queued: include_str!("../sql/postgres/queued.sql"),
    log_output: include_str!("../sql/postgres/log_output.sql"),
};

pub const SQLITE: Queries = Queries {
    recent_failures: include_str!("../sql/sqlite/recent_failures.sql"),
    queued: include_str!("../sql/sqlite/queued.sql"),
    log_output: include_str!("../sql/sqlite/log_output.sql"),
};

/// The queries for a backend.
pub fn queries(kind: crate::BackendKind) -> Queries {
    match kind {
        crate::BackendKind::Postgres => POSTGRES,
        crate::BackendKind::Sqlite => SQLITE,
    }
}
