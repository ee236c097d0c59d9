//! The error contract's input classes over the wire (docs/decisions.md #1; issue 15 item 6):
//! every envelope fault gets the one signed answer, an OID past the bounds is refused wherever
//! a peer puts it, and the attributes RFC 8894 types as PrintableString are PrintableString
//! unless `lenient_attribute_strings` is on, which counts each exception in the metrics. The
//! classes are `testkit::fault_classes`, the same tables `scep/tests/error_classes.rs` uses.

use scep::asn1::writer;
use scep::{ContentCipher, FailInfo, oid};
use testkit::fault_classes::{
    EnvelopeParts, csrs_with_oid, envelope_faults, oids_at_bounds, oids_beyond_bounds,
};
use testkit::scep_msg::{self as forge, SignerSpec, attr};

use crate::common::{Server, pki};
use crate::fresh;
use crate::harness::{Outcome, Req, accepted, capture_logs, refused};

const UNIFORM: Outcome = Outcome::Failure(FailInfo::BadMessageCheck);
const BAD: Outcome = Outcome::Http(400);

/// A PKCSReq of a fresh device around any eContent, correctly signed.
fn around(content: &[u8]) -> Req {
    let d = fresh(0, "classes");
    let spec = SignerSpec::pkcs_req(d.tx.transaction_id.as_str());
    Req::Post(forge::message(&spec, &d.signer, &d.key, content))
}

fn sealed(csr: &[u8]) -> Vec<u8> {
    scep::cms::enveloped::seal(csr, &[&pki().ra_enc], ContentCipher::Aes128Cbc).unwrap()
}

#[tokio::test]
async fn every_envelope_fault_is_one_signed_answer() {
    capture_logs();
    let s = Server::start(&["classes-env"]).await;
    let p = pki();
    let csr = fresh(0, "csr").csr(Some("classes-env")).to_der().to_vec();
    for (label, envelope) in envelope_faults(&csr, &p.ra_enc, &p.ra_combined) {
        refused(&s, label, around(&envelope), UNIFORM).await;
    }
    // The envelope's own OIDs past the bounds: malformed, so the same answer.
    for (label, o) in oids_beyond_bounds() {
        let mut parts = EnvelopeParts::honest(&csr, &p.ra_enc);
        parts.cipher_oid = o;
        refused(&s, label, around(&parts.to_der()), UNIFORM).await;
    }
    assert!(s.policy.rejections.lock().unwrap().is_empty());
    // Control: the hand-built envelope, unchanged, enrolls with the same challenge.
    let honest = EnvelopeParts::honest(&csr, &p.ra_enc).to_der();
    accepted(&s, "envelope control", around(&honest)).await;
}

#[tokio::test]
async fn oids_past_the_bounds_are_refused_wherever_a_peer_puts_them() {
    capture_logs();
    let at_bounds: Vec<String> = (0..12).map(|i| format!("classes-oid-{i}")).collect();
    let mut challenges: Vec<&str> = at_bounds.iter().map(String::as_str).collect();
    challenges.push("classes-oid");
    let s = Server::start(&challenges).await;
    let key = &pki().device_keys[0];
    for (oid_label, o) in oids_beyond_bounds() {
        // In the CSR, under the envelope: the uniform answer, before the policy is asked.
        for (place, csr) in csrs_with_oid(key, "classes", "classes-oid", &o) {
            let label = format!("{oid_label} as CSR {place}");
            refused(&s, &label, around(&sealed(&csr)), UNIFORM).await;
        }
        // In the SignedData: undecodable, so no CertRep can be trusted to address: 400.
        let d = fresh(0, "classes");
        let mut spec = SignerSpec::pkcs_req(d.tx.transaction_id.as_str());
        spec.attrs.push(attr(&o, &[writer::utf8_string("x")]));
        let content = sealed(d.csr(Some("classes-oid")).to_der());
        let msg = forge::message(&spec, &d.signer, &d.key, &content);
        let label = format!("{oid_label} as a signed attribute type");
        refused(&s, &label, Req::Post(msg), BAD).await;
    }
    assert!(s.policy.rejections.lock().unwrap().is_empty());
    // At the bounds, every place enrolls.
    let mut next = at_bounds.iter();
    for (oid_label, o) in oids_at_bounds() {
        for (place, _) in csrs_with_oid(key, "classes", "unused", &o) {
            let challenge = next.next().unwrap();
            let csr = csrs_with_oid(key, "classes", challenge, &o)
                .into_iter()
                .find(|(p, _)| *p == place)
                .unwrap()
                .1;
            let label = format!("{oid_label} as CSR {place}");
            accepted(&s, &label, around(&sealed(&csr))).await;
        }
    }
}

/// A PKCSReq from a fresh device whose `which` attribute (of messageType, transactionID,
/// pkiStatus and failInfo) is encoded by `encode`, the others as PrintableString.
fn with_strings(which: &str, encode: &Encode, challenge: &str) -> Req {
    let d = fresh(0, "strings");
    let value = |name: &str, text: &str| {
        if name == which {
            encode(text.as_bytes())
        } else {
            writer::printable_string(text)
        }
    };
    let mut spec = SignerSpec::scep(
        value("messageType", "19"),
        value("transactionID", d.tx.transaction_id.as_str()),
        writer::octet_string(&[7; 16]),
    );
    spec.attrs
        .push(attr(oid::PKI_STATUS, &[value("pkiStatus", "0")]));
    spec.attrs
        .push(attr(oid::FAIL_INFO, &[value("failInfo", "2")]));
    let content = sealed(d.csr(Some(challenge)).to_der());
    Req::Post(forge::message(&spec, &d.signer, &d.key, &content))
}

/// How a test writes an attribute value.
type Encode = dyn Fn(&[u8]) -> Vec<u8>;

const ATTRIBUTES: [&str; 4] = ["messageType", "transactionID", "pkiStatus", "failInfo"];

fn utf8(b: &[u8]) -> Vec<u8> {
    writer::utf8_string(&String::from_utf8_lossy(b))
}

async fn metrics(s: &Server) -> String {
    s.get("/metrics").await.text().await.unwrap()
}

#[tokio::test]
async fn attribute_string_types_are_rfc_8894_unless_the_compat_switch_counts_them() {
    capture_logs();
    let strict = Server::start(&["strings"]).await;
    let lenient_challenges: Vec<String> = (0..8).map(|i| format!("strings-{i}")).collect();
    let refs: Vec<&str> = lenient_challenges.iter().map(String::as_str).collect();
    let lenient = Server::start_with(
        &refs,
        ndes_proxy::Settings {
            attribute_strings: scep::AttributeStrings::AlsoUtf8AndIa5,
            ..Default::default()
        },
    )
    .await;
    let types: [(&str, &Encode); 2] = [("UTF8String", &utf8), ("IA5String", &forge::ia5)];
    let mut next = lenient_challenges.iter();
    for a in ATTRIBUTES {
        for (ty, encode) in types {
            let label = format!("{a} as {ty}");
            // By default: not a PrintableString, so not a pkiMessage of RFC 8894: 400.
            refused(&strict, &label, with_strings(a, encode, "strings"), BAD).await;
            // With the switch: enrolls, and is counted under its attribute and type.
            let challenge = next.next().unwrap();
            accepted(&lenient, &label, with_strings(a, encode, challenge)).await;
            let line = format!(
                "ndes_scep_lenient_attribute_strings_total{{attribute=\"{a}\",string_type=\"{ty}\"}} 1"
            );
            assert!(metrics(&lenient).await.contains(&line), "{label}: {line}");
        }
        // Any other type is refused either way, as are non-PrintableString characters.
        for (label, encode) in [
            (
                "BMPString",
                &(|b: &[u8]| forge::bmp(&String::from_utf8_lossy(b))) as &Encode,
            ),
            ("UTF8String with '_'", &|b: &[u8]| utf8(&[b, b"_"].concat())),
            ("IA5String with '@'", &|b: &[u8]| {
                forge::ia5(&[b, b"@"].concat())
            }),
        ] {
            let label = format!("{a} as {label}");
            refused(&strict, &label, with_strings(a, encode, "strings"), BAD).await;
            refused(&lenient, &label, with_strings(a, encode, "strings-7"), BAD).await;
        }
    }
    assert!(
        !metrics(&strict)
            .await
            .contains("ndes_scep_lenient_attribute_strings_total{"),
        "nothing counted without the switch"
    );
    // Control: PrintableString everywhere enrolls on the strict server.
    accepted(
        &strict,
        "all PrintableString",
        with_strings(
            "",
            &|b: &[u8]| writer::printable_string(&String::from_utf8_lossy(b)),
            "strings",
        ),
    )
    .await;
}
