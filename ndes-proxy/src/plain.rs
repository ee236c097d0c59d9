//! Plain mode: a standalone NDES with one fixed challenge password (NDES's single-password
//! mode, micromdm `scepserver -challenge`) in place of the policy module.
//!
//! Why it exists: it is what a lab or CI farm without an MDM runs, and it is the fair setup to
//! compare against micromdm's `scepserver`, which has no per-device policy either. It keeps
//! every SCEP guarantee of the pipeline (signed FAILURE on refusal, idempotent transactionIDs,
//! the CA's durable record); it only drops what the policy module adds: per-device one-time
//! challenges, profile-rendered subjects and the Notify record.
//!
//! The granted subject is the CSR's own subject (as micromdm signs it), restricted to the
//! attributes the CA contract knows; SANs and requested extensions are not granted. A renewal
//! signed by a current certificate of our CA (checked by the pipeline before we are asked)
//! needs no challenge, as in the full pipeline, and must ask for that certificate's subject.

use foundation::names::{NameAttr, SubjectAttr};
use foundation::secret::Secret;
use openssl::x509::{X509, X509NameRef};
use policy_api::{
    ChallengeError, ChallengeRequest, Grant, IssuedChallenge, NdesPolicy, Notification,
    NotifyError, Rejection, VerifyError, VerifyRequest,
};
use scep::csr::Csr;

/// The [`NdesPolicy`] of plain mode.
pub struct StaticChallenge {
    challenge: Secret,
    template: String,
    validity_days: u32,
}

impl std::fmt::Debug for StaticChallenge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaticChallenge")
            .field("template", &self.template)
            .field("validity_days", &self.validity_days)
            .finish_non_exhaustive()
    }
}

impl StaticChallenge {
    /// Grant `template` for `validity_days` to every request carrying `challenge`.
    pub fn new(challenge: Secret, template: impl Into<String>, validity_days: u32) -> Self {
        Self {
            challenge,
            template: template.into(),
            validity_days,
        }
    }
}

/// The CSR's subject in DN order; an attribute outside the contract refuses the request
/// (rather than silently issuing a different name than was asked for).
fn csr_subject(csr: &Csr) -> Result<Vec<NameAttr>, Rejection> {
    let name = csr
        .subject_name()
        .map_err(|_| Rejection::CertificateRequestDecodingFailed)?;
    name_attrs(&name)
}

/// docs/decisions.md #5: a renewal is for the subject of the certificate that signs it, compared
/// as text (the CA wrote the granted text in its own string types). Plain mode has one
/// template and no inventory, so neither the template nor a renewal window is checked here.
fn check_same_subject(signer_der: &[u8], subject: &[NameAttr]) -> Result<(), Rejection> {
    let signer =
        X509::from_der(signer_der).map_err(|_| Rejection::SigningCertThumbprintMismatch)?;
    match name_attrs(signer.subject_name()) {
        Ok(names) if names == subject => Ok(()),
        _ => Err(Rejection::SubjectNameMismatch),
    }
}

fn name_attrs(name: &X509NameRef) -> Result<Vec<NameAttr>, Rejection> {
    let mut out = Vec::new();
    for entry in name.entries() {
        let attr =
            SubjectAttr::from_nid(entry.object().nid()).ok_or(Rejection::SubjectNameMismatch)?;
        let value = entry
            .data()
            .to_string()
            .map_err(|_| Rejection::SubjectNameMismatch)?;
        out.push(NameAttr { attr, value });
    }
    if out.is_empty() {
        return Err(Rejection::SubjectNameMissing);
    }
    Ok(out)
}

#[async_trait::async_trait]
impl NdesPolicy for StaticChallenge {
    /// There is nothing to hand out: the one password is configured, not generated.
    async fn generate_challenge(
        &self,
        _req: ChallengeRequest,
    ) -> Result<IssuedChallenge, ChallengeError> {
        Err(ChallengeError::Unavailable)
    }

    async fn verify_request(&self, req: VerifyRequest) -> Result<Grant, VerifyError> {
        // ndes-proxy checked this CSR's self-signature when it decoded the request, and the CA
        // checks it again before signing: only its subject is needed here.
        let csr = Csr::from_der_unverified(&req.csr_der)
            .map_err(|_| Rejection::CertificateRequestDecodingFailed)?;
        // The pipeline passes a signer only when it is a current, good certificate of our CA.
        let renewal = req.signer_cert_der.is_some();
        if !renewal {
            let given = req.challenge.ok_or(Rejection::ChallengePasswordMissing)?;
            // Over SHA-256 digests: neither the value nor its length leaks through timing.
            if !self.challenge.ct_eq(&given) {
                return Err(Rejection::ChallengeUnknown.into());
            }
        }
        let subject = csr_subject(&csr)?;
        if let Some(signer) = &req.signer_cert_der {
            check_same_subject(signer, &subject)?;
        }
        Ok(Grant {
            transaction_id: req.transaction_id,
            template: self.template.clone(),
            subject,
            subject_alternative_names: Vec::new(),
            validity_days: self.validity_days,
            key_usage: Vec::new(),
            extended_key_usages: Vec::new(),
            device_id: None,
            profile_id: None,
            profile_version: None,
            renewal,
            signed: None,
        })
    }

    /// Nothing to record: the CA's issuance record is the only state plain mode keeps.
    async fn notify(&self, _n: Notification) -> Result<(), NotifyError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use openssl::hash::MessageDigest;
    use openssl::pkey::PKey;
    use openssl::rsa::Rsa;
    use openssl::x509::{X509Name, X509ReqBuilder};

    fn csr(cn: &str, extra: Option<(&str, &str)>) -> Vec<u8> {
        let key = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
        let mut name = X509Name::builder().unwrap();
        name.append_entry_by_text("CN", cn).unwrap();
        if let Some((k, v)) = extra {
            name.append_entry_by_text(k, v).unwrap();
        }
        let mut b = X509ReqBuilder::new().unwrap();
        b.set_subject_name(&name.build()).unwrap();
        b.set_pubkey(&key).unwrap();
        b.sign(&key, MessageDigest::sha256()).unwrap();
        b.build().to_der().unwrap()
    }

    fn request(csr_der: Vec<u8>, challenge: Option<&str>) -> VerifyRequest {
        VerifyRequest {
            facts: None,
            csr_der,
            challenge: challenge.map(Secret::new),
            transaction_id: "tx-1".into(),
            template: None,
            signer_cert_der: None,
            requester: Default::default(),
        }
    }

    fn policy() -> StaticChallenge {
        StaticChallenge::new(Secret::new("s3cret-Static"), "IPSECIntermediateOffline", 30)
    }

    #[tokio::test]
    async fn the_right_challenge_grants_the_csr_subject_under_the_configured_template() {
        let grant = policy()
            .verify_request(request(
                csr("dev-1", Some(("O", "Lab"))),
                Some("s3cret-Static"),
            ))
            .await
            .unwrap();
        assert_eq!(grant.template, "IPSECIntermediateOffline");
        assert_eq!(grant.validity_days, 30);
        assert_eq!(grant.transaction_id, "tx-1");
        assert!(!grant.renewal);
        let subject: Vec<_> = grant
            .subject
            .iter()
            .map(|a| (a.attr, a.value.as_str()))
            .collect();
        assert_eq!(
            subject,
            [(SubjectAttr::CN, "dev-1"), (SubjectAttr::O, "Lab")]
        );
        assert!(grant.subject_alternative_names.is_empty());
    }

    #[tokio::test]
    async fn a_wrong_prefix_or_missing_challenge_is_refused() {
        for (given, expected) in [
            (Some("s3cret-Stati"), Rejection::ChallengeUnknown),
            (Some("s3cret-Static "), Rejection::ChallengeUnknown),
            (Some(""), Rejection::ChallengeUnknown),
            (None, Rejection::ChallengePasswordMissing),
        ] {
            let err = policy()
                .verify_request(request(csr("dev-1", None), given))
                .await
                .unwrap_err();
            assert!(
                matches!(&err, VerifyError::Rejected(r) if *r == expected),
                "{given:?}: {err:?}"
            );
        }
    }

    /// A certificate for CN=`cn`, O=Lab (self-signed: the pipeline, not this policy, decides
    /// that a signer is ours and good).
    fn cert(cn: &str) -> Vec<u8> {
        let key = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
        let mut name = X509Name::builder().unwrap();
        name.append_entry_by_text("CN", cn).unwrap();
        name.append_entry_by_text("O", "Lab").unwrap();
        let name = name.build();
        let mut b = openssl::x509::X509Builder::new().unwrap();
        b.set_subject_name(&name).unwrap();
        b.set_issuer_name(&name).unwrap();
        b.set_pubkey(&key).unwrap();
        b.set_not_before(&openssl::asn1::Asn1Time::days_from_now(0).unwrap())
            .unwrap();
        b.set_not_after(&openssl::asn1::Asn1Time::days_from_now(1).unwrap())
            .unwrap();
        b.sign(&key, MessageDigest::sha256()).unwrap();
        b.build().to_der().unwrap()
    }

    #[tokio::test]
    async fn a_renewal_signed_by_our_certificate_needs_no_challenge_for_its_own_subject_only() {
        let mut req = request(csr("dev-1", Some(("O", "Lab"))), None);
        req.signer_cert_der = Some(cert("dev-1"));
        let grant = policy().verify_request(req).await.unwrap();
        assert!(grant.renewal);
        // docs/decisions.md #5: another subject than the signer's is refused, even with the
        // challenge, as is a signer that does not decode.
        for (signer, expected) in [
            (cert("dev-2"), Rejection::SubjectNameMismatch),
            (vec![0x30, 0x00], Rejection::SigningCertThumbprintMismatch),
        ] {
            let mut req = request(csr("dev-1", Some(("O", "Lab"))), Some("s3cret-Static"));
            req.signer_cert_der = Some(signer);
            let err = policy().verify_request(req).await.unwrap_err();
            assert!(
                matches!(&err, VerifyError::Rejected(r) if *r == expected),
                "{err:?}"
            );
        }
    }

    #[tokio::test]
    async fn an_attribute_outside_the_contract_or_garbage_is_refused() {
        let err = policy()
            .verify_request(request(
                csr("dev-1", Some(("pseudonym", "x"))),
                Some("s3cret-Static"),
            ))
            .await
            .unwrap_err();
        assert!(matches!(
            err,
            VerifyError::Rejected(Rejection::SubjectNameMismatch)
        ));
        let err = policy()
            .verify_request(request(vec![1, 2, 3], Some("s3cret-Static")))
            .await
            .unwrap_err();
        assert!(matches!(
            err,
            VerifyError::Rejected(Rejection::CertificateRequestDecodingFailed)
        ));
    }

    #[test]
    fn debug_never_shows_the_challenge() {
        let shown = format!("{:?}", policy());
        assert!(!shown.contains("s3cret"), "{shown}");
    }
}
