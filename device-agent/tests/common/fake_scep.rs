//! An in-process SCEP server behind the `ScepTransport` trait, built on the `scep` crate's
//! responder: PENDING for the first N requests of a transaction, 503 on demand, an optional
//! RA, and a record of every request body and every decrypted messageData.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use device_agent::error::Result;
use device_agent::{ScepRequest, ScepResponse, ScepTransport};
use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::x509::extension::{BasicConstraints, KeyUsage};
use openssl::x509::{X509, X509Name};
use scep::cms::enveloped::DecryptionKey;
use scep::cms::signed::SignerIdentity;
use scep::http::CaCertificates;
use scep::server::{DecodedRequest, Responder};
use scep::{AlgorithmPolicy, Nonce, RequestBody};

pub struct Identity {
    pub cert: X509,
    pub key: PKey<Private>,
}

pub fn identity(cn: &str, issuer: Option<&Identity>, ca: bool) -> Identity {
    let key = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
    let mut n = X509Name::builder().unwrap();
    n.append_entry_by_text("CN", cn).unwrap();
    let name = n.build();
    let mut b = X509::builder().unwrap();
    b.set_version(2).unwrap();
    let mut serial = BigNum::new().unwrap();
    serial.rand(64, MsbOption::MAYBE_ZERO, false).unwrap();
    b.set_serial_number(&serial.to_asn1_integer().unwrap())
        .unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(issuer.map_or(&*name, |i| i.cert.subject_name()))
        .unwrap();
    b.set_pubkey(&key).unwrap();
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::days_from_now(365).unwrap())
        .unwrap();
    if ca {
        b.append_extension(BasicConstraints::new().critical().ca().build().unwrap())
            .unwrap();
        b.append_extension(
            KeyUsage::new()
                .critical()
                .key_cert_sign()
                .digital_signature()
                .build()
                .unwrap(),
        )
        .unwrap();
    } else {
        b.append_extension(
            KeyUsage::new()
                .critical()
                .digital_signature()
                .key_encipherment()
                .build()
                .unwrap(),
        )
        .unwrap();
    }
    b.sign(issuer.map_or(&key, |i| &i.key), MessageDigest::sha256())
        .unwrap();
    Identity {
        cert: b.build(),
        key,
    }
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
        let mut b = X509::builder().unwrap();
        b.set_version(2).unwrap();
        let mut serial = BigNum::new().unwrap();
        serial.rand(120, MsbOption::MAYBE_ZERO, false).unwrap();
        b.set_serial_number(&serial.to_asn1_integer().unwrap())
            .unwrap();
        b.set_subject_name(&csr.subject_name().unwrap()).unwrap();
        b.set_issuer_name(self.ca.cert.subject_name()).unwrap();
        b.set_pubkey(&csr.public_key().unwrap()).unwrap();
        b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
            .unwrap();
        b.set_not_after(&Asn1Time::days_from_now(self.issued_days).unwrap())
            .unwrap();
        b.sign(&self.ca.key, MessageDigest::sha256()).unwrap();
        b.build()
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
