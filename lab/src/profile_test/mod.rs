//! `scep-lab profile test PROFILE`: one synthetic device through the real pipeline (check-in,
//! local key, SCEP enrollment, policy decision, issuance) under a profile, and a verdict on what
//! came out: the rendering, the certificate and its chain, how it differs from the profile, the
//! CA's lint, AD CS style template exposures, strength, and named relying-party requirements.
//!
//! Exit status: 0 when no finding reaches `--fail-on` (default `high`: only what can be
//! misused or fails what was asked stops a pipeline; `medium` also stops on deviations that
//! should be accepted on purpose), 1 when one does, 2 on a usage or run error (the report is
//! then not written).
//!
//! | file | what |
//! |---|---|
//! | [`runner`] | the lab (ephemeral or running) and the device's run |
//! | [`cert`] | the certificate decoded |
//! | [`findings`] | severities; differences, lint, strength |
//! | [`exposure`] | ESC1, ESC2, ESC3, ESC15 and other template exposures |
//! | [`require`] | `--require 802.1x` / `ikev2` |
//! | [`report`] | the report, as text and JSON |
//! | [`html`] | the report as one self-contained HTML page |

pub mod cert;
pub mod exposure;
pub mod findings;
#[cfg(test)]
mod findings_tests;
pub mod html;
pub mod report;
pub mod require;
pub mod runner;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use foundation::secret::Secret;
use policy_module::model::{DeviceSpec, Platform, ProfileSpec};

pub use findings::Severity;
pub use report::Report;
pub use require::Requirement;
use runner::{ProfileInput, Target};

/// Exit status: no finding at or above `--fail-on`.
pub const EXIT_PASS: u8 = 0;
/// Exit status: a finding at or above `--fail-on`.
pub const EXIT_FINDINGS: u8 = 1;
/// Exit status: usage or run error.
pub const EXIT_ERROR: u8 = 2;

/// `scep-lab profile test`.
#[derive(Debug, clap::Args)]
pub struct TestArgs {
    /// An Intune SCEP certificate profile exported from Graph (JSON with `@odata.type`), a
    /// scep-lab profile JSON file (the settings of `POST /api/v1/profiles`), or with `--lab`
    /// the id of a profile stored in that lab. The device enrols with the lab's SCEP server;
    /// a file's pinned root is replaced by the lab's, a stored profile's is kept.
    pub profile: String,
    /// The device's name ({{DeviceName}}).
    #[arg(long, default_value = "PROFTEST-01")]
    pub device_name: String,
    /// windows, ios, macos or android ({{Platform}}).
    #[arg(long, default_value = "windows", value_parser = ["windows", "ios", "macos", "android"])]
    pub platform: String,
    /// {{SerialNumber}}.
    #[arg(long, default_value = "PT-0001")]
    pub serial: Option<String>,
    /// {{UserPrincipalName}}.
    #[arg(long, default_value = "tester@scep-lab.test")]
    pub upn: Option<String>,
    /// {{EmailAddress}}.
    #[arg(long, default_value = "tester@scep-lab.test")]
    pub email: Option<String>,
    /// {{AAD_Device_ID}}.
    #[arg(long)]
    pub aad_device_id: Option<String>,
    /// {{UserName}}.
    #[arg(long)]
    pub user_name: Option<String>,
    /// Test under this CA template instead of the profile's.
    #[arg(long)]
    pub template: Option<String>,
    /// A ca-mock template file (TOML) the ephemeral lab's CA loads and entitles; the profile is
    /// tested under it unless `--template` names another.
    #[arg(long, conflicts_with = "lab")]
    pub template_file: Option<PathBuf>,
    /// Check a relying party's requirement (repeatable): 802.1x or ikev2.
    #[arg(long, value_enum)]
    pub require: Vec<Requirement>,
    /// Exit 1 when a finding at or above this severity exists.
    #[arg(long, value_enum, default_value = "high")]
    pub fail_on: Severity,
    /// Write the report as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write the report as one self-contained HTML page here.
    #[arg(long)]
    pub html: Option<PathBuf>,
    /// A running lab's policy-module URL; without it an ephemeral lab is started and stopped.
    #[arg(long, value_name = "POLICY_URL")]
    pub lab: Option<String>,
    /// The running lab's ca-mock URL.
    #[arg(long, default_value = "http://127.0.0.1:8180", requires = "lab")]
    pub ca_url: String,
    /// The running lab's secrets directory (policy-admin.token, ca-policy.token).
    #[arg(long, default_value = "scep-lab-data/secrets", requires = "lab")]
    pub secrets: PathBuf,
    /// The running lab's SCEP URL (the device enrols there whatever the profile names).
    #[arg(
        long,
        default_value = "http://127.0.0.1:8080/certsrv/mscep/mscep.dll",
        requires = "lab"
    )]
    pub scep_url: String,
}

/// Runs the test, prints the text report to `out`, writes the files asked for, and returns
/// the exit status. Errors are printed to stderr as exit status 2.
pub async fn main(args: &TestArgs, out: &mut impl std::io::Write) -> u8 {
    match run(args).await {
        Ok(report) => {
            let written = report
                .write_text(out)
                .map_err(anyhow::Error::from)
                .and_then(|()| write_files(args, &report));
            match written {
                Ok(()) if report.passed() => EXIT_PASS,
                Ok(()) => EXIT_FINDINGS,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    EXIT_ERROR
                }
            }
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            EXIT_ERROR
        }
    }
}

fn write_files(args: &TestArgs, report: &Report) -> Result<()> {
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(report)?;
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &args.html {
        std::fs::write(path, html::render(report))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// Runs the device and builds the report.
pub async fn run(args: &TestArgs) -> Result<Report> {
    let input = profile_input(&args.profile, args.lab.is_some())?;
    let device = device_spec(args)?;
    let work = tempfile::tempdir()?;
    let Some(policy_url) = &args.lab else {
        return ephemeral(args, input, device, work.path()).await;
    };
    let target = Target {
        policy_url: policy_url.clone(),
        ca_url: args.ca_url.clone(),
        admin_token: read_token(&args.secrets.join("policy-admin.token"))?,
        ca_token: read_token(&args.secrets.join("ca-policy.token"))?,
        pin: Some((args.scep_url.clone(), root_sha256(&args.ca_url).await?)),
    };
    let outcome = runner::run(&target, input, device, args.template.clone(), work.path()).await?;
    if let Err(e) = runner::clean_up(&target, &outcome.device_id).await {
        tracing::warn!(error = %e, "the test device was not deleted");
    }
    Ok(Report::new(
        outcome,
        policy_url,
        &args.require,
        args.fail_on,
    ))
}

/// Starts a lab in a temporary directory, runs the device, stops the lab.
async fn ephemeral(
    args: &TestArgs,
    input: ProfileInput,
    device: DeviceSpec,
    work: &Path,
) -> Result<Report> {
    let mut options = crate::LabOptions::new(&work.join("lab"));
    let mut template = args.template.clone();
    if let Some(file) = &args.template_file {
        let t = ca_mock::template::Template::load(file)
            .map_err(|e| anyhow::anyhow!("{e}"))
            .with_context(|| format!("loading {}", file.display()))?;
        template.get_or_insert_with(|| t.name.clone());
        options.extra_templates.push(t);
    }
    let lab = crate::Lab::start(options)
        .await
        .context("starting the lab")?;
    let target = Target {
        policy_url: lab.policy_url(),
        ca_url: lab.ca_url(),
        admin_token: lab.tokens().policy_admin.clone(),
        ca_token: lab.tokens().ca_policy.clone(),
        pin: Some((lab.scep_url(), lab.root_fingerprint().to_owned())),
    };
    let result = runner::run(&target, input, device, template, work).await;
    lab.shutdown().await;
    Ok(Report::new(
        result?,
        "ephemeral",
        &args.require,
        args.fail_on,
    ))
}

/// A file holding settings, or (with a running lab) a stored profile's id.
fn profile_input(profile: &str, running_lab: bool) -> Result<ProfileInput> {
    let path = Path::new(profile);
    if path.is_file() {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let doc: serde_json::Value =
            serde_json::from_str(&text).with_context(|| format!("{}: not JSON", path.display()))?;
        if doc.get("@odata.type").is_some() {
            return Ok(ProfileInput::Intune(Box::new(doc)));
        }
        let spec: ProfileSpec = serde_json::from_value(doc)
            .with_context(|| format!("{}: not scep-lab profile settings", path.display()))?;
        return Ok(ProfileInput::Spec(Box::new(spec)));
    }
    if !running_lab {
        bail!(
            "{profile:?} is not a file; a profile id needs --lab (the ephemeral lab starts empty)"
        );
    }
    Ok(ProfileInput::Id(profile.to_owned()))
}

fn device_spec(args: &TestArgs) -> Result<DeviceSpec> {
    let platform: Platform = serde_json::from_value(args.platform.clone().into())
        .context("--platform: windows, ios, macos or android")?;
    Ok(DeviceSpec {
        id: None,
        name: args.device_name.clone(),
        platform,
        serial_number: args.serial.clone(),
        owner_upn: args.upn.clone(),
        owner_email: args.email.clone(),
        aad_device_id: args.aad_device_id.clone(),
        user_name: args.user_name.clone(),
    })
}

/// SHA-256 of the root certificate the running lab's ca-mock serves.
async fn root_sha256(ca_url: &str) -> Result<String> {
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .build()?;
    crate::root_sha256(&http, ca_url).await
}

fn read_token(path: &Path) -> Result<Secret> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(Secret::new(text.lines().next().unwrap_or("").trim()))
}
