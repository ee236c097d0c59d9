//! The PKCS#10 request exactly as the profile renders it: subject RDNs in the profile's order,
//! SANs, key usage and EKU as requested extensions, and the challengePassword.
//!
//! The policy module compares these byte for byte with what it rendered for this device
//! (subject, SANs, key usage, EKU, key size), so nothing is added or reordered here.

use openssl::asn1::Asn1Object;
use openssl::hash::MessageDigest;
use openssl::stack::Stack;
use openssl::x509::extension::{ExtendedKeyUsage, KeyUsage as KeyUsageExt, SubjectAlternativeName};
use openssl::x509::{X509Extension, X509Name, X509ReqBuilder};
use scep::csr::ChallengePassword;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::key::DeviceKey;

pub use foundation::names::{KeyUsage, NameAttr, San, SanKind, SubjectAttr};

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
    pub key_usage: Vec<KeyUsage>,
    /// Requested EKUs as dotted OIDs (no extension when empty).
    #[serde(default)]
    pub extended_key_usages: Vec<String>,
}

impl CsrSpec {
    /// A spec with only a common name (plain SCEP mode).
    pub fn common_name(cn: &str) -> Self {
        Self {
            subject: vec![NameAttr::new(SubjectAttr::CN, cn)],
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
            b.append_entry_by_nid(a.attr.nid(), &a.value)
                .map_err(|_| Error::Invalid(format!("subject value for {}", a.attr.name())))?;
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
                    SanKind::Upn => san.other_name2(
                        Asn1Object::from_str(foundation::names::UPN_OID)?,
                        &utf8(&s.value)?,
                    ),
                };
            }
            let req = X509ReqBuilder::new()?;
            stack.push(san.build(&req.x509v3_context(None))?)?;
        }
        if !self.key_usage.is_empty() {
            let mut ku = KeyUsageExt::new();
            ku.critical();
            for k in &self.key_usage {
                match k {
                    KeyUsage::DigitalSignature => ku.digital_signature(),
                    KeyUsage::NonRepudiation => ku.non_repudiation(),
                    KeyUsage::KeyEncipherment => ku.key_encipherment(),
                    KeyUsage::DataEncipherment => ku.data_encipherment(),
                    KeyUsage::KeyAgreement => ku.key_agreement(),
                };
            }
            stack.push(ku.build()?)?;
        }
        if !self.extended_key_usages.is_empty() {
            let mut eku = ExtendedKeyUsage::new();
            for oid in &self.extended_key_usages {
                if !foundation::names::is_dotted_oid(oid) {
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::key::KeySpec;

    fn spec() -> CsrSpec {
        CsrSpec {
            subject: vec![
                NameAttr::new(SubjectAttr::CN, "LAPTOP-7"),
                NameAttr::new(SubjectAttr::OU, "Devices"),
                NameAttr::new(SubjectAttr::O, "Contoso"),
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
            key_usage: vec![KeyUsage::DigitalSignature],
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
        // Unknown attributes cannot be written into a spec: the profile carrying one is refused
        // when it is read.
        let unknown = r#"{"subject":[{"attr":"CN","value":"x"},{"attr":"XX","value":"1"}]}"#;
        assert!(serde_json::from_str::<CsrSpec>(unknown).is_err());
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
