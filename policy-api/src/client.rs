//! [`RemotePolicy`]: the NDES contract over HTTP to a remote policy-module (`/internal/v1/*`,
//! bearer token). Any transport or server failure is `Unavailable`, so ndes-proxy fails closed.

use std::time::Duration;

use serde::Deserialize;

use crate::contract::{
    ChallengeRequest, Grant, IssuedChallenge, NdesPolicy, Notification, RegrantRequest,
    ReplyReport, VerifyRequest,
};
use crate::error::{ChallengeError, NotifyError, Rejection, VerifyError};
use foundation::Secret;

/// HTTP client implementation of [`NdesPolicy`].
pub struct RemotePolicy {
    client: reqwest::Client,
    base: String,
    token: Secret,
}

impl std::fmt::Debug for RemotePolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemotePolicy")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct Rejected {
    reason: Rejection,
}

impl RemotePolicy {
    /// A client for the policy-module at `base` (e.g. `http://127.0.0.1:8081`).
    pub fn new(base: &str, token: Secret) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .connect_timeout(Duration::from_secs(5))
            .build()?;
        Ok(Self {
            client,
            base: base.trim_end_matches('/').to_string(),
            token,
        })
    }

    /// The same over a caller-built client (e.g. pinned to the lab's root for HTTPS).
    pub fn with_http(client: reqwest::Client, base: &str, token: Secret) -> Self {
        Self {
            client,
            base: base.trim_end_matches('/').to_string(),
            token,
        }
    }

    async fn post<T: serde::Serialize>(
        &self,
        path: &str,
        body: &T,
    ) -> Result<reqwest::Response, reqwest::Error> {
        self.client
            .post(format!("{}{path}", self.base))
            .bearer_auth(self.token.expose())
            .json(body)
            .send()
            .await
    }
}

fn transport<E>(what: &'static str) -> impl FnOnce(reqwest::Error) -> E
where
    E: From<Unavailable>,
{
    move |e| {
        tracing::warn!(error = %e.without_url(), what, "remote policy-module unreachable");
        Unavailable.into()
    }
}

/// Marker converted into each error's `Unavailable`.
struct Unavailable;

impl From<Unavailable> for VerifyError {
    fn from(_: Unavailable) -> Self {
        Self::Unavailable
    }
}
impl From<Unavailable> for ChallengeError {
    fn from(_: Unavailable) -> Self {
        Self::Unavailable
    }
}
impl From<Unavailable> for NotifyError {
    fn from(_: Unavailable) -> Self {
        Self::Unavailable
    }
}

#[async_trait::async_trait]
impl NdesPolicy for RemotePolicy {
    async fn generate_challenge(
        &self,
        req: ChallengeRequest,
    ) -> Result<IssuedChallenge, ChallengeError> {
        let r = self
            .post("/internal/v1/challenges", &req)
            .await
            .map_err(transport::<ChallengeError>("challenge"))?;
        match r.status().as_u16() {
            200 => r
                .json()
                .await
                .map_err(transport::<ChallengeError>("challenge")),
            429 => Err(ChallengeError::CacheFull),
            400 => Err(ChallengeError::InvalidTemplate),
            _ => Err(ChallengeError::Unavailable),
        }
    }

    async fn verify_request(&self, req: VerifyRequest) -> Result<Grant, VerifyError> {
        let r = self
            .post("/internal/v1/verify", &req)
            .await
            .map_err(transport::<VerifyError>("verify"))?;
        match r.status().as_u16() {
            200 => r
                .json::<Grant>()
                .await
                .map_err(transport::<VerifyError>("verify")),
            422 => {
                let body: Rejected = r.json().await.map_err(transport::<VerifyError>("verify"))?;
                Err(VerifyError::Rejected(body.reason))
            }
            _ => Err(VerifyError::Unavailable),
        }
    }

    async fn regrant(&self, req: RegrantRequest) -> Result<Grant, VerifyError> {
        let r = self
            .post("/internal/v1/regrant", &req)
            .await
            .map_err(transport::<VerifyError>("regrant"))?;
        match r.status().as_u16() {
            200 => r
                .json::<Grant>()
                .await
                .map_err(transport::<VerifyError>("regrant")),
            422 => {
                let body: Rejected = r
                    .json()
                    .await
                    .map_err(transport::<VerifyError>("regrant"))?;
                Err(VerifyError::Rejected(body.reason))
            }
            _ => Err(VerifyError::Unavailable),
        }
    }

    async fn notify(&self, n: Notification) -> Result<(), NotifyError> {
        let r = self
            .post("/internal/v1/notify", &n)
            .await
            .map_err(transport::<NotifyError>("notify"))?;
        match r.status().as_u16() {
            204 => Ok(()),
            404 => Err(NotifyError::UnknownTransaction),
            409 => Err(NotifyError::Conflict),
            _ => Err(NotifyError::Unavailable),
        }
    }

    async fn reply_sent(&self, report: ReplyReport) {
        match self.post("/internal/v1/replies", &report).await {
            Ok(r) if r.status().is_success() => {}
            Ok(r) => tracing::warn!(status = r.status().as_u16(), "reply report not taken"),
            Err(e) => tracing::warn!(error = %e.without_url(), "reply report not delivered"),
        }
    }

    /// The policy-module's `/healthz` answers 2xx (no token needed).
    async fn ready(&self) -> Result<(), String> {
        let r = self
            .client
            .get(format!("{}/healthz", self.base))
            .send()
            .await
            .map_err(|e| e.without_url().to_string())?;
        if r.status().is_success() {
            Ok(())
        } else {
            Err(format!("HTTP {}", r.status().as_u16()))
        }
    }
}
