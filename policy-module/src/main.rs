//! `policy-module`: serve the policy-module, or administer a running one over its REST API.
//!
//! Composition happens here only: configuration from flags and environment, store, revoker,
//! outbox worker, HTTP server.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::{CommandFactory, Parser, Subcommand};
use policy_module::api::{ApiState, serve};
use policy_module::clock::SystemClock;
use policy_module::outbox::{HttpRevoker, OutboxConfig, OutboxWorker};
use policy_module::secret::Secret;
use policy_module::store::Store;
use policy_module::{PolicyService, ServiceConfig};

#[derive(Parser)]
#[command(
    name = "policy-module",
    version,
    about = "The Intune/ConfigMgr role of scep-lab"
)]
struct Cli {
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
        #[command(subcommand)]
        action: AdminAction,
    },
    /// Print a shell completion script.
    Completion {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
}

#[derive(clap::Args)]
struct ServeArgs {
    #[arg(long, env = "POLICY_LISTEN", default_value = "127.0.0.1:8081")]
    listen: std::net::SocketAddr,
    /// SQLite database file (the embedded default).
    #[arg(
        long,
        env = "POLICY_SQLITE",
        default_value = "policy-module.db",
        conflicts_with = "database_url"
    )]
    sqlite: PathBuf,
    /// PostgreSQL URL, for several instances sharing one database.
    #[arg(long, env = "POLICY_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    #[arg(long, env = "POLICY_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: String,
    /// Token ndes-proxy presents on /internal/v1.
    #[arg(long, env = "POLICY_NDES_TOKEN", hide_env_values = true)]
    ndes_token: String,
    /// ca-mock base URL for revocations.
    #[arg(long, env = "POLICY_CA_URL")]
    ca_url: String,
    #[arg(long, env = "POLICY_CA_TOKEN", hide_env_values = true)]
    ca_token: String,
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
    /// retire, wipe, block or unblock a device.
    Lifecycle { device: String, action: String },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    match Cli::parse().command {
        Command::Serve(args) => run_server(args).await,
        Command::Admin {
            server,
            token,
            action,
        } => admin(&server, &token, action).await,
        Command::Completion { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "policy-module",
                &mut std::io::stdout(),
            );
            Ok(())
        }
    }
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
    let clock = Arc::new(SystemClock);
    let store = match &a.database_url {
        Some(url) => Store::connect_postgres(url, clock)
            .await
            .context("PostgreSQL")?,
        None => Store::open_sqlite(&a.sqlite, clock)
            .await
            .context("SQLite")?,
    };
    let service = PolicyService::new(store.clone(), ServiceConfig::default());
    let revoker = HttpRevoker::new(&a.ca_url, Secret::new(a.ca_token)).context("CA client")?;
    let worker = OutboxWorker::new(
        store,
        Arc::new(revoker),
        OutboxConfig::default(),
        service.outbox_wake(),
    );
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut worker_stop = stop_rx.clone();
    let worker_task = tokio::spawn(worker.run(async move {
        let _ = worker_stop.wait_for(|s| *s).await;
    }));
    let listener = tokio::net::TcpListener::bind(a.listen)
        .await
        .context("bind")?;
    tracing::info!(addr = %a.listen, "policy-module listening");
    let state = ApiState {
        service,
        admin_token: Secret::new(a.admin_token),
        ndes_token: Secret::new(a.ndes_token),
    };
    let mut server_stop = stop_rx;
    let server = tokio::spawn(serve(listener, state, async move {
        let _ = server_stop.wait_for(|s| *s).await;
    }));
    shutdown_signal().await;
    tracing::info!("stopping");
    let _ = stop_tx.send(true);
    server.await.context("server task")?.context("server")?;
    worker_task.await.context("outbox task")?;
    Ok(())
}

async fn admin(server: &str, token: &str, action: AdminAction) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
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
