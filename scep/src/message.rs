//! The pkiMessage (RFC 8894 §3.2) as both sides read it, and the request bodies (§3.3).
//!
//! ```text
//! pkiMessage = SignedData {
//!   encapContentInfo: id-data, eContent = pkcsPKIEnvelope (EnvelopedData of messageData),
//!   signerInfo.signedAttrs = { transactionID, messageType, senderNonce,
//!                              [pkiStatus, failInfo, failInfoText, recipientNonce] } }
//! ```

use openssl::x509::{X509, X509Ref};

use crate::asn1::{Asn1Error, parse_single, tag, writer};
use crate::attr::{
    AttributeStrings, LenientString, MessageType, PrintableAttribute, TransactionId,
};
use crate::cms::IssuerAndSerialNumber;
use crate::cms::signed::{SignedData, SignerInfo};
use crate::csr::Csr;
use crate::error::{DecodeError, Refusal};
use crate::limits::{MAX_MESSAGE_SIZE, MAX_NONCE_ECHO};
use crate::oid;

/// A decoded, not yet verified pkiMessage: the SignedData and its SCEP attributes.
#[derive(Debug)]
pub(crate) struct PkiMessage<'a> {
    pub(crate) signed: SignedData<'a>,
    /// Raw messageType text (bounded, printable); parsed by whoever handles it.
    pub(crate) message_type: String,
    pub(crate) transaction_id: TransactionId,
    /// senderNonce bytes as received (at most [`MAX_NONCE_ECHO`]).
    pub(crate) sender_nonce: Vec<u8>,
    pub(crate) recipient_nonce: Option<Vec<u8>>,
    pub(crate) pki_status: Option<String>,
    pub(crate) fail_info: Option<String>,
    pub(crate) fail_info_text: Option<String>,
    /// The PrintableString attributes that came as another string type (only under
    /// [`AttributeStrings::AlsoUtf8AndIa5`]).
    pub(crate) lenient: Vec<(PrintableAttribute, LenientString)>,
}

impl<'a> PkiMessage<'a> {
    /// Decode the outer SignedData and the SCEP attributes every pkiMessage carries, reading
    /// the PrintableString attributes as `strings` says.
    pub(crate) fn decode(der: &'a [u8], strings: AttributeStrings) -> Result<Self, DecodeError> {
        if der.len() > MAX_MESSAGE_SIZE {
            return Err(DecodeError::TooLarge);
        }
        let signed = SignedData::from_content_info(der)?;
        if signed.content_type != oid::DATA {
            return Err(DecodeError::Asn1(Asn1Error::new(
                "eContentType is not id-data",
            )));
        }
        let [si] = signed.signer_infos.as_slice() else {
            return Err(DecodeError::SignerInfoCount(signed.signer_infos.len()));
        };
        let mut lenient = Vec::new();
        let mut printable = |attr| printable(si, attr, strings, &mut lenient);
        let message_type = printable(PrintableAttribute::MessageType)?
            .ok_or(DecodeError::MissingAttribute("messageType"))?;
        let transaction_id = printable(PrintableAttribute::TransactionId)?
            .ok_or(DecodeError::MissingAttribute("transactionID"))?;
        let transaction_id = TransactionId::new(&transaction_id)
            .ok_or(DecodeError::InvalidAttribute("transactionID"))?;
        let sender_nonce = nonce(si, oid::SENDER_NONCE, "senderNonce")?
            .ok_or(DecodeError::MissingAttribute("senderNonce"))?;
        let recipient_nonce = nonce(si, oid::RECIPIENT_NONCE, "recipientNonce")?;
        let pki_status = printable(PrintableAttribute::PkiStatus)?;
        let fail_info = printable(PrintableAttribute::FailInfo)?;
        let fail_info_text = match si.attribute(oid::FAIL_INFO_TEXT, "failInfoText")? {
            Some(t) if t.tag == tag::UTF8_STRING && t.content.len() <= 1024 => {
                Some(String::from_utf8_lossy(t.content).into_owned())
            }
            Some(_) => return Err(DecodeError::InvalidAttribute("failInfoText")),
            None => None,
        };
        Ok(Self {
            message_type,
            transaction_id,
            sender_nonce,
            recipient_nonce,
            pki_status,
            fail_info,
            fail_info_text,
            lenient,
            signed,
        })
    }

    pub(crate) fn signer_info(&self) -> &SignerInfo<'a> {
        // `decode` guarantees exactly one signer.
        &self.signed.signer_infos[0]
    }

    /// The certificate named by the SignerInfo's sid, among the message's certificates and
    /// `extra` (e.g. the RA certificates a client already trusts).
    pub(crate) fn find_signer(&self, extra: &[X509]) -> Option<X509> {
        let sid = &self.signer_info().sid;
        let embedded = self.signed.parsed_certificates();
        sid.find(extra).or_else(|| sid.find(&embedded)).cloned()
    }

    /// The content (pkcsPKIEnvelope) bytes, if any.
    pub(crate) fn content(&self) -> &[u8] {
        self.signed.content.as_deref().unwrap_or_default()
    }
}

/// The SCEP signed attributes of a request (RFC 8894 §3.2.1): messageType, transactionID and
/// senderNonce, written as given (the testing builder sends values a client never would).
pub(crate) fn request_attributes(
    message_type: &str,
    transaction_id: &str,
    sender_nonce: &[u8],
) -> Vec<Vec<u8>> {
    use crate::cms::Attribute;
    vec![
        Attribute::encode(oid::MESSAGE_TYPE, &writer::printable_string(message_type)),
        Attribute::encode(
            oid::TRANSACTION_ID,
            &writer::printable_string(transaction_id),
        ),
        Attribute::encode(oid::SENDER_NONCE, &writer::octet_string(sender_nonce)),
    ]
}

/// A single-valued PrintableString attribute (RFC 8894 §3.2.1) of 1 to 128 PrintableString
/// characters. Under [`AttributeStrings::AlsoUtf8AndIa5`] a UTF8String or IA5String of the same
/// characters is accepted too and noted in `lenient`; any other type is refused.
fn printable(
    si: &SignerInfo<'_>,
    attr: PrintableAttribute,
    strings: AttributeStrings,
    lenient: &mut Vec<(PrintableAttribute, LenientString)>,
) -> Result<Option<String>, DecodeError> {
    let name = attr.name();
    let attr_oid = match attr {
        PrintableAttribute::MessageType => oid::MESSAGE_TYPE,
        PrintableAttribute::TransactionId => oid::TRANSACTION_ID,
        PrintableAttribute::PkiStatus => oid::PKI_STATUS,
        PrintableAttribute::FailInfo => oid::FAIL_INFO,
    };
    let Some(t) = si.attribute(attr_oid, name)? else {
        return Ok(None);
    };
    let other = match t.tag {
        tag::PRINTABLE_STRING => None,
        tag::UTF8_STRING => Some(LenientString::Utf8String),
        tag::IA5_STRING => Some(LenientString::Ia5String),
        _ => return Err(DecodeError::InvalidAttribute(name)),
    };
    let ok_len = !t.content.is_empty() && t.content.len() <= crate::attr::MAX_TRANSACTION_ID_LEN;
    if !ok_len
        || !t
            .content
            .iter()
            .all(|b| crate::attr::is_printable_string_char(*b))
    {
        return Err(DecodeError::InvalidAttribute(name));
    }
    if let Some(other) = other {
        if strings != AttributeStrings::AlsoUtf8AndIa5 {
            return Err(DecodeError::NotPrintableString(name));
        }
        lenient.push((attr, other));
    }
    Ok(Some(String::from_utf8_lossy(t.content).into_owned()))
}

fn nonce(
    si: &SignerInfo<'_>,
    oid: &[u8],
    name: &'static str,
) -> Result<Option<Vec<u8>>, DecodeError> {
    let Some(t) = si.attribute(oid, name)? else {
        return Ok(None);
    };
    if t.tag != tag::OCTET_STRING || t.content.len() > MAX_NONCE_ECHO {
        return Err(DecodeError::InvalidAttribute(name));
    }
    Ok(Some(t.content.to_vec()))
}

/// ```text
/// IssuerAndSubject ::= SEQUENCE {
///   issuer Name,
///   subject Name }
/// ```
/// The body of CertPoll (RFC 8894 §3.3.3): the issuer and the subject of the pending request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssuerAndSubject {
    /// DER of the issuer (CA) Name.
    pub issuer: Vec<u8>,
    /// DER of the requested subject Name.
    pub subject: Vec<u8>,
}

impl IssuerAndSubject {
    /// The poll body for a request with `subject` to a CA with certificate `ca`.
    pub fn new(
        ca: &X509Ref,
        subject: &openssl::x509::X509NameRef,
    ) -> Result<Self, openssl::error::ErrorStack> {
        Ok(Self {
            issuer: ca.subject_name().to_der()?,
            subject: subject.to_der()?,
        })
    }

    /// Decode from DER/BER.
    pub fn from_der(der: &[u8]) -> Result<Self, Asn1Error> {
        let mut r = parse_single(der)?
            .expect(tag::SEQUENCE, "expected IssuerAndSubject")?
            .children()?;
        let issuer = r
            .read(tag::SEQUENCE, "expected issuer")?
            .to_definite()?
            .into_owned();
        let subject = r
            .read(tag::SEQUENCE, "expected subject")?
            .to_definite()?
            .into_owned();
        r.finish("trailing data in IssuerAndSubject")?;
        Ok(Self { issuer, subject })
    }

    /// DER encoding.
    pub fn to_der(&self) -> Vec<u8> {
        writer::sequence(&[&self.issuer, &self.subject])
    }
}

/// What a request asks for, by messageType (RFC 8894 §3.3).
#[derive(Clone, Debug)]
pub enum RequestBody {
    /// PKCSReq (19): a PKCS#10 request (§3.3.1).
    PkcsReq(Csr),
    /// RenewalReq (17): a PKCS#10 request signed (outside) by the current certificate (§3.3.1.2).
    RenewalReq(Csr),
    /// CertPoll (20): is my pending request done? (§3.3.3).
    CertPoll(IssuerAndSubject),
    /// GetCert (21): a certificate by issuer and serial (§3.3.4).
    GetCert(IssuerAndSerialNumber),
    /// GetCRL (22): the CRL of the CA that issued this certificate (§3.3.4).
    GetCrl(IssuerAndSerialNumber),
}

impl RequestBody {
    /// The messageType this body travels with.
    pub fn message_type(&self) -> MessageType {
        match self {
            Self::PkcsReq(_) => MessageType::PkcsReq,
            Self::RenewalReq(_) => MessageType::RenewalReq,
            Self::CertPoll(_) => MessageType::CertPoll,
            Self::GetCert(_) => MessageType::GetCert,
            Self::GetCrl(_) => MessageType::GetCrl,
        }
    }

    /// The messageData DER that goes inside the pkcsPKIEnvelope.
    pub fn to_der(&self) -> Vec<u8> {
        match self {
            Self::PkcsReq(csr) | Self::RenewalReq(csr) => csr.to_der().to_vec(),
            Self::CertPoll(ias) => ias.to_der(),
            Self::GetCert(ias) | Self::GetCrl(ias) => ias.to_der(),
        }
    }

    /// Decode the messageData of a request of type `mt`. Failures here are under the
    /// envelope, so they are the uniform [`Refusal::Envelope`].
    pub(crate) fn decode(mt: MessageType, data: &[u8]) -> Result<Self, Refusal> {
        use crate::error::EnvelopeFault as F;
        let csr = |d: &[u8]| {
            Csr::from_der(d).map_err(|e| match e {
                crate::csr::CsrError::BadSignature => Refusal::Envelope(F::CsrSignature),
                crate::csr::CsrError::Malformed(w) => Refusal::Envelope(F::MalformedCsr(w)),
            })
        };
        let inner = |e: Asn1Error| Refusal::Envelope(F::InnerContent(e));
        match mt {
            MessageType::PkcsReq => csr(data).map(Self::PkcsReq),
            MessageType::RenewalReq => csr(data).map(Self::RenewalReq),
            MessageType::CertPoll => IssuerAndSubject::from_der(data)
                .map(Self::CertPoll)
                .map_err(inner),
            MessageType::GetCert => IssuerAndSerialNumber::from_der(data)
                .map(Self::GetCert)
                .map_err(inner),
            MessageType::GetCrl => IssuerAndSerialNumber::from_der(data)
                .map(Self::GetCrl)
                .map_err(inner),
            MessageType::CertRep => Err(Refusal::MessageTypeNotSupported("3".into())),
        }
    }
}
