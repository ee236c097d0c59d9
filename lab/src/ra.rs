//! The NDES RA identity, issued by the lab's own CA as AD CS issues NDES's: a signing
//! certificate from the enrollment-agent template and an encryption certificate from the
//! CEP-encryption template. Keys are generated here once and kept (0600) in the data
//! directory; certificates are re-requested idempotently by a fixed request id.

use std::path::Path;

use anyhow::{Context, Result, bail};
use ca_api::IssueCall;
use ca_mock::CertificateAuthority;
use foundation::names::{NameAttr, SubjectAttr};
use foundation::time::asn1_to_unix;
use ndes_proxy::{KeyPair, RaIdentity};
use openssl::hash::MessageDigest;
use openssl::pkey::PKey;
use openssl::rsa::Rsa;
use openssl::x509::{X509, X509Name, X509ReqBuilder};

/// Issue (or load) the RA certificates and assemble the identity. With `next_issuing` (a
/// planned CA rollover), GetNextCACert announces it with the root. After a rollover the RA
/// certificates are issued again, by the new issuing CA, for the same keys; the previous
/// encryption certificate still opens envelopes until it expires, for clients that fetched
/// GetCACert before the switch.
pub(crate) async fn identity(
    ca: &CertificateAuthority,
    dir: &Path,
    next_issuing: Option<&X509>,
) -> Result<RaIdentity> {
    let file = |name: &str, ext: &str| dir.join(format!("{name}.{ext}.pem"));
    let signing = pair(
        ca,
        [&file("ra-signing", "key"), &file("ra-signing", "crt")],
        "ra-signing",
        "EnrollmentAgentOffline",
        "scep-lab NDES RA (signing)",
    )
    .await?;
    let encryption_cert = file("ra-encryption", "crt");
    let previous_path = file("ra-encryption", "previous.crt");
    let before = std::fs::read(&encryption_cert).ok();
    let encryption = pair(
        ca,
        [&file("ra-encryption", "key"), &encryption_cert],
        "ra-encryption",
        "CEPEncryption",
        "scep-lab NDES RA (encryption)",
    )
    .await?;
    if let Some(before) = before
        && before != encryption.cert.to_pem()?
    {
        std::fs::write(&previous_path, &before)
            .with_context(|| format!("writing {}", previous_path.display()))?;
    }
    let m = ca.material();
    let mut ra = RaIdentity::new(signing, encryption, vec![m.issuing.clone(), m.root.clone()])?;
    if let Some(previous) = previous_encryption(&previous_path, &file("ra-encryption", "key"))? {
        let until = asn1_to_unix(previous.cert.not_after())?;
        ra = ra.with_previous_encryption(previous, until)?;
    }
    if let Some(next) = next_issuing {
        ra = ra.with_next_ca(&[next.clone(), m.root.clone()])?;
    }
    Ok(ra)
}

/// The encryption certificate the RA had before a rollover, with its (unchanged) key.
fn previous_encryption(cert_path: &Path, key_path: &Path) -> Result<Option<KeyPair>> {
    if !cert_path.exists() {
        return Ok(None);
    }
    let cert = X509::from_pem(&std::fs::read(cert_path)?)
        .with_context(|| format!("reading {}", cert_path.display()))?;
    let key = PKey::private_key_from_pem(&std::fs::read(key_path)?)
        .with_context(|| format!("reading {}", key_path.display()))?;
    if !cert.public_key()?.public_eq(&key) {
        // The key was replaced since: that certificate opens nothing any more.
        return Ok(None);
    }
    Ok(Some(KeyPair { cert, key }))
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
    // One request id per key and issuing CA: a restart replays the same certificate, a new
    // key, or a new issuing CA after a rollover, gets a new one.
    let sha = |der: &[u8]| openssl::hash::hash(MessageDigest::sha256(), der);
    let key_id = hex::encode(&sha(&key.public_key_to_der()?)?[..12]);
    let issuer_id = hex::encode(&sha(&ca.material().issuing.to_der()?)?[..6]);
    let req = IssueCall {
        request_id: format!("lab-{name}-{key_id}-{issuer_id}"),
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
