//! The web console in a real browser (issue 18): headless Chromium over WebDriver, one
//! browser for this test binary. The end-to-end run:
//! 1. sign in from the sign-in page;
//! 2. a profile with a variable subject (`CN={{DeviceName}},...`), created through the
//!    console's profile form;
//! 3. a device registered and assigned the profile (API);
//! 4. enrolled with device-agent;
//! 5. its transaction opened in the console: all seven steps lit;
//! 6. the device retired from the console (action, confirmation);
//! 7. the revocation on the certificate's page, in the device's page, and in the CRL and
//!    OCSP as the `openssl` CLI sees them;
//! 8. sign out; a page then needs signing in again.
//!
//! It also takes the README's screenshots (`docs/console-overview.png`,
//! `docs/console-transaction.png`) of what it sees, and on failure saves one under `target/`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, ensure};
use openssl::x509::{X509, X509Crl};
use scep_lab_tests::webdriver::Browser;
use scep_lab_tests::*;

fn repo_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel)
}

fn openssl(args: &[&OsStr]) -> Result<(bool, String)> {
    let out = testkit::openssl(args, None)?;
    Ok((
        out.success(),
        format!("{}{}", out.stdout_str(), out.stderr_str()),
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_end_to_end_in_a_browser() {
    if testkit::binary("openssl").is_none() {
        return;
    }
    let Some(browser) = Browser::start().await.unwrap() else {
        return;
    };
    let lab = TestLab::start().await.unwrap();
    let result = run(&lab, &browser).await;
    if let Err(e) = &result {
        let shot = repo_path("target/console-browser-failure.png");
        let saved = browser.screenshot(&shot).await;
        eprintln!("screenshot of the failure: {} ({saved:?})", shot.display());
        eprintln!("page: {}", browser.source().await.unwrap_or_default());
        panic!("{e:?}");
    }
    browser.quit().await;
    lab.shutdown().await;
}

async fn run(lab: &TestLab, b: &Browser) -> Result<()> {
    let console = lab.console_url();

    // 1. Sign in.
    b.goto(&format!("{console}/")).await?;
    ensure!(b.url().await?.ends_with("/login"), "not sent to sign in");
    // The sign-in form is reachable by keyboard: user name, then secret, then the button.
    let focused = b.tab(3).await?;
    ensure!(focused == "sign-in", "three Tabs reached {focused:?}");
    b.type_into("#secret", lab.tokens().console_admin.expose())
        .await?;
    b.click("#sign-in").await?;
    ensure!(b.wait_for_url(&format!("{console}/")).await? == format!("{console}/"));
    ensure!(b.text("h1").await? == "Overview");

    // 2. Profile with a variable subject, through the console's form (from the nav bar).
    ensure!(SUBJECT_FORMAT.contains("{{DeviceName}}"));
    b.click("nav a[href='/profiles']").await?;
    b.wait_for_url(&format!("{console}/profiles")).await?;
    b.click("#new-profile").await?;
    b.wait_for_url(&format!("{console}/profiles/new")).await?;
    b.type_into("#f-id", PROFILE).await?;
    b.type_into("#f-name", "Corporate device certificate")
        .await?;
    b.clear("#f-subject_name_format").await?;
    b.type_into("#f-subject_name_format", SUBJECT_FORMAT)
        .await?;
    b.type_into("#f-subject_alternative_names", &format!("dns:{SAN_FORMAT}"))
        .await?;
    b.type_into("#f-template", TEMPLATE).await?;
    b.type_into("#f-scep_server_urls", &lab.scep_url()).await?;
    b.type_into("#f-ca_thumbprint", lab.root_fingerprint())
        .await?;
    b.click("#save").await?;
    let saved = b
        .wait_for_url(&format!("{console}/profiles/{PROFILE}"))
        .await?;
    ensure!(saved.ends_with(&format!("/profiles/{PROFILE}")), "{saved}");
    ensure!(b.text("#profile-version").await? == "1");

    // 3-4. Device and assignment (API); enrollment (device-agent).
    let (d, record) = lab.enrolled_device("CONSOLE-01", PROFILE).await?;
    let tx = record.transaction_id.clone();
    let serial = record.serial_hex.to_ascii_lowercase();

    // The overview counts it and lists its transaction.
    b.goto(&format!("{console}/")).await?;
    ensure!(b.text("#count-devices").await? == "1");
    ensure!(b.text("#root-fingerprint").await? == lab.root_fingerprint());
    let listed = b.text("#transactions").await?;
    ensure!(
        listed.contains(&tx) && listed.contains("issued") && listed.contains(&d.id),
        "transaction {tx} not listed as issued for {}:\n{listed}",
        d.id
    );
    b.screenshot(&repo_path("docs/console-overview.png"))
        .await?;

    // 5. The transaction: seven steps, all lit, none failed.
    b.click(&format!("#transactions a[href='/transactions/{tx}']"))
        .await?;
    b.wait_for_url(&format!("/transactions/{tx}")).await?;
    let lit = b.count("#steps li.step.lit").await?;
    let failed = b.count("#steps li.step.failed").await?;
    ensure!(
        lit == 7 && failed == 0,
        "{lit} lit, {failed} failed:\n{}",
        b.text("#steps").await?
    );
    let steps = b.text("#steps").await?;
    for want in [
        "PKCSReq",
        "VerifyRequest",
        "pkiStatus SUCCESS",
        serial.as_str(),
    ] {
        ensure!(
            steps.contains(want),
            "{want} missing from the timeline:\n{steps}"
        );
    }
    b.screenshot(&repo_path("docs/console-transaction.png"))
        .await?;

    // 6. Retire from the device's page, through its confirmation.
    b.goto(&format!("{console}/devices?q=console-01")).await?;
    b.click(&format!("#devices a[href='/devices/{}']", d.id))
        .await?;
    b.wait_for_url(&format!("/devices/{}", d.id)).await?;
    b.click("#action-retire").await?;
    b.wait_for_url(&format!("/devices/{}/retire", d.id)).await?;
    b.click("#confirm").await?;
    b.wait_for_url(&format!("/devices/{}", d.id)).await?;
    ensure!(b.text("#device-state").await? == "retired");

    // 7. The revocation: the CA's status on the certificate's page (once the outbox has
    // delivered it), the transaction's timeline, the CRL and OCSP.
    lab.wait_revoked(&serial).await?;
    b.goto(&format!("{console}/certificates/{serial}")).await?;
    ensure!(b.text("#cert-status").await? == "revoked");
    ensure!(b.text("#cert-reason").await? == "cessationOfOperation");
    b.goto(&format!("{console}/devices/{}", d.id)).await?;
    ensure!(b.text("#certificates").await?.contains("revoked"));
    b.goto(&format!("{console}/transactions/{tx}")).await?;
    ensure!(b.text("#revocations").await?.contains("revoked"));
    openssl_sees_revoked(lab, &d, &serial).await?;

    // 8. Sign out; the overview then needs signing in.
    b.click("#logout").await?;
    b.wait_for_url("/login").await?;
    b.goto(&format!("{console}/")).await?;
    ensure!(b.url().await?.ends_with("/login"), "still signed in");
    Ok(())
}

async fn openssl_sees_revoked(lab: &TestLab, d: &TestDevice, serial: &str) -> Result<()> {
    let (_, chain) = d.installed(PROFILE)?.context("nothing installed")?;
    let cert: &X509 = &chain[0];
    let material = lab.ca().material();
    let dir = lab.tmp();
    let leaf = write_pem(dir, "leaf.pem", &[cert])?;
    let root = write_pem(dir, "root.pem", &[&material.root])?;
    let issuing = write_pem(dir, "issuing.pem", &[&material.issuing])?;
    let both = write_pem(dir, "cas.pem", &[&material.root, &material.issuing])?;
    let crl_der = reqwest::get(format!("{}/crl/issuing.crl", lab.ca_url()))
        .await?
        .error_for_status()?
        .bytes()
        .await?;
    let crl = dir.join("crl.pem");
    std::fs::write(&crl, X509Crl::from_der(&crl_der)?.to_pem()?)?;
    let (ok, out) = openssl(&[
        "verify".as_ref(),
        "-crl_check".as_ref(),
        "-CAfile".as_ref(),
        root.as_os_str(),
        "-untrusted".as_ref(),
        issuing.as_os_str(),
        "-CRLfile".as_ref(),
        crl.as_os_str(),
        leaf.as_os_str(),
    ])?;
    ensure!(!ok && out.contains("certificate revoked"), "CRL: {out}");
    let ocsp_url = format!("{}/ocsp", lab.ca_url());
    let (ok, out) = openssl(&[
        "ocsp".as_ref(),
        "-issuer".as_ref(),
        issuing.as_os_str(),
        "-cert".as_ref(),
        leaf.as_os_str(),
        "-url".as_ref(),
        ocsp_url.as_ref(),
        "-CAfile".as_ref(),
        both.as_os_str(),
        "-timeout".as_ref(),
        "20".as_ref(),
    ])?;
    ensure!(
        ok && out.contains("Response verify OK") && out.contains(": revoked"),
        "OCSP for {serial}: {out}"
    );
    Ok(())
}
