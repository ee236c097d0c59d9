//! `scep-lab`: the whole lab in one command (composition only).

mod demo;
mod payload;
mod profile_cmd;
mod trace;

use std::path::PathBuf;

use anyhow::Context;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

/// The scep-lab command line.
#[derive(Debug, Parser)]
#[command(
    name = "scep-lab",
    version,
    about = "NDES + Intune style SCEP provisioning lab on loopback"
)]
struct Cli {
    /// Log format on stderr [default: text, or serve's configuration file].
    #[arg(long, global = true, value_parser = foundation::log::LogFormat::NAMES, env = "SCEP_LAB_LOG_FORMAT")]
    log_format: Option<String>,
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
        /// A configuration file (`scep-lab sample-config` prints a commented one): store
        /// (SQLite or PostgreSQL), ports, CA key type, templates, approval, policy settings,
        /// logs. Flags given here win over it.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Data directory, kept between runs [default: scep-lab-data].
        #[arg(long, env = "SCEP_LAB_DATA")]
        data: Option<PathBuf>,
        /// Ports of ca-mock, policy-module and ndes-proxy [default: 8180 8280 8080].
        #[arg(long, num_args = 3, value_names = ["CA", "POLICY", "NDES"])]
        ports: Option<Vec<u16>>,
        /// Port of the web console [default: 8380].
        #[arg(long)]
        console_port: Option<u16>,
        /// A file holding a PostgreSQL server URL: the lab creates and migrates its databases
        /// there instead of SQLite (as `[store] postgres_url_file`; `./lab.sh serve --postgres`
        /// passes a throwaway cluster's).
        #[arg(long)]
        postgres_url_file: Option<PathBuf>,
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
        /// Port of ca-mock's plain-HTTP listener with `--tls`: the CRL, OCSP and CA-certificate
        /// URLs written into certificates stay http there (its API is HTTPS only).
        #[arg(long, default_value_t = 8181, requires = "tls")]
        ca_plain_port: u16,
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
        /// A file holding the URL of a PostgreSQL server: the services share it, one database
        /// each (`scep_lab_ca`, `scep_lab_policy`, `scep_lab_pending`, created when missing),
        /// instead of SQLite files.
        #[arg(long, value_name = "FILE")]
        postgres_url_file: Option<PathBuf>,
        /// Instances of policy-module and of ndes-proxy, on consecutive ports from POLICY and
        /// NDES (more than one needs --postgres-url-file: they share their stores).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=16))]
        instances: u16,
        /// Plain HTTP everywhere (by default every service serves HTTPS with a certificate
        /// from the directory's CA, under tls/, and pins tls/root.pem when calling another).
        #[arg(long)]
        no_tls: bool,
        /// ca-mock's plain-HTTP port for the CRL, OCSP and CA-certificate URLs in certificates.
        #[arg(long, default_value_t = 8181, conflicts_with = "no_tls")]
        ca_plain_port: u16,
        /// ndes-proxy's HTTPS port (SCEP, mscep_admin, admin API); consecutive per instance.
        #[arg(long, default_value_t = 8443, conflicts_with = "no_tls")]
        ndes_https_port: u16,
        /// Only re-issue, in --dir, the TLS certificates with a third or less of their lifetime
        /// left; the running services reload them within a minute.
        #[arg(long, conflicts_with_all = ["no_tls", "postgres_url_file"])]
        renew_tls: bool,
    },
    /// Print a commented sample of `serve --config`'s file.
    SampleConfig,
    /// Print a shell completion script.
    Completion {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<std::process::ExitCode> {
    // `--version` names the OpenSSL linked in (built from source: docs/decisions.md #21), so a
    // security fix can be checked against what runs.
    let version = format!(
        "{} ({})",
        env!("CARGO_PKG_VERSION"),
        openssl::version::version()
    );
    let matches = Cli::command().version(version).get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    // serve's configuration names a log format and level: read it before logging starts.
    let mut plan = match &cli.command {
        Command::Serve { config, .. } => Some(serve_plan(config.as_deref())?),
        _ => None,
    };
    let flag_format = cli.log_format.as_deref().and_then(|f| f.parse().ok());
    let file_log = plan.as_ref().map(|p| (p.log_format, p.log_level));
    let (file_format, file_level) = file_log.unwrap_or_default();
    foundation::log::init(
        "scep-lab",
        env!("CARGO_PKG_VERSION"),
        flag_format.or(file_format).unwrap_or_default(),
        file_level.map_or("warn", scep_lab::config::LogLevel::as_str),
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
            config: _,
            data,
            ports,
            console_port,
            postgres_url_file,
            ca_in_process,
            plain_challenge_file,
            tls,
            scep_https_port,
            ca_plain_port,
        } => {
            let mut plan = plan.take().context("serve's configuration")?;
            plan.override_with(&scep_lab::config::ServeOverrides {
                data,
                ports: ports.as_deref().and_then(|p| <[u16; 3]>::try_from(p).ok()),
                console_port,
                postgres_url_file,
            })?;
            let mut options = plan.options;
            if let scep_lab::config::StorePlan::Postgres { url, prefix } = &plan.store {
                options.databases = scep_lab::pg_setup::provision(url, prefix)
                    .await
                    .context("preparing the PostgreSQL databases")?;
            }
            options.ca_in_process = ca_in_process;
            if tls {
                options.tls = Some(scep_lab::TlsOptions {
                    mutual: false,
                    scep_https_port,
                });
                options.ca_plain_port = ca_plain_port;
            }
            if let Some(file) = plain_challenge_file {
                options.plain_challenge = Some(
                    ndes_proxy::config::read_challenge(&file)
                        .context("reading the plain-mode challenge")?,
                );
            }
            let mut lab = scep_lab::Lab::start(options)
                .await
                .context("starting the lab")?;
            // stdout on a full disk is an error, not a panic: the lab stops and says why; a reader
            // that went away (`| head -1`) is not an error, the lab keeps serving.
            if let Err(e) = foundation::io::write_stdout(serve_banner(&lab).as_bytes()) {
                lab.shutdown().await;
                return Err(anyhow::Error::new(e).context("writing the banner to stdout"));
            }
            // A scheduled CA rollover switches at a start: at switch_at the lab restarts, on
            // the same ports and data.
            loop {
                tokio::select! {
                    signal = tokio::signal::ctrl_c() => {
                        lab.shutdown().await;
                        signal?;
                        return Ok(std::process::ExitCode::SUCCESS);
                    }
                    () = lab.rollover_due() => {
                        tracing::info!("the CA rollover is due: restarting the lab to switch");
                        let options = lab.options().clone();
                        lab.shutdown().await;
                        lab = scep_lab::Lab::start(options)
                            .await
                            .context("restarting the lab for the CA rollover")?;
                    }
                }
            }
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
        Command::Services {
            dir,
            ports,
            postgres_url_file,
            instances,
            no_tls,
            ca_plain_port,
            ndes_https_port,
            renew_tls,
        } => {
            if renew_tls {
                let renewed = scep_lab::services::tls::renew_due(&dir)
                    .await
                    .with_context(|| {
                        format!("renewing the TLS certificates in {}", dir.display())
                    })?;
                println!(
                    "renewed: {}",
                    if renewed.is_empty() {
                        "none due".to_owned()
                    } else {
                        renewed.join(", ")
                    }
                );
                return Ok(std::process::ExitCode::SUCCESS);
            }
            let mut options = scep_lab::services::ServicesOptions::sample();
            options.tls = (!no_tls).then(|| scep_lab::services::ServicesTls {
                ca_plain_port,
                ndes_https_ports: (0..instances)
                    .map(|i| ndes_https_port.saturating_add(i))
                    .collect(),
            });
            if let [ca, policy, ndes] = ports[..] {
                let from = |first: u16| -> anyhow::Result<Vec<u16>> {
                    (0..instances)
                        .map(|i| {
                            first
                                .checked_add(i)
                                .context("--instances: ports beyond 65535")
                        })
                        .collect()
                };
                options.ca_port = ca;
                options.policy_ports = from(policy)?;
                options.ndes_ports = from(ndes)?;
            }
            if let Some(file) = postgres_url_file {
                let url =
                    foundation::secret::read_secret_file(&file).context("--postgres-url-file")?;
                let prefix = scep_lab::pg_setup::DEFAULT_PREFIX;
                if let scep_lab::Databases::Postgres {
                    ca,
                    policy,
                    pending,
                } = scep_lab::pg_setup::provision(&url, prefix).await?
                {
                    options.postgres = Some(scep_lab::services::Postgres {
                        ca,
                        policy,
                        pending,
                    });
                }
            }
            let layout = scep_lab::services::prepare(&dir, &options)
                .await
                .with_context(|| format!("writing {}", dir.display()))?;
            println!("wrote {}", layout.dir.display());
            println!("root CA SHA-256 (pin this): {}", layout.root_fingerprint);
            if let Some(root) = &layout.tls_root {
                println!("TLS root to pin: {} (curl --cacert)", root.display());
                println!("ca-mock API        https://{}", layout.ca_addr);
                if let Some(plain) = layout.ca_plain_addr {
                    println!("CRL/OCSP/CA certs  http://{plain} (plain HTTP, as in certificates)");
                }
                for a in &layout.policy_addrs {
                    println!("policy-module      https://{a}");
                }
                for (i, a) in layout.ndes_addrs.iter().enumerate() {
                    println!("SCEP               http://{a}/certsrv/mscep/mscep.dll");
                    if let Some(base) = layout.ndes_admin_base(i) {
                        println!("SCEP (HTTPS)       {base}/certsrv/mscep/mscep.dll");
                        println!("mscep_admin        {base}/certsrv/mscep_admin/");
                    }
                }
                println!(
                    "renew with: scep-lab services --renew-tls --dir {}",
                    layout.dir.display()
                );
            }
            println!("start each service (a terminal each):");
            for command in layout.commands() {
                println!("  {command}");
            }
            println!("then let the mscep_admin page's template be used (its name policy):");
            for command in layout.setup_commands() {
                println!("  {command}");
            }
            Ok(std::process::ExitCode::SUCCESS)
        }
        Command::SampleConfig => {
            foundation::io::write_stdout(scep_lab::config::SAMPLE.as_bytes())?;
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

/// serve's settings: the configuration file's, or without one the defaults (relative paths
/// from the working directory).
fn serve_plan(config: Option<&std::path::Path>) -> anyhow::Result<scep_lab::config::ServePlan> {
    match config {
        Some(path) => {
            let (file, base) = scep_lab::config::LabConfig::load(path)?;
            file.resolve(&base)
                .with_context(|| format!("in {}", path.display()))
        }
        None => scep_lab::config::LabConfig::default().resolve(std::path::Path::new("")),
    }
}

/// What `scep-lab serve` prints once the lab is up: its URLs, the root's fingerprint, where
/// the tokens are, and with TLS on the HTTPS SCEP URL and the root file to pin.
fn serve_banner(lab: &scep_lab::Lab) -> String {
    let secrets = lab.data_dir().join("secrets");
    let tls = match (lab.scep_https_url(), lab.tls_root_path()) {
        (Some(url), Some(root)) => format!(
            "SCEP (HTTPS)   {url}\nTLS root to pin: {} (curl --cacert)\n\
             CRL/OCSP/CA certificates (plain HTTP, as in certificates) {}\n",
            root.display(),
            lab.ca_pki_url()
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
