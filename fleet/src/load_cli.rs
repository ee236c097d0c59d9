//! `device-fleet load`: the light load client's arguments and output (issue 19).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use device_fleet::load::{Challenges, LoadOptions, LoadReport};
use scep::csr::ChallengePassword;

/// Prebuilt PKCSReqs sent with keep-alive, N in flight, every CertRep checked afterwards.
#[derive(Args)]
pub(crate) struct LoadArgs {
    /// SCEP URL.
    #[arg(long)]
    url: String,
    /// Requests (one pooled RSA-2048 key each).
    #[arg(long, default_value_t = 1000)]
    requests: usize,
    /// Requests in flight at most.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Plain mode: file holding the one static challenge.
    #[arg(long, conflicts_with = "mscep_admin")]
    challenge_file: Option<PathBuf>,
    /// Full pipeline: NDES's admin page (`.../certsrv/mscep_admin/`), one one-time challenge
    /// per request, fetched before the window.
    #[arg(long, requires = "mscep_admin_token_file")]
    mscep_admin: Option<String>,
    /// File holding the admin page's bearer token.
    #[arg(long)]
    mscep_admin_token_file: Option<PathBuf>,
    /// CA thumbprint to pin (hex SHA-1 or SHA-256).
    #[arg(long)]
    ca_fingerprint: Option<String>,
    /// Directory of pre-generated keys, filled on first use and reused.
    #[arg(long)]
    key_pool: Option<PathBuf>,
    /// Device name prefix (the CSRs' CN).
    #[arg(long, default_value = "load")]
    prefix: String,
    /// The server's process id: its CPU time over the window and its peak RSS are reported.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Print the report as JSON (else a Markdown table row with its header).
    #[arg(long)]
    json: bool,
}

/// Run the load and print its report; fails when any reply was not a valid certificate.
pub(crate) async fn load(a: LoadArgs, timeout: Duration) -> anyhow::Result<()> {
    let challenges = match (&a.challenge_file, &a.mscep_admin) {
        (Some(f), _) => Challenges::Static(Arc::new(ChallengePassword::new(
            foundation::secret::read_secret_file(f)?.expose().to_owned(),
        ))),
        (None, Some(url)) => Challenges::MscepAdmin {
            url: url.clone(),
            token: foundation::secret::read_secret_file(
                a.mscep_admin_token_file
                    .as_deref()
                    .context("--mscep-admin-token-file")?,
            )?,
        },
        (None, None) => Challenges::None,
    };
    let options = LoadOptions {
        url: a.url,
        requests: a.requests,
        concurrency: a.concurrency,
        ca_thumbprint: a.ca_fingerprint,
        key_pool: a.key_pool,
        prefix: a.prefix,
        challenges,
        server_pid: a.server_pid,
        timeout,
    };
    let report = device_fleet::load::run(&options).await?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("{}\n{}", LoadReport::TABLE_HEADER, report.table_row());
        for (reason, n) in &report.certificates.invalid {
            println!("invalid: {reason} x{n}");
        }
    }
    let invalid: usize = report.certificates.invalid.values().sum();
    anyhow::ensure!(
        invalid == 0,
        "{invalid} of {} replies not valid",
        a.requests
    );
    Ok(())
}
