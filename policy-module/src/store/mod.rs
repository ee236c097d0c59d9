//! The store: one SQL text over SQLite (embedded default) or PostgreSQL (several instances).
//!
//! The pool and its query macro are the foundation's (`foundation::sql`: SQLite WAL +
//! `synchronous=FULL`, or PostgreSQL; `on_db!` expands each query once per backend). On
//! PostgreSQL the database clock is "now".

/// Inserts one outbox entry inside the caller's transaction (a macro: it expands per backend),
/// with its `revocation_queued` audit row.
macro_rules! enqueue {
    ($tx:expr, $serial:expr, $reason:expr, $device:expr, $cause:expr, $actor:expr, $now:expr) => {{
        audit_queued!(
            $tx,
            "revocation_queued",
            $serial,
            $reason,
            $cause,
            $actor,
            $now
        );
        sqlx::query(
            "INSERT INTO outbox (serial, reason, device_id, cause, state, attempts, \
             next_attempt_at, created_at) VALUES ($1, $2, $3, $4, 'pending', 0, $5, $5)",
        )
        .bind($serial)
        .bind($reason)
        .bind($device)
        .bind($cause)
        .bind($now)
        .execute(&mut *$tx)
        .await?
    }};
}

/// Binds an audit record to `$sql` (one of the audit inserts) and runs it in `$tx`.
macro_rules! audit_insert {
    ($sql:expr, $tx:expr, $e:expr, $now:expr) => {{
        let e: &$crate::store::AuditEvent = $e;
        sqlx::query($sql)
            .bind($now)
            .bind(&e.event)
            .bind(&e.device_id)
            .bind(&e.profile_id)
            .bind(&e.transaction_id)
            .bind(&e.detail)
            .bind(e.esc1_exposed)
            .bind(&e.request_id)
            .bind(e.profile_version)
            .bind(&e.serial)
            .bind(&e.challenge)
            .bind(&e.actor)
            .bind(&e.reason)
            .bind(&e.facts)
            .bind(&e.source)
            .execute(&mut *$tx)
            .await?
    }};
}

/// Appends an audit record inside the caller's transaction, so the record and the state change
/// it describes commit or roll back together (docs/decisions.md #12).
macro_rules! audit_in {
    ($tx:expr, $e:expr, $now:expr) => {
        audit_insert!($crate::store::outbox::AUDIT_INSERT, $tx, $e, $now)
    };
}

/// Appends an audit record about a certificate inside the caller's transaction: what the
/// record leaves empty of device, profile, version, request id and the client's
/// transactionID is taken from the certificate `e.serial` names.
macro_rules! audit_serial {
    ($tx:expr, $e:expr, $now:expr) => {
        audit_insert!(
            $crate::store::outbox::AUDIT_INSERT_FOR_SERIAL,
            $tx,
            $e,
            $now
        )
    };
}

/// Records, in the caller's transaction, that `serial` was queued to be revoked
/// (`revocation_queued`) or released (`release_queued`): by whom, why, for which action.
macro_rules! audit_queued {
    ($tx:expr, $kind:expr, $serial:expr, $reason:expr, $cause:expr, $actor:expr, $now:expr) => {{
        let e = $crate::store::AuditEvent {
            event: $kind.to_string(),
            serial: Some($serial.to_string()),
            reason: Some($reason.to_string()),
            actor: Some($actor.to_string()),
            facts: Some(serde_json::json!({ "action": $cause }).to_string()),
            ..$crate::store::AuditEvent::default()
        };
        audit_serial!($tx, &e, $now)
    }};
}

/// Queues the release of a certificateHold inside the caller's transaction, with its
/// `release_queued` audit row.
macro_rules! enqueue_release {
    ($tx:expr, $serial:expr, $device:expr, $cause:expr, $actor:expr, $now:expr) => {{
        audit_queued!(
            $tx,
            "release_queued",
            $serial,
            "certificateHold",
            $cause,
            $actor,
            $now
        );
        sqlx::query(
            "INSERT INTO outbox (kind, serial, reason, device_id, cause, state, attempts, \
             next_attempt_at, created_at) VALUES ('release', $1, 'certificateHold', $2, $3, \
             'pending', 0, $4, $4)",
        )
        .bind($serial)
        .bind($device)
        .bind($cause)
        .bind($now)
        .execute(&mut *$tx)
        .await?
    }};
}

mod audit_batch;
mod certificates;
mod challenges;
mod device_pages;
mod inventory;
mod name_policies;
mod outbox;
mod plans;
mod reconcile;
mod trace;

use std::sync::Arc;
use std::time::Duration;

pub(crate) use foundation::on_db;
pub(crate) use foundation::sql::Db;
use foundation::sql::PoolOptions;
use sqlx::migrate::Migrator;

pub use certificates::{CertSearch, ManualRevocation};
pub use challenges::{
    ChallengeRow, IssuedOutcome, IssuedRecord, NewChallenge, RequestRow, ReserveOutcome,
};
pub use device_pages::DeviceSearch;
pub use inventory::{Assignment, OutOfService, Transition};
pub use name_policies::NamePolicyRow;
pub use outbox::{AuditEvent, CommandRow, OutboxRow};
pub use plans::LookupPlan;
pub use reconcile::{AuditCert, AuditChallenge, AuditRequest, SqliteDurability};
pub use trace::TraceGap;

use crate::error::StoreError;
use foundation::clock::Clock;

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("migrations/postgres");

/// Policy-module persistence. Cheap to clone (pools are shared).
#[derive(Clone)]
pub struct Store {
    db: Db,
    clock: Arc<dyn Clock>,
    /// Audit records waiting for their group commit (`audit_batch`).
    audit_queue: Arc<audit_batch::AuditQueue>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.db.backend())
            .finish()
    }
}

impl Store {
    /// Opens (creating if missing) a SQLite database file in WAL mode with synchronous=FULL
    /// and a busy timeout, and migrates it. `clock` is the time source for this instance.
    pub async fn open_sqlite(
        path: &std::path::Path,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, StoreError> {
        let db = Db::open_sqlite_file(path, PoolOptions::default()).await?;
        db.migrate(&SQLITE_MIGRATIONS, &POSTGRES_MIGRATIONS)
            .await
            .map_err(|e| StoreError(e.into()))?;
        let store = Self {
            db,
            clock,
            audit_queue: Arc::default(),
        };
        store.backfill_subjects().await?;
        Ok(store)
    }

    /// Connects to PostgreSQL and migrates. Expiry and timestamps use the database clock, so
    /// every instance sharing the database agrees (docs/decisions.md #4).
    pub async fn connect_postgres(url: &str, clock: Arc<dyn Clock>) -> Result<Self, StoreError> {
        let options = PoolOptions {
            max_connections: 16,
            busy_timeout: Duration::from_secs(10),
        };
        let db = Db::connect_postgres(url, options).await?;
        db.migrate(&SQLITE_MIGRATIONS, &POSTGRES_MIGRATIONS)
            .await
            .map_err(|e| StoreError(e.into()))?;
        let store = Self {
            db,
            clock,
            audit_queue: Arc::default(),
        };
        store.backfill_subjects().await?;
        Ok(store)
    }

    /// Unix seconds: the injected clock on SQLite, the database's on PostgreSQL.
    pub async fn now(&self) -> Result<i64, StoreError> {
        Ok(self
            .db
            .database_now()
            .await?
            .unwrap_or_else(|| self.clock.now()))
    }

    /// Unix seconds on this instance's own clock, without a database round trip: for statements
    /// another service checks against its own clock (signed grants), not for shared state.
    pub fn local_now(&self) -> i64 {
        self.clock.now()
    }

    /// One trivial round trip: whether the database answers (`/readyz`).
    pub async fn ping(&self) -> Result<(), StoreError> {
        Ok(self.db.ping().await?)
    }

    /// Closes the pools (tests use it to simulate an unavailable store).
    pub async fn close(&self) {
        self.db.close().await;
    }

    /// True when this store is PostgreSQL.
    pub fn is_postgres(&self) -> bool {
        self.db.is_postgres()
    }
}
