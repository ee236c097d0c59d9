//! `policy-module`: serve the policy-module, or administer a running one over its REST API.
//!
//! Composition happens here only: configuration file (`serve --config FILE`), store, revoker,
//! outbox worker, HTTP server.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ca_api::client::CaClient;

use anyhow::{Context, bail};
use clap::{CommandFactory, Parser, Subcommand};
use foundation::SystemClock;
use policy_module::PolicyService;
use policy_module::api::{ApiState, serve, serve_tls};
use policy_module::config::{Config, StoreLocation, read_secret};
use policy_module::outbox::{HttpRevoker, OutboxWorker};
use policy_module::store::Store;
use policy_module::template_source::CaTemplates;

#[derive(Parser)]
#[command(
    name = "policy-module",
    version,
    about = "The Intune/ConfigMgr role of scep-lab"
)]
struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, default_value = "text", value_parser = foundation::log::LogFormat::NAMES, env = "POLICY_LOG_FORMAT")]
    log_format: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP service and the revocation outbox worker.
    Serve(ServeArgs),
    /// Administer a running policy-module through its REST API.
    Admin {
        /// Base URL of the policy-module.
        #[arg(long, env = "POLICY_URL", default_value = "http://127.0.0.1:8081")]
        server: String,
        /// Admin bearer token.
        #[arg(long, env = "POLICY_ADMIN_TOKEN", hide_env_values = true)]
        token: String,
        /// The root to pin for an https server (e.g. the lab's `tls/root.pem`); nothing else
        /// is trusted then.
        #[arg(long)]
        ca_file: Option<PathBuf>,
        #[command(subcommand)]
        action: AdminAction,
    },
    /// Write a new grant signing key pair: the private key (PKCS#8 PEM, mode 0600) for
    /// `grant_signing_key_file`, the public key for ca-mock's `[grants] public_keys`.
    GrantKey {
        /// Where the private key goes (refused if it exists).
        private_key: PathBuf,
        /// Where the public key goes.
        public_key: PathBuf,
    },
    /// Print a shell completion script.
    Completion {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Configuration file (TOML; see policy-module.sample.toml).
    #[arg(long, env = "POLICY_CONFIG")]
    config: PathBuf,
}

#[derive(Subcommand)]
enum AdminAction {
    /// GET a path, e.g. `/api/v1/devices`.
    Get { path: String },
    /// Create a profile from a JSON file (with an "id" field).
    CreateProfile { file: PathBuf },
    /// Replace a profile's settings from a JSON file (a new version).
    UpdateProfile { id: String, file: PathBuf },
    /// Register a device from a JSON file; prints the credential once.
    RegisterDevice { file: PathBuf },
    /// Assign a profile to a device or group.
    Assign {
        profile: String,
        kind: String,
        target: String,
    },
    /// Remove an assignment (revokes what no longer targets the devices).
    Unassign {
        profile: String,
        kind: String,
        target: String,
    },
    /// retire, wipe, block, unblock or delete a device (block holds, unblock releases).
    Lifecycle { device: String, action: String },
    /// Set the name policy under which mscep_admin challenges may be used for a template,
    /// from a JSON file (see `NamePolicy` in openapi.json).
    SetNamePolicy { template: String, file: PathBuf },
    /// Remove a template's name policy: the admin path stops serving the template.
    DeleteNamePolicy { template: String },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    foundation::log::init(
        "policy-module",
        env!("CARGO_PKG_VERSION"),
        cli.log_format.parse().unwrap_or_default(),
        "info",
    );
    match cli.command {
        Command::Serve(args) => run_server(args).await,
        Command::Admin {
            server,
            token,
            ca_file,
            action,
        } => admin(&server, &token, ca_file.as_deref(), action).await,
        Command::GrantKey {
            private_key,
            public_key,
        } => write_grant_key(&private_key, &public_key),
        Command::Completion { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "policy-module", &mut script);
            foundation::io::write_stdout(&script)?;
            Ok(())
        }
    }
}

/// `policy-module grant-key`: a fresh pair, the private half never overwriting a key in use.
fn write_grant_key(
    private_key: &std::path::Path,
    public_key: &std::path::Path,
) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let key = ca_api::GrantKey::generate()?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(private_key)
        .with_context(|| format!("creating {}", private_key.display()))?;
    f.write_all(&key.to_pem()?)?;
    f.sync_all()?;
    std::fs::write(public_key, key.public_pem()?)
        .with_context(|| format!("writing {}", public_key.display()))?;
    println!(
        "grant key {} written: private {}, public {}",
        key.key_id(),
        private_key.display(),
        public_key.display()
    );
    Ok(())
}

/// Ctrl-C, or SIGTERM (systemd, containers).
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

async fn run_server(a: ServeArgs) -> anyhow::Result<()> {
    let cfg = Config::load(&a.config)?;
    let clock = Arc::new(SystemClock);
    let store = match cfg.store()? {
        StoreLocation::PostgresUrlFile(file) => {
            // The URL may carry a password: errors name the file, never the URL.
            let url = read_secret(&file)?;
            Store::connect_postgres(url.expose(), clock)
                .await
                .with_context(|| format!("PostgreSQL named in {}", file.display()))?
        }
        StoreLocation::Sqlite(path) => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
            }
            Store::open_sqlite(&path, clock)
                .await
                .with_context(|| format!("SQLite {}", path.display()))?
        }
    };
    let mut service_config = cfg.service();
    service_config.grant_key = Some(Arc::new(cfg.grant_key()?));
    let ca_token = read_secret(&cfg.ca.token_file)?;
    // With [tls] ca_file, ca-mock is called with that root pinned and nothing else trusted.
    let pin = cfg.tls.pin().context("[tls] ca_file")?;
    let ca_client = |timeout: u64, connect: u64| -> anyhow::Result<CaClient> {
        let http = foundation::tls::client_builder(pin.as_ref())?
            .timeout(Duration::from_secs(timeout))
            .connect_timeout(Duration::from_secs(connect))
            .build()
            .context("CA client")?;
        Ok(CaClient::with_http(
            http,
            &cfg.ca.url,
            Some(ca_token.expose().to_owned()),
        ))
    };
    // The same CA caller (revoke, read) reads templates for the profiles' warnings (short
    // timeouts: a profile's save waits); the outbox's also reads records for traces.
    let templates = CaTemplates::from_client(ca_client(5, 2)?);
    let revoker = Arc::new(HttpRevoker::from_client(ca_client(10, 5)?));
    let service = PolicyService::new(store.clone(), service_config)
        .with_templates(Arc::new(templates))
        .with_records(revoker.clone());
    let worker = OutboxWorker::new(store, revoker, cfg.outbox(), service.outbox_wake());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut worker_stop = stop_rx.clone();
    let worker_task = tokio::spawn(worker.run(async move {
        let _ = worker_stop.wait_for(|s| *s).await;
    }));
    let listener = foundation::listen::listen(cfg.listen)
        .await
        .with_context(|| format!("binding {}", cfg.listen))?;
    tracing::info!(addr = %cfg.listen, "policy-module listening");
    let state = ApiState {
        service,
        admin_token: read_secret(&cfg.admin_token_file)?,
        ndes_token: read_secret(&cfg.ndes_token_file)?,
    };
    let mut server_stop = stop_rx;
    let stopped = async move {
        let _ = server_stop.wait_for(|s| *s).await;
    };
    let (server, reload) = match cfg.tls.server().context("[tls]")? {
        Some(watch) => {
            tracing::info!("policy-module serving HTTPS");
            let tls = watch.tls();
            (
                tokio::spawn(serve_tls(listener, tls, state, stopped)),
                Some(watch.spawn(foundation::tls_files::RELOAD_CHECK)),
            )
        }
        None => (tokio::spawn(serve(listener, state, stopped)), None),
    };
    shutdown_signal().await;
    tracing::info!("stopping");
    let _ = stop_tx.send(true);
    server.await.context("server task")?.context("server")?;
    if let Some(r) = reload {
        r.abort();
    }
    worker_task.await.context("outbox task")?;
    Ok(())
}

async fn admin(
    server: &str,
    token: &str,
    ca_file: Option<&std::path::Path>,
    action: AdminAction,
) -> anyhow::Result<()> {
    let pin = match ca_file {
        Some(f) => {
            let pem = std::fs::read(f).with_context(|| format!("reading {}", f.display()))?;
            Some(
                foundation::tls::ClientTls::pinned(&pem)
                    .with_context(|| f.display().to_string())?,
            )
        }
        None => None,
    };
    let http = foundation::tls::client_builder(pin.as_ref())?.build()?;
    let url = |p: &str| format!("{}{p}", server.trim_end_matches('/'));
    let json_file = |f: &PathBuf| -> anyhow::Result<serde_json::Value> {
        let text = std::fs::read_to_string(f).with_context(|| format!("read {}", f.display()))?;
        serde_json::from_str(&text).with_context(|| format!("parse {}", f.display()))
    };
    let req = match action {
        AdminAction::Get { path } => http.get(url(&path)),
        AdminAction::CreateProfile { file } => {
            http.post(url("/api/v1/profiles")).json(&json_file(&file)?)
        }
        AdminAction::UpdateProfile { id, file } => http
            .put(url(&format!("/api/v1/profiles/{id}")))
            .json(&json_file(&file)?),
        AdminAction::RegisterDevice { file } => {
            http.post(url("/api/v1/devices")).json(&json_file(&file)?)
        }
        AdminAction::Assign {
            profile,
            kind,
            target,
        } => http
            .post(url(&format!("/api/v1/profiles/{profile}/assignments")))
            .json(&serde_json::json!({ "kind": kind, "id": target })),
        AdminAction::Unassign {
            profile,
            kind,
            target,
        } => http.delete(url(&format!(
            "/api/v1/profiles/{profile}/assignments/{kind}/{target}"
        ))),
        AdminAction::Lifecycle { device, action } => {
            http.post(url(&format!("/api/v1/devices/{device}/{action}")))
        }
        AdminAction::SetNamePolicy { template, file } => http
            .put(url(&format!("/api/v1/name-policies/{template}")))
            .json(&json_file(&file)?),
        AdminAction::DeleteNamePolicy { template } => {
            http.delete(url(&format!("/api/v1/name-policies/{template}")))
        }
    };
    let resp = req.bearer_auth(token).send().await.context("request")?;
    let status = resp.status();
    let body = resp.text().await.unwrap_or_default();
    println!("{body}");
    if !status.is_success() {
        bail!("policy-module answered {status}");
    }
    Ok(())
}
