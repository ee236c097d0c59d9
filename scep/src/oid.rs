//! Every object identifier `scep` reads or writes, as DER content octets, with its source.
//!
//! A test checks each constant against its dotted form.

/// `1.2.840.113549.1.7.1`: id-data (RFC 5652 §4).
pub const DATA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x01];
/// `1.2.840.113549.1.7.2`: id-signedData (RFC 5652 §5.1).
pub const SIGNED_DATA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02];
/// `1.2.840.113549.1.7.3`: id-envelopedData (RFC 5652 §6.1).
pub const ENVELOPED_DATA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x03];
/// `1.2.840.113549.1.9.3`: id-contentType (RFC 5652 §11.1).
pub const CONTENT_TYPE: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x03];
/// `1.2.840.113549.1.9.4`: id-messageDigest (RFC 5652 §11.2).
pub const MESSAGE_DIGEST: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x04];
/// `1.2.840.113549.1.9.5`: id-signingTime (RFC 5652 §11.3).
pub const SIGNING_TIME: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x05];
/// `1.2.840.113549.1.9.7`: challengePassword (RFC 2985 §5.4.1).
pub const CHALLENGE_PASSWORD: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x07];
/// `1.2.840.113549.1.9.14`: extensionRequest (RFC 2985 §5.4.2).
pub const EXTENSION_REQUEST: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x0e];
/// `2.16.840.1.113733.1.9.2`: id-messageType (RFC 8894 §3.2.1.2).
pub const MESSAGE_TYPE: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x86, 0xf8, 0x45, 0x01, 0x09, 0x02];
/// `2.16.840.1.113733.1.9.3`: id-pkiStatus (RFC 8894 §3.2.1.3).
pub const PKI_STATUS: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x86, 0xf8, 0x45, 0x01, 0x09, 0x03];
/// `2.16.840.1.113733.1.9.4`: id-failInfo (RFC 8894 §3.2.1.4).
pub const FAIL_INFO: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x86, 0xf8, 0x45, 0x01, 0x09, 0x04];
/// `2.16.840.1.113733.1.9.5`: id-senderNonce (RFC 8894 §3.2.1.5).
pub const SENDER_NONCE: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x86, 0xf8, 0x45, 0x01, 0x09, 0x05];
/// `2.16.840.1.113733.1.9.6`: id-recipientNonce (RFC 8894 §3.2.1.5).
pub const RECIPIENT_NONCE: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x86, 0xf8, 0x45, 0x01, 0x09, 0x06];
/// `2.16.840.1.113733.1.9.7`: id-transactionID (RFC 8894 §3.2.1.1).
pub const TRANSACTION_ID: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x86, 0xf8, 0x45, 0x01, 0x09, 0x07];
/// `1.3.6.1.5.5.7.24.1`: id-scep-failInfoText (RFC 8894 §3.2.1.4).
pub const FAIL_INFO_TEXT: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x18, 0x01];
/// `1.2.840.113549.1.1.1`: rsaEncryption (RFC 8017 Appendix C).
pub const RSA_ENCRYPTION: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
/// `1.2.840.113549.1.1.7`: id-RSAES-OAEP (RFC 8017).
pub const RSAES_OAEP: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x07];
/// `1.2.840.113549.1.1.4`: md5WithRSAEncryption (RFC 8017).
pub const MD5_WITH_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x04];
/// `1.2.840.113549.1.1.5`: sha1WithRSAEncryption (RFC 8017).
pub const SHA1_WITH_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x05];
/// `1.2.840.113549.1.1.11`: sha256WithRSAEncryption (RFC 8017).
pub const SHA256_WITH_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b];
/// `1.2.840.113549.1.1.12`: sha384WithRSAEncryption (RFC 8017).
pub const SHA384_WITH_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0c];
/// `1.2.840.113549.1.1.13`: sha512WithRSAEncryption (RFC 8017).
pub const SHA512_WITH_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0d];
/// `1.2.840.10045.4.3.2`: ecdsa-with-SHA256 (RFC 5758 §3.2).
pub const ECDSA_WITH_SHA256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02];
/// `1.2.840.10045.4.3.3`: ecdsa-with-SHA384 (RFC 5758 §3.2).
pub const ECDSA_WITH_SHA384: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03];
/// `1.2.840.10045.4.3.4`: ecdsa-with-SHA512 (RFC 5758 §3.2).
pub const ECDSA_WITH_SHA512: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x04];
/// `1.2.840.10045.2.1`: id-ecPublicKey (RFC 5480 §2.1.1).
pub const EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
/// `1.2.840.113549.2.5`: id-md5 (RFC 1321).
pub const MD5: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x02, 0x05];
/// `1.3.14.3.2.26`: id-sha1 (RFC 3370 §2.1).
pub const SHA1: &[u8] = &[0x2b, 0x0e, 0x03, 0x02, 0x1a];
/// `2.16.840.1.101.3.4.2.1`: id-sha256 (RFC 5754 §2).
pub const SHA256: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01];
/// `2.16.840.1.101.3.4.2.2`: id-sha384 (RFC 5754 §2).
pub const SHA384: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02];
/// `2.16.840.1.101.3.4.2.3`: id-sha512 (RFC 5754 §2).
pub const SHA512: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03];
/// `1.3.14.3.2.7`: desCBC (OIW).
pub const DES_CBC: &[u8] = &[0x2b, 0x0e, 0x03, 0x02, 0x07];
/// `1.2.840.113549.3.7`: des-ede3-cbc (RFC 3370 §5.1).
pub const DES_EDE3_CBC: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x03, 0x07];
/// `2.16.840.1.101.3.4.1.2`: id-aes128-CBC (RFC 3565 §4.1).
pub const AES128_CBC: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x02];
/// `2.16.840.1.101.3.4.1.22`: id-aes192-CBC (RFC 3565 §4.1).
pub const AES192_CBC: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x16];
/// `2.16.840.1.101.3.4.1.42`: id-aes256-CBC (RFC 3565 §4.1).
pub const AES256_CBC: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x2a];
/// `2.5.29.17`: id-ce-subjectAltName (RFC 5280 §4.2.1.6).
pub const SUBJECT_ALT_NAME: &[u8] = &[0x55, 0x1d, 0x11];

#[cfg(test)]
mod tests {
    #[test]
    fn constants_match_their_dotted_form() {
        let table: &[(&[u8], &str)] = &[
            (super::DATA, "1.2.840.113549.1.7.1"),
            (super::SIGNED_DATA, "1.2.840.113549.1.7.2"),
            (super::ENVELOPED_DATA, "1.2.840.113549.1.7.3"),
            (super::CONTENT_TYPE, "1.2.840.113549.1.9.3"),
            (super::MESSAGE_DIGEST, "1.2.840.113549.1.9.4"),
            (super::SIGNING_TIME, "1.2.840.113549.1.9.5"),
            (super::CHALLENGE_PASSWORD, "1.2.840.113549.1.9.7"),
            (super::EXTENSION_REQUEST, "1.2.840.113549.1.9.14"),
            (super::MESSAGE_TYPE, "2.16.840.1.113733.1.9.2"),
            (super::PKI_STATUS, "2.16.840.1.113733.1.9.3"),
            (super::FAIL_INFO, "2.16.840.1.113733.1.9.4"),
            (super::SENDER_NONCE, "2.16.840.1.113733.1.9.5"),
            (super::RECIPIENT_NONCE, "2.16.840.1.113733.1.9.6"),
            (super::TRANSACTION_ID, "2.16.840.1.113733.1.9.7"),
            (super::FAIL_INFO_TEXT, "1.3.6.1.5.5.7.24.1"),
            (super::RSA_ENCRYPTION, "1.2.840.113549.1.1.1"),
            (super::RSAES_OAEP, "1.2.840.113549.1.1.7"),
            (super::MD5_WITH_RSA, "1.2.840.113549.1.1.4"),
            (super::SHA1_WITH_RSA, "1.2.840.113549.1.1.5"),
            (super::SHA256_WITH_RSA, "1.2.840.113549.1.1.11"),
            (super::SHA384_WITH_RSA, "1.2.840.113549.1.1.12"),
            (super::SHA512_WITH_RSA, "1.2.840.113549.1.1.13"),
            (super::ECDSA_WITH_SHA256, "1.2.840.10045.4.3.2"),
            (super::ECDSA_WITH_SHA384, "1.2.840.10045.4.3.3"),
            (super::ECDSA_WITH_SHA512, "1.2.840.10045.4.3.4"),
            (super::EC_PUBLIC_KEY, "1.2.840.10045.2.1"),
            (super::MD5, "1.2.840.113549.2.5"),
            (super::SHA1, "1.3.14.3.2.26"),
            (super::SHA256, "2.16.840.1.101.3.4.2.1"),
            (super::SHA384, "2.16.840.1.101.3.4.2.2"),
            (super::SHA512, "2.16.840.1.101.3.4.2.3"),
            (super::DES_CBC, "1.3.14.3.2.7"),
            (super::DES_EDE3_CBC, "1.2.840.113549.3.7"),
            (super::AES128_CBC, "2.16.840.1.101.3.4.1.2"),
            (super::AES192_CBC, "2.16.840.1.101.3.4.1.22"),
            (super::AES256_CBC, "2.16.840.1.101.3.4.1.42"),
            (super::SUBJECT_ALT_NAME, "2.5.29.17"),
        ];
        for (bytes, dotted) in table {
            assert_eq!(crate::asn1::oid_to_string(bytes), *dotted);
        }
    }
}
