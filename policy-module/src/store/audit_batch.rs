//! Group commit of the audit records that record no state change of their own: a refusal, and
//! ndes-proxy's report of the reply it sent, one per enrollment ([`Store::audit`]). The policy
//! store's writers are serial (one SQLite writer per file), and that report was a commit of its
//! own beside the grant and the Notify (issue 19). Records that arrive while one batch commits
//! now go together in the next transaction, one fsync for all, and each caller still returns
//! only once its own record is durable, or with the error of its batch.

use std::sync::Mutex;

use tokio::sync::oneshot;

use super::{AuditEvent, Store, StoreError};

type Waiter = oneshot::Sender<Result<(), String>>;

/// The records waiting for the next batch, and the turn to commit one.
#[derive(Default)]
pub(super) struct AuditQueue {
    waiting: Mutex<Vec<(AuditEvent, Waiter)>>,
    /// Held by the caller that commits a batch; the others queue behind it.
    committing: tokio::sync::Mutex<()>,
    /// Batches written, for the tests.
    #[cfg(test)]
    batches: std::sync::atomic::AtomicUsize,
}

impl Store {
    /// Appends one audit record that records no state change of its own, in the next batch.
    pub async fn audit(&self, e: &AuditEvent) -> Result<(), StoreError> {
        let (done, result) = oneshot::channel();
        self.audit_queue.push(e.clone(), done);
        {
            // Whoever holds the turn commits everything queued so far: this record, unless an
            // earlier holder took it into its batch already.
            let _turn = self.audit_queue.committing.lock().await;
            let batch = self.audit_queue.take();
            if !batch.is_empty() {
                let (events, waiters): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
                let outcome = self.audit_all(&events).await.map_err(|e| e.to_string());
                #[cfg(test)]
                self.audit_queue
                    .batches
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                for w in waiters {
                    // A waiter that went away (its caller was dropped) needs no answer.
                    let _ = w.send(outcome.clone());
                }
            }
        }
        match result.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(why)) => Err(StoreError(sqlx::Error::Protocol(why))),
            Err(_) => Err(StoreError(sqlx::Error::Protocol(
                "the audit batch was abandoned".into(),
            ))),
        }
    }
}

impl AuditQueue {
    fn push(&self, e: AuditEvent, done: Waiter) {
        self.lock().push((e, done));
    }

    fn take(&self) -> Vec<(AuditEvent, Waiter)> {
        std::mem::take(&mut *self.lock())
    }

    /// The list stays usable after a panic elsewhere: it holds plain values only.
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(AuditEvent, Waiter)>> {
        self.waiting
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    fn event(n: usize) -> AuditEvent {
        AuditEvent {
            event: "reply_sent".into(),
            transaction_id: Some(format!("tx-{n}")),
            ..AuditEvent::default()
        }
    }

    async fn store(dir: &tempfile::TempDir) -> Store {
        Store::open_sqlite(
            &dir.path().join("policy.db"),
            Arc::new(foundation::clock::SystemClock),
        )
        .await
        .unwrap()
    }

    /// `n` callers of [`Store::audit`], once all their records are queued behind the turn the
    /// test holds.
    async fn callers_behind(
        store: &Store,
        n: usize,
    ) -> Vec<tokio::task::JoinHandle<Result<(), StoreError>>> {
        let callers = (0..n)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move { store.audit(&event(i)).await })
            })
            .collect();
        for _ in 0..200 {
            if store.audit_queue.lock().len() == n {
                return callers;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("never {n} records queued");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn records_that_arrive_during_a_commit_share_the_next_one() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir).await;
        // A commit in progress: 16 callers arrive meanwhile and none returns before its turn.
        let turn = store.audit_queue.committing.lock().await;
        let callers = callers_behind(&store, 16).await;
        assert!(store.list_audit(None, 100).await.unwrap().is_empty());
        drop(turn);
        for c in callers {
            c.await.unwrap().unwrap();
        }
        // The first caller to get the turn wrote all sixteen in one transaction, and every
        // one was durable when its caller returned.
        let rows = store.list_audit(None, 100).await.unwrap();
        assert_eq!(rows.len(), 16);
        assert_eq!(
            store
                .audit_queue
                .batches
                .load(std::sync::atomic::Ordering::Relaxed),
            1
        );
        assert!(store.audit_queue.lock().is_empty());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_caller_of_a_failed_batch_gets_the_error() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir).await;
        let turn = store.audit_queue.committing.lock().await;
        let callers = callers_behind(&store, 4).await;
        foundation::on_db!(&store.db, |pool, _begin| {
            sqlx::query("DROP TABLE audit").execute(pool).await.unwrap();
        });
        drop(turn);
        for c in callers {
            let e = c.await.unwrap().unwrap_err();
            assert!(e.to_string().contains("audit"), "{e}");
        }
        // The queue is empty again and a later record is tried on its own.
        assert!(store.audit_queue.lock().is_empty());
        assert!(store.audit(&event(9)).await.is_err());
    }
}
