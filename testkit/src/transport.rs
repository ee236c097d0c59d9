//! A device-agent SCEP transport that records every request it forwards, and the answer, so a
//! test can see what a device sent (message types, renewal bodies, key bytes that must never
//! leave it). Behind the `transport` feature: only the suites that drive device-agent need it.

use std::sync::{Arc, Mutex, PoisonError};

use device_agent::error::Result;
use device_agent::{ScepRequest, ScepResponse, ScepTransport};

/// One request and, once it came, its answer (`None` when the inner transport failed).
#[derive(Clone, Debug)]
pub struct Exchange {
    pub request: ScepRequest,
    pub response: Option<ScepResponse>,
}

/// Forwards to `inner` and records each exchange once it ends; clones share the record.
pub struct Recording<T> {
    pub inner: Arc<T>,
    log: Arc<Mutex<Vec<Exchange>>>,
}

impl<T> Clone for Recording<T> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            log: self.log.clone(),
        }
    }
}

impl<T> Recording<T> {
    pub fn new(inner: T) -> Self {
        Self {
            inner: Arc::new(inner),
            log: Arc::default(),
        }
    }

    /// Every exchange so far, in order.
    pub fn exchanges(&self) -> Vec<Exchange> {
        self.log().clone()
    }

    /// Every request body sent, answered or not.
    pub fn bodies(&self) -> Vec<Vec<u8>> {
        self.log()
            .iter()
            .map(|e| e.request.body().to_vec())
            .collect()
    }

    /// The operation of every request sent (`GetCACaps`, `PKIOperation`, ...).
    pub fn operations(&self) -> Vec<&'static str> {
        self.log().iter().map(|e| e.request.operation()).collect()
    }

    /// The requests that were answered, with their answers.
    pub fn requests(&self) -> Vec<(ScepRequest, ScepResponse)> {
        self.log()
            .iter()
            .filter_map(|e| Some((e.request.clone(), e.response.clone()?)))
            .collect()
    }

    /// Forget what was recorded.
    pub fn clear(&self) {
        self.log().clear();
    }

    /// The record; a test that panicked while holding it left nothing half-written.
    fn log(&self) -> std::sync::MutexGuard<'_, Vec<Exchange>> {
        self.log.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait::async_trait]
impl<T: ScepTransport> ScepTransport for Recording<T> {
    async fn send(&self, url: &str, request: &ScepRequest) -> Result<ScepResponse> {
        let result = self.inner.send(url, request).await;
        self.log().push(Exchange {
            request: request.clone(),
            response: result.as_ref().ok().cloned(),
        });
        result
    }
}
