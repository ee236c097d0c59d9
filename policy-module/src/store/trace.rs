//! Reading the audit for one transaction's story and one device's history (issue 16 item 1).

use std::collections::BTreeMap;

use super::outbox::AUDIT_COLUMNS;
use super::{AuditEvent, Store, on_db};
use crate::error::StoreError;

/// A state change without its audit record, or a record naming what does not exist: the
/// reconciler's invariant I10 (docs/decisions.md #12).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct TraceGap {
    /// `certificate`, `request`, `revocation`, `record`.
    pub kind: String,
    /// The serial, request id or record number concerned.
    pub subject: String,
    /// What is missing.
    pub detail: String,
}

/// Only what was recorded since records carry their links (migration 0005 keeps the client's
/// transactionID on each request it grants): older rows never had them.
const TRACED: &str = "r.client_transaction_id IS NOT NULL";

/// Most records one transaction's story reads (a retransmitting client adds a few each time).
const MAX_TRACE_ROWS: i64 = 1000;

impl Store {
    /// Every audit record of the transaction `id` (the client's transactionID or a request
    /// id), oldest first: those naming it, then those linked to it through its request ids,
    /// the challenge it used and the serials it got.
    pub async fn trace_records(&self, id: &str) -> Result<Vec<AuditEvent>, StoreError> {
        let mut found: BTreeMap<i64, AuditEvent> = BTreeMap::new();
        let mut keys: Vec<(&str, String)> = vec![("transaction_id", id.to_string())];
        let mut seen_keys = std::collections::BTreeSet::new();
        while let Some((column, value)) = keys.pop() {
            if !seen_keys.insert((column, value.clone())) || found.len() as i64 >= MAX_TRACE_ROWS {
                continue;
            }
            for e in self.audit_where(column, &value).await? {
                // Through a challenge only its minting and delivery: another request that
                // presented it again tells its own story.
                if column == "challenge" {
                    if matches!(e.event.as_str(), "challenge_issued" | "checkin_delivered") {
                        found.insert(e.id, e);
                    }
                    continue;
                }
                let links = [
                    ("transaction_id", e.transaction_id.clone()),
                    ("request_id", e.request_id.clone()),
                    ("serial", e.serial.clone()),
                    ("challenge", e.challenge.clone()),
                ];
                // A certificate links on to its revocations, not to other transactions of
                // the device; a renewal's signer (in `facts`) links nowhere further.
                for (c, v) in links {
                    if let Some(v) = v {
                        keys.push((c, v));
                    }
                }
                found.insert(e.id, e);
            }
            if column == "transaction_id" {
                keys.push(("request_id", value));
            }
        }
        Ok(found.into_values().collect())
    }

    /// Records whose `column` (one of the linking columns) equals `value`.
    async fn audit_where(&self, column: &str, value: &str) -> Result<Vec<AuditEvent>, StoreError> {
        let column = match column {
            "transaction_id" => "transaction_id",
            "request_id" => "request_id",
            "serial" => "serial",
            _ => "challenge",
        };
        let sql =
            format!("SELECT {AUDIT_COLUMNS} FROM audit WHERE {column} = $1 ORDER BY id LIMIT $2");
        Ok(on_db!(&self.db, |pool, _b| {
            sqlx::query_as::<_, AuditEvent>(sqlx::AssertSqlSafe(sql))
                .bind(value)
                .bind(MAX_TRACE_ROWS)
                .fetch_all(pool)
                .await?
        }))
    }

    /// A device's records, newest first, at most `limit`, older than the record `before`.
    pub async fn device_records(
        &self,
        device_id: &str,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        let sql = format!(
            "SELECT {AUDIT_COLUMNS} FROM audit WHERE device_id = $1 \
             AND ($2 IS NULL OR id < $2) ORDER BY id DESC LIMIT $3"
        );
        Ok(on_db!(&self.db, |pool, _b| {
            sqlx::query_as::<_, AuditEvent>(sqlx::AssertSqlSafe(sql))
                .bind(device_id)
                .bind(before)
                .bind(limit)
                .fetch_all(pool)
                .await?
        }))
    }

    /// Invariant I10: every certificate in the inventory has its `notified` record, every
    /// granted request (so every consumed challenge) its decision, every confirmed revocation
    /// or release its record; and no record names a serial or a granted request that does not
    /// exist.
    pub async fn trace_gaps(&self) -> Result<Vec<TraceGap>, StoreError> {
        let sql = format!(
            "SELECT 'certificate' AS kind, c.serial AS subject, \
             'no notified record (challenge_consumed) names it' AS detail \
             FROM certificates c JOIN requests r ON r.transaction_id = c.transaction_id \
             WHERE {TRACED} AND NOT EXISTS (SELECT 1 FROM audit a \
             WHERE a.serial = c.serial AND a.event = 'challenge_consumed') \
             UNION ALL \
             SELECT 'request', r.transaction_id, 'granted without its decision record' \
             FROM requests r WHERE {TRACED} AND NOT EXISTS (SELECT 1 FROM audit a \
             WHERE a.event IN ('challenge_verified', 'renewal_verified') \
             AND COALESCE(a.request_id, a.transaction_id) = r.transaction_id) \
             UNION ALL \
             SELECT 'revocation', o.serial, o.kind || ' confirmed without its record' \
             FROM outbox o JOIN certificates c ON c.serial = o.serial \
             JOIN requests r ON r.transaction_id = c.transaction_id \
             WHERE o.state = 'done' AND {TRACED} AND NOT EXISTS (SELECT 1 FROM audit a \
             WHERE a.serial = o.serial AND a.event = CASE WHEN o.kind = 'release' \
             THEN 'release_confirmed' ELSE 'revocation_confirmed' END) \
             UNION ALL \
             SELECT 'record', a.event || ' #' || CAST(a.id AS TEXT), \
             'names serial ' || a.serial || ', which the inventory does not hold' \
             FROM audit a WHERE a.serial IS NOT NULL AND NOT EXISTS \
             (SELECT 1 FROM certificates c WHERE c.serial = a.serial) \
             UNION ALL \
             SELECT 'record', a.event || ' #' || CAST(a.id AS TEXT), \
             'names request ' || COALESCE(a.request_id, a.transaction_id, '-') || \
             ', which was never granted' \
             FROM audit a WHERE a.event IN ('challenge_verified', 'renewal_verified', \
             'challenge_consumed', 'issuance_failed') AND NOT EXISTS (SELECT 1 FROM requests r \
             WHERE r.transaction_id = COALESCE(a.request_id, a.transaction_id)) \
             ORDER BY 1, 2"
        );
        Ok(on_db!(&self.db, |pool, _b| {
            sqlx::query_as::<_, TraceGap>(sqlx::AssertSqlSafe(sql))
                .fetch_all(pool)
                .await?
        }))
    }
}
