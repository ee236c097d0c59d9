//! The MDM channel against policy-module's real HTTP API (127.0.0.1, temporary SQLite):
//! registration, check-in with rendered profiles and fresh challenges, the CSR the policy
//! module's own parser reads back as rendered, error reports, wipe and retire.
//!
//! SCEP here is the in-process responder (ndes-proxy + ca-mock runs are in `e2e.rs`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::fake_scep::FakeScep;
use common::policy::{ADMIN_TOKEN, Policy};
use device_agent::agent::{Agent, SyncOptions};
use device_agent::mdm::{DeviceRegistration, MdmClient, SecretString, StatusReport};
use device_agent::{DeviceDir, DeviceKey, KeySpec, ScepTransport};
use openssl::hash::MessageDigest;
use policy_module::model::KeyAlgorithm;
use testkit::transport::Recording;

fn registration(id: &str) -> DeviceRegistration {
    DeviceRegistration {
        id: Some(id.into()),
        name: format!("LAPTOP-{id}"),
        platform: "windows".into(),
        owner_upn: Some(format!("{id}@contoso.example")),
        ..DeviceRegistration::default()
    }
}

async fn register(policy: &Policy, dir: &DeviceDir, id: &str) -> MdmClient {
    let mdm = MdmClient::new(reqwest::Client::new(), &policy.url);
    let reg = mdm
        .register(dir, &SecretString::new(ADMIN_TOKEN), &registration(id))
        .await
        .unwrap();
    assert_eq!(reg.device_id, id);
    policy.add_to_group(id).await;
    mdm
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkin_renders_a_csr_the_policy_module_reads_back_as_its_profile() {
    let policy = Policy::start().await;
    policy
        .profile(
            "wifi",
            "http://127.0.0.1:1/scep",
            &"ab".repeat(32),
            (KeyAlgorithm::Ec, 256),
        )
        .await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = DeviceDir::open(tmp.path()).unwrap();
    let mdm = register(&policy, &dir, "dev-1").await;
    let agent = Agent::new(dir.clone(), mdm.clone(), Arc::new(FakeScep::new(false)));
    let (reg, cred) = agent.registration().unwrap();
    let mode = std::fs::metadata(tmp.path().join("credential")).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
        0o600
    );

    let answer = mdm
        .checkin(&reg.device_id, &cred, &StatusReport::default())
        .await
        .unwrap();
    assert_eq!(answer.state, "active");
    let profile = &answer.profiles[0];
    assert!(
        !format!("{profile:?}").contains(profile.challenge.expose()),
        "challenge redacted"
    );
    let config = profile.enroll_config().unwrap();
    let key = DeviceKey::generate(KeySpec::EcP256).unwrap();
    let challenge = scep::csr::ChallengePassword::new(profile.challenge.expose());
    let der = config
        .csr
        .build(&key, Some(&challenge), MessageDigest::sha256())
        .unwrap();

    let parsed = policy_api::csr::parse(&der).unwrap();
    let subject: Vec<(String, String)> = parsed
        .subject
        .iter()
        .map(|a| (a.attr.name().to_string(), a.value.clone()))
        .collect();
    assert_eq!(
        subject,
        [("CN", "LAPTOP-dev-1"), ("OU", "Devices"), ("O", "Contoso")]
            .map(|(a, v)| (a.to_string(), v.to_string()))
    );
    let sans: Vec<String> = parsed
        .sans
        .iter()
        .map(|s| format!("{:?}={}", s.kind, s.value))
        .collect();
    assert_eq!(
        sans,
        [
            "Dns=LAPTOP-dev-1.contoso.example",
            "Upn=dev-1@contoso.example"
        ]
    );
    assert_eq!(parsed.key_size, 256);
    assert_eq!(parsed.ekus.unwrap(), ["1.3.6.1.5.5.7.3.2"]);
    assert_eq!(parsed.key_usage.unwrap().unwrap().len(), 2);
    assert_eq!(
        parsed.challenge.unwrap().expose(),
        profile.challenge.expose()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_scep_server_is_reported_as_an_enrollment_error() {
    let policy = Policy::start().await;
    policy
        .profile(
            "vpn",
            "http://127.0.0.1:1/scep",
            &"ab".repeat(32),
            (KeyAlgorithm::Rsa, 2048),
        )
        .await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = DeviceDir::open(tmp.path()).unwrap();
    let mdm = register(&policy, &dir, "dev-2").await;
    let http = device_agent::HttpTransport::new(Duration::from_secs(2)).unwrap();
    let agent = Agent::new(dir, mdm, Arc::new(http) as Arc<dyn ScepTransport>);
    let summary = agent.sync(SyncOptions::default()).await.unwrap();
    assert_eq!(summary.errors.len(), 1);
    assert!(
        summary.errors[0].message.starts_with("transport"),
        "{:?}",
        summary.errors
    );
    let audit = policy
        .svc
        .store()
        .list_audit(Some("dev-2"), 50)
        .await
        .unwrap();
    let reported = audit
        .iter()
        .find(|e| e.event == "enrollment_error")
        .unwrap();
    assert_eq!(reported.profile_id.as_deref(), Some("vpn"));
    assert!(
        !tmp.path().join("reports.json").exists(),
        "delivered, not kept"
    );
}

async fn enrolled_device(policy: &Policy, tmp: &tempfile::TempDir, id: &str) -> Agent {
    let fake = FakeScep::new(true);
    policy
        .profile(
            "wifi",
            "http://127.0.0.1:1/scep",
            &fake.ca_sha256(),
            (KeyAlgorithm::Rsa, 2048),
        )
        .await;
    let dir = DeviceDir::open(tmp.path()).unwrap();
    let mdm = register(policy, &dir, id).await;
    let agent = Agent::new(dir.clone(), mdm, Arc::new(fake));
    let summary = agent.sync(SyncOptions::default()).await.unwrap();
    assert_eq!(summary.installed.len(), 1, "{summary:?}");
    assert!(dir.slot("wifi").unwrap().installed().unwrap().is_some());
    // A second check-in: installed and not due, nothing to do.
    let again = agent.sync(SyncOptions::default()).await.unwrap();
    assert_eq!(again.up_to_date, ["wifi"]);
    agent
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wipe_deletes_every_key_and_certificate_and_is_acknowledged() {
    let policy = Policy::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let agent = enrolled_device(&policy, &tmp, "dev-3").await;
    let plain = DeviceDir::open(tmp.path())
        .unwrap()
        .slot("default")
        .unwrap();
    std::fs::create_dir_all(plain.path()).unwrap();
    std::fs::write(plain.path().join("key.pem"), b"plain-mode key").unwrap();

    policy
        .svc
        .lifecycle("dev-3", policy_module::admin::Lifecycle::Wipe)
        .await
        .unwrap();
    let summary = agent.sync(SyncOptions::default()).await.unwrap();
    assert!(summary.wiped && summary.installed.is_empty());
    assert!(
        !tmp.path().join("certs").exists(),
        "every key and certificate is gone"
    );
    assert!(
        !tmp.path().join("credential").exists() && !tmp.path().join("registration.json").exists()
    );
    assert!(
        policy
            .svc
            .store()
            .pending_commands("dev-3")
            .await
            .unwrap()
            .is_empty(),
        "acknowledged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retire_removes_management_and_mdm_certificates_but_keeps_plain_slots() {
    let policy = Policy::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let agent = enrolled_device(&policy, &tmp, "dev-4").await;
    let plain = DeviceDir::open(tmp.path())
        .unwrap()
        .slot("default")
        .unwrap();
    std::fs::create_dir_all(plain.path()).unwrap();
    std::fs::write(plain.path().join("cert.pem"), b"plain").unwrap();

    policy
        .svc
        .lifecycle("dev-4", policy_module::admin::Lifecycle::Retire)
        .await
        .unwrap();
    let summary = agent.sync(SyncOptions::default()).await.unwrap();
    assert!(summary.retired);
    assert!(!tmp.path().join("certs/wifi").exists());
    assert!(plain.path().join("cert.pem").exists());
    assert!(
        policy
            .svc
            .store()
            .pending_commands("dev-4")
            .await
            .unwrap()
            .is_empty()
    );
    let err = agent.sync(SyncOptions::default()).await.unwrap_err();
    assert!(
        matches!(err, device_agent::Error::Missing(_)),
        "no longer managed: {err:?}"
    );
}

/// Makes policy-module know the certificate the fake SCEP server issued to `dir`'s `wifi`
/// slot, as ndes-proxy would: VerifyRequest with the PKCSReq's CSR, then Notify.
async fn record_issuance(policy: &Policy, fake: &FakeScep, dir: &DeviceDir) -> String {
    use policy_module::{NdesPolicy, Notification, Outcome, RequesterInfo, VerifyRequest};
    let (csr_der, transaction_id) = {
        let log = fake.log.lock().unwrap();
        let i = log.message_types.iter().position(|t| t == "19").unwrap();
        (log.opened[i].clone(), log.transaction_ids[i].clone())
    };
    policy
        .svc
        .verify_request(VerifyRequest {
            facts: None,
            csr_der,
            challenge: None,
            transaction_id: transaction_id.clone(),
            template: None,
            signer_cert_der: None,
            requester: RequesterInfo::default(),
        })
        .await
        .unwrap();
    let (_, chain) = dir.slot("wifi").unwrap().installed().unwrap().unwrap();
    let der = chain[0].to_der().unwrap();
    let thumbprint = hex::encode(chain[0].digest(MessageDigest::sha256()).unwrap());
    let serial = foundation::Serial::of_certificate(&chain[0]).unwrap();
    policy
        .svc
        .notify(Notification {
            transaction_id,
            outcome: Outcome::Issued {
                serial,
                thumbprint_sha256: thumbprint.clone(),
                not_after: 0,
                certificate_der: der,
            },
        })
        .await
        .unwrap();
    thumbprint
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_reported_revoked_is_deleted_and_replaced_by_a_fresh_pkcsreq() {
    use policy_module::admin::Lifecycle;
    // A block configured to revoke for good: the default hold is released by unblock and
    // the certificate kept (docs/decisions.md #11).
    let mut config = policy_module::ServiceConfig::default();
    config.revocation_reasons.block = "cessationOfOperation".into();
    let policy = Policy::start_with(config).await;
    let rec = Arc::new(Recording::new(FakeScep::new(true)));
    policy
        .profile(
            "wifi",
            "http://127.0.0.1:1/scep",
            &rec.inner.ca_sha256(),
            (KeyAlgorithm::Rsa, 2048),
        )
        .await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = DeviceDir::open(tmp.path()).unwrap();
    let mdm = register(&policy, &dir, "dev-5").await;
    let agent = Agent::new(dir.clone(), mdm, rec.clone());
    assert_eq!(
        agent
            .sync(SyncOptions::default())
            .await
            .unwrap()
            .installed
            .len(),
        1
    );
    let old = record_issuance(&policy, &rec.inner, &dir).await;
    let slot = dir.slot("wifi").unwrap();
    let (old_key, old_chain) = slot.installed().unwrap().unwrap();
    let again = agent.sync(SyncOptions::default()).await.unwrap();
    assert_eq!(again.up_to_date, ["wifi"]);
    assert!(again.revoked.is_empty());

    policy
        .svc
        .lifecycle("dev-5", Lifecycle::Block)
        .await
        .unwrap();
    policy
        .svc
        .lifecycle("dev-5", Lifecycle::Unblock)
        .await
        .unwrap();
    let sent_before = rec.bodies().len();
    let summary = agent.sync(SyncOptions::default()).await.unwrap();
    assert_eq!(summary.revoked, ["wifi"], "{summary:?}");
    assert_eq!(summary.installed.len(), 1, "{summary:?}");
    let new = &summary.installed[0].1;
    assert_ne!(new.thumbprint_sha256, old);
    let (new_key, _) = slot.installed().unwrap().unwrap();
    assert_ne!(
        new_key.public_key_der().unwrap(),
        old_key.public_key_der().unwrap(),
        "a new key"
    );

    // One PKCSReq, signed by a self-signed certificate of the new key, not by the revoked one.
    let bodies: Vec<Vec<u8>> = rec
        .bodies()
        .into_iter()
        .skip(sent_before)
        .filter(|b| !b.is_empty())
        .collect();
    assert_eq!(bodies.len(), 1);
    let types = rec.inner.log.lock().unwrap().message_types.clone();
    assert_eq!(types.last().map(String::as_str), Some("19"), "{types:?}");
    assert!(!types.iter().any(|t| t == "17"), "no RenewalReq: {types:?}");
    let decoded = scep::server::DecodedRequest::decode(&bodies[0]).unwrap();
    let verified = decoded.verify(&scep::AlgorithmPolicy::default()).unwrap();
    let signer = verified.signer_certificate().clone();
    assert_ne!(signer.to_der().unwrap(), old_chain[0].to_der().unwrap());
    assert!(
        signer.verify(&signer.public_key().unwrap()).unwrap(),
        "self-signed"
    );
    assert_eq!(
        signer.public_key().unwrap().public_key_to_der().unwrap(),
        new_key.public_key_der().unwrap()
    );

    // The MDM still names the old thumbprint; the new certificate is left alone.
    let later = agent.sync(SyncOptions::default()).await.unwrap();
    assert_eq!(later.up_to_date, ["wifi"]);
    assert!(later.revoked.is_empty());
}
