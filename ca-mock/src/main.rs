//! `ca-mock`: the command line. Composition only: reads config and files, wires the library.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use base64::Engine;
use ca_mock::auth::hash_token;
use ca_mock::keys::{KeySpec, Passphrase};
use ca_mock::names::{NameAttr, San};
use ca_mock::store::{ListFilter, RevocationReason};
use ca_mock::template::BUILTIN_TEMPLATES;
use ca_mock::wire::IssueRequest;
use ca_mock::{Config, InitSource};
use clap::{Args, CommandFactory, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "ca-mock",
    version,
    about = "An enterprise CA (AD CS role) for the scep-lab"
)]
struct Cli {
    /// Log format.
    #[arg(long, global = true, default_value = "text", value_parser = ["text", "json"], env = "CA_MOCK_LOG_FORMAT")]
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
struct InitArgs {
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

fn init_logging(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli.log_format);
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
        Command::Init(args) => init(&args)?,
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
            let r = state.ca.revoke("cli", &serial, reason).await?;
            println!("{}", serde_json::to_string_pretty(&r)?);
        }
        Command::Release { config, serial } => {
            let state = open(&config.config).await?;
            println!(
                "{}",
                serde_json::to_string_pretty(&state.ca.release("cli", &serial).await?)?
            );
        }
        Command::List {
            config,
            request_id,
            limit,
        } => {
            let state = open(&config.config).await?;
            let filter = ListFilter {
                request_id,
                after: None,
                limit,
            };
            for c in state.ca.list(&filter).await? {
                let status = serde_json::to_value(c.status)?;
                println!(
                    "{}  {:<8} {:<26} {:<24} {}",
                    c.serial,
                    status.as_str().unwrap_or("?"),
                    c.template,
                    c.request_id,
                    c.subject
                );
            }
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
        Command::Audit(c) => return audit(&c.config).await,
        Command::HashToken => {
            let mut token = String::new();
            std::io::stdin().read_to_string(&mut token)?;
            if token.trim().is_empty() {
                bail!("no token on stdin");
            }
            println!("{}", hash_token(token.trim()));
        }
        Command::Completion { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "ca-mock",
                &mut std::io::stdout(),
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn open(config: &Path) -> Result<ca_mock::AppState> {
    let config = Config::load(config)?;
    Ok(ca_mock::open(&config).await?)
}

fn read_passphrase(file: Option<&PathBuf>, env: Option<&String>) -> Result<Option<Passphrase>> {
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

fn random_token() -> Result<String> {
    let mut b = [0u8; 32];
    openssl::rand::rand_bytes(&mut b)?;
    Ok(hex::encode(b))
}

fn write_new(path: &Path, data: &[u8], private: bool) -> Result<()> {
    use std::io::Write;
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    let mut f = o
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(data)?;
    f.sync_all()?;
    Ok(())
}

fn init(a: &InitArgs) -> Result<()> {
    let passphrase = read_passphrase(a.passphrase_file.as_ref(), a.passphrase_env.as_ref())?;
    let source = if let Some(p12) = &a.import_p12 {
        let pw_file = a
            .import_p12_password_file
            .as_ref()
            .context("--import-p12-password-file is required")?;
        InitSource::Pkcs12 {
            file: p12.clone(),
            password: Passphrase::from_file(pw_file)?,
        }
    } else if let (Some(r), Some(c), Some(k)) = (
        &a.import_root_cert,
        &a.import_issuing_cert,
        &a.import_issuing_key,
    ) {
        InitSource::Pem {
            root_cert: r.clone(),
            issuing_cert: c.clone(),
            issuing_key: k.clone(),
            key_passphrase: read_passphrase(a.import_key_passphrase_file.as_ref(), None)?,
        }
    } else {
        InitSource::Generate {
            key: a.key,
            root_cn: a.root_cn.clone(),
            issuing_cn: a.issuing_cn.clone(),
            org: a.org.clone(),
            root_days: a.root_days,
            issuing_days: a.issuing_days,
        }
    };
    let config_path = a.dir.join("ca-mock.toml");
    if config_path.exists() {
        bail!("{} exists; refusing to overwrite", config_path.display());
    }
    let report = ca_mock::init(&a.dir, &source, passphrase.as_ref())?;
    let mut written = report.written;

    let templates = a.dir.join("templates");
    std::fs::create_dir_all(&templates)?;
    for (name, text) in BUILTIN_TEMPLATES {
        let p = templates.join(name);
        write_new(&p, text.as_bytes(), false)?;
        written.push(p);
    }
    let tokens = a.dir.join("tokens");
    std::fs::create_dir_all(&tokens)?;
    for name in ["ndes.token", "policy.token"] {
        let p = tokens.join(name);
        write_new(&p, format!("{}\n", random_token()?).as_bytes(), true)?;
        written.push(p);
    }
    let base = a
        .public_base_url
        .clone()
        .unwrap_or_else(|| format!("http://{}", a.listen));
    let mut config = ca_mock::config::SAMPLE_CONFIG
        .replace(
            "listen = \"127.0.0.1:8180\"",
            &format!("listen = {:?}", a.listen),
        )
        .replace(
            "public_base_url = \"http://127.0.0.1:8180\"",
            &format!("public_base_url = {base:?}"),
        );
    if let Some(f) = &a.passphrase_file {
        let abs = std::fs::canonicalize(f)?;
        config = config.replace(
            "# key_passphrase_file = \"passphrase.txt\"",
            &format!("key_passphrase_file = {:?}", abs.display().to_string()),
        );
    } else if let Some(v) = &a.passphrase_env {
        config = config.replace(
            "# key_passphrase_env = \"CA_MOCK_KEY_PASSPHRASE\"",
            &format!("key_passphrase_env = {v:?}"),
        );
    }
    Config::from_toml(&config)?;
    write_new(&config_path, config.as_bytes(), false)?;
    written.push(config_path.clone());

    for p in &written {
        println!("wrote {}", p.display());
    }
    println!("root fingerprint (SHA-256): {}", report.root_fingerprint);
    println!(
        "start it with: ca-mock serve --config {}",
        config_path.display()
    );
    Ok(())
}

async fn serve(config_path: &Path) -> Result<()> {
    let config = Config::load(config_path)?;
    let state = ca_mock::open(&config).await?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    tracing::info!(
        listen = %listener.local_addr()?,
        public_base_url = %config.public_base_url,
        root_fingerprint = %state.ca.material().root_fingerprint()?,
        "ca-mock serving"
    );
    ca_mock::serve(listener, state, async {
        shutdown_signal().await;
        tracing::info!("shutting down");
    })
    .await?;
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
        None => format!("cli-{}", random_token()?.get(..16).unwrap_or("0")),
    };
    let req = IssueRequest {
        request_id,
        template: a.template.clone(),
        csr: base64::engine::general_purpose::STANDARD.encode(der),
        subject: parse_subject(&a.subject)?,
        sans: a.sans.iter().map(|s| parse_san(s)).collect::<Result<_>>()?,
        validity_days: a.validity_days,
    };
    let state = open(&a.config.config).await?;
    let issued = state.ca.issue("cli", &req).await?;
    let cert = openssl::x509::X509::from_der(
        &base64::engine::general_purpose::STANDARD.decode(&issued.response.certificate)?,
    )?;
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
        issued.response.serial,
        issued.response.request_id,
        if issued.replayed { " (replayed)" } else { "" }
    );
    Ok(())
}

async fn audit(config_path: &Path) -> Result<ExitCode> {
    let state = open(config_path).await?;
    let ca = &state.ca;
    let issuer_key = ca.material().issuing.public_key()?;
    let mut problems = Vec::new();
    let mut serials = std::collections::HashSet::new();
    let mut revoked = std::collections::BTreeSet::new();
    let mut after = None;
    let mut total = 0usize;
    loop {
        let page = ca
            .store()
            .list(&ListFilter {
                request_id: None,
                after: after.clone(),
                limit: 1000,
            })
            .await?;
        let Some(last) = page.last() else { break };
        after = Some(last.cert.serial.clone());
        for r in &page {
            total += 1;
            if !serials.insert(r.cert.serial.clone()) {
                problems.push(format!("{}: duplicate serial", r.cert.serial));
            }
            if r.status != ca_mock::store::CertStatus::Good {
                revoked.insert(r.cert.serial.clone());
            }
            match openssl::x509::X509::from_der(&r.cert.der) {
                Err(_) => problems.push(format!("{}: DER does not parse", r.cert.serial)),
                Ok(cert) => {
                    if !cert.verify(&issuer_key).unwrap_or(false) {
                        problems.push(format!("{}: not signed by the issuing CA", r.cert.serial));
                    }
                    let in_cert = cert
                        .serial_number()
                        .to_bn()
                        .ok()
                        .map(|b| hex::encode(b.to_vec()));
                    if in_cert.as_deref() != Some(r.cert.serial.as_str()) {
                        problems.push(format!("{}: serial in certificate differs", r.cert.serial));
                    }
                }
            }
        }
    }
    let crl = ca.regenerate_crl().await?;
    let parsed = openssl::x509::X509Crl::from_der(&crl.der)?;
    if !parsed.verify(&issuer_key).unwrap_or(false) {
        problems.push("CRL signature does not verify".into());
    }
    let in_crl: std::collections::BTreeSet<String> = parsed
        .get_revoked()
        .map(|st| {
            st.iter()
                .filter_map(|r| {
                    r.serial_number()
                        .to_bn()
                        .ok()
                        .map(|b| hex::encode(b.to_vec()))
                })
                .collect()
        })
        .unwrap_or_default();
    if in_crl != revoked {
        problems.push(format!(
            "CRL lists {} serials, store has {} revoked or held (differences: {:?})",
            in_crl.len(),
            revoked.len(),
            in_crl
                .symmetric_difference(&revoked)
                .take(5)
                .collect::<Vec<_>>()
        ));
    }
    println!(
        "{total} certificates, {} revoked or held, CRL number {}",
        revoked.len(),
        crl.number
    );
    if problems.is_empty() {
        println!("audit OK");
        Ok(ExitCode::SUCCESS)
    } else {
        for p in &problems {
            println!("problem: {p}");
        }
        Ok(ExitCode::FAILURE)
    }
}
