//! Reliability P29: brute force. Secrets are compared as digests (any presented length is
//! hashed first, so nothing about the secret's length or prefix shows in the time), wrong
//! ones of every length are refused without a panic, and a thousand wrong challenges against
//! one device's request learn nothing and change nothing (no lockout either: a 160-bit
//! challenge cannot be guessed, and a lockout would let anyone deny the device its certificate).

use foundation::secret::{CHALLENGE_BYTES, MAX_SECRET_LEN, Secret};
use policy_module::{NdesPolicy, Rejection, RequesterInfo, VerifyError, VerifyRequest};

use crate::api::{ADMIN, NDES, start};
use crate::both;
use crate::harness::{Harness, enrolled};
use crate::pki::{CsrSpec, csr, ec_key};

#[tokio::test]
async fn bearer_tokens_of_any_length_are_401_without_a_panic() {
    let h = Harness::sqlite().await;
    let s = start(&h).await;
    let near = |t: &str| format!("{t}x");
    let long = "A".repeat(MAX_SECRET_LEN + 1);
    let huge = "A".repeat(8 * 1024);
    for token in [
        "",
        "a",
        &ADMIN[..ADMIN.len() - 1],
        &near(ADMIN),
        &ADMIN.to_uppercase(),
        &long,
        &huge,
    ] {
        let r = s
            .req("get", "/api/v1/devices", None)
            .header("authorization", format!("Bearer {token}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "admin token of {} bytes", token.len());
        let r = s
            .req("post", "/internal/v1/verify", None)
            .header("authorization", format!("Bearer {token}"))
            .json(&serde_json::json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "NDES token of {} bytes", token.len());
    }
    let r = s
        .req("get", "/api/v1/devices", Some(ADMIN))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // The NDES token is checked before the (empty) body: 422/400 proves it passed.
    let r = s
        .req("post", "/internal/v1/verify", Some(NDES))
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_ne!(r.status(), 401);
}

both!(a_thousand_wrong_challenges_against_one_device_change_nothing);

/// How many wrong challenges the brute-force test sends: the catalogue's 10k scaled down for
/// CI (10k took 18 s on SQLite and longer on PostgreSQL in a debug build). Each guess is the
/// same independent digest lookup and no per-device state accrues, so more guesses would
/// only repeat the assertion.
const GUESSES: usize = 1_000;

async fn a_thousand_wrong_challenges_against_one_device_change_nothing(h: Harness) {
    let e = enrolled(&h, "d1").await;
    let key = ec_key();
    // The CSR carries no challenge; each guess travels beside it, as ndes-proxy passes it.
    let spec = CsrSpec {
        challenge: None,
        ..CsrSpec::matching(&e.profile().expected, &e.challenge())
    };
    let der = csr(&key, &spec);
    let guess = |challenge: Secret, tx: String| VerifyRequest {
        facts: None,
        csr_der: der.clone(),
        challenge: Some(challenge),
        transaction_id: tx,
        template: None,
        signer_cert_der: None,
        requester: RequesterInfo::default(),
    };
    let mut unknown = 0;
    for i in 0..GUESSES {
        let wrong = Secret::generate(CHALLENGE_BYTES).unwrap();
        match h
            .svc
            .verify_request(guess(wrong, format!("tx-guess-{i}")))
            .await
        {
            Err(VerifyError::Rejected(Rejection::ChallengeUnknown)) => unknown += 1,
            other => panic!("guess {i}: {other:?}"),
        }
    }
    assert_eq!(unknown, GUESSES);
    for i in [0, GUESSES - 1] {
        let tx = format!("tx-guess-{i}");
        assert!(h.svc.store().get_request(&tx).await.unwrap().is_none());
    }
    // The device's own challenge was neither used up nor locked out by the guesses.
    let grant = h
        .svc
        .verify_request(guess(Secret::new(e.challenge()), "tx-real".into()))
        .await
        .unwrap();
    assert_eq!(grant.device_id.as_deref(), Some("d1"));
}
