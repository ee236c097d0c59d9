//! The CA's own invariants: records against the certificates they hold, the audit log, the
//! published CRL file and OCSP answers.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Result;
use ca_mock::store::{CertStatus, CertStore, ListFilter};
use openssl::hash::MessageDigest;
use openssl::ocsp::{OcspCertId, OcspCertStatus, OcspFlag, OcspRequest, OcspResponse};
use openssl::stack::Stack;
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::{X509, X509Crl};

use super::{Invariant, Report, Sources};

/// What the cross-store checks need to know about one CA record.
#[derive(Debug, Clone)]
pub(super) struct CaCert {
    pub(super) der: Vec<u8>,
    pub(super) status: CertStatus,
    pub(super) template: String,
    pub(super) revoked_at: Option<i64>,
    pub(super) request_id: String,
    pub(super) public_key_sha256: String,
    pub(super) issued_under: String,
}

/// The CA's records by serial, spelled by [`norm`].
pub(super) type CaView = BTreeMap<String, CaCert>;

/// The canonical spelling of a serial (every store writes it; a malformed one is kept as
/// written, lowercased, so it still shows up in a finding).
pub(super) fn norm(serial: &str) -> String {
    foundation::serial::canonical(serial).unwrap_or_else(|| serial.to_ascii_lowercase())
}

fn hex_serial(cert: &X509) -> Option<String> {
    foundation::Serial::of_certificate(cert)
        .ok()
        .map(|s| s.to_hex())
}

pub(super) async fn check(sources: &Sources, now: i64, report: &mut Report) -> Result<CaView> {
    let issuers = issuers(sources);
    let mut view = CaView::new();
    let mut serial_in_der: BTreeMap<String, String> = BTreeMap::new();
    let mut after = None;
    loop {
        let page = sources
            .ca_store
            .list(&ListFilter {
                request_id: None,
                after: after.clone(),
                limit: 1000,
            })
            .await?;
        let Some(last) = page.last() else { break };
        after = Some(last.cert.serial.clone());
        for r in page {
            let serial = norm(&r.cert.serial);
            match X509::from_der(&r.cert.der) {
                Err(_) => report.find(Invariant::I8, &serial, "stored DER does not parse"),
                Ok(cert) => {
                    if issuer_of(&issuers, &cert).is_none() {
                        report.find(
                            Invariant::I8,
                            &serial,
                            "stored certificate is not signed by the issuing CA",
                        );
                    }
                    match hex_serial(&cert) {
                        Some(s) if s == serial => {}
                        other => report.find(
                            Invariant::I2,
                            &serial,
                            format!(
                                "the certificate in this record carries serial {}",
                                other.as_deref().unwrap_or("?")
                            ),
                        ),
                    }
                    if let Some(s) = hex_serial(&cert)
                        && let Some(first) = serial_in_der.insert(s.clone(), serial.clone())
                    {
                        report.find(
                            Invariant::I2,
                            &s,
                            format!("issued twice (records {first} and {serial})"),
                        );
                    }
                }
            }
            // P35: the same lint the CA ran before issuing, so a record written by an older
            // version, by hand or by a bug around the CA's checks is still caught.
            for v in sources.ca.lint(&r.cert.der, r.cert.issued_at) {
                report.find(Invariant::P35, &serial, v.to_string());
            }
            if r.status != CertStatus::Good {
                report.ca_revoked += 1;
            }
            view.insert(
                serial,
                CaCert {
                    der: r.cert.der,
                    status: r.status,
                    template: r.cert.template,
                    revoked_at: r.revoked_at,
                    request_id: r.cert.request_id,
                    public_key_sha256: r.cert.public_key_sha256,
                    issued_under: r.cert.issued_under,
                },
            );
        }
    }
    report.ca_certificates = view.len();

    // I1: an `issue` line in the audit log is the CA saying it signed; the record must exist.
    for line in sources.ca_store.audit(u32::MAX).await? {
        if line.action == "issue" && !view.contains_key(&norm(&line.serial)) {
            report.find(
                Invariant::I1,
                &line.serial,
                format!(
                    "the CA audit log says it was issued (request {}), but there is no certificate record",
                    line.request_id
                ),
            );
        }
    }

    check_crl(sources, &view, now, report).await?;
    check_ocsp(sources, &view, report).await?;
    for line in sources.ca_store.integrity_check().await? {
        report.find(Invariant::I8, "CA database", line);
    }
    if let Some(d) = sources.ca_store.sqlite_durability().await?
        && (d.journal_mode != "wal" || d.synchronous != 2)
    {
        report.find(
            Invariant::I8,
            "CA database",
            format!(
                "journal_mode={} synchronous={} (WAL with synchronous=FULL required)",
                d.journal_mode, d.synchronous
            ),
        );
    }
    Ok(view)
}

/// The published CRL file: intact, signed, current, and listing exactly the revocations
/// committed before its thisUpdate.
async fn check_crl(sources: &Sources, view: &CaView, now: i64, report: &mut Report) -> Result<()> {
    let subject = sources.crl_path.display().to_string();
    let der = match std::fs::read(&sources.crl_path) {
        Ok(d) => d,
        Err(e) => {
            report.find(Invariant::I8, subject, format!("no published CRL: {e}"));
            return Ok(());
        }
    };
    let Ok((rest, crl)) = x509_parser::parse_x509_crl(&der) else {
        report.find(
            Invariant::I8,
            subject,
            "published CRL does not parse (truncated?)",
        );
        return Ok(());
    };
    if !rest.is_empty() {
        report.find(Invariant::I8, &subject, "published CRL has trailing bytes");
    }
    let issuer_key = sources.ca.material().issuing.public_key()?;
    let signed = X509Crl::from_der(&der)
        .ok()
        .and_then(|c| c.verify(&issuer_key).ok())
        .unwrap_or(false);
    if !signed {
        report.find(
            Invariant::I8,
            &subject,
            "published CRL is not signed by the issuing CA",
        );
    }
    let this_update = crl.last_update().timestamp();
    match crl.next_update() {
        Some(t) if t.timestamp() > now => {}
        Some(t) => report.find(
            Invariant::I8,
            &subject,
            format!(
                "published CRL expired (nextUpdate {})",
                foundation::time::rfc3339(t.timestamp())
            ),
        ),
        None => report.find(Invariant::I8, &subject, "published CRL has no nextUpdate"),
    }
    let number = crl.crl_number().and_then(|n| i64::try_from(n.clone()).ok());
    report.crl_number = number;
    let counter = sources.ca_store.crl_number().await?;
    match number {
        None => report.find(Invariant::I8, &subject, "published CRL has no CRL number"),
        Some(n) if n > counter => report.find(
            Invariant::I8,
            &subject,
            format!("CRL number {n} is ahead of the CA's counter {counter}"),
        ),
        Some(_) => {}
    }
    let listed: BTreeSet<String> = crl
        .iter_revoked_certificates()
        .map(|r| norm(&hex::encode(r.raw_serial())))
        .collect();
    for (serial, c) in view {
        let revoked = c.status != CertStatus::Good;
        match (revoked, listed.contains(serial)) {
            (true, false) if c.revoked_at.is_some_and(|t| t <= this_update) => report.find(
                Invariant::I6,
                serial,
                format!(
                    "revoked at the CA but missing from the published CRL (number {})",
                    number.unwrap_or(-1)
                ),
            ),
            (true, false) => report.notes.push(format!(
                "{serial}: revoked after the published CRL's thisUpdate; in the next CRL"
            )),
            (false, true) => report.find(
                Invariant::I6,
                serial,
                "listed in the published CRL but good at the CA",
            ),
            _ => {}
        }
    }
    for serial in listed.iter().filter(|s| !view.contains_key(*s)) {
        report.find(
            Invariant::I6,
            serial,
            "listed in the published CRL but the CA has no record of it",
        );
    }
    Ok(())
}

/// OCSP (in process, the code path the endpoint serves) agrees with the store for every
/// record, and never says "good" for a serial the CA did not issue.
async fn check_ocsp(sources: &Sources, view: &CaView, report: &mut Report) -> Result<()> {
    let material = sources.ca.material();
    let current = &material.issuing;
    let issuers = issuers(sources);
    let mut store = X509StoreBuilder::new()?;
    store.add_cert(material.root.clone())?;
    for i in &issuers {
        store.add_cert(i.clone())?;
    }
    let store = store.build();

    let mut probes: Vec<(String, X509, Option<CertStatus>)> = Vec::new();
    for (serial, c) in view {
        if let Ok(cert) = X509::from_der(&c.der) {
            probes.push((serial.clone(), cert, Some(c.status)));
        }
    }
    // A serial that was never issued: OCSP must not call it good (I6).
    let mut never = openssl::x509::X509Builder::new()?;
    let mut bn = openssl::bn::BigNum::new()?;
    bn.rand(127, openssl::bn::MsbOption::MAYBE_ZERO, false)?;
    never.set_serial_number(bn.to_asn1_integer()?.as_ref())?;
    never.set_issuer_name(current.subject_name())?;
    let never = never.build();
    let never_serial = norm(&hex::encode(bn.to_vec()));
    if !view.contains_key(&never_serial) {
        probes.push((never_serial, never, None));
    }

    for (serial, cert, expected) in probes {
        // Asked of the CA that issued it (the current one for the never-issued probe).
        let issuer = issuer_of(&issuers, &cert).unwrap_or(current);
        let mut signers = Stack::new()?;
        signers.push(issuer.clone())?;
        let id = || OcspCertId::from_cert(MessageDigest::sha1(), &cert, issuer);
        let mut req = OcspRequest::new()?;
        req.add_id(id()?)?;
        let answer = sources.ca.ocsp(&req.to_der()?).await;
        let basic = OcspResponse::from_der(&answer)
            .ok()
            .and_then(|r| r.basic().ok());
        let Some(basic) = basic else {
            report.find(Invariant::I6, &serial, "OCSP gave no successful response");
            continue;
        };
        if basic.verify(&signers, &store, OcspFlag::empty()).is_err() {
            report.find(
                Invariant::I6,
                &serial,
                "OCSP response signature does not verify",
            );
        }
        let cert_id = id()?;
        let got = basic.find_status(&cert_id).map(|s| s.status);
        let want = match expected {
            Some(CertStatus::Good) => OcspCertStatus::GOOD,
            Some(_) => OcspCertStatus::REVOKED,
            None => OcspCertStatus::UNKNOWN,
        };
        if got != Some(want) {
            let said = match got {
                Some(OcspCertStatus::GOOD) => "good",
                Some(OcspCertStatus::REVOKED) => "revoked",
                Some(_) => "unknown",
                None => "nothing",
            };
            let is = match expected {
                Some(CertStatus::Good) => "good in the store",
                Some(_) => "revoked in the store",
                None => "never issued",
            };
            report.find(
                Invariant::I6,
                &serial,
                format!("OCSP says {said}, but it is {is}"),
            );
        }
    }
    Ok(())
}

/// The issuing CAs: the current one first, then those retired by a rollover.
fn issuers(sources: &Sources) -> Vec<X509> {
    std::iter::once(sources.ca.material().issuing.clone())
        .chain(sources.ca.retired().map(|(_, m)| m.issuing.clone()))
        .collect()
}

/// The issuing CA whose key signed `cert`, if any.
fn issuer_of<'a>(issuers: &'a [X509], cert: &X509) -> Option<&'a X509> {
    issuers.iter().find(|i| {
        i.public_key()
            .and_then(|k| cert.verify(&k))
            .unwrap_or(false)
    })
}
