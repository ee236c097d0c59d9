//! A small test PKI: a root CA, an RA signing certificate (digitalSignature) and an RA
//! encryption certificate (keyEncipherment), as NDES has them, plus device keys. Keys are made
//! once per test binary.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code, unreachable_pub)]

use std::sync::OnceLock;

use openssl::asn1::Asn1Time;
use openssl::bn::BigNum;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::x509::extension::{BasicConstraints, KeyUsage, SubjectKeyIdentifier};
use openssl::x509::{X509, X509Name, X509NameRef};

pub struct Pki {
    pub ca_key: PKey<Private>,
    pub ca: X509,
    pub ra_sign_key: PKey<Private>,
    pub ra_sign: X509,
    pub ra_enc_key: PKey<Private>,
    pub ra_enc: X509,
    pub device_keys: Vec<PKey<Private>>,
}

pub fn rsa(bits: u32) -> PKey<Private> {
    PKey::from_rsa(Rsa::generate(bits).unwrap()).unwrap()
}

pub fn name(cn: &str) -> X509Name {
    let mut b = X509Name::builder().unwrap();
    b.append_entry_by_text("O", "scep-lab tests").unwrap();
    b.append_entry_by_text("CN", cn).unwrap();
    b.build()
}

fn cert(
    subject: &X509NameRef,
    key: &PKey<Private>,
    issuer: Option<(&X509, &PKey<Private>)>,
    ca: bool,
    usage: &KeyUsage,
    serial: u32,
) -> X509 {
    let mut b = X509::builder().unwrap();
    b.set_version(2).unwrap();
    b.set_serial_number(&BigNum::from_u32(serial).unwrap().to_asn1_integer().unwrap())
        .unwrap();
    b.set_subject_name(subject).unwrap();
    b.set_issuer_name(issuer.map_or(subject, |(c, _)| c.subject_name()))
        .unwrap();
    b.set_pubkey(key).unwrap();
    b.set_not_before(&Asn1Time::from_unix(1_600_000_000).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::from_unix(4_000_000_000).unwrap())
        .unwrap();
    let mut bc = BasicConstraints::new();
    if ca {
        bc.critical().ca();
    }
    b.append_extension(bc.build().unwrap()).unwrap();
    b.append_extension(usage.build().unwrap()).unwrap();
    let ski = SubjectKeyIdentifier::new()
        .build(&b.x509v3_context(None, None))
        .unwrap();
    b.append_extension(ski).unwrap();
    let signer = issuer.map_or(key, |(_, k)| k);
    b.sign(signer, MessageDigest::sha256()).unwrap();
    b.build()
}

pub fn pki() -> &'static Pki {
    static PKI: OnceLock<Pki> = OnceLock::new();
    PKI.get_or_init(|| {
        let ca_key = rsa(2048);
        let ca = cert(
            &name("Test Root CA"),
            &ca_key,
            None,
            true,
            KeyUsage::new().key_cert_sign().crl_sign(),
            1,
        );
        let ra_sign_key = rsa(2048);
        let ra_sign = cert(
            &name("NDES RA signing"),
            &ra_sign_key,
            Some((&ca, &ca_key)),
            false,
            KeyUsage::new().digital_signature(),
            2,
        );
        let ra_enc_key = rsa(2048);
        let ra_enc = cert(
            &name("NDES RA encryption"),
            &ra_enc_key,
            Some((&ca, &ca_key)),
            false,
            KeyUsage::new().key_encipherment(),
            3,
        );
        let device_keys = (0..2).map(|_| rsa(2048)).collect();
        Pki {
            ca_key,
            ca,
            ra_sign_key,
            ra_sign,
            ra_enc_key,
            ra_enc,
            device_keys,
        }
    })
}

/// A certificate for `key` issued by the test CA (what a CA would return to a device).
pub fn issue(key: &PKey<Private>, cn: &str, serial: u32) -> X509 {
    let p = pki();
    cert(
        &name(cn),
        key,
        Some((&p.ca, &p.ca_key)),
        false,
        KeyUsage::new().digital_signature().key_encipherment(),
        serial,
    )
}

pub fn pem(cert: &X509) -> Vec<u8> {
    cert.to_pem().unwrap()
}

pub fn key_pem(key: &PKey<Private>) -> Vec<u8> {
    key.private_key_to_pem_pkcs8().unwrap()
}
