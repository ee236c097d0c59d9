//! `/certsrv/mscep_admin/` over 127.0.0.1: the NDES page as MDM connectors scrape it (UTF-16LE
//! with a BOM, checked by Python's `re` as zentral does it), JSON for scripts, 401 without
//! credentials, the cache-full page, 503 when the policy module is down, and the handed-out
//! challenge actually enrolls.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::Ordering;

use base64::Engine;
use common::{Device, Server, issued};
use ndes_proxy::MscepAdmin;
use ndes_proxy::auth::{BasicUsers, BearerToken};
use scep::RequestBody;

const PATH: &str = "/certsrv/mscep_admin/";
const TOKEN: &str = "script-token";

async fn server() -> Server {
    Server::start_configured(&[], ndes_proxy::Settings::default(), |b| {
        b.mscep_admin(MscepAdmin {
            template: "IPSECIntermediateOffline".into(),
            users: BasicUsers::parse("ndesadmin:Passw0rd!\n").unwrap(),
            token: BearerToken::new(TOKEN),
        })
    })
    .await
}

async fn basic_get(s: &Server, path: &str) -> reqwest::Response {
    s.http
        .get(format!("{}{path}", s.url))
        .basic_auth("ndesadmin", Some("Passw0rd!"))
        .send()
        .await
        .unwrap()
}

/// Decode a UTF-16LE page with its BOM.
fn utf16(bytes: &[u8]) -> String {
    assert_eq!(&bytes[..2], [0xFF, 0xFE], "UTF-16LE byte-order mark");
    assert_eq!(bytes.len() % 2, 0);
    let units: Vec<u16> = bytes[2..]
        .chunks(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    String::from_utf16(&units).unwrap()
}

/// The password as a connector scrapes it: `challenge password is: <B> ([A-Z0-9]{16,32}) </B>`.
fn scrape(page: &str) -> Option<String> {
    let start = page.find("challenge password is: <B> ")? + "challenge password is: <B> ".len();
    let rest = &page[start..];
    let end = rest.find(" </B>")?;
    let pw = &rest[..end];
    ((16..=32).contains(&pw.len())
        && pw
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit()))
    .then(|| pw.to_owned())
}

/// The same scrape by Python (`bytes.decode("utf-16")` + `re`), an implementation nobody here
/// wrote. `None` when python3 is missing outside CI.
fn python_scrape(page: &[u8]) -> Option<String> {
    let python = testkit::binary("python3")?;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("page.html");
    std::fs::write(&file, page).unwrap();
    let script = r#"
import re, sys
text = open(sys.argv[1], "rb").read().decode("utf-16")
for m in re.finditer(r"challenge password is: <B> ([A-Z0-9]{16,32}) </B>", text):
    print(m.group(1))
    break
"#;
    let out = std::process::Command::new(python)
        .arg("-c")
        .arg(script)
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8(out.stdout).unwrap().trim().to_owned())
}

#[tokio::test]
async fn the_page_hands_out_a_one_time_password_in_ndes_html_that_enrolls() {
    let s = server().await;
    let r = basic_get(&s, PATH).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let bytes = r.bytes().await.unwrap();
    let page = utf16(&bytes);
    let pw = scrape(&page).unwrap_or_else(|| panic!("no password in {page}"));
    assert!(
        page.contains("This password can be used only once and will expire within 60 minutes.")
    );
    if let Some(by_python) = python_scrape(&bytes) {
        assert_eq!(by_python, pw);
    }
    let asked = s.policy.challenge_requests.lock().unwrap().clone();
    assert_eq!(asked.len(), 1);
    assert_eq!(asked[0].template, "IPSECIntermediateOffline");
    assert_eq!(asked[0].requester, "ndesadmin");

    // Without the trailing slash too, and each call is a new password.
    let again = utf16(
        &basic_get(&s, "/certsrv/mscep_admin")
            .await
            .bytes()
            .await
            .unwrap(),
    );
    assert_ne!(scrape(&again).unwrap(), pw);

    // The password enrolls a device.
    let d = Device::new(0, "from-admin-page");
    issued(d.send(&s, &RequestBody::PkcsReq(d.csr(Some(&pw)))).await);
}

#[tokio::test]
async fn json_for_scripts_by_query_or_accept_and_with_a_bearer_token() {
    let s = server().await;
    let r = s
        .http
        .get(format!("{}{PATH}?format=json", s.url))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let v: serde_json::Value = r.json().await.unwrap();
    let pw = v["challenge"].as_str().unwrap();
    assert_eq!(pw.len(), 32);
    assert_eq!(v["template"], "IPSECIntermediateOffline");
    assert_eq!(v["validity_minutes"], 60);
    let r = s
        .http
        .get(format!("{}{PATH}", s.url))
        .basic_auth("ndesadmin", Some("Passw0rd!"))
        .header("Accept", "application/json")
        .send()
        .await
        .unwrap();
    let v: serde_json::Value = r.json().await.unwrap();
    assert!(v["challenge"].as_str().is_some_and(|c| c != pw));
    assert_eq!(
        s.policy.challenge_requests.lock().unwrap()[0].requester,
        "bearer"
    );
}

#[tokio::test]
async fn without_valid_credentials_it_is_401_and_no_challenge_is_made() {
    let s = server().await;
    let anon = s.get(PATH).await;
    assert_eq!(anon.status(), 401);
    assert!(
        anon.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Basic")
    );
    let wrong = s
        .http
        .get(format!("{}{PATH}", s.url))
        .basic_auth("ndesadmin", Some("wrong"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let garbage = s
        .http
        .get(format!("{}{PATH}", s.url))
        .header("Authorization", "Basic !!!not-base64")
        .send()
        .await
        .unwrap();
    assert_eq!(garbage.status(), 401);
    let bad_token = s
        .http
        .get(format!("{}{PATH}", s.url))
        .bearer_auth("script-tokeN")
        .send()
        .await
        .unwrap();
    assert_eq!(bad_token.status(), 401);
    let encoded = base64::engine::general_purpose::STANDARD.encode("ndesadmin:Passw0rd!");
    assert!(
        !anon.text().await.unwrap().contains(&encoded),
        "nothing echoed"
    );
    assert!(s.policy.challenge_requests.lock().unwrap().is_empty());
}

/// Reliability P32: another site's page can make a browser that cached the Basic password
/// fetch this page (image, link, form GET) or post a form to it. Every such request is
/// refused and nothing is minted; the same GET typed by the user (`Sec-Fetch-Site: none`) is
/// served.
#[tokio::test]
async fn cross_site_requests_and_form_posts_mint_nothing() {
    let s = server().await;
    let url = format!("{}{PATH}", s.url);
    for (label, value) in [
        ("sec-fetch-site", "cross-site"),
        ("sec-fetch-site", "same-site"),
        ("origin", "https://evil.example"),
        ("origin", "null"),
    ] {
        for credentials in [true, false] {
            let mut req = s.http.get(&url).header(label, value);
            if credentials {
                req = req.basic_auth("ndesadmin", Some("Passw0rd!"));
            }
            let r = req.send().await.unwrap();
            assert_eq!(
                r.status(),
                403,
                "GET {label}: {value} credentials={credentials}"
            );
        }
    }
    for content_type in [
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=b",
        "text/plain",
    ] {
        for origin in [None, Some("https://evil.example")] {
            let mut req = s
                .http
                .post(&url)
                .basic_auth("ndesadmin", Some("Passw0rd!"))
                .header("content-type", content_type)
                .body("a=b");
            if let Some(o) = origin {
                req = req.header("origin", o);
            }
            let r = req.send().await.unwrap();
            assert_eq!(r.status(), 405, "POST {content_type} origin={origin:?}");
        }
    }
    assert!(s.policy.challenge_requests.lock().unwrap().is_empty());

    let typed = s
        .http
        .get(&url)
        .basic_auth("ndesadmin", Some("Passw0rd!"))
        .header("sec-fetch-site", "none")
        .send()
        .await
        .unwrap();
    assert_eq!(typed.status(), 200);
    assert_eq!(s.policy.challenge_requests.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn the_password_cache_is_full_page_at_password_max() {
    let s = server().await;
    s.policy.password_max.store(2, Ordering::SeqCst);
    for _ in 0..2 {
        let page = utf16(&basic_get(&s, PATH).await.bytes().await.unwrap());
        assert!(scrape(&page).is_some());
    }
    let r = basic_get(&s, PATH).await;
    assert_eq!(r.status(), 200, "NDES answers the cache-full page with 200");
    let page = utf16(&r.bytes().await.unwrap());
    assert!(page.contains("The password cache is full."), "{page}");
    assert!(scrape(&page).is_none());
    if let Some(by_python) = python_scrape(&utf16_bytes(&page)) {
        assert_eq!(by_python, "");
    }
    let json = s
        .http
        .get(format!("{}{PATH}?format=json", s.url))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(json.status(), 429);
    assert_eq!(
        json.json::<serde_json::Value>().await.unwrap()["error"],
        "cache_full"
    );
}

fn utf16_bytes(s: &str) -> Vec<u8> {
    let mut out = vec![0xFF, 0xFE];
    out.extend(s.encode_utf16().flat_map(u16::to_le_bytes));
    out
}

#[tokio::test]
async fn policy_module_down_is_503_and_a_refused_template_is_403() {
    let s = server().await;
    s.policy.down.store(true, Ordering::SeqCst);
    let r = basic_get(&s, PATH).await;
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "30");
    s.policy.down.store(false, Ordering::SeqCst);

    let other = Server::start_configured(&[], ndes_proxy::Settings::default(), |b| {
        b.mscep_admin(MscepAdmin {
            template: "NotAllowed".into(),
            users: BasicUsers::parse("ndesadmin:Passw0rd!\n").unwrap(),
            token: None,
        })
    })
    .await;
    let r = basic_get(&other, PATH).await;
    assert_eq!(r.status(), 403);
    let page = utf16(&r.bytes().await.unwrap());
    assert!(page.contains("You do not have sufficient permission to enroll with SCEP."));
}

#[tokio::test]
async fn the_page_is_absent_unless_configured() {
    let s = Server::start(&[]).await;
    assert_eq!(s.get(PATH).await.status(), 404);
    assert_eq!(s.get("/admin/v1/pending").await.status(), 404);
}

/// docs/decisions.md #12: the JSON form gives the expiry as RFC 3339 UTC, with the same instant
/// in unix seconds beside it.
#[tokio::test]
async fn json_expiry_is_rfc3339_with_an_agreeing_unix_twin() {
    let s = server().await;
    let r = s
        .http
        .get(format!("{}{PATH}?format=json", s.url))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    let v: serde_json::Value = r.json().await.unwrap();
    let text = v["expires_at"].as_str().unwrap();
    assert!(text.ends_with('Z'), "{text}");
    let at = foundation::time::parse_rfc3339(text).unwrap();
    assert_eq!(v["expires_at_unix"].as_i64(), Some(at));
}

/// The page's fingerprint, grouped as NDES shows it: uppercase hex in groups of eight.
fn grouped_sha256(cert: &openssl::x509::X509Ref) -> String {
    let hex = hex::encode_upper(&*cert.digest(openssl::hash::MessageDigest::sha256()).unwrap());
    hex.as_bytes()
        .chunks(8)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The page of a server whose RA presents `chain` (issuing CA first).
async fn page_with_chain(chain: Vec<openssl::x509::X509>) -> String {
    let p = common::pki();
    let ra = ndes_proxy::RaIdentity::new(
        ndes_proxy::KeyPair {
            cert: p.ra_sign.clone(),
            key: p.ra_sign_key.clone(),
        },
        ndes_proxy::KeyPair {
            cert: p.ra_enc.clone(),
            key: p.ra_enc_key.clone(),
        },
        chain,
    )
    .unwrap();
    let s = Server::start_full(ra, &[], ndes_proxy::Settings::default(), |b| {
        b.mscep_admin(MscepAdmin {
            template: "IPSECIntermediateOffline".into(),
            users: BasicUsers::parse("ndesadmin:Passw0rd!\n").unwrap(),
            token: BearerToken::new(TOKEN),
        })
    })
    .await;
    let r = basic_get(&s, PATH).await;
    assert_eq!(r.status(), 200);
    utf16(&r.bytes().await.unwrap())
}

/// Issue 17 item 3: the page names one fingerprint and says whose it is. With the root in the
/// RA's chain it is the root's (what clients pin), not the issuing CA's; a chain that stops
/// below the root shows the issuing CA's, labelled as such.
#[tokio::test]
async fn the_page_names_the_root_fingerprint_labelled_and_not_the_issuing_cas() {
    use testkit::pki::{CertSpec, Usage, name, rsa_key};
    let root_key = rsa_key(2048);
    let root = CertSpec::new(&name("Lab Root CA"), Some(Usage::Ca), 30).build(&root_key);
    let issuing_key = rsa_key(2048);
    let issuing = CertSpec {
        issuer: Some((&root, &root_key)),
        ..CertSpec::new(&name("Lab Issuing CA"), Some(Usage::Ca), 30)
    }
    .build(&issuing_key);

    let page = page_with_chain(vec![issuing.clone(), root.clone()]).await;
    let want = format!(
        "The thumbprint (hash value) for the root CA certificate (SHA-256; pin this) is: <B> {} </B>",
        grouped_sha256(&root)
    );
    assert!(page.contains(&want), "{want:?} not in {page}");
    assert!(!page.contains(&grouped_sha256(&issuing)), "{page}");
    assert_eq!(page.matches("thumbprint").count(), 1, "{page}");
    assert!(scrape(&page).is_some(), "{page}");

    let page = page_with_chain(vec![issuing.clone()]).await;
    let want = format!(
        "The thumbprint (hash value) for the issuing CA certificate (SHA-256) is: <B> {} </B>",
        grouped_sha256(&issuing)
    );
    assert!(page.contains(&want), "{want:?} not in {page}");
    assert!(!page.contains("root"), "{page}");
}
