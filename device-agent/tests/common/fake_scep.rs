//! An in-process SCEP server behind the `ScepTransport` trait, built on the `scep` crate's
//! responder: PENDING for the first N requests of a transaction, 503 on demand, an optional
//! RA, and a record of every request body and every decrypted messageData.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use device_agent::error::Result;
use device_agent::{ScepRequest, ScepResponse, ScepTransport};
use openssl::hash::MessageDigest;
use openssl::x509::X509;
use scep::cms::enveloped::DecryptionKey;
use scep::cms::signed::SignerIdentity;
use scep::http::CaCertificates;
use scep::server::{DecodedRequest, Responder};
use scep::{AlgorithmPolicy, Nonce, RequestBody};
use testkit::pki::{CertSpec, Usage};

pub use testkit::pki::Identity;

/// A CA (`ca`) or a device-like certificate (digitalSignature, keyEncipherment), RSA 2048,
/// valid for a year.
pub fn identity(cn: &str, issuer: Option<&Identity>, ca: bool) -> Identity {
    Identity::new(cn, issuer, if ca { Usage::Ca } else { Usage::Leaf })
}

#[derive(Default)]
pub struct Log {
    pub bodies: Vec<Vec<u8>>,
    pub opened: Vec<Vec<u8>>,
    pub message_types: Vec<String>,
    pub transaction_ids: Vec<String>,
}

pub struct FakeScep {
    pub ca: Identity,
    /// Signs replies and receives envelopes when present (an NDES-like RA).
    pub ra: Option<Identity>,
    /// Extra certificates GetCACert returns first (e.g. a rogue RA).
    pub extra: Vec<X509>,
    /// Sign replies with this one instead (tests of reply trust).
    pub reply_signer: Option<Identity>,
    pub caps: String,
    /// PENDING answers per transaction before SUCCESS.
    pub pending: Mutex<u32>,
    /// HTTP 503 answers to PKIOperation before anything else.
    pub unavailable: Mutex<u32>,
    pub issued_days: u32,
    pub log: Mutex<Log>,
    seen: Mutex<HashMap<String, (u32, Vec<u8>)>>,
}

impl FakeScep {
    pub fn new(with_ra: bool) -> Self {
        let ca = identity("Fake SCEP CA", None, true);
        let ra = with_ra.then(|| identity("Fake SCEP RA", Some(&ca), false));
        Self {
            ca,
            ra,
            extra: Vec::new(),
            reply_signer: None,
            caps: "AES\nSHA-256\nSHA-512\nPOSTPKIOperation\nRenewal\nSCEPStandard\n".into(),
            pending: Mutex::new(0),
            unavailable: Mutex::new(0),
            issued_days: 30,
            log: Mutex::default(),
            seen: Mutex::default(),
        }
    }

    pub fn ca_sha256(&self) -> String {
        hex::encode(self.ca.cert.digest(MessageDigest::sha256()).unwrap())
    }

    fn operator(&self) -> &Identity {
        self.ra.as_ref().unwrap_or(&self.ca)
    }

    fn issue(&self, csr: &scep::csr::Csr) -> X509 {
        let now = foundation::clock::unix_now();
        let subject = csr.subject_name().unwrap();
        CertSpec {
            subject: &subject,
            issuer: Some((&self.ca.cert, &self.ca.key)),
            usage: None,
            serial: None,
            not_before: now,
            not_after: now + i64::from(self.issued_days) * 86_400,
        }
        .build_for(&csr.public_key().unwrap())
    }

    fn pki_operation(&self, der: &[u8]) -> Vec<u8> {
        let policy = AlgorithmPolicy::default();
        let decoded = DecodedRequest::decode(der).unwrap();
        let op = self.operator();
        let opened = decoded
            .verify(&policy)
            .unwrap()
            .open(
                &[DecryptionKey {
                    cert: &op.cert,
                    key: &op.key,
                }],
                &policy,
            )
            .unwrap();
        let signer = self.reply_signer.as_ref().unwrap_or(op);
        let responder = Responder {
            signer: SignerIdentity {
                cert: &signer.cert,
                key: &signer.key,
            },
            sender_nonce: Nonce::random().unwrap(),
            signing_time: None,
            no_envelope: Default::default(),
        };
        let tx = opened.reply.transaction_id.as_str().to_owned();
        {
            let mut log = self.log.lock().unwrap();
            log.opened.push(opened.body.to_der());
            log.message_types
                .push(opened.message_type.code().to_string());
            log.transaction_ids.push(tx.clone());
        }
        let csr_der = match &opened.body {
            RequestBody::PkcsReq(csr) | RequestBody::RenewalReq(csr) => {
                let mut seen = self.seen.lock().unwrap();
                let entry = seen.entry(tx.clone()).or_insert((0, csr.to_der().to_vec()));
                entry.1 = csr.to_der().to_vec();
                entry.1.clone()
            }
            RequestBody::CertPoll(_) => match self.seen.lock().unwrap().get(&tx) {
                Some((_, csr)) => csr.clone(),
                None => {
                    return opened
                        .reply
                        .failure(&responder, scep::FailInfo::BadCertId, None)
                        .unwrap();
                }
            },
            _ => panic!("unexpected request"),
        };
        {
            let mut seen = self.seen.lock().unwrap();
            let entry = seen.get_mut(&tx).unwrap();
            if entry.0 < *self.pending.lock().unwrap() {
                entry.0 += 1;
                return opened.reply.pending(&responder).unwrap();
            }
        }
        let csr = scep::csr::Csr::from_der(&csr_der).unwrap();
        let cert = self.issue(&csr);
        opened.reply.success(&responder, &[&cert], &[]).unwrap()
    }
}

#[async_trait]
impl ScepTransport for FakeScep {
    async fn send(&self, _url: &str, request: &ScepRequest) -> Result<ScepResponse> {
        let reply = |status, ct: &str, body| ScepResponse {
            status,
            content_type: ct.into(),
            retry_after: None,
            body,
        };
        Ok(match request {
            ScepRequest::GetCaCaps => reply(200, "text/plain", self.caps.clone().into_bytes()),
            ScepRequest::GetCaCert => {
                let mut certs = self.extra.clone();
                certs.extend(self.ra.as_ref().map(|r| r.cert.clone()));
                certs.push(self.ca.cert.clone());
                let (ct, body) = CaCertificates::new(certs).to_response().unwrap();
                reply(200, ct, body)
            }
            ScepRequest::PkiOperationPost(der) | ScepRequest::PkiOperationGet(der) => {
                self.log.lock().unwrap().bodies.push(der.clone());
                let mut unavailable = self.unavailable.lock().unwrap();
                if *unavailable > 0 {
                    *unavailable -= 1;
                    return Ok(ScepResponse {
                        status: 503,
                        content_type: "text/plain".into(),
                        retry_after: Some(0),
                        body: b"busy".to_vec(),
                    });
                }
                drop(unavailable);
                reply(200, "application/x-pki-message", self.pki_operation(der))
            }
        })
    }
}
