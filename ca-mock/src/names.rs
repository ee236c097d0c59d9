//! Granted subject attributes and subject alternative names (the foundation's vocabulary),
//! checked and turned into DER.

use std::net::IpAddr;

use der::Encode;
use der::asn1::{Ia5String, ObjectIdentifier, OctetString, Utf8StringRef};
use foundation::names::{NameAttr, San, SanKind, SubjectAttr};
use openssl::x509::{X509Name, X509NameBuilder};
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::ext::pkix::name::{GeneralName, OtherName};

use crate::error::CaError;

/// Longest value accepted for one subject attribute or SAN (RFC 5280 upper bounds are 64 for most
/// attributes; URIs and DNS names get more room).
const MAX_VALUE_LEN: usize = 255;

/// Microsoft's userPrincipalName otherName (szOID_NT_PRINCIPAL_NAME).
pub const UPN_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap(foundation::names::UPN_OID);

fn check_text(what: &str, value: &str) -> Result<(), String> {
    if value.is_empty() || value.len() > MAX_VALUE_LEN {
        return Err(format!(
            "{what}: empty or longer than {MAX_VALUE_LEN} bytes"
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(format!("{what}: control characters"));
    }
    Ok(())
}

/// Builds the subject DN in the order given.
pub(crate) fn build_subject(attrs: &[NameAttr]) -> Result<X509Name, CaError> {
    let mut b = X509NameBuilder::new().map_err(CaError::crypto)?;
    for a in attrs {
        let label = a.attr.name();
        check_text(label, &a.value).map_err(CaError::SubjectNotAllowed)?;
        let ok = match a.attr {
            SubjectAttr::C => a.value.len() == 2 && a.value.chars().all(|c| c.is_ascii_uppercase()),
            SubjectAttr::E | SubjectAttr::DC => a.value.is_ascii(),
            _ => true,
        };
        if !ok {
            return Err(CaError::SubjectNotAllowed(format!(
                "{label}: malformed value"
            )));
        }
        b.append_entry_by_nid(a.attr.nid(), &a.value)
            .map_err(|_| CaError::SubjectNotAllowed(format!("{label}: unencodable value")))?;
    }
    Ok(b.build())
}

fn ia5(value: &str, label: &str) -> Result<Ia5String, CaError> {
    Ia5String::new(value).map_err(|_| CaError::SanNotAllowed(format!("{label}: not ASCII")))
}

fn is_dns_name(v: &str) -> bool {
    let v = v.strip_prefix("*.").unwrap_or(v);
    !v.is_empty()
        && v.len() <= 253
        && v.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
}

fn general_name(san: &San) -> Result<GeneralName, CaError> {
    let label = format!("{:?}", san.kind).to_lowercase();
    check_text(&label, &san.value).map_err(CaError::SanNotAllowed)?;
    let v = san.value.as_str();
    let bad = || CaError::SanNotAllowed(format!("{label}: malformed value"));
    Ok(match san.kind {
        SanKind::Dns => {
            if !is_dns_name(v) {
                return Err(bad());
            }
            GeneralName::DnsName(ia5(v, &label)?)
        }
        SanKind::Email => {
            let (local, domain) = v.split_once('@').ok_or_else(bad)?;
            if local.is_empty() || !is_dns_name(domain) || v.contains(char::is_whitespace) {
                return Err(bad());
            }
            GeneralName::Rfc822Name(ia5(v, &label)?)
        }
        SanKind::Uri => {
            let scheme = v.split_once(':').map(|(s, _)| s).ok_or_else(bad)?;
            if scheme.is_empty()
                || !scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
                || v.contains(char::is_whitespace)
            {
                return Err(bad());
            }
            GeneralName::UniformResourceIdentifier(ia5(v, &label)?)
        }
        SanKind::Ip => {
            let ip: IpAddr = v.parse().map_err(|_| bad())?;
            let bytes = match ip {
                IpAddr::V4(a) => a.octets().to_vec(),
                IpAddr::V6(a) => a.octets().to_vec(),
            };
            GeneralName::IpAddress(OctetString::new(bytes).map_err(CaError::crypto)?)
        }
        SanKind::Upn => {
            if !v.contains('@') {
                return Err(bad());
            }
            let value = der::Any::encode_from(&Utf8StringRef::new(v).map_err(|_| bad())?)
                .map_err(CaError::crypto)?;
            GeneralName::OtherName(OtherName {
                type_id: UPN_OID,
                value,
            })
        }
    })
}

/// DER of the SubjectAltName extension value for `sans` (empty input gives `None`).
pub(crate) fn san_extension_der(sans: &[San]) -> Result<Option<Vec<u8>>, CaError> {
    if sans.is_empty() {
        return Ok(None);
    }
    let names = sans
        .iter()
        .map(general_name)
        .collect::<Result<Vec<_>, _>>()?;
    SubjectAltName(names)
        .to_der()
        .map(Some)
        .map_err(CaError::crypto)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn san(kind: SanKind, value: &str) -> San {
        San {
            kind,
            value: value.into(),
        }
    }

    #[test]
    fn malformed_sans_are_refused() {
        for s in [
            san(SanKind::Dns, "bad name"),
            san(SanKind::Dns, "-x.example"),
            san(SanKind::Email, "no-at-sign"),
            san(SanKind::Ip, "300.1.1.1"),
            san(SanKind::Uri, "no scheme"),
            san(SanKind::Upn, "nobody"),
            san(SanKind::Dns, ""),
        ] {
            assert!(
                matches!(general_name(&s), Err(CaError::SanNotAllowed(_))),
                "{s:?}"
            );
        }
    }

    #[test]
    fn well_formed_sans_encode() {
        let der = san_extension_der(&[
            san(SanKind::Dns, "dev-1.example.com"),
            san(SanKind::Email, "a@example.com"),
            san(SanKind::Uri, "urn:uuid:1234"),
            san(SanKind::Ip, "::1"),
            san(SanKind::Upn, "user@contoso.com"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(der[0], 0x30);
    }

    #[test]
    fn country_must_be_two_capitals() {
        let bad = [NameAttr {
            attr: SubjectAttr::C,
            value: "USA".into(),
        }];
        assert!(build_subject(&bad).is_err());
        let good = [NameAttr {
            attr: SubjectAttr::C,
            value: "US".into(),
        }];
        assert!(build_subject(&good).is_ok());
    }
}
