//! SCEP (RFC 8894) messages as types, for both sides: bytes in, bytes out.
//!
//! No sockets, no async runtime, no clock, no files: times, nonces and keys are arguments.
//! OpenSSL does the arithmetic (digests, RSA, ciphers); the ASN.1 structure is decoded here by
//! a bounded BER/DER reader, because the `openssl` crate has no API for CMS signed attributes,
//! where SCEP lives.
//!
//! | RFC 8894 | what | where |
//! |---|---|---|
//! | §3.2 | pkiMessage: SignedData around a pkcsPKIEnvelope | [`cms::signed`], [`cms::enveloped`] |
//! | §3.2.1 | signed attributes: transactionID, messageType, pkiStatus, failInfo, failInfoText, nonces | [`attr`] |
//! | §3.3.1 | PKCSReq, RenewalReq (PKCS#10 with challengePassword) | [`client`], [`server`], [`csr`] |
//! | §3.3.2 | CertRep SUCCESS / FAILURE / PENDING | [`server::ReplyContext`], [`client::open_cert_rep`] |
//! | §3.3.3 | CertPoll (IssuerAndSubject) | [`message::IssuerAndSubject`] |
//! | §3.3.4 | GetCert, GetCRL (IssuerAndSerialNumber) | [`cms::IssuerAndSerialNumber`] |
//! | §3.4 | degenerate certificates-only SignedData | [`cms::signed::certs_only`], [`cms::signed::CertsOnly`] |
//! | §3.5.2 | GetCACaps | [`caps`] |
//! | §4 | HTTP binding: operations, GET `message=`, content types, GetCACert | [`http`] |
//!
//! Not implemented: challengePassword-based envelope encryption (§3.1's password recipient
//! info; no client in the field uses it), AuthEnvelopedData and RSAES-OAEP key transport.
//!
//! Errors follow one contract (see [`error`]): [`DecodeError`] when no reply can be addressed
//! (HTTP 400), [`Refusal`] for a signed CertRep FAILURE, mapped to `failInfo` in one function;
//! everything under the envelope fails the same way, so it is no oracle.
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use openssl::{hash::MessageDigest, pkey::PKey, rsa::Rsa, x509::X509Name};
//! use scep::{client, server, csr, AlgorithmPolicy, Nonce, TransactionId, RequestBody};
//! use scep::cms::{enveloped::DecryptionKey, signed::SignerIdentity};
//!
//! // An RA (here: a self-signed stand-in) and a device key.
//! let ra_key = PKey::from_rsa(Rsa::generate(2048)?)?;
//! let mut n = X509Name::builder()?; n.append_entry_by_text("CN", "RA")?; let ra_name = n.build();
//! let ra = client::self_signed_certificate(&ra_key, &ra_name, 0, 4_000_000_000)?;
//! let key = PKey::from_rsa(Rsa::generate(2048)?)?;
//! let mut n = X509Name::builder()?; n.append_entry_by_text("CN", "device-1")?; let subject = n.build();
//!
//! // Device: CSR with the challenge, self-signed signer, PKCSReq sealed to the RA.
//! let challenge = csr::ChallengePassword::new("one-time-secret");
//! let csr_der = csr::build(&key, &subject, None, Some(&challenge), MessageDigest::sha256())?;
//! let signer_cert = client::self_signed_certificate(&key, &subject, 0, 4_000_000_000)?;
//! let tx = client::Transaction {
//!     transaction_id: TransactionId::from_public_key(&key.public_key_to_der()?)?,
//!     sender_nonce: Nonce::random()?,
//! };
//! let body = RequestBody::PkcsReq(csr::Csr::from_der(&csr_der)?);
//! let signer = SignerIdentity { cert: &signer_cert, key: &key };
//! let request = client::build_request(&body, signer, &[&ra], &tx, &Default::default())?;
//!
//! // Server: decode, verify, open, then answer (here with the signer cert as a stand-in).
//! let policy = AlgorithmPolicy::default();
//! let opened = server::DecodedRequest::decode(&request)?
//!     .verify(&policy)?
//!     .open(&[DecryptionKey { cert: &ra, key: &ra_key }], &policy)?;
//! let responder = server::Responder {
//!     signer: SignerIdentity { cert: &ra, key: &ra_key },
//!     sender_nonce: Nonce::random()?,
//!     signing_time: None,
//!     no_envelope: Default::default(),
//! };
//! let reply = opened.reply.success(&responder, &[&signer_cert], &[])?;
//!
//! // Device: verify against the RA, check nonce and transactionID, decrypt.
//! let rep = client::open_cert_rep(&reply, &tx, &[ra.clone()], DecryptionKey { cert: &signer_cert, key: &key }, &policy)?;
//! assert!(matches!(rep, client::CertRep::Success(c) if c.certificates.len() == 1));
//! # Ok(()) }
//! ```

#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod alg;
pub mod asn1;
pub mod attr;
pub mod caps;
pub mod client;
pub mod cms;
pub mod csr;
pub mod error;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod http;
pub mod limits;
pub mod message;
pub mod oid;
pub mod roca;
pub mod server;
pub mod time;

pub use alg::{AlgorithmPolicy, ContentCipher, DigestAlgorithm};
pub use attr::{
    AttributeStrings, FailInfo, LenientString, MessageType, Nonce, PkiStatus, PrintableAttribute,
    TransactionId,
};
pub use error::{BuildError, DecodeError, Refusal, ReplyError};
pub use message::{IssuerAndSubject, RequestBody};
