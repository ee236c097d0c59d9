//! The SCEP client flow (RFC 8894 §5): caps -> CA certificates (pinned) -> PKCSReq or
//! RenewalReq -> CertPoll while PENDING -> install.
//!
//! The transaction is written to the slot before the request leaves, so an agent restarted
//! while the server says PENDING polls the same transactionID with the same key.
//!
//! Key transport: a CertRep SUCCESS is sealed to the certificate that signed the request, and
//! SCEP's envelope only knows RSA key transport. An RSA device key signs its own request (a
//! self-signed certificate of it, RFC 8894 §2.3). An EC device key cannot receive that
//! envelope, so an EC request is signed by a transient RSA key with a self-signed certificate
//! of the same subject; the CSR itself is still self-signed by the EC key, which is what the
//! CA certifies. The transient key lives in the slot only while the request is in flight.

use openssl::hash::MessageDigest;
use openssl::x509::{X509, X509Name};
use scep::client::{CertRep, Transaction, build_request, open_cert_rep, self_signed_certificate};
use scep::cms::enveloped::DecryptionKey;
use scep::cms::signed::SignerIdentity;
use scep::csr::{ChallengePassword, Csr};
use scep::{AlgorithmPolicy, IssuerAndSubject, Nonce, RequestBody, TransactionId};
use serde::{Deserialize, Serialize};

use crate::ca::{CaInfo, Thumbprint, discover, ok};
use crate::csr::CsrSpec;
use crate::error::{Error, Result};
use crate::key::{DeviceKey, KeySpec};
use crate::retry::RetryPolicy;
use crate::state::Slot;
use crate::transport::{ScepRequest, ScepTransport};
use foundation::time::rfc3339;

/// What to enroll and renew with: everything but the challenge, which is a secret passed
/// per call and never stored. Saved as the slot's `config.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollConfig {
    /// SCEP URLs, tried in order.
    pub urls: Vec<String>,
    /// The CA thumbprint to pin (hex SHA-1 or SHA-256); `None` trusts what the server sends.
    #[serde(default)]
    pub ca_thumbprint: Option<String>,
    /// The CSR as the profile renders it.
    pub csr: CsrSpec,
    /// Key to generate (`rsa2048`, `ec256`, ...).
    pub key: String,
    /// Digest of the CSR signature (`sha256`, `sha384`, `sha512`; default sha256).
    #[serde(default)]
    pub csr_hash: Option<String>,
    /// PENDING polls (and 503 retries) per run.
    pub retry_count: u32,
    /// Seconds between polls.
    pub retry_delay_secs: u64,
    /// Renewal may start when this share of the lifetime remains.
    pub renewal_threshold_percent: u8,
}

impl EnrollConfig {
    /// Plain SCEP mode: one URL, a common name, RSA 2048, no pin unless given.
    pub fn plain(url: &str, common_name: &str) -> Self {
        Self {
            urls: vec![url.to_owned()],
            ca_thumbprint: None,
            csr: CsrSpec::common_name(common_name),
            key: KeySpec::Rsa(2048).to_string(),
            csr_hash: None,
            retry_count: 3,
            retry_delay_secs: 30,
            renewal_threshold_percent: 20,
        }
    }

    /// The key spec.
    pub fn key_spec(&self) -> Result<KeySpec> {
        self.key.parse()
    }

    /// The polling policy.
    pub fn retry(&self) -> RetryPolicy {
        RetryPolicy {
            attempts: self.retry_count,
            delay: std::time::Duration::from_secs(self.retry_delay_secs),
            ..RetryPolicy::default()
        }
    }

    fn pin(&self) -> Result<Option<Thumbprint>> {
        self.ca_thumbprint
            .as_deref()
            .map(Thumbprint::parse)
            .transpose()
    }

    fn csr_digest(&self) -> Result<MessageDigest> {
        match self
            .csr_hash
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("sha256") => Ok(MessageDigest::sha256()),
            Some("sha384") => Ok(MessageDigest::sha384()),
            Some("sha512") => Ok(MessageDigest::sha512()),
            Some(other) => Err(Error::Invalid(format!("CSR hash {other:?}"))),
        }
    }
}

/// An installed certificate, as reported to the MDM and printed by `status`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Enrolled {
    /// Serial number, in the workspace's one spelling (lowercase hex, whole octets).
    pub serial_hex: String,
    /// SHA-256 of the certificate DER, lowercase hex.
    pub thumbprint_sha256: String,
    /// Subject, one line.
    pub subject: String,
    /// Validity start, RFC 3339 UTC (docs/decisions.md #12).
    pub not_before: String,
    /// The same instant in unix seconds, for machines.
    pub not_before_unix: i64,
    /// Validity end, RFC 3339 UTC.
    pub not_after: String,
    /// The same instant in unix seconds, for machines.
    pub not_after_unix: i64,
    /// transactionID of the request that got it.
    pub transaction_id: String,
    /// CertPolls sent before SUCCESS.
    pub polls: u32,
}

impl Enrolled {
    /// Describe a certificate.
    pub fn describe(cert: &X509, transaction_id: &str, polls: u32) -> Result<Self> {
        let not_before = unix(cert.not_before())?;
        let not_after = unix(cert.not_after())?;
        Ok(Self {
            serial_hex: foundation::Serial::of_certificate(cert)
                .map_err(|_| Error::Invalid("certificate serial is not positive".into()))?
                .to_hex(),
            thumbprint_sha256: hex::encode(cert.digest(MessageDigest::sha256())?),
            subject: one_line(cert.subject_name()),
            not_before: rfc3339(not_before),
            not_before_unix: not_before,
            not_after: rfc3339(not_after),
            not_after_unix: not_after,
            transaction_id: transaction_id.to_owned(),
            polls,
        })
    }
}

/// Which key signs the in-flight request (and opens its reply).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum SignerKey {
    /// The new key itself (`next-key.pem`), RSA.
    NextKey,
    /// A transient RSA key (`transport-key.pem`), for an EC new key.
    TransportKey,
    /// The installed certificate and key (RenewalReq).
    Current,
}

/// The in-flight transaction (`transaction.json`): public values only.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct PendingTx {
    transaction_id: String,
    renewal: bool,
    url: String,
    subject_der_hex: String,
    signer: SignerKey,
    signer_cert_pem: String,
    polls: u32,
}

/// Enroll `slot`: resume its in-flight transaction if there is one, else generate a key (or
/// use `key`, e.g. from a key pool), send PKCSReq with `challenge`, poll while PENDING and
/// install the certificate. The private key never leaves this process: only the CSR (public
/// key, subject, extensions, challenge) and signatures go into the request.
pub async fn enroll(
    transport: &dyn ScepTransport,
    slot: &Slot,
    config: &EnrollConfig,
    challenge: Option<&ChallengePassword>,
    key: Option<DeviceKey>,
) -> Result<Enrolled> {
    slot.write_json("config.json", config)?;
    if slot.read_json::<PendingTx>("transaction.json")?.is_some() {
        return resume(transport, slot, config).await;
    }
    let key = match key {
        Some(k) => k,
        None => DeviceKey::generate(config.key_spec()?)?,
    };
    start(transport, slot, config, challenge, key, false).await
}

/// Poll the slot's in-flight transaction (after a restart, or a PENDING that outlived a run).
pub async fn resume(
    transport: &dyn ScepTransport,
    slot: &Slot,
    config: &EnrollConfig,
) -> Result<Enrolled> {
    let mut tx: PendingTx = slot
        .read_json("transaction.json")?
        .ok_or(Error::Missing("no transaction in flight"))?;
    let ca = discover(transport, &tx.url, config.pin()?.as_ref()).await?;
    let signer_cert =
        X509::from_pem(tx.signer_cert_pem.as_bytes()).map_err(|e| Error::state("signer", e))?;
    let signer_key = load_signer_key(slot, tx.signer)?;
    let new_key = slot
        .read_key("next-key.pem")?
        .ok_or(Error::State("next-key.pem missing".into()))?;
    let subject = hex::decode(&tx.subject_der_hex).map_err(|e| Error::state("transaction", e))?;
    let id = TransactionId::new(&tx.transaction_id).ok_or(Error::State("transaction id".into()))?;
    let url = tx.url.clone();
    let flight = Flight {
        transport,
        ca: &ca,
        url: &url,
        signer: SignerIdentity {
            cert: &signer_cert,
            key: signer_key.pkey(),
        },
        transaction_id: &id,
        retry: config.retry(),
    };
    let poll = RequestBody::CertPoll(IssuerAndSubject {
        issuer: ca.issuer.subject_name().to_der()?,
        subject,
    });
    let outcome = flight.poll_loop(&poll, slot, &mut tx).await;
    finish(slot, &ca, &new_key, &id, outcome, tx.polls)
}

/// Send a PKCSReq (or a RenewalReq signed by the installed certificate) for `key`.
pub(crate) async fn start(
    transport: &dyn ScepTransport,
    slot: &Slot,
    config: &EnrollConfig,
    challenge: Option<&ChallengePassword>,
    key: DeviceKey,
    renewal: bool,
) -> Result<Enrolled> {
    let (url, ca) = discover_any(transport, config).await?;
    let subject = config.csr.subject_name()?;
    let csr_der = config.csr.build(&key, challenge, config.csr_digest()?)?;
    let csr = Csr::from_der(&csr_der).map_err(|e| Error::Crypto(e.to_string()))?;
    let id = TransactionId::from_public_key(&key.public_key_der()?)?;

    let renewal = renewal && {
        let supported = ca.caps.has(scep::caps::Capability::Renewal);
        if !supported && challenge.is_none() {
            return Err(Error::NoCommonAlgorithm(
                "server does not offer Renewal and there is no challenge for a PKCSReq",
            ));
        }
        supported
    };
    let current = if renewal { slot.installed()? } else { None };
    let transient;
    let (signer_kind, signer_cert, signer_key): (SignerKey, X509, &DeviceKey) = match &current {
        Some((cur_key, chain)) => (SignerKey::Current, chain[0].clone(), cur_key),
        None if key.spec()?.is_rsa() => (SignerKey::NextKey, self_signed(&key, &subject)?, &key),
        None => {
            transient = DeviceKey::generate(KeySpec::Rsa(2048))?;
            slot.write_key("transport-key.pem", &transient)?;
            (
                SignerKey::TransportKey,
                self_signed(&transient, &subject)?,
                &transient,
            )
        }
    };
    slot.write_key("next-key.pem", &key)?;
    let mut tx = PendingTx {
        transaction_id: id.as_str().to_owned(),
        renewal: current.is_some(),
        url: url.clone(),
        subject_der_hex: hex::encode(subject.to_der()?),
        signer: signer_kind,
        signer_cert_pem: String::from_utf8_lossy(&signer_cert.to_pem()?).into_owned(),
        polls: 0,
    };
    slot.write_json("transaction.json", &tx)?;

    let body = if current.is_some() {
        RequestBody::RenewalReq(csr)
    } else {
        RequestBody::PkcsReq(csr)
    };
    let flight = Flight {
        transport,
        ca: &ca,
        url: &url,
        signer: SignerIdentity {
            cert: &signer_cert,
            key: signer_key.pkey(),
        },
        transaction_id: &id,
        retry: config.retry(),
    };
    let first = flight.exchange(&body).await;
    let outcome = match first {
        Ok(CertRep::Pending) => {
            tracing::info!(transaction_id = %id, "PENDING; polling");
            let poll = RequestBody::CertPoll(IssuerAndSubject {
                issuer: ca.issuer.subject_name().to_der()?,
                subject: subject.to_der()?,
            });
            flight.poll_loop(&poll, slot, &mut tx).await
        }
        other => other,
    };
    finish(slot, &ca, &key, &id, outcome, tx.polls)
}

/// One request in flight: where it goes, who signs it, how long to keep trying.
struct Flight<'a> {
    transport: &'a dyn ScepTransport,
    ca: &'a CaInfo,
    url: &'a str,
    signer: SignerIdentity<'a>,
    transaction_id: &'a TransactionId,
    retry: RetryPolicy,
}

impl Flight<'_> {
    /// Send `body` (fresh senderNonce each time) and open the CertRep; 503/429 are retried
    /// with backoff and `Retry-After`, up to the policy's attempts.
    async fn exchange(&self, body: &RequestBody) -> Result<CertRep> {
        let mut attempt = 0;
        loop {
            match self.exchange_once(body).await {
                Err(e) if e.is_transient() && attempt < self.retry.attempts => {
                    let retry_after = match &e {
                        Error::Http { retry_after, .. } => *retry_after,
                        _ => None,
                    };
                    let wait = self.retry.delay_for(attempt, retry_after);
                    tracing::info!(error = %e, wait_ms = wait.as_millis() as u64, "retrying");
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    async fn exchange_once(&self, body: &RequestBody) -> Result<CertRep> {
        let tx = Transaction {
            transaction_id: self.transaction_id.clone(),
            sender_nonce: Nonce::random()?,
        };
        let der = build_request(
            body,
            self.signer,
            &[&self.ca.recipient],
            &tx,
            &self.ca.options,
        )?;
        let request = if self.ca.post() {
            ScepRequest::PkiOperationPost(der)
        } else {
            ScepRequest::PkiOperationGet(der)
        };
        let resp = ok(
            self.transport.send(self.url, &request).await?,
            "PKIOperation",
        )?;
        let key = DecryptionKey {
            cert: self.signer.cert,
            key: self.signer.key,
        };
        Ok(open_cert_rep(
            &resp.body,
            &tx,
            &self.ca.reply_signers,
            key,
            &AlgorithmPolicy::default(),
        )?)
    }

    /// CertPoll until the answer is not PENDING or `retry.attempts` polls were sent in this
    /// run; the poll count is persisted with the transaction after each one.
    async fn poll_loop(
        &self,
        poll: &RequestBody,
        slot: &Slot,
        tx: &mut PendingTx,
    ) -> Result<CertRep> {
        for n in 0..self.retry.attempts {
            tokio::time::sleep(self.retry.delay_for(n, None)).await;
            tx.polls += 1;
            slot.write_json("transaction.json", &*tx)?;
            match self.exchange(poll).await? {
                CertRep::Pending => continue,
                done => return Ok(done),
            }
        }
        Err(Error::StillPending {
            attempts: self.retry.attempts,
        })
    }
}

/// Install on SUCCESS; forget the transaction on FAILURE; keep it when still pending.
fn finish(
    slot: &Slot,
    ca: &CaInfo,
    key: &DeviceKey,
    id: &TransactionId,
    outcome: Result<CertRep>,
    polls: u32,
) -> Result<Enrolled> {
    let result = match outcome {
        Ok(CertRep::Success(certs)) => install(slot, ca, key, certs.certificates, id, polls),
        Ok(CertRep::Failure { fail_info, text }) => Err(Error::Refused { fail_info, text }),
        Ok(CertRep::Pending) => Err(Error::StillPending { attempts: polls }),
        Err(e) => Err(e),
    };
    match &result {
        Err(e) if e.is_transient() => {}
        _ => clear_pending(slot)?,
    }
    result
}

fn install(
    slot: &Slot,
    ca: &CaInfo,
    key: &DeviceKey,
    certs: Vec<X509>,
    id: &TransactionId,
    polls: u32,
) -> Result<Enrolled> {
    let leaf = certs
        .iter()
        .find(|c| c.public_key().is_ok_and(|k| k.public_eq(key.pkey())))
        .cloned()
        .ok_or(Error::KeyMismatch)?;
    let mut chain = vec![leaf.clone()];
    for c in certs.iter().chain(ca.chain()) {
        if !chain.iter().any(|x| x.to_der().ok() == c.to_der().ok()) {
            chain.push(c.clone());
        }
    }
    slot.install(key, &chain)?;
    let enrolled = Enrolled::describe(&leaf, id.as_str(), polls)?;
    tracing::info!(serial = %enrolled.serial_hex, transaction_id = %id, "certificate installed");
    Ok(enrolled)
}

fn clear_pending(slot: &Slot) -> Result<()> {
    slot.remove("transaction.json")?;
    slot.remove("next-key.pem")?;
    slot.remove("transport-key.pem")
}

fn load_signer_key(slot: &Slot, which: SignerKey) -> Result<DeviceKey> {
    let file = match which {
        SignerKey::NextKey => "next-key.pem",
        SignerKey::TransportKey => "transport-key.pem",
        SignerKey::Current => "key.pem",
    };
    slot.read_key(file)?
        .ok_or(Error::State(format!("{file} missing")))
}

/// Discover against each URL in turn; the first that answers wins.
async fn discover_any(
    transport: &dyn ScepTransport,
    config: &EnrollConfig,
) -> Result<(String, CaInfo)> {
    let pin = config.pin()?;
    let mut last = Error::Invalid("no SCEP URL".into());
    for url in &config.urls {
        match discover(transport, url, pin.as_ref()).await {
            Ok(ca) => return Ok((url.clone(), ca)),
            Err(e @ (Error::Transport(_) | Error::Http { .. })) => {
                tracing::warn!(error = %e, "SCEP server unavailable, trying the next URL");
                last = e;
            }
            Err(e) => return Err(e),
        }
    }
    Err(last)
}

fn self_signed(key: &DeviceKey, subject: &X509Name) -> Result<X509> {
    let now = now();
    Ok(self_signed_certificate(
        key.pkey(),
        subject,
        now - 3600,
        now + 30 * 86_400,
    )?)
}

/// Current Unix time in seconds: the clock renewal decisions use (public so that callers
/// judge validity by the same clock).
pub fn now() -> i64 {
    foundation::clock::unix_now()
}

/// An ASN.1 time as Unix seconds.
pub(crate) fn unix(t: &openssl::asn1::Asn1TimeRef) -> Result<i64> {
    Ok(foundation::time::asn1_to_unix(t)?)
}

fn one_line(name: &openssl::x509::X509NameRef) -> String {
    name.entries()
        .map(|e| {
            let key = e.object().nid().short_name().unwrap_or("?");
            let value = e.data().to_string().unwrap_or_else(|_| "?".into());
            format!("{key}={value}")
        })
        .collect::<Vec<_>>()
        .join(",")
}
