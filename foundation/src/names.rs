//! The name vocabulary of certificates, defined once: subject attributes, subject alternative
//! name kinds, key usage bits and extended key usages. Profiles (policy-module), grants
//! (policy-api), issuance requests (ca-api), templates (ca-mock) and CSRs (device-agent) all
//! speak it, so a name crosses a service boundary without conversion.

use openssl::nid::Nid;
use serde::{Deserialize, Serialize};

/// Subject DN attributes the lab knows (RFC 5280 4.1.2.4, RFC 4519, PKCS #9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[allow(clippy::upper_case_acronyms)]
pub enum SubjectAttr {
    /// commonName
    CN,
    /// organizationName
    O,
    /// organizationalUnitName
    OU,
    /// localityName
    L,
    /// stateOrProvinceName
    ST,
    /// countryName (two letters)
    C,
    /// emailAddress (PKCS #9)
    E,
    /// serialNumber
    SERIALNUMBER,
    /// domainComponent
    DC,
    /// userId
    UID,
    /// streetAddress
    STREET,
    /// title
    T,
    /// givenName
    G,
    /// surname
    SN,
}

impl SubjectAttr {
    /// Every attribute, in declaration order.
    pub const ALL: [Self; 14] = [
        Self::CN,
        Self::O,
        Self::OU,
        Self::L,
        Self::ST,
        Self::C,
        Self::E,
        Self::SERIALNUMBER,
        Self::DC,
        Self::UID,
        Self::STREET,
        Self::T,
        Self::G,
        Self::SN,
    ];

    /// The attribute type OID in dotted form.
    pub fn oid(self) -> &'static str {
        match self {
            Self::CN => "2.5.4.3",
            Self::O => "2.5.4.10",
            Self::OU => "2.5.4.11",
            Self::L => "2.5.4.7",
            Self::ST => "2.5.4.8",
            Self::C => "2.5.4.6",
            Self::E => "1.2.840.113549.1.9.1",
            Self::SERIALNUMBER => "2.5.4.5",
            Self::DC => "0.9.2342.19200300.100.1.25",
            Self::UID => "0.9.2342.19200300.100.1.1",
            Self::STREET => "2.5.4.9",
            Self::T => "2.5.4.12",
            Self::G => "2.5.4.42",
            Self::SN => "2.5.4.4",
        }
    }

    /// The short name used in subject strings and on the wire.
    pub fn name(self) -> &'static str {
        match self {
            Self::CN => "CN",
            Self::O => "O",
            Self::OU => "OU",
            Self::L => "L",
            Self::ST => "ST",
            Self::C => "C",
            Self::E => "E",
            Self::SERIALNUMBER => "SERIALNUMBER",
            Self::DC => "DC",
            Self::UID => "UID",
            Self::STREET => "STREET",
            Self::T => "T",
            Self::G => "G",
            Self::SN => "SN",
        }
    }

    /// The OpenSSL NID of the attribute type.
    pub fn nid(self) -> Nid {
        match self {
            Self::CN => Nid::COMMONNAME,
            Self::O => Nid::ORGANIZATIONNAME,
            Self::OU => Nid::ORGANIZATIONALUNITNAME,
            Self::L => Nid::LOCALITYNAME,
            Self::ST => Nid::STATEORPROVINCENAME,
            Self::C => Nid::COUNTRYNAME,
            Self::E => Nid::PKCS9_EMAILADDRESS,
            Self::SERIALNUMBER => Nid::SERIALNUMBER,
            Self::DC => Nid::DOMAINCOMPONENT,
            Self::UID => Nid::USERID,
            Self::STREET => Nid::STREETADDRESS,
            Self::T => Nid::TITLE,
            Self::G => Nid::GIVENNAME,
            Self::SN => Nid::SURNAME,
        }
    }

    /// The attribute of an OpenSSL name entry, if the vocabulary has it.
    pub fn from_nid(nid: Nid) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.nid() == nid)
    }

    /// From an attribute OID in dotted form.
    pub fn from_oid(oid: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.oid() == oid)
    }

    /// From a short name, case-insensitively (`EMAIL` and `EMAILADDRESS` are accepted for `E`).
    pub fn from_name(name: &str) -> Option<Self> {
        let upper = name.trim().to_ascii_uppercase();
        if upper == "EMAIL" || upper == "EMAILADDRESS" {
            return Some(Self::E);
        }
        Self::ALL.into_iter().find(|a| a.name() == upper)
    }
}

impl std::fmt::Display for SubjectAttr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One subject attribute with its value; a subject is an ordered list of these, in the order
/// the RDNs are encoded (first element = first RDN of the DER `Name`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NameAttr {
    /// Which attribute.
    pub attr: SubjectAttr,
    /// Its value.
    pub value: String,
}

impl NameAttr {
    /// An attribute and its value.
    pub fn new(attr: SubjectAttr, value: impl Into<String>) -> Self {
        Self {
            attr,
            value: value.into(),
        }
    }
}

/// A one-line rendering of a subject for stores, logs and listings (`CN=dev-1, O=Contoso`).
pub fn subject_text(attrs: &[NameAttr]) -> String {
    attrs
        .iter()
        .map(|a| format!("{}={}", a.attr.name(), a.value))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Subject alternative name kinds (RFC 5280 4.2.1.6; UPN is Microsoft's otherName
/// [`UPN_OID`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SanKind {
    /// dNSName
    Dns,
    /// rfc822Name
    Email,
    /// uniformResourceIdentifier
    Uri,
    /// otherName userPrincipalName (UTF8String)
    Upn,
    /// iPAddress (v4 or v6)
    Ip,
}

/// Microsoft's userPrincipalName otherName (szOID_NT_PRINCIPAL_NAME).
pub const UPN_OID: &str = "1.3.6.1.4.1.311.20.2.3";

/// One subject alternative name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct San {
    /// Which kind.
    pub kind: SanKind,
    /// Its value.
    pub value: String,
}

impl San {
    /// A SAN of a kind.
    pub fn new(kind: SanKind, value: impl Into<String>) -> Self {
        Self {
            kind,
            value: value.into(),
        }
    }
}

/// Key usage bits of an end-entity certificate (RFC 5280 4.2.1.3). keyCertSign and cRLSign
/// are absent: the lab's CA issues only CA:FALSE certificates. Intune profiles offer the
/// first two of these; templates may name all five.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum KeyUsage {
    /// digitalSignature
    DigitalSignature,
    /// keyEncipherment
    KeyEncipherment,
    /// nonRepudiation (contentCommitment)
    NonRepudiation,
    /// dataEncipherment
    DataEncipherment,
    /// keyAgreement
    KeyAgreement,
}

/// anyExtendedKeyUsage (RFC 5280 4.2.1.12): never granted.
pub const ANY_EKU: &str = "2.5.29.37.0";

/// Extended key usages known by name, with their OIDs.
pub const EKU_NAMES: [(&str, &str); 9] = [
    ("serverAuth", "1.3.6.1.5.5.7.3.1"),
    ("clientAuth", "1.3.6.1.5.5.7.3.2"),
    ("codeSigning", "1.3.6.1.5.5.7.3.3"),
    ("emailProtection", "1.3.6.1.5.5.7.3.4"),
    ("timeStamping", "1.3.6.1.5.5.7.3.8"),
    ("OCSPSigning", "1.3.6.1.5.5.7.3.9"),
    ("ipsecIKE", "1.3.6.1.5.5.7.3.17"),
    ("ipsecIKEIntermediate", "1.3.6.1.5.5.8.2.2"),
    ("certificateRequestAgent", "1.3.6.1.4.1.311.20.2.1"),
];

/// An EKU name or dotted OID as a dotted OID (`None` for an unknown name or a malformed OID).
pub fn eku_oid(name_or_oid: &str) -> Option<String> {
    if let Some((_, oid)) = EKU_NAMES.iter().find(|(n, _)| *n == name_or_oid) {
        return Some((*oid).to_owned());
    }
    is_dotted_oid(name_or_oid).then(|| name_or_oid.to_owned())
}

/// The name of a known EKU OID, for people.
pub fn eku_name(oid: &str) -> Option<&'static str> {
    EKU_NAMES.iter().find(|(_, o)| *o == oid).map(|(n, _)| *n)
}

/// True for a dotted OID of at least two arcs, at most 128 characters, whose first arc is 0, 1
/// or 2 (X.660).
pub fn is_dotted_oid(s: &str) -> bool {
    let mut arcs = s.split('.');
    let first_ok = matches!(arcs.next(), Some("0" | "1" | "2"));
    let rest: Vec<&str> = arcs.collect();
    first_ok
        && !rest.is_empty()
        && s.len() <= 128
        && rest
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 20 && p.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn attributes_round_trip_through_name_and_oid() {
        for a in SubjectAttr::ALL {
            assert_eq!(SubjectAttr::from_name(a.name()), Some(a));
            assert_eq!(SubjectAttr::from_oid(a.oid()), Some(a));
            assert_eq!(SubjectAttr::from_nid(a.nid()), Some(a));
            // The NID and the OID name the same attribute type.
            let dotted = openssl::asn1::Asn1Object::from_str(a.oid()).unwrap();
            assert_eq!(dotted.nid(), a.nid(), "{a:?}");
        }
        assert_eq!(SubjectAttr::from_name("emailAddress"), Some(SubjectAttr::E));
        assert_eq!(SubjectAttr::from_name("XX"), None);
    }

    #[test]
    fn the_wire_spelling_is_stable() {
        let attr = NameAttr::new(SubjectAttr::SERIALNUMBER, "42");
        assert_eq!(
            serde_json::to_string(&attr).unwrap(),
            r#"{"attr":"SERIALNUMBER","value":"42"}"#
        );
        let san = San::new(SanKind::Upn, "a@b.c");
        assert_eq!(
            serde_json::to_string(&san).unwrap(),
            r#"{"kind":"upn","value":"a@b.c"}"#
        );
        assert_eq!(
            serde_json::to_string(&KeyUsage::DigitalSignature).unwrap(),
            "\"digitalSignature\""
        );
        assert!(serde_json::from_str::<NameAttr>(r#"{"attr":"CN","value":"x","y":1}"#).is_err());
        assert_eq!(
            subject_text(&[
                NameAttr::new(SubjectAttr::CN, "d"),
                NameAttr::new(SubjectAttr::O, "o")
            ]),
            "CN=d, O=o"
        );
    }

    #[test]
    fn ekus_resolve_by_name_or_oid() {
        assert_eq!(eku_oid("clientAuth").as_deref(), Some("1.3.6.1.5.5.7.3.2"));
        assert_eq!(
            eku_oid("1.3.6.1.5.5.7.3.2").as_deref(),
            Some("1.3.6.1.5.5.7.3.2")
        );
        assert_eq!(eku_name("1.3.6.1.5.5.7.3.2"), Some("clientAuth"));
        for bad in [
            "nope",
            "1",
            "3.1",
            "1..2",
            "1.2.x",
            &format!("1.{}", "9".repeat(21)),
        ] {
            assert!(eku_oid(bad).is_none(), "{bad}");
        }
    }
}
