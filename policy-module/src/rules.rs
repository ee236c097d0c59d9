//! Request checks: the CSR against what the profile rendered for the device.
//!
//! Subject and SANs must be exactly the rendered values (subject byte for byte and in order;
//! SANs as a set, DNS names case-insensitively). The CSR may ask for less key usage or EKU than
//! the profile grants, never more.

use crate::error::Rejection;
use crate::model::{ANY_EKU, KeyAlgorithm, San, SanKind};
use crate::render::Expected;
use policy_api::csr::CsrFacts;

/// Checks a parsed CSR against a rendered profile.
pub fn check(expected: &Expected, csr: &CsrFacts) -> Result<(), Rejection> {
    check_subject(expected, csr)?;
    if normalized(&expected.subject_alternative_names) != normalized(&csr.sans) {
        return Err(Rejection::SubjectAltNameMismatch);
    }
    if csr.key_algorithm != expected.key_algorithm || csr.key_size != expected.key_size {
        return Err(Rejection::KeyLengthMismatch);
    }
    check_key_floor(csr)?;
    let ku_ok = match &csr.key_usage {
        None => true,
        Some(Err(())) => false,
        Some(Ok(bits)) => bits.iter().all(|b| expected.key_usage.contains(b)),
    };
    if !ku_ok {
        return Err(Rejection::KeyUsageMismatch);
    }
    if let Some(ekus) = &csr.ekus
        && ekus
            .iter()
            .any(|e| e == ANY_EKU || !expected.extended_key_usages.contains(e))
    {
        return Err(Rejection::EnhancedKeyUsageMismatch);
    }
    Ok(())
}

fn check_subject(expected: &Expected, csr: &CsrFacts) -> Result<(), Rejection> {
    if csr.subject.is_empty() && !expected.subject.is_empty() {
        return Err(Rejection::SubjectNameMissing);
    }
    if csr.subject != expected.subject {
        return Err(Rejection::SubjectNameMismatch);
    }
    Ok(())
}

/// docs/decisions.md #6: RSA below 2048 bits is never accepted, whatever the caller asks.
pub fn check_key_floor(csr: &CsrFacts) -> Result<(), Rejection> {
    match csr.key_algorithm {
        KeyAlgorithm::Rsa if csr.key_size < 2048 || csr.key_size > 8192 => {
            Err(Rejection::KeyLengthMismatch)
        }
        _ => Ok(()),
    }
}

fn normalized(sans: &[San]) -> Vec<San> {
    let mut v: Vec<San> = sans
        .iter()
        .map(|s| San {
            kind: s.kind,
            value: if s.kind == SanKind::Dns {
                s.value.to_ascii_lowercase()
            } else {
                s.value.clone()
            },
        })
        .collect();
    v.sort();
    v
}
