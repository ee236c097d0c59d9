//! The certificate inventory searched and paged (the console's Certificates page), and a
//! manual revocation queued through the outbox like the lifecycle's (docs/decisions.md #11).

use super::challenges::{CERT_COLUMNS, CertRow};
use super::{Store, on_db};
use crate::error::StoreError;
use crate::model::{CertStatus, IssuedCert};

/// What to search for; every field given must match.
#[derive(Debug, Clone, Default)]
pub struct CertSearch {
    /// A serial in the inventory's spelling (lowercase hex).
    pub serial: Option<String>,
    pub device_id: Option<String>,
    pub status: Option<CertStatus>,
    /// A case-insensitive substring of the subject (ASCII letters folded on SQLite, all
    /// letters on PostgreSQL).
    pub subject: Option<String>,
    /// With a subject: how many certificates (newest first, matching the other filters) one
    /// page reads at most.
    pub scan: i64,
    /// The page after this serial (the last one of the previous page).
    pub before: Option<String>,
    pub limit: i64,
}

/// The certificates of a status, newest first: the search the status index serves.
pub(super) fn certs_by_status_sql() -> String {
    format!(
        "SELECT {CERT_COLUMNS} FROM certificates WHERE status = $1 \
         ORDER BY issued_at DESC, serial DESC LIMIT $2"
    )
}

/// Marks one certificate for revocation: a good one, a held one, one whose release or hold is
/// still queued. Its device comes back for the outbox entry.
const MARK_REVOKING: &str = "UPDATE certificates SET status = 'revoking', revocation_reason = $2 \
     WHERE serial = $1 AND (status IN ('issued', 'held', 'releasing') OR \
     (status = 'revoking' AND revocation_reason = 'certificateHold')) RETURNING device_id";

/// Outcome of a manual revocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ManualRevocation {
    /// Queued in the outbox with its audit row.
    Queued,
    NotFound,
    /// Already revoked or being revoked (or its revocation failed for good).
    Already(CertStatus),
}

enum Bind {
    Text(String),
    Int(i64),
}

impl Store {
    /// One page of the inventory, newest first (by issue time, then serial). With a subject
    /// filter only the next `scan` certificates matching the other filters are read (no index
    /// serves a substring), and the last of them comes back so the search can go on from it.
    pub async fn search_certs(
        &self,
        q: &CertSearch,
    ) -> Result<(Vec<IssuedCert>, Option<String>), StoreError> {
        let mut cond = Vec::new();
        let mut binds = Vec::new();
        let mut add = |column: &str, b: Bind, cond: &mut Vec<String>| {
            binds.push(b);
            let n = binds.len();
            cond.push(format!("{column} = ${n}"));
        };
        if let Some(s) = &q.serial {
            add("serial", Bind::Text(s.clone()), &mut cond);
        }
        if let Some(d) = &q.device_id {
            add("device_id", Bind::Text(d.clone()), &mut cond);
        }
        if let Some(st) = q.status {
            add("status", Bind::Text(st.as_str().into()), &mut cond);
        }
        if let Some(b) = &q.before {
            binds.push(Bind::Text(b.clone()));
            let n = binds.len();
            cond.push(format!(
                "(issued_at < (SELECT issued_at FROM certificates WHERE serial = ${n}) OR \
                 (issued_at = (SELECT issued_at FROM certificates WHERE serial = ${n}) \
                 AND serial < ${n}))"
            ));
        }
        let filter = if cond.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", cond.join(" AND "))
        };
        const ORDER: &str = "ORDER BY issued_at DESC, serial DESC";
        let (sql, window_sql) = match &q.subject {
            None => {
                binds.push(Bind::Int(q.limit));
                let limit = binds.len();
                let sql = format!(
                    "SELECT {CERT_COLUMNS} FROM certificates {filter} {ORDER} LIMIT ${limit}"
                );
                (sql, None)
            }
            Some(sub) => {
                let scan = q.scan.max(1);
                let window = format!(
                    "SELECT {CERT_COLUMNS} FROM certificates {filter} {ORDER} LIMIT {scan}"
                );
                // The last certificate of the window, if it is full: where the next page starts.
                let window_end = format!(
                    "SELECT serial FROM certificates {filter} {ORDER} LIMIT 1 OFFSET {}",
                    scan - 1
                );
                binds.push(Bind::Text(format!("%{}%", like_escape(sub))));
                let n = binds.len();
                binds.push(Bind::Int(q.limit));
                let limit = binds.len();
                let op = if self.is_postgres() { "ILIKE" } else { "LIKE" };
                let sql = format!(
                    "SELECT {CERT_COLUMNS} FROM ({window}) AS w \
                     WHERE subject {op} ${n} ESCAPE '\\' {ORDER} LIMIT ${limit}"
                );
                (sql, Some(window_end))
            }
        };
        let window_binds = binds.len().saturating_sub(2);
        let (rows, window_end) = on_db!(&self.db, |pool, _b| {
            let mut query = sqlx::query_as::<_, CertRow>(sqlx::AssertSqlSafe(sql));
            for b in &binds {
                query = match b {
                    Bind::Text(s) => query.bind(s.clone()),
                    Bind::Int(i) => query.bind(*i),
                };
            }
            let rows = query.fetch_all(pool).await?;
            let end: Option<String> = match window_sql {
                None => None,
                Some(w) => {
                    let mut query = sqlx::query_scalar(sqlx::AssertSqlSafe(w));
                    for b in &binds[..window_binds] {
                        query = match b {
                            Bind::Text(s) => query.bind(s.clone()),
                            Bind::Int(i) => query.bind(*i),
                        };
                    }
                    query.fetch_optional(pool).await?
                }
            };
            (rows, end)
        });
        Ok((rows.into_iter().map(Into::into).collect(), window_end))
    }

    /// Fills in the subject of certificates recorded before Notify recorded it (migration
    /// 0007), from their own DER, 500 at a time through the partial index of the rows still
    /// missing one; returns how many were filled. Idempotent, and safe beside other instances.
    pub async fn backfill_subjects(&self) -> Result<u64, StoreError> {
        let mut after = String::new();
        let mut filled = 0;
        loop {
            let rows: Vec<(String, Vec<u8>)> = on_db!(&self.db, |pool, _b| {
                sqlx::query_as(
                    "SELECT serial, der FROM certificates WHERE subject IS NULL AND serial > $1 \
                     ORDER BY serial LIMIT 500",
                )
                .bind(&after)
                .fetch_all(pool)
                .await?
            });
            let Some((last, _)) = rows.last() else {
                return Ok(filled);
            };
            after = last.clone();
            for (serial, der) in &rows {
                let Some(subject) = crate::cert_subject::of_der(der) else {
                    continue;
                };
                filled += on_db!(&self.db, |pool, _b| {
                    sqlx::query(
                        "UPDATE certificates SET subject = $2 WHERE serial = $1 AND subject IS NULL",
                    )
                    .bind(serial)
                    .bind(&subject)
                    .execute(pool)
                    .await?
                    .rows_affected()
                });
            }
        }
    }

    /// Queues the revocation of one certificate with `reason`, in one transaction with its
    /// `revocation_queued` audit row (by `actor`, action `revoke`), as the lifecycle does.
    pub async fn revoke_certificate(
        &self,
        serial: &str,
        reason: &str,
        actor: &str,
    ) -> Result<ManualRevocation, StoreError> {
        let now = self.now().await?;
        Ok(on_db!(write & self.db, |pool, begin| {
            let mut tx = pool.begin_with(begin).await?;
            let device: Option<Option<String>> = sqlx::query_scalar(MARK_REVOKING)
                .bind(serial)
                .bind(reason)
                .fetch_optional(&mut *tx)
                .await?;
            match device {
                Some(device) => {
                    enqueue!(tx, serial, reason, device.as_deref(), "revoke", actor, now);
                    tx.commit().await?;
                    ManualRevocation::Queued
                }
                None => {
                    let status: Option<String> =
                        sqlx::query_scalar("SELECT status FROM certificates WHERE serial = $1")
                            .bind(serial)
                            .fetch_optional(&mut *tx)
                            .await?;
                    tx.rollback().await?;
                    match status.as_deref().and_then(CertStatus::parse) {
                        Some(s) => ManualRevocation::Already(s),
                        None => ManualRevocation::NotFound,
                    }
                }
            }
        }))
    }
}

/// `s` with LIKE's wildcards and the escape character escaped (`ESCAPE '\'`).
pub(super) fn like_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}
