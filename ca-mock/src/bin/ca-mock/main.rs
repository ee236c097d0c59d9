//! `ca-mock`: the command line. Composition only: reads config and files, wires the library.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use ca_api::IssueCall;
use ca_mock::Config;
use ca_mock::auth::hash_token;
use ca_mock::keys::{KeySpec, Passphrase};
use ca_mock::store::{ListFilter, RevocationReason};
use clap::{Args, CommandFactory, Parser, Subcommand};
use foundation::names::{NameAttr, San};

mod audit;
mod init;
mod records;

#[derive(Debug, Parser)]
#[command(
    name = "ca-mock",
    version,
    about = "An enterprise CA (AD CS role) for the scep-lab"
)]
struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, default_value = "text", value_parser = foundation::log::LogFormat::NAMES, env = "CA_MOCK_LOG_FORMAT")]
    log_format: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Args)]
struct ConfigArg {
    /// The ca-mock.toml written by `init`.
    #[arg(long, short, env = "CA_MOCK_CONFIG")]
    config: PathBuf,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create (or import) a root and issuing CA, a config file, templates and API tokens.
    Init(InitArgs),
    /// Serve the HTTP API, CRL and OCSP.
    Serve(ConfigArg),
    /// Issue a certificate from a CSR file, offline (directly against the store).
    Issue(IssueArgs),
    /// Revoke a certificate, offline.
    Revoke {
        #[command(flatten)]
        config: ConfigArg,
        /// Serial, hex.
        #[arg(long)]
        serial: String,
        /// RFC 5280 reason (cessationOfOperation, keyCompromise, superseded, ...).
        #[arg(long, default_value = "unspecified")]
        reason: String,
    },
    /// Release a certificateHold, offline.
    Release {
        #[command(flatten)]
        config: ConfigArg,
        /// Serial, hex.
        #[arg(long)]
        serial: String,
    },
    /// List issued certificates.
    List {
        #[command(flatten)]
        config: ConfigArg,
        /// Only this request id.
        #[arg(long)]
        request_id: Option<String>,
        /// Most rows.
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Show the CA's records (issued, revoked, held, released), oldest first; changes nothing.
    Records {
        #[command(flatten)]
        config: ConfigArg,
        /// Only this serial (hex).
        #[arg(long)]
        serial: Option<String>,
        /// Only this request id (SCEP transactionID).
        #[arg(long)]
        request_id: Option<String>,
        /// Only records at or after this RFC 3339 time.
        #[arg(long)]
        since: Option<String>,
        /// Only records before this RFC 3339 time.
        #[arg(long)]
        until: Option<String>,
        /// Only records after this record id (paging).
        #[arg(long)]
        after: Option<i64>,
        /// Most records (at most 1000).
        #[arg(long)]
        limit: Option<u32>,
        /// Print the `RecordList` JSON the HTTP API answers.
        #[arg(long)]
        json: bool,
    },
    /// Regenerate the CRL now and write it (DER) to the configured file or --out.
    Crl {
        #[command(flatten)]
        config: ConfigArg,
        /// Also write the DER CRL here.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Check the store: every record parses and is signed by the CA, serials are unique, and
    /// the CRL lists exactly the revoked serials.
    Audit(ConfigArg),
    /// Print the SHA-256 of a token read from stdin (for `token_sha256` in the config).
    HashToken,
    /// Print a shell completion script.
    Completion {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Args)]
pub(crate) struct InitArgs {
    /// Directory to create the CA in.
    #[arg(long, default_value = "ca-mock")]
    dir: PathBuf,
    /// Key type: rsa2048, rsa3072, rsa4096, ec-p256, ec-p384.
    #[arg(long, default_value = "rsa2048")]
    key: KeySpec,
    /// Root CA common name.
    #[arg(long, default_value = "scep-lab Root CA")]
    root_cn: String,
    /// Issuing CA common name.
    #[arg(long, default_value = "scep-lab Issuing CA")]
    issuing_cn: String,
    /// Organisation for both CA names.
    #[arg(long)]
    org: Option<String>,
    /// Root validity, days.
    #[arg(long, default_value_t = 7300)]
    root_days: u32,
    /// Issuing CA validity, days.
    #[arg(long, default_value_t = 3650)]
    issuing_days: u32,
    /// Encrypt the keys with the passphrase in this file.
    #[arg(long, conflicts_with = "passphrase_env")]
    passphrase_file: Option<PathBuf>,
    /// Encrypt the keys with the passphrase in this environment variable.
    #[arg(long)]
    passphrase_env: Option<String>,
    /// Import: root certificate PEM (with --import-issuing-cert and --import-issuing-key).
    #[arg(long, requires_all = ["import_issuing_cert", "import_issuing_key"])]
    import_root_cert: Option<PathBuf>,
    /// Import: issuing CA certificate PEM.
    #[arg(long, requires = "import_root_cert")]
    import_issuing_cert: Option<PathBuf>,
    /// Import: issuing CA key PEM.
    #[arg(long, requires = "import_root_cert")]
    import_issuing_key: Option<PathBuf>,
    /// Import: passphrase file of the imported PEM key.
    #[arg(long)]
    import_key_passphrase_file: Option<PathBuf>,
    /// Import: PKCS#12 with the issuing key and certificate and the root among its CA certs.
    #[arg(
        long,
        conflicts_with = "import_root_cert",
        requires = "import_p12_password_file"
    )]
    import_p12: Option<PathBuf>,
    /// Import: file holding the PKCS#12 password.
    #[arg(long)]
    import_p12_password_file: Option<PathBuf>,
    /// Listen address written into the config.
    #[arg(long, default_value = "127.0.0.1:8180")]
    listen: String,
    /// Public base URL written into the config (AIA/CDP); defaults to http://<listen>.
    #[arg(long)]
    public_base_url: Option<String>,
}

#[derive(Debug, Args)]
struct IssueArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// Template name.
    #[arg(long)]
    template: String,
    /// CSR file, PEM or DER.
    #[arg(long)]
    csr: PathBuf,
    /// Request id; a random one by default.
    #[arg(long)]
    request_id: Option<String>,
    /// Subject, e.g. "CN=dev-1,O=Contoso" (attributes: CN O OU L ST C E SERIALNUMBER DC UID STREET T G SN).
    #[arg(long, default_value = "")]
    subject: String,
    /// SAN as kind:value (dns, email, uri, upn, ip); repeatable.
    #[arg(long = "san")]
    sans: Vec<String>,
    /// Shorter validity than the template's, days.
    #[arg(long)]
    validity_days: Option<u32>,
    /// Write the certificate PEM here (else stdout).
    #[arg(long)]
    out: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    foundation::log::init(
        "ca-mock",
        env!("CARGO_PKG_VERSION"),
        cli.log_format.parse().unwrap_or_default(),
        "info",
    );
    match run(cli.command).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> Result<ExitCode> {
    match command {
        Command::Init(args) => init::init(&args)?,
        Command::Serve(c) => serve(&c.config).await?,
        Command::Issue(args) => issue(&args).await?,
        Command::Revoke {
            config,
            serial,
            reason,
        } => {
            let reason = RevocationReason::parse(&reason)
                .with_context(|| format!("unknown reason {reason:?}"))?;
            let state = open(&config.config).await?;
            let r = state
                .ca
                .revoke("cli", &foundation::Serial::from_hex(&serial)?, reason)
                .await?;
            println!("{}", serde_json::to_string_pretty(&r)?);
        }
        Command::Release { config, serial } => {
            let state = open(&config.config).await?;
            println!(
                "{}",
                serde_json::to_string_pretty(
                    &state
                        .ca
                        .release("cli", &foundation::Serial::from_hex(&serial)?)
                        .await?
                )?
            );
        }
        Command::List {
            config,
            request_id,
            limit,
        } => {
            // A read: the CRL of a running server stays as it is.
            let state = ca_mock::open_without_publishing(&Config::load(&config.config)?).await?;
            let filter = ListFilter {
                request_id,
                after: None,
                limit,
            };
            for r in state.ca.list(&filter).await? {
                println!(
                    "{}  {:<8} {:<26} {:<24} {}",
                    r.cert.serial,
                    r.status.as_str(),
                    r.cert.template,
                    r.cert.request_id,
                    r.cert.subject
                );
            }
        }
        Command::Records {
            config,
            serial,
            request_id,
            since,
            until,
            after,
            limit,
            json,
        } => {
            let query = ca_api::wire::RecordQuery {
                serial,
                request_id,
                since,
                until,
                after,
                limit,
            };
            records::records(&config.config, &query, json).await?;
        }
        Command::Crl { config, out } => {
            let state = open(&config.config).await?;
            let crl = state.ca.regenerate_crl().await?;
            if let Some(out) = out {
                ca_mock::write_atomically(&out, &crl.der)?;
                println!("wrote {}", out.display());
            }
            println!(
                "CRL number {} with {} entries ({} bytes)",
                crl.number,
                crl.entries,
                crl.der.len()
            );
        }
        Command::Audit(c) => return audit::audit(&c.config).await,
        Command::HashToken => {
            let mut token = String::new();
            std::io::stdin().read_to_string(&mut token)?;
            if token.trim().is_empty() {
                bail!("no token on stdin");
            }
            println!("{}", hash_token(token.trim()));
        }
        Command::Completion { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "ca-mock", &mut script);
            foundation::io::write_stdout(&script)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn open(config: &Path) -> Result<ca_mock::AppState> {
    let config = Config::load(config)?;
    Ok(ca_mock::open(&config).await?)
}

pub(crate) fn read_passphrase(
    file: Option<&PathBuf>,
    env: Option<&String>,
) -> Result<Option<Passphrase>> {
    if let Some(f) = file {
        return Ok(Some(Passphrase::from_file(f)?));
    }
    if let Some(var) = env {
        let v =
            std::env::var(var).with_context(|| format!("environment variable {var} is not set"))?;
        return Ok(Some(Passphrase::new(v)));
    }
    Ok(None)
}

async fn serve(config_path: &Path) -> Result<()> {
    let config = Config::load(config_path)?;
    let state = ca_mock::open(&config).await?;
    let listener = foundation::listen::listen(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let tls = config.tls.server().context("[tls]")?;
    let plain = match (&tls, config.plain_listen) {
        (Some(_), Some(addr)) => Some(
            foundation::listen::listen(addr)
                .await
                .with_context(|| format!("binding plain_listen {addr}"))?,
        ),
        (None, Some(_)) => anyhow::bail!("plain_listen needs [tls] cert_file and key_file"),
        _ => None,
    };
    let https_base = format!("https://{}", listener.local_addr()?);
    tracing::info!(
        listen = %listener.local_addr()?,
        https = tls.is_some(),
        plain_listen = ?config.plain_listen,
        public_base_url = %config.public_base_url,
        root_fingerprint = %state.ca.material().root_fingerprint()?,
        "ca-mock serving"
    );
    let stop = async {
        shutdown_signal().await;
        tracing::info!("shutting down");
    };
    match tls {
        Some(watch) => {
            let served = watch.tls();
            let reload = watch.spawn(foundation::tls_files::RELOAD_CHECK);
            let result = match plain {
                Some(plain) => {
                    ca_mock::serve_tls_with_plain(listener, served, plain, &https_base, state, stop)
                        .await
                }
                None => ca_mock::serve_tls(listener, served, state, stop).await,
            };
            reload.abort();
            result?;
        }
        None => ca_mock::serve(listener, state, stop).await?,
    }
    Ok(())
}

/// Ctrl-C, or SIGTERM (systemd, containers).
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

fn parse_subject(text: &str) -> Result<Vec<NameAttr>> {
    let mut out = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (attr, value) = part
            .split_once('=')
            .with_context(|| format!("{part:?} is not ATTR=value"))?;
        let attr = serde_json::from_value(serde_json::Value::String(attr.trim().to_uppercase()))
            .with_context(|| format!("unknown subject attribute {attr:?}"))?;
        out.push(NameAttr {
            attr,
            value: value.trim().to_owned(),
        });
    }
    Ok(out)
}

fn parse_san(text: &str) -> Result<San> {
    let (kind, value) = text
        .split_once(':')
        .with_context(|| format!("{text:?} is not kind:value"))?;
    let kind = serde_json::from_value(serde_json::Value::String(kind.to_lowercase()))
        .with_context(|| format!("unknown SAN kind {kind:?}"))?;
    Ok(San {
        kind,
        value: value.to_owned(),
    })
}

async fn issue(a: &IssueArgs) -> Result<()> {
    let raw = std::fs::read(&a.csr).with_context(|| format!("reading {}", a.csr.display()))?;
    let der = match openssl::x509::X509Req::from_pem(&raw) {
        Ok(req) => req.to_der()?,
        Err(_) => raw,
    };
    let request_id = match &a.request_id {
        Some(id) => id.clone(),
        None => format!("cli-{}", init::random_token()?.get(..16).unwrap_or("0")),
    };
    let req = IssueCall {
        request_id,
        template: a.template.clone(),
        csr_der: der,
        subject: parse_subject(&a.subject)?,
        sans: a.sans.iter().map(|s| parse_san(s)).collect::<Result<_>>()?,
        validity_days: a.validity_days,
        ..IssueCall::default()
    };
    let state = open(&a.config.config).await?;
    let issued = state.ca.issue("cli", &req).await?;
    let cert = openssl::x509::X509::from_der(&issued.der)?;
    let pem = cert.to_pem()?;
    match &a.out {
        Some(out) => {
            std::fs::write(out, &pem)?;
            eprintln!("wrote {}", out.display());
        }
        None => print!("{}", String::from_utf8_lossy(&pem)),
    }
    eprintln!(
        "serial {} request_id {}{}",
        issued.serial,
        req.request_id,
        if issued.replayed { " (replayed)" } else { "" }
    );
    Ok(())
}
