//! A directory from which ca-mock, policy-module and ndes-proxy run as separate processes.
//!
//! [`prepare`] writes, from the three committed sample configurations (so a sample that drifts
//! from what the services parse breaks this, and its tests, at once):
//! - the CA hierarchy, `ca-mock.toml` and `templates/` (what `ca-mock init` writes);
//! - one `policy-module-N.toml` and one `ndes-proxy-N.toml` per instance, differing only in
//!   their ports (ndes-proxy N calls policy-module N, modulo the number of policy instances);
//! - the shared NDES RA identity under `ra/`, issued by the CA from the enrollment-agent and
//!   CEP-encryption templates (every ndes-proxy instance must present the same RA, or a client
//!   that fetched the RA certificate from one instance could not be read by another);
//! - random tokens under `secrets/` (0600), under the file names the samples agree on;
//! - `name-policy.json`, the sample name policy of the template ndes-proxy's mscep_admin page
//!   serves, which an administrator sets once the policy module runs ([`ServicesLayout::setup_commands`]):
//!   until then the admin page hands out no challenge (issue 15 item 2).
//!
//! With [`ServicesOptions::tls`] (the CLI's default), every service serves HTTPS with a
//! certificate from that CA and pins its root when calling another ([`tls`]).
//!
//! Several instances of a service must share PostgreSQL ([`Postgres`]): one database per
//! service, because each keeps its own migration history. With SQLite a service runs once.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail, ensure};
use ca_mock::template::BUILTIN_TEMPLATES;
use foundation::secret::Secret;

use crate::write_private;

#[path = "services_tls.rs"]
pub mod tls;
pub use tls::ServicesTls;

/// PostgreSQL URLs, one database per service.
#[derive(Clone)]
pub struct Postgres {
    /// ca-mock's certificates (written inline into `ca-mock.toml`, whose `database` key takes
    /// a URL: use a URL without a password, or keep that file private).
    pub ca: String,
    /// policy-module's profiles, devices, challenges and outbox (written to a 0600 file).
    pub policy: String,
    /// ndes-proxy's pending requests (written to a 0600 file).
    pub pending: String,
}

impl std::fmt::Debug for Postgres {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A URL may carry a password.
        f.write_str("Postgres(<urls>)")
    }
}

/// How many instances, on which ports, on which database.
#[derive(Clone, Debug)]
pub struct ServicesOptions {
    /// ca-mock's port.
    pub ca_port: u16,
    /// One port per policy-module instance.
    pub policy_ports: Vec<u16>,
    /// One port per ndes-proxy instance.
    pub ndes_ports: Vec<u16>,
    /// Shared PostgreSQL; `None` means SQLite files under `data/` (one instance of each).
    pub postgres: Option<Postgres>,
    /// The policy module's outbox poll interval, milliseconds (the sample's 5000 when `None`).
    pub outbox_poll_ms: Option<u64>,
    /// HTTPS between and on the services (issue 17 item 4); `None`: plain HTTP everywhere.
    pub tls: Option<ServicesTls>,
}

impl ServicesOptions {
    /// The samples' ports (ca-mock 8180, policy-module 8280, ndes-proxy 8080), SQLite.
    pub fn sample() -> Self {
        Self {
            ca_port: 8180,
            policy_ports: vec![8280],
            ndes_ports: vec![8080],
            postgres: None,
            outbox_poll_ms: None,
            tls: Some(ServicesTls::sample(1)),
        }
    }
}

/// What [`prepare`] wrote.
#[derive(Clone, Debug)]
pub struct ServicesLayout {
    /// The directory.
    pub dir: PathBuf,
    /// `ca-mock serve --config` this.
    pub ca_config: PathBuf,
    /// `policy-module serve --config` each of these.
    pub policy_configs: Vec<PathBuf>,
    /// `ndes-proxy serve --config` each of these.
    pub ndes_configs: Vec<PathBuf>,
    /// ca-mock's address.
    pub ca_addr: SocketAddr,
    /// Each policy-module instance's address.
    pub policy_addrs: Vec<SocketAddr>,
    /// Each ndes-proxy instance's address.
    pub ndes_addrs: Vec<SocketAddr>,
    /// SHA-256 of the root CA certificate, lowercase hex (what devices pin).
    pub root_fingerprint: String,
    /// With TLS: `tls/root.pem`, the root every HTTPS client pins (`curl --cacert`).
    pub tls_root: Option<PathBuf>,
    /// With TLS: ca-mock's plain-HTTP listener (CRL, OCSP, CA certificates).
    pub ca_plain_addr: Option<SocketAddr>,
    /// With TLS: each ndes-proxy instance's HTTPS listener (SCEP, mscep_admin, admin API).
    pub ndes_https_addrs: Vec<SocketAddr>,
}

impl ServicesLayout {
    /// A secret written under `secrets/` (e.g. `policy-admin.token`): its first line.
    pub fn secret(&self, file: &str) -> Result<Secret> {
        let path = self.dir.join("secrets").join(file);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        Ok(Secret::new(text.lines().next().unwrap_or("").trim()))
    }

    /// `https` with TLS on, `http` otherwise.
    pub fn scheme(&self) -> &'static str {
        if self.tls_root.is_some() {
            "https"
        } else {
            "http"
        }
    }

    /// ndes-proxy instance `i`'s admin side (mscep_admin, `/admin/v1`): its HTTPS listener
    /// with TLS on, its one listener otherwise.
    pub fn ndes_admin_base(&self, i: usize) -> Option<String> {
        match self.ndes_https_addrs.get(i) {
            Some(a) => Some(format!("https://{a}")),
            None => self.ndes_addrs.get(i).map(|a| format!("http://{a}")),
        }
    }

    /// The shell commands an administrator runs once the services are up: the admin page's
    /// template gets its name policy (`policy-module admin` reads the token from
    /// `POLICY_ADMIN_TOKEN`; with TLS it pins `tls/root.pem`).
    pub fn setup_commands(&self) -> Vec<String> {
        let policy = self
            .policy_addrs
            .first()
            .map(|a| a.to_string())
            .unwrap_or_default();
        let pin = match &self.tls_root {
            Some(root) => format!(" --ca-file {}", root.display()),
            None => String::new(),
        };
        vec![format!(
            "POLICY_ADMIN_TOKEN=$(cat {}) policy-module admin --server {}://{policy}{pin} \
             set-name-policy {} {}",
            self.dir.join("secrets/policy-admin.token").display(),
            self.scheme(),
            crate::DEVICE_TEMPLATES[0],
            self.dir.join("name-policy.json").display()
        )]
    }

    /// The shell commands that start every process, one a line.
    pub fn commands(&self) -> Vec<String> {
        let mut out = vec![format!(
            "ca-mock serve --config {}",
            self.ca_config.display()
        )];
        for c in &self.policy_configs {
            out.push(format!("policy-module serve --config {}", c.display()));
        }
        for c in &self.ndes_configs {
            out.push(format!("ndes-proxy serve --config {}", c.display()));
        }
        out
    }
}

/// Writes the directory (refusing one that already holds a `ca-mock.toml`); see the module docs.
pub async fn prepare(dir: &Path, options: &ServicesOptions) -> Result<ServicesLayout> {
    ensure!(
        !options.policy_ports.is_empty() && !options.ndes_ports.is_empty(),
        "at least one policy-module and one ndes-proxy instance"
    );
    if options.postgres.is_none() {
        ensure!(
            options.policy_ports.len() == 1 && options.ndes_ports.len() == 1,
            "several instances of a service share PostgreSQL; SQLite runs one of each"
        );
    }
    let ca_config = dir.join("ca-mock.toml");
    if ca_config.exists() {
        bail!("{} exists; refusing to overwrite", ca_config.display());
    }
    if let Some(t) = &options.tls {
        ensure!(
            t.ndes_https_ports.len() == options.ndes_ports.len(),
            "one HTTPS port per ndes-proxy instance"
        );
    }
    for sub in ["secrets", "templates", "ra", "data"] {
        std::fs::create_dir_all(dir.join(sub))
            .with_context(|| format!("creating {}", dir.join(sub).display()))?;
    }
    let loopback = |port: u16| SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let ca_addr = loopback(options.ca_port);
    let policy_addrs: Vec<_> = options.policy_ports.iter().map(|p| loopback(*p)).collect();
    let ndes_addrs: Vec<_> = options.ndes_ports.iter().map(|p| loopback(*p)).collect();

    write_secrets(dir, options.postgres.as_ref())?;
    let ca_plain_addr = options.tls.as_ref().map(|t| loopback(t.ca_plain_port));
    let ndes_https_addrs: Vec<_> = options
        .tls
        .iter()
        .flat_map(|t| t.ndes_https_ports.iter().map(|p| loopback(*p)))
        .collect();
    let root_fingerprint = write_ca(dir, ca_addr, ca_plain_addr, options.postgres.as_ref()).await?;
    let scheme = if options.tls.is_some() {
        "https"
    } else {
        "http"
    };

    let mut policy_configs = Vec::new();
    for (i, addr) in policy_addrs.iter().enumerate() {
        let path = dir.join(format!("policy-module-{}.toml", i + 1));
        let text = policy_config(*addr, &format!("{scheme}://{ca_addr}"), options)?;
        policy_module::config::Config::from_toml(&text).context("generated policy config")?;
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        policy_configs.push(path);
    }
    let sample: policy_module::name_policy::NamePolicy =
        serde_json::from_str(policy_module::name_policy::SAMPLE).context("sample name policy")?;
    sample.validate().map_err(anyhow::Error::msg)?;
    std::fs::write(
        dir.join("name-policy.json"),
        policy_module::name_policy::SAMPLE,
    )?;
    let mut ndes_configs = Vec::new();
    for (i, addr) in ndes_addrs.iter().enumerate() {
        let path = dir.join(format!("ndes-proxy-{}.toml", i + 1));
        let policy = policy_addrs[i % policy_addrs.len()];
        let pending = if options.postgres.is_some() {
            "postgres_url_file = \"secrets/pending-postgres.url\"".to_owned()
        } else {
            format!("sqlite = \"data/pending-{}.db\"", i + 1)
        };
        let mut edits = vec![
            (
                "listen = \"127.0.0.1:8080\"",
                format!("listen = \"{addr}\""),
            ),
            (
                "url = \"http://127.0.0.1:8180\"",
                format!("url = \"{scheme}://{ca_addr}\""),
            ),
            (
                "url = \"http://127.0.0.1:8280\"",
                format!("url = \"{scheme}://{policy}\""),
            ),
            ("sqlite = \"data/pending.db\"", pending),
        ];
        if let Some(https) = ndes_https_addrs.get(i) {
            edits.extend(tls::ndes_edits(*https));
        }
        let text = replace_all(ndes_proxy::config::SAMPLE, &edits)?;
        ndes_proxy::config::Config::from_toml(&text).context("generated ndes-proxy config")?;
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        ndes_configs.push(path);
    }
    Ok(ServicesLayout {
        dir: dir.to_owned(),
        ca_config,
        policy_configs,
        ndes_configs,
        ca_addr,
        policy_addrs,
        ndes_addrs,
        root_fingerprint,
        tls_root: options
            .tls
            .as_ref()
            .map(|_| dir.join("tls").join("root.pem")),
        ca_plain_addr,
        ndes_https_addrs,
    })
}

/// Every token the three samples name, random, plus the PostgreSQL URL files.
fn write_secrets(dir: &Path, postgres: Option<&Postgres>) -> Result<()> {
    let secrets = dir.join("secrets");
    for name in [
        "ca-ndes.token",
        "ca-policy.token",
        "policy-admin.token",
        "policy-ndes.token",
        "ndes-admin.token",
        "mscep-admin.token",
    ] {
        let token = Secret::generate(foundation::secret::TOKEN_BYTES)?;
        write_private(
            &secrets.join(name),
            format!("{}\n", token.expose()).as_bytes(),
        )?;
    }
    // The policy modules' grant key (all instances sign with it) and its public half, which
    // ca-mock trusts (docs/decisions.md #10); ndes-proxy never sees either.
    let grant_key = ca_api::GrantKey::generate()?;
    write_private(&secrets.join("grant-signing.key"), &grant_key.to_pem()?)?;
    std::fs::write(dir.join("grant-signing.pub.pem"), grant_key.public_pem()?)
        .context("writing grant-signing.pub.pem")?;
    let password = Secret::generate(16)?;
    write_private(
        &secrets.join("mscep-admin.users"),
        format!("ndesadmin:{}\n", password.expose()).as_bytes(),
    )?;
    if let Some(pg) = postgres {
        write_private(&secrets.join("policy-postgres.url"), pg.policy.as_bytes())?;
        write_private(&secrets.join("pending-postgres.url"), pg.pending.as_bytes())?;
    }
    Ok(())
}

/// The CA hierarchy, templates and `ca-mock.toml`; then the RA identity, issued in process
/// against the same store the ca-mock process will open. Returns the root fingerprint.
async fn write_ca(
    dir: &Path,
    addr: SocketAddr,
    plain: Option<SocketAddr>,
    postgres: Option<&Postgres>,
) -> Result<String> {
    let source = ca_mock::InitSource::Generate {
        key: ca_mock::keys::KeySpec::Rsa2048,
        root_cn: "scep-lab Root CA".into(),
        issuing_cn: "scep-lab Issuing CA".into(),
        org: Some("scep-lab".into()),
        root_days: 3650,
        issuing_days: 1825,
    };
    let report = ca_mock::init(dir, &source, None).context("creating the CA hierarchy")?;
    for (name, text) in BUILTIN_TEMPLATES {
        std::fs::write(dir.join("templates").join(name), text)?;
    }
    let database = match postgres {
        Some(pg) => format!("database = \"{}\"", pg.ca),
        None => "database = \"data/ca.db\"".to_owned(),
    };
    // With TLS, certificates name the plain listener: relying parties fetch without TLS.
    let mut edits = vec![
        (
            "listen = \"127.0.0.1:8180\"",
            format!("listen = \"{addr}\""),
        ),
        (
            "public_base_url = \"http://127.0.0.1:8180\"",
            format!("public_base_url = \"http://{}\"", plain.unwrap_or(addr)),
        ),
        ("database = \"ca.db\"", database),
    ];
    if let Some(plain) = plain {
        edits.extend(tls::ca_edits(plain));
        std::fs::write(
            dir.join("templates").join(tls::TEMPLATE_FILE),
            crate::tls::SERVER_TEMPLATE,
        )?;
    }
    let text = replace_all(ca_mock::config::SAMPLE_CONFIG, &edits)?;
    let path = dir.join("ca-mock.toml");
    // Private: with PostgreSQL it names the database URL.
    write_private(&path, text.as_bytes())?;
    let config = ca_mock::Config::load(&path).context("the generated ca-mock.toml")?;
    let state = ca_mock::open(&config).await.context("opening the CA")?;
    let ra = dir.join("ra");
    crate::ra::pair(
        &state.ca,
        [&ra.join("signing.key"), &ra.join("signing.pem")],
        "ra-signing",
        "EnrollmentAgentOffline",
        "scep-lab NDES RA (signing)",
    )
    .await?;
    crate::ra::pair(
        &state.ca,
        [&ra.join("encryption.key"), &ra.join("encryption.pem")],
        "ra-encryption",
        "CEPEncryption",
        "scep-lab NDES RA (encryption)",
    )
    .await?;
    let m = state.ca.material();
    let mut chain = m.issuing.to_pem()?;
    chain.extend(m.root.to_pem()?);
    std::fs::write(ra.join("chain.pem"), chain)?;
    if plain.is_some() {
        tls::issue_all(&state.ca, dir).await?;
    }
    Ok(report.root_fingerprint)
}

fn policy_config(addr: SocketAddr, ca_url: &str, options: &ServicesOptions) -> Result<String> {
    let mut edits = vec![
        (
            "listen = \"127.0.0.1:8280\"",
            format!("listen = \"{addr}\""),
        ),
        (
            "url = \"http://127.0.0.1:8180\"",
            format!("url = \"{ca_url}\""),
        ),
    ];
    if options.tls.is_some() {
        edits.extend(tls::policy_edits());
    }
    if options.postgres.is_some() {
        edits.push((
            "sqlite = \"data/policy.db\"",
            "postgres_url_file = \"secrets/policy-postgres.url\"".to_owned(),
        ));
    }
    if let Some(ms) = options.outbox_poll_ms {
        edits.push((
            "poll_interval_ms = 5000",
            format!("poll_interval_ms = {ms}"),
        ));
    }
    replace_all(policy_module::config::SAMPLE, &edits)
}

/// Replaces each `old` line of a sample, failing when one is missing: a generated
/// configuration must come from the sample as committed, not silently from a stale copy.
fn replace_all(sample: &str, edits: &[(&str, String)]) -> Result<String> {
    let mut text = sample.to_owned();
    for (old, new) in edits {
        ensure!(
            text.lines().any(|l| l == *old),
            "the sample no longer has the line {old:?}"
        );
        text = text
            .lines()
            .map(|l| if l == *old { new.as_str() } else { l })
            .collect::<Vec<_>>()
            .join("\n");
        text.push('\n');
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn prepare_writes_configs_every_service_parses() {
        let dir = tempfile::tempdir().unwrap();
        let mut options = ServicesOptions::sample();
        options.ca_port = 18180;
        let layout = prepare(dir.path(), &options).await.unwrap();
        let ca = ca_mock::Config::load(&layout.ca_config).unwrap();
        assert_eq!(ca.listen.port(), 18180);
        assert!(ca.load_callers().is_ok(), "the CA reads both token files");
        // TLS by default: ca-mock's API on HTTPS, certificates naming its plain listener.
        assert_eq!(ca.plain_listen.map(|a| a.port()), Some(8181));
        assert_eq!(ca.public_base_url, "http://127.0.0.1:8181");
        assert!(
            ca.tls.server().unwrap().is_some(),
            "ca-mock's certificate loads"
        );
        let policy = policy_module::config::Config::load(&layout.policy_configs[0]).unwrap();
        assert_eq!(policy.ca.url, "https://127.0.0.1:18180");
        assert!(policy.tls.server().unwrap().is_some());
        assert!(
            policy.tls.pin().unwrap().is_some(),
            "policy-module pins the root"
        );
        assert!(policy_module::config::read_secret(&policy.ca.token_file).is_ok());
        let ndes = ndes_proxy::config::Config::load(&layout.ndes_configs[0]).unwrap();
        ndes.validate().unwrap();
        assert!(ndes.ra_identity().is_ok(), "the RA files load");
        assert_eq!(ndes.https_listen.map(|a| a.port()), Some(8443));
        assert!(ndes.tls.server().unwrap().is_some() && ndes.tls.pin().unwrap().is_some());
        let remote = ndes.policy.as_ref().unwrap();
        assert_eq!(remote.url, "https://127.0.0.1:8280");
        assert_eq!(ndes.ca.url, "https://127.0.0.1:18180");
        assert_eq!(
            layout.ndes_admin_base(0).as_deref(),
            Some("https://127.0.0.1:8443")
        );
        assert!(layout.setup_commands()[0].contains("--ca-file"));
        // The shared token is the same file for both sides.
        assert_eq!(remote.token_file, policy.ndes_token_file);
        assert_eq!(layout.root_fingerprint.len(), 64);
        assert!(prepare(dir.path(), &options).await.is_err(), "no overwrite");
        let two = ServicesOptions {
            ndes_ports: vec![1, 2],
            ..ServicesOptions::sample()
        };
        let err = prepare(&dir.path().join("x"), &two).await.unwrap_err();
        assert!(err.to_string().contains("PostgreSQL"), "{err}");
    }

    #[tokio::test]
    async fn without_tls_every_url_is_plain_and_no_tls_section_is_on() {
        let dir = tempfile::tempdir().unwrap();
        let options = ServicesOptions {
            tls: None,
            ..ServicesOptions::sample()
        };
        let layout = prepare(dir.path(), &options).await.unwrap();
        let ca = ca_mock::Config::load(&layout.ca_config).unwrap();
        assert_eq!(
            (ca.plain_listen, ca.tls.server().unwrap().is_none()),
            (None, true)
        );
        let policy = policy_module::config::Config::load(&layout.policy_configs[0]).unwrap();
        assert_eq!(policy.ca.url, "http://127.0.0.1:8180");
        let ndes = ndes_proxy::config::Config::load(&layout.ndes_configs[0]).unwrap();
        ndes.validate().unwrap();
        assert_eq!(ndes.https_listen, None);
        assert!(!dir.path().join("tls").exists());
        assert_eq!(
            layout.ndes_admin_base(0).as_deref(),
            Some("http://127.0.0.1:8080")
        );
    }

    #[tokio::test]
    async fn renew_due_reissues_only_certificates_a_third_from_expiry() {
        let dir = tempfile::tempdir().unwrap();
        prepare(dir.path(), &ServicesOptions::sample())
            .await
            .unwrap();
        assert!(
            tls::renew_due(dir.path()).await.unwrap().is_empty(),
            "all fresh"
        );
        // A missing certificate is due; the others are kept.
        let cert = dir.path().join("tls/policy-module.crt.pem");
        let before = std::fs::read(dir.path().join("tls/ca-mock.crt.pem")).unwrap();
        std::fs::remove_file(&cert).unwrap();
        assert_eq!(
            tls::renew_due(dir.path()).await.unwrap(),
            vec!["policy-module"]
        );
        assert!(cert.exists());
        assert_eq!(
            std::fs::read(dir.path().join("tls/ca-mock.crt.pem")).unwrap(),
            before
        );
    }
}
