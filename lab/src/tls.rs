//! TLS in the lab (issue 17 item 4): each service's server certificate, issued by the lab's own
//! CA from [`SERVER_TEMPLATE`], its key kept 0600 under `<data>/tls/`, re-issued when a third of
//! its lifetime is left and reloaded into the running listener; and the pin every service
//! calls another with (the lab's root, nothing else).
//!
//! With mutual TLS, each calling service also gets a client certificate from
//! [`CLIENT_TEMPLATE`] (clientAuth, CN = its caller name, [`CLIENTS`]) kept and renewed the
//! same way, and ca-mock's and policy-module's listeners verify client certificates against
//! the lab's root (docs/decisions.md #18).

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use ca_api::IssueCall;
use ca_mock::CertificateAuthority;
use ca_mock::template::Template;
use foundation::Clock;
use foundation::names::{NameAttr, San, SanKind, SubjectAttr};
use foundation::tls::{ClientTls, ServerTls};
use openssl::hash::MessageDigest;
use openssl::pkey::PKey;
use openssl::rsa::Rsa;
use openssl::x509::{X509, X509Name, X509ReqBuilder};

/// The lab's template for its services' HTTPS certificates: serverAuth, the listener's IP and
/// `localhost` as SANs. Loaded into the lab's CA only when TLS is on; no caller is entitled.
pub const SERVER_TEMPLATE: &str = r#"
name = "LabTlsServer"
description = "scep-lab service HTTPS certificates (issued by the lab itself)"
validity_days = 90
hash = "sha256"
key_usage = ["digitalSignature", "keyEncipherment"]
key_usage_critical = true
extended_key_usage = ["serverAuth"]

[keys]
rsa_min_bits = 2048
ec_curves = []

[subject]
required = ["CN"]
allowed = ["CN", "O"]

[sans]
allowed = ["dns", "ip"]
max = 4
"#;

/// The template's name.
pub const SERVER_TEMPLATE_NAME: &str = "LabTlsServer";

/// The lab's template for its services' client certificates (mutual TLS): clientAuth, the
/// caller name as CN, no SANs. Loaded only with mutual TLS on; no caller is entitled.
pub const CLIENT_TEMPLATE: &str = r#"
name = "LabTlsClient"
description = "scep-lab service client certificates for mutual TLS (issued by the lab itself)"
validity_days = 90
hash = "sha256"
key_usage = ["digitalSignature"]
key_usage_critical = true
extended_key_usage = ["clientAuth"]

[keys]
rsa_min_bits = 2048
ec_curves = []

[subject]
required = ["CN"]
allowed = ["CN"]

[sans]
allowed = []
max = 0
"#;

/// The client template's name.
pub const CLIENT_TEMPLATE_NAME: &str = "LabTlsClient";

/// The services that call another with a client certificate under mutual TLS: the caller
/// names ca-mock's `Callers` and the policy module know them by.
pub const CLIENTS: [&str; 3] = ["ndes-proxy", "policy-module", "scep-console"];

/// The services whose listeners verify client certificates under mutual TLS.
const VERIFYING: [&str; 2] = ["ca-mock", "policy-module"];

/// A server or a client certificate of one service.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Server,
    Client,
}

/// The services that serve HTTPS, by the file names of their key and certificate.
pub const SERVICES: [&str; 4] = ["ca-mock", "policy-module", "ndes-proxy", "scep-console"];

/// The parsed template.
pub fn server_template() -> Result<Template> {
    Template::from_toml(SERVER_TEMPLATE).context("the lab's TLS server template")
}

/// The parsed client template.
pub fn client_template() -> Result<Template> {
    Template::from_toml(CLIENT_TEMPLATE).context("the lab's TLS client template")
}

/// The lab's TLS material: one reloadable server certificate per service and the pin.
#[derive(Debug)]
pub struct LabTls {
    dir: PathBuf,
    bind: IpAddr,
    servers: Vec<(&'static str, Arc<ServerTls>)>,
    pin: ClientTls,
    /// Mutual TLS on: client certificates issued and verified.
    mutual: bool,
}

impl LabTls {
    /// Issue (or keep, when not yet due) each service's certificate, and with `mutual` each
    /// caller's client certificate; write the root to pin.
    pub async fn start(
        ca: &CertificateAuthority,
        data: &Path,
        bind: IpAddr,
        mutual: bool,
        clock: &dyn Clock,
    ) -> Result<Self> {
        let dir = data.join("tls");
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let root_pem = ca.material().root.to_pem()?;
        std::fs::write(dir.join("root.pem"), &root_pem).context("writing the root to pin")?;
        let mut servers = Vec::new();
        for name in SERVICES {
            let (cert, key) = paths(&dir, name, Kind::Server);
            if due(&cert, clock.now()) {
                issue(ca, &dir, name, Kind::Server, bind, clock.now()).await?;
            }
            let (chain, key_pem) = (std::fs::read(&cert)?, std::fs::read(&key)?);
            let tls = if mutual && VERIFYING.contains(&name) {
                ServerTls::verify_clients(&chain, &key_pem, &root_pem)
            } else {
                ServerTls::from_pem(&chain, &key_pem)
            }
            .with_context(|| format!("loading {}", cert.display()))?;
            servers.push((name, Arc::new(tls)));
        }
        if mutual {
            for name in CLIENTS {
                let (cert, _) = paths(&dir, name, Kind::Client);
                if due(&cert, clock.now()) {
                    issue(ca, &dir, name, Kind::Client, bind, clock.now()).await?;
                }
            }
        }
        let pin = ClientTls::pinned(&root_pem).context("pinning the lab's root")?;
        Ok(Self {
            dir,
            bind,
            servers,
            pin,
            mutual,
        })
    }

    /// What `caller` (one of [`CLIENTS`]) calls another service with: the pin, and with
    /// mutual TLS its client certificate. Read at each call, so a client built after a
    /// renewal presents the renewed certificate; one built before keeps the old one, which
    /// is still valid for a third of its lifetime.
    pub fn client(&self, caller: &str) -> Result<ClientTls> {
        if !self.mutual {
            return Ok(self.pin.clone());
        }
        let (cert, key) = paths(&self.dir, caller, Kind::Client);
        self.pin
            .clone()
            .with_identity(&std::fs::read(&cert)?, &std::fs::read(&key)?)
            .with_context(|| format!("loading {}", cert.display()))
    }

    /// The server certificate of `service` (one of [`SERVICES`]).
    pub fn server(&self, service: &str) -> Result<Arc<ServerTls>> {
        self.servers
            .iter()
            .find(|(n, _)| *n == service)
            .map(|(_, t)| t.clone())
            .with_context(|| format!("no TLS certificate for {service}"))
    }

    /// What every service calls another with: the lab's root pinned.
    pub fn pin(&self) -> &ClientTls {
        &self.pin
    }

    /// `<data>/tls/root.pem`: what a client pins (`curl --cacert`).
    pub fn root_path(&self) -> PathBuf {
        self.dir.join("root.pem")
    }

    /// SHA-256 (hex) of `caller`'s client certificate on disk: what the services pin to it.
    pub fn client_sha256(&self, caller: &str) -> Result<String> {
        let (cert, _) = paths(&self.dir, caller, Kind::Client);
        let x = X509::from_pem(&std::fs::read(&cert)?)
            .with_context(|| format!("reading {}", cert.display()))?;
        Ok(hex::encode(x.digest(MessageDigest::sha256())?))
    }

    /// The certificate file of `service`.
    pub fn cert_path(&self, service: &str) -> PathBuf {
        paths(&self.dir, service, Kind::Server).0
    }

    /// The client certificate and key files of `caller` (mutual TLS).
    pub fn client_paths(&self, caller: &str) -> (PathBuf, PathBuf) {
        paths(&self.dir, caller, Kind::Client)
    }

    /// Re-issue and reload every server certificate with a third or less of its lifetime left
    /// at `now`, and re-issue such client certificates (their files; see [`Self::client`]);
    /// returns the services renewed. A failure leaves the certificate in use serving.
    pub async fn renew_due(
        &self,
        ca: &CertificateAuthority,
        now: i64,
    ) -> Result<Vec<&'static str>> {
        let mut renewed = Vec::new();
        for (name, tls) in &self.servers {
            let (cert, key) = paths(&self.dir, name, Kind::Server);
            if !due(&cert, now) {
                continue;
            }
            issue(ca, &self.dir, name, Kind::Server, self.bind, now).await?;
            tls.reload(&std::fs::read(&cert)?, &std::fs::read(&key)?)
                .with_context(|| format!("reloading {}", cert.display()))?;
            tracing::info!(service = *name, "TLS server certificate renewed");
            renewed.push(*name);
        }
        for name in CLIENTS.iter().filter(|_| self.mutual) {
            let (cert, _) = paths(&self.dir, name, Kind::Client);
            if due(&cert, now) {
                issue(ca, &self.dir, name, Kind::Client, self.bind, now).await?;
                tracing::info!(service = *name, "TLS client certificate renewed");
            }
        }
        Ok(renewed)
    }
}

pub(crate) fn paths(dir: &Path, name: &str, kind: Kind) -> (PathBuf, PathBuf) {
    let infix = match kind {
        Kind::Server => "",
        Kind::Client => ".client",
    };
    (
        dir.join(format!("{name}{infix}.crt.pem")),
        dir.join(format!("{name}{infix}.key.pem")),
    )
}

/// Whether the certificate at `cert` is missing, unreadable, or has a third or less of its
/// lifetime left at `now`.
pub(crate) fn due(cert: &Path, now: i64) -> bool {
    let Ok(pem) = std::fs::read(cert) else {
        return true;
    };
    let Ok(x) = X509::from_pem(&pem) else {
        return true;
    };
    let (Ok(from), Ok(until)) = (
        foundation::time::asn1_to_unix(x.not_before()),
        foundation::time::asn1_to_unix(x.not_after()),
    ) else {
        return true;
    };
    now >= until - (until - from) / 3
}

/// A new key and certificate for `name`, written to `<dir>/<name>[.client].{key,crt}.pem` (the
/// key 0600; the certificate with the issuing CA after it).
pub(crate) async fn issue(
    ca: &CertificateAuthority,
    dir: &Path,
    name: &str,
    kind: Kind,
    bind: IpAddr,
    now: i64,
) -> Result<()> {
    let key = PKey::from_rsa(Rsa::generate(2048)?)?;
    // A client certificate's CN is the caller name the services map it to.
    let (cn, template, what) = match kind {
        Kind::Server => (format!("scep-lab {name}"), SERVER_TEMPLATE_NAME, "server"),
        Kind::Client => (name.to_owned(), CLIENT_TEMPLATE_NAME, "client"),
    };
    let mut b = X509ReqBuilder::new()?;
    let mut subject = X509Name::builder()?;
    subject.append_entry_by_text("CN", &cn)?;
    b.set_subject_name(&subject.build())?;
    b.set_pubkey(&key)?;
    b.sign(&key, MessageDigest::sha256())?;
    let key_id = hex::encode(
        &openssl::hash::hash(MessageDigest::sha256(), &key.public_key_to_der()?)?[..12],
    );
    let mut sans = Vec::new();
    if kind == Kind::Server {
        sans.push(San::new(SanKind::Ip, "127.0.0.1"));
        sans.push(San::new(SanKind::Dns, "localhost"));
        if !bind.is_loopback() && !bind.is_unspecified() {
            sans.push(San::new(SanKind::Ip, bind.to_string()));
        }
    }
    let req = IssueCall {
        request_id: format!("lab-tls-{what}-{name}-{key_id}-{now}"),
        template: template.to_owned(),
        csr_der: b.build().to_der()?,
        subject: vec![NameAttr {
            attr: SubjectAttr::CN,
            value: cn,
        }],
        sans,
        validity_days: None,
        ..IssueCall::default()
    };
    let issued = ca
        .issue("scep-lab", &req)
        .await
        .with_context(|| format!("issuing the {name} TLS {what} certificate"))?;
    let cert = X509::from_der(&issued.der)?;
    if !cert.public_key()?.public_eq(&key) {
        bail!("the CA returned a {name} TLS {what} certificate for another key");
    }
    let (cert_path, key_path) = paths(dir, name, kind);
    crate::write_private(&key_path, &key.private_key_to_pem_pkcs8()?)?;
    let mut chain = cert.to_pem()?;
    chain.extend(ca.material().issuing.to_pem()?);
    std::fs::write(&cert_path, chain)
        .with_context(|| format!("writing {}", cert_path.display()))?;
    Ok(())
}
