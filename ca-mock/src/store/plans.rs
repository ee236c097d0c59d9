//! The query plans of the store's point lookups, as the database will run them: a CA with a
//! million certificates must find one by serial (OCSP, revocation) or by request id (SCEP
//! retransmission) through an index, never by reading every row (reliability catalogue L7).
//! Tests assert it on both backends; an operator can print it against a live database.

use sqlx::Row;

use foundation::sql::Db;

use super::StoreError;
use super::records::{Shape, records_sql};
use super::sql::{REVOKE_SQL, STATUS_SQL, SqlStore, get_sql, list_sql};

/// One lookup and how the database plans it.
#[derive(Debug, Clone)]
pub struct LookupPlan {
    /// What the lookup is for.
    pub name: &'static str,
    /// The plan text (SQLite `EXPLAIN QUERY PLAN` details, PostgreSQL `EXPLAIN` lines).
    pub plan: String,
    /// Whether every access to `certificates` and `audit_log` goes through an index.
    pub indexed: bool,
}

/// A lookup's parameters: so many text ones, then so many integers (times, ids, a LIMIT).
type Params = (usize, usize);

/// The index a lookup must name. PostgreSQL with sequential scans off may still walk a whole
/// table through its primary key with a filter, which is no `Seq Scan` but reads every row.
type Needs = Option<&'static str>;

/// The lookups with their parameters.
fn lookups() -> Vec<(&'static str, String, Params, Needs)> {
    vec![
        ("certificate by serial", get_sql("serial"), (1, 0), None),
        (
            "certificate by request id",
            get_sql("request_id"),
            (1, 0),
            None,
        ),
        (
            "status by serial (OCSP)",
            STATUS_SQL.to_owned(),
            (1, 0),
            None,
        ),
        ("list by request id", list_sql(true, false), (1, 1), None),
        (
            "list page after a serial",
            list_sql(false, true),
            (1, 1),
            None,
        ),
        ("revoke by serial", REVOKE_SQL.to_owned(), (3, 1), None),
        (
            "records by serial",
            records_sql(Shape {
                serial: true,
                ..Shape::default()
            }),
            (1, 1),
            Some("audit_log_serial"),
        ),
        (
            "records by request id",
            records_sql(Shape {
                request_id: true,
                ..Shape::default()
            }),
            (1, 1),
            Some("audit_log_request_id"),
        ),
        (
            "records in a time range",
            records_sql(Shape {
                since: true,
                until: true,
                ..Shape::default()
            }),
            (0, 3),
            Some("audit_log_at"),
        ),
        (
            "records page after an id",
            records_sql(Shape {
                after: true,
                ..Shape::default()
            }),
            (0, 2),
            None,
        ),
    ]
}

impl SqlStore {
    /// Plan every point lookup the store makes. On PostgreSQL sequential scans are disabled
    /// for the planning transaction, so a plan still naming one means there is no usable
    /// index (a small table would otherwise be scanned by choice).
    pub async fn lookup_plans(&self) -> Result<Vec<LookupPlan>, StoreError> {
        let mut out = Vec::new();
        for (name, sql, (texts, ints), needs) in lookups() {
            let plan = match self.db() {
                Db::Sqlite(p, _) => {
                    let explain = format!("EXPLAIN QUERY PLAN {sql}");
                    let mut q = sqlx::query(sqlx::AssertSqlSafe(explain));
                    for _ in 0..texts {
                        q = q.bind("x");
                    }
                    for _ in 0..ints {
                        q = q.bind(1_i64);
                    }
                    let rows = q.fetch_all(p).await?;
                    let mut lines = Vec::new();
                    for row in &rows {
                        lines.push(row.try_get::<String, _>("detail")?);
                    }
                    lines
                }
                Db::Postgres(p) => {
                    let mut tx = p.begin().await?;
                    sqlx::query("SET LOCAL enable_seqscan = off")
                        .execute(&mut *tx)
                        .await?;
                    let explain = format!("EXPLAIN {sql}");
                    let mut q = sqlx::query(sqlx::AssertSqlSafe(explain));
                    for _ in 0..texts {
                        q = q.bind("x");
                    }
                    for _ in 0..ints {
                        q = q.bind(1_i64);
                    }
                    let rows = q.fetch_all(&mut *tx).await?;
                    tx.rollback().await?;
                    let mut lines = Vec::new();
                    for row in &rows {
                        lines.push(row.try_get::<String, _>(0)?);
                    }
                    lines
                }
            };
            let indexed = match self.db() {
                // "SEARCH certificates USING ..." is an index lookup; "SCAN certificates" (with
                // or without "USING INDEX") reads every row.
                Db::Sqlite(..) => plan
                    .iter()
                    .filter(|l| l.contains("certificates") || l.contains("audit_log"))
                    .all(|l| l.starts_with("SEARCH")),
                Db::Postgres(_) => !plan.iter().any(|l| l.contains("Seq Scan")),
            } && needs.is_none_or(|index| plan.iter().any(|l| l.contains(index)));
            out.push(LookupPlan {
                name,
                plan: plan.join("\n"),
                indexed,
            });
        }
        Ok(out)
    }
}
