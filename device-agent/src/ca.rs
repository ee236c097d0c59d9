//! Discovery: GetCACaps (pick the strongest common algorithms), GetCACert (pin the CA by the
//! profile's thumbprint), and which certificates to encrypt to and to trust for replies.
//!
//! With a pin, a certificate from GetCACert is trusted only if it is the pinned one or is
//! signed, directly or through other certificates of the same answer, by it: an RA that the
//! pinned CA did not issue cannot read the request nor sign a reply we accept.

use openssl::hash::MessageDigest;
use openssl::x509::X509;
use scep::caps::{Capabilities, Capability};
use scep::client::RequestOptions;
use scep::http::CaCertificates;

use crate::error::{Error, Result};
use crate::transport::{ScepRequest, ScepResponse, ScepTransport};

/// A CA thumbprint as profiles carry it: hex SHA-1 (40) or SHA-256 (64), any case, optional
/// colons.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Thumbprint(Vec<u8>);

impl Thumbprint {
    /// Parse hex; anything but 20 or 32 bytes is refused.
    pub fn parse(text: &str) -> Result<Self> {
        let clean: String = text.chars().filter(|c| *c != ':').collect();
        let bytes = hex::decode(clean.trim())
            .map_err(|_| Error::Invalid("CA thumbprint is not hex".into()))?;
        if bytes.len() != 20 && bytes.len() != 32 {
            return Err(Error::Invalid(
                "CA thumbprint: SHA-1 (40 hex) or SHA-256 (64 hex)".into(),
            ));
        }
        Ok(Self(bytes))
    }

    /// Whether `cert` has this thumbprint.
    pub fn matches(&self, cert: &X509) -> bool {
        let md = if self.0.len() == 20 {
            MessageDigest::sha1()
        } else {
            MessageDigest::sha256()
        };
        cert.digest(md).is_ok_and(|d| *d == *self.0)
    }

    /// Lowercase hex.
    pub fn to_hex(&self) -> String {
        hex::encode(&self.0)
    }
}

/// What discovery learned about the server.
#[derive(Clone, Debug)]
pub struct CaInfo {
    /// GetCACaps.
    pub caps: Capabilities,
    /// Every certificate GetCACert returned, in answer order.
    pub certs: Vec<X509>,
    /// The certificate the pkcsPKIEnvelope is sealed to.
    pub recipient: X509,
    /// Certificates allowed to sign CertReps.
    pub reply_signers: Vec<X509>,
    /// The CA that issues (CertPoll's issuer; the pinned one when pinned).
    pub issuer: X509,
    /// Digest and cipher for requests.
    pub options: RequestOptions,
}

impl CaInfo {
    /// Whether PKIOperation may be sent by POST.
    pub fn post(&self) -> bool {
        self.caps.has(Capability::PostPkiOperation)
    }

    /// The CA certificates to store with an issued certificate (its chain).
    pub fn chain(&self) -> impl Iterator<Item = &X509> {
        self.certs.iter().filter(|c| {
            c.key_usage()
                .is_some_and(|k| k.contains(openssl::x509::X509KeyUsage::KEY_CERT_SIGN))
                || self.certs.len() == 1
        })
    }
}

/// GetCACaps then GetCACert against `url`, pinned to `pin` when given.
pub async fn discover(
    transport: &dyn ScepTransport,
    url: &str,
    pin: Option<&Thumbprint>,
) -> Result<CaInfo> {
    let caps_resp = ok(
        transport.send(url, &ScepRequest::GetCaCaps).await?,
        "GetCACaps",
    )?;
    let caps = Capabilities::parse(&String::from_utf8_lossy(&caps_resp.body));
    let digest = caps
        .strongest_digest()
        .ok_or(Error::NoCommonAlgorithm("GetCACaps offers no SHA digest"))?;
    let cipher = caps.strongest_cipher().ok_or(Error::NoCommonAlgorithm(
        "GetCACaps offers neither AES nor DES3",
    ))?;
    let cert_resp = ok(
        transport.send(url, &ScepRequest::GetCaCert).await?,
        "GetCACert",
    )?;
    let answer = CaCertificates::from_response(&cert_resp.content_type, &cert_resp.body)
        .map_err(|e| Error::Protocol(format!("GetCACert: {e}")))?;
    let trusted = match pin {
        Some(p) => pinned_subset(answer.all(), p)?,
        None => {
            tracing::debug!("no CA thumbprint given: trusting the CA certificates the server sent");
            answer.all().to_vec()
        }
    };
    let trusted_set = CaCertificates::new(trusted.clone());
    let recipient = trusted_set
        .encryption_recipient()
        .cloned()
        .ok_or(Error::Protocol(
            "GetCACert: no encryption certificate".into(),
        ))?;
    let issuer = match pin {
        Some(p) => trusted.iter().find(|c| p.matches(c)).cloned(),
        None => trusted_set.cas().next().cloned(),
    }
    .unwrap_or_else(|| recipient.clone());
    Ok(CaInfo {
        caps,
        reply_signers: trusted_set.reply_signers(),
        certs: trusted,
        recipient,
        issuer,
        options: RequestOptions {
            digest,
            cipher,
            signing_time: None,
        },
    })
}

/// The pinned certificate and every certificate of `all` that chains to it within `all`.
fn pinned_subset(all: &[X509], pin: &Thumbprint) -> Result<Vec<X509>> {
    let root = all
        .iter()
        .find(|c| pin.matches(c))
        .ok_or(Error::CaNotPinned)?;
    let mut trusted = vec![root.clone()];
    let mut grew = true;
    while grew {
        grew = false;
        for cert in all {
            if trusted.iter().any(|t| same(t, cert)) {
                continue;
            }
            let issued_by_trusted = trusted.iter().any(|t| {
                t.issued(cert) == openssl::x509::X509VerifyResult::OK
                    && t.public_key()
                        .is_ok_and(|k| cert.verify(&k).unwrap_or(false))
            });
            if issued_by_trusted {
                trusted.push(cert.clone());
                grew = true;
            }
        }
    }
    // Keep answer order (RA first), which encryption_recipient relies on.
    Ok(all
        .iter()
        .filter(|c| trusted.iter().any(|t| same(t, c)))
        .cloned()
        .collect())
}

fn same(a: &X509, b: &X509) -> bool {
    matches!((a.to_der(), b.to_der()), (Ok(x), Ok(y)) if x == y)
}

/// A 200 answer, or the status as an error.
pub(crate) fn ok(resp: ScepResponse, operation: &'static str) -> Result<ScepResponse> {
    if resp.status == 200 {
        Ok(resp)
    } else {
        Err(Error::Http {
            operation,
            status: resp.status,
            retry_after: resp.retry_after,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn thumbprints_accept_sha1_sha256_and_colons_only() {
        assert!(Thumbprint::parse(&"ab".repeat(20)).is_ok());
        let colons = format!("{}AB", "AB:".repeat(31));
        assert_eq!(
            Thumbprint::parse(&colons).unwrap().to_hex(),
            "ab".repeat(32)
        );
        assert!(Thumbprint::parse(&"ab".repeat(16)).is_err());
        assert!(Thumbprint::parse("zz").is_err());
    }
}
