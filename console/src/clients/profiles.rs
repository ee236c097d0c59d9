//! The policy module's profile routes (`/api/v1/profiles/...`): list, read, create, update,
//! versions, preview and assignments. The spec mirrors the module's `ProfileSpec` field for
//! field; its enums stay strings here because the module is the one that validates them.

use foundation::names::{NameAttr, San};
use serde::{Deserialize, Serialize};

use super::{ApiError, PathId, PolicyAdmin, seg};

/// What an admin writes to create or update a SCEP certificate profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProfileSpec {
    pub name: String,
    pub certificate_type: String,
    pub subject_name_format: String,
    #[serde(default)]
    pub subject_alternative_names: Vec<San>,
    pub key_usage: Vec<String>,
    #[serde(default)]
    pub extended_key_usages: Vec<String>,
    pub key_algorithm: String,
    pub key_size: u32,
    pub hash_algorithm: String,
    pub validity_days: u32,
    pub renewal_threshold_percent: u8,
    pub template: String,
    pub scep_server_urls: Vec<String>,
    pub ca_thumbprint: String,
    pub retry_count: u32,
    pub retry_delay_minutes: u32,
}

/// `POST /api/v1/profiles`: an id and the spec.
#[derive(Debug, Clone, Serialize)]
pub struct NewProfile<'a> {
    pub id: &'a str,
    #[serde(flatten)]
    pub spec: &'a ProfileSpec,
}

/// How a certificate issued under the profile's template will differ from the profile.
#[derive(Debug, Clone, Deserialize)]
pub struct Warning {
    pub field: String,
    #[serde(default)]
    pub profile: String,
    #[serde(default)]
    pub template: String,
    /// `differs`, `refused` or `not_compared`.
    pub consequence: String,
    pub effect: String,
}

/// One stored profile version, with its template warnings when the module gave them.
#[derive(Debug, Clone, Deserialize)]
pub struct Profile {
    pub id: String,
    pub version: i64,
    #[serde(flatten)]
    pub spec: ProfileSpec,
    #[serde(deserialize_with = "foundation::time::rfc3339_serde::deserialize")]
    pub updated_at: i64,
    #[serde(default)]
    pub warnings: Vec<Warning>,
}

/// A profile's target: `device` or `group`, and its id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assignment {
    pub kind: String,
    pub id: String,
}

/// What a device's CSR must carry under the profile.
#[derive(Debug, Clone, Deserialize)]
pub struct Rendered {
    pub subject: Vec<NameAttr>,
    pub subject_alternative_names: Vec<San>,
    pub template: String,
}

/// `POST /api/v1/profiles/preview`'s answer.
#[derive(Debug, Clone, Deserialize)]
pub struct Preview {
    pub warnings: Vec<Warning>,
    #[serde(default)]
    pub rendered: Option<Rendered>,
    #[serde(default)]
    pub render_error: Option<String>,
}

#[derive(Serialize)]
struct PreviewRequest<'a> {
    profile: &'a ProfileSpec,
    #[serde(skip_serializing_if = "Option::is_none")]
    device_id: Option<&'a str>,
}

/// A device group (`GET /api/v1/groups`), offered when assigning a profile.
#[derive(Debug, Clone, Deserialize)]
pub struct Group {
    pub id: String,
    pub name: String,
}

impl PolicyAdmin {
    /// Every device group.
    pub async fn groups(&self) -> Result<Vec<Group>, ApiError> {
        self.0.get("/api/v1/groups").await
    }

    /// Every profile at its current version, with warnings.
    pub async fn profiles(&self) -> Result<Vec<Profile>, ApiError> {
        self.0.get("/api/v1/profiles").await
    }

    /// One profile at its current version, with warnings.
    pub async fn profile(&self, id: &PathId) -> Result<Profile, ApiError> {
        self.0.get(&format!("/api/v1/profiles/{}", seg(id))).await
    }

    /// Every version of a profile, oldest first.
    pub async fn profile_versions(&self, id: &PathId) -> Result<Vec<Profile>, ApiError> {
        self.0
            .get(&format!("/api/v1/profiles/{}/versions", seg(id)))
            .await
    }

    /// Create a profile (version 1).
    pub async fn create_profile(&self, id: &str, spec: &ProfileSpec) -> Result<Profile, ApiError> {
        let url = format!("{}/api/v1/profiles", self.0.base);
        let rb = self.0.http.post(url).json(&NewProfile { id, spec });
        let resp = self.0.send(rb).await?;
        self.0.json_of(resp).await
    }

    /// Save a new version of a profile.
    pub async fn update_profile(
        &self,
        id: &PathId,
        spec: &ProfileSpec,
    ) -> Result<Profile, ApiError> {
        let url = format!("{}/api/v1/profiles/{}", self.0.base, seg(id));
        let resp = self.0.send(self.0.http.put(url).json(spec)).await?;
        self.0.json_of(resp).await
    }

    /// What `spec` renders to for `device` (if given) and how its template differs.
    pub async fn preview(
        &self,
        spec: &ProfileSpec,
        device: Option<&PathId>,
    ) -> Result<Preview, ApiError> {
        let url = format!("{}/api/v1/profiles/preview", self.0.base);
        let body = PreviewRequest {
            profile: spec,
            device_id: device.map(PathId::as_str),
        };
        let resp = self.0.send(self.0.http.post(url).json(&body)).await?;
        self.0.json_of(resp).await
    }

    /// The devices and groups a profile is assigned to.
    pub async fn assignments(&self, id: &PathId) -> Result<Vec<Assignment>, ApiError> {
        self.0
            .get(&format!("/api/v1/profiles/{}/assignments", seg(id)))
            .await
    }

    /// Assign a profile to a device or group.
    pub async fn assign(&self, id: &PathId, target: &Assignment) -> Result<(), ApiError> {
        let url = format!("{}/api/v1/profiles/{}/assignments", self.0.base, seg(id));
        self.0
            .send(self.0.http.post(url).json(target))
            .await
            .map(drop)
    }

    /// Remove an assignment (the module queues the revocations it implies).
    pub async fn unassign(
        &self,
        id: &PathId,
        kind: &PathId,
        target: &PathId,
    ) -> Result<(), ApiError> {
        let url = format!(
            "{}/api/v1/profiles/{}/assignments/{}/{}",
            self.0.base,
            seg(id),
            seg(kind),
            seg(target)
        );
        self.0.send(self.0.http.delete(url)).await.map(drop)
    }
}
