//! `scep-lab profile ...`: SCEP profiles of a running lab, over policy-module's admin API only.
//! `import FILE.json` creates a profile from an Intune SCEP certificate profile (the Graph JSON
//! an administrator exports) and prints what could not be modelled; `export ID --platform P`
//! writes the Graph JSON to create the profile in a tenant (issue 20 item 1). The admin token
//! is read from a file and never printed.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

/// The `profile` subcommands.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum Profile {
    /// Import an Intune SCEP certificate profile (Graph deviceConfiguration JSON) into a
    /// running lab; lists every property that could not be modelled.
    Import(ImportArgs),
    /// Write a profile of a running lab as an Intune SCEP certificate profile (Graph JSON).
    Export(ExportArgs),
    /// Run a synthetic device through check-in, local key, SCEP enrollment, policy decision
    /// and issuance under a profile (an Intune export, a scep-lab profile file, or a stored
    /// profile's id with --lab); report the rendering, the certificate, differences, lint,
    /// template exposures and strength. Exit 0 pass, 1 a finding at or above --fail-on,
    /// 2 usage or run error.
    Test(Box<scep_lab::profile_test::TestArgs>),
}

/// Where the running lab's policy API is.
#[derive(Debug, clap::Args)]
pub(crate) struct LabApi {
    /// The lab's data directory (where the admin token is by default).
    #[arg(long, env = "SCEP_LAB_DATA", default_value = "scep-lab-data")]
    data: PathBuf,
    /// policy-module's base URL.
    #[arg(long, default_value = "http://127.0.0.1:8280")]
    policy_url: String,
    /// File holding the policy-module admin token (default: <data>/secrets/policy-admin.token).
    #[arg(long)]
    admin_token_file: Option<PathBuf>,
    /// The CA certificate to pin for https URLs (default: <data>/tls/root.pem when the lab
    /// wrote one, i.e. runs with --tls).
    #[arg(long)]
    ca_file: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub(crate) struct ImportArgs {
    /// The exported Graph JSON of one SCEP certificate profile.
    file: PathBuf,
    /// The profile id (default: from the document's displayName).
    #[arg(long)]
    id: Option<String>,
    /// The CA template the grants name (Intune keeps it in NDES, not in the profile).
    #[arg(long, default_value = scep_lab::DEVICE_TEMPLATES[0])]
    template: String,
    /// Root to pin, hex SHA-256 or SHA-1 (default: the root the lab's ca-mock serves).
    #[arg(long)]
    ca_thumbprint: Option<String>,
    /// ca-mock's base URL (for the default root).
    #[arg(long, default_value = "http://127.0.0.1:8180")]
    ca_url: String,
    /// Only convert and print; store nothing.
    #[arg(long)]
    dry_run: bool,
    #[command(flatten)]
    api: LabApi,
}

#[derive(Debug, clap::Args)]
pub(crate) struct ExportArgs {
    /// The profile id.
    id: String,
    /// The Graph type to write.
    #[arg(long, value_parser = platform_names())]
    platform: String,
    /// Write the document here (default: stdout).
    #[arg(long)]
    out: Option<PathBuf>,
    #[command(flatten)]
    api: LabApi,
}

fn platform_names() -> Vec<&'static str> {
    policy_module::intune::IntunePlatform::ALL
        .iter()
        .map(|p| p.name())
        .collect()
}

/// Runs a `profile` subcommand; reports go to `out`, notes to stderr. The exit status is 0
/// but for `test`, whose status is its verdict (`scep_lab::profile_test`).
pub(crate) async fn run(cmd: &Profile, out: &mut impl Write) -> Result<u8> {
    match cmd {
        Profile::Import(a) => import(a, out).await.map(|()| 0),
        Profile::Export(a) => export(a, out).await.map(|()| 0),
        Profile::Test(a) => Ok(scep_lab::profile_test::main(a, out).await),
    }
}

struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl LabApi {
    fn client(&self) -> Result<Client> {
        let file = self
            .admin_token_file
            .clone()
            .unwrap_or_else(|| self.data.join("secrets/policy-admin.token"));
        let token = std::fs::read_to_string(&file)
            .with_context(|| format!("reading the admin token {}", file.display()))?;
        Ok(Client {
            http: scep_lab::tool_client::client(
                self.ca_file.as_deref(),
                &self.data,
                Duration::from_secs(30),
            )?,
            base: self.policy_url.trim_end_matches('/').to_owned(),
            token: token.lines().next().unwrap_or_default().trim().to_owned(),
        })
    }
}

impl Client {
    /// The JSON answer of a 2xx; otherwise an error with the API's own message, which names
    /// the property or variable at fault.
    async fn call(&self, req: reqwest::RequestBuilder, what: &str) -> Result<Value> {
        let resp = req
            .bearer_auth(&self.token)
            .send()
            .await
            .with_context(|| format!("{what}: policy-module at {}", self.base))?;
        let status = resp.status();
        let body = resp.bytes().await.with_context(|| what.to_owned())?;
        let json: Option<Value> = serde_json::from_slice(&body).ok();
        if !status.is_success() {
            let said = json
                .as_ref()
                .and_then(|j| j["message"].as_str().or(j["error"].as_str()))
                .map(str::to_owned)
                .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
            bail!("{what}: HTTP {}: {said}", status.as_u16());
        }
        json.with_context(|| format!("{what}: the answer is not JSON"))
    }
}

async fn import(a: &ImportArgs, out: &mut impl Write) -> Result<()> {
    let text = std::fs::read_to_string(&a.file)
        .with_context(|| format!("reading {}", a.file.display()))?;
    let document: Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", a.file.display()))?;
    let client = a.api.client()?;
    let ca_thumbprint = match &a.ca_thumbprint {
        Some(t) => t.clone(),
        None => scep_lab::root_sha256(&client.http, &a.ca_url).await?,
    };
    let mut body = json!({
        "template": a.template,
        "ca_thumbprint": ca_thumbprint,
        "intune": document,
    });
    if let Some(id) = &a.id {
        body["id"] = json!(id);
    }
    let url = format!(
        "{}/api/v1/profiles/import{}",
        client.base,
        if a.dry_run { "?dry_run=true" } else { "" }
    );
    let answer = client
        .call(
            client.http.post(url).json(&body),
            &format!("importing {}", a.file.display()),
        )
        .await?;
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    let id = text(&answer["id"]);
    let platform = text(&answer["platform"]);
    if a.dry_run {
        writeln!(
            out,
            "dry run: profile {id} from a {platform} profile (not stored)"
        )?;
        writeln!(out, "{}", serde_json::to_string_pretty(&answer["profile"])?)?;
    } else {
        let version = answer["profile"]["version"].as_i64().unwrap_or_default();
        writeln!(
            out,
            "imported profile {id} v{version} from a {platform} profile"
        )?;
    }
    for (key, title) in [
        ("unmodelled", "not modelled (left out)"),
        ("defaulted", "not in the document (scep-lab default)"),
    ] {
        list(out, title, &answer[key], "property", "reason")?;
    }
    // How certificates under the template will differ (docs/decisions.md #7).
    list(
        out,
        "template differs",
        &answer["profile"]["warnings"],
        "field",
        "effect",
    )?;
    Ok(())
}

fn list(out: &mut impl Write, title: &str, items: &Value, name: &str, why: &str) -> Result<()> {
    let items = items.as_array().map(Vec::as_slice).unwrap_or_default();
    if items.is_empty() {
        return Ok(());
    }
    writeln!(out, "{title}:")?;
    for i in items {
        let s = |k: &str| i[k].as_str().unwrap_or_default().to_owned();
        writeln!(out, "  {}: {}", s(name), s(why))?;
    }
    Ok(())
}

async fn export(a: &ExportArgs, out: &mut impl Write) -> Result<()> {
    // The id goes into the URL path: only what a profile id can be.
    if !policy_module::model::is_identifier(&a.id) {
        bail!("profile id {:?}: 1-64 characters of [A-Za-z0-9_.-]", a.id);
    }
    let client = a.api.client()?;
    let url = format!("{}/api/v1/profiles/{}/export", client.base, a.id);
    let answer = client
        .call(
            client
                .http
                .get(url)
                .query(&[("platform", a.platform.as_str())]),
            &format!("exporting profile {}", a.id),
        )
        .await?;
    let document = serde_json::to_string_pretty(&answer["document"])? + "\n";
    match &a.out {
        Some(path) => write_file(path, document.as_bytes())?,
        None => out.write_all(document.as_bytes())?,
    }
    let mut notes = Vec::new();
    list(
        &mut notes,
        "not carried by the Graph document",
        &answer["unexported"],
        "property",
        "reason",
    )?;
    std::io::stderr().write_all(&notes)?;
    Ok(())
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}
