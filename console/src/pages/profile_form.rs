//! The profile form (create and edit): what was typed, kept as typed so a refused form comes
//! back filled in; its conversion to the API's spec; and the field the policy module's 400
//! names, so its message is shown beside that field (otherwise at the top).

use std::fmt::Write;

use foundation::names::{San, SanKind};

use crate::auth::Session;
use crate::clients::ProfileSpec;
use crate::html::{csrf_field, esc};

/// The fields of the form, in the order shown; (name, label).
const FIELDS: [(&str, &str); 16] = [
    ("name", "Name"),
    ("certificate_type", "Certificate type"),
    ("subject_name_format", "Subject name format"),
    (
        "subject_alternative_names",
        "Subject alternative names (kind:value, one a line)",
    ),
    ("key_usage", "Key usage (digitalSignature, keyEncipherment)"),
    (
        "extended_key_usages",
        "Extended key usages (OIDs, comma-separated)",
    ),
    ("key_algorithm", "Key algorithm (rsa, ec)"),
    ("key_size", "Key size"),
    ("hash_algorithm", "Hash algorithm (sha256, sha384, sha512)"),
    ("validity_days", "Validity (days)"),
    ("renewal_threshold_percent", "Renewal threshold (%)"),
    ("template", "CA template"),
    ("scep_server_urls", "SCEP server URLs (one a line)"),
    ("ca_thumbprint", "Root CA thumbprint (hex)"),
    ("retry_count", "Retry count"),
    ("retry_delay_minutes", "Retry delay (minutes)"),
];

/// Fields typed as several lines.
const MULTILINE: [&str; 2] = ["subject_alternative_names", "scep_server_urls"];

/// The form as typed: the profile id (create only), each field's text, and the device to
/// preview for.
#[derive(Debug, Clone, Default)]
pub(crate) struct ProfileForm {
    pub id: String,
    values: Vec<(&'static str, String)>,
    pub preview_device: String,
}

/// A message for one field, or for the whole form (`field` is `None`).
#[derive(Debug, Clone)]
pub(crate) struct FormError {
    pub field: Option<&'static str>,
    pub message: String,
}

impl FormError {
    /// The policy module's 400 message, placed at the field it starts with (`field: ...`).
    pub(crate) fn from_api(message: &str) -> Self {
        let field = std::iter::once("id")
            .chain(FIELDS.iter().map(|(f, _)| *f))
            .find(|f| {
                message
                    .strip_prefix(f)
                    .is_some_and(|rest| rest.starts_with(':') || rest.starts_with('.'))
            });
        Self {
            field,
            message: message.to_owned(),
        }
    }
}

impl ProfileForm {
    /// From a form post (`csrf`, `op` and unknown names ignored).
    pub(crate) fn from_pairs(pairs: &[(String, String)]) -> Self {
        let mut f = Self::default();
        for (k, v) in pairs {
            match k.as_str() {
                "id" => f.id = v.trim().to_owned(),
                "preview_device" => f.preview_device = v.trim().to_owned(),
                k => {
                    if let Some((name, _)) = FIELDS.iter().find(|(n, _)| *n == k) {
                        f.values.push((name, v.clone()));
                    }
                }
            }
        }
        f
    }

    /// A stored spec as the form shows it.
    pub(crate) fn from_spec(id: &str, s: &ProfileSpec) -> Self {
        let sans = s
            .subject_alternative_names
            .iter()
            .map(|x| format!("{}:{}", san_kind(x.kind), x.value))
            .collect::<Vec<_>>()
            .join("\n");
        let values = vec![
            ("name", s.name.clone()),
            ("certificate_type", s.certificate_type.clone()),
            ("subject_name_format", s.subject_name_format.clone()),
            ("subject_alternative_names", sans),
            ("key_usage", s.key_usage.join(", ")),
            ("extended_key_usages", s.extended_key_usages.join(", ")),
            ("key_algorithm", s.key_algorithm.clone()),
            ("key_size", s.key_size.to_string()),
            ("hash_algorithm", s.hash_algorithm.clone()),
            ("validity_days", s.validity_days.to_string()),
            (
                "renewal_threshold_percent",
                s.renewal_threshold_percent.to_string(),
            ),
            ("template", s.template.clone()),
            ("scep_server_urls", s.scep_server_urls.join("\n")),
            ("ca_thumbprint", s.ca_thumbprint.clone()),
            ("retry_count", s.retry_count.to_string()),
            ("retry_delay_minutes", s.retry_delay_minutes.to_string()),
        ];
        Self {
            id: id.to_owned(),
            values,
            preview_device: String::new(),
        }
    }

    fn get(&self, field: &str) -> &str {
        self.values
            .iter()
            .find(|(n, _)| *n == field)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    }

    /// The spec to send, or the first field that is not even of the right shape (a number,
    /// a `kind:value` SAN); everything else is the policy module's to judge.
    pub(crate) fn spec(&self) -> Result<ProfileSpec, FormError> {
        fn num<T: std::str::FromStr>(f: &ProfileForm, field: &'static str) -> Result<T, FormError> {
            f.get(field).trim().parse().map_err(|_| FormError {
                field: Some(field),
                message: format!("{field}: a whole number"),
            })
        }
        let list = |field: &str, sep: char| -> Vec<String> {
            self.get(field)
                .split(sep)
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        };
        let mut sans = Vec::new();
        for line in list("subject_alternative_names", '\n') {
            let san = line
                .split_once(':')
                .and_then(|(k, v)| Some(San::new(parse_kind(k.trim())?, v.trim())));
            sans.push(san.ok_or_else(|| FormError {
                field: Some("subject_alternative_names"),
                message: format!(
                    "subject_alternative_names: {line:?} is not kind:value (dns, email, uri, upn, ip)"
                ),
            })?);
        }
        Ok(ProfileSpec {
            name: self.get("name").trim().to_owned(),
            certificate_type: self.get("certificate_type").trim().to_owned(),
            subject_name_format: self.get("subject_name_format").trim().to_owned(),
            subject_alternative_names: sans,
            key_usage: list("key_usage", ','),
            extended_key_usages: list("extended_key_usages", ','),
            key_algorithm: self.get("key_algorithm").trim().to_owned(),
            key_size: num(self, "key_size")?,
            hash_algorithm: self.get("hash_algorithm").trim().to_owned(),
            validity_days: num(self, "validity_days")?,
            renewal_threshold_percent: num(self, "renewal_threshold_percent")?,
            template: self.get("template").trim().to_owned(),
            scep_server_urls: list("scep_server_urls", '\n'),
            ca_thumbprint: self.get("ca_thumbprint").trim().to_owned(),
            retry_count: num(self, "retry_count")?,
            retry_delay_minutes: num(self, "retry_delay_minutes")?,
        })
    }

    /// The form, posting to `action`; `creating` adds the id field; `error` is shown at its
    /// field (or at the top) with `aria-invalid`.
    pub(crate) fn render(
        &self,
        session: &Session,
        action: &str,
        creating: bool,
        error: Option<&FormError>,
    ) -> String {
        let mut out = String::new();
        if let Some(e) = error.filter(|e| e.field.is_none()) {
            let _ = write!(
                out,
                r#"<p class="msg error" role="alert" id="form-error">{}</p>"#,
                esc(&e.message)
            );
        }
        let _ = write!(
            out,
            r#"<form method="post" action="{}" class="profile">{}"#,
            esc(action),
            csrf_field(session)
        );
        let mut field = |name: &'static str, label: &str, value: &str| {
            let err = error.filter(|e| e.field == Some(name));
            let invalid = if err.is_some() {
                r#" aria-invalid="true""#
            } else {
                ""
            };
            let _ = write!(out, r#"<p><label for="f-{name}">{}</label>"#, esc(label));
            if MULTILINE.contains(&name) {
                let _ = write!(
                    out,
                    r#"<textarea id="f-{name}" name="{name}" rows="3"{invalid}>{}</textarea>"#,
                    esc(value)
                );
            } else {
                let _ = write!(
                    out,
                    r#"<input type="text" id="f-{name}" name="{name}" value="{}"{invalid}>"#,
                    esc(value)
                );
            }
            if let Some(e) = err {
                let _ = write!(
                    out,
                    r#"<span class="msg error field-error" role="alert" id="error-{name}">{}</span>"#,
                    esc(&e.message)
                );
            }
            out.push_str("</p>");
        };
        if creating {
            field("id", "Profile id", &self.id);
        }
        for (name, label) in FIELDS {
            field(name, label, self.get(name));
        }
        let _ = write!(
            out,
            r#"<p><label for="f-preview_device">Preview for device (id)</label><input type="text" id="f-preview_device" name="preview_device" value="{}"></p>
<p><button type="submit" name="op" value="save" id="save">Save</button> <button type="submit" name="op" value="preview" id="preview" class="plain">Preview</button></p></form>"#,
            esc(&self.preview_device)
        );
        out
    }
}

fn parse_kind(s: &str) -> Option<SanKind> {
    [
        SanKind::Dns,
        SanKind::Email,
        SanKind::Uri,
        SanKind::Upn,
        SanKind::Ip,
    ]
    .into_iter()
    .find(|k| san_kind(*k).eq_ignore_ascii_case(s))
}

/// The API's name of a SAN kind.
pub(crate) fn san_kind(k: SanKind) -> &'static str {
    match k {
        SanKind::Dns => "dns",
        SanKind::Email => "email",
        SanKind::Uri => "uri",
        SanKind::Upn => "upn",
        SanKind::Ip => "ip",
    }
}

/// A blank form with the lab's usual choices filled in.
pub(crate) fn defaults() -> ProfileForm {
    let mut f = ProfileForm::from_spec(
        "",
        &ProfileSpec {
            name: String::new(),
            certificate_type: "device".into(),
            subject_name_format: "CN={{DeviceName}}".into(),
            subject_alternative_names: Vec::new(),
            key_usage: vec!["digitalSignature".into(), "keyEncipherment".into()],
            extended_key_usages: vec!["1.3.6.1.5.5.7.3.2".into()],
            key_algorithm: "rsa".into(),
            key_size: 2048,
            hash_algorithm: "sha256".into(),
            validity_days: 365,
            renewal_threshold_percent: 20,
            template: String::new(),
            scep_server_urls: Vec::new(),
            ca_thumbprint: String::new(),
            retry_count: 3,
            retry_delay_minutes: 5,
        },
    );
    f.id.clear();
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_messages_find_their_field() {
        let e = FormError::from_api("validity_days: 1..=730");
        assert_eq!(e.field, Some("validity_days"));
        let e = FormError::from_api("subject_alternative_names.value: too long");
        assert_eq!(e.field, Some("subject_alternative_names"));
        let e = FormError::from_api("retry_count <= 10 and retry_delay_minutes <= 1440");
        assert_eq!(e.field, None);
        let e = FormError::from_api("id: 1-64 characters");
        assert_eq!(e.field, Some("id"));
    }
}
