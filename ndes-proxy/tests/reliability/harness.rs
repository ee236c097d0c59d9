//! The catalogue's global invariants in one place: each refused request gets an answer within
//! a generous hang guard, its outcome is read without trusting it (any transactionID or nonce),
//! and the server's state (CA issuance, challenge reservations, notifications, pending rows) is
//! the same before and after. Log output of the whole test binary is captured so one test can
//! assert that no secret ever reached it.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use scep::cms::signed::SignedData;
use scep::{FailInfo, PkiStatus, oid};

use crate::common::{Reservation, Server};

/// Far above any honest answer (milliseconds): only a hang or a pathological parse trips it.
pub const HANG_GUARD: Duration = Duration::from_secs(60);

/// What a request got back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A non-200 HTTP status (no CertRep).
    Http(u16),
    /// CertRep SUCCESS.
    Success,
    /// CertRep PENDING.
    Pending,
    /// CertRep FAILURE with this failInfo.
    Failure(FailInfo),
}

/// How to send a request.
pub enum Req {
    /// POST PKIOperation with `application/x-pki-message`.
    Post(Vec<u8>),
    /// POST PKIOperation with this Content-Type header (or none).
    PostAs(Option<&'static str>, Vec<u8>),
    /// GET of a path and query sent as written.
    Get(String),
    /// Another method on a PKIOperation URL.
    Method(reqwest::Method),
}

/// Send `req` and classify the answer.
pub async fn send(s: &Server, req: Req) -> Outcome {
    let pki = format!("{}/scep?operation=PKIOperation", s.url);
    let builder = match req {
        Req::Post(body) => s
            .http
            .post(&pki)
            .header("content-type", "application/x-pki-message")
            .body(body),
        Req::PostAs(ct, body) => {
            let b = s.http.post(&pki).body(body);
            match ct {
                Some(ct) => b.header("content-type", ct),
                None => b,
            }
        }
        Req::Get(target) => s
            .http
            .get(reqwest::Url::parse(&format!("{}{target}", s.url)).unwrap()),
        Req::Method(m) => s.http.request(m, &pki).body(vec![0x30, 0x00]),
    };
    let resp = tokio::time::timeout(HANG_GUARD, builder.send())
        .await
        .expect("answered before the hang guard")
        .unwrap();
    let status = resp.status().as_u16();
    let body = resp.bytes().await.unwrap();
    if status != 200 {
        assert!(
            !String::from_utf8_lossy(&body).contains("rror:"),
            "no internal text in a {status} body: {body:?}"
        );
        return Outcome::Http(status);
    }
    classify(&body)
}

/// Read pkiStatus and failInfo of a CertRep without checking transactionID or nonces (the
/// catalogue sends odd ones); the RA's signature is still verified.
pub fn classify(reply: &[u8]) -> Outcome {
    let sd = SignedData::from_content_info(reply).expect("a CertRep is a SignedData");
    let si = &sd.signer_infos[0];
    let ra = crate::common::pki().ra_sign.public_key().unwrap();
    si.verify(
        oid::DATA,
        sd.content.as_deref().unwrap_or_default(),
        &ra,
        &scep::AlgorithmPolicy::default(),
    )
    .expect("CertRep signed by the RA");
    let text = |o: &[u8], name| {
        si.attribute(o, name)
            .unwrap()
            .map(|t| String::from_utf8(t.content.to_vec()).unwrap())
    };
    match PkiStatus::from_wire(&text(oid::PKI_STATUS, "pkiStatus").unwrap()).unwrap() {
        PkiStatus::Success => Outcome::Success,
        PkiStatus::Pending => Outcome::Pending,
        PkiStatus::Failure => Outcome::Failure(
            FailInfo::from_wire(&text(oid::FAIL_INFO, "failInfo").unwrap()).unwrap(),
        ),
    }
}

/// Everything a refusal must leave as it was.
#[derive(Debug, PartialEq, Eq)]
pub struct Snapshot {
    issued: BTreeMap<String, Vec<u8>>,
    challenges: BTreeMap<String, Reservation>,
    notifications: usize,
    pending: usize,
}

impl Snapshot {
    pub async fn of(s: &Server) -> Self {
        let issued =
            s.ca.issued
                .lock()
                .unwrap()
                .iter()
                .map(|(k, (_, c))| (k.clone(), c.der.clone()))
                .collect();
        let challenges = s
            .policy
            .challenges
            .lock()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let notifications = s.policy.notifications.lock().unwrap().len();
        let pending = s.state.pending().list(None, 10_000).await.unwrap().len();
        Self {
            issued,
            challenges,
            notifications,
            pending,
        }
    }

    /// Certificates issued so far.
    pub fn issued(&self) -> usize {
        self.issued.len()
    }
}

/// Send a request that must be refused with `want`, and check that nothing changed.
pub async fn refused(s: &Server, row: &str, req: Req, want: Outcome) {
    let before = Snapshot::of(s).await;
    let got = send(s, req).await;
    assert_eq!(got, want, "{row}");
    assert_eq!(Snapshot::of(s).await, before, "{row}: state changed");
}

/// Send a request that must succeed and issue exactly one new certificate.
pub async fn accepted(s: &Server, row: &str, req: Req) {
    let before = Snapshot::of(s).await.issued();
    assert_eq!(send(s, req).await, Outcome::Success, "{row}");
    assert_eq!(Snapshot::of(s).await.issued(), before + 1, "{row}");
}

/// Everything this test binary logs (all levels of ndes-proxy, info elsewhere).
pub fn captured_logs() -> String {
    String::from_utf8_lossy(&logs().lock().unwrap()).into_owned()
}

/// Install the capturing subscriber (once per binary; every test calls it first).
pub fn capture_logs() {
    let _ = logs();
}

fn logs() -> &'static Mutex<Vec<u8>> {
    static LOGS: OnceLock<&'static Mutex<Vec<u8>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buf: &'static Mutex<Vec<u8>> = Box::leak(Box::new(Mutex::new(Vec::new())));
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(
                "info,ndes_proxy=trace,scep=trace,policy_module=trace",
            ))
            .with_ansi(false)
            .with_writer(move || LogWriter(buf))
            .try_init();
        buf
    })
}

struct LogWriter(&'static Mutex<Vec<u8>>);

impl Write for LogWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
