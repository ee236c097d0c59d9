//! The multi-process harness itself ([`scep_lab_tests::processes`]): the three services start
//! from the configuration files `scep-lab services` writes (SQLite, one of each) and answer;
//! `kill` is a real SIGKILL (the port stops answering), `restart` brings the service back on the
//! same port with its state; and dropping the cluster, also while a test panics, leaves no
//! process behind.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use scep_lab_tests::processes::{Cluster, ClusterOptions, Role, ServiceId};

/// True while `pid` exists (a reaped child is gone from /proc).
fn alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

async fn healthz(url: &str) -> Result<u16, reqwest::Error> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?;
    Ok(http
        .get(format!("{url}/healthz"))
        .send()
        .await?
        .status()
        .as_u16())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_restart_and_drop_leave_no_process_behind() {
    let mut cluster = Cluster::start(ClusterOptions::sqlite()).await.unwrap();
    assert_eq!(cluster.ids().len(), 3);
    for id in cluster.ids() {
        assert_eq!(healthz(&cluster.url(id)).await.unwrap(), 200, "{id}");
    }
    // Each service logged its start to its own file.
    assert!(
        cluster
            .log(ServiceId::new(Role::Ndes, 0))
            .contains("ndes-proxy serving SCEP")
    );

    // A SIGKILLed ndes-proxy is gone; restarted, it answers on the same URL.
    let ndes = ServiceId::new(Role::Ndes, 0);
    let before = cluster.pid(ndes).unwrap();
    cluster.kill(ndes).unwrap();
    assert!(!alive(before), "pid {before} survived kill -9");
    assert!(cluster.pid(ndes).is_none());
    assert!(
        healthz(&cluster.url(ndes)).await.is_err(),
        "nothing listens"
    );
    cluster.restart(ndes).await.unwrap();
    let after = cluster.pid(ndes).unwrap();
    assert_ne!(before, after);
    assert_eq!(healthz(&cluster.url(ndes)).await.unwrap(), 200);
    // The policy module keeps its SQLite state across a kill -9 and restart.
    let policy = ServiceId::new(Role::Policy, 0);
    cluster.restart(policy).await.unwrap();
    assert_eq!(healthz(&cluster.url(policy)).await.unwrap(), 200);

    // A test that panics with a cluster in scope: the unwinding drop kills every process.
    let (tx, rx) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(async move {
        let c = Cluster::start(ClusterOptions::sqlite()).await.unwrap();
        let pids: Vec<u32> = c.ids().into_iter().filter_map(|id| c.pid(id)).collect();
        tx.send(pids).unwrap();
        panic!("a failing test");
    });
    let pids = rx.await.unwrap();
    assert_eq!(pids.len(), 3);
    assert!(task.await.unwrap_err().is_panic());
    for pid in pids {
        assert!(!alive(pid), "pid {pid} outlived the panicking test");
    }

    let pids: Vec<u32> = cluster
        .ids()
        .into_iter()
        .filter_map(|id| cluster.pid(id))
        .collect();
    drop(cluster);
    for pid in pids {
        assert!(!alive(pid), "pid {pid} outlived the cluster");
    }
}
