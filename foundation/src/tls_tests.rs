#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use openssl::asn1::Asn1Time;
use openssl::bn::BigNum;
use openssl::hash::MessageDigest;
use openssl::pkey::Private;
use openssl::rsa::Rsa;
use openssl::x509::extension::{BasicConstraints, SubjectAlternativeName};
use openssl::x509::{X509Builder, X509NameBuilder};

struct Ca {
    cert: X509,
    key: PKey<Private>,
}

fn key() -> PKey<Private> {
    PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap()
}

fn name(cn: &str) -> openssl::x509::X509Name {
    let mut n = X509NameBuilder::new().unwrap();
    n.append_entry_by_text("CN", cn).unwrap();
    n.build()
}

fn builder(cn: &str, serial: u32, key: &PKey<Private>) -> X509Builder {
    let mut b = X509Builder::new().unwrap();
    b.set_version(2).unwrap();
    b.set_serial_number(&BigNum::from_u32(serial).unwrap().to_asn1_integer().unwrap())
        .unwrap();
    b.set_subject_name(&name(cn)).unwrap();
    b.set_pubkey(key).unwrap();
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::days_from_now(2).unwrap())
        .unwrap();
    b
}

fn ca(cn: &str) -> Ca {
    let key = key();
    let mut b = builder(cn, 1, &key);
    b.set_issuer_name(&name(cn)).unwrap();
    b.append_extension(BasicConstraints::new().critical().ca().build().unwrap())
        .unwrap();
    b.sign(&key, MessageDigest::sha256()).unwrap();
    Ca {
        cert: b.build(),
        key,
    }
}

/// A leaf for 127.0.0.1 and localhost: (chain PEM, key PEM).
fn leaf(ca: &Ca, serial: u32) -> (Vec<u8>, Vec<u8>) {
    let key = key();
    let mut b = builder("localhost", serial, &key);
    b.set_issuer_name(ca.cert.subject_name()).unwrap();
    let san = SubjectAlternativeName::new()
        .ip("127.0.0.1")
        .dns("localhost")
        .build(&b.x509v3_context(Some(&ca.cert), None))
        .unwrap();
    b.append_extension(san).unwrap();
    b.sign(&ca.key, MessageDigest::sha256()).unwrap();
    (
        b.build().to_pem().unwrap(),
        key.private_key_to_pem_pkcs8().unwrap(),
    )
}

async fn start(tls: Arc<ServerTls>) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().route(
        "/healthz",
        axum::routing::get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move {
            format!("ok {}", peer.ip())
        }),
    );
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(serve_tls(listener, tls, app, async move {
        let _ = rx.await;
    }));
    (addr, tx)
}

fn pinned(ca: &Ca) -> reqwest::Client {
    ClientTls::pinned(&ca.cert.to_pem().unwrap())
        .unwrap()
        .builder()
        .unwrap()
        .tls_info(true)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// The serial of the certificate the server presented to a fresh connection.
async fn served_serial(client: &reqwest::Client, addr: SocketAddr) -> String {
    let resp = client
        .get(format!("https://127.0.0.1:{}/healthz", addr.port()))
        .send()
        .await
        .unwrap();
    let info = resp.extensions().get::<reqwest::tls::TlsInfo>().unwrap();
    let der = info.peer_certificate().unwrap().to_vec();
    let cert = X509::from_der(&der).unwrap();
    cert.serial_number().to_bn().unwrap().to_string()
}

#[tokio::test]
async fn pinned_client_is_served_over_tls_with_the_peer_address() {
    let ca = ca("test root");
    let (chain, key) = leaf(&ca, 10);
    let (addr, _stop) = start(Arc::new(ServerTls::from_pem(&chain, &key).unwrap())).await;
    let body = pinned(&ca)
        .get(format!("https://127.0.0.1:{}/healthz", addr.port()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(body, "ok 127.0.0.1");
    // The same over the name the certificate carries as DNS.
    let by_name = ClientTls::pinned(&ca.cert.to_pem().unwrap())
        .unwrap()
        .builder()
        .unwrap()
        .resolve("localhost", addr)
        .build()
        .unwrap();
    let body = by_name
        .get(format!("https://localhost:{}/healthz", addr.port()))
        .send()
        .await;
    assert!(body.is_ok(), "{body:?}");
}

#[tokio::test]
async fn unpinned_and_other_ca_clients_and_plain_http_are_refused() {
    let ca = ca("test root");
    let (chain, key) = leaf(&ca, 10);
    let (addr, _stop) = start(Arc::new(ServerTls::from_pem(&chain, &key).unwrap())).await;
    let url = format!("https://127.0.0.1:{}/healthz", addr.port());
    // The system roots do not know the lab's CA.
    let system = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    assert!(system.get(&url).send().await.is_err());
    // Pinned to another CA: refused too.
    let another = self::ca("another root");
    let other = pinned(&another);
    let err = other.get(&url).send().await.unwrap_err();
    assert!(err.is_connect() || err.is_request(), "{err:?}");
    // Plain HTTP to the TLS listener is never served.
    let plain = system
        .get(format!("http://127.0.0.1:{}/healthz", addr.port()))
        .send()
        .await;
    assert!(plain.is_err() || !plain.unwrap().status().is_success());
    // And the server still serves the pinned client afterwards.
    assert_eq!(served_serial(&pinned(&ca), addr).await, "10");
}

#[tokio::test]
async fn reload_serves_the_new_certificate_from_the_next_handshake() {
    let ca = ca("test root");
    let (chain, key) = leaf(&ca, 10);
    let tls = Arc::new(ServerTls::from_pem(&chain, &key).unwrap());
    let (addr, _stop) = start(tls.clone()).await;
    assert_eq!(served_serial(&pinned(&ca), addr).await, "10");
    let (chain2, key2) = leaf(&ca, 11);
    // A key that is not the certificate's is refused and the old pair stays.
    assert!(matches!(
        tls.reload(&chain2, &key),
        Err(TlsError::KeyMismatch)
    ));
    assert_eq!(served_serial(&pinned(&ca), addr).await, "10");
    tls.reload(&chain2, &key2).unwrap();
    assert_eq!(served_serial(&pinned(&ca), addr).await, "11");
}

#[test]
fn bad_pem_is_refused_without_echoing_the_key() {
    assert!(matches!(
        ServerTls::from_pem(b"nope", b"nope"),
        Err(TlsError::Certificate)
    ));
    let ca = ca("test root");
    let (chain, _) = leaf(&ca, 10);
    let err = ServerTls::from_pem(&chain, b"-----BEGIN PRIVATE KEY-----\nc2VjcmV0\n").unwrap_err();
    assert!(matches!(err, TlsError::Key));
    assert!(!err.to_string().contains("c2VjcmV0"));
    assert!(ClientTls::pinned(b"").is_err());
    let (chain, key) = leaf(&ca, 12);
    let id = ClientTls::pinned(&ca.cert.to_pem().unwrap())
        .unwrap()
        .with_identity(&chain, &key)
        .unwrap();
    assert!(!format!("{id:?}").contains("PRIVATE"));
}

/// A mutual-TLS server whose `/whoami` answers the verified peer's name, or "none".
async fn start_mutual(server_ca: &Ca, client_ca: &Ca) -> SocketAddr {
    let (chain, key) = leaf(server_ca, 20);
    let tls = ServerTls::verify_clients(&chain, &key, &client_ca.cert.to_pem().unwrap()).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().route(
        "/whoami",
        axum::routing::get(|peer: Option<axum::Extension<PeerIdentity>>| async move {
            peer.map_or("none".to_owned(), |p| {
                format!("{} {}", p.name, p.sha256_hex.len())
            })
        }),
    );
    tokio::spawn(serve_tls(
        listener,
        Arc::new(tls),
        app,
        std::future::pending(),
    ));
    addr
}

#[tokio::test]
async fn mutual_tls_passes_the_verified_peer_and_refuses_another_ca_at_the_handshake() {
    let ca = ca("test root");
    let addr = start_mutual(&ca, &ca).await;
    let url = format!("https://127.0.0.1:{}/whoami", addr.port());
    let root = ca.cert.to_pem().unwrap();
    let client = |id: Option<(Vec<u8>, Vec<u8>)>| {
        let mut c = ClientTls::pinned(&root).unwrap();
        if let Some((chain, key)) = id {
            c = c.with_identity(&chain, &key).unwrap();
        }
        c.builder()
            .unwrap()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap()
    };
    // A certificate from the client CA: its name and SHA-256 reach the handler.
    let mine = client(Some(leaf(&ca, 30)));
    let body = mine.get(&url).send().await.unwrap().text().await.unwrap();
    assert_eq!(body, "localhost 64");
    // No certificate: still served (optional per handshake), without an identity.
    let body = client(None).get(&url).send().await.unwrap();
    assert_eq!(body.text().await.unwrap(), "none");
    // A certificate from another CA: the handshake fails, no request is served.
    let other = self::ca("another root");
    let err = client(Some(leaf(&other, 31))).get(&url).send().await;
    assert!(err.is_err(), "{err:?}");
}
