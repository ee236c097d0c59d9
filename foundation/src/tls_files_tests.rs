#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use openssl::asn1::Asn1Time;
use openssl::bn::BigNum;
use openssl::hash::MessageDigest;
use openssl::pkey::PKey;
use openssl::rsa::Rsa;
use openssl::x509::{X509Builder, X509NameBuilder};

/// A self-signed certificate with `serial`: (PEM, key PEM).
fn cert(serial: u32) -> (Vec<u8>, Vec<u8>) {
    let key = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
    let mut n = X509NameBuilder::new().unwrap();
    n.append_entry_by_text("CN", "localhost").unwrap();
    let n = n.build();
    let mut b = X509Builder::new().unwrap();
    b.set_version(2).unwrap();
    b.set_serial_number(&BigNum::from_u32(serial).unwrap().to_asn1_integer().unwrap())
        .unwrap();
    b.set_subject_name(&n).unwrap();
    b.set_issuer_name(&n).unwrap();
    b.set_pubkey(&key).unwrap();
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::days_from_now(2).unwrap())
        .unwrap();
    b.sign(&key, MessageDigest::sha256()).unwrap();
    (
        b.build().to_pem().unwrap(),
        key.private_key_to_pem_pkcs8().unwrap(),
    )
}

/// The serial of the certificate the next handshake presents.
fn served(w: &CertWatch) -> u32 {
    let acceptor = w.tls().acceptor();
    let c = acceptor.context().certificate().unwrap();
    c.serial_number()
        .to_bn()
        .unwrap()
        .to_string()
        .parse()
        .unwrap()
}

/// Writes the pair with an mtime of `at` seconds after the epoch (no reliance on the clock).
fn write(dir: &Path, (c, k): &(Vec<u8>, Vec<u8>), at: u64) {
    for (name, bytes) in [("c.pem", c), ("k.pem", k)] {
        std::fs::write(dir.join(name), bytes).unwrap();
        let f = std::fs::File::options()
            .write(true)
            .open(dir.join(name))
            .unwrap();
        f.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(at))
            .unwrap();
    }
}

#[test]
fn a_renewed_certificate_is_served_once_its_files_change() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(d, &cert(10), 1_000);
    let mut files = TlsFiles {
        cert_file: Some("c.pem".into()),
        key_file: Some("k.pem".into()),
        ca_file: None,
    };
    files.resolve(d);
    let mut w = files.server().unwrap().unwrap();
    assert_eq!(served(&w), 10);
    assert!(!w.check().unwrap(), "unchanged files are not reloaded");

    write(d, &cert(11), 2_000);
    assert!(w.check().unwrap());
    assert_eq!(served(&w), 11);
    assert!(!w.check().unwrap());

    // A half-written renewal (the key of another certificate) keeps the one in use.
    let (c12, _) = cert(12);
    let (_, other_key) = cert(13);
    write(d, &(c12, other_key), 3_000);
    assert!(w.check().is_err());
    assert_eq!(served(&w), 11);
}

#[test]
fn a_section_needs_cert_and_key_together_and_a_readable_ca_file() {
    let only_cert = TlsFiles {
        cert_file: Some("c.pem".into()),
        ..TlsFiles::default()
    };
    assert!(matches!(only_cert.server(), Err(TlsFilesError::Incomplete)));
    assert!(TlsFiles::default().server().unwrap().is_none());
    assert!(TlsFiles::default().pin().unwrap().is_none());
    let missing = TlsFiles {
        ca_file: Some("/nonexistent/root.pem".into()),
        ..TlsFiles::default()
    };
    assert!(matches!(missing.pin(), Err(TlsFilesError::Read(..))));
}
