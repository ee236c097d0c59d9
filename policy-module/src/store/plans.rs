//! The query plans of the policy store's hot lookups, as the database will run them: with a
//! million devices and certificates, VerifyRequest (challenge by digest), Notify and SCEP
//! retransmissions (by transactionID), retire and check-in (by device) and the revocation
//! worker's poll (due outbox entries) must go through an index, never read every row
//! (reliability catalogue L7). The statements are the ones the store runs, not copies.

use sqlx::Row;

use super::certificates::certs_by_status_sql;
use super::challenges::{
    CHALLENGE_BY_HASH, KEY_HOLDERS, REQUEST_BY_TRANSACTION_ID, RESERVE_CHALLENGE,
    SERIAL_BY_TRANSACTION_ID, cert_by_thumbprint_sql, certs_by_device_sql,
};
use super::inventory::{
    DEVICE_BY_CREDENTIAL, RELEASE_DEVICE_CERTIFICATES, REVOKE_DEVICE_CERTIFICATES,
};
use super::outbox::{OUTBOX_DONE, PENDING_COMMANDS, audit_of_device_sql, claim_due_sql};
use super::{Db, Store};
use crate::error::StoreError;

/// One lookup and how the database plans it.
#[derive(Debug, Clone)]
pub struct LookupPlan {
    /// What the lookup is for.
    pub name: &'static str,
    /// The plan text (SQLite `EXPLAIN QUERY PLAN` details, PostgreSQL `EXPLAIN` lines).
    pub plan: String,
    /// Whether every table access goes through an index.
    pub indexed: bool,
}

/// A placeholder's type, so PostgreSQL accepts the bound dummy value.
#[derive(Clone, Copy)]
enum Param {
    Text,
    Bytes,
    Int,
}

fn lookups() -> Vec<(&'static str, String, Vec<Param>)> {
    use Param::{Bytes, Int, Text};
    vec![
        ("challenge by digest", CHALLENGE_BY_HASH.into(), vec![Bytes]),
        (
            "reserve a challenge by digest",
            RESERVE_CHALLENGE.into(),
            vec![Bytes, Text, Bytes, Int],
        ),
        (
            "request by transactionID",
            REQUEST_BY_TRANSACTION_ID.into(),
            vec![Text],
        ),
        (
            "certificate by transactionID",
            SERIAL_BY_TRANSACTION_ID.into(),
            vec![Text],
        ),
        (
            "certificates of a device",
            certs_by_device_sql(),
            vec![Text],
        ),
        (
            "revoke the certificates of a device",
            REVOKE_DEVICE_CERTIFICATES.into(),
            vec![Text, Text],
        ),
        (
            "release the held certificates of a device",
            RELEASE_DEVICE_CERTIFICATES.into(),
            vec![Text],
        ),
        (
            "certificates of a status, newest first",
            certs_by_status_sql(),
            vec![Text, Int],
        ),
        (
            "certificate by thumbprint",
            cert_by_thumbprint_sql(),
            vec![Text],
        ),
        (
            "device by credential",
            DEVICE_BY_CREDENTIAL.into(),
            vec![Bytes],
        ),
        (
            "holders of a key (SPKI digest)",
            KEY_HOLDERS.into(),
            vec![Bytes],
        ),
        (
            "pending commands of a device",
            PENDING_COMMANDS.into(),
            vec![Text],
        ),
        (
            "outbox: lease due entries",
            claim_due_sql(),
            vec![Int, Int, Int],
        ),
        ("outbox: mark delivered", OUTBOX_DONE.into(), vec![Int, Int]),
        (
            "audit records of a device, newest first",
            audit_of_device_sql(),
            vec![Text, Int],
        ),
    ]
}

macro_rules! bind_all {
    ($q:expr, $params:expr) => {{
        let mut q = $q;
        for p in $params {
            q = match p {
                Param::Text => q.bind("x"),
                Param::Bytes => q.bind(vec![0_u8; 32]),
                Param::Int => q.bind(1_i64),
            };
        }
        q
    }};
}

impl Store {
    /// Plans every hot lookup. On PostgreSQL sequential scans are disabled for the planning
    /// transaction, so a plan still naming one means no usable index (a small table would
    /// otherwise be scanned by choice). Nothing is executed: writes are only explained.
    pub async fn lookup_plans(&self) -> Result<Vec<LookupPlan>, StoreError> {
        let mut out = Vec::new();
        for (name, sql, params) in lookups() {
            let (plan, indexed) = match &self.db {
                Db::Sqlite(pool, _) => {
                    let explain = format!("EXPLAIN QUERY PLAN {sql}");
                    let q = bind_all!(sqlx::query(sqlx::AssertSqlSafe(explain)), &params);
                    let mut lines = Vec::new();
                    for row in &q.fetch_all(pool).await? {
                        lines.push(row.try_get::<String, _>("detail")?);
                    }
                    // "SEARCH t USING ..." is an index lookup; "SCAN t" reads every row
                    // ("SCAN CONSTANT ROW" and temp B-trees for ORDER BY read no table).
                    let indexed = lines
                        .iter()
                        .all(|l| !l.starts_with("SCAN") || l == "SCAN CONSTANT ROW");
                    (lines, indexed)
                }
                Db::Postgres(pool) => {
                    let mut tx = pool.begin().await?;
                    sqlx::query("SET LOCAL enable_seqscan = off")
                        .execute(&mut *tx)
                        .await?;
                    let explain = format!("EXPLAIN {sql}");
                    let q = bind_all!(sqlx::query(sqlx::AssertSqlSafe(explain)), &params);
                    let rows = q.fetch_all(&mut *tx).await?;
                    tx.rollback().await?;
                    let mut lines = Vec::new();
                    for row in &rows {
                        lines.push(row.try_get::<String, _>(0)?);
                    }
                    let indexed = !lines.iter().any(|l| l.contains("Seq Scan"));
                    (lines, indexed)
                }
            };
            out.push(LookupPlan {
                name,
                plan: plan.join("\n"),
                indexed,
            });
        }
        Ok(out)
    }
}
