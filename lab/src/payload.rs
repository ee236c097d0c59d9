//! `scep-lab payload`: what an MDM would push to a real device, minted from a running lab
//! (`scep-lab serve`, or the services started from their configuration files) over its HTTP
//! APIs only. It creates the demo profile if missing (pinned to the root ca-mock serves),
//! registers the device, assigns it the profile and checks in for it in the requested format:
//! an Apple `.mobileconfig`, a Windows SyncML (ClientCertificateInstall CSP) or JSON. The
//! payload carries a fresh one-time challenge; the device credential and tokens are not printed.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use reqwest::StatusCode;

use crate::demo::{PROFILE, demo_profile};
use scep_lab::root_sha256;

/// Where the lab is and what to mint.
#[derive(Debug, clap::Args)]
pub(crate) struct PayloadArgs {
    /// The device name (rendered into the certificate subject).
    #[arg(long)]
    device: String,
    /// mobileconfig, syncml or json.
    #[arg(long, default_value = "mobileconfig", value_parser = ["mobileconfig", "syncml", "json"])]
    format: String,
    /// Write the payload here (default: stdout).
    #[arg(long)]
    out: Option<PathBuf>,
    /// policy-module's base URL.
    #[arg(long, default_value = "http://127.0.0.1:8280")]
    policy_url: String,
    /// ca-mock's base URL (for the root the profile pins).
    #[arg(long, default_value = "http://127.0.0.1:8180")]
    ca_url: String,
    /// The SCEP URL the profile names.
    #[arg(long, default_value = "http://127.0.0.1:8080/certsrv/mscep/mscep.dll")]
    scep_url: String,
    /// Data directory of the lab (for its admin token), as `serve --data`.
    #[arg(long, env = "SCEP_LAB_DATA", default_value = "scep-lab-data")]
    data: PathBuf,
    /// File holding the policy-module admin token (default: <data>/secrets/policy-admin.token).
    #[arg(long)]
    admin_token_file: Option<PathBuf>,
    /// The CA certificate to pin for https URLs (default: <data>/tls/root.pem when the lab
    /// wrote one, i.e. runs with --tls).
    #[arg(long)]
    ca_file: Option<PathBuf>,
}

pub(crate) async fn run(a: &PayloadArgs, out: &mut impl Write) -> Result<()> {
    let file = a
        .admin_token_file
        .clone()
        .unwrap_or_else(|| a.data.join("secrets/policy-admin.token"));
    let token = std::fs::read_to_string(&file).with_context(|| {
        format!(
            "reading the admin token {} (is --data the lab's data directory?)",
            file.display()
        )
    })?;
    let token = token.lines().next().unwrap_or("").trim().to_owned();
    let http =
        scep_lab::tool_client::client(a.ca_file.as_deref(), &a.data, Duration::from_secs(30))?;
    let policy = a.policy_url.trim_end_matches('/');

    let root_sha256 = root_sha256(&http, &a.ca_url).await?;

    let profile = http
        .get(format!("{policy}/api/v1/profiles/{PROFILE}"))
        .bearer_auth(&token)
        .send()
        .await
        .context("policy-module")?;
    match profile.status() {
        StatusCode::OK => {}
        StatusCode::NOT_FOUND => {
            let mut body = serde_json::to_value(demo_profile(a.scep_url.clone(), root_sha256))?;
            body["id"] = PROFILE.into();
            let created = expect_ok(
                http.post(format!("{policy}/api/v1/profiles"))
                    .bearer_auth(&token)
                    .json(&body),
                "creating the profile",
            )
            .await?;
            eprintln!("created profile {PROFILE}");
            // How its certificates will differ from it (docs/decisions.md #7).
            let created: serde_json::Value = serde_json::from_slice(&created)?;
            for w in created["warnings"].as_array().into_iter().flatten() {
                let text = |k: &str| w[k].as_str().unwrap_or_default().to_owned();
                eprintln!(
                    "  template differs on {}: {}",
                    text("field"),
                    text("effect")
                );
            }
        }
        s => bail!("reading profile {PROFILE}: HTTP {s}"),
    }

    let registered = expect_ok(
        http.post(format!("{policy}/api/v1/devices"))
            .bearer_auth(&token)
            .json(&serde_json::json!({ "name": a.device, "platform": a.format_platform() })),
        "registering the device",
    )
    .await?;
    let registered: serde_json::Value = serde_json::from_slice(&registered)?;
    let id = registered["device"]["id"]
        .as_str()
        .context("no device id in the answer")?
        .to_owned();
    let credential = registered["credential"]
        .as_str()
        .context("no credential in the answer")?
        .to_owned();
    expect_ok(
        http.post(format!("{policy}/api/v1/profiles/{PROFILE}/assignments"))
            .bearer_auth(&token)
            .json(&serde_json::json!({ "kind": "device", "id": id })),
        "assigning the profile",
    )
    .await?;
    let payload = expect_ok(
        http.post(format!(
            "{policy}/mdm/v1/devices/{id}/checkin?format={}",
            a.format
        ))
        .bearer_auth(&credential),
        "checking in",
    )
    .await?;
    match &a.out {
        Some(path) => {
            crate_write_private(path, &payload)?;
            eprintln!("device {id}: wrote {}", path.display());
        }
        None => {
            out.write_all(&payload)?;
            eprintln!("device {id}");
        }
    }
    Ok(())
}

impl PayloadArgs {
    fn format_platform(&self) -> &'static str {
        match self.format.as_str() {
            "mobileconfig" => "ios",
            _ => "windows",
        }
    }
}

/// The body of a 2xx answer; otherwise an error with the status and the answer's text.
async fn expect_ok(req: reqwest::RequestBuilder, what: &str) -> Result<Vec<u8>> {
    let resp = req.send().await.with_context(|| what.to_owned())?;
    let status = resp.status();
    let body = resp.bytes().await?.to_vec();
    if !status.is_success() {
        bail!("{what}: HTTP {status}: {}", String::from_utf8_lossy(&body));
    }
    Ok(body)
}

/// The payload holds a one-time challenge: owner-only, like the lab's other secrets.
fn crate_write_private(path: &std::path::Path, bytes: &[u8]) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(bytes)?;
    Ok(())
}
