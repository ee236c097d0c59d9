//! The NDES RA identity, issued by the lab's own CA as AD CS issues NDES's: a signing
//! certificate from the enrollment-agent template and an encryption certificate from the
//! CEP-encryption template. Keys are generated here once and kept (0600) in the data
//! directory; certificates are re-requested idempotently by a fixed request id.

use std::path::Path;

use anyhow::{Context, Result, bail};
use ca_api::IssueCall;
use ca_mock::CertificateAuthority;
use foundation::names::{NameAttr, SubjectAttr};
use ndes_proxy::{KeyPair, RaIdentity};
use openssl::hash::MessageDigest;
use openssl::pkey::PKey;
use openssl::rsa::Rsa;
use openssl::x509::{X509, X509Name, X509ReqBuilder};

/// Issue (or load) the RA certificates and assemble the identity.
pub(crate) async fn identity(ca: &CertificateAuthority, dir: &Path) -> Result<RaIdentity> {
    let file = |name: &str, ext: &str| dir.join(format!("{name}.{ext}.pem"));
    let signing = pair(
        ca,
        [&file("ra-signing", "key"), &file("ra-signing", "crt")],
        "ra-signing",
        "EnrollmentAgentOffline",
        "scep-lab NDES RA (signing)",
    )
    .await?;
    let encryption = pair(
        ca,
        [&file("ra-encryption", "key"), &file("ra-encryption", "crt")],
        "ra-encryption",
        "CEPEncryption",
        "scep-lab NDES RA (encryption)",
    )
    .await?;
    let m = ca.material();
    Ok(RaIdentity::new(
        signing,
        encryption,
        vec![m.issuing.clone(), m.root.clone()],
    )?)
}

/// One RA key (created once at `key_path`, 0600) and its certificate (written to `cert_path`).
pub(crate) async fn pair(
    ca: &CertificateAuthority,
    [key_path, cert_path]: [&Path; 2],
    name: &str,
    template: &str,
    cn: &str,
) -> Result<KeyPair> {
    let key = if key_path.exists() {
        PKey::private_key_from_pem(&std::fs::read(key_path)?)
            .with_context(|| format!("reading {}", key_path.display()))?
    } else {
        let key = PKey::from_rsa(Rsa::generate(2048)?)?;
        crate::write_private(key_path, &key.private_key_to_pem_pkcs8()?)?;
        key
    };
    let mut b = X509ReqBuilder::new()?;
    let mut subject = X509Name::builder()?;
    subject.append_entry_by_text("CN", cn)?;
    b.set_subject_name(&subject.build())?;
    b.set_pubkey(&key)?;
    b.sign(&key, MessageDigest::sha256())?;
    let csr = b.build().to_der()?;
    // One request id per key: a restart replays the same certificate, a new key gets a new one.
    let key_id = hex::encode(
        &openssl::hash::hash(MessageDigest::sha256(), &key.public_key_to_der()?)?[..12],
    );
    let req = IssueCall {
        request_id: format!("lab-{name}-{key_id}"),
        template: template.to_owned(),
        csr_der: csr,
        subject: vec![NameAttr {
            attr: SubjectAttr::CN,
            value: cn.to_owned(),
        }],
        sans: vec![],
        validity_days: None,
        ..IssueCall::default()
    };
    let issued = ca
        .issue("scep-lab", &req)
        .await
        .with_context(|| format!("issuing the {name} certificate"))?;
    let cert = X509::from_der(&issued.der)?;
    if !cert.public_key()?.public_eq(&key) {
        bail!("the CA returned a {name} certificate for another key");
    }
    std::fs::write(cert_path, cert.to_pem()?)
        .with_context(|| format!("writing {}", cert_path.display()))?;
    Ok(KeyPair { cert, key })
}
