//! The CA hierarchy on disk: a root and an issuing CA, created or imported by [`init`] and
//! loaded by [`CaMaterial::load`].
//!
//! Files in the CA directory: `root.crt.pem`, `root.key.pem` (absent when imported without the
//! root key), `issuing.crt.pem`, `issuing.key.pem`. Keys are PKCS#8 PEM, mode 0600, encrypted
//! when a passphrase is given.

use std::fmt;
use std::path::{Path, PathBuf};

use openssl::asn1::{Asn1Integer, Asn1Time};
use openssl::hash::MessageDigest;
use openssl::pkcs12::Pkcs12;
use openssl::pkey::{PKey, PKeyRef, Private};
use openssl::x509::extension::{
    AuthorityKeyIdentifier, BasicConstraints, KeyUsage, SubjectKeyIdentifier,
};
use openssl::x509::{X509, X509Builder, X509NameBuilder, X509Ref};

use crate::error::CaError;
use crate::keys::{KeySpec, Passphrase, SigningAlg, read_private_key, write_private_key};
use foundation::Serial;

/// File names inside the CA directory.
pub const ROOT_CERT: &str = "root.crt.pem";
/// Root key file name.
pub const ROOT_KEY: &str = "root.key.pem";
/// Issuing CA certificate file name.
pub const ISSUING_CERT: &str = "issuing.crt.pem";
/// Issuing CA key file name.
pub const ISSUING_KEY: &str = "issuing.key.pem";

/// Where the hierarchy comes from.
#[derive(Debug, Clone)]
pub enum InitSource {
    /// Generate both keys and certificates.
    Generate {
        /// Key type for both CAs.
        key: KeySpec,
        /// Root common name.
        root_cn: String,
        /// Issuing CA common name.
        issuing_cn: String,
        /// Optional organisation for both.
        org: Option<String>,
        /// Root validity in days.
        root_days: u32,
        /// Issuing CA validity in days.
        issuing_days: u32,
    },
    /// Import PEM files: root certificate, issuing certificate and issuing key.
    Pem {
        /// Root certificate PEM.
        root_cert: PathBuf,
        /// Issuing CA certificate PEM.
        issuing_cert: PathBuf,
        /// Issuing CA key PEM.
        issuing_key: PathBuf,
        /// Passphrase of the imported key file, if encrypted.
        key_passphrase: Option<Passphrase>,
    },
    /// Import a PKCS#12 holding the issuing key and certificate, with the root among its CA
    /// certificates.
    Pkcs12 {
        /// The .p12/.pfx file.
        file: PathBuf,
        /// Its password.
        password: Passphrase,
    },
}

/// What [`init`] wrote.
#[derive(Debug, Clone)]
pub struct InitReport {
    /// Every file written.
    pub written: Vec<PathBuf>,
    /// SHA-256 of the root certificate DER, lowercase hex.
    pub root_fingerprint: String,
}

/// Creates or imports the hierarchy into `dir` (created if missing). Refuses to overwrite an
/// existing hierarchy. Keys are encrypted with `passphrase` when given.
pub fn init(
    dir: &Path,
    source: &InitSource,
    passphrase: Option<&Passphrase>,
) -> Result<InitReport, CaError> {
    std::fs::create_dir_all(dir).map_err(|e| CaError::io(dir, e))?;
    for name in [ROOT_CERT, ISSUING_CERT, ISSUING_KEY, ROOT_KEY] {
        let p = dir.join(name);
        if p.exists() {
            return Err(CaError::Config(format!(
                "{} exists; refusing to overwrite",
                p.display()
            )));
        }
    }
    let (root, root_key, issuing, issuing_key) = match source {
        InitSource::Generate {
            key,
            root_cn,
            issuing_cn,
            org,
            root_days,
            issuing_days,
        } => {
            let root_key = key.generate()?;
            let root = make_root(&root_key, root_cn, org.as_deref(), *root_days)?;
            let issuing_key = key.generate()?;
            let issuing = make_issuing(
                &root,
                &root_key,
                &issuing_key,
                issuing_cn,
                org.as_deref(),
                *issuing_days,
            )?;
            (root, Some(root_key), issuing, issuing_key)
        }
        InitSource::Pem {
            root_cert,
            issuing_cert,
            issuing_key,
            key_passphrase,
        } => {
            let root = read_cert(root_cert)?;
            let issuing = read_cert(issuing_cert)?;
            let key = read_private_key(issuing_key, key_passphrase.as_ref())?;
            (root, None, issuing, key)
        }
        InitSource::Pkcs12 { file, password } => import_pkcs12(file, password)?,
    };
    check_hierarchy(&root, &issuing, &issuing_key)?;

    let mut written = Vec::new();
    let mut write_cert = |name: &str, cert: &X509Ref| -> Result<(), CaError> {
        let path = dir.join(name);
        let pem = cert.to_pem().map_err(CaError::crypto)?;
        std::fs::write(&path, pem).map_err(|e| CaError::io(&path, e))?;
        written.push(path);
        Ok(())
    };
    write_cert(ROOT_CERT, &root)?;
    write_cert(ISSUING_CERT, &issuing)?;
    if let Some(k) = &root_key {
        write_private_key(&dir.join(ROOT_KEY), k, passphrase)?;
        written.push(dir.join(ROOT_KEY));
    }
    write_private_key(&dir.join(ISSUING_KEY), &issuing_key, passphrase)?;
    written.push(dir.join(ISSUING_KEY));
    Ok(InitReport {
        written,
        root_fingerprint: fingerprint(&root)?,
    })
}

/// SHA-256 of a certificate's DER, lowercase hex (what `scepclient -ca-fingerprint` takes).
pub fn fingerprint(cert: &X509Ref) -> Result<String, CaError> {
    cert.digest(MessageDigest::sha256())
        .map(hex::encode)
        .map_err(CaError::crypto)
}

pub(crate) fn read_cert(path: &Path) -> Result<X509, CaError> {
    let pem = std::fs::read(path).map_err(|e| CaError::io(path, e))?;
    X509::from_pem(&pem)
        .map_err(|_| CaError::Config(format!("{}: not a PEM certificate", path.display())))
}

/// Root certificate, root key (when known), issuing certificate, issuing key.
type Hierarchy = (X509, Option<PKey<Private>>, X509, PKey<Private>);

fn import_pkcs12(file: &Path, password: &Passphrase) -> Result<Hierarchy, CaError> {
    let der = std::fs::read(file).map_err(|e| CaError::io(file, e))?;
    let bad = |m: &str| CaError::Config(format!("{}: {m}", file.display()));
    let p12 = Pkcs12::from_der(&der).map_err(|_| bad("not a PKCS#12 file"))?;
    let pass = std::str::from_utf8(password.as_bytes()).map_err(|_| bad("password not UTF-8"))?;
    let parsed = p12
        .parse2(pass)
        .map_err(|_| bad("wrong password or unreadable content"))?;
    let key = parsed.pkey.ok_or_else(|| bad("no private key"))?;
    let issuing = parsed.cert.ok_or_else(|| bad("no certificate"))?;
    let root = parsed
        .ca
        .into_iter()
        .flatten()
        .find(|c| c.subject_name().to_der().ok() == c.issuer_name().to_der().ok())
        .ok_or_else(|| bad("no self-signed root among the CA certificates"))?;
    Ok((root, None, issuing, key))
}

/// Checks that the issuing CA is signed by the root, is a CA, and matches its key.
pub(crate) fn check_hierarchy(
    root: &X509Ref,
    issuing: &X509Ref,
    key: &PKeyRef<Private>,
) -> Result<(), CaError> {
    let root_key = root.public_key().map_err(CaError::crypto)?;
    if !issuing.verify(&root_key).unwrap_or(false) {
        return Err(CaError::Config(
            "issuing CA certificate is not signed by the root".into(),
        ));
    }
    let issuing_key = issuing.public_key().map_err(CaError::crypto)?;
    if !issuing_key.public_eq(key) {
        return Err(CaError::Config(
            "issuing CA key does not match its certificate".into(),
        ));
    }
    if issuing.subject_key_id().is_none() {
        return Err(CaError::Config(
            "issuing CA certificate has no subject key identifier (needed for CRL matching)".into(),
        ));
    }
    SigningAlg::for_key(key)?;
    Ok(())
}

fn ca_name(cn: &str, org: Option<&str>) -> Result<openssl::x509::X509Name, CaError> {
    let mut n = X509NameBuilder::new().map_err(CaError::crypto)?;
    if let Some(o) = org {
        n.append_entry_by_text("O", o).map_err(CaError::crypto)?;
    }
    n.append_entry_by_text("CN", cn).map_err(CaError::crypto)?;
    Ok(n.build())
}

/// How far a generated CA certificate's NotBefore lies before its creation.
const CA_BACKDATE_SECS: i64 = 86_400;

fn ca_builder(
    subject: &openssl::x509::X509NameRef,
    key: &PKeyRef<Private>,
    days: u32,
) -> Result<X509Builder, CaError> {
    let mut b = X509Builder::new().map_err(CaError::crypto)?;
    b.set_version(2).map_err(CaError::crypto)?;
    let serial: Asn1Integer = Serial::random()?
        .to_bn()?
        .to_asn1_integer()
        .map_err(CaError::crypto)?;
    b.set_serial_number(&serial).map_err(CaError::crypto)?;
    b.set_subject_name(subject).map_err(CaError::crypto)?;
    b.set_pubkey(key).map_err(CaError::crypto)?;
    // Backdated a day, as the certificates it issues are by the configured skew (5 min by
    // default): a certificate issued right after `init`, or by a CA whose clock runs behind
    // (the clock-skew fault tests run it 2 h behind), must still lie inside its issuer's
    // validity (RFC 5280 6.1.3; the P35 lint checks it, and issuance clamps NotBefore to it).
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(CaError::crypto)?
        .as_secs();
    let now = i64::try_from(now).map_err(CaError::crypto)?;
    let not_before: Asn1Time =
        Asn1Time::from_unix(now - CA_BACKDATE_SECS).map_err(CaError::crypto)?;
    let not_after: Asn1Time = Asn1Time::days_from_now(days).map_err(CaError::crypto)?;
    b.set_not_before(&not_before).map_err(CaError::crypto)?;
    b.set_not_after(&not_after).map_err(CaError::crypto)?;
    Ok(b)
}

fn ca_key_usage() -> Result<openssl::x509::X509Extension, CaError> {
    KeyUsage::new()
        .critical()
        .key_cert_sign()
        .crl_sign()
        .digital_signature()
        .build()
        .map_err(CaError::crypto)
}

fn make_root(
    key: &PKeyRef<Private>,
    cn: &str,
    org: Option<&str>,
    days: u32,
) -> Result<X509, CaError> {
    let name = ca_name(cn, org)?;
    let mut b = ca_builder(&name, key, days)?;
    b.set_issuer_name(&name).map_err(CaError::crypto)?;
    b.append_extension(
        BasicConstraints::new()
            .critical()
            .ca()
            .build()
            .map_err(CaError::crypto)?,
    )
    .map_err(CaError::crypto)?;
    b.append_extension(ca_key_usage()?)
        .map_err(CaError::crypto)?;
    let ski = SubjectKeyIdentifier::new().build(&b.x509v3_context(None, None));
    b.append_extension(ski.map_err(CaError::crypto)?)
        .map_err(CaError::crypto)?;
    let alg = SigningAlg::for_key(key)?;
    b.sign(key, alg.hash().digest()).map_err(CaError::crypto)?;
    Ok(b.build())
}

pub(crate) fn make_issuing(
    root: &X509Ref,
    root_key: &PKeyRef<Private>,
    key: &PKeyRef<Private>,
    cn: &str,
    org: Option<&str>,
    days: u32,
) -> Result<X509, CaError> {
    let name = ca_name(cn, org)?;
    let mut b = ca_builder(&name, key, days)?;
    b.set_issuer_name(root.subject_name())
        .map_err(CaError::crypto)?;
    let bc = BasicConstraints::new().critical().ca().pathlen(0).build();
    b.append_extension(bc.map_err(CaError::crypto)?)
        .map_err(CaError::crypto)?;
    b.append_extension(ca_key_usage()?)
        .map_err(CaError::crypto)?;
    let ski = SubjectKeyIdentifier::new().build(&b.x509v3_context(Some(root), None));
    b.append_extension(ski.map_err(CaError::crypto)?)
        .map_err(CaError::crypto)?;
    let aki = AuthorityKeyIdentifier::new()
        .keyid(true)
        .build(&b.x509v3_context(Some(root), None));
    b.append_extension(aki.map_err(CaError::crypto)?)
        .map_err(CaError::crypto)?;
    let alg = SigningAlg::for_key(root_key)?;
    b.sign(root_key, alg.hash().digest())
        .map_err(CaError::crypto)?;
    Ok(b.build())
}

/// The loaded hierarchy: certificates and the issuing key, plus values derived once for OCSP.
pub struct CaMaterial {
    /// The root certificate.
    pub root: X509,
    /// The issuing CA certificate.
    pub issuing: X509,
    pub(crate) key: PKey<Private>,
    pub(crate) signing: SigningAlg,
    /// DER of the issuing CA's subject name (OCSP issuerNameHash input).
    pub(crate) issuer_name_der: Vec<u8>,
    /// The issuing CA's subjectPublicKey bits (OCSP issuerKeyHash input).
    pub(crate) issuer_key_bits: Vec<u8>,
    /// The issuing CA's subject key identifier (CRL and certificate AKI).
    pub(crate) ski: Vec<u8>,
}

impl fmt::Debug for CaMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CaMaterial")
            .field("issuing", &self.issuing.subject_name())
            .field("key", &"<redacted>")
            .finish_non_exhaustive()
    }
}

impl CaMaterial {
    /// Loads the hierarchy from a CA directory, decrypting the issuing key with `passphrase`.
    pub fn load(dir: &Path, passphrase: Option<&Passphrase>) -> Result<Self, CaError> {
        let root = read_cert(&dir.join(ROOT_CERT))?;
        let issuing = read_cert(&dir.join(ISSUING_CERT))?;
        let key = read_private_key(&dir.join(ISSUING_KEY), passphrase)?;
        Self::new(root, issuing, key)
    }

    /// Builds from objects already in memory (checks the same things as `load`).
    pub fn new(root: X509, issuing: X509, key: PKey<Private>) -> Result<Self, CaError> {
        use der::Decode;
        check_hierarchy(&root, &issuing, &key)?;
        let der = issuing.to_der().map_err(CaError::crypto)?;
        let parsed = x509_cert::Certificate::from_der(&der).map_err(CaError::crypto)?;
        let issuer_name_der =
            der::Encode::to_der(&parsed.tbs_certificate.subject).map_err(CaError::crypto)?;
        let issuer_key_bits = parsed
            .tbs_certificate
            .subject_public_key_info
            .subject_public_key
            .raw_bytes()
            .to_vec();
        let ski = issuing
            .subject_key_id()
            .map(|s| s.as_slice().to_vec())
            .unwrap_or_default();
        let signing = SigningAlg::for_key(&key)?;
        Ok(Self {
            root,
            issuing,
            key,
            signing,
            issuer_name_der,
            issuer_key_bits,
            ski,
        })
    }

    /// DER of the issuing CA certificate.
    pub fn issuing_der(&self) -> Result<Vec<u8>, CaError> {
        self.issuing.to_der().map_err(CaError::crypto)
    }

    /// DER of the root certificate.
    pub fn root_der(&self) -> Result<Vec<u8>, CaError> {
        self.root.to_der().map_err(CaError::crypto)
    }

    /// SHA-256 fingerprint of the root, lowercase hex.
    pub fn root_fingerprint(&self) -> Result<String, CaError> {
        fingerprint(&self.root)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn generate(key: KeySpec) -> InitSource {
        InitSource::Generate {
            key,
            root_cn: "Test Root".into(),
            issuing_cn: "Test Issuing".into(),
            org: Some("Contoso".into()),
            root_days: 3650,
            issuing_days: 1825,
        }
    }

    #[test]
    fn init_writes_a_loadable_hierarchy_and_refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let pass = Passphrase::new("s3cret");
        let report = init(dir.path(), &generate(KeySpec::EcP256), Some(&pass)).unwrap();
        assert_eq!(report.written.len(), 4);
        assert_eq!(report.root_fingerprint.len(), 64);
        let ca = CaMaterial::load(dir.path(), Some(&pass)).unwrap();
        assert_eq!(ca.root_fingerprint().unwrap(), report.root_fingerprint);
        assert!(CaMaterial::load(dir.path(), None).is_err());
        assert!(!format!("{ca:?}").contains("PRIVATE"));
        assert!(init(dir.path(), &generate(KeySpec::EcP256), None).is_err());
    }

    #[test]
    fn pem_import_checks_that_key_and_certificates_belong_together() {
        let src = tempfile::tempdir().unwrap();
        init(src.path(), &generate(KeySpec::EcP384), None).unwrap();
        let pem = |root_cert: &str, issuing_cert: &str| InitSource::Pem {
            root_cert: src.path().join(root_cert),
            issuing_cert: src.path().join(issuing_cert),
            issuing_key: src.path().join(ISSUING_KEY),
            key_passphrase: None,
        };
        let dst = tempfile::tempdir().unwrap();
        let report = init(dst.path(), &pem(ROOT_CERT, ISSUING_CERT), None).unwrap();
        assert_eq!(report.written.len(), 3, "no root key when imported");
        assert!(CaMaterial::load(dst.path(), None).is_ok());
        // Swapped certificates: the issuing cert is not signed by the "root" given.
        let bad = tempfile::tempdir().unwrap();
        let err = init(bad.path(), &pem(ISSUING_CERT, ROOT_CERT), None).unwrap_err();
        assert!(matches!(err, CaError::Config(_)), "{err}");
    }

    #[test]
    fn rsa_hierarchies_use_the_requested_size() {
        let dir = tempfile::tempdir().unwrap();
        let source = generate(KeySpec::Rsa3072);
        init(dir.path(), &source, None).unwrap();
        let ca = CaMaterial::load(dir.path(), None).unwrap();
        assert_eq!(ca.issuing.public_key().unwrap().bits(), 3072);
        assert_eq!(ca.signing, SigningAlg::Rsa(crate::keys::HashAlg::Sha256));
    }

    #[test]
    fn pkcs12_import_round_trips() {
        let src = tempfile::tempdir().unwrap();
        init(src.path(), &generate(KeySpec::Rsa2048), None).unwrap();
        let ca = CaMaterial::load(src.path(), None).unwrap();
        let mut chain = openssl::stack::Stack::new().unwrap();
        chain.push(ca.root.clone()).unwrap();
        let p12 = Pkcs12::builder()
            .name("issuing")
            .pkey(&ca.key)
            .cert(&ca.issuing)
            .ca(chain)
            .build2("pw")
            .unwrap();
        let file = src.path().join("ca.p12");
        std::fs::write(&file, p12.to_der().unwrap()).unwrap();
        let dst = tempfile::tempdir().unwrap();
        let source = InitSource::Pkcs12 {
            file: file.clone(),
            password: Passphrase::new("pw"),
        };
        let report = init(dst.path(), &source, None).unwrap();
        assert_eq!(report.root_fingerprint, ca.root_fingerprint().unwrap());
        assert!(!dst.path().join(ROOT_KEY).exists());
        let bad = InitSource::Pkcs12 {
            file,
            password: Passphrase::new("nope"),
        };
        assert!(init(tempfile::tempdir().unwrap().path(), &bad, None).is_err());
    }
}
