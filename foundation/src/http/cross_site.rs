//! Requests a browser makes on behalf of another site's page (CSRF; reliability P32).
//!
//! The APIs that mint challenges (policy-module's `/internal/v1/challenges` and check-in,
//! ndes-proxy's mscep_admin page) are for machines and administrators, never for a page of
//! another site. A browser attaches ambient credentials (a cached Basic password, cookies)
//! to a cross-site form post, image or navigation, and it labels such requests: every
//! current browser sends `Sec-Fetch-Site`, and `Origin` on every POST. Non-browser clients
//! (ndes-proxy, device-agent, curl, connectors) send neither, so refusing what a browser
//! labels as another site's costs them nothing. A browser older than `Sec-Fetch-Site` is
//! caught on POST by `Origin` only; such a GET cannot be told from a same-site one.

use http::{HeaderMap, header};

/// Whether a browser sent this request for a page of another origin: `Sec-Fetch-Site` is
/// anything but `same-origin` or `none` (`none`: the user typed the URL or used a bookmark),
/// or `Origin` is present and is not this server's (`http://` or `https://` + `Host`; the
/// opaque `null` origin of sandboxed pages and redirects is another origin).
pub fn is_cross_site(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site") {
        let same = site
            .to_str()
            .is_ok_and(|s| s.eq_ignore_ascii_case("same-origin") || s.eq_ignore_ascii_case("none"));
        if !same {
            return true;
        }
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return false;
    };
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let authority = origin.to_str().ok().and_then(|o| {
        o.strip_prefix("http://")
            .or_else(|| o.strip_prefix("https://"))
    });
    match (authority, host) {
        (Some(a), Some(h)) => !a.eq_ignore_ascii_case(h),
        _ => true,
    }
}

/// Whether the `Content-Type` is `application/json` (parameters such as `charset` allowed).
/// A form can only send `application/x-www-form-urlencoded`, `multipart/form-data` or
/// `text/plain` without a CORS preflight, so a JSON-only API cannot be driven by one.
pub fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn browsers_labels_decide_and_plain_clients_pass() {
        let host = ("host", "127.0.0.1:8443");
        assert!(!is_cross_site(&headers(&[host])));
        assert!(!is_cross_site(&headers(&[
            host,
            ("sec-fetch-site", "none")
        ])));
        assert!(!is_cross_site(&headers(&[
            host,
            ("sec-fetch-site", "same-origin")
        ])));
        assert!(!is_cross_site(&headers(&[
            host,
            ("origin", "http://127.0.0.1:8443")
        ])));
        assert!(!is_cross_site(&headers(&[
            host,
            ("origin", "https://127.0.0.1:8443")
        ])));
        assert!(is_cross_site(&headers(&[
            host,
            ("sec-fetch-site", "cross-site")
        ])));
        assert!(is_cross_site(&headers(&[
            host,
            ("sec-fetch-site", "same-site")
        ])));
        assert!(is_cross_site(&headers(&[
            host,
            ("origin", "https://evil.example")
        ])));
        assert!(is_cross_site(&headers(&[
            host,
            ("origin", "http://127.0.0.1:9999")
        ])));
        assert!(is_cross_site(&headers(&[host, ("origin", "null")])));
        assert!(is_cross_site(&headers(&[(
            "origin",
            "http://127.0.0.1:8443"
        )])));
    }

    #[test]
    fn only_json_is_json() {
        assert!(is_json(&headers(&[("content-type", "application/json")])));
        assert!(is_json(&headers(&[(
            "content-type",
            "Application/JSON; charset=utf-8"
        )])));
        for form in [
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "text/plain",
            "application/jsonp",
        ] {
            let mut h = HeaderMap::new();
            h.insert("content-type", HeaderValue::from_str(form).unwrap());
            assert!(!is_json(&h), "{form}");
        }
        assert!(!is_json(&HeaderMap::new()));
    }
}
