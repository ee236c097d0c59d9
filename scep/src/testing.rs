//! Builders for messages a correct client never sends: wrong messageTypes, odd nonces, no
//! signer certificate, arbitrary content. For conformance tests, fuzz seeds and the error
//! contract of servers built on this crate; not part of the stable API.

use crate::alg::DigestAlgorithm;
use crate::asn1::writer;
use crate::cms::Attribute;
use crate::cms::signed::{SignerIdentity, sign};
use crate::error::BuildError;
use crate::oid;

/// A pkiMessage with every SCEP attribute under the caller's control.
#[derive(Clone, Debug)]
pub struct RawRequest<'a> {
    /// messageType text, written as a PrintableString as is.
    pub message_type: &'a str,
    /// transactionID text, written as a PrintableString as is.
    pub transaction_id: &'a str,
    /// senderNonce bytes, any length.
    pub sender_nonce: &'a [u8],
    /// eContent (normally an EnvelopedData), or none.
    pub content: Option<&'a [u8]>,
    /// Whether the signer's certificate goes into the certificates field.
    pub include_signer_cert: bool,
    /// Digest of the signature.
    pub digest: DigestAlgorithm,
}

/// Sign a [`RawRequest`].
pub fn build(raw: &RawRequest<'_>, signer: SignerIdentity<'_>) -> Result<Vec<u8>, BuildError> {
    let attrs = vec![
        Attribute::encode(
            oid::MESSAGE_TYPE,
            &writer::printable_string(raw.message_type),
        ),
        Attribute::encode(
            oid::TRANSACTION_ID,
            &writer::printable_string(raw.transaction_id),
        ),
        Attribute::encode(oid::SENDER_NONCE, &writer::octet_string(raw.sender_nonce)),
    ];
    let certs = if raw.include_signer_cert {
        vec![signer.cert]
    } else {
        vec![]
    };
    sign(raw.content, signer, raw.digest, attrs, &certs, None)
}
