//! A profile as the admin API shows it, with the warnings of [`crate::template_check`], and the
//! preview: what a profile not yet saved would render for a device and how its certificates
//! would differ from it (docs/decisions.md #7).

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::error::AdminError;
use crate::model::{Profile, ProfileSpec};
use crate::render::{Expected, render};
use crate::service::PolicyService;
use crate::template_check::ProfileWarning;
use crate::template_source::{TemplateRead, TemplateSource, warnings_for};

/// A stored profile and how certificates issued under its template will differ from it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProfileView {
    #[serde(flatten)]
    pub profile: Profile,
    pub warnings: Vec<ProfileWarning>,
}

/// `POST /api/v1/profiles/preview`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PreviewRequest {
    /// The settings as they would be saved.
    pub profile: ProfileSpec,
    /// A registered device to render the profile for; without it only the warnings.
    #[serde(default)]
    pub device_id: Option<String>,
}

/// What saving the profile would lead to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Preview {
    pub warnings: Vec<ProfileWarning>,
    /// The subject, SANs and usages a CSR from the device must carry and the grant names.
    pub rendered: Option<Expected>,
    /// Why the profile does not render for the device (a variable the device lacks).
    pub render_error: Option<String>,
}

impl PolicyService {
    /// One profile with its warnings.
    pub async fn profile_view(&self, profile: Profile) -> ProfileView {
        let warnings = self.profile_warnings(&profile.spec).await;
        ProfileView { profile, warnings }
    }

    /// Profiles with their warnings; each template is read once.
    pub async fn profile_views(&self, profiles: Vec<Profile>) -> Vec<ProfileView> {
        let mut read: HashMap<String, TemplateRead> = HashMap::new();
        let mut out = Vec::with_capacity(profiles.len());
        for profile in profiles {
            let name = &profile.spec.template;
            if !read.contains_key(name) {
                let r = self.read_template(name).await;
                read.insert(name.clone(), r);
            }
            let warnings = read
                .get(name)
                .map(|r| warnings_for(&profile.spec, r))
                .unwrap_or_default();
            out.push(ProfileView { profile, warnings });
        }
        out
    }

    /// Validates `req.profile` as a save would, then reports its warnings and, for a device,
    /// its rendering. Nothing is stored.
    pub async fn preview(&self, req: PreviewRequest) -> Result<Preview, AdminError> {
        req.profile.validate().map_err(AdminError::Invalid)?;
        let warnings = self.profile_warnings(&req.profile).await;
        let (mut rendered, mut render_error) = (None, None);
        if let Some(id) = &req.device_id {
            let device = self
                .store
                .get_device(id)
                .await?
                .ok_or_else(|| AdminError::Invalid(format!("device_id: no device {id:?}")))?;
            let profile = Profile {
                id: "preview".into(),
                version: 0,
                spec: req.profile,
                updated_at: 0,
            };
            match render(&profile, &device) {
                Ok(e) => rendered = Some(e),
                Err(e) => render_error = Some(e),
            }
        }
        Ok(Preview {
            warnings,
            rendered,
            render_error,
        })
    }
}

impl PolicyService {
    /// Uses `source` to compare profiles with their templates.
    pub fn with_templates(mut self, source: Arc<dyn TemplateSource>) -> Self {
        self.templates = Some(source);
        self
    }

    /// How certificates issued under `spec`'s template will differ from it. A template that
    /// cannot be read is itself a warning, never an error: the save goes through.
    pub async fn profile_warnings(&self, spec: &ProfileSpec) -> Vec<ProfileWarning> {
        warnings_for(spec, &self.read_template(&spec.template).await)
    }

    /// Reads a template from the CA, if this module has one to ask.
    pub(crate) async fn read_template(&self, name: &str) -> TemplateRead {
        let Some(source) = &self.templates else {
            return TemplateRead::NoSource;
        };
        match source.template(name).await {
            Ok(Some(t)) => TemplateRead::Found(t),
            Ok(None) => TemplateRead::Absent,
            Err(why) => {
                tracing::warn!(template = %name, %why, "template not read");
                TemplateRead::Failed(why)
            }
        }
    }
}
