//! The issued certificate and its chain, decoded into what the report compares and shows.

use anyhow::{Context, Result};
use foundation::names::{NameAttr, San, SanKind, SubjectAttr, UPN_OID, subject_text};
use foundation::time::{asn1_to_unix, rfc3339};
use openssl::hash::MessageDigest;
use openssl::pkey::Id;
use openssl::x509::X509;
use serde::Serialize;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

/// One certificate, decoded. Times are RFC 3339 with `_unix` beside them (docs/decisions.md #12).
#[derive(Debug, Clone, Serialize)]
pub struct CertView {
    /// Lowercase hex, as every service spells it.
    pub serial: String,
    /// Subject attributes in certificate order.
    pub subject: Vec<NameAttr>,
    /// Subject attributes outside the lab's vocabulary, `OID=value`.
    pub subject_other: Vec<String>,
    /// The subject on one line.
    pub subject_text: String,
    /// The issuer on one line.
    pub issuer_text: String,
    /// RFC 3339.
    pub not_before: String,
    /// Unix seconds.
    pub not_before_unix: i64,
    /// RFC 3339.
    pub not_after: String,
    /// Unix seconds.
    pub not_after_unix: i64,
    /// Whole days between NotBefore and NotAfter.
    pub validity_days: i64,
    /// OpenSSL's long name, e.g. `sha256WithRSAEncryption`.
    pub signature_algorithm: String,
    /// `rsa` or `ec`.
    pub key_algorithm: String,
    /// Modulus or curve size in bits.
    pub key_bits: u32,
    /// Named curve, for EC keys.
    pub curve: Option<String>,
    /// Key usage bits by RFC 5280 name; empty when the extension is absent.
    pub key_usage: Vec<String>,
    /// Whether the certificate has an extendedKeyUsage extension at all.
    pub eku_present: bool,
    /// Extended key usages, dotted OIDs.
    pub extended_key_usage: Vec<String>,
    /// SANs the lab's vocabulary names.
    pub sans: Vec<San>,
    /// SANs of other kinds, as text.
    pub other_sans: Vec<String>,
    /// basicConstraints cA.
    pub is_ca: bool,
    /// SHA-256 of the DER, lowercase hex.
    pub sha256: String,
    /// The certificate, PEM.
    pub pem: String,
}

/// Decodes `cert`.
pub fn decode(cert: &X509) -> Result<CertView> {
    let der = cert.to_der()?;
    let (_, parsed) = X509Certificate::from_der(&der)
        .map_err(|e| anyhow::anyhow!("decoding the certificate: {e}"))?;
    let subject = names(cert.subject_name());
    let key = cert.public_key()?;
    let (key_algorithm, curve) = match key.id() {
        Id::RSA => ("rsa", None),
        Id::EC => {
            let curve = key
                .ec_key()
                .ok()
                .and_then(|k| k.group().curve_name())
                .and_then(|n| n.short_name().ok())
                .map(str::to_owned);
            ("ec", curve)
        }
        _ => ("other", None),
    };
    let not_before_unix = asn1_to_unix(cert.not_before())?;
    let not_after_unix = asn1_to_unix(cert.not_after())?;
    let mut view = CertView {
        serial: hex::encode(cert.serial_number().to_bn()?.to_vec()),
        subject_other: other_names(cert.subject_name()),
        subject_text: subject_text(&subject),
        subject,
        issuer_text: subject_text(&names(cert.issuer_name())),
        not_before: rfc3339(not_before_unix),
        not_before_unix,
        not_after: rfc3339(not_after_unix),
        not_after_unix,
        validity_days: (not_after_unix - not_before_unix) / 86_400,
        signature_algorithm: cert
            .signature_algorithm()
            .object()
            .nid()
            .long_name()
            .map_or_else(
                |_| cert.signature_algorithm().object().to_string(),
                str::to_owned,
            ),
        key_algorithm: key_algorithm.into(),
        key_bits: key.bits(),
        curve,
        key_usage: Vec::new(),
        eku_present: false,
        extended_key_usage: Vec::new(),
        sans: Vec::new(),
        other_sans: Vec::new(),
        is_ca: false,
        sha256: hex::encode(cert.digest(MessageDigest::sha256())?),
        pem: String::from_utf8(cert.to_pem()?).context("PEM")?,
    };
    extensions(&parsed, &mut view)?;
    Ok(view)
}

fn extensions(parsed: &X509Certificate<'_>, view: &mut CertView) -> Result<()> {
    let bad = |e| anyhow::anyhow!("decoding an extension: {e}");
    if let Some(ku) = parsed.key_usage().map_err(bad)? {
        let k = ku.value;
        for (set, name) in [
            (k.digital_signature(), "digitalSignature"),
            (k.non_repudiation(), "nonRepudiation"),
            (k.key_encipherment(), "keyEncipherment"),
            (k.data_encipherment(), "dataEncipherment"),
            (k.key_agreement(), "keyAgreement"),
            (k.key_cert_sign(), "keyCertSign"),
            (k.crl_sign(), "cRLSign"),
            (k.encipher_only(), "encipherOnly"),
            (k.decipher_only(), "decipherOnly"),
        ] {
            if set {
                view.key_usage.push(name.into());
            }
        }
    }
    if let Some(eku) = parsed.extended_key_usage().map_err(bad)? {
        let e = eku.value;
        view.eku_present = true;
        for (set, oid) in [
            (e.any, foundation::names::ANY_EKU),
            (e.server_auth, "1.3.6.1.5.5.7.3.1"),
            (e.client_auth, "1.3.6.1.5.5.7.3.2"),
            (e.code_signing, "1.3.6.1.5.5.7.3.3"),
            (e.email_protection, "1.3.6.1.5.5.7.3.4"),
            (e.time_stamping, "1.3.6.1.5.5.7.3.8"),
            (e.ocsp_signing, "1.3.6.1.5.5.7.3.9"),
        ] {
            if set {
                view.extended_key_usage.push(oid.into());
            }
        }
        view.extended_key_usage
            .extend(e.other.iter().map(|o| o.to_id_string()));
    }
    if let Some(bc) = parsed.basic_constraints().map_err(bad)? {
        view.is_ca = bc.value.ca;
    }
    if let Some(san) = parsed.subject_alternative_name().map_err(bad)? {
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(v) => view.sans.push(San::new(SanKind::Dns, *v)),
                GeneralName::RFC822Name(v) => view.sans.push(San::new(SanKind::Email, *v)),
                GeneralName::URI(v) => view.sans.push(San::new(SanKind::Uri, *v)),
                GeneralName::IPAddress(b) => match ip_text(b) {
                    Some(ip) => view.sans.push(San::new(SanKind::Ip, ip)),
                    None => view.other_sans.push(format!("IP {}", hex::encode(b))),
                },
                GeneralName::OtherName(oid, value) if oid.to_id_string() == UPN_OID => {
                    match utf8_string(value) {
                        Some(upn) => view.sans.push(San::new(SanKind::Upn, upn)),
                        None => view.other_sans.push("UPN (undecodable)".into()),
                    }
                }
                other => view.other_sans.push(format!("{other}")),
            }
        }
    }
    Ok(())
}

/// The attributes of `name` the lab's vocabulary knows, and the others as `OID=value` text.
fn names(name: &openssl::x509::X509NameRef) -> Vec<NameAttr> {
    name.entries()
        .filter_map(|e| {
            let attr = SubjectAttr::from_nid(e.object().nid())?;
            Some(NameAttr::new(attr, entry_text(e)))
        })
        .collect()
}

fn other_names(name: &openssl::x509::X509NameRef) -> Vec<String> {
    name.entries()
        .filter(|e| SubjectAttr::from_nid(e.object().nid()).is_none())
        .map(|e| format!("{}={}", e.object(), entry_text(e)))
        .collect()
}

fn entry_text(e: &openssl::x509::X509NameEntryRef) -> String {
    e.data()
        .to_string()
        .unwrap_or_else(|_| "(undecodable)".to_owned())
}

fn ip_text(b: &[u8]) -> Option<String> {
    match b.len() {
        4 => <[u8; 4]>::try_from(b)
            .ok()
            .map(|a| std::net::Ipv4Addr::from(a).to_string()),
        16 => <[u8; 16]>::try_from(b)
            .ok()
            .map(|a| std::net::Ipv6Addr::from(a).to_string()),
        _ => None,
    }
}

/// The UTF8String inside an otherName value, with or without its `[0] EXPLICIT` wrapper.
fn utf8_string(mut b: &[u8]) -> Option<String> {
    if b.first() == Some(&0xa0) {
        b = tlv_content(b)?;
    }
    if b.first() != Some(&0x0c) {
        return None;
    }
    String::from_utf8(tlv_content(b)?.to_vec()).ok()
}

/// The content octets of one DER TLV (definite lengths up to two octets).
fn tlv_content(b: &[u8]) -> Option<&[u8]> {
    let first = *b.get(1)?;
    let (len, start): (usize, usize) = match first {
        n if n < 0x80 => (usize::from(n), 2),
        0x81 => (usize::from(*b.get(2)?), 3),
        0x82 => (usize::from(*b.get(2)?) << 8 | usize::from(*b.get(3)?), 4),
        _ => return None,
    };
    b.get(start..start.checked_add(len)?)
}

#[cfg(test)]
mod tests {
    #[test]
    fn upn_values_decode_with_or_without_the_explicit_tag() {
        let inner = [0x0c, 0x03, b'a', b'@', b'b'];
        assert_eq!(super::utf8_string(&inner).as_deref(), Some("a@b"));
        let outer = [0xa0, 0x05, 0x0c, 0x03, b'a', b'@', b'b'];
        assert_eq!(super::utf8_string(&outer).as_deref(), Some("a@b"));
        assert_eq!(super::utf8_string(&[0xa0, 0x09, 0x0c]), None);
    }
}
