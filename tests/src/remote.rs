//! Driving services that run as separate processes ([`crate::processes`]) over HTTP only: the
//! policy module's admin and MDM APIs, and SCEP enrollments whose transactionID, CSR and
//! signer are fixed up front so the very same request can be resent to any ndes-proxy
//! instance (what a client does after a timeout or a dead server).

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use device_agent::mdm::{
    CheckinResponse, DeviceRegistration, MdmClient, RenderedProfile, SecretString, StatusReport,
};
use device_agent::{DeviceDir, DeviceKey, KeySpec};
use openssl::hash::MessageDigest;
use openssl::x509::X509;
use policy_module::model::ProfileSpec;
use scep::client::{CertRep, self_signed_certificate};
use scep::csr::ChallengePassword;
use scep::{RequestBody, TransactionId};

use crate::{RawScep, random_transaction_id, unix_now};

/// The policy module's admin API of one instance.
#[derive(Clone)]
pub struct Admin {
    http: reqwest::Client,
    url: String,
    token: SecretString,
}

impl Admin {
    /// The admin API at `url` with the admin bearer token.
    pub fn new(url: &str, token: &str) -> Result<Self> {
        Ok(Self {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()?,
            url: url.trim_end_matches('/').to_owned(),
            token: SecretString::new(token),
        })
    }

    async fn call(&self, req: reqwest::RequestBuilder, what: &str) -> Result<serde_json::Value> {
        let resp = req
            .bearer_auth(self.token.expose())
            .send()
            .await
            .with_context(|| what.to_owned())?;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        ensure!(status.is_success(), "{what}: HTTP {status}: {text}");
        Ok(serde_json::from_str(&text).unwrap_or(serde_json::Value::Null))
    }

    /// `POST /api/v1/profiles`.
    pub async fn create_profile(&self, id: &str, spec: &ProfileSpec) -> Result<()> {
        let mut body = serde_json::to_value(spec)?;
        body["id"] = id.into();
        let req = self
            .http
            .post(format!("{}/api/v1/profiles", self.url))
            .json(&body);
        self.call(req, "create profile").await.map(drop)
    }

    /// Assign `profile` to one device.
    pub async fn assign_device(&self, profile: &str, device_id: &str) -> Result<()> {
        let req = self
            .http
            .post(format!(
                "{}/api/v1/profiles/{profile}/assignments",
                self.url
            ))
            .json(&serde_json::json!({ "kind": "device", "id": device_id }));
        self.call(req, "assign").await.map(drop)
    }

    /// `GET /api/v1/devices/{id}`: the device with its certificate inventory.
    pub async fn device(&self, device_id: &str) -> Result<serde_json::Value> {
        let req = self
            .http
            .get(format!("{}/api/v1/devices/{device_id}", self.url));
        self.call(req, "get device").await
    }
}

/// A device registered with the MDM, checking in with its own credential.
pub struct RemoteDevice {
    /// The policy module's device id.
    pub id: String,
    /// The device name (rendered into the subject).
    pub name: String,
    credential: SecretString,
}

impl RemoteDevice {
    /// Register `name` through the policy module at `policy_url` (credential kept under `dir`).
    pub async fn register(
        policy_url: &str,
        admin_token: &str,
        name: &str,
        dir: &Path,
    ) -> Result<Self> {
        let state = DeviceDir::open(dir.join(name))?;
        let registration = DeviceRegistration {
            name: name.into(),
            platform: "windows".into(),
            serial_number: Some(format!("SN-{name}")),
            ..DeviceRegistration::default()
        };
        let reg = mdm(policy_url)?
            .register(&state, &SecretString::new(admin_token), &registration)
            .await?;
        let credential = state
            .read_secret("credential")?
            .context("the credential was not stored")?;
        Ok(Self {
            id: reg.device_id,
            name: name.into(),
            credential: SecretString::new(String::from_utf8(credential)?),
        })
    }

    /// Check in at any policy module instance.
    pub async fn checkin(&self, policy_url: &str) -> Result<CheckinResponse> {
        Ok(mdm(policy_url)?
            .checkin(&self.id, &self.credential, &StatusReport::default())
            .await?)
    }

    /// Check in at `policy_url` and return `profile` as rendered, with a fresh challenge.
    pub async fn rendered(&self, policy_url: &str, profile: &str) -> Result<RenderedProfile> {
        self.checkin(policy_url)
            .await?
            .profiles
            .into_iter()
            .find(|p| p.profile_id == profile)
            .with_context(|| format!("profile {profile} not rendered for {}", self.name))
    }
}

fn mdm(url: &str) -> Result<MdmClient> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    Ok(MdmClient::new(http, url))
}

/// One PKCSReq as a client holds it: key, CSR (with the challenge), self-signed signer and
/// transactionID, fixed, so [`Enrollment::send`] can repeat the identical request anywhere.
pub struct Enrollment {
    /// The device's key.
    pub key: DeviceKey,
    /// The CSR, DER.
    pub csr_der: Vec<u8>,
    /// The transactionID.
    pub transaction_id: TransactionId,
    signer: X509,
}

impl Enrollment {
    /// A fresh key and the CSR the profile renders, carrying its challenge.
    pub fn new(profile: &RenderedProfile) -> Result<Self> {
        Self::new_at(profile, unix_now())
    }

    /// As [`Enrollment::new`] on a device whose clock reads `device_now` (Unix seconds): its
    /// self-signed signer certificate is valid from an hour before that for a day.
    pub fn new_at(profile: &RenderedProfile, device_now: i64) -> Result<Self> {
        let config = profile.enroll_config()?;
        let key = DeviceKey::generate(KeySpec::from_profile(
            &profile.key_algorithm,
            profile.key_size,
        )?)?;
        let challenge = ChallengePassword::new(profile.challenge.expose());
        let csr_der = config
            .csr
            .build(&key, Some(&challenge), MessageDigest::sha256())?;
        let now = device_now;
        let subject = config.csr.subject_name()?;
        let signer = self_signed_certificate(key.pkey(), &subject, now - 3600, now + 86_400)?;
        Ok(Self {
            key,
            csr_der,
            transaction_id: random_transaction_id()?,
            signer,
        })
    }

    /// The request as `scep` would be sent it (a fresh senderNonce each time), DER.
    pub fn pki_message(&self, scep: &RawScep) -> Result<Vec<u8>> {
        let csr =
            scep::csr::Csr::from_der(&self.csr_der).map_err(|e| anyhow::anyhow!("CSR: {e}"))?;
        let body = RequestBody::PkcsReq(csr);
        let (der, _) = scep.build(&body, self.key.pkey(), &self.signer, &self.transaction_id)?;
        Ok(der)
    }

    /// Send (or resend) the request to the ndes-proxy `scep` talks to.
    pub async fn send(&self, scep: &RawScep) -> Result<CertRep> {
        let csr =
            scep::csr::Csr::from_der(&self.csr_der).map_err(|e| anyhow::anyhow!("CSR: {e}"))?;
        scep.send(
            &RequestBody::PkcsReq(csr),
            self.key.pkey(),
            &self.signer,
            &self.transaction_id,
        )
        .await
    }
}
