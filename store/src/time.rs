//! How instants are written to SQL: TIMESTAMPTZ on PostgreSQL, and on SQLite TEXT in one sortable
//! UTC format so that text order is time order and SQLite's date functions read it. Both keep
//! microseconds (PostgreSQL's precision), so a value read back compares equal to what was written.

use chrono::{DateTime, Utc};
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgArgumentBuffer, PgTypeInfo};
use sqlx::sqlite::{SqliteArgumentsBuffer, SqliteTypeInfo};
use sqlx::{Encode, Postgres, Sqlite, Type};

/// The SQLite text form of every timestamp: `2026-11-30 06:00:00.000000Z`.
pub const SQLITE_TIME_FORMAT: &str = "%Y-%m-%d %H:%M:%S%.6fZ";

/// A UTC instant bound as a query parameter (decoding uses `DateTime<Utc>` directly).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Ts(pub DateTime<Utc>);

/// Shorthand for binding an optional instant.
pub(crate) fn ts(at: Option<DateTime<Utc>>) -> Option<Ts> {
    at.map(Ts)
}

impl Type<Sqlite> for Ts {
    fn type_info() -> SqliteTypeInfo {
        <String as Type<Sqlite>>::type_info()
    }
}

impl Encode<'_, Sqlite> for Ts {
    fn encode_by_ref(&self, buf: &mut SqliteArgumentsBuffer) -> Result<IsNull, BoxDynError> {
        Encode::<Sqlite>::encode(self.0.format(SQLITE_TIME_FORMAT).to_string(), buf)
    }
}

impl Type<Postgres> for Ts {
    fn type_info() -> PgTypeInfo {
        <DateTime<Utc> as Type<Postgres>>::type_info()
    }
}

impl Encode<'_, Postgres> for Ts {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        Encode::<Postgres>::encode_by_ref(&self.0, buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn sqlite_text_sorts_as_time() {
        let a = Utc
            .with_ymd_and_hms(2026, 11, 30, 6, 0, 0)
            .single()
            .expect("valid");
        let b = a + chrono::Duration::microseconds(1);
        let c = a + chrono::Duration::days(400);
        let text: Vec<String> = [a, b, c]
            .iter()
            .map(|t| t.format(SQLITE_TIME_FORMAT).to_string())
            .collect();
        assert_eq!(text[0], "2026-11-30 06:00:00.000000Z");
        assert!(text[0] < text[1] && text[1] < text[2]);
    }
}
