//! The private key never leaves the device: every byte of every request, and every
//! decrypted messageData inside them, is searched for the key in each encoding (PKCS#8,
//! PKCS#1, the private exponent and primes, the EC private scalar) after an enrollment with
//! PENDING polls and a renewal.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::fake_scep::FakeScep;
use device_agent::{DeviceDir, DeviceKey, EnrollConfig, RenewOptions, enroll, renew};
use scep::csr::ChallengePassword;

/// Byte strings that would betray `key` if found in traffic (each at least 20 bytes).
fn secrets(key: &DeviceKey) -> Vec<Vec<u8>> {
    let pkey = key.pkey();
    let mut out = vec![
        pkey.private_key_to_pkcs8().unwrap(),
        pkey.private_key_to_der().unwrap(),
    ];
    if let Ok(rsa) = pkey.rsa() {
        out.push(rsa.d().to_vec());
        out.push(rsa.p().unwrap().to_vec());
        out.push(rsa.q().unwrap().to_vec());
    }
    if let Ok(ec) = pkey.ec_key() {
        out.push(ec.private_key().to_vec());
    }
    // The middle of each, in case of re-encoding around it.
    let middles: Vec<Vec<u8>> = out
        .iter()
        .map(|s| s[s.len() / 4..s.len() / 4 + 20].to_vec())
        .collect();
    out.extend(middles);
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

async fn check(key_type: &str) {
    let server = FakeScep::new(true);
    *server.pending.lock().unwrap() = 1;
    let tmp = tempfile::tempdir().unwrap();
    let slot = DeviceDir::open(tmp.path())
        .unwrap()
        .slot("default")
        .unwrap();
    let mut cfg = EnrollConfig::plain("http://127.0.0.1:1/scep", "no-key-leaves");
    cfg.key = key_type.into();
    cfg.retry_delay_secs = 0;
    cfg.ca_thumbprint = Some(server.ca_sha256());
    let challenge = ChallengePassword::new("c");
    enroll(&server, &slot, &cfg, Some(&challenge), None)
        .await
        .unwrap();
    let (first_key, _) = slot.installed().unwrap().unwrap();
    renew(
        &server,
        &slot,
        &cfg,
        Some(&challenge),
        RenewOptions {
            force: true,
            now: None,
        },
    )
    .await
    .unwrap();
    let (second_key, _) = slot.installed().unwrap().unwrap();

    let log = server.log.lock().unwrap();
    assert!(
        log.bodies.len() >= 4 && log.opened.len() >= 4,
        "traffic was recorded"
    );
    // Sanity: the search finds the public key in the decrypted CSRs, so it would find a
    // private one too.
    let spki = first_key.public_key_der().unwrap();
    assert!(log.opened.iter().any(|m| contains(m, &spki)));
    for key in [&first_key, &second_key] {
        for secret in secrets(key) {
            for (i, body) in log.bodies.iter().chain(log.opened.iter()).enumerate() {
                assert!(
                    !contains(body, &secret),
                    "private key material in message {i}"
                );
            }
        }
    }
}

#[tokio::test]
async fn no_rsa_private_key_bytes_in_any_request() {
    check("rsa2048").await;
}

#[tokio::test]
async fn no_ec_private_key_bytes_in_any_request() {
    check("ec256").await;
}
