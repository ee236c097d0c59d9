//! Test PKI: device keys, CSRs with every knob, and certificates "issued" by a test CA.

use openssl::asn1::{Asn1Integer, Asn1Time};
use openssl::bn::BigNum;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::sign::Signer;
use openssl::x509::{X509, X509NameBuilder};

use super::der::*;
use policy_module::model::{NameAttr, San, SanKind};

pub use testkit::pki::{ec_key, ec384_key, rsa_key};

/// Everything a CSR may carry.
#[derive(Clone, Default)]
pub struct CsrSpec {
    pub subject: Vec<NameAttr>,
    pub sans: Vec<San>,
    pub challenge: Option<String>,
    pub second_challenge: Option<String>,
    /// Raw key usage byte (0x80 digitalSignature, 0x20 keyEncipherment, 0x04 keyCertSign).
    pub key_usage: Option<u8>,
    pub ekus: Option<Vec<String>>,
    pub break_signature: bool,
    /// A subject `Name` DER written as is instead of `subject` (multi-valued RDNs, other
    /// string types).
    pub subject_der: Option<Vec<u8>>,
}

impl CsrSpec {
    pub fn matching(e: &policy_module::render::Expected, challenge: &str) -> Self {
        Self {
            subject: e.subject.clone(),
            sans: e.subject_alternative_names.clone(),
            challenge: Some(challenge.to_string()),
            ..Self::default()
        }
    }
}

fn general_name(s: &San) -> Vec<u8> {
    match s.kind {
        SanKind::Email => ia5_implicit(0x81, &s.value),
        SanKind::Dns => ia5_implicit(0x82, &s.value),
        SanKind::Uri => ia5_implicit(0x86, &s.value),
        SanKind::Ip => {
            let ip: std::net::IpAddr = s.value.parse().unwrap();
            match ip {
                std::net::IpAddr::V4(v) => tlv(0x87, &v.octets()),
                std::net::IpAddr::V6(v) => tlv(0x87, &v.octets()),
            }
        }
        SanKind::Upn => tlv(
            0xA0,
            &[oid("1.3.6.1.4.1.311.20.2.3"), tlv(0xA0, &utf8(&s.value))].concat(),
        ),
    }
}

pub fn csr(key: &PKey<Private>, spec: &CsrSpec) -> Vec<u8> {
    let name = spec.subject_der.clone().unwrap_or_else(|| {
        seq(&spec
            .subject
            .iter()
            .map(|a| set(&[seq(&[oid(a.attr.oid()), utf8(&a.value)])]))
            .collect::<Vec<_>>())
    });
    let mut attrs = Vec::new();
    for c in [&spec.challenge, &spec.second_challenge]
        .into_iter()
        .flatten()
    {
        attrs.push(seq(&[oid("1.2.840.113549.1.9.7"), set(&[printable(c)])]));
    }
    let mut exts = Vec::new();
    if !spec.sans.is_empty() {
        let names = seq(&spec.sans.iter().map(general_name).collect::<Vec<_>>());
        exts.push(seq(&[oid("2.5.29.17"), octets(&names)]));
    }
    if let Some(ku) = spec.key_usage {
        let unused = ku.trailing_zeros().min(7) as u8;
        exts.push(seq(&[oid("2.5.29.15"), octets(&bits(unused, &[ku]))]));
    }
    if let Some(ekus) = &spec.ekus {
        let list = seq(&ekus.iter().map(|e| oid(e)).collect::<Vec<_>>());
        exts.push(seq(&[oid("2.5.29.37"), octets(&list)]));
    }
    if !exts.is_empty() {
        attrs.push(seq(&[oid("1.2.840.113549.1.9.14"), set(&[seq(&exts)])]));
    }
    let spki = key.public_key_to_der().unwrap();
    let cri = seq(&[tlv(0x02, &[0]), name, spki, tlv(0xA0, &attrs.concat())]);
    let (alg, digest) = if key.rsa().is_ok() {
        (
            seq(&[oid("1.2.840.113549.1.1.11"), vec![0x05, 0x00]]),
            MessageDigest::sha256(),
        )
    } else {
        (seq(&[oid("1.2.840.10045.4.3.2")]), MessageDigest::sha256())
    };
    let mut signer = Signer::new(digest, key).unwrap();
    signer.update(&cri).unwrap();
    let mut sig = signer.sign_to_vec().unwrap();
    if spec.break_signature {
        let last = sig.len() - 1;
        sig[last] ^= 1;
    }
    seq(&[cri, alg, bits(0, &sig)])
}

/// A test CA that "issues" certificates for a device key, as ca-mock would.
pub struct TestCa {
    key: PKey<Private>,
}

impl TestCa {
    pub fn new() -> Self {
        Self { key: ec_key() }
    }

    /// (DER, serial hex, SHA-256 thumbprint hex) of a certificate for `subject_key`.
    pub fn issue(&self, subject_key: &PKey<Private>, days: u32) -> (Vec<u8>, String, String) {
        self.issue_as(subject_key, days, &[("CN", "test device")])
    }

    /// [`Self::issue`] with a subject (attributes in encoding order).
    pub fn issue_as(
        &self,
        subject_key: &PKey<Private>,
        days: u32,
        subject: &[(&str, &str)],
    ) -> (Vec<u8>, String, String) {
        let mut b = X509::builder().unwrap();
        b.set_version(2).unwrap();
        let mut serial_bytes = [0u8; 16];
        openssl::rand::rand_bytes(&mut serial_bytes).unwrap();
        serial_bytes[0] = (serial_bytes[0] & 0x7f) | 0x10;
        let serial = BigNum::from_slice(&serial_bytes).unwrap();
        b.set_serial_number(&Asn1Integer::from_bn(&serial).unwrap())
            .unwrap();
        let mut name = X509NameBuilder::new().unwrap();
        for (attr, value) in subject {
            name.append_entry_by_text(attr, value).unwrap();
        }
        let name = name.build();
        b.set_subject_name(&name).unwrap();
        b.set_issuer_name(&name).unwrap();
        b.set_pubkey(subject_key).unwrap();
        b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
            .unwrap();
        b.set_not_after(&Asn1Time::days_from_now(days).unwrap())
            .unwrap();
        b.sign(&self.key, MessageDigest::sha256()).unwrap();
        let der = b.build().to_der().unwrap();
        let thumb = hex::encode(openssl::sha::sha256(&der));
        (
            der,
            serial.to_hex_str().unwrap().to_ascii_lowercase(),
            thumb,
        )
    }
}
