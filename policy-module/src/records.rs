//! Where the trace reads the CA's records from: the CA's API (`GET /api/v1/records`) through
//! the outbox's client in a running module, a fake in tests. Apart from `trace` so the service
//! can hold one without the two files importing each other.

use ca_api::wire::{RecordList, RecordQuery};
use ca_api::{CaClient, ClientError};

use crate::outbox::HttpRevoker;

/// The CA's records, as the trace reads them (a fake in tests).
#[async_trait::async_trait]
pub trait RecordSource: Send + Sync + std::fmt::Debug {
    /// One page of the CA's records matching `query`.
    async fn records(&self, query: &RecordQuery) -> Result<RecordList, ClientError>;
}

#[async_trait::async_trait]
impl RecordSource for CaClient {
    async fn records(&self, query: &RecordQuery) -> Result<RecordList, ClientError> {
        Self::records(self, query).await
    }
}

#[async_trait::async_trait]
impl RecordSource for HttpRevoker {
    async fn records(&self, query: &RecordQuery) -> Result<RecordList, ClientError> {
        self.client().records(query).await
    }
}
