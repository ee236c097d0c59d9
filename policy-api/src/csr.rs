//! The facts of a PKCS#10 request that VerifyRequest compares against a rendered profile:
//! subject, SANs, key usage, EKUs, key algorithm and size, challenge.
//!
//! Read once per trust boundary. ndes-proxy verified the CSR's self-signature when it opened
//! the pkiMessage (the `scep` crate), so in the same process it reads the facts with
//! [`CsrFacts::read_verified`] (x509-parser only, no second signature check) and hands them to
//! the policy module in [`crate::VerifyRequest::facts`]. A CSR that arrives over HTTP crossed a
//! boundary: the policy module reads and verifies it with [`CsrFacts::read_and_verify`]
//! (OpenSSL checks the self-signature). Every failure is a [`Rejection`], never a panic.

use std::net::IpAddr;

use foundation::Secret;
use foundation::names::{ANY_EKU, KeyUsage, NameAttr, San, SanKind, SubjectAttr, UPN_OID};
use openssl::x509::X509Req;
use serde::{Deserialize, Serialize};
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::cri_attributes::ParsedCriAttribute;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::FromDer;
use x509_parser::public_key::PublicKey;
use x509_parser::x509::SubjectPublicKeyInfo;

use crate::error::Rejection;

/// Largest CSR accepted (a 16384-bit RSA CSR is under 3 KiB; room for SANs).
pub const MAX_CSR_LEN: usize = 64 * 1024;

const OID_SAN: &str = "2.5.29.17";
const OID_KU: &str = "2.5.29.15";
const OID_EKU: &str = "2.5.29.37";

/// Key algorithm of a device key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyAlgorithm {
    /// RSA.
    Rsa,
    /// EC on a named curve.
    Ec,
}

/// The parts of a CSR the policy looks at.
#[derive(Debug, Clone)]
pub struct CsrFacts {
    /// Subject RDNs in encoding order; multi-valued RDNs are refused.
    pub subject: Vec<NameAttr>,
    /// Requested SANs, sorted.
    pub sans: Vec<San>,
    pub key_algorithm: KeyAlgorithm,
    /// RSA modulus bits or EC field bits (256, 384, 521).
    pub key_size: u32,
    /// DER SubjectPublicKeyInfo (to match the issued certificate's key).
    pub spki_der: Vec<u8>,
    /// Requested key usage: `None` if the extension is absent; `Err(())` bits beyond ours.
    pub key_usage: Option<Result<Vec<KeyUsage>, ()>>,
    /// Requested EKUs as dotted OIDs, `None` if absent.
    pub ekus: Option<Vec<String>>,
    /// The challengePassword attribute.
    pub challenge: Option<Secret>,
    /// How many challengePassword attributes the CSR carries (more than one is refused).
    pub challenge_count: usize,
}

impl CsrFacts {
    /// Reads a DER PKCS#10 request that crossed a trust boundary, and checks its
    /// self-signature with OpenSSL.
    pub fn read_and_verify(der: &[u8]) -> Result<Self, Rejection> {
        let facts = read(der)?;
        verify_signature(der)?;
        Ok(facts)
    }

    /// Reads a DER PKCS#10 request whose self-signature the caller verified in this process
    /// (ndes-proxy, when it opened the pkiMessage). Never the basis for trusting a request
    /// from outside.
    pub fn read_verified(der: &[u8]) -> Result<Self, Rejection> {
        read(der)
    }
}

/// Parses and checks a DER PKCS#10 request: [`CsrFacts::read_and_verify`].
pub fn parse(der: &[u8]) -> Result<CsrFacts, Rejection> {
    CsrFacts::read_and_verify(der)
}

fn read(der: &[u8]) -> Result<CsrFacts, Rejection> {
    use Rejection::*;
    if der.is_empty() || der.len() > MAX_CSR_LEN {
        return Err(CertificateRequestDecodingFailed);
    }
    let (rest, req) =
        X509CertificationRequest::from_der(der).map_err(|_| CertificateRequestDecodingFailed)?;
    if !rest.is_empty() {
        return Err(CertificateRequestDecodingFailed);
    }
    let info = &req.certification_request_info;
    let (key_algorithm, key_size) = key_facts(&info.subject_pki)?;
    let spki_der = info.subject_pki.raw.to_vec();

    let mut subject = Vec::new();
    for rdn in info.subject.iter_rdn() {
        subject.push(subject_attr(rdn)?);
    }

    let mut challenge = None;
    let mut challenge_count = 0;
    let mut sans = Vec::new();
    let mut key_usage = None;
    let mut ekus = None;
    for attr in info.iter_attributes() {
        match attr.parsed_attribute() {
            ParsedCriAttribute::ChallengePassword(p) => {
                challenge_count += 1;
                challenge = Some(Secret::new(p.0.clone()));
            }
            ParsedCriAttribute::ExtensionRequest(req) => {
                let mut seen = std::collections::HashSet::new();
                for ext in &req.extensions {
                    let oid = ext.oid.to_id_string();
                    if !seen.insert(oid.clone()) {
                        return Err(CertificateRequestDecodingFailed);
                    }
                    match (oid.as_str(), ext.parsed_extension()) {
                        (OID_SAN, ParsedExtension::SubjectAlternativeName(san)) => {
                            for name in &san.general_names {
                                sans.push(san_value(name)?);
                            }
                        }
                        (OID_SAN, _) => return Err(SubjectAltNameMismatch),
                        (OID_KU, ParsedExtension::KeyUsage(ku)) => {
                            key_usage = Some(key_usage_bits(ku.flags));
                        }
                        (OID_KU, _) => return Err(KeyUsageMismatch),
                        (OID_EKU, ParsedExtension::ExtendedKeyUsage(eku)) => {
                            ekus = Some(eku_oids(eku));
                        }
                        (OID_EKU, _) => return Err(EnhancedKeyUsageMismatch),
                        // Other requested extensions are ignored: the CA builds from the
                        // template (docs/decisions.md #7).
                        _ => {}
                    }
                }
            }
            ParsedCriAttribute::UnsupportedAttribute => {}
        }
    }
    sans.sort();
    Ok(CsrFacts {
        subject,
        sans,
        key_algorithm,
        key_size,
        spki_der,
        key_usage,
        ekus,
        challenge,
        challenge_count,
    })
}

/// One RDN of the CSR's subject as text; SubjectNameMismatch for a multi-valued RDN
/// (`CN=a+OU=b`), an attribute we do not render, or a value that is not a string.
///
/// The text is compared with the profile's rendering exactly (case, spaces, homoglyphs:
/// reliability P6), but not its string type: Windows' `CertStrToName` writes PrintableString
/// (BMPString beyond it), Go and micromdm PrintableString, OpenSSL UTF8String, and NDES with
/// Intune compares names, not encodings. The CA never copies the CSR's subject: it writes
/// the granted text in its own string types (docs/decisions.md #7), so an encoding cannot reach
/// a certificate.
fn subject_attr(
    rdn: &x509_parser::x509::RelativeDistinguishedName<'_>,
) -> Result<NameAttr, Rejection> {
    let mut it = rdn.iter();
    let (Some(atv), None) = (it.next(), it.next()) else {
        return Err(Rejection::SubjectNameMismatch);
    };
    let attr = SubjectAttr::from_oid(&atv.attr_type().to_id_string())
        .ok_or(Rejection::SubjectNameMismatch)?;
    let value = string_value(atv).ok_or(Rejection::SubjectNameMismatch)?;
    Ok(NameAttr { attr, value })
}

/// The text of a directory string: BMPString (UTF-16BE) and UniversalString (UCS-4BE)
/// decoded strictly, the one-byte and UTF-8 types as their parser reads them.
fn string_value(atv: &x509_parser::x509::AttributeTypeAndValue<'_>) -> Option<String> {
    use x509_parser::asn1_rs::{Class, Tag};
    let raw = atv.attr_value();
    if raw.class() != Class::Universal {
        return None;
    }
    let data = raw.data;
    match raw.tag() {
        Tag::BmpString => {
            if data.len() % 2 != 0 {
                return None;
            }
            let units = data
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]));
            char::decode_utf16(units)
                .collect::<Result<String, _>>()
                .ok()
        }
        Tag::UniversalString => {
            if data.len() % 4 != 0 {
                return None;
            }
            data.chunks_exact(4)
                .map(|c| char::from_u32(u32::from_be_bytes([c[0], c[1], c[2], c[3]])))
                .collect()
        }
        _ => atv.as_str().ok().map(str::to_owned),
    }
}

/// The key's algorithm and size: RSA modulus bits, or the named curve's size (256, 384, 521).
fn key_facts(spki: &SubjectPublicKeyInfo<'_>) -> Result<(KeyAlgorithm, u32), Rejection> {
    const P256: &str = "1.2.840.10045.3.1.7";
    const P384: &str = "1.3.132.0.34";
    const P521: &str = "1.3.132.0.35";
    match spki.parsed() {
        Ok(PublicKey::RSA(rsa)) => Ok((KeyAlgorithm::Rsa, modulus_bits(rsa.modulus))),
        Ok(PublicKey::EC(_)) => {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .map(|o| o.to_id_string());
            let bits = match curve.as_deref() {
                Some(P256) => 256,
                Some(P384) => 384,
                Some(P521) => 521,
                _ => return Err(Rejection::KeyLengthMismatch),
            };
            Ok((KeyAlgorithm::Ec, bits))
        }
        Ok(_) => Err(Rejection::KeyLengthMismatch),
        Err(_) => Err(Rejection::CertificateRequestDecodingFailed),
    }
}

/// Significant bits of a big-endian unsigned integer (what OpenSSL's `bits()` gives).
fn modulus_bits(modulus: &[u8]) -> u32 {
    let Some(start) = modulus.iter().position(|b| *b != 0) else {
        return 0;
    };
    let significant = &modulus[start..];
    let top = u32::from(significant[0]);
    u32::try_from(significant.len() - 1)
        .map_or(u32::MAX, |n| n.saturating_mul(8))
        .saturating_add(32 - top.leading_zeros())
}

/// The CSR's self-signature, with OpenSSL.
fn verify_signature(der: &[u8]) -> Result<(), Rejection> {
    let req = X509Req::from_der(der).map_err(|_| Rejection::CertificateRequestDecodingFailed)?;
    let key = req
        .public_key()
        .map_err(|_| Rejection::CertificateRequestDecodingFailed)?;
    match req.verify(&key) {
        Ok(true) => Ok(()),
        _ => Err(Rejection::SignatureValidationFailed),
    }
}

fn san_value(name: &GeneralName<'_>) -> Result<San, Rejection> {
    let (kind, value) = match name {
        GeneralName::DNSName(s) => (SanKind::Dns, (*s).to_string()),
        GeneralName::RFC822Name(s) => (SanKind::Email, (*s).to_string()),
        GeneralName::URI(s) => (SanKind::Uri, (*s).to_string()),
        GeneralName::IPAddress(b) => {
            let ip = match b.len() {
                4 => <[u8; 4]>::try_from(*b).map(IpAddr::from).ok(),
                16 => <[u8; 16]>::try_from(*b).map(IpAddr::from).ok(),
                _ => None,
            };
            (
                SanKind::Ip,
                ip.ok_or(Rejection::SubjectAltNameMismatch)?.to_string(),
            )
        }
        GeneralName::OtherName(oid, value) if oid.to_id_string() == UPN_OID => (
            SanKind::Upn,
            upn_value(value).ok_or(Rejection::SubjectAltNameMismatch)?,
        ),
        _ => return Err(Rejection::SubjectAltNameMismatch),
    };
    Ok(San { kind, value })
}

/// The otherName value after its OID: `[0] EXPLICIT UTF8String`.
fn upn_value(data: &[u8]) -> Option<String> {
    let inner = der_tlv(data, 0xA0)?;
    let s = der_tlv(inner, 0x0C)?;
    String::from_utf8(s.to_vec()).ok()
}

/// The content of one DER TLV with the expected tag that fills `data` exactly.
fn der_tlv(data: &[u8], tag: u8) -> Option<&[u8]> {
    let (&t, rest) = data.split_first()?;
    if t != tag {
        return None;
    }
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7F);
        if n == 0 || n > 2 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |a, b| (a << 8) | usize::from(*b));
        (len, &rest[n..])
    };
    (rest.len() == len).then_some(rest)
}

fn key_usage_bits(flags: u16) -> Result<Vec<KeyUsage>, ()> {
    // x509-parser numbers bits from digitalSignature = bit 0.
    const DIGITAL_SIGNATURE: u16 = 1;
    const KEY_ENCIPHERMENT: u16 = 1 << 2;
    if flags & !(DIGITAL_SIGNATURE | KEY_ENCIPHERMENT) != 0 {
        return Err(());
    }
    let mut out = Vec::new();
    if flags & DIGITAL_SIGNATURE != 0 {
        out.push(KeyUsage::DigitalSignature);
    }
    if flags & KEY_ENCIPHERMENT != 0 {
        out.push(KeyUsage::KeyEncipherment);
    }
    Ok(out)
}

fn eku_oids(eku: &x509_parser::extensions::ExtendedKeyUsage<'_>) -> Vec<String> {
    let mut out = Vec::new();
    for (set, oid) in [
        (eku.any, ANY_EKU),
        (eku.server_auth, "1.3.6.1.5.5.7.3.1"),
        (eku.client_auth, "1.3.6.1.5.5.7.3.2"),
        (eku.code_signing, "1.3.6.1.5.5.7.3.3"),
        (eku.email_protection, "1.3.6.1.5.5.7.3.4"),
        (eku.time_stamping, "1.3.6.1.5.5.7.3.8"),
        (eku.ocsp_signing, "1.3.6.1.5.5.7.3.9"),
    ] {
        if set {
            out.push(oid.to_string());
        }
    }
    out.extend(eku.other.iter().map(|o| o.to_id_string()));
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn garbage_and_truncated_input_are_decoding_failures() {
        for bad in [
            &b""[..],
            b"\x30\x82\x06",
            b"\x30\x88\xff\xff\xff\xff\xff\xff\xff\xff",
            b"hello",
        ] {
            assert_eq!(
                parse(bad).err(),
                Some(Rejection::CertificateRequestDecodingFailed)
            );
        }
    }

    /// The canonical string types are the ones OpenSSL writes (ca-mock's certificates and
    /// device-agent's CSRs are built with `append_entry_by_nid`), attribute by attribute.
    #[test]
    fn canonical_string_types_are_what_openssl_writes() {
        use x509_parser::prelude::X509Name;
        for attr in SubjectAttr::ALL {
            let value = match attr {
                SubjectAttr::C => "NL",
                SubjectAttr::E => "a@example.com",
                _ => "value-1",
            };
            let nid = openssl::asn1::Asn1Object::from_str(attr.oid())
                .unwrap()
                .nid();
            let mut b = openssl::x509::X509NameBuilder::new().unwrap();
            b.append_entry_by_nid(nid, value).unwrap();
            let der = b.build().to_der().unwrap();
            let (_, name) = X509Name::from_der(&der).unwrap();
            let rdn = name.iter_rdn().next().unwrap();
            let parsed = subject_attr(rdn).unwrap_or_else(|e| panic!("{attr:?}: {e}"));
            assert_eq!((parsed.attr, parsed.value.as_str()), (attr, value));
        }
    }

    /// One text in every directory string type reads as that text; a broken BMPString or
    /// UniversalString, or a non-string value, is a mismatch, not a guess.
    #[test]
    fn every_string_type_reads_as_its_text() {
        use x509_parser::prelude::X509Name;
        let text = "LAPTOP-01 \u{e9}";
        let latin = "LAPTOP-01";
        let bmp: Vec<u8> = text.encode_utf16().flat_map(u16::to_be_bytes).collect();
        let ucs4: Vec<u8> = text
            .chars()
            .flat_map(|c| u32::from(c).to_be_bytes())
            .collect();
        let cn = |tag: u8, value: &[u8]| {
            let mut atv = vec![
                0x06,
                3,
                0x55,
                0x04,
                0x03,
                tag,
                u8::try_from(value.len()).unwrap(),
            ];
            atv.extend_from_slice(value);
            let mut seq = vec![0x30, u8::try_from(atv.len()).unwrap()];
            seq.extend(atv);
            let mut set = vec![0x31, u8::try_from(seq.len()).unwrap()];
            set.extend(seq);
            let mut name = vec![0x30, u8::try_from(set.len()).unwrap()];
            name.extend(set);
            name
        };
        let read = |der: Vec<u8>| {
            let (_, name) = X509Name::from_der(&der).unwrap();
            subject_attr(name.iter_rdn().next().unwrap()).map(|a| a.value)
        };
        assert_eq!(read(cn(0x0C, text.as_bytes())).unwrap(), text);
        assert_eq!(read(cn(0x1E, &bmp)).unwrap(), text);
        assert_eq!(read(cn(0x1C, &ucs4)).unwrap(), text);
        assert_eq!(read(cn(0x13, latin.as_bytes())).unwrap(), latin);
        assert_eq!(
            read(cn(0x1E, &bmp[..bmp.len() - 1])),
            Err(Rejection::SubjectNameMismatch),
            "odd BMPString"
        );
        assert_eq!(
            read(cn(0x1E, &[0xD8, 0x00])),
            Err(Rejection::SubjectNameMismatch),
            "lone surrogate"
        );
        assert_eq!(
            read(cn(0x1C, &[0, 0x11, 0, 0])),
            Err(Rejection::SubjectNameMismatch),
            "beyond Unicode"
        );
        assert_eq!(
            read(cn(0x02, &[1])),
            Err(Rejection::SubjectNameMismatch),
            "an INTEGER"
        );
    }

    #[test]
    fn key_facts_agree_with_openssl() {
        use openssl::pkey::PKey;
        let rsa = PKey::from_rsa(openssl::rsa::Rsa::generate(2048).unwrap()).unwrap();
        let ec = PKey::from_ec_key(
            openssl::ec::EcKey::generate(
                &openssl::ec::EcGroup::from_curve_name(openssl::nid::Nid::SECP384R1).unwrap(),
            )
            .unwrap(),
        )
        .unwrap();
        for (key, alg, bits) in [
            (&rsa, KeyAlgorithm::Rsa, 2048),
            (&ec, KeyAlgorithm::Ec, 384),
        ] {
            let der = key.public_key_to_der().unwrap();
            let (_, spki) = SubjectPublicKeyInfo::from_der(&der).unwrap();
            assert_eq!(key_facts(&spki).unwrap(), (alg, bits));
            assert_eq!(bits, key.bits());
        }
        assert_eq!(modulus_bits(&[0, 0x01, 0xff]), 9);
        assert_eq!(modulus_bits(&[0x80, 0]), 16);
        assert_eq!(modulus_bits(&[]), 0);
    }

    #[test]
    fn der_tlv_reads_short_and_long_forms_exactly() {
        assert_eq!(der_tlv(&[0x0C, 2, b'h', b'i'], 0x0C), Some(&b"hi"[..]));
        assert_eq!(der_tlv(&[0x0C, 3, b'h', b'i'], 0x0C), None);
        assert_eq!(der_tlv(&[0x0C, 0x81, 1, b'x'], 0x0C), Some(&b"x"[..]));
        assert_eq!(der_tlv(&[0x0D, 1, b'x'], 0x0C), None);
    }
}
