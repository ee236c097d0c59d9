//! F5 (reliability.md part 3 (c)): every SQLite store, ca-mock's issuance store,
//! policy-module's store and ndes-proxy's pending store, runs in WAL with synchronous=FULL
//! (docs/decisions.md #8), and no configuration can lower that: a durability key the services do
//! not have (`synchronous = "OFF"`, `journal_mode = ...`) or a CA database URL that would undo
//! it (in memory, another VFS, `immutable`) is refused at start with an error naming it.
//!
//! synchronous is a property of each connection, not of the file: the stores set it in the
//! connect options their pools apply to every connection they open, so one pooled connection
//! opened the way the service opens it shows what all of them run. WAL is persistent: the
//! header of each file the running services wrote says so.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use scep_lab_tests::processes::{Cluster, ClusterOptions, Role, ServiceId, binaries};

/// SQLite's file header says WAL when bytes 18 and 19 (write and read format) are both 2.
fn header_says_wal(file: &Path) -> bool {
    let bytes = std::fs::read(file).unwrap();
    bytes.get(18..20) == Some(&[2, 2])
}

/// The three SQLite files of a layout, from the services' own configuration files.
fn store_files(cluster: &Cluster) -> (String, PathBuf, PathBuf) {
    let l = cluster.layout();
    let ca = ca_mock::Config::load(&l.ca_config).unwrap().database;
    let policy_cfg = policy_module::config::Config::load(&l.policy_configs[0]).unwrap();
    let policy_module::config::StoreLocation::Sqlite(policy) = policy_cfg.store().unwrap() else {
        panic!("policy store is not SQLite");
    };
    let pending = ndes_proxy::config::Config::load(&l.ndes_configs[0])
        .unwrap()
        .pending
        .sqlite
        .expect("ndes-proxy keeps pending requests in SQLite");
    (ca, policy, pending)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f5_every_sqlite_store_runs_wal_with_synchronous_full() {
    let cluster = Cluster::start(ClusterOptions::sqlite()).await.unwrap();
    let (ca_url, policy_file, pending_file) = store_files(&cluster);
    let ca_file = PathBuf::from(ca_url.strip_prefix("sqlite://").unwrap());
    // The files the running services wrote are in WAL mode.
    for file in [&ca_file, &policy_file, &pending_file] {
        assert!(
            header_says_wal(file),
            "{} is not in WAL mode",
            file.display()
        );
    }

    // Each store opened as its service opens it: WAL and synchronous=FULL (2).
    let ca = ca_mock::store::SqlStore::connect(&ca_url).await.unwrap();
    let d = ca.sqlite_durability().await.unwrap().unwrap();
    assert_eq!(
        (d.journal_mode.as_str(), d.synchronous),
        ("wal", 2),
        "ca-mock"
    );
    ca.close().await;
    let clock = Arc::new(foundation::clock::SystemClock);
    let policy = policy_module::store::Store::open_sqlite(&policy_file, clock)
        .await
        .unwrap();
    let d = policy.sqlite_durability().await.unwrap().unwrap();
    assert_eq!(
        (d.journal_mode.as_str(), d.synchronous),
        ("wal", 2),
        "policy-module"
    );
    policy.close().await;
    let pending = ndes_proxy::SqlPendingStore::sqlite_file(&pending_file)
        .await
        .unwrap();
    let d = pending.sqlite_durability().await.unwrap().unwrap();
    let (mode, sync) = (d.journal_mode, d.synchronous);
    assert_eq!((mode.to_lowercase().as_str(), sync), ("wal", 2), "pending");
    pending.close().await;

    // The reconciler checks the same on every run (I8): clean here.
    scep_lab_tests::ensure_clean(&cluster.reconcile().await.unwrap()).unwrap();
}

/// Runs `program serve --config config` and returns its exit status and stderr; a process
/// that is still running after 30 s (it started serving) is killed and reported as such.
async fn start_with(program: &Path, config: &Path) -> (Option<i32>, String) {
    let child = tokio::process::Command::new(program)
        .arg("serve")
        .arg("--config")
        .arg(config)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    match tokio::time::timeout(Duration::from_secs(30), child.wait_with_output()).await {
        Ok(out) => {
            let out = out.unwrap();
            (
                out.status.code(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        }
        Err(_) => (None, "still running after 30 s: it started".into()),
    }
}

/// `text` with `line` added right after the line `after` (or at the top when `after` is empty).
fn with_line(text: &str, after: &str, line: &str) -> String {
    if after.is_empty() {
        return format!("{line}\n{text}");
    }
    assert!(text.lines().any(|l| l == after), "no line {after:?}");
    text.replacen(&format!("{after}\n"), &format!("{after}\n{line}\n"), 1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f5_a_configuration_that_would_lower_durability_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let options = scep_lab::services::ServicesOptions {
        ca_port: testkit::free_port().unwrap(),
        policy_ports: vec![testkit::free_port().unwrap()],
        ndes_ports: vec![testkit::free_port().unwrap()],
        postgres: None,
        outbox_poll_ms: None,
        tls: None,
    };
    let layout = scep_lab::services::prepare(&dir.path().join("services"), &options)
        .await
        .unwrap();
    let bins = binaries().unwrap();
    let read = |p: &Path| std::fs::read_to_string(p).unwrap();
    let (ca, policy, ndes) = (
        read(&layout.ca_config),
        read(&layout.policy_configs[0]),
        read(&layout.ndes_configs[0]),
    );
    let ca_db = "database = \"data/ca.db\"";
    // (service, program, original file, edited text, what the error must name)
    let cases: Vec<(ServiceId, &Path, &Path, String, &str)> = vec![
        (
            ServiceId::new(Role::Ca, 0),
            &bins.ca_mock,
            &layout.ca_config,
            with_line(&ca, "", "synchronous = \"OFF\""),
            "synchronous",
        ),
        (
            ServiceId::new(Role::Ca, 0),
            &bins.ca_mock,
            &layout.ca_config,
            with_line(&ca, "[issuance]", "journal_mode = \"MEMORY\""),
            "journal_mode",
        ),
        (
            ServiceId::new(Role::Ca, 0),
            &bins.ca_mock,
            &layout.ca_config,
            ca.replace(ca_db, "database = \"sqlite::memory:\""),
            "in-memory",
        ),
        (
            ServiceId::new(Role::Ca, 0),
            &bins.ca_mock,
            &layout.ca_config,
            ca.replace(ca_db, "database = \"sqlite://data/ca.db?vfs=unix-none\""),
            "vfs",
        ),
        (
            ServiceId::new(Role::Ca, 0),
            &bins.ca_mock,
            &layout.ca_config,
            ca.replace(ca_db, "database = \"sqlite://data/ca.db?immutable=true\""),
            "immutable",
        ),
        (
            ServiceId::new(Role::Policy, 0),
            &bins.policy_module,
            &layout.policy_configs[0],
            with_line(&policy, "", "synchronous = \"OFF\""),
            "synchronous",
        ),
        (
            ServiceId::new(Role::Policy, 0),
            &bins.policy_module,
            &layout.policy_configs[0],
            with_line(&policy, "[outbox]", "synchronous = 0"),
            "synchronous",
        ),
        (
            ServiceId::new(Role::Ndes, 0),
            &bins.ndes_proxy,
            &layout.ndes_configs[0],
            with_line(&ndes, "[pending]", "synchronous = \"OFF\""),
            "synchronous",
        ),
        (
            ServiceId::new(Role::Ndes, 0),
            &bins.ndes_proxy,
            &layout.ndes_configs[0],
            with_line(&ndes, "[pending]", "journal_mode = \"OFF\""),
            "journal_mode",
        ),
    ];
    assert!(ca.contains(ca_db), "the generated ca-mock.toml changed");
    for (i, (service, program, original, text, named)) in cases.into_iter().enumerate() {
        // Next to the original, so its relative paths resolve the same way.
        let edited = original.with_file_name(format!("edited-{i}.toml"));
        std::fs::write(&edited, &text).unwrap();
        let (code, stderr) = start_with(program, &edited).await;
        assert!(
            code.is_some_and(|c| c != 0),
            "{service} case {i} was not refused ({code:?}): {stderr}"
        );
        assert!(
            stderr.contains(named),
            "{service} case {i}: the error does not name {named:?}: {stderr}"
        );
    }
    // The unedited files parse: the refusals were the edits'.
    ca_mock::Config::load(&layout.ca_config).unwrap();
    policy_module::config::Config::load(&layout.policy_configs[0]).unwrap();
    ndes_proxy::config::Config::load(&layout.ndes_configs[0]).unwrap();
}
