//! A certificate's chain (issuing CA and root, with fingerprints) and its OCSP status, asked of
//! ca-mock's responder with a request built by openssl and the answer's signature checked
//! against that chain, so the page shows what a relying party would see.

use std::fmt::Write;

use openssl::hash::MessageDigest;
use openssl::ocsp::OcspResponseStatus;
use openssl::ocsp::{OcspCertId, OcspCertStatus, OcspFlag, OcspRequest, OcspResponse};
use openssl::stack::Stack;
use openssl::x509::X509;
use openssl::x509::store::X509StoreBuilder;

use crate::ConsoleState;
use crate::html::esc;

fn subject(cert: &X509) -> String {
    cert.subject_name()
        .entries()
        .filter_map(|e| e.data().to_string().ok())
        .collect::<Vec<_>>()
        .join(", ")
}

fn fingerprint(cert: &X509) -> String {
    cert.to_der()
        .map(|d| foundation::secret::sha256_hex(&d))
        .unwrap_or_default()
}

/// The `<h2>Chain</h2>` and `<h2>OCSP</h2>` sections for `cert`.
pub(crate) async fn sections(s: &ConsoleState, cert: &X509) -> String {
    let chain = match s.ca.ca_certificates().await {
        Ok((issuing, root)) => X509::from_der(&issuing)
            .ok()
            .zip(X509::from_der(&root).ok()),
        Err(e) => {
            tracing::warn!(error = %e, "console: CA chain read failed");
            None
        }
    };
    let Some((issuing, root)) = chain else {
        return r#"<h2>Chain</h2><p class="msg error" id="chain">ca-mock did not answer its CA certificates.</p>"#.into();
    };
    let mut body = String::from(
        r#"<h2>Chain</h2><table id="chain"><thead><tr><th>Role</th><th>Subject</th><th>SHA-256 fingerprint</th></tr></thead><tbody>"#,
    );
    for (role, c) in [("Issuing CA", &issuing), ("Root CA", &root)] {
        let _ = write!(
            body,
            r#"<tr><td>{role}</td><td>{}</td><td class="mono">{}</td></tr>"#,
            esc(&subject(c)),
            esc(&fingerprint(c)),
        );
    }
    body.push_str("</tbody></table><h2>OCSP</h2>");
    let line = match ocsp_status(s, cert, &issuing, &root).await {
        Ok(line) => line,
        Err(why) => format!("OCSP unreachable or unreadable: {why}"),
    };
    let _ = write!(body, r#"<p id="ocsp-status">{}</p>"#, esc(&line));
    body
}

/// Asks the responder about `cert`; the line to show, or why there is none.
async fn ocsp_status(
    s: &ConsoleState,
    cert: &X509,
    issuing: &X509,
    root: &X509,
) -> Result<String, &'static str> {
    let id = || OcspCertId::from_cert(MessageDigest::sha1(), cert, issuing);
    let mut req = OcspRequest::new().map_err(|_| "request not built")?;
    req.add_id(id().map_err(|_| "request not built")?)
        .map_err(|_| "request not built")?;
    let der = req.to_der().map_err(|_| "request not built")?;
    let answer = s.ca.ocsp(&der).await.map_err(|e| {
        tracing::warn!(error = %e, "console: OCSP request failed");
        "no answer"
    })?;
    let resp = OcspResponse::from_der(&answer).map_err(|_| "not an OCSP response")?;
    if resp.status() != OcspResponseStatus::SUCCESSFUL {
        return Err("the responder refused the request");
    }
    let basic = resp.basic().map_err(|_| "no basic response")?;
    let verified = (|| {
        let mut store = X509StoreBuilder::new().ok()?;
        store.add_cert(root.clone()).ok()?;
        let mut certs = Stack::new().ok()?;
        certs.push(issuing.clone()).ok()?;
        basic.verify(&certs, &store.build(), OcspFlag::empty()).ok()
    })()
    .is_some();
    let id = id().map_err(|_| "request not built")?;
    let status = basic
        .find_status(&id)
        .ok_or("the answer does not name this certificate")?;
    let what = match status.status {
        OcspCertStatus::GOOD => "good".to_owned(),
        OcspCertStatus::REVOKED => {
            let code = status.reason.as_raw();
            let name = ca_api::RevocationReason::from_code(i64::from(code))
                .map_or("unknown reason", ca_api::RevocationReason::as_str);
            format!("revoked ({name})")
        }
        _ => "unknown".to_owned(),
    };
    Ok(format!(
        "OCSP reachable: {what}; signature {}",
        if verified {
            "verified against the chain above"
        } else {
            "NOT verified"
        }
    ))
}
