//! Search across outputs: which runs' `log_output` contains a text, and where.
//!
//! The text is taken literally and case-insensitively on both backends — no query syntax, so
//! `"hi" OR x*`, `100%`, `a_b` and backslashes mean themselves — through each backend's trigram
//! index (migration 0010): `ILIKE` with the pattern characters escaped on PostgreSQL (served by
//! the `gin_trgm_ops` index); an FTS5 `trigram` table on SQLite (a quoted phrase, which the
//! trigram tokenizer matches as a substring). A trigram index cannot look for fewer than three
//! characters, so a shorter text is refused rather than scanned.
//!
//! SQLite has no planner statistics for FTS5, so the store plans a search itself
//! ([`Store::search_condition`]): it first asks the index for at most [`FEW_HITS`] hits (in
//! rowid order, which FTS5 answers without sorting). If that is all of them, the runs query reads
//! those runs by id and sorts them; if there are more, the text is in at least one output in
//! two hundred at a million runs, and the runs query reads runs newest first (through whichever
//! index the other filters use) and tests each output with `LIKE` until the page is full — the
//! cost of handing every hit's id to the runs query (hundreds of thousands for a text most
//! outputs contain) is what this avoids. That reading stops after [`SCAN_BUDGET`] runs: with a
//! filter few of the text's runs pass it would otherwise read every filtered run; the page then
//! says where it stopped, and the next page searches on from there. `LIKE` folds ASCII letters only, so a text with other
//! characters that many outputs contain is looked up in the index as before (slower, correct).
//! Runs whose output is not indexed yet (migration 0012: noted in `run_output_pending` and
//! indexed in batches in the background, [`Store::index_pending_outputs`]) are tested with
//! `LIKE` in every plan, so a run is found as soon as it finished.
//!
//! PostgreSQL plans a search the same way, but learns whether a text is common from its planner's
//! estimate (`EXPLAIN`, from the column's histogram of a thousand outputs, migration 0018): its
//! trigram index cannot stop after [`FEW_HITS`] hits, it builds the bitmap of every hit first
//! (0.35 s for a text in nine outputs in ten at a million runs). Beyond [`FEW_HITS`] expected,
//! the same budgeted reading, testing each run with `ILIKE`; otherwise the hits, at most
//! [`FEW_HITS`] + 1, through the index, and then as on SQLite (more: the budgeted reading; else
//! the runs query reads them by id). Left to itself, the planner read every run for a common
//! text with a filter few of its runs pass (4 s for "SUCCESS" among FAILURE runs at a million
//! runs), and read runs newest first for a rare one when it expected a page among the newest
//! runs (0.25 s for a text in one output in a thousand).

use crate::model::RunSnippet;
use crate::{Error, Result, Store};
use std::collections::HashMap;

/// The fewest characters a search takes (one trigram).
pub const MIN_SEARCH_CHARS: usize = 3;
/// The most characters a search takes.
pub const MAX_SEARCH_CHARS: usize = 200;
/// Characters shown before and after a match in a snippet.
const CONTEXT_CHARS: i64 = 80;
/// Up to this many hits (on PostgreSQL: expected), a search reads its hits through the index;
/// beyond, it reads runs newest first and tests their outputs (see the module's documentation).
/// Either plan then costs at most about ten thousand row reads at a million runs.
pub const FEW_HITS: i64 = 5_000;
/// The most runs one page of a search tests with `LIKE`/`ILIKE` (the plan for a text most
/// outputs contain). With a filter few of those runs pass, reading on would read every filtered
/// run (1.9 s for 80,000 at a million runs on SQLite); instead the page ends where the budget
/// did, with a cursor to search on from there ([`crate::RunPage::searched_to`]).
pub const SCAN_BUDGET: i64 = 2_000;
/// SQLite: how many noted runs one background pass moves into the index per transaction.
pub(crate) const INDEX_BATCH: i64 = 64;

/// Why `text` cannot be searched, if it cannot.
fn check(text: &str) -> Result<()> {
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
    Ok(())
}

/// `%text%` for `LIKE`/`ILIKE … ESCAPE '\'`: the pattern characters stand for themselves.
fn like_pattern(text: &str) -> String {
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

/// One FTS5 string: inside double quotes everything is text, a quote is doubled.
fn fts_phrase(text: &str) -> String {
    format!("\"{}\"", text.replace('"', "\"\""))
}

/// How the runs query tests a search (see [`Store::search_condition`]).
#[derive(Debug)]
pub(crate) enum Condition {
    /// PostgreSQL, many hits expected: `ILIKE` on each run read, at most [`SCAN_BUDGET`].
    EachIlike(String),
    /// SQLite, all hits known: their ids, a JSON array.
    Ids(String),
    /// PostgreSQL, all hits known (through the index, or a budgeted reading's): their ids, an
    /// array literal (`{1,2}`).
    IdArray(String),
    /// SQLite, many hits, an ASCII text: `LIKE` on each run read.
    Like(String),
    /// SQLite, many hits, a text with other characters: the index, or `LIKE` for runs not in it.
    Match { phrase: String, like: String },
}

impl Condition {
    /// Whether the runs query tests each run it reads, so a page's cost is the runs it reads
    /// rather than its hits (a page of such a search is bounded by [`SCAN_BUDGET`]).
    pub(crate) fn reads_each_output(&self) -> bool {
        self.each_test().is_some()
    }

    /// The operator and pattern a budgeted reading tests each run's output with.
    pub(crate) fn each_test(&self) -> Option<(&'static str, &str)> {
        match self {
            Condition::Like(p) => Some((" LIKE ", p)),
            Condition::EachIlike(p) => Some((" ILIKE ", p)),
            _ => None,
        }
    }

    /// Hits found (through the index, or by a budgeted reading), as this backend's runs query
    /// takes them.
    pub(crate) fn hits(kind: crate::BackendKind, ids: &[i64]) -> Result<Condition> {
        Ok(match kind {
            crate::BackendKind::Sqlite => {
                Condition::Ids(serde_json::to_string(ids).map_err(|e| Error::invalid(e.to_string()))?)
            }
            crate::BackendKind::Postgres => {
                let list: Vec<String> = ids.iter().map(i64::to_string).collect();
                Condition::IdArray(format!("{{{}}}", list.join(",")))
            }
        })
    }

    /// The SQL to append to the runs query's `WHERE`, as text pieces each followed by the value
    /// to bind after it, if any.
    pub(crate) fn parts(&self) -> Vec<(&'static str, Option<String>)> {
        match self {
            Condition::Ids(ids) => vec![
                (" AND l.id IN (SELECT value FROM json_each(", Some(ids.clone())),
                ("))", None),
            ],
            Condition::IdArray(ids) => vec![
                (" AND l.id = ANY(CAST(", Some(ids.clone())),
                (" AS BIGINT[]))", None),
            ],
            Condition::Like(p) => vec![
                (" AND l.log_output LIKE ", Some(p.clone())),
                (" ESCAPE '\\'", None),
            ],
            Condition::EachIlike(p) => vec![
                (" AND l.log_output ILIKE ", Some(p.clone())),
                (" ESCAPE '\\'", None),
            ],
            Condition::Match { phrase, like } => vec![
                (
                    " AND (l.id IN (SELECT rowid FROM run_output_search WHERE run_output_search MATCH ",
                    Some(phrase.clone()),
                ),
                (
                    ") OR (l.id IN (SELECT id FROM run_output_pending) AND l.log_output LIKE ",
                    Some(like.clone()),
                ),
                (" ESCAPE '\\'))", None),
            ],
        }
    }
}

const PROBE_INDEX: &str = "SELECT rowid FROM run_output_search WHERE run_output_search MATCH ?1 \
     ORDER BY rowid DESC LIMIT ?2";
// CROSS JOIN: SQLite then reads the (small) pending table first, whatever its statistics say
// (with it empty when ANALYZE ran, the planner would read every run instead).
const PROBE_PENDING: &str = "SELECT p.id FROM run_output_pending p CROSS JOIN job_execution_logs l ON l.id = p.id \
     WHERE l.log_output LIKE ?1 ESCAPE '\\'";
const PENDING_BATCH: &str = "SELECT id FROM run_output_pending ORDER BY id LIMIT ?1";
const INDEX_BATCH_SQL: &str = "INSERT INTO run_output_search (rowid, log_output) \
     SELECT id, log_output FROM job_execution_logs WHERE id IN (SELECT value FROM json_each(?1)) AND log_output <> ''";
const FORGET_BATCH: &str = "DELETE FROM run_output_pending WHERE id IN (SELECT value FROM json_each(?1))";

/// PostgreSQL: how many runs the planner expects a search to find (the plan's first line).
const ESTIMATE_POSTGRES: &str =
    "EXPLAIN SELECT 1 FROM job_execution_logs WHERE log_output ILIKE $1 ESCAPE '\\'";

/// PostgreSQL: a text's hits through the trigram index, at most `$2`.
const PROBE_POSTGRES: &str =
    "SELECT id FROM job_execution_logs WHERE log_output ILIKE $1 ESCAPE '\\' LIMIT $2";

/// The `rows=` of a plan's first line (0 if there is none).
fn estimated_rows(plan: &str) -> i64 {
    plan.split_once(" rows=")
        .map(|(_, rest)| rest.chars().take_while(char::is_ascii_digit).collect::<String>())
        .and_then(|digits| digits.parse().ok())
        .unwrap_or(0)
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
    /// How the runs query tests `text`, or why it cannot be searched. On SQLite this asks the
    /// index how many runs match, up to [`FEW_HITS`] (see the module's documentation).
    pub(crate) async fn search_condition(&self, text: &str) -> Result<Condition> {
        check(text)?;
        let like = like_pattern(text);
        let pool = match &self.backend {
            crate::Backend::Postgres(pool) => {
                // The planner's estimate from the column's statistics (a histogram of a thousand
                // outputs, migration 0018): reading all of a text's hits costs their number.
                let plan: String = sqlx::query_scalar(ESTIMATE_POSTGRES)
                    .bind(&like)
                    .persistent(false)
                    .fetch_one(pool)
                    .await?;
                if estimated_rows(&plan) > FEW_HITS {
                    return Ok(Condition::EachIlike(like));
                }
                // Few expected: read them all through the index (no ORDER BY, no LIMIT the
                // planner could hope to stop at early, so it takes the index), as SQLite does.
                let hits: Vec<i64> = sqlx::query_scalar(PROBE_POSTGRES)
                    .bind(&like)
                    .bind(FEW_HITS + 1)
                    .persistent(false)
                    .fetch_all(pool)
                    .await?;
                return if hits.len() > usize::try_from(FEW_HITS).unwrap_or(usize::MAX) {
                    Ok(Condition::EachIlike(like))
                } else {
                    Condition::hits(crate::BackendKind::Postgres, &hits)
                };
            }
            crate::Backend::Sqlite(pool) => pool,
        };
        let phrase = fts_phrase(text);
        // Both probes read one snapshot: between two separate reads the indexer could move a run
        // from the pending table into the index, and neither would find it.
        let mut snapshot = pool.begin().await?;
        let mut hits: Vec<i64> = sqlx::query_scalar(PROBE_INDEX)
            .bind(&phrase)
            .bind(FEW_HITS + 1)
            .fetch_all(&mut *snapshot)
            .await?;
        if hits.len() > usize::try_from(FEW_HITS).unwrap_or(usize::MAX) {
            return Ok(if text.is_ascii() {
                Condition::Like(like)
            } else {
                Condition::Match { phrase, like }
            });
        }
        let pending: Vec<i64> = sqlx::query_scalar(PROBE_PENDING)
            .bind(&like)
            .fetch_all(&mut *snapshot)
            .await?;
        snapshot.commit().await?;
        hits.extend(pending);
        let ids = serde_json::to_string(&hits).map_err(|e| Error::invalid(e.to_string()))?;
        Ok(Condition::Ids(ids))
    }

    /// SQLite: moves up to 64 runs (`INDEX_BATCH`) noted since they finished (migration 0012) into
    /// the search index, in one transaction; answers how many. The store does this by itself in
    /// the background after each finish and every few seconds; a search finds noted runs
    /// without it. PostgreSQL: nothing to do (0).
    pub async fn index_pending_outputs(&self) -> Result<u64> {
        let pool = match &self.backend {
            crate::Backend::Postgres(_) => return Ok(0),
            crate::Backend::Sqlite(pool) => pool,
        };
        // Look without the write lock first: most passes find nothing.
        let any: Option<i64> = sqlx::query_scalar(PENDING_BATCH)
            .bind(1_i64)
            .fetch_optional(pool)
            .await?;
        if any.is_none() {
            return Ok(0);
        }
        let mut tx = crate::begin_write(pool).await?;
        let ids: Vec<i64> = sqlx::query_scalar(PENDING_BATCH)
            .bind(INDEX_BATCH)
            .fetch_all(&mut *tx)
            .await?;
        let json = serde_json::to_string(&ids).map_err(|e| Error::invalid(e.to_string()))?;
        sqlx::query(INDEX_BATCH_SQL).bind(&json).execute(&mut *tx).await?;
        sqlx::query(FORGET_BATCH).bind(&json).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(ids.len() as u64)
    }

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
