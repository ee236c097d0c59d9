//! Fuzz entry points (`fuzz/fuzz_targets/*.rs` are one-line wrappers; `tests/fuzz_corpus.rs`
//! replays the committed corpus through the same functions). None may panic on any input.
//! Compiled only with the `fuzzing` feature, so they are no part of the normal API.

use std::sync::OnceLock;

use openssl::pkey::{PKey, Private};
use openssl::x509::X509;

use crate::alg::AlgorithmPolicy;
use crate::caps::Capabilities;
use crate::client::{Transaction, open_cert_rep};
use crate::cms::enveloped::{DecryptionKey, EnvelopedData};
use crate::cms::signed::CertsOnly;
use crate::csr::Csr;
use crate::http::{CaCertificates, ScepQuery, decode_get_message};
use crate::server::DecodedRequest;
use crate::{Nonce, TransactionId};

/// A fixed RSA identity (the micromdm vectors' CA) that opens envelopes in the corpus.
struct Fixed {
    cert: X509,
    key: PKey<Private>,
}

fn fixed() -> Option<&'static Fixed> {
    static FIXED: OnceLock<Option<Fixed>> = OnceLock::new();
    FIXED
        .get_or_init(|| {
            let cert = X509::from_pem(include_bytes!("../testdata/micromdm/ca.pem")).ok()?;
            let key = PKey::private_key_from_pem(include_bytes!("../testdata/micromdm/ca.key.pem"))
                .ok()?;
            Some(Fixed { cert, key })
        })
        .as_ref()
}

/// The fixed RA identity (certificate and key) the corpus envelopes are encrypted to, for
/// fuzz targets of servers built on this crate.
pub fn fixed_identity() -> Option<(X509, PKey<Private>)> {
    fixed().map(|f| (f.cert.clone(), f.key.clone()))
}

/// A PKIOperation body through decode, verify and open, as a server runs it.
pub fn request(data: &[u8]) {
    let Ok(decoded) = DecodedRequest::decode(data) else {
        return;
    };
    let _ = decoded.reply_context();
    let policy = AlgorithmPolicy::default();
    let Ok(verified) = decoded.verify(&policy) else {
        return;
    };
    let _ = verified.signing_time();
    if let Some(f) = fixed() {
        let _ = verified.open(
            &[DecryptionKey {
                cert: &f.cert,
                key: &f.key,
            }],
            &policy,
        );
    }
}

/// A CertRep as a client opens it.
pub fn cert_rep(data: &[u8]) {
    let Some(f) = fixed() else { return };
    let Some(transaction_id) = TransactionId::new("fuzz") else {
        return;
    };
    let tx = Transaction {
        transaction_id,
        sender_nonce: Nonce([0; 16]),
    };
    let key = DecryptionKey {
        cert: &f.cert,
        key: &f.key,
    };
    let _ = open_cert_rep(
        data,
        &tx,
        std::slice::from_ref(&f.cert),
        key,
        &AlgorithmPolicy::default(),
    );
}

/// A degenerate certs-only SignedData and a GetCACert answer.
pub fn certs_only(data: &[u8]) {
    let _ = CertsOnly::from_der(data);
    if let Ok(c) = CaCertificates::from_response("application/x-x509-ca-ra-cert", data) {
        let _ = c.encryption_recipient();
        let _ = c.reply_signers();
    }
}

/// A GetCACaps body.
pub fn caps(data: &[u8]) {
    let c = Capabilities::parse(&String::from_utf8_lossy(data));
    let _ = (c.strongest_cipher(), c.strongest_digest(), c.to_string());
}

/// A request URL's query string and its GET `message=`.
pub fn get_message(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(ScepQuery {
        message: Some(m), ..
    }) = ScepQuery::parse(&text)
    {
        let _ = decode_get_message(&m);
    }
    let _ = decode_get_message(&text);
}

/// An EnvelopedData opened with the fixed key.
pub fn envelope(data: &[u8]) {
    let Ok(env) = EnvelopedData::from_content_info(data) else {
        return;
    };
    if let Some(f) = fixed() {
        let _ = env.open(
            &[DecryptionKey {
                cert: &f.cert,
                key: &f.key,
            }],
            &AlgorithmPolicy::default(),
        );
    }
}

/// A PKCS#10 request.
pub fn csr(data: &[u8]) {
    if let Ok(c) = Csr::from_der(data) {
        let _ = (c.subject_name(), c.public_key(), c.extension_request());
    }
}
