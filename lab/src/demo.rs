//! One SCEP enrollment end to end, in process: RA/CA set-up, device key and CSR with a
//! challenge, GetCACaps/GetCACert, PKCSReq, server-side verify/open/issue, CertRep, and the
//! device checking what it received.

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail, ensure};
use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::x509::extension::{BasicConstraints, KeyUsage, SubjectKeyIdentifier};
use openssl::x509::{X509, X509Name, X509NameRef};
use scep::caps::{Capabilities, Capability};
use scep::client::{self, CertRep, RequestOptions, Transaction};
use scep::cms::enveloped::DecryptionKey;
use scep::cms::signed::SignerIdentity;
use scep::csr::{ChallengePassword, Csr};
use scep::http::CaCertificates;
use scep::server::{DecodedRequest, Responder};
use scep::{AlgorithmPolicy, Nonce, RequestBody, TransactionId};

/// Run the demo, writing the narration to `out`.
pub(crate) fn run(out: &mut impl Write) -> anyhow::Result<()> {
    let now = i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs())?;
    writeln!(
        out,
        "scep-lab demo: one device enrolls over SCEP (RFC 8894)\n"
    )?;

    let ca_key = rsa()?;
    let ca_name = name("scep-lab Demo Root CA")?;
    let ca = certificate(&ca_name, &ca_key, None, Usage::Ca, now)?;
    let ra_key = rsa()?;
    let ra_name = name("scep-lab NDES RA")?;
    let ra = certificate(&ra_name, &ra_key, Some((&ca, &ca_key)), Usage::Ra, now)?;
    let fingerprint = hex(&ca.digest(MessageDigest::sha256())?);
    writeln!(out, "[setup] root CA SHA-256 fingerprint {fingerprint}")?;

    // Step 3: GetCACaps and GetCACert as the device sees them.
    let caps = Capabilities::new([
        Capability::Aes,
        Capability::Sha256,
        Capability::PostPkiOperation,
        Capability::Renewal,
    ]);
    let caps = Capabilities::parse(&caps.to_string());
    let (content_type, body) = CaCertificates::new(vec![ra.clone(), ca.clone()]).to_response()?;
    let ca_certs = CaCertificates::from_response(content_type, &body)?;
    let pinned = ca_certs
        .find_by_sha256(&ca.digest(MessageDigest::sha256())?)
        .context("CA pin")?;
    let digest = caps.strongest_digest().context("no common digest")?;
    let cipher = caps.strongest_cipher().context("no common cipher")?;
    writeln!(
        out,
        "[3] GetCACaps -> {digest:?}, {cipher:?}; GetCACert ({content_type}) pinned root {}",
        subject(pinned)
    )?;

    let device_key = rsa()?;
    let device = name("device-0001")?;
    let challenge = ChallengePassword::new(hex(&rand(16)?));
    let csr_der = scep::csr::build(
        &device_key,
        &device,
        None,
        Some(&challenge),
        MessageDigest::sha256(),
    )?;
    let signer = client::self_signed_certificate(&device_key, &device, now - 300, now + 3600)?;
    let tx = Transaction {
        transaction_id: TransactionId::from_public_key(&device_key.public_key_to_der()?)?,
        sender_nonce: Nonce::random()?,
    };
    let recipient = ca_certs
        .encryption_recipient()
        .context("no encryption recipient")?;
    let request = client::build_request(
        &RequestBody::PkcsReq(Csr::from_der(&csr_der)?),
        SignerIdentity {
            cert: &signer,
            key: &device_key,
        },
        &[recipient],
        &tx,
        &RequestOptions {
            digest,
            cipher,
            signing_time: Some(now),
        },
    )?;
    writeln!(
        out,
        "[3] device key generated locally; PKCSReq {} bytes, transactionID {}",
        request.len(),
        tx.transaction_id
    )?;

    // Step 4: the server decrypts and verifies.
    let policy = AlgorithmPolicy::default();
    let verified = DecodedRequest::decode(&request)?.verify(&policy)?;
    verified.check_signing_time(now, 300)?;
    let opened = verified.open(
        &[DecryptionKey {
            cert: &ra,
            key: &ra_key,
        }],
        &policy,
    )?;
    let RequestBody::PkcsReq(csr) = &opened.body else {
        bail!("expected a PKCSReq")
    };
    ensure!(
        opened.signed_with_requested_key(),
        "request not signed with the requested key"
    );
    writeln!(
        out,
        "[4] outer signature verified, envelope opened, CSR self-signature verified"
    )?;

    // Step 5: the challenge (here a static check; the policy module takes this role later).
    let presented = csr
        .challenge_password()
        .context("no challenge in the CSR")?;
    ensure!(
        openssl::memcmp::eq(presented.expose().as_bytes(), challenge.expose().as_bytes()),
        "challenge mismatch"
    );
    writeln!(out, "[5] challenge matched (constant-time compare)")?;

    // Step 6: issue from the CSR's key and subject.
    let issued = issue(csr, &ca, &ca_key, now)?;
    writeln!(
        out,
        "[6] issued serial {} to {}",
        hex(&issued.serial_number().to_bn()?.to_vec()),
        subject(&issued)
    )?;

    // Step 7: CertRep SUCCESS back to the device, which checks everything.
    let responder = Responder {
        signer: SignerIdentity {
            cert: &ra,
            key: &ra_key,
        },
        sender_nonce: Nonce::random()?,
        signing_time: Some(now),
    };
    let reply = opened.reply.success(&responder, &[&issued, &ca], &[])?;
    let rep = client::open_cert_rep(
        &reply,
        &tx,
        &ca_certs.reply_signers(),
        DecryptionKey {
            cert: &signer,
            key: &device_key,
        },
        &policy,
    )?;
    let CertRep::Success(payload) = rep else {
        bail!("expected SUCCESS, got {rep:?}")
    };
    let cert = payload.certificates.first().context("empty CertRep")?;
    ensure!(
        cert.public_key()?.public_eq(&device_key),
        "certificate is not for the device key"
    );
    let ca_public = ca.public_key()?;
    ensure!(cert.verify(&ca_public)?, "certificate not signed by the CA");
    writeln!(
        out,
        "[7] CertRep SUCCESS verified (RA signature, transactionID, recipientNonce), certificate matches the device key and chains to the root"
    )?;
    writeln!(out, "\ndemo complete")?;
    Ok(())
}

#[derive(Clone, Copy)]
enum Usage {
    Ca,
    Ra,
    Device,
}

fn rsa() -> anyhow::Result<PKey<Private>> {
    Ok(PKey::from_rsa(Rsa::generate(2048)?)?)
}

fn rand(n: usize) -> anyhow::Result<Vec<u8>> {
    let mut b = vec![0; n];
    openssl::rand::rand_bytes(&mut b)?;
    Ok(b)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02X}")).collect()
}

fn name(cn: &str) -> anyhow::Result<X509Name> {
    let mut b = X509Name::builder()?;
    b.append_entry_by_text("O", "scep-lab")?;
    b.append_entry_by_text("CN", cn)?;
    Ok(b.build())
}

fn subject(cert: &X509) -> String {
    cert.subject_name()
        .entries()
        .filter_map(|e| e.data().to_string().ok())
        .collect::<Vec<_>>()
        .join(", ")
}

fn issue(csr: &Csr, ca: &X509, ca_key: &PKey<Private>, now: i64) -> anyhow::Result<X509> {
    let key = csr.public_key()?;
    let subject = csr.subject_name()?;
    let mut b = X509::builder()?;
    b.set_version(2)?;
    let mut serial = BigNum::new()?;
    serial.rand(128, MsbOption::MAYBE_ZERO, false)?;
    b.set_serial_number(&*serial.to_asn1_integer()?)?;
    b.set_subject_name(&subject)?;
    b.set_issuer_name(ca.subject_name())?;
    b.set_pubkey(&key)?;
    b.set_not_before(&*Asn1Time::from_unix(now - 300)?)?;
    b.set_not_after(&*Asn1Time::from_unix(now + 365 * 86_400)?)?;
    extensions(&mut b, Usage::Device, Some(ca))?;
    b.sign(ca_key, MessageDigest::sha256())?;
    Ok(b.build())
}

fn certificate(
    subject: &X509NameRef,
    key: &PKey<Private>,
    issuer: Option<(&X509, &PKey<Private>)>,
    usage: Usage,
    now: i64,
) -> anyhow::Result<X509> {
    let mut b = X509::builder()?;
    b.set_version(2)?;
    let mut serial = BigNum::new()?;
    serial.rand(128, MsbOption::MAYBE_ZERO, false)?;
    b.set_serial_number(&*serial.to_asn1_integer()?)?;
    b.set_subject_name(subject)?;
    b.set_issuer_name(issuer.map_or(subject, |(c, _)| c.subject_name()))?;
    b.set_pubkey(key)?;
    b.set_not_before(&*Asn1Time::from_unix(now - 300)?)?;
    b.set_not_after(&*Asn1Time::from_unix(now + 10 * 365 * 86_400)?)?;
    extensions(&mut b, usage, issuer.map(|(c, _)| c))?;
    b.sign(issuer.map_or(key, |(_, k)| k), MessageDigest::sha256())?;
    Ok(b.build())
}

fn extensions(
    b: &mut openssl::x509::X509Builder,
    usage: Usage,
    issuer: Option<&X509>,
) -> anyhow::Result<()> {
    let mut bc = BasicConstraints::new();
    let mut ku = KeyUsage::new();
    match usage {
        Usage::Ca => {
            bc.critical().ca();
            ku.critical().key_cert_sign().crl_sign();
        }
        Usage::Ra => {
            ku.critical().digital_signature().key_encipherment();
        }
        Usage::Device => {
            ku.critical().digital_signature().key_encipherment();
        }
    }
    b.append_extension(bc.build()?)?;
    b.append_extension(ku.build()?)?;
    let ski = SubjectKeyIdentifier::new().build(&b.x509v3_context(issuer.map(|c| &**c), None))?;
    b.append_extension(ski)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    #[test]
    fn the_demo_completes_every_step() {
        let mut out = Vec::new();
        super::run(&mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        for step in ["[3]", "[4]", "[5]", "[6]", "[7]", "demo complete"] {
            assert!(text.contains(step), "{step} missing:\n{text}");
        }
        assert!(
            !text.contains("ChallengePassword("),
            "no secret in the output"
        );
    }
}
