//! PKCS#10 parsing: what VerifyRequest compares against the rendered profile.
//!
//! x509-parser reads the names, attributes and extensions; OpenSSL checks the key and the
//! self-signature. Every failure is a [`Rejection`], never a panic.

use std::net::IpAddr;

use openssl::nid::Nid;
use openssl::pkey::Id;
use openssl::x509::X509Req;
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::cri_attributes::ParsedCriAttribute;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::FromDer;

use crate::error::Rejection;
use crate::model::{KeyAlgorithm, KeyUsage, NameAttr, San, SanKind, SubjectAttr};
use foundation::secret::Secret;

/// Largest CSR accepted (a 16384-bit RSA CSR is under 3 KiB; room for SANs).
pub const MAX_CSR_LEN: usize = 64 * 1024;

const OID_UPN: &str = "1.3.6.1.4.1.311.20.2.3";
const OID_SAN: &str = "2.5.29.17";
const OID_KU: &str = "2.5.29.15";
const OID_EKU: &str = "2.5.29.37";

/// The parts of a CSR the policy looks at.
#[derive(Debug)]
pub struct CsrInfo {
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

/// Parses and checks a DER PKCS#10 request.
pub fn parse(der: &[u8]) -> Result<CsrInfo, Rejection> {
    use Rejection::*;
    if der.is_empty() || der.len() > MAX_CSR_LEN {
        return Err(CertificateRequestDecodingFailed);
    }
    let (rest, req) =
        X509CertificationRequest::from_der(der).map_err(|_| CertificateRequestDecodingFailed)?;
    if !rest.is_empty() {
        return Err(CertificateRequestDecodingFailed);
    }
    let (key_algorithm, key_size, spki_der) = check_key_and_signature(der)?;
    let info = &req.certification_request_info;

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
                        // template (DESIGN decision 7).
                        _ => {}
                    }
                }
            }
            ParsedCriAttribute::UnsupportedAttribute => {}
        }
    }
    sans.sort();
    Ok(CsrInfo {
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
/// the granted text in its own string types (DESIGN decision 7), so an encoding cannot reach
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

/// The key (RSA or EC on a named curve) and the CSR's self-signature, with OpenSSL.
fn check_key_and_signature(der: &[u8]) -> Result<(KeyAlgorithm, u32, Vec<u8>), Rejection> {
    let req = X509Req::from_der(der).map_err(|_| Rejection::CertificateRequestDecodingFailed)?;
    let key = req
        .public_key()
        .map_err(|_| Rejection::CertificateRequestDecodingFailed)?;
    let (alg, size) = match key.id() {
        Id::RSA => (KeyAlgorithm::Rsa, key.bits()),
        Id::EC => {
            let ec = key.ec_key().map_err(|_| Rejection::KeyLengthMismatch)?;
            let bits = match ec.group().curve_name() {
                Some(Nid::X9_62_PRIME256V1) => 256,
                Some(Nid::SECP384R1) => 384,
                Some(Nid::SECP521R1) => 521,
                _ => return Err(Rejection::KeyLengthMismatch),
            };
            (KeyAlgorithm::Ec, bits)
        }
        _ => return Err(Rejection::KeyLengthMismatch),
    };
    match req.verify(&key) {
        Ok(true) => {}
        _ => return Err(Rejection::SignatureValidationFailed),
    }
    let spki = key
        .public_key_to_der()
        .map_err(|_| Rejection::CertificateRequestDecodingFailed)?;
    Ok((alg, size, spki))
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
        GeneralName::OtherName(oid, value) if oid.to_id_string() == OID_UPN => (
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
        (eku.any, crate::model::ANY_EKU),
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
    fn der_tlv_reads_short_and_long_forms_exactly() {
        assert_eq!(der_tlv(&[0x0C, 2, b'h', b'i'], 0x0C), Some(&b"hi"[..]));
        assert_eq!(der_tlv(&[0x0C, 3, b'h', b'i'], 0x0C), None);
        assert_eq!(der_tlv(&[0x0C, 0x81, 1, b'x'], 0x0C), Some(&b"x"[..]));
        assert_eq!(der_tlv(&[0x0D, 1, b'x'], 0x0C), None);
    }
}
