//! VerifyRequest, Notify and GenerateChallenge for the in-process [`PolicyService`].

use openssl::x509::X509;

use crate::admin_path::{esc1_names, grant_body};
use crate::decision_audit::{self, Seen};
use crate::error::{ChallengeError, NotifyError, Rejection, StoreError, VerifyError};
use crate::model::{CertStatus, DeviceState, MAX_TRANSACTION_ID, is_identifier};
use crate::render::{self, Expected};
use crate::rules;
use crate::service::PolicyService;
use crate::store::{
    AuditEvent, ChallengeRow, IssuedOutcome, IssuedRecord, NewChallenge, ReserveOutcome,
};
use foundation::Serial;
use foundation::secret::{CHALLENGE_BYTES, Secret, challenge_ref, sha256, sha256_hex};
use foundation::time::asn1_to_unix;
use policy_api::contract::{
    ChallengeRequest, Grant, IssuedChallenge, NdesPolicy, Notification, Outcome, RegrantRequest,
    ReplyReport, VerifyRequest,
};
use policy_api::csr::CsrFacts;

fn unavailable(e: StoreError) -> VerifyError {
    tracing::error!(error = %e, "policy store unavailable");
    VerifyError::Unavailable
}

/// A request after parsing, with its digests.
struct Parsed {
    csr: CsrFacts,
    csr_hash: Vec<u8>,
    spki_hash: Vec<u8>,
    /// This instance's clock when the grant is signed (its expiry is audited with the grant).
    signed_at: i64,
}

impl PolicyService {
    async fn verify_inner(
        &self,
        req: &VerifyRequest,
        facts: Option<CsrFacts>,
        seen: &mut Seen,
    ) -> Result<Grant, VerifyError> {
        let tx = req.transaction_id.as_str();
        if tx.is_empty()
            || tx.len() > MAX_TRANSACTION_ID
            || !tx.bytes().all(|b| (0x21..0x7f).contains(&b))
        {
            return Err(Rejection::CertificateRequestDecodingFailed.into());
        }
        // Facts read in this process by ndes-proxy, which verified the CSR's signature, are
        // used as they are; a CSR that came over HTTP is read and verified here, once.
        let csr = match facts {
            Some(facts) => facts,
            None => CsrFacts::read_and_verify(&req.csr_der)?,
        };
        let parsed = Parsed {
            csr_hash: sha256(&req.csr_der),
            spki_hash: sha256(&csr.spki_der),
            csr,
            signed_at: self.store.local_now(),
        };
        if let Some(existing) = self.store.get_request(tx).await.map_err(unavailable)?
            && existing.csr_hash != parsed.csr_hash
        {
            return Err(Rejection::TransactionIdReused.into());
        }
        let grant = match &req.signer_cert_der {
            Some(signer) => self.verify_renewal(req, &parsed, signer, seen).await,
            None => self.verify_with_challenge(req, &parsed, seen).await,
        }?;
        self.sign_grant(grant, &parsed.spki_hash, parsed.signed_at)
    }

    async fn verify_with_challenge(
        &self,
        req: &VerifyRequest,
        p: &Parsed,
        seen: &mut Seen,
    ) -> Result<Grant, VerifyError> {
        if p.csr.challenge_count > 1 {
            return Err(Rejection::ChallengeDecodingError.into());
        }
        let challenge = match (&req.challenge, &p.csr.challenge) {
            (None, None) => return Err(Rejection::ChallengePasswordMissing.into()),
            (Some(a), Some(b)) if !a.ct_eq(b) => {
                return Err(Rejection::ChallengeDecodingError.into());
            }
            (Some(a), _) => a,
            (None, Some(b)) => b,
        };
        if !challenge.is_challenge_shaped() {
            return Err(Rejection::ChallengeDecodingError.into());
        }
        let hash = challenge.digest();
        let row = self
            .store
            .get_challenge(&hash)
            .await
            .map_err(unavailable)?
            .ok_or(Rejection::ChallengeUnknown)?;
        // The owner is named on a refusal too: a misused challenge is traced to its owner.
        seen.challenge = Some(challenge_ref(&hash));
        seen.device_id.clone_from(&row.device_id);
        seen.profile_id.clone_from(&row.profile_id);
        seen.profile_version = row.profile_version;
        seen.minted_by.clone_from(&row.requester);
        let now = self.store.now().await.map_err(unavailable)?;
        check_availability(&row, &req.transaction_id, &p.csr_hash, now)?;
        if let Some(t) = &req.template
            && *t != row.template
        {
            return Err(Rejection::TemplateMismatch.into());
        }
        let (grant, esc1_exposed) = if row.kind == "admin" {
            self.admin_grant(req, &p.csr, &p.spki_hash, &row).await?
        } else {
            (self.profile_grant(req, p, &row).await?, false)
        };
        let body = grant_body(&grant, esc1_exposed)?;
        let events = self.grant_events(req, seen, &grant, esc1_exposed, p.signed_at);
        let outcome = self
            .store
            .reserve(
                Some(&hash),
                &req.transaction_id,
                events[0]
                    .transaction_id
                    .as_deref()
                    .unwrap_or(&req.transaction_id),
                &p.csr_hash,
                &p.spki_hash,
                None,
                &body,
                &events,
            )
            .await
            .map_err(unavailable)?;
        match outcome {
            ReserveOutcome::Granted(stored) => {
                serde_json::from_str(&stored).map_err(|_| VerifyError::Unavailable)
            }
            ReserveOutcome::TransactionIdReused => Err(Rejection::TransactionIdReused.into()),
            ReserveOutcome::ChallengeUnavailable => {
                // Lost a race or expired meanwhile: say which.
                let row = self.store.get_challenge(&hash).await.map_err(unavailable)?;
                let now = self.store.now().await.map_err(unavailable)?;
                match row {
                    Some(r) if r.reserved_tx.is_none() && r.expires_at <= now => {
                        Err(Rejection::ChallengeExpired.into())
                    }
                    _ => Err(Rejection::ChallengeAlreadyUsed.into()),
                }
            }
        }
    }

    async fn profile_grant(
        &self,
        req: &VerifyRequest,
        p: &Parsed,
        row: &ChallengeRow,
    ) -> Result<Grant, VerifyError> {
        let device_id = row
            .device_id
            .as_deref()
            .ok_or(Rejection::BadDeviceIdInChallenge)?;
        let profile_id = row
            .profile_id
            .as_deref()
            .ok_or(Rejection::ScepProfileNoLongerTargetedToTheClient)?;
        let expected: Expected = row
            .expected
            .as_deref()
            .and_then(|e| serde_json::from_str(e).ok())
            .ok_or(Rejection::ChallengeDecodingError)?;
        let version = self.check_targeting(device_id, profile_id).await?;
        if Some(version) != row.profile_version {
            return Err(Rejection::ScepProfileNoLongerTargetedToTheClient.into());
        }
        rules::check(&expected, &p.csr)?;
        self.check_key_holder(&p.spki_hash, Some(device_id)).await?;
        Ok(grant_from(
            req, &expected, device_id, profile_id, version, false,
        ))
    }

    /// Reliability P10: a key certified to one holder (a device, or `None` for mscep_admin
    /// requests) is refused to any other, so a cloned disk image cannot enrol the original
    /// device's key for a second device. The same holder may certify it again: RFC 8894
    /// §3.3.1.2 lets a renewal keep the key, and a retransmission is the same request. Any
    /// status counts: a revoked or expired certificate still says whose key it was. Two
    /// first enrolments of one key racing between VerifyRequest and Notify are not caught.
    pub(crate) async fn check_key_holder(
        &self,
        spki_hash: &[u8],
        holder: Option<&str>,
    ) -> Result<(), VerifyError> {
        let holders = self
            .store
            .key_holders(spki_hash)
            .await
            .map_err(unavailable)?;
        if holders.iter().any(|h| h.as_deref() != holder) {
            return Err(Rejection::KeyCertifiedToAnotherDevice.into());
        }
        Ok(())
    }

    /// Device known and active, profile present and targeted; the profile's current version.
    pub(crate) async fn check_targeting(
        &self,
        device_id: &str,
        profile_id: &str,
    ) -> Result<i64, VerifyError> {
        let device = self
            .store
            .get_device(device_id)
            .await
            .map_err(unavailable)?
            .ok_or(Rejection::BadDeviceIdInChallenge)?;
        check_device_state(device.state)?;
        let profile = self
            .store
            .get_profile(profile_id)
            .await
            .map_err(unavailable)?
            .ok_or(Rejection::ScepProfileNoLongerTargetedToTheClient)?;
        let targeted = self
            .store
            .targeted_profiles(device_id)
            .await
            .map_err(unavailable)?;
        if !targeted.iter().any(|t| t == profile_id) {
            return Err(Rejection::ScepProfileNoLongerTargetedToTheClient.into());
        }
        Ok(profile.version)
    }

    /// docs/decisions.md #5: a current, unrevoked certificate we issued to the same device under
    /// the same profile, or from the admin path for the same subject and template, authorises
    /// a renewal without a challenge. ndes-proxy has already checked that this certificate's
    /// key signed the RenewalReq and that the CA holds it as good.
    async fn verify_renewal(
        &self,
        req: &VerifyRequest,
        p: &Parsed,
        signer_der: &[u8],
        seen: &mut Seen,
    ) -> Result<Grant, VerifyError> {
        if X509::from_der(signer_der).is_err() {
            return Err(Rejection::SigningCertThumbprintMismatch.into());
        }
        let cert = self
            .store
            .cert_by_thumbprint(&sha256_hex(signer_der))
            .await
            .map_err(unavailable)?
            .ok_or(Rejection::SigningCertThumbprintMismatch)?;
        seen.renews_serial = Some(cert.serial_hex.clone());
        seen.device_id.clone_from(&cert.device_id);
        seen.profile_id.clone_from(&cert.profile_id);
        seen.profile_version = cert.profile_version;
        let now = self.store.now().await.map_err(unavailable)?;
        if cert.status != CertStatus::Issued || cert.not_after <= now {
            return Err(Rejection::RenewalNotAllowed.into());
        }
        let (Some(device_id), Some(profile_id)) = (&cert.device_id, &cert.profile_id) else {
            // No device: an admin-path certificate (docs/decisions.md #5).
            let (grant, esc1) = self
                .admin_renewal_grant(req, &p.csr, &p.spki_hash, &cert, now)
                .await?;
            let body = grant_body(&grant, esc1)?;
            return self
                .reserve_renewal(req, p, seen, &grant, esc1, &body)
                .await;
        };
        self.check_targeting(device_id, profile_id).await?;
        let (Some(device), Some(profile)) = (
            self.store
                .get_device(device_id)
                .await
                .map_err(unavailable)?,
            self.store
                .get_profile(profile_id)
                .await
                .map_err(unavailable)?,
        ) else {
            return Err(Rejection::ScepProfileNoLongerTargetedToTheClient.into());
        };
        let expected =
            render::render(&profile, &device).map_err(|_| Rejection::SubjectNameMismatch)?;
        if let Some(t) = &req.template
            && *t != expected.template
        {
            return Err(Rejection::TemplateMismatch.into());
        }
        let threshold = profile.spec.renewal_threshold_percent;
        self.check_renewal_window(req, &cert, now, threshold, "renewal_threshold_percent")
            .await?;
        rules::check(&expected, &p.csr)?;
        self.check_key_holder(&p.spki_hash, Some(device_id)).await?;
        let grant = grant_from(req, &expected, device_id, profile_id, profile.version, true);
        let body = serde_json::to_string(&grant).map_err(|_| VerifyError::Unavailable)?;
        seen.profile_version = Some(profile.version);
        self.reserve_renewal(req, p, seen, &grant, false, &body)
            .await
    }

    /// Records a granted renewal of the certificate `seen.renews_serial` (no challenge to
    /// reserve) with its decision events, in one transaction; a retransmission gets the
    /// stored grant.
    async fn reserve_renewal(
        &self,
        req: &VerifyRequest,
        p: &Parsed,
        seen: &Seen,
        grant: &Grant,
        esc1_exposed: bool,
        body: &str,
    ) -> Result<Grant, VerifyError> {
        let events = self.grant_events(req, seen, grant, esc1_exposed, p.signed_at);
        let outcome = self
            .store
            .reserve(
                None,
                &req.transaction_id,
                events[0]
                    .transaction_id
                    .as_deref()
                    .unwrap_or(&req.transaction_id),
                &p.csr_hash,
                &p.spki_hash,
                seen.renews_serial.as_deref(),
                body,
                &events,
            )
            .await
            .map_err(unavailable)?;
        match outcome {
            ReserveOutcome::Granted(stored) => {
                serde_json::from_str(&stored).map_err(|_| VerifyError::Unavailable)
            }
            _ => Err(Rejection::TransactionIdReused.into()),
        }
    }

    /// Mints and stores a challenge bound to a device, a profile version and its rendering.
    /// The challenge is delivered by the check-in `checkin_id` that minted it: both records
    /// are written with it (docs/decisions.md #12).
    pub(crate) async fn issue_profile_challenge(
        &self,
        device_id: &str,
        profile_id: &str,
        profile_version: i64,
        expected: &Expected,
        checkin_id: &str,
    ) -> Result<(Secret, i64), crate::error::AdminError> {
        let secret =
            Secret::generate(CHALLENGE_BYTES).map_err(|_| crate::error::AdminError::Internal)?;
        let settings = self.challenge_settings().await?;
        let hash = secret.digest();
        let issued = AuditEvent {
            event: "challenge_issued".into(),
            device_id: Some(device_id.to_string()),
            profile_id: Some(profile_id.to_string()),
            profile_version: Some(profile_version),
            challenge: Some(challenge_ref(&hash)),
            actor: Some(format!("device:{device_id}")),
            detail: Some(format!(
                "challenge={} version={profile_version}",
                challenge_ref(&hash)
            )),
            facts: Some(
                serde_json::json!({ "template": expected.template, "via": "checkin" }).to_string(),
            ),
            ..AuditEvent::default()
        };
        let delivered = AuditEvent {
            event: "checkin_delivered".into(),
            actor: Some(format!("device:{device_id}")),
            detail: None,
            facts: Some(serde_json::json!({ "checkin": checkin_id }).to_string()),
            ..issued.clone()
        };
        let expires = self
            .store
            .insert_challenge(
                &NewChallenge {
                    hash: hash.clone(),
                    kind: "profile",
                    device_id: Some(device_id.to_string()),
                    profile_id: Some(profile_id.to_string()),
                    profile_version: Some(profile_version),
                    template: expected.template.clone(),
                    expected: serde_json::to_string(expected).ok(),
                    requester: None,
                    validity_secs: settings.profile_challenge_validity_minutes * 60,
                },
                &[issued, delivered],
            )
            .await?;
        Ok((secret, expires))
    }

    /// Records the outcome with its audit record; returns a record still to write when the
    /// notification changed nothing (a repeat).
    async fn notify_inner(&self, n: &Notification) -> Result<Option<AuditEvent>, NotifyError> {
        let store_err = |e: StoreError| {
            tracing::error!(error = %e, "policy store unavailable");
            NotifyError::Unavailable
        };
        let request = self
            .store
            .get_request(&n.transaction_id)
            .await
            .map_err(store_err)?
            .ok_or(NotifyError::UnknownTransaction)?;
        let client_tx = request
            .client_transaction_id
            .clone()
            .unwrap_or_else(|| n.transaction_id.clone());
        let linked = AuditEvent {
            request_id: (client_tx != n.transaction_id).then(|| n.transaction_id.clone()),
            transaction_id: Some(client_tx),
            ..AuditEvent::default()
        };
        match &n.outcome {
            Outcome::Failed { reason } => {
                let failed = AuditEvent {
                    event: "issuance_failed".into(),
                    reason: Some(reason.chars().take(256).collect()),
                    ..linked
                };
                if self
                    .store
                    .record_failed(&n.transaction_id, &failed)
                    .await
                    .map_err(store_err)?
                {
                    Ok(None)
                } else {
                    Err(NotifyError::Conflict)
                }
            }
            Outcome::Issued {
                serial: notified_serial,
                thumbprint_sha256,
                certificate_der,
                ..
            } => {
                let checked = check_certificate(certificate_der, &request.spki_hash)
                    .filter(|(serial, thumb, _, _)| {
                        serial == notified_serial && thumb.eq_ignore_ascii_case(thumbprint_sha256)
                    })
                    .ok_or(NotifyError::Conflict)?;
                let (serial, thumb, not_after, subject) = checked;
                let grant: Grant =
                    serde_json::from_str(&request.grant_body).map_err(|_| NotifyError::Conflict)?;
                let esc1 = crate::admin_path::grant_marked_esc1(&request.grant_body)
                    .then(|| esc1_names(&grant));
                let notified = AuditEvent {
                    event: "challenge_consumed".into(),
                    device_id: grant.device_id.clone(),
                    profile_id: grant.profile_id.clone(),
                    profile_version: grant.profile_version,
                    serial: Some(serial.to_hex()),
                    esc1_exposed: esc1.is_some(),
                    detail: esc1.map(|names| format!("esc1_exposed {names}")),
                    facts: Some(
                        serde_json::json!({
                            "template": grant.template,
                            "renews_serial": request.renewal_of,
                            "not_after": foundation::time::rfc3339(not_after),
                            "not_after_unix": not_after,
                        })
                        .to_string(),
                    ),
                    ..linked
                };
                let rec = IssuedRecord {
                    transaction_id: n.transaction_id.clone(),
                    serial_hex: serial.to_hex(),
                    thumbprint: thumb,
                    not_after,
                    subject: Some(subject),
                    der: certificate_der.clone(),
                    spki_hash: request.spki_hash.clone(),
                    device_id: grant.device_id,
                    profile_id: grant.profile_id,
                    profile_version: grant.profile_version,
                };
                let out_of_service = self.config.revocation_reasons.out_of_service();
                let recorded = self
                    .store
                    .record_issued(&rec, &out_of_service, &notified)
                    .await
                    .map_err(store_err)?;
                match recorded {
                    IssuedOutcome::Recorded => Ok(None),
                    IssuedOutcome::RecordedForRevocation(state) => {
                        // Granted before a retire, wipe or block, issued after it: revoked
                        // (docs/decisions.md #11), its `revocation_queued` record written with
                        // the certificate's.
                        tracing::info!(serial = %rec.serial_hex, state = state.as_str(), "issued to an inactive device");
                        self.outbox_wake.notify_one();
                        Ok(None)
                    }
                    IssuedOutcome::AlreadyRecorded => Ok(Some(AuditEvent {
                        event: "notify_repeated".into(),
                        serial: Some(rec.serial_hex.clone()),
                        ..notified
                    })),
                    IssuedOutcome::UnknownTransaction => Err(NotifyError::UnknownTransaction),
                    IssuedOutcome::Conflict => Err(NotifyError::Conflict),
                }
            }
        }
    }
}

/// A challenge may serve this request if unused and unexpired, or already reserved for this
/// very (transactionID, CSR).
fn check_availability(
    row: &ChallengeRow,
    tx: &str,
    csr_hash: &[u8],
    now: i64,
) -> Result<(), Rejection> {
    let mine =
        row.reserved_tx.as_deref() == Some(tx) && row.reserved_csr.as_deref() == Some(csr_hash);
    if mine {
        return Ok(());
    }
    if row.reserved_tx.is_some() || row.consumed_at.is_some() {
        return Err(Rejection::ChallengeAlreadyUsed);
    }
    if row.expires_at <= now {
        return Err(Rejection::ChallengeExpired);
    }
    Ok(())
}

fn check_device_state(state: DeviceState) -> Result<(), Rejection> {
    match state {
        DeviceState::Active => Ok(()),
        DeviceState::Blocked => Err(Rejection::DeviceBlocked),
        DeviceState::Retired | DeviceState::Deleted => Err(Rejection::DeviceRetired),
        DeviceState::Wiped => Err(Rejection::DeviceWiped),
    }
}

fn grant_from(
    req: &VerifyRequest,
    e: &Expected,
    device_id: &str,
    profile_id: &str,
    version: i64,
    renewal: bool,
) -> Grant {
    Grant {
        transaction_id: req.transaction_id.clone(),
        template: e.template.clone(),
        subject: e.subject.clone(),
        subject_alternative_names: e.subject_alternative_names.clone(),
        validity_days: e.validity_days,
        key_usage: e.key_usage.clone(),
        extended_key_usages: e.extended_key_usages.clone(),
        device_id: Some(device_id.to_string()),
        profile_id: Some(profile_id.to_string()),
        profile_version: Some(version),
        renewal,
        signed: None,
    }
}

/// Parses the issued certificate: (serial, SHA-256 thumbprint, notAfter) if its key is the
/// request's. Notify crosses a trust boundary (it may come over HTTP), so the policy reads the
/// facts from the certificate instead of believing the notification.
fn check_certificate(der: &[u8], spki_hash: &[u8]) -> Option<(Serial, String, i64, String)> {
    let cert = X509::from_der(der).ok()?;
    let key = cert.public_key().ok()?.public_key_to_der().ok()?;
    if sha256(&key) != spki_hash {
        return None;
    }
    let serial = Serial::of_certificate(&cert).ok()?;
    let not_after = asn1_to_unix(cert.not_after()).ok()?;
    let subject = crate::cert_subject::rfc4514(cert.subject_name());
    Some((serial, sha256_hex(der), not_after, subject))
}

#[async_trait::async_trait]
impl NdesPolicy for PolicyService {
    async fn generate_challenge(
        &self,
        req: ChallengeRequest,
    ) -> Result<IssuedChallenge, ChallengeError> {
        if !is_identifier(&req.template) || req.requester.len() > 256 {
            return Err(ChallengeError::InvalidTemplate);
        }
        let store_err = |e: StoreError| {
            tracing::error!(error = %e, "policy store unavailable");
            ChallengeError::Unavailable
        };
        // docs/decisions.md #7: the admin path serves only templates whose names an
        // administrator has decided (issue 15 item 2).
        if self
            .name_policy(&req.template)
            .await
            .map_err(store_err)?
            .is_none()
        {
            tracing::warn!(template = %req.template, "no admin-path name policy for the template");
            self.audit(
                "challenge_refused",
                None,
                None,
                None,
                Some(format!(
                    "template={} requester={}: the template has no admin-path name policy",
                    req.template, req.requester
                )),
            )
            .await;
            return Err(ChallengeError::InvalidTemplate);
        }
        let settings = self.challenge_settings().await.map_err(store_err)?;
        let secret = Secret::generate(CHALLENGE_BYTES).map_err(|_| ChallengeError::Unavailable)?;
        let hash = secret.digest();
        let issued = AuditEvent {
            event: "challenge_issued".into(),
            challenge: Some(challenge_ref(&hash)),
            actor: Some(req.requester.clone()),
            detail: Some(format!(
                "challenge={} template={} requester={}",
                challenge_ref(&hash),
                req.template,
                req.requester
            )),
            facts: Some(
                serde_json::json!({ "template": req.template, "via": "mscep_admin" }).to_string(),
            ),
            ..AuditEvent::default()
        };
        let expires = self
            .store
            .insert_admin_challenge(
                &NewChallenge {
                    hash: hash.clone(),
                    kind: "admin",
                    device_id: None,
                    profile_id: None,
                    profile_version: None,
                    template: req.template.clone(),
                    expected: None,
                    requester: Some(req.requester.clone()),
                    validity_secs: settings.password_validity_minutes * 60,
                },
                settings.password_max,
                &issued,
            )
            .await
            .map_err(store_err)?;
        let Some(expires_at) = expires else {
            self.audit(
                "challenge_cache_full",
                None,
                None,
                None,
                Some(req.requester),
            )
            .await;
            return Err(ChallengeError::CacheFull);
        };
        Ok(IssuedChallenge {
            challenge: secret,
            template: req.template,
            expires_at: foundation::time::rfc3339(expires_at),
            expires_at_unix: expires_at,
        })
    }

    fn reads_csr_facts(&self) -> bool {
        true
    }

    async fn ready(&self) -> Result<(), String> {
        self.store().ping().await.map_err(|e| e.to_string())
    }

    async fn verify_request(&self, mut req: VerifyRequest) -> Result<Grant, VerifyError> {
        let facts = req.facts.take();
        let mut seen = Seen::default();
        let result = self.verify_inner(&req, facts, &mut seen).await;
        match &result {
            Ok(g) => self.metrics.decision(
                "granted",
                if g.renewal { "renewal" } else { "challenge" }.to_owned(),
            ),
            Err(VerifyError::Rejected(r)) => self.metrics.decision("rejected", r.to_string()),
            Err(VerifyError::Unavailable) => self.metrics.decision("unavailable", String::new()),
        }
        // A grant's records were written with it; a refusal changes nothing and is recorded
        // here, naming the challenge's owner.
        if let Err(VerifyError::Rejected(r)) = &result {
            let detail = format!("{r} {}", decision_audit::requester_text(&req));
            let events = [
                decision_audit::received(&req, &seen),
                decision_audit::rejected(&req, &seen, &r.to_string(), detail),
            ];
            tracing::info!(transaction_id = events[1].transaction_id.as_deref(), device_id = seen.device_id.as_deref(), reason = %r, "audit");
            if let Err(err) = self.store.audit_all(&events).await {
                tracing::warn!(%err, "refusal not recorded in the audit");
            }
        }
        result
    }

    async fn regrant(&self, req: RegrantRequest) -> Result<Grant, VerifyError> {
        let result = self.regrant_inner(&req.transaction_id).await;
        if let Err(VerifyError::Rejected(r)) = &result {
            let tx = Some(req.transaction_id.as_str()).filter(|t| t.len() <= MAX_TRANSACTION_ID);
            self.audit("regrant_refused", None, None, tx, Some(r.to_string()))
                .await;
        }
        result
    }

    async fn notify(&self, n: Notification) -> Result<(), NotifyError> {
        let tx = Some(n.transaction_id.as_str()).filter(|t| t.len() <= MAX_TRANSACTION_ID);
        match self.notify_inner(&n).await {
            Ok(None) => Ok(()),
            Ok(Some(repeat)) => {
                self.record_audit(repeat).await;
                Ok(())
            }
            Err(e) => {
                if e != NotifyError::Unavailable {
                    self.audit("notify_refused", None, None, tx, Some(e.to_string()))
                        .await;
                }
                Err(e)
            }
        }
    }

    async fn reply_sent(&self, report: ReplyReport) {
        self.record_audit(decision_audit::reply_sent(&report)).await;
    }
}
