//! `ca-mock audit`: every record parses and is signed by the issuing CA, serials are unique,
//! and the CRL lists exactly the revoked and held serials.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use ca_mock::store::ListFilter;

use crate::open;

pub(crate) async fn audit(config_path: &Path) -> Result<ExitCode> {
    let state = open(config_path).await?;
    let ca = &state.ca;
    let issuer_key = ca.material().issuing.public_key()?;
    let mut problems = Vec::new();
    let mut serials = std::collections::HashSet::new();
    let mut revoked = std::collections::BTreeSet::new();
    let mut after = None;
    let mut total = 0usize;
    loop {
        let page = ca
            .store()
            .list(&ListFilter {
                request_id: None,
                after: after.clone(),
                limit: 1000,
            })
            .await?;
        let Some(last) = page.last() else { break };
        after = Some(last.cert.serial.clone());
        for r in &page {
            total += 1;
            if !serials.insert(r.cert.serial.clone()) {
                problems.push(format!("{}: duplicate serial", r.cert.serial));
            }
            if r.status != ca_mock::store::CertStatus::Good {
                revoked.insert(r.cert.serial.clone());
            }
            match openssl::x509::X509::from_der(&r.cert.der) {
                Err(_) => problems.push(format!("{}: DER does not parse", r.cert.serial)),
                Ok(cert) => {
                    if !cert.verify(&issuer_key).unwrap_or(false) {
                        problems.push(format!("{}: not signed by the issuing CA", r.cert.serial));
                    }
                    let in_cert = cert
                        .serial_number()
                        .to_bn()
                        .ok()
                        .map(|b| hex::encode(b.to_vec()));
                    if in_cert.as_deref() != Some(r.cert.serial.as_str()) {
                        problems.push(format!("{}: serial in certificate differs", r.cert.serial));
                    }
                }
            }
        }
    }
    let crl = ca.regenerate_crl().await?;
    let parsed = openssl::x509::X509Crl::from_der(&crl.der)?;
    if !parsed.verify(&issuer_key).unwrap_or(false) {
        problems.push("CRL signature does not verify".into());
    }
    let in_crl: std::collections::BTreeSet<String> = parsed
        .get_revoked()
        .map(|st| {
            st.iter()
                .filter_map(|r| {
                    r.serial_number()
                        .to_bn()
                        .ok()
                        .map(|b| hex::encode(b.to_vec()))
                })
                .collect()
        })
        .unwrap_or_default();
    if in_crl != revoked {
        problems.push(format!(
            "CRL lists {} serials, store has {} revoked or held (differences: {:?})",
            in_crl.len(),
            revoked.len(),
            in_crl
                .symmetric_difference(&revoked)
                .take(5)
                .collect::<Vec<_>>()
        ));
    }
    println!(
        "{total} certificates, {} revoked or held, CRL number {}",
        revoked.len(),
        crl.number
    );
    if problems.is_empty() {
        println!("audit OK");
        Ok(ExitCode::SUCCESS)
    } else {
        for p in &problems {
            println!("problem: {p}");
        }
        Ok(ExitCode::FAILURE)
    }
}
