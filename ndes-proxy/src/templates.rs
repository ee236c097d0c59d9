//! NDES picks a CA template by the key's purpose (registry values SignatureTemplate,
//! EncryptionTemplate, GeneralPurposeTemplate), read from the key usage the CSR requests. Here
//! the policy grant names the template; this mapping is the fallback when it does not.

use scep::asn1::{Reader, parse_single, tag};
use scep::csr::Csr;

/// NDES's default template names (all three are IPSECIntermediateOffline out of the box).
pub const SIGNATURE_TEMPLATE: &str = "IPSECIntermediateOffline";
/// See [`SIGNATURE_TEMPLATE`].
pub const ENCRYPTION_TEMPLATE: &str = "IPSECIntermediateOffline";
/// See [`SIGNATURE_TEMPLATE`].
pub const GENERAL_PURPOSE_TEMPLATE: &str = "IPSECIntermediateOffline";

/// `id-ce-keyUsage` (RFC 5280 §4.2.1.3), content octets of 2.5.29.15.
const KEY_USAGE: &[u8] = &[0x55, 0x1d, 0x0f];

/// The template for this CSR's requested key usage: digitalSignature only -> signature,
/// keyEncipherment only -> encryption, both or none -> general purpose.
pub fn purpose_template(csr: &Csr) -> &'static str {
    match requested_key_usage(csr) {
        Some((true, false)) => SIGNATURE_TEMPLATE,
        Some((false, true)) => ENCRYPTION_TEMPLATE,
        _ => GENERAL_PURPOSE_TEMPLATE,
    }
}

/// `(digitalSignature, keyEncipherment)` from the CSR's extensionRequest, if it asks for key usage.
pub fn requested_key_usage(csr: &Csr) -> Option<(bool, bool)> {
    let exts = csr.extension_request()?;
    let mut r: Reader<'_> = parse_single(exts).ok()?.children().ok()?;
    while !r.is_empty() {
        let mut ext = r.read_any().ok()?.children().ok()?;
        let oid = ext.read(tag::OID, "extnID").ok()?.content;
        ext.read_optional(tag::BOOLEAN).ok()?;
        let value = ext.read(tag::OCTET_STRING, "extnValue").ok()?.content;
        if oid == KEY_USAGE {
            let bits = parse_single(value)
                .ok()?
                .expect(tag::BIT_STRING, "keyUsage")
                .ok()?;
            let first = bits.content.get(1).copied().unwrap_or(0);
            return Some((first & 0x80 != 0, first & 0x20 != 0));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use openssl::hash::MessageDigest;
    use openssl::x509::X509Name;
    use openssl::x509::extension::KeyUsage;

    fn csr(usage: Option<KeyUsage>) -> Csr {
        let key =
            openssl::pkey::PKey::from_rsa(openssl::rsa::Rsa::generate(2048).unwrap()).unwrap();
        let mut n = X509Name::builder().unwrap();
        n.append_entry_by_text("CN", "t").unwrap();
        let mut stack = openssl::stack::Stack::new().unwrap();
        if let Some(u) = usage {
            stack.push(u.build().unwrap()).unwrap();
        }
        let der = scep::csr::build(
            &key,
            &n.build(),
            Some(&stack),
            None,
            MessageDigest::sha256(),
        )
        .unwrap();
        Csr::from_der(&der).unwrap()
    }

    fn usage(ds: bool, ke: bool) -> KeyUsage {
        let mut u = KeyUsage::new();
        if ds {
            u.digital_signature();
        }
        if ke {
            u.key_encipherment();
        }
        u
    }

    #[test]
    fn reads_the_requested_key_usage() {
        assert_eq!(requested_key_usage(&csr(None)), None);
        assert_eq!(
            requested_key_usage(&csr(Some(usage(true, false)))),
            Some((true, false))
        );
        assert_eq!(
            requested_key_usage(&csr(Some(usage(false, true)))),
            Some((false, true))
        );
        assert_eq!(
            requested_key_usage(&csr(Some(usage(true, true)))),
            Some((true, true))
        );
    }
}
