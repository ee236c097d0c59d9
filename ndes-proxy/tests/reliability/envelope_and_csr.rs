//! Rows A13 (inside the envelope), A31, A32, A37, A39, A40: the pkcsPKIEnvelope and the
//! PKCS#10 request inside it.

use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use scep::asn1::parse_single;
use scep::asn1::tag;
use scep::asn1::writer::{self, tlv};
use scep::{ContentCipher, FailInfo, oid};

use crate::common::{Server, name, pki};
use crate::fresh;
use crate::harness::{Outcome, Req, accepted, capture_logs, refused};
use testkit::scep_msg::{self as forge, SignerSpec};

const UNIFORM: Outcome = Outcome::Failure(FailInfo::BadMessageCheck);
const BAD_ALG: Outcome = Outcome::Failure(FailInfo::BadAlg);

/// The parts of an EnvelopedData ContentInfo as `scep::cms::enveloped::seal` writes it.
struct Envelope {
    version: Vec<u8>,
    recipients: Vec<u8>,
    content_type: Vec<u8>,
    cipher: Vec<u8>,
    encrypted: Vec<u8>,
}

impl Envelope {
    fn split(der: &[u8]) -> Self {
        let ci = parse_single(der).unwrap();
        let mut r = ci.children().unwrap();
        r.read_any().unwrap();
        let explicit = r.read_any().unwrap();
        let env = parse_single(explicit.content).unwrap();
        let mut e = env.children().unwrap();
        let version = e.read_any().unwrap().raw.to_vec();
        let recipients = e.read_any().unwrap().raw.to_vec();
        let eci = e.read_any().unwrap();
        let mut c = eci.children().unwrap();
        Self {
            version,
            recipients,
            content_type: c.read_any().unwrap().raw.to_vec(),
            cipher: c.read_any().unwrap().raw.to_vec(),
            encrypted: c.read_any().unwrap().raw.to_vec(),
        }
    }

    fn join(&self) -> Vec<u8> {
        let eci = writer::sequence(&[&self.content_type, &self.cipher, &self.encrypted]);
        forge::content_info(
            oid::ENVELOPED_DATA,
            &writer::sequence(&[&self.version, &self.recipients, &eci]),
        )
    }
}

/// A PKCSReq of a fresh device around any eContent, correctly signed.
fn around(content: &[u8]) -> Req {
    let d = fresh(0, "envelope");
    let spec = SignerSpec::pkcs_req(d.tx.transaction_id.as_str());
    Req::Post(forge::message(&spec, &d.signer, &d.key, content))
}

fn sealed(csr: &[u8], cipher: ContentCipher) -> Vec<u8> {
    scep::cms::enveloped::seal(csr, &[&pki().ra_enc], cipher).unwrap()
}

fn csr_with(challenge: &str) -> Vec<u8> {
    fresh(0, "csr").csr(Some(challenge)).to_der().to_vec()
}

#[tokio::test]
async fn a13_a31_a32_a40_envelope_faults() {
    capture_logs();
    let s = Server::start(&["env"]).await;
    let p = pki();
    let csr = csr_with("env");
    let good = sealed(&csr, ContentCipher::Aes128Cbc);
    // A31: encrypted to a certificate that is not the RA's (the previous RA key's grace is
    // `rollover.rs`): the uniform failure.
    let other =
        scep::cms::enveloped::seal(&csr, &[&p.ra_combined], ContentCipher::Aes128Cbc).unwrap();
    refused(&s, "A31 other recipient", around(&other), UNIFORM).await;
    // A32: recipient kinds other than key transport are decided before any decryption.
    for (label, tag_byte) in [("KeyAgree", 0xa1u8), ("KEK", 0xa2), ("Password", 0xa3)] {
        let mut env = Envelope::split(&good);
        env.recipients = tlv(tag::SET, &tlv(tag_byte, &writer::small_integer(3)));
        refused(
            &s,
            &format!("A32 {label} RecipientInfo"),
            around(&env.join()),
            BAD_ALG,
        )
        .await;
    }
    let unknown_kta = forge::replace_all(
        &good,
        oid::RSA_ENCRYPTION,
        &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x7f],
    );
    refused(
        &s,
        "A32 unknown keyEncryptionAlgorithm",
        around(&unknown_kta),
        BAD_ALG,
    )
    .await;
    const RC2_CBC: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x03, 0x02];
    let rc2 = forge::replace_all(
        &sealed(&csr, ContentCipher::DesEde3Cbc),
        oid::DES_EDE3_CBC,
        RC2_CBC,
    );
    refused(&s, "A32 RC2", around(&rc2), BAD_ALG).await;
    const AES128_GCM: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x06];
    let gcm = forge::replace_all(&good, oid::AES128_CBC, AES128_GCM);
    refused(&s, "A32 AES-GCM", around(&gcm), BAD_ALG).await;
    // AuthEnvelopedData (RFC 5083) in place of EnvelopedData: not a pkcsPKIEnvelope.
    const AUTH_ENVELOPED: &[u8] = &[
        0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x10, 0x01, 0x17,
    ];
    let env = Envelope::split(&good);
    let auth = forge::content_info(
        AUTH_ENVELOPED,
        &writer::sequence(&[&env.version, &env.recipients]),
    );
    refused(&s, "A32 AuthEnvelopedData", around(&auth), UNIFORM).await;
    let strict = Server::start_with(
        &["env"],
        ndes_proxy::Settings {
            strict_algorithms: true,
            ..Default::default()
        },
    )
    .await;
    refused(
        &strict,
        "A32 3DES when disabled",
        around(&sealed(&csr, ContentCipher::DesEde3Cbc)),
        BAD_ALG,
    )
    .await;
    // A40: empty encrypted content.
    let mut empty = Envelope::split(&good);
    empty.encrypted = vec![tag::context_primitive(0), 0x00];
    refused(
        &s,
        "A40 empty encryptedContent",
        around(&empty.join()),
        UNIFORM,
    )
    .await;
    // A13: 10,000 nested constructed OCTET STRINGs as the encryptedContent.
    let mut bomb = writer::octet_string(&[0; 16]);
    for _ in 0..10_000 {
        bomb = tlv(0x24, &bomb);
    }
    let mut nested = Envelope::split(&good);
    nested.encrypted = tlv(tag::context(0), &bomb);
    refused(
        &s,
        "A13 nested OCTET STRING",
        around(&nested.join()),
        UNIFORM,
    )
    .await;
    // Control: the envelope pieces reassembled unchanged still enroll.
    accepted(&s, "A32 control", around(&Envelope::split(&good).join())).await;
}

/// A CSR for `key` with the given attributes and version, self-signed by `key`.
fn csr_for(key: &PKey<Private>, version: u32, attrs: &[Vec<u8>]) -> Vec<u8> {
    forge::csr(
        version,
        &name("csr").to_der().unwrap(),
        &key.public_key_to_der().unwrap(),
        attrs,
        key,
    )
}

fn challenge(c: &str) -> Vec<u8> {
    forge::challenge_attr(&[writer::printable_string(c)])
}

#[tokio::test]
async fn a37_p10_csr_version_and_keys_outside_policy_are_refused() {
    capture_logs();
    let s = Server::start(&["a37", "a37-ok"]).await;
    let p = pki();
    let rsa_key = &p.device_keys[0];
    // Version 2 instead of 1 (v1 = 0): the request is not a PKCS#10 v1 request.
    let v2 = csr_for(rsa_key, 1, &[challenge("a37")]);
    refused(
        &s,
        "A37 version",
        around(&sealed(&v2, ContentCipher::Aes128Cbc)),
        UNIFORM,
    )
    .await;
    // Keys outside the policy: badAlg, decided after the envelope opens.
    let dsa = PKey::from_dsa(openssl::dsa::Dsa::generate(2048).unwrap()).unwrap();
    let rsa1024 = PKey::from_rsa(openssl::rsa::Rsa::generate(1024).unwrap()).unwrap();
    let p192 = PKey::from_ec_key(
        openssl::ec::EcKey::generate(
            &openssl::ec::EcGroup::from_curve_name(Nid::X9_62_PRIME192V1).unwrap(),
        )
        .unwrap(),
    )
    .unwrap();
    // P10: e = 3 (odd, but below 65537).
    let e3 = PKey::from_rsa(
        openssl::rsa::Rsa::generate_with_e(2048, &openssl::bn::BigNum::from_u32(3).unwrap())
            .unwrap(),
    )
    .unwrap();
    for (label, key) in [
        ("DSA", &dsa),
        ("RSA-1024", &rsa1024),
        ("P-192", &p192),
        ("RSA e = 3 (P10)", &e3),
    ] {
        let csr = csr_for(key, 0, &[challenge("a37")]);
        refused(
            &s,
            &format!("A37 {label}"),
            around(&sealed(&csr, ContentCipher::Aes128Cbc)),
            BAD_ALG,
        )
        .await;
    }
    // RSA exponents 1, even and above 64 bits, and EC points off the curve or the identity:
    // the SPKI is unusable, so the self-signature cannot verify: the uniform failure.
    let n = rsa_key.rsa().unwrap().n().to_vec();
    let huge_e = [vec![1u8], vec![0; 8], vec![1]].concat();
    let mut off_curve = vec![0x04];
    off_curve.extend([0x11; 64]);
    for (label, spki) in [
        ("e = 1", forge::rsa_spki(&n, &[1])),
        ("e even", forge::rsa_spki(&n, &[1, 0, 0])),
        ("e > 64 bits", forge::rsa_spki(&n, &huge_e)),
        ("EC point off the curve", forge::p256_spki(&off_curve)),
        ("EC identity", forge::p256_spki(&[0x00])),
    ] {
        let csr = forge::csr(
            0,
            &name("csr").to_der().unwrap(),
            &spki,
            &[challenge("a37")],
            rsa_key,
        );
        refused(
            &s,
            &format!("A37 {label}"),
            around(&sealed(&csr, ContentCipher::Aes128Cbc)),
            UNIFORM,
        )
        .await;
    }
    // P10: a certificate on the RA's or the CA's own key is refused (badRequest) before the
    // policy module is asked, even by someone who holds the key.
    for (label, key) in [("RA encryption key", &p.ra_enc_key), ("CA key", &p.ca_key)] {
        let csr = csr_for(key, 0, &[challenge("a37")]);
        refused(
            &s,
            &format!("P10 {label}"),
            around(&sealed(&csr, ContentCipher::Aes128Cbc)),
            Outcome::Failure(FailInfo::BadRequest),
        )
        .await;
    }
    assert!(s.policy.rejections.lock().unwrap().is_empty());
    // Control: the same forge with a good key and version enrolls.
    let ok = csr_for(rsa_key, 0, &[challenge("a37-ok")]);
    accepted(
        &s,
        "A37 control",
        around(&sealed(&ok, ContentCipher::Aes128Cbc)),
    )
    .await;
}

#[tokio::test]
async fn a39_challenge_password_forms() {
    capture_logs();
    let s = Server::start(&["a39-printable", "a39-utf8", "a39-bmp", "a39-bad"]).await;
    let key = &pki().device_keys[0];
    let enroll =
        |attrs: Vec<Vec<u8>>| around(&sealed(&csr_for(key, 0, &attrs), ContentCipher::Aes128Cbc));
    // The single-valued DirectoryString forms are accepted.
    accepted(
        &s,
        "A39 PrintableString",
        enroll(vec![forge::challenge_attr(&[writer::printable_string(
            "a39-printable",
        )])]),
    )
    .await;
    accepted(
        &s,
        "A39 UTF8String",
        enroll(vec![forge::challenge_attr(&[writer::utf8_string(
            "a39-utf8",
        )])]),
    )
    .await;
    accepted(
        &s,
        "A39 BMPString",
        enroll(vec![forge::challenge_attr(&[forge::bmp("a39-bmp")])]),
    )
    .await;
    // Everything else is refused before the policy module sees it: each of these carries a
    // valid, unused challenge, so reaching the policy would have issued.
    let good = writer::printable_string("a39-bad");
    for (label, attrs) in [
        (
            "multi-valued",
            vec![forge::challenge_attr(&[good.clone(), good.clone()])],
        ),
        (
            "two attributes",
            vec![
                forge::challenge_attr(std::slice::from_ref(&good)),
                forge::challenge_attr(&[writer::utf8_string("a39-bad")]),
            ],
        ),
        (
            "64 KiB",
            vec![forge::challenge_attr(&[writer::utf8_string(
                &"a39-bad".repeat(9363),
            )])],
        ),
        (
            "embedded NUL",
            vec![forge::challenge_attr(&[writer::utf8_string("a39-bad\0")])],
        ),
        (
            "empty",
            vec![forge::challenge_attr(&[writer::utf8_string("")])],
        ),
        (
            "not a string",
            vec![forge::challenge_attr(&[writer::small_integer(7)])],
        ),
    ] {
        refused(&s, &format!("A39 {label}"), enroll(attrs), UNIFORM).await;
    }
    assert!(
        s.policy.rejections.lock().unwrap().is_empty(),
        "the policy module never saw them"
    );
    // And the challenge is still good for a well-formed request.
    accepted(&s, "A39 control", enroll(vec![challenge("a39-bad")])).await;
}
