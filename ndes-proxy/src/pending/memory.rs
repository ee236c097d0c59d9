//! [`PendingStore`] in memory: for tests and for a server configured without a database (a
//! restart then forgets pending requests, which the configuration docs say).

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::{PendingRecord, PendingState, PendingStore, StateKind, StoreError};

/// Pending requests in a map; lost on restart.
#[derive(Debug, Default)]
pub struct MemoryPendingStore {
    rows: Mutex<BTreeMap<String, PendingRecord>>,
}

impl MemoryPendingStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn rows(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, PendingRecord>> {
        // A panic while holding the lock cannot leave a half-written row (rows are replaced
        // whole), so a poisoned map is still consistent.
        self.rows
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait::async_trait]
impl PendingStore for MemoryPendingStore {
    async fn insert(&self, rec: &PendingRecord) -> Result<PendingRecord, StoreError> {
        let mut rows = self.rows();
        Ok(rows
            .entry(rec.request_id.clone())
            .or_insert_with(|| rec.clone())
            .clone())
    }

    async fn get(&self, request_id: &str) -> Result<Option<PendingRecord>, StoreError> {
        Ok(self.rows().get(request_id).cloned())
    }

    async fn list(
        &self,
        state: Option<StateKind>,
        limit: u32,
    ) -> Result<Vec<PendingRecord>, StoreError> {
        let mut out: Vec<PendingRecord> = self
            .rows()
            .values()
            .filter(|r| state.is_none_or(|s| r.state.kind() == s))
            .cloned()
            .collect();
        out.sort_by(|a, b| (a.created_at, &a.request_id).cmp(&(b.created_at, &b.request_id)));
        out.truncate(limit as usize);
        Ok(out)
    }

    async fn transition(
        &self,
        request_id: &str,
        from: StateKind,
        to: &PendingState,
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut rows = self.rows();
        let Some(row) = rows.get_mut(request_id).filter(|r| r.state.kind() == from) else {
            return Ok(false);
        };
        row.state = to.clone();
        row.updated_at = now;
        if to.kind() == StateKind::QueuedForCa {
            row.next_attempt_at = now;
        }
        Ok(true)
    }

    async fn reschedule(
        &self,
        request_id: &str,
        next_attempt_at: i64,
        now: i64,
    ) -> Result<(), StoreError> {
        if let Some(row) = self
            .rows()
            .get_mut(request_id)
            .filter(|r| r.state.kind() == StateKind::QueuedForCa)
        {
            row.attempts = row.attempts.saturating_add(1);
            row.next_attempt_at = next_attempt_at;
            row.updated_at = now;
        }
        Ok(())
    }

    async fn due(&self, now: i64, limit: u32) -> Result<Vec<PendingRecord>, StoreError> {
        let mut out: Vec<PendingRecord> = self
            .rows()
            .values()
            .filter(|r| r.state.kind() == StateKind::QueuedForCa && r.next_attempt_at <= now)
            .cloned()
            .collect();
        out.sort_by_key(|r| r.next_attempt_at);
        out.truncate(limit as usize);
        Ok(out)
    }

    async fn unnotified(&self, limit: u32) -> Result<Vec<PendingRecord>, StoreError> {
        let mut out: Vec<PendingRecord> = self
            .rows()
            .values()
            .filter(|r| r.notified_at.is_none() && r.state.kind().is_ended())
            .cloned()
            .collect();
        out.sort_by(|a, b| (a.updated_at, &a.request_id).cmp(&(b.updated_at, &b.request_id)));
        out.truncate(limit as usize);
        Ok(out)
    }

    async fn mark_notified(&self, request_id: &str, now: i64) -> Result<(), StoreError> {
        if let Some(row) = self.rows().get_mut(request_id) {
            row.notified_at.get_or_insert(now);
        }
        Ok(())
    }
}
