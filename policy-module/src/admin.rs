//! Admin operations: profiles, devices, groups, assignments and the device lifecycle.
//!
//! Lifecycle moves (illegal ones are 409s):
//! `active -> blocked` (block), `blocked -> active` (unblock), `active|blocked -> retired`
//! (retire, queues a retire command), `active|blocked -> wiped` (wipe, queues a wipe command).
//! `active|blocked|retired|wiped -> deleted` (delete: a tombstone, so its history stays).
//! Block holds every good certificate of the device (certificateHold by default) and unblock
//! releases the holds; retire, wipe and delete revoke (cessationOfOperation); unassigning a
//! profile (or leaving a group) revokes the certificates of profiles that no longer target it
//! (superseded). Reasons are configurable (docs/decisions.md #11).

use serde::{Deserialize, Serialize};

use crate::error::AdminError;
use crate::model::{
    Device, DeviceSpec, DeviceState, Group, IssuedCert, Profile, ProfileSpec, is_identifier,
};
use crate::service::PolicyService;
use crate::store::{Assignment, AuditEvent, Transition};
use foundation::secret::{Secret, TOKEN_BYTES};

/// Who the audit names for an admin API action: the API has one admin credential, no users.
pub const ADMIN_ACTOR: &str = "admin";

/// A freshly registered device and its MDM-channel credential (shown once).
#[derive(Debug, Serialize)]
pub struct Registered {
    pub device: Device,
    pub credential: Secret,
}

/// A device with its certificate inventory and targeted profiles.
#[derive(Debug, Serialize, Deserialize)]
pub struct DeviceView {
    pub device: Device,
    pub profiles: Vec<String>,
    pub certificates: Vec<IssuedCert>,
}

/// Lifecycle actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Lifecycle {
    Retire,
    Wipe,
    Block,
    Unblock,
    /// Revokes the device's certificates and removes it from the admin API; its history and
    /// inventory stay (`DELETE /api/v1/devices/{id}`).
    Delete,
}

impl PolicyService {
    /// Creates a profile (version 1).
    pub async fn create_profile(&self, id: &str, spec: ProfileSpec) -> Result<Profile, AdminError> {
        if !is_identifier(id) {
            return Err(AdminError::Invalid(
                "id: 1-64 characters of [A-Za-z0-9_.-]".into(),
            ));
        }
        spec.validate().map_err(AdminError::Invalid)?;
        if !self.store.insert_profile(id, &spec).await? {
            return Err(AdminError::Conflict(format!("profile {id} exists")));
        }
        self.audit("profile_created", None, Some(id), None, None)
            .await;
        self.store
            .get_profile(id)
            .await?
            .ok_or(AdminError::NotFound)
    }

    /// Replaces a profile's settings as a new version. Challenges bound to the old version
    /// stop verifying; devices get new ones at their next check-in.
    pub async fn update_profile(&self, id: &str, spec: ProfileSpec) -> Result<Profile, AdminError> {
        spec.validate().map_err(AdminError::Invalid)?;
        let version = self
            .store
            .update_profile(id, &spec)
            .await?
            .ok_or(AdminError::NotFound)?;
        self.audit(
            "profile_updated",
            None,
            Some(id),
            None,
            Some(format!("version={version}")),
        )
        .await;
        self.store
            .get_profile(id)
            .await?
            .ok_or(AdminError::NotFound)
    }

    /// Registers a device and returns its one-time-shown credential.
    pub async fn register_device(&self, spec: DeviceSpec) -> Result<Registered, AdminError> {
        spec.validate().map_err(AdminError::Invalid)?;
        let now = self.store.now().await?;
        let device = Device {
            id: spec
                .id
                .clone()
                .unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
            name: spec.name,
            platform: spec.platform,
            serial_number: spec.serial_number,
            owner_upn: spec.owner_upn,
            owner_email: spec.owner_email,
            aad_device_id: spec.aad_device_id,
            user_name: spec.user_name,
            state: DeviceState::Active,
            created_at: now,
            updated_at: now,
        };
        let credential = Secret::generate(TOKEN_BYTES).map_err(|_| AdminError::Internal)?;
        if !self
            .store
            .insert_device(&device, &credential.digest())
            .await?
        {
            return Err(AdminError::Conflict(format!("device {} exists", device.id)));
        }
        self.audit("device_registered", Some(&device.id), None, None, None)
            .await;
        Ok(Registered { device, credential })
    }

    /// A device with its inventory.
    pub async fn device_view(&self, id: &str) -> Result<DeviceView, AdminError> {
        let device = self
            .store
            .get_device(id)
            .await?
            .filter(|d| d.state != DeviceState::Deleted)
            .ok_or(AdminError::NotFound)?;
        Ok(DeviceView {
            profiles: self.store.targeted_profiles(id).await?,
            certificates: self.store.certs_for_device(id).await?,
            device,
        })
    }

    /// Applies a lifecycle action; returns the serials queued for revocation.
    pub async fn lifecycle(&self, id: &str, action: Lifecycle) -> Result<Vec<String>, AdminError> {
        use DeviceState::*;
        let reasons = &self.config.revocation_reasons;
        let (from, to, revoke, command): (&[DeviceState], _, _, _) = match action {
            Lifecycle::Block => (&[Active], Blocked, Some((&reasons.block, "block")), None),
            Lifecycle::Unblock => (&[Blocked], Active, None, None),
            Lifecycle::Delete => (
                &[Active, Blocked, Retired, Wiped],
                Deleted,
                Some((&reasons.delete, "delete")),
                None,
            ),
            Lifecycle::Retire => (
                &[Active, Blocked],
                Retired,
                Some((&reasons.retire, "retire")),
                Some("retire"),
            ),
            Lifecycle::Wipe => (
                &[Active, Blocked],
                Wiped,
                Some((&reasons.wipe, "wipe")),
                Some("wipe"),
            ),
        };
        let revoke = revoke.map(|(r, c)| (r.as_str(), c));
        let release = (action == Lifecycle::Unblock).then_some("unblock");
        let event = AuditEvent {
            event: format!("device_{}", to.as_str()),
            device_id: Some(id.to_string()),
            actor: Some(ADMIN_ACTOR.into()),
            ..AuditEvent::default()
        };
        match self
            .store
            .transition_device(id, from, to, revoke, release, command, ADMIN_ACTOR, &event)
            .await?
        {
            Transition::NotFound | Transition::Illegal(Deleted) => Err(AdminError::NotFound),
            Transition::Illegal(state) => Err(AdminError::Conflict(format!(
                "device is {}; cannot {action:?}",
                state.as_str()
            ))),
            Transition::Done { queued } => {
                tracing::info!(
                    device_id = id,
                    state = to.as_str(),
                    queued = queued.len(),
                    "audit"
                );
                self.outbox_wake.notify_one();
                Ok(queued)
            }
        }
    }

    /// Assigns a profile to a device or group.
    pub async fn assign(&self, profile_id: &str, target: Assignment) -> Result<(), AdminError> {
        self.check_target(profile_id, &target).await?;
        self.store.add_assignment(profile_id, &target).await?;
        self.audit(
            "profile_assigned",
            (target.kind == "device").then_some(target.id.as_str()),
            Some(profile_id),
            None,
            Some(format!("{}:{}", target.kind, target.id)),
        )
        .await;
        Ok(())
    }

    /// Removes an assignment and revokes what no longer targets its devices.
    pub async fn unassign(
        &self,
        profile_id: &str,
        target: Assignment,
    ) -> Result<Vec<String>, AdminError> {
        if !self.store.remove_assignment(profile_id, &target).await? {
            return Err(AdminError::NotFound);
        }
        let devices = self.store.devices_of_target(&target).await?;
        let queued = self.revoke_untargeted(&devices, "unassign").await?;
        self.audit(
            "profile_unassigned",
            None,
            Some(profile_id),
            None,
            Some(format!(
                "{}:{} revocations_queued={}",
                target.kind,
                target.id,
                queued.len()
            )),
        )
        .await;
        Ok(queued)
    }

    /// Creates a group.
    pub async fn create_group(&self, g: Group) -> Result<Group, AdminError> {
        if !is_identifier(&g.id) || g.name.trim().is_empty() || g.name.len() > 128 {
            return Err(AdminError::Invalid(
                "id: identifier; name: 1-128 characters".into(),
            ));
        }
        if !self.store.insert_group(&g).await? {
            return Err(AdminError::Conflict(format!("group {} exists", g.id)));
        }
        Ok(g)
    }

    /// Adds or removes a device from a group; leaving revokes what no longer targets it.
    pub async fn set_membership(
        &self,
        group: &str,
        device: &str,
        member: bool,
    ) -> Result<Vec<String>, AdminError> {
        if !self.store.group_exists(group).await? || self.store.get_device(device).await?.is_none()
        {
            return Err(AdminError::NotFound);
        }
        self.store.set_member(group, device, member).await?;
        if member {
            return Ok(Vec::new());
        }
        self.revoke_untargeted(&[device.to_string()], "unassign")
            .await
    }

    async fn revoke_untargeted(
        &self,
        devices: &[String],
        cause: &str,
    ) -> Result<Vec<String>, AdminError> {
        let reason = self.config.revocation_reasons.unassign.clone();
        let mut queued = Vec::new();
        for d in devices {
            queued.extend(
                self.store
                    .revoke_untargeted(d, &reason, cause, ADMIN_ACTOR)
                    .await?,
            );
        }
        if !queued.is_empty() {
            self.outbox_wake.notify_one();
        }
        Ok(queued)
    }

    async fn check_target(&self, profile_id: &str, t: &Assignment) -> Result<(), AdminError> {
        if self.store.get_profile(profile_id).await?.is_none() {
            return Err(AdminError::NotFound);
        }
        let exists = match t.kind.as_str() {
            "device" => self.store.get_device(&t.id).await?.is_some(),
            "group" => self.store.group_exists(&t.id).await?,
            _ => return Err(AdminError::Invalid("target kind: device or group".into())),
        };
        if !exists {
            return Err(AdminError::Invalid(format!("unknown {} {}", t.kind, t.id)));
        }
        Ok(())
    }
}
