//! Issue 17's "done when" for item 1: `scep-lab serve --config` (the binary) on PostgreSQL
//! with an approval template, an EC CA and a scheduled rollover. From one server URL the lab
//! creates its three databases; a SCEP client with an mscep_admin challenge is answered
//! PENDING, an administrator approves through ndes-proxy's approval API with the token from
//! `<data>/secrets/`, and the client's CertPoll gets its certificate; GetNextCACert announces
//! the rollover's next CA. A flag given beside the file wins over it, relative paths in the
//! file resolve against the file's directory, the file's JSON log format applies, and the
//! URL's password never reaches the log.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use device_agent::ca::{CaInfo, Thumbprint, discover};
use device_agent::{HttpTransport, ScepRequest, ScepTransport};
use openssl::pkey::{PKey, Private};
use openssl::x509::{X509, X509Name};
use scep::client::{CertRep, Transaction, build_request, open_cert_rep, self_signed_certificate};
use scep::cms::enveloped::DecryptionKey;
use scep::cms::signed::SignerIdentity;
use scep::{AlgorithmPolicy, Nonce, RequestBody, TransactionId};

const BIN: &str = env!("CARGO_BIN_EXE_scep-lab");
const TEMPLATE: &str = "IPSECIntermediateOffline";
const PASSWORD: &str = "url-password-never-logged";

/// The serve process, killed if the test fails before it stops it.
struct Serve(Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A bare SCEP client: discovery pinned to the root, then signed requests under one identity.
struct Client {
    url: String,
    transport: HttpTransport,
    ca: CaInfo,
    key: PKey<Private>,
    cert: X509,
    tx: TransactionId,
}

impl Client {
    async fn send(&self, body: &RequestBody) -> CertRep {
        let tx = Transaction {
            transaction_id: self.tx.clone(),
            sender_nonce: Nonce::random().unwrap(),
        };
        let signer = SignerIdentity {
            cert: &self.cert,
            key: &self.key,
        };
        let der =
            build_request(body, signer, &[&self.ca.recipient], &tx, &self.ca.options).unwrap();
        let resp = ScepTransport::send(
            &self.transport,
            &self.url,
            &ScepRequest::PkiOperationPost(der),
        )
        .await
        .unwrap();
        assert_eq!(resp.status, 200);
        let key = DecryptionKey {
            cert: &self.cert,
            key: &self.key,
        };
        open_cert_rep(
            &resp.body,
            &tx,
            &self.ca.reply_signers,
            key,
            &AlgorithmPolicy::default(),
        )
        .unwrap()
    }
}

/// The certificates a GetNextCACert answer carries: a signed message (signature not checked
/// here) whose content is a degenerate certs-only SignedData.
fn next_cas(der: &[u8]) -> Vec<X509> {
    use openssl::pkcs7::{Pkcs7, Pkcs7Flags};
    let outer = Pkcs7::from_der(der).unwrap();
    let store = openssl::x509::store::X509StoreBuilder::new()
        .unwrap()
        .build();
    let mut inner = Vec::new();
    outer
        .verify(
            &openssl::stack::Stack::new().unwrap(),
            &store,
            None,
            Some(&mut inner),
            Pkcs7Flags::NOVERIFY,
        )
        .unwrap();
    let inner = Pkcs7::from_der(&inner).unwrap();
    let certs = inner.signed().unwrap().certificates().unwrap();
    certs.iter().map(ToOwned::to_owned).collect()
}

fn ec_key() -> PKey<Private> {
    let group = openssl::ec::EcGroup::from_curve_name(openssl::nid::Nid::X9_62_PRIME256V1).unwrap();
    PKey::from_ec_key(openssl::ec::EcKey::generate(&group).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_config_on_postgres_enrolls_through_pending_and_approval() {
    let Some(pg) = testkit::pg::PgCluster::start().unwrap() else {
        return; // skipped (message printed); under CI=true start() errs instead
    };
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("conf");
    std::fs::create_dir(&conf).unwrap();
    // Trust authentication ignores the password: it is there to be kept out of the log.
    let url = pg
        .url()
        .replace("postgres@", &format!("postgres:{PASSWORD}@"));
    std::fs::write(conf.join("pg.url"), format!("{url}\n")).unwrap();
    std::fs::write(conf.join("names.json"), policy_module::name_policy::SAMPLE).unwrap();
    let ports: Vec<u16> = (0..5).map(|_| testkit::free_port().unwrap()).collect();
    let switch_at = foundation::time::rfc3339(foundation::clock::unix_now() + 86_400);
    let config = format!(
        r#"data_dir = "data"
approval_templates = ["{TEMPLATE}"]
[store]
postgres_url_file = "pg.url"
database_prefix = "cfg_lab"
[listen]
ca_port = {}
policy_port = {}
scep_port = {}
console_port = {}
[ca]
key_type = "ec-p256"
root_common_name = "Config Test Root"
[ca.rollover]
switch_at = "{switch_at}"
[name_policies]
{TEMPLATE} = "names.json"
[policy]
password_max = 3
[log]
format = "json"
level = "info"
"#,
        ports[0], ports[1], ports[2], ports[3]
    );
    std::fs::write(conf.join("lab.toml"), config).unwrap();
    let stderr_path = dir.path().join("serve.log");
    let stderr = std::fs::File::create(&stderr_path).unwrap();
    // Run from elsewhere: the file's relative paths are the file's directory's.
    let mut serve = Serve(
        Command::new(BIN)
            .current_dir(dir.path())
            .args(["serve", "--config", "conf/lab.toml", "--console-port"])
            .arg(ports[4].to_string())
            .env_remove("RUST_LOG")
            .env_remove("SCEP_LAB_DATA")
            .env_remove("SCEP_LAB_LOG_FORMAT")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap(),
    );
    let stdout = serve.0.stdout.take().unwrap();
    let banner = tokio::task::spawn_blocking(move || {
        let mut lines = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let done = line.starts_with("serving");
            lines.push(line);
            if done {
                break;
            }
        }
        lines.join("\n")
    });
    let banner = tokio::time::timeout(Duration::from_secs(180), banner)
        .await
        .expect("scep-lab serve did not start")
        .unwrap();
    let log = || std::fs::read_to_string(&stderr_path).unwrap();
    assert!(banner.contains("serving"), "{banner}\n{}", log());
    let scep = ports[2];
    for want in [
        format!("ca-mock        http://127.0.0.1:{}", ports[0]),
        format!("ndes-proxy     http://127.0.0.1:{scep}/"),
        format!("console        http://127.0.0.1:{}", ports[4]),
    ] {
        assert!(banner.contains(&want), "{want:?} missing:\n{banner}");
    }
    assert!(
        !banner.contains(&format!(":{}", ports[3])),
        "the --console-port flag wins over the file"
    );
    let root_sha256 = banner
        .lines()
        .find_map(|l| l.strip_prefix("root CA SHA-256 (pin this): "))
        .unwrap()
        .trim()
        .to_owned();

    // The lab created its databases on the server, and its CA as configured, under conf/data.
    let dbs = pg
        .psql(
            "postgres",
            "SELECT datname FROM pg_database WHERE datname LIKE 'cfg_lab%' ORDER BY 1",
        )
        .unwrap();
    assert_eq!(
        dbs.lines().collect::<Vec<_>>(),
        ["cfg_lab_ca", "cfg_lab_pending", "cfg_lab_policy"]
    );
    let data = conf.join("data");
    let root = X509::from_pem(&std::fs::read(data.join("ca/root.crt.pem")).unwrap()).unwrap();
    assert_eq!(root.public_key().unwrap().id(), openssl::pkey::Id::EC);
    let cn = root
        .subject_name()
        .entries_by_nid(openssl::nid::Nid::COMMONNAME)
        .next()
        .unwrap()
        .data();
    assert_eq!(cn.to_string().unwrap(), "Config Test Root");

    // An mscep_admin challenge; the request under the approval template waits.
    let http = reqwest::Client::new();
    let secret = |name: &str| {
        std::fs::read_to_string(data.join("secrets").join(name))
            .unwrap()
            .trim()
            .to_owned()
    };
    let page: serde_json::Value = http
        .get(format!(
            "http://127.0.0.1:{scep}/certsrv/mscep_admin/?format=json"
        ))
        .bearer_auth(secret("mscep-admin.token"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let password = page["challenge"].as_str().unwrap().to_owned();
    let scep_url = format!("http://127.0.0.1:{scep}/certsrv/mscep/mscep.dll");
    let transport = HttpTransport::new(Duration::from_secs(30)).unwrap();
    let pin = Thumbprint::parse(&root_sha256).unwrap();
    let ca = discover(&transport, &scep_url, Some(&pin)).await.unwrap();
    let mut name = X509Name::builder().unwrap();
    name.append_entry_by_text("CN", "config-client-01").unwrap();
    let name = name.build();
    let key = ec_key();
    let csr = scep::csr::build(
        &key,
        &name,
        None,
        Some(&scep::csr::ChallengePassword::new(&password)),
        openssl::hash::MessageDigest::sha256(),
    )
    .unwrap();
    let now = foundation::clock::unix_now();
    let id_key = testkit::pki::rsa_key(2048);
    let issuing = X509::from_pem(&std::fs::read(data.join("ca/issuing.crt.pem")).unwrap()).unwrap();
    let client = Client {
        url: scep_url,
        transport,
        cert: self_signed_certificate(&id_key, &name, now - 3600, now + 86_400).unwrap(),
        key: id_key,
        ca,
        tx: TransactionId::new("C0FF1CE0C0FF1CE0C0FF1CE0C0FF1CE0C0FF1CE0").unwrap(),
    };
    let csr = scep::csr::Csr::from_der(&csr).unwrap();
    let rep = client.send(&RequestBody::PkcsReq(csr)).await;
    assert!(matches!(rep, CertRep::Pending), "{rep:?}");
    let poll = RequestBody::CertPoll(scep::IssuerAndSubject::new(&issuing, &name).unwrap());
    let rep = client.send(&poll).await;
    assert!(matches!(rep, CertRep::Pending), "{rep:?}");

    // The administrator approves it with the token the lab wrote.
    let admin = secret("ndes-admin.token");
    let base = format!("http://127.0.0.1:{scep}/admin/v1/pending");
    let list: Vec<serde_json::Value> = http
        .get(format!("{base}?state=awaiting_approval"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["request_id"], client.tx.as_str());
    http.post(format!("{base}/{}/approve", client.tx.as_str()))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap();
    let cert = match client.send(&poll).await {
        CertRep::Success(p) => p.certificates.into_iter().next().unwrap(),
        other => panic!("expected SUCCESS after approval, got {other:?}\n{}", log()),
    };
    assert!(cert.public_key().unwrap().public_eq(&key), "the CSR's key");

    // [ca.rollover]: GetNextCACert announces the next issuing CA, signed (by the RA), under
    // the same root and of the configured key type.
    let next = http
        .get(format!(
            "http://127.0.0.1:{scep}/certsrv/mscep/mscep.dll?operation=GetNextCACert"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(next.status(), 200);
    assert_eq!(
        next.headers()["content-type"],
        scep::http::CONTENT_TYPE_NEXT_CA_CERT
    );
    let announced = next_cas(&next.bytes().await.unwrap());
    let root_key = root.public_key().unwrap();
    let der = |c: &X509| c.to_der().unwrap();
    let next_ca = announced
        .iter()
        .find(|c| {
            c.verify(&root_key).unwrap_or(false) && der(c) != der(&issuing) && der(c) != der(&root)
        })
        .unwrap_or_else(|| panic!("no next CA among {} certificates", announced.len()));
    assert_eq!(next_ca.public_key().unwrap().id(), openssl::pkey::Id::EC);

    // The file's JSON logs, without the URL's password.
    let log = log();
    let first = log.lines().next().expect("an info line at least");
    assert!(
        serde_json::from_str::<serde_json::Value>(first).is_ok(),
        "{first}"
    );
    assert!(!log.contains(PASSWORD), "{log}");
    drop(serve);
}

/// `./lab.sh serve --postgres`'s script: serve runs on a throwaway cluster (no SQLite file in
/// the data directory), and Ctrl-C (SIGINT to the foreground process group, as a terminal sends
/// it) stops serve and the cluster and removes the cluster's directory.
#[test]
fn throwaway_postgres_script_serves_the_lab_and_is_removed_on_ctrl_c() {
    use std::os::unix::process::CommandExt;
    let has_pg = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| d.flatten().any(|e| e.path().join("bin/initdb").exists()))
        .unwrap_or(false);
    if !has_pg {
        testkit::unavailable("PostgreSQL binaries under /usr/lib/postgresql");
        return;
    }
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/throwaway-postgres.sh");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let ports: Vec<String> = (0..4)
        .map(|_| testkit::free_port().unwrap().to_string())
        .collect();
    let stderr_path = dir.path().join("stderr.log");
    let mut child = Serve(
        Command::new("bash")
            .arg(&script)
            .arg(BIN)
            .args(["serve", "--data"])
            .arg(&data)
            .arg("--ports")
            .args(&ports[..3])
            .args(["--console-port", &ports[3]])
            .env("TMPDIR", dir.path())
            .env("RUST_LOG", "error")
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr_path).unwrap())
            .spawn()
            .unwrap(),
    );
    let stdout = child.0.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if line.starts_with("serving") {
                let _ = tx.send(());
                break;
            }
        }
    });
    let stderr = || std::fs::read_to_string(&stderr_path).unwrap_or_default();
    assert!(
        rx.recv_timeout(Duration::from_secs(180)).is_ok(),
        "serve did not start:\n{}",
        stderr()
    );
    let log = stderr();
    let cluster = log
        .lines()
        .find_map(|l| l.strip_prefix("throwaway PostgreSQL on "))
        .and_then(|l| l.split(" in ").nth(1))
        .and_then(|l| l.strip_suffix(" (removed on exit)"))
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| panic!("no cluster line:\n{log}"));
    assert!(cluster.join("data/PG_VERSION").exists(), "{log}");
    assert!(data.join("ca/root.crt.pem").exists());
    for sqlite in ["ca/ca.db", "policy/policy.db", "ndes/pending.db"] {
        assert!(!data.join(sqlite).exists(), "{sqlite}: not on PostgreSQL");
    }

    let group = format!("-{}", child.0.id());
    let interrupt = Command::new("kill")
        .args(["-INT", "--", &group])
        .status()
        .unwrap();
    assert!(interrupt.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the script did not stop on SIGINT:\n{}",
            stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        !cluster.exists(),
        "cluster left behind ({status}):\n{}",
        stderr()
    );
}

/// `scep-lab sample-config` prints the committed sample, and `serve --config` runs it: its data
/// directory lands beside the file, and the ports, `--log-format json` and `RUST_LOG` given
/// beside it win over the file's ports, `format = "text"` and `level = "warn"`.
#[test]
fn the_sample_config_is_printed_and_serves_with_flags_over_it() {
    let printed = Command::new(BIN).arg("sample-config").output().unwrap();
    assert!(printed.status.success());
    let committed =
        std::fs::read(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("lab.sample.toml"))
            .unwrap();
    assert_eq!(printed.stdout, committed);
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("etc")).unwrap();
    std::fs::write(dir.path().join("etc/lab.toml"), &printed.stdout).unwrap();
    let ports: Vec<String> = (0..4)
        .map(|_| testkit::free_port().unwrap().to_string())
        .collect();
    let mut serve = Serve(
        Command::new(BIN)
            .current_dir(dir.path())
            .args(["serve", "--config", "etc/lab.toml", "--ports"])
            .args(&ports[..3])
            .args(["--console-port", &ports[3], "--log-format", "json"])
            .env_remove("SCEP_LAB_DATA")
            .env("RUST_LOG", "debug")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(dir.path().join("stderr.log")).unwrap())
            .spawn()
            .unwrap(),
    );
    let stdout = serve.0.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let done = line.starts_with("serving");
            lines.push(line);
            if done {
                break;
            }
        }
        let _ = tx.send(lines.join("\n"));
    });
    let banner = rx.recv_timeout(Duration::from_secs(180)).unwrap();
    assert!(banner.contains("serving"), "{banner}");
    for (name, port) in [("ca-mock", &ports[0]), ("console", &ports[3])] {
        assert!(
            banner
                .lines()
                .any(|l| l.starts_with(name) && l.contains(&format!("127.0.0.1:{port}"))),
            "{name} on {port}:\n{banner}"
        );
    }
    assert!(!banner.contains(":8180"), "the file's port lost: {banner}");
    let data = dir.path().join("etc/scep-lab-data");
    assert!(data.join("secrets/mscep-admin.token").exists());
    assert!(data.join("ca/ca.db").exists(), "SQLite by default");
    let log = std::fs::read_to_string(dir.path().join("stderr.log")).unwrap();
    let first = log
        .lines()
        .next()
        .expect("RUST_LOG=debug: at least the start line");
    let line: serde_json::Value = serde_json::from_str(first).expect("--log-format json wins");
    assert_eq!(line["level"], "DEBUG", "RUST_LOG wins: {first}");
}
