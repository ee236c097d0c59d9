//! Each deployment shape of the README's "Deployments" section, run by its own commands.
//!
//! A shape's ```sh block is read from the README and run line by line with `bash`, in a fresh
//! directory holding `lab.sh` and `scripts/`, where `target/release` is the build under test
//! (and lab.sh runs it through `SCEP_LAB_BIN` instead of building it again). The README's
//! `cargo build` line is `.ci/run`'s, not repeated here. Lines
//! that start a service (`... serve ...`) run in the background, as in their own terminals,
//! and the next line waits until that service answers. Then a plain SCEP client takes a
//! one-time password from every ndes-proxy's mscep_admin page and enrolls with it. The ports
//! are the README's own, so the shapes run one after another.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use scep::client::CertRep;
use scep_lab_tests::processes::binaries;
use scep_lab_tests::{RawScep, rsa_key};

/// One shape at a time: they share the README's ports.
static PORTS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn readme() -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    std::fs::read_to_string(root.join("README.md")).unwrap()
}

/// The commands of the first ```sh block under `heading`, continuation lines joined.
fn block_under(readme: &str, heading: &str) -> Vec<String> {
    let start = readme
        .find(&format!("\n{heading}\n"))
        .unwrap_or_else(|| panic!("the README has no {heading:?}"));
    let rest = &readme[start..];
    let open = rest.find("```sh\n").expect("an sh block") + "```sh\n".len();
    let close = open + rest[open..].find("```").unwrap();
    let mut commands: Vec<String> = Vec::new();
    let mut pending = String::new();
    for line in rest[open..close].lines() {
        let line = line.trim_end();
        if let Some(head) = line.strip_suffix('\\') {
            pending.push_str(head);
            continue;
        }
        pending.push_str(line);
        let command = pending.trim().to_owned();
        pending.clear();
        if !command.is_empty() && !command.starts_with('#') {
            commands.push(command);
        }
    }
    commands
}

/// Background services, stopped (and their logs printed, if the test failed) on drop.
struct Services {
    dir: PathBuf,
    children: Vec<(String, Child)>,
}

impl Drop for Services {
    fn drop(&mut self) {
        // Each service line runs in its own process group (lab.sh's throwaway PostgreSQL and
        // the lab under it): SIGTERM lets them clean up, SIGKILL after a bounded wait.
        for (_, child) in self.children.iter_mut().rev() {
            signal_group(child.id(), "-TERM");
            let deadline = Instant::now() + Duration::from_secs(20);
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
            signal_group(child.id(), "-KILL");
            let _ = child.wait();
        }
        if std::thread::panicking() {
            for (i, (command, _)) in self.children.iter().enumerate() {
                let log = std::fs::read_to_string(self.dir.join(format!("service-{i}.log")))
                    .unwrap_or_default();
                eprintln!("--- {command}\n{log}");
            }
        }
    }
}

fn signal_group(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .args([signal, "--", &format!("-{pid}")])
        .stderr(Stdio::null())
        .status();
}

/// A directory where the README's paths mean the build under test.
fn workdir() -> tempfile::TempDir {
    let bins = binaries().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    std::fs::copy(root.join("lab.sh"), dir.path().join("lab.sh")).unwrap();
    std::fs::create_dir(dir.path().join("scripts")).unwrap();
    for script in std::fs::read_dir(root.join("scripts")).unwrap() {
        let script = script.unwrap().path();
        if script.is_file() {
            std::fs::copy(
                &script,
                dir.path().join("scripts").join(script.file_name().unwrap()),
            )
            .unwrap();
        }
    }
    std::fs::create_dir(dir.path().join("target")).unwrap();
    std::os::unix::fs::symlink(
        bins.scep_lab.parent().unwrap(),
        dir.path().join("target/release"),
    )
    .unwrap();
    dir
}

/// A client pinned to the lab root at `root` (HTTPS), or a plain one.
fn client(root: Option<&Path>) -> reqwest::Client {
    let b = match root {
        Some(r) => foundation::tls::ClientTls::pinned(&std::fs::read(r).unwrap())
            .unwrap()
            .builder()
            .unwrap(),
        None => reqwest::Client::builder(),
    };
    b.timeout(Duration::from_secs(10)).build().unwrap()
}

/// Where a service started by `command` answers `/healthz`: a config file's `listen` (https,
/// pinned to the `tls/root.pem` beside it, when its `[tls]` names a certificate), or serve's
/// ports.
fn listen_of(command: &str, cwd: &Path) -> Vec<(String, Option<PathBuf>)> {
    let words: Vec<&str> = command.split_whitespace().collect();
    if let Some(i) = words.iter().position(|w| *w == "--config") {
        let path = cwd.join(words[i + 1]);
        let text = std::fs::read_to_string(&path).unwrap();
        let config: toml::Value = toml::from_str(&text).unwrap();
        let listen = config["listen"].as_str().unwrap();
        let https = config.get("tls").is_some_and(|t| t.get("cert_file").is_some())
            // ndes-proxy's `listen` stays plain HTTP (SCEP and /healthz).
            && config.get("https_listen").is_none();
        return vec![if https {
            let root = path.parent().unwrap().join("tls/root.pem");
            (format!("https://{listen}"), Some(root))
        } else {
            (format!("http://{listen}"), None)
        }];
    }
    ["8180", "8280", "8080", "8380"]
        .iter()
        .map(|p| (format!("http://127.0.0.1:{p}"), None))
        .collect()
}

/// ndes-proxy's admin side per its configuration: `https_listen` pinned to `tls/root.pem`
/// beside it with TLS on, its one `listen` otherwise.
fn ndes_admin(config: &Path) -> (String, reqwest::Client) {
    let text = std::fs::read_to_string(config).unwrap();
    let config_v: toml::Value = toml::from_str(&text).unwrap();
    match config_v.get("https_listen").and_then(|v| v.as_str()) {
        Some(https) => (
            format!("https://{https}"),
            client(Some(&config.parent().unwrap().join("tls/root.pem"))),
        ),
        None => (
            format!("http://{}", config_v["listen"].as_str().unwrap()),
            client(None),
        ),
    }
}

/// Runs a shape's commands; returns the services it left running.
async fn run(commands: &[String], cwd: &Path, env: &[(&str, String)]) -> Services {
    let mut services = Services {
        dir: cwd.to_owned(),
        children: Vec::new(),
    };
    for command in commands {
        // The build under test stands for the README's build (`.ci/run` runs that line).
        if command.starts_with("cargo build") {
            continue;
        }
        let line = command.clone();
        let mut bash = Command::new("bash");
        bash.arg("-c").arg(&line).current_dir(cwd);
        bash.env("SCEP_LAB_BIN", &binaries().unwrap().scep_lab);
        for (k, v) in env {
            bash.env(k, v);
        }
        if line.split_whitespace().any(|w| w == "serve") {
            let log =
                std::fs::File::create(cwd.join(format!("service-{}.log", services.children.len())))
                    .unwrap();
            let child = bash
                .process_group(0)
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap();
            services.children.push((command.clone(), child));
            for (base, root) in listen_of(&line, cwd) {
                wait_healthy(&base, root.as_deref(), &mut services).await;
            }
        } else {
            let out = bash.output().unwrap();
            assert!(
                out.status.success(),
                "{command}: {}\n{}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    services
}

/// Waits (bounded) until `/healthz` at `base` answers 200 (pinned to `root` for https).
async fn wait_healthy(base: &str, root: Option<&Path>, services: &mut Services) {
    let http = client(root);
    let addr = base;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Ok(r) = http.get(format!("{base}/healthz")).send().await
            && r.status().is_success()
        {
            return;
        }
        if let Some((command, child)) = services.children.last_mut()
            && let Some(status) = child.try_wait().unwrap()
        {
            panic!("{command} exited with {status}");
        }
        assert!(Instant::now() < deadline, "nothing healthy at {addr}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The README's ports must be free before a shape starts.
fn assert_ports_free(ports: &[u16]) {
    for port in ports {
        assert!(
            std::net::TcpListener::bind(("127.0.0.1", *port)).is_ok(),
            "port {port} is taken: the README's deployments use it (stop what runs there)"
        );
    }
}

/// A plain SCEP client takes a password from the mscep_admin page at `admin` (base URL and
/// client) and enrolls once through `ndes`'s plain-HTTP SCEP.
async fn enroll_plain(
    ndes: &str,
    admin: (String, reqwest::Client),
    token_file: &Path,
    root_sha256: &str,
    cn: &str,
) {
    let token = std::fs::read_to_string(token_file).unwrap();
    let (admin, http) = admin;
    let page: serde_json::Value = http
        .get(format!("{admin}/certsrv/mscep_admin/?format=json"))
        .bearer_auth(token.trim())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let password = page["challenge"]
        .as_str()
        .unwrap_or_else(|| panic!("no challenge from {ndes}: {page}"))
        .to_owned();
    let scep_url = format!("http://{ndes}/certsrv/mscep/mscep.dll");
    let client = RawScep::discover(&scep_url, root_sha256).await.unwrap();
    let key = rsa_key(2048).unwrap();
    let mut name = openssl::x509::X509Name::builder().unwrap();
    name.append_entry_by_text("CN", cn).unwrap();
    let csr = scep::csr::build(
        &key,
        &name.build(),
        None,
        Some(&scep::csr::ChallengePassword::new(&password)),
        openssl::hash::MessageDigest::sha256(),
    )
    .unwrap();
    let (_, rep) = client.pkcs_req(&csr, &key).await.unwrap();
    assert!(matches!(rep, CertRep::Success(_)), "{ndes}: {rep:?}");
}

/// The root's SHA-256 as ca-mock at `ca` serves it.
async fn root_sha256(ca: &str) -> String {
    scep_lab::root_sha256(&reqwest::Client::new(), &format!("http://{ca}"))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_process_on_sqlite() {
    let _ports = PORTS.lock().await;
    assert_ports_free(&[8080, 8180, 8280, 8380]);
    let commands = block_under(&readme(), "### One process on SQLite");
    let dir = workdir();
    let services = run(&commands, dir.path(), &[]).await;
    let root = root_sha256("127.0.0.1:8180").await;
    let secrets = dir.path().join("scep-lab-data/secrets");
    enroll_plain(
        "127.0.0.1:8080",
        ("http://127.0.0.1:8080".into(), client(None)),
        &secrets.join("mscep-admin.token"),
        &root,
        "one-process-sqlite",
    )
    .await;
    drop(services);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn separate_processes() {
    let _ports = PORTS.lock().await;
    assert_ports_free(&[8080, 8180, 8181, 8280, 8443]);
    let commands = block_under(&readme(), "### Separate processes");
    let dir = workdir();
    let services = run(&commands, dir.path(), &[]).await;
    // TLS by default: the CA certificates on ca-mock's plain listener, as certificates name.
    let root = root_sha256("127.0.0.1:8181").await;
    enroll_plain(
        "127.0.0.1:8080",
        ndes_admin(&dir.path().join("run/ndes-proxy-1.toml")),
        &dir.path().join("run/secrets/mscep-admin.token"),
        &root,
        "separate-processes",
    )
    .await;
    drop(services);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_process_on_postgres() {
    let _ports = PORTS.lock().await;
    if !postgres_available() {
        return;
    }
    assert_ports_free(&[8080, 8180, 8280, 8380]);
    let commands = block_under(&readme(), "### One process on PostgreSQL");
    let dir = workdir();
    let services = run(&commands, dir.path(), &[]).await;
    assert!(
        !dir.path().join("scep-lab-pg/ca/ca.db").exists(),
        "the CA's store is PostgreSQL, not a SQLite file"
    );
    let root = root_sha256("127.0.0.1:8180").await;
    enroll_plain(
        "127.0.0.1:8080",
        ("http://127.0.0.1:8080".into(), client(None)),
        &dir.path().join("scep-lab-pg/secrets/mscep-admin.token"),
        &root,
        "one-process-postgres",
    )
    .await;
    drop(services);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_ndes_and_two_policy_on_postgres() {
    let _ports = PORTS.lock().await;
    let Some(pg) = testkit::pg::PgCluster::start().unwrap() else {
        return;
    };
    assert_ports_free(&[8080, 8081, 8180, 8181, 8280, 8281, 8443, 8444]);
    let commands = block_under(
        &readme(),
        "### Two NDES servers and two policy modules on PostgreSQL",
    );
    let dir = workdir();
    std::fs::write(dir.path().join("pg.url"), format!("{}\n", pg.url())).unwrap();
    let services = run(&commands, dir.path(), &[]).await;
    for db in ["scep_lab_ca", "scep_lab_policy", "scep_lab_pending"] {
        let found = pg
            .psql(
                "postgres",
                &format!("SELECT datname FROM pg_database WHERE datname = '{db}'"),
            )
            .unwrap();
        assert!(found.contains(db), "{db} was not created: {found}");
    }
    let root = root_sha256("127.0.0.1:8181").await;
    let token = dir.path().join("run/secrets/mscep-admin.token");
    let run_dir = dir.path().join("run");
    for (i, cn) in [(1, "scaled-out-1"), (2, "scaled-out-2")] {
        let admin = ndes_admin(&run_dir.join(format!("ndes-proxy-{i}.toml")));
        enroll_plain(&format!("127.0.0.1:{}", 8079 + i), admin, &token, &root, cn).await;
    }
    drop(services);
}

/// The PostgreSQL server binaries lab.sh's throwaway cluster needs: a failure under CI, a
/// skip otherwise.
fn postgres_available() -> bool {
    let found = std::fs::read_dir("/usr/lib/postgresql")
        .map(|versions| {
            versions
                .flatten()
                .any(|v| v.path().join("bin/initdb").is_file())
        })
        .unwrap_or(false);
    if !found {
        testkit::unavailable("PostgreSQL (initdb)");
    }
    found
}
