//! RFC 6960 OCSP: request decoding and response signing. Statuses are looked up by the caller
//! (`ca.rs`); this module only knows which CertIDs name the issuing CA and how to sign.

use der::asn1::{BitString, GeneralizedTime, ObjectIdentifier, OctetString};
use der::{Decode, Encode};
use openssl::hash::{MessageDigest, hash};
use x509_cert::ext::Extension;
use x509_cert::ext::pkix::CrlReason;
use x509_ocsp::{
    BasicOcspResponse, CertId, CertStatus, OcspGeneralizedTime, OcspRequest, OcspResponse,
    ResponderId, ResponseData, RevokedInfo, SingleResponse, Version,
};

use crate::error::CaError;
use crate::hierarchy::CaMaterial;
use crate::store::RevocationReason;
use foundation::Serial;

/// Largest OCSP request accepted (a request for 10 certificates with a nonce is well under 1 KiB).
pub(crate) const MAX_REQUEST_LEN: usize = 8 * 1024;
/// Most CertIDs answered in one request.
const MAX_ITEMS: usize = 16;
const OID_NONCE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.2");

/// A decoded request: each CertID with the serial it names if it names our issuing CA.
pub(crate) struct Request {
    pub(crate) items: Vec<(CertId, Option<Serial>)>,
    nonce: Option<Extension>,
}

/// What the responder says about one certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    Good,
    Revoked { at: i64, reason: RevocationReason },
    Unknown,
}

fn digest_for(oid: &ObjectIdentifier) -> Option<MessageDigest> {
    match oid.to_string().as_str() {
        "1.3.14.3.2.26" => Some(MessageDigest::sha1()),
        "2.16.840.1.101.3.4.2.1" => Some(MessageDigest::sha256()),
        "2.16.840.1.101.3.4.2.2" => Some(MessageDigest::sha384()),
        "2.16.840.1.101.3.4.2.3" => Some(MessageDigest::sha512()),
        _ => None,
    }
}

/// True when the CertID's issuer hashes match our issuing CA under the CertID's hash.
fn names_our_issuer(ca: &CaMaterial, id: &CertId) -> bool {
    let Some(md) = digest_for(&id.hash_algorithm.oid) else {
        return false;
    };
    let (Ok(name), Ok(key)) = (hash(md, &ca.issuer_name_der), hash(md, &ca.issuer_key_bits)) else {
        return false;
    };
    // Public hashes of public data: a plain comparison (secrets are compared in the foundation).
    *name == *id.issuer_name_hash.as_bytes() && *key == *id.issuer_key_hash.as_bytes()
}

/// Decodes a DER OCSP request. `None` means malformed (answered with malformedRequest).
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) fn parse_request(ca: &CaMaterial, der: &[u8]) -> Option<Request> {
    parse_request_among(&[ca], der).map(|(_, r)| r)
}

/// [`parse_request`] for several issuing CAs (the current one and those a rollover retired):
/// the index of the one that signs the answer (the first a CertID names, else the first) and
/// the request, whose serials are set for the CertIDs naming that CA (the others: unknown).
pub(crate) fn parse_request_among(cas: &[&CaMaterial], der: &[u8]) -> Option<(usize, Request)> {
    if der.is_empty() || der.len() > MAX_REQUEST_LEN {
        return None;
    }
    let req = OcspRequest::from_der(der).ok()?;
    let list = &req.tbs_request.request_list;
    if list.is_empty() || list.len() > MAX_ITEMS {
        return None;
    }
    let signer = list
        .iter()
        .find_map(|r| cas.iter().position(|ca| names_our_issuer(ca, &r.req_cert)))
        .unwrap_or(0);
    let ca = cas.get(signer)?;
    let items = list
        .iter()
        .map(|r| {
            let id = r.req_cert.clone();
            let serial = if names_our_issuer(ca, &id) {
                Serial::from_der_int(id.serial_number.as_bytes()).ok()
            } else {
                None
            };
            (id, serial)
        })
        .collect();
    let nonce = req
        .tbs_request
        .request_extensions
        .iter()
        .flatten()
        .find(|e| e.extn_id == OID_NONCE)
        .cloned();
    Some((signer, Request { items, nonce }))
}

fn gtime(unix: i64) -> Result<OcspGeneralizedTime, CaError> {
    let secs = u64::try_from(unix).map_err(|_| CaError::Crypto("time before 1970".into()))?;
    GeneralizedTime::from_unix_duration(std::time::Duration::from_secs(secs))
        .map(OcspGeneralizedTime)
        .map_err(CaError::crypto)
}

fn crl_reason(r: RevocationReason) -> CrlReason {
    match r {
        RevocationReason::Unspecified => CrlReason::Unspecified,
        RevocationReason::KeyCompromise => CrlReason::KeyCompromise,
        RevocationReason::CaCompromise => CrlReason::CaCompromise,
        RevocationReason::AffiliationChanged => CrlReason::AffiliationChanged,
        RevocationReason::Superseded => CrlReason::Superseded,
        RevocationReason::CessationOfOperation => CrlReason::CessationOfOperation,
        RevocationReason::CertificateHold => CrlReason::CertificateHold,
        RevocationReason::PrivilegeWithdrawn => CrlReason::PrivilegeWithdrawn,
    }
}

/// Signs a successful response with the issuing CA key (the CA is its own responder, so clients
/// need no delegated responder certificate). The request's nonce is echoed.
pub(crate) fn sign_response(
    ca: &CaMaterial,
    request: &Request,
    statuses: &[Status],
    now: i64,
    validity: i64,
) -> Result<Vec<u8>, CaError> {
    let mut responses = Vec::with_capacity(statuses.len());
    for ((id, _), status) in request.items.iter().zip(statuses) {
        let cert_status = match status {
            Status::Good => CertStatus::good(),
            Status::Unknown => CertStatus::unknown(),
            Status::Revoked { at, reason } => CertStatus::revoked(RevokedInfo {
                revocation_time: gtime(*at)?,
                revocation_reason: Some(crl_reason(*reason)),
            }),
        };
        responses.push(SingleResponse {
            cert_id: id.clone(),
            cert_status,
            this_update: gtime(now)?,
            next_update: Some(gtime(now + validity)?),
            single_extensions: None,
        });
    }
    let key_hash = hash(MessageDigest::sha1(), &ca.issuer_key_bits).map_err(CaError::crypto)?;
    let tbs = ResponseData {
        version: Version::V1,
        responder_id: ResponderId::ByKey(
            OctetString::new(key_hash.to_vec()).map_err(CaError::crypto)?,
        ),
        produced_at: gtime(now)?,
        responses,
        response_extensions: request.nonce.clone().map(|n| vec![n]),
    };
    let signature = ca
        .signing
        .sign(&ca.key, &tbs.to_der().map_err(CaError::crypto)?)?;
    let basic = BasicOcspResponse {
        tbs_response_data: tbs,
        signature_algorithm: ca.signing.algorithm_identifier(),
        signature: BitString::from_bytes(&signature).map_err(CaError::crypto)?,
        certs: None,
    };
    OcspResponse::successful(basic)
        .map_err(CaError::crypto)?
        .to_der()
        .map_err(CaError::crypto)
}

/// The unsigned malformedRequest response.
pub(crate) fn malformed() -> Vec<u8> {
    OcspResponse::malformed_request()
        .to_der()
        .unwrap_or_default()
}

/// The unsigned internalError response.
pub(crate) fn internal_error() -> Vec<u8> {
    OcspResponse::internal_error().to_der().unwrap_or_default()
}
