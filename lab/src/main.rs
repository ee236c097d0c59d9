//! `scep-lab`: the whole lab in one command (composition only).

mod demo;
mod payload;
mod profile_cmd;
mod trace;

use std::path::PathBuf;

use anyhow::Context;
use clap::{CommandFactory, Parser, Subcommand};

/// The scep-lab command line.
#[derive(Debug, Parser)]
#[command(
    name = "scep-lab",
    version,
    about = "NDES + Intune style SCEP provisioning lab on loopback"
)]
struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, default_value = "text", value_parser = foundation::log::LogFormat::NAMES, env = "SCEP_LAB_LOG_FORMAT")]
    log_format: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start the lab, run one device through the seven steps and its retirement, stop.
    Demo {
        /// Data directory (default: a new temporary directory, removed afterwards).
        #[arg(long, env = "SCEP_LAB_DATA")]
        data: Option<PathBuf>,
    },
    /// Start the lab and keep serving until Ctrl-C.
    Serve {
        /// Data directory (kept between runs).
        #[arg(long, env = "SCEP_LAB_DATA", default_value = "scep-lab-data")]
        data: PathBuf,
        /// Ports of ca-mock, policy-module and ndes-proxy.
        #[arg(long, num_args = 3, default_values_t = [8180u16, 8280, 8080])]
        ports: Vec<u16>,
        /// Port of the web console.
        #[arg(long, default_value_t = 8380)]
        console_port: u16,
        /// ndes-proxy calls ca-mock in process instead of over its HTTP API.
        #[arg(long)]
        ca_in_process: bool,
        /// Plain mode: ndes-proxy issues to every request carrying the challenge in this file
        /// (a standalone NDES with one password), without asking the policy module.
        #[arg(long)]
        plain_challenge_file: Option<PathBuf>,
        /// HTTPS on every listener with certificates from the lab's own CA (renewed before
        /// they expire); SCEP stays on plain HTTP too, and is offered over HTTPS as well.
        #[arg(long)]
        tls: bool,
        /// Port of SCEP over HTTPS (and of ndes-proxy's admin side) with `--tls`.
        #[arg(long, default_value_t = 8443, requires = "tls")]
        scep_https_port: u16,
    },
    /// Check invariants I1-I8 across the CA store, the published CRL, OCSP, the policy store
    /// and the pending store; exit status 1 on any violation. Safe while the lab runs.
    Audit {
        /// Data directory of the lab.
        #[arg(long, env = "SCEP_LAB_DATA", default_value = "scep-lab-data")]
        data: PathBuf,
        /// PostgreSQL URLs of ca-mock, policy-module and ndes-proxy's pending store, in that
        /// order (default: the SQLite files in the data directory).
        #[arg(long, num_args = 3, value_names = ["CA", "POLICY", "PENDING"])]
        postgres: Option<Vec<String>>,
        /// Instead of a lab directory: the configuration files of ca-mock, policy-module and
        /// ndes-proxy run as separate processes (`scep-lab services`).
        #[arg(long, num_args = 3, value_names = ["CA", "POLICY", "NDES"], conflicts_with = "postgres")]
        configs: Option<Vec<PathBuf>>,
    },
    /// Mint a device's MDM payload (mobileconfig, SyncML or JSON) from a running lab: creates
    /// the demo profile if missing, registers the device, assigns it, checks in for it.
    Payload(payload::PayloadArgs),
    /// SCEP profiles: import an Intune profile (Graph JSON) into a running lab, export one,
    /// or test one end to end.
    #[command(subcommand)]
    Profile(profile_cmd::Profile),
    /// Tell one enrollment's story (or a device's history) from a running lab's policy module:
    /// every event across the three services, in time order.
    Trace(trace::TraceArgs),
    /// Write a directory from which ca-mock, policy-module and ndes-proxy run as separate
    /// processes from their sample configurations (CA, RA, tokens, one config per service).
    Services {
        /// The directory to write (must not hold a ca-mock.toml yet).
        #[arg(long, default_value = "scep-lab-services")]
        dir: PathBuf,
        /// Ports of ca-mock, policy-module and ndes-proxy (as `serve --ports`).
        #[arg(long, num_args = 3, value_names = ["CA", "POLICY", "NDES"], default_values_t = [8180u16, 8280, 8080])]
        ports: Vec<u16>,
    },
    /// Print a shell completion script.
    Completion {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<std::process::ExitCode> {
    let cli = Cli::parse();
    foundation::log::init(
        "scep-lab",
        env!("CARGO_PKG_VERSION"),
        cli.log_format.parse().unwrap_or_default(),
        "warn",
    );
    match cli.command {
        Command::Demo { data } => {
            let temp = tempfile::tempdir()?;
            let kept = data.is_some();
            let dir = data.unwrap_or_else(|| temp.path().to_owned());
            demo::run(&mut std::io::stdout(), &dir, kept).await?;
            Ok(std::process::ExitCode::SUCCESS)
        }
        Command::Audit {
            data,
            postgres,
            configs,
        } => audit(&data, postgres, configs).await,
        Command::Serve {
            data,
            ports,
            console_port,
            ca_in_process,
            plain_challenge_file,
            tls,
            scep_https_port,
        } => {
            let mut options = scep_lab::LabOptions::new(&data);
            options.ports = [ports[0], ports[1], ports[2]];
            options.console_port = console_port;
            options.ca_in_process = ca_in_process;
            if tls {
                options.tls = Some(scep_lab::TlsOptions {
                    mutual: false,
                    scep_https_port,
                });
            }
            if let Some(file) = plain_challenge_file {
                options.plain_challenge = Some(
                    ndes_proxy::config::read_challenge(&file)
                        .context("reading the plain-mode challenge")?,
                );
            }
            let lab = scep_lab::Lab::start(options)
                .await
                .context("starting the lab")?;
            // stdout on a full disk is an error, not a panic: the lab stops and says why; a reader
            // that went away (`| head -1`) is not an error, the lab keeps serving.
            if let Err(e) = foundation::io::write_stdout(serve_banner(&lab).as_bytes()) {
                lab.shutdown().await;
                return Err(anyhow::Error::new(e).context("writing the banner to stdout"));
            }
            tokio::signal::ctrl_c().await?;
            lab.shutdown().await;
            Ok(std::process::ExitCode::SUCCESS)
        }
        Command::Payload(args) => {
            payload::run(&args, &mut std::io::stdout()).await?;
            Ok(std::process::ExitCode::SUCCESS)
        }
        Command::Profile(cmd) => {
            let code = profile_cmd::run(&cmd, &mut std::io::stdout()).await?;
            Ok(std::process::ExitCode::from(code))
        }
        // Its failures (unknown transaction, lab down, wrong token) are the user's answer:
        // one line, without the backtrace `main` would print.
        Command::Trace(args) => match trace::run(&args, &mut std::io::stdout()).await {
            Ok(()) => Ok(std::process::ExitCode::SUCCESS),
            Err(e) => {
                eprintln!("error: {e:#}");
                Ok(std::process::ExitCode::FAILURE)
            }
        },
        Command::Services { dir, ports } => {
            let mut options = scep_lab::services::ServicesOptions::sample();
            if let [ca, policy, ndes] = ports[..] {
                options.ca_port = ca;
                options.policy_ports = vec![policy];
                options.ndes_ports = vec![ndes];
            }
            let layout = scep_lab::services::prepare(&dir, &options)
                .await
                .with_context(|| format!("writing {}", dir.display()))?;
            println!("wrote {}", layout.dir.display());
            println!("root CA SHA-256 (pin this): {}", layout.root_fingerprint);
            println!("start each service (three terminals):");
            for command in layout.commands() {
                println!("  {command}");
            }
            println!("then let the mscep_admin page's template be used (its name policy):");
            for command in layout.setup_commands() {
                println!("  {command}");
            }
            Ok(std::process::ExitCode::SUCCESS)
        }
        Command::Completion { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "scep-lab", &mut script);
            foundation::io::write_stdout(&script)?;
            Ok(std::process::ExitCode::SUCCESS)
        }
    }
}

/// What `scep-lab serve` prints once the lab is up: its URLs, the root's fingerprint, where
/// the tokens are, and with TLS on the HTTPS SCEP URL and the root file to pin.
fn serve_banner(lab: &scep_lab::Lab) -> String {
    let secrets = lab.data_dir().join("secrets");
    let tls = match (lab.scep_https_url(), lab.tls_root_path()) {
        (Some(url), Some(root)) => format!(
            "SCEP (HTTPS)   {url}\nTLS root to pin: {} (curl --cacert)\n",
            root.display()
        ),
        _ => String::new(),
    };
    tls + &format!(
        "ca-mock        {}\npolicy-module  {}\nndes-proxy     {}\nmscep_admin    {}\n\
         root CA SHA-256 (pin this): {}\nconsole        {}\n  sign in with the token in {} (read-only: {})\n\
         API tokens in  {}\nserving; Ctrl-C stops\n",
        lab.ca_url(),
        lab.policy_url(),
        lab.scep_url(),
        lab.mscep_admin_url(),
        lab.root_fingerprint(),
        lab.console_url(),
        secrets.join("console-admin.token").display(),
        secrets.join("console-readonly.token").display(),
        secrets.display()
    )
}

/// `scep-lab audit`: the reconciler's report on stdout; exit 1 when an invariant is violated.
async fn audit(
    data: &std::path::Path,
    postgres: Option<Vec<String>>,
    configs: Option<Vec<PathBuf>>,
) -> anyhow::Result<std::process::ExitCode> {
    let dbs = match postgres.as_deref() {
        Some([ca, policy, pending]) => scep_lab::Databases::Postgres {
            ca: ca.clone(),
            policy: policy.clone(),
            pending: pending.clone(),
        },
        _ => scep_lab::Databases::Sqlite,
    };
    let sources = match configs.as_deref() {
        Some([ca, policy, ndes]) => {
            scep_lab::reconcile::Sources::from_configs(ca, policy, ndes).await?
        }
        _ => scep_lab::reconcile::Sources::open(data, &dbs)
            .await
            .with_context(|| format!("opening the lab in {}", data.display()))?,
    };
    let now = foundation::clock::unix_now();
    let report = scep_lab::reconcile::reconcile(&sources, now).await?;
    sources.close().await;
    report.write_to(&mut std::io::stdout().lock())?;
    Ok(if report.is_clean() {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    })
}
