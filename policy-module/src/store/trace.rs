//! Reading the audit for one transaction's story and one device's history (issue 16 item 1).

use std::collections::BTreeMap;

use super::outbox::AUDIT_COLUMNS;
use super::{AuditEvent, Store, on_db};
use crate::error::StoreError;

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
        let sql = format!(
            "SELECT {AUDIT_COLUMNS} FROM audit WHERE {column} = $1 ORDER BY id LIMIT $2"
        );
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
}
