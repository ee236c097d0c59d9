//! The seven steps of Figure 7 (seeds/001), each printed with what was checked, then the
//! device's retirement shown in the CRL and in an OCSP answer.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use device_agent::agent::{Agent, SyncOptions};
use device_agent::mdm::{DeviceRegistration, MdmClient, SecretString};
use device_agent::{DeviceDir, HttpTransport};
use openssl::hash::MessageDigest;
use openssl::ocsp::{OcspCertId, OcspCertStatus, OcspRequest, OcspResponse, OcspResponseStatus};
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::{X509, X509Crl, X509StoreContext};
use policy_module::model::{
    CertificateType, HashAlgorithm, KeyAlgorithm, KeyUsage, ProfileSpec, SanKind, SanTemplate,
};
use scep_lab::{Lab, LabOptions};

pub(crate) const PROFILE: &str = "corp-device-cert";

/// Run the lab through the seven steps and the retirement, narrating to `out`, then print the
/// enrollment's trace and the `scep-lab trace` command that prints it again. `kept`: the data
/// directory outlives the run (`--data`), so that command can be run later.
pub(crate) async fn run(out: &mut impl Write, data_dir: &Path, kept: bool) -> Result<()> {
    let lab = Lab::start(LabOptions::new(data_dir)).await?;
    let result = match steps(out, &lab).await {
        Ok(tx) => trace(out, &lab, &tx, kept).await,
        Err(e) => Err(e),
    };
    lab.shutdown().await;
    result
}

/// The enrollment's story as `scep-lab trace` tells it, from this lab's policy module over
/// its admin API, then (the last line) the command that prints it again.
async fn trace(out: &mut impl Write, lab: &Lab, tx: &str, kept: bool) -> Result<()> {
    writeln!(
        out,
        "\ntrace of this enrollment, as `scep-lab trace` prints it:"
    )?;
    let http = scep_lab::tool_client::client(None, lab.data_dir(), Duration::from_secs(30))?;
    let policy =
        crate::trace::Policy::new(&lab.policy_url(), lab.tokens().policy_admin.expose(), http)?;
    let trace = policy
        .transaction(tx)
        .await?
        .with_context(|| format!("the policy module has no trace of transaction {tx}"))?;
    write!(out, "{}", crate::trace::format_trace(&trace))?;
    let data = lab.data_dir().display();
    if kept {
        writeln!(
            out,
            "\nscep-lab trace {tx} --data {data}   (while scep-lab serve --data {data} runs)"
        )?;
    } else {
        writeln!(
            out,
            "\nscep-lab trace {tx}   (against a lab serving this run's data, which is temporary: scep-lab demo --data DIR keeps it)"
        )?;
    }
    Ok(())
}

/// The seven steps and the retirement; returns the enrollment's transactionID.
async fn steps(out: &mut impl Write, lab: &Lab) -> Result<String> {
    writeln!(
        out,
        "scep-lab: NDES + Intune style certificate provisioning, on loopback\n"
    )?;
    writeln!(
        out,
        "  ca-mock        {}   (CRL {}/crl/issuing.crl, OCSP {}/ocsp)",
        lab.ca_url(),
        lab.ca_url(),
        lab.ca_url()
    )?;
    writeln!(out, "  policy-module  {}", lab.policy_url())?;
    writeln!(out, "  ndes-proxy     {}", lab.scep_url())?;
    writeln!(
        out,
        "  root CA SHA-256 (pin this): {}",
        lab.root_fingerprint()
    )?;
    writeln!(out, "  data           {}\n", lab.data_dir().display())?;

    // Step 1: the admin creates a SCEP profile and assigns it.
    let spec = profile_spec(lab);
    let profile = lab
        .policy()
        .create_profile(PROFILE, spec)
        .await
        .context("creating the profile")?;
    writeln!(
        out,
        "[1] admin created SCEP profile {PROFILE:?} v{}: subject {:?}, template {}",
        profile.version, profile.spec.subject_name_format, profile.spec.template
    )?;
    // What the template will change (docs/decisions.md #7), told before any device enrols.
    for w in lab.policy().profile_warnings(&profile.spec).await {
        writeln!(out, "    template differs on {}: {}", w.field, w.effect)?;
    }

    let device_dir = lab.data_dir().join("devices").join("laptop-01");
    let dir = DeviceDir::open(&device_dir)?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let mdm = MdmClient::new(http, &lab.policy_url());
    let admin = SecretString::new(lab.tokens().policy_admin.expose());
    let registration = DeviceRegistration {
        name: "LAB-LAPTOP-01".into(),
        platform: "windows".into(),
        serial_number: Some("SN-0001".into()),
        owner_upn: Some("alice@scep-lab.test".into()),
        ..DeviceRegistration::default()
    };
    let reg = mdm
        .register(&dir, &admin, &registration)
        .await
        .context("registering the device")?;
    let target = policy_module::store::Assignment {
        kind: "device".into(),
        id: reg.device_id.clone(),
    };
    lab.policy()
        .assign(PROFILE, target)
        .await
        .context("assigning the profile")?;
    writeln!(
        out,
        "    device {} registered (credential stored 0600 on the device) and targeted",
        reg.device_id
    )?;

    // Step 2: check-in hands the rendered profile with a fresh challenge to the device.
    let agent = Agent::new(
        DeviceDir::open(&device_dir)?,
        mdm.clone(),
        Arc::new(HttpTransport::new(Duration::from_secs(30))?),
    );
    let (_, credential) = agent.registration()?;
    let checkin = mdm
        .checkin(&reg.device_id, &credential, &Default::default())
        .await?;
    let rendered = checkin
        .profiles
        .first()
        .context("check-in returned no profile")?;
    let subject: Vec<String> = rendered
        .subject
        .iter()
        .map(|a| format!("{}={}", a.attr, a.value))
        .collect();
    writeln!(
        out,
        "[2] check-in: profile {} rendered for the device (subject {}), one-time challenge included (value not shown)",
        rendered.profile_id,
        subject.join(",")
    )?;

    // Steps 3-7: the device agent enrolls; ndes-proxy, policy-module and ca-mock do their parts.
    let summary = agent
        .sync(SyncOptions::default())
        .await
        .context("device sync")?;
    if let Some(e) = summary.errors.first() {
        bail!("enrollment failed: {}", e.message);
    }
    let (_, enrolled) = summary.installed.first().context("nothing installed")?;
    let slot = dir
        .slots()?
        .into_iter()
        .next()
        .context("no certificate slot")?;
    let (key, chain) = slot.installed()?.context("no installed certificate")?;
    let cert = chain.first().context("empty chain")?.clone();
    ensure!(
        key_file_is_private(slot.path())?,
        "device key file is not 0600"
    );
    writeln!(
        out,
        "[3] device generated its key locally (0600 in {}), pinned the CA by the profile's thumbprint, sent PKCSReq (transactionID {})",
        slot.path().display(),
        enrolled.transaction_id
    )?;

    let serial = enrolled.serial_hex.to_lowercase();
    let view = lab.policy().device_view(&reg.device_id).await?;
    let record = view
        .certificates
        .iter()
        .find(|c| same_serial(&c.serial_hex, &serial))
        .context("policy module has no record of the certificate")?;
    writeln!(
        out,
        "[4] ndes-proxy decrypted and verified the request and called VerifyRequest (transaction {})",
        record.transaction_id
    )?;
    writeln!(
        out,
        "[5] policy-module granted it: challenge valid and single use, device targeted, subject/SAN/key as the profile renders them"
    )?;
    let ca_record = lab.ca().get(&serial).await.context("CA record")?;
    writeln!(
        out,
        "[6] ca-mock issued serial {serial} under {}, valid until {}, and recorded it before answering (status {:?})",
        ca_record.cert.template,
        foundation::time::rfc3339(ca_record.cert.not_after),
        ca_record.status
    )?;
    verify_chain(&cert, &chain)?;
    ensure!(
        cert.public_key()?.public_eq(key.pkey()),
        "certificate is not for the device key"
    );
    writeln!(
        out,
        "[7] CertRep SUCCESS: device installed {:?}; chain verifies to the root; Notify recorded it; installed at {}",
        enrolled.subject,
        record
            .installed_at
            .map_or("(pending report)".into(), foundation::time::rfc3339)
    )?;

    // Retirement: revocation through the outbox, visible in the CRL and in OCSP.
    lab.policy()
        .lifecycle(&reg.device_id, policy_module::admin::Lifecycle::Retire)
        .await?;
    writeln!(
        out,
        "\n[+] admin retired the device: revocation queued in the policy module's outbox"
    )?;
    wait_revoked(lab, &serial).await?;
    let issuing = &chain[1];
    let reason = crl_reason(lab, &cert, issuing).await?;
    writeln!(
        out,
        "    CRL {}/crl/issuing.crl lists serial {serial}: reason {reason}",
        lab.ca_url()
    )?;
    let ocsp = ocsp_status(lab, &cert, issuing).await?;
    writeln!(out, "    OCSP {}/ocsp answers: {ocsp}", lab.ca_url())?;
    let after = agent.sync(SyncOptions::default()).await?;
    ensure!(
        after.retired,
        "the device did not carry out the retire command"
    );
    ensure!(
        dir.slots()?.is_empty(),
        "the device kept certificates after retirement"
    );
    writeln!(
        out,
        "    device checked in, carried out the retire command and removed its certificates"
    )?;
    writeln!(out, "\nall steps completed")?;
    Ok(enrolled.transaction_id.clone())
}

fn profile_spec(lab: &Lab) -> ProfileSpec {
    demo_profile(lab.scep_url(), lab.root_fingerprint().into())
}

/// The demo's profile (also what `scep-lab payload` creates): RSA 2048, the device name in the
/// subject and a DNS SAN, client auth, pinned to `root_sha256`.
pub(crate) fn demo_profile(scep_url: String, root_sha256: String) -> ProfileSpec {
    ProfileSpec {
        name: "Corporate device certificate".into(),
        certificate_type: CertificateType::Device,
        subject_name_format: "CN={{DeviceName}},OU=Devices,O=scep-lab".into(),
        subject_alternative_names: vec![SanTemplate {
            kind: SanKind::Dns,
            value: "{{DeviceName}}.devices.scep-lab.test".into(),
        }],
        key_usage: vec![KeyUsage::DigitalSignature, KeyUsage::KeyEncipherment],
        extended_key_usages: vec!["1.3.6.1.5.5.7.3.2".into()],
        key_algorithm: KeyAlgorithm::Rsa,
        key_size: 2048,
        hash_algorithm: HashAlgorithm::Sha256,
        validity_days: 365,
        renewal_threshold_percent: 20,
        template: scep_lab::DEVICE_TEMPLATES[0].into(),
        scep_server_urls: vec![scep_url],
        ca_thumbprint: root_sha256,
        retry_count: 3,
        retry_delay_minutes: 1,
    }
}

fn key_file_is_private(dir: &Path) -> Result<bool> {
    use std::os::unix::fs::PermissionsExt;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_name().to_string_lossy().contains("key") {
            return Ok(entry.metadata()?.permissions().mode() & 0o077 == 0);
        }
    }
    Ok(false)
}

fn verify_chain(cert: &X509, chain: &[X509]) -> Result<()> {
    let mut store = X509StoreBuilder::new()?;
    store.add_cert(chain.last().context("no root in the chain")?.clone())?;
    let store = store.build();
    let mut untrusted = openssl::stack::Stack::new()?;
    for c in &chain[1..] {
        untrusted.push(c.clone())?;
    }
    let mut ctx = X509StoreContext::new()?;
    let ok = ctx.init(&store, cert, &untrusted, |c| c.verify_cert())?;
    ensure!(ok, "chain does not verify: {}", ctx.error());
    Ok(())
}

async fn wait_revoked(lab: &Lab, serial: &str) -> Result<()> {
    for _ in 0..100 {
        if lab.ca().get(serial).await?.status != ca_mock::store::CertStatus::Good {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    bail!("the revocation did not reach the CA within 20 s")
}

async fn crl_reason(lab: &Lab, cert: &X509, issuing: &X509) -> Result<String> {
    let der = reqwest::get(format!("{}/crl/issuing.crl", lab.ca_url()))
        .await?
        .error_for_status()?
        .bytes()
        .await?;
    let crl = X509Crl::from_der(&der)?;
    let issuing_key = issuing.public_key()?;
    ensure!(crl.verify(&issuing_key)?, "CRL signature does not verify");
    let serial = cert.serial_number().to_bn()?;
    let revoked = crl.get_revoked().context("CRL lists nothing")?;
    let entry = revoked
        .iter()
        .find(|r| r.serial_number().to_bn().is_ok_and(|s| s == serial))
        .context("serial not in the CRL")?;
    let reason = entry
        .extension::<openssl::x509::ReasonCode>()?
        .map(|(_, r)| r.get_i64());
    Ok(reason
        .transpose()?
        .map_or("unspecified".into(), reason_name))
}

async fn ocsp_status(lab: &Lab, cert: &X509, issuing: &X509) -> Result<String> {
    let id = OcspCertId::from_cert(MessageDigest::sha1(), cert, issuing)?;
    let mut req = OcspRequest::new()?;
    req.add_id(id)?;
    let body = reqwest::Client::new()
        .post(format!("{}/ocsp", lab.ca_url()))
        .header("content-type", "application/ocsp-request")
        .body(req.to_der()?)
        .send()
        .await?
        .error_for_status()?
        .bytes()
        .await?;
    let resp = OcspResponse::from_der(&body)?;
    ensure!(
        resp.status() == OcspResponseStatus::SUCCESSFUL,
        "OCSP status {:?}",
        resp.status()
    );
    let basic = resp.basic()?;
    let id = OcspCertId::from_cert(MessageDigest::sha1(), cert, issuing)?;
    let status = basic
        .find_status(&id)
        .context("no status for the certificate")?;
    ensure!(
        status.status == OcspCertStatus::REVOKED,
        "OCSP says {:?}",
        status.status
    );
    Ok(format!(
        "revoked, reason {}",
        reason_name(i64::from(status.reason.as_raw()))
    ))
}

/// RFC 5280 §5.3.1 CRLReason names.
fn reason_name(code: i64) -> String {
    let name = match code {
        0 => "unspecified",
        1 => "keyCompromise",
        2 => "cACompromise",
        3 => "affiliationChanged",
        4 => "superseded",
        5 => "cessationOfOperation",
        6 => "certificateHold",
        8 => "removeFromCRL",
        9 => "privilegeWithdrawn",
        10 => "aACompromise",
        _ => return format!("code {code}"),
    };
    name.to_owned()
}

/// Whether two spellings name one serial (the device agent prints what OpenSSL prints; every
/// service stores the canonical spelling).
fn same_serial(a: &str, b: &str) -> bool {
    foundation::serial::canonical(a).is_some_and(|a| Some(a) == foundation::serial::canonical(b))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    #[test]
    fn serials_compare_without_leading_zeros_or_case() {
        assert!(super::same_serial("0A1B2C", "a1b2c"));
        assert!(super::same_serial("7f00", "7F00"));
        assert!(!super::same_serial("0A1B2C", "a1b2c0"));
        assert!(!super::same_serial("10", "1"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_demo_completes_every_step() {
        let dir = tempfile::tempdir().unwrap();
        let mut out = Vec::new();
        super::run(&mut out, dir.path(), true).await.unwrap();
        let text = String::from_utf8(out).unwrap();
        // It ends with the enrollment's trace and the exact command that prints it again.
        let tx = text
            .split("sent PKCSReq (transactionID ")
            .nth(1)
            .and_then(|rest| rest.split(')').next())
            .unwrap();
        let data = dir.path().display();
        assert!(
            text.trim_end().ends_with(&format!(
                "scep-lab trace {tx} --data {data}   (while scep-lab serve --data {data} runs)"
            )),
            "{text}"
        );
        assert!(
            text.contains(&format!("\ntransaction {tx}: device ")),
            "{text}"
        );
        for event in [
            "challenge_issued",
            "request_received",
            "request_granted",
            "issued",
            "revocation_queued",
            "revoked",
        ] {
            assert!(
                text.lines()
                    .any(|l| l.split_whitespace().nth(2) == Some(event)),
                "no {event} in the trace:\n{text}"
            );
        }
        assert!(
            text.contains("outcome: issued, certificate serial "),
            "{text}"
        );
        for step in [
            "[1]",
            "[2]",
            "[3]",
            "[4]",
            "[5]",
            "[6]",
            "[7]",
            "[+]",
            "reason cessationOfOperation",
            "OCSP",
            "all steps completed",
        ] {
            assert!(text.contains(step), "{step} missing:\n{text}");
        }
        for secret in std::fs::read_dir(dir.path().join("secrets")).unwrap() {
            let token = std::fs::read_to_string(secret.unwrap().path()).unwrap();
            assert!(
                !text.contains(token.trim()),
                "a token appeared in the output"
            );
        }
    }
}
