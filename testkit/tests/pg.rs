//! testkit::pg against the real PostgreSQL binaries (skipped without them unless CI=true).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use testkit::pg::{PgCluster, PgError};

fn select_one(pg: &PgCluster, db: &str) -> Result<String, PgError> {
    pg.psql(db, "select 1").map(|s| s.trim().to_owned())
}

#[test]
fn databases_are_separate_and_data_survives_restart_and_kill() {
    let Some(mut pg) = PgCluster::start().unwrap() else {
        return;
    };
    let port = pg.port();
    assert_eq!(
        pg.url(),
        format!("postgres://postgres@127.0.0.1:{port}/postgres")
    );

    let a = pg.create_database("alpha").unwrap();
    let b = pg.create_database("beta").unwrap();
    assert_eq!(a, format!("postgres://postgres@127.0.0.1:{port}/alpha"));
    assert_eq!(b, format!("postgres://postgres@127.0.0.1:{port}/beta"));
    assert_eq!(select_one(&pg, "alpha").unwrap(), "1");
    assert_eq!(select_one(&pg, "beta").unwrap(), "1");
    // psql reaches the URL we hand out, not just the host/port we drive it with.
    let out = Command::new(pg.bin_dir().join("psql"))
        .args(["-XAtc", "select current_database()", &b])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "beta",
        "{out:?}"
    );

    pg.psql("alpha", "create table t (v int); insert into t values (42)")
        .unwrap();
    let missing = pg.psql("beta", "select v from t").unwrap_err();
    assert!(missing.to_string().contains("does not exist"), "{missing}");
    assert!(
        matches!(pg.create_database("alpha"), Err(PgError::Command { .. })),
        "duplicate name"
    );
    assert_eq!(
        pg.psql("postgres", "show max_connections").unwrap().trim(),
        "200"
    );

    pg.restart().unwrap();
    assert_eq!(pg.port(), port, "restart keeps the port");
    assert_eq!(pg.psql("alpha", "select v from t").unwrap().trim(), "42");

    pg.kill().unwrap();
    assert!(pg.pid().is_none());
    assert!(
        select_one(&pg, "alpha").is_err(),
        "a killed server must not answer"
    );
    assert!(matches!(pg.kill(), Err(PgError::NotRunning)));

    // Committed before the crash, so still there after crash recovery.
    pg.restart().unwrap();
    assert_eq!(pg.psql("alpha", "select v from t").unwrap().trim(), "42");
    pg.stop().unwrap();
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "stopped server still listens"
    );
}

#[test]
fn drop_stops_the_server_and_removes_its_directory() {
    let Some(pg) = PgCluster::start().unwrap() else {
        return;
    };
    let (port, log) = (pg.port(), pg.log_path());
    let dir = log.parent().unwrap().to_path_buf();
    assert!(pg.fresh_database().unwrap().ends_with("/test_1"));
    assert!(pg.fresh_database().unwrap().ends_with("/test_2"));
    assert!(TcpStream::connect(("127.0.0.1", port)).is_ok());
    drop(pg);
    assert!(!dir.exists(), "{} left behind", dir.display());
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "server outlived Drop"
    );
}

#[test]
fn bad_database_names_are_refused_before_reaching_the_server() {
    let Some(pg) = testkit::pg::shared().unwrap() else {
        return;
    };
    for bad in [
        "",
        "1abc",
        "a-b",
        "A",
        "x\"; drop database postgres; --",
        &"a".repeat(64),
    ] {
        assert!(
            matches!(pg.create_database(bad), Err(PgError::BadName(_))),
            "{bad:?} accepted"
        );
    }
    assert_eq!(select_one(pg, "postgres").unwrap(), "1");
}

/// The child half of `the_watchdog_cleans_up_after_a_process_that_never_drops`.
#[test]
#[ignore = "run by the_watchdog_cleans_up_after_a_process_that_never_drops"]
fn watchdog_child() {
    if std::env::var_os("TESTKIT_WATCHDOG_CHILD").is_none() {
        return;
    }
    let pg = PgCluster::start().unwrap().unwrap();
    println!(
        "WATCHDOG {} {}",
        pg.port(),
        pg.log_path().parent().unwrap().display()
    );
    std::process::exit(0); // no Drop: the watchdog must clean up
}

#[test]
fn the_watchdog_cleans_up_after_a_process_that_never_drops() {
    if testkit::pg::shared().unwrap().is_none() {
        return;
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "watchdog_child", "--ignored", "--nocapture"])
        .env("TESTKIT_WATCHDOG_CHILD", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("WATCHDOG "))
        .expect("child printed no cluster");
    let (port, dir) = line.split_once(' ').unwrap();
    let (port, dir): (u16, PathBuf) = (port.parse().unwrap(), dir.into());
    let deadline = Instant::now() + Duration::from_secs(20);
    while (dir.exists() || TcpStream::connect(("127.0.0.1", port)).is_ok())
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!dir.exists(), "{} left behind", dir.display());
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "orphaned server still listens"
    );
}
