//! Challenges, the requests they are reserved for, and the certificates recorded at Notify.
//!
//! docs/decisions.md #4: VerifyRequest reserves a challenge for (transactionID, CSR hash) with a
//! conditional UPDATE in one transaction; Notify consumes it in the transaction that records
//! the certificate. A retransmission of the same request passes the same condition again.

use sqlx::Row;

use super::inventory::{OutOfService, device_state_sql};
use super::{AuditEvent, Store, on_db};
use crate::error::StoreError;
use crate::model::{CertStatus, DeviceState, IssuedCert};

/// A challenge to store (only its digest is kept).
#[derive(Debug, Clone)]
pub struct NewChallenge {
    pub hash: Vec<u8>,
    /// `profile` (bound to a device and profile version) or `admin` (mscep_admin style).
    pub kind: &'static str,
    pub device_id: Option<String>,
    pub profile_id: Option<String>,
    pub profile_version: Option<i64>,
    pub template: String,
    /// JSON of the rendered [`crate::render::Expected`].
    pub expected: Option<String>,
    pub requester: Option<String>,
    pub validity_secs: i64,
}

/// A stored challenge.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ChallengeRow {
    pub hash: Vec<u8>,
    pub kind: String,
    pub device_id: Option<String>,
    pub profile_id: Option<String>,
    pub profile_version: Option<i64>,
    pub template: String,
    pub expected: Option<String>,
    pub requester: Option<String>,
    pub created_at: i64,
    pub expires_at: i64,
    pub reserved_tx: Option<String>,
    pub reserved_csr: Option<Vec<u8>>,
    pub consumed_at: Option<i64>,
}

/// A granted (or since issued or failed) request.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RequestRow {
    pub transaction_id: String,
    pub csr_hash: Vec<u8>,
    pub spki_hash: Vec<u8>,
    pub challenge_hash: Option<Vec<u8>>,
    pub renewal_of: Option<String>,
    pub grant_body: String,
    pub state: String,
    /// The client's transactionID (differs from `transaction_id`, the request id, for a
    /// renewal); none for requests granted before it was kept.
    pub client_transaction_id: Option<String>,
}

/// Result of trying to reserve a challenge or record a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReserveOutcome {
    /// Reserved (or already reserved for this very request); the stored grant body.
    Granted(String),
    /// The challenge was not available for this request (used, reserved, expired, unknown).
    ChallengeUnavailable,
    /// The transactionID is already bound to another CSR.
    TransactionIdReused,
}

/// What Notify records for an issued certificate.
#[derive(Debug, Clone)]
pub struct IssuedRecord {
    pub transaction_id: String,
    pub serial_hex: String,
    pub thumbprint: String,
    pub not_after: i64,
    /// The subject as the CA issued it (RFC 4514), for the certificate search.
    pub subject: Option<String>,
    pub der: Vec<u8>,
    /// SHA-256 of the certified key's SubjectPublicKeyInfo DER (who holds which key: P10).
    pub spki_hash: Vec<u8>,
    pub device_id: Option<String>,
    pub profile_id: Option<String>,
    pub profile_version: Option<i64>,
}

#[derive(sqlx::FromRow)]
pub(super) struct CertRow {
    serial: String,
    thumbprint: String,
    device_id: Option<String>,
    profile_id: Option<String>,
    profile_version: Option<i64>,
    transaction_id: String,
    not_after: i64,
    status: String,
    revocation_reason: Option<String>,
    issued_at: i64,
    installed_at: Option<i64>,
    subject: Option<String>,
}

impl From<CertRow> for IssuedCert {
    fn from(r: CertRow) -> Self {
        Self {
            serial_hex: r.serial,
            thumbprint_sha256: r.thumbprint,
            device_id: r.device_id,
            profile_id: r.profile_id,
            profile_version: r.profile_version,
            transaction_id: r.transaction_id,
            not_after: r.not_after,
            issued_at: r.issued_at,
            status: CertStatus::parse(&r.status).unwrap_or(CertStatus::Issued),
            revocation_reason: r.revocation_reason,
            installed_at: r.installed_at,
            subject: r.subject,
        }
    }
}

/// A challenge by its digest (VerifyRequest, Notify).
pub(super) const CHALLENGE_BY_HASH: &str = "SELECT hash, kind, device_id, profile_id, profile_version, template, expected, \
     requester, created_at, expires_at, reserved_tx, reserved_csr, consumed_at \
     FROM challenges WHERE hash = $1";

/// A request by its SCEP transactionID (retransmissions).
pub(super) const REQUEST_BY_TRANSACTION_ID: &str = "SELECT transaction_id, csr_hash, spki_hash, challenge_hash, renewal_of, \
     grant_body, state, client_transaction_id FROM requests WHERE transaction_id = $1";

/// Reserves a challenge for one request (by digest).
pub(super) const RESERVE_CHALLENGE: &str = "UPDATE challenges SET reserved_tx = $2, reserved_csr = $3, \
     reserved_at = COALESCE(reserved_at, $4) \
     WHERE hash = $1 AND ((reserved_tx IS NULL AND consumed_at IS NULL \
     AND expires_at > $4) OR (reserved_tx = $2 AND reserved_csr = $3)) \
     RETURNING hash";

/// The certificate recorded for a transactionID (Notify replay).
pub(super) const SERIAL_BY_TRANSACTION_ID: &str =
    "SELECT serial FROM certificates WHERE transaction_id = $1";

/// The devices holding a certificate for a key, by SPKI digest (P10 key reuse).
pub(super) const KEY_HOLDERS: &str =
    "SELECT DISTINCT device_id FROM certificates WHERE spki_hash = $1";

/// A certificate by thumbprint (the renewal signer).
pub(super) fn cert_by_thumbprint_sql() -> String {
    format!("SELECT {CERT_COLUMNS} FROM certificates WHERE thumbprint = $1")
}

/// A device's certificates, newest first.
pub(super) fn certs_by_device_sql() -> String {
    format!(
        "SELECT {CERT_COLUMNS} FROM certificates WHERE device_id = $1 ORDER BY issued_at DESC, serial"
    )
}

pub(super) const CERT_COLUMNS: &str = "serial, thumbprint, device_id, profile_id, profile_version, \
     transaction_id, not_after, status, revocation_reason, issued_at, installed_at, subject";

/// Outcome of recording an issuance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IssuedOutcome {
    Recorded,
    /// Recorded for a device that is no longer active (a retire, wipe or block committed
    /// after the grant), and queued for revocation in the same transaction.
    RecordedForRevocation(DeviceState),
    AlreadyRecorded,
    UnknownTransaction,
    Conflict,
}

/// Advisory lock key that serialises admin challenge mints on PostgreSQL ("scepADMN").
const ADMIN_MINT_LOCK: i64 = 0x7363_6570_4144_4d4e;

impl Store {
    /// Stores a new challenge and its audit records (minted, delivered) in one transaction;
    /// `created_at`/`expires_at` come from the store's clock.
    pub async fn insert_challenge(
        &self,
        c: &NewChallenge,
        events: &[AuditEvent],
    ) -> Result<i64, StoreError> {
        let now = self.now().await?;
        let expires = now.saturating_add(c.validity_secs);
        on_db!(write & self.db, |pool, begin| {
            let mut tx = pool.begin_with(begin).await?;
            sqlx::query(
                "INSERT INTO challenges (hash, kind, device_id, profile_id, profile_version, \
                 template, expected, requester, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .bind(&c.hash)
            .bind(c.kind)
            .bind(&c.device_id)
            .bind(&c.profile_id)
            .bind(c.profile_version)
            .bind(&c.template)
            .bind(&c.expected)
            .bind(&c.requester)
            .bind(now)
            .bind(expires)
            .execute(&mut *tx)
            .await?;
            for e in events {
                audit_in!(tx, e, now);
            }
            tx.commit().await?;
        });
        Ok(expires)
    }

    /// Stores an admin challenge unless `max` unconsumed, unexpired admin challenges exist
    /// (NDES PasswordMax, kept in the shared store). Returns the expiry, or `None` when full.
    pub async fn insert_admin_challenge(
        &self,
        c: &NewChallenge,
        max: i64,
        issued: &AuditEvent,
    ) -> Result<Option<i64>, StoreError> {
        let now = self.now().await?;
        let expires = now.saturating_add(c.validity_secs);
        // Count-then-insert must not interleave, or concurrent mints on several instances
        // overshoot PasswordMax. SQLite's BEGIN IMMEDIATE already serialises writers; on
        // PostgreSQL a transaction-scoped advisory lock does.
        let serialise = self.is_postgres();
        let inserted = on_db!(write & self.db, |pool, begin| {
            let mut tx = pool.begin_with(begin).await?;
            if serialise {
                sqlx::query("SELECT pg_advisory_xact_lock($1)")
                    .bind(ADMIN_MINT_LOCK)
                    .execute(&mut *tx)
                    .await?;
            }
            let outstanding: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM challenges WHERE kind = 'admin' \
                 AND consumed_at IS NULL AND reserved_tx IS NULL AND expires_at > $1",
            )
            .bind(now)
            .fetch_one(&mut *tx)
            .await?;
            if outstanding >= max {
                false
            } else {
                sqlx::query(
                    "INSERT INTO challenges (hash, kind, template, requester, created_at, \
                     expires_at) VALUES ($1, 'admin', $2, $3, $4, $5)",
                )
                .bind(&c.hash)
                .bind(&c.template)
                .bind(&c.requester)
                .bind(now)
                .bind(expires)
                .execute(&mut *tx)
                .await?;
                audit_in!(tx, issued, now);
                tx.commit().await?;
                true
            }
        });
        Ok(inserted.then_some(expires))
    }

    /// Looks a challenge up by digest.
    pub async fn get_challenge(&self, hash: &[u8]) -> Result<Option<ChallengeRow>, StoreError> {
        Ok(on_db!(&self.db, |pool, _b| {
            sqlx::query_as::<_, ChallengeRow>(CHALLENGE_BY_HASH)
                .bind(hash)
                .fetch_optional(pool)
                .await?
        }))
    }

    /// Looks a request up by transactionID.
    pub async fn get_request(&self, tx_id: &str) -> Result<Option<RequestRow>, StoreError> {
        Ok(on_db!(&self.db, |pool, _b| {
            sqlx::query_as::<_, RequestRow>(REQUEST_BY_TRANSACTION_ID)
                .bind(tx_id)
                .fetch_optional(pool)
                .await?
        }))
    }

    /// Atomically reserves the challenge `hash` for (`tx_id`, `csr_hash`) and records the
    /// granted request with its audit records (`granted`: the request received and the
    /// grant). With `hash = None` (renewal) only the request is recorded.
    /// Exactly one of several concurrent different requests wins; the same request again
    /// (retransmission) gets the stored grant.
    #[allow(clippy::too_many_arguments)]
    pub async fn reserve(
        &self,
        hash: Option<&[u8]>,
        tx_id: &str,
        client_tx_id: &str,
        csr_hash: &[u8],
        spki_hash: &[u8],
        renewal_of: Option<&str>,
        grant_body: &str,
        granted: &[AuditEvent],
    ) -> Result<ReserveOutcome, StoreError> {
        let now = self.now().await?;
        Ok(on_db!(write & self.db, |pool, begin| {
            let mut tx = pool.begin_with(begin).await?;
            let reserved = match hash {
                None => true,
                Some(hash) => sqlx::query(RESERVE_CHALLENGE)
                    .bind(hash)
                    .bind(tx_id)
                    .bind(csr_hash)
                    .bind(now)
                    .fetch_optional(&mut *tx)
                    .await?
                    .is_some(),
            };
            if !reserved {
                tx.rollback().await?;
                ReserveOutcome::ChallengeUnavailable
            } else {
                sqlx::query(
                    "INSERT INTO requests (transaction_id, csr_hash, spki_hash, challenge_hash, \
                     renewal_of, grant_body, state, created_at, updated_at, \
                     client_transaction_id) \
                     VALUES ($1, $2, $3, $4, $5, $6, 'granted', $7, $7, $8) \
                     ON CONFLICT (transaction_id) DO NOTHING",
                )
                .bind(tx_id)
                .bind(csr_hash)
                .bind(spki_hash)
                .bind(hash)
                .bind(renewal_of)
                .bind(grant_body)
                .bind(now)
                .bind(client_tx_id)
                .execute(&mut *tx)
                .await?;
                let row = sqlx::query(
                    "SELECT csr_hash, grant_body FROM requests WHERE transaction_id = $1",
                )
                .bind(tx_id)
                .fetch_one(&mut *tx)
                .await?;
                let stored_csr: Vec<u8> = row.try_get("csr_hash")?;
                if stored_csr != csr_hash {
                    tx.rollback().await?;
                    ReserveOutcome::TransactionIdReused
                } else {
                    let body: String = row.try_get("grant_body")?;
                    sqlx::query(
                        "UPDATE requests SET state = 'granted', updated_at = $2 \
                         WHERE transaction_id = $1 AND state = 'failed'",
                    )
                    .bind(tx_id)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                    for e in granted {
                        audit_in!(tx, e, now);
                    }
                    tx.commit().await?;
                    ReserveOutcome::Granted(body)
                }
            }
        }))
    }

    /// Records an issued certificate and consumes the request's challenge, in one transaction.
    /// Idempotent by transactionID: the same serial again is `AlreadyRecorded`.
    ///
    /// docs/decisions.md #11: the certificate of a device that is no longer active (its
    /// request was granted before a retire, wipe or block and issued after it) is recorded as
    /// revoking and queued in the outbox in this same transaction, never dropped: the CA
    /// issued it, so it must be revoked. The device row is read first (locked on PostgreSQL),
    /// so a concurrent transition either sees this certificate or is seen by it.
    pub async fn record_issued(
        &self,
        rec: &IssuedRecord,
        out_of_service: &OutOfService<'_>,
        notified: &AuditEvent,
    ) -> Result<IssuedOutcome, StoreError> {
        let now = self.now().await?;
        let read_state = device_state_sql(self.is_postgres(), false);
        Ok(on_db!(write & self.db, |pool, begin| {
            let mut tx = pool.begin_with(begin).await?;
            let state: Option<String> = match &rec.device_id {
                None => None,
                Some(id) => {
                    sqlx::query_scalar(read_state)
                        .bind(id)
                        .fetch_optional(&mut *tx)
                        .await?
                }
            };
            let revoke = state
                .as_deref()
                .and_then(DeviceState::parse)
                .and_then(|s| out_of_service.revocation(s).map(|r| (s, r)));
            let status = match revoke {
                Some(_) => CertStatus::Revoking,
                None => CertStatus::Issued,
            };
            let updated = sqlx::query(
                "UPDATE requests SET state = 'issued', updated_at = $2 \
                 WHERE transaction_id = $1 AND state <> 'issued' RETURNING challenge_hash",
            )
            .bind(&rec.transaction_id)
            .bind(now)
            .fetch_optional(&mut *tx)
            .await?;
            match updated {
                None => {
                    let existing: Option<String> = sqlx::query_scalar(SERIAL_BY_TRANSACTION_ID)
                        .bind(&rec.transaction_id)
                        .fetch_optional(&mut *tx)
                        .await?;
                    tx.rollback().await?;
                    match existing {
                        Some(s) if s == rec.serial_hex => IssuedOutcome::AlreadyRecorded,
                        Some(_) => IssuedOutcome::Conflict,
                        None => IssuedOutcome::UnknownTransaction,
                    }
                }
                Some(row) => {
                    let challenge: Option<Vec<u8>> = row.try_get("challenge_hash")?;
                    if let Some(hash) = challenge {
                        sqlx::query(
                            "UPDATE challenges SET consumed_at = $3 WHERE hash = $1 \
                             AND reserved_tx = $2 AND consumed_at IS NULL",
                        )
                        .bind(hash)
                        .bind(&rec.transaction_id)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                    }
                    let inserted = sqlx::query(
                        "INSERT INTO certificates (serial, thumbprint, device_id, profile_id, \
                         profile_version, transaction_id, not_after, der, status, issued_at, \
                         spki_hash, revocation_reason, subject) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $11, $9, $10, $12, $13) \
                         ON CONFLICT DO NOTHING",
                    )
                    .bind(&rec.serial_hex)
                    .bind(&rec.thumbprint)
                    .bind(&rec.device_id)
                    .bind(&rec.profile_id)
                    .bind(rec.profile_version)
                    .bind(&rec.transaction_id)
                    .bind(rec.not_after)
                    .bind(&rec.der)
                    .bind(now)
                    .bind(&rec.spki_hash)
                    .bind(status.as_str())
                    .bind(revoke.map(|(_, (reason, _))| reason))
                    .bind(&rec.subject)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                    if inserted == 1 {
                        audit_in!(tx, notified, now);
                        let outcome = match revoke {
                            None => IssuedOutcome::Recorded,
                            Some((state, (reason, cause))) => {
                                let device = rec.device_id.as_deref();
                                let by = "policy-module";
                                enqueue!(tx, &rec.serial_hex, reason, device, cause, by, now);
                                IssuedOutcome::RecordedForRevocation(state)
                            }
                        };
                        tx.commit().await?;
                        outcome
                    } else {
                        tx.rollback().await?;
                        IssuedOutcome::Conflict
                    }
                }
            }
        }))
    }

    /// Marks a granted request failed (Notify failure). The challenge stays reserved for that
    /// same request, which may be retried; returns false for an unknown or issued request.
    pub async fn record_failed(
        &self,
        tx_id: &str,
        failed: &AuditEvent,
    ) -> Result<bool, StoreError> {
        let now = self.now().await?;
        Ok(on_db!(write & self.db, |pool, begin| {
            let mut tx = pool.begin_with(begin).await?;
            let done = sqlx::query(
                "UPDATE requests SET state = 'failed', updated_at = $2 \
                 WHERE transaction_id = $1 AND state <> 'issued'",
            )
            .bind(tx_id)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1;
            if done {
                audit_in!(tx, failed, now);
            }
            tx.commit().await?;
            done
        }))
    }

    /// A recorded certificate by SHA-256 thumbprint (renewal signer lookup).
    pub async fn cert_by_thumbprint(&self, thumb: &str) -> Result<Option<IssuedCert>, StoreError> {
        let sql = cert_by_thumbprint_sql();
        let row = on_db!(&self.db, |pool, _b| {
            sqlx::query_as::<_, CertRow>(sqlx::AssertSqlSafe(sql))
                .bind(thumb)
                .fetch_optional(pool)
                .await?
        });
        Ok(row.map(Into::into))
    }

    /// The devices holding a certificate (any status) for the key with this SPKI digest;
    /// `None` stands for certificates issued without a device (mscep_admin passwords).
    pub async fn key_holders(&self, spki_hash: &[u8]) -> Result<Vec<Option<String>>, StoreError> {
        Ok(on_db!(&self.db, |pool, _b| {
            sqlx::query_scalar::<_, Option<String>>(KEY_HOLDERS)
                .bind(spki_hash)
                .fetch_all(pool)
                .await?
        }))
    }

    /// Every certificate recorded for a device, newest first.
    pub async fn certs_for_device(&self, device_id: &str) -> Result<Vec<IssuedCert>, StoreError> {
        let sql = certs_by_device_sql();
        let rows = on_db!(&self.db, |pool, _b| {
            sqlx::query_as::<_, CertRow>(sqlx::AssertSqlSafe(sql))
                .bind(device_id)
                .fetch_all(pool)
                .await?
        });
        Ok(rows.into_iter().map(Into::into).collect())
    }

    /// A device reports a certificate installed; only its own certificates can be marked.
    pub async fn mark_installed(
        &self,
        device_id: &str,
        thumbprint: &str,
    ) -> Result<bool, StoreError> {
        let now = self.now().await?;
        Ok(on_db!(&self.db, |pool, _b| {
            sqlx::query(
                "UPDATE certificates SET installed_at = $3 WHERE device_id = $1 AND thumbprint = $2",
            )
            .bind(device_id)
            .bind(thumbprint)
            .bind(now)
            .execute(pool)
            .await?
            .rows_affected()
                == 1
        }))
    }

    /// Deletes challenges that expired more than `grace_secs` ago and were never reserved.
    pub async fn prune_challenges(&self, grace_secs: i64) -> Result<u64, StoreError> {
        let now = self.now().await?;
        Ok(on_db!(&self.db, |pool, _b| {
            sqlx::query("DELETE FROM challenges WHERE reserved_tx IS NULL AND expires_at < $1")
                .bind(now.saturating_sub(grace_secs))
                .execute(pool)
                .await?
                .rows_affected()
        }))
    }
}
