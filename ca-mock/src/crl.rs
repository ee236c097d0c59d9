//! The issuing CA's CRL: built from the store's revoked entries with a streaming-friendly,
//! allocation-light encoder, signed with OpenSSL, and written to disk atomically.
//!
//! The authority key identifier is the issuing CA's own SKI, so `openssl verify -crl_check`
//! matches the CRL to the CA (rcgen's default key-id method would not; see ecosystem.md 2.4).

use std::io::Write;
use std::path::Path;

use der::asn1::{BitString, GeneralizedTime, OctetString, UtcTime};
use der::{Encode, Header, Length, Tag};
use x509_cert::ext::pkix::AuthorityKeyIdentifier;
use x509_cert::time::Time;

use crate::error::CaError;
use crate::hierarchy::CaMaterial;
use crate::store::{RevocationReason, RevokedEntry};
use foundation::Serial;

/// X.509 Time for a unix second: UTCTime through 2049, GeneralizedTime after (RFC 5280 4.1.2.5).
pub(crate) fn x509_time(unix: i64) -> Result<Time, CaError> {
    let secs = u64::try_from(unix).map_err(|_| CaError::Crypto("time before 1970".into()))?;
    let d = std::time::Duration::from_secs(secs);
    if unix < 2_524_608_000 {
        Ok(Time::UtcTime(
            UtcTime::from_unix_duration(d).map_err(CaError::crypto)?,
        ))
    } else {
        Ok(Time::GeneralTime(
            GeneralizedTime::from_unix_duration(d).map_err(CaError::crypto)?,
        ))
    }
}

/// Appends a TLV with `tag` around `content`.
fn tlv(out: &mut Vec<u8>, tag: Tag, content: &[u8]) -> Result<(), CaError> {
    let len = Length::try_from(content.len()).map_err(CaError::crypto)?;
    Header::new(tag, len)
        .map_err(CaError::crypto)?
        .encode_to_vec(out)
        .map_err(CaError::crypto)?;
    out.extend_from_slice(content);
    Ok(())
}

/// One Extension SEQUENCE.
fn extension(out: &mut Vec<u8>, oid: &[u8], value: &[u8]) -> Result<(), CaError> {
    let mut body = oid.to_vec();
    tlv(&mut body, Tag::OctetString, value)?;
    tlv(out, Tag::Sequence, &body)
}

const OID_CRL_REASON: &[u8] = &[0x06, 0x03, 0x55, 0x1d, 0x15];
const OID_CRL_NUMBER: &[u8] = &[0x06, 0x03, 0x55, 0x1d, 0x14];
const OID_AKI: &[u8] = &[0x06, 0x03, 0x55, 0x1d, 0x23];

/// One revokedCertificates entry. RFC 5280 5.3.1: reason `unspecified` is left out.
fn revoked_entry(out: &mut Vec<u8>, e: &RevokedEntry) -> Result<(), CaError> {
    let serial = Serial::from_hex(&e.serial)?;
    let mut body = Vec::with_capacity(64);
    tlv(&mut body, Tag::Integer, &serial.to_der_int_bytes())?;
    x509_time(e.revoked_at)?
        .encode_to_vec(&mut body)
        .map_err(CaError::crypto)?;
    if e.reason != RevocationReason::Unspecified {
        let mut exts = Vec::with_capacity(16);
        extension(&mut exts, OID_CRL_REASON, &[0x0a, 0x01, e.reason.code()])?;
        tlv(&mut body, Tag::Sequence, &exts)?;
    }
    tlv(out, Tag::Sequence, &body)
}

fn integer_bytes(n: i64) -> Vec<u8> {
    let bytes = n.to_be_bytes();
    let start = bytes
        .iter()
        .position(|b| *b != 0)
        .unwrap_or(bytes.len() - 1);
    let mut v = bytes[start..].to_vec();
    if v.first().is_some_and(|b| b & 0x80 != 0) {
        v.insert(0, 0);
    }
    v
}

/// Builds and signs a v2 CRL with AKI and CRL number, listing `entries`.
pub(crate) fn build_crl(
    ca: &CaMaterial,
    entries: &[RevokedEntry],
    number: i64,
    this_update: i64,
    next_update: i64,
) -> Result<Vec<u8>, CaError> {
    let c = CaError::crypto;
    let alg = ca.signing.algorithm_identifier().to_der().map_err(c)?;
    let mut tbs = Vec::with_capacity(64 * entries.len() + 512);
    tlv(&mut tbs, Tag::Integer, &[1])?; // version v2
    tbs.extend_from_slice(&alg);
    tbs.extend_from_slice(&ca.issuer_name_der);
    x509_time(this_update)?.encode_to_vec(&mut tbs).map_err(c)?;
    x509_time(next_update)?.encode_to_vec(&mut tbs).map_err(c)?;
    if !entries.is_empty() {
        let mut list = Vec::with_capacity(64 * entries.len());
        for e in entries {
            revoked_entry(&mut list, e)?;
        }
        tlv(&mut tbs, Tag::Sequence, &list)?;
    }
    let aki = AuthorityKeyIdentifier {
        key_identifier: Some(OctetString::new(ca.ski.clone()).map_err(c)?),
        authority_cert_issuer: None,
        authority_cert_serial_number: None,
    };
    let mut exts = Vec::new();
    extension(&mut exts, OID_AKI, &aki.to_der().map_err(c)?)?;
    let mut num = Vec::new();
    tlv(&mut num, Tag::Integer, &integer_bytes(number))?;
    extension(&mut exts, OID_CRL_NUMBER, &num)?;
    let mut seq = Vec::new();
    tlv(&mut seq, Tag::Sequence, &exts)?;
    tlv(
        &mut tbs,
        Tag::ContextSpecific {
            constructed: true,
            number: der::TagNumber::N0,
        },
        &seq,
    )?;

    let mut tbs_seq = Vec::with_capacity(tbs.len() + 8);
    tlv(&mut tbs_seq, Tag::Sequence, &tbs)?;
    drop(tbs);
    let sig = ca.signing.sign(&ca.key, &tbs_seq)?;
    let sig = BitString::from_bytes(&sig)
        .map_err(c)?
        .to_der()
        .map_err(c)?;

    let mut body = tbs_seq;
    body.extend_from_slice(&alg);
    body.extend_from_slice(&sig);
    let mut out = Vec::with_capacity(body.len() + 8);
    tlv(&mut out, Tag::Sequence, &body)?;
    Ok(out)
}

/// Replaces `path` with `data` atomically: write a temporary file beside it, fsync, rename over
/// the old one, fsync the directory. A reader sees the old CRL or the new one, never a torn one.
pub fn write_atomically(path: &Path, data: &[u8]) -> Result<(), CaError> {
    let dir = parent_dir(path);
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("crl");
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(|e| CaError::io(path, e))
}

/// The directory a file is in: `.` for a bare file name (whose `parent()` is the empty path,
/// which cannot be opened to sync it: `ca-mock serve` run in its configuration's directory).
fn parent_dir(path: &Path) -> &Path {
    path.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or_else(|| Path::new("."))
}

#[cfg(test)]
mod parent_dir_tests {
    use super::*;

    #[test]
    fn a_bare_file_name_is_in_the_current_directory() {
        assert_eq!(parent_dir(Path::new("issuing.crl")), Path::new("."));
        assert_eq!(parent_dir(Path::new("ca/issuing.crl")), Path::new("ca"));
        assert_eq!(parent_dir(Path::new("/issuing.crl")), Path::new("/"));
        // The directory it names can be opened (and synced).
        assert!(std::fs::File::open(parent_dir(Path::new("issuing.crl"))).is_ok());
    }
}
