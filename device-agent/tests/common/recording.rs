//! A transport that records every request body it forwards (to look for key bytes in them).

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use device_agent::error::Result;
use device_agent::{ScepRequest, ScepResponse, ScepTransport};

#[derive(Clone)]
pub struct Recording<T> {
    pub inner: T,
    pub sent: Arc<Mutex<Vec<ScepRequest>>>,
}

impl<T> Recording<T> {
    pub fn new(inner: T) -> Self {
        Self {
            inner,
            sent: Arc::default(),
        }
    }

    pub fn bodies(&self) -> Vec<Vec<u8>> {
        self.sent
            .lock()
            .unwrap()
            .iter()
            .map(|r| r.body().to_vec())
            .collect()
    }

    pub fn operations(&self) -> Vec<&'static str> {
        self.sent
            .lock()
            .unwrap()
            .iter()
            .map(ScepRequest::operation)
            .collect()
    }
}

#[async_trait]
impl<T: ScepTransport> ScepTransport for Recording<T> {
    async fn send(&self, url: &str, request: &ScepRequest) -> Result<ScepResponse> {
        self.sent.lock().unwrap().push(request.clone());
        self.inner.send(url, request).await
    }
}
