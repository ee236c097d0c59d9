//! Plain mode end to end over 127.0.0.1: one static challenge instead of the policy module,
//! and a real ca-mock (SQLite store) called in process through the CA trait.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use ca_mock::InProcessCa;
use ca_mock::store::ListFilter;
use common::{Device, failure, issued, ra_identity};
use foundation::SystemClock;
use foundation::secret::Secret;
use ndes_proxy::{AppState, Settings, StaticChallenge};
use scep::client::CertRep;
use scep::{FailInfo, RequestBody};

const TEMPLATE: &str = "IPSECIntermediateOffline";

struct Plain {
    url: String,
    ca: Arc<ca_mock::CertificateAuthority>,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Plain {
    async fn start(challenge: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let source = ca_mock::InitSource::Generate {
            key: ca_mock::keys::KeySpec::Rsa2048,
            root_cn: "Plain Root".into(),
            issuing_cn: "Plain Issuing".into(),
            org: None,
            root_days: 30,
            issuing_days: 20,
        };
        ca_mock::init(&dir.path().join("ca"), &source, None).unwrap();
        let material = ca_mock::CaMaterial::load(&dir.path().join("ca"), None).unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("ca.db").display());
        let store = ca_mock::store::SqlStore::connect(&url).await.unwrap();
        let ca = Arc::new(
            ca_mock::CertificateAuthority::new(
                material,
                ca_mock::template::Template::builtin().unwrap(),
                Arc::new(store),
                Arc::new(SystemClock),
                ca_mock::CaSettings::new("http://127.0.0.1:1"),
            )
            .unwrap(),
        );
        let state = AppState::new(
            ra_identity(),
            Arc::new(StaticChallenge::new(Secret::new(challenge), TEMPLATE, 30)),
            Arc::new(InProcessCa::new(
                ca.clone(),
                "ndes-proxy",
                [TEMPLATE.to_owned()],
                ca_mock::IssueRight::PlainMode,
            )),
            Settings::default(),
            Arc::new(SystemClock),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "http://{}/certsrv/mscep/mscep.dll?operation=PKIOperation",
            listener.local_addr().unwrap()
        );
        tokio::spawn(ndes_proxy::serve(listener, state, std::future::pending()));
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(20))
            .build()
            .unwrap();
        Self {
            url,
            ca,
            http,
            _dir: dir,
        }
    }

    async fn send(&self, d: &Device, body: &RequestBody) -> CertRep {
        let resp = self
            .http
            .post(&self.url)
            .body(d.request(body))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        // `open` verifies the RA's signature: every answer below is a signed CertRep.
        d.open(&resp.bytes().await.unwrap())
    }

    async fn recorded(&self) -> usize {
        let all = ListFilter {
            request_id: None,
            after: None,
            limit: 1000,
        };
        self.ca.list(&all).await.unwrap().len()
    }
}

#[tokio::test]
async fn a_wrong_or_missing_challenge_gets_a_signed_failure_and_nothing_is_issued() {
    let s = Plain::start("fleet-password-1").await;
    let d = Device::new(0, "plain-wrong");
    for given in [Some("fleet-password-2"), Some("fleet-password-"), None] {
        let rep = s.send(&d, &RequestBody::PkcsReq(d.csr(given))).await;
        assert_eq!(failure(rep), FailInfo::BadRequest, "{given:?}");
    }
    assert_eq!(
        s.recorded().await,
        0,
        "a refused request reaches no CA record"
    );
}

#[tokio::test]
async fn the_right_challenge_issues_the_csr_subject_from_the_ca_and_a_retransmission_repeats_it() {
    let s = Plain::start("fleet-password-1").await;
    let d = Device::new(1, "plain-device-7");
    let csr = d.csr(Some("fleet-password-1"));
    let cert = issued(s.send(&d, &RequestBody::PkcsReq(csr.clone())).await);
    let issuing = &s.ca.material().issuing;
    assert!(cert.verify(&issuing.public_key().unwrap()).unwrap());
    assert!(cert.public_key().unwrap().public_eq(&d.key));
    let cn = cert
        .subject_name()
        .entries_by_nid(openssl::nid::Nid::COMMONNAME)
        .next()
        .unwrap()
        .data()
        .to_string()
        .unwrap();
    assert_eq!(cn, "plain-device-7");
    // The same transactionID and CSR: the recorded certificate, not a second one.
    let again = issued(s.send(&d, &RequestBody::PkcsReq(csr)).await);
    assert_eq!(again.to_der().unwrap(), cert.to_der().unwrap());
    assert_eq!(s.recorded().await, 1);
}
