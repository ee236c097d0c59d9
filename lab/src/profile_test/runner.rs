//! One synthetic device through the real pipeline, over the lab's HTTP APIs only: the profile
//! is created (a copy, so the profile under test is never changed), the device registered and
//! targeted, the rendering previewed, then the device agent checks in, makes its key, enrols
//! over SCEP and installs what ca-mock issued under the policy module's grant.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use ca_api::template::TemplateInfo;
use ca_api::wire::LintViolation;
use device_agent::agent::{Agent, SyncOptions};
use device_agent::mdm::{MdmClient, Registration};
use device_agent::{DeviceDir, HttpTransport};
use foundation::secret::Secret;
use openssl::x509::X509;
use openssl::x509::store::X509StoreBuilder;
use policy_module::intune::{ImportOptions, Unmodelled, import};
use policy_module::model::{DeviceSpec, ProfileSpec};
use policy_module::profile_view::Preview;
use policy_module::render::Expected;
use policy_module::template_check::ProfileWarning;
use serde::Serialize;
use serde_json::{Value, json};

use super::cert::{CertView, decode};
use crate::DEVICE_TEMPLATES;

/// The lab the device runs against.
pub struct Target {
    /// policy-module's base URL.
    pub policy_url: String,
    /// ca-mock's base URL.
    pub ca_url: String,
    /// policy-module admin token.
    pub admin_token: Secret,
    /// A ca-mock token allowed to read templates.
    pub ca_token: Secret,
    /// For a profile from a file: the lab's SCEP URL and root SHA-256 it is pointed at.
    pub pin: Option<(String, String)>,
}

/// The profile under test.
pub enum ProfileInput {
    /// Settings read from a file.
    Spec(Box<ProfileSpec>),
    /// A profile stored in the lab.
    Id(String),
    /// An Intune SCEP certificate profile (Graph `deviceConfiguration` JSON), imported.
    Intune(Box<Value>),
}

/// What the device ended with.
#[derive(Debug, Clone, Serialize)]
pub struct Issued {
    /// The device certificate.
    pub cert: CertView,
    /// Issuing CA, then root.
    pub chain: Vec<CertView>,
    /// Whether the chain verifies from the certificate to the root it ends in.
    #[serde(serialize_with = "ok_or_reason")]
    pub chain_verified: Result<(), String>,
}

fn ok_or_reason<S: serde::Serializer>(r: &Result<(), String>, s: S) -> Result<S::Ok, S::Error> {
    match r {
        Ok(()) => s.serialize_str("verified"),
        Err(why) => s.serialize_str(why),
    }
}

/// Everything the report is made from.
pub struct Outcome {
    /// The copy the device was targeted with.
    pub profile_id: String,
    /// Where the settings came from.
    pub source: String,
    /// The settings tested.
    pub spec: ProfileSpec,
    /// What an Intune import could not model.
    pub unmodelled: Vec<Unmodelled>,
    /// The device's attributes.
    pub device: DeviceSpec,
    /// The device's id in the lab.
    pub device_id: String,
    /// The template as the CA describes it.
    pub template: Result<TemplateInfo, String>,
    /// Subject, SANs and usages the profile renders for the device.
    pub rendered: Option<Expected>,
    /// Why it does not render.
    pub render_error: Option<String>,
    /// The policy module's own profile-versus-template warnings.
    pub warnings: Vec<ProfileWarning>,
    /// The certificate, or why there is none.
    pub enrollment: Result<Issued, String>,
    /// The CA's lint of the certificate (`GET /api/v1/certificates/{serial}/lint`), or why
    /// it could not be read.
    pub lint: Option<Result<Vec<LintViolation>, String>>,
}

/// Runs the device; `work` holds the device's directory. An error is a run error (the lab
/// unreachable, the profile refused); an enrollment that fails is a finding, in the outcome.
pub async fn run(
    target: &Target,
    input: ProfileInput,
    device: DeviceSpec,
    template: Option<String>,
    work: &Path,
) -> Result<Outcome> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let admin = Admin {
        http: &http,
        base: target.policy_url.trim_end_matches('/'),
        token: &target.admin_token,
    };
    let mut unmodelled = Vec::new();
    let (mut spec, source, pin_root) = match input {
        ProfileInput::Spec(spec) => (*spec, "file".to_owned(), true),
        ProfileInput::Id(id) => (admin.profile(&id).await?, format!("profile {id}"), false),
        ProfileInput::Intune(doc) => {
            let options = ImportOptions {
                id: None,
                template: template
                    .clone()
                    .unwrap_or_else(|| DEVICE_TEMPLATES[0].into()),
                ca_thumbprint: "0".repeat(64),
            };
            let imported = import(&doc, &options).context("importing the Intune profile")?;
            unmodelled = imported.unmodelled;
            let source = format!("Intune {} profile", imported.platform.name());
            (imported.spec, source, true)
        }
    };
    if let Some(t) = template {
        spec.template = t;
    }
    // The device enrols with this lab's SCEP server whatever the profile names (an imported
    // profile keeps its tenant's NDES URLs). A file's root is another PKI's, so it is replaced
    // too; a stored profile's pinned root is part of what is tested.
    if let Some((scep, root)) = &target.pin {
        spec.scep_server_urls = vec![scep.clone()];
        if pin_root {
            spec.ca_thumbprint = root.clone();
        }
    }
    let profile_id = format!("proftest-{}", Secret::generate(4)?.expose().to_lowercase());
    let mut body = serde_json::to_value(&spec)?;
    body["id"] = profile_id.clone().into();
    admin
        .call("POST", "/api/v1/profiles", Some(body))
        .await
        .context("creating the profile")?;

    let ca = ca_api::client::CaClient::new(&target.ca_url, Some(target.ca_token.expose().into()))?;
    let template = match ca.template(&spec.template).await {
        Ok(Some(t)) => Ok(t),
        Ok(None) => Err(format!(
            "the CA has no template {:?} for this caller",
            spec.template
        )),
        Err(e) => Err(format!("reading template {:?}: {e}", spec.template)),
    };

    let registered = admin
        .call(
            "POST",
            "/api/v1/devices",
            Some(serde_json::to_value(&device)?),
        )
        .await
        .context("registering the device")?;
    let device_id = registered["device"]["id"]
        .as_str()
        .context("the registration names no device id")?
        .to_owned();
    let credential = registered["credential"]
        .as_str()
        .context("the registration carries no credential")?;
    let dir = DeviceDir::open(work.join("device"))?;
    dir.write_secret("credential", credential.as_bytes())?;
    dir.write_json(
        "registration.json",
        &Registration {
            device_id: device_id.clone(),
            mdm_url: admin.base.to_owned(),
        },
    )?;
    let path = format!("/api/v1/profiles/{profile_id}/assignments");
    admin
        .call(
            "POST",
            &path,
            Some(json!({"kind": "device", "id": device_id})),
        )
        .await
        .context("assigning the profile")?;
    let preview = json!({"profile": spec, "device_id": device_id});
    let preview: Preview = serde_json::from_value(
        admin
            .call("POST", "/api/v1/profiles/preview", Some(preview))
            .await
            .context("previewing the profile")?,
    )
    .context("the preview's answer")?;

    let agent = Agent::new(
        DeviceDir::open(work.join("device"))?,
        MdmClient::new(http.clone(), admin.base),
        Arc::new(HttpTransport::new(Duration::from_secs(30))?),
    );
    let enrollment = enroll(&agent, &dir).await;
    let lint = match &enrollment {
        Ok(issued) => Some(
            ca.lint(&issued.cert.serial)
                .await
                .map(|r| r.violations)
                .map_err(|e| e.to_string()),
        ),
        Err(_) => None,
    };
    Ok(Outcome {
        profile_id,
        source,
        spec,
        unmodelled,
        device,
        device_id,
        template,
        rendered: preview.rendered,
        render_error: preview.render_error,
        warnings: preview.warnings,
        enrollment,
        lint,
    })
}

/// Deletes the test device in a running lab (its certificate is revoked with it).
pub async fn clean_up(target: &Target, device_id: &str) -> Result<()> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let admin = Admin {
        http: &http,
        base: target.policy_url.trim_end_matches('/'),
        token: &target.admin_token,
    };
    admin
        .call("POST", &format!("/api/v1/devices/{device_id}/delete"), None)
        .await
        .map(|_| ())
}

async fn enroll(agent: &Agent, dir: &DeviceDir) -> Result<Issued, String> {
    let summary = agent
        .sync(SyncOptions::default())
        .await
        .map_err(|e| format!("device sync: {e}"))?;
    if let Some(e) = summary.errors.first() {
        return Err(e.message.clone());
    }
    summary
        .installed
        .first()
        .ok_or("the device installed nothing (is the profile assigned and the device active?)")?;
    let installed = dir
        .slots()
        .map_err(|e| e.to_string())?
        .into_iter()
        .find_map(|s| s.installed().ok().flatten())
        .ok_or("no installed certificate on the device")?;
    let chain = installed.1;
    let cert = chain.first().ok_or("empty chain")?;
    Ok(Issued {
        cert: decode(cert).map_err(|e| e.to_string())?,
        chain: chain[1..]
            .iter()
            .map(decode)
            .collect::<Result<_>>()
            .map_err(|e| e.to_string())?,
        chain_verified: verify_chain(cert, &chain),
    })
}

fn verify_chain(cert: &X509, chain: &[X509]) -> Result<(), String> {
    let run = || -> Result<Result<(), String>, openssl::error::ErrorStack> {
        let Some(root) = chain.last().filter(|_| chain.len() > 1) else {
            return Ok(Err("the chain has no root".into()));
        };
        let mut store = X509StoreBuilder::new()?;
        store.add_cert(root.clone())?;
        let store = store.build();
        let mut untrusted = openssl::stack::Stack::new()?;
        for c in &chain[1..] {
            untrusted.push(c.clone())?;
        }
        let mut ctx = openssl::x509::X509StoreContext::new()?;
        let ok = ctx.init(&store, cert, &untrusted, |c| c.verify_cert())?;
        Ok(if ok {
            Ok(())
        } else {
            Err(ctx.error().to_string())
        })
    };
    run().unwrap_or_else(|e| Err(e.to_string()))
}

/// The policy module's admin API.
struct Admin<'a> {
    http: &'a reqwest::Client,
    base: &'a str,
    token: &'a Secret,
}

impl Admin<'_> {
    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value> {
        let url = format!("{}{path}", self.base);
        let req = match method {
            "POST" => self.http.post(&url),
            _ => self.http.get(&url),
        };
        let req = req.bearer_auth(self.token.expose());
        let req = match (body, method) {
            (Some(b), _) => req.json(&b),
            (None, "POST") => req.header("content-type", "application/json").body("{}"),
            (None, _) => req,
        };
        let resp = req
            .send()
            .await
            .with_context(|| format!("{method} {url}"))?;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        if !status.is_success() {
            let why: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            let why = why["error"]
                .as_str()
                .map_or_else(|| status.to_string(), str::to_owned);
            bail!("{method} {path}: {status}: {why}");
        }
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// A stored profile's settings.
    async fn profile(&self, id: &str) -> Result<ProfileSpec> {
        let mut v = self
            .call("GET", &format!("/api/v1/profiles/{id}"), None)
            .await
            .with_context(|| format!("reading profile {id:?}"))?;
        if let Some(map) = v.as_object_mut() {
            for k in ["id", "version", "updated_at", "warnings"] {
                map.remove(k);
            }
        }
        serde_json::from_value(v).with_context(|| format!("profile {id:?}'s settings"))
    }
}
