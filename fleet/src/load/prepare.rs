//! Before the timed window: every PKCSReq is built (CSR, self-signed signer certificate,
//! envelope to the RA, outer signature), and one-time challenges are fetched, so the window
//! holds nothing of the client but HTTP. These are the client's four RSA private operations
//! that `device-fleet`'s device flow spends inside its timing.

use std::sync::Arc;

use device_agent::ca::CaInfo;
use device_agent::csr::CsrSpec;
use device_agent::error::{Error, Result};
use device_agent::key::DeviceKey;
use foundation::secret::Secret;
use openssl::hash::MessageDigest;
use openssl::x509::X509;
use scep::client::{Transaction, build_request, self_signed_certificate};
use scep::cms::signed::SignerIdentity;
use scep::csr::{ChallengePassword, Csr};
use scep::{Nonce, RequestBody, TransactionId};

/// One request, ready to send, and what its reply is checked against.
pub struct Prepared {
    /// Device name (the CSR's CN).
    pub name: String,
    /// The device key the certificate must certify (and whose certificate opens the reply).
    pub key: DeviceKey,
    /// The self-signed certificate that signed the request (RFC 8894 §2.3).
    pub signer: X509,
    /// transactionID and senderNonce the reply must echo.
    pub transaction: Transaction,
    /// The DER pkiMessage; taken out when sent.
    pub der: Vec<u8>,
}

/// Build the PKCSReq of device `name` with `key` (RSA: the reply's envelope is key transport).
pub fn build(
    ca: &CaInfo,
    name: &str,
    key: DeviceKey,
    challenge: Option<&ChallengePassword>,
) -> Result<Prepared> {
    if !key.spec()?.is_rsa() {
        return Err(Error::Invalid("load mode takes RSA keys".into()));
    }
    let spec = CsrSpec::common_name(name);
    let subject = spec.subject_name()?;
    let csr_der = spec.build(&key, challenge, MessageDigest::sha256())?;
    let csr = Csr::from_der(&csr_der).map_err(|e| Error::Crypto(e.to_string()))?;
    let transaction = Transaction {
        transaction_id: TransactionId::from_public_key(&key.public_key_der()?)?,
        sender_nonce: Nonce::random()?,
    };
    let now = foundation::clock::unix_now();
    let signer = self_signed_certificate(key.pkey(), &subject, now - 3600, now + 30 * 86_400)?;
    let der = build_request(
        &RequestBody::PkcsReq(csr),
        SignerIdentity {
            cert: &signer,
            key: key.pkey(),
        },
        &[&ca.recipient],
        &transaction,
        &ca.options,
    )?;
    Ok(Prepared {
        name: name.to_owned(),
        key,
        signer,
        transaction,
        der,
    })
}

/// Build every request on all cores: request `i` gets `keys[i]`, `challenges[i]` (or the one
/// static challenge, or none) and the name `<prefix>-<i>`.
pub async fn build_all(
    ca: Arc<CaInfo>,
    prefix: &str,
    keys: Vec<DeviceKey>,
    challenges: Arc<Vec<ChallengePassword>>,
) -> Result<Vec<Prepared>> {
    let workers = std::thread::available_parallelism().map_or(2, |p| p.get());
    let chunk = keys.len().div_ceil(workers).max(1);
    let mut keys = keys.into_iter().enumerate().collect::<Vec<_>>();
    let mut handles = Vec::new();
    while !keys.is_empty() {
        let rest = keys.split_off(chunk.min(keys.len()));
        let mine = std::mem::replace(&mut keys, rest);
        let (ca, challenges, prefix) = (ca.clone(), challenges.clone(), prefix.to_owned());
        handles.push(tokio::task::spawn_blocking(move || {
            mine.into_iter()
                .map(|(i, key)| {
                    let challenge = match challenges.len() {
                        0 => None,
                        1 => challenges.first(),
                        _ => challenges.get(i),
                    };
                    build(&ca, &format!("{prefix}-{i:05}"), key, challenge)
                })
                .collect::<Result<Vec<_>>>()
        }));
    }
    let mut out = Vec::new();
    for h in handles {
        out.extend(
            h.await
                .map_err(|e| Error::State(format!("prepare: {e}")))??,
        );
    }
    Ok(out)
}

/// `n` one-time challenges from NDES's admin page (`/certsrv/mscep_admin/`, JSON form), as a
/// script or MDM connector fetches them. The server's PasswordMax must allow `n` outstanding.
pub async fn mscep_admin_challenges(
    http: &reqwest::Client,
    url: &str,
    token: &Secret,
    n: usize,
) -> Result<Vec<ChallengePassword>> {
    let sep = if url.contains('?') { '&' } else { '?' };
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let resp = http
            .get(format!("{url}{sep}format=json"))
            .bearer_auth(token.expose())
            .send()
            .await
            .map_err(|e| Error::Transport(e.to_string()))?;
        let status = resp.status();
        let body = resp
            .bytes()
            .await
            .map_err(|e| Error::Transport(e.to_string()))?;
        if !status.is_success() {
            return Err(Error::Protocol(format!("mscep_admin answered {status}")));
        }
        let page: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|_| Error::Protocol("mscep_admin: not JSON".into()))?;
        let challenge = page["challenge"].as_str().ok_or(Error::Protocol(
            "mscep_admin handed out no challenge (PasswordMax reached?)".into(),
        ))?;
        out.push(ChallengePassword::new(challenge.to_owned()));
    }
    Ok(out)
}
