//! `scep-console`: the web console as its own process, for the separate-process deployment
//! (`scep-lab services`); `scep-lab serve` runs the same console in process.

use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use foundation::secret::read_secret_file;
use scep_console::clients::{ChallengeMinter, NdesAdmin, PolicyAdmin};
use scep_console::config::Config;

#[derive(Debug, Parser)]
#[command(name = "scep-console", version, about = "scep-lab's web console")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the console until Ctrl-C.
    Serve {
        /// The configuration file (`scep-console sample-config` prints one).
        #[arg(long, default_value = "console.toml")]
        config: PathBuf,
    },
    /// Print a sample configuration.
    SampleConfig,
    /// Read a password from standard input and print its PBKDF2 hash for `[[login.users]]`.
    HashPassword,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .log_internal_errors(false)
        .init();
    match Cli::parse().command {
        Command::SampleConfig => {
            print!("{}", scep_console::config::SAMPLE);
            Ok(())
        }
        Command::HashPassword => {
            let mut input = String::new();
            std::io::stdin()
                .take(4096)
                .read_to_string(&mut input)
                .context("reading the password")?;
            let password = input.lines().next().unwrap_or("");
            anyhow::ensure!(!password.is_empty(), "no password on standard input");
            println!(
                "{}",
                scep_console::auth::PasswordHash::new(password)?.encode()
            );
            Ok(())
        }
        Command::Serve { config } => serve(&config).await,
    }
}

async fn serve(path: &std::path::Path) -> anyhow::Result<()> {
    let (config, base) = Config::load(path)?;
    let token = |f: &std::path::Path| read_secret_file(&base.join(f));
    let policy = PolicyAdmin::new(&config.policy.url, token(&config.policy.token_file)?)?;
    let ndes = NdesAdmin::new(&config.ndes.url, token(&config.ndes.token_file)?)?;
    let ca = ca_api::CaClient::new(
        &config.ca.url,
        Some(token(&config.ca.token_file)?.expose().to_owned()),
    )?;
    let ndes_base = config.ndes.url.trim_end_matches('/');
    let links = scep_console::Links {
        scep_url: format!("{ndes_base}/certsrv/mscep/mscep.dll"),
        mscep_admin_url: format!("{ndes_base}/certsrv/mscep_admin/"),
    };
    let minter = match &config.ndes.mscep_admin_token_file {
        Some(f) => Some(ChallengeMinter::new(&config.ndes.url, token(f)?)?),
        None => None,
    };
    let mut state = scep_console::ConsoleState::new(
        policy,
        ca,
        ndes,
        links,
        config.credentials(&base)?,
        Arc::new(foundation::SystemClock),
    )
    .with_secure_cookie(config.secure_cookie);
    if let Some(m) = minter {
        state = state.with_challenge_minter(m);
    }
    let listener = tokio::net::TcpListener::bind(&config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    println!("scep-console   http://{}", listener.local_addr()?);
    scep_console::serve(listener, state, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(())
}
