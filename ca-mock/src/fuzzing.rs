//! Fuzz entry points (`fuzz/fuzz_targets/{ocsp_request,ca_config}.rs` are one-line wrappers;
//! `tests/fuzz_corpus.rs` replays the committed corpus through the same functions). None may
//! panic on any input. Compiled only with the `fuzzing` feature (the fuzz crate and the
//! corpus test turn it on), so they are no part of the normal API.

use std::sync::OnceLock;

use base64::Engine;
use openssl::pkey::PKey;
use openssl::x509::X509;

use crate::config::Config;
use crate::hierarchy::CaMaterial;
use crate::ocsp::{Status, parse_request, sign_response};
use crate::store::RevocationReason;
use crate::template::Template;

/// A fixed EC P-256 hierarchy (`testdata/fuzz/`), so corpus requests can name our issuer.
fn material() -> Option<&'static CaMaterial> {
    static MATERIAL: OnceLock<Option<CaMaterial>> = OnceLock::new();
    MATERIAL
        .get_or_init(|| {
            let root = X509::from_pem(include_bytes!("../testdata/fuzz/root.pem")).ok()?;
            let issuing = X509::from_pem(include_bytes!("../testdata/fuzz/issuing.pem")).ok()?;
            let key =
                PKey::private_key_from_pem(include_bytes!("../testdata/fuzz/issuing.key.pem"))
                    .ok()?;
            CaMaterial::new(root, issuing, key).ok()
        })
        .as_ref()
}

/// An OCSP request as the responder handles it: the POST body, and the same bytes as the
/// base64 last path segment of a GET (RFC 6960 A.1). Every parsed request is answered (each
/// CertID good, revoked or unknown in turn) and signed, as [`crate::CertificateAuthority`] does.
pub fn ocsp_request(data: &[u8]) {
    let Some(ca) = material() else { return };
    answer(ca, data);
    let text = String::from_utf8_lossy(data).replace(' ', "+");
    if let Ok(der) = base64::engine::general_purpose::STANDARD.decode(text.trim()) {
        answer(ca, &der);
    }
}

fn answer(ca: &CaMaterial, der: &[u8]) {
    let Some(request) = parse_request(ca, der) else {
        return;
    };
    let statuses: Vec<Status> = (0..request.items.len())
        .map(|i| match i % 3 {
            0 => Status::Good,
            1 => Status::Revoked {
                at: 1_700_000_000,
                reason: RevocationReason::KeyCompromise,
            },
            _ => Status::Unknown,
        })
        .collect();
    let _ = sign_response(ca, &request, &statuses, 1_800_000_000, 3600);
}

/// A `ca-mock.toml` text and a template text: the same bytes through both parsers (both are
/// TOML with unknown keys refused); settings are derived from a parsed config (files it names
/// are not read).
pub fn ca_config(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(config) = Config::from_toml(&text) {
        let _ = config.settings();
    }
    let _ = Template::from_toml(&text);
}
