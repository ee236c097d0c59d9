//! The `openssl cms` command line as an independent reader of a CertRep: it verifies the
//! outer signature's structure, prints the envelope, and decrypts it with the requester's key,
//! so a test can see what OpenSSL, not our own client, makes of a reply.
#![allow(clippy::expect_used)]

use openssl::pkey::{PKeyRef, Private};
use openssl::x509::X509Ref;

/// What OpenSSL read from a CertRep.
#[derive(Debug, Clone)]
pub struct OpenedByOpenssl {
    /// `openssl cms -cmsout -print` of the EnvelopedData (recipient infos, algorithms).
    pub envelope: String,
    /// `openssl pkcs7 -print_certs` of the decrypted degenerate SignedData.
    pub certificates: String,
}

fn openssl(args: &[&str]) -> Vec<u8> {
    let out = crate::openssl(args, None).expect("openssl runs");
    assert!(out.success(), "openssl {args:?}: {}", out.stderr_str());
    out.stdout
}

/// Opens the CertRep `rep_der` sent to the holder of `key` and `recipient` with the `openssl`
/// command line; panics (a test helper) when any step fails.
pub fn open_cert_rep(
    rep_der: &[u8],
    recipient: &X509Ref,
    key: &PKeyRef<Private>,
) -> OpenedByOpenssl {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = |n: &str| dir.path().join(n).to_string_lossy().into_owned();
    std::fs::write(path("rep.der"), rep_der).expect("write rep.der");
    std::fs::write(
        path("dev.pem"),
        recipient.to_pem().expect("certificate PEM"),
    )
    .expect("write dev.pem");
    std::fs::write(
        path("dev.key"),
        key.private_key_to_pem_pkcs8().expect("key PEM"),
    )
    .expect("write dev.key");
    let (rep, env, payload) = (path("rep.der"), path("env.der"), path("payload.der"));
    let (cert, key_file) = (path("dev.pem"), path("dev.key"));
    openssl(&[
        "cms",
        "-verify",
        "-noverify",
        "-binary",
        "-inform",
        "DER",
        "-in",
        &rep,
        "-out",
        &env,
    ]);
    let envelope = openssl(&["cms", "-cmsout", "-print", "-inform", "DER", "-in", &env]);
    openssl(&[
        "cms", "-decrypt", "-binary", "-inform", "DER", "-in", &env, "-recip", &cert, "-inkey",
        &key_file, "-out", &payload,
    ]);
    let certificates = openssl(&["pkcs7", "-inform", "DER", "-in", &payload, "-print_certs"]);
    OpenedByOpenssl {
        envelope: String::from_utf8_lossy(&envelope).into_owned(),
        certificates: String::from_utf8_lossy(&certificates).into_owned(),
    }
}
