//! Profiles (versioned), devices, groups, assignments, and lifecycle transitions that queue
//! revocations in the same transaction as the state change (docs/decisions.md #8).

use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::{AuditEvent, Store, on_db};
use crate::error::StoreError;
use crate::model::{Device, DeviceState, Group, Profile, ProfileSpec};

/// A profile assignment target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assignment {
    /// `device` or `group`.
    pub kind: String,
    pub id: String,
}

/// Outcome of a lifecycle transition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    /// Done; the serials queued for revocation.
    Done {
        queued: Vec<String>,
    },
    NotFound,
    /// The device is in a state the transition does not start from.
    Illegal(DeviceState),
}

/// Which profiles target a device, directly or through a group (bound as `$1`).
/// The device holding a credential (MDM check-in authentication).
pub(super) const DEVICE_BY_CREDENTIAL: &str =
    "SELECT body, state, created_at, updated_at FROM devices WHERE credential_hash = $1";

/// A device's state, read where a lifecycle transition or Notify's recording decides on it.
/// On PostgreSQL the row is locked to the end of the transaction ([`device_state_sql`]), so
/// a transition and a recording of the same device serialise; SQLite's `BEGIN IMMEDIATE`
/// already serialises every writer (docs/decisions.md #11).
pub(super) const DEVICE_STATE: &str = "SELECT state FROM devices WHERE id = $1";

/// [`DEVICE_STATE`] for the backend in use: `FOR UPDATE` for a transition, `FOR SHARE` for
/// a recording (recordings of one device need not wait for each other, only for a
/// transition), plain on SQLite, which has no row locks.
pub(super) fn device_state_sql(postgres: bool, exclusive: bool) -> &'static str {
    match (postgres, exclusive) {
        (false, _) => DEVICE_STATE,
        (true, true) => "SELECT state FROM devices WHERE id = $1 FOR UPDATE",
        (true, false) => "SELECT state FROM devices WHERE id = $1 FOR SHARE",
    }
}

/// How a certificate recorded for a device that is no longer active is revoked: the reason
/// per state (the service's configured lifecycle reasons) and the outbox cause.
#[derive(Debug, Clone, Copy)]
pub struct OutOfService<'a> {
    pub blocked: &'a str,
    pub retired: &'a str,
    pub wiped: &'a str,
    pub deleted: &'a str,
}

impl OutOfService<'_> {
    /// `(reason, cause)` for a device in `state`; `None` while it is active.
    pub fn revocation(&self, state: DeviceState) -> Option<(&str, &'static str)> {
        match state {
            DeviceState::Active => None,
            DeviceState::Blocked => Some((self.blocked, "block")),
            DeviceState::Retired => Some((self.retired, "retire")),
            DeviceState::Wiped => Some((self.wiped, "wipe")),
            DeviceState::Deleted => Some((self.deleted, "delete")),
        }
    }
}

/// Marks every certificate of a device that is good, held or being released for revocation
/// (block, retire, wipe, delete): a held certificate of a device retired while blocked is
/// revoked for good, and one whose release is still queued is revoked after it.
pub(super) const REVOKE_DEVICE_CERTIFICATES: &str = "UPDATE certificates SET status = 'revoking', revocation_reason = $2 \
     WHERE device_id = $1 AND status IN ('issued', 'held', 'releasing') RETURNING serial";

/// Marks a device's held certificates, and those whose hold is still queued, for release
/// (unblock). The outbox delivers a serial's entries in order, so a queued hold goes first.
pub(super) const RELEASE_DEVICE_CERTIFICATES: &str = "UPDATE certificates SET status = 'releasing' \
     WHERE device_id = $1 AND status IN ('held', 'revoking') \
     AND revocation_reason = 'certificateHold' RETURNING serial";

const TARGETED: &str = "SELECT a.profile_id FROM assignments a WHERE \
     (a.target_kind = 'device' AND a.target_id = $1) OR (a.target_kind = 'group' AND \
     a.target_id IN (SELECT gm.group_id FROM group_members gm WHERE gm.device_id = $1))";

#[derive(sqlx::FromRow)]
struct ProfileRow {
    id: String,
    version: i64,
    body: String,
    updated_at: i64,
}

impl ProfileRow {
    fn into_profile(self) -> Option<Profile> {
        let spec: ProfileSpec = serde_json::from_str(&self.body).ok()?;
        Some(Profile {
            id: self.id,
            version: self.version,
            spec,
            updated_at: self.updated_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct DeviceRow {
    body: String,
    state: String,
    created_at: i64,
    updated_at: i64,
}

impl DeviceRow {
    pub(super) fn into_device(self) -> Option<Device> {
        let mut d: Device = serde_json::from_str(&self.body).ok()?;
        d.state = DeviceState::parse(&self.state)?;
        d.created_at = self.created_at;
        d.updated_at = self.updated_at;
        Some(d)
    }
}

impl Store {
    /// Creates a profile at version 1; false if the id exists.
    pub async fn insert_profile(&self, id: &str, spec: &ProfileSpec) -> Result<bool, StoreError> {
        let now = self.now().await?;
        let body = serde_json::to_string(spec).unwrap_or_default();
        Ok(on_db!(write & self.db, |pool, begin| {
            let mut tx = pool.begin_with(begin).await?;
            let n = sqlx::query(
                "INSERT INTO profiles (id, version, body, updated_at) VALUES ($1, 1, $2, $3) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(id)
            .bind(&body)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if n == 1 {
                sqlx::query(
                    "INSERT INTO profile_versions (profile_id, version, body, created_at) \
                     VALUES ($1, 1, $2, $3)",
                )
                .bind(id)
                .bind(&body)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            n == 1
        }))
    }

    /// Replaces a profile's spec as a new version; the new version, or None if unknown.
    pub async fn update_profile(
        &self,
        id: &str,
        spec: &ProfileSpec,
    ) -> Result<Option<i64>, StoreError> {
        let now = self.now().await?;
        let body = serde_json::to_string(spec).unwrap_or_default();
        Ok(on_db!(write & self.db, |pool, begin| {
            let mut tx = pool.begin_with(begin).await?;
            let version: Option<i64> = sqlx::query_scalar(
                "UPDATE profiles SET version = version + 1, body = $2, updated_at = $3 \
                 WHERE id = $1 RETURNING version",
            )
            .bind(id)
            .bind(&body)
            .bind(now)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(v) = version {
                sqlx::query(
                    "INSERT INTO profile_versions (profile_id, version, body, created_at) \
                     VALUES ($1, $2, $3, $4)",
                )
                .bind(id)
                .bind(v)
                .bind(&body)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            version
        }))
    }

    /// The current version of a profile.
    pub async fn get_profile(&self, id: &str) -> Result<Option<Profile>, StoreError> {
        let row = on_db!(&self.db, |pool, _b| {
            sqlx::query_as::<_, ProfileRow>(
                "SELECT id, version, body, updated_at FROM profiles WHERE id = $1",
            )
            .bind(id)
            .fetch_optional(pool)
            .await?
        });
        Ok(row.and_then(ProfileRow::into_profile))
    }

    /// Every profile, by id.
    pub async fn list_profiles(&self) -> Result<Vec<Profile>, StoreError> {
        let rows = on_db!(&self.db, |pool, _b| {
            sqlx::query_as::<_, ProfileRow>(
                "SELECT id, version, body, updated_at FROM profiles ORDER BY id",
            )
            .fetch_all(pool)
            .await?
        });
        Ok(rows
            .into_iter()
            .filter_map(ProfileRow::into_profile)
            .collect())
    }

    /// Every version of a profile, oldest first.
    pub async fn profile_versions(&self, id: &str) -> Result<Vec<Profile>, StoreError> {
        let rows = on_db!(&self.db, |pool, _b| {
            sqlx::query_as::<_, ProfileRow>(
                "SELECT profile_id AS id, version, body, created_at AS updated_at \
                 FROM profile_versions WHERE profile_id = $1 ORDER BY version",
            )
            .bind(id)
            .fetch_all(pool)
            .await?
        });
        Ok(rows
            .into_iter()
            .filter_map(ProfileRow::into_profile)
            .collect())
    }

    /// Registers a device with the digest of its credential; false if the id exists.
    pub async fn insert_device(
        &self,
        device: &Device,
        credential_hash: &[u8],
    ) -> Result<bool, StoreError> {
        let body = serde_json::to_string(device).unwrap_or_default();
        Ok(on_db!(&self.db, |pool, _b| {
            sqlx::query(
                "INSERT INTO devices (id, body, state, credential_hash, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $5) ON CONFLICT DO NOTHING",
            )
            .bind(&device.id)
            .bind(&body)
            .bind(device.state.as_str())
            .bind(credential_hash)
            .bind(device.created_at)
            .execute(pool)
            .await?
            .rows_affected()
                == 1
        }))
    }

    /// A device by id.
    pub async fn get_device(&self, id: &str) -> Result<Option<Device>, StoreError> {
        let row = on_db!(&self.db, |pool, _b| {
            sqlx::query_as::<_, DeviceRow>(
                "SELECT body, state, created_at, updated_at FROM devices WHERE id = $1",
            )
            .bind(id)
            .fetch_optional(pool)
            .await?
        });
        Ok(row.and_then(DeviceRow::into_device))
    }

    /// The device holding a credential (by digest).
    pub async fn device_by_credential(&self, hash: &[u8]) -> Result<Option<Device>, StoreError> {
        let row = on_db!(&self.db, |pool, _b| {
            sqlx::query_as::<_, DeviceRow>(DEVICE_BY_CREDENTIAL)
                .bind(hash)
                .fetch_optional(pool)
                .await?
        });
        Ok(row.and_then(DeviceRow::into_device))
    }

    /// Every device, by id.
    pub async fn list_devices(&self) -> Result<Vec<Device>, StoreError> {
        let rows = on_db!(&self.db, |pool, _b| {
            sqlx::query_as::<_, DeviceRow>(
                "SELECT body, state, created_at, updated_at FROM devices ORDER BY id",
            )
            .fetch_all(pool)
            .await?
        });
        Ok(rows
            .into_iter()
            .filter_map(DeviceRow::into_device)
            .collect())
    }

    /// Moves a device from one of `from` to `to`; with `revoke = Some((reason, cause))` every
    /// issued certificate of the device is marked revoking and queued in the outbox, with
    /// `release = Some(cause)` its held certificates are queued for release, and with
    /// `command` a device command is queued, all in one transaction with their audit records
    /// (`event`, the transition's, gets the number queued; each serial its own, by `actor`).
    /// The device row is read locked, so a Notify recording a certificate of this device
    /// commits either before (and its certificate is revoked here) or after (and queues its
    /// own revocation).
    #[allow(clippy::too_many_arguments)]
    pub async fn transition_device(
        &self,
        id: &str,
        from: &[DeviceState],
        to: DeviceState,
        revoke: Option<(&str, &str)>,
        release: Option<&str>,
        command: Option<&str>,
        actor: &str,
        event: &AuditEvent,
    ) -> Result<Transition, StoreError> {
        let now = self.now().await?;
        let allowed: Vec<&str> = from.iter().map(|s| s.as_str()).collect();
        let allowed = allowed.join(",");
        let read_state = device_state_sql(self.is_postgres(), true);
        Ok(on_db!(write & self.db, |pool, begin| {
            let mut tx = pool.begin_with(begin).await?;
            let current: Option<String> = sqlx::query_scalar(read_state)
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
            match current {
                None => Transition::NotFound,
                Some(state) if !allowed.split(',').any(|a| a == state) => {
                    Transition::Illegal(DeviceState::parse(&state).unwrap_or(DeviceState::Active))
                }
                Some(_) => {
                    sqlx::query("UPDATE devices SET state = $2, updated_at = $3 WHERE id = $1")
                        .bind(id)
                        .bind(to.as_str())
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                    let mut queued = Vec::new();
                    if let Some((reason, cause)) = revoke {
                        let serials: Vec<String> = sqlx::query_scalar(REVOKE_DEVICE_CERTIFICATES)
                            .bind(id)
                            .bind(reason)
                            .fetch_all(&mut *tx)
                            .await?;
                        for serial in &serials {
                            enqueue!(tx, serial, reason, Some(id), cause, actor, now);
                        }
                        queued = serials;
                    }
                    if let Some(cause) = release {
                        let serials: Vec<String> = sqlx::query_scalar(RELEASE_DEVICE_CERTIFICATES)
                            .bind(id)
                            .fetch_all(&mut *tx)
                            .await?;
                        for serial in &serials {
                            enqueue_release!(tx, serial, Some(id), cause, actor, now);
                        }
                        queued.extend(serials);
                    }
                    if let Some(kind) = command {
                        sqlx::query(
                            "INSERT INTO commands (id, device_id, kind, state, created_at) \
                             VALUES ($1, $2, $3, 'pending', $4)",
                        )
                        .bind(uuid::Uuid::new_v4().to_string())
                        .bind(id)
                        .bind(kind)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                    }
                    let done = AuditEvent {
                        detail: Some(format!(
                            "{}={}",
                            if release.is_some() {
                                "releases_queued"
                            } else {
                                "revocations_queued"
                            },
                            queued.len()
                        )),
                        ..event.clone()
                    };
                    audit_in!(tx, &done, now);
                    tx.commit().await?;
                    Transition::Done { queued }
                }
            }
        }))
    }

    /// Queues revocation of the device's certificates whose profile no longer targets it
    /// (after an unassignment or a group change): good ones, and those held or being held or
    /// released for a block, so an unblock cannot release them. Returns the queued serials.
    pub async fn revoke_untargeted(
        &self,
        device_id: &str,
        reason: &str,
        cause: &str,
        actor: &str,
    ) -> Result<Vec<String>, StoreError> {
        let now = self.now().await?;
        let sql = format!(
            "UPDATE certificates SET status = 'revoking', revocation_reason = $2 \
             WHERE device_id = $1 AND (status IN ('issued', 'held', 'releasing') OR \
             (status = 'revoking' AND revocation_reason = 'certificateHold')) \
             AND profile_id IS NOT NULL \
             AND profile_id NOT IN ({TARGETED}) RETURNING serial"
        );
        Ok(on_db!(write & self.db, |pool, begin| {
            let mut tx = pool.begin_with(begin).await?;
            let serials: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .bind(device_id)
                .bind(reason)
                .fetch_all(&mut *tx)
                .await?;
            for serial in &serials {
                enqueue!(tx, serial, reason, Some(device_id), cause, actor, now);
            }
            tx.commit().await?;
            serials
        }))
    }

    /// Profile ids targeting a device, sorted.
    pub async fn targeted_profiles(&self, device_id: &str) -> Result<Vec<String>, StoreError> {
        let sql = format!("SELECT DISTINCT profile_id FROM ({TARGETED}) t ORDER BY profile_id");
        Ok(on_db!(&self.db, |pool, _b| {
            sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(sql))
                .bind(device_id)
                .fetch_all(pool)
                .await?
        }))
    }

    /// Adds an assignment; false if it existed.
    pub async fn add_assignment(
        &self,
        profile_id: &str,
        a: &Assignment,
    ) -> Result<bool, StoreError> {
        let now = self.now().await?;
        Ok(on_db!(&self.db, |pool, _b| {
            sqlx::query(
                "INSERT INTO assignments (profile_id, target_kind, target_id, created_at) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
            )
            .bind(profile_id)
            .bind(&a.kind)
            .bind(&a.id)
            .bind(now)
            .execute(pool)
            .await?
            .rows_affected()
                == 1
        }))
    }

    /// Removes an assignment; false if there was none.
    pub async fn remove_assignment(
        &self,
        profile_id: &str,
        a: &Assignment,
    ) -> Result<bool, StoreError> {
        Ok(on_db!(&self.db, |pool, _b| {
            sqlx::query(
                "DELETE FROM assignments WHERE profile_id = $1 AND target_kind = $2 \
                 AND target_id = $3",
            )
            .bind(profile_id)
            .bind(&a.kind)
            .bind(&a.id)
            .execute(pool)
            .await?
            .rows_affected()
                == 1
        }))
    }

    /// A profile's assignments.
    pub async fn assignments(&self, profile_id: &str) -> Result<Vec<Assignment>, StoreError> {
        let rows = on_db!(&self.db, |pool, _b| {
            sqlx::query(
                "SELECT target_kind, target_id FROM assignments WHERE profile_id = $1 \
                 ORDER BY target_kind, target_id",
            )
            .bind(profile_id)
            .fetch_all(pool)
            .await?
            .into_iter()
            .map(|r| {
                Ok(Assignment {
                    kind: r.try_get(0)?,
                    id: r.try_get(1)?,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?
        });
        Ok(rows)
    }

    /// Device ids a target covers (the device itself, or a group's members).
    pub async fn devices_of_target(&self, a: &Assignment) -> Result<Vec<String>, StoreError> {
        if a.kind == "device" {
            return Ok(vec![a.id.clone()]);
        }
        Ok(on_db!(&self.db, |pool, _b| {
            sqlx::query_scalar::<_, String>(
                "SELECT device_id FROM group_members WHERE group_id = $1 ORDER BY device_id",
            )
            .bind(&a.id)
            .fetch_all(pool)
            .await?
        }))
    }

    /// Creates a group; false if the id exists.
    pub async fn insert_group(&self, g: &Group) -> Result<bool, StoreError> {
        Ok(on_db!(&self.db, |pool, _b| {
            sqlx::query(
                "INSERT INTO device_groups (id, name) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            )
            .bind(&g.id)
            .bind(&g.name)
            .execute(pool)
            .await?
            .rows_affected()
                == 1
        }))
    }

    /// Every group.
    pub async fn list_groups(&self) -> Result<Vec<Group>, StoreError> {
        Ok(on_db!(&self.db, |pool, _b| {
            sqlx::query("SELECT id, name FROM device_groups ORDER BY id")
                .fetch_all(pool)
                .await?
                .into_iter()
                .map(|r| {
                    Ok(Group {
                        id: r.try_get(0)?,
                        name: r.try_get(1)?,
                    })
                })
                .collect::<Result<Vec<_>, sqlx::Error>>()?
        }))
    }

    /// True if the group exists.
    pub async fn group_exists(&self, id: &str) -> Result<bool, StoreError> {
        Ok(on_db!(&self.db, |pool, _b| {
            sqlx::query_scalar::<_, String>("SELECT id FROM device_groups WHERE id = $1")
                .bind(id)
                .fetch_optional(pool)
                .await?
                .is_some()
        }))
    }

    /// Adds or removes a group member; true if something changed.
    pub async fn set_member(
        &self,
        group: &str,
        device: &str,
        member: bool,
    ) -> Result<bool, StoreError> {
        let sql = if member {
            "INSERT INTO group_members (group_id, device_id) VALUES ($1, $2) ON CONFLICT DO NOTHING"
        } else {
            "DELETE FROM group_members WHERE group_id = $1 AND device_id = $2"
        };
        Ok(on_db!(&self.db, |pool, _b| {
            sqlx::query(sql)
                .bind(group)
                .bind(device)
                .execute(pool)
                .await?
                .rows_affected()
                == 1
        }))
    }
}
