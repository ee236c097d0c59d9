//! The revocation outbox, device commands, the audit trail and shared settings.

use serde::{Deserialize, Serialize};

use super::{Store, on_db};
use crate::error::StoreError;

/// One queued revocation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct OutboxRow {
    pub id: i64,
    /// `revoke` or `release` (of a certificateHold).
    pub kind: String,
    pub serial: String,
    pub reason: String,
    pub device_id: Option<String>,
    pub cause: String,
    /// `pending`, `done` or `failed` (permanent).
    pub state: String,
    pub attempts: i64,
    #[serde(with = "foundation::time::rfc3339_serde")]
    pub next_attempt_at: i64,
    pub last_error: Option<String>,
    #[serde(with = "foundation::time::rfc3339_serde")]
    pub created_at: i64,
    #[serde(default, with = "foundation::time::rfc3339_serde::option")]
    pub done_at: Option<i64>,
}

/// Leases the due pending outbox entries (the revocation worker's poll).
pub(super) fn claim_due_sql() -> String {
    format!(
        "UPDATE outbox SET lease_until = $2 WHERE id IN (SELECT id FROM outbox \
         WHERE state = 'pending' AND next_attempt_at <= $1 AND \
         (lease_until IS NULL OR lease_until <= $1) AND NOT EXISTS (SELECT 1 FROM outbox e \
         WHERE e.serial = outbox.serial AND e.id < outbox.id AND e.state = 'pending') \
         ORDER BY id LIMIT $3) \
         AND state = 'pending' AND (lease_until IS NULL OR lease_until <= $1) \
         RETURNING {OUTBOX_COLUMNS}"
    )
}

/// Marks one outbox entry delivered.
pub(super) const OUTBOX_DONE: &str = "UPDATE outbox SET state = 'done', done_at = $2, lease_until = NULL, \
     attempts = attempts + 1, last_error = NULL WHERE id = $1";

/// A device's pending MDM commands (check-in).
pub(super) const PENDING_COMMANDS: &str = "SELECT id, kind, state, created_at FROM commands \
     WHERE device_id = $1 AND state = 'pending' ORDER BY created_at, id";

const OUTBOX_COLUMNS: &str = "id, kind, serial, reason, device_id, cause, state, attempts, \
     next_attempt_at, last_error, created_at, done_at";

/// A command for a device (wipe, retire).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct CommandRow {
    pub id: String,
    pub kind: String,
    pub state: String,
    #[serde(with = "foundation::time::rfc3339_serde")]
    pub created_at: i64,
}

/// One audit record. Challenge values never appear; `detail` may hold a challenge reference.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct AuditEvent {
    #[serde(default)]
    pub id: i64,
    #[serde(default, with = "foundation::time::rfc3339_serde")]
    pub at: i64,
    pub event: String,
    pub device_id: Option<String>,
    pub profile_id: Option<String>,
    pub transaction_id: Option<String>,
    pub detail: Option<String>,
    /// The names this record concerns passed unchecked under a template's
    /// `enrollee_supplies_subject` flag (AD CS ESC1).
    #[serde(default)]
    pub esc1_exposed: bool,
    /// ndes-proxy's request id when it is not the client's transactionID (a renewal's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile_version: Option<i64>,
    /// Serial, lowercase hex, of the certificate concerned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    /// The challenge's reference (`challenge_ref`, never the value): links a challenge's
    /// minting and delivery to the request that used it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub challenge: Option<String>,
    /// Who asked: `device:<id>`, an admin, an NDES requester, an ndes-proxy instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// The named reason of a refusal or revocation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// JSON object of further facts (never a secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub facts: Option<String>,
    /// `ndes-proxy` for what ndes-proxy reported; none for the policy module's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// Every column of an audit row, in [`AuditEvent`]'s order.
pub(super) const AUDIT_COLUMNS: &str = "id, at, event, device_id, profile_id, transaction_id, \
     detail, esc1_exposed, request_id, profile_version, serial, challenge, actor, reason, facts, \
     source";

/// Inserts one audit row (`audit_in!` binds it inside the caller's transaction).
pub(super) const AUDIT_INSERT: &str = "INSERT INTO audit (at, event, device_id, profile_id, \
     transaction_id, detail, esc1_exposed, request_id, profile_version, serial, challenge, \
     actor, reason, facts, source) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)";

/// [`AUDIT_INSERT`] with the empty links filled from the certificate `$10` names.
pub(super) const AUDIT_INSERT_FOR_SERIAL: &str = "INSERT INTO audit (at, event, device_id, \
     profile_id, transaction_id, detail, esc1_exposed, request_id, profile_version, serial, \
     challenge, actor, reason, facts, source) \
     SELECT $1, $2, COALESCE($3, c.device_id), COALESCE($4, c.profile_id), \
     COALESCE($5, r.client_transaction_id, c.transaction_id), $6, $7, \
     COALESCE($8, c.transaction_id), COALESCE($9, c.profile_version), $10, $11, $12, $13, $14, \
     $15 FROM (SELECT 1 AS one) o LEFT JOIN certificates c ON c.serial = $10 \
     LEFT JOIN requests r ON r.transaction_id = c.transaction_id";

impl Store {
    /// Leases up to `limit` due pending entries for `lease_secs` (so two instances do not
    /// deliver the same entry at once; the CA is idempotent anyway).
    pub async fn claim_due(
        &self,
        limit: i64,
        lease_secs: i64,
    ) -> Result<Vec<OutboxRow>, StoreError> {
        let now = self.now().await?;
        let sql = claim_due_sql();
        let mut rows = on_db!(write & self.db, |pool, begin| {
            let mut tx = pool.begin_with(begin).await?;
            let rows = sqlx::query_as::<_, OutboxRow>(sqlx::AssertSqlSafe(sql))
                .bind(now)
                .bind(now.saturating_add(lease_secs))
                .bind(limit)
                .fetch_all(&mut *tx)
                .await?;
            tx.commit().await?;
            rows
        });
        rows.sort_by_key(|r| r.id);
        Ok(rows)
    }

    /// The CA confirmed: the entry is done and the certificate revoked (held for a
    /// certificateHold), unless a later entry for it is still queued (it decides).
    pub async fn outbox_done(
        &self,
        id: i64,
        serial: &str,
        revoked_at: i64,
        done: &AuditEvent,
    ) -> Result<(), StoreError> {
        let now = self.now().await?;
        on_db!(write & self.db, |pool, begin| {
            let mut tx = pool.begin_with(begin).await?;
            sqlx::query(OUTBOX_DONE)
                .bind(id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "UPDATE certificates SET revoked_at = $2, status = CASE \
                 WHEN revocation_reason = 'certificateHold' THEN 'held' ELSE 'revoked' END \
                 WHERE serial = $1 AND status IN ('revoking', 'revoke_failed') AND NOT EXISTS \
                 (SELECT 1 FROM outbox e WHERE e.serial = $1 AND e.id > $3 \
                 AND e.state = 'pending')",
            )
            .bind(serial)
            .bind(revoked_at)
            .bind(id)
            .execute(&mut *tx)
            .await?;
            audit_serial!(tx, done, now);
            tx.commit().await?;
        });
        Ok(())
    }

    /// The CA released the hold (or the certificate was not held): good again, unless a
    /// later block queued its revocation meanwhile.
    pub async fn release_done(
        &self,
        id: i64,
        serial: &str,
        done: &AuditEvent,
    ) -> Result<(), StoreError> {
        let now = self.now().await?;
        on_db!(write & self.db, |pool, begin| {
            let mut tx = pool.begin_with(begin).await?;
            sqlx::query(OUTBOX_DONE)
                .bind(id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "UPDATE certificates SET status = 'issued', revoked_at = NULL, \
                 revocation_reason = NULL WHERE serial = $1 AND status = 'releasing' \
                 AND NOT EXISTS (SELECT 1 FROM outbox e WHERE e.serial = $1 AND e.id > $2 \
                 AND e.state = 'pending')",
            )
            .bind(serial)
            .bind(id)
            .execute(&mut *tx)
            .await?;
            audit_serial!(tx, done, now);
            tx.commit().await?;
        });
        Ok(())
    }

    /// The CA refused for good (unknown serial, authentication): recorded, not retried.
    pub async fn outbox_failed(
        &self,
        id: i64,
        serial: &str,
        error: &str,
        failed: &AuditEvent,
    ) -> Result<(), StoreError> {
        let now = self.now().await?;
        on_db!(write & self.db, |pool, begin| {
            let mut tx = pool.begin_with(begin).await?;
            sqlx::query(
                "UPDATE outbox SET state = 'failed', lease_until = NULL, \
                 attempts = attempts + 1, last_error = $2 WHERE id = $1",
            )
            .bind(id)
            .bind(error)
            .execute(&mut *tx)
            .await?;
            // A refused release leaves the certificate held (an admin may re-queue).
            sqlx::query(
                "UPDATE certificates SET status = CASE WHEN status = 'releasing' \
                 THEN 'held' ELSE 'revoke_failed' END WHERE serial = $1 AND status = \
                 CASE WHEN (SELECT kind FROM outbox WHERE id = $2) = 'release' \
                 THEN 'releasing' ELSE 'revoking' END",
            )
            .bind(serial)
            .bind(id)
            .execute(&mut *tx)
            .await?;
            audit_serial!(tx, failed, now);
            tx.commit().await?;
        });
        Ok(())
    }

    /// A transient failure: try again at `next_attempt_at`.
    pub async fn outbox_retry(
        &self,
        id: i64,
        error: &str,
        delay_secs: i64,
    ) -> Result<(), StoreError> {
        let now = self.now().await?;
        on_db!(&self.db, |pool, _b| {
            sqlx::query(
                "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = $2, \
                 lease_until = NULL, last_error = $3 WHERE id = $1",
            )
            .bind(id)
            .bind(now.saturating_add(delay_secs))
            .bind(error)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(())
    }

    /// An admin re-queues a permanently failed entry (a release marks its held certificate
    /// releasing again).
    pub async fn outbox_requeue(&self, id: i64) -> Result<bool, StoreError> {
        let now = self.now().await?;
        Ok(on_db!(write & self.db, |pool, begin| {
            let mut tx = pool.begin_with(begin).await?;
            let requeued = sqlx::query(
                "UPDATE outbox SET state = 'pending', next_attempt_at = $2, lease_until = NULL \
                 WHERE id = $1 AND state = 'failed'",
            )
            .bind(id)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1;
            sqlx::query(
                "UPDATE certificates SET status = 'releasing' WHERE status = 'held' AND serial = \
                 (SELECT serial FROM outbox WHERE id = $1 AND kind = 'release')",
            )
            .bind(id)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            requeued
        }))
    }

    /// The pending entries' count and the oldest one's creation time (`/metrics`).
    pub async fn outbox_backlog(&self) -> Result<crate::metrics::Backlog, StoreError> {
        let (pending, oldest_created_at): (i64, Option<i64>) = on_db!(&self.db, |pool, _b| {
            sqlx::query_as("SELECT COUNT(*), MIN(created_at) FROM outbox WHERE state = 'pending'")
                .fetch_one(pool)
                .await?
        });
        Ok(crate::metrics::Backlog {
            pending,
            oldest_created_at,
        })
    }

    /// Outbox entries, optionally of one state, oldest first.
    pub async fn list_outbox(&self, state: Option<&str>) -> Result<Vec<OutboxRow>, StoreError> {
        let sql = format!(
            "SELECT {OUTBOX_COLUMNS} FROM outbox WHERE ($1 IS NULL OR state = $1) ORDER BY id"
        );
        Ok(on_db!(&self.db, |pool, _b| {
            sqlx::query_as::<_, OutboxRow>(sqlx::AssertSqlSafe(sql))
                .bind(state)
                .fetch_all(pool)
                .await?
        }))
    }

    /// Pending commands of a device.
    pub async fn pending_commands(&self, device_id: &str) -> Result<Vec<CommandRow>, StoreError> {
        Ok(on_db!(&self.db, |pool, _b| {
            sqlx::query_as::<_, CommandRow>(PENDING_COMMANDS)
                .bind(device_id)
                .fetch_all(pool)
                .await?
        }))
    }

    /// A device acknowledges one of its own commands.
    pub async fn ack_command(&self, device_id: &str, id: &str) -> Result<bool, StoreError> {
        let now = self.now().await?;
        Ok(on_db!(&self.db, |pool, _b| {
            sqlx::query(
                "UPDATE commands SET state = 'done', acked_at = $3 \
                 WHERE id = $1 AND device_id = $2 AND state = 'pending'",
            )
            .bind(id)
            .bind(device_id)
            .bind(now)
            .execute(pool)
            .await?
            .rows_affected()
                == 1
        }))
    }

    /// Appends audit records that record no state change of their own (a refusal, what
    /// ndes-proxy reported), together in one transaction.
    pub async fn audit_all(&self, events: &[AuditEvent]) -> Result<(), StoreError> {
        let now = self.now().await?;
        on_db!(write & self.db, |pool, begin| {
            let mut tx = pool.begin_with(begin).await?;
            for e in events {
                audit_in!(tx, e, now);
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// The latest audit records, newest first, optionally for one device.
    pub async fn list_audit(
        &self,
        device_id: Option<&str>,
        limit: i64,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        // Two statements, not `$1 IS NULL OR device_id = $1`: SQLite plans that one as a scan
        // of the whole log even for a device with a handful of records.
        let sql = match device_id {
            Some(_) => audit_of_device_sql(),
            None => format!("SELECT {AUDIT_COLUMNS} FROM audit ORDER BY id DESC LIMIT $1"),
        };
        Ok(on_db!(&self.db, |pool, _b| {
            let q = sqlx::query_as::<_, AuditEvent>(sqlx::AssertSqlSafe(sql));
            let q = match device_id {
                Some(d) => q.bind(d),
                None => q,
            };
            q.bind(limit).fetch_all(pool).await?
        }))
    }

    /// A shared integer setting.
    pub async fn get_setting(&self, key: &str) -> Result<Option<i64>, StoreError> {
        Ok(on_db!(&self.db, |pool, _b| {
            sqlx::query_scalar::<_, i64>("SELECT value FROM settings WHERE key = $1")
                .bind(key)
                .fetch_optional(pool)
                .await?
        }))
    }

    /// Sets a shared integer setting.
    pub async fn set_setting(&self, key: &str, value: i64) -> Result<(), StoreError> {
        on_db!(&self.db, |pool, _b| {
            sqlx::query(
                "INSERT INTO settings (key, value) VALUES ($1, $2) \
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            )
            .bind(key)
            .bind(value)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(())
    }
}

/// A device's latest audit records, newest first (the `audit_device` index).
pub(super) fn audit_of_device_sql() -> String {
    format!("SELECT {AUDIT_COLUMNS} FROM audit WHERE device_id = $1 ORDER BY id DESC LIMIT $2")
}
