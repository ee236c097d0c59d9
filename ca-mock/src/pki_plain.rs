//! ca-mock's plain-HTTP listener when its API serves HTTPS (issue 17 item 4).
//!
//! The CRL, OCSP and CA-certificate URLs a certificate carries stay `http`: relying parties
//! fetch them without TLS (RFC 5280 §4.2.1.13, RFC 6960 practice), and an HTTPS URL there
//! would need the CA's own chain to validate the chain (a loop). Everything else (the API and
//! its bearer tokens, metrics) is refused with 403 naming its HTTPS URL, as ndes-proxy's plain
//! listener does for everything but SCEP.

use axum::Router;

/// Whether a relying party may fetch `path` over plain HTTP.
pub fn is_public(path: &str) -> bool {
    path.starts_with("/ca/")
        || path.starts_with("/crl/")
        || path == "/ocsp"
        || path.starts_with("/ocsp/")
        || path == "/healthz"
}

/// `app` restricted to [`is_public`] paths; any other is a 403 naming `https_base` + path.
pub fn pki_only(app: Router, https_base: &str) -> Router {
    foundation::tls::plain_only(app, https_base, is_public, "CA certificates, CRLs and OCSP")
}

#[cfg(test)]
mod tests {
    use super::is_public;

    #[test]
    fn only_what_certificates_point_at_is_public() {
        for p in [
            "/ca/root.crt",
            "/crl/issuing.crl",
            "/crl/retired/x.crl",
            "/ocsp",
            "/ocsp/MEU=",
            "/healthz",
        ] {
            assert!(is_public(p), "{p}");
        }
        for p in [
            "/api/v1/certificates",
            "/metrics",
            "/readyz",
            "/ocspx",
            "/",
            "/ca",
        ] {
            assert!(!is_public(p), "{p}");
        }
    }
}
