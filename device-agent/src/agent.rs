//! One MDM-managed device: check in, carry out commands, enroll or renew each profile's
//! certificate, and report what happened.
//!
//! - wipe: every key and certificate of the device is deleted, the command acknowledged,
//!   then the registration (a factory reset: the state directory is left empty).
//! - retire: the MDM-provisioned slots (those with a `profile.json`) are deleted, the command
//!   acknowledged, then the registration; slots enrolled in plain mode stay.
//! - a profile no longer listed for an active device (unassigned; its certificate is revoked):
//!   its slot is deleted, as Intune removes the certificate of an unassigned SCEP profile. A
//!   blocked device gets no profiles but keeps its slots.
//! - a profile whose installed certificate the check-in lists in `revoked_thumbprints` (e.g.
//!   revoked by a block, then unblocked): its slot is deleted (key, certificate and any
//!   in-flight request signed by it) and the profile enrolls anew with its challenge: a
//!   PKCSReq with a new key and a self-signed signer, since a renewal signed by a revoked
//!   certificate is refused.
//!
//! Acknowledgements and results are kept in `reports.json` until a check-in delivers them,
//! so a failed check-in loses nothing.

use std::sync::Arc;

use openssl::hash::MessageDigest;
use scep::csr::ChallengePassword;
use serde::{Deserialize, Serialize};

use crate::enroll::{Enrolled, enroll, resume};
use crate::error::{Error, Result};
use crate::mdm::{
    CheckinResponse, InstalledCert, MdmClient, ProfileError, Registration, RenderedProfile,
    SecretString, StatusReport,
};
use crate::renew::{RenewOptions, RenewOutcome, renew_with_key};
use crate::state::{DeviceDir, Slot};
use crate::transport::ScepTransport;

/// Marks a slot as provisioned by an MDM profile, at a version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct ProfileMarker {
    profile_id: String,
    version: i64,
}

/// What one `sync` did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct SyncSummary {
    /// Device state the MDM reported.
    pub state: String,
    /// Certificates installed by this run, per profile.
    pub installed: Vec<(String, Enrolled)>,
    /// Profiles whose certificate is installed and not yet due.
    pub up_to_date: Vec<String>,
    /// Enrollment errors, per profile.
    pub errors: Vec<ProfileError>,
    /// The short stable label of each of `errors`, in order ([`crate::error::Error::reason`]),
    /// for fleet summaries; the MDM gets the message only.
    pub error_reasons: Vec<String>,
    /// A wipe was carried out.
    pub wiped: bool,
    /// A retire was carried out.
    pub retired: bool,
    /// Profiles no longer assigned, whose certificate and key were removed.
    pub removed: Vec<String>,
    /// Profiles whose installed certificate the MDM reported revoked: deleted, then enrolled
    /// anew.
    pub revoked: Vec<String>,
}

/// Options of one `sync`.
#[derive(Debug, Default)]
pub struct SyncOptions {
    /// Renew every installed certificate now.
    pub force_renew: bool,
    /// A pre-generated key for the first new enrollment or renewal (fleet mode keeps key
    /// generation out of what it measures); used only if the profile asks for its type.
    pub key: Option<crate::key::DeviceKey>,
}

/// A registered device and the clients it talks through.
pub struct Agent {
    dir: DeviceDir,
    mdm: MdmClient,
    scep: Arc<dyn ScepTransport>,
}

impl Agent {
    /// An agent over a device directory.
    pub fn new(dir: DeviceDir, mdm: MdmClient, scep: Arc<dyn ScepTransport>) -> Self {
        Self { dir, mdm, scep }
    }

    /// Check in, carry out commands, enroll/renew, and deliver the report.
    pub async fn sync(&self, mut options: SyncOptions) -> Result<SyncSummary> {
        let (reg, credential) = self.registration()?;
        let pending: StatusReport = self.dir.read_json("reports.json")?.unwrap_or_default();
        let answer = self
            .mdm
            .checkin(&reg.device_id, &credential, &pending)
            .await?;
        self.dir.remove("reports.json")?;
        let mut summary = SyncSummary {
            state: answer.state.clone(),
            ..SyncSummary::default()
        };
        if self
            .commands(&answer, &reg, &credential, &mut summary)
            .await?
        {
            return Ok(summary);
        }
        if answer.state == "active" {
            summary.removed = self.remove_unassigned(&answer)?;
        }
        let mut report = StatusReport::default();
        for profile in &answer.profiles {
            let result = match self.remove_revoked(profile) {
                Ok(removed) => {
                    if removed {
                        summary.revoked.push(profile.profile_id.clone());
                    }
                    self.profile(profile, &mut options).await
                }
                Err(e) => Err(e),
            };
            match result {
                Ok(Some(cert)) => {
                    report.installed.push(InstalledCert {
                        profile_id: profile.profile_id.clone(),
                        thumbprint_sha256: cert.thumbprint_sha256.clone(),
                    });
                    summary.installed.push((profile.profile_id.clone(), cert));
                }
                Ok(None) => summary.up_to_date.push(profile.profile_id.clone()),
                Err(e) => {
                    tracing::warn!(profile = %profile.profile_id, error = %e, "enrollment failed");
                    let err = ProfileError {
                        profile_id: profile.profile_id.clone(),
                        message: e.to_string(),
                    };
                    report.errors.push(err.clone());
                    summary.errors.push(err);
                    summary.error_reasons.push(e.reason());
                }
            }
        }
        if !report.is_empty() {
            self.deliver(&reg, &credential, report).await?;
        }
        Ok(summary)
    }

    /// The stored registration and credential.
    pub fn registration(&self) -> Result<(Registration, SecretString)> {
        let reg: Registration = self
            .dir
            .read_json("registration.json")?
            .ok_or(Error::Missing("device is not registered (run `register`)"))?;
        let cred = self
            .dir
            .read_secret("credential")?
            .ok_or(Error::Missing("device credential missing"))?;
        let cred = String::from_utf8(cred).map_err(|_| Error::State("credential".into()))?;
        Ok((reg, SecretString::new(cred.trim())))
    }

    /// Send a report now; keep it in `reports.json` if that fails.
    async fn deliver(
        &self,
        reg: &Registration,
        credential: &SecretString,
        report: StatusReport,
    ) -> Result<()> {
        self.dir.write_json("reports.json", &report)?;
        match self.mdm.checkin(&reg.device_id, credential, &report).await {
            Ok(_) => self.dir.remove("reports.json"),
            // The MDM refuses the report itself (e.g. a certificate it did not see issued):
            // retrying the same report would never succeed.
            Err(e @ Error::Http { status: 400, .. }) => {
                tracing::warn!(error = %e, "status report refused; dropped");
                self.dir.remove("reports.json")
            }
            Err(e) => Err(e),
        }
    }

    /// Delete the MDM-provisioned slots of profiles the check-in no longer lists.
    fn remove_unassigned(&self, answer: &CheckinResponse) -> Result<Vec<String>> {
        let mut removed = Vec::new();
        for slot in self.dir.slots()? {
            let Some(marker) = slot.read_json::<ProfileMarker>("profile.json")? else {
                continue;
            };
            if !answer
                .profiles
                .iter()
                .any(|p| p.profile_id == marker.profile_id)
            {
                tracing::info!(profile = %marker.profile_id, "profile unassigned; removing its certificate and key");
                slot.delete()?;
                removed.push(marker.profile_id);
            }
        }
        Ok(removed)
    }

    /// Delete the slot of `profile` when its installed certificate is one the MDM lists as
    /// revoked; true when it did.
    fn remove_revoked(&self, profile: &RenderedProfile) -> Result<bool> {
        if profile.revoked_thumbprints.is_empty() {
            return Ok(false);
        }
        let slot = self.dir.slot(&profile.profile_id)?;
        let Some((_, chain)) = slot.installed()? else {
            return Ok(false);
        };
        let Some(leaf) = chain.first() else {
            return Ok(false);
        };
        let thumbprint = hex::encode(leaf.digest(MessageDigest::sha256())?);
        if !profile
            .revoked_thumbprints
            .iter()
            .any(|t| t.eq_ignore_ascii_case(&thumbprint))
        {
            return Ok(false);
        }
        tracing::info!(profile = %profile.profile_id, thumbprint = %thumbprint, "installed certificate revoked; removing it and enrolling anew");
        slot.delete()?;
        Ok(true)
    }

    /// Carry out wipe/retire; true when the device is no longer managed.
    async fn commands(
        &self,
        answer: &CheckinResponse,
        reg: &Registration,
        credential: &SecretString,
        summary: &mut SyncSummary,
    ) -> Result<bool> {
        let wipe = answer.commands.iter().find(|c| c.kind == "wipe");
        let retire = answer.commands.iter().find(|c| c.kind == "retire");
        let Some(cmd) = wipe.or(retire) else {
            return Ok(false);
        };
        if wipe.is_some() {
            self.dir.delete_all_slots()?;
            summary.wiped = true;
        } else {
            for slot in self.dir.slots()? {
                if slot.read_json::<ProfileMarker>("profile.json")?.is_some() {
                    slot.delete()?;
                }
            }
            summary.retired = true;
        }
        let ack = StatusReport {
            acknowledged_commands: answer.commands.iter().map(|c| c.id.clone()).collect(),
            ..StatusReport::default()
        };
        tracing::info!(command = %cmd.kind, "carried out; acknowledging");
        self.deliver(reg, credential, ack).await?;
        self.dir.remove("credential")?;
        self.dir.remove("registration.json")?;
        Ok(true)
    }

    /// Enroll, resume, renew or leave alone one profile's slot.
    async fn profile(
        &self,
        profile: &RenderedProfile,
        options: &mut SyncOptions,
    ) -> Result<Option<Enrolled>> {
        let slot = self.dir.slot(&profile.profile_id)?;
        let config = profile.enroll_config()?;
        let challenge = ChallengePassword::new(profile.challenge.expose());
        let marker = ProfileMarker {
            profile_id: profile.profile_id.clone(),
            version: profile.version,
        };
        let known: Option<ProfileMarker> = slot.read_json("profile.json")?;
        slot.write_json("profile.json", &marker)?;
        slot.write_json("config.json", &config)?;
        let scep = self.scep.as_ref();
        if has_transaction(&slot) {
            return resume(scep, &slot, &config).await.map(Some);
        }
        let installed = slot.installed()?.is_some();
        if !installed || known.as_ref() != Some(&marker) {
            let spec = config.key_spec()?;
            let key = match options.key.take() {
                Some(k) if k.spec().ok() == Some(spec) => Some(k),
                other => {
                    options.key = other;
                    None
                }
            };
            return enroll(scep, &slot, &config, Some(&challenge), key)
                .await
                .map(Some);
        }
        let opts = RenewOptions {
            force: options.force_renew,
            now: None,
        };
        let key = options.key.take();
        match renew_with_key(scep, &slot, &config, Some(&challenge), opts, key).await? {
            RenewOutcome::Renewed { certificate } => Ok(Some(certificate)),
            RenewOutcome::NotDue { .. } => Ok(None),
        }
    }
}

fn has_transaction(slot: &Slot) -> bool {
    slot.path().join("transaction.json").exists()
}
