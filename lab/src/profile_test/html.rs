//! The report as one HTML page: inline style, no script, no external asset, every value
//! escaped (a subject or SAN is whatever the profile and device made it, so it is hostile
//! until escaped).

use std::fmt::Write;

use super::findings::{eku_text, san_text};
use super::report::Report;

/// Escapes text for element content and quoted attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2em;max-width:70em;color:#222}\
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.25em .5em;\
text-align:left;vertical-align:top}th{background:#f4f4f4}code,pre{font-family:monospace}\
pre{background:#f8f8f8;padding:.5em;overflow:auto}.high{background:#fdd}.medium{background:#fec}\
.low{background:#ffd}.info{background:#eef}.pass{color:#060}.fail{color:#a00}";

/// The page.
pub fn render(r: &Report) -> String {
    let mut h = String::new();
    let p = &r.profile.settings;
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\
         <title>Profile test: {}</title><style>{STYLE}</style></head><body>",
        esc(&p.name)
    );
    let _ = write!(
        h,
        "<h1>Profile test: {}</h1><p class=\"{}\"><strong>Verdict: {}</strong> (fail on {} and above)</p>",
        esc(&p.name),
        esc(&r.verdict),
        esc(&r.verdict.to_uppercase()),
        r.fail_on.as_str()
    );
    let _ = write!(
        h,
        "<p>Generated {} &middot; lab {} &middot; profile copy <code>{}</code> from {} &middot; template <code>{}</code> &middot; device {} (<code>{}</code>)</p>",
        esc(&r.generated_at),
        esc(&r.lab),
        esc(&r.profile.id),
        esc(&r.profile.source),
        esc(&p.template),
        esc(&r.device.attributes.name),
        esc(&r.device.id)
    );
    h.push_str("<h2>Findings</h2><table><tr><th>Severity</th><th>Id</th><th>Detail</th></tr>");
    for f in &r.findings {
        let s = f.severity.as_str();
        let _ = write!(
            h,
            "<tr class=\"{s}\"><td>{s}</td><td><code>{}</code></td><td>{}</td></tr>",
            esc(&f.id),
            esc(&f.detail)
        );
    }
    h.push_str("</table>");
    h.push_str("<h2>Rendering</h2><table>");
    match (&r.rendering.subject, &r.rendering.error) {
        (Some(s), _) => {
            row(&mut h, "Subject", s);
            row(&mut h, "SANs", &r.rendering.sans.join(", "));
        }
        (None, Some(e)) => row(&mut h, "Does not render", e),
        (None, None) => row(&mut h, "Rendering", "not rendered"),
    }
    for w in &r.rendering.warnings {
        row(
            &mut h,
            &format!("Template differs on {}", w.field),
            &w.effect,
        );
    }
    h.push_str("</table>");
    h.push_str("<h2>Certificate</h2>");
    match (&r.certificate, &r.enrollment_error) {
        (Some(i), _) => {
            let c = &i.cert;
            h.push_str("<table>");
            row(&mut h, "Serial", &c.serial);
            row(&mut h, "Subject", &c.subject_text);
            let sans: Vec<String> = c
                .sans
                .iter()
                .map(san_text)
                .chain(c.other_sans.clone())
                .collect();
            row(&mut h, "SANs", &sans.join(", "));
            row(&mut h, "Issuer", &c.issuer_text);
            row(&mut h, "Not before", &c.not_before);
            row(&mut h, "Not after", &c.not_after);
            row(&mut h, "Validity (days)", &c.validity_days.to_string());
            let curve = c.curve.clone().unwrap_or_default();
            row(
                &mut h,
                "Key",
                &format!("{} {} bits {curve}", c.key_algorithm, c.key_bits),
            );
            row(&mut h, "Signature", &c.signature_algorithm);
            row(&mut h, "Key usage", &c.key_usage.join(", "));
            let ekus: Vec<String> = c.extended_key_usage.iter().map(|e| eku_text(e)).collect();
            let ekus = if c.eku_present {
                ekus.join(", ")
            } else {
                "(no extension: any purpose)".into()
            };
            row(&mut h, "Extended key usage", &ekus);
            row(&mut h, "SHA-256", &c.sha256);
            for (n, ca) in i.chain.iter().enumerate() {
                row(
                    &mut h,
                    &format!("Chain [{}]", n + 1),
                    &format!("{} (until {})", ca.subject_text, ca.not_after),
                );
            }
            let verified = match &i.chain_verified {
                Ok(()) => "verifies to its root".to_owned(),
                Err(e) => format!("does NOT verify: {e}"),
            };
            row(&mut h, "Chain", &verified);
            h.push_str("</table>");
            let _ = write!(h, "<pre>{}</pre>", esc(&c.pem));
        }
        (None, Some(e)) => {
            let _ = write!(h, "<p>None issued: {}</p>", esc(e));
        }
        (None, None) => h.push_str("<p>None issued.</p>"),
    }
    h.push_str("<h2>Lint (ca-mock, RFC 5280)</h2>");
    match &r.lint {
        Some(v) if v.is_empty() => h.push_str("<p>Clean.</p>"),
        Some(v) => {
            h.push_str("<ul>");
            for l in v {
                let _ = write!(
                    h,
                    "<li><code>{}</code>: {}</li>",
                    esc(&l.check),
                    esc(&l.detail)
                );
            }
            h.push_str("</ul>");
        }
        None => h.push_str("<p>Not run.</p>"),
    }
    if !r.requirements.is_empty() {
        h.push_str("<h2>Requirements</h2><table>");
        for q in &r.requirements {
            let state = if q.met {
                "met".to_owned()
            } else {
                format!("NOT MET: {}", q.reasons.join("; "))
            };
            row(&mut h, q.requirement.name(), &state);
        }
        h.push_str("</table>");
    }
    h.push_str("</body></html>\n");
    h
}

fn row(h: &mut String, name: &str, value: &str) {
    let _ = write!(h, "<tr><th>{}</th><td>{}</td></tr>", esc(name), esc(value));
}

#[cfg(test)]
mod tests {
    #[test]
    fn markup_is_escaped() {
        assert_eq!(
            super::esc("<img src=x onerror='a()'>&\""),
            "&lt;img src=x onerror=&#39;a()&#39;&gt;&amp;&quot;"
        );
    }
}
