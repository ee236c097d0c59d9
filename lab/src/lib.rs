//! The whole scep-lab in one process, for the `scep-lab` command and for test suites.
//!
//! [`Lab::start`] brings up, on 127.0.0.1 (free ports by default) with SQLite in a data
//! directory:
//! - **ca-mock**: the enterprise CA, with its root and issuing CA created on first start;
//! - **policy-module**: profiles, devices, challenges, check-in, and the revocation outbox;
//! - **ndes-proxy**: the SCEP server, with its RA signing and encryption certificates issued
//!   by ca-mock from the enrollment-agent and CEP-encryption templates, as NDES's are.
//!
//! Every API token is random per start and written (0600) under `<data>/secrets/`.
//!
//! With [`LabOptions::tls`], every listener but plain SCEP serves HTTPS with a certificate
//! from the lab's own CA ([`tls`]), and the services call each other with its root pinned.
//!
//! [`services::prepare`] writes instead a directory from which the three services run as
//! separate processes (`ca-mock serve`, `policy-module serve`, `ndes-proxy serve`), one or
//! several instances each, on SQLite or a shared PostgreSQL.
//!
//! ```no_run
//! # async fn run() -> anyhow::Result<()> {
//! let dir = tempfile::tempdir()?;
//! let lab = scep_lab::Lab::start(scep_lab::LabOptions::new(dir.path())).await?;
//! println!("SCEP at {}", lab.scep_url());
//! lab.shutdown().await;
//! # Ok(()) }
//! ```

pub mod config;
pub mod hierarchy;
pub mod pg_setup;
pub mod profile_test;
mod ra;
pub mod reconcile;
mod rollover;
pub mod services;
pub mod tls;
pub mod tool_client;

use foundation::{Clock, SystemClock};

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use ca_mock::auth::{Caller, Callers, Operation, hash_token};
use ca_mock::template::Template;
use foundation::secret::Secret;
use policy_module::{PolicyService, ServiceConfig};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Where and how to run the lab.
#[derive(Clone, Debug)]
pub struct LabOptions {
    /// Data directory: CA material, databases, RA keys, secrets.
    pub data_dir: PathBuf,
    /// Address to listen on (loopback by default).
    pub bind: IpAddr,
    /// Ports of ca-mock, policy-module and ndes-proxy; 0 picks a free one.
    pub ports: [u16; 3],
    /// Port of the web console (scep-console); 0 picks a free one.
    pub console_port: u16,
    /// With TLS on, port of ca-mock's plain-HTTP listener for what certificates point at (CA
    /// certificates, CRL, OCSP), whose URLs stay `http`; 0 picks a free one. Unused without TLS.
    pub ca_plain_port: u16,
    /// How often the policy module's outbox looks for revocations to deliver.
    pub outbox_poll: Duration,
    /// ndes-proxy calls ca-mock in process (through the CA trait) instead of over its HTTP
    /// API: the same issuance and store, without a JSON round-trip per certificate.
    pub ca_in_process: bool,
    /// Plain mode: ndes-proxy grants every request carrying this one challenge, as a
    /// standalone NDES does, instead of asking the policy module (which still runs, idle).
    pub plain_challenge: Option<Secret>,
    /// Where the three services keep their state.
    pub databases: Databases,
    /// The time every service reads (tests inject a skewed or moving clock).
    pub clock: Arc<dyn Clock>,
    /// ndes-proxy's tunables (request deadline, retry-queue timing, approval templates).
    pub ndes_settings: ndes_proxy::Settings,
    /// Where ndes-proxy reaches the CA; `None`: this lab's ca-mock. Fault tests put a proxy
    /// in between that refuses, blackholes, delays or answers 500.
    pub ndes_ca_url: Option<String>,
    /// Where the device templates' issued key usage and EKUs come from: the template (AD CS,
    /// the default) or the grant within the template (docs/decisions.md #7).
    pub device_template_usages: ca_api::UsageSource,
    /// More device templates beside [`DEVICE_TEMPLATES`], loaded into ca-mock and entitled
    /// to ndes-proxy and the policy module alike (`scep-lab profile test --template-file`
    /// tries a profile against a template of one's own).
    pub extra_templates: Vec<Template>,
    /// The policy module's admin-path renewal window, percent of the lifetime left
    /// (docs/decisions.md #5).
    pub admin_renewal_window_percent: u8,
    /// HTTPS on the lab's listeners with certificates from its own CA (issue 17 item 4);
    /// `None`: plain HTTP everywhere.
    pub tls: Option<TlsOptions>,
    /// A scheduled CA rollover, announced by GetNextCACert until it happens.
    pub rollover: Option<RolloverPlan>,
    /// The CA hierarchy made on first start (key type, names, validity); a kept data
    /// directory must hold one of the same key type.
    pub ca: hierarchy::CaHierarchy,
    /// NDES challenge settings (PasswordMax, validities) written to the policy store at
    /// start; `None` keeps what the store holds (an administrator's choice, or the defaults).
    pub challenge_settings: Option<policy_module::ChallengeSettings>,
    /// Challenges minted per source IP by the policy module.
    pub challenge_mint_limit: foundation::rate_limit::RateLimit,
    /// Name policies set at start, per template, replacing any stored one; when empty, the
    /// admin page's template gets the sample policy unless one is stored.
    pub name_policies: Vec<(String, policy_module::name_policy::NamePolicy)>,
}

/// TLS on the lab's listeners: server certificates issued by the lab's own CA, which every
/// service pins when it calls another.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsOptions {
    /// Services authenticate to each other with client certificates (mTLS) instead of bearer
    /// tokens.
    pub mutual: bool,
    /// Port of SCEP over HTTPS, offered beside plain-HTTP SCEP as NDES allows both (0 picks a
    /// free one).
    pub scep_https_port: u16,
}

/// A scheduled CA rollover (RFC 8894 §4.7): the next issuing CA is made at start and announced
/// by GetNextCACert until it takes over issuance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RolloverPlan {
    /// When the next issuing CA takes over, unix seconds (RFC 3339 in configuration).
    pub switch_at_unix: i64,
}

/// The databases of the three services: SQLite files in the data directory (the default), or
/// one PostgreSQL database each (their table names overlap, so they cannot share one).
#[derive(Clone, Default)]
pub enum Databases {
    /// `<data>/ca/ca.db`, `<data>/policy/policy.db`, `<data>/ndes/pending.db`.
    #[default]
    Sqlite,
    /// PostgreSQL URLs.
    Postgres {
        /// ca-mock's database.
        ca: String,
        /// policy-module's database.
        policy: String,
        /// ndes-proxy's pending-request database.
        pending: String,
    },
}

impl std::fmt::Debug for Databases {
    // URLs may carry passwords: name the backend only.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Sqlite => f.write_str("Sqlite"),
            Self::Postgres { .. } => f.write_str("Postgres(<urls redacted>)"),
        }
    }
}

impl LabOptions {
    /// Loopback, free ports, data in `data_dir`.
    pub fn new(data_dir: &Path) -> Self {
        Self {
            data_dir: data_dir.to_owned(),
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            ports: [0, 0, 0],
            console_port: 0,
            ca_plain_port: 0,
            outbox_poll: Duration::from_millis(500),
            databases: Databases::Sqlite,
            clock: Arc::new(SystemClock),
            ndes_settings: ndes_proxy::Settings::default(),
            ndes_ca_url: None,
            ca_in_process: false,
            plain_challenge: None,
            device_template_usages: ca_api::UsageSource::Template,
            extra_templates: Vec::new(),
            admin_renewal_window_percent:
                policy_module::service::DEFAULT_ADMIN_RENEWAL_WINDOW_PERCENT,
            tls: None,
            rollover: None,
            ca: hierarchy::CaHierarchy::default(),
            challenge_settings: None,
            challenge_mint_limit: policy_module::service::DEFAULT_CHALLENGE_MINT_LIMIT,
            name_policies: Vec::new(),
        }
    }
}

/// The tokens of this start (also written under `<data>/secrets/`).
#[derive(Clone)]
pub struct Tokens {
    /// policy-module admin API.
    pub policy_admin: Secret,
    /// policy-module internal API (ndes-proxy's identity).
    pub policy_ndes: Secret,
    /// ca-mock: NDES enrollment agent (issue, read).
    pub ca_ndes: Secret,
    /// ca-mock: policy module (revoke, read).
    pub ca_policy: Secret,
    /// ndes-proxy: `/certsrv/mscep_admin/` for scripts (bearer).
    pub mscep_admin: Secret,
    /// ndes-proxy: the approval API under `/admin/v1/`.
    pub ndes_admin: Secret,
    /// ca-mock: the web console (read only).
    pub ca_console: Secret,
    /// The web console: signs in as admin.
    pub console_admin: Secret,
    /// The web console: signs in read-only.
    pub console_readonly: Secret,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tokens(<redacted>)")
    }
}

/// A running lab.
pub struct Lab {
    ca_addr: SocketAddr,
    policy_addr: SocketAddr,
    scep_addr: SocketAddr,
    console_addr: SocketAddr,
    scep_https_addr: Option<SocketAddr>,
    ca_plain_addr: Option<SocketAddr>,
    root_fingerprint: String,
    tokens: Tokens,
    tls: Option<Arc<tls::LabTls>>,
    ca: ca_mock::AppState,
    policy: PolicyService,
    data_dir: PathBuf,
    options: LabOptions,
    /// `switch_at` of a rollover announced at this start (the next start switches).
    rollover_pending: Option<i64>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Lab {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lab")
            .field("ca", &self.ca_addr)
            .field("policy", &self.policy_addr)
            .field("scep", &self.scep_addr)
            .finish_non_exhaustive()
    }
}

/// The longest signed grant the lab's CA accepts (the policy module signs for five minutes).
const GRANT_MAX_LIFETIME_SECS: i64 = 900;

/// Templates the NDES enrollment agent may issue under (device certificates).
pub const DEVICE_TEMPLATES: [&str; 1] = ["IPSECIntermediateOffline"];

impl Lab {
    /// Start every service; returns once all are accepting connections.
    pub async fn start(options: LabOptions) -> Result<Self> {
        let data = &options.data_dir;
        for sub in ["ca", "policy", "ndes", "secrets"] {
            std::fs::create_dir_all(data.join(sub))
                .with_context(|| format!("creating {}", data.join(sub).display()))?;
        }
        let tokens = new_tokens(&data.join("secrets"))?;
        // The policy module's grant key, fresh at each start: the CA trusts its public half
        // and nothing ndes-proxy holds (docs/decisions.md #10).
        let grant_key = Arc::new(new_grant_key(data)?);
        let bind = |port: u16| foundation::listen::listen(SocketAddr::new(options.bind, port));
        let ca_listener = bind(options.ports[0]).await.context("binding ca-mock")?;
        let policy_listener = bind(options.ports[1])
            .await
            .context("binding policy-module")?;
        let scep_listener = bind(options.ports[2]).await.context("binding ndes-proxy")?;
        let console_listener = bind(options.console_port)
            .await
            .context("binding the console")?;
        let (ca_addr, policy_addr, scep_addr, console_addr) = (
            ca_listener.local_addr()?,
            policy_listener.local_addr()?,
            scep_listener.local_addr()?,
            console_listener.local_addr()?,
        );
        // With TLS on, SCEP is offered over HTTPS too, and everything else moves there.
        let scep_https_listener = match &options.tls {
            Some(t) => Some(
                bind(t.scep_https_port)
                    .await
                    .context("binding ndes-proxy's HTTPS listener")?,
            ),
            None => None,
        };
        let scep_https_addr = match &scep_https_listener {
            Some(l) => Some(l.local_addr()?),
            None => None,
        };
        let mutual = options.tls.as_ref().is_some_and(|t| t.mutual);
        // With TLS on, the URLs written into certificates (CRL, OCSP, CA certificates) stay
        // plain HTTP on a listener of their own; ca-mock's API keeps `ports[0]`, so `ca_url()`
        // is the API either way.
        let ca_plain_listener = match &options.tls {
            Some(_) => Some(
                bind(options.ca_plain_port)
                    .await
                    .context("binding ca-mock's plain-HTTP listener")?,
            ),
            None => None,
        };
        let ca_plain_addr = match &ca_plain_listener {
            Some(l) => Some(l.local_addr()?),
            None => None,
        };
        let scheme = if options.tls.is_some() {
            "https"
        } else {
            "http"
        };
        let ca_url = format!("{scheme}://{ca_addr}");
        let ca_pki_url = ca_plain_addr.map_or_else(|| ca_url.clone(), |a| format!("http://{a}"));
        let (stop, stop_rx) = watch::channel(false);
        let mut tasks = Vec::new();

        // ca-mock.
        let lab_clock = options.clock.clone();
        let (mut ca, next_issuing) =
            start_ca(data, &ca_pki_url, &tokens, &options, &grant_key).await?;
        let root_fingerprint = ca.ca.material().root_fingerprint()?;
        let tls = match &options.tls {
            Some(_) => Some(Arc::new(
                tls::LabTls::start(&ca.ca, data, options.bind, mutual, options.clock.as_ref())
                    .await?,
            )),
            None => None,
        };
        let pin = tls.as_ref().map(|t| t.pin().clone());
        let pin = pin.as_ref();
        // Each caller's pin, with its client certificate under mutual TLS; and the bearer
        // token it presents to ca-mock, none under mutual TLS (docs/decisions.md #18).
        let client_tls = |caller: &str| tls.as_ref().map(|t| t.client(caller)).transpose();
        let (policy_tls, ndes_tls) = (client_tls("policy-module")?, client_tls("ndes-proxy")?);
        let ca_token = |t: &Secret| (!mutual).then(|| t.expose().to_owned());
        // Mutual TLS: ca-mock knows its callers by the client certificates just issued to
        // them, and a bearer token alone is refused (docs/decisions.md #18).
        let mut pins = Vec::new();
        if let (Some(t), true) = (&tls, mutual) {
            for caller in tls::CLIENTS {
                pins.push((caller.to_owned(), t.client_sha256(caller)?));
            }
            ca.callers = Arc::new(ca.callers.as_ref().clone().require_certificates(&pins)?);
        }
        let ca_stop = stopped(stop_rx.clone());
        let server_tls = |name: &str| tls.as_ref().map(|t| t.server(name)).transpose();
        tasks.push(spawn_server("ca-mock", {
            let (tls, ca, https_base) = (server_tls("ca-mock")?, ca.clone(), ca_url.clone());
            async move {
                match (tls, ca_plain_listener) {
                    (Some(t), Some(plain)) => {
                        ca_mock::serve_tls_with_plain(
                            ca_listener,
                            t,
                            plain,
                            &https_base,
                            ca,
                            ca_stop,
                        )
                        .await
                    }
                    (Some(t), None) => ca_mock::serve_tls(ca_listener, t, ca, ca_stop).await,
                    (None, _) => ca_mock::serve(ca_listener, ca, ca_stop).await,
                }
            }
        }));

        // policy-module, with its revocation outbox delivering to ca-mock.
        let store = open_policy_store(data, &options.databases, lab_clock.clone()).await?;
        let templates = policy_module::template_source::CaTemplates::from_client(
            ca_api::client::CaClient::with_http(
                http_client(policy_tls.as_ref(), 5, Some(2))?,
                &ca_url,
                ca_token(&tokens.ca_policy),
            ),
        );
        let policy = PolicyService::new(
            store.clone(),
            ServiceConfig {
                grant_key: Some(grant_key),
                admin_renewal_window_percent: options.admin_renewal_window_percent,
                challenge_mint_limit: options.challenge_mint_limit,
                ..ServiceConfig::default()
            },
        )
        .with_templates(Arc::new(templates))
        .with_records(Arc::new(ca_api::client::CaClient::with_http(
            http_client(policy_tls.as_ref(), 30, None)?,
            &ca_url,
            ca_token(&tokens.ca_policy),
        )));
        apply_policy_settings(&policy, &options).await?;
        let api = policy_module::api::ApiState {
            service: policy.clone(),
            admin_token: tokens.policy_admin.clone(),
            ndes_token: tokens.policy_ndes.clone(),
        };
        let policy_stop = stopped(stop_rx.clone());
        tasks.push(spawn_server("policy-module", {
            let tls = server_tls("policy-module")?;
            async move {
                match tls {
                    Some(t) if mutual => {
                        let ndes = policy_module::api::NdesCertificate {
                            name: "ndes-proxy".to_owned(),
                            sha256_hex: pins
                                .into_iter()
                                .filter(|(n, _)| n == "ndes-proxy")
                                .map(|(_, s)| s)
                                .collect(),
                        };
                        policy_module::api::serve_mutual_tls(
                            policy_listener,
                            t,
                            api,
                            ndes,
                            policy_stop,
                        )
                        .await
                    }
                    Some(t) => {
                        policy_module::api::serve_tls(policy_listener, t, api, policy_stop).await
                    }
                    None => policy_module::api::serve(policy_listener, api, policy_stop).await,
                }
            }
        }));
        let revoker =
            policy_module::outbox::HttpRevoker::from_client(ca_api::client::CaClient::with_http(
                http_client(policy_tls.as_ref(), 10, Some(5))?,
                &ca_url,
                ca_token(&tokens.ca_policy),
            ));
        let config = policy_module::outbox::OutboxConfig {
            poll_interval: options.outbox_poll,
            ..Default::default()
        };
        let worker = policy_module::outbox::OutboxWorker::new(
            store,
            Arc::new(revoker),
            config,
            policy.outbox_wake(),
        );
        let outbox_stop = stopped(stop_rx.clone());
        tasks.push(tokio::spawn(async move { worker.run(outbox_stop).await }));

        // ndes-proxy, with RA certificates from ca-mock and the policy module in process.
        let rollover_pending = match (&next_issuing, &options.rollover) {
            (Some(_), Some(plan)) => Some(plan.switch_at_unix),
            _ => None,
        };
        let ra = ra::identity(&ca.ca, &data.join("ndes"), next_issuing.as_ref()).await?;
        let ca_backend: Arc<dyn ca_api::CaBackend> = if options.ca_in_process {
            Arc::new(ca_mock::InProcessCa::new(
                ca.ca.clone(),
                "ndes-proxy",
                device_templates(&options),
                ndes_issue_right(&options),
            ))
        } else {
            let ca_client = ca_api::client::CaClient::with_http(
                http_client(ndes_tls.as_ref(), 30, None)?,
                options.ndes_ca_url.as_deref().unwrap_or(&ca_url),
                ca_token(&tokens.ca_ndes),
            );
            Arc::new(ca_api::HttpCa::new(ca_client))
        };
        let ndes_policy: Arc<dyn policy_api::NdesPolicy> = match &options.plain_challenge {
            Some(challenge) => Arc::new(ndes_proxy::StaticChallenge::new(
                challenge.clone(),
                DEVICE_TEMPLATES[0],
                365,
            )),
            None => Arc::new(policy.clone()),
        };
        let pending = open_pending_store(data, &options.databases).await?;
        // NDES's admin page (one-time challenges for scripts and admins) and the approval API,
        // so real clients pointed at `scep-lab serve` can be given a challenge by hand.
        let mscep_admin = ndes_proxy::MscepAdmin {
            template: DEVICE_TEMPLATES[0].to_owned(),
            users: ndes_proxy::auth::BasicUsers::default(),
            token: ndes_proxy::auth::BearerToken::new(tokens.mscep_admin.expose()),
        };
        let mut ndes = ndes_proxy::AppState::builder(
            ra,
            ndes_policy,
            ca_backend,
            options.ndes_settings.clone(),
            lab_clock,
        )
        .pending_store(Arc::new(pending))
        .mscep_admin(mscep_admin);
        if let Some(token) = ndes_proxy::auth::BearerToken::new(tokens.ndes_admin.expose()) {
            ndes = ndes.admin_token(token);
        }
        let ndes = ndes.build();
        let ndes_stop = stopped(stop_rx.clone());
        // The admin side's URL: ndes-proxy's HTTPS listener when TLS is on.
        let ndes_admin_base = match scep_https_addr {
            Some(a) => format!("https://{a}"),
            None => format!("http://{scep_addr}"),
        };
        tasks.push(spawn_server("ndes-proxy", {
            let (tls, https_base) = (server_tls("ndes-proxy")?, ndes_admin_base.clone());
            async move {
                match (tls, scep_https_listener) {
                    (Some(t), Some(https)) => {
                        ndes_proxy::serve_tls(scep_listener, https, ndes, t, &https_base, ndes_stop)
                            .await
                    }
                    _ => ndes_proxy::serve(scep_listener, ndes, ndes_stop).await,
                }
            }
        }));

        // The web console, over the three services' own APIs (issue 18).
        let console = console_state(
            &tokens,
            ConsoleLinks {
                ca: &ca_url,
                policy: &format!("{scheme}://{policy_addr}"),
                scep: &format!("http://{scep_addr}"),
                ndes_admin: &ndes_admin_base,
            },
            pin,
            client_tls("scep-console")?.as_ref(),
            options.clock.clone(),
        )?;
        let console_stop = stopped(stop_rx.clone());
        tasks.push(spawn_server("scep-console", {
            let tls = server_tls("scep-console")?;
            async move {
                match tls {
                    Some(t) => {
                        let console = console.with_secure_cookie(true);
                        scep_console::serve_tls(console_listener, t, console, console_stop).await
                    }
                    None => scep_console::serve(console_listener, console, console_stop).await,
                }
            }
        }));

        // Server certificates are re-issued when a third of their lifetime is left.
        if let Some(t) = &tls {
            tasks.push(tokio::spawn(renew_tls(
                t.clone(),
                ca.ca.clone(),
                options.clock.clone(),
                stopped(stop_rx),
            )));
        }

        Ok(Self {
            ca_addr,
            policy_addr,
            scep_addr,
            console_addr,
            scep_https_addr,
            ca_plain_addr,
            root_fingerprint,
            tokens,
            tls,
            ca,
            policy,
            data_dir: data.clone(),
            options: LabOptions {
                ports: [ca_addr.port(), policy_addr.port(), scep_addr.port()],
                console_port: console_addr.port(),
                ca_plain_port: ca_plain_addr.map_or(options.ca_plain_port, |a| a.port()),
                tls: options.tls.clone().map(|t| TlsOptions {
                    scep_https_port: scep_https_addr.map_or(t.scep_https_port, |a| a.port()),
                    ..t
                }),
                ..options.clone()
            },
            rollover_pending,
            stop,
            tasks,
        })
    }

    fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }

    /// ca-mock's base URL (API, CA certificates, CRL, OCSP); https with TLS on.
    pub fn ca_url(&self) -> String {
        format!("{}://{}", self.scheme(), self.ca_addr)
    }

    /// Where certificates point relying parties (`/ca/*`, `/crl/*`, `/ocsp`): always plain
    /// HTTP, ca-mock's own listener for it with TLS on, [`Self::ca_url`] otherwise.
    pub fn ca_pki_url(&self) -> String {
        match self.ca_plain_addr {
            Some(a) => format!("http://{a}"),
            None => self.ca_url(),
        }
    }

    /// policy-module's base URL (admin API, check-in); https with TLS on.
    pub fn policy_url(&self) -> String {
        format!("{}://{}", self.scheme(), self.policy_addr)
    }

    /// SCEP over HTTPS (TLS on only), beside [`Self::scep_url`]'s plain HTTP.
    pub fn scep_https_url(&self) -> Option<String> {
        self.scep_https_addr
            .map(|a| format!("https://{a}/certsrv/mscep/mscep.dll"))
    }

    /// ndes-proxy's base URL for its admin side (mscep_admin, `/admin/v1`): the HTTPS listener
    /// with TLS on, the one listener otherwise.
    pub fn ndes_admin_base(&self) -> String {
        match self.scep_https_addr {
            Some(a) => format!("https://{a}"),
            None => format!("http://{}", self.scep_addr),
        }
    }

    /// `<data>/tls/root.pem`, the root every HTTPS client pins (TLS on only).
    pub fn tls_root_path(&self) -> Option<PathBuf> {
        self.tls.as_ref().map(|t| t.root_path())
    }

    /// The lab's TLS material (TLS on only).
    pub fn tls(&self) -> Option<&tls::LabTls> {
        self.tls.as_deref()
    }

    /// Re-issue and reload the server certificates due at the lab clock's now (what the
    /// renewal task does hourly); returns the services renewed.
    pub async fn renew_tls_due(&self) -> Result<Vec<&'static str>> {
        match &self.tls {
            Some(t) => t.renew_due(&self.ca.ca, self.options.clock.now()).await,
            None => Ok(Vec::new()),
        }
    }

    /// The SCEP URL devices are given (NDES's path).
    pub fn scep_url(&self) -> String {
        format!("http://{}/certsrv/mscep/mscep.dll", self.scep_addr)
    }

    /// NDES's admin page: a one-time challenge per visit (bearer [`Tokens::mscep_admin`]).
    pub fn mscep_admin_url(&self) -> String {
        format!("{}/certsrv/mscep_admin/", self.ndes_admin_base())
    }

    /// The web console's base URL (sign in with [`Tokens::console_admin`]); https with TLS on.
    pub fn console_url(&self) -> String {
        format!("{}://{}", self.scheme(), self.console_addr)
    }

    /// SHA-256 fingerprint of the root CA certificate, lowercase hex.
    pub fn root_fingerprint(&self) -> &str {
        &self.root_fingerprint
    }

    /// The API tokens of this start.
    pub fn tokens(&self) -> &Tokens {
        &self.tokens
    }

    /// The policy module (for admin operations in process).
    pub fn policy(&self) -> &PolicyService {
        &self.policy
    }

    /// The CA service (records, CRL, OCSP in process).
    pub fn ca(&self) -> &ca_mock::CertificateAuthority {
        &self.ca.ca
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The options this lab runs with, with the ports it actually bound (start another lab
    /// with them to restart on the same addresses).
    pub fn options(&self) -> &LabOptions {
        &self.options
    }

    /// Whether the CA rollover announced at this start is due (the lab's clock has reached
    /// `switch_at`): the next start makes the switch ([`rollover`]).
    pub fn rollover_due_now(&self) -> bool {
        self.rollover_pending
            .is_some_and(|at| self.options.clock.now() >= at)
    }

    /// Resolves once [`Self::rollover_due_now`] (checked at least every minute); never when no
    /// rollover is announced. `scep-lab serve` restarts the lab on it, which switches.
    pub async fn rollover_due(&self) {
        let Some(at) = self.rollover_pending else {
            return std::future::pending().await;
        };
        loop {
            let left = at.saturating_sub(self.options.clock.now());
            if left <= 0 {
                return;
            }
            let secs = u64::try_from(left.clamp(1, 60)).unwrap_or(60);
            tokio::time::sleep(Duration::from_secs(secs)).await;
        }
    }

    /// Stop every service and wait for them.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
        }
        self.policy.store().close().await;
    }
}

/// The configured challenge settings and name policies. Without configured name policies, the
/// template the admin page serves gets the sample one, unless an administrator has set one (the
/// data directory is kept between runs): without one the admin path serves nothing (issue 15
/// item 2, docs/decisions.md #7).
async fn apply_policy_settings(policy: &PolicyService, options: &LabOptions) -> Result<()> {
    if let Some(settings) = &options.challenge_settings {
        settings.validate().map_err(anyhow::Error::msg)?;
        policy
            .set_challenge_settings(settings)
            .await
            .context("setting the challenge settings")?;
    }
    for (template, name_policy) in &options.name_policies {
        policy
            .set_name_policy(template, name_policy, false)
            .await
            .with_context(|| format!("setting the name policy of {template}"))?;
    }
    if options.name_policies.is_empty() {
        let sample: policy_module::name_policy::NamePolicy =
            serde_json::from_str(policy_module::name_policy::SAMPLE)
                .context("the sample name policy")?;
        policy
            .set_name_policy(DEVICE_TEMPLATES[0], &sample, true)
            .await
            .context("setting the admin page's name policy")?;
    }
    Ok(())
}

/// Resolves once the lab is told to stop.
async fn stopped(mut rx: watch::Receiver<bool>) {
    while !*rx.borrow() {
        if rx.changed().await.is_err() {
            return;
        }
    }
}

/// How often the renewal task looks at the server certificates' lifetimes.
const TLS_RENEWAL_CHECK: Duration = Duration::from_secs(3600);

/// Re-issues each server certificate when a third of its lifetime is left (lab clock).
async fn renew_tls(
    tls: Arc<tls::LabTls>,
    ca: Arc<ca_mock::CertificateAuthority>,
    clock: Arc<dyn Clock>,
    stop: impl Future<Output = ()>,
) {
    tokio::pin!(stop);
    let mut tick = tokio::time::interval(TLS_RENEWAL_CHECK);
    loop {
        tokio::select! {
            () = &mut stop => return,
            _ = tick.tick() => {
                if let Err(e) = tls.renew_due(&ca, clock.now()).await {
                    tracing::error!(error = %format!("{e:#}"), "TLS certificate renewal failed");
                }
            }
        }
    }
}

/// A reqwest client with these timeouts, pinned to the lab's root when TLS is on.
fn http_client(
    pin: Option<&foundation::tls::ClientTls>,
    timeout_secs: u64,
    connect_secs: Option<u64>,
) -> Result<reqwest::Client> {
    let mut b = foundation::tls::client_builder(pin)?.timeout(Duration::from_secs(timeout_secs));
    if let Some(c) = connect_secs {
        b = b.connect_timeout(Duration::from_secs(c));
    }
    Ok(b.build()?)
}

fn spawn_server(
    name: &'static str,
    server: impl Future<Output = std::io::Result<()>> + Send + 'static,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        if let Err(e) = server.await {
            tracing::error!(service = name, error = %e, "server stopped with an error");
        }
    })
}

/// Where the console finds the services.
struct ConsoleLinks<'a> {
    ca: &'a str,
    policy: &'a str,
    /// SCEP's (plain) base.
    scep: &'a str,
    /// mscep_admin and `/admin/v1`'s base (HTTPS with TLS on).
    ndes_admin: &'a str,
}

/// The console, reading and acting through the services' APIs with their own tokens; at
/// ca-mock with `ca_tls`'s client certificate instead under mutual TLS. Its admin calls to
/// the policy module and ndes-proxy keep their bearer tokens (docs/decisions.md #18).
fn console_state(
    tokens: &Tokens,
    urls: ConsoleLinks<'_>,
    pin: Option<&foundation::tls::ClientTls>,
    ca_tls: Option<&foundation::tls::ClientTls>,
    clock: Arc<dyn Clock>,
) -> Result<scep_console::ConsoleState> {
    let mutual = ca_tls.is_some_and(foundation::tls::ClientTls::has_identity);
    let ConsoleLinks {
        ca,
        policy,
        scep,
        ndes_admin: ndes,
    } = urls;
    let credentials = scep_console::auth::Credentials {
        admin_token: foundation::BearerToken::from_secret(&tokens.console_admin),
        read_only_token: foundation::BearerToken::from_secret(&tokens.console_readonly),
        users: Vec::new(),
    };
    let links = scep_console::Links {
        scep_url: format!("{scep}/certsrv/mscep/mscep.dll"),
        mscep_admin_url: format!("{ndes}/certsrv/mscep_admin/"),
    };
    Ok(scep_console::ConsoleState::new(
        scep_console::clients::PolicyAdmin::pinned(policy, tokens.policy_admin.clone(), pin)?,
        ca_api::client::CaClient::with_http(
            http_client(ca_tls, 30, None)?,
            ca,
            (!mutual).then(|| tokens.ca_console.expose().to_owned()),
        ),
        scep_console::clients::NdesAdmin::pinned(ndes, tokens.ndes_admin.clone(), pin)?,
        links,
        credentials,
        clock,
    )
    .with_challenge_minter(scep_console::clients::ChallengeMinter::pinned(
        ndes,
        tokens.mscep_admin.clone(),
        pin,
    )?))
}

/// A fresh grant signing key: the private half in `<data>/secrets/grant-signing.key`, the
/// public half, which the CA trusts, in `<data>/ca/grant-signing.pub.pem`.
fn new_grant_key(data: &Path) -> Result<ca_api::GrantKey> {
    let key = ca_api::GrantKey::generate()?;
    write_private(&data.join("secrets/grant-signing.key"), &key.to_pem()?)?;
    std::fs::write(data.join("ca/grant-signing.pub.pem"), key.public_pem()?)
        .context("writing the grant public key")?;
    Ok(key)
}

/// The device templates of this lab: the built-in ones and [`LabOptions::extra_templates`].
fn device_templates(options: &LabOptions) -> Vec<String> {
    let builtin = DEVICE_TEMPLATES.iter().map(|s| (*s).to_owned());
    let extra = options.extra_templates.iter().map(|t| t.name.clone());
    let mut names: Vec<String> = builtin.chain(extra).collect();
    names.sort();
    names.dedup();
    names
}

/// How ndes-proxy issues: under the policy module's signed grants, or, with a static
/// challenge (plain mode, no policy module), under plain mode's narrow entitlement.
fn ndes_issue_right(options: &LabOptions) -> ca_mock::IssueRight {
    if options.plain_challenge.is_some() {
        ca_mock::IssueRight::PlainMode
    } else {
        ca_mock::IssueRight::Granted
    }
}

/// Random tokens for this start, written 0600 under `dir`.
fn new_tokens(dir: &Path) -> Result<Tokens> {
    let make = |name: &str| -> Result<Secret> {
        let s = Secret::generate(32)?;
        write_private(&dir.join(format!("{name}.token")), s.expose().as_bytes())?;
        Ok(s)
    };
    Ok(Tokens {
        policy_admin: make("policy-admin")?,
        policy_ndes: make("policy-ndes")?,
        ca_ndes: make("ca-ndes")?,
        ca_policy: make("ca-policy")?,
        mscep_admin: make("mscep-admin")?,
        ndes_admin: make("ndes-admin")?,
        ca_console: make("ca-console")?,
        console_admin: make("console-admin")?,
        console_readonly: make("console-readonly")?,
    })
}

/// Write a file readable by its owner only.
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    Ok(())
}

/// The CA store of a lab: `<data>/ca/ca.db` or the configured PostgreSQL database.
pub async fn open_ca_store(data: &Path, dbs: &Databases) -> Result<ca_mock::store::SqlStore> {
    let url = match dbs {
        Databases::Sqlite => format!("sqlite://{}?mode=rwc", data.join("ca/ca.db").display()),
        Databases::Postgres { ca, .. } => ca.clone(),
    };
    ca_mock::store::SqlStore::connect(&url)
        .await
        .context("opening the CA store")
}

/// The policy store of a lab: `<data>/policy/policy.db` or the configured PostgreSQL database.
pub async fn open_policy_store(
    data: &Path,
    dbs: &Databases,
    clock: Arc<dyn Clock>,
) -> Result<policy_module::store::Store> {
    match dbs {
        Databases::Sqlite => {
            policy_module::store::Store::open_sqlite(&data.join("policy/policy.db"), clock).await
        }
        Databases::Postgres { policy, .. } => {
            policy_module::store::Store::connect_postgres(policy, clock).await
        }
    }
    .context("opening the policy store")
}

/// ndes-proxy's pending store of a lab: `<data>/ndes/pending.db` or the configured PostgreSQL
/// database. Durable, so a request answered PENDING survives a restart (docs/decisions.md #1).
pub async fn open_pending_store(
    data: &Path,
    dbs: &Databases,
) -> Result<ndes_proxy::SqlPendingStore> {
    match dbs {
        Databases::Sqlite => {
            ndes_proxy::SqlPendingStore::sqlite_file(&data.join("ndes/pending.db")).await
        }
        Databases::Postgres { pending, .. } => ndes_proxy::SqlPendingStore::postgres(pending).await,
    }
    .context("opening the pending store")
}

/// Create (first start) or load the CA hierarchy and assemble ca-mock. With a rollover
/// planned, also the next issuing CA, returned for GetNextCACert until the switch.
async fn start_ca(
    data: &Path,
    base_url: &str,
    tokens: &Tokens,
    options: &LabOptions,
    grant_key: &ca_api::GrantKey,
) -> Result<(ca_mock::AppState, Option<openssl::x509::X509>)> {
    let dir = data.join("ca");
    if !dir.join(ca_mock::hierarchy::ROOT_CERT).exists() {
        ca_mock::init(&dir, &options.ca.init_source(), None)
            .context("creating the CA hierarchy")?;
    }
    // A kept data directory's root (a rollover keeps its key type) must be of the key type
    // asked for, before anything more is made under it.
    let root_pem = std::fs::read(dir.join(ca_mock::hierarchy::ROOT_CERT))
        .context("reading the root CA certificate")?;
    let root = openssl::x509::X509::from_pem(&root_pem).context("the root CA certificate")?;
    options.ca.check_existing(&root)?;
    let next = match &options.rollover {
        Some(plan) => rollover::prepare(&dir, plan.switch_at_unix, options.clock.now())?,
        None => None,
    };
    let material = ca_mock::CaMaterial::load(&dir, None).context("loading the CA hierarchy")?;
    let retired = ca_mock::rollover::load_retired(&dir, &material.root, None)
        .context("loading the issuing CAs retired by a rollover")?;
    let mut templates = Template::builtin()?;
    for t in &mut templates {
        if DEVICE_TEMPLATES.contains(&t.name.as_str()) {
            t.usages = options.device_template_usages;
        }
    }
    templates.retain(|t| !options.extra_templates.iter().any(|x| x.name == t.name));
    templates.extend(options.extra_templates.iter().cloned());
    if options.tls.is_some() {
        templates.push(tls::server_template()?);
    }
    if options.tls.as_ref().is_some_and(|t| t.mutual) {
        templates.push(tls::client_template()?);
    }
    // Each caller gets what it needs and no more: ndes-proxy issues device certificates
    // (its own RA certificates are issued by the lab at the CA's console, `ra::identity`).
    let ndes = Caller::new(
        "ndes-proxy",
        &hash_token(tokens.ca_ndes.expose()),
        device_templates(options),
        vec![Operation::Issue, Operation::Read],
    )?;
    let ndes = match ndes_issue_right(options) {
        ca_mock::IssueRight::PlainMode => ndes.plain_mode(),
        _ => ndes,
    };
    let callers = Callers::new(vec![
        ndes,
        Caller::new(
            "policy-module",
            &hash_token(tokens.ca_policy.expose()),
            device_templates(options),
            vec![Operation::Revoke, Operation::Read],
        )?,
        // The web console reads records and CA status; it changes nothing at the CA.
        Caller::new(
            "scep-console",
            &hash_token(tokens.ca_console.expose()),
            DEVICE_TEMPLATES.iter().map(|s| (*s).to_owned()).collect(),
            vec![Operation::Read],
        )?,
    ])?;
    let store = open_ca_store(data, &options.databases).await?;
    let mut settings = ca_mock::CaSettings::new(base_url);
    settings.crl_path = Some(dir.join("issuing.crl"));
    settings.grants = ca_api::GrantVerifier::of_key(grant_key, GRANT_MAX_LIFETIME_SECS)?;
    let ca = ca_mock::CertificateAuthority::new(
        material,
        templates,
        Arc::new(store),
        options.clock.clone(),
        settings,
    )?
    .with_retired(retired)?;
    ca.refresh_crl().await?;
    let state = ca_mock::AppState {
        ca: Arc::new(ca),
        callers: Arc::new(callers),
        crl_refresh: Duration::from_secs(3600),
    };
    Ok((state, next))
}

/// The hex SHA-256 of the root ca-mock serves at `ca_url` (what a profile pins).
pub async fn root_sha256(http: &reqwest::Client, ca_url: &str) -> Result<String> {
    let root_der = http
        .get(format!("{}/ca/root.crt", ca_url.trim_end_matches('/')))
        .send()
        .await
        .context("fetching the root certificate from ca-mock")?
        .error_for_status()?
        .bytes()
        .await?;
    let root = openssl::x509::X509::from_der(&root_der).context("ca-mock's root certificate")?;
    Ok(hex::encode(
        root.digest(openssl::hash::MessageDigest::sha256())?,
    ))
}
