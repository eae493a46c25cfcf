//! The crate's one error type: what went wrong, in words a caller can act on, with a short static
//! label per kind for metrics and Events.

use sqlx::error::ErrorKind;

/// Result with the store's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything the store can fail with. Messages never contain a password.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The row asked for does not exist (or is deleted where that matters).
    #[error("{what} not found")]
    NotFound { what: String },
    /// A create would duplicate a unique name.
    #[error("{what} already exists")]
    AlreadyExists { what: String },
    /// Another unique or concurrent write got there first.
    #[error("conflicting write: {message}")]
    Conflict {
        message: String,
        #[source]
        source: Option<sqlx::Error>,
    },
    /// The database cannot be reached or is shutting down; retry later.
    #[error("database unavailable: {message}")]
    Unavailable {
        message: String,
        #[source]
        source: Option<sqlx::Error>,
    },
    /// The input (or the database URL) is not acceptable.
    #[error("invalid input: {message}")]
    Invalid { message: String },
    /// A stored value cannot be read back (e.g. a spec that is no longer valid JSON).
    #[error("stored data cannot be read: {message}")]
    Corrupt { message: String },
    /// The schema migrations failed.
    #[error("database migration failed: {source}")]
    Migrate {
        #[source]
        source: sqlx::migrate::MigrateError,
    },
    /// Any other database error.
    #[error("database error: {source}")]
    Database {
        #[source]
        source: sqlx::Error,
    },
}

impl Error {
    /// A short, static name for the kind of error (metrics, Events, logs).
    pub fn label(&self) -> &'static str {
        match self {
            Self::NotFound { .. } => "not_found",
            Self::AlreadyExists { .. } => "already_exists",
            Self::Conflict { .. } => "conflict",
            Self::Unavailable { .. } => "unavailable",
            Self::Invalid { .. } => "invalid",
            Self::Corrupt { .. } => "corrupt",
            Self::Migrate { .. } => "migrate",
            Self::Database { .. } => "database",
        }
    }

    /// True when retrying later may succeed (the database was unreachable or busy).
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable { .. })
    }

    pub(crate) fn not_found(what: impl Into<String>) -> Self {
        Self::NotFound { what: what.into() }
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Self::Invalid {
            message: message.into(),
        }
    }

    /// Turns a unique violation into `AlreadyExists { what }`; any other error as usual.
    pub(crate) fn unique_as_exists(source: sqlx::Error, what: impl FnOnce() -> String) -> Self {
        match &source {
            sqlx::Error::Database(db) if db.kind() == ErrorKind::UniqueViolation => {
                Self::AlreadyExists { what: what() }
            }
            _ => source.into(),
        }
    }
}

impl From<sqlx::Error> for Error {
    fn from(source: sqlx::Error) -> Self {
        use sqlx::Error as E;
        match &source {
            E::RowNotFound => Self::not_found("row"),
            E::Io(_) | E::Tls(_) | E::Protocol(_) | E::PoolTimedOut | E::PoolClosed | E::WorkerCrashed => {
                Self::Unavailable {
                    message: source.to_string(),
                    source: Some(source),
                }
            }
            E::Configuration(_) | E::InvalidArgument(_) => Self::invalid(source.to_string()),
            E::Decode(_) | E::ColumnDecode { .. } => Self::Corrupt {
                message: source.to_string(),
            },
            E::Database(db) => {
                let message = db.message().to_owned();
                match db.kind() {
                    ErrorKind::UniqueViolation => Self::Conflict {
                        message,
                        source: Some(source),
                    },
                    ErrorKind::ForeignKeyViolation => Self::NotFound {
                        what: format!("referenced row ({message})"),
                    },
                    ErrorKind::CheckViolation | ErrorKind::NotNullViolation => Self::Invalid { message },
                    _ if db.code().is_some_and(|code| unavailable_code(&code)) => Self::Unavailable {
                        message,
                        source: Some(source),
                    },
                    _ => Self::Database { source },
                }
            }
            _ => Self::Database { source },
        }
    }
}

impl From<sqlx::migrate::MigrateError> for Error {
    fn from(source: sqlx::migrate::MigrateError) -> Self {
        match source {
            sqlx::migrate::MigrateError::Execute(inner) => match Error::from(inner) {
                unavailable @ Error::Unavailable { .. } => unavailable,
                other => Error::Invalid {
                    message: format!("migration: {other}"),
                },
            },
            source => Self::Migrate { source },
        }
    }
}

/// Codes that mean "not now" rather than "never": PostgreSQL connection exceptions (class 08),
/// shutdown/startup (57P01-57P03), too many connections (53300), disk full (53100); SQLite BUSY
/// (5), LOCKED (6), IOERR (10) and FULL (13), including their extended codes. A full disk or an I/O
/// error passes once space or the device is back, so a finished run is retried until recorded.
fn unavailable_code(code: &str) -> bool {
    if code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03" | "53300" | "53100") {
        return true;
    }
    code.parse::<i32>()
        .is_ok_and(|c| matches!(c & 0xff, 5 | 6 | 10 | 13))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_short_and_static() {
        assert_eq!(Error::not_found("job 3").label(), "not_found");
        assert_eq!(Error::not_found("job 3").to_string(), "job 3 not found");
        let down = Error::from(sqlx::Error::PoolTimedOut);
        assert_eq!(down.label(), "unavailable");
        assert!(down.is_transient());
    }

    #[test]
    fn unavailable_codes() {
        assert!(unavailable_code("08006"));
        assert!(unavailable_code("57P01"));
        assert!(unavailable_code("5"));
        assert!(unavailable_code("517"));
        assert!(unavailable_code("53100"), "PostgreSQL disk full");
        assert!(unavailable_code("13"), "SQLite FULL");
        assert!(unavailable_code("778"), "SQLite IOERR_WRITE");
        assert!(!unavailable_code("23505"));
        assert!(!unavailable_code("19"));
    }
}
