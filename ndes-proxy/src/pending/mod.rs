//! Durable PENDING (docs/decisions.md #1 and #8): a request answered CertRep PENDING is recorded
//! first, so the answer is never a lie. Two reasons to pend: the template needs manual approval,
//! or the CA was unreachable after the policy module granted the request.
//!
//! Rows are keyed by the request id of [`crate::issuance::RequestId`]; a retransmitted PKCSReq
//! or a CertPoll finds its row and answers from it. State changes are compare-and-set, so two
//! instances (or the poll and the background retry) never move a row twice.

mod memory;
mod sql;

use policy_api::Grant;
use scep::TransactionId;

use crate::issuance::RequestId;

pub use memory::MemoryPendingStore;
pub use sql::SqlPendingStore;

/// Where a pending request stands.
#[derive(Clone, PartialEq, Eq)]
pub enum PendingState {
    /// Granted by the policy module; an administrator must approve it.
    AwaitingApproval,
    /// Approved (or needing no approval); the CA has not issued yet.
    QueuedForCa,
    /// The CA issued this certificate.
    Issued {
        /// Serial, lowercase hex.
        serial_hex: String,
        /// The certificate, DER.
        cert_der: Vec<u8>,
    },
    /// An administrator denied it.
    Denied,
    /// The CA refused it.
    Failed {
        /// Why, for logs and the admin API (never on the SCEP wire).
        reason: String,
    },
}

impl std::fmt::Debug for PendingState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Issued { serial_hex, .. } => write!(f, "Issued({serial_hex})"),
            Self::Failed { reason } => write!(f, "Failed({reason})"),
            other => f.write_str(other.kind().as_str()),
        }
    }
}

/// [`PendingState`] without its data: what the store filters and compares on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StateKind {
    /// See [`PendingState::AwaitingApproval`].
    AwaitingApproval,
    /// See [`PendingState::QueuedForCa`].
    QueuedForCa,
    /// See [`PendingState::Issued`].
    Issued,
    /// See [`PendingState::Denied`].
    Denied,
    /// See [`PendingState::Failed`].
    Failed,
}

impl StateKind {
    /// The column value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AwaitingApproval => "awaiting_approval",
            Self::QueuedForCa => "queued_for_ca",
            Self::Issued => "issued",
            Self::Denied => "denied",
            Self::Failed => "failed",
        }
    }

    /// Issued, denied and failed rows are over: the policy module is owed how they ended.
    pub fn is_ended(self) -> bool {
        matches!(self, Self::Issued | Self::Denied | Self::Failed)
    }

    /// Parse a column (or query parameter) value.
    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::AwaitingApproval,
            Self::QueuedForCa,
            Self::Issued,
            Self::Denied,
            Self::Failed,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

impl PendingState {
    /// The kind of this state.
    pub fn kind(&self) -> StateKind {
        match self {
            Self::AwaitingApproval => StateKind::AwaitingApproval,
            Self::QueuedForCa => StateKind::QueuedForCa,
            Self::Issued { .. } => StateKind::Issued,
            Self::Denied => StateKind::Denied,
            Self::Failed { .. } => StateKind::Failed,
        }
    }
}

/// One pending request as stored.
#[derive(Clone, PartialEq, Eq)]
pub struct PendingRecord {
    /// The idempotency key (see [`crate::issuance::RequestId`]).
    pub request_id: String,
    /// The SCEP transactionID the device uses.
    pub transaction_id: String,
    /// The CA template it will be issued under.
    pub template: String,
    /// DER PKCS#10 as received.
    pub csr_der: Vec<u8>,
    /// What the policy module granted.
    pub grant: Grant,
    /// Where it stands.
    pub state: PendingState,
    /// Failed CA attempts so far.
    pub attempts: u32,
    /// Unix seconds: a queued row is not retried before this.
    pub next_attempt_at: i64,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub updated_at: i64,
    /// Unix seconds at which the policy module heard how the request ended; `None` while it
    /// is open, and on an ended row whose Notify is still owed.
    pub notified_at: Option<i64>,
    /// SHA-256 of the SubjectPublicKeyInfo of the key that signed the request, when it was
    /// not the CSR's key (a client that signs with a throwaway identity): a CertPoll signed
    /// by that same key finds the request. `None` on rows written before it was kept.
    pub signer_key_sha256: Option<Vec<u8>>,
}

impl std::fmt::Debug for PendingRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingRecord")
            .field("request_id", &self.request_id)
            .field("template", &self.template)
            .field("state", &self.state)
            .field("attempts", &self.attempts)
            .field("notified_at", &self.notified_at)
            .finish_non_exhaustive()
    }
}

impl PendingRecord {
    /// A new row in `state` (awaiting approval or queued), due now.
    pub fn new(
        request_id: &RequestId,
        transaction_id: &TransactionId,
        template: &str,
        csr_der: &[u8],
        grant: Grant,
        state: PendingState,
        now: i64,
    ) -> Self {
        Self {
            request_id: request_id.as_str().to_owned(),
            transaction_id: transaction_id.as_str().to_owned(),
            template: template.to_owned(),
            csr_der: csr_der.to_vec(),
            grant,
            state,
            attempts: 0,
            next_attempt_at: now,
            created_at: now,
            updated_at: now,
            notified_at: None,
            signer_key_sha256: None,
        }
    }

    /// The same row, recording the SPKI digest of the key that signed the request.
    pub fn signed_by(mut self, signer_key_sha256: Option<Vec<u8>>) -> Self {
        self.signer_key_sha256 = signer_key_sha256;
        self
    }
}

/// Why the store failed. Logged, never sent to a client (who gets 503 + Retry-After).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database failed or is unreachable.
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    /// Migrations could not run.
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A row does not decode (hand-edited database, or a newer schema).
    #[error("corrupt row: {0}")]
    Corrupt(String),
}

/// The pending requests of this server (shared by every instance in multi-instance mode).
#[async_trait::async_trait]
pub trait PendingStore: Send + Sync {
    /// Record `rec` unless its request id is known; returns what is stored (the existing row on
    /// a retransmission, which the caller compares with its CSR).
    async fn insert(&self, rec: &PendingRecord) -> Result<PendingRecord, StoreError>;

    /// The row for a request id.
    async fn get(&self, request_id: &str) -> Result<Option<PendingRecord>, StoreError>;

    /// Rows in `state` (all if `None`), oldest first, at most `limit`.
    async fn list(
        &self,
        state: Option<StateKind>,
        limit: u32,
    ) -> Result<Vec<PendingRecord>, StoreError>;

    /// Move a row from `from` to `to` if it is still in `from`; `Ok(false)` if it was not (it
    /// is unknown, or someone else moved it first). Moving to queued makes it due at `now`.
    async fn transition(
        &self,
        request_id: &str,
        from: StateKind,
        to: &PendingState,
        now: i64,
    ) -> Result<bool, StoreError>;

    /// Count a failed CA attempt on a queued row and set when to try next.
    async fn reschedule(
        &self,
        request_id: &str,
        next_attempt_at: i64,
        now: i64,
    ) -> Result<(), StoreError>;

    /// Queued rows due at `now`, most overdue first, at most `limit`.
    async fn due(&self, now: i64, limit: u32) -> Result<Vec<PendingRecord>, StoreError>;

    /// Ended rows (issued, denied, failed) whose Notify is still owed, oldest first, at most
    /// `limit`.
    async fn unnotified(&self, limit: u32) -> Result<Vec<PendingRecord>, StoreError>;

    /// Record that the policy module heard how the request ended.
    async fn mark_notified(&self, request_id: &str, now: i64) -> Result<(), StoreError>;
    /// Whether the store answers now, for `/readyz` (the caller bounds the wait). A store in
    /// memory keeps this default.
    async fn ready(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

/// Decode a stored grant.
fn grant_from_json(text: &str) -> Result<Grant, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("grant: {e}")))
}

/// Encode a grant for storage.
fn grant_to_json(grant: &Grant) -> Result<String, StoreError> {
    serde_json::to_string(grant).map_err(|e| StoreError::Corrupt(format!("grant: {e}")))
}
