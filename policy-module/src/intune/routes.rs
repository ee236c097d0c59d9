//! The admin routes over the conversions: `POST /api/v1/profiles/import` and
//! `GET /api/v1/profiles/{id}/export?platform=...`. `crate::api` mounts them behind the admin
//! token; they take the [`PolicyService`] alone, so this file needs nothing from `api`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ImportOptions, IntunePlatform, export, import};
use crate::error::AdminError;
use crate::service::PolicyService;

/// The import body: the Graph document and what it does not say.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ImportRequest {
    /// Default: from the document's `displayName`.
    #[serde(default)]
    id: Option<String>,
    template: String,
    ca_thumbprint: String,
    /// The Graph `deviceConfiguration` document as exported from the tenant.
    intune: Value,
}

#[derive(Debug, Deserialize)]
pub(crate) struct ImportQuery {
    dry_run: Option<String>,
}

/// Converts and (unless `?dry_run=true`) creates the profile; answers it with the properties
/// that were not modelled and the fields that were defaulted. 400 names the property (or the
/// variable) that cannot be converted.
pub(crate) async fn import_profile(
    State(s): State<PolicyService>,
    Query(q): Query<ImportQuery>,
    body: Bytes,
) -> Result<Response, AdminError> {
    let dry_run = match q.dry_run.as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => return Err(AdminError::Invalid("dry_run: true or false".into())),
    };
    let req: ImportRequest = serde_json::from_slice(&body)
        .map_err(|e| AdminError::Invalid(format!("import request: {e}")))?;
    let options = ImportOptions {
        id: req.id,
        template: req.template,
        ca_thumbprint: req.ca_thumbprint,
    };
    let imported = import(&req.intune, &options).map_err(|e| AdminError::Invalid(e.to_string()))?;
    let profile = if dry_run {
        json!(imported.spec)
    } else {
        let created = s.create_profile(&imported.id, imported.spec).await?;
        json!(s.profile_view(created).await)
    };
    let body = json!({
        "id": imported.id,
        "dry_run": dry_run,
        "platform": imported.platform,
        "profile": profile,
        "unmodelled": imported.unmodelled,
        "defaulted": imported.defaulted,
    });
    let status = if dry_run {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(body)).into_response())
}

#[derive(Debug, Deserialize)]
pub(crate) struct ExportQuery {
    platform: Option<String>,
}

/// The stored profile's current version as the Graph document of `platform`, with the fields
/// the document cannot carry.
pub(crate) async fn export_profile(
    State(s): State<PolicyService>,
    Path(id): Path<String>,
    Query(q): Query<ExportQuery>,
) -> Result<Response, AdminError> {
    let platform = q
        .platform
        .as_deref()
        .and_then(IntunePlatform::parse)
        .ok_or_else(|| {
            let names: Vec<_> = IntunePlatform::ALL.iter().map(|p| p.name()).collect();
            AdminError::Invalid(format!("platform: one of {}", names.join(", ")))
        })?;
    let profile = s
        .store()
        .get_profile(&id)
        .await?
        .ok_or(AdminError::NotFound)?;
    let exported =
        export(&profile.spec, platform).map_err(|e| AdminError::Invalid(e.to_string()))?;
    Ok(Json(json!({
        "id": profile.id,
        "version": profile.version,
        "platform": exported.platform,
        "document": exported.document,
        "unexported": exported.unexported,
    }))
    .into_response())
}
