//! `device-fleet`: the CLI of the load tool (formerly `device-agent fleet`, same flags and
//! output). Composition only: read arguments and secrets, build the transports, run the
//! fleet, print.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, CommandFactory, Parser, Subcommand};
use device_agent::mdm::SecretString;
use device_agent::{DeviceDir, EnrollConfig, HttpTransport, KeySpec, ScepTransport};
use device_fleet::{DeviceResult, FleetMode, FleetOptions, FleetReport, HerdOptions, OnResult};
use scep::csr::ChallengePassword;

mod load_cli;

#[derive(Parser)]
#[command(
    name = "device-fleet",
    version,
    about = "Many simulated devices at once: a load test of a SCEP deployment",
    subcommand_negates_reqs = true
)]
struct Cli {
    /// HTTP timeout per request, seconds.
    #[arg(
        long,
        global = true,
        default_value_t = 30,
        env = "DEVICE_AGENT_TIMEOUT"
    )]
    timeout: u64,
    /// Log format on stderr.
    #[arg(long, global = true, default_value = "text", value_parser = foundation::log::LogFormat::NAMES, env = "DEVICE_FLEET_LOG_FORMAT")]
    log_format: String,
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    fleet: FleetArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Print a shell completion script.
    Completion {
        /// bash, zsh, fish, powershell or elvish.
        shell: clap_complete::Shell,
    },
    /// The light load client (issue 19): PKCSReqs built before the timed window, sent with
    /// keep-alive, N in flight, every CertRep checked afterwards.
    Load(load_cli::LoadArgs),
}

#[derive(Args)]
struct FleetArgs {
    /// Number of devices.
    #[arg(long, default_value_t = 100)]
    devices: usize,
    /// Enrollments in flight at most.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Plain mode: SCEP URL.
    #[arg(long, required_unless_present = "mdm")]
    url: Option<String>,
    /// Challenge password (prefer --challenge-file or the environment: arguments are visible
    /// to other local users).
    #[arg(long, env = "DEVICE_AGENT_CHALLENGE", hide_env_values = true)]
    challenge: Option<String>,
    /// File holding the challenge password.
    #[arg(long, conflicts_with = "challenge")]
    challenge_file: Option<PathBuf>,
    #[arg(long)]
    ca_fingerprint: Option<String>,
    /// MDM mode: policy-module base URL.
    #[arg(long, conflicts_with = "url", requires_all = ["admin_token_file", "group"])]
    mdm: Option<String>,
    #[arg(long)]
    admin_token_file: Option<PathBuf>,
    /// MDM mode: group the profiles are assigned to.
    #[arg(long)]
    group: Option<String>,
    #[arg(long, default_value = "rsa2048")]
    key: String,
    /// Directory of pre-generated keys, filled on first use and reused.
    #[arg(long)]
    key_pool: Option<PathBuf>,
    /// Parent of the per-device state directories (a temporary one when absent).
    #[arg(long)]
    state_root: Option<PathBuf>,
    /// Device name prefix.
    #[arg(long, default_value = "fleet")]
    prefix: String,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
    /// MDM mode: then renew every enrolled device at once (the renewal herd, catalogue L5).
    #[arg(long, requires = "mdm")]
    renew_herd: bool,
    /// Devices renewing at the same moment in the herd.
    #[arg(long, default_value_t = 1024)]
    herd_concurrency: usize,
    /// Rounds of the herd: devices still without a new certificate retry in the next.
    #[arg(long, default_value_t = 10)]
    herd_rounds: usize,
    /// Seconds between herd rounds.
    #[arg(long, default_value_t = 5)]
    herd_round_pause: u64,
}

impl FleetArgs {
    fn challenge(&self) -> anyhow::Result<Option<ChallengePassword>> {
        Ok(match (&self.challenge, &self.challenge_file) {
            (Some(c), _) => Some(ChallengePassword::new(c.clone())),
            (None, Some(f)) => Some(ChallengePassword::new(read_secret(f)?)),
            (None, None) => None,
        })
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    foundation::log::init(
        "device-fleet",
        env!("CARGO_PKG_VERSION"),
        cli.log_format.parse().unwrap_or_default(),
        "warn",
    );
    match run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    if let Some(Command::Completion { shell }) = cli.command {
        let mut command = Cli::command();
        let mut script = Vec::new();
        clap_complete::generate(shell, &mut command, "device-fleet", &mut script);
        foundation::io::write_stdout(&script)?;
        return Ok(());
    }
    if let Some(Command::Load(args)) = cli.command {
        return load_cli::load(args, Duration::from_secs(cli.timeout)).await;
    }
    let http = device_agent::transport::http_client_builder(Duration::from_secs(cli.timeout))
        .build()
        .context("HTTP client")?;
    let scep: Arc<dyn ScepTransport> = Arc::new(HttpTransport::with_client(http.clone()));
    fleet(cli.fleet, http, scep).await
}

async fn fleet(
    a: FleetArgs,
    http: reqwest::Client,
    scep: Arc<dyn ScepTransport>,
) -> anyhow::Result<()> {
    let key: KeySpec = a.key.parse()?;
    let mode = match (&a.url, &a.mdm) {
        (Some(url), _) => {
            let mut config = EnrollConfig::plain(url, "fleet");
            config.ca_thumbprint = a.ca_fingerprint.clone();
            config.key = key.to_string();
            FleetMode::Plain {
                config,
                challenge: a.challenge()?.map(Arc::new),
            }
        }
        (None, Some(mdm)) => FleetMode::Mdm {
            mdm_url: mdm.clone(),
            admin_token: SecretString::new(read_secret(
                a.admin_token_file
                    .as_deref()
                    .context("--admin-token-file")?,
            )?),
            group: a.group.clone().context("--group")?,
            platform: "windows".into(),
        },
        (None, None) => bail!("--url (plain) or --mdm (MDM mode)"),
    };
    let state_root = match &a.state_root {
        Some(p) => p.clone(),
        None => temporary_state_root()?,
    };
    let options = FleetOptions {
        devices: a.devices,
        concurrency: a.concurrency,
        key,
        key_pool: a.key_pool.clone(),
        state_root,
        prefix: a.prefix.clone(),
        mode,
        herd: a.renew_herd.then_some(HerdOptions {
            concurrency: a.herd_concurrency,
            rounds: a.herd_rounds,
            round_pause: Duration::from_secs(a.herd_round_pause),
        }),
    };
    let on_result = progress(a.devices, a.json);
    let report = device_fleet::run(scep, http, &options, on_result).await?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_summary(&report);
    }
    if a.state_root.is_none() {
        let _ = std::fs::remove_dir_all(&options.state_root);
    }
    if report.failed > 0 {
        bail!("{} device(s) failed", report.failed)
    } else if let Some(h) = report.herd.as_ref().filter(|h| h.not_renewed > 0) {
        bail!("{} device(s) did not renew", h.not_renewed)
    } else {
        Ok(())
    }
}

fn print_summary(report: &FleetReport) {
    println!(
        "devices {}  succeeded {}  failed {}  concurrency {}  key {}",
        report.devices, report.succeeded, report.failed, report.concurrency, report.key
    );
    println!(
        "key phase {:.2}s ({} generated)  enroll phase {:.2}s  {:.1} enrollments/s",
        report.key_phase_secs,
        report.keys_generated,
        report.enroll_phase_secs,
        report.enrollments_per_sec
    );
    println!(
        "latency ms  p50 {:.1}  p90 {:.1}  p99 {:.1}  max {:.1}",
        report.latency.p50_ms, report.latency.p90_ms, report.latency.p99_ms, report.latency.max_ms
    );
    for (reason, n) in &report.failures {
        println!("failed: {reason} x{n}");
    }
    println!(
        "certificates valid {}  ({:.1} valid/s)",
        report.certificates.valid, report.valid_per_sec
    );
    for (reason, n) in &report.certificates.invalid {
        println!("invalid certificate: {reason} x{n}");
    }
    if let Some(h) = &report.herd {
        println!(
            "herd: {} of {} renewed in {} round(s), {:.2}s, {:.1} renewals/s; \
             {} PKIOperations, {} answered 503 ({} with Retry-After)",
            h.renewed,
            h.devices,
            h.renewed_per_round.len(),
            h.renew_phase_secs,
            h.renewals_per_sec,
            h.pki_operations,
            h.answered_503,
            h.retry_after
        );
        for (reason, n) in &h.ended_without_certificate {
            println!("herd: a run ended without a new certificate: {reason} x{n}");
        }
    }
}

/// A progress bar on a terminal; a plain line per 10% otherwise; nothing with --json.
fn progress(total: usize, json: bool) -> OnResult {
    if json {
        return Arc::new(|_| {});
    }
    if std::io::stderr().is_terminal() {
        let bar = indicatif::ProgressBar::new(total as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:40} {pos}/{len} enrolled  {per_sec}  eta {eta}  {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        let failed = AtomicUsize::new(0);
        return Arc::new(move |r: &DeviceResult| {
            if r.failure.is_some() {
                let n = failed.fetch_add(1, Ordering::Relaxed) + 1;
                bar.set_message(format!("{n} failed"));
            }
            bar.inc(1);
            if bar.position() as usize >= total {
                bar.finish();
            }
        });
    }
    let done = AtomicUsize::new(0);
    let step = (total / 10).max(1);
    Arc::new(move |r: &DeviceResult| {
        let n = done.fetch_add(1, Ordering::Relaxed) + 1;
        if let Some(reason) = &r.failure {
            eprintln!("{}: failed ({reason})", r.name);
        }
        if n.is_multiple_of(step) || n == total {
            eprintln!("{n}/{total} done");
        }
    })
}

/// A fresh private directory for the devices' state, removed after the run.
fn temporary_state_root() -> anyhow::Result<PathBuf> {
    let mut bytes = [0u8; 8];
    openssl::rand::rand_bytes(&mut bytes)?;
    let dir = std::env::temp_dir().join(format!("device-fleet-{}", hex::encode(bytes)));
    DeviceDir::open(&dir)?;
    Ok(dir)
}

/// A secret file's first line (the foundation's reading: an empty file is an error; the
/// error names the file, never its content).
fn read_secret(path: &Path) -> anyhow::Result<String> {
    Ok(foundation::secret::read_secret_file(path)?
        .expose()
        .to_owned())
}
