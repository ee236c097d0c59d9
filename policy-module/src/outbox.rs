//! Revocation delivery: the persistent outbox, drained by a background worker through a
//! [`Revoker`] until the CA confirms (docs/decisions.md #8). An entry revokes, or releases a
//! certificateHold (unblock, docs/decisions.md #11); one serial's entries go in order.
//!
//! Entries are committed with the lifecycle change, so an admin's 200 means "will be revoked",
//! across restarts. The CA's revocation API is idempotent (`already_revoked`), so a delivery
//! repeated after a crash between the CA's answer and our commit has exactly one effect.
//! Transient failures (5xx, connection) back off exponentially; 404 `unknown_serial` and
//! 401/403 are permanent and recorded (an admin may re-queue them).

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::StoreError;
use crate::store::Store;
use ca_api::{CaClient, ClientError, RevocationReason};
use foundation::secret::Secret;

/// The CA's confirmation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokeAck {
    pub revoked_at: i64,
    pub already_revoked: bool,
}

/// Why a revocation was not confirmed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RevokeError {
    /// Will not succeed by retrying (unknown serial, authentication).
    #[error("permanent: {0}")]
    Permanent(String),
    /// May succeed later (5xx, connection refused, timeout).
    #[error("transient: {0}")]
    Transient(String),
}

/// Revokes one certificate at the CA.
#[async_trait::async_trait]
pub trait Revoker: Send + Sync {
    /// `serial` is lowercase hex; `reason` an RFC 5280 reason name.
    async fn revoke(&self, serial: &str, reason: &str) -> Result<RevokeAck, RevokeError>;

    /// Releases a certificateHold (unblock). Idempotent: a certificate already good is
    /// released; one revoked for good is a permanent error.
    async fn release(&self, serial: &str) -> Result<(), RevokeError> {
        Err(RevokeError::Permanent(format!(
            "this revoker cannot release {serial}"
        )))
    }
}

/// The CA's `POST {base}/api/v1/revocations` through the CA contract's client, with a bearer
/// token.
pub struct HttpRevoker {
    client: CaClient,
}

impl std::fmt::Debug for HttpRevoker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpRevoker")
            .field("client", &self.client)
            .finish()
    }
}

impl HttpRevoker {
    /// A revoker for the CA at `ca_base` (e.g. `http://127.0.0.1:8443`).
    pub fn new(ca_base: &str, token: Secret) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .connect_timeout(Duration::from_secs(5))
            .build()?;
        let client = CaClient::with_http(http, ca_base, Some(token.expose().to_owned()));
        Ok(Self { client })
    }

    /// Revokes through `client` (built by the caller, e.g. pinned to the lab's CA over HTTPS).
    pub fn from_client(client: CaClient) -> Self {
        Self { client }
    }

    /// The CA client (the trace reads the CA's records with it).
    pub fn client(&self) -> &CaClient {
        &self.client
    }
}

#[async_trait::async_trait]
impl Revoker for HttpRevoker {
    async fn revoke(&self, serial: &str, reason: &str) -> Result<RevokeAck, RevokeError> {
        let reason = RevocationReason::parse(reason).ok_or_else(|| {
            RevokeError::Permanent(format!("unknown revocation reason {reason:?}"))
        })?;
        match self.client.revoke(serial, reason).await {
            Ok(answer) => Ok(RevokeAck {
                revoked_at: answer.revoked_at_unix,
                already_revoked: answer.already_revoked,
            }),
            Err(e) => Err(classify(e)),
        }
    }

    async fn release(&self, serial: &str) -> Result<(), RevokeError> {
        self.client
            .release(serial)
            .await
            .map(|_| ())
            .map_err(classify)
    }
}

/// Which CA errors retrying cannot fix.
fn classify(e: ClientError) -> RevokeError {
    match e {
        ClientError::Api { status: 404, .. } => RevokeError::Permanent("CA: unknown_serial".into()),
        ClientError::Api {
            status: 401 | 403, ..
        } => RevokeError::Permanent("CA refused authentication".into()),
        // 409: a release of a certificate revoked for good (not on hold).
        ClientError::Api {
            status: status @ (400 | 409 | 422),
            ..
        } => RevokeError::Permanent(format!("CA refused the request ({status})")),
        ClientError::Api { status, .. } => RevokeError::Transient(format!("CA answered {status}")),
        ClientError::Transport(e) => {
            RevokeError::Transient(format!("request failed: {}", e.without_url()))
        }
        e => RevokeError::Transient(e.to_string()),
    }
}

/// Worker timing.
#[derive(Debug, Clone, Copy)]
pub struct OutboxConfig {
    /// How often to look for due entries when nothing wakes the worker.
    pub poll_interval: Duration,
    /// First retry delay; doubles per attempt up to `max_delay`.
    pub base_delay_secs: i64,
    pub max_delay_secs: i64,
    /// How long a claimed entry is leased to this instance.
    pub lease_secs: i64,
    pub batch: i64,
}

impl Default for OutboxConfig {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_secs(5),
            base_delay_secs: 5,
            max_delay_secs: 600,
            lease_secs: 60,
            batch: 50,
        }
    }
}

/// Drains the outbox.
#[derive(Clone)]
pub struct OutboxWorker {
    store: Store,
    revoker: Arc<dyn Revoker>,
    config: OutboxConfig,
    wake: Arc<tokio::sync::Notify>,
}

impl OutboxWorker {
    /// A worker over `store`, woken by `wake` (see [`crate::PolicyService::outbox_wake`]).
    pub fn new(
        store: Store,
        revoker: Arc<dyn Revoker>,
        config: OutboxConfig,
        wake: Arc<tokio::sync::Notify>,
    ) -> Self {
        Self {
            store,
            revoker,
            config,
            wake,
        }
    }

    /// Delivers every due entry once; returns how many were confirmed.
    pub async fn run_once(&self) -> Result<usize, StoreError> {
        let due = self
            .store
            .claim_due(self.config.batch, self.config.lease_secs)
            .await?;
        let mut confirmed = 0;
        for entry in due {
            if entry.kind == "release" {
                confirmed += usize::from(self.deliver_release(&entry).await?);
                continue;
            }
            match self.revoker.revoke(&entry.serial, &entry.reason).await {
                Ok(ack) => {
                    let event = outbox_event(&entry, "revocation_confirmed", None);
                    self.store
                        .outbox_done(entry.id, &entry.serial, ack.revoked_at, &event)
                        .await?;
                    tracing::info!(
                        serial = %entry.serial,
                        device_id = entry.device_id.as_deref(),
                        already_revoked = ack.already_revoked,
                        "revocation confirmed"
                    );
                    confirmed += 1;
                }
                Err(RevokeError::Permanent(msg)) => {
                    tracing::error!(serial = %entry.serial, error = %msg, "revocation refused");
                    let event = outbox_event(&entry, "revocation_failed", Some(&msg));
                    self.store
                        .outbox_failed(entry.id, &entry.serial, &msg, &event)
                        .await?;
                }
                Err(RevokeError::Transient(msg)) => {
                    let delay = backoff(&self.config, entry.attempts);
                    tracing::warn!(serial = %entry.serial, error = %msg, delay, "revocation retry");
                    self.store.outbox_retry(entry.id, &msg, delay).await?;
                }
            }
        }
        Ok(confirmed)
    }

    /// Delivers one release of a hold (unblock), retried and recorded as revocations are.
    async fn deliver_release(&self, entry: &crate::store::OutboxRow) -> Result<bool, StoreError> {
        match self.revoker.release(&entry.serial).await {
            Ok(()) => {
                let event = outbox_event(entry, "release_confirmed", None);
                self.store
                    .release_done(entry.id, &entry.serial, &event)
                    .await?;
                tracing::info!(serial = %entry.serial, "hold release confirmed");
                Ok(true)
            }
            Err(RevokeError::Permanent(msg)) => {
                tracing::error!(serial = %entry.serial, error = %msg, "hold release refused");
                let event = outbox_event(entry, "release_failed", Some(&msg));
                self.store
                    .outbox_failed(entry.id, &entry.serial, &msg, &event)
                    .await?;
                Ok(false)
            }
            Err(RevokeError::Transient(msg)) => {
                let delay = backoff(&self.config, entry.attempts);
                tracing::warn!(serial = %entry.serial, error = %msg, delay, "hold release retry");
                self.store.outbox_retry(entry.id, &msg, delay).await?;
                Ok(false)
            }
        }
    }

    /// Delete challenges that expired more than [`PRUNE_GRACE_SECS`] ago unused: every check-in
    /// mints one per profile, so without this the table only grows.
    pub async fn maintain(&self) -> Result<u64, StoreError> {
        let pruned = self.store.prune_challenges(PRUNE_GRACE_SECS).await?;
        if pruned > 0 {
            tracing::info!(pruned, "expired challenges removed");
        }
        Ok(pruned)
    }

    /// Runs until `shutdown` resolves: delivers revocations, and prunes expired challenges
    /// every [`PRUNE_EVERY`] (the policy module's one background task).
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut last_prune: Option<tokio::time::Instant> = None;
        loop {
            if let Err(e) = self.run_once().await {
                tracing::warn!(error = %e, "outbox pass failed; will retry");
            }
            if last_prune.is_none_or(|t| t.elapsed() >= PRUNE_EVERY) {
                if let Err(e) = self.maintain().await {
                    tracing::warn!(error = %e, "challenge pruning failed; will retry");
                }
                last_prune = Some(tokio::time::Instant::now());
            }
            tokio::select! {
                () = &mut shutdown => break,
                () = self.wake.notified() => {}
                () = tokio::time::sleep(self.config.poll_interval) => {}
            }
        }
    }
}

/// The audit record of an outbox delivery's outcome, written with it (docs/decisions.md #12).
fn outbox_event(
    entry: &crate::store::OutboxRow,
    event: &str,
    error: Option<&str>,
) -> crate::store::AuditEvent {
    crate::store::AuditEvent {
        event: event.into(),
        device_id: entry.device_id.clone(),
        serial: Some(entry.serial.clone()),
        reason: Some(entry.reason.clone()),
        actor: Some("outbox".into()),
        facts: Some(serde_json::json!({ "action": entry.cause }).to_string()),
        detail: Some(format!(
            "serial={} reason={} cause={}{}",
            entry.serial,
            entry.reason,
            entry.cause,
            error.map(|d| format!(" error={d}")).unwrap_or_default()
        )),
        ..Default::default()
    }
}

/// Expired challenges are kept this long (for audit correlation) before pruning.
pub const PRUNE_GRACE_SECS: i64 = 24 * 3600;

/// How often the worker prunes expired challenges.
pub const PRUNE_EVERY: Duration = Duration::from_secs(600);

/// Exponential backoff in seconds for the given number of past attempts.
pub fn backoff(c: &OutboxConfig, attempts: i64) -> i64 {
    let shift = u32::try_from(attempts.clamp(0, 20)).unwrap_or(20);
    c.base_delay_secs
        .saturating_mul(1i64 << shift)
        .min(c.max_delay_secs)
}
