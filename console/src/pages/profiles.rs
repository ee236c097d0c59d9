//! `/profiles`: the list, one profile (version history, assignments, preview for a device),
//! create and edit through [`ProfileForm`], and assignment to devices and groups. Every
//! change is a form with the session's CSRF token, for admins only, and goes through the
//! policy module's own API (which validates and versions; the console stores nothing).

use std::fmt::Write;

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;

use super::profile_form::{FormError, ProfileForm, defaults, san_kind};
use super::{api_error, error_page, html};
use crate::ConsoleState;
use crate::auth::Session;
use crate::clients::{ApiError, Assignment, PathId, Preview, Warning};
use crate::html::{badge, esc, time, url_part};
use crate::redirect;

fn path_id(session: &Session, id: &str, what: &str) -> Result<PathId, Box<Response>> {
    PathId::parse(id).ok_or_else(|| {
        Box::new(error_page(
            StatusCode::BAD_REQUEST,
            Some(session),
            &format!("Not a {what} id."),
        ))
    })
}

/// `GET /profiles`.
pub(crate) async fn list(State(s): State<ConsoleState>, headers: HeaderMap) -> Response {
    let session = match s.require(&headers) {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let profiles = match s.policy.profiles().await {
        Ok(p) => p,
        Err(e) => return api_error(&session, &e),
    };
    let mut body = String::from(
        r#"<h1>Profiles</h1><p><a href="/profiles/new" id="new-profile">New profile</a></p>
<table id="profiles"><thead><tr><th>Id</th><th>Name</th><th>Version</th><th>Template</th><th>Subject</th><th>Warnings</th><th>Updated</th></tr></thead><tbody>"#,
    );
    for p in &profiles {
        let _ = write!(
            body,
            r#"<tr><td class="mono"><a href="/profiles/{u}">{id}</a></td><td>{name}</td><td>{v}</td><td>{t}</td><td class="mono">{subj}</td><td>{w}</td><td>{at}</td></tr>"#,
            u = url_part(&p.id),
            id = esc(&p.id),
            name = esc(&p.spec.name),
            v = p.version,
            t = esc(&p.spec.template),
            subj = esc(&p.spec.subject_name_format),
            w = p.warnings.len(),
            at = time(p.updated_at),
        );
    }
    body.push_str("</tbody></table>");
    html("Profiles", &session, &body)
}

#[derive(Deserialize)]
pub(crate) struct DetailQuery {
    device: Option<String>,
}

/// `GET /profiles/{id}?device=`: settings, warnings, assignments, version history, and the
/// preview for `device` when one is chosen.
pub(crate) async fn detail(
    State(s): State<ConsoleState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<DetailQuery>,
) -> Response {
    let session = match s.require(&headers) {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let id = match path_id(&session, &id, "profile") {
        Ok(i) => i,
        Err(r) => return *r,
    };
    let (profile, versions, assignments, groups) = tokio::join!(
        s.policy.profile(&id),
        s.policy.profile_versions(&id),
        s.policy.assignments(&id),
        s.policy.groups()
    );
    let p = match profile {
        Ok(p) => p,
        Err(e) => return api_error(&session, &e),
    };
    let uid = url_part(&p.id);
    let sp = &p.spec;
    let sans = sp
        .subject_alternative_names
        .iter()
        .map(|x| format!("{}:{}", san_kind(x.kind), esc(&x.value)))
        .collect::<Vec<_>>()
        .join(", ");
    let mut body = format!(
        r#"<h1>Profile {name}</h1><p><a href="/profiles/{uid}/edit" id="edit-profile">Edit</a></p><dl class="facts">
<dt>Id</dt><dd class="mono">{id}</dd><dt>Version</dt><dd id="profile-version">{v}</dd>
<dt>Subject</dt><dd class="mono">{subj}</dd><dt>SANs</dt><dd class="mono">{sans}</dd>
<dt>Template</dt><dd>{t}</dd><dt>Key</dt><dd>{alg} {size}</dd><dt>Validity</dt><dd>{days} days</dd>
<dt>Updated</dt><dd>{at}</dd></dl>"#,
        name = esc(&sp.name),
        id = esc(&p.id),
        v = p.version,
        subj = esc(&sp.subject_name_format),
        t = esc(&sp.template),
        alg = esc(&sp.key_algorithm),
        size = sp.key_size,
        days = sp.validity_days,
        at = time(p.updated_at),
    );
    body.push_str(&warnings_table(&p.warnings));

    let device = q.device.as_deref().map(str::trim).unwrap_or("");
    let _ = write!(
        body,
        r#"<h2>Preview</h2><form method="get" action="/profiles/{uid}" class="inline"><label for="device">Device id</label><input type="text" id="device" name="device" value="{}"><button type="submit" id="preview">Preview</button></form>"#,
        esc(device)
    );
    if !device.is_empty() {
        match PathId::parse(device) {
            Some(d) => match s.policy.preview(sp, Some(&d)).await {
                Ok(pv) => body.push_str(&preview_section(&pv, false)),
                Err(e) => body.push_str(&api_message(&e)),
            },
            None => body.push_str(r#"<p class="msg error">Not a device id.</p>"#),
        }
    }

    body.push_str(r#"<h2>Assignments</h2>"#);
    match assignments {
        Ok(a) => {
            body.push_str(r#"<table id="assignments"><thead><tr><th>Kind</th><th>Target</th><th>Action</th></tr></thead><tbody>"#);
            for t in &a {
                let link = if t.kind == "device" {
                    format!(
                        r#"<a href="/devices/{}">{}</a>"#,
                        url_part(&t.id),
                        esc(&t.id)
                    )
                } else {
                    esc(&t.id)
                };
                let _ = write!(
                    body,
                    r#"<tr><td>{k}</td><td class="mono">{link}</td><td><form method="post" action="/profiles/{uid}/unassign">{csrf}<input type="hidden" name="kind" value="{k}"><input type="hidden" name="target" value="{tid}"><button type="submit" class="danger">Unassign</button></form></td></tr>"#,
                    k = esc(&t.kind),
                    tid = esc(&t.id),
                    csrf = crate::html::csrf_field(&session),
                );
            }
            body.push_str("</tbody></table>");
        }
        Err(e) => body.push_str(&api_message(&e)),
    }
    let _ = write!(
        body,
        r#"<form method="post" action="/profiles/{uid}/assign" class="inline">{csrf}<label for="assign-kind">Assign to</label><select id="assign-kind" name="kind"><option value="device">device</option><option value="group">group</option></select><label for="assign-target">Device or group id</label><input type="text" id="assign-target" name="target" list="assign-groups" autocomplete="off"><datalist id="assign-groups">{options}</datalist><button type="submit" id="assign">Assign</button></form>"#,
        csrf = crate::html::csrf_field(&session),
        // The groups are few: offered as suggestions to the id field (no script).
        options = groups
            .unwrap_or_default()
            .iter()
            .map(|g| format!(
                r#"<option value="{}" label="group: {}"></option>"#,
                esc(&g.id),
                esc(&g.name)
            ))
            .collect::<String>(),
    );

    body.push_str(r#"<h2>Version history</h2>"#);
    match versions {
        Ok(vs) => {
            body.push_str(r#"<table id="versions"><thead><tr><th>Version</th><th>Saved</th><th>Name</th><th>Subject</th><th>Template</th><th>Validity</th></tr></thead><tbody>"#);
            for v in vs.iter().rev() {
                let _ = write!(
                    body,
                    r#"<tr><td>{}</td><td>{}</td><td>{}</td><td class="mono">{}</td><td>{}</td><td>{} days</td></tr>"#,
                    v.version,
                    time(v.updated_at),
                    esc(&v.spec.name),
                    esc(&v.spec.subject_name_format),
                    esc(&v.spec.template),
                    v.spec.validity_days,
                );
            }
            body.push_str("</tbody></table>");
        }
        Err(e) => body.push_str(&api_message(&e)),
    }
    html("Profile", &session, &body)
}

/// The service's 4xx message, or what failed, as a paragraph.
fn api_message(e: &ApiError) -> String {
    format!(
        r#"<p class="msg error">{}</p>"#,
        esc(e.message().unwrap_or(&e.to_string()))
    )
}

fn warnings_table(warnings: &[Warning]) -> String {
    if warnings.is_empty() {
        return r#"<p id="warnings">The template issues what the profile says.</p>"#.into();
    }
    let mut out = String::from(
        r#"<h2>Template warnings</h2><table id="warnings"><thead><tr><th>Field</th><th>Profile</th><th>Template</th><th>Consequence</th><th>Effect</th></tr></thead><tbody>"#,
    );
    for w in warnings {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&w.field),
            esc(&w.profile),
            esc(&w.template),
            badge(&w.consequence),
            esc(&w.effect)
        );
    }
    out.push_str("</tbody></table>");
    out
}

/// The rendered subject and SANs (or why they do not render), the template, and, when
/// `with_warnings`, the template warnings.
pub(crate) fn preview_section(pv: &Preview, with_warnings: bool) -> String {
    let mut out = String::from(r#"<section id="preview-result"><h3>Rendered for the device</h3>"#);
    if let Some(r) = &pv.rendered {
        let subject = r
            .subject
            .iter()
            .map(|a| format!("{}={}", a.attr, a.value))
            .collect::<Vec<_>>()
            .join(", ");
        let sans = r
            .subject_alternative_names
            .iter()
            .map(|x| format!("{}:{}", san_kind(x.kind), x.value))
            .collect::<Vec<_>>()
            .join(", ");
        let _ = write!(
            out,
            r#"<dl class="facts"><dt>Subject</dt><dd class="mono" id="preview-subject">{}</dd><dt>SANs</dt><dd class="mono" id="preview-sans">{}</dd><dt>Template</dt><dd id="preview-template">{}</dd></dl>"#,
            esc(&subject),
            esc(&sans),
            esc(&r.template)
        );
    }
    if let Some(e) = &pv.render_error {
        let _ = write!(
            out,
            r#"<p class="msg error" id="preview-error">{}</p>"#,
            esc(e)
        );
    }
    if with_warnings {
        out.push_str(&warnings_table(&pv.warnings));
    }
    out.push_str("</section>");
    out
}

/// `GET /profiles/new`.
pub(crate) async fn new(State(s): State<ConsoleState>, headers: HeaderMap) -> Response {
    let session = match s.require(&headers) {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let body = format!(
        "<h1>New profile</h1>{}",
        defaults().render(&session, "/profiles", true, None)
    );
    html("New profile", &session, &body)
}

/// `GET /profiles/{id}/edit`.
pub(crate) async fn edit(
    State(s): State<ConsoleState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let session = match s.require(&headers) {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let id = match path_id(&session, &id, "profile") {
        Ok(i) => i,
        Err(r) => return *r,
    };
    match s.policy.profile(&id).await {
        Ok(p) => {
            let form = ProfileForm::from_spec(&p.id, &p.spec);
            let action = format!("/profiles/{}/edit", url_part(&p.id));
            let body = format!(
                "<h1>Edit profile <code>{}</code> (version {})</h1>{}",
                esc(&p.id),
                p.version,
                form.render(&session, &action, false, None)
            );
            html("Edit profile", &session, &body)
        }
        Err(e) => api_error(&session, &e),
    }
}

fn field_of<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// `POST /profiles`: create (op=save) or preview (op=preview) what was typed.
pub(crate) async fn create(
    State(s): State<ConsoleState>,
    headers: HeaderMap,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Response {
    submit(s, headers, pairs, None).await
}

/// `POST /profiles/{id}/edit`: save a new version (op=save) or preview what was typed.
pub(crate) async fn update(
    State(s): State<ConsoleState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Response {
    submit(s, headers, pairs, Some(id)).await
}

async fn submit(
    s: ConsoleState,
    headers: HeaderMap,
    pairs: Vec<(String, String)>,
    editing: Option<String>,
) -> Response {
    let session = match s.require_action(&headers, field_of(&pairs, "csrf")) {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let editing = match editing.as_deref().map(|i| path_id(&session, i, "profile")) {
        Some(Ok(i)) => Some(i),
        Some(Err(r)) => return *r,
        None => None,
    };
    let mut form = ProfileForm::from_pairs(&pairs);
    let (action, title) = match &editing {
        Some(id) => {
            form.id = id.as_str().to_owned();
            (
                format!("/profiles/{}/edit", url_part(id.as_str())),
                "Edit profile",
            )
        }
        None => ("/profiles".to_owned(), "New profile"),
    };
    let again = |error: Option<&FormError>, extra: &str, status: StatusCode| {
        let body = format!(
            "<h1>{title}</h1>{}{extra}",
            form.render(&session, &action, editing.is_none(), error)
        );
        let mut r = html(title, &session, &body);
        *r.status_mut() = status;
        r
    };
    let spec = match form.spec() {
        Ok(spec) => spec,
        Err(e) => return again(Some(&e), "", StatusCode::BAD_REQUEST),
    };
    if field_of(&pairs, "op") == Some("preview") {
        let device = match form.preview_device.as_str() {
            "" => None,
            d => match PathId::parse(d) {
                Some(d) => Some(d),
                None => {
                    let e = FormError {
                        field: None,
                        message: "Not a device id.".into(),
                    };
                    return again(Some(&e), "", StatusCode::BAD_REQUEST);
                }
            },
        };
        return match s.policy.preview(&spec, device.as_ref()).await {
            Ok(pv) => again(None, &preview_section(&pv, true), StatusCode::OK),
            Err(e) => refused(&e, again),
        };
    }
    let saved = match &editing {
        Some(id) => s.policy.update_profile(id, &spec).await,
        None => s.policy.create_profile(&form.id, &spec).await,
    };
    match saved {
        Ok(p) => {
            tracing::info!(profile = %p.id, version = p.version, who = %session.who, "console saved a profile");
            redirect(&format!("/profiles/{}", url_part(&p.id)))
        }
        Err(e) => refused(&e, again),
    }
}

/// A 4xx from the policy module shown on the form as typed (at the field it names); anything
/// else as the usual error page would show it, still on the form so nothing typed is lost.
fn refused(
    e: &ApiError,
    again: impl Fn(Option<&FormError>, &str, StatusCode) -> Response,
) -> Response {
    match (e.status(), e.message()) {
        (Some(st @ 400..=499), Some(m)) => {
            let status = StatusCode::from_u16(st).unwrap_or(StatusCode::BAD_REQUEST);
            again(Some(&FormError::from_api(m)), "", status)
        }
        _ => {
            tracing::warn!(error = %e, "console: profile call failed");
            let err = FormError {
                field: None,
                message: e.to_string(),
            };
            let status = match e.status() {
                Some(st @ 400..=499) => StatusCode::from_u16(st).unwrap_or(StatusCode::BAD_REQUEST),
                _ => StatusCode::BAD_GATEWAY,
            };
            again(Some(&err), "", status)
        }
    }
}

/// `POST /profiles/{id}/assign`: kind, target, csrf.
pub(crate) async fn assign(
    State(s): State<ConsoleState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Response {
    assignment(s, headers, id, "assign", pairs).await
}

/// `POST /profiles/{id}/unassign`: kind, target, csrf.
pub(crate) async fn unassign(
    State(s): State<ConsoleState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Response {
    assignment(s, headers, id, "unassign", pairs).await
}

async fn assignment(
    s: ConsoleState,
    headers: HeaderMap,
    id: String,
    op: &'static str,
    pairs: Vec<(String, String)>,
) -> Response {
    let session = match s.require_action(&headers, field_of(&pairs, "csrf")) {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let id = match path_id(&session, &id, "profile") {
        Ok(i) => i,
        Err(r) => return *r,
    };
    let kind = field_of(&pairs, "kind").unwrap_or("");
    if kind != "device" && kind != "group" {
        return error_page(
            StatusCode::BAD_REQUEST,
            Some(&session),
            "Assign to a device or a group.",
        );
    }
    let target = match path_id(
        &session,
        field_of(&pairs, "target").unwrap_or("").trim(),
        kind,
    ) {
        Ok(t) => t,
        Err(r) => return *r,
    };
    let done = match op {
        "assign" => {
            let a = Assignment {
                kind: kind.to_owned(),
                id: target.as_str().to_owned(),
            };
            s.policy.assign(&id, &a).await
        }
        "unassign" => match PathId::parse(kind) {
            Some(k) => s.policy.unassign(&id, &k, &target).await,
            None => return error_page(StatusCode::BAD_REQUEST, Some(&session), "Bad kind."),
        },
        _ => return error_page(StatusCode::NOT_FOUND, Some(&session), "No such action."),
    };
    match done {
        Ok(()) => {
            tracing::info!(profile = id.as_str(), kind, target = target.as_str(), op, who = %session.who, "console assignment");
            redirect(&format!("/profiles/{}", url_part(id.as_str())))
        }
        Err(e) => api_error(&session, &e),
    }
}
