//! A test PKI built with the openssl crate: keys, names, certificates for CAs, RAs and
//! devices, and the NDES-shaped hierarchy (a root CA, an RA signing and an RA encryption
//! certificate) the scep and ndes-proxy suites both run against.
//!
//! Everything here panics on an OpenSSL error: a fixture that cannot be built is a broken test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod roca;

use std::sync::OnceLock;

use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{HasPublic, PKey, PKeyRef, Private};
use openssl::rsa::Rsa;
use openssl::x509::extension::{BasicConstraints, KeyUsage, SubjectKeyIdentifier};
use openssl::x509::{X509, X509Name, X509NameRef, X509Ref};

pub use roca::roca_structured_rsa_2048;

/// A new RSA key of `bits` bits (any size, so undersized keys can be tried).
pub fn rsa_key(bits: u32) -> PKey<Private> {
    PKey::from_rsa(Rsa::generate(bits).expect("RSA key generation")).expect("RSA key")
}

/// A new EC P-256 key.
pub fn ec_key() -> PKey<Private> {
    ec_key_on(Nid::X9_62_PRIME256V1)
}

/// A new EC P-384 key.
pub fn ec384_key() -> PKey<Private> {
    ec_key_on(Nid::SECP384R1)
}

fn ec_key_on(curve: Nid) -> PKey<Private> {
    let group = EcGroup::from_curve_name(curve).expect("curve");
    PKey::from_ec_key(EcKey::generate(&group).expect("EC key generation")).expect("EC key")
}

/// `O=scep-lab tests, CN=<cn>`: the subject of every test certificate.
pub fn name(cn: &str) -> X509Name {
    let mut b = X509Name::builder().expect("name builder");
    b.append_entry_by_text("O", "scep-lab tests").expect("O");
    b.append_entry_by_text("CN", cn).expect("CN");
    b.build()
}

/// What a certificate is for: its basicConstraints and keyUsage (the shapes NDES and AD CS
/// give them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Usage {
    /// A CA: CA:TRUE (critical), keyCertSign and cRLSign.
    Ca,
    /// An RA signing certificate: digitalSignature.
    RaSign,
    /// An RA encryption certificate: keyEncipherment.
    RaEnc,
    /// A device, or an RA with one certificate for both: digitalSignature and keyEncipherment.
    Leaf,
}

/// A certificate to build: who it names, who signs it, what for, which serial and how long.
#[derive(Clone, Copy)]
pub struct CertSpec<'a> {
    pub subject: &'a X509NameRef,
    /// The issuing CA's certificate and key; `None` for a self-signed certificate.
    pub issuer: Option<(&'a X509Ref, &'a PKeyRef<Private>)>,
    /// basicConstraints, keyUsage and subjectKeyIdentifier as [`Usage`] says; `None` for a
    /// certificate without extensions (what a bare-bones test CA issues from a CSR).
    pub usage: Option<Usage>,
    /// A fixed serial number; `None` for 128 random bits.
    pub serial: Option<u32>,
    /// Validity, Unix seconds.
    pub not_before: i64,
    pub not_after: i64,
}

impl<'a> CertSpec<'a> {
    /// A certificate for `subject` with `usage` and a random serial, valid from a day ago for
    /// `days` days from now.
    pub fn new(subject: &'a X509NameRef, usage: Option<Usage>, days: i64) -> Self {
        let now = foundation::clock::unix_now();
        Self {
            subject,
            issuer: None,
            usage,
            serial: None,
            not_before: now - 86_400,
            not_after: now + days * 86_400,
        }
    }

    /// The same, issued by `cert` with `key`.
    pub fn issued_by(self, cert: &'a X509Ref, key: &'a PKeyRef<Private>) -> Self {
        Self {
            issuer: Some((cert, key)),
            ..self
        }
    }

    /// A self-signed certificate for `key`, or one its issuer signs.
    pub fn build(&self, key: &PKeyRef<Private>) -> X509 {
        self.sign(key, self.issuer.map_or(key, |(_, k)| k))
    }

    /// A certificate the issuer signs for a public key (e.g. a CSR's).
    ///
    /// # Panics
    ///
    /// When the spec has no issuer.
    pub fn build_for<T: HasPublic>(&self, public_key: &PKeyRef<T>) -> X509 {
        let (_, issuer_key) = self
            .issuer
            .expect("a certificate for a public key needs an issuer");
        self.sign(public_key, issuer_key)
    }

    fn sign<T: HasPublic>(&self, key: &PKeyRef<T>, signer: &PKeyRef<Private>) -> X509 {
        let mut b = X509::builder().expect("X509 builder");
        b.set_version(2).expect("version");
        let serial = match self.serial {
            Some(n) => BigNum::from_u32(n).expect("serial"),
            None => {
                let mut n = BigNum::new().expect("serial");
                n.rand(128, MsbOption::MAYBE_ZERO, false).expect("serial");
                n
            }
        };
        b.set_serial_number(&serial.to_asn1_integer().expect("serial"))
            .expect("serial");
        b.set_subject_name(self.subject).expect("subject");
        b.set_issuer_name(self.issuer.map_or(self.subject, |(c, _)| c.subject_name()))
            .expect("issuer");
        b.set_pubkey(key).expect("public key");
        b.set_not_before(&Asn1Time::from_unix(self.not_before).expect("notBefore"))
            .expect("notBefore");
        b.set_not_after(&Asn1Time::from_unix(self.not_after).expect("notAfter"))
            .expect("notAfter");
        if let Some(usage) = self.usage {
            let mut bc = BasicConstraints::new();
            let mut ku = KeyUsage::new();
            match usage {
                Usage::Ca => {
                    bc.critical().ca();
                    ku.key_cert_sign().crl_sign();
                }
                Usage::RaSign => {
                    ku.digital_signature();
                }
                Usage::RaEnc => {
                    ku.key_encipherment();
                }
                Usage::Leaf => {
                    ku.digital_signature().key_encipherment();
                }
            }
            b.append_extension(bc.build().expect("basicConstraints"))
                .expect("basicConstraints");
            b.append_extension(ku.build().expect("keyUsage"))
                .expect("keyUsage");
            let ski = SubjectKeyIdentifier::new()
                .build(&b.x509v3_context(self.issuer.map(|(c, _)| c), None))
                .expect("subjectKeyIdentifier");
            b.append_extension(ski).expect("subjectKeyIdentifier");
        }
        b.sign(signer, MessageDigest::sha256()).expect("signature");
        b.build()
    }
}

/// A certificate for `key` with `usage` and a random serial, valid from a day ago until
/// `not_after`: self-signed, or issued by `issuer`.
pub fn certificate(
    subject: &X509NameRef,
    key: &PKeyRef<Private>,
    issuer: Option<(&X509, &PKey<Private>)>,
    usage: Usage,
    not_after: i64,
) -> X509 {
    CertSpec {
        subject,
        issuer: issuer.map(|(c, k)| (&**c, &**k)),
        usage: Some(usage),
        serial: None,
        not_before: foundation::clock::unix_now() - 86_400,
        not_after,
    }
    .build(key)
}

/// A certificate and its private key.
#[derive(Clone)]
pub struct Identity {
    pub cert: X509,
    pub key: PKey<Private>,
}

impl Identity {
    /// A new RSA 2048 identity named `cn`, with `usage`, valid from a day ago for a year,
    /// self-signed or issued by `issuer`.
    pub fn new(cn: &str, issuer: Option<&Self>, usage: Usage) -> Self {
        let key = rsa_key(2048);
        let subject = name(cn);
        let mut spec = CertSpec::new(&subject, Some(usage), 365);
        if let Some(i) = issuer {
            spec = spec.issued_by(&i.cert, &i.key);
        }
        Self {
            cert: spec.build(&key),
            key,
        }
    }
}

/// A root CA with NDES's RA pair (a signing certificate with digitalSignature, an encryption
/// certificate with keyEncipherment), one RA certificate that does both, and device keys.
/// Fixed serials (1 to 4) and a validity from 2020 to 2096, so messages that name them are
/// stable; made once per test binary by [`ra_hierarchy`].
pub struct RaHierarchy {
    pub ca_key: PKey<Private>,
    /// `CN=Test Root CA`.
    pub ca: X509,
    pub ra_sign_key: PKey<Private>,
    /// `CN=NDES RA signing`.
    pub ra_sign: X509,
    pub ra_enc_key: PKey<Private>,
    /// `CN=NDES RA encryption`.
    pub ra_enc: X509,
    pub ra_combined_key: PKey<Private>,
    /// `CN=NDES RA`: signs and encrypts.
    pub ra_combined: X509,
    /// Four RSA 2048 device keys.
    pub device_keys: Vec<PKey<Private>>,
}

/// Validity of [`RaHierarchy`] certificates: 2020-09-13 to 2096-10-02.
const HIERARCHY_NOT_BEFORE: i64 = 1_600_000_000;
const HIERARCHY_NOT_AFTER: i64 = 4_000_000_000;

impl RaHierarchy {
    /// A certificate for `key` issued by the hierarchy's CA (what a CA returns to a device):
    /// [`Usage::Leaf`], the given serial, the hierarchy's validity.
    pub fn issue(&self, key: &PKeyRef<Private>, cn: &str, serial: u32) -> X509 {
        let subject = name(cn);
        hierarchy_spec(
            &subject,
            Some((&self.ca, &self.ca_key)),
            Usage::Leaf,
            serial,
        )
        .build(key)
    }
}

fn hierarchy_spec<'a>(
    subject: &'a X509NameRef,
    issuer: Option<(&'a X509Ref, &'a PKeyRef<Private>)>,
    usage: Usage,
    serial: u32,
) -> CertSpec<'a> {
    CertSpec {
        subject,
        issuer,
        usage: Some(usage),
        serial: Some(serial),
        not_before: HIERARCHY_NOT_BEFORE,
        not_after: HIERARCHY_NOT_AFTER,
    }
}

/// The [`RaHierarchy`] of this test binary.
pub fn ra_hierarchy() -> &'static RaHierarchy {
    static HIERARCHY: OnceLock<RaHierarchy> = OnceLock::new();
    HIERARCHY.get_or_init(|| {
        let ca_key = rsa_key(2048);
        let ca = hierarchy_spec(&name("Test Root CA"), None, Usage::Ca, 1).build(&ca_key);
        let ra = |cn: &str, usage: Usage, serial: u32| {
            let key = rsa_key(2048);
            let cert = hierarchy_spec(&name(cn), Some((&ca, &ca_key)), usage, serial).build(&key);
            (cert, key)
        };
        let (ra_sign, ra_sign_key) = ra("NDES RA signing", Usage::RaSign, 2);
        let (ra_enc, ra_enc_key) = ra("NDES RA encryption", Usage::RaEnc, 3);
        let (ra_combined, ra_combined_key) = ra("NDES RA", Usage::Leaf, 4);
        let device_keys = (0..4).map(|_| rsa_key(2048)).collect();
        RaHierarchy {
            ca_key,
            ca,
            ra_sign_key,
            ra_sign,
            ra_enc_key,
            ra_enc,
            ra_combined_key,
            ra_combined,
            device_keys,
        }
    })
}

/// A certificate as PEM.
pub fn pem(cert: &X509Ref) -> Vec<u8> {
    cert.to_pem().expect("certificate PEM")
}

/// A private key as PKCS#8 PEM.
pub fn key_pem(key: &PKeyRef<Private>) -> Vec<u8> {
    key.private_key_to_pem_pkcs8().expect("key PEM")
}
