//! Writes seed inputs for the fuzz targets into `fuzz/corpus/<target>/` (run from the
//! workspace root: `cargo run -p scep --example fuzz_seeds`). Requests are encrypted to the
//! micromdm vectors' CA, the fixed key the fuzz targets open envelopes with.

use std::path::Path;

use openssl::hash::MessageDigest;
use openssl::pkey::PKey;
use openssl::rsa::Rsa;
use openssl::x509::{X509, X509Name};
use scep::client::{RequestOptions, Transaction, build_request, self_signed_certificate};
use scep::cms::enveloped::seal;
use scep::cms::signed::{SignerIdentity, certs_only};
use scep::csr::{ChallengePassword, Csr, build};
use scep::http::{CaCertificates, encode_get_message};
use scep::{ContentCipher, DigestAlgorithm, IssuerAndSubject, Nonce, RequestBody, TransactionId};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let vectors = Path::new("scep/testdata/micromdm");
    let ca = X509::from_pem(&std::fs::read(vectors.join("ca.pem"))?)?;
    let key = PKey::from_rsa(Rsa::generate(2048)?)?;
    let mut n = X509Name::builder()?;
    n.append_entry_by_text("CN", "fuzz-seed")?;
    let subject = n.build();
    let signer = self_signed_certificate(&key, &subject, 1_700_000_000, 1_700_003_600)?;
    let csr_der = build(
        &key,
        &subject,
        None,
        Some(&ChallengePassword::new("seed")),
        MessageDigest::sha256(),
    )?;
    let write = |target: &str, name: &str, data: &[u8]| -> std::io::Result<()> {
        let dir = Path::new("fuzz/corpus").join(target);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join(name), data)
    };
    let tx = Transaction {
        transaction_id: TransactionId::new("fuzz").ok_or("transaction id")?,
        sender_nonce: Nonce([0; 16]),
    };
    let bodies = [
        ("pkcsreq", RequestBody::PkcsReq(Csr::from_der(&csr_der)?)),
        (
            "renewalreq",
            RequestBody::RenewalReq(Csr::from_der(&csr_der)?),
        ),
        (
            "certpoll",
            RequestBody::CertPoll(IssuerAndSubject::new(&ca, &subject)?),
        ),
        (
            "getcert",
            RequestBody::GetCert(scep::cms::IssuerAndSerialNumber::of(&ca)?),
        ),
    ];
    for (name, body) in &bodies {
        for (cipher, digest) in [
            (ContentCipher::Aes128Cbc, DigestAlgorithm::Sha256),
            (ContentCipher::DesEde3Cbc, DigestAlgorithm::Sha1),
            (ContentCipher::Aes256Cbc, DigestAlgorithm::Sha512),
        ] {
            let opts = RequestOptions {
                digest,
                cipher,
                signing_time: Some(1_700_000_000),
            };
            let der = build_request(
                body,
                SignerIdentity {
                    cert: &signer,
                    key: &key,
                },
                &[&ca],
                &tx,
                &opts,
            )?;
            write("request", &format!("{name}-{cipher:?}.der"), &der)?;
            if *name == "pkcsreq" {
                write(
                    "get_message",
                    &format!("{cipher:?}.txt"),
                    format!(
                        "operation=PKIOperation&message={}",
                        encode_get_message(&der)
                    )
                    .as_bytes(),
                )?;
            }
        }
    }
    for f in ["pkcsreq.der", "renewalreq.der"] {
        write(
            "request",
            &format!("micromdm-{f}"),
            &std::fs::read(vectors.join(f))?,
        )?;
    }
    for f in ["pkcsreq-certrep.der", "renewalreq-certrep.der"] {
        write(
            "cert_rep",
            &format!("micromdm-{f}"),
            &std::fs::read(vectors.join(f))?,
        )?;
    }
    write(
        "envelope",
        "aes128.der",
        &seal(&csr_der, &[&ca], ContentCipher::Aes128Cbc)?,
    )?;
    write(
        "envelope",
        "des3.der",
        &seal(&csr_der, &[&ca], ContentCipher::DesEde3Cbc)?,
    )?;
    write("csr", "with-challenge.der", &csr_der)?;
    write(
        "csr",
        "micromdm.der",
        &openssl::x509::X509Req::from_pem(&std::fs::read(vectors.join("client.csr.pem"))?)?
            .to_der()?,
    )?;
    write(
        "certs_only",
        "ca-and-signer.der",
        &certs_only(&[&signer, &ca], &[])?,
    )?;
    write(
        "certs_only",
        "getcacert.der",
        &CaCertificates::new(vec![signer, ca]).to_response()?.1,
    )?;
    write(
        "caps",
        "micromdm.txt",
        &std::fs::read(vectors.join("getcacaps.txt"))?,
    )?;
    write("caps", "all.txt", b"AES\nDES3\nGetNextCACert\nPOSTPKIOperation\nRenewal\nSHA-1\nSHA-256\nSHA-512\nSCEPStandard\n")?;
    write(
        "get_message",
        "getcacert.txt",
        b"operation=GetCACert&message=CAIdentifier",
    )?;
    // Known crashers of other parsers (reliability.md A11-A13), as whole bodies.
    for (i, c) in [
        &b"\x30\x82\x06"[..],
        b"\x5f\x4d",
        b"\x1f\x80",
        b"\x1f\x05",
        b"\x30\x81",
        b"\x30\x84\x01",
        b"\x30\x84\x7f\xff\xff\xff",
    ]
    .iter()
    .enumerate()
    {
        write("request", &format!("crasher-{i}.der"), c)?;
    }
    println!("seeds written under fuzz/corpus/");
    Ok(())
}
