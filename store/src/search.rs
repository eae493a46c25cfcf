//! Search across outputs: which runs' `log_output` contains a text, and where.
//!
//! The text is taken literally and case-insensitively on both backends — no query syntax, so
//! `"hi" OR x*`, `100%`, `a_b` and backslashes mean themselves — through each backend's trigram
//! index (migration 0010): an FTS5 `trigram` table on SQLite (a quoted phrase, which the trigram
//! tokenizer matches as a substring), `ILIKE` with the pattern characters escaped on PostgreSQL
//! (served by the `gin_trgm_ops` index). A trigram index cannot look for fewer than three
//! characters, so a shorter text is refused rather than scanned.

use crate::model::RunSnippet;
use crate::{BackendKind, Error, Result, Store};
use std::collections::HashMap;

/// The fewest characters a search takes (one trigram).
pub const MIN_SEARCH_CHARS: usize = 3;
/// The most characters a search takes.
pub const MAX_SEARCH_CHARS: usize = 200;
/// Characters shown before and after a match in a snippet.
const CONTEXT_CHARS: i64 = 80;

/// The bound value of the search condition for `text`, or why the text cannot be searched.
pub(crate) fn pattern(kind: BackendKind, text: &str) -> Result<String> {
    let chars = text.chars().count();
    if chars < MIN_SEARCH_CHARS {
        return Err(Error::invalid(format!(
            "search for at least {MIN_SEARCH_CHARS} characters (an index of three-character pieces finds nothing shorter)"
        )));
    }
    if chars > MAX_SEARCH_CHARS {
        return Err(Error::invalid(format!(
            "search for at most {MAX_SEARCH_CHARS} characters"
        )));
    }
    if text.contains('\0') {
        return Err(Error::invalid("the search text contains a NUL character"));
    }
    Ok(match kind {
        // One FTS5 string: inside double quotes everything is text, a quote is doubled.
        BackendKind::Sqlite => format!("\"{}\"", text.replace('"', "\"\"")),
        BackendKind::Postgres => {
            let mut escaped = String::with_capacity(text.len() + 2);
            escaped.push('%');
            for c in text.chars() {
                if matches!(c, '\\' | '%' | '_') {
                    escaped.push('\\');
                }
                escaped.push(c);
            }
            escaped.push('%');
            escaped
        }
    })
}

/// The condition on `l` (a `job_execution_logs` row) around the bound [`pattern`]: what goes
/// before the bind and what after it.
pub(crate) fn clause(kind: BackendKind) -> (&'static str, &'static str) {
    match kind {
        BackendKind::Sqlite => (
            " AND l.id IN (SELECT rowid FROM run_output_search WHERE run_output_search MATCH ",
            ")",
        ),
        BackendKind::Postgres => (" AND l.log_output ILIKE ", " ESCAPE '\\'"),
    }
}

const SNIPPETS_SQLITE: &str = "SELECT id, \
     instr(lower(log_output), lower(?1)) AS at, \
     substr(log_output, max(1, instr(lower(log_output), lower(?1)) - ?2), length(?1) + 2 * ?2) AS text \
     FROM job_execution_logs WHERE id IN (SELECT value FROM json_each(?3))";

const SNIPPETS_POSTGRES: &str = "SELECT id, \
     strpos(lower(log_output), lower($1))::BIGINT AS at, \
     substr(log_output, greatest(1, strpos(lower(log_output), lower($1)) - $2::INT), length($1) + 2 * $2::INT) AS text \
     FROM job_execution_logs WHERE id = ANY($3)";

impl Store {
    /// Where `text` first appears in the output of each of these runs (those of a page found by
    /// [`crate::RunFilter::text`]): a piece of the output around it, whether the output goes on
    /// before that piece, and the match's character offset in the piece.
    pub async fn search_snippets(&self, run_ids: &[i64], text: &str) -> Result<HashMap<i64, RunSnippet>> {
        if run_ids.is_empty() || text.is_empty() {
            return Ok(HashMap::new());
        }
        let rows: Vec<(i64, i64, Option<String>)> = match &self.backend {
            crate::Backend::Sqlite(pool) => {
                let ids = serde_json::to_string(run_ids).map_err(|e| Error::invalid(e.to_string()))?;
                sqlx::query_as(SNIPPETS_SQLITE)
                    .bind(text)
                    .bind(CONTEXT_CHARS)
                    .bind(ids)
                    .fetch_all(pool)
                    .await?
            }
            crate::Backend::Postgres(pool) => {
                sqlx::query_as(SNIPPETS_POSTGRES)
                    .bind(text)
                    .bind(CONTEXT_CHARS)
                    .bind(run_ids)
                    .fetch_all(pool)
                    .await?
            }
        };
        Ok(rows
            .into_iter()
            .map(|(id, at, piece)| {
                // 0: the index matched where `lower` did not see it (a case that folds
                // differently outside ASCII); the piece is then the output's beginning.
                let cut_before = at - 1 > CONTEXT_CHARS;
                let match_at = (at > 0).then(|| usize::try_from((at - 1).min(CONTEXT_CHARS)).unwrap_or(0));
                (
                    id,
                    RunSnippet {
                        text: piece.unwrap_or_default(),
                        cut_before,
                        match_at,
                    },
                )
            })
            .collect())
    }
}
