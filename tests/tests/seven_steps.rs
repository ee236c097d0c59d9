//! The seven steps of Figure 7, each asserted by its observable effect: the profile's version
//! (1), the check-in payload (2), the key on the device and the request that left it (3), the
//! challenge reserved then consumed by the policy module and refused on a second use (4, 5),
//! ca-mock's record (6), Notify and the device's report in the inventory, and the chain
//! accepted by `openssl verify` (7).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;

use device_agent::ScepRequest;
use foundation::secret::Secret;
use openssl::hash::MessageDigest;
use policy_module::model::CertStatus;
use scep::RequestBody;
use scep_lab_tests::*;

const NAME: &str = "LAB-LAPTOP-01";

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seven_steps_each_leave_their_observable_effect() {
    let lab = TestLab::start().await.unwrap();

    // [1] The admin creates the profile (version 1) and assigns it to the device.
    let profile = lab.profile(PROFILE, |_| {}).await.unwrap();
    assert_eq!(profile.version, 1);
    let stored = lab
        .policy()
        .store()
        .get_profile(PROFILE)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.version, 1);
    assert_eq!(stored.spec.subject_name_format, SUBJECT_FORMAT);
    let device = lab.targeted_device(NAME, PROFILE).await.unwrap();
    let view = lab.policy().device_view(&device.id).await.unwrap();
    assert_eq!(view.profiles, [PROFILE]);

    // [2] Check-in: the profile rendered for this device, with a one-time challenge.
    let checkin = device.checkin().await.unwrap();
    assert_eq!(checkin.state, "active");
    assert_eq!(checkin.profiles.len(), 1);
    let rendered = &checkin.profiles[0];
    assert_eq!(rendered.profile_id, PROFILE);
    assert_eq!(rendered.version, 1);
    let subject: Vec<(String, String)> = rendered
        .subject
        .iter()
        .map(|a| (a.attr.name().to_owned(), a.value.clone()))
        .collect();
    assert_eq!(
        subject,
        [
            ("CN".to_owned(), NAME.to_owned()),
            ("OU".to_owned(), "Devices".to_owned()),
            ("O".to_owned(), "scep-lab".to_owned()),
        ]
    );
    assert_eq!(rendered.subject_alternative_names.len(), 1);
    assert_eq!(
        rendered.subject_alternative_names[0].value,
        format!("{NAME}.devices.scep-lab.test")
    );
    let first_challenge = rendered.challenge.expose().to_owned();
    assert!(
        first_challenge.len() >= 32 && first_challenge.bytes().all(|b| b.is_ascii_hexdigit()),
        "a challenge of at least 128 bits"
    );
    assert_eq!(rendered.ca_thumbprint, lab.root_fingerprint());
    assert_eq!(rendered.scep_server_urls, [lab.scep_url()]);
    let audit = lab.audit(Some(&device.id)).await.unwrap();
    assert!(
        audit
            .iter()
            .any(|e| e.event == "challenge_issued" && e.profile_id.as_deref() == Some(PROFILE)),
        "the challenge is audited (by reference): {audit:?}"
    );
    assert!(
        !audit
            .iter()
            .any(|e| e.detail.as_deref().unwrap_or("").contains(&first_challenge)),
        "the challenge value never reaches the audit trail"
    );

    // [3] The device enrolls: its key is generated locally, stored 0600 and never sent.
    let summary = device.sync().await.unwrap();
    assert!(summary.errors.is_empty(), "{:?}", summary.errors);
    assert_eq!(summary.installed.len(), 1);
    let (installed_profile, enrolled) = &summary.installed[0];
    assert_eq!(installed_profile, PROFILE);
    let slot = device.dir.slot(PROFILE).unwrap();
    let key_mode = std::fs::metadata(slot.path().join("key.pem"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(key_mode & 0o777, 0o600, "key.pem is 0600");
    let (key, chain) = device.installed(PROFILE).unwrap().unwrap();
    let cert = chain[0].clone();
    assert!(cert.public_key().unwrap().public_eq(key.pkey()));
    assert!(
        !slot.path().join("next-key.pem").exists()
            && !slot.path().join("transaction.json").exists(),
        "no transaction left in flight"
    );

    let traffic = device.traffic.requests();
    let ops: Vec<&str> = traffic.iter().map(|(r, _)| r.operation()).collect();
    assert!(
        ops.contains(&"GetCACaps") && ops.contains(&"GetCACert"),
        "{ops:?}"
    );
    let pki: Vec<&Vec<u8>> = traffic
        .iter()
        .filter_map(|(r, _)| match r {
            ScepRequest::PkiOperationPost(b) | ScepRequest::PkiOperationGet(b) => Some(b),
            _ => None,
        })
        .collect();
    assert_eq!(pki.len(), 1, "one PKCSReq, answered at once");
    let (ra_cert, ra_key) = lab.ra_decryption().await.unwrap();
    let (body, _) = open_request(pki[0], &ra_cert, &ra_key).unwrap();
    let RequestBody::PkcsReq(csr) = &body else {
        panic!("the device sent {:?}, not a PKCSReq", body.message_type());
    };
    assert_eq!(csr.public_key_der(), key.public_key_der().unwrap());
    let used_challenge = csr
        .challenge_password()
        .expect("the CSR carries the challenge")
        .expose()
        .to_owned();
    assert_ne!(
        used_challenge, first_challenge,
        "every check-in hands out a fresh challenge"
    );
    let csr_subject = name_values(&csr.subject_name().unwrap());
    assert_eq!(csr_subject, [NAME, "Devices", "scep-lab"]);
    let pkey = key.pkey();
    let mut secrets = vec![
        pkey.private_key_to_pkcs8().unwrap(),
        pkey.private_key_to_der().unwrap(),
    ];
    let rsa = pkey.rsa().unwrap();
    secrets.push(rsa.d().to_vec());
    secrets.push(rsa.p().unwrap().to_vec());
    let opened = body.to_der();
    assert!(contains(&opened, &key.public_key_der().unwrap()));
    for s in &secrets {
        for (req, _) in &traffic {
            assert!(!contains(req.body(), s), "private key bytes in a request");
        }
        assert!(
            !contains(&opened, s),
            "private key bytes in the messageData"
        );
    }

    // [4][5] VerifyRequest reserved the challenge for this transaction, Notify consumed it.
    let tx = &enrolled.transaction_id;
    let row = lab
        .policy()
        .store()
        .get_challenge(&Secret::new(used_challenge.clone()).digest())
        .await
        .unwrap()
        .expect("the challenge is stored (hashed)");
    assert_eq!(row.kind, "profile");
    assert_eq!(row.device_id.as_deref(), Some(device.id.as_str()));
    assert_eq!(row.profile_id.as_deref(), Some(PROFILE));
    assert_eq!(row.profile_version, Some(1));
    assert_eq!(row.reserved_tx.as_deref(), Some(tx.as_str()));
    assert!(row.consumed_at.is_some(), "the challenge is consumed");
    let events: Vec<String> = lab
        .audit(None)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.transaction_id.as_deref() == Some(tx.as_str()))
        .map(|e| e.event)
        .collect();
    let verified = events.iter().position(|e| e == "challenge_verified");
    let consumed = events.iter().position(|e| e == "challenge_consumed");
    assert!(
        matches!((verified, consumed), (Some(v), Some(c)) if v < c),
        "reserved (verified) then consumed (Notify): {events:?}"
    );

    // A second use of the consumed challenge fails and issues nothing.
    let before = lab.ca_records().await.unwrap().len();
    let raw = lab.raw_scep().await.unwrap();
    let config = rendered.enroll_config().unwrap();
    let other_key = device_key(device_agent::KeySpec::Rsa(2048)).unwrap();
    let csr_der = config
        .csr
        .build(
            &other_key,
            Some(&scep::csr::ChallengePassword::new(used_challenge)),
            MessageDigest::sha256(),
        )
        .unwrap();
    let (retry_tx, rep) = raw.pkcs_req(&csr_der, other_key.pkey()).await.unwrap();
    assert!(is_failure(&rep, scep::FailInfo::BadRequest), "{rep:?}");
    assert_eq!(
        lab.rejection(retry_tx.as_str()).await.unwrap().as_deref(),
        Some("ChallengeAlreadyUsed")
    );
    assert_eq!(lab.ca_records().await.unwrap().len(), before);

    // [6] ca-mock recorded the certificate under the template, keyed by the transaction.
    let serial = serial_of(&cert).unwrap();
    assert_eq!(normalize_serial(&enrolled.serial_hex), serial);
    let record = lab.ca_record(&serial).await.unwrap();
    assert_eq!(record.template, TEMPLATE);
    assert_eq!(&record.request_id, tx);
    assert_eq!(record.status, ca_mock::store::CertStatus::Good);
    use base64::Engine;
    let der = base64::engine::general_purpose::STANDARD
        .decode(&record.certificate)
        .unwrap();
    assert_eq!(
        der,
        cert.to_der().unwrap(),
        "the CA's record is the installed certificate"
    );
    let cn = name_values(cert.subject_name());
    assert_eq!(cn, [NAME, "Devices", "scep-lab"]);
    let sans: Vec<String> = cert
        .subject_alt_names()
        .unwrap()
        .iter()
        .filter_map(|n| n.dnsname().map(str::to_owned))
        .collect();
    assert_eq!(sans, [format!("{NAME}.devices.scep-lab.test")]);

    // [7] Notify put it in the device's inventory; the device's report marked it installed.
    let inv = lab.inventory_cert(&device.id, &serial).await.unwrap();
    assert_eq!(&inv.transaction_id, tx);
    assert_eq!(inv.profile_id.as_deref(), Some(PROFILE));
    assert_eq!(inv.profile_version, Some(1));
    assert_eq!(inv.status, CertStatus::Issued);
    assert_eq!(
        inv.thumbprint_sha256,
        hex::encode(cert.digest(MessageDigest::sha256()).unwrap())
    );
    assert!(
        inv.installed_at.is_some(),
        "the device's status report was recorded"
    );
    let audit = lab.audit(Some(&device.id)).await.unwrap();
    assert!(audit.iter().any(|e| e.event == "certificate_installed"));

    // The chain verifies with the OpenSSL CLI, to the root the profile pins.
    let root = chain
        .iter()
        .find(|c| hex::encode(c.digest(MessageDigest::sha256()).unwrap()) == lab.root_fingerprint())
        .expect("the installed chain holds the pinned root");
    let intermediates: Vec<&openssl::x509::X509> = chain[1..]
        .iter()
        .filter(|c| c.to_der().unwrap() != root.to_der().unwrap())
        .collect();
    assert!(!intermediates.is_empty(), "the issuing CA is in the chain");
    let dir = lab.tmp();
    let root_pem = write_pem(dir, "root.pem", &[root]).unwrap();
    let untrusted = write_pem(dir, "untrusted.pem", &intermediates).unwrap();
    let leaf = write_pem(dir, "leaf.pem", &[&cert]).unwrap();
    if testkit::binary("openssl").is_some() {
        let out = testkit::openssl(
            &[
                "verify".as_ref(),
                "-CAfile".as_ref(),
                root_pem.as_os_str(),
                "-untrusted".as_ref(),
                untrusted.as_os_str(),
                "-purpose".as_ref(),
                "sslclient".as_ref(),
                leaf.as_os_str(),
            ],
            None,
        )
        .unwrap();
        assert!(out.success(), "openssl verify: {out:?}");
    }

    lab.shutdown().await;
}
