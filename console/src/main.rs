//! `scep-console`: the web console as its own process, for the separate-process deployment
//! (`scep-lab services`); `scep-lab serve` runs the same console in process.

use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{CommandFactory, Parser, Subcommand};
use foundation::secret::read_secret_file;
use scep_console::clients::{ChallengeMinter, NdesAdmin, PolicyAdmin};
use scep_console::config::Config;

#[derive(Debug, Parser)]
#[command(name = "scep-console", version, about = "scep-lab's web console")]
struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, default_value = "text", value_parser = foundation::log::LogFormat::NAMES, env = "SCEP_CONSOLE_LOG_FORMAT")]
    log_format: String,
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
    /// Print a shell completion script.
    Completion {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let format = cli.log_format.parse().unwrap_or_default();
    foundation::log::init("scep-console", env!("CARGO_PKG_VERSION"), format, "info");
    // stdout is written with error handling: a closed pipe is not a panic.
    match cli.command {
        Command::SampleConfig => {
            foundation::io::write_stdout(scep_console::config::SAMPLE.as_bytes())?;
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
            let hash = scep_console::auth::PasswordHash::new(password)?.encode();
            foundation::io::write_stdout(format!("{hash}\n").as_bytes())?;
            Ok(())
        }
        Command::Completion { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "scep-console", &mut script);
            foundation::io::write_stdout(&script)?;
            Ok(())
        }
        Command::Serve { config } => serve(&config).await,
    }
}

async fn serve(path: &std::path::Path) -> anyhow::Result<()> {
    let (config, base) = Config::load(path)?;
    let token = |f: &std::path::Path| read_secret_file(&base.join(f));
    let pin = config.tls.pin().context("[tls] ca_file")?;
    let pin = pin.as_ref();
    let policy = PolicyAdmin::pinned(&config.policy.url, token(&config.policy.token_file)?, pin)?;
    let ndes = NdesAdmin::pinned(&config.ndes.url, token(&config.ndes.token_file)?, pin)?;
    let ca = ca_api::CaClient::with_http(
        foundation::tls::client_builder(pin)?
            .timeout(std::time::Duration::from_secs(30))
            .build()?,
        &config.ca.url,
        Some(token(&config.ca.token_file)?.expose().to_owned()),
    );
    let ndes_base = config.ndes.url.trim_end_matches('/');
    let links = scep_console::Links {
        scep_url: format!("{ndes_base}/certsrv/mscep/mscep.dll"),
        mscep_admin_url: format!("{ndes_base}/certsrv/mscep_admin/"),
    };
    let minter = match &config.ndes.mscep_admin_token_file {
        Some(f) => Some(ChallengeMinter::pinned(&config.ndes.url, token(f)?, pin)?),
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
    .with_secure_cookie(config.secure_cookie || config.tls.cert_file.is_some());
    if let Some(m) = minter {
        state = state.with_challenge_minter(m);
    }
    let listener = foundation::listen::listen(config.listen.as_str())
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let tls = config.tls.server().context("[tls]")?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    foundation::io::write_stdout(
        format!("scep-console   {scheme}://{}\n", listener.local_addr()?).as_bytes(),
    )
    .context("writing the banner to stdout")?;
    let stop = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    match tls {
        Some(watch) => {
            let served = watch.tls();
            let reload = watch.spawn(foundation::tls_files::RELOAD_CHECK);
            let result = scep_console::serve_tls(listener, served, state, stop).await;
            reload.abort();
            result?;
        }
        None => scep_console::serve(listener, state, stop).await?,
    }
    Ok(())
}
