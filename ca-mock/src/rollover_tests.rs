#![allow(clippy::unwrap_used, clippy::expect_used)]
use super::*;
use crate::hierarchy::{InitSource, init};

const NOW: i64 = 1_800_000_000;

fn hierarchy(key: KeySpec) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let source = InitSource::Generate {
        key,
        root_cn: "Test Root".into(),
        issuing_cn: "Test Issuing".into(),
        org: Some("Contoso".into()),
        root_days: 3650,
        issuing_days: 1825,
    };
    init(dir.path(), &source, None).unwrap();
    dir
}

fn current(dir: &Path) -> CaMaterial {
    CaMaterial::load(dir, None).unwrap()
}

fn der(cert: &X509Ref) -> Vec<u8> {
    cert.to_der().unwrap()
}

fn cn(cert: &X509Ref) -> String {
    name_parts(cert).unwrap().0
}

#[test]
fn before_the_switch_the_next_ca_is_made_once_under_the_same_root_and_key_type() {
    let dir = hierarchy(KeySpec::EcP256);
    let before = current(dir.path());
    let Phase::Announced(next) = prepare(dir.path(), NOW + 60, NOW, None).unwrap() else {
        panic!("announced before the switch");
    };
    assert!(next.verify(&before.root.public_key().unwrap()).unwrap());
    assert_eq!(
        key_spec(&next.public_key().unwrap()).unwrap(),
        KeySpec::EcP256
    );
    assert_eq!(cn(&next), "Test Issuing G2");
    assert_ne!(der(&next), der(&before.issuing));
    // Kept: a second start announces the same CA; the current one is untouched.
    let Phase::Announced(again) = prepare(dir.path(), NOW + 60, NOW + 1, None).unwrap() else {
        panic!("still announced");
    };
    assert_eq!(der(&again), der(&next));
    assert_eq!(der(&current(dir.path()).issuing), der(&before.issuing));
    assert!(
        load_retired(dir.path(), &before.root, None)
            .unwrap()
            .is_empty()
    );
}

#[test]
fn at_the_switch_the_next_ca_takes_over_and_the_previous_one_is_retired_once() {
    let dir = hierarchy(KeySpec::Rsa2048);
    let before = current(dir.path());
    let Phase::Announced(next) = prepare(dir.path(), NOW + 60, NOW, None).unwrap() else {
        panic!("announced");
    };
    assert!(matches!(
        prepare(dir.path(), NOW + 60, NOW + 60, None).unwrap(),
        Phase::Switched
    ));
    let after = current(dir.path());
    assert_eq!(der(&after.issuing), der(&next));
    assert!(!dir.path().join(NEXT_DIR).exists());
    let retired = load_retired(dir.path(), &after.root, None).unwrap();
    assert_eq!(retired.len(), 1);
    assert_eq!(der(&retired[0].issuing), der(&before.issuing));
    // The same plan at a later start changes nothing more.
    assert!(matches!(
        prepare(dir.path(), NOW + 60, NOW + 9999, None).unwrap(),
        Phase::Switched
    ));
    assert_eq!(der(&current(dir.path()).issuing), der(&next));
    assert!(!dir.path().join(NEXT_DIR).exists());
    assert_eq!(
        load_retired(dir.path(), &after.root, None).unwrap().len(),
        1
    );
    // A later plan is a second rollover: G3, from G2.
    let Phase::Announced(third) = prepare(dir.path(), NOW + 99_999, NOW + 9999, None).unwrap()
    else {
        panic!("a new plan is announced");
    };
    assert_eq!(cn(&third), "Test Issuing G3");
}

#[test]
fn a_plan_already_due_at_the_first_start_switches_at_once() {
    let dir = hierarchy(KeySpec::EcP384);
    let before = current(dir.path());
    assert!(matches!(
        prepare(dir.path(), NOW - 1, NOW, None).unwrap(),
        Phase::Switched
    ));
    let after = current(dir.path());
    assert_ne!(der(&after.issuing), der(&before.issuing));
    assert_eq!(cn(&after.issuing), "Test Issuing G2");
    assert_eq!(
        load_retired(dir.path(), &after.root, None).unwrap().len(),
        1
    );
}

#[test]
fn a_switch_interrupted_between_certificate_and_key_is_finished_by_the_next_start() {
    let dir = hierarchy(KeySpec::EcP256);
    let Phase::Announced(next) = prepare(dir.path(), NOW + 60, NOW, None).unwrap() else {
        panic!("announced");
    };
    // Steps (1) and half of (2), as a crash would leave them: retired copy made, the next
    // certificate in place, the old key still beside it.
    let before = current(dir.path());
    retire(dir.path(), &before.issuing, NOW + 60).unwrap();
    let next_pem = std::fs::read(dir.path().join(NEXT_DIR).join(ISSUING_CERT)).unwrap();
    replace_file(&dir.path().join(ISSUING_CERT), &next_pem, 0o644).unwrap();
    let err = CaMaterial::load(dir.path(), None).unwrap_err().to_string();
    assert!(err.contains("does not match"), "{err}");

    assert!(matches!(
        prepare(dir.path(), NOW + 60, NOW + 60, None).unwrap(),
        Phase::Switched
    ));
    assert_eq!(der(&current(dir.path()).issuing), der(&next));
    assert_eq!(
        load_retired(dir.path(), &before.root, None).unwrap().len(),
        1
    );
}

#[test]
fn a_half_written_next_ca_is_a_clear_error_naming_its_directory() {
    let dir = hierarchy(KeySpec::EcP256);
    prepare(dir.path(), NOW + 60, NOW, None).unwrap();
    std::fs::remove_file(dir.path().join(NEXT_DIR).join(ISSUING_KEY)).unwrap();
    for now in [NOW, NOW + 60] {
        let err = prepare(dir.path(), NOW + 60, now, None)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("next") && err.contains("does not hold a usable issuing CA"),
            "{err}"
        );
        assert!(!err.contains("PRIVATE KEY"), "{err}");
    }
    // Nothing was switched.
    assert!(
        load_retired(dir.path(), &current(dir.path()).root, None)
            .unwrap()
            .is_empty()
    );
}

#[test]
fn without_the_root_key_a_rollover_is_refused_with_the_reason() {
    let dir = hierarchy(KeySpec::EcP256);
    std::fs::remove_file(dir.path().join(ROOT_KEY)).unwrap();
    let err = prepare(dir.path(), NOW + 60, NOW, None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("root key"), "{err}");
}

#[test]
fn generations_are_numbered() {
    assert_eq!(next_generation("Issuing"), "Issuing G2");
    assert_eq!(next_generation("Issuing G2"), "Issuing G3");
    assert_eq!(next_generation("Issuing Gx"), "Issuing Gx G2");
}
