//! TLS in the lab (issue 17 item 4): each service's server certificate, issued by the lab's own
//! CA from [`SERVER_TEMPLATE`], its key kept 0600 under `<data>/tls/`, re-issued when a third of
//! its lifetime is left and reloaded into the running listener; and the pin every service
//! calls another with (the lab's root, nothing else).

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

/// The services that serve HTTPS, by the file names of their key and certificate.
pub const SERVICES: [&str; 4] = ["ca-mock", "policy-module", "ndes-proxy", "scep-console"];

/// The parsed template.
pub fn server_template() -> Result<Template> {
    Template::from_toml(SERVER_TEMPLATE).context("the lab's TLS server template")
}

/// The lab's TLS material: one reloadable server certificate per service and the pin.
#[derive(Debug)]
pub struct LabTls {
    dir: PathBuf,
    bind: IpAddr,
    servers: Vec<(&'static str, Arc<ServerTls>)>,
    pin: ClientTls,
}

impl LabTls {
    /// Issue (or keep, when not yet due) each service's certificate; write the root to pin.
    pub async fn start(
        ca: &CertificateAuthority,
        data: &Path,
        bind: IpAddr,
        clock: &dyn Clock,
    ) -> Result<Self> {
        let dir = data.join("tls");
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let root_pem = ca.material().root.to_pem()?;
        std::fs::write(dir.join("root.pem"), &root_pem).context("writing the root to pin")?;
        let mut servers = Vec::new();
        for name in SERVICES {
            let (cert, key) = paths(&dir, name);
            if due(&cert, clock.now()) {
                issue(ca, &dir, name, bind, clock.now()).await?;
            }
            let tls = ServerTls::from_pem(&std::fs::read(&cert)?, &std::fs::read(&key)?)
                .with_context(|| format!("loading {}", cert.display()))?;
            servers.push((name, Arc::new(tls)));
        }
        let pin = ClientTls::pinned(&root_pem).context("pinning the lab's root")?;
        Ok(Self {
            dir,
            bind,
            servers,
            pin,
        })
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

    /// The certificate file of `service`.
    pub fn cert_path(&self, service: &str) -> PathBuf {
        paths(&self.dir, service).0
    }

    /// Re-issue and reload every certificate with a third or less of its lifetime left at
    /// `now`; returns the services renewed. A failure leaves the certificate in use serving.
    pub async fn renew_due(
        &self,
        ca: &CertificateAuthority,
        now: i64,
    ) -> Result<Vec<&'static str>> {
        let mut renewed = Vec::new();
        for (name, tls) in &self.servers {
            let (cert, key) = paths(&self.dir, name);
            if !due(&cert, now) {
                continue;
            }
            issue(ca, &self.dir, name, self.bind, now).await?;
            tls.reload(&std::fs::read(&cert)?, &std::fs::read(&key)?)
                .with_context(|| format!("reloading {}", cert.display()))?;
            tracing::info!(service = *name, "TLS server certificate renewed");
            renewed.push(*name);
        }
        Ok(renewed)
    }
}

pub(crate) fn paths(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    (
        dir.join(format!("{name}.crt.pem")),
        dir.join(format!("{name}.key.pem")),
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

/// A new key and certificate for `name`, written to `<dir>/<name>.{key,crt}.pem` (the key
/// 0600; the certificate with the issuing CA after it).
pub(crate) async fn issue(
    ca: &CertificateAuthority,
    dir: &Path,
    name: &str,
    bind: IpAddr,
    now: i64,
) -> Result<()> {
    let key = PKey::from_rsa(Rsa::generate(2048)?)?;
    let cn = format!("scep-lab {name}");
    let mut b = X509ReqBuilder::new()?;
    let mut subject = X509Name::builder()?;
    subject.append_entry_by_text("CN", &cn)?;
    b.set_subject_name(&subject.build())?;
    b.set_pubkey(&key)?;
    b.sign(&key, MessageDigest::sha256())?;
    let key_id = hex::encode(
        &openssl::hash::hash(MessageDigest::sha256(), &key.public_key_to_der()?)?[..12],
    );
    let mut sans = vec![
        San::new(SanKind::Ip, "127.0.0.1"),
        San::new(SanKind::Dns, "localhost"),
    ];
    if !bind.is_loopback() && !bind.is_unspecified() {
        sans.push(San::new(SanKind::Ip, bind.to_string()));
    }
    let req = IssueCall {
        request_id: format!("lab-tls-{name}-{key_id}-{now}"),
        template: SERVER_TEMPLATE_NAME.to_owned(),
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
        .with_context(|| format!("issuing the {name} TLS certificate"))?;
    let cert = X509::from_der(&issued.der)?;
    if !cert.public_key()?.public_eq(&key) {
        bail!("the CA returned a {name} TLS certificate for another key");
    }
    let (cert_path, key_path) = paths(dir, name);
    crate::write_private(&key_path, &key.private_key_to_pem_pkcs8()?)?;
    let mut chain = cert.to_pem()?;
    chain.extend(ca.material().issuing.to_pem()?);
    std::fs::write(&cert_path, chain)
        .with_context(|| format!("writing {}", cert_path.display()))?;
    Ok(())
}
