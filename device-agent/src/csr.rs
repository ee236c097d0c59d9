//! The PKCS#10 request exactly as the profile renders it: subject RDNs in the profile's order,
//! SANs, key usage and EKU as requested extensions, and the challengePassword.
//!
//! The policy module compares these byte for byte with what it rendered for this device
//! (subject, SANs, key usage, EKU, key size), so nothing is added or reordered here.

use openssl::asn1::Asn1Object;
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::stack::Stack;
use openssl::x509::extension::{ExtendedKeyUsage, KeyUsage, SubjectAlternativeName};
use openssl::x509::{X509Extension, X509Name, X509ReqBuilder};
use scep::csr::ChallengePassword;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::key::DeviceKey;

/// One subject attribute: a short name as profiles write them (`CN`, `OU`, `O`, `C`, `E`,
/// `SERIALNUMBER`, `DC`, `UID`, `STREET`, `T`, `G`, `SN`, `L`, `ST`) and its value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NameAttr {
    /// Short name.
    pub attr: String,
    /// Value.
    pub value: String,
}

/// Subject alternative name kinds a profile may render.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SanKind {
    /// dNSName.
    Dns,
    /// rfc822Name.
    Email,
    /// uniformResourceIdentifier.
    Uri,
    /// Microsoft UPN otherName (1.3.6.1.4.1.311.20.2.3, UTF8String).
    Upn,
    /// iPAddress.
    Ip,
}

/// One subject alternative name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct San {
    /// Kind.
    pub kind: SanKind,
    /// Value.
    pub value: String,
}

/// Key usage bits a profile may request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum KeyUsageBit {
    /// digitalSignature.
    DigitalSignature,
    /// keyEncipherment.
    KeyEncipherment,
}

/// What goes into the CSR (everything but the key and the challenge).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CsrSpec {
    /// Subject RDNs in encoding order.
    pub subject: Vec<NameAttr>,
    /// Requested SANs.
    #[serde(default)]
    pub subject_alternative_names: Vec<San>,
    /// Requested key usage (no extension when empty).
    #[serde(default)]
    pub key_usage: Vec<KeyUsageBit>,
    /// Requested EKUs as dotted OIDs (no extension when empty).
    #[serde(default)]
    pub extended_key_usages: Vec<String>,
}

const OID_UPN: &str = "1.3.6.1.4.1.311.20.2.3";

impl CsrSpec {
    /// A spec with only a common name (plain SCEP mode).
    pub fn common_name(cn: &str) -> Self {
        Self {
            subject: vec![NameAttr {
                attr: "CN".into(),
                value: cn.into(),
            }],
            ..Self::default()
        }
    }

    /// The subject as an OpenSSL name, RDNs in order.
    pub fn subject_name(&self) -> Result<X509Name> {
        if self.subject.is_empty() {
            return Err(Error::Invalid("empty subject".into()));
        }
        let mut b = X509Name::builder()?;
        for a in &self.subject {
            let nid = attr_nid(&a.attr)
                .ok_or_else(|| Error::Invalid(format!("subject attribute {:?}", a.attr)))?;
            b.append_entry_by_nid(nid, &a.value)
                .map_err(|_| Error::Invalid(format!("subject value for {}", a.attr)))?;
        }
        Ok(b.build())
    }

    /// The requested extensions (SAN, key usage, EKU), in that order.
    pub fn extensions(&self) -> Result<Stack<X509Extension>> {
        let mut stack = Stack::new()?;
        if !self.subject_alternative_names.is_empty() {
            let mut san = SubjectAlternativeName::new();
            for s in &self.subject_alternative_names {
                match s.kind {
                    SanKind::Dns => san.dns(&s.value),
                    SanKind::Email => san.email(&s.value),
                    SanKind::Uri => san.uri(&s.value),
                    SanKind::Ip => {
                        s.value
                            .parse::<std::net::IpAddr>()
                            .map_err(|_| Error::Invalid(format!("IP SAN {:?}", s.value)))?;
                        san.ip(&s.value)
                    }
                    SanKind::Upn => {
                        san.other_name2(Asn1Object::from_str(OID_UPN)?, &utf8(&s.value)?)
                    }
                };
            }
            let req = X509ReqBuilder::new()?;
            stack.push(san.build(&req.x509v3_context(None))?)?;
        }
        if !self.key_usage.is_empty() {
            let mut ku = KeyUsage::new();
            ku.critical();
            for k in &self.key_usage {
                match k {
                    KeyUsageBit::DigitalSignature => ku.digital_signature(),
                    KeyUsageBit::KeyEncipherment => ku.key_encipherment(),
                };
            }
            stack.push(ku.build()?)?;
        }
        if !self.extended_key_usages.is_empty() {
            let mut eku = ExtendedKeyUsage::new();
            for oid in &self.extended_key_usages {
                if !is_dotted_oid(oid) {
                    return Err(Error::Invalid(format!("EKU {oid:?}")));
                }
                eku.other(oid);
            }
            stack.push(eku.build()?)?;
        }
        Ok(stack)
    }

    /// The signed DER request for `key`, with `challenge` when there is one.
    pub fn build(
        &self,
        key: &DeviceKey,
        challenge: Option<&ChallengePassword>,
        digest: MessageDigest,
    ) -> Result<Vec<u8>> {
        let subject = self.subject_name()?;
        let extensions = self.extensions()?;
        let ext = (!extensions.is_empty()).then_some(&*extensions);
        Ok(scep::csr::build(
            key.pkey(),
            &subject,
            ext,
            challenge,
            digest,
        )?)
    }
}

/// DER UTF8String (the otherName value of a UPN).
fn utf8(value: &str) -> Result<Vec<u8>> {
    let bytes = value.as_bytes();
    let mut out = vec![0x0c];
    match bytes.len() {
        n @ 0..=0x7f => out.push(n as u8),
        n @ 0x80..=0xff => out.extend([0x81, n as u8]),
        n @ 0x100..=0xffff => out.extend([0x82, (n >> 8) as u8, n as u8]),
        _ => return Err(Error::Invalid("UPN too long".into())),
    }
    out.extend_from_slice(bytes);
    Ok(out)
}

fn is_dotted_oid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('.').collect();
    parts.len() >= 2
        && s.len() <= 128
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

fn attr_nid(name: &str) -> Option<Nid> {
    Some(match name.trim().to_ascii_uppercase().as_str() {
        "CN" => Nid::COMMONNAME,
        "O" => Nid::ORGANIZATIONNAME,
        "OU" => Nid::ORGANIZATIONALUNITNAME,
        "L" => Nid::LOCALITYNAME,
        "ST" => Nid::STATEORPROVINCENAME,
        "C" => Nid::COUNTRYNAME,
        "E" | "EMAIL" | "EMAILADDRESS" => Nid::PKCS9_EMAILADDRESS,
        "SERIALNUMBER" => Nid::SERIALNUMBER,
        "DC" => Nid::DOMAINCOMPONENT,
        "UID" => Nid::USERID,
        "STREET" => Nid::STREETADDRESS,
        "T" => Nid::TITLE,
        "G" => Nid::GIVENNAME,
        "SN" => Nid::SURNAME,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::key::KeySpec;

    fn spec() -> CsrSpec {
        CsrSpec {
            subject: vec![
                NameAttr {
                    attr: "CN".into(),
                    value: "LAPTOP-7".into(),
                },
                NameAttr {
                    attr: "OU".into(),
                    value: "Devices".into(),
                },
                NameAttr {
                    attr: "O".into(),
                    value: "Contoso".into(),
                },
            ],
            subject_alternative_names: vec![
                San {
                    kind: SanKind::Dns,
                    value: "laptop-7.contoso.example".into(),
                },
                San {
                    kind: SanKind::Upn,
                    value: "alice@contoso.example".into(),
                },
                San {
                    kind: SanKind::Ip,
                    value: "192.0.2.7".into(),
                },
            ],
            key_usage: vec![KeyUsageBit::DigitalSignature],
            extended_key_usages: vec!["1.3.6.1.5.5.7.3.2".into()],
        }
    }

    #[test]
    fn csr_carries_subject_in_order_and_the_challenge() {
        let key = DeviceKey::generate(KeySpec::EcP256).unwrap();
        let challenge = ChallengePassword::new("ABCDEF0123");
        let der = spec()
            .build(&key, Some(&challenge), MessageDigest::sha256())
            .unwrap();
        let csr = scep::csr::Csr::from_der(&der).unwrap();
        assert_eq!(csr.challenge_password().unwrap().expose(), "ABCDEF0123");
        let names: Vec<String> = csr
            .subject_name()
            .unwrap()
            .entries()
            .map(|e| e.data().to_string().unwrap())
            .collect();
        assert_eq!(names, ["LAPTOP-7", "Devices", "Contoso"]);
        assert_eq!(csr.public_key_der(), key.public_key_der().unwrap());
        assert!(csr.extension_request().is_some());
    }

    #[test]
    fn refuses_unknown_attributes_bad_ips_and_bad_oids() {
        let mut s = CsrSpec::common_name("x");
        s.subject.push(NameAttr {
            attr: "XX".into(),
            value: "1".into(),
        });
        assert!(matches!(s.subject_name(), Err(Error::Invalid(_))));
        let mut s = CsrSpec::common_name("x");
        s.subject_alternative_names.push(San {
            kind: SanKind::Ip,
            value: "nope".into(),
        });
        assert!(s.extensions().is_err());
        let mut s = CsrSpec::common_name("x");
        s.extended_key_usages.push("clientAuth".into());
        assert!(s.extensions().is_err());
    }

    #[test]
    fn upn_value_is_a_der_utf8_string() {
        assert_eq!(utf8("ab").unwrap(), [0x0c, 2, b'a', b'b']);
        assert_eq!(&utf8(&"a".repeat(200)).unwrap()[..3], [0x0c, 0x81, 200]);
    }
}
