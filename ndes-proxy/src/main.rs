//! `ndes-proxy serve --config FILE`: composition only (config -> RA, policy client, CA client,
//! pending store, admin credentials -> serve until Ctrl-C or SIGTERM).

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{CommandFactory, Parser, Subcommand};
use foundation::SystemClock;
use ndes_proxy::config::{Config, read_challenge, read_secret};
use ndes_proxy::{
    AppState, MemoryPendingStore, PendingStore, SqlPendingStore, StaticChallenge, serve,
};
use policy_api::NdesPolicy;

#[derive(Debug, Parser)]
#[command(
    name = "ndes-proxy",
    version,
    about = "NDES-compatible SCEP server (RFC 8894)"
)]
struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, default_value = "text", value_parser = foundation::log::LogFormat::NAMES, env = "NDES_PROXY_LOG_FORMAT")]
    log_format: String,
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
        /// Same as `--log-format json` (kept for existing scripts).
        #[arg(long, hide = true)]
        log_json: bool,
    },
    /// Print a shell completion script.
    Completion {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let mut format = cli.log_format.parse().unwrap_or_default();
    if let Command::Serve { log_json: true, .. } = cli.command {
        format = foundation::log::LogFormat::Json;
    }
    foundation::log::init("ndes-proxy", env!("CARGO_PKG_VERSION"), format, "info");
    let config = match cli.command {
        Command::Serve { config, .. } => config,
        Command::Completion { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "ndes-proxy", &mut script);
            foundation::io::write_stdout(&script)?;
            return Ok(());
        }
    };
    let cfg = Config::load(&config)?;
    cfg.validate()?;
    let ra = cfg.ra_identity()?;
    // With [tls] ca_file, the CA and the policy module are called with that root pinned.
    let pin = cfg.tls.pin().context("[tls] ca_file")?;
    let ca_http = foundation::tls::client_builder(pin.as_ref())?
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .context("CA client")?;
    let ca_client = ca_api::client::CaClient::with_http(
        ca_http,
        &cfg.ca.url,
        Some(read_secret(&cfg.ca.token_file)?.expose().to_owned()),
    );
    let policy = policy(&cfg, pin.as_ref())?;
    let mut builder = AppState::builder(
        ra,
        policy,
        Arc::new(ca_api::HttpCa::new(ca_client)),
        cfg.settings(),
        Arc::new(SystemClock),
    )
    .pending_store(pending_store(&cfg).await?);
    if let Some(token) = cfg.admin_token()? {
        builder = builder.admin_token(token);
    }
    if let Some(page) = cfg.mscep_admin()? {
        builder = builder.mscep_admin(page);
    }
    let state = builder.build();
    let listener = foundation::listen::listen(cfg.listen)
        .await
        .with_context(|| format!("binding {}", cfg.listen))?;
    let (Some(watch), Some(https)) = (cfg.tls.server().context("[tls]")?, cfg.https_listen) else {
        tracing::info!(listen = %cfg.listen, "ndes-proxy serving SCEP");
        serve(listener, state, shutdown_signal()).await?;
        return Ok(());
    };
    let https = foundation::listen::listen(https)
        .await
        .with_context(|| format!("binding https_listen {https}"))?;
    let https_base = format!("https://{}", https.local_addr()?);
    tracing::info!(listen = %cfg.listen, https = %https_base, "ndes-proxy serving SCEP, and everything over HTTPS");
    let tls = watch.tls();
    let reload = watch.spawn(foundation::tls_files::RELOAD_CHECK);
    let served =
        ndes_proxy::serve_tls(listener, https, state, tls, &https_base, shutdown_signal()).await;
    reload.abort();
    served?;
    Ok(())
}

/// The policy module over HTTP, or plain mode's fixed challenge.
fn policy(
    cfg: &Config,
    pin: Option<&foundation::tls::ClientTls>,
) -> anyhow::Result<Arc<dyn NdesPolicy>> {
    if let Some(plain) = &cfg.plain {
        let challenge = read_challenge(&plain.challenge_file)?;
        tracing::info!(template = %plain.template, "plain mode: one static challenge, no policy module");
        return Ok(Arc::new(StaticChallenge::new(
            challenge,
            plain.template.clone(),
            plain.validity_days,
        )));
    }
    let remote = cfg
        .policy
        .as_ref()
        .context("configure [policy] or [plain]")?;
    let http = foundation::tls::client_builder(pin)?
        .timeout(std::time::Duration::from_secs(15))
        .connect_timeout(std::time::Duration::from_secs(5))
        .build()
        .context("policy client")?;
    let policy = policy_api::client::RemotePolicy::with_http(
        http,
        &remote.url,
        read_secret(&remote.token_file)?,
    );
    Ok(Arc::new(policy))
}

/// The configured pending store: SQLite, PostgreSQL, or (with a warning) memory.
async fn pending_store(cfg: &Config) -> anyhow::Result<Arc<dyn PendingStore>> {
    if let Some(path) = &cfg.pending.sqlite {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let store = SqlPendingStore::sqlite_file(path)
            .await
            .with_context(|| format!("opening the pending store {}", path.display()))?;
        return Ok(Arc::new(store));
    }
    if let Some(file) = &cfg.pending.postgres_url_file {
        // The URL may carry a password: the error names the file, never the URL.
        let url = read_secret(file)?;
        let store = SqlPendingStore::postgres(url.expose())
            .await
            .with_context(|| {
                format!(
                    "connecting to the pending store named in {}",
                    file.display()
                )
            })?;
        return Ok(Arc::new(store));
    }
    tracing::warn!("no [pending] database configured: pending requests are lost on restart");
    Ok(Arc::new(MemoryPendingStore::new()))
}

/// Ctrl-C or SIGTERM (service managers stop with SIGTERM).
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
    tracing::info!("shutdown requested");
}
