//! Extensions a greedy CSR asks for (reliability P8): AD CS escalation material that must never
//! reach a certificate. DER only (no OpenSSL here), so the CA's tests and the whole-lab tests
//! send the same bytes.

use crate::der::{oid, seq, tlv};

/// One requested extension: what it is, its OID, and its extnValue DER.
#[derive(Debug, Clone)]
pub struct RequestedExtension {
    pub what: &'static str,
    pub oid: &'static str,
    pub der: Vec<u8>,
}

/// Certificate Request Agent (ESC3: enrol on behalf of others).
pub const EKU_CERTIFICATE_REQUEST_AGENT: &str = "1.3.6.1.4.1.311.20.2.1";
/// Smart Card Logon (domain logon as whoever the certificate names).
pub const EKU_SMART_CARD_LOGON: &str = "1.3.6.1.4.1.311.20.2.2";
/// id-kp-codeSigning.
pub const EKU_CODE_SIGNING: &str = "1.3.6.1.5.5.7.3.3";
/// id-kp-serverAuth.
pub const EKU_SERVER_AUTH: &str = "1.3.6.1.5.5.7.3.1";

/// The non-EKU extensions of P8 the policy module does not look at, each with a value an
/// attacker would pick: NameConstraints permitting a domain, Application Policies
/// (1.3.6.1.4.1.311.21.10, honoured over EKU on schema-v1 templates: ESC15 / CVE-2024-49019)
/// naming Certificate Request Agent and Client Authentication, a v2 certificate-template
/// extension (1.3.6.1.4.1.311.21.7) naming another template, and the v1 template name
/// (1.3.6.1.4.1.311.20.2) "SubCA" as a BMPString.
pub fn non_eku_extensions() -> Vec<RequestedExtension> {
    let bmp = |s: &str| -> Vec<u8> { s.encode_utf16().flat_map(u16::to_be_bytes).collect() };
    vec![
        RequestedExtension {
            what: "NameConstraints permitting DNS evil.example",
            oid: "2.5.29.30",
            der: seq(&[tlv(0xA0, &seq(&[tlv(0x82, b"evil.example")]))]),
        },
        RequestedExtension {
            what: "Application Policies: Certificate Request Agent, Client Authentication",
            oid: "1.3.6.1.4.1.311.21.10",
            der: seq(&[
                seq(&[oid(EKU_CERTIFICATE_REQUEST_AGENT)]),
                seq(&[oid("1.3.6.1.5.5.7.3.2")]),
            ]),
        },
        RequestedExtension {
            what: "certificate template v2 naming another template",
            oid: "1.3.6.1.4.1.311.21.7",
            der: seq(&[
                oid("1.3.6.1.4.1.311.21.8.424242.1"),
                tlv(0x02, &[100]),
                tlv(0x02, &[4]),
            ]),
        },
        RequestedExtension {
            what: "certificate template v1 name SubCA",
            oid: "1.3.6.1.4.1.311.20.2",
            der: tlv(0x1E, &bmp("SubCA")),
        },
    ]
}

/// An ExtendedKeyUsage extnValue with the given EKU OIDs.
pub fn eku_extension(ekus: &[&str]) -> RequestedExtension {
    RequestedExtension {
        what: "ExtendedKeyUsage",
        oid: "2.5.29.37",
        der: seq(&ekus.iter().map(|e| oid(e)).collect::<Vec<_>>()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oids_encode_as_der() {
        // 1.3.6.1.4.1.311.20.2 = 2B 06 01 04 01 82 37 14 02
        assert_eq!(
            oid("1.3.6.1.4.1.311.20.2"),
            [0x06, 9, 0x2B, 6, 1, 4, 1, 0x82, 0x37, 0x14, 2]
        );
        assert_eq!(non_eku_extensions().len(), 4);
    }
}
