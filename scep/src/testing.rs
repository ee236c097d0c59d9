//! Builders for messages a correct client never sends: wrong messageTypes, odd nonces, no
//! signer certificate, arbitrary content. For conformance tests, fuzz seeds and the error
//! contract of servers built on this crate; not part of the stable API.

use crate::alg::DigestAlgorithm;
use crate::cms::signed::{SignerIdentity, sign};
use crate::error::BuildError;
use openssl::error::ErrorStack;

/// A pkiMessage with every SCEP attribute under the caller's control.
#[derive(Clone, Debug)]
pub struct RawRequest<'a> {
    /// messageType text, written as a PrintableString as is.
    pub message_type: &'a str,
    /// transactionID text, written as a PrintableString as is.
    pub transaction_id: &'a str,
    /// senderNonce bytes, any length.
    pub sender_nonce: &'a [u8],
    /// eContent (normally an EnvelopedData), or none.
    pub content: Option<&'a [u8]>,
    /// Whether the signer's certificate goes into the certificates field.
    pub include_signer_cert: bool,
    /// Digest of the signature.
    pub digest: DigestAlgorithm,
}

/// Sign a [`RawRequest`].
pub fn build(raw: &RawRequest<'_>, signer: SignerIdentity<'_>) -> Result<Vec<u8>, BuildError> {
    let attrs =
        crate::message::request_attributes(raw.message_type, raw.transaction_id, raw.sender_nonce);
    let certs = if raw.include_signer_cert {
        vec![signer.cert]
    } else {
        vec![]
    };
    sign(raw.content, signer, raw.digest, attrs, &certs, None)
}

/// Fuzz entry points (`fuzz/fuzz_targets/*.rs` are one-line wrappers; `tests/fuzz_corpus.rs`
/// replays the committed corpus through the same functions). None may panic on any input.
pub mod fuzz {
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
                let key =
                    PKey::private_key_from_pem(include_bytes!("../testdata/micromdm/ca.key.pem"))
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
}

/// A 2048-bit RSA key built the way Infineon's RSALib built them (ROCA, CVE-2017-15361): each
/// prime is `k*M + (65537^a mod M)` with `M` the product of the first 126 primes (the paper's
/// `M` for 1984- to 3936-bit keys), random `a` and `k`. A real, working key whose modulus
/// has the fingerprint [`crate::roca::has_fingerprint`] looks for; for tests of the refusal.
pub fn roca_structured_rsa_2048() -> Result<openssl::rsa::Rsa<openssl::pkey::Private>, ErrorStack> {
    use openssl::bn::{BigNum, BigNumContext, MsbOption};
    let mut ctx = BigNumContext::new()?;
    let mut m = BigNum::from_u32(1)?;
    let mut found = 0;
    let mut candidate = 2u32;
    while found < 126 {
        if (2..candidate)
            .take_while(|d| d * d <= candidate)
            .all(|d| !candidate.is_multiple_of(d))
        {
            m.mul_word(candidate)?;
            found += 1;
        }
        candidate += 1;
    }
    let e = BigNum::from_u32(65_537)?;
    let one = BigNum::from_u32(1)?;
    // p in [1.5 * 2^1023, 2^1024): the product of two such primes has exactly 2048 bits.
    let mut lo_bound = BigNum::new()?;
    let three = BigNum::from_u32(3)?;
    lo_bound.lshift(&three, 1022)?;
    let mut hi_bound = BigNum::new()?;
    hi_bound.lshift(&one, 1024)?;
    let mut lo = BigNum::new()?;
    lo.checked_div(&lo_bound, &m, &mut ctx)?;
    let mut hi = BigNum::new()?;
    hi.checked_div(&hi_bound, &m, &mut ctx)?;
    let mut span = BigNum::new()?;
    span.checked_sub(&hi, &lo)?;
    let prime = |ctx: &mut BigNumContext| -> Result<BigNum, ErrorStack> {
        let mut a = BigNum::new()?;
        a.rand(62, MsbOption::MAYBE_ZERO, false)?;
        let mut c = BigNum::new()?;
        c.mod_exp(&e, &a, &m, ctx)?;
        loop {
            let mut k = BigNum::new()?;
            span.rand_range(&mut k)?;
            let mut k_lo = BigNum::new()?;
            k_lo.checked_add(&k, &lo)?;
            let mut km = BigNum::new()?;
            km.checked_mul(&k_lo, &m, ctx)?;
            let mut p = BigNum::new()?;
            p.checked_add(&km, &c)?;
            let mut p1 = BigNum::new()?;
            p1.checked_sub(&p, &one)?;
            let mut g = BigNum::new()?;
            g.gcd(&p1, &e, ctx)?;
            if g == one && p.is_prime(64, ctx)? {
                return Ok(p);
            }
        }
    };
    let p = prime(&mut ctx)?;
    let q = loop {
        let q = prime(&mut ctx)?;
        if q != p {
            break q;
        }
    };
    let mut n = BigNum::new()?;
    n.checked_mul(&p, &q, &mut ctx)?;
    let mut p1 = BigNum::new()?;
    p1.checked_sub(&p, &one)?;
    let mut q1 = BigNum::new()?;
    q1.checked_sub(&q, &one)?;
    let mut phi = BigNum::new()?;
    phi.checked_mul(&p1, &q1, &mut ctx)?;
    let mut d = BigNum::new()?;
    d.mod_inverse(&e, &phi, &mut ctx)?;
    let mut dmp1 = BigNum::new()?;
    dmp1.nnmod(&d, &p1, &mut ctx)?;
    let mut dmq1 = BigNum::new()?;
    dmq1.nnmod(&d, &q1, &mut ctx)?;
    let mut iqmp = BigNum::new()?;
    iqmp.mod_inverse(&q, &p, &mut ctx)?;
    openssl::rsa::Rsa::from_private_components(n, e.to_owned()?, d, p, q, dmp1, dmq1, iqmp)
}
