//! VerifyRequest / Notify: a test per rejection reason, retransmission, races, renewal.

use foundation::secret::Secret;
use policy_module::admin::Lifecycle;
use policy_module::model::{NameAttr, San, SanKind, SubjectAttr};
use policy_module::store::Assignment;
use policy_module::{
    ChallengeError, ChallengeRequest, NdesPolicy, Notification, NotifyError, Outcome, Rejection,
    RequesterInfo, VerifyError, VerifyRequest,
};

use crate::both;
use crate::der::{oid, printable, seq, set, tlv, utf8};
use crate::harness::{Enrolled, Harness, allow_admin_template, enrolled, profile_spec};
use crate::pki::{CsrSpec, TestCa, csr, ec_key, ec384_key, rsa_key};

fn request(csr_der: Vec<u8>, tx: &str) -> VerifyRequest {
    VerifyRequest {
        facts: None,
        csr_der,
        challenge: None,
        transaction_id: tx.to_string(),
        template: None,
        signer_cert_der: None,
        requester: RequesterInfo::default(),
    }
}

fn matching(e: &Enrolled) -> CsrSpec {
    CsrSpec::matching(&e.profile().expected, &e.challenge())
}

async fn reject(h: &Harness, req: VerifyRequest) -> Rejection {
    match h.svc.verify_request(req).await {
        Err(VerifyError::Rejected(r)) => r,
        other => panic!("expected a rejection, got {other:?}"),
    }
}

/// Verifies `spec` with a fresh key; the rejection.
async fn reject_spec(h: &Harness, spec: &CsrSpec) -> Rejection {
    reject(h, request(csr(&ec_key(), spec), "tx-reject")).await
}

async fn issue(
    h: &Harness,
    ca: &TestCa,
    key: &openssl::pkey::PKey<openssl::pkey::Private>,
    tx: &str,
) -> (Vec<u8>, String, String) {
    let (der, serial, thumb) = ca.issue(key, 365);
    h.svc
        .notify(Notification {
            transaction_id: tx.into(),
            outcome: Outcome::Issued {
                serial: foundation::Serial::from_hex(&serial).unwrap(),
                thumbprint_sha256: thumb.clone(),
                not_after: 0,
                certificate_der: der.clone(),
            },
        })
        .await
        .unwrap();
    (der, serial, thumb)
}

both!(
    grants_the_rendered_request_and_notify_records_the_certificate,
    retransmission_gets_the_same_grant_and_notify_is_idempotent,
    rejects_undecodable_requests,
    rejects_a_broken_self_signature,
    rejects_a_missing_challenge,
    rejects_malformed_duplicated_or_mismatched_challenges,
    rejects_an_unknown_challenge,
    rejects_an_expired_challenge,
    challenge_expiry_boundary_and_the_clock_that_decides_it,
    rejects_a_used_challenge,
    rejects_a_reused_transaction_id_with_another_csr,
    rejects_another_template,
    rejects_subject_name_deviations,
    an_admin_request_names_itself_in_any_string_type,
    rejects_subject_alt_name_deviations,
    rejects_key_usage_beyond_the_profile,
    rejects_the_wrong_key_algorithm_or_size,
    rejects_eku_beyond_the_profile,
    rejects_when_the_profile_no_longer_targets_the_device,
    rejects_a_challenge_for_a_device_no_longer_in_inventory,
    rejects_blocked_retired_and_wiped_devices,
    fifty_concurrent_verifies_with_one_challenge_grant_exactly_once,
    fifty_concurrent_verifies_across_two_instances_grant_exactly_once,
    failed_notify_keeps_the_challenge_for_the_same_request_only,
    notify_refuses_unknown_transactions_and_foreign_certificates,
    renews_with_a_current_certificate_and_refuses_others,
    mscep_admin_challenges_respect_password_max_and_single_use,
    concurrent_admin_mints_never_exceed_password_max,
    expired_unused_challenges_are_pruned_by_the_worker,
    a_closed_store_is_unavailable_not_a_rejection,
);

async fn concurrent_admin_mints_never_exceed_password_max(h: Harness) {
    let mut settings = h.svc.challenge_settings().await.unwrap();
    settings.password_max = 3;
    h.svc.set_challenge_settings(&settings).await.unwrap();
    allow_admin_template(&h.svc, "IPSECIntermediateOffline").await;
    let other = h.reopen().await;
    let mut tasks = Vec::new();
    for i in 0..24 {
        let svc = if i % 2 == 0 {
            h.svc.clone()
        } else {
            other.clone()
        };
        tasks.push(tokio::spawn(async move {
            svc.generate_challenge(ChallengeRequest {
                template: "IPSECIntermediateOffline".into(),
                requester: format!("admin-{i}"),
            })
            .await
        }));
    }
    let mut granted = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => granted += 1,
            Err(ChallengeError::CacheFull) => {}
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!(granted, 3, "PasswordMax is exact across two instances");
}

async fn expired_unused_challenges_are_pruned_by_the_worker(h: Harness) {
    use policy_module::outbox::{OutboxConfig, OutboxWorker, PRUNE_GRACE_SECS};
    let e = enrolled(&h, "d1").await;
    let ca = crate::fake_ca::FakeCa::new(crate::fake_ca::Mode::Ok);
    let worker = OutboxWorker::new(
        h.svc.store().clone(),
        std::sync::Arc::new(ca),
        OutboxConfig::default(),
        h.svc.outbox_wake(),
    );
    assert_eq!(
        worker.maintain().await.unwrap(),
        0,
        "nothing has expired yet"
    );
    // Expired but within the grace period: kept (it still answers ChallengeExpired).
    h.advance(61 * 60).await;
    assert_eq!(worker.maintain().await.unwrap(), 0);
    assert_eq!(
        reject_spec(&h, &matching(&e)).await,
        Rejection::ChallengeExpired
    );
    h.advance(PRUNE_GRACE_SECS).await;
    assert!(worker.maintain().await.unwrap() >= 1);
    assert_eq!(
        reject_spec(&h, &matching(&e)).await,
        Rejection::ChallengeUnknown
    );
}

async fn grants_the_rendered_request_and_notify_records_the_certificate(h: Harness) {
    let e = enrolled(&h, "d1").await;
    let key = ec_key();
    let grant = h
        .svc
        .verify_request(request(csr(&key, &matching(&e)), "tx-1"))
        .await
        .unwrap();
    assert_eq!(grant.template, "DeviceAuth");
    assert_eq!(grant.device_id.as_deref(), Some("d1"));
    assert_eq!(grant.profile_id.as_deref(), Some("p1"));
    assert_eq!(grant.profile_version, Some(1));
    assert_eq!(
        grant.subject,
        vec![
            NameAttr {
                attr: SubjectAttr::CN,
                value: "LAPTOP-d1".into()
            },
            NameAttr {
                attr: SubjectAttr::OU,
                value: "Devices".into()
            },
            NameAttr {
                attr: SubjectAttr::O,
                value: "Contoso".into()
            },
        ]
    );
    assert!(grant.subject_alternative_names.contains(&San {
        kind: SanKind::Upn,
        value: "alice@contoso.example".into()
    }));
    assert_eq!(grant.validity_days, 365);
    assert!(!grant.renewal);

    let ca = TestCa::new();
    let (_, serial, thumb) = issue(&h, &ca, &key, "tx-1").await;
    let view = h.svc.device_view("d1").await.unwrap();
    assert_eq!(view.certificates.len(), 1);
    assert_eq!(view.certificates[0].serial_hex, serial);
    assert_eq!(view.certificates[0].thumbprint_sha256, thumb);
    let audit = h.svc.store().list_audit(None, 50).await.unwrap();
    let events: Vec<&str> = audit.iter().map(|a| a.event.as_str()).collect();
    for expected in [
        "challenge_issued",
        "challenge_verified",
        "challenge_consumed",
    ] {
        assert!(
            events.contains(&expected),
            "{expected} missing from {events:?}"
        );
    }
    let secret = e.challenge();
    assert!(audit.iter().all(|a| !format!("{a:?}").contains(&secret)));
}

async fn retransmission_gets_the_same_grant_and_notify_is_idempotent(h: Harness) {
    let e = enrolled(&h, "d1").await;
    let key = ec_key();
    let der = csr(&key, &matching(&e));
    let first = h
        .svc
        .verify_request(request(der.clone(), "tx-1"))
        .await
        .unwrap();
    let again = h
        .svc
        .verify_request(request(der.clone(), "tx-1"))
        .await
        .unwrap();
    assert_eq!(first, again);
    let ca = TestCa::new();
    let (cert, serial, thumb) = issue(&h, &ca, &key, "tx-1").await;
    // After issuance the same request still verifies (the CA returns the same certificate).
    assert_eq!(
        h.svc.verify_request(request(der, "tx-1")).await.unwrap(),
        first
    );
    let repeat = Notification {
        transaction_id: "tx-1".into(),
        outcome: Outcome::Issued {
            serial: foundation::Serial::from_hex(&serial).unwrap(),
            thumbprint_sha256: thumb,
            not_after: 0,
            certificate_der: cert,
        },
    };
    h.svc.notify(repeat).await.unwrap();
    assert_eq!(h.svc.device_view("d1").await.unwrap().certificates.len(), 1);
}

async fn rejects_undecodable_requests(h: Harness) {
    let e = enrolled(&h, "d1").await;
    for bad in [vec![], vec![0x30, 0x82, 0x06], b"not a csr".to_vec()] {
        assert_eq!(
            reject(&h, request(bad, "tx")).await,
            Rejection::CertificateRequestDecodingFailed
        );
    }
    let mut trailing = csr(&ec_key(), &matching(&e));
    trailing.push(0);
    assert_eq!(
        reject(&h, request(trailing, "tx")).await,
        Rejection::CertificateRequestDecodingFailed
    );
    let good = csr(&ec_key(), &matching(&e));
    for tx in ["", "has space", &"x".repeat(129)] {
        assert_eq!(
            reject(&h, request(good.clone(), tx)).await,
            Rejection::CertificateRequestDecodingFailed
        );
    }
}

async fn rejects_a_broken_self_signature(h: Harness) {
    let e = enrolled(&h, "d1").await;
    let spec = CsrSpec {
        break_signature: true,
        ..matching(&e)
    };
    assert_eq!(
        reject_spec(&h, &spec).await,
        Rejection::SignatureValidationFailed
    );
}

async fn rejects_a_missing_challenge(h: Harness) {
    let e = enrolled(&h, "d1").await;
    let spec = CsrSpec {
        challenge: None,
        ..matching(&e)
    };
    assert_eq!(
        reject_spec(&h, &spec).await,
        Rejection::ChallengePasswordMissing
    );
}

async fn rejects_malformed_duplicated_or_mismatched_challenges(h: Harness) {
    let e = enrolled(&h, "d1").await;
    for bad in [
        "short",
        "zz",
        &e.challenge().to_lowercase(),
        &format!("{}0", e.challenge()),
    ] {
        let spec = CsrSpec {
            challenge: Some(bad.to_string()),
            ..matching(&e)
        };
        assert_eq!(
            reject_spec(&h, &spec).await,
            Rejection::ChallengeDecodingError,
            "{bad}"
        );
    }
    let twice = CsrSpec {
        second_challenge: Some(e.challenge()),
        ..matching(&e)
    };
    assert_eq!(
        reject_spec(&h, &twice).await,
        Rejection::ChallengeDecodingError
    );
    let mut req = request(csr(&ec_key(), &matching(&e)), "tx");
    req.challenge = Some(Secret::new("0".repeat(40)));
    assert_eq!(reject(&h, req).await, Rejection::ChallengeDecodingError);
    // The challenge beside the CSR alone is enough.
    let mut req = request(
        csr(
            &ec_key(),
            &CsrSpec {
                challenge: None,
                ..matching(&e)
            },
        ),
        "tx-side",
    );
    req.challenge = Some(Secret::new(e.challenge()));
    assert!(h.svc.verify_request(req).await.is_ok());
}

async fn rejects_an_unknown_challenge(h: Harness) {
    let e = enrolled(&h, "d1").await;
    let forged = Secret::generate(20).unwrap();
    let spec = CsrSpec {
        challenge: Some(forged.expose().to_string()),
        ..matching(&e)
    };
    assert_eq!(reject_spec(&h, &spec).await, Rejection::ChallengeUnknown);
}

async fn rejects_an_expired_challenge(h: Harness) {
    let e = enrolled(&h, "d1").await;
    h.advance(59 * 60).await;
    let spec = matching(&e);
    // Still valid at 59 minutes (the default validity is 60).
    let ok = h
        .svc
        .verify_request(request(csr(&ec_key(), &spec), "tx-ok"))
        .await;
    assert!(ok.is_ok(), "{ok:?}");
    let e2 = enrolled(&h, "d2").await;
    h.advance(61 * 60).await;
    assert_eq!(
        reject_spec(&h, &matching(&e2)).await,
        Rejection::ChallengeExpired
    );
}

/// Reliability P3: a challenge is valid strictly before `expires_at` (the store reserves with
/// `expires_at > now`): at 3599 s of a 3600 s validity it is accepted, at 3600 s it has
/// expired. On PostgreSQL the database clock decides (docs/decisions.md #4): an instance whose
/// own clock runs two hours ahead still accepts a challenge that is fresh by database time.
async fn challenge_expiry_boundary_and_the_clock_that_decides_it(h: Harness) {
    match h.backend {
        crate::harness::Backend::Sqlite { .. } => {
            let e = enrolled(&h, "d1").await;
            h.advance(3599).await;
            let ok = h
                .svc
                .verify_request(request(csr(&ec_key(), &matching(&e)), "tx-3599"))
                .await;
            assert!(ok.is_ok(), "one second before expiry: {ok:?}");
            let e2 = enrolled(&h, "d2").await;
            h.advance(3600).await;
            assert_eq!(
                reject_spec(&h, &matching(&e2)).await,
                Rejection::ChallengeExpired,
                "at expiry"
            );
        }
        crate::harness::Backend::Postgres { .. } => {
            let e = enrolled(&h, "d1").await;
            h.clock.advance(2 * 3600);
            let ok = h
                .svc
                .verify_request(request(csr(&ec_key(), &matching(&e)), "tx-skewed"))
                .await;
            assert!(ok.is_ok(), "the instance clock does not decide: {ok:?}");
        }
    }
}

async fn rejects_a_used_challenge(h: Harness) {
    let e = enrolled(&h, "d1").await;
    let key = ec_key();
    h.svc
        .verify_request(request(csr(&key, &matching(&e)), "tx-1"))
        .await
        .unwrap();
    // Reserved for tx-1: another request (new key, new transaction) is refused...
    assert_eq!(
        reject_spec(&h, &matching(&e)).await,
        Rejection::ChallengeAlreadyUsed
    );
    // ...and after issuance too.
    issue(&h, &TestCa::new(), &key, "tx-1").await;
    assert_eq!(
        reject_spec(&h, &matching(&e)).await,
        Rejection::ChallengeAlreadyUsed
    );
}

async fn rejects_a_reused_transaction_id_with_another_csr(h: Harness) {
    let e = enrolled(&h, "d1").await;
    h.svc
        .verify_request(request(csr(&ec_key(), &matching(&e)), "tx-1"))
        .await
        .unwrap();
    let other = csr(&ec_key(), &matching(&e));
    assert_eq!(
        reject(&h, request(other, "tx-1")).await,
        Rejection::TransactionIdReused
    );
}

async fn rejects_another_template(h: Harness) {
    let e = enrolled(&h, "d1").await;
    let mut req = request(csr(&ec_key(), &matching(&e)), "tx");
    req.template = Some("WebServer".into());
    assert_eq!(reject(&h, req).await, Rejection::TemplateMismatch);
}

async fn rejects_subject_name_deviations(h: Harness) {
    let e = enrolled(&h, "d1").await;
    let base = matching(&e);
    let attr = |attr, value: &str| NameAttr {
        attr,
        value: value.into(),
    };
    let mut extra = base.subject.clone();
    extra.push(attr(SubjectAttr::OU, "Domain Admins"));
    let mut case = base.subject.clone();
    case[0].value = case[0].value.to_lowercase();
    let mut trailing = base.subject.clone();
    trailing[0].value.push(' ');
    let mut swapped = base.subject.clone();
    swapped.swap(0, 2);
    let other_device = vec![
        attr(SubjectAttr::CN, "LAPTOP-d2"),
        attr(SubjectAttr::OU, "Devices"),
        attr(SubjectAttr::O, "Contoso"),
    ];
    // A Cyrillic capital A (U+0410) for the Latin one: looks the same, is another name.
    let mut homoglyph = base.subject.clone();
    homoglyph[0].value = homoglyph[0].value.replacen('A', "\u{0410}", 1);
    assert_ne!(homoglyph[0].value, base.subject[0].value);
    for subject in [extra, case, trailing, swapped, other_device, homoglyph] {
        let spec = CsrSpec {
            subject,
            ..base.clone()
        };
        assert_eq!(reject_spec(&h, &spec).await, Rejection::SubjectNameMismatch);
    }
    // CN and OU in one multi-valued RDN: the same texts, another name.
    let atv = |a: &NameAttr, value: Vec<u8>| seq(&[oid(a.attr.oid()), value]);
    let utf8_atv = |a: &NameAttr| atv(a, utf8(&a.value));
    let [cn, ou, o] = [&base.subject[0], &base.subject[1], &base.subject[2]];
    let multi_valued = seq(&[set(&[utf8_atv(cn), utf8_atv(ou)]), set(&[utf8_atv(o)])]);
    let spec = CsrSpec {
        subject_der: Some(multi_valued),
        ..base.clone()
    };
    assert_eq!(reject_spec(&h, &spec).await, Rejection::SubjectNameMismatch);
    // The exact texts in another string type are the same name: the CN as a PrintableString
    // (Windows' CertStrToName, Go) and as a BMPString (Windows beyond ASCII); the CA writes
    // its own encoding whatever the CSR used. (A device of its own each: a grant reserves
    // the challenge.)
    for (i, tag) in [0x13u8, 0x1E].into_iter().enumerate() {
        let e = enrolled(&h, &format!("enc{i}")).await;
        let spec = matching(&e);
        let [cn, ou, o] = [&spec.subject[0], &spec.subject[1], &spec.subject[2]];
        let value = if tag == 0x13 {
            printable(&cn.value)
        } else {
            let bmp: Vec<u8> = cn.value.encode_utf16().flat_map(u16::to_be_bytes).collect();
            tlv(0x1E, &bmp)
        };
        let der = seq(&[
            set(&[atv(cn, value)]),
            set(&[utf8_atv(ou)]),
            set(&[utf8_atv(o)]),
        ]);
        let encoded = CsrSpec {
            subject_der: Some(der),
            ..spec.clone()
        };
        let grant = h
            .svc
            .verify_request(request(
                csr(&ec_key(), &encoded),
                &format!("tx-encoded-{i}"),
            ))
            .await
            .unwrap();
        assert_eq!(grant.subject, spec.subject, "string type {tag:#x}");
    }
    let empty = CsrSpec {
        subject: vec![],
        ..base.clone()
    };
    assert_eq!(reject_spec(&h, &empty).await, Rejection::SubjectNameMissing);
    // The canonical encoding, written by hand the same way, is the honest request.
    let canonical = seq(&[
        set(&[utf8_atv(cn)]),
        set(&[utf8_atv(ou)]),
        set(&[utf8_atv(o)]),
    ]);
    let spec = CsrSpec {
        subject_der: Some(canonical),
        ..base.clone()
    };
    h.svc
        .verify_request(request(csr(&ec_key(), &spec), "tx-canonical"))
        .await
        .unwrap();
}

/// mscep_admin semantics: the CSR names itself, so its string types are its own business
/// (micromdm's scepclient writes PrintableString); the grant carries the text and the CA
/// writes it in the canonical types.
async fn an_admin_request_names_itself_in_any_string_type(h: Harness) {
    allow_admin_template(&h.svc, "IPSECIntermediateOffline").await;
    let c = h
        .svc
        .generate_challenge(ChallengeRequest {
            template: "IPSECIntermediateOffline".into(),
            requester: "admin".into(),
        })
        .await
        .unwrap();
    let name = seq(&[
        set(&[seq(&[oid(SubjectAttr::O.oid()), printable("Contoso")])]),
        set(&[seq(&[oid(SubjectAttr::CN.oid()), printable("router-9")])]),
    ]);
    let spec = CsrSpec {
        subject_der: Some(name),
        challenge: Some(c.challenge.expose().into()),
        ..CsrSpec::default()
    };
    let grant = h
        .svc
        .verify_request(request(csr(&rsa_key(2048), &spec), "tx-printable"))
        .await
        .unwrap();
    let texts: Vec<_> = grant.subject.iter().map(|a| a.value.as_str()).collect();
    assert_eq!(texts, ["Contoso", "router-9"]);
}

async fn rejects_subject_alt_name_deviations(h: Harness) {
    let e = enrolled(&h, "d1").await;
    let base = matching(&e);
    let san = |kind, value: &str| San {
        kind,
        value: value.into(),
    };
    let mut admin_upn = base.sans.clone();
    admin_upn.push(san(SanKind::Upn, "administrator@contoso.example"));
    let mut dc = base.sans.clone();
    dc.push(san(SanKind::Dns, "dc01.contoso.example"));
    let mut ip = base.sans.clone();
    ip.push(san(SanKind::Ip, "10.0.0.1"));
    let mut sid = base.sans.clone();
    sid.push(san(
        SanKind::Uri,
        "tag:microsoft.com,2022-09-14:sid:S-1-5-21-1-500",
    ));
    let mut email = base.sans.clone();
    email.push(san(SanKind::Email, "administrator@contoso.example"));
    let missing = base.sans[..1].to_vec();
    for sans in [admin_upn, dc, ip, sid, email, missing, vec![]] {
        let spec = CsrSpec {
            sans,
            ..base.clone()
        };
        assert_eq!(
            reject_spec(&h, &spec).await,
            Rejection::SubjectAltNameMismatch
        );
    }
    // DNS names compare case-insensitively, order does not matter.
    let mut reordered: Vec<San> = base.sans.iter().rev().cloned().collect();
    for s in &mut reordered {
        if s.kind == SanKind::Dns {
            s.value = s.value.to_uppercase();
        }
    }
    let spec = CsrSpec {
        sans: reordered,
        ..base
    };
    assert!(
        h.svc
            .verify_request(request(csr(&ec_key(), &spec), "tx-ok"))
            .await
            .is_ok()
    );
}

async fn rejects_key_usage_beyond_the_profile(h: Harness) {
    let e = enrolled(&h, "d1").await;
    for ku in [0x04u8, 0x20, 0x80 | 0x04] {
        let spec = CsrSpec {
            key_usage: Some(ku),
            ..matching(&e)
        };
        assert_eq!(
            reject_spec(&h, &spec).await,
            Rejection::KeyUsageMismatch,
            "ku {ku:#x}"
        );
    }
    let spec = CsrSpec {
        key_usage: Some(0x80),
        ..matching(&e)
    };
    assert!(
        h.svc
            .verify_request(request(csr(&ec_key(), &spec), "tx-ok"))
            .await
            .is_ok()
    );
}

async fn rejects_the_wrong_key_algorithm_or_size(h: Harness) {
    let e = enrolled(&h, "d1").await;
    for key in [ec384_key(), rsa_key(2048)] {
        let der = csr(&key, &matching(&e));
        assert_eq!(
            reject(&h, request(der, "tx")).await,
            Rejection::KeyLengthMismatch
        );
    }
}

async fn rejects_eku_beyond_the_profile(h: Harness) {
    let e = enrolled(&h, "d1").await;
    for ekus in [
        vec!["1.3.6.1.5.5.7.3.1".to_string()],
        vec!["2.5.29.37.0".to_string()],
        vec![
            "1.3.6.1.5.5.7.3.2".to_string(),
            "1.3.6.1.4.1.311.20.2.2".to_string(),
        ],
    ] {
        let spec = CsrSpec {
            ekus: Some(ekus),
            ..matching(&e)
        };
        assert_eq!(
            reject_spec(&h, &spec).await,
            Rejection::EnhancedKeyUsageMismatch
        );
    }
}

async fn rejects_when_the_profile_no_longer_targets_the_device(h: Harness) {
    let e = enrolled(&h, "d1").await;
    h.svc
        .unassign(
            "p1",
            Assignment {
                kind: "device".into(),
                id: "d1".into(),
            },
        )
        .await
        .unwrap();
    assert_eq!(
        reject_spec(&h, &matching(&e)).await,
        Rejection::ScepProfileNoLongerTargetedToTheClient
    );
    // A new profile version also retires challenges bound to the old one.
    let e2 = enrolled(&h, "d2").await;
    let mut spec = profile_spec();
    spec.validity_days = 200;
    h.svc.update_profile("p1", spec).await.unwrap();
    assert_eq!(
        reject_spec(&h, &matching(&e2)).await,
        Rejection::ScepProfileNoLongerTargetedToTheClient
    );
}

async fn rejects_a_challenge_for_a_device_no_longer_in_inventory(h: Harness) {
    let e = enrolled(&h, "d1").await;
    h.exec(
        "DELETE FROM assignments WHERE target_id = 'd1' AND $1 = $1",
        0,
    )
    .await;
    h.exec("DELETE FROM devices WHERE id = 'd1' AND $1 = $1", 0)
        .await;
    assert_eq!(
        reject_spec(&h, &matching(&e)).await,
        Rejection::BadDeviceIdInChallenge
    );
}

async fn rejects_blocked_retired_and_wiped_devices(h: Harness) {
    for (id, action, reason) in [
        ("d1", Lifecycle::Block, Rejection::DeviceBlocked),
        ("d2", Lifecycle::Retire, Rejection::DeviceRetired),
        ("d3", Lifecycle::Wipe, Rejection::DeviceWiped),
    ] {
        let e = enrolled(&h, id).await;
        h.svc.lifecycle(id, action).await.unwrap();
        assert_eq!(reject_spec(&h, &matching(&e)).await, reason);
    }
}

async fn fifty_concurrent_verifies_with_one_challenge_grant_exactly_once(h: Harness) {
    let e = enrolled(&h, "d1").await;
    let spec = matching(&e);
    let mut tasks = Vec::new();
    for i in 0..50 {
        let svc = h.svc.clone();
        let der = csr(&ec_key(), &spec);
        tasks.push(tokio::spawn(async move {
            svc.verify_request(request(der, &format!("tx-race-{i}")))
                .await
        }));
    }
    let mut granted = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => granted += 1,
            Err(VerifyError::Rejected(Rejection::ChallengeAlreadyUsed)) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(granted, 1);
}

async fn failed_notify_keeps_the_challenge_for_the_same_request_only(h: Harness) {
    let e = enrolled(&h, "d1").await;
    let key = ec_key();
    let der = csr(&key, &matching(&e));
    h.svc
        .verify_request(request(der.clone(), "tx-1"))
        .await
        .unwrap();
    h.svc
        .notify(Notification {
            transaction_id: "tx-1".into(),
            outcome: Outcome::Failed {
                reason: "CA down".into(),
            },
        })
        .await
        .unwrap();
    assert_eq!(
        reject_spec(&h, &matching(&e)).await,
        Rejection::ChallengeAlreadyUsed
    );
    h.svc.verify_request(request(der, "tx-1")).await.unwrap();
    issue(&h, &TestCa::new(), &key, "tx-1").await;
    assert_eq!(h.svc.device_view("d1").await.unwrap().certificates.len(), 1);
}

async fn notify_refuses_unknown_transactions_and_foreign_certificates(h: Harness) {
    let e = enrolled(&h, "d1").await;
    let ca = TestCa::new();
    let key = ec_key();
    let (der, serial, thumb) = ca.issue(&key, 30);
    let issued = |tx: &str, der: Vec<u8>, serial: String, thumb: String| Notification {
        transaction_id: tx.into(),
        outcome: Outcome::Issued {
            serial: foundation::Serial::from_hex(&serial).unwrap(),
            thumbprint_sha256: thumb,
            not_after: 0,
            certificate_der: der,
        },
    };
    assert_eq!(
        h.svc
            .notify(issued("nope", der.clone(), serial.clone(), thumb.clone()))
            .await,
        Err(NotifyError::UnknownTransaction)
    );
    h.svc
        .verify_request(request(csr(&key, &matching(&e)), "tx-1"))
        .await
        .unwrap();
    // A certificate for another key, a wrong thumbprint, garbage: all refused.
    let (other_der, other_serial, other_thumb) = ca.issue(&ec_key(), 30);
    assert_eq!(
        h.svc
            .notify(issued("tx-1", other_der, other_serial, other_thumb))
            .await,
        Err(NotifyError::Conflict)
    );
    assert_eq!(
        h.svc
            .notify(issued("tx-1", der.clone(), serial.clone(), "00".repeat(32)))
            .await,
        Err(NotifyError::Conflict)
    );
    assert_eq!(
        h.svc
            .notify(issued("tx-1", vec![1, 2, 3], serial.clone(), thumb.clone()))
            .await,
        Err(NotifyError::Conflict)
    );
    h.svc
        .notify(issued("tx-1", der, serial, thumb))
        .await
        .unwrap();
    // A second, different certificate for the same transaction is a conflict.
    let (der2, serial2, thumb2) = ca.issue(&key, 30);
    assert_eq!(
        h.svc.notify(issued("tx-1", der2, serial2, thumb2)).await,
        Err(NotifyError::Conflict)
    );
    assert_eq!(h.svc.device_view("d1").await.unwrap().certificates.len(), 1);
}

async fn renews_with_a_current_certificate_and_refuses_others(h: Harness) {
    let e = enrolled(&h, "d1").await;
    let ca = TestCa::new();
    let key = ec_key();
    h.svc
        .verify_request(request(csr(&key, &matching(&e)), "tx-1"))
        .await
        .unwrap();
    let (cert, _, _) = issue(&h, &ca, &key, "tx-1").await;
    let renewal = |tx: &str, signer: Vec<u8>| {
        let new_key = ec_key();
        let spec = CsrSpec {
            challenge: None,
            ..matching(&e)
        };
        let mut r = request(csr(&new_key, &spec), tx);
        r.signer_cert_der = Some(signer);
        r
    };
    // Too early: 365 days left of 365, threshold 20%.
    assert_eq!(
        reject(&h, renewal("tx-r1", cert.clone())).await,
        Rejection::RenewalNotAllowed
    );
    h.advance(300 * 86_400).await;
    let grant = h
        .svc
        .verify_request(renewal("tx-r2", cert.clone()))
        .await
        .unwrap();
    assert!(grant.renewal);
    assert_eq!(grant.device_id.as_deref(), Some("d1"));
    // A certificate we never issued.
    let (foreign, _, _) = ca.issue(&ec_key(), 30);
    assert_eq!(
        reject(&h, renewal("tx-r3", foreign)).await,
        Rejection::SigningCertThumbprintMismatch
    );
    assert_eq!(
        reject(&h, renewal("tx-r4", vec![0x30, 0])).await,
        Rejection::SigningCertThumbprintMismatch
    );
    // Another profile's template.
    let mut cross = renewal("tx-r5", cert.clone());
    cross.template = Some("OtherTemplate".into());
    assert_eq!(reject(&h, cross).await, Rejection::TemplateMismatch);
    // Revoked (the device is blocked then unblocked: its certificate is revoking).
    h.svc.lifecycle("d1", Lifecycle::Block).await.unwrap();
    h.svc.lifecycle("d1", Lifecycle::Unblock).await.unwrap();
    assert_eq!(
        reject(&h, renewal("tx-r6", cert.clone())).await,
        Rejection::RenewalNotAllowed
    );
    // Expired.
    let e2 = enrolled(&h, "d2").await;
    let key2 = ec_key();
    h.svc
        .verify_request(request(csr(&key2, &matching(&e2)), "tx-2"))
        .await
        .unwrap();
    let (cert2, _, _) = issue(&h, &ca, &key2, "tx-2").await;
    h.advance(366 * 86_400).await;
    let spec2 = CsrSpec {
        challenge: None,
        ..matching(&e2)
    };
    let mut expired = request(csr(&ec_key(), &spec2), "tx-r7");
    expired.signer_cert_der = Some(cert2);
    assert_eq!(reject(&h, expired).await, Rejection::RenewalNotAllowed);
}

async fn mscep_admin_challenges_respect_password_max_and_single_use(h: Harness) {
    let mut settings = h.svc.challenge_settings().await.unwrap();
    settings.password_max = 2;
    h.svc.set_challenge_settings(&settings).await.unwrap();
    allow_admin_template(&h.svc, "IPSECIntermediateOffline").await;
    let ask = || ChallengeRequest {
        template: "IPSECIntermediateOffline".into(),
        requester: "CONTOSO\\admin".into(),
    };
    let c1 = h.svc.generate_challenge(ask()).await.unwrap();
    let _c2 = h.svc.generate_challenge(ask()).await.unwrap();
    assert!(matches!(
        h.svc.generate_challenge(ask()).await,
        Err(ChallengeError::CacheFull)
    ));
    // A second instance sees the same cache (it lives in the shared store).
    let other = h.reopen().await;
    assert!(matches!(
        other.generate_challenge(ask()).await,
        Err(ChallengeError::CacheFull)
    ));
    let bad = ChallengeRequest {
        template: "bad template".into(),
        requester: "x".into(),
    };
    assert!(matches!(
        h.svc.generate_challenge(bad).await,
        Err(ChallengeError::InvalidTemplate)
    ));

    let subject = vec![NameAttr {
        attr: SubjectAttr::CN,
        value: "router-7".into(),
    }];
    let spec = CsrSpec {
        subject: subject.clone(),
        challenge: Some(c1.challenge.expose().into()),
        ..CsrSpec::default()
    };
    let grant = h
        .svc
        .verify_request(request(csr(&rsa_key(2048), &spec), "tx-a1"))
        .await
        .unwrap();
    assert_eq!(grant.template, "IPSECIntermediateOffline");
    assert_eq!(grant.subject, subject);
    assert_eq!(grant.device_id, None);
    assert_eq!(
        reject(&h, request(csr(&ec_key(), &spec), "tx-a2")).await,
        Rejection::ChallengeAlreadyUsed
    );
    // Reserving frees a cache slot.
    assert!(h.svc.generate_challenge(ask()).await.is_ok());
    // ...and the cache is full again for every instance.
    let c4 = other.generate_challenge(ask()).await;
    assert!(matches!(c4, Err(ChallengeError::CacheFull)));
}

async fn a_closed_store_is_unavailable_not_a_rejection(h: Harness) {
    let e = enrolled(&h, "d1").await;
    h.svc.store().close().await;
    let r = h
        .svc
        .verify_request(request(csr(&ec_key(), &matching(&e)), "tx"))
        .await;
    assert_eq!(r, Err(VerifyError::Unavailable));
    let ask = ChallengeRequest {
        template: "T".into(),
        requester: "a".into(),
    };
    assert!(matches!(
        h.svc.generate_challenge(ask).await,
        Err(ChallengeError::Unavailable)
    ));
}

#[tokio::test]
async fn rsa_below_2048_is_refused_under_an_admin_challenge() {
    let h = Harness::sqlite().await;
    allow_admin_template(&h.svc, "T").await;
    let c = h
        .svc
        .generate_challenge(ChallengeRequest {
            template: "T".into(),
            requester: "a".into(),
        })
        .await
        .unwrap();
    let spec = CsrSpec {
        subject: vec![NameAttr {
            attr: SubjectAttr::CN,
            value: "x".into(),
        }],
        challenge: Some(c.challenge.expose().into()),
        ..CsrSpec::default()
    };
    let der = csr(&rsa_key(1024), &spec);
    assert_eq!(
        reject(&h, request(der, "tx")).await,
        Rejection::KeyLengthMismatch
    );
}

async fn fifty_concurrent_verifies_across_two_instances_grant_exactly_once(h: Harness) {
    let e = enrolled(&h, "d1").await;
    let second = h.reopen().await;
    let spec = matching(&e);
    let mut tasks = Vec::new();
    for i in 0..50 {
        let svc = if i % 2 == 0 {
            h.svc.clone()
        } else {
            second.clone()
        };
        let der = csr(&ec_key(), &spec);
        tasks.push(tokio::spawn(async move {
            svc.verify_request(request(der, &format!("tx-two-{i}")))
                .await
        }));
    }
    let mut granted = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => granted += 1,
            Err(VerifyError::Rejected(Rejection::ChallengeAlreadyUsed)) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(granted, 1);
}
