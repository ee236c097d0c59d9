//! Where the policy module reads its CA's templates ([`TemplateSource`]; over HTTP,
//! [`CaTemplates`]) and how a profile gets its warnings from them
//! (`PolicyService::profile_warnings`, in `profile_view`). A template that cannot be read is a warning, never a
//! failed save (docs/decisions.md #7).

use std::fmt::Debug;
use std::time::Duration;

use ca_api::template::TemplateInfo;
use ca_api::{CaClient, ClientError};
use foundation::secret::Secret;

use crate::model::ProfileSpec;
use crate::template_check::{Consequence, ProfileWarning, compare, warning};

/// Where the policy module reads CA templates.
#[async_trait::async_trait]
pub trait TemplateSource: Send + Sync + Debug {
    /// The template, `Ok(None)` when the CA has none of that name; `Err` says why it could not
    /// be read (no secrets, no internals).
    async fn template(&self, name: &str) -> Result<Option<TemplateInfo>, String>;

    /// Whether the CA answers now, for `/readyz` (the caller bounds the wait).
    async fn ready(&self) -> Result<(), String> {
        Ok(())
    }
}

/// The CA's `GET /api/v1/templates/{name}`, as the policy module's CA caller (Read).
#[derive(Debug)]
pub struct CaTemplates {
    client: CaClient,
}

impl CaTemplates {
    /// Asks the CA at `ca_base` with `token`; short timeouts, since a profile's save waits.
    pub fn new(ca_base: &str, token: &Secret) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .connect_timeout(Duration::from_secs(2))
            .build()?;
        let client = CaClient::with_http(http, ca_base, Some(token.expose().to_owned()));
        Ok(Self { client })
    }

    /// Asks through `client` (built by the caller, e.g. pinned to the lab's CA over HTTPS).
    pub fn from_client(client: CaClient) -> Self {
        Self { client }
    }
}

#[async_trait::async_trait]
impl TemplateSource for CaTemplates {
    async fn template(&self, name: &str) -> Result<Option<TemplateInfo>, String> {
        self.client.template(name).await.map_err(|e| match e {
            ClientError::Api { status, error, .. } => format!("the CA answered {status} {error}"),
            ClientError::Transport(_) => "the CA could not be reached".into(),
            _ => "the CA's answer was not understood".into(),
        })
    }

    async fn ready(&self) -> Result<(), String> {
        self.client.healthz().await.map_err(|e| e.to_string())
    }
}

/// The outcome of asking for a template.
#[derive(Debug, Clone)]
pub(crate) enum TemplateRead {
    Found(TemplateInfo),
    /// The CA has no template of that name.
    Absent,
    /// The CA could not be asked or refused (why, for people).
    Failed(String),
    /// No CA configured.
    NoSource,
}

/// The warnings for `spec` given what reading its template gave.
pub(crate) fn warnings_for(spec: &ProfileSpec, read: &TemplateRead) -> Vec<ProfileWarning> {
    let not_compared = |why: &str| {
        vec![warning(
            "template",
            spec.template.clone(),
            "unknown".into(),
            Consequence::NotCompared,
            format!("{why}; the profile was not compared with its template"),
        )]
    };
    match read {
        TemplateRead::Found(t) => compare(spec, t),
        TemplateRead::Absent => vec![warning(
            "template",
            spec.template.clone(),
            "absent".into(),
            Consequence::Refused,
            "the CA has no template of this name: enrollment will fail".into(),
        )],
        TemplateRead::Failed(why) => not_compared(why),
        TemplateRead::NoSource => {
            not_compared("this policy module has no CA to read templates from")
        }
    }
}
