//! `ndes-proxy serve --config FILE`: composition only (config -> RA, policy client, CA client
//! -> serve until Ctrl-C).

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use ndes_proxy::config::{Config, read_token};
use ndes_proxy::{AppState, CaMockBackend, SystemClock, serve};

#[derive(Debug, Parser)]
#[command(
    name = "ndes-proxy",
    version,
    about = "NDES-compatible SCEP server (RFC 8894)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve SCEP on the configured address.
    Serve {
        /// Configuration file (TOML).
        #[arg(long, env = "NDES_PROXY_CONFIG")]
        config: PathBuf,
        /// Log as JSON lines instead of text.
        #[arg(long)]
        log_json: bool,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let Command::Serve { config, log_json } = Cli::parse().command;
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    if log_json {
        tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .init();
    } else {
        tracing_subscriber::fmt().with_env_filter(filter).init();
    }
    let cfg = Config::load(&config)?;
    let ra = cfg.ra_identity()?;
    let ca_client =
        ca_mock::client::CaClient::new(&cfg.ca.url, Some(read_token(&cfg.ca.token_file)?))
            .context("CA client")?;
    let policy = policy_module::client::RemotePolicy::new(
        &cfg.policy.url,
        policy_module::secret::Secret::new(read_token(&cfg.policy.token_file)?),
    )
    .context("policy client")?;
    let state = AppState::new(
        ra,
        Arc::new(policy),
        Arc::new(CaMockBackend::new(ca_client)),
        cfg.settings(),
        Arc::new(SystemClock),
    );
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .with_context(|| format!("binding {}", cfg.listen))?;
    tracing::info!(listen = %cfg.listen, "ndes-proxy serving SCEP");
    serve(listener, state, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(())
}
