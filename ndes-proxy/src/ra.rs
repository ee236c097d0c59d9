//! The RA identity NDES answers with (RFC 8894 §2.2): a signing certificate (digitalSignature)
//! that signs CertReps, an encryption certificate (keyEncipherment) that requesters encrypt
//! to, and the CA chain; during a rollover the previous encryption key still opens envelopes
//! for a grace period. GetCACert and GetCACaps answers are computed once.

use std::fmt;

use openssl::pkey::{PKey, Private};
use openssl::x509::{X509, X509Ref};
use scep::caps::{Capabilities, Capability};
use scep::cms::enveloped::DecryptionKey;
use scep::cms::signed::SignerIdentity;
use scep::http::CaCertificates;

/// A certificate and its private key.
pub struct KeyPair {
    /// The certificate.
    pub cert: X509,
    /// Its private key.
    pub key: PKey<Private>,
}

impl fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyPair")
            .field("subject", &self.cert.subject_name())
            .finish_non_exhaustive()
    }
}

/// Why an RA identity is not usable.
#[derive(Debug, thiserror::Error)]
pub enum RaError {
    /// A key does not belong to its certificate.
    #[error("the {0} key does not match its certificate")]
    KeyMismatch(&'static str),
    /// The encryption certificate cannot receive RSA key transport.
    #[error("the encryption certificate must have an RSA key (SCEP key transport)")]
    NotRsa,
    /// OpenSSL failed.
    #[error("crypto: {0}")]
    Crypto(#[from] openssl::error::ErrorStack),
    /// The GetCACert answer could not be built.
    #[error("building GetCACert: {0}")]
    Build(#[from] scep::BuildError),
}

/// The RA identity plus the precomputed GetCACert / GetNextCACert answers.
#[derive(Debug)]
pub struct RaIdentity {
    signing: KeyPair,
    encryption: KeyPair,
    previous_encryption: Option<(KeyPair, i64)>,
    chain: Vec<X509>,
    ca_cert_response: (&'static str, Vec<u8>),
    next_ca_response: Option<Vec<u8>>,
}

impl RaIdentity {
    /// Build from the RA signing and encryption pairs (they may be the same certificate) and
    /// the CA chain (issuing CA first). Keys are checked against their certificates.
    pub fn new(signing: KeyPair, encryption: KeyPair, chain: Vec<X509>) -> Result<Self, RaError> {
        check_pair(&signing, "signing")?;
        check_pair(&encryption, "encryption")?;
        if encryption.key.id() != openssl::pkey::Id::RSA {
            return Err(RaError::NotRsa);
        }
        let mut certs = vec![signing.cert.clone()];
        if encryption.cert.to_der()? != signing.cert.to_der()? {
            certs.push(encryption.cert.clone());
        }
        certs.extend(chain.iter().cloned());
        let ca_cert_response = CaCertificates::new(certs).to_response()?;
        Ok(Self {
            signing,
            encryption,
            previous_encryption: None,
            chain,
            ca_cert_response,
            next_ca_response: None,
        })
    }

    /// Keep opening envelopes addressed to the previous encryption certificate until `until`
    /// (Unix seconds), for clients that fetched GetCACert before a rollover.
    pub fn with_previous_encryption(
        mut self,
        previous: KeyPair,
        until: i64,
    ) -> Result<Self, RaError> {
        check_pair(&previous, "previous encryption")?;
        self.previous_encryption = Some((previous, until));
        Ok(self)
    }

    /// Announce the next CA certificates (GetNextCACert, RFC 8894 §4.7): a certs-only payload
    /// signed by the current RA signing certificate.
    pub fn with_next_ca(mut self, next: &[X509]) -> Result<Self, RaError> {
        let refs: Vec<&X509Ref> = next.iter().map(|c| &**c).collect();
        let payload = scep::cms::signed::certs_only(&refs, &[])?;
        self.next_ca_response = Some(sign_next_ca(&payload, &self.signing)?);
        Ok(self)
    }

    /// The GetCACert answer: content type and body.
    pub fn ca_cert_response(&self) -> (&'static str, &[u8]) {
        (self.ca_cert_response.0, &self.ca_cert_response.1)
    }

    /// The GetNextCACert answer, when a rollover is configured.
    pub fn next_ca_response(&self) -> Option<&[u8]> {
        self.next_ca_response.as_deref()
    }

    /// The identity that signs CertReps.
    pub fn signer(&self) -> SignerIdentity<'_> {
        SignerIdentity {
            cert: &self.signing.cert,
            key: &self.signing.key,
        }
    }

    /// Keys that may open a request's envelope at time `now`.
    pub fn decryption_keys(&self, now: i64) -> Vec<DecryptionKey<'_>> {
        let mut keys = vec![DecryptionKey {
            cert: &self.encryption.cert,
            key: &self.encryption.key,
        }];
        if let Some((prev, until)) = &self.previous_encryption
            && now <= *until
        {
            keys.push(DecryptionKey {
                cert: &prev.cert,
                key: &prev.key,
            });
        }
        keys
    }

    /// Whether `spki_der` (a DER SubjectPublicKeyInfo) is the public key of an RA certificate
    /// (current or previous) or of a CA in the chain: a request for a certificate on one of
    /// those keys is someone replaying the infrastructure's own identity (reliability P10).
    pub fn holds_public_key(&self, spki_der: &[u8]) -> bool {
        let ours = [&self.signing.cert, &self.encryption.cert]
            .into_iter()
            .chain(self.previous_encryption.as_ref().map(|(p, _)| &p.cert))
            .chain(self.chain.iter());
        ours.into_iter().any(|c| {
            c.public_key()
                .and_then(|k| k.public_key_to_der())
                .is_ok_and(|der| der == spki_der)
        })
    }

    /// The CA chain, issuing CA first.
    pub fn chain(&self) -> &[X509] {
        &self.chain
    }

    /// The capabilities this server advertises: exactly what it can do both ways (docs/decisions.md
    /// #6). DES3 and SHA-1 only when the algorithm policy accepts them.
    pub fn capabilities(&self, policy: &scep::AlgorithmPolicy) -> Capabilities {
        let mut caps = vec![
            Capability::Aes,
            Capability::PostPkiOperation,
            Capability::Renewal,
            Capability::Sha256,
            Capability::Sha512,
            Capability::ScepStandard,
        ];
        if policy.allow_3des {
            caps.push(Capability::Des3);
        }
        if policy.allow_sha1 {
            caps.push(Capability::Sha1);
        }
        if self.next_ca_response.is_some() {
            caps.push(Capability::GetNextCaCert);
        }
        Capabilities::new(caps)
    }
}

fn check_pair(pair: &KeyPair, what: &'static str) -> Result<(), RaError> {
    if pair.cert.public_key()?.public_eq(&pair.key) {
        Ok(())
    } else {
        Err(RaError::KeyMismatch(what))
    }
}

/// GetNextCACert: "a degenerate certificates-only CMS SignedData ... signed by the current CA
/// (or RA)" (RFC 8894 §4.7.1). The certs-only payload is the signed content.
fn sign_next_ca(payload: &[u8], signer: &KeyPair) -> Result<Vec<u8>, RaError> {
    use openssl::pkcs7::{Pkcs7, Pkcs7Flags};
    let certs = openssl::stack::Stack::new()?;
    let p7 = Pkcs7::sign(
        &signer.cert,
        &signer.key,
        &certs,
        payload,
        Pkcs7Flags::BINARY | Pkcs7Flags::NOSMIMECAP,
    )?;
    Ok(p7.to_der()?)
}
