//! HTML by hand: escaped `format!` helpers and one page layout. Every value that came from a
//! service or the user passes through [`esc`] (text and attribute values alike).

use std::fmt::Write;

use crate::auth::Session;

/// The stylesheet, served at `/static/console.css`.
pub const CSS: &str = include_str!("console.css");

/// `s` escaped for HTML text and double-quoted attribute values.
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

/// `s` percent-encoded for a URL path segment or query value inside an `href`.
pub fn url_part(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// A unix time as RFC 3339 (docs/decisions.md #12).
pub fn time(unix: i64) -> String {
    foundation::time::rfc3339(unix)
}

/// A status badge; the class is the status itself (only letters, digits and `_`).
pub fn badge(status: &str) -> String {
    let class: String = status
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    format!(r#"<span class="badge {class}">{}</span>"#, esc(status))
}

/// The hidden CSRF field of a state-changing form.
pub fn csrf_field(session: &Session) -> String {
    format!(
        r#"<input type="hidden" name="csrf" value="{}">"#,
        esc(session.csrf.expose())
    )
}

/// A whole page: header with navigation and the signed-in user (with the logout form), then
/// `body`. `session` is `None` on the login page.
pub fn page(title: &str, session: Option<&Session>, body: &str) -> String {
    let header = match session {
        Some(s) => format!(
            r#"<header><span class="brand">scep-lab console</span>
<nav aria-label="Main"><a href="/">Overview</a><a href="/devices">Devices</a><a href="/profiles">Profiles</a><a href="/certificates">Certificates</a><a href="/transactions">Transactions</a><a href="/pending">Pending</a><a href="/audit">Audit</a><a href="/challenge">Challenge</a></nav>
<span class="who">{who} ({role})</span>
<form method="post" action="/logout">{csrf}<button type="submit" class="plain" id="logout">Log out</button></form></header>"#,
            who = esc(&s.who),
            role = s.role.as_str(),
            csrf = csrf_field(s),
        ),
        None => r#"<header><span class="brand">scep-lab console</span></header>"#.to_owned(),
    };
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · scep-lab console</title><link rel="stylesheet" href="/static/console.css"></head>
<body>{header}<main>{body}</main></body></html>"#,
        title = esc(title),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_covers_text_and_attributes() {
        assert_eq!(
            esc(r#"<a href="x" onclick='y'>&</a>"#),
            "&lt;a href=&quot;x&quot; onclick=&#39;y&#39;&gt;&amp;&lt;/a&gt;"
        );
        assert_eq!(url_part("a b/c?d"), "a%20b%2Fc%3Fd");
        assert_eq!(
            badge("x\" onload=\"y"),
            r#"<span class="badge xonloady">x&quot; onload=&quot;y</span>"#
        );
    }
}
